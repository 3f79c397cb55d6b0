// The Admin API listener (read side): resources with APISIX envelopes under /admin/ and
// /apisix/admin/, plugin schemas, forced secret refresh, and Prometheus /metrics. Every call is
// checked against admin.allow; every call but /metrics needs the X-API-KEY admin key.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger, Metrics } from '../contracts';
import type { GatewayConfig } from '../config/types';
import type { Registry } from '../config/validate';
import type { SecretResolver } from '../secrets/resolver';
import { looksLikeReference, parseReference } from '../secrets/reference';
import { allowList, generateAdminKey, keyChecker } from './access';
import { redact, writeOnlyPaths } from './redact';

/** What the Admin API reads from its gateway. */
export interface AdminHost {
  /** The live config. */
  config(): GatewayConfig;
  readonly registry: Registry;
  readonly resolver: SecretResolver;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

const PREFIXES = ['/apisix/admin/', '/admin/'];
const KINDS = new Set(['routes', 'upstreams', 'consumers', 'secrets', 'plugins']);

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

  constructor(private readonly host: AdminHost, private readonly listenOverride?: string) {
    this.allowed = allowList(host.config().admin?.allow ?? ['127.0.0.0/8']);
  }

  /** The admin key in force: `admin.key` (resolved when it is a reference) or a generated one. */
  private currentKey(): string | undefined {
    const configured = this.host.config().admin?.key;
    if (configured === undefined) return (this.generatedKey ??= generateAdminKey());
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
    const i = spec.lastIndexOf(':');
    const hostPart = spec.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = Number(spec.slice(i + 1));
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
    if (cfg?.key === undefined) {
      process.stderr.write(`gatehouse: no admin.key configured; this run's admin key (X-API-KEY) is ${this.currentKey()}\n`);
    }
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
    const prefix = PREFIXES.find((p) => url.pathname.startsWith(p));
    if (!prefix) return send(res, 404, { error_msg: 'not found' });
    if (!this.keyOk(req.headers['x-api-key'])) return send(res, 401, { error_msg: 'failed to check token' });
    const segs = url.pathname.slice(prefix.length).split('/').filter((s) => s !== '').map(decodeURIComponent);
    const [kind, ...rest] = segs;
    if (!KINDS.has(kind)) return send(res, 404, { error_msg: `unknown resource "${kind ?? ''}"` });
    const apisixKey = (id: string) => `/apisix/${kind}/${id}`;
    if (kind === 'secrets' && rest.length === 3 && rest[2] === 'refresh') {
      if (req.method !== 'POST') return send(res, 405, { error_msg: 'method not allowed' });
      const id = `${rest[0]}/${rest[1]}`;
      if (!this.host.config().secrets.some((s) => s.id === id)) return send(res, 404, { error_msg: `secret resource "${id}" not found` });
      const r = await this.host.resolver.refreshResource(id);
      return send(res, 200, { key: apisixKey(id), refreshed: r.refreshed, failed: r.failed });
    }
    if (req.method !== 'GET') {
      return send(res, 501, { error_msg: 'configuration writes through the Admin API are not available yet: change the config file (it is reloaded live)' });
    }
    if (kind === 'plugins') {
      const list = [...this.host.registry.plugins.values()].map((p) => ({ name: p.name, version: p.version, priority: p.priority, schema: p.schema, consumer_schema: p.consumerSchema ?? null }));
      return send(res, 200, { total: list.length, list });
    }
    const items = this.items(kind);
    const id = kind === 'secrets' ? (rest.length === 2 ? `${rest[0]}/${rest[1]}` : rest.length === 0 ? undefined : null) : rest.length === 1 ? rest[0] : rest.length === 0 ? undefined : null;
    if (id === null) return send(res, 404, { error_msg: 'not found' });
    if (id === undefined) return send(res, 200, { total: items.length, list: items.map(([k, v]) => ({ key: apisixKey(k), value: v })) });
    const found = items.find(([k]) => k === id);
    if (!found) return send(res, 404, { error_msg: `${kind.slice(0, -1)} "${id}" not found` });
    return send(res, 200, { key: apisixKey(id), value: found[1] });
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
