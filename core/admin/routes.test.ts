// The Admin API's route table, looked up without HTTP: which action answers each method and path
// (segments after the prefix, decoded), and the refusal of everything no row takes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminRouter } from './routes';

const match = adminRouter();

/** "action kind {params}" or "status message" of one lookup. */
function answer(method: string, path: string): string {
  const m = match(method, path.split('/').filter((s) => s !== ''));
  if ('refusal' in m) return `${m.refusal.status} ${m.refusal.message}${m.refusal.readsBody ? ' (body first)' : ''}`;
  const r = m.route;
  return r.action === 'refuse' ? `${r.refusal!.status} ${r.refusal!.message}` : `${r.action} ${r.kind} ${JSON.stringify({ ...m.params })}`;
}

test('reads: lists, items, plugins and the OpenAPI description', () => {
  assert.equal(answer('GET', 'routes'), 'list routes {}');
  assert.equal(answer('GET', 'upstreams/u1'), 'get upstreams {"id":"u1"}');
  assert.equal(answer('GET', 'consumers/jack'), 'get consumers {"id":"jack"}');
  assert.equal(answer('GET', 'secrets/vault/prod'), 'get secrets {"manager":"vault","id":"prod"}');
  assert.equal(answer('GET', 'plugins'), 'plugins plugins {}');
  assert.equal(answer('GET', 'plugins/key-auth'), 'plugin plugins {"name":"key-auth"}');
  assert.equal(answer('GET', 'openapi.json'), 'openapi openapi.json {}');
});

test('writes: PUT, PATCH, DELETE of items and collections, sub-path PATCH, POST, refresh', () => {
  assert.equal(answer('PUT', 'routes/r1'), 'put routes {"id":"r1"}');
  assert.equal(answer('PUT', 'consumers'), 'put consumers {}');
  assert.equal(answer('DELETE', 'secrets/vault'), 'delete secrets {"manager":"vault"}');
  assert.equal(answer('PATCH', 'secrets/vault/prod'), 'patch secrets {"manager":"vault","id":"prod"}');
  assert.equal(answer('PATCH', 'routes/r1/plugins/mocking'), 'subpatch routes {"id":"r1","*":"plugins/mocking"}');
  assert.equal(answer('PATCH', 'secrets/vault/prod/token'), 'subpatch secrets {"manager":"vault","id":"prod","*":"token"}');
  assert.equal(answer('POST', 'routes'), 'post routes {}');
  assert.equal(answer('POST', 'upstreams'), 'post upstreams {}');
  assert.equal(answer('POST', 'secrets/vault/prod/refresh'), 'refresh secrets {"manager":"vault","id":"prod"}');
});

test('an id is one decoded segment: an escaped "/" stays inside it', () => {
  const m = match('GET', ['routes', 'a/b']);
  assert.ok('route' in m);
  assert.deepEqual({ ...m.params }, { id: 'a/b' });
  assert.deepEqual({ ...(match('PUT', ['consumers', '%20?#']) as { params: object }).params }, { id: '%20?#' });
});

test('refusals: unknown kinds, methods, POST to an id, segments after an id', () => {
  assert.equal(answer('GET', 'services'), '404 unknown resource "services"');
  assert.equal(answer('PUT', ''), '404 unknown resource ""');
  assert.equal(answer('GET', 'openapi.json/x'), '404 unknown resource "openapi.json"');
  assert.equal(answer('POST', 'openapi.json'), '405 method not allowed');
  assert.equal(answer('HEAD', 'routes'), '405 method not allowed');
  assert.equal(answer('PROPFIND', 'routes/r1'), '405 method not allowed');
  assert.equal(answer('PUT', 'plugins'), '405 method not allowed');
  assert.equal(answer('PATCH', 'plugins/key-auth'), '405 method not allowed');
  assert.equal(answer('POST', 'plugins'), '405 method not allowed');
  assert.equal(answer('GET', 'secrets/vault/prod/refresh'), '405 method not allowed');
  assert.equal(answer('PATCH', 'secrets/vault/prod/refresh'), '405 method not allowed');
  assert.equal(answer('POST', 'consumers'), '405 POST is not supported for consumers: use PUT');
  assert.equal(answer('POST', 'secrets'), '405 POST is not supported for secrets: use PUT');
  assert.equal(answer('POST', 'routes/r1'), '405 POST creates with a generated id: use PUT to write a given id');
  assert.equal(answer('GET', 'routes/r1/extra'), '404 not found');
  assert.equal(answer('GET', 'secrets/vault'), '404 not found');
  assert.equal(answer('GET', 'plugins/a/b'), '404 not found');
  assert.equal(answer('PUT', 'routes/r1/extra'), '404 not found (body first)');
  assert.equal(answer('DELETE', 'secrets/vault/prod/a/b'), '404 not found');
});
