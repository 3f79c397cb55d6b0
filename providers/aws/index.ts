// aws: secret provider for AWS Secrets Manager (JSON fields, slash names longest-match-first, BatchGetSecretValue warm-up).
import type { SecretsManagerClient, SecretsManagerClientConfig } from '@aws-sdk/client-secrets-manager';

type Sdk = typeof import('@aws-sdk/client-secrets-manager');
/**
 * The AWS SDK, loaded when the first aws secret resource is created (it is large; most gateways
 * never use it). Node's module cache keeps it after the first call.
 */
function awsSdk(): Sdk {
  return require('@aws-sdk/client-secrets-manager') as Sdk;
}
import { defineProvider, type Logger, type ProviderServices, type SecretBackend, type SecretRequest, type SecretValue } from 'gatehouse-gateway/sdk';
import { DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT_SECONDS, DEFAULT_VERSION_STAGE, schema, type AwsConfig } from './schema';

/** One way of reading a reference: the secret `name`, and the JSON path inside its value (empty = whole value). */
export interface Candidate {
  readonly name: string;
  readonly fieldPath: readonly string[];
}

/** The parts of a GetSecretValue / BatchGetSecretValue answer this provider reads. */
export interface FetchedSecret {
  readonly Name?: string;
  readonly VersionId?: string;
  readonly SecretString?: string;
  readonly SecretBinary?: Uint8Array;
}

const BATCH_SIZE = 20;
const BATCH_CONCURRENCY = 4;
const NOT_FOUND = Symbol('not found');
// GetSecretValue answers InvalidRequestException only for a secret scheduled for deletion
const MISSING_ERRORS = new Set(['ResourceNotFoundException', 'InvalidRequestException']);

/**
 * Every name a reference may mean, longest first: `a/b/field` whole, then `a/b` with JSON field
 * `field`, then `a` with JSON path `b.field`.
 */
export function candidates(req: SecretRequest): Candidate[] {
  const segments = [...(req.path ? req.path.split('/') : []), req.field];
  const out: Candidate[] = [];
  for (let k = segments.length; k >= 1; k--) out.push({ name: segments.slice(0, k).join('/'), fieldPath: segments.slice(k) });
  return out;
}

/**
 * The value a reference asks for, or undefined when the field is missing. SecretBinary that is valid
 * UTF-8 is read as text; other bytes are returned base64-encoded for a whole-value reference. Non-string
 * JSON values (numbers, booleans, null, objects, arrays) are returned as JSON text.
 */
export function extractValue(secret: FetchedSecret, fieldPath: readonly string[]): SecretValue | undefined {
  let text: string | undefined = secret.SecretString;
  let bytes: Uint8Array | undefined;
  if (text === undefined && secret.SecretBinary !== undefined) {
    bytes = secret.SecretBinary;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      text = undefined;
    }
  }
  const version = secret.VersionId;
  const result = (value: string): SecretValue => (version !== undefined ? { value, version } : { value });
  if (fieldPath.length === 0) {
    if (text !== undefined) return result(text);
    return bytes !== undefined ? result(Buffer.from(bytes).toString('base64')) : undefined;
  }
  if (text === undefined) return undefined;
  let node: unknown;
  try {
    node = JSON.parse(text);
  } catch {
    return undefined;
  }
  for (const key of fieldPath) {
    if (node === null || typeof node !== 'object' || !Object.prototype.hasOwnProperty.call(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return result(typeof node === 'string' ? node : JSON.stringify(node));
}

/** The AWS error type of an SDK failure (`ThrottlingException`, `TimeoutError`, `ECONNREFUSED`…), never its message. */
function errorType(err: unknown): string {
  const e = err as { name?: unknown; code?: unknown } | undefined;
  const name = typeof e?.name === 'string' && e.name !== 'Error' ? e.name : typeof e?.code === 'string' ? e.code : undefined;
  // the type may come from the wire: keep it only if it looks like an identifier
  return name !== undefined && /^[A-Za-z][A-Za-z0-9_.:#-]{0,99}$/.test(name) ? name : 'UnknownError';
}

/**
 * A new Error naming the operation, the secret and the AWS error type. The SDK's own message and
 * stack are dropped on purpose: a deserialisation error may quote a response body, i.e. a value.
 */
function failure(op: string, name: string, err: unknown): Error {
  const meta = (err as { $metadata?: { httpStatusCode?: number; attempts?: number } } | undefined)?.$metadata;
  const status = typeof meta?.httpStatusCode === 'number' ? ` (HTTP ${meta.httpStatusCode})` : '';
  const attempts = typeof meta?.attempts === 'number' ? ` after ${meta.attempts} attempt${meta.attempts === 1 ? '' : 's'}` : '';
  return new Error(`aws: ${op} of secret "${name}" failed: ${errorType(err)}${status}${attempts}`);
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** A live Secrets Manager client for one `secrets:` entry. */
class AwsSecretsBackend implements SecretBackend {
  /** Which candidate name exists, per (path, field); kept for the backend's lifetime. */
  private readonly names = new Map<string, string>();

  constructor(
    private readonly client: SecretsManagerClient,
    private readonly versionStage: string,
    private readonly logger: Logger,
  ) {}

  private static key(req: SecretRequest): string {
    return `${req.path}\n${req.field}`;
  }

  /** Candidates with the remembered name first, the rest longest first. */
  private ordered(req: SecretRequest): Candidate[] {
    const all = candidates(req);
    const known = this.names.get(AwsSecretsBackend.key(req));
    const hit = known === undefined ? undefined : all.find((c) => c.name === known);
    return hit ? [hit, ...all.filter((c) => c !== hit)] : all;
  }

  private async fetch(name: string, versionId: string | undefined): Promise<FetchedSecret | typeof NOT_FOUND> {
    try {
      return await this.client.send(new (awsSdk().GetSecretValueCommand)(versionId !== undefined ? { SecretId: name, VersionId: versionId } : { SecretId: name, VersionStage: this.versionStage }));
    } catch (err) {
      if (MISSING_ERRORS.has(errorType(err))) return NOT_FOUND;
      throw failure('GetSecretValue', name, err);
    }
  }

  async get(req: SecretRequest): Promise<SecretValue | undefined> {
    const key = AwsSecretsBackend.key(req);
    for (const c of this.ordered(req)) {
      const secret = await this.fetch(c.name, req.version);
      if (secret === NOT_FOUND) {
        // a remembered name that went away: forget it and walk the others from the longest
        if (this.names.get(key) === c.name) this.names.delete(key);
        continue;
      }
      this.names.set(key, c.name);
      return extractValue(secret, c.fieldPath);
    }
    return undefined;
  }

  async getMany(reqs: readonly SecretRequest[]): Promise<Array<SecretValue | undefined | Error>> {
    const out = new Array<SecretValue | undefined | Error>(reqs.length).fill(undefined);
    const fallback: number[] = [];
    let walking: Array<{ i: number; cands: Candidate[]; at: number }> = [];
    reqs.forEach((req, i) => {
      // BatchGetSecretValue reads AWSCURRENT only
      if (req.version !== undefined || this.versionStage !== DEFAULT_VERSION_STAGE) fallback.push(i);
      else walking.push({ i, cands: this.ordered(req), at: 0 });
    });
    // one batch round per name length: every reference still walking asks for its next candidate
    while (walking.length > 0) {
      const { found, missing } = await this.batch([...new Set(walking.map((w) => w.cands[w.at].name))]);
      const still: typeof walking = [];
      for (const w of walking) {
        const c = w.cands[w.at];
        const key = AwsSecretsBackend.key(reqs[w.i]);
        const secret = found.get(c.name);
        if (secret) {
          this.names.set(key, c.name);
          out[w.i] = extractValue(secret, c.fieldPath);
        } else if (missing.has(c.name)) {
          if (this.names.get(key) === c.name) this.names.delete(key);
          if (++w.at < w.cands.length) still.push(w);
        } else {
          fallback.push(w.i);
        }
      }
      walking = still;
    }
    if (fallback.length > 0) this.logger.debug({ provider: 'aws', references: fallback.length }, 'reading references one by one with GetSecretValue');
    await mapLimit(fallback, BATCH_CONCURRENCY, async (i) => {
      try {
        out[i] = await this.get(reqs[i]);
      } catch (err) {
        out[i] = err instanceof Error ? err : new Error(String(err));
      }
    });
    return out;
  }

  /** BatchGetSecretValue over `names` in chunks of 20; names it could not answer are in neither result. */
  private async batch(names: readonly string[]): Promise<{ found: Map<string, FetchedSecret>; missing: Set<string> }> {
    const found = new Map<string, FetchedSecret>();
    const missing = new Set<string>();
    const chunks: string[][] = [];
    for (let i = 0; i < names.length; i += BATCH_SIZE) chunks.push(names.slice(i, i + BATCH_SIZE));
    await mapLimit(chunks, BATCH_CONCURRENCY, async (chunk) => {
      const asked = new Set(chunk);
      let nextToken: string | undefined;
      try {
        do {
          const res = await this.client.send(new (awsSdk().BatchGetSecretValueCommand)({ SecretIdList: chunk, NextToken: nextToken }));
          for (const v of res.SecretValues ?? []) if (v.Name !== undefined && asked.has(v.Name)) found.set(v.Name, v);
          for (const e of res.Errors ?? []) {
            if (e.SecretId !== undefined && asked.has(e.SecretId) && MISSING_ERRORS.has(e.ErrorCode ?? '')) missing.add(e.SecretId);
          }
          nextToken = res.NextToken;
        } while (nextToken);
      } catch (err) {
        // e.g. no secretsmanager:BatchGetSecretValue permission: these names go one by one
        this.logger.debug({ provider: 'aws', secrets: chunk.length, error: errorType(err) }, 'BatchGetSecretValue failed');
      }
    });
    return { found, missing };
  }

  close(): void {
    this.client.destroy();
  }
}

function configError(field: string, message: string): Error {
  return new Error(`${field}: ${message}`);
}

async function createAwsBackend(config: Readonly<AwsConfig>, services: ProviderServices): Promise<SecretBackend> {
  const hasKey = config.access_key_id !== undefined;
  const hasSecret = config.secret_access_key !== undefined;
  if (hasKey !== hasSecret) throw configError(hasKey ? 'secret_access_key' : 'access_key_id', 'access_key_id and secret_access_key must be set together');
  if (config.session_token !== undefined && !hasKey) throw configError('session_token', 'needs access_key_id and secret_access_key');
  if (config.endpoint_url !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(config.endpoint_url);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw configError('endpoint_url', 'must be an http:// or https:// URL');
  }
  const timeoutMs = Math.round((config.timeout ?? DEFAULT_TIMEOUT_SECONDS) * 1000);
  const clientConfig: SecretsManagerClientConfig = {
    maxAttempts: config.max_attempts ?? DEFAULT_MAX_ATTEMPTS,
    retryMode: 'standard',
    requestHandler: { requestTimeout: timeoutMs, connectionTimeout: timeoutMs, throwOnRequestTimeout: true },
    ...(config.region !== undefined ? { region: config.region } : {}),
    ...(config.endpoint_url !== undefined ? { endpoint: config.endpoint_url } : {}),
    ...(hasKey
      ? {
          credentials: {
            accessKeyId: config.access_key_id!,
            secretAccessKey: config.secret_access_key!,
            ...(config.session_token !== undefined ? { sessionToken: config.session_token } : {}),
          },
        }
      : {}),
  };
  const client = new (awsSdk().SecretsManagerClient)(clientConfig);
  if (config.region === undefined) {
    // fail at load, not on the first reference, when the SDK cannot find a region either
    let region: string | undefined;
    try {
      region = await client.config.region();
    } catch {
      region = undefined;
    }
    if (!region) {
      client.destroy();
      throw configError('region', 'no region: set "region" in this secrets entry or AWS_REGION in the environment');
    }
  }
  return new AwsSecretsBackend(client, config.version_stage ?? DEFAULT_VERSION_STAGE, services.logger.child({ provider: 'aws' }));
}

/**
 * The `aws` secret provider: `$secret://aws/<id>/<secret-name>/<json-field>[#<VersionId>]`.
 * `create` builds one SDK client per `secrets:` entry; it throws an Error starting with the field at
 * fault (`region: …`, `endpoint_url: …`, `secret_access_key: …`) when the entry cannot work.
 * @example
 * // gatehouse.yaml
 * // secrets:
 * //   - id: aws/prod
 * //     region: eu-west-1
 * // consumers: [{ username: jack, plugins: { key-auth: { key: $secret://aws/prod/gateway/jack/auth-key } } }]
 */
export default defineProvider<AwsConfig>({
  name: 'aws',
  version: '1.0.0',
  schema,
  create: createAwsBackend,
  access: awsAccess,
});

/** The name the SDK's default credential chain (environment, shared files, instance role) is bound by. */
export const DEFAULT_CHAIN = 'aws:default-credential-chain';

/**
 * Where an aws resource sends its credentials: `endpoint_url`, or the public Secrets Manager
 * endpoint of its region (AWS's own, whichever region: the environment's when the entry names none).
 * Without keys in the entry the SDK's default credential chain signs the calls: that credential is
 * bound too.
 */
export function awsAccess(config: Readonly<AwsConfig>): { destination: string; implicitCredential?: string } {
  const literal = config.region !== undefined && !config.region.startsWith('$') ? config.region : undefined;
  const region = literal ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  // a region is a host label (the SDK refuses anything else): never let one spell another host here
  const endpoint = region && /^[a-z0-9-]+$/i.test(region) ? `https://secretsmanager.${region.toLowerCase()}.amazonaws.com` : 'https://secretsmanager.amazonaws.com';
  const destination = config.endpoint_url ?? endpoint;
  return config.access_key_id === undefined ? { destination, implicitCredential: DEFAULT_CHAIN } : { destination };
}
