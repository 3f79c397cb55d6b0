// What validating one Admin API write costs at 100,000 consumers and 10,000 routes: the whole
// document (validateConfig, then the reference policy) against validateChanges on the live config
// (docs/performance.md). In-process, no gateway: `npm run build && node dist/bench/validate-changes.js`.
// SSL resources (SSLS, default 100) carry a real EC certificate and key made by the openssl command.
import keyAuth from '../plugins/key-auth';
import limitCount from '../plugins/limit-count';
import proxyRewrite from '../plugins/proxy-rewrite';
import envProvider from '../providers/env';
import vaultProvider from '../providers/vault';
import type { DataChange } from '../core/contracts';
import { createRegistry } from '../core/config/registry';
import { checkSecretPolicy, type PolicyContext } from '../core/config/secret-policy';
import { validateConfig, type ValidatedConfig } from '../core/config/validate';
import { validateChanges } from '../core/config/validate-changes';
import { selfSigned } from './self-signed';

const CONSUMERS = Number(process.env.CONSUMERS ?? 100_000);
const ROUTES = Number(process.env.ROUTES ?? 10_000);
const UPSTREAMS = Number(process.env.UPSTREAMS ?? 1_000);
const SSLS = Number(process.env.SSLS ?? 100);

const pem = selfSigned('bench.example.com');
const rotated = selfSigned('bench.example.com');

const registry = createRegistry([keyAuth, limitCount, proxyRewrite], [envProvider, vaultProvider]);
const ctx: PolicyContext = { baseDir: process.cwd(), protectedFiles: [] };

type Raw = Record<string, any>;
const consumer = (i: number): Raw => ({ username: `c${i}`, plugins: { 'key-auth': { key: i % 10 === 0 ? `$env://GH_KEY_${i}` : `key-${i}-0123456789abcdef` } } });
const upstream = (i: number): Raw => ({ id: `u${i}`, nodes: { [`10.0.${(i >> 8) & 255}.${i & 255}:80`]: 1 } });
const ssl = (i: number, p = pem): Raw => ({ id: `s${i}`, ...p, snis: [`s${i}.example.com`, `*.s${i}.example.com`] });
const route = (i: number): Raw => ({ id: `r${i}`, uri: `/svc${i}/*`, upstream_id: `u${i % UPSTREAMS}`, plugins: { 'key-auth': {}, 'limit-count': { count: 100, time_window: 60 } } });

const doc = {
  secret_policy: { env: ['GH_*'] },
  routes: Array.from({ length: ROUTES }, (_, i) => route(i)),
  upstreams: Array.from({ length: UPSTREAMS }, (_, i) => upstream(i)),
  consumers: Array.from({ length: CONSUMERS }, (_, i) => consumer(i)),
  secrets: [],
  ssls: Array.from({ length: SSLS }, (_, i) => ssl(i)),
};

function fullValidation(raw: unknown): ValidatedConfig {
  const v = validateConfig(raw, registry);
  if (v.issues) throw new Error(JSON.stringify(v.issues.slice(0, 3)));
  const p = checkSecretPolicy(v.config, v.refs, registry, ctx);
  if (p.issues.length) throw new Error(JSON.stringify(p.issues.slice(0, 3)));
  return { ...v, credentials: p.uses };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function time(runs: number, fn: () => void): { median: number; max: number } {
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    fn();
    xs.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return { median: median(xs), max: Math.max(...xs) };
}

const fmt = (t: { median: number; max: number }) => `median ${t.median.toFixed(2)} ms, max ${t.max.toFixed(2)} ms`;

const live = fullValidation(doc);
console.log(`${CONSUMERS} consumers, ${ROUTES} routes, ${UPSTREAMS} upstreams, ${SSLS} SSL resources; ${live.refs.length} reference sites`);
console.log(`whole document (validateConfig + policy): ${fmt(time(5, () => fullValidation(doc)))}`);

const mid = CONSUMERS >> 1;
const cases: Array<[string, DataChange[]]> = [
  ['replace one consumer (a rotated key)', [{ kind: 'consumers', id: `c${mid + 1}`, before: doc.consumers[mid + 1], after: { username: `c${mid + 1}`, plugins: { 'key-auth': { key: 'rotated-0123456789' } } } }]],
  ['create one consumer', [{ kind: 'consumers', id: 'new', after: { username: 'new', plugins: { 'key-auth': { key: '$env://GH_NEW' } } } }]],
  ['delete the 11th consumer (10,000 reference sites after it re-pathed)', [{ kind: 'consumers', id: 'c10', before: doc.consumers[10] }]],
  ['replace one route', [{ kind: 'routes', id: `r${ROUTES >> 1}`, before: doc.routes[ROUTES >> 1], after: { ...route(ROUTES >> 1), desc: 'changed' } }]],
  ['replace one upstream', [{ kind: 'upstreams', id: 'u7', before: doc.upstreams[7], after: { id: 'u7', nodes: [{ host: '10.9.9.9', port: 8080, weight: 2 }] } }]],
  ['delete one upstream that routes still use (refused: 10 routes named)', [{ kind: 'upstreams', id: 'u7', before: doc.upstreams[7] }]],
  ['replace one SSL resource (a new certificate and key)', [{ kind: 'ssls', id: 's7', before: doc.ssls[7], after: ssl(7, rotated) }]],
  ['create one SSL resource', [{ kind: 'ssls', id: 'new', after: { ...ssl(SSLS), id: 'new' } }]],
  ['delete the 2nd SSL resource', [{ kind: 'ssls', id: 's1', before: doc.ssls[1] }]],
  ['an SSL resource taking a name another serves (refused)', [{ kind: 'ssls', id: 's7', before: doc.ssls[7], after: { ...ssl(7), snis: ['s8.example.com'] } }]],
  ['100 consumers replaced at once', Array.from({ length: 100 }, (_, k) => ({ kind: 'consumers' as const, id: `c${k * 997}`, before: doc.consumers[k * 997], after: { username: `c${k * 997}`, plugins: { 'key-auth': { key: `k-${k}-0123456789` } } } }))],
];
for (const [name, changes] of cases) {
  let r = validateChanges(live, changes, registry, ctx);
  if (r.full) throw new Error(`${name}: ${r.why}`);
  const t = time(50, () => (r = validateChanges(live, changes, registry, ctx)));
  console.log(`${name}: ${fmt(t)}${r.issues ? ` (${r.issues.length} issues)` : ''}`);
}
