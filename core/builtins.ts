// The one list of first-party extensions. They are registered exactly like a user's extension.
import type { Extension } from './contracts';
import mocking from '../plugins/mocking';
import keyAuth from '../plugins/key-auth';
import env from '../providers/env';
import aws from '../providers/aws';
import vault from '../providers/vault';

export const builtinExtensions: readonly Extension[] = [
  { kind: 'plugin', plugin: keyAuth },
  { kind: 'plugin', plugin: mocking },
  { kind: 'provider', provider: env },
  { kind: 'provider', provider: vault },
  { kind: 'provider', provider: aws },
];
