// template-provider: values from a JSON file, read again at every fetch; a key resolved through a
// real gateway authenticates a consumer.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestGateway } from 'gatehouse-gateway/testing';
import templateProvider, { templateProviderBackend } from './index';

const dir = mkdtempSync(join(tmpdir(), 'template-provider-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'secrets.json');
writeFileSync(file, JSON.stringify({ jack: { 'auth-key': 'jack-key' }, team: { edge: { token: 't0k' } }, port: 8080 }));

test('returns the field of the object under the key', async () => {
  assert.deepEqual(await templateProviderBackend(file).get({ path: 'jack', field: 'auth-key' }), { value: 'jack-key' });
});

test('walks nested objects for a key of several segments, and reads top-level fields', async () => {
  const backend = templateProviderBackend(file);
  assert.deepEqual(await backend.get({ path: 'team/edge', field: 'token' }), { value: 't0k' });
  assert.deepEqual(await backend.get({ path: '', field: 'port' }), { value: '8080' });
});

test('answers undefined (not found) for a missing key or field, and for inherited properties', async () => {
  const backend = templateProviderBackend(file);
  assert.equal(await backend.get({ path: 'jill', field: 'auth-key' }), undefined);
  assert.equal(await backend.get({ path: 'jack', field: 'password' }), undefined);
  assert.equal(await backend.get({ path: 'jack', field: 'constructor' }), undefined);
});

test('reads the file again at every fetch, so a refresh sees a change', async () => {
  const f = join(dir, 'rotating.json');
  const backend = templateProviderBackend(f);
  writeFileSync(f, JSON.stringify({ jack: { 'auth-key': 'old' } }));
  assert.equal((await backend.get({ path: 'jack', field: 'auth-key' }))?.value, 'old');
  writeFileSync(f, JSON.stringify({ jack: { 'auth-key': 'new' } }));
  assert.equal((await backend.get({ path: 'jack', field: 'auth-key' }))?.value, 'new');
});

test('fails without quoting the content when the file is not JSON', async () => {
  const f = join(dir, 'broken.json');
  writeFileSync(f, 'password=hunter2');
  await assert.rejects(templateProviderBackend(f).get({ path: 'a', field: 'b' }), (err: Error) => /does not hold valid JSON/.test(err.message) && !err.message.includes('hunter2'));
});

test('fails (it is not "not found") when the file cannot be read', async () => {
  await assert.rejects(templateProviderBackend(join(dir, 'missing.json')).get({ path: 'a', field: 'b' }), /cannot read .*ENOENT/);
});

test('a consumer key referenced in the file authenticates through a gateway', async (t) => {
  const gw = await startTestGateway({
    extensions: [templateProvider],
    config: (upstream) => ({
      // the operator's policy: the folders secret resources may read
      secret_policy: { files: [dir] },
      secrets: [{ id: 'template-provider/local', path: file }],
      consumers: [{ username: 'jack', plugins: { 'key-auth': { key: '$secret://template-provider/local/jack/auth-key' } } }],
      routes: [{ id: 'r', uri: '/*', plugins: { 'key-auth': {} }, upstream: { nodes: { [upstream]: 1 } } }],
    }),
  });
  t.after(() => gw.close());
  assert.equal((await gw.request('/', { headers: { apikey: 'jack-key' } })).status, 200);
  assert.equal(gw.upstream.requests[0].headers['x-consumer-username'], 'jack');
  assert.equal((await gw.request('/', { headers: { apikey: 'wrong' } })).status, 401);
});
