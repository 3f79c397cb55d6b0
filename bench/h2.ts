// `node dist/bench/h2.js` (after `npm run bench:build`): key-auth over HTTPS on the TLS listener,
// HTTP/2 and HTTP/1.1, measured with h2load (Debian: nghttp2-client) on one gateway process and
// one upstream process. Not part of CI. Each row: requests per second, 2xx count, and the client's
// latency (mean, sd) as h2load reports it; HTTP/2 with 10 streams per connection, HTTP/1.1 with one
// request at a time per connection (h2load --h1).
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeTestCa } from '../test/helpers/tls-pki';
import { benchDir, freePort, runBench, spawnGateway, startUpstream, stop, waitReady } from './procs';
import { UPSTREAM_BODY } from './upstream';

const NAME = 'bench.h2.test';
const KEY = 'bench-h2-key-auth-key';
const USAGE = `usage: node dist/bench/h2.js [--duration S] [--connections C] [--streams M]
  --duration S      seconds per run (default 10), after 2 s of warm-up
  --connections C   client connections (default 50)
  --streams M       concurrent streams per HTTP/2 connection (default 10)`;

interface Flags {
  readonly duration: number;
  readonly connections: number;
  readonly streams: number;
}

function parse(argv: string[]): Flags {
  const { values } = parseArgs({ args: argv, options: { duration: { type: 'string' }, connections: { type: 'string' }, streams: { type: 'string' } } });
  const n = (v: string | undefined, d: number) => {
    const x = v === undefined ? d : Number(v);
    if (!Number.isInteger(x) || x < 1) throw new Error(`not a positive integer: ${v}`);
    return x;
  };
  return { duration: n(values.duration, 10), connections: n(values.connections, 50), streams: n(values.streams, 10) };
}

function h2load(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('h2load', args, { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => (err ? reject(new Error(`h2load failed (apt-get install nghttp2-client): ${stderr || err.message}`)) : resolve(stdout))),
  );
}

/** req/s, 2xx, failed, and the mean ± sd of request time from h2load's summary. */
function summary(out: string): { rps: number; ok: number; failed: number; latency: string; protocol: string } {
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1] ?? NaN);
  const ok = Number(/status codes: (\d+) 2xx/.exec(out)?.[1] ?? NaN);
  const failed = Number(/requests: .*?(\d+) failed/.exec(out)?.[1] ?? NaN);
  const t = /time for request:\s+\S+\s+\S+\s+(\S+)\s+(\S+)/.exec(out);
  const protocol = /Application protocol: (\S+)/.exec(out)?.[1] ?? '?';
  return { rps, ok, failed, latency: t ? `${t[1]} ± ${t[2]}` : '?', protocol };
}

async function bench(f: Flags): Promise<number> {
  const ca = makeTestCa('gatehouse bench CA');
  const pair = ca.issue('bench', { names: [NAME] });
  const upstream = await startUpstream();
  const port = await freePort();
  const tlsPort = await freePort();
  const config = join(benchDir(), 'h2.yaml');
  // JSON is YAML
  writeFileSync(
    config,
    JSON.stringify({
      gateway: { listen: `127.0.0.1:${port}`, listen_tls: `127.0.0.1:${tlsPort}`, access_log: false },
      ssls: [{ id: 'bench', cert: pair.cert, key: pair.key, snis: [NAME] }],
      routes: [{ id: 'ip', uri: '/ip', plugins: { 'key-auth': {} }, upstream: { nodes: { [`127.0.0.1:${upstream.port}`]: 1 } } }],
      consumers: [{ username: 'bench', plugins: { 'key-auth': { key: KEY } } }],
    }),
  );
  const gw = spawnGateway('gatehouse-h2', config);
  await waitReady(gw.proc, port, '/ip', UPSTREAM_BODY, 20_000, { apikey: KEY });
  const common = ['-c', String(f.connections), '-D', String(f.duration), '--warm-up-time', '2', '-H', `apikey: ${KEY}`, '--connect-to', `127.0.0.1:${tlsPort}`];
  const url = `https://${NAME}:${tlsPort}/ip`;
  const h1 = summary(await h2load([...common, '--h1', url]));
  const h2 = summary(await h2load([...common, '-m', String(f.streams), url]));
  const rows = [
    ['HTTP/1.1', h1],
    ['HTTP/2', h2],
  ] as const;
  process.stdout.write(`key-auth over HTTPS (TLS listener), ${f.connections} connections, ${f.duration} s per run\n`);
  process.stdout.write('| protocol | negotiated | req/s | 2xx | failed | request time (mean ± sd) |\n|---|---|---|---|---|---|\n');
  let bad = 0;
  for (const [name, r] of rows) {
    process.stdout.write(`| ${name}${name === 'HTTP/2' ? ` (${f.streams} streams/conn)` : ''} | ${r.protocol} | ${Math.round(r.rps)} | ${r.ok} | ${r.failed} | ${r.latency} |\n`);
    if (!(r.ok > 0) || r.failed !== 0) bad++;
  }
  await stop(gw.proc);
  await stop(upstream.proc);
  return bad === 0 ? 0 : 1;
}

void runBench('bench:h2', USAGE, parse, bench);
