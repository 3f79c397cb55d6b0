// Route config of limit-count (Apache APISIX's limit-count: fixed windows, local or Redis counters).
import { SENT_TO_CLIENT, type JsonSchema } from 'gatehouse-gateway/sdk';

export interface LimitCountConfig {
  /** Requests allowed per window and key (> 0). */
  readonly count: number;
  /** Window length in seconds (> 0). */
  readonly time_window: number;
  /** How `key` is read: one variable, a `$var` template, or a constant; default `var`. */
  readonly key_type: 'var' | 'var_combination' | 'constant';
  /** What requests are counted by; default `remote_addr`. */
  readonly key: string;
  /** Status of a rejected request; default 503. */
  readonly rejected_code: number;
  /** Body of a rejected request, sent as `{"error_msg": …}`; default: the status text. */
  readonly rejected_msg?: string;
  /** Where counters live: this gateway's memory, or Redis (shared by every node); default `local`. */
  readonly policy: 'local' | 'redis';
  /** Let requests through when the counter store fails (Redis down); default false (500). */
  readonly allow_degradation: boolean;
  /** Send X-RateLimit-Limit / -Remaining / -Reset; default true. */
  readonly show_limit_quota_header: boolean;
  /** Routes with the same group share one counter (and must have the same config). */
  readonly group?: string;
  readonly redis_host?: string;
  /** Default 6379. */
  readonly redis_port: number;
  /** ACL user (Redis 6+); default: the `default` user. */
  readonly redis_username?: string;
  /** A literal or, better, a `$secret://` / `$env://` reference. Redacted by the Admin API. */
  readonly redis_password?: string;
  /** Default 0. */
  readonly redis_database: number;
  /** Connect and command timeout in milliseconds; default 1000. */
  readonly redis_timeout: number;
  /** Connect with TLS; default false. */
  readonly redis_ssl: boolean;
  /** Verify the server certificate when `redis_ssl` is on; default true. */
  readonly redis_ssl_verify: boolean;
}

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    count: { type: 'integer', exclusiveMinimum: 0 },
    time_window: { type: 'integer', exclusiveMinimum: 0 },
    key_type: { type: 'string', enum: ['var', 'var_combination', 'constant'], default: 'var' },
    key: { type: 'string', minLength: 1, default: 'remote_addr' },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    // the rejection's body: sent to the limited client (SENT_TO_CLIENT)
    rejected_msg: { type: 'string', minLength: 1, [SENT_TO_CLIENT]: true },
    policy: { type: 'string', enum: ['local', 'redis'], default: 'local' },
    allow_degradation: { type: 'boolean', default: false },
    show_limit_quota_header: { type: 'boolean', default: true },
    group: { type: 'string', minLength: 1 },
    redis_host: { type: 'string', minLength: 1 },
    redis_port: { type: 'integer', minimum: 1, maximum: 65535, default: 6379 },
    redis_username: { type: 'string', minLength: 1 },
    // writeOnly: a plaintext secret, redacted by the Admin API
    redis_password: { type: 'string', writeOnly: true },
    redis_database: { type: 'integer', minimum: 0, default: 0 },
    redis_timeout: { type: 'integer', minimum: 1, default: 1000 },
    redis_ssl: { type: 'boolean', default: false },
    redis_ssl_verify: { type: 'boolean', default: true },
  },
  required: ['count', 'time_window'],
  // as APISIX: redis_host is required with the redis policy
  if: { properties: { policy: { const: 'redis' } }, required: ['policy'] },
  then: { required: ['redis_host'] },
  additionalProperties: false,
};
