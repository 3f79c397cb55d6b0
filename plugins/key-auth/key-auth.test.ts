// key-auth through a real gateway: the 401s, header/query keys, hidden credentials, the anonymous
// consumer, consumer identity upstream, duplicates, fail-closed consumers and rotation grace.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { defineProvider, type SecretValue } from 'gatehouse-gateway/sdk';
import { bootTestGateway, delay, startUpstream, type GatewayUnderTest, type Upstream } from 'gatehouse-gateway/testing';

/** A test secret provider whose values the test changes in place. */
const values = new Map<string, string>();
const mem = defineProvider({
  name: 'mem',
  version: '1.0.0',
  schema: { type: 'object' },
  create: () => ({
    async get({ path, field }): Promise<SecretValue | undefined> {
      const v = values.get(`${path}/${field}`);
      return v === undefined ? undefined : { value: v };
    },
  }),
});

let up: Upstream;
const gateways: GatewayUnderTest[] = [];
before(async () => {
  up = await startUpstream();
});
after(async () => {
  for (const g of gateways) await g.close();
  await up.close();
});

async function boot(config: Record<string, unknown>): Promise<GatewayUnderTest> {
  const g = await bootTestGateway(config, { extensions: [mem] });
  gateways.push(g);
  return g;
}

const protectedRoute = (keyAuth: Record<string, unknown> = {}, uri = '/ip') => ({ id: 'ip', uri, plugins: { 'key-auth': keyAuth }, upstream: { nodes: { [up.node]: 1 } } });
const consumer = (username: string, key: string) => ({ username, plugins: { 'key-auth': { key } } });

async function call(g: GatewayUnderTest, path: string, headers: Record<string, string> = {}) {
  const r = await request(`${g.url}${path}`, { headers });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text, echo: r.statusCode === 200 ? (JSON.parse(text) as { url: string; headers: Record<string, string> }) : undefined };
}

test('no key: 401 {"message":"Missing API key found in request"} with WWW-Authenticate', async () => {
  const g = await boot({ routes: [protectedRoute()], consumers: [consumer('jack', 'secret-key')] });
  const r = await call(g, '/ip');
  assert.equal(r.status, 401);
  assert.equal(r.text, '{"message":"Missing API key found in request"}');
  assert.equal(r.headers['www-authenticate'], 'Key realm="gatehouse"');
  assert.equal(r.headers['content-type'], 'application/json');
});

test('wrong key: 401 {"message":"Invalid API key in request"} with WWW-Authenticate, and nothing reaches the upstream', async () => {
  const g = await boot({ routes: [protectedRoute()], consumers: [consumer('jack', 'secret-key')] });
  const before = up.seen.length;
  const r = await call(g, '/ip', { apikey: 'nope' });
  assert.equal(r.status, 401);
  assert.equal(r.text, '{"message":"Invalid API key in request"}');
  assert.equal(r.headers['www-authenticate'], 'Key realm="gatehouse"');
  assert.equal(up.seen.length, before);
});

test('a valid key in the header passes, and the upstream receives X-Consumer-Username (a client-sent one is dropped)', async () => {
  const g = await boot({ routes: [protectedRoute()], consumers: [consumer('jack', 'secret-key'), consumer('jill', 'other-key')] });
  const r = await call(g, '/ip', { apikey: 'secret-key', 'x-consumer-username': 'admin' });
  assert.equal(r.status, 200);
  assert.equal(r.echo!.headers['x-consumer-username'], 'jack');
  assert.equal(r.echo!.headers.apikey, 'secret-key', 'kept without hide_credentials');
  const j = await call(g, '/ip', { apikey: 'other-key' });
  assert.equal(j.echo!.headers['x-consumer-username'], 'jill');
  const line = g.logs.lines.filter((l) => l.type === 'access').at(-1);
  assert.equal(line?.consumer, 'jill', 'the access log names the consumer');
});

test('the key may come from the query; the header wins when both are sent; custom names work', async () => {
  const g = await boot({ routes: [protectedRoute({ header: 'X-Api-Key', query: 'key' })], consumers: [consumer('jack', 'secret-key'), consumer('jill', 'other-key')] });
  assert.equal((await call(g, '/ip?key=secret-key')).echo!.headers['x-consumer-username'], 'jack');
  assert.equal((await call(g, '/ip?key=secret-key', { 'x-api-key': 'other-key' })).echo!.headers['x-consumer-username'], 'jill');
  assert.equal((await call(g, '/ip?key=wrong', { 'x-api-key': 'other-key' })).status, 200, 'header wins even when the query key is wrong');
  assert.equal((await call(g, '/ip', { apikey: 'secret-key' })).status, 401, 'the default header name no longer applies');
});

test('hide_credentials removes the key from the header or the query before proxying', async () => {
  const g = await boot({ routes: [protectedRoute({ hide_credentials: true })], consumers: [consumer('jack', 'secret-key')] });
  const h = await call(g, '/ip?a=1', { apikey: 'secret-key' });
  assert.equal(h.echo!.headers.apikey, undefined);
  assert.equal(h.echo!.url, '/ip?a=1');
  const q = await call(g, '/ip?a=1&apikey=secret-key&b=2');
  assert.equal(q.status, 200);
  assert.equal(q.echo!.url, '/ip?a=1&b=2');
});

test('anonymous_consumer is used when no key is sent; a wrong key is still rejected', async () => {
  const g = await boot({ routes: [protectedRoute({ anonymous_consumer: 'guest' })], consumers: [consumer('jack', 'secret-key'), { username: 'guest' }] });
  const r = await call(g, '/ip');
  assert.equal(r.status, 200);
  assert.equal(r.echo!.headers['x-consumer-username'], 'guest');
  assert.equal((await call(g, '/ip', { apikey: 'bad' })).status, 401);
  await assert.rejects(boot({ routes: [protectedRoute({ anonymous_consumer: 'nobody' })], consumers: [consumer('jack', 'secret-key')] }), /routes\[0\]\.plugins\.key-auth: anonymous_consumer "nobody" is not a consumer/);
});

test('two consumers with the same key, one held in a secret manager: the config loads, neither authenticates with it, others do, one line each names both consumers and the references, never the key; two literal keys alike are a config error', async () => {
  // a refused config would tell whoever wrote one of them that the key equals another consumer's
  process.env.GH_KA_DUP = 'planted-ka-dup-key-5b1e';
  const g = await boot({ routes: [protectedRoute()], consumers: [consumer('jack', 'planted-ka-dup-key-5b1e'), consumer('jill', '$env://GH_KA_DUP'), consumer('joe', 'joe-key-1')] });
  assert.equal((await call(g, '/ip', { apikey: 'planted-ka-dup-key-5b1e' })).status, 401);
  assert.equal((await call(g, '/ip', { apikey: 'joe-key-1' })).echo!.headers['x-consumer-username'], 'joe');
  const lines = g.logs.lines.filter((l) => l.plugin === 'key-auth' && l.msg === 'fails closed: the consumer cannot authenticate with this plugin');
  assert.deepEqual(
    lines.map((l) => [l.consumer, l.references, l.cause]),
    [
      ['jack', [], 'its key is also consumer "jill"\'s; each key must identify one consumer'],
      ['jill', ['$env://GH_KA_DUP'], 'its key is also consumer "jack"\'s; each key must identify one consumer'],
    ],
  );
  // two literal keys alike: a config error naming both (whoever writes a literal knows it)
  await assert.rejects(
    boot({ routes: [protectedRoute()], consumers: [consumer('ann', 'lit-dup-key-1'), consumer('bob', 'lit-dup-key-1'), consumer('joe', 'joe-key-1')] }),
    (err: unknown) => {
      const text = JSON.stringify((err as { issues?: unknown }).issues ?? (err as Error).message);
      return text.includes('consumers[1].plugins.key-auth.key') && text.includes('\\"ann\\" and \\"bob\\" have the same key') && !text.includes('lit-dup-key-1');
    },
  );
});

test("a consumer whose key cannot be resolved cannot authenticate, everyone else can, and one line names the consumer and the reference", async () => {
  delete process.env.GH_KA_UNSET;
  const g = await boot({ routes: [protectedRoute()], consumers: [consumer('broken', '$env://GH_KA_UNSET'), consumer('jack', 'secret-key')] });
  assert.equal((await call(g, '/ip', { apikey: 'secret-key' })).status, 200);
  assert.equal((await call(g, '/ip', { apikey: '$env://GH_KA_UNSET' })).status, 401, 'the reference text is never a key');
  assert.equal((await call(g, '/ip', { apikey: '' })).status, 401, 'an empty key is never a key');
  const lines = g.logs.lines.filter((l) => l.consumer === 'broken' && l.reference === '$env://GH_KA_UNSET');
  assert.equal(lines.length, 1);
  assert.equal(lines[0].plugin, 'key-auth');
});

test('rotation: the new key works at once, the previous one until rotation_grace ends, then stops', async () => {
  values.set('jack/auth-key', 'key-v1');
  const g = await boot({
    secret_cache: { rotation_grace: 1 },
    secrets: [{ id: 'mem/main' }],
    routes: [protectedRoute()],
    consumers: [consumer('jack', '$secret://mem/main/jack/auth-key')],
  });
  assert.equal((await call(g, '/ip', { apikey: 'key-v1' })).status, 200);
  values.set('jack/auth-key', 'key-v2');
  await g.gateway.builder.resolver.refreshResource('mem/main');
  let ok = false;
  for (let i = 0; i < 50 && !ok; i++) {
    await delay(10);
    ok = (await call(g, '/ip', { apikey: 'key-v2' })).status === 200;
  }
  assert.ok(ok, 'the new key is accepted without a restart');
  assert.equal((await call(g, '/ip', { apikey: 'key-v1' })).status, 200, 'the previous key works during the grace');
  await delay(1300);
  assert.equal((await call(g, '/ip', { apikey: 'key-v1' })).status, 401, 'the previous key stops after the grace');
  assert.equal((await call(g, '/ip', { apikey: 'key-v2' })).status, 200);
});
