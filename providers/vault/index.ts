// vault: secret provider over HashiCorp Vault KV v1/v2 (node-vault) with token, AppRole or Kubernetes auth.
import type NodeVault = require('node-vault');

/** node-vault (and axios), loaded when the first vault secret resource is created. */
function nodeVault(): typeof NodeVault {
  return require('node-vault') as typeof NodeVault;
}
import { readFile } from 'node:fs/promises';
import { defineProvider, withoutNodeCaHint, type Logger, type ProviderServices, type SecretBackend, type SecretRequest, type SecretValue } from 'gatehouse-gateway/sdk';
import { DEFAULT_JWT_PATH, schema, type VaultConfig } from './schema';

export { schema } from './schema';
export type { VaultConfig } from './schema';

/** Renew (or log in again) when this fraction of a token's lease has passed. */
const RENEW_AT = 2 / 3;
/** A token within this many ms of its expiry is treated as expired (log in before using it). */
const EXPIRY_MARGIN_MS = 1000;
/** Longest delay setTimeout honours. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Longest Vault-supplied text kept in an error message. */
const MAX_CAUSE = 200;

/** Error thrown by the vault backend. Its message names the operation, the path and the cause, never a secret. */
export class VaultProviderError extends Error {
  override readonly name = 'VaultProviderError';
  constructor(
    message: string,
    /** HTTP status Vault answered, when it answered. */
    readonly status?: number,
    /** Network error code (`ECONNREFUSED`, `ECONNABORTED`, ...), when it did not. */
    readonly code?: string,
  ) {
    super(message);
  }
}

type Layout = { version: 1 } | { version: 2; mount: string; sub: string };
type TokenSource = 'static' | 'approle' | 'kubernetes';

interface Normalised {
  uri: string;
  prefix: string;
  kvVersion: 1 | 2 | 'auto';
  source: TokenSource;
}

/** What node-vault rejects with: an API error (`response`) or an axios network error (`code`). */
interface ClientError {
  message?: string;
  code?: string;
  response?: { statusCode?: number; body?: unknown };
}

/** Vault's multi-error text ("2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n") on one line. */
function vaultText(raw: string): string {
  const items = raw
    .split('\n')
    .map((l) => l.replace(/^\s*\*\s*/, '').trim())
    .filter((l) => l && !/^\d+ errors? occurred:$/.test(l));
  return items.join('; ');
}

/** Whether an HTTP status is Vault's answer about the token (4xx), not a sealed, standby or failing server (5xx, 429) or no answer. */
function answeredAboutToken(status: number | undefined): boolean {
  return status !== undefined && status < 500 && status !== 429;
}

function isPem(v: string): boolean {
  return v.includes('-----BEGIN');
}

async function pemOrFile(value: string | undefined, field: string, secret = false): Promise<string | undefined> {
  if (value === undefined || isPem(value)) return value;
  try {
    return await readFile(value, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    // tls.key may be key material without its -----BEGIN line: never echo it (this error is logged)
    if (secret) throw new Error(`vault: ${field}: is neither PEM text (-----BEGIN ...) nor a readable PEM file (${code})`);
    throw new Error(`vault: ${field}: cannot read PEM file ${JSON.stringify(value)} (${code})`);
  }
}

/** `a/b` + `c d/e` → `a/b/c%20d/e` (each segment encoded; node-vault puts the path in the URL as is). */
function joinPath(...parts: string[]): string {
  return parts
    .flatMap((p) => p.split('/'))
    .filter(Boolean)
    .map(encodeURIComponent)
    .join('/');
}

/** A live connection to one Vault secret resource. */
class VaultBackend implements SecretBackend {
  private readonly client: NodeVault.client;
  private readonly log: Logger;
  /** Strings that must never appear in an error message (tokens, secret ids, service-account JWTs). */
  private readonly secrets = new Set<string>();
  private token: string | undefined;
  /** Bumped whenever a new token is obtained, so that concurrent failures re-login only once. */
  private generation = 0;
  private expiresAt = 0;
  private renewable = false;
  /** Lease of the token as issued (seconds), to notice renewals capped by the max TTL. */
  private issuedLease = 0;
  private login: Promise<void> | undefined;
  private staticLookup: 'todo' | 'running' | 'done' = 'todo';
  private layoutPromise: Promise<Layout> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly cfg: VaultConfig,
    private readonly n: Normalised,
    requestOptions: NodeVault.VaultOptions['requestOptions'],
    private readonly services: ProviderServices,
  ) {
    this.log = services.logger.child({ provider: 'vault', vault: n.uri, auth: n.source });
    this.client = nodeVault()({
      endpoint: n.uri,
      namespace: cfg.namespace || undefined,
      requestOptions,
      // node-vault's debug output prints request bodies (login secrets): keep it silent
      debug: () => undefined,
    });
    // node-vault falls back to VAULT_TOKEN / VAULT_NAMESPACE / VAULT_PREFIX: config is the only source here
    const c = this.client as NodeVault.client & { namespace?: string; pathPrefix?: string };
    c.token = '';
    c.namespace = cfg.namespace || '';
    c.pathPrefix = '';
    if (cfg.token) {
      this.secrets.add(cfg.token);
      this.token = cfg.token;
    }
    if (cfg.auth?.method === 'approle') this.secrets.add(cfg.auth.secret_id);
  }

  async get(req: SecretRequest): Promise<SecretValue | undefined> {
    if (this.closed) throw new VaultProviderError(`vault ${this.n.uri}: backend is closed`);
    if (req.version !== undefined && !/^[1-9][0-9]*$/.test(req.version)) throw new VaultProviderError(`vault: version "${req.version}" of "${req.path}" is not a KV v2 version number`);
    const layout = await this.layout();
    let path: string;
    if (layout.version === 1) {
      if (req.version !== undefined) throw new VaultProviderError(`vault: "${joinPath(this.n.prefix, req.path)}" is on a KV v1 mount, which has no versions (asked for #${req.version})`);
      path = joinPath(this.n.prefix, req.path);
    } else {
      path = joinPath(layout.mount, 'data', layout.sub, req.path) + (req.version ? `?version=${req.version}` : '');
    }
    const body = await this.read(path, true);
    if (body === undefined) return undefined;
    const fields = layout.version === 1 ? body.data : body.data?.data;
    if (!fields || typeof fields !== 'object') return undefined;
    const raw = (fields as Record<string, unknown>)[req.field];
    if (raw === undefined || raw === null) return undefined;
    // non-string fields (numbers, booleans, objects) are handed out as their JSON text
    const value = typeof raw === 'string' ? raw : JSON.stringify(raw);
    const lease = Number(body.lease_duration);
    const version = layout.version === 2 ? body.data?.metadata?.version : undefined;
    return { value, ttl: lease > 0 ? lease : undefined, version: version === undefined ? undefined : String(version) };
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  // -- reading ----------------------------------------------------------------------------------

  /**
   * GET a path with the current token. A 403 that says the token is no longer valid triggers one
   * login (login-based auth only) and one retry.
   * @returns the body, or undefined on 404 when `notFoundOk`
   */
  private async read(path: string, notFoundOk: boolean): Promise<any> {
    await this.ensureToken();
    const gen = this.generation;
    try {
      return await this.client.read(path, this.withToken());
    } catch (e) {
      const err = e as ClientError;
      const status = err.response?.statusCode;
      if (status === 404 && notFoundOk) return undefined;
      if (status === 403 && this.n.source !== 'static' && (await this.tokenRejected(err))) {
        await this.relogin(gen);
        try {
          return await this.client.read(path, this.withToken());
        } catch (e2) {
          const err2 = e2 as ClientError;
          if (err2.response?.statusCode === 404 && notFoundOk) return undefined;
          throw this.failure(`GET ${path}`, err2);
        }
      }
      throw this.failure(`GET ${path}`, err);
    }
  }

  /** Whether a 403 means our token is dead (expired/revoked) rather than a policy that says no. */
  private async tokenRejected(err: ClientError): Promise<boolean> {
    const text = String(err.message ?? '');
    if (text.includes('invalid token')) return true;
    if (!text.includes('permission denied')) return false;
    // older Vaults say only "permission denied": ask whether the token itself still works
    try {
      await this.client.tokenLookupSelf({ requestOptions: this.withToken() });
      return false;
    } catch (e) {
      return (e as ClientError).response?.statusCode === 403;
    }
  }

  private withToken(): { headers: Record<string, string> } {
    return { headers: this.token ? { 'X-Vault-Token': this.token } : {} };
  }

  /** Mount and KV version of `prefix`: from config, or asked once of `sys/internal/ui/mounts`. */
  private layout(): Promise<Layout> {
    if (!this.layoutPromise) {
      const p = this.detectLayout();
      this.layoutPromise = p;
      // a failed detection (Vault down) is retried by the next get
      p.catch(() => {
        if (this.layoutPromise === p) this.layoutPromise = undefined;
      });
    }
    return this.layoutPromise;
  }

  private async detectLayout(): Promise<Layout> {
    const prefix = this.n.prefix;
    if (this.n.kvVersion === 1) return { version: 1 };
    if (this.n.kvVersion === 2) {
      const [mount, ...rest] = prefix.split('/');
      return { version: 2, mount, sub: rest.join('/') };
    }
    let body: any;
    try {
      body = await this.read(`sys/internal/ui/mounts/${joinPath(prefix)}`, false);
    } catch (e) {
      // as Vault's CLI: no access to the preflight endpoint (or an old Vault without it) means KV v1
      // (a dead static token says "invalid token": that is no answer about the mount)
      if (e instanceof VaultProviderError && (e.status === 404 || (e.status === 403 && !e.message.includes('invalid token')))) return { version: 1 };
      throw e;
    }
    const data = body?.data ?? {};
    const type = String(data.type ?? '');
    if (type && type !== 'kv' && type !== 'generic') throw new VaultProviderError(`vault: "${prefix}" is on a "${type}" mount, not a KV secrets engine`);
    if (String(data.options?.version ?? '') !== '2') return { version: 1 };
    const mount = String(data.path ?? '').replace(/\/+$/, '');
    if (!mount || (prefix !== mount && !prefix.startsWith(`${mount}/`))) throw new VaultProviderError(`vault: Vault names mount "${mount}" for prefix "${prefix}", which does not contain it`);
    return { version: 2, mount, sub: prefix.slice(mount.length + 1) };
  }

  // -- tokens -----------------------------------------------------------------------------------

  private async ensureToken(): Promise<void> {
    if (this.n.source === 'static') {
      if (this.staticLookup === 'todo') void this.lookupStatic();
      return;
    }
    if (this.token && (!this.expiresAt || this.services.clock.now() < this.expiresAt - EXPIRY_MARGIN_MS)) return;
    await this.relogin(this.generation);
  }

  /** Log in again unless another caller already did since generation `gen` (single flight). */
  private relogin(gen: number): Promise<void> {
    if (this.login) return this.login;
    if (gen !== this.generation && this.token) return Promise.resolve();
    const p = this.doLogin().finally(() => {
      if (this.login === p) this.login = undefined;
    });
    this.login = p;
    return p;
  }

  private async doLogin(): Promise<void> {
    const auth = this.cfg.auth;
    if (!auth) return;
    const mount = (auth.mount ?? auth.method).replace(/^\/+|\/+$/g, '');
    const what = `${auth.method === 'approle' ? 'AppRole' : 'Kubernetes'} login at auth/${mount}/login`;
    this.token = undefined;
    let res: any;
    try {
      // node-vault sends client.token on every call without its own header, logins included
      this.client.token = '';
      if (auth.method === 'approle') {
        res = await this.client.approleLogin({ mount_point: mount, role_id: auth.role_id, secret_id: auth.secret_id });
      } else {
        const path = this.services.resolvePath(auth.jwt_path ?? DEFAULT_JWT_PATH);
        let jwt: string;
        try {
          jwt = (await readFile(path, 'utf8')).trim();
        } catch (e) {
          throw new VaultProviderError(`vault ${this.n.uri}: ${what} failed: cannot read the service-account token file "${path}" (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
        }
        this.secrets.add(jwt);
        res = await this.client.kubernetesLogin({ mount_point: mount, role: auth.role, jwt });
      }
    } catch (e) {
      const err = e instanceof VaultProviderError ? e : this.failure(what, e as ClientError);
      this.log.warn({ cause: err.message }, 'vault login failed');
      throw err;
    } finally {
      this.client.token = '';
    }
    const a = res?.auth;
    if (!a || typeof a.client_token !== 'string' || !a.client_token) {
      const err = new VaultProviderError(`vault ${this.n.uri}: ${what} answered without a client token`);
      this.log.warn({ cause: err.message }, 'vault login failed');
      throw err;
    }
    this.adopt(a.client_token, Number(a.lease_duration) || 0, a.renewable === true);
  }

  /** Use a freshly issued token and plan its renewal. */
  private adopt(token: string, lease: number, renewable: boolean): void {
    this.secrets.add(token);
    this.token = token;
    this.generation++;
    this.renewable = renewable;
    this.issuedLease = lease;
    this.expiresAt = lease > 0 ? this.services.clock.now() + lease * 1000 : 0;
    this.plan(lease, renewable ? 'renew' : 'login');
  }

  private plan(leaseSec: number, action: 'renew' | 'login'): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed || leaseSec <= 0) return;
    if (action === 'login' && this.n.source === 'static') return;
    // setTimeout fires at once beyond 2^31-1 ms (~24.8 days): long-lived tokens are renewed early instead
    this.timer = setTimeout(() => void this.refresh(action), Math.min(MAX_TIMER_MS, Math.max(250, leaseSec * RENEW_AT * 1000)));
    this.timer.unref();
  }

  private async refresh(action: 'renew' | 'login'): Promise<void> {
    this.timer = undefined;
    if (this.closed) return;
    if (action === 'login') {
      await this.relogin(this.generation).catch(() => undefined);
      return;
    }
    const gen = this.generation;
    let res: any;
    try {
      res = await this.client.tokenRenewSelf({ requestOptions: this.withToken() });
    } catch (e) {
      this.client.token = '';
      const err = this.failure('token renewal (auth/token/renew-self)', e as ClientError);
      if (this.n.source === 'static') {
        this.log.warn({ cause: err.message }, 'vault token renewal failed');
        // no answer, or a sealed/standby/failing Vault (5xx, 429): try again while the token still
        // lives (at a third of what is left); a 4xx is Vault's word on the token itself
        const left = (this.expiresAt - this.services.clock.now()) / 1000;
        if (!answeredAboutToken(err.status) && left > 3) this.plan(left / 2, 'renew');
        return;
      }
      this.log.warn({ cause: err.message }, 'vault token renewal failed; logging in again');
      // a failed login has logged its own line; the next get tries again
      if (gen === this.generation) await this.relogin(gen).catch(() => undefined);
      return;
    }
    this.client.token = '';
    if (this.closed || gen !== this.generation) return;
    const lease = Number(res?.auth?.lease_duration) || 0;
    this.renewable = res?.auth?.renewable !== false;
    this.expiresAt = lease > 0 ? this.services.clock.now() + lease * 1000 : 0;
    // a renewal capped by the token's max TTL: the token will die soon, so log in again before that
    const capped = lease > 0 && lease < this.issuedLease / 2;
    this.plan(lease, this.renewable && !capped ? 'renew' : 'login');
  }

  /** A static token: look it up once; renew it before expiry when it is renewable and has a TTL. */
  private async lookupStatic(): Promise<void> {
    this.staticLookup = 'running';
    try {
      const res: any = await this.client.tokenLookupSelf({ requestOptions: this.withToken() });
      this.staticLookup = 'done';
      const ttl = Number(res?.data?.ttl) || 0;
      this.renewable = res?.data?.renewable === true;
      this.issuedLease = Number(res?.data?.creation_ttl) || ttl;
      this.expiresAt = ttl > 0 ? this.services.clock.now() + ttl * 1000 : 0;
      if (this.renewable && ttl > 0) this.plan(ttl, 'renew');
    } catch (e) {
      const err = e as ClientError;
      // no answer, or one that says nothing about the token (503 sealed, 429 standby, other 5xx):
      // try again on the next get, or a renewable token met by a sealed Vault is never renewed and
      // dies at the end of its TTL. An answer such as 403 (a token without lookup-self rights):
      // done, reads will show whether the token works
      const answered = answeredAboutToken(err.response?.statusCode);
      this.staticLookup = answered ? 'done' : 'todo';
      if (answered) this.log.warn({ cause: this.failure('token lookup (auth/token/lookup-self)', err).message }, 'vault token lookup failed; the token will not be renewed');
    } finally {
      this.client.token = '';
    }
  }

  // -- errors -----------------------------------------------------------------------------------

  /** An error naming what failed and why, scrubbed of every secret this backend knows. */
  private failure(what: string, err: ClientError): VaultProviderError {
    const status = err.response?.statusCode;
    let cause: string;
    if (status !== undefined) {
      const body = err.response?.body as { errors?: unknown[]; warnings?: unknown[] } | undefined;
      const first = Array.isArray(body?.errors) && body.errors.length ? String(body.errors[0]) : Array.isArray(body?.warnings) && body.warnings.length ? String(body.warnings[0]) : '';
      cause = `HTTP ${status}${first ? ` (${vaultText(first)})` : ''}`;
    } else if (err.code === 'ECONNABORTED' || err.code === 'ETIMEDOUT' || /timeout/i.test(String(err.message))) {
      cause = `no answer within ${this.cfg.timeout} s (timeout)`;
    } else if (err.code === 'ECONNREFUSED') {
      cause = 'connection refused (ECONNREFUSED)';
    } else {
      // a TLS failure's text comes without Node 24's --use-system-ca hint: tls.ca is the setting here
      cause = `${withoutNodeCaHint(String(err.message ?? 'request failed'))}${err.code && !String(err.message).includes(err.code) ? ` (${err.code})` : ''}`;
    }
    let text = cause.length > MAX_CAUSE ? `${cause.slice(0, MAX_CAUSE)}…` : cause;
    for (const s of this.secrets) if (s) text = text.split(s).join('[redacted]');
    return new VaultProviderError(`vault ${this.n.uri}: ${what} failed: ${text}`, status, status === undefined ? err.code : undefined);
  }
}

function normalise(cfg: VaultConfig): Normalised {
  if (!!cfg.token === !!cfg.auth) throw new Error('vault: exactly one of "token" and "auth" is required');
  let url: URL;
  try {
    url = new URL(cfg.uri);
  } catch {
    throw new Error(`vault: uri "${cfg.uri}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`vault: uri "${cfg.uri}" must be http:// or https://`);
  const prefix = String(cfg.prefix ?? '').replace(/^\/+|\/+$/g, '');
  if (!prefix) throw new Error('vault: prefix must name a KV mount (e.g. "kv" or "kv/apisix")');
  const kv = cfg.kv_version ?? 'auto';
  if (kv !== 1 && kv !== 2 && kv !== 'auto') throw new Error(`vault: kv_version must be 1, 2 or "auto", got ${JSON.stringify(kv)}`);
  if (cfg.auth?.method === 'approle' && (!cfg.auth.role_id || !cfg.auth.secret_id)) throw new Error('vault: auth.role_id and auth.secret_id are required for AppRole');
  if (cfg.auth?.method === 'kubernetes' && !cfg.auth.role) throw new Error('vault: auth.role is required for Kubernetes');
  if (cfg.auth && cfg.auth.method !== 'approle' && cfg.auth.method !== 'kubernetes') throw new Error(`vault: auth.method must be "approle" or "kubernetes"`);
  return { uri: cfg.uri.replace(/\/+$/, ''), prefix, kvVersion: kv, source: cfg.auth ? cfg.auth.method : 'static' };
}

/**
 * The `vault` secret provider: `$secret://vault/<id>/<path...>/<field>[#<version>]` reads `<field>` of the
 * KV secret `<prefix>/<path>` (KV v2: `<mount>/data/<sub-path>/<path>`).
 * @example
 * secrets:
 *   - id: vault/gateway
 *     uri: https://vault.example.com:8200
 *     prefix: kv/gateway
 *     auth: { method: approle, role_id: $env://ROLE_ID, secret_id: $env://SECRET_ID }
 */
export default defineProvider<VaultConfig>({
  name: 'vault',
  version: '1.0.0',
  schema,
  // tokens, AppRole secrets and the service-account token go to `uri`; PEM files and the
  // service-account token file are read (a reference in a tls field is PEM text from a secret)
  access(config) {
    const files: Record<string, string> = {};
    for (const f of ['ca', 'cert', 'key'] as const) {
      const v = config.tls?.[f];
      if (typeof v === 'string' && !isPem(v) && !v.startsWith('$')) files[`tls.${f}`] = v;
    }
    if (config.auth?.method !== 'kubernetes') return { destination: config.uri, files };
    return { destination: config.uri, files: { ...files, 'auth.jwt_path': config.auth.jwt_path ?? DEFAULT_JWT_PATH }, credentialFiles: ['auth.jwt_path'] };
  },
  async create(config, services) {
    const n = normalise(config);
    const timeout = config.timeout ?? 5;
    if (!(timeout > 0)) throw new Error('vault: timeout must be a positive number of seconds');
    const requestOptions: NodeVault.VaultOptions['requestOptions'] = { timeout: Math.round(timeout * 1000) };
    if (n.uri.startsWith('https:')) {
      const tls = config.tls ?? {};
      const file = (p: string | undefined) => (p === undefined || isPem(p) ? p : services.resolvePath(p));
      const [ca, cert, key] = await Promise.all([pemOrFile(file(tls.ca), 'tls.ca'), pemOrFile(file(tls.cert), 'tls.cert'), pemOrFile(file(tls.key), 'tls.key', true)]);
      if (!!cert !== !!key) throw new Error('vault: tls.cert and tls.key go together');
      // verification is set from config alone, whatever VAULT_SKIP_VERIFY says
      Object.assign(requestOptions, { strictSSL: tls.verify !== false }, ca ? { ca } : {}, cert ? { cert, key } : {});
      if (tls.verify === false) services.logger.warn({ provider: 'vault', vault: n.uri }, 'vault TLS certificate verification is disabled (tls.verify: false)');
    }
    return new VaultBackend({ ...config, timeout }, n, requestOptions, services);
  },
});
