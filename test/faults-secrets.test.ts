// Fault tests, secret backends: a real `gatehouse start` process whose consumer key
// (key-auth) and upstream credential (proxy-rewrite) are `$secret://` references into the Vault and
// AWS Secrets Manager test servers, under concurrent load while the backend is down, slow, sealed,
// revokes the gateway's token, throttles, fails, or refuses the gateway's credentials.
// test/secrets-e2e.test.ts covers the in-process, one-request-at-a-time versions of "down before the
// first fetch" and "down after warm-up"; the provider unit tests cover each client call on its own.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Agent, request } from 'undici';
import { delay, eventually, freePort, startGatehouse, startUpstream, tempDir, type GatehouseProcess, type Upstream } from './helpers/harness';
import { startVaultServer, type VaultServer } from './servers/vault';
import { startSecretsManagerServer, type SecretsManagerCall, type SecretsManagerServer } from './servers/secrets-manager';

// planted to prove they never leak into anything the gateway prints
const ROOT_TOKEN = 'planted-fault-root-token-0001';
const AWS_KEY_ID = 'fault-test-key-id-0001';
const AWS_SECRET = 'planted-aws-secret-key-fault-7f7f';
const AWS_WRONG_SECRET = 'planted-wrong-aws-secret-key-8e8e';
const AWS_UNKNOWN_SECRET = 'planted-unknown-aws-secret-key-9d9d';
/** Every secret value planted anywhere (keys, credentials, tokens): none may appear in gateway output. */
const planted = new Set<string>([ROOT_TOKEN, AWS_SECRET, AWS_WRONG_SECRET, AWS_UNKNOWN_SECRET]);

const LOAD_CONCURRENCY = 8;
const SECRET_UNAVAILABLE = '{"message":"secret unavailable"}';
const INVALID_KEY = '{"message":"Invalid API key in request"}';

let vault: VaultServer;
let sm: SecretsManagerServer;
let smClient: SecretsManagerClient;
let upstream: Upstream;
let roleId: string;
let secretId: string;
const dir = tempDir('gatehouse-faults-secrets-');
const agent = new Agent({ keepAliveTimeout: 10_000, connections: 64 });

/** The upstream answers with the credential and consumer the gateway sent, so every request checks both. */
function echoCredential(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  req.on('end', () => res.end(`${req.headers.authorization ?? ''}|${req.headers['x-consumer-username'] ?? ''}`));
}

async function vaultCall(method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<any> {
  const r = await request(`${vault.url}/v1/${path}`, {
    method: method as 'GET',
    headers: { 'x-vault-token': ROOT_TOKEN, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const text = await r.body.text();
  assert.ok(r.statusCode < 300, `${method} ${path}: HTTP ${r.statusCode}`);
  return text ? JSON.parse(text) : undefined;
}

/** A consumer key and an upstream credential for one scenario, written to Vault KV v2 under kv/<scenario>/. */
async function plantVault(scenario: string): Promise<{ key: string; credential: string }> {
  const v = { key: `planted-${scenario}-key-${Math.random().toString(36).slice(2, 10)}`, credential: `Bearer planted-${scenario}-cred-${Math.random().toString(36).slice(2, 10)}` };
  planted.add(v.key).add(v.credential);
  await vaultCall('POST', `kv/data/${scenario}/jack`, { data: { 'auth-key': v.key } });
  await vaultCall('POST', `kv/data/${scenario}/upstream`, { data: { credential: v.credential } });
  return v;
}

before(async () => {
  vault = await startVaultServer({ rootToken: ROOT_TOKEN });
  await vaultCall('POST', 'sys/mounts/kv', { type: 'kv', options: { version: '2' } });
  await vaultCall('PUT', 'sys/policies/acl/gw-read', { policy: 'path "kv/data/approle/*" { capabilities = ["read"] }' });
  await vaultCall('POST', 'sys/auth/approle', { type: 'approle' });
  await vaultCall('POST', 'auth/approle/role/gw', { token_policies: ['gw-read'], token_ttl: '20m' });
  roleId = (await vaultCall('GET', 'auth/approle/role/gw/role-id')).data.role_id;
  secretId = (await vaultCall('POST', 'auth/approle/role/gw/secret-id', {})).data.secret_id;
  planted.add(secretId);

  sm = await startSecretsManagerServer({ accessKeyId: AWS_KEY_ID, secretAccessKey: AWS_SECRET });
  smClient = new SecretsManagerClient({ region: 'us-east-1', endpoint: sm.url, credentials: { accessKeyId: AWS_KEY_ID, secretAccessKey: AWS_SECRET } });
  upstream = await startUpstream(echoCredential);
});

after(async () => {
  smClient?.destroy();
  await vault?.close();
  await sm?.close();
  await upstream?.close();
  await agent.close();
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// the gateway

interface Refs {
  /** Reference of jack's key-auth key. */
  key: string;
  /** Reference of the credential proxy-rewrite sets as Authorization upstream on /api. */
  credential: string;
}

/**
 * Config: /api (key-auth + upstream credential), /keyed (key-auth only), consumer jack.
 * `secretsEntries` are the `secrets:` resources; `cache` is `secret_cache`.
 */
function gatewayConfig(port: number, secretsEntries: unknown[], refs: Refs, cache: Record<string, number>, extraRoutes: unknown[] = []): Record<string, unknown> {
  const nodes = { [upstream.node]: 1 };
  return {
    gateway: { listen: `127.0.0.1:${port}`, access_log: false },
    secret_cache: cache,
    secrets: secretsEntries,
    routes: [
      { id: 'api', uri: '/api', plugins: { 'key-auth': {}, 'proxy-rewrite': { headers: { set: { Authorization: refs.credential } } } }, upstream: { nodes } },
      { id: 'keyed', uri: '/keyed', plugins: { 'key-auth': {} }, upstream: { nodes } },
      ...extraRoutes,
    ],
    consumers: [{ username: 'jack', plugins: { 'key-auth': { key: refs.key } } }],
  };
}

interface Gw {
  readonly url: string;
  readonly proc: GatehouseProcess;
  /** Parsed log lines with this `msg` (and, if given, this reference). */
  lines(msg: string, reference?: string): Array<Record<string, any>>;
}

let cases = 0;
async function gatehouse(t: { after(fn: () => unknown): void }, config: (port: number) => Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<Gw> {
  const d = join(dir, `case-${++cases}`);
  mkdirSync(d);
  const port = await freePort();
  const path = join(d, 'gatehouse.yaml');
  writeFileSync(path, JSON.stringify(config(port), null, 2));
  const proc = await startGatehouse(path, port, { GATEHOUSE_LOG_LEVEL: 'info', ...env });
  t.after(async () => {
    await proc.kill();
    assertNoLeak(proc);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    proc,
    lines: (msg, reference) => proc.logLines().filter((l) => l.msg === msg && (reference === undefined || l.reference === reference)),
  };
}

/** Nothing the gateway printed contains a planted value (checked by name, never printing the value). */
function assertNoLeak(proc: GatehouseProcess): void {
  const out = proc.stdout() + proc.stderr();
  let i = 0;
  for (const v of planted) {
    i++;
    assert.equal(out.includes(v), false, `planted secret #${i} appeared in the gateway's output`);
  }
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; contentType: string | undefined; ms: number }> {
  const t0 = performance.now();
  const r = await request(url, { headers, dispatcher: agent });
  const body = await r.body.text();
  return { status: r.statusCode, body, contentType: r.headers['content-type'] as string | undefined, ms: performance.now() - t0 };
}


// ---------------------------------------------------------------------------------------------
// load

interface LoadResult {
  n: number;
  failed: number;
  /** Failure kinds with counts ("HTTP 503", "wrong upstream credential"): never a value. */
  failures: Record<string, number>;
  latencies: number[];
  /** How many answers carried each accepted body, by its index in `accept`. */
  accepted: number[];
}

/**
 * `LOAD_CONCURRENCY` keep-alive clients asking `path` with `headers` in a loop until stopped. An
 * answer counts as good when it is 200 and its body is one of `accept()` (read at each answer, so
 * a test can widen it when it rotates a value).
 */
function startLoad(url: string, headers: Record<string, string>, accept: () => string[]): { stop(): Promise<LoadResult>; result: LoadResult } {
  const result: LoadResult = { n: 0, failed: 0, failures: {}, latencies: [], accepted: [] };
  let running = true;
  const fail = (kind: string) => {
    result.failed++;
    result.failures[kind] = (result.failures[kind] ?? 0) + 1;
  };
  const worker = async () => {
    while (running) {
      try {
        const r = await get(url, headers);
        result.n++;
        result.latencies.push(r.ms);
        const i = accept().indexOf(r.body);
        if (r.status !== 200) fail(`HTTP ${r.status}`);
        else if (i < 0) fail('wrong upstream credential or consumer');
        else result.accepted[i] = (result.accepted[i] ?? 0) + 1;
      } catch (e) {
        result.n++;
        fail(`client error ${(e as { code?: string }).code ?? 'unknown'}`);
      }
    }
  };
  const workers = Array.from({ length: LOAD_CONCURRENCY }, worker);
  return {
    result,
    async stop() {
      running = false;
      await Promise.all(workers);
      return result;
    },
  };
}

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)];
}

const round = (x: number) => Math.round(x * 10) / 10;

/** Figures for the report, printed as test diagnostics (never values). */
function report(t: { diagnostic(msg: string): void }, what: string, figures: Record<string, unknown>): void {
  t.diagnostic(`${what}: ${JSON.stringify(figures)}`);
}

// ---------------------------------------------------------------------------------------------
// Vault

const vaultRefs: Refs = { key: '$secret://vault/gw/jack/auth-key', credential: '$secret://vault/gw/upstream/credential' };
const vaultEntry = (scenario: string, auth?: Record<string, unknown>) => ({
  id: 'vault/gw',
  uri: vault.url,
  prefix: `kv/${scenario}`,
  kv_version: 2,
  ...(auth ? { auth } : { token: '$env://GH_FAULT_VAULT_TOKEN' }),
});
const vaultEnv = { GH_FAULT_VAULT_TOKEN: ROOT_TOKEN };

test('Vault down before the first fetch: /api fails closed with 503, the key is refused with 401, one line per reference names it and the cause; recovers when Vault comes up', async (t) => {
  const v = await plantVault('down');
  await vault.stop();
  let gw: Gw;
  try {
    gw = await gatehouse(t, (port) => gatewayConfig(port, [vaultEntry('down')], vaultRefs, { ttl: 300 }), vaultEnv);
    const seenBefore = upstream.seen.length;
    // several requests over a few resolver retries: the same answer each time, and one log line per reference
    for (let i = 0; i < 10; i++) {
      const api = await get(`${gw.url}/api`, { apikey: v.key });
      assert.deepEqual({ status: api.status, body: api.body, type: api.contentType }, { status: 503, body: SECRET_UNAVAILABLE, type: 'application/json' });
      const keyed = await get(`${gw.url}/keyed`, { apikey: v.key });
      assert.deepEqual({ status: keyed.status, body: keyed.body }, { status: 401, body: INVALID_KEY });
      await delay(150);
    }
    assert.equal(upstream.seen.length, seenBefore, 'nothing reached the upstream');
    for (const [ref, path] of [[vaultRefs.key, 'kv/data/down/jack'], [vaultRefs.credential, 'kv/data/down/upstream']]) {
      const lines = gw.lines('secret unavailable', ref);
      assert.equal(lines.length, 1, `one line for ${ref}, not one per request or retry`);
      assert.equal(lines[0].level, 50);
      assert.equal(lines[0].provider, 'vault');
      assert.equal(lines[0].cause, `vault ${vault.url}: GET ${path} failed: connection refused (ECONNREFUSED)`);
    }
    const closed = gw.lines('fails closed: a secret it needs is unavailable');
    assert.deepEqual(
      closed.map((l) => ({ consumer: l.consumer, route: l.route, plugin: l.plugin, reference: l.reference })).sort((a, b) => String(a.plugin).localeCompare(String(b.plugin))),
      [
        { consumer: 'jack', route: undefined, plugin: 'key-auth', reference: vaultRefs.key },
        { consumer: undefined, route: 'api', plugin: 'proxy-rewrite', reference: vaultRefs.credential },
      ],
    );
  } finally {
    await vault.start();
  }
  const recoveredMs = await eventually('/api serves after Vault came up', async () => (await get(`${gw!.url}/api`, { apikey: v.key })).status === 200, 20_000);
  assert.deepEqual(await get(`${gw!.url}/api`, { apikey: v.key }).then((r) => [r.status, r.body === `${v.credential}|jack`]), [200, true]);
  assert.equal((await get(`${gw!.url}/keyed`, { apikey: v.key })).status, 200);
  // the log pipe may trail the first good answer
  await eventually('both recoveries logged', () => gw!.lines('secret available again').length === 2, 5000);
  assert.equal(gw!.lines('secret available again', vaultRefs.key).length, 1);
  assert.equal(gw!.lines('secret available again', vaultRefs.credential).length, 1);
  report(t, 'down before first fetch', { recoveredMs });
});

test('Vault down after warm-up, under concurrent load for several refresh periods: zero failed requests, one warn line per reference, recovery logged', async (t) => {
  const v = await plantVault('stale');
  const gw = await gatehouse(t, (port) => gatewayConfig(port, [vaultEntry('stale')], vaultRefs, { ttl: 1, stale_if_error: 3600 }), vaultEnv);
  await eventually('warm', async () => (await get(`${gw.url}/api`, { apikey: v.key })).status === 200, 10_000);
  const load = startLoad(`${gw.url}/api`, { apikey: v.key }, () => [`${v.credential}|jack`]);
  let down = 0;
  try {
    await delay(1000);
    const before = load.result.n;
    await vault.stop();
    // ttl 1 s: the values go stale at once and 4+ refreshes (0.8 s ahead, then 1, 2 s backoff) fail
    await delay(4500);
    down = load.result.n - before;
  } finally {
    await vault.start();
  }
  await eventually('both references recovered', () => gw.lines('secret available again').length === 2, 10_000);
  await delay(500);
  const r = await load.stop();
  report(t, 'down after warm-up', { requests: r.n, whileDown: down, failed: r.failed, p99ms: round(percentile(r.latencies, 99)) });
  assert.deepEqual(r.failures, {});
  assert.equal(r.failed, 0);
  assert.ok(down >= 100, `load ran while Vault was down (${down} requests)`);
  for (const ref of [vaultRefs.key, vaultRefs.credential]) {
    const warn = gw.lines('secret refresh failed; serving the last good value', ref);
    assert.equal(warn.length, 1, `one warn line for ${ref} for the whole outage`);
    assert.equal(warn[0].level, 40);
    assert.equal(warn[0].provider, 'vault');
    assert.match(warn[0].cause, /^vault http:\/\/127\.0\.0\.1:\d+: GET kv\/data\/stale\/(jack|upstream) failed: connection refused \(ECONNREFUSED\)$/);
  }
  assert.equal(gw.lines('secret unavailable').length, 0, 'nothing failed closed');
});

test('Vault slow (2 s per answer) while ttl is 1 s: request latency is unaffected (p99 and max against a fast Vault), and the slow refreshes still deliver a rotated value', async (t) => {
  const v = await plantVault('slow');
  const gw = await gatehouse(t, (port) => gatewayConfig(port, [vaultEntry('slow')], vaultRefs, { ttl: 1, stale_if_error: 3600 }), vaultEnv);
  await eventually('warm', async () => (await get(`${gw.url}/api`, { apikey: v.key })).status === 200, 10_000);
  const rotated = `Bearer planted-slow-cred-rotated-${Math.random().toString(36).slice(2, 10)}`;
  planted.add(rotated);
  const readsOf = () => vault.count('kv/data/slow/', 'GET');

  // phase A: fast Vault
  let load = startLoad(`${gw.url}/api`, { apikey: v.key }, () => [`${v.credential}|jack`, `${rotated}|jack`]);
  const readsA0 = readsOf();
  await delay(4000);
  const fast = await load.stop();
  const readsA = readsOf() - readsA0;

  // phase B: every Vault answer takes 2 s; a rotation written meanwhile must still arrive
  let slow: LoadResult;
  let readsB: number;
  load = startLoad(`${gw.url}/api`, { apikey: v.key }, () => [`${v.credential}|jack`, `${rotated}|jack`]);
  const readsB0 = readsOf();
  vault.faults.latencyMs = 2000;
  try {
    await vaultCall('POST', 'kv/data/slow/upstream', { data: { credential: rotated } });
    await eventually('the rotated credential reaches the upstream through slow refreshes', () => (load.result.accepted[1] ?? 0) > 0, 15_000);
    await delay(2000);
  } finally {
    slow = await load.stop();
    readsB = readsOf() - readsB0;
    vault.faults.latencyMs = 0;
  }
  const p99Fast = percentile(fast.latencies, 99);
  const p99Slow = percentile(slow.latencies, 99);
  const maxSlow = Math.max(...slow.latencies);
  report(t, 'slow vault', {
    fast: { requests: fast.n, failed: fast.failed, p50ms: round(percentile(fast.latencies, 50)), p99ms: round(p99Fast), maxms: round(Math.max(...fast.latencies)), vaultReads: readsA },
    slow: { requests: slow.n, failed: slow.failed, p50ms: round(percentile(slow.latencies, 50)), p99ms: round(p99Slow), maxms: round(maxSlow), vaultReads: readsB, rotatedServed: slow.accepted[1] ?? 0 },
  });
  assert.deepEqual([fast.failures, slow.failures], [{}, {}]);
  assert.ok(readsA >= 3, `refreshes ran during the fast phase (${readsA} reads)`);
  assert.ok(readsB >= 2, `refreshes ran during the slow phase (${readsB} reads)`);
  assert.ok(fast.n >= 200 && slow.n >= 200, `enough requests (${fast.n}, ${slow.n})`);
  // a request that waited on a refresh would wait for the rest of a 2 s answer; with ttl 1 s the
  // values are past their freshness for most of this phase, so waiting requests would also fill the p99
  assert.ok(maxSlow < 1800, `slowest request during slow refreshes took ${round(maxSlow)} ms`);
  assert.ok(p99Slow < Math.min(1000, p99Fast + 750), `p99 ${round(p99Slow)} ms with a slow Vault vs ${round(p99Fast)} ms with a fast one`);
});

test('Vault sealed (503 "Vault is sealed"): before warm-up /api fails closed and the log says so; after warm-up stale values serve with zero failures while refreshes get 503', async (t) => {
  const v = await plantVault('sealed');
  vault.seal();
  let gw: Gw;
  try {
    gw = await gatehouse(t, (port) => gatewayConfig(port, [vaultEntry('sealed')], vaultRefs, { ttl: 1, stale_if_error: 3600 }), vaultEnv);
    await eventually('both references failed', () => gw.lines('secret unavailable').length === 2, 10_000);
    const api = await get(`${gw.url}/api`, { apikey: v.key });
    assert.deepEqual({ status: api.status, body: api.body }, { status: 503, body: SECRET_UNAVAILABLE });
    assert.deepEqual(await get(`${gw.url}/keyed`, { apikey: v.key }).then((r) => [r.status, r.body]), [401, INVALID_KEY]);
    for (const [ref, path] of [[vaultRefs.key, 'kv/data/sealed/jack'], [vaultRefs.credential, 'kv/data/sealed/upstream']]) {
      const [line] = gw.lines('secret unavailable', ref);
      assert.equal(line.provider, 'vault');
      assert.equal(line.cause, `vault ${vault.url}: GET ${path} failed: HTTP 503 (Vault is sealed)`);
    }
  } finally {
    vault.unseal();
  }
  await eventually('/api serves after unseal', async () => (await get(`${gw.url}/api`, { apikey: v.key })).status === 200, 20_000);

  const load = startLoad(`${gw.url}/api`, { apikey: v.key }, () => [`${v.credential}|jack`]);
  let reads = 0;
  try {
    await delay(1000);
    const reads0 = vault.count('kv/data/sealed/', 'GET');
    vault.seal();
    await delay(4500);
    reads = vault.count('kv/data/sealed/', 'GET') - reads0;
  } finally {
    vault.unseal();
  }
  await eventually('recovered after the second unseal', () => gw.lines('secret available again').length === 4, 10_000);
  await delay(500);
  const r = await load.stop();
  report(t, 'sealed', { requests: r.n, failed: r.failed, sealedReads: reads, p99ms: round(percentile(r.latencies, 99)) });
  assert.deepEqual(r.failures, {});
  assert.ok(r.n >= 200, `enough requests (${r.n})`);
  // refresh at 0.8 s, then retries 1 s and 2 s later, for each of the two references
  assert.ok(reads >= 4, `refreshes reached the sealed Vault (${reads} reads, each answered 503)`);
  for (const [ref, path] of [[vaultRefs.key, 'kv/data/sealed/jack'], [vaultRefs.credential, 'kv/data/sealed/upstream']]) {
    const warn = gw.lines('secret refresh failed; serving the last good value', ref);
    assert.equal(warn.length, 1);
    assert.equal(warn[0].cause, `vault ${vault.url}: GET ${path} failed: HTTP 503 (Vault is sealed)`);
  }
});

test('a renewable static token met by a sealed Vault at its lookup and at its renewal is still renewed once Vault is unsealed', async (t) => {
  const v = await plantVault('renewal');
  await vaultCall('PUT', 'sys/policies/acl/renewal-read', { policy: 'path "kv/data/renewal/*" { capabilities = ["read"] }' });
  // 24 s: long enough that a renewal refused at 2/3 of the remaining TTL leaves more than the 3 s
  // the provider needs to try again, however late the loaded machine gets to the first lookup
  const token: string = (await vaultCall('POST', 'auth/token/create', { policies: ['renewal-read'], ttl: '24s', renewable: true })).auth.client_token;
  planted.add(token);
  const expiry = () => vault.tokens().find((x) => x.token === token)?.expireAt ?? 0;
  const firstExpiry = expiry();
  vault.seal();
  let gw: Gw;
  try {
    gw = await gatehouse(t, (port) => gatewayConfig(port, [vaultEntry('renewal')], vaultRefs, { ttl: 1, stale_if_error: 3600 }), { GH_FAULT_VAULT_TOKEN: token });
    await eventually('both references failed', () => gw.lines('secret unavailable').length === 2, 10_000);
  } finally {
    vault.unseal();
  }
  await eventually('/api serves after unseal', async () => (await get(`${gw.url}/api`, { apikey: v.key })).status === 200, 20_000);
  // sealed again until the renewal (2/3 into the TTL left at the lookup) has been tried and refused
  const renewals0 = vault.count('auth/token/renew-self');
  vault.seal();
  try {
    await eventually('a renewal was tried (the lookup met by the seal was retried)', () => vault.count('auth/token/renew-self') > renewals0, 25_000);
  } finally {
    vault.unseal();
  }
  assert.equal(expiry(), firstExpiry, 'the renewal tried while sealed did not extend the token');
  const retriedMs = await eventually('the refused renewal was tried again and extended the token', () => expiry() > firstExpiry, 15_000);
  report(t, 'renewable token and sealed Vault', { renewAttempts: vault.count('auth/token/renew-self') - renewals0, retriedAfterUnsealMs: retriedMs, extendedBySec: Math.round((expiry() - firstExpiry) / 1000) });
  // the refreshes refused while sealed recover by themselves (their backoff may reach 8 s)
  await eventually('recovered from the second seal', () => gw.lines('secret available again').length === 4, 20_000);
  assert.deepEqual(await get(`${gw.url}/api`, { apikey: v.key }).then((r) => [r.status, r.body === `${v.credential}|jack`]), [200, true]);
});

test('AppRole token revoked while serving: one new login, the next refresh succeeds and delivers a rotated key and credential, zero failed requests', async (t) => {
  const v = await plantVault('approle');
  const gw = await gatehouse(
    t,
    (port) => gatewayConfig(port, [vaultEntry('approle', { method: 'approle', role_id: '$env://GH_FAULT_ROLE_ID', secret_id: '$env://GH_FAULT_SECRET_ID' })], vaultRefs, { ttl: 1, stale_if_error: 3600 }),
    { GH_FAULT_ROLE_ID: roleId, GH_FAULT_SECRET_ID: secretId },
  );
  await eventually('warm', async () => (await get(`${gw.url}/api`, { apikey: v.key })).status === 200, 10_000);
  const logins0 = vault.count('auth/approle/login');
  assert.equal(logins0, 1, 'the gateway logged in once at start');
  const rotated = { key: `planted-approle-key-rotated-${Math.random().toString(36).slice(2, 10)}`, credential: `Bearer planted-approle-cred-rotated-${Math.random().toString(36).slice(2, 10)}` };
  planted.add(rotated.key).add(rotated.credential);

  // the old key keeps working through rotation_grace; the upstream may see either credential
  const load = startLoad(`${gw.url}/api`, { apikey: v.key }, () => [`${v.credential}|jack`, `${rotated.credential}|jack`]);
  let revoked: string[] = [];
  let r: LoadResult;
  try {
    await delay(1000);
    revoked = vault.tokens().filter((x) => x.path === 'auth/approle/login').map((x) => x.token);
    for (const tok of revoked) {
      planted.add(tok);
      assert.equal(vault.revokeToken(tok), true);
    }
    await vaultCall('POST', 'kv/data/approle/jack', { data: { 'auth-key': rotated.key } });
    await vaultCall('POST', 'kv/data/approle/upstream', { data: { credential: rotated.credential } });
    await eventually('the rotated credential reaches the upstream', () => (load.result.accepted[1] ?? 0) > 0, 10_000);
    await eventually('the rotated key authenticates', async () => (await get(`${gw.url}/keyed`, { apikey: rotated.key })).status === 200, 5000);
    await delay(1500);
  } finally {
    r = await load.stop();
  }
  const logins = vault.count('auth/approle/login') - logins0;
  for (const tok of vault.tokens()) if (tok.path === 'auth/approle/login') planted.add(tok.token);
  report(t, 'approle revoked', { requests: r.n, failed: r.failed, revokedTokens: revoked.length, newLogins: logins, oldCredentialServed: r.accepted[0] ?? 0, rotatedCredentialServed: r.accepted[1] ?? 0 });
  assert.equal(revoked.length, 1, 'the gateway held one AppRole token');
  assert.deepEqual(r.failures, {});
  assert.equal(logins, 1, 'exactly one new login, shared by the concurrent refreshes of both references');
  assert.equal(gw.lines('vault login failed').length, 0);
  assert.equal(gw.lines('secret refresh failed; serving the last good value').length, 0, 'the refresh that met the revoked token succeeded after the login');
  assert.equal(gw.lines('secret unavailable').length, 0);
  assert.equal((await get(`${gw.url}/keyed`, { apikey: v.key })).status, 200, 'the previous key still works within rotation_grace');
});

// ---------------------------------------------------------------------------------------------
// AWS Secrets Manager

const awsRefs: Refs = { key: '$secret://aws/prod/gateway/jack/auth-key', credential: '$secret://aws/prod/gateway/upstream/credential' };
const awsEntry = (id: string, accessKeyId: string, secretEnv: string) => ({
  id,
  region: 'us-east-1',
  endpoint_url: sm.url,
  access_key_id: accessKeyId,
  secret_access_key: `$env://${secretEnv}`,
});

/** How many times each string occurs. */
function tally(xs: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

/** The calls answered since index `from`, as `op status error` strings (no bodies). */
function callsSince(from: number): string[] {
  return sm.calls().slice(from).map((c: SecretsManagerCall) => `${c.op} ${c.status}${c.error ? ` ${c.error}` : ''}`);
}

test('AWS throttling and 500s: the SDK backs off and retries (attempts counted at the server), the last good values serve meanwhile with zero failed requests', async (t) => {
  const suffix = Math.random().toString(36).slice(2, 10);
  const v = { key: `planted-aws-key-${suffix}`, credential: `Bearer planted-aws-cred-${suffix}` };
  planted.add(v.key).add(v.credential);
  await smClient.send(new CreateSecretCommand({ Name: 'gateway/jack', SecretString: JSON.stringify({ 'auth-key': v.key }) }));
  await smClient.send(new CreateSecretCommand({ Name: 'gateway/upstream', SecretString: JSON.stringify({ credential: v.credential }) }));
  const gw = await gatehouse(t, (port) => gatewayConfig(port, [awsEntry('aws/prod', AWS_KEY_ID, 'GH_FAULT_AWS_SECRET')], awsRefs, { ttl: 1, stale_if_error: 3600 }), { GH_FAULT_AWS_SECRET: AWS_SECRET });
  await eventually('warm', async () => (await get(`${gw.url}/api`, { apikey: v.key })).status === 200, 10_000);
  const load = startLoad(`${gw.url}/api`, { apikey: v.key }, () => [`${v.credential}|jack`]);
  let throttled: string[];
  let throttleGapsMs: number[];
  let failing: string[];
  let r: LoadResult;
  try {
    await delay(1500);
    // refreshes are one BatchGetSecretValue for both secrets
    const from1 = sm.calls().length;
    assert.deepEqual(new Set(callsSince(Math.max(0, from1 - 2))), new Set(['BatchGetSecretValue 200']), 'steady state: one batch call per refresh');
    sm.faults.throttleNext(3);
    await eventually('a refresh got through the throttling', () => callsSince(from1).includes('BatchGetSecretValue 200'), 15_000);
    throttled = callsSince(from1).slice(0, 4);
    const at = sm.calls().slice(from1, from1 + 4).map((c) => c.at);
    throttleGapsMs = at.slice(1).map((x, i) => x - at[i]);
    await delay(1000);

    // 12 failures: 4 attempts of the batch, then 4 of each GetSecretValue it falls back to, so
    // this refresh fails for both references and the resolver retries it 1 s later
    const from2 = sm.calls().length;
    sm.faults.failNext(12);
    await eventually('a refresh got through the 500s', () => callsSince(from2).includes('BatchGetSecretValue 200'), 20_000);
    failing = callsSince(from2);
    // the log pipe may trail the answer on a loaded machine; if the lines never come, say what was asked and logged
    await eventually('both references logged as available again', () => gw.lines('secret available again').length === 2, 15_000).catch((err: Error) => {
      const logged = gw.lines('secret available again').map((l) => l.reference);
      throw new Error(`${err.message}; calls since the 500s: ${callsSince(from2).join(', ')}; recoveries logged: ${JSON.stringify(logged)}`);
    });
    await delay(500);
  } finally {
    sm.faults.clear();
    r = await load.stop();
  }
  report(t, 'aws throttling and 500s', { requests: r.n, failed: r.failed, throttleAttempts: throttled.length, throttleGapsMs, failureAttempts: failing.indexOf('BatchGetSecretValue 200'), p99ms: round(percentile(r.latencies, 99)) });
  assert.deepEqual(r.failures, {});
  assert.ok(r.n >= 200, `enough requests (${r.n})`);
  assert.deepEqual(throttled, [
    'BatchGetSecretValue 400 ThrottlingException',
    'BatchGetSecretValue 400 ThrottlingException',
    'BatchGetSecretValue 400 ThrottlingException',
    'BatchGetSecretValue 200',
  ]);
  // the first four answers are the batch's attempts; the fallback's eight interleave; then one success
  assert.deepEqual(failing.slice(0, 4), Array(4).fill('BatchGetSecretValue 500 InternalServiceError'));
  assert.deepEqual(failing.slice(4, 12), Array(8).fill('GetSecretValue 500 InternalServiceError'));
  // nothing else was asked before the first success; anything after it (seen when the poll above
  // noticed the success late on a loaded machine) is a later refresh, and succeeds
  assert.equal(failing.indexOf('BatchGetSecretValue 200'), 12, 'nothing else was asked before the success');
  assert.deepEqual(failing.slice(12).filter((c) => !/^(Batch)?GetSecretValue 200$/.test(c)), [], 'only successful refreshes after the success');
  for (const [ref, name] of [[awsRefs.key, 'gateway/jack'], [awsRefs.credential, 'gateway/upstream']]) {
    const warn = gw.lines('secret refresh failed; serving the last good value', ref);
    assert.equal(warn.length, 1, `one warn line for ${ref}`);
    assert.equal(warn[0].provider, 'aws');
    assert.equal(warn[0].cause, `aws: GetSecretValue of secret "${name}" failed: InternalServiceError (HTTP 500) after 4 attempts`);
  }
  assert.equal(gw.lines('secret unavailable').length, 0);
});

test('AWS bad credentials (UnrecognizedClientException, InvalidSignatureException): fail closed before any value, one line per reference naming the provider and the AWS error code, no retry, no secret key', async (t) => {
  const suffix = Math.random().toString(36).slice(2, 10);
  const v = { key: `planted-aws-bad-key-${suffix}` };
  planted.add(v.key);
  await smClient.send(new CreateSecretCommand({ Name: 'bad/jack', SecretString: JSON.stringify({ 'auth-key': v.key }) }));
  await smClient.send(new CreateSecretCommand({ Name: 'bad/upstream', SecretString: JSON.stringify({ credential: `Bearer planted-${suffix}` }) }));
  planted.add(`Bearer planted-${suffix}`);
  const refs: Refs = { key: '$secret://aws/badsig/bad/jack/auth-key', credential: '$secret://aws/badsig/bad/upstream/credential' };
  const unknownRef = '$secret://aws/unknown/bad/upstream/credential';
  const from = sm.calls().length;
  const gw = await gatehouse(
    t,
    (port) =>
      gatewayConfig(
        port,
        [awsEntry('aws/badsig', AWS_KEY_ID, 'GH_FAULT_AWS_WRONG'), awsEntry('aws/unknown', 'fault-unknown-key-id-0001', 'GH_FAULT_AWS_UNKNOWN')],
        refs,
        { ttl: 1 },
        [{ id: 'unknown', uri: '/unknown', plugins: { 'proxy-rewrite': { headers: { set: { Authorization: unknownRef } } } }, upstream: { nodes: { [upstream.node]: 1 } } }],
      ),
    { GH_FAULT_AWS_WRONG: AWS_WRONG_SECRET, GH_FAULT_AWS_UNKNOWN: AWS_UNKNOWN_SECRET },
  );
  await eventually('three references failed', () => gw.lines('secret unavailable').length === 3, 10_000);
  // the warm-up: one batch call per resource, then one GetSecretValue per reference, one attempt each
  // (the resolver's first retry is 1 s later)
  const warmup = tally(callsSince(from));
  assert.deepEqual(warmup, {
    'BatchGetSecretValue 400 InvalidSignatureException': 1,
    'GetSecretValue 400 InvalidSignatureException': 2,
    'BatchGetSecretValue 400 UnrecognizedClientException': 1,
    'GetSecretValue 400 UnrecognizedClientException': 1,
  });
  const seenBefore = upstream.seen.length;
  // over 2.5 s the resolver retries (1 s, 2 s backoff): still closed, still one line each
  for (let i = 0; i < 10; i++) {
    assert.deepEqual(await get(`${gw.url}/api`, { apikey: v.key }).then((r) => [r.status, r.body]), [503, SECRET_UNAVAILABLE]);
    assert.deepEqual(await get(`${gw.url}/unknown`).then((r) => [r.status, r.body]), [503, SECRET_UNAVAILABLE]);
    assert.deepEqual(await get(`${gw.url}/keyed`, { apikey: v.key }).then((r) => [r.status, r.body]), [401, INVALID_KEY]);
    await delay(250);
  }
  assert.equal(upstream.seen.length, seenBefore);
  const expected: Array<[string, string]> = [
    [refs.key, 'aws: GetSecretValue of secret "bad/jack/auth-key" failed: InvalidSignatureException (HTTP 400) after 1 attempt'],
    [refs.credential, 'aws: GetSecretValue of secret "bad/upstream/credential" failed: InvalidSignatureException (HTTP 400) after 1 attempt'],
    [unknownRef, 'aws: GetSecretValue of secret "bad/upstream/credential" failed: UnrecognizedClientException (HTTP 400) after 1 attempt'],
  ];
  for (const [ref, cause] of expected) {
    const lines = gw.lines('secret unavailable', ref);
    assert.equal(lines.length, 1, `one line for ${ref}`);
    assert.equal(lines[0].level, 50);
    assert.equal(lines[0].provider, 'aws');
    assert.equal(lines[0].cause, cause);
  }
  const kinds = tally(callsSince(from));
  report(t, 'aws bad credentials', { warmup, afterSeveralSeconds: kinds });
  // every call was refused with one of those two errors, none succeeded
  assert.deepEqual(Object.keys(kinds).filter((k) => !/ 400 (InvalidSignatureException|UnrecognizedClientException)$/.test(k)), []);
  // and the resolver kept retrying (1 s, 2 s backoff): at least one more round per resource
  assert.ok(kinds['GetSecretValue 400 InvalidSignatureException'] >= 4, 'both references were retried');
  assert.ok(kinds['GetSecretValue 400 UnrecognizedClientException'] >= 2, 'the reference was retried');
});
