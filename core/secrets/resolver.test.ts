// Every cache rule of the SecretResolver, on an injected clock: each test fails if its rule breaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SecretResolver, SecretUnavailableError, type SecretChange } from './resolver';
import type { SecretCacheSettings } from './cache-entry';
import { FakeClock } from './fake-clock';
import { parseReference } from './reference';
import type { SecretBackend, SecretRequest, SecretValue } from '../contracts';
import { captureLogger } from '../../test/helpers/harness';

const SETTINGS: SecretCacheSettings = { ttl: 300, neg_ttl: 60, stale_if_error: 86400, rotation_grace: 300 };
const REF = parseReference('$secret://mem/one/jack/auth-key');

type Behaviour = SecretValue | undefined | Error | (() => Promise<SecretValue | undefined>);

/** An in-memory backend whose next answers are set by the test; counts calls. */
class MemBackend implements SecretBackend {
  /** Values fetched, one per secret, whether alone or in a batch. */
  calls = 0;
  singleCalls = 0;
  batchCalls = 0;
  answer: Behaviour = { value: 'v1' };
  private async one(): Promise<SecretValue | undefined> {
    this.calls++;
    const a = this.answer;
    if (typeof a === 'function') return a();
    if (a instanceof Error) throw a;
    return a;
  }
  async get(_req: SecretRequest): Promise<SecretValue | undefined> {
    this.singleCalls++;
    return this.one();
  }
  async getMany(reqs: readonly SecretRequest[]): Promise<Array<SecretValue | undefined | Error>> {
    this.batchCalls++;
    return Promise.all(reqs.map(() => this.one().catch((e: Error) => e)));
  }
}

function setup(settings: Partial<SecretCacheSettings> = {}) {
  const clock = new FakeClock();
  const backend = new MemBackend();
  const logs = captureLogger('debug');
  const resolver = new SecretResolver((r) => (r === 'mem/one' ? backend : undefined), clock, logs.logger, undefined, clock);
  resolver.configure({ ...SETTINGS, ...settings });
  const changes: SecretChange[] = [];
  resolver.onChange((c) => changes.push(c));
  return { clock, backend, resolver, logs, changes };
}

/** Let promise callbacks run (background refreshes settle). */
const settle = () => new Promise((r) => setImmediate(r));

test('a value is fresh for ttl: resolves within ttl make one backend call', async () => {
  const { clock, backend, resolver } = setup();
  assert.equal(await resolver.resolve(REF), 'v1');
  clock.advance(299_000);
  assert.equal(await resolver.resolve(REF), 'v1');
  assert.equal(backend.calls, 1);
});

test('after ttl the stale value is served at once while exactly one background refresh runs', async () => {
  const { clock, backend, resolver } = setup();
  await resolver.resolve(REF);
  clock.advance(301_000);
  let release!: () => void;
  backend.answer = () => new Promise((r) => (release = () => r({ value: 'v2' })));
  const a = await Promise.all([resolver.resolve(REF), resolver.resolve(REF), resolver.resolve(REF)]);
  assert.deepEqual(a, ['v1', 'v1', 'v1'], 'callers did not wait for the backend');
  assert.equal(backend.calls, 2, 'one background refresh for three stale reads');
  release();
  await settle();
  assert.equal(await resolver.resolve(REF), 'v2');
  assert.equal(backend.calls, 2);
});

test('when the backend fails, the last good value is served for stale_if_error, then the reference fails', async () => {
  const { clock, backend, resolver } = setup({ ttl: 10, stale_if_error: 100 });
  await resolver.resolve(REF);
  backend.answer = new Error('connect ECONNREFUSED');
  clock.advance(11_000);
  assert.equal(await resolver.resolve(REF), 'v1');
  await settle();
  clock.advance(98_000); // 109 s after fetch: within ttl + stale_if_error
  assert.equal(await resolver.resolve(REF), 'v1');
  await settle();
  clock.advance(2_000); // 111 s: beyond
  await assert.rejects(resolver.resolve(REF), (e: SecretUnavailableError) => e instanceof SecretUnavailableError && /ECONNREFUSED/.test(e.message) && !e.notFound);
});

test('"not found" is cached for neg_ttl, then asked again', async () => {
  const { clock, backend, resolver } = setup();
  backend.answer = undefined;
  await assert.rejects(resolver.resolve(REF), (e: SecretUnavailableError) => e.notFound);
  clock.advance(59_000);
  await assert.rejects(resolver.resolve(REF), (e: SecretUnavailableError) => e.notFound);
  assert.equal(backend.calls, 1);
  clock.advance(2_000);
  backend.answer = { value: 'late' };
  assert.equal(await resolver.resolve(REF), 'late');
  assert.equal(backend.calls, 2);
});

test('concurrent misses for one reference cause one backend call', async () => {
  const { backend, resolver } = setup();
  let release!: () => void;
  backend.answer = () => new Promise((r) => (release = () => r({ value: 'shared' })));
  const all = Promise.all(Array.from({ length: 100 }, () => resolver.resolve(REF)));
  await settle();
  release();
  assert.deepEqual(new Set(await all), new Set(['shared']));
  assert.equal(backend.calls, 1);
});

test('tracked values are refreshed ahead of expiry, so a read after ttl never waits and sees the new value', async () => {
  const { clock, backend, resolver } = setup();
  resolver.track([REF]);
  clock.advance(0);
  await settle();
  assert.equal(backend.calls, 1, 'tracking fetches at once');
  backend.answer = { value: 'v2' };
  clock.advance(240_000); // 80 % of ttl
  await settle();
  assert.equal(backend.calls, 2, 'refreshed before expiry without any reader');
  clock.advance(61_000); // past the first value's ttl
  const calls = backend.calls;
  assert.equal(await resolver.resolve(REF), 'v2');
  assert.equal(backend.calls, calls, 'the read was a cache hit');
});

test('a backend lease shorter than ttl wins', async () => {
  const { clock, backend, resolver } = setup({ ttl: 300 });
  backend.answer = { value: 'leased', ttl: 30 };
  await resolver.resolve(REF);
  clock.advance(31_000);
  backend.answer = { value: 'renewed', ttl: 30 };
  assert.equal(await resolver.resolve(REF), 'leased'); // stale while revalidating
  await settle();
  assert.equal(await resolver.resolve(REF), 'renewed');
  assert.equal(backend.calls, 2);
});

test('a lease longer than ttl does not extend it', async () => {
  const { clock, backend, resolver } = setup({ ttl: 10 });
  backend.answer = { value: 'kv1', ttl: 2764800 };
  await resolver.resolve(REF);
  clock.advance(11_000);
  await resolver.resolve(REF);
  assert.equal(backend.calls, 2);
});

test('a changed value emits a change carrying the previous value, which stays valid for rotation_grace', async () => {
  const { clock, backend, resolver, changes } = setup({ rotation_grace: 60 });
  resolver.track([REF]);
  clock.advance(0);
  await settle();
  backend.answer = { value: 'rotated' };
  await resolver.refreshResource('mem/one');
  const last = changes[changes.length - 1];
  assert.equal(last.value, 'rotated');
  assert.equal(last.previous, 'v1');
  assert.equal(last.previousUntil, clock.now() + 60_000);
  assert.deepEqual(resolver.previous(REF), { value: 'v1', until: clock.now() + 60_000 });
  clock.advance(60_001);
  assert.equal(resolver.previous(REF), undefined);
});

test('an unchanged value emits nothing', async () => {
  const { clock, resolver, changes } = setup();
  resolver.track([REF]);
  clock.advance(0);
  await settle();
  const n = changes.length;
  await resolver.refreshResource('mem/one');
  assert.equal(changes.length, n);
});

test('invalidating a resource drops its cached values at once', async () => {
  const { backend, resolver } = setup();
  await resolver.resolve(REF);
  backend.answer = { value: 'after-change' };
  resolver.invalidateResource('mem/one');
  assert.equal(resolver.peek(REF), undefined);
  assert.equal(await resolver.resolve(REF), 'after-change');
  assert.equal(backend.calls, 2);
});

test('fails closed: an empty value is never returned, and errors name the reference and cause, not a value', async () => {
  const { backend, resolver } = setup();
  backend.answer = { value: '' };
  await assert.rejects(resolver.resolve(REF), SecretUnavailableError);
  const r2 = parseReference('$secret://mem/one/other/field');
  backend.answer = new Error('permission denied');
  await assert.rejects(resolver.resolve(r2), (e: Error) => {
    assert.match(e.message, /\$secret:\/\/mem\/one\/other\/field/);
    assert.match(e.message, /provider mem/);
    assert.match(e.message, /permission denied/);
    return true;
  });
  const unknown = parseReference('$secret://mem/nope/a/b');
  await assert.rejects(resolver.resolve(unknown), /secret resource mem\/nope is not configured/);
});

test('a failing reference logs one line per failure, not one per read, and never the value', async () => {
  const { clock, backend, resolver, logs } = setup({ ttl: 10, stale_if_error: 0 });
  backend.answer = { value: 'planted-secret-value' };
  await resolver.resolve(REF);
  backend.answer = new Error('503 Vault is sealed');
  clock.advance(11_000);
  for (let i = 0; i < 5; i++) await resolver.resolve(REF).catch(() => undefined);
  const failures = logs.lines.filter((l) => l.msg === 'secret unavailable');
  assert.equal(failures.length, 1);
  assert.equal(failures[0].reference, REF.text);
  assert.equal(failures[0].provider, 'mem');
  assert.match(failures[0].cause, /sealed/);
  assert.doesNotMatch(logs.text(), /planted-secret-value/);
});

test('a tracked reference that failed is retried with backoff and its recovery is emitted', async () => {
  const { clock, backend, resolver, changes } = setup();
  backend.answer = new Error('down');
  resolver.track([REF]);
  clock.advance(0);
  await settle();
  assert.equal(backend.calls, 1);
  clock.advance(1_000);
  await settle();
  assert.equal(backend.calls, 2, 'first retry after 1 s');
  backend.answer = { value: 'back' };
  clock.advance(2_000);
  await settle();
  assert.equal(backend.calls, 3, 'second retry after 2 s more');
  assert.equal(changes.at(-1)?.value, 'back');
});

test('resolveMany warms references through the backend batch call', async () => {
  const { backend, resolver } = setup();
  const refs = ['a/x', 'b/y', 'c/z'].map((p) => parseReference(`$secret://mem/one/${p}`));
  const out = await resolver.resolveMany([...refs, refs[0]]);
  assert.equal(backend.batchCalls, 1);
  assert.equal(backend.singleCalls, 0);
  assert.equal(backend.calls, 3, 'a reference listed twice is fetched once');
  assert.equal(out.get(refs[1].key), 'v1');
});

test('resolveMany does not ask again one by one for references the batch call just failed', async () => {
  const { backend, resolver } = setup();
  backend.answer = new Error('connect ECONNREFUSED 127.0.0.1:8200');
  const refs = ['a/x', 'b/y', 'c/z'].map((p) => parseReference(`$secret://mem/one/${p}`));
  const out = await resolver.resolveMany(refs);
  assert.equal(backend.batchCalls, 1);
  assert.equal(backend.singleCalls, 0);
  assert.equal(backend.calls, 3);
  for (const r of refs) {
    const e = out.get(r.key);
    assert.ok(e instanceof SecretUnavailableError && !e.notFound && /ECONNREFUSED/.test(e.reason), r.text);
  }
});

test('background refreshes of many tracked references go through batch calls', async () => {
  const { clock, backend, resolver } = setup();
  const refs = Array.from({ length: 450 }, (_, i) => parseReference(`$secret://mem/one/c${i}/key`));
  resolver.track(refs);
  clock.advance(0);
  await settle();
  await settle();
  assert.equal(backend.calls, 450);
  assert.equal(backend.singleCalls, 0);
  assert.equal(backend.batchCalls, 3, '450 references in batches of 200');
});

test('ttl 0 keeps a value until a forced refresh', async () => {
  const { clock, backend, resolver } = setup({ ttl: 0 });
  await resolver.resolve(REF);
  clock.advance(10 * 86400_000);
  await resolver.resolve(REF);
  assert.equal(backend.calls, 1);
  backend.answer = { value: 'forced' };
  await resolver.refreshResource('mem/one');
  assert.equal(await resolver.resolve(REF), 'forced');
});

test('a deleted secret is not served stale: the change to "gone" is emitted at once', async () => {
  const { clock, backend, resolver, changes } = setup();
  resolver.track([REF]);
  clock.advance(0);
  await settle();
  backend.answer = undefined;
  await resolver.refreshResource('mem/one');
  assert.equal(changes.at(-1)?.value, undefined);
  await assert.rejects(resolver.resolve(REF), (e: SecretUnavailableError) => e.notFound);
});

test('references of one resource fetched a moment apart are refreshed together, in one batch call', async () => {
  const { clock, backend, resolver } = setup();
  const [a, b] = [parseReference('$secret://mem/one/a/key'), parseReference('$secret://mem/one/b/key')];
  resolver.track([a]);
  clock.advance(0);
  await settle();
  clock.advance(1);
  resolver.track([a, b]);
  clock.advance(0);
  await settle();
  assert.equal(backend.batchCalls, 2, 'fetched apart');
  // both are refreshed at 80 % of ttl: the first one's refresh takes the second, due 1 ms later
  clock.advance(240_000);
  await settle();
  await settle();
  assert.equal(backend.calls, 4);
  assert.equal(backend.batchCalls, 3, 'one refresh call for both');
  clock.advance(10);
  await settle();
  assert.equal(backend.calls, 4, 'the second one is not refreshed again on its own');
});
