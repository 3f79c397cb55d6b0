// Config of the `vault` secret provider: one `secrets:` entry (without `id`) per Vault resource.
import type { JsonSchema } from 'gatehouse-gateway/sdk';

/** AppRole login (`auth/<mount>/login`). */
export interface VaultAppRoleAuth {
  readonly method: 'approle';
  readonly role_id: string;
  /** Plaintext secret: redacted by the Admin API. */
  readonly secret_id: string;
  /** Auth mount path; default `approle`. */
  readonly mount?: string;
}

/** Kubernetes service-account login (`auth/<mount>/login`). */
export interface VaultKubernetesAuth {
  readonly method: 'kubernetes';
  readonly role: string;
  /** Service-account token file, read at every login; default the in-pod path. */
  readonly jwt_path?: string;
  /** Auth mount path; default `kubernetes`. */
  readonly mount?: string;
}

/** TLS towards Vault: each value is PEM text (contains `-----BEGIN`) or a path to a PEM file. */
export interface VaultTlsConfig {
  /** CA bundle that signs Vault's certificate; default: Node's built-in CAs. */
  readonly ca?: string;
  /** Client certificate, for Vault listeners that require one. */
  readonly cert?: string;
  /** Client private key (plaintext secret when given as PEM: redacted by the Admin API). */
  readonly key?: string;
  /** Verify Vault's certificate and host name; default true. */
  readonly verify?: boolean;
}

/** A `secrets:` entry of manager `vault`. */
export interface VaultConfig {
  /** Vault address, e.g. `https://vault.example.com:8200`. */
  readonly uri: string;
  /** KV mount plus optional sub-path, e.g. `kv/apisix` or `apisix`. */
  readonly prefix: string;
  /** Static token (plaintext secret: redacted by the Admin API). Exactly one of `token` and `auth`. */
  readonly token?: string;
  readonly auth?: VaultAppRoleAuth | VaultKubernetesAuth;
  /** Vault Enterprise namespace, sent as `X-Vault-Namespace`. */
  readonly namespace?: string;
  /** KV engine version; default `auto` (asks `sys/internal/ui/mounts/<prefix>`). */
  readonly kv_version: 1 | 2 | 'auto';
  /** Seconds per HTTP request to Vault; default 5. */
  readonly timeout: number;
  readonly tls?: VaultTlsConfig;
}

/** Default `auth.jwt_path` for Kubernetes login: where kubelet mounts the service-account token. */
export const DEFAULT_JWT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';

const nonEmpty = { type: 'string', minLength: 1 };

/** JSON schema of a `vault` secrets entry; `token`, `auth.secret_id` and `tls.key` are writeOnly (redacted by the Admin API). */
export const schema: JsonSchema = {
  type: 'object',
  properties: {
    uri: { ...nonEmpty, description: 'Vault address, e.g. https://vault.example.com:8200' },
    prefix: { ...nonEmpty, description: 'KV mount plus optional sub-path, e.g. kv/apisix' },
    token: { ...nonEmpty, writeOnly: true, description: 'static Vault token (exactly one of token and auth)' },
    auth: {
      type: 'object',
      properties: {
        method: { enum: ['approle', 'kubernetes'] },
        role_id: nonEmpty,
        secret_id: { ...nonEmpty, writeOnly: true },
        role: nonEmpty,
        jwt_path: nonEmpty,
        mount: nonEmpty,
      },
      required: ['method'],
      additionalProperties: false,
      // per-method fields; `if`/`then` rather than oneOf so that errors name the missing field
      allOf: [
        {
          if: { properties: { method: { const: 'approle' } }, required: ['method'] },
          then: { required: ['role_id', 'secret_id'], not: { anyOf: [{ required: ['role'] }, { required: ['jwt_path'] }] } },
        },
        {
          if: { properties: { method: { const: 'kubernetes' } }, required: ['method'] },
          then: { required: ['role'], not: { anyOf: [{ required: ['role_id'] }, { required: ['secret_id'] }] } },
        },
      ],
    },
    namespace: { type: 'string' },
    kv_version: { enum: [1, 2, 'auto'], default: 'auto' },
    timeout: { type: 'number', exclusiveMinimum: 0, maximum: 300, default: 5 },
    tls: {
      type: 'object',
      properties: {
        ca: nonEmpty,
        cert: nonEmpty,
        key: { ...nonEmpty, writeOnly: true },
        verify: { type: 'boolean', default: true },
      },
      additionalProperties: false,
    },
  },
  required: ['uri', 'prefix'],
  oneOf: [{ required: ['token'] }, { required: ['auth'] }],
  additionalProperties: false,
};
