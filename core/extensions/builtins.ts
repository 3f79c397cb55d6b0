// The one list of first-party extensions. They are registered exactly like a user's extension.
import type { Extension } from '../contracts';
import mocking from '../../plugins/mocking';
import keyAuth from '../../plugins/key-auth';
import proxyRewrite from '../../plugins/proxy-rewrite';
import cors from '../../plugins/cors';
import requestId from '../../plugins/request-id';
import ipRestriction from '../../plugins/ip-restriction';
import basicAuth from '../../plugins/basic-auth';
import jwtAuth from '../../plugins/jwt-auth';
import limitCount from '../../plugins/limit-count';
import clientControl from '../../plugins/client-control';
import env from '../../providers/env';
import aws from '../../providers/aws';
import vault from '../../providers/vault';
import file from '../../providers/file';

export const builtinExtensions: readonly Extension[] = [
  { kind: 'plugin', plugin: keyAuth },
  { kind: 'plugin', plugin: mocking },
  { kind: 'plugin', plugin: proxyRewrite },
  { kind: 'plugin', plugin: cors },
  { kind: 'plugin', plugin: requestId },
  { kind: 'plugin', plugin: ipRestriction },
  { kind: 'plugin', plugin: basicAuth },
  { kind: 'plugin', plugin: jwtAuth },
  { kind: 'plugin', plugin: limitCount },
  { kind: 'plugin', plugin: clientControl },
  { kind: 'provider', provider: env },
  { kind: 'provider', provider: vault },
  { kind: 'provider', provider: aws },
  { kind: 'provider', provider: file },
];
