// The live secret backends of a gateway: one per `secrets:` resource (plus the built-in env one),
// built from the resource's config with its own references resolved, kept across reloads while
// that resolved config is unchanged, replaced (and its cached values dropped) when it changes.
import { createHash } from 'node:crypto';
import type { Clock, Logger, ProviderServices, SecretBackend, SecretRequest, SecretValue } from '../contracts';
import type { GatewayConfig } from '../config/types';
import type { Registry } from '../config/registry';
import { joinPath } from '../config/paths';
import { looksLikeReference, type ReferenceSite } from './reference';
import type { SecretResolver } from './resolver';

/** Replace every reference string in `v` by `lookup(text)`; other values are copied. */
export function substituteReferences(v: unknown, lookup: (text: string) => string): unknown {
  if (typeof v === 'string') return looksLikeReference(v) ? lookup(v) : v;
  if (Array.isArray(v)) return v.map((x) => substituteReferences(x, lookup));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = substituteReferences(x, lookup);
    return out;
  }
  return v;
}

/** Every reference string in `v`. */
export function referencesIn(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') {
    if (looksLikeReference(v)) out.push(v);
  } else if (Array.isArray(v)) v.forEach((x) => referencesIn(x, out));
  else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) referencesIn(x, out);
  return out;
}

/** Does `v` hold any reference string? */
export function hasReferences(v: unknown): boolean {
  if (typeof v === 'string') return looksLikeReference(v);
  if (Array.isArray(v)) return v.some(hasReferences);
  if (v !== null && typeof v === 'object') return Object.values(v).some(hasReferences);
  return false;
}

const RETRY_CREATE_MS = 5000;
/** Concurrent single fetches when warming a backend that has no batch call. */
const WARM_CONCURRENCY = 32;

/**
 * A backend created on first use. A provider whose `create` fails (e.g. a login while Vault is
 * down) yields a backend whose calls fail with that cause; creation is tried again on a later
 * call, at most every 5 s. So a resource never blocks a load and recovers by itself.
 */
class LazyBackend implements SecretBackend {
  private inner: SecretBackend | undefined;
  private creating: Promise<SecretBackend> | undefined;
  private failedAt = 0;
  private failure: Error | undefined;
  private closed = false;

  constructor(private readonly make: () => SecretBackend | Promise<SecretBackend>, private readonly clock: Clock, readonly resource: string) {}

  private async backend(): Promise<SecretBackend> {
    if (this.inner) return this.inner;
    if (this.closed) throw new Error(`secret resource ${this.resource} was removed`);
    if (this.failure && this.clock.now() - this.failedAt < RETRY_CREATE_MS) throw this.failure;
    this.creating ??= (async () => {
      try {
        const b = await this.make();
        if (this.closed) await b.close?.();
        this.inner = b;
        this.failure = undefined;
        return b;
      } catch (err) {
        this.failedAt = this.clock.now();
        this.failure = new Error(`secret resource ${this.resource} cannot be used: ${(err as Error).message}`);
        throw this.failure;
      } finally {
        this.creating = undefined;
      }
    })();
    return this.creating;
  }

  async get(req: SecretRequest): Promise<SecretValue | undefined> {
    return (await this.backend()).get(req);
  }

  async getMany(reqs: readonly SecretRequest[]): Promise<Array<SecretValue | undefined | Error>> {
    const b = await this.backend();
    if (b.getMany) return b.getMany(reqs);
    // no batch call: one get per request, a bounded number at a time (100 000 consumer keys must
    // not open 100 000 connections)
    const out = new Array<SecretValue | undefined | Error>(reqs.length);
    let next = 0;
    const worker = async () => {
      while (next < reqs.length) {
        const i = next++;
        out[i] = await b.get(reqs[i]).catch((e: Error) => e);
      }
    };
    await Promise.all(Array.from({ length: Math.min(WARM_CONCURRENCY, reqs.length) }, worker));
    return out;
  }

  locate(req: SecretRequest): string | undefined {
    return this.inner?.locate?.(req);
  }

  async close(): Promise<void> {
    this.closed = true;
    const b = this.inner;
    this.inner = undefined;
    await b?.close?.();
  }
}

/** A resource whose own references cannot be resolved: every call fails with that cause. */
function unusable(resource: string, cause: string): SecretBackend {
  const err = new Error(`secret resource ${resource} cannot be used: ${cause}`);
  return {
    get: () => Promise.reject(err),
  };
}

interface Live {
  fingerprint: string;
  backend: SecretBackend;
}

export class SecretBackends {
  private readonly live = new Map<string, Live>();
  private readonly env: SecretBackend;

  constructor(
    private readonly registry: Registry,
    private readonly services: ProviderServices,
    private readonly logger: Logger,
  ) {
    const envProvider = registry.providers.get('env');
    this.env = envProvider ? (envProvider.create({}, services) as SecretBackend) : unusable('env', 'the env provider is not registered');
  }

  /** The backend of a resource id (`vault/gateway`, or `env`). */
  readonly lookup = (resource: string): SecretBackend | undefined => (resource === 'env' ? this.env : this.live.get(resource)?.backend);

  /**
   * Make the live backends match `config.secrets`: resolve each resource's own references
   * (resources referenced by others first), check the resolved config against the provider's
   * schema, keep backends whose resolved config is unchanged, replace the others (dropping their
   * cached values at once) and close removed ones.
   */
  async sync(config: GatewayConfig, sites: readonly ReferenceSite[], resolver: SecretResolver): Promise<void> {
    const wanted = new Set(config.secrets.map((s) => s.id));
    for (const [id, l] of this.live) {
      if (wanted.has(id)) continue;
      this.live.delete(id);
      resolver.invalidateResource(id);
      void Promise.resolve(l.backend.close?.()).catch(() => undefined);
    }
    const done = new Set<string>();
    const order = this.order(config, sites);
    for (const id of order) {
      const i = config.secrets.findIndex((s) => s.id === id);
      const s = config.secrets[i];
      const path = joinPath('secrets', i);
      const manager = id.slice(0, id.indexOf('/'));
      const provider = this.registry.providers.get(manager)!;
      const { id: _id, ...fields } = s;
      let next: { fingerprint: string; make: () => SecretBackend };
      const own = sites.filter((x) => x.path === path || x.path.startsWith(`${path}.`) || x.path.startsWith(`${path}[`));
      const failures: string[] = [];
      const values = new Map<string, string>();
      for (const site of own) {
        try {
          values.set(site.ref.text, await resolver.resolve(site.ref));
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
      if (failures.length) {
        next = { fingerprint: `unusable:${failures.join('|')}`, make: () => unusable(id, failures[0]) };
      } else {
        const resolved = substituteReferences(fields, (t) => values.get(t)!) as Record<string, unknown>;
        const issues = this.registry.providerCheck(manager)!(resolved, path, false);
        if (issues.length) {
          const why = issues.map((x) => `${x.path}: ${x.message}`).join('; ');
          // names the field and the rule, never the resolved value
          this.logger.error({ resource: id, errors: issues.map((x) => `${x.path}: ${x.message}`) }, 'a secret resource resolves to an invalid config');
          next = { fingerprint: `invalid:${why}`, make: () => unusable(id, `resolved config is invalid (${why})`) };
        } else {
          const fingerprint = createHash('sha256').update(JSON.stringify(resolved)).digest('hex');
          const frozen = Object.freeze(resolved);
          next = { fingerprint, make: () => new LazyBackend(() => provider.create(frozen, this.providerServices(id)), this.services.clock, id) };
        }
      }
      done.add(id);
      const cur = this.live.get(id);
      if (cur && cur.fingerprint === next.fingerprint) continue;
      if (cur) void Promise.resolve(cur.backend.close?.()).catch(() => undefined);
      this.live.set(id, { fingerprint: next.fingerprint, backend: next.make() });
      if (cur) resolver.invalidateResource(id);
    }
  }

  /** Resources in an order where every resource comes after those its fields reference. */
  private order(config: GatewayConfig, sites: readonly ReferenceSite[]): string[] {
    const ids = config.secrets.map((s) => s.id);
    const deps = new Map<string, string[]>(ids.map((id) => [id, []]));
    for (const site of sites) {
      const m = /^secrets\[(\d+)\]/.exec(site.path);
      if (m && site.ref.manager !== 'env') deps.get(ids[Number(m[1])])!.push(site.ref.resource);
    }
    const out: string[] = [];
    const seen = new Set<string>();
    const visit = (id: string) => {
      if (seen.has(id)) return;
      seen.add(id); // cycles were rejected by validation
      for (const d of deps.get(id) ?? []) visit(d);
      out.push(id);
    };
    ids.forEach(visit);
    return out;
  }

  private providerServices(resource: string): ProviderServices {
    return { ...this.services, logger: this.logger.child({ secret_resource: resource }) };
  }

  /** Close every backend. */
  async closeAll(): Promise<void> {
    const all = [...this.live.values()];
    this.live.clear();
    await Promise.all(all.map((l) => Promise.resolve(l.backend.close?.()).catch(() => undefined)));
  }
}
