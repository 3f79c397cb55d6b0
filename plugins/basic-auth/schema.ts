// Route and consumer config of basic-auth (Apache APISIX's basic-auth).
import type { JsonSchema } from 'gatehouse-gateway/sdk';

export interface BasicAuthConfig {
  /** Remove the `Authorization` header before proxying; default false. */
  readonly hide_credentials: boolean;
  /** Consumer used when the request sends no `Authorization` header at all. */
  readonly anonymous_consumer?: string;
}

export interface BasicAuthConsumerConfig {
  /** The user-id the client sends; unique across consumers. */
  readonly username: string;
  /** The password: a literal or, better, a `$secret://` / `$env://` reference. */
  readonly password: string;
}

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    hide_credentials: { type: 'boolean', default: false },
    anonymous_consumer: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,100}$' },
  },
  additionalProperties: false,
};

export const consumerSchema: JsonSchema = {
  type: 'object',
  properties: {
    // RFC 7617: a user-id cannot contain a colon (the first one separates it from the password)
    username: { type: 'string', minLength: 1, pattern: '^[^:]+$' },
    // writeOnly: a plaintext secret, redacted by the Admin API
    password: { type: 'string', minLength: 1, writeOnly: true },
  },
  required: ['username', 'password'],
  additionalProperties: false,
};
