// `npm run bench:peers`: Gatehouse next to its peers, on one machine, in one run. Every target proxies
// GET /ip to the same upstream (bench/upstream.ts, its own process) and checks the same `apikey` header:
//
//   direct upstream · minimal node:http + undici proxy (the "Node floor", bench/minimal-proxy.ts) ·
//   raw net + undici sketch without node:http (the ceiling, bench/raw-proxy.ts; not a real server) ·
//   fast-gateway · fastify + @fastify/http-proxy · nginx proxy_pass (when installed) ·
//   Gatehouse (a) no plugins, (b) key-auth with the key in Vault, (c) key-auth with 100 000 consumers,
//   (d) key-auth + limit-count + request-id + proxy-rewrite, (e) = (b) with gateway.workers: 2.
//
// Each target is its own process (tree), all started before the first run and kept up to the end.
// Load (wrk when installed, else autocannon in this process) goes to one target at a time, interleaved
// (A B C … A B C …) for --rounds rounds; the table holds medians and ratios to Gatehouse (b), then the
// issue's targets, each PASS or FAIL with its numbers. JSON and an SVG bar chart go to bench/results/.
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, platform, release } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import type { LoadResult } from './load';
import { NGINX_MISSING, nginxBinary, nginxVersion, startNginx } from './nginx';
import { endedChildrenCpuSeconds, machineBusySeconds, treeCpuSeconds, treeRss } from './proc-tree';
import { benchDir, countInLog, freePort, getOnce, runBench, logTail, spawnGateway, spawnNode, startForked, startUpstream, stop, waitReady, wasInterrupted } from './procs';
import { median, writeJson } from './report';
import { barChart } from './svg';
import { UPSTREAM_BODY } from './upstream';
import { BENCH_SRC } from './packages';
import { LOAD_HELP, loadGenerator, parseLoadChoice, versionOf, type LoadChoice, type LoadGen } from './loadgen';
import type { ChildProcess } from 'node:child_process';

const RESULTS = resolve(__dirname, '..', '..', 'bench', 'results');
const PATH = '/ip';
const KEY_HEADER = 'apikey';
/** The one consumer's key, for every target but (c). */
const BENCH_KEY = 'bench-key-5f0c7a19e2d4';
const VAULT_TOKEN = 'bench-root';
const SETTLE_MS = 200;
const START_TIMEOUT_MS = 180_000;
const REF = 'gh-b';

const USAGE = `usage: npm run bench:peers -- [--quick] [--rounds N] [--duration S] [--connections C] [--warmup S] [--consumers N] [--load auto|wrk|autocannon] [--skip a,b]
  --quick           smoke test: 1 round x 2 s (same as --rounds 1 --duration 2)
  --rounds N        interleaved rounds, each target once per round (default 3)
  --duration S      whole seconds per target per round (default 5)
  --connections C   concurrent keep-alive connections (default 50)
  --warmup S        whole seconds of unmeasured load per target before round 1 (default 1; 0 = none)
  --consumers N     consumers of Gatehouse (c) (default 100000)
  --load L          ${LOAD_HELP}
  --skip LIST       targets to leave out, by name: direct,minimal,raw,fast-gateway,fastify,nginx,gh-a,gh-b,gh-c,gh-d,gh-e`;

interface Flags {
  readonly rounds: number;
  readonly durationS: number;
  readonly connections: number;
  readonly warmupS: number;
  readonly consumers: number;
  readonly load: LoadChoice;
  readonly skip: ReadonlySet<string>;
  readonly quick: boolean;
}

function parseFlags(argv: string[]): Flags {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      connections: { type: 'string', default: '50' },
      warmup: { type: 'string', default: '1' },
      consumers: { type: 'string', default: '100000' },
      load: { type: 'string', default: 'auto' },
      skip: { type: 'string', default: '' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const load = parseLoadChoice(values.load);
  const skip = new Set(values.skip.split(',').map((s) => s.trim()).filter(Boolean));
  for (const s of skip) if (!TARGET_NAMES.includes(s)) throw new Error(`--skip: unknown target "${s}" (one of ${TARGET_NAMES.join(', ')})`);
  if (skip.has(REF)) throw new Error(`--skip: ${REF} is the reference row of every ratio and cannot be skipped`);
  return {
    rounds: wholeNumber('--rounds', values.rounds ?? (values.quick ? '1' : '3'), 1),
    durationS: wholeNumber('--duration', values.duration ?? (values.quick ? '2' : '5'), 1),
    connections: wholeNumber('--connections', values.connections, 1),
    warmupS: wholeNumber('--warmup', values.warmup, 0),
    consumers: wholeNumber('--consumers', values.consumers, 1),
    load,
    skip,
    quick: values.quick,
  };
}

function wholeNumber(flag: string, raw: string, min: number): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

const TARGET_NAMES = ['direct', 'minimal', 'raw', 'fast-gateway', 'fastify', 'nginx', 'gh-a', 'gh-b', 'gh-c', 'gh-d', 'gh-e'];

interface Target {
  readonly name: string;
  readonly label: string;
  readonly port: number;
  /** Root of the process tree that serves the target (RSS and CPU are summed over the tree). */
  readonly pid: number;
  /** The child the bench started (for nginx: its guard), to notice a death. */
  readonly proc: ChildProcess;
  readonly logFile: string;
  /** Request headers of the load and of the 200 check. */
  readonly headers: Record<string, string>;
  /** Whether requests without the key, or with a wrong one, must get 401. */
  readonly keyed: boolean;
  /** Spawn until the first 200 with the key. */
  readonly startMs: number;
  /** Extra check of the 200 answer (e.g. plugin headers), or undefined. */
  readonly expectHeaders?: readonly string[];
}

interface Run extends LoadResult {
  readonly round: number;
  /** CPU of the target's process tree during the run, in % of one core. */
  readonly targetCpu?: number;
  /** CPU of the load generator during the run (autocannon, this process), in % of one core. */
  readonly loadgenCpu?: number;
  /** CPU used during the run by processes other than the target, the upstream and the load generator. */
  readonly otherCpu?: number;
  /** RSS of the target's process tree right after the run. */
  readonly rssMb: number;
  readonly processes: number;
}

interface Summary {
  readonly name: string;
  readonly label: string;
  readonly startMs: number;
  readonly rounds: readonly Run[];
  readonly warmup?: Run;
  readonly rps: number;
  readonly rpsMin: number;
  readonly rpsMax: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly rssMb: number;
  readonly rssMaxMb: number;
  readonly processes: number;
  readonly targetCpu?: number;
  readonly failed: number;
  /** Ratios to Gatehouse (b): req/s and p99. */
  readonly rpsVsRef: number;
  readonly p99VsRef: number;
}

function progress(line: string): void {
  process.stdout.write(line + '\n');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function exited(p: ChildProcess): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

// ---------------------------------------------------------------------------------------------
// Vault (standalone test server, its own process) holding the key of Gatehouse (b), (d) and (e)

interface Vault {
  readonly url: string;
  readonly proc: ChildProcess;
}

async function startVault(): Promise<Vault> {
  const script = resolve(__dirname, '..', 'test', 'servers', 'vault.js');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const { proc, logFile } = spawnNode('vault', script, ['--port', String(port), '--token', VAULT_TOKEN]);
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !exited(proc)) {
      try {
        const r = await getOnce(port, '/v1/sys/health');
        if (r.status === 200) return { url, proc };
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    await stop(proc);
    const tail = logTail(logFile);
    if (attempt < 3 && tail.includes('EADDRINUSE')) continue;
    throw new Error(`vault test server did not start\n${tail}`);
  }
}

async function seedVault(vault: Vault): Promise<void> {
  const headers = { 'x-vault-token': VAULT_TOKEN, 'content-type': 'application/json' };
  const mount = await request(`${vault.url}/v1/sys/mounts/apisix`, { method: 'POST', headers, body: JSON.stringify({ type: 'kv', options: { version: '1' } }) });
  await mount.body.dump();
  if (mount.statusCode !== 204) throw new Error(`vault: mounting apisix answered HTTP ${mount.statusCode}`);
  const put = await request(`${vault.url}/v1/apisix/bench`, { method: 'POST', headers, body: JSON.stringify({ key: BENCH_KEY }) });
  await put.body.dump();
  if (put.statusCode !== 204) throw new Error(`vault: writing apisix/bench answered HTTP ${put.statusCode}`);
}

// ---------------------------------------------------------------------------------------------
// Gatehouse configs

interface GatehouseSpec {
  readonly name: string;
  readonly label: string;
  readonly plugins: string;
  readonly consumers: string;
  readonly secrets: boolean;
  readonly workers: number;
  readonly key: string;
  readonly keyed: boolean;
  readonly expectHeaders?: readonly string[];
}

function gatehouseYaml(spec: GatehouseSpec, port: number, upstreamPort: number, vaultUrl: string | undefined): string {
  const lines = ['gateway:', `  listen: 127.0.0.1:${port}`, '  access_log: false'];
  if (spec.workers > 1) lines.push(`  workers: ${spec.workers}`);
  if (spec.secrets) lines.push('secrets:', `  - { id: vault/gw, uri: "${vaultUrl}", prefix: apisix, token: ${VAULT_TOKEN}, kv_version: 1 }`);
  lines.push('routes:', '  - id: ip', `    uri: ${PATH}`);
  if (spec.plugins) lines.push(`    plugins: ${spec.plugins}`);
  lines.push(`    upstream: { type: roundrobin, nodes: { "127.0.0.1:${upstreamPort}": 1 } }`);
  return lines.join('\n') + '\n' + spec.consumers;
}

// block style, as people and generators write consumers (about 10 MB for 100 000), as bench/key-auth.ts
function literalConsumers(n: number): { yaml: string; keyOf: (i: number) => string; middle: number } {
  const width = Math.max(6, String(n).length);
  const id = (i: number) => String(i).padStart(width, '0');
  const lines = ['consumers:'];
  for (let i = 1; i <= n; i++) lines.push(`  - username: c${id(i)}`, '    plugins:', '      key-auth:', `        key: "key-${id(i)}"`);
  lines.push('');
  return { yaml: lines.join('\n'), keyOf: (i) => `key-${id(i)}`, middle: Math.max(1, Math.ceil(n / 2)) };
}

const VAULT_CONSUMER = ['consumers:', '  - username: bench', '    plugins:', '      key-auth:', '        key: "$secret://vault/gw/bench/key"', ''].join('\n');

function gatehouseSpecs(flags: Flags): GatehouseSpec[] {
  const many = literalConsumers(flags.consumers);
  const n = flags.consumers.toLocaleString('en-US');
  const chain = '{ key-auth: {}, limit-count: { count: 1000000000, time_window: 60 }, request-id: {}, proxy-rewrite: { uri: /ip, headers: { set: { X-Bench: gatehouse } } } }';
  return [
    { name: 'gh-a', label: 'Gatehouse (a) no plugins', plugins: '', consumers: '', secrets: false, workers: 1, key: BENCH_KEY, keyed: false },
    { name: 'gh-b', label: 'Gatehouse (b) key-auth, key in Vault', plugins: '{ key-auth: {} }', consumers: VAULT_CONSUMER, secrets: true, workers: 1, key: BENCH_KEY, keyed: true },
    { name: 'gh-c', label: `Gatehouse (c) key-auth, ${n} consumers`, plugins: '{ key-auth: {} }', consumers: many.yaml, secrets: false, workers: 1, key: many.keyOf(many.middle), keyed: true },
    { name: 'gh-d', label: 'Gatehouse (d) key-auth+limit-count+request-id+proxy-rewrite', plugins: chain, consumers: VAULT_CONSUMER, secrets: true, workers: 1, key: BENCH_KEY, keyed: true, expectHeaders: ['x-request-id', 'x-ratelimit-remaining'] },
    { name: 'gh-e', label: 'Gatehouse (e) = (b), workers: 2', plugins: '{ key-auth: {} }', consumers: VAULT_CONSUMER, secrets: true, workers: 2, key: BENCH_KEY, keyed: true },
  ];
}

async function startGatehouse(spec: GatehouseSpec, upstreamPort: number, vaultUrl: string | undefined): Promise<Target> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const file = join(benchDir(), `${spec.name}.yaml`);
    writeFileSync(file, gatehouseYaml(spec, port, upstreamPort, vaultUrl));
    const headers = { [KEY_HEADER]: spec.key };
    const t0 = performance.now();
    const { proc, logFile } = spawnGateway(spec.name, file);
    try {
      await waitReady(proc, port, PATH, UPSTREAM_BODY, START_TIMEOUT_MS, headers);
      const startMs = performance.now() - t0;
      // with workers, wait for every worker's listener, not only the first
      const deadline = Date.now() + 30_000;
      while (countInLog(logFile, 'gatehouse proxy listening') < spec.workers) {
        if (Date.now() > deadline || exited(proc)) throw new Error(`only ${countInLog(logFile, 'gatehouse proxy listening')} of ${spec.workers} workers listen`);
        await sleep(50);
      }
      return { name: spec.name, label: spec.label, port, pid: proc.pid!, proc, logFile, headers, keyed: spec.keyed, startMs, expectHeaders: spec.expectHeaders };
    } catch (err) {
      await stop(proc);
      const tail = logTail(logFile);
      if (attempt < 3 && tail.includes('EADDRINUSE')) continue;
      throw new Error(`${spec.label}: ${(err as Error).message}\nlast log lines:\n${tail}`);
    }
  }
}

async function startPeer(name: string, label: string, script: string, upstreamPort: number): Promise<Target> {
  const t0 = performance.now();
  // the peers are compiled by bench/tsconfig.json into bench/dist/, where their packages resolve (bench/packages.ts)
  const c = await startForked(name, join(BENCH_SRC, 'dist', script), { UPSTREAM_PORT: String(upstreamPort), API_KEY: BENCH_KEY });
  const headers = { [KEY_HEADER]: BENCH_KEY };
  await waitReady(c.proc, c.port, PATH, UPSTREAM_BODY, 10_000, headers);
  return { name, label, port: c.port, pid: c.proc.pid!, proc: c.proc, logFile: c.logFile, headers, keyed: true, startMs: performance.now() - t0 };
}

// load numbers mean nothing unless every target really rejects and admits
async function verify(t: Target): Promise<void> {
  const cases: Array<[string, Record<string, string>, number]> = [['the right key', t.headers, 200]];
  if (t.keyed) cases.unshift(['no key', {}, 401], ['a wrong key', { [KEY_HEADER]: 'not-a-key' }, 401]);
  for (const [what, headers, want] of cases) {
    const r = await getOnce(t.port, PATH, headers);
    if (r.status !== want || (want === 200 && !r.body.equals(UPSTREAM_BODY))) {
      throw new Error(`${t.label}: ${what} got HTTP ${r.status} (${r.body.toString('utf8').slice(0, 200)}), expected ${want}`);
    }
    if (want === 200) {
      for (const h of t.expectHeaders ?? []) if (r.headers[h] === undefined) throw new Error(`${t.label}: the 200 answer lacks ${h} (plugin not applied?)`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// load

async function measure(t: Target, upstreamPid: number, gen: LoadGen, flags: Flags, round: number, durationS: number): Promise<Run> {
  if (wasInterrupted()) throw new Error('wasInterrupted()');
  const before = { lg: process.cpuUsage(), ended: endedChildrenCpuSeconds(), tgt: treeCpuSeconds(t.pid), up: treeCpuSeconds(upstreamPid), all: machineBusySeconds(), t: process.hrtime.bigint() };
  const load = await gen.run(`http://127.0.0.1:${t.port}${PATH}`, t.headers, durationS, flags.connections);
  if (wasInterrupted()) throw new Error('wasInterrupted()');
  const wall = Number(process.hrtime.bigint() - before.t) / 1e9;
  const share = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? ((b - a) / wall) * 100 : undefined);
  const lg = process.cpuUsage(before.lg);
  // autocannon runs in this process; wrk is a child, whose CPU shows here once it has ended
  const loadgenCpu = gen.inProcess ? ((lg.user + lg.system) / 1e6 / wall) * 100 : share(before.ended, endedChildrenCpuSeconds());
  const targetCpu = share(before.tgt, treeCpuSeconds(t.pid));
  // the direct row's target is the upstream itself
  const upCpu = t.pid === upstreamPid ? 0 : share(before.up, treeCpuSeconds(upstreamPid));
  const allCpu = share(before.all, machineBusySeconds());
  const otherCpu = allCpu !== undefined ? Math.max(0, allCpu - (targetCpu ?? 0) - (upCpu ?? 0) - (loadgenCpu ?? 0)) : undefined;
  const mem = treeRss(t.pid);
  if (exited(t.proc)) throw new Error(`${t.label} exited during the bench (code ${t.proc.exitCode}, signal ${t.proc.signalCode}); last log lines:\n${logTail(t.logFile)}`);
  await sleep(SETTLE_MS);
  // wrk's raw output stays out of the JSON: the parsed numbers are what counts
  const { raw: _raw, ...clean } = load as LoadResult & { raw?: string };
  return { round, ...clean, targetCpu, loadgenCpu, otherCpu, rssMb: mem.mb, processes: mem.processes };
}

// ---------------------------------------------------------------------------------------------
// report

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const pct = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '-' : String(Math.round(n)));

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd()).join('\n');
}

function summarize(t: Target, rounds: readonly Run[], warmup: Run | undefined): Omit<Summary, 'rpsVsRef' | 'p99VsRef'> {
  const rps = rounds.map((r) => r.rps);
  const cpus = rounds.map((r) => r.targetCpu).filter((v): v is number => v !== undefined);
  return {
    name: t.name,
    label: t.label,
    startMs: t.startMs,
    rounds,
    warmup,
    rps: median(rps),
    rpsMin: Math.min(...rps),
    rpsMax: Math.max(...rps),
    p50Ms: median(rounds.map((r) => r.p50Ms)),
    p99Ms: median(rounds.map((r) => r.p99Ms)),
    rssMb: median(rounds.map((r) => r.rssMb)),
    rssMaxMb: Math.max(...rounds.map((r) => r.rssMb)),
    processes: Math.max(...rounds.map((r) => r.processes)),
    targetCpu: cpus.length ? median(cpus) : undefined,
    failed: [...rounds, ...(warmup ? [warmup] : [])].reduce((n, r) => n + r.errors + r.timeouts + r.non2xx, 0),
  };
}

interface Check {
  readonly what: string;
  readonly pass: boolean | undefined;
  readonly detail: string;
  /** Shown for context, not one of the issue's targets. */
  readonly info?: true;
}

function checks(by: Map<string, Summary>, consumers: number): Check[] {
  const b = by.get(REF)!;
  const out: Check[] = [];
  const n = consumers.toLocaleString('en-US');
  const rpsAtLeast = (name: string, factor: number, what: string) => {
    const o = by.get(name);
    if (!o) return out.push({ what, pass: undefined, detail: `${name} not measured` });
    const r = b.rps / o.rps;
    out.push({ what, pass: r >= factor, detail: `${int(b.rps)} vs ${int(o.rps)} req/s = ${r.toFixed(2)}x (need >= ${factor.toFixed(2)}x)` });
  };
  rpsAtLeast('fast-gateway', 1.5, 'Gatehouse (b) req/s >= 1.5x fast-gateway');
  rpsAtLeast('fastify', 1.5, 'Gatehouse (b) req/s >= 1.5x @fastify/http-proxy');
  rpsAtLeast('minimal', 1.0, 'Gatehouse (b) req/s >= 1.0x minimal proxy');
  const c = by.get('gh-c');
  out.push(
    c
      ? { what: `Gatehouse (c) ${n} consumers req/s >= 0.95x (b) one consumer`, pass: c.rps / b.rps >= 0.95, detail: `${int(c.rps)} vs ${int(b.rps)} req/s = ${(c.rps / b.rps).toFixed(2)}x (need >= 0.95x)` }
      : { what: `Gatehouse (c) ${n} consumers req/s >= 0.95x (b)`, pass: undefined, detail: 'gh-c not measured' },
  );
  const m = by.get('minimal');
  out.push(
    m
      ? { what: 'Gatehouse (b) p99 <= 1.5x minimal proxy p99', pass: b.p99Ms <= 1.5 * m.p99Ms, detail: `${f2(b.p99Ms)} vs ${f2(m.p99Ms)} ms = ${(b.p99Ms / m.p99Ms).toFixed(2)}x (need <= 1.50x)` }
      : { what: 'Gatehouse (b) p99 <= 1.5x minimal proxy p99', pass: undefined, detail: 'minimal not measured' },
  );
  out.push(
    c
      ? { what: `Gatehouse (c) RSS with ${n} consumers <= 200 MB`, pass: c.rssMaxMb <= 200, detail: `${c.rssMaxMb.toFixed(0)} MB (largest after any run; median ${c.rssMb.toFixed(0)} MB)` }
      : { what: `Gatehouse (c) RSS <= 200 MB`, pass: undefined, detail: 'gh-c not measured' },
  );
  // not a target of the issue: how far the sketch without node:http gets, against the same peers
  const raw = by.get('raw');
  const fastify = by.get('fastify');
  const minimal = by.get('minimal');
  if (raw && fastify && minimal) {
    out.push({ what: 'raw sketch (no node:http) vs @fastify/http-proxy and vs minimal proxy', pass: undefined, info: true, detail: `${(raw.rps / fastify.rps).toFixed(2)}x and ${(raw.rps / minimal.rps).toFixed(2)}x (not a target)` });
  }
  return out;
}

function formatReport(flags: Flags, env: Record<string, unknown>, gen: LoadGen, summaries: readonly Summary[], cs: readonly Check[], notes: readonly string[]): string {
  const out: string[] = [];
  out.push(
    `Gatehouse peer bench: ${flags.rounds} interleaved round(s) x ${flags.durationS} s per target${flags.warmupS ? ` (after one ${flags.warmupS} s warm-up each)` : ''}, ` +
      `${flags.connections} connections, load: ${gen.version}${gen.name === 'wrk' ? ' (-t2)' : ' (in the bench process)'}, node ${env.node}, ${env.cpus} CPUs`,
  );
  if ((env.cpus as number) < 4) out.push(`note: ${env.cpus} CPUs shared by the load generator, the target and the upstream: absolute req/s include CPU contention, compare rows`);
  for (const n of notes) out.push(n);
  out.push('RSS: the target process and its children (workers) right after each run, median; cpu% (of one core, during the runs, medians): the target tree, the load generator, and other processes (outside the bench: high values mean disturbed numbers)');
  out.push('');
  out.push(
    table([
      ['target', 'req/s', 'min..max', 'p50 ms', 'p99 ms', 'RSS MB', 'procs', 'cpu%', 'loadgen%', 'other%', 'req/s vs (b)', 'p99 vs (b)', 'start s', 'failed'],
      ...summaries.map((s) => [
        s.label + (s.name === REF ? ' *' : ''),
        int(s.rps),
        `${int(s.rpsMin)}..${int(s.rpsMax)}`,
        f2(s.p50Ms),
        f2(s.p99Ms),
        s.rssMb.toFixed(0),
        String(s.processes),
        pct(s.targetCpu),
        pct(median(s.rounds.map((r) => r.loadgenCpu ?? NaN))),
        pct(median(s.rounds.map((r) => r.otherCpu ?? NaN))),
        `${s.rpsVsRef.toFixed(2)}x`,
        `${s.p99VsRef.toFixed(2)}x`,
        Number.isFinite(s.startMs) ? (s.startMs / 1000).toFixed(2) : '-',
        String(s.failed),
      ]),
    ]),
  );
  out.push('* the reference row of the two "vs (b)" columns');
  out.push('');
  out.push('targets (docs/performance.md):');
  for (const c of cs) out.push(`  ${c.info ? 'INFO' : c.pass === undefined ? 'SKIP' : c.pass ? 'PASS' : 'FAIL'}  ${c.what}: ${c.detail}`);
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function bench(flags: Flags): Promise<number> {
  const t0 = performance.now();
  const gen = loadGenerator(flags.load);
  const notes: string[] = [];
  if (gen.name === 'autocannon') notes.push('wrk: not installed, load by autocannon (apt-get install wrk for a load generator that leaves more CPU to the targets)');
  const want = (name: string) => !flags.skip.has(name);

  progress(`load generator: ${gen.version}`);
  const upstream = await startUpstream();
  const targets: Target[] = [];
  const addTarget = (t: Target) => {
    targets.push(t);
    progress(`  ${t.label}: ${Number.isFinite(t.startMs) ? `ready in ${(t.startMs / 1000).toFixed(2)} s` : 'up'} on port ${t.port}`);
  };
  if (want('direct')) {
    const headers = { [KEY_HEADER]: BENCH_KEY };
    addTarget({ name: 'direct', label: 'direct upstream', port: upstream.port, pid: upstream.proc.pid!, proc: upstream.proc, logFile: upstream.logFile, headers, keyed: false, startMs: NaN });
  }
  if (want('minimal')) addTarget(await startPeer('minimal', 'minimal proxy (node:http+undici)', 'minimal-proxy.js', upstream.port));
  if (want('raw')) addTarget(await startPeer('raw', 'raw net+undici sketch, no node:http (ceiling)', 'raw-proxy.js', upstream.port));
  if (want('fast-gateway')) addTarget(await startPeer('fast-gateway', `fast-gateway ${versionOf('fast-gateway')}`, 'peer-fast-gateway.js', upstream.port));
  if (want('fastify')) addTarget(await startPeer('fastify', `@fastify/http-proxy ${versionOf('@fastify/http-proxy')} (fastify ${versionOf('fastify')})`, 'peer-fastify.js', upstream.port));
  let nginx: string | undefined;
  if (want('nginx')) {
    const bin = nginxBinary();
    if (!bin) {
      progress(NGINX_MISSING);
      notes.push(NGINX_MISSING);
    } else {
      nginx = nginxVersion(bin);
      const t1 = performance.now();
      const n = await startNginx(bin, upstream.port, PATH, BENCH_KEY);
      const headers = { [KEY_HEADER]: BENCH_KEY };
      await waitReady(n.proc, n.port, PATH, UPSTREAM_BODY, 10_000, headers).catch((err: Error) => {
        throw new Error(`nginx: ${err.message}\n${logTail(n.logFile)}`);
      });
      addTarget({ name: 'nginx', label: `nginx ${nginx} proxy_pass`, port: n.port, pid: n.pid, proc: n.proc, logFile: n.logFile, headers, keyed: true, startMs: performance.now() - t1 });
    }
  }

  const specs = gatehouseSpecs(flags).filter((s) => want(s.name));
  let vault: Vault | undefined;
  if (specs.some((s) => s.secrets)) {
    vault = await startVault();
    await seedVault(vault);
    progress(`  Vault test server (standalone process) on ${vault.url}, key at apisix/bench`);
  }
  for (const spec of specs) addTarget(await startGatehouse(spec, upstream.port, vault?.url));
  for (const t of targets) await verify(t);
  progress(`all ${targets.length} targets answer 401 without a key or with a wrong one (where keyed) and 200 with the key`);

  const warmups = new Map<string, Run>();
  if (flags.warmupS > 0) {
    progress(`warm-up: ${flags.warmupS} s per target`);
    for (const t of targets) warmups.set(t.name, await measure(t, upstream.proc.pid!, gen, flags, 0, flags.warmupS));
  }
  // interleaved (A B C … A B C …) so drift during the run hits every target alike
  const rounds = new Map<string, Run[]>(targets.map((t) => [t.name, []]));
  for (let round = 1; round <= flags.rounds; round++) {
    for (const t of targets) {
      const r = await measure(t, upstream.proc.pid!, gen, flags, round, flags.durationS);
      rounds.get(t.name)!.push(r);
      const bad = r.errors + r.timeouts + r.non2xx;
      progress(
        `  round ${round} ${t.label.padEnd(58)} ${int(r.rps).padStart(7)} req/s  p50 ${f2(r.p50Ms)} ms  p99 ${f2(r.p99Ms)} ms  RSS ${r.rssMb.toFixed(0)} MB` +
          (bad ? `  FAILURES: ${r.errors} errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx` : ''),
      );
    }
  }

  const base = targets.map((t) => summarize(t, rounds.get(t.name)!, warmups.get(t.name)));
  const ref = base.find((s) => s.name === REF)!;
  const summaries: Summary[] = base.map((s) => ({ ...s, rpsVsRef: s.rps / ref.rps, p99VsRef: s.p99Ms / ref.p99Ms }));
  const by = new Map(summaries.map((s) => [s.name, s]));
  const cs = checks(by, flags.consumers);
  const env = { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, os: `${platform()} ${release()}` };
  const failed = summaries.reduce((n, s) => n + s.failed, 0);
  const totalS = (performance.now() - t0) / 1000;

  process.stdout.write('\n' + formatReport(flags, env, gen, summaries, cs, notes) + '\n');
  const jsonFile = join(RESULTS, 'peers.json');
  writeJson(jsonFile, {
    ok: failed === 0,
    date: new Date().toISOString(),
    settings: { rounds: flags.rounds, durationS: flags.durationS, warmupS: flags.warmupS, connections: flags.connections, consumers: flags.consumers, path: PATH, keyHeader: KEY_HEADER, upstreamBodyBytes: UPSTREAM_BODY.length, quick: flags.quick },
    env,
    loadGenerator: { name: gen.name, version: gen.version, threads: gen.name === 'wrk' ? 2 : 1 },
    nginx: nginx ?? null,
    notes,
    totalSeconds: totalS,
    reference: REF,
    targets: summaries,
    checks: cs,
  });
  const svgFile = join(RESULTS, 'peers.svg');
  writeFileSync(
    svgFile,
    barChart(
      'Gatehouse and peers: median req/s',
      `${flags.rounds} interleaved round(s) x ${flags.durationS} s, ${flags.connections} connections, ${gen.version.split(' [')[0]}, ${env.cpus} CPUs, node ${env.node}, ${new Date().toISOString().slice(0, 10)}; orange: Gatehouse (b), the reference`,
      summaries.map((s) => ({ label: s.label, value: s.rps, highlight: s.name === REF })),
      'req/s',
    ),
  );
  process.stdout.write(`\nJSON: ${jsonFile}\nSVG:  ${svgFile}\ntotal ${totalS.toFixed(0)} s\n`);
  if (failed > 0) {
    process.stderr.write(`bench:peers FAILED: ${failed} failed requests (connection errors, timeouts, non-2xx answers) during load; counts above and in the JSON\n`);
    return 1;
  }
  return 0;
}

void runBench('bench:peers', USAGE, parseFlags, bench);
