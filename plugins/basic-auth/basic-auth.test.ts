// basic-auth through a real gateway and a real upstream: every 401, consumer identity upstream,
// hidden credentials, the anonymous consumer, duplicate usernames, passwords read from the test
// Vault through node-vault, a rotation in Vault with its grace, redaction and a leak scan.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import NodeVault from 'node-vault';
import { request } from 'undici';
import type { Clock } from 'gatehouse-gateway/sdk';
import { bootTestGateway, delay, startUpstream, type GatewayUnderTest, type Upstream } from 'gatehouse-gateway/testing';
import { startVaultServer, type VaultServer } from '../../test/servers/vault';
import plugin from './index';

// every plaintext secret of this file contains MARK; the last test scans what the gateways said
const MARK = `planted${randomBytes(5).toString('hex')}`;
const VAULT_TOKEN = `hvs.${MARK}-vault-token`;
const JACK_V1 = `${MARK}-jack-pw-1`;
const JACK_V2 = `${MARK}-jack-pw-2`;
const JILL_PW = `${MARK}:jill:pw`; // colons are allowed in a password
const ADMIN_KEY = `${MARK}-admin-key`;

/** A wall clock the test can move forward (rotation grace ends without waiting for it). */
class ShiftedClock implements Clock {
  offset = 0;
  now(): number {
    return Date.now() + this.offset;
  }
}

let up: Upstream;
let vault: VaultServer;
let vaultClient: NodeVault.client;
const gateways: GatewayUnderTest[] = [];

before(async () => {
  up = await startUpstream();
  vault = await startVaultServer({ rootToken: VAULT_TOKEN });
  vaultClient = NodeVault({ endpoint: vault.url, token: VAULT_TOKEN, requestOptions: { timeout: 5000 } });
  await vaultClient.mount({ mount_point: 'gw', type: 'kv', options: { version: '1' } });
  await vaultClient.write('gw/jack', { password: JACK_V1 });
  process.env.GH_BA_VAULT_TOKEN = VAULT_TOKEN;
  process.env.GH_BA_JILL_PW = JILL_PW;
});
after(async () => {
  for (const g of gateways) await g.close();
  await up?.close();
  await vault?.close();
});

async function boot(config: Record<string, unknown>, opts: Parameters<typeof bootTestGateway>[1] = {}): Promise<GatewayUnderTest> {
  const g = await bootTestGateway(config, opts);
  gateways.push(g);
  return g;
}

const vaultSecret = () => ({ id: 'vault/gw', uri: vault.url, prefix: 'gw', token: '$env://GH_BA_VAULT_TOKEN', kv_version: 1 });
const route = (conf: Record<string, unknown> = {}) => ({ id: 'ip', uri: '/ip', plugins: { 'basic-auth': conf }, upstream: { nodes: { [up.node]: 1 } } });
const consumer = (username: string, user: string, password: string) => ({ username, plugins: { 'basic-auth': { username: user, password } } });
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;

async function call(g: GatewayUnderTest, path: string, headers: Record<string, string> = {}) {
  const r = await request(`${g.url}${path}`, { headers });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text, echo: r.statusCode === 200 ? (JSON.parse(text) as { url: string; headers: Record<string, string> }) : undefined };
}

/** A gateway with jack (literal password) and jill (password in $env). */
const literalConsumers = () => [consumer('jack', 'jack', 'jack-pw'), consumer('jill', 'jill-user', '$env://GH_BA_JILL_PW')];

test('no Authorization header: 401 {"message":"Missing authorization in request"} with WWW-Authenticate: Basic realm="basic"', async () => {
  const g = await boot({ routes: [route()], consumers: literalConsumers() });
  const before = up.seen.length;
  const sends: Array<Record<string, string>> = [{}, { authorization: '' }];
  for (const headers of sends) {
    const r = await call(g, '/ip', headers);
    assert.equal(r.status, 401);
    assert.equal(r.text, '{"message":"Missing authorization in request"}');
    assert.equal(r.headers['www-authenticate'], 'Basic realm="basic"');
    assert.equal(r.headers['content-type'], 'application/json');
  }
  assert.equal(up.seen.length, before, 'nothing reached the upstream');
});

test('a malformed Authorization header: 401 {"message":"Invalid authorization in request"}', async () => {
  const g = await boot({ routes: [route()], consumers: literalConsumers() });
  const before = up.seen.length;
  const malformed = [
    'Bearer abc.def.ghi', // another scheme
    'Basic', // no credentials
    'Basic !!not-base64!!',
    `Basic ${Buffer.from('jack-without-colon').toString('base64')}`, // no user:password separator
    basic('jack', 'jack-pw').replace('Basic ', 'Basic x y '), // more than one token
  ];
  for (const authorization of malformed) {
    const r = await call(g, '/ip', { authorization });
    assert.equal(r.status, 401, authorization);
    assert.equal(r.text, '{"message":"Invalid authorization in request"}', authorization);
    assert.equal(r.headers['www-authenticate'], 'Basic realm="basic"');
  }
  assert.equal(up.seen.length, before, 'nothing reached the upstream');
});

test('a wrong password and an unknown username get the same 401 {"message":"Invalid user authorization"}', async () => {
  const g = await boot({ routes: [route()], consumers: literalConsumers() });
  const before = up.seen.length;
  const denied = [
    basic('jack', 'wrong'), // wrong password
    basic('jack', ''), // empty password
    basic('jack', 'jack-pw '), // not trimmed: one more character is another password
    basic('nobody', 'jack-pw'), // unknown username, a real password
    basic('jill', JILL_PW), // the consumer's name is not its basic-auth username
    basic('jack', JILL_PW), // another consumer's password
    basic('jill-user', '$env://GH_BA_JILL_PW'), // the reference text is never a password
  ];
  for (const authorization of denied) {
    const r = await call(g, '/ip', { authorization });
    assert.equal(r.status, 401, authorization);
    assert.equal(r.text, '{"message":"Invalid user authorization"}');
    assert.equal(r.headers['www-authenticate'], 'Basic realm="basic"');
  }
  assert.equal(up.seen.length, before, 'nothing reached the upstream');
});

test('valid credentials pass: the upstream receives X-Consumer-Username (a client-sent one is dropped) and the Authorization header', async () => {
  const g = await boot({ routes: [route()], consumers: literalConsumers() });
  const r = await call(g, '/ip', { authorization: basic('jack', 'jack-pw'), 'x-consumer-username': 'admin' });
  assert.equal(r.status, 200);
  assert.equal(r.echo!.headers['x-consumer-username'], 'jack');
  assert.equal(r.echo!.headers.authorization, basic('jack', 'jack-pw'), 'kept without hide_credentials');
  // a password resolved from $env, containing colons; the scheme is case-insensitive
  const j = await call(g, '/ip', { authorization: basic('jill-user', JILL_PW).replace('Basic', 'basic') });
  assert.equal(j.status, 200);
  assert.equal(j.echo!.headers['x-consumer-username'], 'jill');
  const line = g.logs.lines.filter((l) => l.type === 'access').at(-1);
  assert.equal(line?.consumer, 'jill', 'the access log names the consumer');
});

test('hide_credentials removes the Authorization header before proxying', async () => {
  const g = await boot({ routes: [route({ hide_credentials: true })], consumers: literalConsumers() });
  const r = await call(g, '/ip?a=1', { authorization: basic('jack', 'jack-pw'), 'x-other': 'kept' });
  assert.equal(r.status, 200);
  assert.equal(r.echo!.headers.authorization, undefined);
  assert.equal(r.echo!.headers['x-other'], 'kept');
  assert.equal(r.echo!.headers['x-consumer-username'], 'jack');
  assert.equal(r.echo!.url, '/ip?a=1');
});

test('anonymous_consumer is used when no credentials are sent; malformed or wrong ones are still rejected', async () => {
  const g = await boot({ routes: [route({ anonymous_consumer: 'guest' })], consumers: [...literalConsumers(), { username: 'guest' }] });
  const r = await call(g, '/ip');
  assert.equal(r.status, 200);
  assert.equal(r.echo!.headers['x-consumer-username'], 'guest');
  assert.equal((await call(g, '/ip', { authorization: basic('jack', 'bad') })).text, '{"message":"Invalid user authorization"}');
  assert.equal((await call(g, '/ip', { authorization: 'Basic' })).text, '{"message":"Invalid authorization in request"}');
  assert.equal((await call(g, '/ip', { authorization: basic('jack', 'jack-pw') })).echo!.headers['x-consumer-username'], 'jack');
  await assert.rejects(boot({ routes: [route({ anonymous_consumer: 'nobody' })], consumers: literalConsumers() }), /routes\[0\]\.plugins\.basic-auth: anonymous_consumer "nobody" is not a consumer/);
});

test('two consumers with the same written username are a config error naming both; with a username from a reference, both fail closed; the schema refuses a colon in a username', async () => {
  await assert.rejects(boot({ routes: [route()], consumers: [consumer('jack', 'shared', 'pw-1'), consumer('jill', 'shared', 'pw-2')] }), (err: Error & { issues?: Array<{ path: string; message: string }> }) => {
    assert.deepEqual(err.issues, [{ path: 'consumers[1].plugins.basic-auth.username', message: 'consumers "jack" and "jill" have the same basic-auth username; each username must identify one consumer' }]);
    return true;
  });
  // a refused config would tell its writer that the referenced value equals another username
  process.env.GH_BA_DUP_USER = 'shared';
  const g = await boot({ routes: [route()], consumers: [consumer('jack', 'shared', 'pw-1'), consumer('jill', '$env://GH_BA_DUP_USER', 'pw-2'), consumer('joe', 'joe', 'pw-3')] });
  assert.equal((await call(g, '/ip', { authorization: basic('shared', 'pw-1') })).status, 401);
  assert.equal((await call(g, '/ip', { authorization: basic('shared', 'pw-2') })).status, 401);
  assert.equal((await call(g, '/ip', { authorization: basic('joe', 'pw-3') })).status, 200);
  const lines = g.logs.lines.filter((l) => l.plugin === 'basic-auth' && l.msg === 'fails closed: the consumer cannot authenticate with this plugin');
  assert.deepEqual(lines.map((l) => [l.consumer, l.references]), [['jack', []], ['jill', ['$env://GH_BA_DUP_USER']]]);
  await assert.rejects(boot({ routes: [route()], consumers: [consumer('jack', 'ja:ck', 'pw-1')] }), (err: Error & { issues?: Array<{ path: string; message: string }> }) => {
    assert.deepEqual(err.issues, [{ path: 'consumers[0].plugins.basic-auth.username', message: 'has an invalid format (must match ^[^:]+$)' }]);
    return true;
  });
  await assert.rejects(boot({ routes: [route()], consumers: [{ username: 'jack', plugins: { 'basic-auth': { username: 'jack' } } }] }), (err: Error & { issues?: Array<{ path: string; message: string }> }) => {
    assert.deepEqual(err.issues, [{ path: 'consumers[0].plugins.basic-auth.password', message: 'is required' }]);
    return true;
  });
});

test('a password read from Vault (KV v1, written with node-vault) authenticates; a consumer whose password cannot be resolved cannot, and others still can', async () => {
  delete process.env.GH_BA_UNSET;
  const g = await boot({
    secrets: [vaultSecret()],
    routes: [route()],
    consumers: [consumer('jack', 'jack', '$secret://vault/gw/jack/password'), consumer('broken', 'broken', '$env://GH_BA_UNSET'), consumer('jill', 'jill-user', 'jill-pw')],
  });
  const r = await call(g, '/ip', { authorization: basic('jack', JACK_V1) });
  assert.equal(r.status, 200);
  assert.equal(r.echo!.headers['x-consumer-username'], 'jack');
  assert.equal((await call(g, '/ip', { authorization: basic('jack', '$secret://vault/gw/jack/password') })).status, 401, 'the reference text is never a password');
  assert.equal((await call(g, '/ip', { authorization: basic('broken', '$env://GH_BA_UNSET') })).status, 401);
  assert.equal((await call(g, '/ip', { authorization: basic('broken', '') })).status, 401, 'an unresolved password is never an empty one');
  assert.equal((await call(g, '/ip', { authorization: basic('jill-user', 'jill-pw') })).status, 200);
  const lines = g.logs.lines.filter((l) => l.consumer === 'broken' && l.reference === '$env://GH_BA_UNSET');
  assert.equal(lines.length, 1, 'one line names the consumer and the reference');
  assert.equal(lines[0].plugin, 'basic-auth');
});

test('rotation in Vault: the new password works at once, the previous one during rotation_grace, then is refused', async () => {
  const clock = new ShiftedClock();
  await vaultClient.write('gw/jack', { password: JACK_V1 });
  const g = await boot(
    { secret_cache: { rotation_grace: 60 }, secrets: [vaultSecret()], routes: [route()], consumers: [consumer('jack', 'jack', '$secret://vault/gw/jack/password')] },
    { clock },
  );
  assert.equal((await call(g, '/ip', { authorization: basic('jack', JACK_V1) })).status, 200);
  await vaultClient.write('gw/jack', { password: JACK_V2 });
  await g.gateway.builder.resolver.refreshResource('vault/gw');
  let status = 0;
  for (let i = 0; i < 100 && status !== 200; i++) {
    await delay(10);
    status = (await call(g, '/ip', { authorization: basic('jack', JACK_V2) })).status;
  }
  assert.equal(status, 200, 'the new password is accepted without a restart');
  clock.offset = 59_000;
  const old = await call(g, '/ip', { authorization: basic('jack', JACK_V1) });
  assert.equal(old.status, 200, 'the previous password works during the grace');
  assert.equal(old.echo!.headers['x-consumer-username'], 'jack');
  clock.offset = 61_000;
  const late = await call(g, '/ip', { authorization: basic('jack', JACK_V1) });
  assert.equal(late.status, 401, 'the previous password is refused once the grace ends');
  assert.equal(late.text, '{"message":"Invalid user authorization"}');
  assert.equal((await call(g, '/ip', { authorization: basic('jack', JACK_V2) })).status, 200);
});

test('a username rotated out of one consumer never identifies the consumer that now has it, and the rotated-out ones keep their grace', async () => {
  const clock = new ShiftedClock();
  await vaultClient.write('gw/swap', { jack: 'user-a', jill: 'user-b' });
  const g = await boot(
    {
      secret_cache: { rotation_grace: 60 },
      secrets: [vaultSecret()],
      routes: [route()],
      consumers: [consumer('jack', '$secret://vault/gw/swap/jack', 'jack-pw'), consumer('jill', '$secret://vault/gw/swap/jill', 'jill-pw')],
    },
    { clock },
  );
  const as = async (authorization: string) => {
    const r = await call(g, '/ip', { authorization });
    return r.status === 200 ? r.echo!.headers['x-consumer-username'] : r.text;
  };
  assert.equal(await as(basic('user-a', 'jack-pw')), 'jack');
  assert.equal(await as(basic('user-b', 'jill-pw')), 'jill');
  // jill takes jack's username, jack gets a new one
  await vaultClient.write('gw/swap', { jack: 'user-c', jill: 'user-a' });
  await g.gateway.builder.resolver.refreshResource('vault/gw');
  let now: string | undefined;
  for (let i = 0; i < 100 && now !== 'jill'; i++) {
    await delay(10);
    now = await as(basic('user-a', 'jill-pw'));
  }
  assert.equal(now, 'jill', 'jill is found by her new username');
  assert.equal(await as(basic('user-c', 'jack-pw')), 'jack');
  assert.equal(await as(basic('user-a', 'jack-pw')), '{"message":"Invalid user authorization"}', "jack's old username is jill's now: jack's password does not open it");
  assert.equal(await as(basic('user-b', 'jill-pw')), 'jill', "jill's old username during the grace");
  clock.offset = 61_000;
  assert.equal(await as(basic('user-b', 'jill-pw')), '{"message":"Invalid user authorization"}', "jill's old username after the grace");
  assert.equal(await as(basic('user-a', 'jill-pw')), 'jill');
});

test('the Admin API masks a literal password and shows a reference as written; the schema marks password writeOnly', async () => {
  assert.equal((plugin.consumerSchema as any).properties.password.writeOnly, true);
  process.env.GH_BA_ADMIN_KEY = ADMIN_KEY;
  const g = await boot(
    { admin: { key: '$env://GH_BA_ADMIN_KEY' }, secrets: [vaultSecret()], routes: [route()], consumers: [consumer('jack', 'jack', '$secret://vault/gw/jack/password'), consumer('jill', 'jill-user', JILL_PW)] },
    { adminListen: '127.0.0.1:0' },
  );
  const admin = `http://127.0.0.1:${g.gateway.adminAddress!.port}`;
  const get = async (name: string) => {
    const r = await request(`${admin}/apisix/admin/consumers/${name}`, { headers: { 'x-api-key': ADMIN_KEY } });
    const text = await r.body.text();
    assert.equal(r.statusCode, 200, text);
    assert.equal(text.includes(MARK), false, 'no plaintext secret in the answer');
    return JSON.parse(text).value.plugins['basic-auth'];
  };
  assert.deepEqual(await get('jill'), { username: 'jill-user', password: '******' });
  assert.deepEqual(await get('jack'), { username: 'jack', password: '$secret://vault/gw/jack/password' });
});

test('no password, Vault token or admin key appears in any log line or metric the gateways produced', async () => {
  const texts: string[] = [];
  for (const g of gateways) {
    texts.push(g.logs.text());
    texts.push(await g.gateway.metrics.render());
  }
  const all = texts.join('\n');
  assert.ok(all.includes('"type":"access"'), 'there is something to scan');
  assert.equal(all.includes(MARK), false);
});
