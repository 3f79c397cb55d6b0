// The order of a gateway's config changes: every job that may swap the snapshot (a reload, an Admin
// API write, a rebuild after a secret change or at the end of a rotation grace) runs here, one at a
// time, in the order it was queued, so no two builds interleave and a change never races a reload.
import 'reflect-metadata';
import { injectable } from 'tsyringe';

/** The longest a Node timer waits (a longer delay fires at once). */
const MAX_DELAY_MS = 2 ** 31 - 1;

@injectable()
export class ChangeQueue {
  private tail: Promise<unknown> = Promise.resolve();
  /** Coalesced jobs queued but not started, by key. */
  private readonly waiting = new Map<string, Promise<unknown>>();
  /** Timed jobs not queued yet, by key. */
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private closed = false;

  /** Run `job` after every job queued before it, whether those succeeded or failed. */
  run<T>(job: () => Promise<T>): Promise<T> {
    const run = this.tail.then(job, job);
    this.tail = run.then(noop, noop);
    return run;
  }

  /**
   * Like {@link run}, but a call while a job of the same `key` waits its turn queues nothing: it
   * shares that job's outcome. A call once the job started queues a new one, which sees what
   * changed meanwhile.
   */
  coalesce<T>(key: string, job: () => Promise<T>): Promise<T> {
    const queued = this.waiting.get(key);
    if (queued) return queued as Promise<T>;
    const run = this.run(() => {
      this.waiting.delete(key);
      return job();
    });
    this.waiting.set(key, run);
    return run;
  }

  /** Queue `job` in `ms`, once for a burst: a call while the job of `key` is pending adds nothing. */
  debounce(key: string, ms: number, job: () => Promise<unknown>): void {
    if (this.closed || this.timers.has(key)) return;
    this.arm(key, ms, job);
  }

  /**
   * Queue `job` in `ms`, instead of the job `key` had pending; a delay that is not finite only
   * drops the pending one.
   */
  delay(key: string, ms: number, job: () => Promise<unknown>): void {
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
    if (!Number.isFinite(ms) || this.closed) return;
    this.arm(key, Math.min(ms, MAX_DELAY_MS), job);
  }

  /** Drop the pending timed jobs and take no new ones; queued jobs still run (and see their gateway closed). */
  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private arm(key: string, ms: number, job: () => Promise<unknown>): void {
    const timer = setTimeout(() => {
      this.timers.delete(key);
      void this.run(job);
    }, ms);
    // a pending rebuild never keeps the process alive
    timer.unref();
    this.timers.set(key, timer);
  }
}

function noop(): void {}
