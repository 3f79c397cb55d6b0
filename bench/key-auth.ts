// `npm run bench:key-auth`: key-auth at scale: throughput with 1 vs N consumers, and start-up time / RSS / throughput with N keys held in Vault and AWS Secrets Manager.
import { Agent as HttpAgent } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, platform, release } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Pool, request } from 'undici';
import { startSecretsManagerServer, type SecretsManagerServer } from '../test/servers/secrets-manager';
import { startVaultServer, type VaultServer } from '../test/servers/vault';
import { runLoad } from './load';
import { benchDir, getOnce, runBench, wasInterrupted, cpuSeconds, freePort, logTail, spawnGateway, startUpstream, stop, type Child } from './procs';
import { failures, formatRound, median, summarize, writeJson, type RoundResult, type TargetSummary } from './report';
import { UPSTREAM_BODY } from './upstream';

const RESULTS_FILE = resolve(__dirname, '..', '..', 'bench', 'results', 'key-auth.json');
const PROFILE_DIR = resolve(__dirname, '..', '..', 'bench', 'results', 'cpu-prof');
// a gateway writes its CPU profile while exiting, which takes longer than a plain drain
const PROFILED_STOP_GRACE_MS = 60_000;
const PATH = '/ip';
const KEY_HEADER = 'apikey';
const VAULT_TOKEN = 'bench-root';
const AWS_REGION = 'us-east-1';
const SEED_CONCURRENCY = 64;
const POLL_MS = 50;
// lets the servers finish closing the previous run's connections before the next run opens its own
const SETTLE_MS = 200;
// well past the 60 s this bench treats as "too slow", so a slow start is still measured, not cut off
const START_TIMEOUT_MS = 180_000;
const TARGET_RATIO = 0.95;

const USAGE = `usage: npm run bench:key-auth -- [--consumers N] [--rounds N] [--duration S] [--connections C] [--warmup S] [--aws] [--cpu-prof]
  --consumers N     consumers of gateways B, C and D (default 100000)
  --rounds N        interleaved A/B rounds (default 3); C and D get one round each
  --duration S      whole seconds per load run (default 5)
  --connections C   concurrent keep-alive connections (default 50)
  --warmup S        whole seconds of unmeasured load per gateway before its first run (default 1; 0 = none)
  --aws             also gateway D, keys in AWS Secrets Manager (adds about 2 min at 100 000: the SDK seeds about 1 000 secrets/s)
  --cpu-prof        write a V8 CPU profile of every gateway (start-up and load) to bench/results/cpu-prof/<gateway>.cpuprofile`;

interface Flags {
  readonly consumers: number;
  readonly rounds: number;
  readonly durationS: number;
  readonly connections: number;
  readonly warmupS: number;
  readonly aws: boolean;
  readonly cpuProf: boolean;
}

function parseFlags(argv: string[]): Flags {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      consumers: { type: 'string', default: '100000' },
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '5' },
      connections: { type: 'string', default: '50' },
      warmup: { type: 'string', default: '1' },
      aws: { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  return {
    consumers: wholeNumber('--consumers', values.consumers, 1),
    rounds: wholeNumber('--rounds', values.rounds, 1),
    durationS: wholeNumber('--duration', values.duration, 1),
    connections: wholeNumber('--connections', values.connections, 1),
    warmupS: wholeNumber('--warmup', values.warmup, 0),
    aws: values.aws,
    cpuProf: values['cpu-prof'],
  };
}

function wholeNumber(flag: string, raw: string, min: number): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

// names and keys derive from i alone, so every run builds the same set
class Names {
  private readonly width: number;
  constructor(readonly n: number) {
    this.width = Math.max(6, String(n).length);
  }
  id(i: number): string {
    return String(i).padStart(this.width, '0');
  }
  username(i: number): string {
    return `c${this.id(i)}`;
  }
  // the load authenticates as a consumer from the middle: neither the first nor the last entry of anything
  get middle(): number {
    return Math.max(1, Math.ceil(this.n / 2));
  }
}

interface GatewayConfig {
  readonly name: string;
  readonly label: string;
  readonly body: string;
  readonly goodKey: string;
}

function routeYaml(upstreamPort: number): string {
  return ['routes:', '  - id: ip', `    uri: ${PATH}`, '    plugins: { key-auth: {} }', `    upstream: { type: roundrobin, nodes: { "127.0.0.1:${upstreamPort}": 1 } }`, ''].join('\n');
}

// block style, as people and generators write consumers (about 10 MB for 100 000)
function consumersYaml(count: number, names: Names, keyOf: (i: number) => string): string {
  const lines = ['consumers:'];
  for (let i = 1; i <= count; i++) lines.push(`  - username: ${names.username(i)}`, '    plugins:', '      key-auth:', `        key: "${keyOf(i)}"`);
  lines.push('');
  return lines.join('\n');
}

interface Gateway extends Child {
  readonly label: string;
  readonly goodKey: string;
  readonly startMs: number;
  // the bench process's share shows whether the secrets test server it hosts, not the gateway, set the pace
  readonly startCpu: { readonly gatewayS: number; readonly benchS: number };
  readonly configBytes: number;
}

interface Memory {
  readonly rssMb: number;
  readonly peakMb: number;
}

// a generous timeout: a gateway busy starting answers late, not never
function probe(port: number, headers: Record<string, string>): Promise<{ status: number; body: Buffer }> {
  return getOnce(port, PATH, headers, 10_000);
}

function exited(c: Child): boolean {
  return c.proc.exitCode !== null || c.proc.signalCode !== null;
}

async function launch(cfg: GatewayConfig, flags: Flags): Promise<Gateway> {
  const nodeArgs = flags.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=${cfg.name}.cpuprofile`] : [];
  // freePort() can race another process for the port: retry on EADDRINUSE
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const file = join(benchDir(), `${cfg.name}.yaml`);
    const yaml = `gateway:\n  listen: 127.0.0.1:${port}\n  access_log: false\n${cfg.body}`;
    writeFileSync(file, yaml);
    const t0 = performance.now();
    const bench0 = process.cpuUsage();
    const { proc, logFile } = spawnGateway(cfg.name, file, nodeArgs);
    const child: Child = { name: cfg.name, proc, port, logFile };
    const deadline = t0 + START_TIMEOUT_MS;
    let last = 'no answer yet';
    while (performance.now() < deadline && !exited(child) && !wasInterrupted()) {
      try {
        const r = await probe(port, { [KEY_HEADER]: cfg.goodKey });
        if (r.status === 200 && r.body.equals(UPSTREAM_BODY)) {
          const startMs = performance.now() - t0;
          const b = process.cpuUsage(bench0);
          const startCpu = { gatewayS: cpuSeconds(proc.pid) ?? NaN, benchS: (b.user + b.system) / 1e6 };
          return { ...child, label: cfg.label, goodKey: cfg.goodKey, startMs, startCpu, configBytes: Buffer.byteLength(yaml) };
        }
        last = `HTTP ${r.status}: ${r.body.toString('utf8').slice(0, 200)}`;
      } catch (err) {
        last = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      }
      await sleep(POLL_MS);
    }
    if (wasInterrupted()) throw new Error('wasInterrupted()');
    const why = exited(child) ? `exited during start-up (code ${proc.exitCode}, signal ${proc.signalCode})` : `no 200 within ${START_TIMEOUT_MS / 1000} s (last probe: ${last})`;
    await stop(proc);
    const tail = logTail(logFile);
    if (attempt < 3 && tail.includes('EADDRINUSE')) continue;
    throw new Error(`gateway ${cfg.name} failed to start: ${why}\nlast log lines:\n${tail}`);
  }
}

// load numbers mean nothing unless key-auth really rejects and admits
async function verify(gw: Gateway): Promise<void> {
  const cases: Array<[string, Record<string, string>, number]> = [
    ['no key', {}, 401],
    ['a wrong key', { [KEY_HEADER]: 'not-a-key' }, 401],
    ['the right key', { [KEY_HEADER]: gw.goodKey }, 200],
  ];
  for (const [what, headers, want] of cases) {
    const r = await probe(gw.port, headers);
    if (r.status !== want || (want === 200 && !r.body.equals(UPSTREAM_BODY))) {
      throw new Error(`gateway ${gw.name}: ${what} got HTTP ${r.status} (${r.body.toString('utf8').slice(0, 200)}), expected ${want}`);
    }
  }
}

function memory(pid: number | undefined): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

// the whole machine's busy CPU seconds (/proc/stat), so load from outside the bench shows next to the numbers it disturbs
function machineBusySeconds(): number | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy
    const busy = f.slice(0, 8).reduce((a, b) => a + b, 0) - f[3] - f[4];
    return busy / 100;
  } catch {
    return undefined;
  }
}

interface Run extends RoundResult {
  // another build or test run on the machine during the run, in % of one core
  readonly otherCpu?: number;
}

async function measure(gw: Gateway, upstream: Child, flags: Flags, round: number, durationS: number): Promise<Run> {
  if (wasInterrupted()) throw new Error('wasInterrupted()');
  const before = { lg: process.cpuUsage(), gw: cpuSeconds(gw.proc.pid), up: cpuSeconds(upstream.proc.pid), all: machineBusySeconds(), t: process.hrtime.bigint() };
  const load = await runLoad({ url: `http://127.0.0.1:${gw.port}${PATH}`, connections: flags.connections, durationS, headers: { [KEY_HEADER]: gw.goodKey } });
  if (wasInterrupted()) throw new Error('wasInterrupted()');
  const wall = Number(process.hrtime.bigint() - before.t) / 1e9;
  const lg = process.cpuUsage(before.lg);
  const g = cpuSeconds(gw.proc.pid);
  const u = cpuSeconds(upstream.proc.pid);
  const cpu: RoundResult['cpu'] = { loadgen: ((lg.user + lg.system) / 1e6 / wall) * 100 };
  if (g !== undefined && before.gw !== undefined) cpu.gateway = ((g - before.gw) / wall) * 100;
  if (u !== undefined && before.up !== undefined) cpu.upstream = ((u - before.up) / wall) * 100;
  const all = machineBusySeconds();
  const ours = (cpu.loadgen ?? 0) + (cpu.gateway ?? 0) + (cpu.upstream ?? 0);
  const otherCpu = all !== undefined && before.all !== undefined ? Math.max(0, ((all - before.all) / wall) * 100 - ours) : undefined;
  for (const c of [gw, upstream]) {
    if (exited(c)) throw new Error(`${c.name} exited during the bench (code ${c.proc.exitCode}, signal ${c.proc.signalCode}); last log lines:\n${logTail(c.logFile)}`);
  }
  await sleep(SETTLE_MS);
  return { round, ...load, cpu, otherCpu };
}

interface GatewayReport {
  readonly name: string;
  readonly label: string;
  readonly consumers: number;
  readonly configBytes: number;
  readonly startMs: number;
  readonly startCpu: Gateway['startCpu'];
  readonly afterStart: Memory;
  afterLoad?: Memory;
  summary?: TargetSummary;
  backendRequests?: Record<string, number>;
}

function runLine(label: string, r: Run): string {
  return formatRound(label, r) + `  cpu% loadgen/gw/upstream ${pct(r.cpu.loadgen)}/${pct(r.cpu.gateway)}/${pct(r.cpu.upstream)}, other processes ${pct(r.otherCpu)}`;
}

const pct = (v: number | undefined) => (v === undefined ? '-' : String(Math.round(v)));

function reportOf(gw: Gateway, consumers: number): GatewayReport {
  return { name: gw.name, label: gw.label, consumers, configBytes: gw.configBytes, startMs: gw.startMs, startCpu: gw.startCpu, afterStart: memory(gw.proc.pid) };
}

function startLine(r: GatewayReport): string {
  return `${r.label}: ready in ${(r.startMs / 1000).toFixed(2)} s (config ${(r.configBytes / 1e6).toFixed(1)} MB; CPU until ready: gateway ${r.startCpu.gatewayS.toFixed(1)} s, bench ${r.startCpu.benchS.toFixed(1)} s), RSS ${r.afterStart.rssMb.toFixed(0)} MB (peak ${r.afterStart.peakMb.toFixed(0)} MB)`;
}

async function bounded(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 1;
  async function lane(): Promise<void> {
    while (next <= n && !wasInterrupted()) await fn(next++);
  }
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, lane));
  if (wasInterrupted()) throw new Error('wasInterrupted()');
}

interface Seeding {
  readonly secrets: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly concurrency: number;
}

function seeding(n: number, t0: number): Seeding {
  const seconds = (performance.now() - t0) / 1000;
  return { secrets: n, seconds, perSecond: n / seconds, concurrency: SEED_CONCURRENCY };
}

async function seedVault(vault: VaultServer, names: Names): Promise<Seeding> {
  const pool = new Pool(vault.url, { connections: SEED_CONCURRENCY });
  const headers = { 'x-vault-token': VAULT_TOKEN, 'content-type': 'application/json' };
  try {
    const mount = await request(`${vault.url}/v1/sys/mounts/apisix`, { method: 'POST', headers, body: JSON.stringify({ type: 'kv', options: { version: '1' } }), dispatcher: pool });
    await mount.body.dump();
    if (mount.statusCode !== 204) throw new Error(`vault: mounting apisix answered HTTP ${mount.statusCode}`);
    const t0 = performance.now();
    await bounded(names.n, SEED_CONCURRENCY, async function write(i) {
      const res = await request(`${vault.url}/v1/apisix/${names.username(i)}`, { method: 'POST', headers, body: JSON.stringify({ key: `vault-key-${names.id(i)}` }), dispatcher: pool });
      await res.body.dump();
      if (res.statusCode !== 204) throw new Error(`vault: writing apisix/${names.username(i)} answered HTTP ${res.statusCode}`);
    });
    return seeding(names.n, t0);
  } finally {
    await pool.close();
  }
}

// through the real SDK, so the test server sees SigV4-signed calls like the gateway's own
async function seedAws(sm: SecretsManagerServer, names: Names): Promise<Seeding> {
  // the SDK's default agent allows 50 sockets; match the concurrency so no call queues for one
  const agent = new HttpAgent({ keepAlive: true, maxSockets: SEED_CONCURRENCY });
  const client = new SecretsManagerClient({ region: AWS_REGION, endpoint: sm.url, credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, requestHandler: { httpAgent: agent } });
  try {
    const t0 = performance.now();
    await bounded(names.n, SEED_CONCURRENCY, async function create(i) {
      await client.send(new CreateSecretCommand({ Name: names.username(i), SecretString: JSON.stringify({ key: `aws-key-${names.id(i)}` }) }));
    });
    return seeding(names.n, t0);
  } finally {
    client.destroy();
    agent.destroy();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function progress(line: string): void {
  process.stdout.write(line + '\n');
}

interface Results {
  readonly gateways: GatewayReport[];
  readonly ratios: Record<string, { rps: number; p50: number; p99: number; rpsByRound: number[] }>;
  readonly seeding: Record<string, Seeding>;
}

// per round as well: A's run and X's run next to it share the machine's conditions
function ratioTo(a: TargetSummary, x: TargetSummary): Results['ratios'][string] {
  return { rps: x.rps / a.rps, p50: x.p50Ms / a.p50Ms, p99: x.p99Ms / a.p99Ms, rpsByRound: x.rounds.map((r, i) => r.rps / a.rounds[i].rps) };
}

async function warmup(gws: readonly Gateway[], upstream: Child, flags: Flags): Promise<Map<string, Run>> {
  const out = new Map<string, Run>();
  if (flags.warmupS === 0) return out;
  for (const gw of gws) out.set(gw.name, await measure(gw, upstream, flags, 0, flags.warmupS));
  return out;
}

async function secretGateway(a: Gateway, upstream: Child, flags: Flags, cfg: GatewayConfig, counts: () => Record<string, number>, results: Results): Promise<void> {
  const gw = await launch(cfg, flags);
  try {
    const rep = reportOf(gw, flags.consumers);
    rep.backendRequests = counts();
    results.gateways.push(rep);
    progress(startLine(rep));
    progress(`  backend requests during start: ${Object.entries(rep.backendRequests).map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`).join(', ')}`);
    await verify(gw);
    const warm = await warmup([gw], upstream, flags);
    const aRun = await measure(a, upstream, flags, 1, flags.durationS);
    progress(runLine(`${a.name} (next to ${gw.name})`, aRun));
    const run = await measure(gw, upstream, flags, 1, flags.durationS);
    progress(runLine(gw.name, run));
    rep.afterLoad = memory(gw.proc.pid);
    rep.summary = summarize(gw.name, gw.label, `http://127.0.0.1:${gw.port}${PATH}`, [run], warm.get(gw.name));
    results.ratios[`${gw.name}/A`] = ratioTo(summarize(a.name, a.label, '', [aRun]), rep.summary);
  } finally {
    await stopGateway(gw, flags);
  }
}

function stopGateway(gw: Gateway, flags: Flags): Promise<void> {
  return stop(gw.proc, flags.cpuProf ? PROFILED_STOP_GRACE_MS : undefined);
}

async function bench(flags: Flags): Promise<number> {
  const names = new Names(flags.consumers);
  const mid = names.middle;
  const n = flags.consumers.toLocaleString('en-US');
  const results: Results = { gateways: [], ratios: {}, seeding: {} };
  const upstream = await startUpstream();
  const route = routeYaml(upstream.port);
  const t0 = performance.now();

  progress(`starting gateways A (1 consumer) and B (${n} consumers, literal keys)`);
  const a = await launch({ name: 'A', label: 'A: 1 literal key', body: route + consumersYaml(1, names, (i) => `key-${names.id(i)}`), goodKey: `key-${names.id(1)}` }, flags);
  const repA = reportOf(a, 1);
  results.gateways.push(repA);
  progress(startLine(repA));
  const b = await launch({ name: 'B', label: `B: ${n} literal keys`, body: route + consumersYaml(flags.consumers, names, (i) => `key-${names.id(i)}`), goodKey: `key-${names.id(mid)}` }, flags);
  const repB = reportOf(b, flags.consumers);
  results.gateways.push(repB);
  progress(startLine(repB));
  await verify(a);
  await verify(b);
  const warm = await warmup([a, b], upstream, flags);
  const rounds = new Map<string, Run[]>([
    [a.name, []],
    [b.name, []],
  ]);
  for (let round = 1; round <= flags.rounds; round++) {
    for (const gw of [a, b]) {
      const r = await measure(gw, upstream, flags, round, flags.durationS);
      rounds.get(gw.name)!.push(r);
      progress(runLine(gw.name, r));
    }
  }
  repA.afterLoad = memory(a.proc.pid);
  repB.afterLoad = memory(b.proc.pid);
  repA.summary = summarize(a.name, a.label, `http://127.0.0.1:${a.port}${PATH}`, rounds.get(a.name)!, warm.get(a.name));
  repB.summary = summarize(b.name, b.label, `http://127.0.0.1:${b.port}${PATH}`, rounds.get(b.name)!, warm.get(b.name));
  results.ratios['B/A'] = ratioTo(repA.summary, repB.summary);
  // B is done: its CPU and memory must not weigh on C's start
  await stopGateway(b, flags);

  const vault = await startVaultServer({ rootToken: VAULT_TOKEN });
  try {
    progress(`seeding Vault with ${n} secrets (${SEED_CONCURRENCY} concurrent writes)`);
    results.seeding.vault = await seedVault(vault, names);
    progress(`  ${results.seeding.vault.seconds.toFixed(1)} s (${Math.round(results.seeding.vault.perSecond).toLocaleString('en-US')} writes/s)`);
    const seen = vault.requests.length;
    const gets = vault.count('apisix/', 'GET');
    const secrets = `secrets:\n  - { id: vault/gw, uri: "${vault.url}", prefix: apisix, token: ${VAULT_TOKEN}, kv_version: 1 }\n`;
    progress(`starting gateway C (${n} consumers, keys in Vault)`);
    await secretGateway(
      a,
      upstream,
      flags,
      { name: 'C', label: `C: ${n} keys in Vault KV v1`, body: route + secrets + consumersYaml(flags.consumers, names, (i) => `$secret://vault/gw/${names.username(i)}/key`), goodKey: `vault-key-${names.id(mid)}` },
      () => ({ total: vault.requests.length - seen, 'GET apisix/*': vault.count('apisix/', 'GET') - gets }),
      results,
    );
  } finally {
    await vault.close();
  }

  if (flags.aws) {
    const sm = await startSecretsManagerServer({ region: AWS_REGION });
    try {
      progress(`seeding Secrets Manager with ${n} secrets (${SEED_CONCURRENCY} concurrent CreateSecret calls)`);
      results.seeding.aws = await seedAws(sm, names);
      progress(`  ${results.seeding.aws.seconds.toFixed(1)} s (${Math.round(results.seeding.aws.perSecond).toLocaleString('en-US')} calls/s)`);
      sm.resetCounts();
      const secrets = `secrets:\n  - { id: aws/prod, region: ${AWS_REGION}, endpoint_url: "${sm.url}", access_key_id: test, secret_access_key: test }\n`;
      progress(`starting gateway D (${n} consumers, keys in AWS Secrets Manager)`);
      await secretGateway(
        a,
        upstream,
        flags,
        { name: 'D', label: `D: ${n} keys in AWS SM`, body: route + secrets + consumersYaml(flags.consumers, names, (i) => `$secret://aws/prod/${names.username(i)}/key`), goodKey: `aws-key-${names.id(mid)}` },
        () => ({ total: sm.count(), BatchGetSecretValue: sm.count('BatchGetSecretValue'), GetSecretValue: sm.count('GetSecretValue') }),
        results,
      );
    } finally {
      await sm.close();
    }
  }

  await stopGateway(a, flags);
  const env = { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, os: `${platform()} ${release()}` };
  const summaries = results.gateways.map((g) => g.summary).filter((s): s is TargetSummary => s !== undefined);
  const failed = summaries.reduce((k, s) => k + failures(s), 0);
  const totalS = (performance.now() - t0) / 1000;
  process.stdout.write('\n' + formatTable(flags, env, results, totalS) + '\n');
  writeJson(RESULTS_FILE, {
    ok: failed === 0,
    date: new Date().toISOString(),
    settings: { ...flags, pipelining: 1, path: PATH, keyHeader: KEY_HEADER, seedConcurrency: SEED_CONCURRENCY, pollMs: POLL_MS },
    env,
    totalSeconds: totalS,
    ...results,
  });
  process.stdout.write(`\nJSON: ${RESULTS_FILE}\n`);
  if (failed > 0) {
    process.stderr.write(`bench FAILED: ${failed} failures (connection errors, timeouts, non-2xx answers) during load; counts above and in the JSON\n`);
    return 1;
  }
  return 0;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd()).join('\n');
}

const int = (v: number) => Math.round(v).toLocaleString('en-US');
const mb = (m: Memory | undefined) => (m === undefined ? '-' : m.rssMb.toFixed(0));

function formatTable(flags: Flags, env: { cpus: number; node: string }, results: Results, totalS: number): string {
  const out: string[] = [];
  out.push(
    `Gatehouse key-auth bench: ${flags.consumers.toLocaleString('en-US')} consumers; A/B ${flags.rounds} interleaved rounds, C/D one round next to A; ` +
      `${flags.durationS} s per run, ${flags.connections} connections, node ${env.node}, ${env.cpus} CPUs; total ${totalS.toFixed(0)} s`,
  );
  if (env.cpus < 3) out.push(`note: ${env.cpus} CPUs for 3 busy processes (load generator, gateway, upstream): absolute req/s include CPU contention`);
  out.push(
    'start s: spawn until the first 200 to a request with a consumer key (polled every 50 ms); gw CPU s: CPU the gateway used until then; peak: VmHWM; ' +
      'other cpu%: CPU used by processes outside the bench during the runs (median, % of one core), high values mean disturbed numbers',
  );
  out.push('');
  out.push(
    table([
      ['gateway', 'start s', 'gw CPU s', 'RSS start MB', 'peak MB', 'RSS after load MB', 'req/s (median)', 'min..max', 'p50 ms', 'p99 ms', 'gw cpu%', 'other cpu%', 'failed'],
      ...results.gateways.map((g) => {
        const s = g.summary;
        return [
          g.label,
          (g.startMs / 1000).toFixed(2),
          g.startCpu.gatewayS.toFixed(1),
          mb(g.afterStart),
          (g.afterLoad ?? g.afterStart).peakMb.toFixed(0),
          mb(g.afterLoad),
          s ? int(s.rps) : '-',
          s ? `${int(s.rpsMin)}..${int(s.rpsMax)}` : '-',
          s ? s.p50Ms.toFixed(2) : '-',
          s ? s.p99Ms.toFixed(2) : '-',
          pct(s?.cpu.gateway),
          s ? pct(median((s.rounds as Run[]).map((r) => r.otherCpu ?? NaN))) : '-',
          s ? String(failures(s)) : '-',
        ];
      }),
    ]),
  );
  out.push('');
  const rows = Object.entries(results.ratios).map(([k, r]) => [
    k === 'B/A' ? `B / A (medians of ${flags.rounds} rounds)` : `${k.replace('/', ' / ')} (adjacent runs)`,
    `${r.rps.toFixed(2)}x`,
    `${r.p50.toFixed(2)}x`,
    `${r.p99.toFixed(2)}x`,
    r.rpsByRound.map((v) => v.toFixed(2)).join(' '),
  ]);
  out.push(table([['ratio', 'req/s', 'p50', 'p99', 'req/s ratio per round'], ...rows]));
  const ba = results.ratios['B/A'];
  if (ba) out.push(`B / A req/s ${ba.rps.toFixed(3)}x: target >= ${TARGET_RATIO} ${ba.rps >= TARGET_RATIO ? 'met' : 'NOT met'}`);
  out.push('');
  for (const [k, s] of Object.entries(results.seeding)) {
    out.push(`seeding ${k === 'vault' ? 'Vault (HTTP writes)' : 'Secrets Manager (SDK CreateSecret)'}: ${s.secrets.toLocaleString('en-US')} secrets in ${s.seconds.toFixed(1)} s (${int(s.perSecond)}/s, ${s.concurrency} concurrent)`);
  }
  for (const g of results.gateways) {
    if (g.backendRequests) out.push(`backend requests during ${g.name}'s start: ${Object.entries(g.backendRequests).map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`).join(', ')}`);
  }
  return out.join('\n');
}

void runBench('bench:key-auth', USAGE, parseFlags, bench, `Gatehouse key-auth bench (node ${process.version})\n`);
