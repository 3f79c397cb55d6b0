// Secret references through a whole gateway: env and provider references in plugin configs,
// schema rules applied to resolved values, fail-closed routes, live rotation, resource changes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { definePlugin, defineProvider, type SecretValue } from '../core/sdk';
import type { Extension } from '../core/contracts';
import { bootGateway, delay, type TestGateway } from './helpers/harness';
import { MemoryConfigStore } from '../core/stores/file-store';

/** The in-memory secret store behind the test provider `mem`; tests change it directly. */
const store = new Map<string, Record<string, string>>();
const state = { down: false, gets: 0, created: [] as Array<Record<string, unknown>> };

const memProvider: Extension = {
  kind: 'provider',
  provider: defineProvider<{ token: string; region?: string }>({
    name: 'mem',
    version: '1.0.0',
    schema: { type: 'object', properties: { token: { type: 'string', pattern: '^tok-', writeOnly: true }, region: { type: 'string', enum: ['eu', 'us'] } }, required: ['token'], additionalProperties: false },
    create(conf) {
      state.created.push({ ...conf });
      return {
        async get({ path, field }): Promise<SecretValue | undefined> {
          state.gets++;
          if (state.down) throw new Error('connect ECONNREFUSED 127.0.0.1:1');
          const v = store.get(path)?.[field];
          return v === undefined ? undefined : { value: v };
        },
      };
    },
  }),
};

/** Puts its (resolved) `value` in a response header so tests can see what the plugin received. */
const showSecret: Extension = {
  kind: 'plugin',
  plugin: definePlugin<{ value: string }>({
    name: 'show-secret',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object', properties: { value: { type: 'string', pattern: '^sk-' } }, required: ['value'], additionalProperties: false },
    create: (conf) => ({
      access(ctx) {
        ctx.respond(200, { ok: true }, { 'x-value': conf.value });
      },
    }),
  }),
};

const extensions = [memProvider, showSecret];
const gateways: TestGateway[] = [];
after(async () => {
  for (const g of gateways) await g.close();
});

async function boot(config: Record<string, unknown>): Promise<TestGateway> {
  const g = await bootGateway(config, { extensions });
  gateways.push(g);
  return g;
}

async function get(g: TestGateway, path: string): Promise<{ status: number; value: string | undefined; body: string }> {
  const r = await request(`${g.url}${path}`);
  const body = await r.body.text();
  return { status: r.statusCode, value: r.headers['x-value'] as string | undefined, body };
}

const route = (id: string, value: string) => ({ id, uri: `/${id}`, plugins: { 'show-secret': { value } } });

test('an $env:// reference in a plugin config is resolved before the plugin is created', async () => {
  process.env.GH_TEST_SHOW = 'sk-from-env';
  const g = await boot({ routes: [route('env', '$env://GH_TEST_SHOW')] });
  assert.deepEqual(await get(g, '/env'), { status: 200, value: 'sk-from-env', body: '{"ok":true}' });
});

test('a $secret:// reference resolves through its provider, whose own token comes from $env://', async () => {
  process.env.GH_TEST_MEM_TOKEN = 'tok-123';
  store.set('jack', { 'auth-key': 'sk-jack-1' });
  const g = await boot({
    secrets: [{ id: 'mem/main', token: '$env://GH_TEST_MEM_TOKEN' }],
    routes: [route('jack', '$secret://mem/main/jack/auth-key')],
  });
  assert.equal((await get(g, '/jack')).value, 'sk-jack-1');
  assert.deepEqual(state.created.at(-1), { token: 'tok-123' }, 'the provider got the resolved token');
});

test('a route whose secret is missing fails closed with 503 while other routes serve, and one line names the reference', async () => {
  delete process.env.GH_TEST_NOT_SET;
  process.env.GH_TEST_SHOW = 'sk-from-env';
  const g = await boot({ routes: [route('missing', '$env://GH_TEST_NOT_SET'), route('fine', '$env://GH_TEST_SHOW')] });
  const r = await get(g, '/missing');
  assert.equal(r.status, 503);
  assert.equal(r.body, '{"message":"secret unavailable"}');
  assert.equal((await get(g, '/fine')).status, 200);
  const lines = g.logs.lines.filter((l) => l.reference === '$env://GH_TEST_NOT_SET' && l.msg === 'secret unavailable');
  assert.equal(lines.length, 1);
  assert.equal(lines[0].provider, 'env');
  assert.equal(lines[0].cause, 'not found');
});

test('schema rules a reference cannot meet are applied to the resolved value: a bad value fails closed', async () => {
  process.env.GH_TEST_BAD = 'not-sk-prefixed';
  const g = await boot({ routes: [route('bad', '$env://GH_TEST_BAD')] });
  assert.equal((await get(g, '/bad')).status, 503);
  const line = g.logs.lines.find((l) => l.msg === 'fails closed: a secret it needs is invalid');
  assert.ok(line);
  assert.match(line.cause, /routes\[0\]\.plugins\.show-secret\.value: has an invalid format/);
  assert.doesNotMatch(g.logs.text(), /not-sk-prefixed/, 'the value is never logged');
  // a literal that breaks the same rule is a plain config error
  await assert.rejects(boot({ routes: [route('lit', 'plain')] }), /routes\[0\]\.plugins\.show-secret\.value/);
});

test('a rotated value is served after a forced refresh with no restart, and the old one no longer', async () => {
  store.set('rot', { key: 'sk-old' });
  process.env.GH_TEST_MEM_TOKEN = 'tok-123';
  const g = await boot({ secrets: [{ id: 'mem/rot', token: '$env://GH_TEST_MEM_TOKEN' }], routes: [route('rot', '$secret://mem/rot/rot/key')] });
  assert.equal((await get(g, '/rot')).value, 'sk-old');
  store.set('rot', { key: 'sk-new' });
  await g.gw.builder.resolver.refreshResource('mem/rot');
  let seen: string | undefined;
  for (let i = 0; i < 50 && seen !== 'sk-new'; i++) {
    await delay(20);
    seen = (await get(g, '/rot')).value;
  }
  assert.equal(seen, 'sk-new');
});

test('a backend that is down at start fails closed, then the route recovers by itself when it returns', async () => {
  store.set('late', { key: 'sk-late' });
  state.down = true;
  const g = await boot({ secrets: [{ id: 'mem/late', token: 'tok-x' }], routes: [route('late', '$secret://mem/late/late/key')] });
  try {
    assert.equal((await get(g, '/late')).status, 503);
    const line = g.logs.lines.find((l) => l.msg === 'secret unavailable' && l.reference === '$secret://mem/late/late/key');
    assert.match(line?.cause ?? '', /ECONNREFUSED/);
  } finally {
    state.down = false;
  }
  let status = 0;
  for (let i = 0; i < 100 && status !== 200; i++) {
    await delay(50);
    status = (await get(g, '/late')).status;
  }
  assert.equal(status, 200, 'served after the backend came back (retried in the background)');
});

test("changing a secret resource's config drops its cached values and rebuilds its backend", async () => {
  store.set('res', { key: 'sk-1' });
  const doc = (region: string) => ({ secrets: [{ id: 'mem/res', token: 'tok-a', region }], routes: [route('res', '$secret://mem/res/res/key')] });
  const memStore = new MemoryConfigStore(doc('eu'));
  const g = await bootGateway({}, { extensions, store: memStore });
  gateways.push(g);
  assert.equal((await get(g, '/res')).value, 'sk-1');
  const creates = state.created.length;
  store.set('res', { key: 'sk-2' }); // not seen yet: the cached value is fresh for ttl
  assert.equal((await get(g, '/res')).value, 'sk-1');
  memStore.set(doc('us'));
  const r = await g.gw.reload();
  assert.equal(r.ok, true);
  assert.equal(state.created.length, creates + 1, 'a new backend for the changed resource');
  assert.equal((await get(g, '/res')).value, 'sk-2', 'cached values of the resource were dropped');
});

test('a resolved secret resource config is checked by the provider schema (pattern, enum) without logging values', async () => {
  process.env.GH_TEST_MEM_TOKEN = 'no-prefix-token';
  store.set('x', { key: 'sk-x' });
  const g = await boot({ secrets: [{ id: 'mem/chk', token: '$env://GH_TEST_MEM_TOKEN' }], routes: [route('chk', '$secret://mem/chk/x/key')] });
  assert.equal((await get(g, '/chk')).status, 503);
  const line = g.logs.lines.find((l) => l.msg === 'a secret resource resolves to an invalid config');
  assert.deepEqual(line?.errors, ['secrets[0].token: has an invalid format (must match ^tok-)']);
  assert.doesNotMatch(g.logs.text(), /no-prefix-token/);
});

test('references to unknown resources or managers are config errors with their path', async () => {
  await assert.rejects(boot({ routes: [route('u', '$secret://mem/nope/a/b')] }), /routes\[0\]\.plugins\.show-secret\.value: refers to unknown secret resource "mem\/nope"/);
  await assert.rejects(boot({ routes: [route('u', '$secret://zzz/nope/a/b')] }), /unknown secret manager "zzz"/);
});
