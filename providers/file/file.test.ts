// file: secret files with one trailing newline trimmed, JSON fields, folders, Kubernetes' symlinked
// layout and its atomic swap, traversal refused, and a key from a mounted file through a gateway.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { startTestGateway } from 'gatehouse-gateway/testing';
import type { Logger } from 'gatehouse-gateway/sdk';
import file, { fileBackend, MAX_SECRET_BYTES } from './index';

const root = mkdtempSync(join(tmpdir(), 'gatehouse-file-provider-'));
after(() => rmSync(root, { recursive: true, force: true }));
const dir = join(root, 'secrets');
mkdirSync(dir);
writeFileSync(join(root, 'outside'), 'not-for-you');
writeFileSync(join(dir, 'api-key'), 's3cr3t\n');
writeFileSync(join(dir, 'crlf'), 'windows\r\n');
writeFileSync(join(dir, 'two-newlines'), 'kept\n\n');
writeFileSync(join(dir, 'no-newline'), 'exact');
writeFileSync(join(dir, 'empty'), '');
writeFileSync(join(dir, 'db'), JSON.stringify({ password: 'pw', port: 5432, none: null }));
writeFileSync(join(dir, 'not-json'), 'password=hunter2\n');
mkdirSync(join(dir, 'jack'));
writeFileSync(join(dir, 'jack', 'auth-key'), 'jack-key\n');
const backend = fileBackend(dir);

test('the value is the file content with one trailing newline trimmed', async () => {
  assert.deepEqual(await backend.get({ path: '', field: 'api-key' }), { value: 's3cr3t' });
  assert.deepEqual(await backend.get({ path: '', field: 'crlf' }), { value: 'windows' });
  assert.deepEqual(await backend.get({ path: '', field: 'two-newlines' }), { value: 'kept\n' });
  assert.deepEqual(await backend.get({ path: '', field: 'no-newline' }), { value: 'exact' });
});

test('a pinned version (#3) is refused with a clear error: files have no versions', async () => {
  await assert.rejects(backend.get({ path: 'db', field: 'password', version: '3' }), /^Error: file: files have no versions \(asked for #3\); remove it from the reference$/);
});

test('<name>/<field> reads a field of the JSON object in the file; non-strings come JSON-encoded', async () => {
  assert.deepEqual(await backend.get({ path: 'db', field: 'password' }), { value: 'pw' });
  assert.deepEqual(await backend.get({ path: 'db', field: 'port' }), { value: '5432' });
});

test('<folder>/<name> reads the file in the folder', async () => {
  assert.deepEqual(await backend.get({ path: 'jack', field: 'auth-key' }), { value: 'jack-key' });
});

test('a missing file, folder or JSON field is not found; an empty file gives the empty value the gateway treats as unavailable', async () => {
  assert.equal(await backend.get({ path: '', field: 'nope' }), undefined);
  assert.equal(await backend.get({ path: 'jill', field: 'auth-key' }), undefined);
  assert.equal(await backend.get({ path: 'db', field: 'user' }), undefined);
  assert.equal(await backend.get({ path: 'db', field: 'none' }), undefined);
  assert.equal(await backend.get({ path: 'db', field: 'constructor' }), undefined);
  assert.equal(await backend.get({ path: 'api-key/x', field: 'y' }), undefined);
  assert.deepEqual(await backend.get({ path: '', field: 'empty' }), { value: '' });
});

test('locate names the path(s) a not-found reference was looked for, for the error; none for a reference that would leave the folder', () => {
  assert.equal(backend.locate!({ path: '', field: 'nope' }), join(dir, 'nope'));
  assert.equal(backend.locate!({ path: 'jill', field: 'auth-key' }), `${join(dir, 'jill', 'auth-key')} or field "auth-key" of ${join(dir, 'jill')}`);
  assert.equal(backend.locate!({ path: '..', field: 'x' }), undefined);
});

test('a relative dir resolves with services.resolvePath (from the config file\'s folder), not from the working directory', async () => {
  const logger: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => logger };
  const b = await file.create({ dir: 'secrets' }, { logger, clock: { now: Date.now }, resolvePath: (p) => join(dir, '..', p) });
  assert.equal(b.locate!({ path: '', field: 'x' }), join(dir, '..', 'secrets', 'x'));
});

test('refuses path traversal: no segment may be "." or "..", and nothing outside the folder is read', async () => {
  for (const req of [
    { path: '', field: '..' },
    { path: '..', field: 'outside' },
    { path: 'jack/..', field: 'api-key' },
    { path: 'jack/../..', field: 'outside' },
    { path: '.', field: 'api-key' },
    { path: '', field: '..\\outside' },
  ]) {
    await assert.rejects(backend.get(req), (err: Error) => /cannot leave the secret folder/.test(err.message) && !err.message.includes('not-for-you'), JSON.stringify(req));
  }
});

test('a file that is not a JSON object fails without quoting its content when a field is asked', async () => {
  await assert.rejects(backend.get({ path: 'not-json', field: 'password' }), (err: Error) => /does not hold JSON/.test(err.message) && !err.message.includes('hunter2'));
  writeFileSync(join(dir, 'list'), '["a"]');
  await assert.rejects(backend.get({ path: 'list', field: '0' }), /does not hold a JSON object/);
});

test('a folder asked as a value, and a file over 1 MiB, are failures', async () => {
  await assert.rejects(backend.get({ path: '', field: 'jack' }), /is a folder, not a secret file/);
  writeFileSync(join(dir, 'huge'), Buffer.alloc(MAX_SECRET_BYTES + 1, 'x'));
  await assert.rejects(backend.get({ path: '', field: 'huge' }), /is larger than 1048576 bytes/);
});

test('reads the file again at every fetch: a Kubernetes-style atomic swap of ..data is seen at the next refresh', async () => {
  // the kubelet's layout: <key> -> ..data/<key>, ..data -> ..<timestamp>/, swapped by renaming a new ..data link over it
  const k8s = join(root, 'k8s');
  mkdirSync(join(k8s, '..v1'), { recursive: true });
  writeFileSync(join(k8s, '..v1', 'token'), 'first\n');
  symlinkSync('..v1', join(k8s, '..data'));
  symlinkSync(join('..data', 'token'), join(k8s, 'token'));
  const k = fileBackend(k8s);
  assert.equal((await k.get({ path: '', field: 'token' }))?.value, 'first');
  mkdirSync(join(k8s, '..v2'));
  writeFileSync(join(k8s, '..v2', 'token'), 'second\n');
  symlinkSync('..v2', join(k8s, '..data_tmp'));
  renameSync(join(k8s, '..data_tmp'), join(k8s, '..data'));
  assert.equal((await k.get({ path: '', field: 'token' }))?.value, 'second');
});

test('a dir that is not a folder yet is logged as a warning, not refused', async () => {
  const warnings: unknown[] = [];
  const logger: Logger = { debug() {}, info() {}, warn: (o) => void warnings.push(o), error() {}, child: () => logger };
  const b = await file.create({ dir: join(root, 'not-mounted') }, { logger, clock: { now: Date.now }, resolvePath });
  assert.deepEqual(warnings, [{ dir: join(root, 'not-mounted') }]);
  assert.equal(await b.get({ path: '', field: 'x' }), undefined);
});

test('a consumer key in a mounted file authenticates through a gateway', async (t) => {
  const gw = await startTestGateway({
    config: (upstream) => ({
      secret_policy: { files: [dir] },
      secrets: [{ id: 'file/mounted', dir }],
      consumers: [{ username: 'jack', plugins: { 'key-auth': { key: '$secret://file/mounted/jack/auth-key' } } }],
      routes: [{ id: 'r', uri: '/*', plugins: { 'key-auth': {} }, upstream: { nodes: { [upstream]: 1 } } }],
    }),
  });
  t.after(() => gw.close());
  assert.equal((await gw.request('/', { headers: { apikey: 'jack-key' } })).status, 200);
  assert.equal(gw.upstream.requests[0].headers['x-consumer-username'], 'jack');
  assert.equal((await gw.request('/', { headers: { apikey: 'wrong' } })).status, 401);
});

test('a secrets entry without dir is refused at load with its path', async () => {
  await assert.rejects(startTestGateway({ config: { secrets: [{ id: 'file/mounted' }] } }), /secrets\[0\]/);
});

test('the short form $secret://file/<id>/<name> reads <dir>/<name>; Vault references still need a path', async (t) => {
  const gw = await startTestGateway({
    config: (upstream) => ({
      secret_policy: { files: [dir] },
      secrets: [{ id: 'file/mounted', dir }],
      consumers: [{ username: 'ann', plugins: { 'key-auth': { key: '$secret://file/mounted/api-key' } } }],
      routes: [{ id: 'r', uri: '/*', plugins: { 'key-auth': {} }, upstream: { nodes: { [upstream]: 1 } } }],
    }),
  });
  t.after(() => gw.close());
  assert.equal((await gw.request('/', { headers: { apikey: 's3cr3t' } })).status, 200);
  assert.equal(gw.upstream.requests.at(-1)!.headers['x-consumer-username'], 'ann');
  await assert.rejects(
    startTestGateway({ config: { secrets: [{ id: 'vault/v', uri: 'http://127.0.0.1:1', prefix: 'kv', token: 't' }], consumers: [{ username: 'bob', plugins: { 'key-auth': { key: '$secret://vault/v/field' } } }] } }),
    /consumers\[0\]\.plugins\.key-auth\.key: invalid reference: missing segments/,
  );
});
