// request-id through a real gateway and a real upstream: ids made by each algorithm, sent upstream
// and back, a client's id kept, an upstream's id kept, ctx.vars for later plugins and logs, local
// responses, and the config errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { definePlugin, type RequestContext } from 'gatehouse-gateway/sdk';
import { startTestGateway, type TestGateway } from 'gatehouse-gateway/testing';
import type { ConfigIssue } from 'gatehouse-gateway/sdk';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Test-only plugin running after request-id: shows what it left in ctx.vars, and records it at log time. */
const logged: unknown[] = [];
const seeVar = definePlugin<Record<string, never>>({
  name: 'see-var',
  version: '1.0.0',
  priority: 1,
  schema: { type: 'object' },
  create: () => ({
    access(ctx: RequestContext) {
      ctx.setUpstreamHeader('x-seen-var', String(ctx.vars.get('request_id')));
    },
    log(ctx: RequestContext) {
      logged.push(ctx.vars.get('request_id'));
    },
  }),
});

let gw: TestGateway;
let ownIds: Server;
before(async () => {
  // an upstream that answers with its own X-Request-Id
  ownIds = createServer((_req, res) => res.writeHead(200, { 'x-request-id': 'from-upstream', 'content-type': 'text/plain' }).end('own'));
  await new Promise<void>((r) => ownIds.listen(0, '127.0.0.1', r));
  const ownNode = `127.0.0.1:${(ownIds.address() as AddressInfo).port}`;
  const routes: Array<[string, Record<string, unknown>, string?]> = [
    ['/default', { 'request-id': {}, 'see-var': {} }],
    ['/no-response', { 'request-id': { include_in_response: false } }],
    ['/named', { 'request-id': { header_name: 'X-Trace-Id' } }],
    ['/nanoid', { 'request-id': { algorithm: 'nanoid' } }],
    ['/range', { 'request-id': { algorithm: 'range_id', range_id: { length: 8, char_set: 'abcdef' } } }],
    ['/range-default', { 'request-id': { algorithm: 'range_id' } }],
    ['/ksuid', { 'request-id': { algorithm: 'ksuid' } }],
    ['/mocked', { 'request-id': {}, mocking: { response_example: 'mocked' } }],
    ['/auth', { 'request-id': {}, 'key-auth': {} }],
    ['/own', { 'request-id': {} }, ownNode],
  ];
  gw = await startTestGateway({
    extensions: [seeVar],
    config: (upstream) => ({
      routes: routes.map(([uri, plugins, node], i) => ({ id: `r${i}`, uri, plugins, upstream: { nodes: { [node ?? upstream]: 1 } } })),
      consumers: [{ username: 'jack', plugins: { 'key-auth': { key: 'k' } } }],
    }),
  });
});
after(async () => {
  await gw?.close();
  ownIds.closeAllConnections();
  await new Promise<void>((r) => ownIds.close(() => r()));
});

async function call(path: string, headers: Record<string, string> = {}) {
  const r = await request(gw.url + path, { headers });
  const body = await r.body.text();
  const upstream = r.headers['content-type'] === 'application/json' ? (JSON.parse(body) as { headers: Record<string, string | undefined> }).headers : undefined;
  return { status: r.statusCode, headers: r.headers, body, upstream };
}

async function refused(conf: unknown): Promise<readonly ConfigIssue[]> {
  let issues: readonly ConfigIssue[] | undefined;
  await assert.rejects(startTestGateway({ config: (up) => ({ routes: [{ id: 'r', uri: '/', plugins: { 'request-id': conf }, upstream: { nodes: { [up]: 1 } } }] }) }), (err: Error & { code?: string; issues?: readonly ConfigIssue[] }) => {
    assert.equal(err.code, 'GH_ERR_CONFIG_INVALID');
    issues = err.issues;
    return true;
  });
  return issues!;
}

/** Seconds since the Unix epoch held by a KSUID (its first 4 bytes, base62-decoded). */
function ksuidSeconds(id: string): number {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  let n = 0n;
  for (const c of id) n = n * 62n + BigInt(alphabet.indexOf(c));
  return Number(n >> 128n) + 1400000000;
}

test('by default a new UUID goes upstream in X-Request-Id and back to the client; each request gets its own', async () => {
  const a = await call('/default');
  const id = a.headers['x-request-id'] as string;
  assert.match(id, UUID_V4);
  assert.equal(a.upstream!['x-request-id'], id);
  const b = await call('/default');
  assert.match(b.headers['x-request-id'] as string, UUID_V4);
  assert.notEqual(b.headers['x-request-id'], id);
});

test('a client-sent id is kept, upstream and in the response; an empty one is replaced', async () => {
  const r = await call('/default', { 'x-request-id': 'client-chose-this' });
  assert.equal(r.upstream!['x-request-id'], 'client-chose-this');
  assert.equal(r.headers['x-request-id'], 'client-chose-this');
  const empty = await call('/default', { 'x-request-id': '' });
  assert.match(empty.upstream!['x-request-id']!, UUID_V4);
  assert.equal(empty.headers['x-request-id'], empty.upstream!['x-request-id']);
});

test('the id is in ctx.vars "request_id" for later plugins and for the log phase', async () => {
  const r = await call('/default');
  const id = r.headers['x-request-id'];
  assert.equal(r.upstream!['x-seen-var'], id);
  for (let i = 0; i < 50 && !logged.includes(id); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(logged.includes(id), 'the log phase sees the same id');
  const kept = await call('/default', { 'x-request-id': 'mine' });
  assert.equal(kept.upstream!['x-seen-var'], 'mine');
});

test('include_in_response: false sends the id upstream only', async () => {
  const r = await call('/no-response');
  assert.match(r.upstream!['x-request-id']!, UUID_V4);
  assert.equal(r.headers['x-request-id'], undefined);
});

test('header_name changes the header, upstream and in the response', async () => {
  const r = await call('/named');
  const id = r.headers['x-trace-id'] as string;
  assert.match(id, UUID_V4);
  assert.equal(r.upstream!['x-trace-id'], id);
  assert.equal(r.upstream!['x-request-id'], undefined);
  assert.equal(r.headers['x-request-id'], undefined);
  assert.equal((await call('/named', { 'X-Trace-Id': 't-1' })).headers['x-trace-id'], 't-1');
});

test('algorithm nanoid: 21 URL-safe characters', async () => {
  const ids = new Set<string>();
  for (let i = 0; i < 5; i++) {
    const r = await call('/nanoid');
    const id = r.headers['x-request-id'] as string;
    assert.match(id, /^[A-Za-z0-9_-]{21}$/);
    assert.equal(r.upstream!['x-request-id'], id);
    ids.add(id);
  }
  assert.equal(ids.size, 5);
});

test('algorithm range_id: length characters from char_set; defaults 16 alphanumerics', async () => {
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const id = (await call('/range')).headers['x-request-id'] as string;
    assert.match(id, /^[a-f]{8}$/);
    for (const c of id) seen.add(c);
  }
  assert.equal(seen.size, 6, 'every character of the set is used');
  assert.match((await call('/range-default')).headers['x-request-id'] as string, /^[A-Za-z0-9]{16}$/);
});

test('algorithm ksuid: 27 base62 characters that start with the current time', async () => {
  const r = await call('/ksuid');
  const id = r.headers['x-request-id'] as string;
  assert.match(id, /^[0-9A-Za-z]{27}$/);
  assert.equal(r.upstream!['x-request-id'], id);
  assert.ok(Math.abs(ksuidSeconds(id) - Date.now() / 1000) < 5, `timestamp ${ksuidSeconds(id)}`);
  assert.notEqual((await call('/ksuid')).headers['x-request-id'], id);
});

test("an id the upstream answered with is kept in the response (as APISIX)", async () => {
  const r = await call('/own');
  assert.equal(r.body, 'own');
  assert.equal(r.headers['x-request-id'], 'from-upstream');
});

test('local responses carry the id too: a mocked answer and a 401 from key-auth', async () => {
  const m = await call('/mocked');
  assert.equal(m.body, 'mocked');
  assert.match(m.headers['x-request-id'] as string, UUID_V4);
  const denied = await call('/auth', { 'x-request-id': 'trace-me' });
  assert.equal(denied.status, 401);
  assert.equal(denied.headers['x-request-id'], 'trace-me');
});

test('schema errors name the field', async () => {
  assert.deepEqual(await refused({ header_name: 'bad name' }), [{ path: 'routes[0].plugins.request-id.header_name', message: "has an invalid format (must match ^[A-Za-z0-9!#$%&'*+.^_`|~-]+$)" }]);
  assert.deepEqual(await refused({ algorithm: 'uuid7' }), [{ path: 'routes[0].plugins.request-id.algorithm', message: 'must be one of: "uuid", "nanoid", "range_id", "ksuid"' }]);
  assert.deepEqual(await refused({ include_in_response: 'yes' }), [{ path: 'routes[0].plugins.request-id.include_in_response', message: 'must be a boolean' }]);
  assert.deepEqual(await refused({ algorithm: 'range_id', range_id: { length: 3 } }), [{ path: 'routes[0].plugins.request-id.range_id.length', message: 'must be >= 6' }]);
  assert.deepEqual(await refused({ algorithm: 'range_id', range_id: { char_set: 'abc' } }), [{ path: 'routes[0].plugins.request-id.range_id.char_set', message: 'must be at least 6 characters long' }]);
  assert.deepEqual(await refused({ range_id: { char_set: 'abc déf' } }), [{ path: 'routes[0].plugins.request-id.range_id.char_set', message: 'has an invalid format (must match ^[\\x21-\\x7e]+$)' }]);
  assert.deepEqual(await refused({ uuid: true }), [{ path: 'routes[0].plugins.request-id.uuid', message: 'is not a known field' }]);
});
