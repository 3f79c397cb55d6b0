// Route and consumer config of jwt-auth (Apache APISIX's jwt-auth).
import type { JsonSchema } from 'gatehouse-gateway/sdk';

/** Signature algorithms a consumer may use: HMAC with `secret`, or RSA / ECDSA P-256 with `public_key`. */
export const ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'ES256'] as const;
export type JwtAlgorithm = (typeof ALGORITHMS)[number];

export interface JwtAuthConfig {
  /** Header carrying the token (`Bearer ` prefix optional); default `authorization`. */
  readonly header: string;
  /** Query argument carrying the token when the header is absent; default `jwt`. */
  readonly query: string;
  /** Cookie carrying the token when neither the header nor the query argument is sent; default `jwt`. */
  readonly cookie: string;
  /** Remove the token (header, query argument or cookie) before proxying; default false. */
  readonly hide_credentials: boolean;
  /** Claim of the payload naming the consumer's `key`; default `key`. */
  readonly key_claim_name: string;
  /** Consumer used when the request sends no token at all. */
  readonly anonymous_consumer?: string;
}

export interface JwtAuthConsumerConfig {
  /** Identifies the consumer: the value of the token's key claim. Unique across consumers. */
  readonly key: string;
  /** HMAC secret (HS256, HS384, HS512): a literal or, better, a `$secret://` / `$env://` reference. */
  readonly secret?: string;
  /** PEM public key (RS256: RSA, ES256: EC P-256); may be a reference. */
  readonly public_key?: string;
  /** The only algorithm accepted from this consumer; default HS256. */
  readonly algorithm: JwtAlgorithm;
  /** Lifetime of tokens APISIX signs; accepted for compatibility, unused (Gatehouse does not sign tokens). */
  readonly exp?: number;
  /** `secret` is base64: its decoded bytes are the HMAC key; default false. */
  readonly base64_secret: boolean;
  /** Seconds of clock skew tolerated on `exp` and `nbf`; default 0. */
  readonly lifetime_grace_period: number;
}

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    header: { type: 'string', pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$', default: 'authorization' },
    query: { type: 'string', minLength: 1, default: 'jwt' },
    cookie: { type: 'string', pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$', default: 'jwt' },
    hide_credentials: { type: 'boolean', default: false },
    key_claim_name: { type: 'string', minLength: 1, default: 'key' },
    anonymous_consumer: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,100}$' },
  },
  additionalProperties: false,
};

export const consumerSchema: JsonSchema = {
  type: 'object',
  properties: {
    key: { type: 'string', minLength: 1 },
    // writeOnly: a plaintext secret, redacted by the Admin API
    secret: { type: 'string', minLength: 1, writeOnly: true },
    public_key: { type: 'string', minLength: 1 },
    algorithm: { type: 'string', enum: [...ALGORITHMS], default: 'HS256' },
    exp: { type: 'integer', minimum: 1 },
    base64_secret: { type: 'boolean', default: false },
    lifetime_grace_period: { type: 'integer', minimum: 0, default: 0 },
  },
  required: ['key'],
  // the key material the algorithm needs
  if: { properties: { algorithm: { enum: ['RS256', 'ES256'] } }, required: ['algorithm'] },
  then: { required: ['public_key'] },
  else: { required: ['secret'] },
  additionalProperties: false,
};
