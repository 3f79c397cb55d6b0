// Admin API access rules: CIDR allow-lists and the constant-time admin key check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateAdminKey, keyChecker } from './access';
import { allowList } from '../config/allow-list';

test('the default loopback allow-list admits 127.0.0.0/8 only, including IPv4-mapped IPv6 clients', () => {
  const allowed = allowList(['127.0.0.0/8']);
  assert.equal(allowed('127.0.0.1'), true);
  assert.equal(allowed('127.200.3.4'), true);
  assert.equal(allowed('::ffff:127.0.0.1'), true);
  assert.equal(allowed('10.0.0.1'), false);
  assert.equal(allowed('::1'), false);
  assert.equal(allowed('not-an-address'), false);
});

test('allow-lists take single addresses, IPv6 ranges and several entries', () => {
  const allowed = allowList(['10.1.2.3', '::1', 'fd00::/8', '192.168.0.0/16']);
  assert.equal(allowed('10.1.2.3'), true);
  assert.equal(allowed('10.1.2.4'), false);
  assert.equal(allowed('::1'), true);
  assert.equal(allowed('fd12:3456::1'), true);
  assert.equal(allowed('fe80::1'), false);
  assert.equal(allowed('192.168.44.1'), true);
});

test('a malformed allow entry is refused with its text', () => {
  assert.throws(() => allowList(['127.0.0.0/33']), /"127\.0\.0\.0\/33" has an invalid prefix length/);
  assert.throws(() => allowList(['localhost']), /"localhost" is not an IP address or CIDR range/);
  assert.throws(() => allowList(['10.0.0.0/']), /invalid prefix length/);
});

test('the admin key matches exactly, whatever the presented length, and never an absent or empty key', () => {
  const check = keyChecker('s3cret-admin-key');
  assert.equal(check('s3cret-admin-key'), true);
  assert.equal(check('s3cret-admin-ke'), false);
  assert.equal(check('s3cret-admin-key '), false);
  assert.equal(check('x'.repeat(10_000)), false);
  assert.equal(check(''), false);
  assert.equal(check(undefined), false);
  assert.equal(check(['s3cret-admin-key']), false, 'a repeated header is not a key');
});

test('generated admin keys are long and random', () => {
  const a = generateAdminKey();
  const b = generateAdminKey();
  assert.notEqual(a, b);
  assert.match(a, /^[A-Za-z0-9_-]{32}$/);
});
