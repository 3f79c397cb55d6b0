// One reference's place in the secret cache, and the rules of its lifetime: what a backend answer
// makes of it (fresh for `ttl` or a shorter lease, then stale; the last good value kept through
// failures for `stale_if_error`; "not found" cached for `neg_ttl`; the replaced value kept for
// `rotation_grace`) and when it is due for a background refresh. Plain functions of the entry, the
// time and the settings: no backend, timer, log or metric (the resolver does those).
import type { SecretValue } from '../contracts';
import type { SecretRef } from './reference';

/** Cache settings in seconds (`secret_cache` in gatehouse.yaml). `ttl: 0` = keep until refreshed by force. */
export interface SecretCacheSettings {
  readonly ttl: number;
  readonly neg_ttl: number;
  readonly stale_if_error: number;
  readonly rotation_grace: number;
}

/** The schema's `secret_cache` defaults: the settings until the first build configures its own. */
export const DEFAULT_CACHE_SETTINGS: SecretCacheSettings = { ttl: 300, neg_ttl: 60, stale_if_error: 86400, rotation_grace: 300 };

const MAX_ERROR_BACKOFF_MS = 60_000;

type State = 'empty' | 'value' | 'missing' | 'error';

export interface Entry {
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

export function newEntry(ref: SecretRef): Entry {
  return {
    ref, state: 'empty', value: undefined, version: undefined, fetchedAt: 0, freshUntil: 0, staleUntil: 0, missingUntil: 0,
    lastError: undefined, errors: 0, inflight: null, previous: undefined, previousUntil: 0, tracked: false, dueAt: 0,
  };
}

/**
 * What {@link record} did, for the resolver's metrics and logs: the fetch's result, the log line it
 * deserves (a first failure served stale, a value lost or not found, a recovery; none for more of
 * the same), and whether the value served changed.
 */
export interface Recorded {
  readonly result: 'ok' | 'not_found' | 'error';
  readonly news: 'stale' | 'unavailable' | 'not_found' | 'recovered' | undefined;
  readonly changed: boolean;
}

/** Record a backend answer in `e`: a value, "not found" (undefined or an empty value) or a failure. */
export function record(e: Entry, answer: SecretValue | undefined | Error, now: number, s: SecretCacheSettings): Recorded {
  const before = e.state === 'value' ? e.value : undefined;
  let result: Recorded['result'];
  let news: Recorded['news'];
  if (answer instanceof Error) {
    result = 'error';
    e.errors++;
    const firstFailure = e.lastError === undefined;
    e.lastError = answer.message;
    if (e.state === 'value' && now < e.staleUntil) {
      if (firstFailure) news = 'stale';
    } else {
      if (firstFailure || e.state !== 'error') news = 'unavailable';
      e.state = 'error';
      e.value = undefined;
    }
  } else if (answer === undefined || typeof answer.value !== 'string' || answer.value === '') {
    // not found is an answer, not a failure: nothing stale is served for a deleted secret
    result = 'not_found';
    if (e.state !== 'missing') news = 'not_found';
    e.state = 'missing';
    e.value = undefined;
    e.missingUntil = now + s.neg_ttl * 1000;
    e.lastError = undefined;
    e.errors = 0;
  } else {
    result = 'ok';
    if (e.lastError !== undefined && e.state !== 'empty') news = 'recovered';
    const ttlMs = s.ttl === 0 ? Number.POSITIVE_INFINITY : s.ttl * 1000;
    const leaseMs = answer.ttl !== undefined && answer.ttl > 0 ? answer.ttl * 1000 : Number.POSITIVE_INFINITY;
    e.state = 'value';
    e.value = answer.value;
    e.version = answer.version;
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
  }
  return { result, news, changed: before !== after };
}

/** Drop what `e` holds (its resource's config changed or it was deleted). */
export function forget(e: Entry): void {
  e.state = 'empty';
  e.value = undefined;
  e.freshUntil = e.staleUntil = e.missingUntil = 0;
  e.previous = undefined;
  e.errors = 0;
}

/** When a tracked entry should be fetched again in the background (ms; 0 = not before it is forced). */
export function nextDue(e: Entry, now: number): number {
  switch (e.state) {
    case 'empty':
      return now;
    case 'value': {
      // ttl 0: kept until refreshed by force
      if (!Number.isFinite(e.freshUntil)) return 0;
      // refreshes failing: retry with backoff, and again when the stale value runs out
      if (e.errors > 0) return Math.min(now + Math.min(1000 * 2 ** (e.errors - 1), MAX_ERROR_BACKOFF_MS), Math.max(now, e.staleUntil));
      // ahead of expiry: at 80 % of the lifetime, so a refresh is done before anyone needs it
      return Math.max(now, e.fetchedAt + (e.freshUntil - e.fetchedAt) * 0.8);
    }
    case 'missing':
      return e.missingUntil;
    case 'error':
      return now + Math.min(1000 * 2 ** Math.max(e.errors - 1, 0), MAX_ERROR_BACKOFF_MS);
  }
}
