// The env provider takes no configuration: `$env://NAME` needs no `secrets:` entry.
import type { JsonSchema } from '../../core/sdk';

export const schema: JsonSchema = { type: 'object', properties: {}, additionalProperties: false };
