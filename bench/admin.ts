// `npm run bench:admin`: what one Admin API write costs on a large config. Gatehouse through its
// real CLI with N consumers (literal key-auth keys) and M routes, on the file store and on etcd
// (Debian's etcd, its own process on free ports with a temp data dir). Per case (one consumer PUT,
// one route PUT, one upstream PUT, a key rotation of one existing consumer; 1 and 4 concurrent
// writers): answer latency, time until the change is live on the data plane (the proxy polled
// until it shows the change), writes per second, proxied-request p99 of a light steady load
// during the writes next to the same load idle, RSS after start and after the writes. The issue's
// targets are printed beside the measured numbers; the bench reports, it never asserts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest, get as httpGet, Agent } from 'node:http';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { treeRss } from './proc-tree';
import { benchDir, freePort, getOnce, logTail, runBench, spawnGateway, spawnGuarded, startUpstream, stop, waitReady, wasInterrupted, type Child } from './procs';
import { median, writeJson } from './report';
import { UPSTREAM_BODY } from './upstream';
import { findBinary } from './wrk';

const RESULTS_FILE = resolve(__dirname, '..', '..', 'bench', 'results', 'admin.json');
const ADMIN_KEY = 'bench-admin-key';
const KEY_HEADER = 'apikey';
// generous: at 100 000 consumers today's code takes seconds per write, and a start takes a while
const START_TIMEOUT_MS = 600_000;
const LIVE_TIMEOUT_MS = 120_000;
const ANSWER_TIMEOUT_MS = 120_000;
const LIVE_POLL_MS = 5;
// the light steady load: one proxied request every 20 ms (50/s), enough for a p99, too little to compete
const STEADY_INTERVAL_MS = 20;
const IDLE_S = 5;

const USAGE = `usage: npm run bench:admin -- [--writes N] [--consumers N] [--routes N] [--stores file,etcd] [--node-args ARGS] [--settle-s N] [--cases LIST]
  --writes N      writes per case (default $BENCH_ADMIN_WRITES or 1000, as the targets)
  --consumers N   consumers, literal key-auth keys (default $BENCH_ADMIN_CONSUMERS or 100000)
  --routes N      routes (default $BENCH_ADMIN_ROUTES or 10000)
  --stores LIST   config stores to bench (default $BENCH_ADMIN_STORES or file,etcd)
  --node-args ARGS  Node options for the gateway's process, space-separated (default $BENCH_ADMIN_NODE_ARGS or none),
                  e.g. --node-args="-r ./dist/bench/gateway-probe.js" (with "=": the value starts with a dash)
  --cases LIST    the write kinds to run (default all: consumer,route,upstream,rotation,secret); a
                  target over a kind not run is judged on the kinds that were
  --settle-s N    after the writes, stop the proxied load and report RSS after N seconds with no traffic
                  (default $BENCH_ADMIN_SETTLE_S or 0: not measured); shows what V8 returns once quiet`;

type StoreKind = 'file' | 'etcd';

interface Flags {
  readonly writes: number;
  readonly consumers: number;
  readonly routes: number;
  readonly stores: readonly StoreKind[];
  readonly nodeArgs: readonly string[];
  readonly settleS: number;
  readonly cases: ReadonlySet<string>;
}

function parseFlags(argv: string[]): Flags {
  const env = process.env;
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      writes: { type: 'string', default: env.BENCH_ADMIN_WRITES ?? '1000' },
      consumers: { type: 'string', default: env.BENCH_ADMIN_CONSUMERS ?? '100000' },
      routes: { type: 'string', default: env.BENCH_ADMIN_ROUTES ?? '10000' },
      stores: { type: 'string', default: env.BENCH_ADMIN_STORES ?? 'file,etcd' },
      'node-args': { type: 'string', default: env.BENCH_ADMIN_NODE_ARGS ?? '' },
      'settle-s': { type: 'string', default: env.BENCH_ADMIN_SETTLE_S ?? '0' },
      cases: { type: 'string', default: env.BENCH_ADMIN_CASES ?? 'consumer,route,upstream,rotation,secret' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const stores = values.stores.split(',').map((s) => s.trim());
  for (const c of values.cases.split(',').map((x) => x.trim())) if (!CASES.some(([k]) => k === c)) throw new Error(`--cases: one of ${[...new Set(CASES.map(([k]) => k))].join(', ')}, got "${c}"`);
  for (const s of stores) if (s !== 'file' && s !== 'etcd') throw new Error(`--stores: file or etcd, got "${s}"`);
  return {
    writes: wholeNumber('--writes', values.writes, 1),
    consumers: wholeNumber('--consumers', values.consumers, 1),
    routes: wholeNumber('--routes', values.routes, 1),
    stores: stores as StoreKind[],
    nodeArgs: values['node-args'].split(' ').filter((a) => a !== ''),
    settleS: wholeNumber('--settle-s', values['settle-s'], 0),
    cases: new Set(values.cases.split(',').map((c) => c.trim())),
  };
}

function wholeNumber(flag: string, raw: string, min: number): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// the config: one string built from lines, flow-style YAML, so 100 000 consumers write in well under a second

const consumerName = (i: number) => `c${String(i).padStart(6, '0')}`;
const consumerKey = (i: number) => `key-${String(i).padStart(6, '0')}`;
/** The folder of the mounted secret the secret rotation case rotates, and its file. */
const secretsDir = () => join(benchDir(), 'secrets');
const ROTATING_FILE = 'rotating-key';
const rotatingKey = (tag: string, i: number) => `rot-${tag}-${String(i).padStart(6, '0')}`;

function configYaml(f: Flags, port: number, adminPort: number, upstreamPort: number, store: string): string {
  const node = `{ "127.0.0.1:${upstreamPort}": 1 }`;
  const lines = [
    'gateway:',
    `  listen: 127.0.0.1:${port}`,
    '  access_log: false',
    'admin:',
    `  listen: 127.0.0.1:${adminPort}`,
    `  key: ${ADMIN_KEY}`,
    // room for what the writes add beyond the generated sizes
    `  limits: { routes: ${f.routes + 100_000}, upstreams: 100000, consumers: ${f.consumers + 100_000} }`,
    store,
    // one consumer whose key is a mounted secret file: the secret rotation case rotates it
    'secret_policy:',
    `  files: [${JSON.stringify(secretsDir())}]`,
    'secrets:',
    `  - { id: file/bench, dir: ${JSON.stringify(secretsDir())} }`,
    'upstreams:',
    `  - { id: up, type: roundrobin, nodes: ${node} }`,
    'routes:',
    // the route the steady load and the consumer checks go through
    '  - { id: auth, uri: /auth, plugins: { key-auth: {} }, upstream_id: up }',
  ];
  for (let i = 1; i < f.routes; i++) lines.push(`  - { id: r${i}, uri: /svc/r${String(i).padStart(5, '0')}/items, upstream_id: up }`);
  lines.push('consumers:');
  lines.push(`  - { username: rotating, plugins: { key-auth: { key: "$secret://file/bench/${ROTATING_FILE}" } } }`);
  for (let i = 1; i <= f.consumers; i++) lines.push(`  - { username: ${consumerName(i)}, plugins: { key-auth: { key: "${consumerKey(i)}" } } }`);
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// etcd

async function startEtcd(): Promise<{ endpoint: string; child: { proc: Child['proc'] } } | undefined> {
  const bin = findBinary('etcd');
  if (!bin) return undefined;
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const { proc, logFile } = await spawnGuarded('etcd', bin, [
    '--name', 'n1', '--data-dir', join(benchDir(), 'etcd-data'),
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `n1=${peerUrl}`, '--initial-cluster-state', 'new',
    '--logger', 'zap', '--log-level', 'warn',
  ]);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await getOnce(client, '/health');
      if (r.status === 200) return { endpoint, child: { proc } };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`etcd did not answer /health within 30 s\n${logTail(logFile)}`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP

const adminAgent = new Agent({ keepAlive: true, maxSockets: 8 });
const proxyAgent = new Agent({ keepAlive: true, maxSockets: 8 });

function call(port: number, method: string, path: string, headers: Record<string, string>, body: string | undefined, agent: Agent, timeoutMs: number): Promise<number> {
  return new Promise(function send(ok, fail) {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, agent, timeout: timeoutMs }, function onResponse(res) {
      res.resume();
      res.on('end', () => ok(res.statusCode ?? 0));
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', fail);
    req.end(body);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

// ---------------------------------------------------------------------------------------------
// the light steady load through the proxy: a key-auth request every STEADY_INTERVAL_MS

class SteadyLoad {
  private readonly samples: Array<{ at: number; ms: number; ok: boolean }> = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor(private readonly port: number, private readonly key: string) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const t0 = performance.now();
      let ok = false;
      try {
        ok = (await call(this.port, 'GET', '/auth', { [KEY_HEADER]: this.key }, undefined, proxyAgent, 10_000)) === 200;
      } catch {
        ok = false;
      }
      const t1 = performance.now();
      this.samples.push({ at: t0, ms: t1 - t0, ok });
      await sleep(Math.max(0, STEADY_INTERVAL_MS - (t1 - t0)));
    }
  }

  /** Latencies of the requests started within [from, to). */
  window(from: number, to: number): { p50: number; p99: number; count: number; failed: number } {
    const w = this.samples.filter((s) => s.at >= from && s.at < to);
    const ms = w.map((s) => s.ms);
    return { p50: percentile(ms, 50), p99: percentile(ms, 99), count: w.length, failed: w.filter((s) => !s.ok).length };
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

// ---------------------------------------------------------------------------------------------
// write cases

type Kind = 'consumer' | 'route' | 'upstream' | 'rotation' | 'secret';

interface Write {
  readonly method: string;
  readonly path: string;
  readonly body: string;
  /** The proxy request that shows the change, and the status it must answer once live. */
  readonly probe: { path: string; headers: Record<string, string>; status: number };
  /** Done before the timed call (the secret case: the mounted file gets its new value). */
  readonly before?: () => void;
}

interface CaseResult {
  readonly kind: Kind;
  readonly writers: number;
  readonly writes: number;
  readonly answerP50: number;
  readonly answerP99: number;
  readonly liveP50: number;
  readonly liveP99: number;
  readonly writesPerS: number;
  readonly failedWrites: number;
  readonly proxyP99: number;
  readonly proxyFailed: number;
  /** The gateway's own time from a change's start to its snapshot serving (config_apply_duration_seconds), mean over the case, and how many of its builds were incremental. */
  readonly applied: { meanMs: number; builds: number; incremental: number };
}

/**
 * The i-th write of writer w. Every write is told apart from every other by its id, so concurrent
 * writers never race on one resource and the probe sees this write's change, not another's.
 */
function makeWrite(kind: Kind, tag: string, w: number, i: number, deadPort: number, upstreamPort: number): Write {
  const id = `${tag}-${w}-${i}`;
  switch (kind) {
    case 'consumer': {
      const key = `new-key-${id}`;
      return { method: 'PUT', path: `/admin/consumers/n-${id}`, body: JSON.stringify({ username: `n-${id}`, plugins: { 'key-auth': { key } } }), probe: { path: '/auth', headers: { [KEY_HEADER]: key }, status: 200 } };
    }
    case 'rotation': {
      // the same consumer gets a new key each time: live once the new key authenticates
      const key = `rotated-${id}`;
      const name = consumerName(1 + w);
      return { method: 'PUT', path: `/admin/consumers/${name}`, body: JSON.stringify({ username: name, plugins: { 'key-auth': { key } } }), probe: { path: '/auth', headers: { [KEY_HEADER]: key }, status: 200 } };
    }
    case 'secret': {
      // the mounted secret file gets a new value, then its resource is refreshed: live once the new key authenticates
      const key = rotatingKey(tag, i);
      return { method: 'POST', path: '/admin/secrets/file/bench/refresh', body: '', before: () => writeFileSync(join(secretsDir(), ROTATING_FILE), key), probe: { path: '/auth', headers: { [KEY_HEADER]: key }, status: 200 } };
    }
    case 'route':
      return { method: 'PUT', path: `/admin/routes/w-${id}`, body: JSON.stringify({ uri: `/w/${id}`, upstream_id: 'up' }), probe: { path: `/w/${id}`, headers: {}, status: 200 } };
    case 'upstream': {
      // each writer owns one upstream and one route to it; its nodes flip between the live upstream
      // and a closed port, so the probe tells the two apart (200 / 502)
      const live = i % 2 === 0;
      return { method: 'PUT', path: `/admin/upstreams/uw-${tag}-${w}`, body: JSON.stringify({ type: 'roundrobin', nodes: { [`127.0.0.1:${live ? upstreamPort : deadPort}`]: 1 } }), probe: { path: `/uw/${tag}/${w}`, headers: {}, status: live ? 200 : 502 } };
    }
  }
}

async function runCase(gw: Gateway, steady: SteadyLoad, kind: Kind, writers: number, total: number, deadPort: number, upstreamPort: number): Promise<CaseResult> {
  const tag = `${kind[0]}${writers}`;
  const auth = { 'x-api-key': ADMIN_KEY };
  if (kind === 'upstream') {
    // unmeasured set-up: the writers' upstreams and the routes that use them
    for (let w = 0; w < writers; w++) {
      if ((await call(gw.adminPort, 'PUT', `/admin/upstreams/uw-${tag}-${w}`, auth, JSON.stringify({ type: 'roundrobin', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 } }), adminAgent, ANSWER_TIMEOUT_MS)) >= 300) throw new Error('upstream set-up refused');
      if ((await call(gw.adminPort, 'PUT', `/admin/routes/uw-${tag}-${w}`, auth, JSON.stringify({ uri: `/uw/${tag}/${w}`, upstream_id: `uw-${tag}-${w}` }), adminAgent, ANSWER_TIMEOUT_MS)) >= 300) throw new Error('route set-up refused');
    }
    await waitStatus(gw, `/uw/${tag}/${writers - 1}`, {}, 200);
  }
  const answers: number[] = [];
  const lives: number[] = [];
  let failed = 0;
  const applied0 = await applyStats(gw.adminPort, kind === 'secret' ? 'secret' : 'write');
  // writers take writes from one shared count, so `total` is the case's total whatever the writers
  let started = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      // i starts at 1: the upstream case's first write must change something (its set-up is the live node)
      for (let i = 1; started < total; i++) {
        started++;
        if (wasInterrupted()) throw new Error('interrupted');
        const wr = makeWrite(kind, tag, w, i, deadPort, upstreamPort);
        wr.before?.();
        const s = performance.now();
        const status = await call(gw.adminPort, wr.method, wr.path, auth, wr.body, adminAgent, ANSWER_TIMEOUT_MS);
        const answered = performance.now();
        if (status >= 300) {
          failed++;
          continue;
        }
        answers.push(answered - s);
        await waitStatus(gw, wr.probe.path, wr.probe.headers, wr.probe.status);
        lives.push(performance.now() - s);
      }
    }),
  );
  const t1 = performance.now();
  const proxy = steady.window(t0, t1);
  const applied1 = await applyStats(gw.adminPort, kind === 'secret' ? 'secret' : 'write');
  const builds = applied1.count - applied0.count;
  return {
    kind,
    writers,
    writes: answers.length,
    answerP50: median(answers),
    answerP99: percentile(answers, 99),
    liveP50: median(lives),
    liveP99: percentile(lives, 99),
    writesPerS: answers.length / ((t1 - t0) / 1000),
    failedWrites: failed,
    proxyP99: proxy.p99,
    proxyFailed: proxy.failed,
    applied: { meanMs: builds > 0 ? ((applied1.sum - applied0.sum) / builds) * 1000 : Number.NaN, builds, incremental: applied1.incremental - applied0.incremental },
  };
}

/** The gateway's config_apply_duration_seconds for one cause, from its /metrics: sum (s), count, and the count of incremental builds. */
async function applyStats(adminPort: number, cause: string): Promise<{ sum: number; count: number; incremental: number }> {
  const text = await new Promise<string>((res, rej) => {
    httpGet({ host: '127.0.0.1', port: adminPort, path: '/metrics', agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (body += c));
      r.on('end', () => res(body));
    }).on('error', rej);
  });
  const out = { sum: 0, count: 0, incremental: 0 };
  for (const line of text.split('\n')) {
    const m = /^gatehouse_config_apply_duration_seconds_(sum|count)\{kind="(full|incremental)",cause="([a-z]+)"\} ([0-9.e+-]+)$/.exec(line);
    if (!m || m[3] !== cause) continue;
    if (m[1] === 'sum') out.sum += Number(m[4]);
    else {
      out.count += Number(m[4]);
      if (m[2] === 'incremental') out.incremental += Number(m[4]);
    }
  }
  return out;
}

async function waitStatus(gw: Gateway, path: string, headers: Record<string, string>, status: number): Promise<void> {
  const deadline = performance.now() + LIVE_TIMEOUT_MS;
  for (;;) {
    try {
      if ((await call(gw.port, 'GET', path, headers, undefined, proxyAgent, 10_000)) === status) return;
    } catch {
      // keep polling
    }
    if (performance.now() > deadline) throw new Error(`GET ${path} did not answer ${status} within ${LIVE_TIMEOUT_MS / 1000} s`);
    await sleep(LIVE_POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------

interface Gateway extends Child {
  readonly adminPort: number;
  readonly configWriteMs: number;
  readonly configBytes: number;
  readonly startMs: number;
}

async function launch(f: Flags, store: StoreKind, storeYaml: string, upstreamPort: number): Promise<Gateway> {
  const name = `admin-${store}`;
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = join(benchDir(), `${name}.yaml`);
  mkdirSync(secretsDir(), { recursive: true });
  writeFileSync(join(secretsDir(), ROTATING_FILE), rotatingKey('start', 0));
  const w0 = performance.now();
  const yaml = configYaml(f, port, adminPort, upstreamPort, storeYaml);
  writeFileSync(file, yaml);
  const configWriteMs = performance.now() - w0;
  const t0 = performance.now();
  const { proc, logFile } = spawnGateway(name, file, f.nodeArgs);
  try {
    await waitReady(proc, port, '/auth', UPSTREAM_BODY, START_TIMEOUT_MS, { [KEY_HEADER]: consumerKey(Math.ceil(f.consumers / 2)) });
  } catch (err) {
    await stop(proc);
    throw new Error(`${name}: ${(err as Error).message}\nlast log lines:\n${logTail(logFile)}`);
  }
  return { name, proc, port, logFile, adminPort, configWriteMs, configBytes: Buffer.byteLength(yaml), startMs: performance.now() - t0 };
}

interface StoreReport {
  readonly store: StoreKind;
  readonly configWriteMs: number;
  readonly configMb: number;
  readonly startMs: number;
  readonly rssAfterStartMb: number;
  readonly rssAfterWritesMb: number;
  /** RSS after the first case's writes (1 000 by default). */
  readonly rssAfterFirstCaseMb: number;
  /** RSS after --settle-s seconds with no traffic after the writes, when asked for. */
  readonly rssSettled?: { seconds: number; mb: number };
  readonly idle: { p50: number; p99: number; count: number; failed: number };
  readonly cases: readonly CaseResult[];
}

const CASES: ReadonlyArray<readonly [Kind, number]> = [
  ['consumer', 1],
  ['consumer', 4],
  ['route', 1],
  ['route', 4],
  ['upstream', 1],
  ['upstream', 4],
  ['rotation', 1],
  ['secret', 1],
];

async function benchStore(f: Flags, store: StoreKind, storeYaml: string, upstreamPort: number, deadPort: number): Promise<StoreReport> {
  progress(`${store} store: writing the config (${f.consumers.toLocaleString('en-US')} consumers, ${f.routes.toLocaleString('en-US')} routes) and starting the gateway`);
  const gw = await launch(f, store, storeYaml, upstreamPort);
  const rssAfterStartMb = treeRss(gw.proc.pid!).mb;
  progress(`  config ${(gw.configBytes / 1e6).toFixed(1)} MB written in ${gw.configWriteMs.toFixed(0)} ms; start (spawn to the first 200 with a key) ${(gw.startMs / 1000).toFixed(2)} s; RSS ${rssAfterStartMb.toFixed(0)} MB`);
  const steady = new SteadyLoad(gw.port, consumerKey(Math.ceil(f.consumers / 2)));
  try {
    const i0 = performance.now();
    await sleep(IDLE_S * 1000);
    const idle = steady.window(i0, performance.now());
    progress(`  idle proxied load (${idle.count} requests over ${IDLE_S} s): p50 ${f1(idle.p50)} ms, p99 ${f1(idle.p99)} ms`);
    const cases: CaseResult[] = [];
    let rssAfterFirstCaseMb = 0;
    for (const [kind, writers] of CASES.filter(([k]) => f.cases.has(k))) {
      const r = await runCase(gw, steady, kind, writers, f.writes, deadPort, upstreamPort);
      const rssMb = treeRss(gw.proc.pid!).mb;
      if (cases.length === 0) rssAfterFirstCaseMb = rssMb;
      cases.push(r);
      progress(
        `  ${kind.padEnd(8)} x${writers}: ${r.writes} writes${r.failedWrites ? ` (${r.failedWrites} REFUSED)` : ''}, answer p50 ${f1(r.answerP50)} / p99 ${f1(r.answerP99)} ms, live p50 ${f1(r.liveP50)} / p99 ${f1(r.liveP99)} ms, ${r.writesPerS.toFixed(2)} writes/s, proxied p99 ${f1(r.proxyP99)} ms${r.proxyFailed ? ` (${r.proxyFailed} proxied requests FAILED)` : ''}; applied in ${f1(r.applied.meanMs)} ms (mean, ${r.applied.incremental}/${r.applied.builds} builds incremental); RSS ${rssMb.toFixed(0)} MB`,
      );
    }
    const rssAfterWritesMb = treeRss(gw.proc.pid!).mb;
    progress(`  RSS after the writes ${rssAfterWritesMb.toFixed(0)} MB`);
    let rssSettled: StoreReport['rssSettled'];
    if (f.settleS > 0) {
      // no traffic at all: what the process keeps once the garbage collector's memory reducer has run
      await steady.stop();
      await sleep(f.settleS * 1000);
      rssSettled = { seconds: f.settleS, mb: treeRss(gw.proc.pid!).mb };
      progress(`  RSS after ${f.settleS} s with no traffic ${rssSettled.mb.toFixed(0)} MB`);
    }
    return { store, configWriteMs: gw.configWriteMs, configMb: gw.configBytes / 1e6, startMs: gw.startMs, rssAfterStartMb, rssAfterWritesMb, rssAfterFirstCaseMb, rssSettled, idle, cases };
  } finally {
    await steady.stop();
    await stop(gw.proc);
  }
}

function progress(line: string): void {
  process.stdout.write(line + '\n');
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd()).join('\n');
}

/** "target / measured / met?" rows of one store, against the issue's targets. */
function targets(r: StoreReport, writes: number): string {
  const one = r.cases.filter((c) => c.kind !== 'rotation' && c.kind !== 'secret');
  const worst = (pick: (c: CaseResult) => number) => Math.max(...one.map(pick));
  const answerMed = worst((c) => c.answerP50);
  const answerP99 = worst((c) => c.answerP99);
  const liveMed = worst((c) => c.liveP50);
  const liveP99 = worst((c) => c.liveP99);
  const four = Math.min(...one.filter((c) => c.writers === 4).map((c) => c.writesPerS));
  const proxyRatio = worst((c) => c.proxyP99) / r.idle.p99;
  const rssGrowth = (r.rssAfterWritesMb / r.rssAfterStartMb - 1) * 100;
  const rotation = r.cases.find((c) => c.kind === 'rotation');
  const secret = r.cases.find((c) => c.kind === 'secret');
  const met = (ok: boolean) => (ok ? 'yes' : 'NO');
  const growth = (mb: number) => {
    const g = (mb / r.rssAfterStartMb - 1) * 100;
    return `${g >= 0 ? '+' : ''}${g.toFixed(1)} % (${r.rssAfterStartMb.toFixed(0)} -> ${mb.toFixed(0)} MB)`;
  };
  const rows = [
    ['target (worst case of consumer/route/upstream, 1 and 4 writers)', 'target', 'measured', 'met?'],
    ['answer, median', '<= 50 ms', `${f1(answerMed)} ms`, met(answerMed <= 50)],
    ['answer, p99', '<= 200 ms', `${f1(answerP99)} ms`, met(answerP99 <= 200)],
    ['live on the data plane, median', '<= 50 ms', `${f1(liveMed)} ms`, met(liveMed <= 50)],
    ['live on the data plane, p99', '<= 200 ms', `${f1(liveP99)} ms`, met(liveP99 <= 200)],
    ['writes/s with 4 writers (slowest kind)', '>= 50', four.toFixed(2), met(four >= 50)],
    ['proxied p99 during writes / idle', '<= 1.5x', `${proxyRatio.toFixed(2)}x (${f1(worst((c) => c.proxyP99))} / ${f1(r.idle.p99)} ms)`, met(proxyRatio <= 1.5)],
    [`RSS after ${writes} writes per case vs after start (1 000 in the target)`, '<= +10 %', `${rssGrowth >= 0 ? '+' : ''}${rssGrowth.toFixed(1)} % (${r.rssAfterStartMb.toFixed(0)} -> ${r.rssAfterWritesMb.toFixed(0)} MB)`, met(rssGrowth <= 10)],
    ['  RSS after the first case only (its writes) vs after start', '-', growth(r.rssAfterFirstCaseMb), '-'],
    ['  RSS after the writes and then no traffic vs after start', '-', r.rssSettled ? `${growth(r.rssSettled.mb)} after ${r.rssSettled.seconds} s` : 'not measured (--settle-s)', '-'],
    // the rotation of a secret one consumer's key is (a mounted file, refreshed): the gateway's own
    // time from the new value to the snapshot serving it
    ['one-consumer secret rotation applied (mean, gateway apply time)', '<= 10 ms', secret ? `${f1(secret.applied.meanMs)} ms` : 'not measured', secret ? met(secret.applied.meanMs <= 10) : '-'],
    // end to end, for reference: the refresh call, the 10 ms burst debounce, the build, the probe
    ['  the same, live end to end (median; refresh call + 10 ms debounce + probe)', '-', secret ? `${f1(secret.liveP50)} ms` : 'not measured', '-'],
    ['  a consumer\'s key replaced by Admin PUT, live (median)', '-', rotation ? `${f1(rotation.liveP50)} ms` : 'not measured', '-'],
  ];
  return table(rows);
}

async function bench(f: Flags): Promise<number> {
  const t0 = performance.now();
  const upstream = await startUpstream();
  // a port nobody listens on: the upstream case's "down" node
  const deadPort = await freePort();
  const reports: StoreReport[] = [];
  let etcdSkipped: string | undefined;
  let etcdFailed: string | undefined;
  for (const store of f.stores) {
    if (store === 'file') {
      reports.push(await benchStore(f, 'file', 'config_store: { type: file }', upstream.port, deadPort));
      continue;
    }
    const etcd = await startEtcd();
    if (!etcd) {
      etcdSkipped = 'no etcd binary on PATH (apt-get install etcd-server): the etcd half of the bench was SKIPPED';
      process.stderr.write(`\n*** ${etcdSkipped} ***\n\n`);
      continue;
    }
    try {
      // a long timeout: the seed of 110 000 keys and today's full reads are slow
      reports.push(await benchStore(f, 'etcd', `config_store: { type: etcd, endpoints: ["${etcd.endpoint}"], prefix: /bench, timeout: 60 }`, upstream.port, deadPort));
    } catch (err) {
      // a gateway that cannot start on etcd at this size is a result too; the file half still reports
      if (wasInterrupted()) throw err;
      etcdFailed = (err as Error).message;
      process.stderr.write(`\n*** etcd store: ${etcdFailed}\n\n`);
    } finally {
      await stop(etcd.child.proc);
    }
  }
  progress('');
  progress(`Gatehouse Admin API bench: ${f.consumers.toLocaleString('en-US')} consumers, ${f.routes.toLocaleString('en-US')} routes, ${f.writes} writes per case, node ${process.version}`);
  for (const r of reports) {
    progress('');
    progress(`== ${r.store} store: start ${(r.startMs / 1000).toFixed(2)} s (config written in ${r.configWriteMs.toFixed(0)} ms, ${r.configMb.toFixed(1)} MB)`);
    progress(
      table([
        ['case', 'writes', 'answer p50', 'answer p99', 'live p50', 'live p99', 'writes/s', 'proxied p99', 'refused'],
        ['idle', '-', '-', '-', '-', '-', '-', f1(r.idle.p99), '-'],
        ...r.cases.map((c) => [`${c.kind} x${c.writers}`, String(c.writes), f1(c.answerP50), f1(c.answerP99), f1(c.liveP50), f1(c.liveP99), c.writesPerS.toFixed(2), f1(c.proxyP99), String(c.failedWrites)]),
      ]),
    );
    progress('(ms; live = from sending the write until the proxy shows the change)');
    progress('');
    progress(targets(r, f.writes));
  }
  if (etcdSkipped) progress(`\n*** ${etcdSkipped} ***`);
  if (etcdFailed) {
    // the gateway's own reason ("gatehouse: cannot start: …") says more than the probe's
    const lines = etcdFailed.split('\n');
    const reason = lines.find((l) => l.startsWith('gatehouse: ')) ?? lines[0];
    progress(`\n*** etcd store FAILED: ${reason} (the whole message is above) ***`);
  }
  progress(`\ntotal ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  writeJson(RESULTS_FILE, { flags: f, etcdSkipped, etcdFailed, reports });
  const failed = reports.some((r) => r.cases.some((c) => c.failedWrites > 0 || c.proxyFailed > 0) || r.idle.failed > 0);
  return failed || etcdFailed !== undefined ? 1 : 0;
}

void runBench('bench:admin', USAGE, parseFlags, bench, `Gatehouse Admin API bench (node ${process.version})\n`);
