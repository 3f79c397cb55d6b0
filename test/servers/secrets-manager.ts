// A protocol-faithful AWS Secrets Manager test server (awsJson1_1, SigV4-verified, fault injection): library and CLI.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomInt, randomUUID } from 'node:crypto';
import { verifySigV4, type SigV4Credentials } from './sigv4';
import { plantCanary } from '../helpers/leak-tap';

/** The operations this server implements. */
export const SUPPORTED_OPERATIONS = [
  'CreateSecret',
  'PutSecretValue',
  'GetSecretValue',
  'BatchGetSecretValue',
  'DescribeSecret',
  'UpdateSecretVersionStage',
  'DeleteSecret',
  'RestoreSecret',
  'ListSecrets',
] as const;
/** Name of one supported operation (the part after `secretsmanager.` in X-Amz-Target). */
export type SecretsManagerOperation = (typeof SUPPORTED_OPERATIONS)[number];

/** Options of `startSecretsManagerServer`. */
export interface SecretsManagerServerOptions {
  /** Default 0 (any free port). */
  readonly port?: number;
  /** Default `127.0.0.1`. */
  readonly host?: string;
  /** The single accepted key id when `credentials` is not given; default `test`. */
  readonly accessKeyId?: string;
  /** Its secret key; default `test`. */
  readonly secretAccessKey?: string;
  /** Region of the credential scope and of ARNs; default `us-east-1`. */
  readonly region?: string;
  /** Every accepted key pair (replaces accessKeyId/secretAccessKey); a session token is then required. */
  readonly credentials?: ReadonlyArray<SigV4Credentials>;
  /** Account id in ARNs; default `123456789012`. */
  readonly accountId?: string;
}

/** Faults injected into the next calls (applied after authentication, as AWS throttles callers it knows). */
export interface SecretsManagerFaults {
  /** Delay before every response, in ms; default 0. */
  latencyMs: number;
  /** The next `n` calls answer 400 ThrottlingException "Rate exceeded". */
  throttleNext(n: number): void;
  /** The next `n` calls answer 500 InternalServiceError (default) or 503 ServiceUnavailable. */
  failNext(n: number, status?: 500 | 503): void;
  /** Remove every pending fault and the latency. */
  clear(): void;
}

/** One answered call, in the order answers were sent (for asserting on retries and backoff). */
export interface SecretsManagerCall {
  /** The operation from X-Amz-Target, if any. */
  readonly op: string | undefined;
  readonly status: number;
  /** `__type` of an error answer (`ThrottlingException`, ...); undefined for a success. */
  readonly error: string | undefined;
  /** ms since epoch when the answer was sent. */
  readonly at: number;
}

/** A running server. State (secrets, counters) survives `stop()`/`start()`. */
export interface SecretsManagerServer {
  /** `http://host:port` — the SDK's `endpoint`. */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly region: string;
  readonly accountId: string;
  readonly faults: SecretsManagerFaults;
  /** Calls received for an operation (every attempt, failed ones included), or all calls without `op`. */
  count(op?: string): number;
  /** Every answered call (attempts included), in answer order; dropped connections are not in it. */
  calls(): readonly SecretsManagerCall[];
  /** Zero every counter and forget the calls. */
  resetCounts(): void;
  /** Stop listening and drop every connection (in-flight requests get no answer); keeps state. */
  stop(): Promise<void>;
  /** Listen again on the same host and port. */
  start(): Promise<void>;
  /** Stop for good. */
  close(): Promise<void>;
}

interface Version {
  readonly id: string;
  readonly string?: string;
  readonly binary?: Buffer;
  readonly created: number;
  readonly stages: Set<string>;
}

interface Secret {
  readonly name: string;
  readonly arn: string;
  readonly description?: string;
  readonly kmsKeyId?: string;
  readonly tags: ReadonlyArray<{ Key: string; Value: string }>;
  readonly created: number;
  lastChanged: number;
  lastAccessed?: number;
  deletedDate?: number;
  readonly versions: Map<string, Version>;
}

type Json = Record<string, unknown>;

/** A modelled AWS error: status, `__type` and message. */
class AwsError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const CURRENT = 'AWSCURRENT';
const PREVIOUS = 'AWSPREVIOUS';
const NOT_FOUND = "Secrets Manager can't find the specified secret.";
const MARKED_FOR_DELETION = "You can't perform this operation on the secret because it was marked for deletion.";
const NAME_RE = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
const FILTER_KEYS = ['description', 'name', 'tag-key', 'tag-value', 'primary-region', 'owning-service', 'all'];
const MAX_BODY = 1024 * 1024;
const ARN_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

const notFound = (message = NOT_FOUND) => new AwsError(400, 'ResourceNotFoundException', message);
const invalidParameter = (message: string) => new AwsError(400, 'InvalidParameterException', message);
const invalidRequest = (message: string) => new AwsError(400, 'InvalidRequestException', message);
const validation = (member: string, constraint: string, value = 'null') =>
  new AwsError(400, 'ValidationException', `1 validation error detected: Value ${value} at '${member}' failed to satisfy constraint: ${constraint}`);

/** Epoch seconds with milliseconds, the awsJson timestamp form. */
const epoch = (ms: number) => ms / 1000;

function str(input: Json, member: string, required: true): string;
function str(input: Json, member: string, required?: false): string | undefined;
function str(input: Json, member: string, required = false): string | undefined {
  const v = input[member];
  if (v === undefined || v === null) {
    if (required) throw validation(lowerFirst(member), 'Member must not be null');
    return undefined;
  }
  if (typeof v !== 'string') throw new AwsError(400, 'SerializationException', `Expected a string for ${member}`);
  return v;
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** The fields of a JSON SecretString (the product resolves them one by one), else nothing. */
function jsonFields(s: string): unknown {
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return undefined;
  }
}

/** SecretString or SecretBinary of a request (never both, as AWS). */
function secretValue(input: Json): { string?: string; binary?: Buffer } | undefined {
  const s = str(input, 'SecretString');
  const b = str(input, 'SecretBinary');
  if (s !== undefined && b !== undefined) throw invalidParameter("You can't specify both a binary secret value and a string secret value in the same secret.");
  if (s !== undefined) {
    plantCanary('secrets manager test server: SecretString', s, jsonFields(s));
    if (s.length > 65536) throw validation('secretString', 'Member must have length less than or equal to 65536', "'***'");
    return { string: s };
  }
  if (b !== undefined) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b)) throw new AwsError(400, 'SerializationException', 'SecretBinary must be base64');
    const buf = Buffer.from(b, 'base64');
    plantCanary('secrets manager test server: SecretBinary', b, Buffer.from(buf.toString('utf8'), 'utf8').equals(buf) ? buf.toString('utf8') : undefined);
    if (buf.length > 65536) throw validation('secretBinary', 'Member must have length less than or equal to 65536', "'***'");
    return { binary: buf };
  }
  return undefined;
}

function clientRequestToken(input: Json): string {
  const t = str(input, 'ClientRequestToken');
  // the SDKs always fill it in; a raw caller that does not gets one, as the CLI does
  if (t === undefined) return randomUUID();
  if (t.length < 32 || t.length > 64) throw validation('clientRequestToken', `Member must have length ${t.length < 32 ? 'greater than or equal to 32' : 'less than or equal to 64'}`, `'${t}'`);
  return t;
}

function sameValue(v: Version, value: { string?: string; binary?: Buffer }): boolean {
  if (value.string !== undefined) return v.string === value.string;
  return v.binary !== undefined && value.binary !== undefined && v.binary.equals(value.binary);
}

/** The in-memory service: secrets, versions, staging labels, and the operations on them. */
class Store {
  private readonly secrets = new Map<string, Secret>();

  constructor(
    private readonly region: string,
    private readonly accountId: string,
  ) {}

  private arnPrefix(): string {
    return `arn:aws:secretsmanager:${this.region}:${this.accountId}:secret:`;
  }

  /** A secret by name, full ARN or partial ARN (no random suffix); deleted ones included. */
  private find(id: string): Secret | undefined {
    const byName = this.secrets.get(id);
    if (byName) return byName;
    if (!id.startsWith('arn:')) return undefined;
    for (const s of this.secrets.values()) if (s.arn === id) return s;
    const prefix = this.arnPrefix();
    return id.startsWith(prefix) ? this.secrets.get(id.slice(prefix.length)) : undefined;
  }

  private mustFind(input: Json): Secret {
    const s = this.find(str(input, 'SecretId', true));
    if (!s) throw notFound();
    return s;
  }

  private mustFindLive(input: Json): Secret {
    const s = this.mustFind(input);
    if (s.deletedDate !== undefined) throw invalidRequest(MARKED_FOR_DELETION);
    return s;
  }

  private holder(s: Secret, stage: string): Version | undefined {
    for (const v of s.versions.values()) if (v.stages.has(stage)) return v;
    return undefined;
  }

  /** Attach `stage` to `to`, taking it from whichever version has it; moving AWSCURRENT leaves AWSPREVIOUS behind. */
  private attach(s: Secret, stage: string, to: Version): void {
    const from = this.holder(s, stage);
    if (from === to) return;
    from?.stages.delete(stage);
    to.stages.add(stage);
    if (stage === CURRENT && from) {
      this.holder(s, PREVIOUS)?.stages.delete(PREVIOUS);
      from.stages.add(PREVIOUS);
    }
  }

  private addVersion(s: Secret, id: string, value: { string?: string; binary?: Buffer }, stages: readonly string[]): Version {
    const v: Version = { id, ...value, created: Date.now(), stages: new Set() };
    s.versions.set(id, v);
    for (const stage of stages) this.attach(s, stage, v);
    s.lastChanged = Date.now();
    return v;
  }

  private valueFields(s: Secret, v: Version): Json {
    return {
      ARN: s.arn,
      Name: s.name,
      VersionId: v.id,
      ...(v.string !== undefined ? { SecretString: v.string } : { SecretBinary: v.binary!.toString('base64') }),
      VersionStages: [...v.stages],
      CreatedDate: epoch(v.created),
    };
  }

  private touch(s: Secret): void {
    // AWS records access to the day
    const d = new Date();
    s.lastAccessed = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  }

  CreateSecret(input: Json): Json {
    const name = str(input, 'Name', true);
    if (!NAME_RE.test(name)) throw invalidParameter('Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!');
    const value = secretValue(input);
    const token = clientRequestToken(input);
    const existing = this.secrets.get(name);
    if (existing) {
      if (existing.deletedDate !== undefined) throw invalidRequest("You can't create this secret because a secret with this name is already scheduled for deletion.");
      const same = existing.versions.get(token);
      // a retried CreateSecret (same token, same value) is a no-op, as the token's documentation says
      if (same && value && sameValue(same, value)) return { ARN: existing.arn, Name: name, VersionId: same.id };
      if (same) throw new AwsError(400, 'ResourceExistsException', "You can't modify an existing version, you can only create a new version.");
      throw new AwsError(400, 'ResourceExistsException', `The operation failed because the secret ${name} already exists.`);
    }
    let suffix = '';
    for (let i = 0; i < 6; i++) suffix += ARN_CHARS[randomInt(ARN_CHARS.length)];
    const tags = Array.isArray(input.Tags) ? (input.Tags as Array<{ Key: string; Value: string }>).map((t) => ({ Key: String(t.Key), Value: String(t.Value ?? '') })) : [];
    const now = Date.now();
    const s: Secret = {
      name,
      arn: `${this.arnPrefix()}${name}-${suffix}`,
      description: str(input, 'Description'),
      kmsKeyId: str(input, 'KmsKeyId'),
      tags,
      created: now,
      lastChanged: now,
      versions: new Map(),
    };
    this.secrets.set(name, s);
    if (!value) return { ARN: s.arn, Name: name };
    const v = this.addVersion(s, token, value, [CURRENT]);
    return { ARN: s.arn, Name: name, VersionId: v.id };
  }

  PutSecretValue(input: Json): Json {
    const s = this.mustFindLive(input);
    const value = secretValue(input);
    if (!value) throw invalidParameter('You must provide either SecretString or SecretBinary.');
    const token = clientRequestToken(input);
    const stages = input.VersionStages === undefined ? [CURRENT] : stringList(input.VersionStages, 'versionStages');
    const existing = s.versions.get(token);
    if (existing) {
      // idempotent retry: same token and same value change nothing
      if (!sameValue(existing, value)) throw new AwsError(400, 'ResourceExistsException', "You can't modify an existing version, you can only create a new version.");
      return { ARN: s.arn, Name: s.name, VersionId: existing.id, VersionStages: [...existing.stages] };
    }
    const v = this.addVersion(s, token, value, stages);
    return { ARN: s.arn, Name: s.name, VersionId: v.id, VersionStages: [...v.stages] };
  }

  GetSecretValue(input: Json): Json {
    const s = this.mustFindLive(input);
    const versionId = str(input, 'VersionId');
    const stage = str(input, 'VersionStage');
    let v: Version | undefined;
    if (versionId !== undefined) {
      v = s.versions.get(versionId);
      if (!v) throw notFound(`Secrets Manager can't find the specified secret value for VersionId: ${versionId}`);
      if (stage !== undefined && !v.stages.has(stage)) throw invalidRequest('You provided a VersionStage that is not associated to the provided VersionId.');
    } else {
      v = this.holder(s, stage ?? CURRENT);
      if (!v) throw notFound(`Secrets Manager can't find the specified secret value for staging label: ${stage ?? CURRENT}`);
    }
    this.touch(s);
    return this.valueFields(s, v);
  }

  BatchGetSecretValue(input: Json): Json {
    const hasList = input.SecretIdList !== undefined && input.SecretIdList !== null;
    const hasFilters = input.Filters !== undefined && input.Filters !== null;
    if (hasList === hasFilters) throw invalidParameter('You must include Filters or SecretIdList, but not both.');
    if (hasList) {
      const ids = stringList(input.SecretIdList, 'secretIdList');
      if (ids.length < 1 || ids.length > 20) throw validation('secretIdList', `Member must have length ${ids.length < 1 ? 'greater than or equal to 1' : 'less than or equal to 20'}`, '[...]');
      if (input.MaxResults !== undefined) throw invalidParameter('MaxResults can only be used with Filters.');
      const values: Json[] = [];
      const errors: Json[] = [];
      for (const id of ids) {
        const s = this.find(id);
        const current = s && this.holder(s, CURRENT);
        if (!s) errors.push({ SecretId: id, ErrorCode: 'ResourceNotFoundException', Message: NOT_FOUND });
        else if (s.deletedDate !== undefined) errors.push({ SecretId: id, ErrorCode: 'InvalidRequestException', Message: MARKED_FOR_DELETION });
        else if (!current) errors.push({ SecretId: id, ErrorCode: 'ResourceNotFoundException', Message: `Secrets Manager can't find the specified secret value for staging label: ${CURRENT}` });
        else {
          this.touch(s);
          values.push(this.valueFields(s, current));
        }
      }
      return { SecretValues: values, Errors: errors };
    }
    const matched = this.filtered(input.Filters, false).filter((s) => this.holder(s, CURRENT));
    const { page, next } = paginate(matched, input, 20);
    const values = page.map((s) => {
      this.touch(s);
      return this.valueFields(s, this.holder(s, CURRENT)!);
    });
    return { SecretValues: values, Errors: [], ...(next ? { NextToken: next } : {}) };
  }

  DescribeSecret(input: Json): Json {
    const s = this.mustFind(input);
    return { ...this.summary(s), VersionIdsToStages: this.versionsToStages(s) };
  }

  private versionsToStages(s: Secret): Record<string, string[]> {
    // versions without labels are deprecated and not listed
    const out: Record<string, string[]> = {};
    for (const v of s.versions.values()) if (v.stages.size > 0) out[v.id] = [...v.stages];
    return out;
  }

  private summary(s: Secret): Json {
    return {
      ARN: s.arn,
      Name: s.name,
      ...(s.description !== undefined ? { Description: s.description } : {}),
      ...(s.kmsKeyId !== undefined ? { KmsKeyId: s.kmsKeyId } : {}),
      RotationEnabled: false,
      LastChangedDate: epoch(s.lastChanged),
      ...(s.lastAccessed !== undefined ? { LastAccessedDate: epoch(s.lastAccessed) } : {}),
      ...(s.deletedDate !== undefined ? { DeletedDate: epoch(s.deletedDate) } : {}),
      ...(s.tags.length > 0 ? { Tags: s.tags } : {}),
      CreatedDate: epoch(s.created),
    };
  }

  UpdateSecretVersionStage(input: Json): Json {
    const s = this.mustFindLive(input);
    const stage = str(input, 'VersionStage', true);
    const moveTo = str(input, 'MoveToVersionId');
    const removeFrom = str(input, 'RemoveFromVersionId');
    if (moveTo === undefined && removeFrom === undefined) throw invalidParameter('You must specify MoveToVersionId, RemoveFromVersionId, or both.');
    for (const id of [moveTo, removeFrom]) {
      if (id !== undefined && !s.versions.has(id)) throw notFound(`Secrets Manager can't find the specified secret version: ${id}`);
    }
    const holder = this.holder(s, stage);
    if (removeFrom !== undefined && holder?.id !== removeFrom) throw invalidParameter(`The staging label ${stage} is not attached to version ${removeFrom}.`);
    if (moveTo !== undefined) {
      if (holder && holder.id !== moveTo && removeFrom === undefined) {
        throw invalidParameter(`The parameter RemoveFromVersionId can't be empty. Staging label ${stage} is currently attached to version ${holder.id}, so you must explicitly reference that version in RemoveFromVersionId.`);
      }
      this.attach(s, stage, s.versions.get(moveTo)!);
    } else {
      if (stage === CURRENT) throw invalidParameter(`You can't remove the staging label ${CURRENT} from a version without moving it to another version.`);
      holder!.stages.delete(stage);
    }
    s.lastChanged = Date.now();
    return { ARN: s.arn, Name: s.name };
  }

  DeleteSecret(input: Json): Json {
    const id = str(input, 'SecretId', true);
    const force = input.ForceDeleteWithoutRecovery === true;
    const windowDays = input.RecoveryWindowInDays;
    if (force && windowDays !== undefined && windowDays !== null) throw invalidParameter("You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.");
    const s = this.find(id);
    if (force) {
      // forcing the deletion of a missing secret is not an error, as documented
      if (s) this.secrets.delete(s.name);
      return { ...(s ? { ARN: s.arn } : {}), Name: s?.name ?? id, DeletionDate: epoch(Date.now()) };
    }
    const days = windowDays === undefined || windowDays === null ? 30 : windowDays;
    if (typeof days !== 'number' || !Number.isInteger(days) || days < 7 || days > 30) throw invalidParameter('The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).');
    if (!s) throw notFound();
    if (s.deletedDate !== undefined) throw invalidRequest(MARKED_FOR_DELETION);
    s.deletedDate = Date.now();
    s.lastChanged = s.deletedDate;
    return { ARN: s.arn, Name: s.name, DeletionDate: epoch(s.deletedDate + days * 86400_000) };
  }

  RestoreSecret(input: Json): Json {
    const s = this.mustFind(input);
    s.deletedDate = undefined;
    s.lastChanged = Date.now();
    return { ARN: s.arn, Name: s.name };
  }

  ListSecrets(input: Json): Json {
    const includeDeleted = input.IncludePlannedDeletion === true;
    let list = input.Filters === undefined || input.Filters === null ? [...this.secrets.values()].filter((s) => includeDeleted || s.deletedDate === undefined) : this.filtered(input.Filters, includeDeleted);
    if (input.SortOrder === 'desc') list = list.reverse();
    const { page, next } = paginate(list, input, 100);
    return { SecretList: page.map((s) => ({ ...this.summary(s), SecretVersionsToStages: this.versionsToStages(s) })), ...(next ? { NextToken: next } : {}) };
  }

  /** Secrets matching every filter (a filter matches when one of its values does; `!value` excludes). */
  private filtered(filters: unknown, includeDeleted: boolean): Secret[] {
    if (!Array.isArray(filters)) throw new AwsError(400, 'SerializationException', 'Filters must be a list');
    const parsed = filters.map((f: any, i: number) => {
      if (!FILTER_KEYS.includes(f?.Key)) throw validation(`filters.${i + 1}.member.key`, `Member must satisfy enum value set: [${FILTER_KEYS.join(', ')}]`, `'${String(f?.Key)}'`);
      const values = stringList(f.Values, `filters.${i + 1}.member.values`);
      if (values.length < 1 || values.length > 10) throw validation(`filters.${i + 1}.member.values`, 'Member must have length between 1 and 10', '[...]');
      return { key: f.Key as string, values };
    });
    return [...this.secrets.values()].filter(
      (s) => (includeDeleted || s.deletedDate === undefined) && parsed.every((f) => filterMatches(s, f.key, f.values)),
    );
  }
}

function filterMatches(s: Secret, key: string, values: readonly string[]): boolean {
  const attrs = (): string[] => {
    switch (key) {
      case 'name':
        return [s.name];
      case 'description':
        return s.description !== undefined ? [s.description.toLowerCase()] : [];
      case 'tag-key':
        return s.tags.map((t) => t.Key);
      case 'tag-value':
        return s.tags.map((t) => t.Value);
      case 'all':
        return [s.name, s.description ?? '', ...s.tags.flatMap((t) => [t.Key, t.Value])].flatMap((a) => a.toLowerCase().split(/[\s/]+/).concat(a.toLowerCase()));
      default:
        // primary-region and owning-service: this server has no replicas and no managed secrets
        return [];
    }
  };
  const a = attrs();
  const hit = (v: string): boolean => {
    if (key === 'all') return v.toLowerCase().split(/\s+/).filter(Boolean).every((w) => a.some((x) => x.startsWith(w)));
    const needle = key === 'description' ? v.toLowerCase() : v;
    return a.some((x) => x.startsWith(needle));
  };
  const negative = values.filter((v) => v.startsWith('!')).map((v) => v.slice(1));
  const positive = values.filter((v) => !v.startsWith('!'));
  if (negative.some(hit)) return false;
  return positive.length === 0 || positive.some(hit);
}

function stringList(v: unknown, member: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new AwsError(400, 'SerializationException', `Expected a list of strings for ${member}`);
  return v as string[];
}

/** One page of `items` by MaxResults/NextToken (an opaque offset). */
function paginate<T>(items: readonly T[], input: Json, maxAllowed: number): { page: T[]; next?: string } {
  const max = input.MaxResults === undefined || input.MaxResults === null ? maxAllowed : input.MaxResults;
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > maxAllowed) throw validation('maxResults', `Member must have value between 1 and ${maxAllowed}`, String(max));
  let offset = 0;
  if (input.NextToken !== undefined && input.NextToken !== null) {
    const m = typeof input.NextToken === 'string' ? /^o:(\d+)$/.exec(Buffer.from(input.NextToken, 'base64').toString('utf8')) : null;
    if (!m) throw new AwsError(400, 'InvalidNextTokenException', 'The NextToken value is invalid.');
    offset = Number(m[1]);
  }
  const page = items.slice(offset, offset + max);
  const end = offset + page.length;
  return { page, ...(end < items.length ? { next: Buffer.from(`o:${end}`, 'utf8').toString('base64') } : {}) };
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks)));
    req.on('error', () => resolve(undefined));
  });
}

function send(res: ServerResponse, status: number, body: Json, errorType?: string): void {
  if (res.destroyed || res.writableEnded) return;
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/x-amz-json-1.1');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  if (errorType) res.setHeader('x-amzn-ErrorType', errorType);
  res.end(text);
}

function sendError(res: ServerResponse, e: AwsError): void {
  send(res, e.status, { __type: e.type, message: e.message }, e.type);
}

/**
 * Start a Secrets Manager test server on node:http. Every call is `POST /` with awsJson 1.1 and a
 * SigV4 signature that is verified for real; errors are AWS's (`{"__type","message"}` plus
 * `x-amzn-ErrorType`), and every response carries `x-amzn-RequestId`.
 * @param opts port (default 0), host (default 127.0.0.1), credentials (default test/test), region (default us-east-1)
 * @example
 * const sm = await startSecretsManagerServer();
 * const client = new SecretsManagerClient({ region: sm.region, endpoint: sm.url, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
 * sm.faults.throttleNext(2);
 * await sm.close();
 */
export async function startSecretsManagerServer(opts: SecretsManagerServerOptions = {}): Promise<SecretsManagerServer> {
  const host = opts.host ?? '127.0.0.1';
  const region = opts.region ?? 'us-east-1';
  const accountId = opts.accountId ?? '123456789012';
  const keys = new Map<string, SigV4Credentials>();
  for (const c of opts.credentials ?? [{ accessKeyId: opts.accessKeyId ?? 'test', secretAccessKey: opts.secretAccessKey ?? 'test' }]) {
    plantCanary('secrets manager test server: credential', c.secretAccessKey, c.sessionToken);
    keys.set(c.accessKeyId, c);
  }
  const store = new Store(region, accountId);
  const counts = new Map<string, number>();
  let total = 0;
  const answered: SecretsManagerCall[] = [];
  let throttles = 0;
  let failures: Array<500 | 503> = [];
  const sleeping = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();

  const faults: SecretsManagerFaults = {
    latencyMs: 0,
    throttleNext(n) {
      throttles += n;
    },
    failNext(n, status = 500) {
      for (let i = 0; i < n; i++) failures.push(status);
    },
    clear() {
      throttles = 0;
      failures = [];
      faults.latencyMs = 0;
    },
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          sleeping.delete(entry);
          resolve();
        }, ms),
        wake: resolve,
      };
      sleeping.add(entry);
    });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('x-amzn-RequestId', randomUUID());
    const body = await readBody(req);
    const target = req.headers['x-amz-target'];
    const op = typeof target === 'string' && target.startsWith('secretsmanager.') ? target.slice('secretsmanager.'.length) : undefined;
    total++;
    if (op) counts.set(op, (counts.get(op) ?? 0) + 1);
    if (faults.latencyMs > 0) await sleep(faults.latencyMs);
    if (res.destroyed) return;
    // recorded when the answer is decided, so a fault set meanwhile is seen in order
    const record = (status: number, error?: string) => answered.push({ op, status, error, at: Date.now() });
    try {
      if (body === undefined) throw new AwsError(413, 'RequestEntityTooLargeException', 'Request body is too large.');
      if (req.method !== 'POST' || (req.url ?? '/').split('?')[0] !== '/') throw new AwsError(404, 'UnknownOperationException', 'This service accepts only POST /.');
      const auth = verifySigV4({ method: req.method, url: req.url ?? '/', headers: req.headersDistinct, body }, { service: 'secretsmanager', region, lookup: (id) => keys.get(id) });
      if (!auth.ok) throw new AwsError(auth.status, auth.type, auth.message);
      if (!op || !(SUPPORTED_OPERATIONS as readonly string[]).includes(op)) throw new AwsError(400, 'UnknownOperationException', `Unknown operation ${typeof target === 'string' ? target : '(no X-Amz-Target)'}.`);
      const contentType = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (contentType !== 'application/x-amz-json-1.1') throw new AwsError(400, 'SerializationException', `Unsupported Content-Type '${contentType}'; expected application/x-amz-json-1.1.`);
      let input: unknown;
      try {
        input = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
      } catch {
        throw new AwsError(400, 'SerializationException', 'The request body is not valid JSON.');
      }
      if (!input || typeof input !== 'object' || Array.isArray(input)) throw new AwsError(400, 'SerializationException', 'The request body must be a JSON object.');
      if (throttles > 0) {
        throttles--;
        throw new AwsError(400, 'ThrottlingException', 'Rate exceeded');
      }
      const failure = failures.shift();
      if (failure === 503) throw new AwsError(503, 'ServiceUnavailable', 'The request has failed due to a temporary failure of the server.');
      if (failure === 500) throw new AwsError(500, 'InternalServiceError', 'An error occurred on the server side.');
      const out = (store as unknown as Record<string, (i: Json) => Json>)[op](input as Json);
      record(200);
      send(res, 200, out);
    } catch (e) {
      const err = e instanceof AwsError ? e : new AwsError(500, 'InternalFailure', 'The request processing has failed because of an unknown error, exception or failure.');
      record(err.status, err.type);
      sendError(res, err);
    }
  }

  const server: Server = createServer((req, res) => void handle(req, res));
  let listening = false;
  let closed = false;
  let port = opts.port ?? 0;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        port = (server.address() as AddressInfo).port;
        listening = true;
        resolve();
      });
    });

  const stop = async () => {
    if (!listening) return;
    listening = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    for (const s of sleeping) {
      clearTimeout(s.timer);
      s.wake();
    }
    sleeping.clear();
    await closed;
  };

  await listen();
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    get url() {
      return `http://${urlHost}:${port}`;
    },
    get port() {
      return port;
    },
    host,
    region,
    accountId,
    faults,
    count: (op?: string) => (op === undefined ? total : counts.get(op) ?? 0),
    calls: () => answered,
    resetCounts() {
      counts.clear();
      total = 0;
      answered.length = 0;
    },
    stop,
    start: async () => {
      if (closed) throw new Error('the server was closed');
      if (!listening) await listen();
    },
    close: async () => {
      closed = true;
      await stop();
    },
  };
}

/** Parse `--name value` pairs of the CLI. */
function parseArgs(argv: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"`);
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      out[a.slice(2)] = argv[++i];
    }
  }
  return out;
}

async function main(): Promise<void> {
  let args: Record<string, string>;
  try {
    args = parseArgs(process.argv.slice(2));
    for (const k of Object.keys(args)) if (!['port', 'host', 'access-key-id', 'secret-access-key', 'region'].includes(k)) throw new Error(`unknown option --${k}`);
  } catch (e) {
    process.stderr.write(`secrets-manager: ${(e as Error).message}\nusage: secrets-manager [--port 4566] [--host 127.0.0.1] [--access-key-id test] [--secret-access-key test] [--region us-east-1]\n`);
    process.exit(2);
  }
  const port = Number(args.port ?? 4566);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`secrets-manager: --port must be 0-65535\n`);
    process.exit(2);
  }
  const sm = await startSecretsManagerServer({ port, host: args.host, accessKeyId: args['access-key-id'], secretAccessKey: args['secret-access-key'], region: args.region });
  process.stdout.write(`secrets-manager test server listening on ${sm.url} (region ${sm.region})\n`);
  const shutdown = () => {
    sm.close().then(() => process.exit(0));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

if (require.main === module) {
  main().catch((e: Error) => {
    process.stderr.write(`secrets-manager: ${e.message}\n`);
    process.exit(1);
  });
}
