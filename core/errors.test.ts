// The coded error catalogue: each code's HTTP status comes from one table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, ErrorStatus, GatehouseError, statusOf } from './errors';

test('every code has a message and an HTTP status, and a coded error carries its status', () => {
  assert.deepEqual(Object.keys(ErrorStatus).sort(), Object.keys(ErrorCodes).sort());
  for (const status of Object.values(ErrorStatus)) assert.ok(status >= 400 && status <= 599, String(status));
  const readonly = new GatehouseError('GH_ERR_STORE_READONLY', 'config_store.readonly is set');
  assert.equal(readonly.statusCode, 403);
  assert.equal(readonly.message, 'the config store is read-only: config_store.readonly is set');
  assert.equal(statusOf(readonly), 403);
  assert.equal(statusOf(new GatehouseError('GH_ERR_STORE_UNAVAILABLE')), 503);
  assert.equal(statusOf(new GatehouseError('GH_ERR_STORE_CONFLICT')), 409);
  assert.equal(statusOf(new GatehouseError('GH_ERR_CONFIG_INVALID', '1 error', [{ path: 'routes[0]', message: 'x' }])), 400);
});

test('an error without a code is the server\'s fault: 500', () => {
  assert.equal(statusOf(new Error('boom')), 500);
  // a look-alike with a code property is not a coded error
  assert.equal(statusOf(Object.assign(new Error('x'), { code: 'GH_ERR_STORE_READONLY' })), 500);
  assert.equal(statusOf('not an error'), 500);
});
