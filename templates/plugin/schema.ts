// Route config of the template-plugin plugin: which response header to add, and its value.
import type { JsonSchema } from 'gatehouse-gateway/sdk';

export interface TemplatePluginConfig {
  /** Name of the response header; default `X-Hello`. */
  readonly header_name: string;
  /** Its value; default `hello`. May be a secret reference (`$env://…`), resolved at load. */
  readonly header_value: string;
}

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    header_name: { type: 'string', minLength: 1, default: 'X-Hello' },
    header_value: { type: 'string', default: 'hello' },
  },
  additionalProperties: false,
};
