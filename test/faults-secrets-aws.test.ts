// Fault tests, AWS Secrets Manager: a real `gatehouse start` process whose consumer key (key-auth) and
// upstream credential (proxy-rewrite) are `$secret://` references into the Secrets Manager test
// server, under concurrent load while it throttles, fails, or refuses the gateway's credentials.
// The provider unit tests cover each client call on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { delay, eventually } from './helpers/harness';
import type { SecretsManagerCall } from './servers/secrets-manager';
import {
  AWS_KEY_ID,
  AWS_SECRET,
  AWS_UNKNOWN_SECRET,
  AWS_WRONG_SECRET,
  INVALID_KEY,
  SECRET_UNAVAILABLE,
  gatehouse,
  gatewayConfig,
  get,
  percentile,
  planted,
  report,
  round,
  sm,
  smClient,
  startLoad,
  upstream,
  useSecretBackends,
  type LoadResult,
  type Refs,
} from './helpers/faults-secrets';

useSecretBackends({ aws: true });

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
