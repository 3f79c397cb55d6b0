// Reference parsing: every valid form and a clear error for every malformed one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReference, looksLikeReference, ReferenceSyntaxError } from './reference';

test('parses $secret:// references into resource, path, field and version', () => {
  const r = parseReference('$secret://vault/gateway/jack/auth-key');
  assert.deepEqual({ m: r.manager, res: r.resource, p: r.path, f: r.field, v: r.version }, { m: 'vault', res: 'vault/gateway', p: 'jack', f: 'auth-key', v: undefined });
  const deep = parseReference('$secret://aws/prod/team/db/creds/password#3f2a-b');
  assert.deepEqual({ p: deep.path, f: deep.field, v: deep.version }, { p: 'team/db/creds', f: 'password', v: '3f2a-b' });
  assert.notEqual(parseReference('$secret://vault/g/a/b#1').key, parseReference('$secret://vault/g/a/b#2').key);
  assert.equal(parseReference('$secret://vault/g/a/b').key, parseReference('$secret://vault/g/a/b').key);
});

test('parses $env:// and $ENV:// references, with an optional JSON field', () => {
  const r = parseReference('$env://VAULT_TOKEN');
  assert.deepEqual({ m: r.manager, res: r.resource, p: r.path, f: r.field }, { m: 'env', res: 'env', p: 'VAULT_TOKEN', f: '' });
  assert.equal(parseReference('$ENV://VAULT_TOKEN').key, r.key);
  assert.equal(parseReference('$env://DB/password').field, 'password');
});

test('rejects every malformed form with a message saying what is wrong', () => {
  const cases: Array<[string, RegExp]> = [
    ['$secret://vault/gateway', /missing segments/],
    ['$secret://vault//jack/key', /segment 2 is empty/],
    ['$secret://vault/gateway/jack/', /segment 4 is empty/],
    ['$secret://Vault/gateway/jack/key', /not a valid secret manager name/],
    ['$secret://vault/gate way/jack/key', /not a valid secret resource id/],
    ['$secret://vault/g/jack/key#', /version/],
    ['$secret://vault/g/ja ck/key', /invalid characters/],
    ['$env://', /needs a variable name/],
    ['$env://1BAD', /not a valid environment variable name/],
    ['$env://NAME/', /field/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseReference(text), (e: Error) => e instanceof ReferenceSyntaxError && re.test(e.message), text);
});

test('only strings starting with a reference scheme are treated as references', () => {
  assert.equal(looksLikeReference('$secret://vault/g/a/b'), true);
  assert.equal(looksLikeReference('$env://X'), true);
  assert.equal(looksLikeReference('secret-key'), false);
  assert.equal(looksLikeReference('$other://x'), false);
  assert.equal(looksLikeReference('prefix $env://X'), false);
});
