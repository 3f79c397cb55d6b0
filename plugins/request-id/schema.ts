// Route config of request-id (Apache APISIX's request-id).
import { SENT_TO_CLIENT, type JsonSchema } from 'gatehouse-gateway/sdk';

export type RequestIdAlgorithm = 'uuid' | 'nanoid' | 'range_id' | 'ksuid';

export interface RequestIdConfig {
  /** Header carrying the id, upstream and in the response; default `X-Request-Id`. */
  readonly header_name: string;
  /** Send the id back to the client; default true. */
  readonly include_in_response: boolean;
  /** How new ids are made; default `uuid`. */
  readonly algorithm: RequestIdAlgorithm;
  /** For `range_id`: `length` (default 16, at least 6) characters drawn from `char_set`. */
  readonly range_id: { readonly length: number; readonly char_set: string };
}

export const DEFAULT_CHAR_SET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    // a response header's name (include_in_response): sent to clients (SENT_TO_CLIENT)
    header_name: { type: 'string', pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$', default: 'X-Request-Id', [SENT_TO_CLIENT]: true },
    include_in_response: { type: 'boolean', default: true },
    algorithm: { type: 'string', enum: ['uuid', 'nanoid', 'range_id', 'ksuid'], default: 'uuid' },
    range_id: {
      type: 'object',
      properties: {
        length: { type: 'integer', minimum: 6, maximum: 1024, default: 16 },
        // visible ASCII: the id travels in a header; every id a client gets shows its characters (SENT_TO_CLIENT)
        char_set: { type: 'string', minLength: 6, pattern: '^[\\x21-\\x7e]+$', default: DEFAULT_CHAR_SET, [SENT_TO_CLIENT]: true },
      },
      additionalProperties: false,
      default: {},
    },
  },
  additionalProperties: false,
};
