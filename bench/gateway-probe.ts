// A probe preloaded into the gateway's process (`npm run bench:admin -- --node-args="-r ./dist/bench/gateway-probe.js"`):
// event-loop stalls over 8 ms (a 2 ms timer that came late), garbage collections over 3 ms (`gc`
// performance entries: major, minor, incremental) and, every 2.5 s, RSS and V8's heap spaces. All
// of it as JSON in $GATEHOUSE_PROBE_OUT (default /tmp/gateway-probe-<pid>.json), written every 5 s
// and at exit; times are ms since the process started. It shows what holds the event loop (the
// garbage collector or the gateway's own work) and what the heap is made of when RSS grows.
import { writeFileSync } from 'node:fs';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';

const out = process.env.GATEHOUSE_PROBE_OUT ?? `/tmp/gateway-probe-${process.pid}.json`;
const TICK_MS = 2;
const STALL_MS = 8;
const GC_MS = 3;

const stalls: Array<[at: number, ms: number]> = [];
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  const late = now - last - TICK_MS;
  if (late > STALL_MS) stalls.push([Math.round(now), Math.round(late)]);
  last = now;
}, TICK_MS).unref();

const KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak',
};
const gcs: Array<[at: number, kind: string, ms: number]> = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (e.duration > GC_MS) gcs.push([Math.round(e.startTime), KINDS[kind ?? -1] ?? String(kind), Math.round(e.duration)]);
  }
}).observe({ entryTypes: ['gc'] });

const memory: Array<Record<string, number>> = [];
setInterval(() => {
  const m = process.memoryUsage();
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name.replace(/_space$/, ''), Math.round(s.space_size / 1e6)]));
  memory.push({ at: Math.round(performance.now()), rssMb: Math.round(m.rss / 1e6), heapUsedMb: Math.round(m.heapUsed / 1e6), ...spaces });
}, 2500).unref();

const dump = (): void => writeFileSync(out, JSON.stringify({ stalls, gcs, memory }));
setInterval(dump, 5000).unref();
process.on('exit', dump);
