// node:cluster IPC between the processes of one gateway node (`gateway.workers: N`).
//
// Workers talk only to the primary; the primary relays. Two channels, each message tagged
// `{ gatehouse: <channel>, ... }` so any other IPC traffic (node's own, prom-client's, a process
// manager's) is ignored:
//   bus      a worker's ClusterCommand goes to the primary, which sends it to every other worker.
//   metrics  a worker serving /metrics asks the primary; the primary asks every worker for its
//            registry as JSON, sums them (prom-client AggregatorRegistry) and answers with the text.
//   admin-key  a worker starting asks the primary for the admin key it generated (when the config
//            has `admin:` without `key`); the answer is the key, or null.
// Commands carry a resource id and a process name, metrics carry what /metrics shows anyway. The
// generated admin key is the one secret, and it travels only over the IPC pipe between the primary
// and its own worker (a socketpair: no other process sees it). An environment variable would stay
// readable in /proc/<pid>/environ for the worker's whole life.
import cluster, { type Worker } from 'node:cluster';
import type { ClusterBus, ClusterCommand, Logger } from '../contracts';
import { aggregateMetrics, type LocalMetrics, type MetricsJson } from '../observe/metrics';

/** Set by the `gatehouse start` primary in the environment of the workers it forks. */
export const WORKER_ENV = 'GATEHOUSE_CLUSTER_WORKER';

/** Whether this process is a worker forked by a `gatehouse start` primary (not some other cluster's). */
export function isGatehouseWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] === '1';
}

/** How long the primary waits for the workers' metrics before answering without the late ones. */
export const METRICS_TIMEOUT_MS = 2000;

type Tagged = { gatehouse: string } & Record<string, unknown>;

function tagged(m: unknown): m is Tagged {
  return m !== null && typeof m === 'object' && typeof (m as { gatehouse?: unknown }).gatehouse === 'string';
}

/** A ClusterCommand rebuilt from an IPC message, or undefined when it is not one. */
function asCommand(c: unknown): ClusterCommand | undefined {
  if (c === null || typeof c !== 'object') return undefined;
  const { type, resource, origin } = c as Record<string, unknown>;
  if (type !== 'secret-refresh' || typeof resource !== 'string' || typeof origin !== 'string') return undefined;
  return { type, resource, origin };
}

// ---- worker side ---------------------------------------------------------------------------

/** Send to the primary; failures (no channel, channel closed) go to `onError`, never to 'error'. */
function toPrimary(msg: Tagged, onError: (err: Error) => void): void {
  if (typeof process.send !== 'function' || !process.connected) {
    onError(new Error('no IPC channel to the cluster primary'));
    return;
  }
  try {
    process.send(msg, undefined, {}, (err: Error | null) => {
      if (err) onError(err);
    });
  } catch (err) {
    onError(err as Error);
  }
}

function requireWorker(what: string): void {
  if (!cluster.isWorker) throw new Error(`${what} runs in a node:cluster worker only`);
}

/**
 * A worker's end of the IPC pipe to its primary: one per worker process (`gatehouse start`
 * creates it), with one process `message` listener that hands each tagged message to the handlers
 * of its channel. The bus, the aggregated metrics and the admin key all go through it.
 */
export class WorkerChannel {
  private readonly handlers = new Map<string, Set<(m: Tagged) => void>>();
  private listening = false;
  /** Metrics requests waiting for the primary's answer, by request id. */
  private readonly waiting = new Map<number, (m: Tagged) => void>();
  private nextRequest = 0;

  constructor() {
    requireWorker('WorkerChannel');
  }

  /** Handle tagged messages of one channel from the primary. @returns a function that stops handling them */
  private on(channel: string, fn: (m: Tagged) => void): () => void {
    const set = this.handlers.get(channel) ?? new Set();
    this.handlers.set(channel, set);
    set.add(fn);
    if (!this.listening) {
      this.listening = true;
      process.on('message', (m: unknown) => {
        if (!tagged(m)) return;
        for (const h of this.handlers.get(m.gatehouse) ?? []) h(m);
      });
      // the primary's answers to this worker's metrics requests (see metrics())
      this.on('metrics', (m) => {
        if (m.op === 'response' && typeof m.id === 'number') this.waiting.get(m.id)?.(m);
      });
    }
    return () => set.delete(fn);
  }

  /**
   * The ClusterBus of this worker: `publish` sends a command to the primary, which relays it to
   * every other worker (not back to this one); `subscribe` receives the commands the others publish.
   */
  bus(logger?: Logger): ClusterBus {
    const subscribers: Array<(cmd: ClusterCommand) => void> = [];
    this.on('bus', (m) => {
      const cmd = asCommand(m.cmd);
      if (!cmd) return;
      for (const fn of subscribers) {
        try {
          fn(cmd);
        } catch (err) {
          logger?.error({ type: cmd.type, err: (err as Error).message }, 'cluster command handler failed');
        }
      }
    });
    return {
      publish(cmd) {
        const c = asCommand(cmd);
        if (!c) throw new Error(`not a cluster command: ${JSON.stringify(cmd?.type)}`);
        toPrimary({ gatehouse: 'bus', cmd: c }, (err) => logger?.warn({ type: c.type, err: err.message }, 'cluster command not sent to the other workers'));
      },
      subscribe(fn) {
        subscribers.push(fn);
      },
    };
  }

  /**
   * The admin key the primary generated, or undefined when it generated none (the config has an
   * `admin.key`, or no `admin:`).
   * @throws Error when the primary does not answer within `timeoutMs`
   */
  adminKey(timeoutMs = 10_000): Promise<string | undefined> {
    return new Promise<string | undefined>((resolve, reject) => {
      let settled = false;
      const settle = (err: Error | undefined, key?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        stop();
        if (err) reject(err);
        else resolve(key);
      };
      const timer = setTimeout(() => settle(new Error(`the cluster primary did not send the admin key within ${timeoutMs} ms`)), timeoutMs);
      const stop = this.on('admin-key', (m) => {
        if (m.op === 'key') settle(undefined, typeof m.key === 'string' && m.key !== '' ? m.key : undefined);
      });
      toPrimary({ gatehouse: 'admin-key', op: 'request' }, (err) => settle(new Error(`admin key request not sent to the cluster primary: ${err.message}`)));
    });
  }

  /**
   * Metrics of this worker: the same counters, histograms and gauges as `local` (they count what
   * this worker does), but `render()` answers with every worker's registry summed, via the primary
   * (see {@link relay}). `local` also answers the primary's collection requests.
   * @param opts.timeoutMs how long render() waits for the primary (default: the primary's timeout + 1 s)
   */
  metrics(local: LocalMetrics, opts: { timeoutMs?: number } = {}): LocalMetrics {
    const timeoutMs = opts.timeoutMs ?? METRICS_TIMEOUT_MS + 1000;
    this.on('metrics', (m) => {
      if (m.op !== 'collect' || typeof m.id !== 'number') return;
      const id = m.id;
      local.json().then(
        (metrics) => toPrimary({ gatehouse: 'metrics', op: 'report', id, metrics }, () => undefined),
        () => toPrimary({ gatehouse: 'metrics', op: 'report', id, metrics: [] }, () => undefined),
      );
    });
    const render = (): Promise<string> =>
      new Promise<string>((resolve, reject) => {
        const id = this.nextRequest++;
        const done = (err: Error | undefined, text?: string) => {
          if (!this.waiting.delete(id)) return;
          clearTimeout(timer);
          if (err) reject(err);
          else resolve(text!);
        };
        const timer = setTimeout(() => done(new Error(`the cluster primary did not answer a metrics request within ${timeoutMs} ms`)), timeoutMs);
        this.waiting.set(id, (m) => (typeof m.text === 'string' ? done(undefined, m.text) : done(new Error(`the cluster primary could not aggregate the metrics: ${String(m.error)}`))));
        toPrimary({ gatehouse: 'metrics', op: 'request', id }, (err) => done(new Error(`metrics request not sent to the cluster primary: ${err.message}`)));
      });
    return { ...local, render };
  }
}

// ---- primary side --------------------------------------------------------------------------

interface Collection {
  readonly requester: Worker;
  readonly requestId: number;
  /** ids of the workers not answered yet */
  readonly pending: Set<number>;
  readonly parts: MetricsJson[];
  timer?: NodeJS.Timeout;
}

function live(): Worker[] {
  return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
}

/**
 * Send to a worker; `onError` when it cannot be delivered (never throws, never emits 'error').
 * send()'s boolean is backpressure (messages queue behind a connection being handed over), not failure.
 */
function toWorker(w: Worker, msg: Tagged, onError: () => void = () => undefined): void {
  if (!w.isConnected()) return onError();
  try {
    w.send(msg, undefined, {}, (err: Error | null) => {
      if (err) onError();
    });
  } catch {
    onError();
  }
}

/**
 * The primary's side: relay bus commands from each worker to every other worker, and answer
 * workers' metrics requests with every worker's registry aggregated (a worker that does not
 * answer within `metricsTimeoutMs` is left out, with one warning line), and hand `adminKey` (the
 * admin key the primary generated) to each worker that asks. Call before forking.
 * @returns a function that stops relaying (pending metrics requests are answered with an error)
 */
export function relay(opts: { logger?: Logger; metricsTimeoutMs?: number; adminKey?: string } = {}): () => void {
  if (!cluster.isPrimary) throw new Error('relay runs in the node:cluster primary only');
  const logger = opts.logger;
  const timeoutMs = opts.metricsTimeoutMs ?? METRICS_TIMEOUT_MS;
  const collections = new Map<number, Collection>();
  let nextId = 0;

  const answer = (c: Collection, body: { text: string } | { error: string }) => toWorker(c.requester, { gatehouse: 'metrics', op: 'response', id: c.requestId, ...body });

  const finish = (id: number) => {
    const c = collections.get(id);
    if (!c) return;
    collections.delete(id);
    clearTimeout(c.timer);
    aggregateMetrics(c.parts).then(
      (text) => answer(c, { text }),
      (err: Error) => {
        logger?.error({ err: err.message }, 'metrics of the workers could not be aggregated');
        answer(c, { error: 'aggregation failed' });
      },
    );
  };

  const collect = (requester: Worker, requestId: number) => {
    const id = nextId++;
    const workers = live();
    const c: Collection = { requester, requestId, pending: new Set(workers.map((w) => w.id)), parts: [] };
    collections.set(id, c);
    c.timer = setTimeout(() => {
      logger?.warn({ late_workers: [...c.pending], timeout_ms: timeoutMs }, 'workers did not send their metrics in time; /metrics answered without them');
      finish(id);
    }, timeoutMs);
    for (const w of workers) {
      toWorker(w, { gatehouse: 'metrics', op: 'collect', id }, () => {
        if (c.pending.delete(w.id) && c.pending.size === 0) finish(id);
      });
    }
    if (c.pending.size === 0) finish(id);
  };

  const onMessage = (worker: Worker, m: unknown) => {
    if (!tagged(m)) return;
    if (m.gatehouse === 'bus') {
      const cmd = asCommand(m.cmd);
      if (!cmd) return;
      for (const w of live()) if (w !== worker) toWorker(w, { gatehouse: 'bus', cmd });
    } else if (m.gatehouse === 'admin-key' && m.op === 'request') {
      toWorker(worker, { gatehouse: 'admin-key', op: 'key', key: opts.adminKey ?? null });
    } else if (m.gatehouse === 'metrics' && typeof m.id === 'number') {
      if (m.op === 'request') collect(worker, m.id);
      else if (m.op === 'report' && Array.isArray(m.metrics)) {
        const c = collections.get(m.id);
        if (!c || !c.pending.delete(worker.id)) return;
        c.parts.push(m.metrics as MetricsJson);
        if (c.pending.size === 0) finish(m.id);
      }
    }
  };

  // a worker that exits is not waited for
  const onExit = (worker: Worker) => {
    for (const [id, c] of collections) if (c.pending.delete(worker.id) && c.pending.size === 0) finish(id);
  };

  cluster.on('message', onMessage);
  cluster.on('exit', onExit);
  return () => {
    cluster.off('message', onMessage);
    cluster.off('exit', onExit);
    for (const c of collections.values()) {
      clearTimeout(c.timer);
      answer(c, { error: 'the gateway is stopping' });
    }
    collections.clear();
  };
}
