// `npm run bench:routes`: what the number of routes costs. Gatehouse through its real
// CLI with 10, 1 000 and 10 000 routes (by default), each a distinct uri to the same upstream: odd ones
// exact (`/svc/r00001/items`), even ones with a parameter (`/svc/r00002/items/:id`). The load hits the
// last-defined route. Measured per size: config load time (spawn until the "gatehouse proxy listening"
// log line, and until the first 200), RSS, and req/s, p50, p99 in interleaved rounds, with the req/s
// ratio to the smallest size. Then, on the largest size, hot reload time: from the trigger (SIGHUP,
// or an atomic rewrite of the config file) to the "config reloaded" log line (core/gateway.ts).
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, platform, release } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import type { LoadResult } from './load';
import { LOAD_HELP, loadGenerator, parseLoadChoice, type LoadChoice, type LoadGen } from './loadgen';
import { treeCpuSeconds, treeRss } from './proc-tree';
import { benchDir, freePort, runBench, logTail, spawnGateway, startUpstream, stop, waitReady, wasInterrupted, type Child } from './procs';
import { median, writeJson } from './report';
import { UPSTREAM_BODY } from './upstream';

const RESULTS_FILE = resolve(__dirname, '..', '..', 'bench', 'results', 'routes.json');
const SETTLE_MS = 200;
const START_TIMEOUT_MS = 180_000;
const RELOAD_TIMEOUT_MS = 120_000;
const LISTENING = 'gatehouse proxy listening';
const RELOADED = 'config reloaded';

const USAGE = `usage: npm run bench:routes -- [--quick] [--sizes 10,1000,10000] [--rounds N] [--duration S] [--connections C] [--warmup S] [--reloads N] [--load auto|wrk|autocannon]
  --quick           smoke test: 1 round x 2 s, 1 reload of each kind (same as --rounds 1 --duration 2 --reloads 1)
  --sizes LIST      route counts, smallest first: the ratios are to the first (default 10,1000,10000)
  --rounds N        interleaved rounds, each size once per round (default 3)
  --duration S      whole seconds per size per round (default 5)
  --connections C   concurrent keep-alive connections (default 50)
  --warmup S        whole seconds of unmeasured load per size before round 1 (default 1; 0 = none)
  --reloads N       hot reloads of the largest size, per trigger (SIGHUP, file rewrite) (default 3)
  --load L          ${LOAD_HELP}`;

interface Flags {
  readonly sizes: readonly number[];
  readonly rounds: number;
  readonly durationS: number;
  readonly connections: number;
  readonly warmupS: number;
  readonly reloads: number;
  readonly load: LoadChoice;
  readonly quick: boolean;
}

function parseFlags(argv: string[]): Flags {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      sizes: { type: 'string', default: '10,1000,10000' },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      connections: { type: 'string', default: '50' },
      warmup: { type: 'string', default: '1' },
      reloads: { type: 'string' },
      load: { type: 'string', default: 'auto' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const sizes = values.sizes.split(',').map((s) => wholeNumber('--sizes', s, 1));
  if (new Set(sizes).size !== sizes.length) throw new Error('--sizes: every size once');
  return {
    sizes,
    rounds: wholeNumber('--rounds', values.rounds ?? (values.quick ? '1' : '3'), 1),
    durationS: wholeNumber('--duration', values.duration ?? (values.quick ? '2' : '5'), 1),
    connections: wholeNumber('--connections', values.connections, 1),
    warmupS: wholeNumber('--warmup', values.warmup, 0),
    reloads: wholeNumber('--reloads', values.reloads ?? (values.quick ? '1' : '3'), 0),
    load: parseLoadChoice(values.load),
    quick: values.quick,
  };
}

function wholeNumber(flag: string, raw: string, min: number): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// configs

function routeUri(i: number, width: number): string {
  const id = `r${String(i).padStart(width, '0')}`;
  return i % 2 === 1 ? `/svc/${id}/items` : `/svc/${id}/items/:id`;
}

/** The path a request sends to hit route i (a parameter route gets the value 42). */
function requestPath(i: number, width: number): string {
  return routeUri(i, width).replace(':id', '42');
}

function configYaml(n: number, port: number, upstreamPort: number, variant = 0): string {
  const width = Math.max(5, String(n).length);
  const lines = ['gateway:', `  listen: 127.0.0.1:${port}`, '  access_log: false', 'routes:'];
  for (let i = 1; i <= n; i++) {
    lines.push(`  - id: r${i}`, `    uri: ${routeUri(i, width)}`, `    upstream: { type: roundrobin, nodes: { "127.0.0.1:${upstreamPort}": 1 } }`);
  }
  // a file-rewrite reload changes something real: one more route, named after the variant
  if (variant > 0) lines.push(`  - id: extra-${variant}`, `    uri: /extra/${variant}`, `    upstream: { type: roundrobin, nodes: { "127.0.0.1:${upstreamPort}": 1 } }`);
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// log lines (pino JSON with an ISO "time" to the millisecond: the gateway's own clock of the event)

interface LogLine {
  readonly msg?: string;
  readonly time?: string;
  readonly routes?: number;
  readonly generation?: number;
  readonly level?: number;
}

function logLines(file: string): LogLine[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // a line being written
    }
  }
  return out;
}

/** Wait until the log has more than `after` lines with message `msg`; resolves with the newest. */
async function waitForLog(proc: ChildProcess, file: string, msg: string, after: number, timeoutMs: number): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hits = logLines(file).filter((l) => l.msg === msg);
    if (hits.length > after) return hits[hits.length - 1];
    const rejected = logLines(file).find((l) => l.msg?.startsWith('config reload rejected'));
    if (rejected) throw new Error(`reload rejected: ${JSON.stringify(rejected)}`);
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`gateway exited (code ${proc.exitCode}, signal ${proc.signalCode})`);
    if (Date.now() > deadline) throw new Error(`no "${msg}" log line within ${timeoutMs / 1000} s`);
    // pino writes in batches (up to 200 ms late); the line's own "time" is what gets measured
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------
// gateways

interface Gateway extends Child {
  readonly routes: number;
  readonly path: string;
  readonly configFile: string;
  readonly configBytes: number;
  /** Spawn until the "gatehouse proxy listening" line's time. */
  readonly listeningMs: number;
  /** Spawn until the first 200 through the last-defined route (polled every 50 ms). */
  readonly firstOkMs: number;
  readonly rssAfterStartMb: number;
}

async function launch(n: number, upstreamPort: number): Promise<Gateway> {
  const width = Math.max(5, String(n).length);
  const path = requestPath(n, width);
  const name = `routes-${n}`;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const file = join(benchDir(), `${name}.yaml`);
    const yaml = configYaml(n, port, upstreamPort);
    writeFileSync(file, yaml);
    const spawnedAt = Date.now();
    const t0 = performance.now();
    const { proc, logFile } = spawnGateway(name, file);
    try {
      await waitReady(proc, port, path, UPSTREAM_BODY, START_TIMEOUT_MS);
      const firstOkMs = performance.now() - t0;
      const listening = await waitForLog(proc, logFile, LISTENING, 0, 5_000);
      if (listening.routes !== undefined && listening.routes !== n) throw new Error(`listening with ${listening.routes} routes, expected ${n}`);
      const listeningMs = Date.parse(listening.time ?? '') - spawnedAt;
      return { name, proc, port, logFile, routes: n, path, configFile: file, configBytes: Buffer.byteLength(yaml), listeningMs, firstOkMs, rssAfterStartMb: treeRss(proc.pid!).mb };
    } catch (err) {
      await stop(proc);
      const tail = logTail(logFile);
      if (attempt < 3 && tail.includes('EADDRINUSE')) continue;
      throw new Error(`${name}: ${(err as Error).message}\nlast log lines:\n${tail}`);
    }
  }
}

interface Run extends LoadResult {
  readonly round: number;
  readonly gatewayCpu?: number;
  readonly rssMb: number;
}

async function measure(gw: Gateway, gen: LoadGen, flags: Flags, round: number, durationS: number): Promise<Run> {
  if (wasInterrupted()) throw new Error('wasInterrupted()');
  const cpu0 = treeCpuSeconds(gw.proc.pid!);
  const t0 = process.hrtime.bigint();
  const load = await gen.run(`http://127.0.0.1:${gw.port}${gw.path}`, {}, durationS, flags.connections);
  if (wasInterrupted()) throw new Error('wasInterrupted()');
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = treeCpuSeconds(gw.proc.pid!);
  if (gw.proc.exitCode !== null || gw.proc.signalCode !== null) throw new Error(`${gw.name} exited during the bench; last log lines:\n${logTail(gw.logFile)}`);
  const rssMb = treeRss(gw.proc.pid!).mb;
  await sleep(SETTLE_MS);
  const { raw: _raw, ...clean } = load as LoadResult & { raw?: string };
  return { round, ...clean, gatewayCpu: cpu0 !== undefined && cpu1 !== undefined ? ((cpu1 - cpu0) / wall) * 100 : undefined, rssMb };
}

interface ReloadRun {
  readonly trigger: 'SIGHUP' | 'file rewrite';
  /** Trigger until the "config reloaded" line's time. */
  readonly ms: number;
  readonly generation?: number;
  readonly routes?: number;
}

async function reloads(gw: Gateway, count: number): Promise<ReloadRun[]> {
  const out: ReloadRun[] = [];
  const upstreamPort = Number(/"127\.0\.0\.1:(\d+)"/.exec(readFileSync(gw.configFile, 'utf8'))?.[1]);
  for (let i = 1; i <= count; i++) {
    const before = logLines(gw.logFile).filter((l) => l.msg === RELOADED).length;
    const at = Date.now();
    gw.proc.kill('SIGHUP');
    const line = await waitForLog(gw.proc, gw.logFile, RELOADED, before, RELOAD_TIMEOUT_MS);
    out.push({ trigger: 'SIGHUP', ms: Date.parse(line.time ?? '') - at, generation: line.generation, routes: line.routes });
    progress(`  reload ${i} by SIGHUP: ${out[out.length - 1].ms} ms (${line.routes} routes, generation ${line.generation})`);
    await sleep(500);
  }
  for (let i = 1; i <= count; i++) {
    const before = logLines(gw.logFile).filter((l) => l.msg === RELOADED).length;
    // atomic (write a temp file, rename over), as deploy tools do: the watcher never sees half a file
    const tmp = `${gw.configFile}.tmp`;
    writeFileSync(tmp, configYaml(gw.routes, gw.port, upstreamPort, i));
    const at = Date.now();
    renameSync(tmp, gw.configFile);
    const line = await waitForLog(gw.proc, gw.logFile, RELOADED, before, RELOAD_TIMEOUT_MS);
    out.push({ trigger: 'file rewrite', ms: Date.parse(line.time ?? '') - at, generation: line.generation, routes: line.routes });
    progress(`  reload ${i} by file rewrite: ${out[out.length - 1].ms} ms (${line.routes} routes, generation ${line.generation})`);
    await sleep(500);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

function progress(line: string): void {
  process.stdout.write(line + '\n');
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd()).join('\n');
}

async function bench(flags: Flags): Promise<number> {
  const t0 = performance.now();
  const gen = loadGenerator(flags.load);
  progress(`load generator: ${gen.version}`);
  const upstream = await startUpstream();
  const gws: Gateway[] = [];
  // one at a time: a start must not share the CPU with another start
  for (const n of flags.sizes) {
    const gw = await launch(n, upstream.port);
    gws.push(gw);
    progress(`  ${int(n)} routes: listening ${(gw.listeningMs / 1000).toFixed(2)} s after spawn, first 200 at ${(gw.firstOkMs / 1000).toFixed(2)} s, RSS ${gw.rssAfterStartMb.toFixed(0)} MB (config ${(gw.configBytes / 1024).toFixed(0)} KB; load hits ${gw.path})`);
  }

  const warmups = new Map<string, Run>();
  if (flags.warmupS > 0) {
    progress(`warm-up: ${flags.warmupS} s per size`);
    for (const gw of gws) warmups.set(gw.name, await measure(gw, gen, flags, 0, flags.warmupS));
  }
  const rounds = new Map<string, Run[]>(gws.map((g) => [g.name, []]));
  for (let round = 1; round <= flags.rounds; round++) {
    for (const gw of gws) {
      const r = await measure(gw, gen, flags, round, flags.durationS);
      rounds.get(gw.name)!.push(r);
      const bad = r.errors + r.timeouts + r.non2xx;
      progress(`  round ${round} ${`${int(gw.routes)} routes`.padEnd(14)} ${int(r.rps).padStart(7)} req/s  p50 ${f2(r.p50Ms)} ms  p99 ${f2(r.p99Ms)} ms${bad ? `  FAILURES: ${r.errors} errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx` : ''}`);
    }
  }

  // the largest config is the one whose reload costs most; the others stop first so it has the CPU
  const largest = gws.reduce((a, b) => (b.routes > a.routes ? b : a));
  for (const gw of gws) if (gw !== largest) await stop(gw.proc);
  let reloadRuns: ReloadRun[] = [];
  if (flags.reloads > 0) {
    progress(`hot reload of the ${int(largest.routes)}-route gateway (the others stopped)`);
    reloadRuns = await reloads(largest, flags.reloads);
  }
  const rssAfterReloadMb = treeRss(largest.proc.pid!).mb;

  const first = gws[0];
  const summaries = gws.map((gw) => {
    const rs = rounds.get(gw.name)!;
    const rps = rs.map((r) => r.rps);
    const cpu = rs.map((r) => r.gatewayCpu).filter((v): v is number => v !== undefined);
    const failed = [...rs, ...(warmups.has(gw.name) ? [warmups.get(gw.name)!] : [])].reduce((n, r) => n + r.errors + r.timeouts + r.non2xx, 0);
    return {
      routes: gw.routes,
      path: gw.path,
      configBytes: gw.configBytes,
      listeningMs: gw.listeningMs,
      firstOkMs: gw.firstOkMs,
      rssAfterStartMb: gw.rssAfterStartMb,
      rssAfterLoadMb: median(rs.map((r) => r.rssMb)),
      rps: median(rps),
      rpsMin: Math.min(...rps),
      rpsMax: Math.max(...rps),
      p50Ms: median(rs.map((r) => r.p50Ms)),
      p99Ms: median(rs.map((r) => r.p99Ms)),
      gatewayCpu: cpu.length ? median(cpu) : undefined,
      failed,
      rounds: rs,
      warmup: warmups.get(gw.name),
    };
  });
  const base = summaries[0];
  const withRatios = summaries.map((s) => ({ ...s, rpsVsFirst: s.rps / base.rps, rpsVsFirstByRound: s.rounds.map((r, i) => r.rps / base.rounds[i].rps) }));
  const env = { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, os: `${platform()} ${release()}` };
  const failed = withRatios.reduce((n, s) => n + s.failed, 0);
  const reloadBy = (t: ReloadRun['trigger']) => reloadRuns.filter((r) => r.trigger === t).map((r) => r.ms);
  const totalS = (performance.now() - t0) / 1000;

  const out: string[] = [];
  out.push(`Gatehouse route-count bench: ${flags.rounds} interleaved round(s) x ${flags.durationS} s per size, ${flags.connections} connections, load: ${gen.version}, node ${env.node}, ${env.cpus} CPUs; total ${totalS.toFixed(0)} s`);
  out.push('routes alternate exact (/svc/r00001/items) and parameter (/svc/r00002/items/:id) uris; the load hits the last-defined one');
  out.push('listening: spawn until the "gatehouse proxy listening" log line (its own timestamp); first 200: spawn until a request through the last route succeeds (50 ms polls)');
  out.push('');
  out.push(
    table([
      ['routes', 'config KB', 'listening s', 'first 200 s', 'RSS start MB', 'RSS load MB', 'req/s', 'min..max', 'p50 ms', 'p99 ms', 'gw cpu%', `req/s vs ${int(first.routes)}`, 'per round', 'failed'],
      ...withRatios.map((s) => [
        int(s.routes),
        (s.configBytes / 1024).toFixed(0),
        (s.listeningMs / 1000).toFixed(2),
        (s.firstOkMs / 1000).toFixed(2),
        s.rssAfterStartMb.toFixed(0),
        s.rssAfterLoadMb.toFixed(0),
        int(s.rps),
        `${int(s.rpsMin)}..${int(s.rpsMax)}`,
        f2(s.p50Ms),
        f2(s.p99Ms),
        s.gatewayCpu === undefined ? '-' : String(Math.round(s.gatewayCpu)),
        `${s.rpsVsFirst.toFixed(2)}x`,
        s.rpsVsFirstByRound.map((v) => v.toFixed(2)).join(' '),
        String(s.failed),
      ]),
    ]),
  );
  if (reloadRuns.length) {
    out.push('');
    const hup = reloadBy('SIGHUP');
    const file = reloadBy('file rewrite');
    out.push(`hot reload, ${int(largest.routes)} routes (trigger until the "${RELOADED}" log line's timestamp):`);
    out.push(`  SIGHUP (same config):                       median ${int(median(hup))} ms  (runs: ${hup.join(', ')} ms)`);
    out.push(`  file rewrite (one route added, by rename):  median ${int(median(file))} ms  (runs: ${file.join(', ')} ms; includes the file store's 100 ms debounce)`);
    out.push(`  RSS after the reloads: ${rssAfterReloadMb.toFixed(0)} MB`);
  }
  process.stdout.write('\n' + out.join('\n') + '\n');
  writeJson(RESULTS_FILE, {
    ok: failed === 0,
    date: new Date().toISOString(),
    settings: { sizes: flags.sizes, rounds: flags.rounds, durationS: flags.durationS, warmupS: flags.warmupS, connections: flags.connections, reloads: flags.reloads, quick: flags.quick },
    env,
    loadGenerator: { name: gen.name, version: gen.version },
    totalSeconds: totalS,
    sizes: withRatios,
    reload: { routes: largest.routes, runs: reloadRuns, sighupMedianMs: median(reloadBy('SIGHUP')), fileRewriteMedianMs: median(reloadBy('file rewrite')), rssAfterMb: rssAfterReloadMb },
  });
  process.stdout.write(`\nJSON: ${RESULTS_FILE}\n`);
  if (failed > 0) {
    process.stderr.write(`bench:routes FAILED: ${failed} failed requests (connection errors, timeouts, non-2xx answers) during load; counts above and in the JSON\n`);
    return 1;
  }
  return 0;
}

void runBench('bench:routes', USAGE, parseFlags, bench);
