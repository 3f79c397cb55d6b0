// The Admin API listener (read side): resources with APISIX envelopes under /admin/ and
// /apisix/admin/, plugin schemas, forced secret refresh, the API's OpenAPI description
// (openapi.ts), and Prometheus /metrics. Every call is checked against admin.allow; every call but
// /metrics needs the X-API-KEY admin key.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Logger, Metrics } from '../contracts';
import type { AdminLimits, GatewayConfig } from '../config/types';
import { parseListen, type Registry } from '../config/validate';
import type { SecretResolver } from '../secrets/resolver';
import { looksLikeReference, parseReference } from '../secrets/reference';
import { generateAdminKey, keyChecker, printGeneratedAdminKey } from './access';
import { allowList } from '../config/allow-list';
import { lingerOnClose } from '../request/linger';
import { MASK, redact, secretFieldPaths, writeOnlyPaths } from './redact';
import type { SecretFieldPaths } from '../contracts';
import { ADMIN_KINDS, ADMIN_PREFIXES, OPENAPI_DOCUMENT } from './paths';
import { adminOpenApi } from './openapi';

/** What the Admin API reads from its gateway. */
export interface AdminHost {
  /** The live config. */
  config(): GatewayConfig;
  readonly registry: Registry;
  readonly resolver: SecretResolver;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The admin key a `gatehouse start` primary generated (and printed) for its workers, used when `admin.key` is not set. */
  readonly generatedKey?: string;
  /** Apply a change to the data sections (validated, persisted, live when it resolves). */
  change(mutate: (doc: Record<string, unknown[]>) => void): Promise<{ ok: true } | { ok: false; status: number; message: string; issues: ReadonlyArray<{ path: string; message: string }> }>;
  /** Refresh one secret resource here and on every other gateway process. */
  refreshSecret(resource: string): Promise<{ refreshed: number; failed: number; published: boolean }>;
}

/** Largest Admin API request body. */
const MAX_BODY = 1024 * 1024;

class AdminError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Fields that are two spellings of one setting: a PATCH setting one drops the other from the stored value. */
const ALIASES: ReadonlyArray<readonly [string, string]> = [['uri', 'uris'], ['host', 'hosts'], ['remote_addr', 'remote_addrs']];

function withoutAliases(stored: unknown, patch: unknown): unknown {
  if (stored === null || typeof stored !== 'object' || patch === null || typeof patch !== 'object') return stored;
  const out = { ...(stored as Record<string, unknown>) };
  for (const [a, b] of ALIASES) {
    if (a in (patch as object) && (patch as Record<string, unknown>)[a] !== null) delete out[b];
    if (b in (patch as object) && (patch as Record<string, unknown>)[b] !== null) delete out[a];
  }
  return out;
}

/** Put back stored values where a write sends "******" for a writeOnly field. */
function restoreMasked(incoming: unknown, stored: unknown, paths: readonly string[], what: string): void {
  for (const p of paths) {
    const segs = p.split('.');
    let inc: any = incoming;
    let old: any = stored;
    for (const seg of segs.slice(0, -1)) {
      inc = inc?.[seg];
      old = old?.[seg];
    }
    const last = segs[segs.length - 1];
    if (inc && typeof inc === 'object' && inc[last] === MASK) {
      if (old && typeof old === 'object' && typeof old[last] === 'string') inc[last] = old[last];
      else throw new AdminError(400, `${what}.${p} is "******" but no value is stored to keep`);
    }
  }
}

/** Sub-path segments refused outright: as a key, JS reads and writes it as the prototype. */
const FORBIDDEN_SEGMENT = '__proto__';

function describeValue(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`;
}

/**
 * APISIX's SubPath PATCH: a copy of `stored` whose attribute at `path` is `value` (null deletes
 * it). Missing objects on the way are created, as APISIX does; crossing anything but an object is
 * refused. Own properties only, so "constructor" or "prototype" are plain keys, never inherited ones.
 */
function subPatch(stored: Record<string, unknown>, path: readonly string[], value: unknown): Record<string, unknown> {
  const out = structuredClone(stored);
  let cur: Record<string, unknown> = out;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i];
    let next = Object.hasOwn(cur, seg) ? cur[seg] : undefined;
    if (next === undefined) {
      if (value === null) return out;
      next = {};
      Object.defineProperty(cur, seg, { value: next, writable: true, enumerable: true, configurable: true });
    }
    if (next === null || typeof next !== 'object' || Array.isArray(next)) {
      throw new AdminError(400, `invalid sub-path "${path.join('/')}": "${path.slice(0, i + 1).join('/')}" is ${describeValue(next)}, not an object`);
    }
    cur = next as Record<string, unknown>;
  }
  const last = path[path.length - 1];
  if (value === null) {
    if (Object.hasOwn(cur, last)) delete cur[last];
  } else Object.defineProperty(cur, last, { value, writable: true, enumerable: true, configurable: true });
  return out;
}

const KINDS: ReadonlySet<string> = new Set(ADMIN_KINDS);

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export class AdminServer {
  private server: Server | undefined;
  private readonly allowed: (address: string) => boolean;
  private generatedKey: string | undefined;
  private checker: { key: string; check: (k: string | string[] | undefined) => boolean } | undefined;
  private fields: SecretFieldPaths | undefined;
  /** The OpenAPI description's text, made on first request (the registry is fixed for the server's life). */
  private openapi: string | undefined;

  constructor(private readonly host: AdminHost, private readonly listenOverride?: string) {
    this.allowed = allowList(host.config().admin?.allow ?? ['127.0.0.0/8']);
  }

  /** The admin key in force: `admin.key` (resolved when it is a reference) or a generated one. */
  private currentKey(): string | undefined {
    const configured = this.host.config().admin?.key;
    if (configured === undefined) return (this.generatedKey ??= this.host.generatedKey ?? generateAdminKey());
    if (!looksLikeReference(configured)) return configured;
    // fail closed: an admin key reference that cannot be resolved admits nobody
    return this.host.resolver.peek(parseReference(configured));
  }

  private keyOk(presented: string | string[] | undefined): boolean {
    const key = this.currentKey();
    if (key === undefined) return false;
    if (this.checker?.key !== key) this.checker = { key, check: keyChecker(key) };
    return this.checker.check(presented);
  }

  /** Start listening; prints a generated admin key once (stderr), never logs it. */
  async listen(): Promise<AddressInfo> {
    const cfg = this.host.config().admin;
    const spec = this.listenOverride ?? cfg?.listen ?? '127.0.0.1:9180';
    const { host: hostPart, port } = parseListen(spec, '127.0.0.1');
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        this.host.logger.error({ err: err.message }, 'admin request failed');
        if (!res.headersSent) send(res, 500, { error_msg: 'internal error' });
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, hostPart, () => resolve());
    });
    const addr = server.address() as AddressInfo;
    // a workers-mode key comes from the primary, which prints it once
    if (cfg?.key === undefined && this.host.generatedKey === undefined) printGeneratedAdminKey(this.currentKey()!);
    this.host.logger.info({ listen: `${addr.address}:${addr.port}` }, 'gatehouse admin API listening');
    return addr;
  }

  get address(): AddressInfo | undefined {
    return this.server?.address() as AddressInfo | undefined;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.allowed(req.socket.remoteAddress ?? '')) return send(res, 403, { error_msg: 'IP address not allowed' });
    const url = new URL(req.url ?? '/', 'http://admin');
    if (url.pathname === '/metrics') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error_msg: 'method not allowed' });
      const text = await this.host.metrics.render();
      res.writeHead(200, { 'content-type': this.host.metrics.contentType });
      return void res.end(req.method === 'HEAD' ? undefined : text);
    }
    const prefix = ADMIN_PREFIXES.find((p) => url.pathname.startsWith(p));
    if (!prefix) return send(res, 404, { error_msg: 'not found' });
    if (!this.keyOk(req.headers['x-api-key'])) return send(res, 401, { error_msg: 'failed to check token' });
    let segs: string[];
    try {
      segs = url.pathname.slice(prefix.length).split('/').filter((s) => s !== '').map(decodeURIComponent);
    } catch {
      return send(res, 400, { error_msg: 'the path has a malformed percent-encoding' });
    }
    if (segs.length === 1 && segs[0] === OPENAPI_DOCUMENT) {
      if (req.method !== 'GET') return send(res, 405, { error_msg: 'method not allowed' });
      const text = (this.openapi ??= JSON.stringify(adminOpenApi(this.host.registry)));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      return void res.end(text);
    }
    const [kind, ...rest] = segs;
    if (!KINDS.has(kind)) return send(res, 404, { error_msg: `unknown resource "${kind ?? ''}"` });
    const apisixKey = (id: string) => `/apisix/${kind}/${id}`;
    if (kind === 'secrets' && rest.length === 3 && rest[2] === 'refresh') {
      if (req.method !== 'POST') return send(res, 405, { error_msg: 'method not allowed' });
      const id = `${rest[0]}/${rest[1]}`;
      if (!this.host.config().secrets.some((s) => s.id === id)) return send(res, 404, { error_msg: `secret resource "${id}" not found` });
      const r = await this.host.refreshSecret(id);
      return send(res, 200, { key: apisixKey(id), refreshed: r.refreshed, failed: r.failed, published: r.published });
    }
    if (req.method === 'PUT' || req.method === 'PATCH' || req.method === 'DELETE' || req.method === 'POST') {
      if (kind === 'plugins') return send(res, 405, { error_msg: 'method not allowed' });
      // APISIX: POST creates a route or upstream with a generated id; with an id, use PUT
      if (req.method === 'POST' && (rest.length > 0 || (kind !== 'routes' && kind !== 'upstreams'))) {
        return send(res, 405, { error_msg: rest.length > 0 ? 'POST creates with a generated id: use PUT to write a given id' : `POST is not supported for ${kind}: use PUT` });
      }
      const idLen = kind === 'secrets' ? 2 : 1;
      if (req.method === 'PATCH' && rest.length > idLen) {
        // the raw segments after the id, empty ones kept: "plugins//x" is refused, not read as "plugins/x"
        const raw = url.pathname.slice(prefix.length).split('/');
        let i = 0;
        for (let seen = 0; seen < 1 + idLen; i++) if (raw[i] !== '') seen++;
        // its shape is checked in write(), after the readonly check (403 first, as for every write)
        return this.write(req, res, kind, rest.slice(0, idLen), raw.slice(i).map(decodeURIComponent));
      }
      return this.write(req, res, kind, rest);
    }
    if (req.method !== 'GET') return send(res, 405, { error_msg: 'method not allowed' });
    if (kind === 'plugins') {
      const describe = (p: { name: string; version: string; priority: number; schema: unknown; consumerSchema?: unknown }) => ({ name: p.name, version: p.version, priority: p.priority, schema: p.schema, consumer_schema: p.consumerSchema ?? null });
      if (rest.length === 0) {
        const list = [...this.host.registry.plugins.values()].map(describe);
        return send(res, 200, { total: list.length, list });
      }
      const one = rest.length === 1 ? this.host.registry.plugins.get(rest[0]) : undefined;
      if (!one) return send(res, 404, { error_msg: rest.length === 1 ? `plugin "${rest[0]}" not found` : 'not found' });
      return send(res, 200, describe(one));
    }
    const items = this.items(kind);
    const id = kind === 'secrets' ? (rest.length === 2 ? `${rest[0]}/${rest[1]}` : rest.length === 0 ? undefined : null) : rest.length === 1 ? rest[0] : rest.length === 0 ? undefined : null;
    if (id === null) return send(res, 404, { error_msg: 'not found' });
    if (id === undefined) return send(res, 200, { total: items.length, list: items.map(([k, v]) => ({ key: apisixKey(k), value: v })) });
    const found = items.find(([k]) => k === id);
    if (!found) return send(res, 404, { error_msg: `${kind.slice(0, -1)} "${id}" not found` });
    return send(res, 200, { key: apisixKey(id), value: found[1] });
  }

  /**
   * PUT (create or replace), PATCH (merge, or with `sub` APISIX's SubPath PATCH: the body replaces
   * the attribute `sub` names), DELETE of one resource; live when answered.
   */
  private async write(req: IncomingMessage, res: ServerResponse, kind: string, rest: string[], sub?: readonly string[]): Promise<void> {
    let body: unknown;
    if (req.method !== 'DELETE') {
      const declared = Number(req.headers['content-length']);
      if (declared > MAX_BODY) return this.tooLarge(req, res);
      const raw = await readUpTo(req, MAX_BODY);
      if (raw === null) return this.tooLarge(req, res);
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return send(res, 400, { error_msg: 'the body is not valid JSON' });
      }
      if (sub === undefined && (body === null || typeof body !== 'object' || Array.isArray(body))) return send(res, 400, { error_msg: 'the body must be a JSON object' });
    }
    const idField = kind === 'consumers' ? 'username' : 'id';
    let id: string | undefined = kind === 'secrets' ? (rest.length === 2 ? `${rest[0]}/${rest[1]}` : undefined) : rest[0];
    let generated = false;
    if (req.method === 'POST') {
      // APISIX-style generated id: time-ordered and unique
      const given = (body as Record<string, unknown>).id;
      if (given !== undefined) return send(res, 400, { error_msg: 'POST generates the id: remove "id" from the body, or PUT to the id' });
      id = `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
      generated = true;
    }
    if (rest.length > (kind === 'secrets' ? 2 : 1)) return send(res, 404, { error_msg: 'not found' });
    // APISIX: PUT /consumers takes the username from the body
    if (id === undefined && kind === 'consumers' && req.method === 'PUT') id = typeof (body as Record<string, unknown>).username === 'string' ? ((body as Record<string, unknown>).username as string) : undefined;
    if (id === undefined) return send(res, 400, { error_msg: kind === 'consumers' && req.method === 'PUT' && rest.length === 0 ? 'the username is missing from the body' : `the ${idField} is missing from the path` });
    // a sub-path body is one attribute's value: its fields are not the resource's
    const given = body !== undefined && sub === undefined && body !== null && typeof body === 'object' ? (body as Record<string, unknown>)[idField] : undefined;
    if (given !== undefined && String(given) !== id) return send(res, 400, { error_msg: `${idField} "${String(given)}" in the body does not match "${id}" in the path` });
    const what = `${kind}/${id}`;
    const masks = sub === undefined ? this.maskPaths(kind, id, body ?? {}) : [];
    let created = false;
    const result = await this.host.change((doc) => {
      const list = doc[kind];
      const idx = list.findIndex((x) => x !== null && typeof x === 'object' && String((x as Record<string, unknown>)[idField]) === id);
      if (req.method === 'DELETE') {
        if (idx === -1) throw new AdminError(404, `${what} not found`);
        if (kind === 'upstreams') {
          const users = (doc.routes as Array<Record<string, unknown>>).filter((r) => String(r.upstream_id) === id).map((r) => String(r.id));
          if (users.length) throw new AdminError(400, `upstream "${id}" is still used by routes: ${users.join(', ')}`);
        }
        if (kind === 'secrets') {
          const uses = (x: unknown) => JSON.stringify(x ?? null).includes(`"$secret://${id}/`);
          const users = [
            ...(doc.routes as Array<Record<string, unknown>>).filter(uses).map((r) => `route ${String(r.id)}`),
            ...(doc.consumers as Array<Record<string, unknown>>).filter(uses).map((c) => `consumer ${String(c.username)}`),
            ...(doc.secrets as Array<Record<string, unknown>>).filter((x) => String(x.id) !== id && uses(x)).map((x) => `secret ${String(x.id)}`),
          ];
          if (users.length) throw new AdminError(400, `secret resource "${id}" is still referenced by ${users.join(', ')}`);
        }
        list.splice(idx, 1);
        return;
      }
      if (req.method === 'PATCH' && idx === -1) throw new AdminError(404, `${what} not found`);
      if (sub !== undefined) {
        if (sub.includes('')) throw new AdminError(400, `the sub-path "${sub.join('/')}" has an empty segment`);
        if (sub.includes(FORBIDDEN_SEGMENT)) throw new AdminError(400, `the sub-path segment "${FORBIDDEN_SEGMENT}" is not allowed`);
        if (sub[0] === idField) throw new AdminError(400, `the ${idField} cannot be changed through a sub-path: PUT the resource to its new ${idField}`);
        const stored = list[idx] as Record<string, unknown>;
        const next = subPatch(sub.length === 1 ? (withoutAliases(stored, { [sub[0]]: body }) as Record<string, unknown>) : stored, sub, body);
        // "******" anywhere in the new value keeps what is stored there, as a full PATCH does
        restoreMasked(next, stored, this.maskPaths(kind, id!, next), what);
        list[idx] = next;
        return;
      }
      const next = (req.method === 'PATCH' ? mergePatch(withoutAliases(list[idx], body), body) : structuredClone(body)) as Record<string, unknown>;
      next[idField] = kind === 'routes' || kind === 'upstreams' ? (typeof given === 'number' ? given : id) : id;
      restoreMasked(next, idx === -1 ? undefined : list[idx], masks, what);
      if (idx === -1) {
        // counted on the document just read from the store: in etcd mode, every node's writes
        const limit = this.host.config().admin?.limits?.[kind as keyof AdminLimits];
        if (limit !== undefined && list.length >= limit) {
          throw new AdminError(400, `the ${kind} limit is reached (admin.limits.${kind}: ${limit}, stored: ${list.length}): delete ${kind}, or raise admin.limits.${kind} in the config file`);
        }
        created = true;
        list.push(next);
      } else list[idx] = next;
    });
    if (!result.ok) return send(res, result.status, { error_msg: result.message, ...(result.issues.length ? { errors: result.issues.map((i) => `${i.path}: ${i.message}`) } : {}) });
    const key = `/apisix/${kind}/${id}`;
    if (req.method === 'DELETE') return send(res, 200, { deleted: '1', key });
    const value = this.items(kind).find(([k]) => k === id)?.[1];
    return send(res, created || generated ? 201 : 200, { key, value });
  }

  /** 413 with `Connection: close`, then a lingering close: the client sees the answer, not a reset. */
  private tooLarge(req: IncomingMessage, res: ServerResponse): void {
    const text = JSON.stringify({ error_msg: `request body larger than ${MAX_BODY} bytes` });
    lingerOnClose(req, res);
    res.writeHead(413, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' });
    res.end(text);
  }

  /** writeOnly paths of a resource (by its plugins or provider), for masking and "******" round trips. */
  private maskPaths(kind: string, id: string, item: unknown): readonly string[] {
    const o = { ...((item ?? {}) as Record<string, unknown>) };
    if (kind === 'secrets') o.id = id;
    return (this.fields ??= secretFieldPaths(this.host.registry))(kind as 'routes', o);
  }

  /** [id, redacted value] pairs of one resource kind from the live config. */
  private items(kind: string): Array<[string, unknown]> {
    const c = this.host.config();
    const reg = this.host.registry;
    switch (kind) {
      case 'routes':
        return c.routes.map((r) => [r.id, { ...r, plugins: this.redactPlugins(r.plugins, false) }]);
      case 'upstreams':
        return c.upstreams.map((u) => [u.id!, u]);
      case 'consumers':
        return c.consumers.map((k) => [k.username, { ...k, plugins: this.redactPlugins(k.plugins, true) }]);
      case 'secrets':
        return c.secrets.map((s) => {
          const manager = s.id.slice(0, s.id.indexOf('/'));
          return [s.id, redact(s, writeOnlyPaths(reg.providers.get(manager)?.schema))];
        });
      default:
        return [];
    }
  }

  private redactPlugins(plugins: Readonly<Record<string, unknown>>, consumer: boolean): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, conf] of Object.entries(plugins)) {
      const p = this.host.registry.plugins.get(name);
      out[name] = redact(conf, writeOnlyPaths(consumer ? p?.consumerSchema : p?.schema));
    }
    return out;
  }
}

/**
 * The whole body, or null as soon as it grows past `max` (reading stops there; the caller answers
 * 413 and the lingering close drops the rest). Not `for await`: leaving that loop early destroys
 * the request, and with it the socket, before the answer is written.
 */
function readUpTo(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > max) {
        done();
        resolve(null);
      } else chunks.push(c);
    };
    const onEnd = (): void => {
      done();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    function done(): void {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    }
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
