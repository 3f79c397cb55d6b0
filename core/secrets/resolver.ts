// SecretResolver: the per-node secret cache. Fresh for `ttl` (or a shorter backend lease), then
// stale-while-revalidate with one background refresh; the last good value survives backend
// failures for `stale_if_error`; "not found" is cached for `neg_ttl`; concurrent misses share one
// backend call; values in use are refreshed ahead of expiry; a changed value emits an event that
// carries the previous one for `rotation_grace`. Values never reach logs, errors or metrics.
// This file is the resolver's API and its backend calls (shared, batched), metrics, logs and change
// events; what an answer makes of an entry, and when it is due, is cache-entry.ts; the timer that
// refreshes due entries is refresh-scheduler.ts.
import 'reflect-metadata';
import { inject, injectable } from 'tsyringe';
import type { Clock, Logger, Metrics, Counter, SecretBackend, SecretValue } from '../contracts';
import { CLOCK, LOGGER, METRICS, SECRET_BACKEND_LOOKUP, TIMERS, type Timers } from '../tokens';
import type { SecretRef } from './reference';
import { DEFAULT_CACHE_SETTINGS, forget, newEntry, nextDue, record, type Entry, type SecretCacheSettings } from './cache-entry';
import { realTimers, RefreshScheduler } from './refresh-scheduler';

// what the gateway and its container take from here

/** A reference could not be resolved. Names the reference, the provider and the cause, never a value. */
export class SecretUnavailableError extends Error {
  readonly code = 'GH_ERR_SECRET_UNRESOLVED';
  constructor(
    readonly reference: string,
    readonly provider: string,
    readonly reason: string,
    /** true when the backend answered that the secret or field does not exist */
    readonly notFound: boolean,
  ) {
    super(`secret unavailable: ${reference} (provider ${provider}): ${reason}`);
    this.name = 'SecretUnavailableError';
  }
}

/** Emitted when a tracked reference's value changes, appears or disappears. */
export interface SecretChange {
  readonly ref: SecretRef;
  /** The new value; undefined when the secret is gone (not found, or stale beyond stale_if_error). */
  readonly value: string | undefined;
  /** The value it replaced, valid until `previousUntil` (ms) for rotation grace. */
  readonly previous: string | undefined;
  readonly previousUntil: number;
}

/** Where the resolver finds the backend of a resource (`vault/gateway`, `env`). */
export type BackendLookup = (resource: string) => SecretBackend | undefined;

@injectable()
export class SecretResolver {
  private settings: SecretCacheSettings = DEFAULT_CACHE_SETTINGS;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<(c: SecretChange) => void>();
  private readonly refresher: RefreshScheduler;
  private readonly m: {
    fetches: Counter<'provider' | 'result'>;
    hits: Counter<'provider'>;
    misses: Counter<'provider'>;
    stale: Counter<'provider'>;
    errors: Counter<'provider'>;
  } | null;

  /** The settings are {@link DEFAULT_CACHE_SETTINGS} until {@link configure} replaces them. */
  constructor(
    @inject(SECRET_BACKEND_LOOKUP) private readonly backends: BackendLookup,
    @inject(CLOCK) private readonly clock: Clock,
    @inject(LOGGER) private readonly logger: Logger,
    @inject(METRICS, { isOptional: true }) mm?: Metrics,
    @inject(TIMERS, { isOptional: true }) timers?: Timers,
  ) {
    this.refresher = new RefreshScheduler(timers ?? realTimers, clock, this.entries, (resource, list) => this.fetchBatch(resource, list));
    this.m = mm
      ? {
          fetches: mm.counter('secret_fetches_total', 'Secret backend fetches by provider and result', ['provider', 'result']),
          hits: mm.counter('secret_cache_hits_total', 'Secret cache hits', ['provider']),
          misses: mm.counter('secret_cache_misses_total', 'Secret cache misses (the caller waited for the backend)', ['provider']),
          stale: mm.counter('secret_stale_serves_total', 'Stale secret values served', ['provider']),
          errors: mm.counter('secret_errors_total', 'Secret backend failures', ['provider']),
        }
      : null;
  }

  /** Replace cache settings (a reload may change `secret_cache`); applies from the next fetch. */
  configure(settings: SecretCacheSettings): void {
    this.settings = settings;
  }

  /** Listen for value changes of tracked references. @returns unsubscribe */
  onChange(fn: (c: SecretChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Resolve a reference: the cached value when fresh (or stale while a refresh runs, or within
   * stale_if_error after failures), else one backend call shared by all concurrent callers.
   * @throws SecretUnavailableError when no value can be had; never returns '' for a missing value
   */
  async resolve(ref: SecretRef): Promise<string> {
    const e = this.entry(ref);
    const now = this.clock.now();
    if (e.state === 'value' && e.value !== undefined) {
      if (now < e.freshUntil) {
        this.m?.hits.inc({ provider: ref.manager });
        return e.value;
      }
      if (now < e.staleUntil) {
        this.m?.stale.inc({ provider: ref.manager });
        void this.fetch(e).catch(noop);
        return e.value;
      }
    }
    if (e.state === 'missing' && now < e.missingUntil) {
      this.m?.hits.inc({ provider: ref.manager });
      throw this.unavailable(e);
    }
    this.m?.misses.inc({ provider: ref.manager });
    await this.fetch(e);
    if (e.state === 'value' && e.value !== undefined) return e.value;
    throw this.unavailable(e);
  }

  /**
   * Resolve many at once (start-up warm-up): uses a backend's `getMany` (e.g. AWS
   * BatchGetSecretValue) for references not already cached.
   * @returns for each reference, its value or the SecretUnavailableError
   */
  async resolveMany(refs: readonly SecretRef[]): Promise<Map<string, string | SecretUnavailableError>> {
    const byResource = new Map<string, Set<Entry>>();
    const now = this.clock.now();
    for (const r of refs) {
      const e = this.entry(r);
      if ((e.state === 'value' && now < e.freshUntil) || e.inflight || (e.state === 'missing' && now < e.missingUntil)) continue;
      if (!this.backends(r.resource)?.getMany) continue;
      let set = byResource.get(r.resource);
      if (!set) byResource.set(r.resource, (set = new Set()));
      set.add(e);
    }
    await Promise.all([...byResource.entries()].map(([resource, set]) => this.fetchBatch(resource, [...set])));
    const batched = new Set<Entry>();
    for (const set of byResource.values()) for (const e of set) batched.add(e);
    const out = new Map<string, string | SecretUnavailableError>();
    await Promise.all(
      refs.map(async (r) => {
        try {
          // the batch just failed for it: asking again one by one would double the load on a
          // backend that is down or throttling (retries are the background refresh's job)
          const e = this.entry(r);
          if (batched.has(e) && e.state === 'error') throw this.unavailable(e);
          out.set(r.key, await this.resolve(r));
        } catch (err) {
          out.set(r.key, err instanceof SecretUnavailableError ? err : new SecretUnavailableError(r.text, r.manager, String(err), false));
        }
      }),
    );
    return out;
  }

  /** The cached value, if one may be served now (no backend call). */
  peek(ref: SecretRef): string | undefined {
    const e = this.entries.get(ref.key);
    if (!e || e.state !== 'value') return undefined;
    return this.clock.now() < e.staleUntil ? e.value : undefined;
  }

  /** The value a rotation replaced, while its grace lasts. */
  previous(ref: SecretRef): { value: string; until: number } | undefined {
    const e = this.entries.get(ref.key);
    if (!e || e.previous === undefined || this.clock.now() >= e.previousUntil) return undefined;
    return { value: e.previous, until: e.previousUntil };
  }

  /**
   * Declare which references the live config uses: these are refreshed ahead of expiry (so no
   * request waits on a backend) and their changes are emitted. Others stop being refreshed.
   */
  track(refs: Iterable<SecretRef>): void {
    const keep = new Set<string>();
    for (const r of refs) {
      keep.add(r.key);
      const e = this.entry(r);
      if (!e.tracked) {
        e.tracked = true;
        this.reschedule(e);
      }
    }
    for (const e of this.entries.values()) {
      if (e.tracked && !keep.has(e.ref.key)) {
        e.tracked = false;
        e.dueAt = 0;
      }
    }
  }

  /** Forget every cached value of a resource at once (its config changed or it was deleted). */
  invalidateResource(resource: string): void {
    for (const e of this.entries.values()) {
      if (e.ref.resource !== resource) continue;
      forget(e);
      if (e.tracked) this.reschedule(e, this.clock.now());
    }
  }

  /** Fetch every cached reference of a resource now (Admin API refresh). */
  async refreshResource(resource: string): Promise<{ refreshed: number; failed: number }> {
    const list = [...this.entries.values()].filter((e) => e.ref.resource === resource);
    let failed = 0;
    await Promise.all(
      list.map(async (e) => {
        e.freshUntil = 0; // a forced refresh never returns the cached value
        await this.fetch(e);
        if (e.state === 'error') failed++;
      }),
    );
    return { refreshed: list.length - failed, failed };
  }

  /** Number of cached entries (tests, metrics). */
  get size(): number {
    return this.entries.size;
  }

  close(): void {
    this.refresher.close();
    this.listeners.clear();
  }

  private entry(ref: SecretRef): Entry {
    let e = this.entries.get(ref.key);
    if (!e) {
      e = newEntry(ref);
      this.entries.set(ref.key, e);
    }
    return e;
  }

  private unavailable(e: Entry): SecretUnavailableError {
    if (e.state === 'missing') return new SecretUnavailableError(e.ref.text, e.ref.manager, this.notFound(e.ref), true);
    return new SecretUnavailableError(e.ref.text, e.ref.manager, e.lastError ?? 'not fetched yet', false);
  }

  /** "not found", with where the backend looked when it can say (the file provider's path). */
  private notFound(ref: SecretRef): string {
    const where = this.backends(ref.resource)?.locate?.({ path: ref.path, field: ref.field, version: ref.version });
    return where === undefined ? 'not found' : `not found (looked for ${where})`;
  }

  /** One backend call for this entry, shared by everyone who needs it meanwhile. */
  private fetch(e: Entry): Promise<void> {
    if (e.inflight) return e.inflight;
    const backend = this.backends(e.ref.resource);
    const p = (async () => {
      let result: SecretValue | undefined | Error;
      if (!backend) result = new Error(`secret resource ${e.ref.resource} is not configured`);
      else {
        try {
          result = await backend.get({ path: e.ref.path, field: e.ref.field, version: e.ref.version });
        } catch (err) {
          result = err instanceof Error ? err : new Error(String(err));
        }
      }
      this.apply(e, result);
    })().finally(() => {
      e.inflight = null;
    });
    e.inflight = p;
    return p;
  }

  /**
   * Fetch many entries of one resource with one `getMany` call (AWS BatchGetSecretValue; others
   * fetch a bounded number at a time), each entry shared with concurrent callers meanwhile.
   */
  private async fetchBatch(resource: string, list: Entry[]): Promise<void> {
    const b = this.backends(resource);
    if (!b?.getMany) {
      await Promise.all(list.map((e) => this.fetch(e).catch(noop)));
      return;
    }
    let done: () => void = noop;
    const shared = new Promise<void>((r) => (done = r));
    for (const e of list) e.inflight = shared;
    try {
      const results = await b.getMany(list.map((e) => ({ path: e.ref.path, field: e.ref.field, version: e.ref.version })));
      list.forEach((e, i) => this.apply(e, results[i]));
    } catch (err) {
      for (const e of list) this.apply(e, err instanceof Error ? err : new Error(String(err)));
    } finally {
      for (const e of list) e.inflight = null;
      done();
    }
  }

  /** Record a backend answer (cache-entry.ts), count and log it, emit a change of a tracked value, reschedule. */
  private apply(e: Entry, answer: SecretValue | undefined | Error): void {
    const { result, news, changed } = record(e, answer, this.clock.now(), this.settings);
    const provider = e.ref.manager;
    const reference = e.ref.text;
    this.m?.fetches.inc({ provider, result });
    if (result === 'error') this.m?.errors.inc({ provider });
    if (news === 'stale') this.logger.warn({ reference, provider, cause: e.lastError, stale_until: new Date(e.staleUntil).toISOString() }, 'secret refresh failed; serving the last good value');
    else if (news === 'unavailable') this.logger.error({ reference, provider, cause: e.lastError }, 'secret unavailable');
    else if (news === 'not_found') this.logger.error({ reference, provider, cause: answer === undefined ? this.notFound(e.ref) : 'empty value' }, 'secret unavailable');
    else if (news === 'recovered') this.logger.info({ reference, provider }, 'secret available again');
    if (changed && e.tracked) this.emit(e, e.state === 'value' ? e.value : undefined);
    if (e.tracked) this.reschedule(e);
  }

  private emit(e: Entry, value: string | undefined): void {
    const change: SecretChange = { ref: e.ref, value, previous: e.previous, previousUntil: e.previousUntil };
    for (const fn of this.listeners) {
      try {
        fn(change);
      } catch (err) {
        this.logger.error({ reference: e.ref.text, err: (err as Error).message }, 'secret change listener failed');
      }
    }
  }

  /** Set when a tracked entry is next refreshed in the background (default: as its state says). */
  private reschedule(e: Entry, due = nextDue(e, this.clock.now())): void {
    e.dueAt = due;
    this.refresher.armFor(due);
  }
}

function noop(): void {}
