// One load run with autocannon, keeping every response time at sub-millisecond resolution.
import type autocannon from 'autocannon';
import { benchPackage } from './packages';

export interface LoadOptions {
  readonly url: string;
  readonly connections: number;
  readonly durationS: number;
  /** Extra request headers (e.g. an API key). */
  readonly headers?: Record<string, string>;
}

export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly statusCodes: Record<string, number>;
}

/** A growable array of float samples (a plain number[] of 100k+ entries costs more GC in the load generator). */
class Samples {
  private buf = new Float64Array(1 << 16);
  length = 0;
  push(v: number): void {
    if (this.length === this.buf.length) {
      const bigger = new Float64Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.length++] = v;
  }
  sorted(): Float64Array {
    return this.buf.slice(0, this.length).sort();
  }
}

/** Nearest-rank percentile of sorted samples. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

let current: autocannon.Instance | undefined;

/** Stop the run in progress, if any (Ctrl-C). */
export function stopLoad(): void {
  current?.stop();
}

/**
 * Run autocannon against `url`. Latency percentiles come from our own samples because autocannon's
 * histogram stores whole milliseconds, too coarse for loopback latencies of a few ms.
 */
export function runLoad(o: LoadOptions): Promise<LoadResult> {
  const samples = new Samples();
  return new Promise<LoadResult>(function run(ok, fail) {
    // loaded on first use: a bench that loads with wrk needs no autocannon
    const instance = benchPackage<typeof autocannon>('autocannon')({ url: o.url, connections: o.connections, duration: o.durationS, pipelining: 1, timeout: 10, headers: o.headers ?? {} }, function done(err, r) {
      current = undefined;
      if (err) return fail(err);
      const sorted = samples.sorted();
      const statusCodes: Record<string, number> = {};
      for (const [code, s] of Object.entries(r.statusCodeStats)) statusCodes[code] = s.count;
      ok({
        requests: r.requests.total,
        seconds: r.duration,
        // over the measured wall time: autocannon stops on its next 1 s tick, so a run can last a tick longer than asked
        rps: r.requests.total / r.duration,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        errors: r.errors,
        timeouts: r.timeouts,
        non2xx: r.non2xx,
        statusCodes,
      });
    });
    instance.on('response', function sample(_client: unknown, _status: number, _bytes: number, ms: number) {
      samples.push(ms);
    });
    current = instance;
  });
}
