// A HashiCorp Vault test server on node:http (library and CLI) speaking Vault's wire protocol, with fault injection.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createPublicKey, randomBytes, randomUUID, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Duplex } from 'node:stream';
import { plantCanary } from '../helpers/leak-tap';

// ---------------------------------------------------------------------------------------------
// public surface

/** Options of {@link startVaultServer}. */
export interface VaultServerOptions {
  /** Port to listen on; default 0 (a free port). */
  port?: number;
  /** Address to listen on; default `127.0.0.1`. */
  host?: string;
  /** Id of the root token; default a random `hvs.` token. */
  rootToken?: string;
  /** Serve HTTPS with this PEM key and certificate instead of HTTP. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** The system max lease TTL in seconds (Vault's `max_lease_ttl` server setting); default 2764800 (768h). */
  maxLeaseTtl?: number;
}

/** Faults applied to every request while set; change them at any time. */
export interface VaultFaults {
  /** Milliseconds added before every response; default 0. */
  latencyMs: number;
  /** When set (e.g. 500, 503), every request is answered with this status and a Vault error body. */
  status?: number;
}

/** One request as the server saw it. */
export interface VaultRequestRecord {
  readonly method: string;
  /** Path after `/v1/`, without the query, as sent (namespace path prefix included). */
  readonly path: string;
  /** The `X-Vault-Namespace` header, if any. */
  readonly namespace?: string;
  /** Whether a token was sent (the token itself is not kept). */
  readonly hasToken: boolean;
}

/** A live token, as listed by {@link VaultServer.tokens}. */
export interface VaultTokenInfo {
  readonly token: string;
  readonly accessor: string;
  /** The path that issued it: `auth/token/create`, `auth/approle/login`, ... */
  readonly path: string;
  readonly policies: readonly string[];
  /** Namespace path (`''` for the root namespace, `ns1/` for a child). */
  readonly namespace: string;
  /** Expiry in ms since epoch on the server's clock; 0 = never. */
  readonly expireAt: number;
}

/** A running test Vault. */
export interface VaultServer {
  /** `http://127.0.0.1:<port>` (or https). */
  readonly url: string;
  readonly port: number;
  readonly rootToken: string;
  readonly faults: VaultFaults;
  readonly sealed: boolean;
  /** Every request seen so far, in order. */
  readonly requests: readonly VaultRequestRecord[];
  /**
   * Number of requests whose path (after `/v1/`) starts with `pathPrefix`, optionally of one method.
   * @example server.count('auth/token/renew-self')
   */
  count(pathPrefix: string, method?: string): number;
  /** Seal: every path but sys/health and sys/seal-status answers 503 `Vault is sealed`. */
  seal(): void;
  unseal(): void;
  /** Revoke a token (and its children) as `auth/token/revoke` would. @returns whether it existed */
  revokeToken(token: string): boolean;
  /** The live tokens (root token included). */
  tokens(): VaultTokenInfo[];
  /** Move the server's clock forward (token and secret-id expiry, timestamps). */
  advanceClock(ms: number): void;
  /** Stop listening and drop every connection; state is kept. */
  stop(): Promise<void>;
  /** Listen again on the same port after {@link stop}. */
  start(): Promise<void>;
  /** Stop for good. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// constants and small helpers

/** Vault's default and maximum lease TTL (768h), used for mounts and tokens. */
const SYSTEM_TTL = 2764800;
const VAULT_VERSION = '1.17.2';
const KV_DEFAULT_MAX_VERSIONS = 10;
const INVALID_TOKEN = '2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n';
const ALL_CAPS = ['create', 'read', 'update', 'delete', 'list', 'sudo', 'deny', 'patch', 'subscribe', 'recover'] as const;

type Cap = (typeof ALL_CAPS)[number];
type Op = 'read' | 'list' | 'create' | 'update' | 'delete' | 'patch';
type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

class VaultHttpError extends Error {
  constructor(
    readonly status: number,
    readonly errors: string[],
  ) {
    super(errors[0] ?? `status ${status}`);
  }
}

const bad = (msg: string) => new VaultHttpError(400, [msg]);
const denied = () => new VaultHttpError(403, ['permission denied']);
const notFound = () => new VaultHttpError(404, []);
const unsupported = () => new VaultHttpError(405, ['unsupported operation']);

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function randomId(n: number): string {
  const b = randomBytes(n);
  let s = '';
  for (let i = 0; i < n; i++) s += BASE62[b[i] % 62];
  return s;
}
const newToken = () => `hvs.${randomId(24)}`;

/** Go's RFC3339Nano: fraction without trailing zeros. */
function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.?0+Z$/, 'Z');
}

/** Go's JSON for map-shaped data: keys in byte order, `<>&` escaped as encoding/json does. */
function goJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(goJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${goJson(k)}:${goJson(o[k])}`).join(',')}}`;
}

/** An object with fixed field order (a Go struct): values go through goJson. */
function goStruct(fields: Array<[string, unknown]>): string {
  return `{${fields.map(([k, v]) => `${JSON.stringify(k)}:${v instanceof RawJson ? v.text : goJson(v)}`).join(',')}}`;
}
class RawJson {
  constructor(readonly text: string) {}
}

const GO_UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/** Vault's duration fields: integer seconds, "90", "1h30m", "10s", "2d". @returns seconds */
function parseDuration(v: unknown, field: string): number {
  if (v === undefined || v === null || v === '') return 0;
  if (typeof v === 'number' && Number.isFinite(v)) return Math.floor(v);
  if (typeof v === 'string') {
    const s = v.trim();
    if (/^-?\d+$/.test(s)) return parseInt(s, 10);
    const days = /^(\d+)d$/.exec(s);
    if (days) return parseInt(days[1], 10) * 86400;
    if (/^((\d+(\.\d+)?)(ns|us|µs|ms|s|m|h))+$/.test(s)) {
      let total = 0;
      for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += parseFloat(m[1]) * GO_UNITS[m[2]];
      return Math.floor(total);
    }
  }
  throw bad(`error converting input ${String(v)} for field "${field}": time: invalid duration "${String(v)}"`);
}

/** Go's time.Duration string for whole seconds: 3700 → "1h1m40s". */
function fmtDuration(sec: number): string {
  if (sec === 0) return '0s';
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}

/** Vault's comma-string-slice fields: an array, or "a,b". */
function strList(v: unknown): string[] {
  if (v === undefined || v === null || v === '') return [];
  if (Array.isArray(v)) return v.map((x) => String(x).trim()).filter(Boolean);
  return String(v)
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

function bool(v: unknown, dflt: boolean): boolean {
  if (v === undefined || v === null || v === '') return dflt;
  if (typeof v === 'boolean') return v;
  return ['1', 't', 'true', 'True', 'TRUE'].includes(String(v));
}

function int(v: unknown, field: string, dflt = 0): number {
  if (v === undefined || v === null || v === '') return dflt;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n)) throw bad(`error converting input ${String(v)} for field "${field}"`);
  return n;
}

/** Sorted, de-duplicated policy names, with `default` unless told otherwise (root tokens never get it). */
function policySet(names: string[], addDefault: boolean): string[] {
  const s = new Set(names.map((n) => n.trim().toLowerCase()).filter(Boolean));
  if (addDefault && !s.has('root')) s.add('default');
  return [...s].sort();
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---------------------------------------------------------------------------------------------
// ACL policies: a small parser for Vault's HCL policy syntax (and its JSON form), and matching

interface PolicyRule {
  readonly pattern: string;
  readonly caps: ReadonlySet<Cap>;
}
interface Policy {
  readonly name: string;
  readonly text: string;
  readonly rules: readonly PolicyRule[];
}

type HclTok = { t: 'str' | 'id' | '{' | '}' | '[' | ']' | '=' | ',' | ':'; v: string; line: number };
type HclValue = string | HclValue[] | { [k: string]: HclValue };

function hclTokens(src: string): HclTok[] {
  const out: HclTok[] = [];
  let i = 0;
  let line = 1;
  while (i < src.length) {
    const c = src[i];
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') i++;
    else if (c === '#' || (c === '/' && src[i + 1] === '/')) {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end < 0) throw new Error(`unterminated comment on line ${line}`);
      line += src.slice(i, end).split('\n').length - 1;
      i = end + 2;
    } else if (c === '"') {
      let s = '';
      i++;
      while (i < src.length && src[i] !== '"') {
        if (src[i] === '\n') throw new Error(`unterminated string on line ${line}`);
        if (src[i] === '\\' && i + 1 < src.length) {
          const e = src[i + 1];
          s += e === 'n' ? '\n' : e === 't' ? '\t' : e;
          i += 2;
        } else s += src[i++];
      }
      if (i >= src.length) throw new Error(`unterminated string on line ${line}`);
      i++;
      out.push({ t: 'str', v: s, line });
    } else if ('{}[]=,:'.includes(c)) {
      out.push({ t: c as HclTok['t'], v: c, line });
      i++;
    } else if (/[A-Za-z0-9_.\-]/.test(c)) {
      let s = '';
      while (i < src.length && /[A-Za-z0-9_.\-]/.test(src[i])) s += src[i++];
      out.push({ t: 'id', v: s, line });
    } else throw new Error(`illegal char ${JSON.stringify(c)} on line ${line}`);
  }
  return out;
}

/** Parses `key = value` / `key "label" { ... }` bodies into plain values (labels become nested keys). */
class HclParser {
  private pos = 0;
  constructor(private readonly toks: HclTok[]) {}

  private peek(): HclTok | undefined {
    return this.toks[this.pos];
  }
  private next(what: string): HclTok {
    const t = this.toks[this.pos++];
    if (!t) throw new Error(`unexpected end of input, expected ${what}`);
    return t;
  }
  private expect(type: HclTok['t']): HclTok {
    const t = this.next(type);
    if (t.t !== type) throw new Error(`expected ${type} on line ${t.line}, got ${JSON.stringify(t.v)}`);
    return t;
  }

  /** Statements until `}` (or end of input at the top level). */
  body(top: boolean): Array<{ key: string; labels: string[]; value: HclValue; line: number }> {
    const out: Array<{ key: string; labels: string[]; value: HclValue; line: number }> = [];
    for (;;) {
      const t = this.peek();
      if (!t) {
        if (top) return out;
        throw new Error('unexpected end of input, expected }');
      }
      if (t.t === '}') {
        if (top) throw new Error(`unexpected } on line ${t.line}`);
        this.pos++;
        return out;
      }
      if (t.t !== 'id' && t.t !== 'str') throw new Error(`unexpected ${JSON.stringify(t.v)} on line ${t.line}`);
      this.pos++;
      const labels: string[] = [];
      while (this.peek()?.t === 'str') labels.push(this.next('label').v);
      const n = this.next('= or {');
      if (n.t === '=' || n.t === ':') out.push({ key: t.v, labels, value: this.value(), line: t.line });
      else if (n.t === '{') out.push({ key: t.v, labels, value: this.object(), line: t.line });
      else throw new Error(`expected = or { on line ${n.line}`);
      if (this.peek()?.t === ',') this.pos++;
    }
  }

  private object(): { [k: string]: HclValue } {
    const o: { [k: string]: HclValue } = {};
    for (const s of this.body(false)) o[[s.key, ...s.labels].join('/')] = s.value;
    return o;
  }

  private value(): HclValue {
    const t = this.next('a value');
    if (t.t === 'str' || t.t === 'id') return t.v;
    if (t.t === '{') return this.object();
    if (t.t === '[') {
      const list: HclValue[] = [];
      for (;;) {
        if (this.peek()?.t === ']') {
          this.pos++;
          return list;
        }
        list.push(this.value());
        const sep = this.next(', or ]');
        if (sep.t === ']') return list;
        if (sep.t !== ',') throw new Error(`expected , or ] on line ${sep.line}`);
      }
    }
    throw new Error(`unexpected ${JSON.stringify(t.v)} on line ${t.line}`);
  }
}

/** The legacy `policy = "read"` shorthand. */
const LEGACY_POLICY: Record<string, Cap[]> = {
  deny: ['deny'],
  read: ['read', 'list'],
  write: ['create', 'read', 'update', 'delete', 'list'],
  sudo: ['create', 'read', 'update', 'delete', 'list', 'sudo'],
};

function ruleFrom(pattern: string, body: Record<string, unknown>): PolicyRule {
  const caps = new Set<Cap>();
  const list = body.capabilities;
  if (list !== undefined) {
    if (!Array.isArray(list)) throw new Error(`path ${JSON.stringify(pattern)}: capabilities must be a list`);
    for (const c of list) {
      if (!(ALL_CAPS as readonly string[]).includes(String(c))) throw new Error(`path ${JSON.stringify(pattern)}: invalid capability ${JSON.stringify(c)}`);
      caps.add(c as Cap);
    }
  }
  if (body.policy !== undefined) {
    const legacy = LEGACY_POLICY[String(body.policy)];
    if (!legacy) throw new Error(`path ${JSON.stringify(pattern)}: invalid policy ${JSON.stringify(body.policy)}`);
    for (const c of legacy) caps.add(c);
  }
  return { pattern: pattern.replace(/^\/+/, ''), caps };
}

/**
 * Parse a policy document: Vault's HCL syntax (`path "kv/data/+/x*" { capabilities = ["read"] }`) or its
 * JSON form (`{"path": {"kv/*": {"capabilities": ["read"]}}}`).
 * @throws Error with a parse message
 */
export function parsePolicy(name: string, text: string): Policy {
  const rules: PolicyRule[] = [];
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const doc = JSON.parse(trimmed) as Record<string, unknown>;
    for (const [k, v] of Object.entries(doc)) {
      if (k === 'name') continue;
      if (k !== 'path') throw new Error(`invalid key ${JSON.stringify(k)}`);
      const entries = Array.isArray(v) ? v.flatMap((x) => Object.entries(x as object)) : Object.entries(v as object);
      for (const [p, body] of entries) rules.push(ruleFrom(p, (body ?? {}) as Record<string, unknown>));
    }
  } else {
    for (const s of new HclParser(hclTokens(text)).body(true)) {
      if (s.key === 'name' && s.labels.length === 0) continue;
      if (s.key !== 'path') throw new Error(`invalid key ${JSON.stringify(s.key)} on line ${s.line}`);
      if (s.labels.length !== 1 || !isObject(s.value)) throw new Error(`path on line ${s.line} needs one quoted path and a { } block`);
      rules.push(ruleFrom(s.labels[0], s.value as Record<string, unknown>));
    }
  }
  return { name, text, rules };
}

const DEFAULT_POLICY_TEXT = `# Allow tokens to look up, renew and revoke themselves
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/revoke-self" {
  capabilities = ["update"]
}
# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
  capabilities = ["update"]
}
# Mount and KV version detection (Vault answers it for any path the token can reach)
path "sys/internal/ui/mounts" {
  capabilities = ["read"]
}
path "sys/internal/ui/mounts/*" {
  capabilities = ["read"]
}
`;

function hasGlob(p: string): boolean {
  return p.endsWith('*');
}

/** Whether a policy path pattern matches a request path (`*` suffix glob, `+` one whole segment). */
function patternMatches(pattern: string, path: string): boolean {
  const glob = hasGlob(pattern);
  const pat = glob ? pattern.slice(0, -1) : pattern;
  if (!glob && !pat.includes('+')) return pat === path;
  const ps = pat.split('/');
  const ss = path.split('/');
  if (!glob) return ps.length === ss.length && ps.every((p, i) => p === '+' || p === ss[i]);
  if (ss.length < ps.length) return false;
  const last = ps.length - 1;
  for (let i = 0; i < last; i++) if (ps[i] !== '+' && ps[i] !== ss[i]) return false;
  // the glob's last segment is a prefix of the path's segment at that position
  if (ps[last] === '+') return true;
  return ss[last].startsWith(ps[last]);
}

/** Vault's documented priority between two matching patterns: true when `a` loses to `b`. */
function lowerPriority(a: string, b: string): boolean {
  const firstWild = (p: string) => {
    const i = p.search(/[+*]/);
    return i < 0 ? Infinity : i;
  };
  const wa = firstWild(a);
  const wb = firstWild(b);
  if (wa !== wb) return wa < wb;
  if (hasGlob(a) !== hasGlob(b)) return hasGlob(a);
  const plus = (p: string) => p.split('/').filter((s) => s === '+').length;
  if (plus(a) !== plus(b)) return plus(a) > plus(b);
  if (a.length !== b.length) return a.length < b.length;
  return a < b;
}

/** The merged rules of a token's policies. */
class Acl {
  private readonly rules = new Map<string, Set<Cap>>();
  readonly root: boolean;

  constructor(policies: readonly Policy[], root: boolean) {
    this.root = root;
    for (const p of policies) {
      for (const r of p.rules) {
        const caps = this.rules.get(r.pattern) ?? new Set<Cap>();
        for (const c of r.caps) caps.add(c);
        this.rules.set(r.pattern, caps);
      }
    }
  }

  /** The capabilities on one path: an exact rule wins, else the highest-priority wildcard rule. */
  capabilities(path: string): Set<Cap> {
    if (this.root) return new Set<Cap>(['create', 'read', 'update', 'delete', 'list', 'sudo', 'patch']);
    let best: string | undefined;
    for (const pattern of this.rules.keys()) {
      const wild = hasGlob(pattern) || pattern.split('/').includes('+');
      if (!wild) {
        if (pattern === path) return this.rules.get(pattern) as Set<Cap>;
        continue;
      }
      if (!patternMatches(pattern, path)) continue;
      if (best === undefined || lowerPriority(best, pattern)) best = pattern;
    }
    return best === undefined ? new Set() : (this.rules.get(best) as Set<Cap>);
  }

  allows(path: string, op: Op, sudo = false): boolean {
    if (this.root) return true;
    const caps = this.capabilities(path);
    if (caps.has('deny')) return false;
    return caps.has(op) && (!sudo || caps.has('sudo'));
  }

  /** Whether any rule could grant something under a mount (Vault's hasMountAccess). */
  reachesMount(mountPath: string): boolean {
    if (this.root) return true;
    const ms = mountPath.replace(/\/$/, '').split('/');
    for (const [pattern, caps] of this.rules) {
      if (!caps.size || caps.has('deny')) continue;
      const glob = hasGlob(pattern);
      const ps = (glob ? pattern.slice(0, -1) : pattern).split('/');
      let ok = true;
      if (!glob && ps.length <= ms.length) ok = false;
      for (let i = 0; ok && i < Math.min(ps.length, ms.length); i++) {
        const partial = glob && i === ps.length - 1;
        if (ps[i] === '+') continue;
        ok = partial ? ms[i].startsWith(ps[i]) : ps[i] === ms[i];
      }
      if (ok) return true;
    }
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// state

interface Kv2Version {
  created: number;
  /** ms since epoch; 0 = not deleted */
  deletion: number;
  destroyed: boolean;
  data: JsonObject | null;
}
interface Kv2Secret {
  versions: Map<number, Kv2Version>;
  current: number;
  oldest: number;
  created: number;
  updated: number;
  maxVersions: number;
  casRequired: boolean;
  customMetadata: Record<string, string> | null;
  deleteVersionAfter: number;
}
interface SecretMount {
  path: string;
  type: 'kv';
  version: 1 | 2;
  options: Record<string, string> | null;
  accessor: string;
  uuid: string;
  description: string;
  defaultLeaseTtl: number;
  maxLeaseTtl: number;
  kv1: Map<string, JsonObject>;
  kv2: Map<string, Kv2Secret>;
  kv2Config: { maxVersions: number; casRequired: boolean; deleteVersionAfter: number };
}
interface AppRole {
  name: string;
  roleId: string;
  bindSecretId: boolean;
  secretIdTtl: number;
  secretIdNumUses: number;
  tokenTtl: number;
  tokenMaxTtl: number;
  tokenPolicies: string[];
  tokenNumUses: number;
  tokenNoDefaultPolicy: boolean;
  tokenExplicitMaxTtl: number;
}
interface SecretIdEntry {
  role: string;
  accessor: string;
  created: number;
  expireAt: number;
  usesLeft: number;
  metadata: Record<string, string>;
}
interface K8sRole {
  name: string;
  names: string[];
  namespaces: string[];
  audience: string;
  tokenPolicies: string[];
  tokenTtl: number;
  tokenMaxTtl: number;
  tokenNoDefaultPolicy: boolean;
  tokenNumUses: number;
}
interface AuthMount {
  path: string;
  type: 'token' | 'approle' | 'kubernetes';
  accessor: string;
  uuid: string;
  description: string;
  roles: Map<string, AppRole>;
  secretIds: Map<string, SecretIdEntry>;
  k8sConfig?: { host: string; pemKeys: string[]; keys: KeyObject[]; issuer: string; disableIss: boolean };
  k8sRoles: Map<string, K8sRole>;
}
interface Namespace {
  /** '' for the root namespace, 'ns1/' or 'ns1/ns2/' for children. */
  path: string;
  id: string;
  parent?: Namespace;
  children: Map<string, Namespace>;
  mounts: Map<string, SecretMount>;
  auths: Map<string, AuthMount>;
  policies: Map<string, Policy>;
  customMetadata: Record<string, string>;
}
interface TokenEntry {
  id: string;
  accessor: string;
  ns: Namespace;
  policies: string[];
  parent?: string;
  children: Set<string>;
  orphan: boolean;
  path: string;
  displayName: string;
  meta: Record<string, string> | null;
  created: number;
  creationTtl: number;
  /** ms since epoch; 0 = never */
  expireAt: number;
  /** ms since epoch; 0 = none */
  maxExpireAt: number;
  explicitMaxTtl: number;
  renewable: boolean;
  numUses: number;
  /** Default renewal increment (s): the TTL it was issued with. */
  period: number;
  lastRenewal: number;
  authType: string;
}

function newNamespace(path: string, parent?: Namespace): Namespace {
  const ns: Namespace = {
    path,
    id: parent ? randomId(5) : 'root',
    parent,
    children: new Map(),
    mounts: new Map(),
    auths: new Map(),
    policies: new Map(),
    customMetadata: {},
  };
  ns.policies.set('default', parsePolicy('default', DEFAULT_POLICY_TEXT));
  return ns;
}

function newKvMount(path: string, version: 1 | 2, options: Record<string, string> | null, description: string, defaultLeaseTtl: number, maxLeaseTtl: number): SecretMount {
  return {
    path,
    type: 'kv',
    version,
    options,
    accessor: `kv_${randomBytes(4).toString('hex')}`,
    uuid: randomUUID(),
    description,
    defaultLeaseTtl,
    maxLeaseTtl,
    kv1: new Map(),
    kv2: new Map(),
    kv2Config: { maxVersions: 0, casRequired: false, deleteVersionAfter: 0 },
  };
}

function newAuthMount(path: string, type: AuthMount['type'], description: string): AuthMount {
  return { path, type, accessor: `auth_${type}_${randomBytes(4).toString('hex')}`, uuid: randomUUID(), description, roles: new Map(), secretIds: new Map(), k8sRoles: new Map() };
}

// ---------------------------------------------------------------------------------------------
// responses

interface EnvelopeReply {
  kind: 'envelope';
  status?: number;
  data?: unknown;
  auth?: RawJson;
  warnings?: string[];
  leaseDuration?: number;
  renewable?: boolean;
}
type Reply = { kind: 'empty' } | EnvelopeReply | { kind: 'raw'; status: number; body: string };

const EMPTY: Reply = { kind: 'empty' };
const ok = (data: unknown, extra: Partial<EnvelopeReply> = {}): EnvelopeReply => ({ kind: 'envelope', data, ...extra });

function envelopeText(r: EnvelopeReply, mountType: string): string {
  return goStruct([
    ['request_id', randomUUID()],
    ['lease_id', ''],
    ['renewable', r.renewable ?? false],
    ['lease_duration', r.leaseDuration ?? 0],
    ['data', r.data ?? null],
    ['wrap_info', null],
    ['warnings', r.warnings && r.warnings.length ? r.warnings : null],
    ['auth', r.auth ?? null],
    ['mount_type', mountType],
  ]);
}

// ---------------------------------------------------------------------------------------------
// the server

interface Ctx {
  method: 'GET' | 'LIST' | 'POST' | 'DELETE' | 'PATCH' | 'HEAD';
  op: Op;
  ns: Namespace;
  /** Path relative to the namespace, no leading slash. */
  path: string;
  query: URLSearchParams;
  body: Record<string, unknown>;
  rawBody: string;
  contentType: string;
  token?: TokenEntry;
  now: number;
}

interface Route {
  run(ctx: Ctx): Reply;
  mountType: string;
  unauthenticated?: boolean;
  /** Write capability needed (create when the target does not exist). */
  writeOp?: 'create' | 'update';
  sudo?: boolean;
  /** The handler checks access itself (sys/internal/ui/mounts). */
  ownAcl?: boolean;
}

class VaultState {
  readonly root = newNamespace('');
  readonly tokens = new Map<string, TokenEntry>();
  readonly byAccessor = new Map<string, string>();
  sealed = false;
  clockOffset = 0;
  readonly clusterName = `vault-cluster-${randomBytes(4).toString('hex')}`;
  readonly clusterId = randomUUID();

  constructor(
    rootToken: string,
    readonly maxTtl = SYSTEM_TTL,
  ) {
    // as `vault server -dev`: a KV v2 engine at secret/
    this.root.mounts.set('secret/', newKvMount('secret/', 2, { version: '2' }, 'key/value secret storage', 0, 0));
    this.issueToken({ id: rootToken, ns: this.root, policies: ['root'], ttl: 0, maxTtl: 0, renewable: false, numUses: 0, path: 'auth/token/root', displayName: 'root', meta: null, orphan: true, authType: 'token' });
  }

  now(): number {
    return Date.now() + this.clockOffset;
  }

  // -- tokens --------------------------------------------------------------------------------

  issueToken(o: {
    id?: string;
    ns: Namespace;
    policies: string[];
    ttl: number;
    maxTtl: number;
    explicitMaxTtl?: number;
    renewable: boolean;
    numUses: number;
    path: string;
    displayName: string;
    meta: Record<string, string> | null;
    orphan: boolean;
    parent?: TokenEntry;
    authType: string;
  }): TokenEntry {
    const now = this.now();
    const root = o.policies.includes('root');
    let ttl = o.ttl;
    const sysMax = this.maxTtl;
    const max = Math.min(sysMax, o.explicitMaxTtl ? Math.min(o.explicitMaxTtl, o.maxTtl || sysMax) : o.maxTtl || sysMax);
    if (!root || ttl > 0) {
      if (ttl <= 0) ttl = Math.min(SYSTEM_TTL, sysMax);
      ttl = Math.min(ttl, max);
    }
    const t: TokenEntry = {
      id: o.id ?? newToken(),
      accessor: randomId(24),
      ns: o.ns,
      policies: o.policies,
      parent: o.parent?.id,
      children: new Set(),
      orphan: o.orphan,
      path: o.path,
      displayName: o.displayName,
      meta: o.meta,
      created: now,
      creationTtl: ttl,
      expireAt: ttl > 0 ? now + ttl * 1000 : 0,
      maxExpireAt: ttl > 0 ? now + max * 1000 : 0,
      explicitMaxTtl: o.explicitMaxTtl ?? 0,
      renewable: ttl > 0 && o.renewable,
      numUses: o.numUses,
      period: ttl,
      lastRenewal: 0,
      authType: o.authType,
    };
    plantCanary('vault test server: token', t.id);
    this.tokens.set(t.id, t);
    this.byAccessor.set(t.accessor, t.id);
    o.parent?.children.add(t.id);
    return t;
  }

  /** A live token, or undefined (expired tokens are revoked on sight). */
  liveToken(id: string | undefined): TokenEntry | undefined {
    if (!id) return undefined;
    const t = this.tokens.get(id);
    if (!t) return undefined;
    if (t.expireAt && this.now() >= t.expireAt) {
      this.revoke(t.id);
      return undefined;
    }
    return t;
  }

  revoke(id: string): boolean {
    const t = this.tokens.get(id);
    if (!t) return false;
    this.tokens.delete(id);
    this.byAccessor.delete(t.accessor);
    if (t.parent) this.tokens.get(t.parent)?.children.delete(id);
    for (const c of t.children) this.revoke(c);
    return true;
  }

  aclFor(t: TokenEntry): Acl {
    if (t.policies.includes('root')) return new Acl([], true);
    const policies = t.policies.map((p) => t.ns.policies.get(p)).filter((p): p is Policy => !!p);
    return new Acl(policies, false);
  }

  authBlock(t: TokenEntry, leaseDuration: number): RawJson {
    return new RawJson(
      goStruct([
        ['client_token', t.id],
        ['accessor', t.accessor],
        ['policies', t.policies],
        ['token_policies', t.policies],
        ['metadata', t.meta],
        ['lease_duration', leaseDuration],
        ['renewable', t.renewable],
        ['entity_id', ''],
        ['token_type', 'service'],
        ['orphan', t.orphan],
        ['mfa_requirement', null],
        ['num_uses', t.numUses],
      ]),
    );
  }

  ttlLeft(t: TokenEntry): number {
    return t.expireAt ? Math.max(0, Math.floor((t.expireAt - this.now()) / 1000)) : 0;
  }

  lookupData(t: TokenEntry): Record<string, unknown> {
    const d: Record<string, unknown> = {
      accessor: t.accessor,
      creation_time: Math.floor(t.created / 1000),
      creation_ttl: t.creationTtl,
      display_name: t.displayName,
      entity_id: '',
      expire_time: t.expireAt ? rfc3339(t.expireAt) : null,
      explicit_max_ttl: t.explicitMaxTtl,
      id: t.id,
      issue_time: rfc3339(t.created),
      meta: t.meta,
      num_uses: t.numUses,
      orphan: t.orphan,
      path: t.path,
      policies: t.policies,
      renewable: t.renewable,
      ttl: this.ttlLeft(t),
      type: 'service',
    };
    if (t.lastRenewal) {
      d.last_renewal = rfc3339(t.lastRenewal);
      d.last_renewal_time = Math.floor(t.lastRenewal / 1000);
    }
    if (t.ns.path) d.namespace_path = t.ns.path;
    return d;
  }

  renew(t: TokenEntry, incrementRaw: unknown): EnvelopeReply {
    if (!t.renewable) throw bad('lease is not renewable');
    const now = this.now();
    const asked = parseDuration(incrementRaw, 'increment') || t.period;
    let ttl = asked;
    const warnings: string[] = [];
    if (t.maxExpireAt) {
      const left = Math.max(0, Math.floor((t.maxExpireAt - now) / 1000));
      if (ttl > left) {
        warnings.push(`TTL of "${fmtDuration(asked)}" exceeded the effective max_ttl of "${fmtDuration(left)}"; TTL value is capped accordingly`);
        ttl = left;
      }
    }
    t.expireAt = now + ttl * 1000;
    t.lastRenewal = now;
    return ok(null, { auth: this.authBlock(t, ttl), warnings });
  }
}

// Node's HTTP parser only knows a fixed list of verbs and answers Vault's LIST with 400 before any
// handler runs. Each connection's bytes therefore pass through this framer, which finds request starts
// (after a head and its Content-Length or chunked body) and turns `LIST` into `LOCK` (same length, so
// nothing shifts); the handler reads LOCK as LIST. Every other byte is passed on untouched.
class ListVerbFramer {
  private state: 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'trailer' | 'raw' = 'head';
  private buf: Buffer = Buffer.alloc(0);
  private left = 0;

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let data = chunk;
    while (data.length) {
      if (this.state === 'raw') {
        out.push(data);
        break;
      }
      if (this.state === 'body' || this.state === 'chunk-data') {
        const n = Math.min(this.left, data.length);
        out.push(data.subarray(0, n));
        data = data.subarray(n);
        this.left -= n;
        if (!this.left) this.state = this.state === 'body' ? 'head' : 'chunk-size';
        continue;
      }
      this.buf = Buffer.concat([this.buf, data]);
      data = Buffer.alloc(0);
      if (this.state === 'head') {
        let skip = 0;
        while (this.buf[skip] === 0x0d || this.buf[skip] === 0x0a) skip++;
        const end = this.buf.indexOf('\r\n\r\n', skip);
        if (end < 0) {
          if (this.buf.length > 65536) this.flushRaw(out);
          break;
        }
        const head = this.buf.subarray(0, end + 4);
        data = this.buf.subarray(end + 4);
        this.buf = Buffer.alloc(0);
        // Buffer.concat always copies, so the head can be patched in place
        if (head.toString('latin1', skip, skip + 5) === 'LIST ') head.write('LOCK', skip, 'latin1');
        out.push(head);
        const text = head.toString('latin1').toLowerCase();
        if (/\r\ntransfer-encoding:[^\r\n]*chunked/.test(text)) this.state = 'chunk-size';
        else {
          this.left = parseInt(/\r\ncontent-length:[ \t]*(\d+)/.exec(text)?.[1] ?? '0', 10);
          this.state = this.left > 0 ? 'body' : 'head';
        }
        continue;
      }
      // chunk-size and trailer states work line by line
      const eol = this.buf.indexOf('\r\n');
      if (eol < 0) {
        if (this.buf.length > 65536) this.flushRaw(out);
        break;
      }
      const line = this.buf.subarray(0, eol + 2);
      data = this.buf.subarray(eol + 2);
      this.buf = Buffer.alloc(0);
      out.push(line);
      if (this.state === 'chunk-size') {
        const size = parseInt(line.toString('latin1').split(';')[0].trim(), 16);
        if (!Number.isFinite(size)) this.state = 'raw';
        else if (size === 0) this.state = 'trailer';
        else {
          this.left = size + 2;
          this.state = 'chunk-data';
        }
      } else if (line.length === 2) this.state = 'head';
    }
    return out;
  }

  /** Not HTTP as we know it: give up framing and let the HTTP parser reject it. */
  private flushRaw(out: Buffer[]): void {
    out.push(this.buf);
    this.buf = Buffer.alloc(0);
    this.state = 'raw';
  }
}

/** A Duplex over a raw (TCP or TLS) socket whose readable side goes through the LIST framer. */
function framedConnection(raw: Socket): Duplex {
  const framer = new ListVerbFramer();
  const conn = new Duplex({
    read() {
      raw.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      raw.write(chunk, cb);
    },
    final(cb) {
      raw.end();
      cb();
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  raw.on('data', (c: Buffer) => {
    for (const b of framer.push(c)) if (!conn.push(b)) raw.pause();
  });
  raw.on('end', () => conn.push(null));
  raw.on('close', () => conn.destroy());
  raw.on('error', () => conn.destroy());
  raw.on('timeout', () => conn.emit('timeout'));
  // what node:http asks of a socket beyond the stream interface
  Object.assign(conn, {
    remoteAddress: raw.remoteAddress,
    remotePort: raw.remotePort,
    remoteFamily: raw.remoteFamily,
    localAddress: raw.localAddress,
    localPort: raw.localPort,
    setTimeout(ms: number, cb?: () => void) {
      raw.setTimeout(ms);
      if (cb) conn.once('timeout', cb);
      return conn;
    },
    setNoDelay: (v?: boolean) => (raw.setNoDelay(v), conn),
    setKeepAlive: (v?: boolean, d?: number) => (raw.setKeepAlive(v, d), conn),
  });
  return conn;
}

/**
 * Start a test Vault (HTTP, or HTTPS with `tls`) on 127.0.0.1, port 0 unless told. State is in memory;
 * `secret/` is a KV v2 mount as in `vault server -dev`.
 * @example
 * const vault = await startVaultServer();
 * t.after(() => vault.close());
 * const client = NodeVault({ endpoint: vault.url, token: vault.rootToken });
 */
export async function startVaultServer(opts: VaultServerOptions = {}): Promise<VaultServer> {
  const host = opts.host ?? '127.0.0.1';
  const rootToken = opts.rootToken ?? newToken();
  const state = new VaultState(rootToken, opts.maxLeaseTtl);
  const faults: VaultFaults = { latencyMs: 0, status: undefined };
  const requests: VaultRequestRecord[] = [];
  const sockets = new Set<Socket>();
  const sleepers = new Set<() => void>();
  let closed = false;

  const http = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    handle(state, faults, requests, sleepers, req, res).catch((err: unknown) => {
      if (!res.headersSent) sendErrors(res, 500, [err instanceof Error ? err.message : String(err)], req.method === 'HEAD');
      else res.destroy();
    });
  });
  const accept = (raw: Socket) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => undefined);
    http.emit('connection', framedConnection(raw));
  };
  const listener: NetServer = opts.tls ? createTlsServer({ key: opts.tls.key, cert: opts.tls.cert }, accept) : createNetServer(accept);
  // a failed TLS handshake never reaches `accept`
  listener.on('tlsClientError', () => undefined);

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      listener.once('error', onError);
      listener.listen(port, host, () => {
        listener.off('error', onError);
        resolve((listener.address() as AddressInfo).port);
      });
    });
  const port = await listen(opts.port ?? 0);
  let listening = true;

  const stop = () =>
    new Promise<void>((resolve) => {
      if (!listening) return resolve();
      listening = false;
      for (const wake of sleepers) wake();
      for (const s of sockets) s.destroy();
      listener.close(() => resolve());
    });

  const scheme = opts.tls ? 'https' : 'http';
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `${scheme}://${urlHost}:${port}`,
    port,
    rootToken,
    faults,
    get sealed() {
      return state.sealed;
    },
    requests,
    count: (prefix, method) => requests.filter((r) => r.path.startsWith(prefix) && (!method || r.method === method.toUpperCase())).length,
    seal: () => {
      state.sealed = true;
    },
    unseal: () => {
      state.sealed = false;
    },
    revokeToken: (token) => state.revoke(token),
    tokens: () =>
      [...state.tokens.values()]
        .filter((t) => state.liveToken(t.id))
        .map((t) => ({ token: t.id, accessor: t.accessor, path: t.path, policies: [...t.policies], namespace: t.ns.path, expireAt: t.expireAt })),
    advanceClock: (ms) => {
      state.clockOffset += ms;
    },
    stop,
    start: async () => {
      if (closed) throw new Error('vault test server is closed');
      if (listening) return;
      await listen(port);
      listening = true;
    },
    close: async () => {
      closed = true;
      await stop();
      http.close();
    },
  };
}

function sendErrors(res: ServerResponse, status: number, errors: string[], head: boolean): void {
  const body = goJson({ errors });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, body: string, head: boolean): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const FAULT_TEXT: Record<number, string> = {
  429: 'rate limit quota exceeded',
  500: 'internal error',
  502: 'bad gateway',
  503: 'Vault is sealed',
  504: 'context deadline exceeded',
};

/** Paths whose body may be empty or not JSON at all (clients send nothing or junk). */
const BODY_OPTIONAL = new Set(['auth/token/renew-self', 'auth/token/revoke-self', 'auth/token/lookup-self']);

async function handle(state: VaultState, faults: VaultFaults, requests: VaultRequestRecord[], sleepers: Set<() => void>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://vault.invalid');
  const head = req.method === 'HEAD';
  const nsHeader = req.headers['x-vault-namespace'];
  const tokenHeader = (req.headers['x-vault-token'] as string | undefined) ?? /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
  const rawPath = url.pathname.startsWith('/v1/') ? url.pathname.slice(4) : url.pathname.replace(/^\/+/, '');
  // LOCK is what the framer made of LIST
  const verb = req.method === 'LOCK' ? 'LIST' : (req.method ?? 'GET');
  requests.push({ method: verb, path: rawPath, namespace: typeof nsHeader === 'string' ? nsHeader : undefined, hasToken: !!tokenHeader });
  plantCanary('vault test server: token presented', tokenHeader);

  const rawBody = await readBody(req);
  if (faults.latencyMs > 0) {
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, faults.latencyMs);
      sleepers.add(wake);
    });
    if (res.destroyed) return;
  }
  if (faults.status) return sendErrors(res, faults.status, [FAULT_TEXT[faults.status] ?? `status ${faults.status}`], head);
  if (!url.pathname.startsWith('/v1/')) return sendErrors(res, 404, [], head);

  let path: string;
  try {
    path = decodeURIComponent(rawPath).replace(/^\/+/, '');
  } catch {
    return sendErrors(res, 400, ['invalid URL escape'], head);
  }

  if (state.sealed && path !== 'sys/health' && path !== 'sys/seal-status') return sendErrors(res, 503, ['Vault is sealed'], head);

  let method: Ctx['method'];
  const m = verb.toUpperCase();
  const listParam = url.searchParams.get('list');
  if (m === 'GET' && listParam !== null && bool(listParam, false)) method = 'LIST';
  else if (m === 'PUT' || m === 'POST') method = 'POST';
  else if (m === 'GET' || m === 'LIST' || m === 'DELETE' || m === 'PATCH' || m === 'HEAD') method = m;
  else return sendErrors(res, 405, ['unsupported operation'], head);
  const op: Op = method === 'GET' || method === 'HEAD' ? 'read' : method === 'LIST' ? 'list' : method === 'DELETE' ? 'delete' : method === 'PATCH' ? 'patch' : 'update';

  try {
    // namespace: the header, then any leading path segments naming child namespaces
    let ns = state.root;
    if (typeof nsHeader === 'string' && nsHeader.replace(/^\/+|\/+$/g, '')) {
      for (const seg of nsHeader.replace(/^\/+|\/+$/g, '').split('/')) {
        const child = ns.children.get(seg);
        if (!child) throw new VaultHttpError(404, [`namespace not found: ${nsHeader}`]);
        ns = child;
      }
    }
    for (;;) {
      const seg = path.split('/')[0];
      const child = ns.children.get(seg);
      if (!child || !path.includes('/')) break;
      ns = child;
      path = path.slice(seg.length + 1);
    }

    let body: Record<string, unknown> = {};
    if ((method === 'POST' || method === 'PATCH') && rawBody.trim()) {
      try {
        const parsed = JSON.parse(rawBody) as unknown;
        if (isObject(parsed)) body = parsed;
        else if (!BODY_OPTIONAL.has(path)) throw bad('failed to parse JSON input: body must be a JSON object');
      } catch (e) {
        if (e instanceof VaultHttpError) throw e;
        if (!BODY_OPTIONAL.has(path)) throw bad(`failed to parse JSON input: ${(e as Error).message}`);
      }
    }
    const ctx: Ctx = { method, op, ns, path, query: url.searchParams, body, rawBody, contentType: String(req.headers['content-type'] ?? ''), now: state.now() };
    if (method === 'HEAD' && path !== 'sys/health') throw unsupported();

    const route = resolveRoute(state, ctx);
    if (!route?.unauthenticated) {
      // a token is needed: missing → permission denied; unknown/expired/revoked → invalid token
      if (!tokenHeader) throw denied();
      const t = state.liveToken(tokenHeader);
      if (!t) throw new VaultHttpError(403, [INVALID_TOKEN]);
      if (!ns.path.startsWith(t.ns.path)) throw denied();
      ctx.token = t;
      if (!route?.ownAcl) {
        const aclPath = ns.path.slice(t.ns.path.length) + path + (op === 'list' && !path.endsWith('/') ? '/' : '');
        const need: Op = op === 'update' ? (route?.writeOp ?? 'update') : op;
        if (!state.aclFor(t).allows(aclPath, need, route?.sudo)) throw denied();
      }
      if (t.numUses > 0) {
        t.numUses--;
        if (t.numUses === 0) state.revoke(t.id);
      }
    }
    if (!route) throw notFound();
    const reply = route.run(ctx);
    if (reply.kind === 'empty') {
      res.writeHead(204, { 'Cache-Control': 'no-store' });
      res.end();
    } else if (reply.kind === 'raw') sendJson(res, reply.status, reply.body, head);
    else sendJson(res, reply.status ?? 200, envelopeText(reply, route.mountType), head);
  } catch (e) {
    if (e instanceof VaultHttpError) return sendErrors(res, e.status, e.errors, head);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// routing

function resolveRoute(state: VaultState, ctx: Ctx): Route | undefined {
  const p = ctx.path.replace(/\/+$/, '');
  if (p === 'sys' || p.startsWith('sys/')) return sysRoute(state, ctx, p);
  if (p.startsWith('auth/token/')) return tokenRoute(state, ctx, p.slice('auth/token/'.length));
  if (p.startsWith('auth/')) {
    const rest = p.slice(5);
    let best: AuthMount | undefined;
    for (const a of ctx.ns.auths.values()) if ((rest + '/').startsWith(a.path) && (!best || a.path.length > best.path.length)) best = a;
    if (!best) return undefined;
    const sub = rest.slice(best.path.length);
    return best.type === 'approle' ? approleRoute(state, ctx, best, sub) : kubernetesRoute(state, ctx, best, sub);
  }
  const mount = findMount(ctx.ns, ctx.path);
  if (!mount) return undefined;
  return mount.version === 1 ? kv1Route(ctx, mount, ctx.path.slice(mount.path.length)) : kv2Route(ctx, mount, ctx.path.slice(mount.path.length));
}

function findMount(ns: Namespace, path: string): SecretMount | undefined {
  let best: SecretMount | undefined;
  for (const m of ns.mounts.values()) if ((path + '/').startsWith(m.path) && (!best || m.path.length > best.path.length)) best = m;
  return best;
}

const route = (mountType: string, run: (ctx: Ctx) => Reply, extra: Partial<Route> = {}): Route => ({ mountType, run, ...extra });

function methods(ctx: Ctx, handlers: Partial<Record<Ctx['method'], () => Reply>>): Reply {
  const h = handlers[ctx.method];
  if (!h) throw unsupported();
  return h();
}

function mountInfo(m: SecretMount): Record<string, unknown> {
  return {
    accessor: m.accessor,
    config: { default_lease_ttl: m.defaultLeaseTtl, force_no_cache: false, max_lease_ttl: m.maxLeaseTtl },
    description: m.description,
    external_entropy_access: false,
    local: false,
    options: m.options,
    plugin_version: '',
    running_plugin_version: `v0.19.0+builtin`,
    running_sha256: '',
    seal_wrap: false,
    type: m.type,
    uuid: m.uuid,
  };
}

function authInfo(a: AuthMount): Record<string, unknown> {
  return {
    accessor: a.accessor,
    config: { default_lease_ttl: 0, force_no_cache: false, max_lease_ttl: 0, token_type: 'default-service' },
    description: a.description,
    external_entropy_access: false,
    local: false,
    options: null,
    plugin_version: '',
    running_plugin_version: `v${VAULT_VERSION}+builtin.vault`,
    running_sha256: '',
    seal_wrap: false,
    type: a.type,
    uuid: a.uuid,
  };
}

const SYS_MOUNT_INFO = {
  accessor: 'system_0a1b2c3d',
  config: { default_lease_ttl: 0, force_no_cache: false, max_lease_ttl: 0, passthrough_request_headers: ['Accept'] },
  description: 'system endpoints used for control, policy and debugging',
  external_entropy_access: false,
  local: false,
  options: null,
  plugin_version: '',
  running_plugin_version: `v${VAULT_VERSION}+builtin.vault`,
  running_sha256: '',
  seal_wrap: true,
  type: 'system',
  uuid: '3c1f0e2a-0000-4000-8000-000000000001',
};
const TOKEN_AUTH_INFO = {
  accessor: 'auth_token_0a1b2c3d',
  config: { default_lease_ttl: 0, force_no_cache: false, max_lease_ttl: 0, token_type: 'default-service' },
  description: 'token based credentials',
  external_entropy_access: false,
  local: false,
  options: null,
  plugin_version: '',
  running_plugin_version: `v${VAULT_VERSION}+builtin.vault`,
  running_sha256: '',
  seal_wrap: false,
  type: 'token',
  uuid: '3c1f0e2a-0000-4000-8000-000000000002',
};

function normaliseMountPath(raw: string): string {
  const p = raw.replace(/^\/+|\/+$/g, '');
  if (!p) throw bad('path cannot be empty');
  return `${p}/`;
}

function mountConflict(ns: Namespace, path: string): string | undefined {
  for (const existing of ['sys/', 'auth/', 'cubbyhole/', 'identity/', ...ns.mounts.keys()]) if (path.startsWith(existing) || existing.startsWith(path)) return existing;
  for (const child of ns.children.keys()) if (path.startsWith(`${child}/`)) return `${child}/`;
  return undefined;
}

function sysRoute(state: VaultState, ctx: Ctx, p: string): Route | undefined {
  const ns = ctx.ns;
  if (p === 'sys/health') return route('system', (c) => health(state, c), { unauthenticated: true });
  if (p === 'sys/seal-status')
    return route('system', () => ({
      kind: 'raw',
      status: 200,
      body: goStruct([
        ['type', 'shamir'],
        ['initialized', true],
        ['sealed', state.sealed],
        ['t', 1],
        ['n', 1],
        ['progress', 0],
        ['nonce', ''],
        ['version', VAULT_VERSION],
        ['build_date', '2024-08-01T00:00:00Z'],
        ['migration', false],
        ...(state.sealed
          ? []
          : ([
              ['cluster_name', state.clusterName],
              ['cluster_id', state.clusterId],
            ] as Array<[string, unknown]>)),
        ['recovery_seal', false],
        ['storage_type', 'inmem'],
      ]),
    }), { unauthenticated: true });

  if (p === 'sys/mounts')
    return route('system', (c) =>
      methods(c, {
        GET: () => {
          const data: Record<string, unknown> = { 'sys/': SYS_MOUNT_INFO };
          for (const m of ns.mounts.values()) data[m.path] = mountInfo(m);
          return ok(data);
        },
      }),
    );
  if (p.startsWith('sys/mounts/')) {
    const mp = normaliseMountPath(p.slice('sys/mounts/'.length));
    return route('system', (c) =>
      methods(c, {
        GET: () => {
          const m = ns.mounts.get(mp);
          if (!m) throw bad(`No secret engine mount at ${mp}`);
          return ok(mountInfo(m));
        },
        POST: () => {
          let type = String(c.body.type ?? '');
          const options = isObject(c.body.options) ? Object.fromEntries(Object.entries(c.body.options).map(([k, v]) => [k, String(v)])) : null;
          if (!type) throw bad('backend type must be specified as a string');
          let version: 1 | 2 = 1;
          if (type === 'kv-v2') {
            type = 'kv';
            version = 2;
          } else if (type === 'generic') type = 'kv';
          if (type !== 'kv') throw bad(`plugin not found in the catalog: ${type}`);
          if (options?.version === '2') version = 2;
          const conflict = mountConflict(ns, mp);
          if (conflict) throw bad(`path is already in use at ${conflict}`);
          const cfg = isObject(c.body.config) ? c.body.config : {};
          const opts = version === 2 ? { ...(options ?? {}), version: '2' } : options;
          ns.mounts.set(mp, newKvMount(mp, version, opts, String(c.body.description ?? ''), parseDuration(cfg.default_lease_ttl, 'default_lease_ttl'), parseDuration(cfg.max_lease_ttl, 'max_lease_ttl')));
          return EMPTY;
        },
        DELETE: () => {
          ns.mounts.delete(mp);
          return EMPTY;
        },
      }),
    );
  }

  if (p === 'sys/auth')
    return route('system', (c) =>
      methods(c, {
        GET: () => {
          const data: Record<string, unknown> = { 'token/': TOKEN_AUTH_INFO };
          for (const a of ns.auths.values()) data[a.path] = authInfo(a);
          return ok(data);
        },
      }),
    );
  if (p.startsWith('sys/auth/')) {
    const ap = normaliseMountPath(p.slice('sys/auth/'.length));
    return route(
      'system',
      (c) =>
        methods(c, {
          POST: () => {
            const type = String(c.body.type ?? '');
            if (!type) throw bad('backend type must be specified as a string');
            if (type !== 'approle' && type !== 'kubernetes') throw bad(`plugin not found in the catalog: ${type}`);
            for (const existing of ['token/', ...ns.auths.keys()]) if (ap.startsWith(existing) || existing.startsWith(ap)) throw bad(`path is already in use at auth/${existing}`);
            ns.auths.set(ap, newAuthMount(ap, type, String(c.body.description ?? '')));
            return EMPTY;
          },
          DELETE: () => {
            ns.auths.delete(ap);
            return EMPTY;
          },
        }),
      { sudo: true },
    );
  }

  if (p === 'sys/policies/acl' || p === 'sys/policy') {
    const names = () => [...ns.policies.keys(), ...(ns.path ? [] : ['root'])].sort();
    return route('system', (c) =>
      c.method === 'LIST' ? ok({ keys: names() }) : c.method === 'GET' && p === 'sys/policy' ? ok({ keys: names(), policies: names() }) : methods(c, {}),
    );
  }
  const policyName = /^sys\/(policies\/acl|policy)\/(.+)$/.exec(p);
  if (policyName) {
    const name = policyName[2].toLowerCase();
    const legacy = policyName[1] === 'policy';
    return route('system', (c) =>
      methods(c, {
        GET: () => {
          if (name === 'root' && !ns.path) return ok(legacy ? { name, rules: '' } : { name, policy: '' });
          const pol = ns.policies.get(name);
          if (!pol) throw notFound();
          return ok(legacy ? { name, rules: pol.text } : { name, policy: pol.text });
        },
        POST: () => {
          if (name === 'root') throw bad('cannot update "root" policy');
          const text = c.body.policy ?? c.body.rules;
          if (typeof text !== 'string' || !text.trim()) throw bad("'policy' parameter not supplied or empty");
          let parsed: Policy;
          try {
            parsed = parsePolicy(name, text);
          } catch (e) {
            throw bad(`failed to parse policy: ${(e as Error).message}`);
          }
          ns.policies.set(name, parsed);
          return EMPTY;
        },
        DELETE: () => {
          if (name === 'root' || name === 'default') throw bad(`cannot delete "${name}" policy`);
          ns.policies.delete(name);
          return EMPTY;
        },
      }),
    );
  }

  if (p === 'sys/namespaces')
    return route('system', (c) =>
      methods(c, {
        LIST: () => {
          const keys = [...ns.children.keys()].sort().map((k) => `${k}/`);
          if (!keys.length) throw notFound();
          const info: Record<string, unknown> = {};
          for (const [k, child] of ns.children) info[`${k}/`] = { custom_metadata: child.customMetadata, id: child.id, path: child.path };
          return ok({ key_info: info, keys });
        },
      }),
    );
  if (p.startsWith('sys/namespaces/')) {
    const name = p.slice('sys/namespaces/'.length);
    return route('system', (c) =>
      methods(c, {
        GET: () => {
          const child = ns.children.get(name);
          if (!child) throw notFound();
          return ok({ custom_metadata: child.customMetadata, id: child.id, path: child.path });
        },
        POST: () => {
          if (!/^[A-Za-z0-9_.-]+$/.test(name) || name === 'sys' || name === 'auth') throw bad(`"${name}" is not a valid namespace name`);
          let child = ns.children.get(name);
          if (!child) {
            if (ns.mounts.has(`${name}/`)) throw bad(`path is already in use at ${name}/`);
            child = newNamespace(`${ns.path}${name}/`, ns);
            ns.children.set(name, child);
          }
          if (isObject(c.body.custom_metadata)) child.customMetadata = Object.fromEntries(Object.entries(c.body.custom_metadata).map(([k, v]) => [k, String(v)]));
          return ok({ custom_metadata: child.customMetadata, id: child.id, path: child.path });
        },
        DELETE: () => {
          ns.children.delete(name);
          for (const t of [...state.tokens.values()]) if (t.ns.path.startsWith(`${ns.path}${name}/`)) state.revoke(t.id);
          return EMPTY;
        },
      }),
    );
  }

  if (p === 'sys/internal/ui/mounts')
    return route(
      'system',
      (c) =>
        methods(c, {
          GET: () => {
            const acl = state.aclFor(c.token as TokenEntry);
            const secret: Record<string, unknown> = {};
            for (const m of ns.mounts.values()) if (acl.reachesMount(m.path)) secret[m.path] = mountInfo(m);
            const auth: Record<string, unknown> = {};
            for (const a of ns.auths.values()) if (acl.reachesMount(`auth/${a.path}`)) auth[a.path] = authInfo(a);
            return ok({ auth, secret });
          },
        }),
      { ownAcl: true },
    );
  if (p.startsWith('sys/internal/ui/mounts/'))
    return route(
      'system',
      (c) =>
        methods(c, {
          GET: () => {
            let sub = p.slice('sys/internal/ui/mounts/'.length);
            let target = ns;
            for (;;) {
              const seg = sub.split('/')[0];
              const child = target.children.get(seg);
              if (!child || !sub.includes('/')) break;
              target = child;
              sub = sub.slice(seg.length + 1);
            }
            const shown = `${sub.replace(/\/+$/, '')}/`;
            const preflight = () => new VaultHttpError(403, [`preflight capability check returned 403, please ensure client's policies grant access to path "${shown}"`]);
            const m = findMount(target, sub);
            const token = c.token as TokenEntry;
            if (!m) throw preflight();
            if (!state.aclFor(token).reachesMount(target.path.slice(token.ns.path.length) + m.path)) throw preflight();
            return ok({ ...mountInfo(m), path: target.path.slice(ns.path.length) + m.path });
          },
        }),
      { ownAcl: true },
    );

  if (p === 'sys/capabilities-self')
    return route('system', (c) =>
      methods(c, {
        POST: () => {
          const paths = c.body.paths !== undefined ? strList(c.body.paths) : strList(c.body.path);
          if (!paths.length) throw bad("'paths' or 'path' must be specified");
          const t = c.token as TokenEntry;
          const acl = state.aclFor(t);
          const data: Record<string, unknown> = {};
          let all: string[] = [];
          for (const path of paths) {
            const full = ns.path.slice(t.ns.path.length) + path.replace(/^\/+/, '');
            const caps = acl.root ? ['root'] : [...acl.capabilities(full)].sort();
            const shown = caps.includes('deny') || !caps.length ? ['deny'] : caps;
            data[path] = shown;
            all = shown;
          }
          if (paths.length === 1) data.capabilities = all;
          return ok(data);
        },
      }),
    );

  return undefined;
}

function health(state: VaultState, ctx: Ctx): Reply {
  const q = ctx.query;
  const code = (name: string, dflt: number) => {
    const v = q.get(name);
    return v !== null && /^\d+$/.test(v) ? parseInt(v, 10) : dflt;
  };
  const fields: Array<[string, unknown]> = [
    ['initialized', true],
    ['sealed', state.sealed],
    ['standby', state.sealed],
    ['performance_standby', false],
    ['replication_performance_mode', state.sealed ? 'unknown' : 'disabled'],
    ['replication_dr_mode', state.sealed ? 'unknown' : 'disabled'],
    ['server_time_utc', Math.floor(state.now() / 1000)],
    ['version', VAULT_VERSION],
  ];
  // a sealed Vault cannot read its cluster identity (it lives behind the barrier)
  if (!state.sealed)
    fields.push(
      ['cluster_name', state.clusterName],
      ['cluster_id', state.clusterId],
    );
  return { kind: 'raw', status: state.sealed ? code('sealedcode', 503) : code('activecode', 200), body: goStruct(fields) };
}

// -- tokens -------------------------------------------------------------------------------------

function tokenRoute(state: VaultState, ctx: Ctx, sub: string): Route | undefined {
  const self = (c: Ctx) => c.token as TokenEntry;
  const target = (c: Ctx): TokenEntry => {
    const id = c.body.token;
    if (typeof id !== 'string' || !id) throw bad('missing token');
    const t = state.liveToken(id);
    if (!t) throw bad('bad token');
    return t;
  };
  switch (sub) {
    case 'create':
    case 'create-orphan':
      return route('token', (c) => methods(c, { POST: () => createToken(state, c, sub === 'create-orphan') }));
    case 'lookup-self':
      return route('token', (c) => {
        if (c.method !== 'GET' && c.method !== 'POST') throw unsupported();
        return ok(state.lookupData(self(c)));
      });
    case 'lookup':
      return route('token', (c) => methods(c, { POST: () => ok(state.lookupData(target(c))) }));
    case 'renew-self':
      return route('token', (c) => methods(c, { POST: () => state.renew(self(c), c.body.increment) }));
    case 'renew':
      return route('token', (c) => methods(c, { POST: () => state.renew(target(c), c.body.increment) }));
    case 'revoke-self':
      return route('token', (c) =>
        methods(c, {
          POST: () => {
            state.revoke(self(c).id);
            return EMPTY;
          },
        }),
      );
    case 'revoke':
      return route('token', (c) =>
        methods(c, {
          POST: () => {
            const id = c.body.token;
            if (typeof id !== 'string' || !id) throw bad('missing token');
            state.revoke(id);
            return EMPTY;
          },
        }),
      );
    default:
      return undefined;
  }
}

function createToken(state: VaultState, c: Ctx, orphan: boolean): Reply {
  const parent = c.token as TokenEntry;
  const parentRoot = parent.policies.includes('root');
  const b = c.body;
  const noDefault = bool(b.no_default_policy, false);
  let policies: string[];
  if (b.policies === undefined) policies = [...parent.policies];
  else {
    policies = policySet(strList(b.policies), !noDefault);
    if (!parentRoot) {
      const mine = new Set(parent.policies);
      if (policies.some((p) => p !== 'default' && !mine.has(p))) throw bad('child policies must be subset of parent');
    }
  }
  if (b.id !== undefined && !parentRoot) throw bad('root or sudo privileges required to specify token id');
  if (typeof b.id === 'string' && state.tokens.has(b.id)) throw bad('cannot create a token with a duplicate ID');
  const ttl = parseDuration(b.ttl, 'ttl');
  const explicitMax = parseDuration(b.explicit_max_ttl, 'explicit_max_ttl');
  const name = typeof b.display_name === 'string' && b.display_name ? `token-${b.display_name}` : 'token';
  const meta = isObject(b.meta) ? Object.fromEntries(Object.entries(b.meta).map(([k, v]) => [k, String(v)])) : null;
  const t = state.issueToken({
    id: typeof b.id === 'string' && b.id ? b.id : undefined,
    ns: c.ns,
    policies,
    ttl,
    maxTtl: 0,
    explicitMaxTtl: explicitMax,
    renewable: bool(b.renewable, true),
    numUses: int(b.num_uses, 'num_uses'),
    path: orphan ? 'auth/token/create-orphan' : 'auth/token/create',
    displayName: name,
    meta,
    orphan: orphan || bool(b.no_parent, false),
    parent: orphan || bool(b.no_parent, false) ? undefined : parent,
    authType: 'token',
  });
  return ok(null, { auth: state.authBlock(t, t.creationTtl) });
}

// -- AppRole ------------------------------------------------------------------------------------

function approleRoute(state: VaultState, ctx: Ctx, mount: AuthMount, sub: string): Route | undefined {
  const mt = 'approle';
  if (sub === 'login') return route(mt, (c) => methods(c, { POST: () => approleLogin(state, c, mount) }), { unauthenticated: true });
  if (sub === 'role') return route(mt, (c) => methods(c, { LIST: () => listKeys([...mount.roles.keys()]) }));
  const m = /^role\/([^/]+)(?:\/(role-id|secret-id|secret-id-accessor\/destroy))?$/.exec(sub);
  if (!m) return undefined;
  const name = m[1].toLowerCase();
  const getRole = () => {
    const r = mount.roles.get(name);
    if (!r) throw bad(`role "${name}" does not exist`);
    return r;
  };
  if (m[2] === 'role-id')
    return route(mt, (c) =>
      methods(c, {
        GET: () => ok({ role_id: getRole().roleId }),
        POST: () => {
          const r = getRole();
          if (typeof c.body.role_id !== 'string' || !c.body.role_id) throw bad('missing role_id');
          r.roleId = c.body.role_id;
          return EMPTY;
        },
      }),
    );
  if (m[2] === 'secret-id')
    return route(mt, (c) =>
      methods(c, {
        POST: () => {
          const r = getRole();
          const now = state.now();
          const ttl = c.body.ttl !== undefined ? parseDuration(c.body.ttl, 'ttl') : r.secretIdTtl;
          const uses = c.body.num_uses !== undefined ? int(c.body.num_uses, 'num_uses') : r.secretIdNumUses;
          const secretId = randomUUID();
          const accessor = randomUUID();
          const metadata = isObject(c.body.metadata) ? Object.fromEntries(Object.entries(c.body.metadata).map(([k, v]) => [k, String(v)])) : {};
          plantCanary('vault test server: approle secret_id', secretId);
          mount.secretIds.set(secretId, { role: name, accessor, created: now, expireAt: ttl ? now + ttl * 1000 : 0, usesLeft: uses, metadata });
          return ok({ secret_id: secretId, secret_id_accessor: accessor, secret_id_num_uses: uses, secret_id_ttl: ttl });
        },
        LIST: () => listKeys([...mount.secretIds.values()].filter((s) => s.role === name).map((s) => s.accessor)),
      }),
    );
  if (m[2]) return undefined;
  return route(mt, (c) =>
    methods(c, {
      GET: () => {
        const r = getRole();
        return ok({
          bind_secret_id: r.bindSecretId,
          local_secret_ids: false,
          policies: r.tokenPolicies,
          secret_id_bound_cidrs: null,
          secret_id_num_uses: r.secretIdNumUses,
          secret_id_ttl: r.secretIdTtl,
          token_bound_cidrs: [],
          token_explicit_max_ttl: r.tokenExplicitMaxTtl,
          token_max_ttl: r.tokenMaxTtl,
          token_no_default_policy: r.tokenNoDefaultPolicy,
          token_num_uses: r.tokenNumUses,
          token_period: 0,
          token_policies: r.tokenPolicies,
          token_ttl: r.tokenTtl,
          token_type: 'default',
        });
      },
      POST: () => {
        const b = c.body;
        const prev = mount.roles.get(name);
        const pick = <T>(key: string, parse: (v: unknown) => T, dflt: T): T => (b[key] !== undefined ? parse(b[key]) : dflt);
        const policies = b.token_policies !== undefined ? strList(b.token_policies) : b.policies !== undefined ? strList(b.policies) : (prev?.tokenPolicies ?? []);
        const r: AppRole = {
          name,
          roleId: typeof b.role_id === 'string' && b.role_id ? b.role_id : (prev?.roleId ?? randomUUID()),
          bindSecretId: pick('bind_secret_id', (v) => bool(v, true), prev?.bindSecretId ?? true),
          secretIdTtl: pick('secret_id_ttl', (v) => parseDuration(v, 'secret_id_ttl'), prev?.secretIdTtl ?? 0),
          secretIdNumUses: pick('secret_id_num_uses', (v) => int(v, 'secret_id_num_uses'), prev?.secretIdNumUses ?? 0),
          tokenTtl: pick('token_ttl', (v) => parseDuration(v, 'token_ttl'), prev?.tokenTtl ?? 0),
          tokenMaxTtl: pick('token_max_ttl', (v) => parseDuration(v, 'token_max_ttl'), prev?.tokenMaxTtl ?? 0),
          tokenPolicies: [...new Set(policies.map((x) => x.toLowerCase()))].sort(),
          tokenNumUses: pick('token_num_uses', (v) => int(v, 'token_num_uses'), prev?.tokenNumUses ?? 0),
          tokenNoDefaultPolicy: pick('token_no_default_policy', (v) => bool(v, false), prev?.tokenNoDefaultPolicy ?? false),
          tokenExplicitMaxTtl: pick('token_explicit_max_ttl', (v) => parseDuration(v, 'token_explicit_max_ttl'), prev?.tokenExplicitMaxTtl ?? 0),
        };
        if (r.tokenMaxTtl && r.tokenTtl > r.tokenMaxTtl) throw bad('"token_ttl" value must be less than "token_max_ttl" value');
        mount.roles.set(name, r);
        return EMPTY;
      },
      DELETE: () => {
        mount.roles.delete(name);
        for (const [id, s] of mount.secretIds) if (s.role === name) mount.secretIds.delete(id);
        return EMPTY;
      },
    }),
  );
}

function approleLogin(state: VaultState, c: Ctx, mount: AuthMount): Reply {
  const roleId = c.body.role_id;
  if (typeof roleId !== 'string' || !roleId) throw bad('missing role_id');
  const role = [...mount.roles.values()].find((r) => r.roleId === roleId);
  const secretId = c.body.secret_id;
  plantCanary('vault test server: approle secret_id presented', secretId);
  if (role?.bindSecretId !== false && (typeof secretId !== 'string' || !secretId)) throw bad('missing secret_id');
  if (!role) throw bad('invalid role or secret ID');
  if (role.bindSecretId) {
    const entry = mount.secretIds.get(secretId as string);
    const now = state.now();
    if (!entry || entry.role !== role.name || (entry.expireAt && now >= entry.expireAt)) {
      if (entry && entry.expireAt && now >= entry.expireAt) mount.secretIds.delete(secretId as string);
      throw bad('invalid role or secret ID');
    }
    if (entry.usesLeft > 0) {
      entry.usesLeft--;
      if (entry.usesLeft === 0) mount.secretIds.delete(secretId as string);
    }
  }
  const t = state.issueToken({
    ns: c.ns,
    policies: policySet(role.tokenPolicies, !role.tokenNoDefaultPolicy),
    ttl: role.tokenTtl,
    maxTtl: role.tokenMaxTtl,
    explicitMaxTtl: role.tokenExplicitMaxTtl,
    renewable: true,
    numUses: role.tokenNumUses,
    path: `auth/${mount.path}login`,
    displayName: 'approle',
    meta: { role_name: role.name },
    orphan: true,
    authType: 'approle',
  });
  return ok(null, { auth: state.authBlock(t, t.creationTtl) });
}

// -- Kubernetes ---------------------------------------------------------------------------------

function kubernetesRoute(state: VaultState, ctx: Ctx, mount: AuthMount, sub: string): Route | undefined {
  const mt = 'kubernetes';
  if (sub === 'login') return route(mt, (c) => methods(c, { POST: () => kubernetesLogin(state, c, mount) }), { unauthenticated: true });
  if (sub === 'config')
    return route(mt, (c) =>
      methods(c, {
        GET: () => {
          const k = mount.k8sConfig;
          if (!k) return ok(null);
          return ok({ disable_iss_validation: k.disableIss, disable_local_ca_jwt: false, issuer: k.issuer, kubernetes_ca_cert: '', kubernetes_host: k.host, pem_keys: k.pemKeys, token_reviewer_jwt_set: false, use_annotations_as_alias_metadata: false });
        },
        POST: () => {
          const pemKeys = Array.isArray(c.body.pem_keys) ? c.body.pem_keys.map(String) : typeof c.body.pem_keys === 'string' ? [c.body.pem_keys] : [];
          const keys = pemKeys.map((pem) => {
            try {
              return createPublicKey(pem);
            } catch {
              throw bad('data does not contain any valid RSA or ECDSA public keys');
            }
          });
          mount.k8sConfig = { host: String(c.body.kubernetes_host ?? ''), pemKeys, keys, issuer: String(c.body.issuer ?? ''), disableIss: bool(c.body.disable_iss_validation, true) };
          return EMPTY;
        },
      }),
    );
  if (sub === 'role') return route(mt, (c) => methods(c, { LIST: () => listKeys([...mount.k8sRoles.keys()]) }));
  const m = /^role\/([^/]+)$/.exec(sub);
  if (!m) return undefined;
  const name = m[1];
  return route(mt, (c) =>
    methods(c, {
      GET: () => {
        const r = mount.k8sRoles.get(name);
        if (!r) throw notFound();
        return ok({
          alias_name_source: 'serviceaccount_uid',
          audience: r.audience,
          bound_service_account_names: r.names,
          bound_service_account_namespace_selector: '',
          bound_service_account_namespaces: r.namespaces,
          policies: r.tokenPolicies,
          token_bound_cidrs: [],
          token_explicit_max_ttl: 0,
          token_max_ttl: r.tokenMaxTtl,
          token_no_default_policy: r.tokenNoDefaultPolicy,
          token_num_uses: r.tokenNumUses,
          token_period: 0,
          token_policies: r.tokenPolicies,
          token_ttl: r.tokenTtl,
          token_type: 'default',
        });
      },
      POST: () => {
        const b = c.body;
        const prev = mount.k8sRoles.get(name);
        const names = b.bound_service_account_names !== undefined ? strList(b.bound_service_account_names) : (prev?.names ?? []);
        const namespaces = b.bound_service_account_namespaces !== undefined ? strList(b.bound_service_account_namespaces) : (prev?.namespaces ?? []);
        if (!names.length) throw bad('"bound_service_account_names" can not be empty');
        if (!namespaces.length) throw bad('"bound_service_account_namespaces" can not be empty');
        const policies = b.token_policies !== undefined ? strList(b.token_policies) : b.policies !== undefined ? strList(b.policies) : (prev?.tokenPolicies ?? []);
        mount.k8sRoles.set(name, {
          name,
          names,
          namespaces,
          audience: b.audience !== undefined ? String(b.audience) : (prev?.audience ?? ''),
          tokenPolicies: [...new Set(policies.map((x) => x.toLowerCase()))].sort(),
          tokenTtl: b.token_ttl !== undefined ? parseDuration(b.token_ttl, 'token_ttl') : (prev?.tokenTtl ?? 0),
          tokenMaxTtl: b.token_max_ttl !== undefined ? parseDuration(b.token_max_ttl, 'token_max_ttl') : (prev?.tokenMaxTtl ?? 0),
          tokenNoDefaultPolicy: b.token_no_default_policy !== undefined ? bool(b.token_no_default_policy, false) : (prev?.tokenNoDefaultPolicy ?? false),
          tokenNumUses: b.token_num_uses !== undefined ? int(b.token_num_uses, 'token_num_uses') : (prev?.tokenNumUses ?? 0),
        });
        return EMPTY;
      },
      DELETE: () => {
        mount.k8sRoles.delete(name);
        return EMPTY;
      },
    }),
  );
}

const JWT_ALGS: Record<string, { hash: string; keyType: string; p1363: boolean }> = {
  RS256: { hash: 'sha256', keyType: 'rsa', p1363: false },
  RS384: { hash: 'sha384', keyType: 'rsa', p1363: false },
  RS512: { hash: 'sha512', keyType: 'rsa', p1363: false },
  ES256: { hash: 'sha256', keyType: 'ec', p1363: true },
  ES384: { hash: 'sha384', keyType: 'ec', p1363: true },
  ES512: { hash: 'sha512', keyType: 'ec', p1363: true },
};

/** The claims of a JWT signed by one of `keys`, or undefined (bad format, algorithm or signature). */
function verifyJwt(jwt: string, keys: readonly KeyObject[]): Record<string, unknown> | undefined {
  const parts = jwt.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as { alg?: string };
    const alg = JWT_ALGS[header.alg ?? ''];
    if (!alg) return undefined;
    const input = Buffer.from(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2], 'base64url');
    const good = keys.some((key) => key.asymmetricKeyType === alg.keyType && cryptoVerify(alg.hash, input, alg.p1363 ? { key, dsaEncoding: 'ieee-p1363' } : key, sig));
    if (!good) return undefined;
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as unknown;
    return isObject(claims) ? claims : undefined;
  } catch {
    return undefined;
  }
}

function kubernetesLogin(state: VaultState, c: Ctx, mount: AuthMount): Reply {
  const roleName = c.body.role;
  if (typeof roleName !== 'string' || !roleName) throw bad('missing role');
  const jwt = c.body.jwt;
  plantCanary('vault test server: kubernetes jwt presented', jwt);
  if (typeof jwt !== 'string' || !jwt) throw bad('missing jwt');
  const role = mount.k8sRoles.get(roleName);
  if (!role) throw bad(`invalid role name "${roleName}"`);
  if (!mount.k8sConfig) throw new VaultHttpError(500, ['could not load backend configuration']);
  const claims = verifyJwt(jwt, mount.k8sConfig.keys);
  if (!claims) throw denied();
  const nowSec = state.now() / 1000;
  if (typeof claims.exp === 'number' && claims.exp <= nowSec) throw denied();
  if (typeof claims.nbf === 'number' && claims.nbf > nowSec + 60) throw denied();
  if (!mount.k8sConfig.disableIss && mount.k8sConfig.issuer && claims.iss !== mount.k8sConfig.issuer) throw denied();

  // legacy service-account tokens carry flat claims, projected tokens a `kubernetes.io` object
  let name: unknown = claims['kubernetes.io/serviceaccount/service-account.name'];
  let namespace: unknown = claims['kubernetes.io/serviceaccount/namespace'];
  let uid: unknown = claims['kubernetes.io/serviceaccount/service-account.uid'];
  const secretName = claims['kubernetes.io/serviceaccount/secret.name'];
  const projected = claims['kubernetes.io'];
  if (name === undefined && isObject(projected)) {
    namespace = projected.namespace;
    const sa = projected.serviceaccount;
    if (isObject(sa)) {
      name = sa.name;
      uid = sa.uid;
    }
  }
  if (typeof name !== 'string' || typeof namespace !== 'string' || typeof uid !== 'string') throw denied();
  if (!role.names.includes('*') && !role.names.includes(name)) throw new VaultHttpError(403, ['service account name not authorized']);
  if (!role.namespaces.includes('*') && !role.namespaces.includes(namespace)) throw new VaultHttpError(403, ['namespace not authorized']);
  if (role.audience) {
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes(role.audience)) throw new VaultHttpError(403, ['invalid audience (aud) claim: audience claim does not match any expected audience']);
  }
  const t = state.issueToken({
    ns: c.ns,
    policies: policySet(role.tokenPolicies, !role.tokenNoDefaultPolicy),
    ttl: role.tokenTtl,
    maxTtl: role.tokenMaxTtl,
    renewable: true,
    numUses: role.tokenNumUses,
    path: `auth/${mount.path}login`,
    displayName: `${mount.path.replace(/\/$/, '')}-${namespace}-${name}`,
    meta: { role: role.name, service_account_name: name, service_account_namespace: namespace, service_account_secret_name: typeof secretName === 'string' ? secretName : '', service_account_uid: uid },
    orphan: true,
    authType: 'kubernetes',
  });
  return ok(null, { auth: state.authBlock(t, t.creationTtl) });
}

// -- KV -----------------------------------------------------------------------------------------

function listKeys(all: Iterable<string>, prefix = ''): Reply {
  const keys = new Set<string>();
  for (const k of all) {
    if (!k.startsWith(prefix)) continue;
    const rest = k.slice(prefix.length);
    const slash = rest.indexOf('/');
    keys.add(slash < 0 ? rest : rest.slice(0, slash + 1));
  }
  keys.delete('');
  if (!keys.size) throw notFound();
  return ok({ keys: [...keys].sort() });
}

const listPrefix = (p: string) => (p === '' ? '' : p.endsWith('/') ? p : `${p}/`);

function kv1Route(ctx: Ctx, mount: SecretMount, key: string): Route {
  const exists = ctx.method === 'POST' && mount.kv1.has(key);
  return route(
    'kv',
    (c) =>
      methods(c, {
        GET: () => {
          const data = mount.kv1.get(key);
          if (!key || !data) throw notFound();
          // the `ttl` field is advisory: it sets lease_duration, no lease is created
          const ttl = data.ttl !== undefined ? parseDuration(data.ttl, 'ttl') : mount.defaultLeaseTtl || SYSTEM_TTL;
          return ok(data, { leaseDuration: ttl });
        },
        LIST: () => listKeys(mount.kv1.keys(), listPrefix(key)),
        POST: () => {
          if (!key) throw unsupported();
          if (!Object.keys(c.body).length) throw bad('missing data fields');
          if (c.body.ttl !== undefined) parseDuration(c.body.ttl, 'ttl');
          plantCanary('vault test server: kv value', c.body);
          mount.kv1.set(key, c.body as JsonObject);
          return EMPTY;
        },
        DELETE: () => {
          mount.kv1.delete(key);
          return EMPTY;
        },
      }),
    { writeOp: exists ? 'update' : 'create' },
  );
}

function versionMeta(v: Kv2Version, n: number, s: Kv2Secret): Record<string, unknown> {
  return { created_time: rfc3339(v.created), custom_metadata: s.customMetadata, deletion_time: v.deletion ? rfc3339(v.deletion) : '', destroyed: v.destroyed, version: n };
}

function kv2Warning(verb: string): Reply {
  return {
    kind: 'envelope',
    status: 404,
    data: null,
    warnings: [`Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv ${verb}' for this operation.`],
  };
}

function versionsParam(body: Record<string, unknown>): number[] {
  const list = Array.isArray(body.versions) ? body.versions : typeof body.versions === 'string' || typeof body.versions === 'number' ? String(body.versions).split(',') : [];
  const out = list.map((v) => int(v, 'versions')).filter((n) => n > 0);
  if (!out.length) throw bad('no version number provided');
  return out;
}

function kv2Route(ctx: Ctx, mount: SecretMount, rest: string): Route {
  const slash = rest.indexOf('/');
  const kind = slash < 0 ? rest : rest.slice(0, slash);
  const key = slash < 0 ? '' : rest.slice(slash + 1);
  const store = mount.kv2;
  const maxVersions = (s: Kv2Secret) => s.maxVersions || mount.kv2Config.maxVersions || KV_DEFAULT_MAX_VERSIONS;
  const ensure = (now: number): Kv2Secret => {
    let s = store.get(key);
    if (!s) {
      s = { versions: new Map(), current: 0, oldest: 0, created: now, updated: now, maxVersions: 0, casRequired: false, customMetadata: null, deleteVersionAfter: 0 };
      store.set(key, s);
    }
    return s;
  };

  const writeData = (c: Ctx, merge: boolean): Reply => {
    if (!key) throw unsupported();
    const existing = store.get(key);
    if (merge) {
      if (!c.contentType.startsWith('application/merge-patch+json')) throw new VaultHttpError(415, [`Unsupported Content-Type="${c.contentType}"`]);
      const cur = existing?.versions.get(existing.current);
      if (!existing || !cur || cur.deletion || cur.destroyed || !cur.data) throw notFound();
    }
    if (!isObject(c.body.data)) throw bad('no data provided');
    const options = isObject(c.body.options) ? c.body.options : {};
    const casRequired = mount.kv2Config.casRequired || existing?.casRequired;
    if (options.cas === undefined && casRequired) throw bad('check-and-set parameter required for this call');
    if (options.cas !== undefined && int(options.cas, 'cas') !== (existing?.current ?? 0)) throw bad('check-and-set parameter did not match the current version');
    const s = ensure(c.now);
    plantCanary('vault test server: kv value', c.body.data);
    let data = c.body.data as JsonObject;
    if (merge) {
      data = { ...(s.versions.get(s.current)?.data ?? {}) };
      for (const [k, v] of Object.entries(c.body.data as JsonObject)) {
        if (v === null) delete data[k];
        else data[k] = v;
      }
    }
    const n = s.current + 1;
    const v: Kv2Version = { created: c.now, deletion: s.deleteVersionAfter ? c.now + s.deleteVersionAfter * 1000 : 0, destroyed: false, data };
    s.versions.set(n, v);
    s.current = n;
    s.updated = c.now;
    if (!s.oldest) s.oldest = n;
    while (s.versions.size > maxVersions(s)) {
      const oldest = Math.min(...s.versions.keys());
      s.versions.delete(oldest);
      s.oldest = Math.min(...s.versions.keys());
    }
    return ok(versionMeta(v, n, s));
  };

  const markVersions = (c: Ctx, how: 'delete' | 'undelete' | 'destroy'): Reply => {
    if (!key) throw unsupported();
    const versions = versionsParam(c.body);
    const s = store.get(key);
    if (!s) return EMPTY;
    for (const n of versions) {
      const v = s.versions.get(n);
      if (!v) continue;
      if (how === 'destroy') {
        v.destroyed = true;
        v.data = null;
      } else if (!v.destroyed) v.deletion = how === 'delete' ? v.deletion || c.now : 0;
    }
    return EMPTY;
  };

  switch (kind) {
    case 'data':
      return route(
        'kv',
        (c) =>
          methods(c, {
            GET: () => {
              const s = store.get(key);
              if (!key || !s) throw notFound();
              const want = c.query.get('version');
              const n = want && want !== '0' ? int(want, 'version') : s.current;
              const v = s.versions.get(n);
              if (!v) throw notFound();
              if ((v.deletion && v.deletion <= c.now) || v.destroyed) return { kind: 'envelope', status: 404, data: { data: null, metadata: versionMeta(v, n, s) } };
              return ok({ data: v.data, metadata: versionMeta(v, n, s) });
            },
            POST: () => writeData(c, false),
            PATCH: () => writeData(c, true),
            DELETE: () => {
              const s = store.get(key);
              const v = s?.versions.get(s.current);
              if (v && !v.destroyed && !v.deletion) v.deletion = c.now;
              return EMPTY;
            },
          }),
        { writeOp: store.has(key) ? 'update' : 'create' },
      );
    case 'delete':
    case 'undelete':
    case 'destroy':
      return route('kv', (c) => methods(c, { POST: () => markVersions(c, kind) }));
    case 'metadata':
      return route(
        'kv',
        (c) =>
          methods(c, {
            GET: () => {
              const s = store.get(key);
              if (!key || !s) throw notFound();
              const versions: Record<string, unknown> = {};
              for (const [n, v] of s.versions) versions[String(n)] = { created_time: rfc3339(v.created), deletion_time: v.deletion ? rfc3339(v.deletion) : '', destroyed: v.destroyed };
              return ok({
                cas_required: s.casRequired,
                created_time: rfc3339(s.created),
                current_version: s.current,
                custom_metadata: s.customMetadata,
                delete_version_after: fmtDuration(s.deleteVersionAfter),
                max_versions: s.maxVersions,
                oldest_version: s.oldest,
                updated_time: rfc3339(s.updated),
                versions,
              });
            },
            LIST: () => listKeys(store.keys(), listPrefix(key)),
            POST: () => {
              if (!key) throw unsupported();
              const s = ensure(c.now);
              const b = c.body;
              if (b.max_versions !== undefined) s.maxVersions = int(b.max_versions, 'max_versions');
              if (b.cas_required !== undefined) s.casRequired = bool(b.cas_required, false);
              if (b.delete_version_after !== undefined) s.deleteVersionAfter = parseDuration(b.delete_version_after, 'delete_version_after');
              if (isObject(b.custom_metadata)) s.customMetadata = Object.fromEntries(Object.entries(b.custom_metadata).map(([k, v]) => [k, String(v)]));
              s.updated = c.now;
              return EMPTY;
            },
            DELETE: () => {
              store.delete(key);
              return EMPTY;
            },
          }),
        { writeOp: store.has(key) ? 'update' : 'create' },
      );
    case 'config':
      if (key) break;
      return route('kv', (c) =>
        methods(c, {
          GET: () => ok({ cas_required: mount.kv2Config.casRequired, delete_version_after: fmtDuration(mount.kv2Config.deleteVersionAfter), max_versions: mount.kv2Config.maxVersions }),
          POST: () => {
            const b = c.body;
            if (b.max_versions !== undefined) mount.kv2Config.maxVersions = int(b.max_versions, 'max_versions');
            if (b.cas_required !== undefined) mount.kv2Config.casRequired = bool(b.cas_required, false);
            if (b.delete_version_after !== undefined) mount.kv2Config.deleteVersionAfter = parseDuration(b.delete_version_after, 'delete_version_after');
            return EMPTY;
          },
        }),
      );
  }
  // a KV v2 mount read like a v1 one: 404 whose only content is a warning
  const verb = ctx.method === 'LIST' ? 'list' : ctx.method === 'DELETE' ? 'delete' : ctx.method === 'POST' || ctx.method === 'PATCH' ? 'put' : 'get';
  return route('kv', () => kv2Warning(verb));
}

// ---------------------------------------------------------------------------------------------
// CLI: node dist/test/servers/vault.js --port 8200 --token root [--host 127.0.0.1] [--tls-cert F --tls-key F]

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  const eq = args.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

async function main(args: string[]): Promise<void> {
  const portArg = argValue(args, '--port');
  const port = portArg === undefined ? 8200 : Number(portArg);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a port number, got ${JSON.stringify(portArg)}`);
  const certFile = argValue(args, '--tls-cert');
  const keyFile = argValue(args, '--tls-key');
  const server = await startVaultServer({
    port,
    host: argValue(args, '--host') ?? '127.0.0.1',
    rootToken: argValue(args, '--token') ?? 'root',
    tls: certFile && keyFile ? { cert: readFileSync(certFile), key: readFileSync(keyFile) } : undefined,
  });
  process.stdout.write(`vault test server listening on ${server.url} (root token: ${server.rootToken})\n`);
  const shutdown = () => {
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`vault test server: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
