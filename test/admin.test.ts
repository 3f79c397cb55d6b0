// Admin API (read side): key and allow-list checks, APISIX envelopes, redaction of plaintext
// secrets, plugin schemas, forced secret refresh and Prometheus metrics.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { request } from 'undici';
import { defineProvider, type SecretValue } from '../core/sdk';
import type { Extension } from '../core/contracts';
import { bootGateway, cliPath, freePort, startUpstream, tempDir, waitForPort, type TestGateway, type Upstream } from './helpers/harness';

const memValues = new Map<string, string>([['jack/key', 'planted-jack-key-1']]);
const mem: Extension = {
  kind: 'provider',
  provider: defineProvider({
    name: 'mem',
    version: '1.0.0',
    schema: { type: 'object', properties: { password: { type: 'string', writeOnly: true } }, additionalProperties: false },
    create: () => ({
      async get({ path, field }): Promise<SecretValue | undefined> {
        const v = memValues.get(`${path}/${field}`);
        return v === undefined ? undefined : { value: v };
      },
    }),
  }),
};

const ADMIN_KEY = 'planted-admin-key-77';
let up: Upstream;
let g: TestGateway;
let admin: string;

before(async () => {
  process.env.GH_ADMIN_TEST_KEY = ADMIN_KEY;
  up = await startUpstream();
  g = await bootGateway(
    {
      admin: { key: '$env://GH_ADMIN_TEST_KEY' },
      secrets: [{ id: 'mem/main', password: 'planted-literal-password' }],
      routes: [{ id: 'ip', uri: '/ip', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.node]: 1 } } }],
      consumers: [
        { username: 'jack', plugins: { 'key-auth': { key: '$secret://mem/main/jack/key' } } },
        { username: 'jill', plugins: { 'key-auth': { key: 'planted-literal-key' } } },
      ],
    },
    { extensions: [mem], adminListen: '127.0.0.1:0' },
  );
  admin = `http://127.0.0.1:${g.gw.adminAddress!.port}`;
});
after(async () => {
  await g?.close();
  await up?.close();
});

async function call(path: string, o: { method?: string; key?: string | null } = {}) {
  const headers: Record<string, string> = {};
  if (o.key !== null) headers['x-api-key'] = o.key ?? ADMIN_KEY;
  const r = await request(`${admin}${path}`, { method: (o.method ?? 'GET') as 'GET', headers });
  const text = await r.body.text();
  return { status: r.statusCode, text, json: text.startsWith('{') ? JSON.parse(text) : undefined, type: r.headers['content-type'] };
}

test('every call needs the admin key (a reference here): none or a wrong one is 401', async () => {
  assert.deepEqual((await call('/admin/routes', { key: null })).json, { error_msg: 'failed to check token' });
  assert.equal((await call('/admin/routes', { key: null })).status, 401);
  assert.equal((await call('/admin/routes', { key: 'wrong' })).status, 401);
  assert.equal((await call('/admin/routes')).status, 200);
});

test('lists and reads resources with APISIX envelopes under /admin/ and /apisix/admin/', async () => {
  const list = await call('/apisix/admin/routes');
  assert.equal(list.json.total, 1);
  assert.equal(list.json.list[0].key, '/apisix/routes/ip');
  assert.equal(list.json.list[0].value.id, 'ip');
  const one = await call('/admin/routes/ip');
  assert.equal(one.json.key, '/apisix/routes/ip');
  assert.deepEqual(one.json.value.uris, ['/ip']);
  assert.equal((await call('/admin/routes/nope')).status, 404);
  assert.equal((await call('/admin/nothing')).status, 404);
  const secret = await call('/admin/secrets/mem/main');
  assert.equal(secret.json.key, '/apisix/secrets/mem/main');
});

test('responses never contain secret values: references as written, plaintext secret fields as ******', async () => {
  const consumers = await call('/admin/consumers');
  const byName = Object.fromEntries(consumers.json.list.map((i: { value: { username: string } }) => [i.value.username, i.value]));
  assert.equal(byName.jack.plugins['key-auth'].key, '$secret://mem/main/jack/key');
  assert.equal(byName.jill.plugins['key-auth'].key, '******');
  const secret = await call('/admin/secrets/mem/main');
  assert.equal(secret.json.value.password, '******');
  const all = (await Promise.all(['/admin/consumers', '/admin/secrets', '/admin/routes', '/admin/plugins', '/admin/consumers/jill'].map((p) => call(p)))).map((r) => r.text).join('\n');
  for (const planted of ['planted-literal-key', 'planted-literal-password', 'planted-jack-key-1', ADMIN_KEY]) assert.equal(all.includes(planted), false, planted);
});

test('GET /admin/plugins lists every plugin with its schemas', async () => {
  const r = await call('/admin/plugins');
  const ka = r.json.list.find((p: { name: string }) => p.name === 'key-auth');
  assert.ok(ka);
  assert.equal(ka.priority, 2500);
  assert.equal(ka.schema.properties.header.default, 'apikey');
  assert.equal(ka.consumer_schema.required[0], 'key');
});

test('POST /admin/secrets/<manager>/<id>/refresh applies a rotation now', async () => {
  const get = (key: string) => request(`${g.url}/ip`, { headers: { apikey: key } }).then(async (r) => (await r.body.text(), r.statusCode));
  assert.equal(await get('planted-jack-key-1'), 200);
  memValues.set('jack/key', 'planted-jack-key-2');
  const r = await call('/apisix/admin/secrets/mem/main/refresh', { method: 'POST' });
  assert.equal(r.status, 200);
  assert.equal(r.json.failed, 0);
  let status = 0;
  for (let i = 0; i < 50 && status !== 200; i++) {
    await new Promise((res) => setTimeout(res, 10));
    status = await get('planted-jack-key-2');
  }
  assert.equal(status, 200);
  assert.equal((await call('/admin/secrets/mem/none/refresh', { method: 'POST' })).status, 404);
});

test('/metrics serves Prometheus text without the key, with request counts and no secret values', async () => {
  await request(`${g.url}/ip`).then((r) => r.body.text());
  const r = await call('/metrics', { key: null });
  assert.equal(r.status, 200);
  assert.match(String(r.type), /^text\/plain/);
  assert.match(r.text, /gatehouse_http_requests_total\{route="ip",status="401"\} \d+/);
  assert.match(r.text, /gatehouse_secret_fetches_total\{provider="mem",result="ok"\} \d+/);
  assert.equal(r.text.includes('planted'), false);
});

test('writes answer 501 until the Admin API can change config', async () => {
  const r = await call('/admin/routes/ip', { method: 'PUT' });
  assert.equal(r.status, 501);
  assert.match(r.json.error_msg, /not available yet/);
});

test('a client outside admin.allow gets 403, even with the key', async () => {
  const g2 = await bootGateway({ admin: { key: 'k', allow: ['10.0.0.0/8'] } }, { adminListen: '127.0.0.1:0' });
  try {
    const r = await request(`http://127.0.0.1:${g2.gw.adminAddress!.port}/admin/routes`, { headers: { 'x-api-key': 'k' } });
    assert.equal(r.statusCode, 403);
    assert.deepEqual(await r.body.json(), { error_msg: 'IP address not allowed' });
  } finally {
    await g2.close();
  }
});

test('without admin.key a random key is generated and printed once on stderr; it works', { timeout: 30000 }, async () => {
  const [port, adminPort] = [await freePort(), await freePort()];
  const cfg = join(tempDir(), 'gatehouse.yaml');
  writeFileSync(cfg, `gateway: { listen: "127.0.0.1:${port}" }\nadmin: { listen: "127.0.0.1:${adminPort}" }\n`);
  const child = spawn(process.execPath, [cliPath(), 'start', '-c', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  child.stderr.on('data', (d: Buffer) => (err += d));
  child.stdout.on('data', (d: Buffer) => (out += d));
  try {
    await waitForPort(adminPort, 15000);
    const m = /this run's admin key \(X-API-KEY\) is (\S+)/.exec(err);
    assert.ok(m, err);
    assert.equal(err.split('\n').filter((l) => l.includes('admin key')).length, 1, 'printed once');
    const r = await request(`http://127.0.0.1:${adminPort}/admin/routes`, { headers: { 'x-api-key': m[1] } });
    assert.equal(r.statusCode, 200);
    await r.body.text();
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(out.includes(m[1]), false, 'the key is never in the logs');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});
