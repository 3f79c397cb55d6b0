// `npm run bench:tls`: key-auth over HTTPS, Gatehouse's TLS listener against nginx with `ssl` on the
// same machine, the same certificate (EC P-256, made here with openssl) and the same upstream
// (bench/upstream.ts), each measured in the same run as its plain-HTTP baseline:
//
//   load rows (HTTP/1.1, keep-alive): Gatehouse HTTP · Gatehouse HTTPS (the reference) · nginx HTTP ·
//     nginx HTTPS, interleaved (A B C D A B C D …) for --rounds rounds, by the peers' load generator
//     (wrk when installed, else autocannon; both speak HTTPS);
//   new-handshake rate: full handshakes per second, no session resumption (a Node client loop of
//     tls.connect without a session, at a fixed concurrency, each connection closed once its
//     handshake is verified), Gatehouse against nginx;
//   HTTP/2 (h2load, Debian's nghttp2-client), when the gateway negotiates h2 by ALPN; otherwise the
//     report says "h2: not offered by this build".
//
// Every target is checked first: 401 without the key or with a wrong one, 200 and the upstream's body
// with it. JSON goes to bench/results/tls.json. Exit 1 on any failed request or handshake.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { availableParallelism, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect } from 'node:tls';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import type { LoadResult } from './load';
import { LOAD_HELP, loadGenerator, parseLoadChoice, type LoadChoice, type LoadGen } from './loadgen';
import { NGINX_MISSING, nginxBinary, nginxVersion, startNginx } from './nginx';
import { adopt, benchDir, freePort, getOnce, logTail, runBench, spawnGateway, startUpstream, stop, waitReady, wasInterrupted, wholeNumber } from './procs';
import { median, table, writeJson } from './report';
import { UPSTREAM_BODY } from './upstream';
import { findBinary } from './wrk';

const RESULTS = resolve(__dirname, '..', '..', 'bench', 'results');
const PATH = '/ip';
const KEY_HEADER = 'apikey';
const BENCH_KEY = 'bench-tls-key-2b7e151628aed2a6';
/** The certificate's name: the gateway's SSL resource serves it, and its fallback for clients without SNI. */
const NAME = 'bench.gatehouse.test';
const REF = 'gh-https';
const SETTLE_MS = 200;
/** Concurrent streams per HTTP/2 connection (h2load -m). */
const H2_STREAMS = 10;

const USAGE = `usage: npm run bench:tls -- [--quick] [--rounds N] [--duration S] [--connections C] [--handshake-concurrency H] [--warmup S] [--load auto|wrk|autocannon]
  --quick                    smoke test: 1 round x 2 s (same as --rounds 1 --duration 2)
  --rounds N                 interleaved rounds, each row once per round (default 3)
  --duration S               whole seconds per row per round (default 5)
  --connections C            concurrent keep-alive connections of the load rows and of h2load (default 50)
  --handshake-concurrency H  handshakes in flight at once in the new-handshake rows (default 8)
  --warmup S                 whole seconds of unmeasured load per load row before round 1 (default 1; 0 = none)
  --load L                   ${LOAD_HELP}`;

interface Flags {
  readonly rounds: number;
  readonly durationS: number;
  readonly connections: number;
  readonly handshakeConcurrency: number;
  readonly warmupS: number;
  readonly load: LoadChoice;
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
      'handshake-concurrency': { type: 'string', default: '8' },
      warmup: { type: 'string', default: '1' },
      load: { type: 'string', default: 'auto' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  return {
    rounds: wholeNumber('--rounds', values.rounds ?? (values.quick ? '1' : '3'), 1),
    durationS: wholeNumber('--duration', values.duration ?? (values.quick ? '2' : '5'), 1),
    connections: wholeNumber('--connections', values.connections, 1),
    handshakeConcurrency: wholeNumber('--handshake-concurrency', values['handshake-concurrency'], 1),
    warmupS: wholeNumber('--warmup', values.warmup, 0),
    load: parseLoadChoice(values.load),
    quick: values.quick,
  };
}

const progress = (line: string) => void process.stdout.write(line + '\n');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');

// ---------------------------------------------------------------------------------------------
// the certificate: a CA and a leaf for NAME, EC P-256, made with the openssl command line

interface Pki {
  readonly caFile: string;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
}

function makePki(dir: string): Pki {
  const ossl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ossl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=gatehouse bench CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  writeFileSync(join(dir, 'leaf.ext'), `subjectAltName=DNS:${NAME}\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n`);
  ossl(['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${NAME}`]);
  ossl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'leaf.ext']);
  const file = (n: string) => join(dir, n);
  return { caFile: file('ca.pem'), ca: readFileSync(file('ca.pem'), 'utf8'), cert: readFileSync(file('leaf.pem'), 'utf8'), key: readFileSync(file('leaf.key'), 'utf8'), certFile: file('leaf.pem'), keyFile: file('leaf.key') };
}

// ---------------------------------------------------------------------------------------------
// the targets

interface Server {
  readonly name: 'gatehouse' | 'nginx';
  readonly label: string;
  readonly proc: ChildProcess;
  readonly logFile: string;
  readonly httpPort: number;
  readonly httpsPort: number;
  /** nginx's `ssl http2` port; Gatehouse serves h2 (when it does) on its TLS port. */
  readonly h2Port: number;
}

function gatehouseYaml(port: number, tlsPort: number, upstreamPort: number, pki: Pki): string {
  // JSON strings are YAML strings: the PEMs as literals of the SSL resource
  return [
    'gateway:',
    `  listen: 127.0.0.1:${port}`,
    `  listen_tls: 127.0.0.1:${tlsPort}`,
    '  access_log: false',
    `  tls: { fallback_sni: ${NAME} }`,
    'ssls:',
    `  - id: bench`,
    `    snis: [${NAME}]`,
    `    cert: ${JSON.stringify(pki.cert)}`,
    `    key: ${JSON.stringify(pki.key)}`,
    'consumers:',
    '  - username: bench',
    `    plugins: { key-auth: { key: "${BENCH_KEY}" } }`,
    'routes:',
    '  - id: ip',
    `    uri: ${PATH}`,
    '    plugins: { key-auth: {} }',
    `    upstream: { type: roundrobin, nodes: { "127.0.0.1:${upstreamPort}": 1 } }`,
    '',
  ].join('\n');
}

async function startGatehouse(upstreamPort: number, pki: Pki): Promise<Server> {
  for (let attempt = 1; ; attempt++) {
    const [port, tlsPort] = [await freePort(), await freePort()];
    const file = join(benchDir(), 'gh-tls.yaml');
    writeFileSync(file, gatehouseYaml(port, tlsPort, upstreamPort, pki));
    const { proc, logFile } = spawnGateway('gh-tls', file);
    try {
      await waitReady(proc, port, PATH, UPSTREAM_BODY, 60_000, { [KEY_HEADER]: BENCH_KEY });
      return { name: 'gatehouse', label: 'Gatehouse', proc, logFile, httpPort: port, httpsPort: tlsPort, h2Port: tlsPort };
    } catch (err) {
      await stop(proc);
      const tail = logTail(logFile);
      if (attempt < 3 && tail.includes('EADDRINUSE')) continue;
      throw new Error(`Gatehouse: ${(err as Error).message}\nlast log lines:\n${tail}`);
    }
  }
}

async function startNginxTls(bin: string, upstreamPort: number, pki: Pki): Promise<Server> {
  const [httpsPort, h2Port] = [await freePort(), await freePort()];
  const n = await startNginx(bin, upstreamPort, PATH, BENCH_KEY, { certFile: pki.certFile, keyFile: pki.keyFile, httpsPort, h2Port });
  await waitReady(n.proc, n.port, PATH, UPSTREAM_BODY, 10_000, { [KEY_HEADER]: BENCH_KEY }).catch((err: Error) => {
    throw new Error(`nginx: ${err.message}\n${logTail(n.logFile)}`);
  });
  return { name: 'nginx', label: `nginx ${nginxVersion(bin)}`, proc: n.proc, logFile: n.logFile, httpPort: n.port, httpsPort, h2Port };
}

/** One HTTPS GET on a fresh connection, the chain verified against the bench CA for NAME. */
function getTls(port: number, headers: Record<string, string>, pki: Pki): Promise<{ status: number; body: Buffer }> {
  return new Promise((ok, fail) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: PATH, headers, servername: NAME, ca: pki.ca, agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', fail);
    req.end();
  });
}

// load numbers mean nothing unless every target really rejects and admits, over each protocol
async function verify(s: Server, pki: Pki): Promise<void> {
  const cases: Array<[string, Record<string, string>, number]> = [
    ['no key', {}, 401],
    ['a wrong key', { [KEY_HEADER]: 'not-a-key' }, 401],
    ['the key', { [KEY_HEADER]: BENCH_KEY }, 200],
  ];
  for (const [what, headers, want] of cases) {
    for (const [proto, r] of [
      ['HTTP', await getOnce(s.httpPort, PATH, headers)],
      ['HTTPS', await getTls(s.httpsPort, headers, pki)],
    ] as const) {
      if (r.status !== want || (want === 200 && !r.body.equals(UPSTREAM_BODY))) throw new Error(`${s.label} ${proto}: ${what} got HTTP ${r.status}, expected ${want}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// new-handshake rate

interface HandshakeRun {
  readonly round: number;
  readonly handshakes: number;
  readonly perS: number;
  readonly failed: number;
  /** Handshakes that resumed a session: 0, or the row measures something else. */
  readonly resumed: number;
  /** CPU of the bench process (the client) during the run, in % of one core: near 100 means the client, not the server, set the rate. */
  readonly clientCpu: number;
}

/** Full handshakes to `port` for `seconds`, `concurrency` at a time, each verified and then closed; no session is ever offered. */
async function handshakeRun(port: number, seconds: number, concurrency: number, pki: Pki, round: number): Promise<HandshakeRun> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const end = t0 + seconds * 1000;
  let handshakes = 0;
  let failed = 0;
  let resumed = 0;
  const one = () =>
    new Promise<void>((done) => {
      // no `session` option: every connection is a full handshake (TLS 1.3, X25519, ECDSA P-256)
      const s = connect({ host: '127.0.0.1', port, servername: NAME, ca: pki.ca, ALPNProtocols: ['http/1.1'] });
      s.once('secureConnect', () => {
        handshakes++;
        if (s.isSessionReused()) resumed++;
        s.destroy();
        done();
      });
      s.once('error', () => {
        failed++;
        s.destroy();
        done();
      });
    });
  const loop = async () => {
    while (performance.now() < end && !wasInterrupted()) await one();
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { round, handshakes, perS: handshakes / wall, failed, resumed, clientCpu: ((cpu.user + cpu.system) / 1e6 / wall) * 100 };
}

// ---------------------------------------------------------------------------------------------
// HTTP/2

/** The protocol the TLS port picks when a client offers h2 first. */
function alpnOf(port: number, pki: Pki): Promise<string | false> {
  return new Promise((ok, fail) => {
    const s = connect({ host: '127.0.0.1', port, servername: NAME, ca: pki.ca, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      const p = s.alpnProtocol;
      s.destroy();
      ok(p ?? false);
    });
    s.once('error', fail);
  });
}

interface H2Run {
  readonly round: number;
  readonly rps: number;
  readonly succeeded: number;
  readonly failed: number;
  /** Requests in flight when the duration ended, stopped by h2load (not failures). */
  readonly cutAtEnd: number;
  readonly meanMs: number;
}

/** Parse h2load's summary ("finished in …, N req/s", "requests: … succeeded, … failed, … errored, … timeout", "time for request:"). Exported for a check against captured output. */
export function parseH2load(out: string, round: number, inFlight: number): H2Run {
  const rps = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out);
  const req = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const time = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(out);
  if (!rps || !req || !codes) throw new Error(`h2load: cannot read its summary:\n${out}`);
  const ms = (v: string, unit: string) => Number(v) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1);
  const non2xx = Number(codes[2]) + Number(codes[3]) + Number(codes[4]);
  // with -D, the requests in flight when the time is up are stopped and counted "errored" (at most
  // one per stream slot): those are not failures of the server; any beyond them are
  const errored = Number(req[3]);
  const cut = Math.min(errored, inFlight);
  const failed = Number(req[2]) - cut + Number(req[4]) + non2xx;
  return { round, rps: Number(rps[1]), succeeded: Number(req[1]) - non2xx, failed, cutAtEnd: cut, meanMs: time ? ms(time[5], time[6]) : NaN };
}

function h2loadRun(bin: string, port: number, seconds: number, connections: number, round: number): Promise<H2Run> {
  // h2load checks no certificate; the h2 answer is checked by verify-like probes before (alpnOf)
  const args = ['-D', String(seconds), '-c', String(connections), '-m', String(H2_STREAMS), '-t', '1', '-H', `${KEY_HEADER}: ${BENCH_KEY}`, `https://127.0.0.1:${port}${PATH}`];
  return new Promise((ok, fail) => {
    const proc = adopt(spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    proc.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    proc.once('error', fail);
    proc.once('close', (code) => {
      if (code !== 0) return fail(new Error(`h2load exited with code ${code}: ${out}`));
      try {
        ok(parseH2load(out, round, connections * H2_STREAMS));
      } catch (e) {
        fail(e as Error);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------

interface LoadRow {
  readonly name: string;
  readonly label: string;
  readonly url: string;
  readonly server: Server;
}

interface LoadRun extends LoadResult {
  readonly round: number;
}

async function measure(row: LoadRow, gen: LoadGen, flags: Flags, round: number, seconds: number): Promise<LoadRun> {
  if (wasInterrupted()) throw new Error('wasInterrupted()');
  const r = await gen.run(row.url, { [KEY_HEADER]: BENCH_KEY }, seconds, flags.connections);
  if (row.server.proc.exitCode !== null || row.server.proc.signalCode !== null) throw new Error(`${row.label} exited during the bench; last log lines:\n${logTail(row.server.logFile)}`);
  await sleep(SETTLE_MS);
  const { raw: _raw, ...clean } = r as LoadResult & { raw?: string };
  return { round, ...clean };
}

async function bench(flags: Flags): Promise<number> {
  const t0 = performance.now();
  const gen = loadGenerator(flags.load);
  const notes: string[] = [];
  progress(`load generator: ${gen.version}`);
  const bin = nginxBinary();
  if (!bin) throw new Error(`${NGINX_MISSING}: the HTTPS rows compare Gatehouse with nginx on the same machine`);
  const pki = makePki(benchDir());
  const upstream = await startUpstream();
  const gh = await startGatehouse(upstream.port, pki);
  progress(`  Gatehouse: HTTP on ${gh.httpPort}, HTTPS on ${gh.httpsPort}`);
  const ngx = await startNginxTls(bin, upstream.port, pki);
  progress(`  ${ngx.label}: HTTP on ${ngx.httpPort}, HTTPS on ${ngx.httpsPort}, HTTPS with http2 on ${ngx.h2Port}`);
  for (const s of [gh, ngx]) await verify(s, pki);
  progress('both servers answer 401 without a key or with a wrong one and 200 with the key, over HTTP and HTTPS (the chain verified for the name)');

  const rows: LoadRow[] = [
    { name: 'gh-http', label: 'Gatehouse key-auth, HTTP/1.1', url: `http://127.0.0.1:${gh.httpPort}${PATH}`, server: gh },
    { name: REF, label: 'Gatehouse key-auth, HTTPS HTTP/1.1', url: `https://127.0.0.1:${gh.httpsPort}${PATH}`, server: gh },
    { name: 'nginx-http', label: `${ngx.label} key map, HTTP/1.1`, url: `http://127.0.0.1:${ngx.httpPort}${PATH}`, server: ngx },
    { name: 'nginx-https', label: `${ngx.label} key map, HTTPS HTTP/1.1 (ssl)`, url: `https://127.0.0.1:${ngx.httpsPort}${PATH}`, server: ngx },
  ];
  // h2: only when this build's listener offers it; nginx's http2 port is the peer
  const ghAlpn = await alpnOf(gh.httpsPort, pki);
  const h2load = findBinary('h2load');
  let h2: 'yes' | 'not offered' | 'no h2load' = ghAlpn === 'h2' ? 'yes' : 'not offered';
  if (h2 === 'yes' && !h2load) h2 = 'no h2load';
  if (h2 === 'yes' && (await alpnOf(ngx.h2Port, pki)) !== 'h2') throw new Error('nginx: its http2 port did not negotiate h2');
  const h2Note = h2 === 'not offered' ? `h2: not offered by this build (the TLS listener chose ${ghAlpn === false ? 'no protocol' : ghAlpn} for a client offering h2, http/1.1)` : h2 === 'no h2load' ? 'h2: h2load not installed (apt-get install nghttp2-client)' : undefined;
  if (h2Note) {
    progress(h2Note);
    notes.push(h2Note);
  }

  if (flags.warmupS > 0) {
    progress(`warm-up: ${flags.warmupS} s per load row`);
    for (const row of rows) await measure(row, gen, flags, 0, flags.warmupS);
  }
  const loads = new Map<string, LoadRun[]>(rows.map((r) => [r.name, []]));
  const shakes = new Map<string, HandshakeRun[]>([
    ['gatehouse', []],
    ['nginx', []],
  ]);
  const h2runs = new Map<string, H2Run[]>([
    ['gatehouse', []],
    ['nginx', []],
  ]);
  // interleaved, so drift during the run hits every row alike
  for (let round = 1; round <= flags.rounds; round++) {
    for (const row of rows) {
      const r = await measure(row, gen, flags, round, flags.durationS);
      loads.get(row.name)!.push(r);
      const bad = r.errors + r.timeouts + r.non2xx;
      progress(`  round ${round} ${row.label.padEnd(48)} ${int(r.rps).padStart(7)} req/s  p50 ${f2(r.p50Ms)} ms  p99 ${f2(r.p99Ms)} ms${bad ? `  FAILURES: ${r.errors} errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx` : ''}`);
    }
    for (const s of [gh, ngx]) {
      const h = await handshakeRun(s.httpsPort, flags.durationS, flags.handshakeConcurrency, pki, round);
      shakes.get(s.name)!.push(h);
      progress(`  round ${round} ${`${s.label} new handshakes`.padEnd(48)} ${int(h.perS).padStart(7)} /s  client cpu ${Math.round(h.clientCpu)}%${h.failed || h.resumed ? `  FAILED ${h.failed}, resumed ${h.resumed}` : ''}`);
      await sleep(SETTLE_MS);
    }
    if (h2 === 'yes') {
      for (const s of [gh, ngx]) {
        const r = await h2loadRun(h2load!, s.h2Port, flags.durationS, flags.connections, round);
        h2runs.get(s.name)!.push(r);
        progress(`  round ${round} ${`${s.label} HTTP/2 (h2load -m ${H2_STREAMS})`.padEnd(48)} ${int(r.rps).padStart(7)} req/s  mean ${f2(r.meanMs)} ms${r.failed ? `  FAILED ${r.failed}` : ''}`);
        await sleep(SETTLE_MS);
      }
    }
  }

  // ---- report
  const sum = rows.map((row) => {
    const rs = loads.get(row.name)!;
    return { name: row.name, label: row.label, rps: median(rs.map((r) => r.rps)), p50Ms: median(rs.map((r) => r.p50Ms)), p99Ms: median(rs.map((r) => r.p99Ms)), failed: rs.reduce((n, r) => n + r.errors + r.timeouts + r.non2xx, 0), rounds: rs };
  });
  const ref = sum.find((s) => s.name === REF)!;
  const by = new Map(sum.map((s) => [s.name, s]));
  const hs = [gh, ngx].map((s) => {
    const rs = shakes.get(s.name)!;
    return { server: s.name, label: `${s.label} new handshakes (concurrency ${flags.handshakeConcurrency})`, perS: median(rs.map((r) => r.perS)), clientCpu: median(rs.map((r) => r.clientCpu)), failed: rs.reduce((n, r) => n + r.failed, 0), resumed: rs.reduce((n, r) => n + r.resumed, 0), rounds: rs };
  });
  const h2s = h2 === 'yes' ? [gh, ngx].map((s) => ({ server: s.name, label: `${s.label} HTTP/2 key-auth`, rps: median(h2runs.get(s.name)!.map((r) => r.rps)), meanMs: median(h2runs.get(s.name)!.map((r) => r.meanMs)), failed: h2runs.get(s.name)!.reduce((n, r) => n + r.failed, 0), rounds: h2runs.get(s.name)! })) : [];
  const env = { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version };

  const out: string[] = [];
  out.push(`Gatehouse TLS bench: ${flags.rounds} interleaved round(s) x ${flags.durationS} s per row, ${flags.connections} connections, load: ${gen.version}, node ${env.node}, ${env.cpus} CPUs; certificate EC P-256, TLS 1.3`);
  if (env.cpus < 4) out.push(`note: ${env.cpus} CPUs shared by the load generator, the server and the upstream: compare rows, not absolute numbers`);
  for (const n of notes) out.push(n);
  out.push('');
  out.push(
    table([
      ['row (key-auth, GET /ip, keep-alive)', 'req/s', 'p50 ms', 'p99 ms', 'failed', 'req/s vs *', 'p99 vs *'],
      ...sum.map((s) => [s.label + (s.name === REF ? ' *' : ''), int(s.rps), f2(s.p50Ms), f2(s.p99Ms), String(s.failed), `${(s.rps / ref.rps).toFixed(2)}x`, `${(s.p99Ms / ref.p99Ms).toFixed(2)}x`]),
    ]),
  );
  const tlsCost = (https: string, http: string) => `${(by.get(https)!.rps / by.get(http)!.rps).toFixed(2)}x`;
  out.push(`HTTPS / HTTP req/s, each server against its own plain baseline: Gatehouse ${tlsCost(REF, 'gh-http')}, nginx ${tlsCost('nginx-https', 'nginx-http')}`);
  out.push('');
  out.push(
    table([
      ['new-handshake rate (full handshakes, no resumption)', 'handshakes/s', 'failed', 'resumed', 'client cpu%', 'vs Gatehouse'],
      ...hs.map((h) => [h.label, int(h.perS), String(h.failed), String(h.resumed), String(Math.round(h.clientCpu)), `${(h.perS / hs[0].perS).toFixed(2)}x`]),
    ]),
  );
  out.push('(the client, a Node tls.connect loop in the bench process, does its half of every handshake on the same CPUs; client cpu% near 100 means the client set the rate)');
  out.push('');
  if (h2s.length) {
    out.push(table([[`HTTP/2 (h2load -c ${flags.connections} -m ${H2_STREAMS})`, 'req/s', 'mean ms', 'failed', 'vs Gatehouse'], ...h2s.map((h) => [h.label, int(h.rps), f2(h.meanMs), String(h.failed), `${(h.rps / h2s[0].rps).toFixed(2)}x`])]));
  } else out.push(h2Note!);
  const failed = sum.reduce((n, s) => n + s.failed, 0) + hs.reduce((n, h) => n + h.failed + h.resumed, 0) + h2s.reduce((n, h) => n + h.failed, 0);
  const totalS = (performance.now() - t0) / 1000;
  process.stdout.write('\n' + out.join('\n') + '\n');
  const jsonFile = join(RESULTS, 'tls.json');
  writeJson(jsonFile, {
    ok: failed === 0,
    date: new Date().toISOString(),
    settings: { rounds: flags.rounds, durationS: flags.durationS, warmupS: flags.warmupS, connections: flags.connections, handshakeConcurrency: flags.handshakeConcurrency, h2Streams: H2_STREAMS, quick: flags.quick },
    env,
    loadGenerator: { name: gen.name, version: gen.version },
    nginx: ngx.label,
    h2: h2Note ?? 'measured',
    notes,
    reference: REF,
    load: sum,
    handshakes: hs,
    http2: h2s,
    totalSeconds: totalS,
  });
  process.stdout.write(`\nJSON: ${jsonFile}\ntotal ${totalS.toFixed(0)} s\n`);
  if (failed > 0) {
    process.stderr.write(`bench:tls FAILED: ${failed} failed requests or handshakes (or resumed sessions) during the runs; counts above and in the JSON\n`);
    return 1;
  }
  return 0;
}

void runBench('bench:tls', USAGE, parseFlags, bench);
