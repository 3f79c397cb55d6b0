// `npm run bench:secrets`: what secrets cost. (1) A cache hit of SecretResolver.resolve against
// an awaited Map lookup, in ns per call. (2) Request latency through the gateway for a route whose
// plugin config holds a Vault reference (a header proxy-rewrite sends upstream) while Vault answers in
// 200 ms and the cache ttl (2 s) makes the gateway refresh it every ~1.6 s, against the same route
// with a literal, interleaved.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import NodeVault from 'node-vault';
import { SecretResolver } from '../core/secrets/resolver';
import { parseReference } from '../core/secrets/reference';
import { silentLogger } from '../core/observe/log';
import { startVaultServer } from '../test/servers/vault';
import { benchDir, cleanup, freePort, getOnce, startUpstream } from './procs';
import { runLoad, type LoadResult } from './load';
import { median } from './report';

const CLI = resolve(__dirname, '..', 'core', 'cli', 'main.js');

async function timePerCall(n: number, fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 10_000; i++) await fn(); // warm the JIT
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  return ((performance.now() - t0) * 1e6) / n;
}

async function cacheHit(): Promise<void> {
  const ref = parseReference('$secret://mem/one/jack/auth-key');
  const resolver = new SecretResolver(() => ({ get: async () => ({ value: 'bench-value' }) }), { now: () => Date.now() }, silentLogger());
  resolver.configure({ ttl: 3600, neg_ttl: 60, stale_if_error: 86400, rotation_grace: 300 });
  await resolver.resolve(ref);
  const map = new Map([[ref.key, 'bench-value']]);
  const n = 2_000_000;
  const rounds: Array<{ base: number; hit: number }> = [];
  for (let r = 0; r < 3; r++) {
    const base = await timePerCall(n, async () => map.get(ref.key));
    const hit = await timePerCall(n, () => resolver.resolve(ref));
    rounds.push({ base, hit });
  }
  const base = median(rounds.map((x) => x.base));
  const hit = median(rounds.map((x) => x.hit));
  const peekT0 = performance.now();
  let sink = 0;
  for (let i = 0; i < n; i++) sink += resolver.peek(ref)!.length;
  const peek = ((performance.now() - peekT0) * 1e6) / n;
  resolver.close();
  process.stdout.write(
    `\n1) secret cache hit (${n.toLocaleString()} calls x 3 rounds, medians)\n` +
      `   awaited Map.get (baseline)      ${base.toFixed(0).padStart(6)} ns/call\n` +
      `   await resolver.resolve(ref)     ${hit.toFixed(0).padStart(6)} ns/call   ratio ${(hit / base).toFixed(2)}x baseline\n` +
      `   resolver.peek(ref) (sync)       ${peek.toFixed(0).padStart(6)} ns/call   (${sink > 0 ? 'ok' : '?'})\n`,
  );
}

async function startGatewayProcess(yaml: string, port: number, probe: string): Promise<ChildProcess> {
  const file = join(benchDir(), 'secrets-bench.yaml');
  writeFileSync(file, yaml);
  const proc = spawn(process.execPath, [CLI, 'start', '-c', file], { stdio: ['ignore', 'ignore', 'inherit'] });
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    try {
      if ((await getOnce(port, probe)).status === 200) return proc;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error('gateway did not become ready');
}

async function slowBackend(): Promise<void> {
  const vault = await startVaultServer({ rootToken: 'bench-root' });
  const v = NodeVault({ endpoint: vault.url, token: 'bench-root', requestOptions: { timeout: 5000 } });
  await v.mount({ mount_point: 'apisix', type: 'kv', options: { version: '1' } });
  await v.write('apisix/jack', { 'auth-key': 'bench-secret-value' });
  vault.faults.latencyMs = 200;
  const port = await freePort();
  const up = await startUpstream();
  const yaml = [
    'gateway: { listen: "127.0.0.1:' + port + '", access_log: false }',
    'secret_cache: { ttl: 2 }',
    'secrets:',
    `  - { id: vault/gw, uri: "${vault.url}", prefix: apisix, token: bench-root, kv_version: 1 }`,
    'routes:',
    '  - id: with-secret',
    '    uri: /secret',
    '    plugins: { proxy-rewrite: { headers: { set: { x-key: "$secret://vault/gw/jack/auth-key" } } } }',
    `    upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }`,
    '  - id: literal',
    '    uri: /literal',
    '    plugins: { proxy-rewrite: { headers: { set: { x-key: "bench-secret-value" } } } }',
    `    upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }`,
    '',
  ].join('\n');
  const gw = await startGatewayProcess(yaml, port, '/secret');
  try {
    const targets = [
      { name: 'literal value', url: `http://127.0.0.1:${port}/literal` },
      { name: 'Vault reference', url: `http://127.0.0.1:${port}/secret` },
    ];
    const results = new Map<string, LoadResult[]>(targets.map((t) => [t.name, []]));
    const before = vault.count('apisix/jack');
    const t0 = Date.now();
    for (let round = 0; round < 3; round++) {
      for (const t of targets) results.get(t.name)!.push(await runLoad({ url: t.url, connections: 20, durationS: 5 }));
    }
    const seconds = (Date.now() - t0) / 1000;
    const fetches = vault.count('apisix/jack') - before;
    const row = (name: string) => {
      const rs = results.get(name)!;
      return { rps: median(rs.map((r) => r.rps)), p50: median(rs.map((r) => r.p50Ms)), p99: median(rs.map((r) => r.p99Ms)), bad: rs.reduce((a, r) => a + r.errors + r.non2xx + r.timeouts, 0) };
    };
    const lit = row('literal value');
    const sec = row('Vault reference');
    const f = (x: number) => x.toFixed(2).padStart(7);
    process.stdout.write(
      `\n2) request latency with a 200 ms-slow Vault in steady state (ttl 2 s; 3 interleaved rounds x 5 s, 20 connections, medians)\n` +
        `   target            req/s      p50 ms   p99 ms   failed\n` +
        `   literal value   ${lit.rps.toFixed(0).padStart(7)}   ${f(lit.p50)}  ${f(lit.p99)}   ${lit.bad}\n` +
        `   Vault reference ${sec.rps.toFixed(0).padStart(7)}   ${f(sec.p50)}  ${f(sec.p99)}   ${sec.bad}\n` +
        `   ratio (reference / literal): req/s ${(sec.rps / lit.rps).toFixed(2)}x, p50 ${(sec.p50 / lit.p50).toFixed(2)}x, p99 ${(sec.p99 / lit.p99).toFixed(2)}x\n` +
        `   Vault was asked for the secret ${fetches} times in ${seconds.toFixed(0)} s, each answer taking 200 ms; no request waited for one.\n`,
    );
    if (lit.bad + sec.bad > 0) process.exitCode = 1;
  } finally {
    gw.kill('SIGTERM');
    await new Promise((r) => gw.once('exit', r));
    await vault.close();
  }
}

async function main(): Promise<void> {
  process.stdout.write(`Gatehouse secrets bench (node ${process.version})\n`);
  await cacheHit();
  await slowBackend();
  await cleanup();
}

main().catch(async (err: Error) => {
  process.stderr.write(`bench:secrets: ${err.stack ?? err.message}\n`);
  await cleanup();
  process.exit(1);
});
