// Route config of the template-plugin plugin: which response header to add, and its value.
import { SENT_TO_CLIENT, type JsonSchema } from 'gatehouse-gateway/sdk';

export interface TemplatePluginConfig {
  /** Name of the response header; default `X-Hello`. */
  readonly header_name: string;
  /** Its value; default `hello`. Written as is: a client gets it, so it cannot be a secret reference. */
  readonly header_value: string;
}

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    // both go back to clients in the response: SENT_TO_CLIENT refuses a secret reference in them
    header_name: { type: 'string', minLength: 1, default: 'X-Hello', [SENT_TO_CLIENT]: true },
    header_value: { type: 'string', default: 'hello', [SENT_TO_CLIENT]: true },
  },
  additionalProperties: false,
};
