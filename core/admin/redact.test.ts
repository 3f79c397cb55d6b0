// Redaction of plaintext secret fields in Admin API responses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MASK, redact, writeOnlyPaths } from './redact';
import vault from '../../providers/vault';
import keyAuth from '../../plugins/key-auth';

test('finds writeOnly fields through nested schemas and branches', () => {
  assert.deepEqual(writeOnlyPaths(keyAuth.consumerSchema), ['key']);
  assert.deepEqual(writeOnlyPaths(vault.schema).sort(), ['auth.secret_id', 'tls.key', 'token']);
});

test('masks plaintext secrets, keeps references as written, leaves other fields alone, never mutates its input', () => {
  const resource = { uri: 'http://127.0.0.1:8200', prefix: 'kv', token: 'hvs-literal', auth: { method: 'approle', role_id: 'r', secret_id: '$env://SECRET_ID' } };
  const out = redact(resource, writeOnlyPaths(vault.schema));
  assert.deepEqual(out, { uri: 'http://127.0.0.1:8200', prefix: 'kv', token: MASK, auth: { method: 'approle', role_id: 'r', secret_id: '$env://SECRET_ID' } });
  assert.equal(resource.token, 'hvs-literal');
  assert.deepEqual(redact({ key: 'literal-api-key' }, ['key']), { key: MASK });
  assert.deepEqual(redact({ key: '$secret://vault/gw/jack/auth-key' }, ['key']), { key: '$secret://vault/gw/jack/auth-key' });
});
