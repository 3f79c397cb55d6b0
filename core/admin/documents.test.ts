// The Admin API's document operations on plain data documents: no HTTP, no gateway.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdminError, deleteResource, mergePatch, patchResource, postedId, putResource, subPatchResource, writeTarget, type DataDocument, type ResourceEdit } from './documents';
import type { DataKind } from '../contracts';
import { DocumentEdit, IndexedDocument } from '../control/positions';

const none = () => [];

/** The gateway's edit (control/positions.ts) of `d`, each write applied to `d` at once: the tests read `d`. */
function on(d: DataDocument): ResourceEdit {
  const read = () => new DocumentEdit(IndexedDocument.of(d));
  const write = (fn: (e: DocumentEdit) => void) => {
    const e = read();
    fn(e);
    Object.assign(d, IndexedDocument.of(d).apply(e.changes())!.doc);
  };
  return {
    get: (kind, id) => read().get(kind as DataKind, id),
    set: (kind, id, item) => write((e) => e.set(kind as DataKind, id, item)),
    remove: (kind, id) => write((e) => e.remove(kind as DataKind, id)),
    count: (kind) => read().count(kind as DataKind),
    list: (kind) => read().list(kind as DataKind),
  };
}
/** writeOnly paths as a consumer with key-auth has them. */
const keyAuth = (item: unknown) => ((item as { plugins?: Record<string, unknown> })?.plugins?.['key-auth'] ? ['plugins.key-auth.key'] : []);

function doc(): DataDocument {
  return {
    routes: [
      { id: 'r1', uri: '/r1', upstream_id: 'u1' },
      { id: 'r2', uris: ['/r2'], plugins: { mocking: { response_example: 'x' } } },
      { id: 'r3', uri: '/r3', plugins: { 'basic-auth': { password: '$secret://vault/s1/p/pw' } } },
    ],
    upstreams: [
      { id: 'u1', nodes: { 'a:1': 1 } },
      { id: 'u2', nodes: { 'b:1': 1 } },
    ],
    consumers: [
      { username: 'c1', plugins: { 'key-auth': { key: 'stored-key' } } },
      { username: 'c2', plugins: { 'key-auth': { key: '$secret://vault/s1/c2/key' } } },
    ],
    secrets: [
      { id: 'vault/s1', uri: 'http://v', token: 'stored-token' },
      { id: 'vault/s2', uri: 'http://v', token: '$secret://vault/s1/t/token' },
      { id: 'vault/s3', uri: 'http://v', token: 't3' },
    ],
  };
}

/** The refusal `fn` throws: [status, message]. */
function refusal(fn: () => unknown): [number, string] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AdminError, String(err));
    return [err.status, err.message];
  }
  assert.fail('not refused');
}

// ---------------------------------------------------------------------------------------------
// ids

test('writeTarget: the path names the resource; a body naming another is refused', () => {
  assert.equal(writeTarget('routes', 'PUT', 'r1', { uri: '/x' }), 'r1');
  assert.equal(writeTarget('routes', 'PUT', 'r1', { id: 'r1' }), 'r1');
  assert.equal(writeTarget('upstreams', 'PATCH', '7', { id: 7 }), '7', 'a numeric id equal to the path is the same id');
  assert.equal(writeTarget('secrets', 'DELETE', 'vault/s1', undefined), 'vault/s1');
  assert.deepEqual(refusal(() => writeTarget('routes', 'PUT', 'r1', { id: 'other' })), [400, 'id "other" in the body does not match "r1" in the path']);
  assert.deepEqual(refusal(() => writeTarget('consumers', 'PATCH', 'c1', { username: 'c9' })), [400, 'username "c9" in the body does not match "c1" in the path']);
});

test('writeTarget: PUT /consumers takes the username from the body; other writes without an id are refused', () => {
  assert.equal(writeTarget('consumers', 'PUT', undefined, { username: 'jack' }), 'jack');
  assert.deepEqual(refusal(() => writeTarget('consumers', 'PUT', undefined, {})), [400, 'the username is missing from the body']);
  assert.deepEqual(refusal(() => writeTarget('consumers', 'PUT', undefined, { username: 7 })), [400, 'the username is missing from the body']);
  assert.deepEqual(refusal(() => writeTarget('consumers', 'DELETE', undefined, undefined)), [400, 'the username is missing from the path']);
  assert.deepEqual(refusal(() => writeTarget('routes', 'PUT', undefined, { id: 'r1' })), [400, 'the id is missing from the path']);
  assert.deepEqual(refusal(() => writeTarget('secrets', 'PATCH', undefined, {})), [400, 'the id is missing from the path']);
});

test('postedId: time-ordered and unique; a body naming an id is refused', () => {
  assert.equal(postedId({}, 36 ** 8, Buffer.from([0, 1, 0xab, 0xff])), '1000000000001abff');
  const a = postedId({ uri: '/x' });
  const b = postedId({ uri: '/x' });
  assert.match(a, /^[0-9a-z]+[0-9a-f]{8}$/);
  assert.notEqual(a, b);
  assert.deepEqual(refusal(() => postedId({ id: 'mine' })), [400, 'POST generates the id: remove "id" from the body, or PUT to the id']);
});

// ---------------------------------------------------------------------------------------------
// PUT

test('putResource: creates when absent (at the end of the list), replaces the whole resource when present', () => {
  const d = doc();
  assert.deepEqual(putResource(on(d), 'routes', 'r9', { uri: '/r9' }, { writeOnly: none }), { created: true });
  assert.deepEqual(d.routes.at(-1), { uri: '/r9', id: 'r9' });
  assert.deepEqual(putResource(on(d), 'routes', 'r2', { uri: '/new' }, { writeOnly: none }), { created: false });
  assert.deepEqual(d.routes[1], { uri: '/new', id: 'r2' }, 'nothing of the stored route is kept');
  assert.equal(d.routes.length, 4);
});

test('putResource: the id field is set from the path; a route keeps a numeric id as given; the body is not shared', () => {
  const d = doc();
  const body: Record<string, unknown> = { plugins: {} };
  putResource(on(d), 'consumers', 'c3', body, { writeOnly: none });
  assert.deepEqual(d.consumers.at(-1), { plugins: {}, username: 'c3' });
  assert.deepEqual(body, { plugins: {} }, 'the body is copied, not stored');
  putResource(on(d), 'routes', '5', { id: 5, uri: '/5' }, { writeOnly: none });
  assert.equal((d.routes.at(-1) as { id: unknown }).id, 5);
  putResource(on(d), 'secrets', 'vault/s9', { id: 'vault/s9', uri: 'http://v', token: 't' }, { writeOnly: none });
  assert.equal((d.secrets.at(-1) as { id: unknown }).id, 'vault/s9');
});

test('putResource: "******" keeps the stored secret; with nothing stored it is refused', () => {
  const d = doc();
  putResource(on(d), 'consumers', 'c1', { desc: 'd', plugins: { 'key-auth': { key: '******' } } }, { writeOnly: keyAuth });
  assert.deepEqual(d.consumers[0], { desc: 'd', plugins: { 'key-auth': { key: 'stored-key' } }, username: 'c1' });
  assert.deepEqual(refusal(() => putResource(on(d), 'consumers', 'c9', { plugins: { 'key-auth': { key: '******' } } }, { writeOnly: keyAuth })), [400, 'consumers/c9.plugins.key-auth.key is "******" but no value is stored to keep']);
  putResource(on(d), 'consumers', 'c2', { plugins: { 'key-auth': { key: '******' } } }, { writeOnly: keyAuth });
  assert.deepEqual(d.consumers[1], { plugins: { 'key-auth': { key: '$secret://vault/s1/c2/key' } }, username: 'c2' }, 'a stored reference is kept as well');
});

test('putResource: admin.limits refuses a create past the limit, never a replace', () => {
  const d = doc();
  assert.deepEqual(refusal(() => putResource(on(d), 'upstreams', 'u3', { nodes: {} }, { writeOnly: none, limit: 2 })), [
    400,
    'the upstreams limit is reached (admin.limits.upstreams: 2, stored: 2): delete upstreams, or raise admin.limits.upstreams in the config file',
  ]);
  assert.equal(d.upstreams.length, 2, 'nothing added');
  assert.deepEqual(putResource(on(d), 'upstreams', 'u2', { nodes: { 'c:1': 1 } }, { writeOnly: none, limit: 2 }), { created: false });
  assert.deepEqual(putResource(on(d), 'upstreams', 'u3', { nodes: {} }, { writeOnly: none, limit: 3 }), { created: true });
});

// ---------------------------------------------------------------------------------------------
// PATCH

test('mergePatch: RFC 7386 (objects merge, null deletes, anything else replaces)', () => {
  assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { b: { c: null, e: 4 }, f: [1] }), { a: 1, b: { d: 3, e: 4 }, f: [1] });
  assert.deepEqual(mergePatch({ a: [1, 2] }, { a: [3] }), { a: [3] }, 'arrays are replaced');
  assert.deepEqual(mergePatch('text', { a: { b: null } }), { a: {} }, 'a non-object target becomes an object');
  assert.equal(mergePatch({ a: 1 }, 'x'), 'x');
});

test('patchResource: merges into the stored resource, which stays at its place', () => {
  const d = doc();
  patchResource(on(d), 'upstreams', 'u1', { nodes: { 'a:1': null, 'b:2': 2 }, desc: 'd' }, none);
  assert.deepEqual(d.upstreams[0], { id: 'u1', nodes: { 'b:2': 2 }, desc: 'd' });
  patchResource(on(d), 'secrets', 'vault/s3', { token: null, timeout: 3 }, none);
  assert.deepEqual(d.secrets[2], { id: 'vault/s3', uri: 'http://v', timeout: 3 });
});

test('patchResource: setting one spelling of a setting drops the other (uri and uris, host and hosts)', () => {
  const d = doc();
  patchResource(on(d), 'routes', 'r2', { uri: '/two' }, none);
  assert.deepEqual(d.routes[1], { id: 'r2', plugins: { mocking: { response_example: 'x' } }, uri: '/two' });
  patchResource(on(d), 'routes', 'r1', { uris: ['/a', '/b'], hosts: ['h'] }, none);
  assert.deepEqual(d.routes[0], { id: 'r1', upstream_id: 'u1', uris: ['/a', '/b'], hosts: ['h'] });
  patchResource(on(d), 'routes', 'r1', { uri: null }, none);
  assert.deepEqual((d.routes[0] as { uris: unknown }).uris, ['/a', '/b'], 'null for one spelling leaves the other');
});

test('patchResource: a missing resource is 404; "******" keeps the stored secret or is refused', () => {
  const d = doc();
  assert.deepEqual(refusal(() => patchResource(on(d), 'routes', 'nope', { desc: 'x' }, none)), [404, 'routes/nope not found']);
  assert.deepEqual(refusal(() => patchResource(on(d), 'secrets', 'vault/nope', {}, none)), [404, 'secrets/vault/nope not found']);
  patchResource(on(d), 'consumers', 'c1', { desc: 'x', plugins: { 'key-auth': { key: '******' } } }, keyAuth);
  assert.deepEqual(d.consumers[0], { username: 'c1', plugins: { 'key-auth': { key: 'stored-key' } }, desc: 'x' });
  patchResource(on(d), 'secrets', 'vault/s1', { token: '******', desc: 'x' }, () => ['token']);
  assert.deepEqual(d.secrets[0], { id: 'vault/s1', uri: 'http://v', token: 'stored-token', desc: 'x' });
  const before = structuredClone(d);
  assert.deepEqual(refusal(() => patchResource(on(d), 'secrets', 'vault/s3', { auth: { secret_id: '******' } }, () => ['auth.secret_id'])), [400, 'secrets/vault/s3.auth.secret_id is "******" but no value is stored to keep']);
  assert.deepEqual(d, before, 'a refused patch leaves the document as it was');
});

// ---------------------------------------------------------------------------------------------
// sub-path PATCH

test('subPatchResource: replaces one attribute, creating objects on the way; null deletes it', () => {
  const d = doc();
  subPatchResource(on(d), 'routes', 'r2', ['plugins', 'mocking', 'response_status'], 202, none);
  assert.deepEqual((d.routes[1] as any).plugins.mocking, { response_example: 'x', response_status: 202 });
  subPatchResource(on(d), 'routes', 'r2', ['labels', 'team', 'name'], 'edge', none);
  assert.deepEqual((d.routes[1] as any).labels, { team: { name: 'edge' } });
  subPatchResource(on(d), 'routes', 'r2', ['plugins', 'mocking'], null, none);
  assert.deepEqual((d.routes[1] as any).plugins, {});
  subPatchResource(on(d), 'routes', 'r2', ['nothing', 'here'], null, none);
  assert.equal('nothing' in (d.routes[1] as object), false, 'deleting under a missing object creates nothing');
});

test('subPatchResource: a top-level alias drops its other spelling; "constructor" is a plain key', () => {
  const d = doc();
  subPatchResource(on(d), 'routes', 'r2', ['uri'], '/two', none);
  assert.deepEqual(d.routes[1], { id: 'r2', plugins: { mocking: { response_example: 'x' } }, uri: '/two' });
  subPatchResource(on(d), 'routes', 'r2', ['labels', 'constructor'], 'c', none);
  assert.deepEqual(Object.entries((d.routes[1] as any).labels), [['constructor', 'c']]);
  assert.equal(({} as any).constructor, Object, 'Object.prototype untouched');
});

test('subPatchResource: "******" anywhere in the new value keeps the stored secret', () => {
  const d = doc();
  subPatchResource(on(d), 'consumers', 'c1', ['plugins'], { 'key-auth': { key: '******' }, other: {} }, keyAuth);
  assert.deepEqual(d.consumers[0], { username: 'c1', plugins: { 'key-auth': { key: 'stored-key' }, other: {} } });
});

test('subPatchResource: refuses a missing resource, empty or __proto__ segments, the id field and crossing a non-object', () => {
  const d = doc();
  const before = structuredClone(d);
  assert.deepEqual(refusal(() => subPatchResource(on(d), 'routes', 'nope', ['desc'], 'x', none)), [404, 'routes/nope not found']);
  assert.deepEqual(refusal(() => subPatchResource(on(d), 'routes', 'r1', ['plugins', '', 'x'], 1, none)), [400, 'the sub-path "plugins//x" has an empty segment']);
  assert.deepEqual(refusal(() => subPatchResource(on(d), 'routes', 'r1', ['labels', '__proto__'], {}, none)), [400, 'the sub-path segment "__proto__" is not allowed']);
  assert.deepEqual(refusal(() => subPatchResource(on(d), 'consumers', 'c1', ['username'], 'c9', none)), [400, 'the username cannot be changed through a sub-path: PUT the resource to its new username']);
  assert.deepEqual(refusal(() => subPatchResource(on(d), 'routes', 'r1', ['uri', 'x'], 1, none)), [400, 'invalid sub-path "uri/x": "uri" is a string, not an object']);
  assert.deepEqual(refusal(() => subPatchResource(on(d), 'routes', 'r2', ['uris', '0', 'x'], 1, none)), [400, 'invalid sub-path "uris/0/x": "uris" is an array, not an object']);
  assert.deepEqual(d, before);
});

// ---------------------------------------------------------------------------------------------
// DELETE

test('deleteResource: removes the resource; a missing one is 404', () => {
  const d = doc();
  deleteResource(on(d), 'routes', 'r2');
  assert.deepEqual(d.routes.map((r: any) => r.id), ['r1', 'r3']);
  deleteResource(on(d), 'consumers', 'c1');
  assert.deepEqual(d.consumers.map((c: any) => c.username), ['c2']);
  assert.deepEqual(refusal(() => deleteResource(on(d), 'routes', 'r2')), [404, 'routes/r2 not found']);
  assert.deepEqual(refusal(() => deleteResource(on(d), 'secrets', 'vault/nope')), [404, 'secrets/vault/nope not found']);
});

test('deleteResource: an upstream a route uses is refused, naming the routes', () => {
  const d = doc();
  d.routes.push({ id: 'r4', uri: '/r4', upstream_id: 'u1' });
  assert.deepEqual(refusal(() => deleteResource(on(d), 'upstreams', 'u1')), [400, 'upstream "u1" is still used by routes: r1, r4']);
  assert.equal(d.upstreams.length, 2);
  deleteResource(on(d), 'upstreams', 'u2');
  assert.deepEqual(d.upstreams.map((u: any) => u.id), ['u1']);
});

test('deleteResource: a secret resource still referenced is refused, naming every route, consumer and secret resource', () => {
  const d = doc();
  assert.deepEqual(refusal(() => deleteResource(on(d), 'secrets', 'vault/s1')), [400, 'secret resource "vault/s1" is still referenced by route r3, consumer c2, secret vault/s2']);
  assert.equal(d.secrets.length, 3);
  deleteResource(on(d), 'secrets', 'vault/s2');
  deleteResource(on(d), 'secrets', 'vault/s3');
  assert.deepEqual(d.secrets.map((s: any) => s.id), ['vault/s1']);
});
