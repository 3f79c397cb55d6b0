// The env provider takes no configuration: `$env://NAME` needs no `secrets:` entry.
import type { JsonSchema } from 'gatehouse-gateway/sdk';

export const schema: JsonSchema = { type: 'object', properties: {}, additionalProperties: false };
