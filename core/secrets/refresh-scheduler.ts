// The secret cache's background refresh: one timer for the earliest due entry (so the cost does
// not grow with the number of references), and, when it fires, every tracked entry due then
// fetched in batches per resource, a few batches at a time. When an entry is due is the entry's
// rule (cache-entry.ts); fetching a batch is the resolver's.
import type { Clock } from '../contracts';
import type { Timers } from '../tokens';
import type { Entry } from './cache-entry';

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

/** Background refresh batches run at once (each one backend batch call). */
const REFRESH_CONCURRENCY = 4;
/** References refreshed per backend call in the background (one getMany per batch). */
const REFRESH_BATCH = 200;
/**
 * ms: a refresh also takes the entries of its resource due this much later. Values fetched together
 * are due a millisecond or two apart (each answer is stamped as it is applied); without this, they
 * drift into separate backend calls, one per reference, where one batch would do.
 */
const REFRESH_COALESCE_MS = 100;

export class RefreshScheduler {
  private timer: unknown = null;
  private timerAt = 0;
  private closed = false;

  /**
   * @param entries the cache, scanned when the timer fires
   * @param fetchBatch fetches entries of one resource with one backend call
   */
  constructor(
    private readonly timers: Timers,
    private readonly clock: Clock,
    private readonly entries: ReadonlyMap<string, Entry>,
    private readonly fetchBatch: (resource: string, list: Entry[]) => Promise<void>,
  ) {}

  /** Make sure the timer fires no later than `due` (O(1): one timer for the earliest due entry). */
  armFor(due: number): void {
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

  /** No more timers; batches already running finish, no further batch starts. */
  close(): void {
    this.closed = true;
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timer = null;
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
    for (let i = 0; i < Math.min(REFRESH_CONCURRENCY, tasks.length); i++) void worker();
  }
}
