// `npm run bench`: direct upstream vs the same upstream through Gatehouse, in interleaved rounds.
//
// Placement: the upstream and each gateway run in their own child processes; the load generator
// (autocannon) runs here, in the bench process. During a round this process does nothing but drive
// autocannon (children log to files, not pipes), so a separate load-generator process would buy no
// isolation, only a process start and a result hand-over per run; and one long-lived load generator
// is equally JIT-warm for every target, which keeps A and B comparable. autocannon's `workers`
// option is left off: extra load threads would take CPU from the gateway and upstream under test.
import { availableParallelism, cpus, platform, release } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runLoad, type LoadResult } from './load';
import { runBench, wasInterrupted, countInLog, cpuSeconds, getOnce, logTail, startGateway, startUpstream, type Child } from './procs';
import { failures, formatReport, formatRound, ratio, summarize, writeJson, type BenchSettings, type CpuShare, type RoundResult } from './report';
import { UPSTREAM_BODY } from './upstream';

const RESULTS_FILE = resolve(__dirname, '..', '..', 'bench', 'results', 'latest.json');
const PATH = '/bench';
// lets the servers finish closing the previous run's connections before the next run opens its own
const SETTLE_MS = 200;

const USAGE = `usage: npm run bench -- [--rounds N] [--duration S] [--connections C] [--warmup S] [--no-access-log]
  --rounds N        interleaved rounds, each target once per round (default 3)
  --duration S      whole seconds measured per target per round (default 5)
  --connections C   concurrent keep-alive connections (default 50)
  --warmup S        whole seconds of unmeasured load per target before round 1 (default 1; 0 = none)
  --no-access-log   skip the "gateway + access log" target`;

interface Flags extends BenchSettings {
  readonly accessLogTarget: boolean;
}

function parseFlags(argv: string[]): Flags {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '5' },
      connections: { type: 'string', default: '50' },
      warmup: { type: 'string', default: '1' },
      'no-access-log': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  return {
    rounds: wholeNumber('--rounds', values.rounds, 1),
    durationS: wholeNumber('--duration', values.duration, 1),
    connections: wholeNumber('--connections', values.connections, 1),
    warmupS: wholeNumber('--warmup', values.warmup, 0),
    accessLogTarget: !values['no-access-log'],
  };
}

// autocannon's duration is whole seconds (it samples on a 1 s tick), hence integers for every flag
function wholeNumber(flag: string, raw: string, min: number): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

interface Target {
  readonly name: string;
  readonly label: string;
  readonly url: string;
  /** The gateway child, for gateway targets. */
  readonly gateway?: Child;
}

/** One load run, with the CPU share of each process involved. */
async function measure(target: Target, upstream: Child, flags: Flags, durationS: number): Promise<{ load: LoadResult; cpu: CpuShare }> {
  if (wasInterrupted()) throw new Error('wasInterrupted()');
  const gwPid = target.gateway?.proc.pid;
  const before = { lg: process.cpuUsage(), gw: cpuSeconds(gwPid), up: cpuSeconds(upstream.proc.pid), t: process.hrtime.bigint() };
  const load = await runLoad({ url: target.url, connections: flags.connections, durationS });
  // a run cut short by Ctrl-C is no measurement
  if (wasInterrupted()) throw new Error('wasInterrupted()');
  const wall = Number(process.hrtime.bigint() - before.t) / 1e9;
  const lg = process.cpuUsage(before.lg);
  const gw = cpuSeconds(gwPid);
  const up = cpuSeconds(upstream.proc.pid);
  const cpu: CpuShare = { loadgen: ((lg.user + lg.system) / 1e6 / wall) * 100 };
  if (gw !== undefined && before.gw !== undefined) cpu.gateway = ((gw - before.gw) / wall) * 100;
  if (up !== undefined && before.up !== undefined) cpu.upstream = ((up - before.up) / wall) * 100;
  return { load, cpu };
}

/** A child that died mid-bench makes every later number meaningless: stop, with its log. */
function assertAlive(children: readonly Child[]): void {
  for (const c of children) {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) {
      throw new Error(`${c.name} exited during the bench (code ${c.proc.exitCode}, signal ${c.proc.signalCode}); last log lines:\n${logTail(c.logFile)}`);
    }
  }
}

function settle(): Promise<void> {
  return new Promise<void>((r) => setTimeout(r, SETTLE_MS));
}

async function bench(flags: Flags): Promise<number> {
  const upstream = await startUpstream();
  const direct = await getOnce(upstream.port, PATH);
  if (direct.status !== 200 || !direct.body.equals(UPSTREAM_BODY)) throw new Error(`upstream answered ${direct.status} with an unexpected body`);

  const [plain, logged] = await Promise.all([
    startGateway({ name: 'gateway', upstreamPort: upstream.port, accessLog: false, path: PATH }, UPSTREAM_BODY),
    flags.accessLogTarget ? startGateway({ name: 'gateway-access-log', upstreamPort: upstream.port, accessLog: true, path: PATH }, UPSTREAM_BODY) : undefined,
  ]);
  const children = [upstream, plain, ...(logged ? [logged] : [])];
  const targets: Target[] = [
    { name: 'direct', label: 'direct upstream', url: `http://127.0.0.1:${upstream.port}${PATH}` },
    { name: 'gateway', label: 'gateway', url: `http://127.0.0.1:${plain.port}${PATH}`, gateway: plain },
    ...(logged ? [{ name: 'gateway-access-log', label: 'gateway + access log', url: `http://127.0.0.1:${logged.port}${PATH}`, gateway: logged }] : []),
  ];

  const warmups = new Map<string, LoadResult>();
  if (flags.warmupS > 0) {
    process.stdout.write(`warm-up: ${flags.warmupS} s per target\n`);
    for (const t of targets) {
      warmups.set(t.name, (await measure(t, upstream, flags, flags.warmupS)).load);
      assertAlive(children);
      await settle();
    }
  }

  // interleaved (A B A B ...) so drift during the run (thermal, neighbours, GC state) hits every target alike
  const rounds = new Map<string, RoundResult[]>(targets.map((t) => [t.name, []]));
  for (let round = 1; round <= flags.rounds; round++) {
    for (const t of targets) {
      const { load, cpu } = await measure(t, upstream, flags, flags.durationS);
      const r: RoundResult = { round, ...load, cpu };
      rounds.get(t.name)!.push(r);
      process.stdout.write(formatRound(t.label, r) + '\n');
      assertAlive(children);
      await settle();
    }
  }

  // proof that the access-log target really logged: one line per request it served
  const accessLog = logged && {
    lines: countInLog(logged.logFile, '"type":"access"'),
    requests: [...(rounds.get(logged.name) ?? []), ...(warmups.has(logged.name) ? [warmups.get(logged.name)!] : [])].reduce((n, r) => n + r.requests, 0),
  };

  const summaries = targets.map((t) => summarize(t.name, t.label, t.url, rounds.get(t.name)!, warmups.get(t.name)));
  const [directSummary, ...gateways] = summaries;
  const ratios = gateways.map((g) => ratio(g, directSummary));
  const env = { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, os: `${platform()} ${release()}` };
  const failed = summaries.reduce((n, t) => n + failures(t), 0);

  process.stdout.write('\n' + formatReport(flags, env, summaries, ratios) + '\n');
  if (accessLog) {
    process.stdout.write(
      `access log: ${accessLog.lines.toLocaleString('en-US')} lines for ${accessLog.requests.toLocaleString('en-US')} completed requests ` +
        `(extra lines: requests in flight when a run stopped, and readiness probes; pino may still hold the last few KB)\n`,
    );
  }
  writeJson(RESULTS_FILE, {
    ok: failed === 0,
    date: new Date().toISOString(),
    settings: { rounds: flags.rounds, durationS: flags.durationS, warmupS: flags.warmupS, connections: flags.connections, pipelining: 1, path: PATH, upstreamBodyBytes: UPSTREAM_BODY.length },
    env,
    targets: summaries,
    ratios,
    accessLog,
  });
  process.stdout.write(`\nJSON: ${RESULTS_FILE}\n`);
  if (failed > 0) {
    process.stderr.write(`bench FAILED: ${failed} failures (connection errors, timeouts, non-2xx answers); counts above and in the JSON\n`);
    return 1;
  }
  return 0;
}

void runBench('bench', USAGE, parseFlags, bench);
