// Config of a template-provider secret resource (a `secrets:` entry with id `template-provider/<id>`).
import type { JsonSchema } from 'gatehouse-gateway/sdk';

export interface TemplateProviderConfig {
  /** The JSON file holding the secrets; a relative path is resolved from the gateway's working directory. */
  readonly path: string;
}

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    path: { type: 'string', minLength: 1 },
  },
  required: ['path'],
  additionalProperties: false,
};
