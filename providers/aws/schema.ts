// Config of the `aws` secret provider: a `secrets:` entry (without `id`) for one Secrets Manager region/endpoint.
import type { JsonSchema } from 'gatehouse-gateway/sdk';

/** A validated `secrets:` entry of manager `aws` (references already resolved by the core). */
export interface AwsConfig {
  /** AWS region; default: the SDK's own resolution (AWS_REGION, the shared config file). */
  readonly region?: string;
  /** Endpoint URL, e.g. a VPC endpoint or a local emulator; default: the region's public endpoint. */
  readonly endpoint_url?: string;
  /** Static key id; with `secret_access_key` only. Default: the SDK's default credential chain. */
  readonly access_key_id?: string;
  /** Static secret key; with `access_key_id` only. Write-only: never shown by the Admin API. */
  readonly secret_access_key?: string;
  /** Session token of temporary credentials; needs both keys. Write-only. */
  readonly session_token?: string;
  /** Staging label read when a reference pins no version; default `AWSCURRENT`. */
  readonly version_stage?: string;
  /** Per-attempt request timeout in seconds; default 5. */
  readonly timeout?: number;
  /** Attempts per call including the first (standard retry mode, backoff on throttling and 5xx); default 4. */
  readonly max_attempts?: number;
}

/** Staging label read when neither config nor reference says otherwise. */
export const DEFAULT_VERSION_STAGE = 'AWSCURRENT';
/** Per-attempt request timeout, seconds. */
export const DEFAULT_TIMEOUT_SECONDS = 5;
/** Attempts per call, first one included (the SDK's own default is 3). */
export const DEFAULT_MAX_ATTEMPTS = 4;

/**
 * JSON schema of an `aws` secrets entry. `secret_access_key` and `session_token` are `writeOnly`: the
 * Admin API shows them as `"******"`. Defaults are applied by the core's validation.
 * @example
 * // secrets:
 * //   - id: aws/prod
 * //     region: eu-west-1
 * //     access_key_id: $env://AWS_KEY_ID
 * //     secret_access_key: $env://AWS_SECRET_KEY
 */
export const schema: JsonSchema = {
  type: 'object',
  properties: {
    region: { type: 'string', minLength: 1, description: "AWS region; default: the SDK's own resolution (AWS_REGION, shared config)" },
    endpoint_url: { type: 'string', minLength: 1, description: 'http(s) URL of the Secrets Manager endpoint' },
    access_key_id: { type: 'string', minLength: 1, description: 'static access key id (with secret_access_key)' },
    secret_access_key: { type: 'string', minLength: 1, writeOnly: true, description: 'static secret access key (with access_key_id)' },
    session_token: { type: 'string', minLength: 1, writeOnly: true, description: 'session token of temporary credentials' },
    version_stage: { type: 'string', minLength: 1, maxLength: 256, default: DEFAULT_VERSION_STAGE, description: 'staging label read when a reference pins no version' },
    timeout: { type: 'number', exclusiveMinimum: 0, maximum: 300, default: DEFAULT_TIMEOUT_SECONDS, description: 'per-attempt request timeout, seconds' },
    max_attempts: { type: 'integer', minimum: 1, maximum: 10, default: DEFAULT_MAX_ATTEMPTS, description: 'attempts per call, first one included' },
  },
  // a key pair is all or nothing; a session token belongs to a key pair
  dependencies: {
    access_key_id: ['secret_access_key'],
    secret_access_key: ['access_key_id'],
    session_token: ['access_key_id', 'secret_access_key'],
  },
  additionalProperties: false,
};
