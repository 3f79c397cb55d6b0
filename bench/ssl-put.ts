// What an SSL resource PUT through the Admin API costs end to end on a large config: one gateway
// in this process with CONSUMERS (default 100,000) key-auth consumers, 1,000 routes and SSLS
// (default 100) SSL resources with real EC pairs (the openssl command), then RUNS PUTs of one SSL
// resource alternating two certificates, each timed from the request to its answer (validation,
// build, persistence in memory, install). Medians and max (docs/performance.md).
// `npm run build && node dist/bench/ssl-put.js`
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { startGateway } from '../core/gateway';
import { silentLogger } from '../core/observe/log';
import { selfSigned } from './self-signed';

const CONSUMERS = Number(process.env.CONSUMERS ?? 100_000);
const SSLS = Number(process.env.SSLS ?? 100);
const RUNS = Number(process.env.RUNS ?? 20);
const ADMIN_KEY = 'bench-ssl-put-admin-key';

async function main(): Promise<void> {
  const pems = [selfSigned('a.example.com'), selfSigned('b.example.com')];
  const config = {
    admin: { key: ADMIN_KEY, limits: { consumers: CONSUMERS + 10 } },
    routes: Array.from({ length: 1000 }, (_, i) => ({ id: `r${i}`, uri: `/svc${i}/*`, plugins: { 'key-auth': {} }, upstream: { nodes: { '127.0.0.1:1': 1 } } })),
    consumers: Array.from({ length: CONSUMERS }, (_, i) => ({ username: `c${i}`, plugins: { 'key-auth': { key: `key-${i}-0123456789abcdef` } } })),
    ssls: Array.from({ length: SSLS }, (_, i) => ({ id: `s${i}`, ...pems[0], snis: [`s${i}.example.com`] })),
  };
  const t0 = performance.now();
  const gw = await startGateway({ config, listen: '127.0.0.1:0', adminListen: '127.0.0.1:0', logger: silentLogger() });
  console.log(`${CONSUMERS} consumers, 1000 routes, ${SSLS} SSL resources: started in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const url = `http://127.0.0.1:${gw.adminAddress!.port}/admin/ssls/s7`;
  const times: number[] = [];
  try {
    for (let i = 0; i < RUNS + 2; i++) {
      const t = performance.now();
      const r = await request(url, { method: 'PUT', headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' }, body: JSON.stringify({ ...pems[(i + 1) % 2], snis: ['s7.example.com'] }) });
      const text = await r.body.text();
      if (r.statusCode !== 200) throw new Error(`PUT answered ${r.statusCode}: ${text.slice(0, 300)}`);
      // the first two warm up (the document's positions are indexed in the background after start)
      if (i >= 2) times.push(performance.now() - t);
    }
  } finally {
    await gw.close(0);
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(`PUT /admin/ssls/s7 (a new certificate and key), ${RUNS} runs: median ${sorted[sorted.length >> 1].toFixed(1)} ms, max ${sorted[sorted.length - 1].toFixed(1)} ms`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
