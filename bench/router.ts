// `npm run bench:router`: what a route change costs the router, in process. At --routes routes (a
// third exact `/svc/rNNNNN/items`, a third with a parameter `/svc/rNNNNN/items/:id`, a third prefixes
// `/files/rNNNNN/*`, 5 % of them GET-only), the split layout (core/request/router.ts,
// DEFAULT_LAYOUT, or each bucket count of --buckets 16,32,64) against one find-my-way tree per host
// table and method (SINGLE_TREE, the layout before the split), in the same run:
// - a full build (ms), median of --builds;
// - one change on the split router: a route added, replaced, removed (ms, median of --changes each,
//   every one from the same base router); without the split a change is a full build;
// - --sequence changes one after another (each route replaced in turn, each change on the router
//   the one before made): median, p99, max and mean (ms), where the occasional whole rebuild of a
//   bucket (core/request/router.ts, "A change to a large bucket") shows;
// - lookups (ns per find) over a fixed mix of paths: a third static, a third parameter, a quarter
//   wildcard, the rest misses; interleaved rounds, median;
// - times are the process's CPU time (process.cpuUsage), steadier than wall time on a shared machine;
// - the heap each router holds (with --expose-gc, else not reported).
// JSON in bench/results/router.json.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildRouter, DEFAULT_LAYOUT, SINGLE_TREE, updateRouter, type RoutableRoute, type Router, type RouterLayout } from '../core/request/router';
import { median, writeJson } from './report';

const RESULTS_FILE = resolve(__dirname, '..', '..', 'bench', 'results', 'router.json');

const { values } = parseArgs({
  options: {
    routes: { type: 'string', default: '10000' },
    builds: { type: 'string', default: '5' },
    changes: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '5' },
    finds: { type: 'string', default: '200000' },
    buckets: { type: 'string', default: String(DEFAULT_LAYOUT.buckets) },
    sequence: { type: 'string', default: '2000' },
  },
});
const BUCKETS = values.buckets.split(',').map(Number);
if (BUCKETS.some((b) => !Number.isInteger(b) || b < 1 || (b & (b - 1)) !== 0)) {
  process.stderr.write('--buckets: powers of two, comma-separated\n');
  process.exit(2);
}
const N = Number(values.routes);

const BUILDS = Number(values.builds);
const CHANGES = Number(values.changes);
const ROUNDS = Number(values.rounds);
const FINDS = Number(values.finds);
const SEQUENCE = Number(values.sequence);
for (const [k, v] of Object.entries({ routes: N, builds: BUILDS, changes: CHANGES, rounds: ROUNDS, finds: FINDS, sequence: SEQUENCE })) {
  if (!Number.isInteger(v) || v < (k === "routes" ? 3 : 1)) {
    process.stderr.write(`--${k} must be an integer >= ${k === "routes" ? 3 : 1}\n`);
    process.exit(2);
  }
}

const width = Math.max(5, String(N).length);
const name = (i: number) => `r${String(i).padStart(width, '0')}`;
function uriOf(i: number, variant = ''): string {
  const n = name(i);
  return i % 3 === 0 ? `/svc/${n}/items${variant}` : i % 3 === 1 ? `/svc/${n}/items/:id${variant}` : `/files/${n}/*`;
}
const routeOf = (i: number, variant = ''): RoutableRoute => ({ id: `route-${i}`, uris: [uriOf(i, variant)], priority: 0, ...(i % 20 === 7 ? { methods: ['GET'] } : {}) });
const routes = Array.from({ length: N }, (_, i) => routeOf(i));

/** The paths looked up, spread over the whole set: route 3j is static, 3j+1 has a parameter, 3j+2 is a prefix. */
const paths: string[] = [];
const lastBase = 3 * Math.floor((N - 3) / 3);
for (let k = 0; k < 1024; k++) {
  const base = Math.min(3 * Math.floor(((k * 7919) % N) / 3), lastBase);
  const kind = k % 12;
  if (kind < 4) paths.push(`/svc/${name(base)}/items`);
  else if (kind < 8) paths.push(`/svc/${name(base + 1)}/items/42`);
  else if (kind < 11) paths.push(`/files/${name(base + 2)}/a/b.txt`);
  else paths.push(`/nothing/${name(base)}`);
}

/** CPU time of this process (user + system), in ms: other work on a shared machine shifts it far less than wall time. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function timeMs(fn: () => unknown): number {
  const t0 = cpuMs();
  fn();
  return cpuMs() - t0;
}

function heapOf(build: () => unknown): number | undefined {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return undefined;
  gc();
  const before = process.memoryUsage().heapUsed;
  const keep = build();
  gc();
  const used = process.memoryUsage().heapUsed - before;
  if (keep === undefined) throw new Error('unreachable');
  return used;
}

function nsPerFind(r: Router<RoutableRoute>): number {
  let hits = 0;
  const t0 = cpuMs();
  for (let i = 0; i < FINDS; i++) if (r.find('GET', '', paths[i & 1023]) !== null) hits++;
  const ns = ((cpuMs() - t0) * 1e6) / FINDS;
  if (hits === 0) throw new Error('no path matched');
  return ns;
}

const fmt = (x: number, d = 2) => x.toFixed(d);

function main(): void {
  const ONE = 'one tree (before)';
  const layouts: Array<[string, RouterLayout]> = [[ONE, SINGLE_TREE]];
  for (const b of BUCKETS) layouts.push([`split x${b}${b === DEFAULT_LAYOUT.buckets ? ' (default)' : ''}`, { maxLevel: DEFAULT_LAYOUT.maxLevel, buckets: b }]);
  const routers = new Map(layouts.map(([label, l]) => [label, buildRouter(routes, l)]));
  // the same answers, or the comparison means nothing
  for (const p of paths) {
    const want = routers.get(ONE)!.find('GET', '', p)?.route.id;
    for (const [label, r] of routers) if (r.find('GET', '', p)?.route.id !== want) throw new Error(`${label} disagrees on ${p}`);
  }

  const build: Record<string, number[]> = {};
  const heap: Record<string, number | undefined> = {};
  const change: Record<string, Record<string, number[]>> = {};
  const finds: Record<string, number[]> = {};
  for (let b = 0; b < BUILDS; b++) for (const [label, l] of layouts) (build[label] ??= []).push(timeMs(() => buildRouter(routes, l)));
  for (const [label, l] of layouts) heap[label] = heapOf(() => buildRouter(routes, l));
  for (const [label, r] of routers) {
    if (label === ONE) continue;
    const c0: Record<string, number[]> = (change[label] = { added: [], replaced: [], removed: [] });
    for (let c = 0; c < CHANGES; c++) {
      const i = Math.floor(((c + 1) * 104729) % N);
      c0.added.push(timeMs(() => updateRouter(r, [], [{ id: `new-${c}`, uris: [`/svc/new${c}/items/:id`], priority: 0 }])));
      c0.replaced.push(timeMs(() => updateRouter(r, [routes[i]], [routeOf(i, '/v2')])));
      c0.removed.push(timeMs(() => updateRouter(r, [routes[i]], [])));
    }
  }
  const sequence: Record<string, number[]> = {};
  for (const [label, r] of routers) {
    if (label === ONE) continue;
    const seq: number[] = (sequence[label] = []);
    let cur = r;
    const live = routes.slice();
    for (let c = 0; c < SEQUENCE; c++) {
      const i = (c * 7919) % N;
      const next = routeOf(i, c % 2 === 0 ? '/v2' : '');
      seq.push(timeMs(() => (cur = updateRouter(cur, [live[i]], [next]))));
      live[i] = next;
    }
  }
  for (const r of routers.values()) nsPerFind(r); // warm the JIT
  for (let round = 0; round < ROUNDS; round++) for (const [label, r] of routers) (finds[label] ??= []).push(nsPerFind(r));

  const full = median(build[ONE]);
  const find1 = median(finds[ONE]);
  const lines = [
    `router, ${N} routes (node ${process.version}); CPU time, medians; ratios to one tree, same run`,
    '',
    `${'layout'.padEnd(26)} ${'full build'.padStart(12)} ${'added'.padStart(9)} ${'replaced'.padStart(9)} ${'removed'.padStart(9)} ${'find'.padStart(9)}  ${'find ratio per round'.padEnd(24)} heap`,
  ];
  for (const [label] of layouts) {
    const c = change[label];
    const cell = (k: string) => (c === undefined ? `${fmt(full, 1)}*` : fmt(median(c[k]), 2)).padStart(9);
    const f = median(finds[label]);
    lines.push(
      `${label.padEnd(26)} ${`${fmt(median(build[label]), 1)} ms`.padStart(12)} ${cell('added')} ${cell('replaced')} ${cell('removed')} ${`${fmt(f, 0)} ns`.padStart(9)}  ${`${fmt(f / find1)}x (${finds[label].map((x, k) => fmt(x / finds[ONE][k])).join(' ')})`.padEnd(24)} ${heap[label] === undefined ? '-' : `${fmt(heap[label]! / 2 ** 20, 1)} MB`}`,
    );
  }
  for (const [label] of layouts) {
    const c = change[label];
    if (c !== undefined) lines.push(`${label}: one route added / replaced / removed costs ${['added', 'replaced', 'removed'].map((k) => `${fmt(full / median(c[k]), 0)}x`).join(' / ')} less than a full build of one tree`);
  }
  for (const [label, seq] of Object.entries(sequence)) {
    const sorted = seq.slice().sort((a, b) => a - b);
    const mean = seq.reduce((a, b) => a + b, 0) / seq.length;
    lines.push(
      `${label}: ${seq.length} changes one after another: median ${fmt(median(seq))}, p99 ${fmt(sorted[Math.floor(0.99 * (sorted.length - 1))])}, max ${fmt(sorted[sorted.length - 1])}, mean ${fmt(mean)} ms`,
    );
  }
  lines.push('* a change without the split is a full build (ms); changes and builds in ms; heap needs node --expose-gc');
  process.stdout.write(lines.join('\n') + '\n');
  writeJson(RESULTS_FILE, { routes: N, node: process.version, build, change, sequence, finds, heap });
}

main();
