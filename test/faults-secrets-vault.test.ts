// Fault tests, Vault: a real `gatehouse start` process whose consumer key (key-auth) and upstream
// credential (proxy-rewrite) are `$secret://` references into the Vault test server, under concurrent
// load while Vault is down, slow, sealed, or revokes the gateway's token.
// test/secrets-e2e.test.ts covers the in-process, one-request-at-a-time versions of "down before the
// first fetch" and "down after warm-up"; the provider unit tests cover each client call on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { delay, eventually } from './helpers/harness';
import {
  INVALID_KEY,
  ROOT_TOKEN,
  SECRET_UNAVAILABLE,
  gatehouse,
  gatewayConfig,
  get,
  percentile,
  plantVault,
  planted,
  report,
  roleId,
  round,
  secretId,
  startLoad,
  upstream,
  useSecretBackends,
  vault,
  vaultCall,
  type Gw,
  type LoadResult,
  type Refs,
} from './helpers/faults-secrets';

useSecretBackends({ vault: true });

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
