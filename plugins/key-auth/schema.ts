// Route and consumer config of key-auth (Apache APISIX's key-auth).
import type { JsonSchema } from 'gatehouse-gateway/sdk';

export interface KeyAuthConfig {
  /** Header carrying the key; default `apikey`. */
  readonly header: string;
  /** Query argument carrying the key when the header is absent; default `apikey`. */
  readonly query: string;
  /** Remove the key from the header / query before proxying; default false. */
  readonly hide_credentials: boolean;
  /** Consumer used when the request sends no key at all. */
  readonly anonymous_consumer?: string;
}

export interface KeyAuthConsumerConfig {
  /** The consumer's key: a literal or, better, a `$secret://` / `$env://` reference. */
  readonly key: string;
}

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    header: { type: 'string', pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$', default: 'apikey' },
    query: { type: 'string', minLength: 1, default: 'apikey' },
    hide_credentials: { type: 'boolean', default: false },
    anonymous_consumer: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,100}$' },
  },
  additionalProperties: false,
};

export const consumerSchema: JsonSchema = {
  type: 'object',
  properties: {
    // writeOnly: a plaintext secret, redacted by the Admin API
    key: { type: 'string', minLength: 1, writeOnly: true },
  },
  required: ['key'],
  additionalProperties: false,
};
