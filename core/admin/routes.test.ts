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

/** Method, path after the prefix, and what answers it. */
const TABLE = `
GET /routes -> list routes {}
GET /upstreams/u1 -> get upstreams {"id":"u1"}
GET /consumers/jack -> get consumers {"id":"jack"}
GET /secrets/vault/prod -> get secrets {"manager":"vault","id":"prod"}
GET /plugins -> plugins plugins {}
GET /plugins/key-auth -> plugin plugins {"name":"key-auth"}
GET /openapi.json -> openapi openapi.json {}
PUT /routes/r1 -> put routes {"id":"r1"}
PUT /consumers -> put consumers {}
DELETE /secrets/vault -> delete secrets {"manager":"vault"}
PATCH /secrets/vault/prod -> patch secrets {"manager":"vault","id":"prod"}
PATCH /routes/r1/plugins/mocking -> subpatch routes {"id":"r1","*":"plugins/mocking"}
PATCH /secrets/vault/prod/token -> subpatch secrets {"manager":"vault","id":"prod","*":"token"}
POST /routes -> post routes {}
POST /upstreams -> post upstreams {}
POST /secrets/vault/prod/refresh -> refresh secrets {"manager":"vault","id":"prod"}
GET /services -> 404 unknown resource "services"
PUT / -> 404 unknown resource ""
GET /openapi.json/x -> 404 unknown resource "openapi.json"
POST /openapi.json -> 405 method not allowed
HEAD /routes -> 405 method not allowed
PROPFIND /routes/r1 -> 405 method not allowed
PUT /plugins -> 405 method not allowed
PATCH /plugins/key-auth -> 405 method not allowed
POST /plugins -> 405 method not allowed
GET /secrets/vault/prod/refresh -> 405 method not allowed
PATCH /secrets/vault/prod/refresh -> 405 method not allowed
POST /consumers -> 405 POST is not supported for consumers: use PUT
POST /secrets -> 405 POST is not supported for secrets: use PUT
POST /routes/r1 -> 405 POST creates with a generated id: use PUT to write a given id
GET /routes/r1/extra -> 404 not found
GET /secrets/vault -> 404 not found
GET /plugins/a/b -> 404 not found
PUT /routes/r1/extra -> 404 not found (body first)
DELETE /secrets/vault/prod/a/b -> 404 not found
`;

test('each method x path reaches its action and parameters, or its refusal', () => {
  for (const line of TABLE.trim().split('\n')) {
    const [, method, path, want] = /^(\S+) (\S*) -> (.*)$/.exec(line)!;
    assert.equal(answer(method, path), want, `${method} ${path}`);
  }
});

test('an id is one decoded segment: an escaped "/" stays inside it', () => {
  const m = match('GET', ['routes', 'a/b']);
  assert.ok('route' in m);
  assert.deepEqual({ ...m.params }, { id: 'a/b' });
  assert.deepEqual({ ...(match('PUT', ['consumers', '%20?#']) as { params: object }).params }, { id: '%20?#' });
});
