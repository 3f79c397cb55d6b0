// Admin API (read side): key and allow-list checks, APISIX envelopes, redaction of plaintext
// secrets, plugin schemas, forced secret refresh and Prometheus metrics.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { FileConfigStore, journalOf } from '../core/stores/file-store';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { request } from 'undici';
import { defineProvider, type SecretValue } from '../core/sdk';
import type { Extension } from '../core/contracts';
import { bootGateway, cliPath, delay, eventually, freePort, startUpstream, tempDir, waitForPort, type TestGateway, type Upstream } from './helpers/harness';

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

async function write(method: string, path: string, body?: unknown) {
  const r = await request(`${admin}${path}`, { method: method as 'PUT', headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' }, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.body.text();
  return { status: r.statusCode, json: text ? JSON.parse(text) : undefined };
}

test('PUT creates (201) or replaces (200) a route, live at once, no restart', async () => {
  const route = { uri: '/added', plugins: { mocking: { response_example: 'added' } } };
  const created = await write('PUT', '/apisix/admin/routes/added', route);
  assert.equal(created.status, 201);
  assert.equal(created.json.key, '/apisix/routes/added');
  assert.equal(created.json.value.id, 'added');
  assert.equal(await request(`${g.url}/added`).then((r) => r.body.text()), 'added');
  const replaced = await write('PUT', '/admin/routes/added', { uri: '/added', plugins: { mocking: { response_example: 'replaced' } } });
  assert.equal(replaced.status, 200);
  assert.equal(await request(`${g.url}/added`).then((r) => r.body.text()), 'replaced');
});

test('an invalid write is refused with 400 and every error path; the running config is untouched', async () => {
  const r = await write('PUT', '/admin/routes/broken', { uri: '/broken', upstream: { nodes: {} } });
  assert.equal(r.status, 400);
  assert.ok(r.json.errors.some((e: string) => /^routes\[\d+\]\.upstream\.nodes: must have at least 1 entry$/.test(e)), JSON.stringify(r.json));
  assert.equal((await call('/admin/routes/broken')).status, 404);
  assert.equal((await write('PUT', '/admin/routes/x', '{not json')).status, 400);
  assert.equal((await write('PUT', '/admin/routes/x', { id: 'y', uri: '/x' })).status, 400);
  assert.equal((await write('PUT', '/admin/routes/big', { uri: '/big', desc: 'x'.repeat(1024 * 1024 + 10) })).status, 413);
});

test('"******" written back keeps the stored secret; PATCH merges', async () => {
  const before = await call('/admin/consumers/jill');
  assert.equal(before.json.value.plugins['key-auth'].key, '******');
  const r = await write('PATCH', '/admin/consumers/jill', { desc: 'patched', plugins: { 'key-auth': { key: '******' } } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.value.desc, 'patched');
  assert.equal(r.json.value.plugins['key-auth'].key, '******');
  const ok = await request(`${g.url}/ip`, { headers: { apikey: 'planted-literal-key' } });
  await ok.body.text();
  assert.equal(ok.statusCode, 200, 'jill still authenticates with the kept key');
  assert.equal((await write('PUT', '/admin/consumers/newbie', { plugins: { 'key-auth': { key: '******' } } })).status, 400, 'nothing stored to keep');
});

test('PUT /consumers takes the username from the body, as APISIX does', async () => {
  const r = await write('PUT', '/apisix/admin/consumers', { username: 'kate', plugins: { 'key-auth': { key: 'kate-key-1' } } });
  assert.equal(r.status, 201);
  const ok = await request(`${g.url}/ip`, { headers: { apikey: 'kate-key-1' } });
  await ok.body.text();
  assert.equal(ok.statusCode, 200);
});

test('DELETE removes a resource; an upstream still used by routes is refused naming them', async () => {
  assert.equal((await write('PUT', '/admin/upstreams/u1', { nodes: { [up.node]: 1 } })).status, 201);
  assert.equal((await write('PUT', '/admin/routes/via-u1', { uri: '/via-u1', upstream_id: 'u1' })).status, 201);
  const refused = await write('DELETE', '/admin/upstreams/u1');
  assert.equal(refused.status, 400);
  assert.equal(refused.json.error_msg, 'upstream "u1" is still used by routes: via-u1');
  assert.deepEqual((await write('DELETE', '/admin/routes/via-u1')).json, { deleted: '1', key: '/apisix/routes/via-u1' });
  assert.equal((await write('DELETE', '/admin/upstreams/u1')).status, 200);
  assert.equal((await write('DELETE', '/admin/routes/nope')).status, 404);
  const gone = await request(`${g.url}/via-u1`);
  await gone.body.text();
  assert.equal(gone.statusCode, 404);
});

test('Admin writes to a file-configured gateway survive a restart; a readonly store refuses them', async () => {
  const dir = tempDir();
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, 'admin: { key: k }\nroutes: []\n');
  const a = await bootGateway({}, { configPath: file, adminListen: '127.0.0.1:0' });
  const put = await request(`http://127.0.0.1:${a.gw.adminAddress!.port}/admin/routes/kept`, { method: 'PUT', headers: { 'x-api-key': 'k' }, body: JSON.stringify({ uri: '/kept', plugins: { mocking: { response_example: 'kept' } } }) });
  assert.equal(put.statusCode, 201);
  await put.body.text();
  await a.close();
  const b = await bootGateway({}, { configPath: file, adminListen: '127.0.0.1:0' });
  try {
    assert.equal(await request(`${b.url}/kept`).then((r) => r.body.text()), 'kept');
  } finally {
    await b.close();
  }
  const ro = join(dir, 'readonly.yaml');
  writeFileSync(ro, 'admin: { key: k }\nconfig_store: { readonly: true }\nroutes: []\n');
  const c = await bootGateway({}, { configPath: ro, adminListen: '127.0.0.1:0' });
  try {
    const r = await request(`http://127.0.0.1:${c.gw.adminAddress!.port}/admin/routes/x`, { method: 'PUT', headers: { 'x-api-key': 'k' }, body: JSON.stringify({ uri: '/x' }) });
    assert.equal(r.statusCode, 403);
    assert.match(((await r.body.json()) as { error_msg: string }).error_msg, /readonly/);
  } finally {
    await c.close();
  }
});

test('a config file that cannot be parsed right now: Admin writes answer 500 naming the cause (not 403), store nothing, and work again once it is fixed', async () => {
  const dir = tempDir();
  const file = join(dir, 'gatehouse.yaml');
  const good = 'admin: { key: k }\nroutes: []\n';
  writeFileSync(file, good);
  const g2 = await bootGateway({}, { configPath: file, adminListen: '127.0.0.1:0' });
  const put = (id: string) => request(`http://127.0.0.1:${g2.gw.adminAddress!.port}/admin/routes/${id}`, { method: 'PUT', headers: { 'x-api-key': 'k' }, body: JSON.stringify({ uri: `/${id}`, plugins: { mocking: { response_example: id } } }) });
  try {
    writeFileSync(file, 'admin: { key: k\nroutes: [\n');
    const r = await put('during');
    const body = (await r.body.json()) as { error_msg: string };
    assert.equal(r.statusCode, 500);
    assert.match(body.error_msg, /gatehouse\.yaml/);
    assert.equal(existsSync(join(dir, 'gatehouse.data.json')), false, 'nothing stored');
    writeFileSync(file, good);
    const ok = await put('after');
    await ok.body.text();
    assert.equal(ok.statusCode, 201);
    assert.equal(await request(`${g2.url}/after`).then((x) => x.body.text()), 'after');
  } finally {
    await g2.close();
  }
});

test('an Admin write to the file store is built once: the gateway does not reload for its own data-file write, but does for a hand edit of it', async () => {
  const dir = tempDir();
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, 'admin: { key: k }\nroutes: []\n');
  const g2 = await bootGateway({}, { configPath: file, adminListen: '127.0.0.1:0' });
  const reloads = () => g2.logs.lines.filter((l) => l.msg === 'config reloaded').length;
  try {
    for (const id of ['one', 'two']) {
      const r = await request(`http://127.0.0.1:${g2.gw.adminAddress!.port}/admin/routes/${id}`, { method: 'PUT', headers: { 'x-api-key': 'k' }, body: JSON.stringify({ uri: `/${id}`, plugins: { mocking: { response_example: id } } }) });
      await r.body.text();
      assert.equal(r.statusCode, 201);
    }
    await delay(600); // the store's debounce is 100 ms
    assert.equal(reloads(), 0, 'each write was built once, by the write itself');
    assert.equal(await request(`${g2.url}/two`).then((x) => x.body.text()), 'two');
    // someone else's change to the data file (another worker, a hand edit) is reloaded: the edit
    // writes what the store holds (the data file and its journal) back whole, and drops the journal
    const dataFile = join(dir, 'gatehouse.data.json');
    const stored = await new FileConfigStore(file).load();
    const routes = stored.routes as Array<{ id: string; plugins: { mocking: { response_example: string } } }>;
    routes.find((r) => r.id === 'two')!.plugins.mocking.response_example = 'edited';
    writeFileSync(dataFile, JSON.stringify({ routes, upstreams: [], consumers: [], secrets: [] }));
    rmSync(journalOf(dataFile), { force: true });
    await eventually('the hand edit reloaded', async () => (await request(`${g2.url}/two`).then((x) => x.body.text())) === 'edited', 5000);
    assert.equal(reloads(), 1);
  } finally {
    await g2.close();
  }
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
    // the port accepts connections as soon as it is bound; the line comes through the stderr pipe just after
    const deadline = Date.now() + 5000;
    while (!/this run's admin key/.test(err) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
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

test('POST /routes creates a route with a generated id (201), live at once; POST with an id is 405', async () => {
  const r = await request(`${admin}/apisix/admin/routes`, { method: 'POST', headers: { 'x-api-key': ADMIN_KEY }, body: JSON.stringify({ uri: '/posted', plugins: { mocking: { response_example: 'posted' } } }) });
  assert.equal(r.statusCode, 201);
  const j = (await r.body.json()) as { key: string; value: { id: string } };
  assert.match(j.key, /^\/apisix\/routes\/[0-9a-z]{12,}$/);
  assert.equal(j.key, `/apisix/routes/${j.value.id}`);
  assert.equal(await request(`${g.url}/posted`).then((x) => x.body.text()), 'posted');
  const again = await request(`${admin}/admin/routes/${j.value.id}`, { method: 'POST', headers: { 'x-api-key': ADMIN_KEY }, body: '{}' });
  assert.equal(again.statusCode, 405);
  await again.body.text();
  const del = await call(`/admin/routes/${j.value.id}`, { method: 'DELETE' });
  assert.equal(del.status, 200);
});

test('GET /admin/plugins/{name} answers that plugin; an unknown one is 404', async () => {
  const one = await call('/apisix/admin/plugins/key-auth');
  assert.equal(one.status, 200);
  assert.equal(one.json.name, 'key-auth');
  assert.equal(one.json.consumer_schema.properties.key.writeOnly, true);
  assert.equal((await call('/admin/plugins/nope')).status, 404);
  assert.equal((await call('/admin/plugins/key-auth/extra')).status, 404);
});

test('a body far over the limit gets its 413 answer, not a connection reset', async () => {
  for (const size of [2, 8]) {
    const r = await request(`${admin}/admin/routes/big`, { method: 'PUT', headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' }, body: Buffer.alloc(size * 1024 * 1024, 0x20) });
    assert.equal(r.statusCode, 413, `${size} MiB`);
    assert.match(((await r.body.json()) as { error_msg: string }).error_msg, /larger than 1048576 bytes/);
  }
});

/** Write the whole request before reading anything, as curl and many scripts do; the answer as text. */
function sendAllThenRead(url: string, head: string, body: Buffer, chunked: boolean): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), hostname);
    const got: Buffer[] = [];
    // nothing is read until the last byte was handed to the kernel
    s.pause();
    s.on('error', (err) => reject(err));
    s.on('close', () => resolve(Buffer.concat(got).toString('latin1')));
    s.on('connect', () => {
      s.write(head);
      if (!chunked) s.write(body);
      else for (let i = 0; i < body.length; i += 64 * 1024) s.write(`${(Math.min(64 * 1024, body.length - i)).toString(16)}\r\n`), s.write(body.subarray(i, i + 64 * 1024)), s.write('\r\n');
      s.write(chunked ? '0\r\n\r\n' : '', () => {
        s.on('data', (c) => got.push(c));
        s.resume();
      });
    });
    s.setTimeout(20000, () => reject(new Error('no answer within 20 s')));
  });
}

test('a client that sends 8 MiB before reading (declared or chunked) reads the 413, not a reset', async () => {
  const body = Buffer.alloc(8 * 1024 * 1024, 0x20);
  const base = `PUT /admin/routes/big HTTP/1.1\r\nHost: x\r\nx-api-key: ${ADMIN_KEY}\r\ncontent-type: application/json\r\n`;
  for (const chunked of [false, true]) {
    const head = base + (chunked ? 'transfer-encoding: chunked\r\n\r\n' : `content-length: ${body.length}\r\n\r\n`);
    const answer = await sendAllThenRead(admin, head, body, chunked);
    assert.match(answer, /^HTTP\/1\.1 413 /, chunked ? 'chunked' : 'declared');
    assert.match(answer, /request body larger than 1048576 bytes/);
  }
});

test('PATCH with "uris" (as GET shows it) on a route written with "uri" replaces it instead of conflicting', async () => {
  const put = await request(`${admin}/admin/routes/alias`, { method: 'PUT', headers: { 'x-api-key': ADMIN_KEY }, body: JSON.stringify({ uri: '/alias-a', plugins: { mocking: { response_example: 'alias' } } }) });
  assert.equal(put.statusCode, 201);
  await put.body.text();
  const patch = await request(`${admin}/admin/routes/alias`, { method: 'PATCH', headers: { 'x-api-key': ADMIN_KEY }, body: JSON.stringify({ uris: ['/alias-b'] }) });
  assert.equal(patch.statusCode, 200, await patch.body.text());
  assert.equal((await request(`${g.url}/alias-a`)).statusCode, 404);
  assert.equal(await request(`${g.url}/alias-b`).then((x) => x.body.text()), 'alias');
  assert.equal((await call('/admin/routes/alias', { method: 'DELETE' })).status, 200);
});
