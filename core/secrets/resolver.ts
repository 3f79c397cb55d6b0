// SecretResolver: the per-node secret cache. Fresh for `ttl` (or a shorter backend lease), then
// stale-while-revalidate with one background refresh; the last good value survives backend
// failures for `stale_if_error`; "not found" is cached for `neg_ttl`; concurrent misses share one
// backend call; values in use are refreshed ahead of expiry; a changed value emits an event that
// carries the previous one for `rotation_grace`. Values never reach logs, errors or metrics.
import 'reflect-metadata';
import { inject, injectable } from 'tsyringe';
import type { Clock, Logger, Metrics, Counter, SecretBackend, SecretValue } from '../contracts';
import { CLOCK, LOGGER, METRICS, SECRET_BACKEND_LOOKUP, TIMERS, type Timers } from '../tokens';
import type { SecretRef } from './reference';

export type { Timers };

/** Cache settings in seconds (`secret_cache` in gatehouse.yaml). `ttl: 0` = keep until refreshed by force. */
export interface SecretCacheSettings {
  readonly ttl: number;
  readonly neg_ttl: number;
  readonly stale_if_error: number;
  readonly rotation_grace: number;
}

/**
 * Longest timer Node keeps: a longer one (a ttl over ~31 days, refreshed at 80 %) fires after 1 ms,
 * and then again every millisecond. A timer cut to this fires early, finds nothing due and re-arms.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const realTimers: Timers = {
  set(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clear(h) {
    clearTimeout(h as NodeJS.Timeout);
  },
};

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

type State = 'empty' | 'value' | 'missing' | 'error';

interface Entry {
  readonly ref: SecretRef;
  state: State;
  value: string | undefined;
  version: string | undefined;
  /** ms: when the value was fetched. */
  fetchedAt: number;
  /** ms: fresh until; after it, stale (served while refreshing). */
  freshUntil: number;
  /** ms: a stale value is dropped after this when refreshes keep failing. */
  staleUntil: number;
  /** ms: a cached "not found" expires. */
  missingUntil: number;
  lastError: string | undefined;
  errors: number;
  inflight: Promise<void> | null;
  previous: string | undefined;
  previousUntil: number;
  /** In use by the live config: refreshed ahead of expiry, changes emitted. */
  tracked: boolean;
  /** ms of the next scheduled background refresh (0 = none). */
  dueAt: number;
}

/** Where the resolver finds the backend of a resource (`vault/gateway`, `env`). */
export type BackendLookup = (resource: string) => SecretBackend | undefined;

/** The schema's `secret_cache` defaults: the settings until the first build configures its own. */
export const DEFAULT_CACHE_SETTINGS: SecretCacheSettings = { ttl: 300, neg_ttl: 60, stale_if_error: 86400, rotation_grace: 300 };

/** Background refresh batches run at once (each one backend batch call). */
const REFRESH_CONCURRENCY = 4;
const MAX_ERROR_BACKOFF_MS = 60_000;
/** References refreshed per backend call in the background (one getMany per batch). */
const REFRESH_BATCH = 200;
/**
 * ms: a refresh also takes the entries of its resource due this much later. Values fetched together
 * are due a millisecond or two apart (each answer is stamped as it is applied); without this, they
 * drift into separate backend calls, one per reference, where one batch would do.
 */
const REFRESH_COALESCE_MS = 100;

@injectable()
export class SecretResolver {
  private settings: SecretCacheSettings = DEFAULT_CACHE_SETTINGS;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<(c: SecretChange) => void>();
  private readonly timers: Timers;
  private timer: unknown = null;
  private timerAt = 0;
  private running = 0;
  private closed = false;
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
    this.timers = timers ?? realTimers;
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
        this.schedule(e);
        this.armFor(e.dueAt);
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
      e.state = 'empty';
      e.value = undefined;
      e.freshUntil = e.staleUntil = e.missingUntil = 0;
      e.previous = undefined;
      e.errors = 0;
      if (e.tracked) {
        this.schedule(e, 0);
        this.armFor(e.dueAt);
      }
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
    this.closed = true;
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  private entry(ref: SecretRef): Entry {
    let e = this.entries.get(ref.key);
    if (!e) {
      e = {
        ref, state: 'empty', value: undefined, version: undefined, fetchedAt: 0, freshUntil: 0, staleUntil: 0, missingUntil: 0,
        lastError: undefined, errors: 0, inflight: null, previous: undefined, previousUntil: 0, tracked: false, dueAt: 0,
      };
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

  /** Record a backend answer, emit a change when a tracked value changed, reschedule. */
  private apply(e: Entry, result: SecretValue | undefined | Error): void {
    const now = this.clock.now();
    const s = this.settings;
    const provider = e.ref.manager;
    const before = e.state === 'value' ? e.value : undefined;
    if (result instanceof Error) {
      this.m?.fetches.inc({ provider, result: 'error' });
      this.m?.errors.inc({ provider });
      e.errors++;
      const cause = result.message;
      const firstFailure = e.lastError === undefined;
      e.lastError = cause;
      if (e.state === 'value' && now < e.staleUntil) {
        if (firstFailure) this.logger.warn({ reference: e.ref.text, provider, cause, stale_until: new Date(e.staleUntil).toISOString() }, 'secret refresh failed; serving the last good value');
      } else {
        if (firstFailure || e.state !== 'error') this.logger.error({ reference: e.ref.text, provider, cause }, 'secret unavailable');
        e.state = 'error';
        e.value = undefined;
      }
    } else if (result === undefined || typeof result.value !== 'string' || result.value === '') {
      // not found is an answer, not a failure: nothing stale is served for a deleted secret
      this.m?.fetches.inc({ provider, result: 'not_found' });
      if (e.state !== 'missing') this.logger.error({ reference: e.ref.text, provider, cause: result === undefined ? this.notFound(e.ref) : 'empty value' }, 'secret unavailable');
      e.state = 'missing';
      e.value = undefined;
      e.missingUntil = now + s.neg_ttl * 1000;
      e.lastError = undefined;
      e.errors = 0;
    } else {
      this.m?.fetches.inc({ provider, result: 'ok' });
      if (e.lastError !== undefined && e.state !== 'empty') this.logger.info({ reference: e.ref.text, provider }, 'secret available again');
      const ttlMs = s.ttl === 0 ? Number.POSITIVE_INFINITY : s.ttl * 1000;
      const leaseMs = result.ttl !== undefined && result.ttl > 0 ? result.ttl * 1000 : Number.POSITIVE_INFINITY;
      e.state = 'value';
      e.value = result.value;
      e.version = result.version;
      e.fetchedAt = now;
      e.freshUntil = now + Math.min(ttlMs, leaseMs);
      e.staleUntil = e.freshUntil + s.stale_if_error * 1000;
      e.lastError = undefined;
      e.errors = 0;
    }
    const after = e.state === 'value' ? e.value : undefined;
    if (before !== after) {
      if (before !== undefined && after !== undefined && s.rotation_grace > 0) {
        e.previous = before;
        e.previousUntil = now + s.rotation_grace * 1000;
      } else if (after === undefined) {
        e.previous = undefined;
      }
      if (e.tracked) this.emit(e, after);
    }
    if (e.tracked) {
      this.schedule(e);
      this.armFor(e.dueAt);
    }
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

  /** When should this tracked entry be fetched again in the background? */
  private schedule(e: Entry, at?: number): void {
    const now = this.clock.now();
    if (at !== undefined) {
      e.dueAt = now + at;
      return;
    }
    switch (e.state) {
      case 'empty':
        e.dueAt = now;
        break;
      case 'value': {
        if (!Number.isFinite(e.freshUntil)) {
          e.dueAt = 0; // ttl 0: kept until refreshed by force
          break;
        }
        // ahead of expiry: at 80 % of the lifetime, so a refresh is done before anyone needs it
        e.dueAt = Math.max(now, e.fetchedAt + (e.freshUntil - e.fetchedAt) * 0.8);
        // refreshes failing: retry with backoff, and again when the stale value runs out
        if (e.errors > 0) e.dueAt = Math.min(now + Math.min(1000 * 2 ** (e.errors - 1), MAX_ERROR_BACKOFF_MS), Math.max(now, e.staleUntil));
        break;
      }
      case 'missing':
        e.dueAt = e.missingUntil;
        break;
      case 'error':
        e.dueAt = now + Math.min(1000 * 2 ** Math.max(e.errors - 1, 0), MAX_ERROR_BACKOFF_MS);
        break;
    }
  }

  /** Make sure the timer fires no later than `due` (O(1): one timer for the earliest due entry). */
  private armFor(due: number): void {
    if (this.closed || !(due > 0)) return;
    if (this.timer !== null && this.timerAt <= due) return;
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timerAt = due;
    this.timer = this.timers.set(() => {
      this.timer = null;
      this.timerAt = 0;
      this.runDue();
    }, Math.min(Math.max(0, due - this.clock.now()), MAX_TIMER_MS));
  }

  /**
   * Refresh every tracked entry that is due, in batches per resource (one scan of the cache), and
   * arm the timer for the next one.
   */
  private runDue(): void {
    if (this.closed) return;
    const now = this.clock.now();
    const groups = new Map<string, Entry[]>();
    let next = Number.POSITIVE_INFINITY;
    for (const e of this.entries.values()) {
      if (!e.tracked || e.dueAt <= 0) continue;
      if (e.dueAt > now + REFRESH_COALESCE_MS || e.inflight) {
        next = Math.min(next, e.dueAt > now ? e.dueAt : now + 1000);
        continue;
      }
      e.dueAt = 0;
      let g = groups.get(e.ref.resource);
      if (!g) groups.set(e.ref.resource, (g = []));
      g.push(e);
    }
    if (Number.isFinite(next)) this.armFor(next);
    const tasks: Array<() => Promise<void>> = [];
    for (const [resource, list] of groups) {
      for (let i = 0; i < list.length; i += REFRESH_BATCH) {
        const chunk = list.slice(i, i + REFRESH_BATCH);
        tasks.push(() => this.fetchBatch(resource, chunk));
      }
    }
    let t = 0;
    const worker = async (): Promise<void> => {
      while (t < tasks.length && !this.closed) await tasks[t++]();
    };
    for (let i = 0; i < Math.min(REFRESH_CONCURRENCY, tasks.length); i++) {
      this.running++;
      void worker().finally(() => this.running--);
    }
  }
}

function noop(): void {}
