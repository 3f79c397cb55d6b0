// mocking: answers from config, no upstream call, optional delay and headers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { bootTestGateway, type GatewayUnderTest } from 'gatehouse-gateway/testing';

let g: GatewayUnderTest;
test('setup', async () => {
  g = await bootTestGateway({
    routes: [
      { id: 'plain', uri: '/plain', plugins: { mocking: { response_example: '{"ok":true}' } } },
      { id: 'custom', uri: '/custom', plugins: { mocking: { response_status: 201, content_type: 'text/plain', response_example: 'made', response_headers: { 'x-extra': '1' }, with_mock_header: false } } },
      { id: 'slow', uri: '/slow', plugins: { mocking: { delay: 0.2, response_example: 'late' } } },
    ],
  });
});
after(() => g?.close());

test('answers the configured example with status 200, JSON content type and x-mock-by', async () => {
  const r = await request(`${g.url}/plain`);
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['content-type'], 'application/json;charset=utf8');
  assert.equal(r.headers['x-mock-by'], 'Gatehouse');
  assert.equal(await r.body.text(), '{"ok":true}');
});

test('uses the configured status, content type and headers, and can drop the mock header', async () => {
  const r = await request(`${g.url}/custom`);
  assert.equal(r.statusCode, 201);
  assert.equal(r.headers['content-type'], 'text/plain');
  assert.equal(r.headers['x-extra'], '1');
  assert.equal(r.headers['x-mock-by'], undefined);
  assert.equal(await r.body.text(), 'made');
});

test('waits for the configured delay before answering', async () => {
  const t0 = Date.now();
  const r = await request(`${g.url}/slow`);
  assert.equal(await r.body.text(), 'late');
  assert.ok(Date.now() - t0 >= 190, `answered after ${Date.now() - t0} ms`);
});

test('rejects a status outside 100-599 at load, naming the field', async () => {
  await assert.rejects(bootTestGateway({ routes: [{ id: 'bad', uri: '/b', plugins: { mocking: { response_status: 700 } } }] }), /routes\[0\]\.plugins\.mocking\.response_status/);
});

test('refuses a secret reference in what it sends back (body, content type, headers) at load, naming each field', async () => {
  const mock = { response_example: '$env://GH_MOCKING_BODY', content_type: '$secret://vault/v/app/type', response_headers: { 'x-ok': 'plain', 'x-leak': '$ENV://GH_MOCKING_BODY' } };
  await assert.rejects(
    bootTestGateway({ secrets: [{ id: 'vault/v', uri: 'http://127.0.0.1:1', prefix: 'kv', token: 't' }], routes: [{ id: 'leak', uri: '/leak', plugins: { mocking: mock } }] }),
    (err: Error & { issues?: Array<{ path: string; message: string }> }) => {
      assert.deepEqual(
        err.issues?.map((i) => `${i.path}: ${i.message}`),
        ['content_type', 'response_example', 'response_headers.x-leak'].map((f) => `routes[0].plugins.mocking.${f}: is sent back to clients, so it cannot be a secret reference: write the value itself`),
      );
      return true;
    },
  );
});
