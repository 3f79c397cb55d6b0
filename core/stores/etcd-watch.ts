// Following an etcd prefix: one watch from the revision after the last full read. Each data event
// is applied by the store to the one resource it names and told as a DataChange; a burst (5 ms:
// a transaction, a seed, several writers) is told in one call, the changes in event order, the
// events on one resource merged into one change. When the connection or the watch is lost, the
// node keeps serving what it has (said once in the log); when etcd is back it reads the whole
// prefix again (events missed meanwhile may be compacted away), tells that as "read everything
// again", and watches from there. What the prefix holds, and what an event changes, is the store's.
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { DataChange, Logger } from '../contracts';
import { firstLine } from './etcd-errors';

/** What one event did: nothing to tell, one resource changed, or something only a full read can tell. */
export type Applied = DataChange | 'full' | undefined;

/** The store's copy of the prefix, as the watch loop keeps it current. */
export interface WatchedPrefix {
  /** Revision of the last full read. */
  revision(): number;
  /** Read the whole prefix again. @returns whether anything changed */
  resync(): Promise<boolean>;
  /** Apply one watch event. */
  apply(ev: { type: string; kv: IKeyValue }): Applied;
}

/** Told of changes: with the changes of a burst, or without when everything must be read again. */
export type OnChange = (changes?: readonly DataChange[]) => void;

export class PrefixWatch {
  private watcher: Watcher | undefined;
  private onChange: OnChange | undefined;
  private notifyTimer: NodeJS.Timeout | undefined;
  /** The burst so far, by resource (kind/id), in the order of each one's first event. */
  private pending = new Map<string, DataChange>();
  /** The burst holds a change only a full read can tell. */
  private full = false;
  private rewatchTimer: NodeJS.Timeout | undefined;
  /** Whether etcd answered last: a loss is logged once, and a return resyncs once. */
  private up = true;
  private closed = false;

  /** @param store names the store in log lines */
  constructor(
    private readonly client: Etcd3,
    private readonly root: string,
    private readonly logger: Logger,
    private readonly store: string,
    private readonly prefix: WatchedPrefix,
  ) {}

  /** A full read succeeded: etcd is reachable. */
  reachable(): void {
    this.up = true;
  }

  /** Watch the prefix; `onChange` is told of changes (a burst is one call). */
  start(onChange: OnChange): void {
    this.onChange = onChange;
    this.startWatch();
  }

  /**
   * Tell of a change, once for a burst of events (a seed, a transaction): the resources' changes,
   * or, when any of them is 'full' (or none is given), "read everything again".
   */
  notify(change: DataChange | 'full' = 'full'): void {
    if (this.closed) return;
    if (change === 'full') this.full = true;
    else if (!this.full) this.merge(change);
    this.notifyTimer ??= setTimeout(() => {
      this.notifyTimer = undefined;
      const changes = this.full ? undefined : [...this.pending.values()];
      this.pending = new Map();
      this.full = false;
      if (changes === undefined) this.onChange?.();
      else if (changes.length) this.onChange?.(changes);
    }, 5);
  }

  /** Several events on one resource in a burst are one change: the first `before`, the last `after`. */
  private merge(change: DataChange): void {
    const key = `${change.kind}/${change.id}`;
    const earlier = this.pending.get(key);
    if (!earlier) {
      this.pending.set(key, change);
      return;
    }
    // created and deleted within the burst: nothing to tell
    if (earlier.before === undefined && change.after === undefined) this.pending.delete(key);
    else this.pending.set(key, { kind: change.kind, id: change.id, before: earlier.before, after: change.after });
  }

  /** No more changes told, no more resyncs; the watch itself is cancelled by {@link close}. */
  stop(): void {
    this.closed = true;
    clearTimeout(this.notifyTimer);
    clearTimeout(this.rewatchTimer);
  }

  async close(): Promise<void> {
    this.stop();
    const w = this.watcher;
    this.watcher = undefined;
    if (w) {
      w.removeAllListeners();
      await Promise.race([w.cancel().catch(() => undefined), new Promise((r) => setTimeout(r, 200))]);
    }
  }

  /** Watch the prefix from the revision after the last read; on any failure, resync and watch again. */
  private startWatch(): void {
    if (this.closed) return;
    // the watcher is ours from this line on (not only once connected), so close() can always cancel it
    const w = this.client.watch().prefix(this.root).startRevision(String(this.prefix.revision() + 1)).watcher();
    this.watcher = w;
    w.on('data', (res) => {
      for (const ev of res.events) {
        const applied = this.prefix.apply(ev as { type: string; kv: IKeyValue });
        if (applied) this.notify(applied);
      }
    });
    w.on('disconnected', (err: Error) => {
      if (this.up) this.logger.warn({ store: this.store, err: firstLine(err) }, 'etcd connection lost: serving the last config; admin writes answer 503 until it returns');
      this.up = false;
    });
    w.on('connected', () => {
      if (this.up) return;
      // back: read everything once more (events missed while away may already be compacted)
      this.prefix.resync().then(
        (changed) => {
          this.logger.info({ store: this.store, revision: this.prefix.revision() }, 'etcd connection restored; resynced');
          if (changed) this.notify();
        },
        () => undefined,
      );
    });
    w.on('error', (err: Error) => {
      // e.g. the watch's start revision was compacted: the watcher is gone, start over
      this.lost(err);
    });
  }

  private lost(err: unknown): void {
    if (this.closed) return;
    if (this.watcher) {
      this.watcher.removeAllListeners();
      void this.watcher.cancel().catch(() => undefined);
      this.watcher = undefined;
    }
    if (this.up) this.logger.warn({ store: this.store, err: firstLine(err) }, 'etcd watch lost: serving the last config; resyncing');
    this.up = false;
    clearTimeout(this.rewatchTimer);
    this.rewatchTimer = setTimeout(() => {
      this.rewatchTimer = undefined;
      this.prefix.resync().then(
        (changed) => {
          this.logger.info({ store: this.store, revision: this.prefix.revision() }, 'etcd resynced');
          if (changed) this.notify();
          this.startWatch();
        },
        (e: unknown) => this.lost(e),
      );
    }, 500);
  }
}
