// jwt-auth through a real gateway and a real upstream, with tokens made here with node:crypto:
// every 401, HS256/384/512, RS256 and ES256, header/query/cookie tokens, exp/nbf with the grace
// period, algorithm confusion (none, switched algorithms), hidden credentials, the anonymous
// consumer, config errors, key material read from the test Vault through node-vault, rotations in
// Vault with their grace, redaction and a leak scan.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import NodeVault from 'node-vault';
import { request } from 'undici';
import type { Clock } from 'gatehouse-gateway/sdk';
import { bootTestGateway, delay, startUpstream, type GatewayUnderTest, type Upstream } from 'gatehouse-gateway/testing';
import { startVaultServer, type VaultServer } from '../../test/servers/vault';
import plugin from './index';

// every plaintext secret of this file contains MARK; the last test scans what the gateways said
const MARK = `planted${randomBytes(5).toString('hex')}`;
const VAULT_TOKEN = `hvs.${MARK}-vault-token`;
const JACK_SECRET = `${MARK}-jack-hs-secret`;
const JACK_SECRET_V2 = `${MARK}-jack-hs-secret-2`;
const ADMIN_KEY = `${MARK}-admin-key`;

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsa2 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }) as string;

/** A wall clock the test can move (token lifetimes and rotation grace without waiting). */
class ShiftedClock implements Clock {
  offset = 0;
  now(): number {
    return Date.now() + this.offset;
  }
}

// ---------------------------------------------------------------------------------------------
// tokens, made the way any issuer would

const b64url = (v: object | Buffer) => (Buffer.isBuffer(v) ? v : Buffer.from(JSON.stringify(v), 'utf8')).toString('base64url');
type Signer = { hs: string | Buffer } | { rs: KeyObject } | { es: KeyObject } | { none: true };

/** A compact JWS of `payload`; `header` defaults to {alg, typ: JWT}. */
function jwt(alg: string, signer: Signer, payload: Record<string, unknown>, header: Record<string, unknown> = { alg, typ: 'JWT' }): string {
  const signed = `${b64url(header)}.${b64url(payload)}`;
  let sig: Buffer;
  if ('none' in signer) sig = Buffer.alloc(0);
  else if ('hs' in signer) sig = createHmac(`sha${alg.slice(2)}`, signer.hs).update(signed).digest();
  else if ('rs' in signer) sig = cryptoSign('sha256', Buffer.from(signed), signer.rs);
  else sig = cryptoSign('sha256', Buffer.from(signed), { key: signer.es, dsaEncoding: 'ieee-p1363' });
  return `${signed}.${b64url(sig)}`;
}
const seconds = (ms: number) => Math.floor(ms / 1000);

// ---------------------------------------------------------------------------------------------
// gateway fixtures

let up: Upstream;
let vault: VaultServer;
let vaultClient: NodeVault.client;
const gateways: GatewayUnderTest[] = [];

before(async () => {
  up = await startUpstream();
  vault = await startVaultServer({ rootToken: VAULT_TOKEN });
  vaultClient = NodeVault({ endpoint: vault.url, token: VAULT_TOKEN, requestOptions: { timeout: 5000 } });
  await vaultClient.mount({ mount_point: 'gw', type: 'kv', options: { version: '1' } });
  await vaultClient.write('gw/jack', { 'jwt-secret': JACK_SECRET });
  await vaultClient.write('gw/kerouac', { 'public-key': pem(rsa.publicKey) });
  process.env.GH_JWT_VAULT_TOKEN = VAULT_TOKEN;
  process.env.GH_JWT_JACK_SECRET = JACK_SECRET;
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

const vaultSecret = () => ({ id: 'vault/gw', uri: vault.url, prefix: 'gw', token: '$env://GH_JWT_VAULT_TOKEN', kv_version: 1 });
const route = (conf: Record<string, unknown> = {}) => ({ id: 'ip', uri: '/ip', plugins: { 'jwt-auth': conf }, upstream: { nodes: { [up.node]: 1 } } });
const consumer = (username: string, conf: Record<string, unknown>) => ({ username, plugins: { 'jwt-auth': conf } });

/** jack: HS256, secret from $env; kerouac: RS256; elsa: ES256; hugo: HS384; hana: HS512. */
const consumers = () => [
  consumer('jack', { key: 'jack-key', secret: '$env://GH_JWT_JACK_SECRET' }),
  consumer('kerouac', { key: 'kerouac-key', algorithm: 'RS256', public_key: pem(rsa.publicKey) }),
  consumer('elsa', { key: 'elsa-key', algorithm: 'ES256', public_key: pem(ec.publicKey) }),
  consumer('hugo', { key: 'hugo-key', algorithm: 'HS384', secret: 'hugo-secret' }),
  consumer('hana', { key: 'hana-key', algorithm: 'HS512', secret: 'hana-secret' }),
];

async function call(g: GatewayUnderTest, path: string, headers: Record<string, string> = {}) {
  const r = await request(`${g.url}${path}`, { headers });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text, echo: r.statusCode === 200 ? (JSON.parse(text) as { url: string; headers: Record<string, string> }) : undefined };
}

/** Expect the exact APISIX 401 for a request, and that it reached nothing upstream. */
async function refused(g: GatewayUnderTest, message: string, headers: Record<string, string>, path = '/ip', why = '') {
  const before = up.seen.length;
  const r = await call(g, path, headers);
  assert.equal(r.status, 401, `${why} ${JSON.stringify(headers)}`);
  assert.equal(r.text, JSON.stringify({ message }), why);
  assert.equal(r.headers['www-authenticate'], 'Bearer realm="jwt"');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(up.seen.length, before, 'nothing reached the upstream');
}

/** Expect a 200 for `consumer`, and return what the upstream saw. */
async function accepted(g: GatewayUnderTest, consumerName: string, headers: Record<string, string>, path = '/ip', why = '') {
  const r = await call(g, path, headers);
  assert.equal(r.status, 200, `${why} ${r.text}`);
  assert.equal(r.echo!.headers['x-consumer-username'], consumerName, why);
  return r.echo!;
}

/** An ES256 token whose signature is DER-encoded (what OpenSSL emits by default), not JOSE's r || s. */
function derSigned(key: string): string {
  const signed = `${b64url({ alg: 'ES256', typ: 'JWT' })}.${b64url({ key })}`;
  return `${signed}.${b64url(cryptoSign('sha256', Buffer.from(signed), ec.privateKey))}`;
}

const jackToken = (payload: Record<string, unknown> = { key: 'jack-key' }) => jwt('HS256', { hs: JACK_SECRET }, payload);

// ---------------------------------------------------------------------------------------------

test('no token: 401 {"message":"Missing JWT token in request"} with WWW-Authenticate', async () => {
  const g = await boot({ routes: [route()], consumers: consumers() });
  await refused(g, 'Missing JWT token in request', {});
  await refused(g, 'Missing JWT token in request', { authorization: '' });
  await refused(g, 'Missing JWT token in request', { cookie: 'jwt=; other=1' }, '/ip?jwt=');
});

test('a token that is not a JWS: 401 {"message":"JWT token invalid"}', async () => {
  const g = await boot({ routes: [route()], consumers: consumers() });
  const good = jackToken().split('.');
  const malformed = [
    'not-a-token',
    `${good[0]}.${good[1]}`, // two parts
    `${good.join('.')}.extra`, // four parts
    `.${good[1]}.${good[2]}`, // empty header
    `${good[0]}..${good[2]}`, // empty payload
    `${good[0]}.${good[1]}+/.${good[2]}`, // not base64url
    `${b64url(Buffer.from('{not json'))}.${good[1]}.${good[2]}`,
    `${good[0]}.${b64url(['key', 'jack-key'])}.${good[2]}`, // payload not an object
    `${b64url({ typ: 'JWT' })}.${good[1]}.${good[2]}`, // no alg
    `${b64url({ alg: 256 })}.${good[1]}.${good[2]}`, // alg not a string
    'Bearer', // the prefix alone
  ];
  for (const t of malformed) await refused(g, 'JWT token invalid', { authorization: t }, '/ip', t);
});

test('no key claim: 401 {"message":"missing user key in JWT token"}; an unknown key: 401 {"message":"Invalid user key in JWT token"}', async () => {
  const g = await boot({ routes: [route()], consumers: consumers() });
  await refused(g, 'missing user key in JWT token', { authorization: jackToken({ sub: 'jack-key' }) });
  await refused(g, 'missing user key in JWT token', { authorization: jackToken({ key: null }) });
  await refused(g, 'Invalid user key in JWT token', { authorization: jackToken({ key: 'nobody' }) });
  await refused(g, 'Invalid user key in JWT token', { authorization: jackToken({ key: 42 }) });
  await refused(g, 'Invalid user key in JWT token', { authorization: jackToken({ key: 'jack' }) }, '/ip', 'the consumer name is not its key');
  // inherited properties are not claims
  const named = await boot({ routes: [route({ key_claim_name: 'constructor' })], consumers: consumers() });
  await refused(named, 'missing user key in JWT token', { authorization: jackToken({ key: 'jack-key' }) });
});

test('HS256, HS384, HS512, RS256 and ES256 tokens pass; the upstream receives X-Consumer-Username (a client-sent one is dropped) and the token', async () => {
  const g = await boot({ routes: [route()], consumers: consumers() });
  const t = jackToken();
  const echo = await accepted(g, 'jack', { authorization: `Bearer ${t}`, 'x-consumer-username': 'admin' });
  assert.equal(echo.headers.authorization, `Bearer ${t}`, 'kept without hide_credentials');
  await accepted(g, 'jack', { authorization: t }, '/ip', 'Bearer is optional');
  await accepted(g, 'jack', { authorization: `bearer  ${t}` }, '/ip', 'the prefix is case-insensitive');
  await accepted(g, 'kerouac', { authorization: jwt('RS256', { rs: rsa.privateKey }, { key: 'kerouac-key' }) });
  await accepted(g, 'elsa', { authorization: jwt('ES256', { es: ec.privateKey }, { key: 'elsa-key' }) });
  await accepted(g, 'hugo', { authorization: jwt('HS384', { hs: 'hugo-secret' }, { key: 'hugo-key' }) });
  await accepted(g, 'hana', { authorization: jwt('HS512', { hs: 'hana-secret' }, { key: 'hana-key', role: 'x' }) });
  const line = g.logs.lines.filter((l) => l.type === 'access').at(-1);
  assert.equal(line?.consumer, 'hana', 'the access log names the consumer');
});

test('a wrong signature: 401 {"message":"failed to verify jwt"}', async () => {
  const g = await boot({ routes: [route()], consumers: consumers() });
  const good = jackToken().split('.');
  const bad = [
    jwt('HS256', { hs: 'not-the-secret' }, { key: 'jack-key' }),
    jwt('HS256', { hs: '$env://GH_JWT_JACK_SECRET' }, { key: 'jack-key' }), // the reference text is never a secret
    `${good[0]}.${b64url({ key: 'jack-key', admin: true })}.${good[2]}`, // payload changed after signing
    `${good[0]}.${good[1]}.`, // signature stripped
    `${good[0]}.${good[1]}.${good[2].slice(0, -4)}`, // signature truncated
    jwt('RS256', { rs: rsa2.privateKey }, { key: 'kerouac-key' }), // another RSA key pair
    jwt('ES256', { es: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey }, { key: 'elsa-key' }),
    jwt('HS384', { hs: 'hana-secret' }, { key: 'hugo-key' }),
    derSigned('elsa-key'), // ES256 with a DER signature instead of r || s
  ];
  for (const t of bad) await refused(g, 'failed to verify jwt', { authorization: t }, '/ip', t);
});

test('algorithm confusion is refused: alg none, HMAC with the RSA public key, another HMAC size, another family, crit', async () => {
  const g = await boot({ routes: [route()], consumers: consumers() });
  const cases: Array<[string, string]> = [
    ['alg none, unsigned', jwt('none', { none: true }, { key: 'jack-key' })],
    ['alg none for an RS256 consumer', jwt('none', { none: true }, { key: 'kerouac-key' })],
    ['alg "None"', jwt('None', { none: true }, { key: 'jack-key' }, { alg: 'None' })],
    ['HS256 signed with the RS256 consumer\'s public key PEM', jwt('HS256', { hs: pem(rsa.publicKey) }, { key: 'kerouac-key' })],
    ['HS256 signed with the ES256 consumer\'s public key PEM', jwt('HS256', { hs: pem(ec.publicKey) }, { key: 'elsa-key' })],
    ['HS512 with the HS256 consumer\'s secret', jwt('HS512', { hs: JACK_SECRET }, { key: 'jack-key' })],
    ['HS256 with the HS384 consumer\'s secret', jwt('HS256', { hs: 'hugo-secret' }, { key: 'hugo-key' })],
    ['RS256 for an HS256 consumer', jwt('RS256', { rs: rsa.privateKey }, { key: 'jack-key' })],
    ['ES256 for an RS256 consumer', jwt('ES256', { es: ec.privateKey }, { key: 'kerouac-key' })],
    ['RS256 header on an ES256 signature', jwt('ES256', { es: ec.privateKey }, { key: 'elsa-key' }, { alg: 'RS256' })],
    ['a crit header', jwt('HS256', { hs: JACK_SECRET }, { key: 'jack-key' }, { alg: 'HS256', crit: ['exp'] })],
  ];
  for (const [why, t] of cases) await refused(g, 'failed to verify jwt', { authorization: t }, '/ip', why);
  await accepted(g, 'jack', { authorization: jwt('HS256', { hs: JACK_SECRET }, { key: 'jack-key' }, { alg: 'HS256' }) }, '/ip', 'typ is optional');
});

test('exp and nbf are checked on the gateway clock, with lifetime_grace_period', async () => {
  const clock = new ShiftedClock();
  clock.offset = 3 * 3600_000; // the gateway lives 3 hours ahead of this test's wall clock
  const g = await boot(
    {
      routes: [route()],
      consumers: [consumer('jack', { key: 'jack-key', secret: 'jack-hs' }), consumer('lenient', { key: 'lenient-key', secret: 'lenient-hs', lifetime_grace_period: 60 })],
    },
    { clock },
  );
  const now = seconds(clock.now());
  const jack = (claims: Record<string, unknown>) => ({ authorization: jwt('HS256', { hs: 'jack-hs' }, { key: 'jack-key', ...claims }) });
  const lenient = (claims: Record<string, unknown>) => ({ authorization: jwt('HS256', { hs: 'lenient-hs' }, { key: 'lenient-key', ...claims }) });
  await accepted(g, 'jack', jack({ exp: now + 30, nbf: now - 30, iat: now - 30 }));
  await accepted(g, 'jack', jack({}), '/ip', 'exp and nbf are optional');
  await refused(g, 'failed to verify jwt', jack({ exp: now - 30 }), '/ip', 'expired');
  await refused(g, 'failed to verify jwt', jack({ exp: seconds(Date.now()) + 3600 }), '/ip', 'expired on the gateway clock, not on the wall clock');
  await refused(g, 'failed to verify jwt', jack({ nbf: now + 30 }), '/ip', 'not yet valid');
  await refused(g, 'failed to verify jwt', jack({ exp: String(now + 30) }), '/ip', 'exp not a number');
  await refused(g, 'failed to verify jwt', jack({ nbf: null }), '/ip', 'nbf not a number');
  await accepted(g, 'lenient', lenient({ exp: now - 30 }), '/ip', 'expired within the grace period');
  await accepted(g, 'lenient', lenient({ nbf: now + 30 }), '/ip', 'not yet valid, within the grace period');
  await refused(g, 'failed to verify jwt', lenient({ exp: now - 90 }), '/ip', 'expired beyond the grace period');
  await refused(g, 'failed to verify jwt', lenient({ nbf: now + 90 }), '/ip', 'not yet valid beyond the grace period');
  // the same token, before and after its expiry
  const t = jack({ exp: now + 10 });
  await accepted(g, 'jack', t);
  clock.offset += 11_000;
  await refused(g, 'failed to verify jwt', t, '/ip', 'the same token once its exp has passed');
});

test('the token may come from the query or a cookie: header wins over query, query over cookie; custom names and key_claim_name work', async () => {
  const g = await boot({ routes: [route()], consumers: consumers() });
  const jack = jackToken();
  const hugo = jwt('HS384', { hs: 'hugo-secret' }, { key: 'hugo-key' });
  const hana = jwt('HS512', { hs: 'hana-secret' }, { key: 'hana-key' });
  await accepted(g, 'jack', {}, `/ip?jwt=${jack}`);
  await accepted(g, 'jack', { cookie: `a=1; jwt=${jack}; b=2` });
  await accepted(g, 'jack', { cookie: `jwt="${jack}"` }, '/ip', 'a quoted cookie value');
  await accepted(g, 'hugo', { authorization: hugo, cookie: `jwt=${hana}` }, `/ip?jwt=${jack}`, 'header first');
  await accepted(g, 'jack', { cookie: `jwt=${hana}` }, `/ip?jwt=${jack}`, 'query before cookie');
  await refused(g, 'failed to verify jwt', { authorization: jwt('HS256', { hs: 'x' }, { key: 'jack-key' }) }, `/ip?jwt=${jack}`, 'a bad header token is not rescued by a good query one');

  const custom = await boot({ routes: [route({ header: 'X-Token', query: 'token', cookie: 'auth', key_claim_name: 'sub' })], consumers: consumers() });
  const sub = jwt('HS256', { hs: JACK_SECRET }, { sub: 'jack-key' });
  await accepted(custom, 'jack', { 'x-token': `Bearer ${sub}` });
  await accepted(custom, 'jack', {}, `/ip?token=${sub}`);
  await accepted(custom, 'jack', { cookie: `auth=${sub}` });
  await refused(custom, 'Missing JWT token in request', { authorization: sub, cookie: `jwt=${sub}` }, `/ip?jwt=${sub}`, 'the default names no longer apply');
  await refused(custom, 'missing user key in JWT token', { 'x-token': jackToken() }, '/ip', 'the key claim is now sub');
});

test('hide_credentials removes the token from the header, the query or the cookie before proxying, and nothing else', async () => {
  const g = await boot({ routes: [route({ hide_credentials: true })], consumers: consumers() });
  const t = jackToken();
  const h = await accepted(g, 'jack', { authorization: `Bearer ${t}`, 'x-other': 'kept' }, '/ip?a=1');
  assert.equal(h.headers.authorization, undefined);
  assert.equal(h.headers['x-other'], 'kept');
  assert.equal(h.url, '/ip?a=1');
  const q = await accepted(g, 'jack', {}, `/ip?a=1&jwt=${t}&b=2`);
  assert.equal(q.url, '/ip?a=1&b=2');
  const c = await accepted(g, 'jack', { cookie: `a=1; jwt=${t}; b=2` });
  assert.equal(c.headers.cookie, 'a=1; b=2');
  const only = await accepted(g, 'jack', { cookie: `jwt=${t}` });
  assert.equal(only.headers.cookie, undefined);
  const plain = await boot({ routes: [route()], consumers: consumers() });
  assert.equal((await accepted(plain, 'jack', {}, `/ip?a=1&jwt=${t}`)).url, `/ip?a=1&jwt=${t}`, 'kept without hide_credentials');
  assert.equal((await accepted(plain, 'jack', { cookie: `a=1; jwt=${t}` })).headers.cookie, `a=1; jwt=${t}`);
});

test('anonymous_consumer is used when no token is sent; a bad token is still rejected', async () => {
  const g = await boot({ routes: [route({ anonymous_consumer: 'guest' })], consumers: [...consumers(), { username: 'guest' }] });
  await accepted(g, 'guest', {});
  await accepted(g, 'jack', { authorization: jackToken() });
  await refused(g, 'failed to verify jwt', { authorization: jwt('HS256', { hs: 'wrong' }, { key: 'jack-key' }) });
  await refused(g, 'JWT token invalid', { authorization: 'garbage' });
  await assert.rejects(boot({ routes: [route({ anonymous_consumer: 'nobody' })], consumers: consumers() }), /routes\[0\]\.plugins\.jwt-auth: anonymous_consumer "nobody" is not a consumer/);
});

test('config errors: duplicate written keys name both consumers; missing or unusable written key material names the field, never its value', async () => {
  type Issues = Error & { issues?: Array<{ path: string; message: string }> };
  const issuesOf = async (consumerList: unknown[]) => {
    const err = (await boot({ routes: [route()], consumers: consumerList }).then(
      () => undefined,
      (e: Issues) => e,
    )) as Issues | undefined;
    assert.ok(err, 'the config is refused');
    return err.issues;
  };
  assert.deepEqual(await issuesOf([consumer('jack', { key: 'same-key', secret: 's1' }), consumer('jill', { key: 'same-key', secret: 's2' })]), [
    { path: 'consumers[1].plugins.jwt-auth.key', message: 'consumers "jack" and "jill" have the same jwt-auth key; each key must identify one consumer' },
  ]);
  assert.deepEqual(await issuesOf([consumer('jack', { key: 'k' })]), [{ path: 'consumers[0].plugins.jwt-auth.secret', message: 'is required' }]);
  assert.deepEqual(await issuesOf([consumer('jack', { key: 'k', algorithm: 'RS256', secret: 's' })]), [{ path: 'consumers[0].plugins.jwt-auth.public_key', message: 'is required' }]);
  assert.deepEqual(await issuesOf([consumer('jack', { key: 'k', algorithm: 'none', secret: 's' })]), [{ path: 'consumers[0].plugins.jwt-auth.algorithm', message: 'must be one of: "HS256", "HS384", "HS512", "RS256", "ES256"' }]);
  assert.deepEqual(await issuesOf([consumer('jack', { key: 'k', algorithm: 'RS256', public_key: 'not a pem' })]), [
    { path: 'consumers[0].plugins.jwt-auth.public_key', message: 'consumer "jack": public_key is not a PEM public key (RS256 needs an RSA public key)' },
  ]);
  assert.deepEqual(await issuesOf([consumer('jack', { key: 'k', algorithm: 'RS256', public_key: pem(ec.publicKey) })]), [
    { path: 'consumers[0].plugins.jwt-auth.public_key', message: 'consumer "jack": public_key is not an RSA public key (algorithm RS256)' },
  ]);
  assert.deepEqual(await issuesOf([consumer('jack', { key: 'k', algorithm: 'ES256', public_key: pem(ec384.publicKey) })]), [
    { path: 'consumers[0].plugins.jwt-auth.public_key', message: 'consumer "jack": public_key is not an EC P-256 public key (algorithm ES256)' },
  ]);
  const privatePem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const privateIssues = await issuesOf([consumer('jack', { key: 'k', algorithm: 'RS256', public_key: privatePem })]);
  assert.deepEqual(privateIssues, [{ path: 'consumers[0].plugins.jwt-auth.public_key', message: 'consumer "jack": public_key holds a private key; give the public key only (the gateway never needs the private one)' }]);
  assert.deepEqual(await issuesOf([consumer('jack', { key: 'k', secret: `${MARK}-not*base64`, base64_secret: true })]), [
    { path: 'consumers[0].plugins.jwt-auth.secret', message: 'consumer "jack": base64_secret is set but secret is not base64' },
  ]);
  assert.deepEqual(await issuesOf([consumer('jack', { key: 'k', secret: 's', private_key: 'x' })]), [{ path: 'consumers[0].plugins.jwt-auth.private_key', message: 'is not a known field' }]);
});

test('a value from a reference that jwt-auth cannot use (a duplicate key, a non-base64 secret) fails closed for those consumers only: the config loads, others verify, one line each without the value', async () => {
  // a refused config would tell its writer that the referenced key equals another consumer's
  process.env.GH_JWT_DUP_KEY = 'same-key';
  process.env.GH_JWT_NOT_B64 = `${MARK}-not*base64-env`;
  const g = await boot({
    routes: [route()],
    consumers: [
      consumer('ann', { key: 'same-key', secret: 's1' }),
      consumer('bob', { key: '$env://GH_JWT_DUP_KEY', secret: 's2' }),
      consumer('cat', { key: 'cat-key', secret: '$env://GH_JWT_NOT_B64', base64_secret: true }),
      consumer('dan', { key: 'dan-key', secret: 'dan-secret' }),
    ],
  });
  await refused(g, 'Invalid user key in JWT token', { authorization: jwt('HS256', { hs: 's1' }, { key: 'same-key' }) });
  await refused(g, 'Invalid user key in JWT token', { authorization: jwt('HS256', { hs: 'x' }, { key: 'cat-key' }) });
  await accepted(g, 'dan', { authorization: jwt('HS256', { hs: 'dan-secret' }, { key: 'dan-key' }) });
  const lines = g.logs.lines.filter((l) => l.plugin === 'jwt-auth' && l.msg === 'fails closed: the consumer cannot authenticate with this plugin');
  assert.deepEqual(
    lines.map((l) => [l.consumer, l.references, l.cause]),
    [
      ['ann', [], 'its jwt-auth key is also consumer "bob"\'s; each key must identify one consumer'],
      ['bob', ['$env://GH_JWT_DUP_KEY'], 'its jwt-auth key is also consumer "ann"\'s; each key must identify one consumer'],
      ['cat', ['$env://GH_JWT_NOT_B64'], 'base64_secret is set but secret is not base64'],
    ],
  );
});

test('base64_secret: the decoded bytes are the HMAC key; exp is accepted and ignored', async () => {
  const raw = randomBytes(32);
  const g = await boot({ routes: [route()], consumers: [consumer('jack', { key: 'jack-key', secret: raw.toString('base64'), base64_secret: true, exp: 60 })] });
  await accepted(g, 'jack', { authorization: jwt('HS256', { hs: raw }, { key: 'jack-key' }) });
  await refused(g, 'failed to verify jwt', { authorization: jwt('HS256', { hs: raw.toString('base64') }, { key: 'jack-key' }) }, '/ip', 'the base64 text is not the key');
});

test('an HS secret and an RS256 public key read from Vault (KV v1, written with node-vault) verify tokens', async () => {
  const g = await boot({
    secrets: [vaultSecret()],
    routes: [route()],
    consumers: [
      consumer('jack', { key: 'jack-key', secret: '$secret://vault/gw/jack/jwt-secret' }),
      consumer('kerouac', { key: 'kerouac-key', algorithm: 'RS256', public_key: '$secret://vault/gw/kerouac/public-key' }),
    ],
  });
  await accepted(g, 'jack', { authorization: jackToken() });
  await accepted(g, 'kerouac', { authorization: jwt('RS256', { rs: rsa.privateKey }, { key: 'kerouac-key' }) });
  await refused(g, 'failed to verify jwt', { authorization: jwt('HS256', { hs: '$secret://vault/gw/jack/jwt-secret' }, { key: 'jack-key' }) }, '/ip', 'the reference text is never a secret');
  await refused(g, 'failed to verify jwt', { authorization: jwt('RS256', { rs: rsa2.privateKey }, { key: 'kerouac-key' }) });
});

/** Wait until `ok` holds (a rebuild after a forced refresh takes a few ms). */
async function eventually(ok: () => Promise<boolean>, what: string) {
  for (let i = 0; i < 100; i++) {
    if (await ok()) return;
    await delay(10);
  }
  assert.fail(what);
}

test('rotation in Vault: tokens signed with the new HS secret work at once, those with the previous one during rotation_grace, then are refused', async () => {
  const clock = new ShiftedClock();
  await vaultClient.write('gw/jack', { 'jwt-secret': JACK_SECRET });
  const g = await boot(
    { secret_cache: { rotation_grace: 60 }, secrets: [vaultSecret()], routes: [route()], consumers: [consumer('jack', { key: 'jack-key', secret: '$secret://vault/gw/jack/jwt-secret' })] },
    { clock },
  );
  const v1 = jackToken();
  const v2 = jwt('HS256', { hs: JACK_SECRET_V2 }, { key: 'jack-key' });
  await accepted(g, 'jack', { authorization: v1 });
  await refused(g, 'failed to verify jwt', { authorization: v2 });
  await vaultClient.write('gw/jack', { 'jwt-secret': JACK_SECRET_V2 });
  await g.gateway.builder.resolver.refreshResource('vault/gw');
  await eventually(async () => (await call(g, '/ip', { authorization: v2 })).status === 200, 'the new secret is accepted without a restart');
  clock.offset = 59_000;
  await accepted(g, 'jack', { authorization: v1 }, '/ip', 'the previous secret during the grace');
  clock.offset = 61_000;
  await refused(g, 'failed to verify jwt', { authorization: v1 }, '/ip', 'the previous secret once the grace ends');
  await accepted(g, 'jack', { authorization: v2 });
});

test('rotation in Vault of an RS256 public key: the new key pair works at once, the old one during rotation_grace, then is refused', async () => {
  const clock = new ShiftedClock();
  await vaultClient.write('gw/kerouac', { 'public-key': pem(rsa.publicKey) });
  const g = await boot(
    { secret_cache: { rotation_grace: 30 }, secrets: [vaultSecret()], routes: [route()], consumers: [consumer('kerouac', { key: 'kerouac-key', algorithm: 'RS256', public_key: '$secret://vault/gw/kerouac/public-key' })] },
    { clock },
  );
  const old = jwt('RS256', { rs: rsa.privateKey }, { key: 'kerouac-key' });
  const next = jwt('RS256', { rs: rsa2.privateKey }, { key: 'kerouac-key' });
  await accepted(g, 'kerouac', { authorization: old });
  await vaultClient.write('gw/kerouac', { 'public-key': pem(rsa2.publicKey) });
  await g.gateway.builder.resolver.refreshResource('vault/gw');
  await eventually(async () => (await call(g, '/ip', { authorization: next })).status === 200, 'the new public key is accepted without a restart');
  clock.offset = 29_000;
  await accepted(g, 'kerouac', { authorization: old }, '/ip', 'the previous public key during the grace');
  clock.offset = 31_000;
  await refused(g, 'failed to verify jwt', { authorization: old }, '/ip', 'the previous public key once the grace ends');
  await accepted(g, 'kerouac', { authorization: next });
});

test('a key rotated out of one consumer never identifies the consumer that now has it, and the rotated-out keys keep their grace', async () => {
  const clock = new ShiftedClock();
  await vaultClient.write('gw/swap', { jack: 'key-a', jill: 'key-b' });
  const g = await boot(
    {
      secret_cache: { rotation_grace: 60 },
      secrets: [vaultSecret()],
      routes: [route()],
      consumers: [consumer('jack', { key: '$secret://vault/gw/swap/jack', secret: 'jack-hs' }), consumer('jill', { key: '$secret://vault/gw/swap/jill', secret: 'jill-hs' })],
    },
    { clock },
  );
  const token = (key: string, secret: string) => ({ authorization: jwt('HS256', { hs: secret }, { key }) });
  await accepted(g, 'jack', token('key-a', 'jack-hs'));
  await accepted(g, 'jill', token('key-b', 'jill-hs'));
  // jill takes jack's key, jack gets a new one
  await vaultClient.write('gw/swap', { jack: 'key-c', jill: 'key-a' });
  await g.gateway.builder.resolver.refreshResource('vault/gw');
  await eventually(async () => (await call(g, '/ip', token('key-a', 'jill-hs'))).status === 200, 'jill is found by her new key');
  await accepted(g, 'jill', token('key-a', 'jill-hs'));
  await accepted(g, 'jack', token('key-c', 'jack-hs'));
  await refused(g, 'failed to verify jwt', token('key-a', 'jack-hs'), '/ip', "jack's old key is jill's now: jack's secret does not verify for it");
  await accepted(g, 'jill', token('key-b', 'jill-hs'), '/ip', "jill's old key during the grace");
  clock.offset = 61_000;
  await refused(g, 'Invalid user key in JWT token', token('key-b', 'jill-hs'), '/ip', "jill's old key after the grace");
  await accepted(g, 'jill', token('key-a', 'jill-hs'));
});

test('the Admin API masks a literal secret and shows references and public keys as written; the schema marks secret writeOnly', async () => {
  const schema = plugin.consumerSchema as { properties: Record<string, { writeOnly?: boolean }> };
  assert.equal(schema.properties.secret.writeOnly, true);
  assert.equal(schema.properties.public_key.writeOnly, undefined, 'a public key is not a secret');
  process.env.GH_JWT_ADMIN_KEY = ADMIN_KEY;
  const g = await boot(
    {
      admin: { key: '$env://GH_JWT_ADMIN_KEY' },
      secrets: [vaultSecret()],
      routes: [route()],
      consumers: [consumer('jack', { key: 'jack-key', secret: '$secret://vault/gw/jack/jwt-secret' }), consumer('jill', { key: 'jill-key', secret: `${MARK}-jill-literal` }), consumer('kerouac', { key: 'kerouac-key', algorithm: 'RS256', public_key: pem(rsa.publicKey) })],
    },
    { adminListen: '127.0.0.1:0' },
  );
  const admin = `http://127.0.0.1:${g.gateway.adminAddress!.port}`;
  const get = async (name: string) => {
    const r = await request(`${admin}/apisix/admin/consumers/${name}`, { headers: { 'x-api-key': ADMIN_KEY } });
    const text = await r.body.text();
    assert.equal(r.statusCode, 200, text);
    assert.equal(text.includes(MARK), false, 'no plaintext secret in the answer');
    return JSON.parse(text).value.plugins['jwt-auth'];
  };
  assert.equal((await get('jill')).secret, '******');
  assert.equal((await get('jack')).secret, '$secret://vault/gw/jack/jwt-secret');
  assert.equal((await get('kerouac')).public_key, pem(rsa.publicKey));
});

test('no secret, Vault token or admin key appears in any log line or metric the gateways produced', async () => {
  const texts: string[] = [];
  for (const g of gateways) {
    texts.push(g.logs.text());
    texts.push(await g.gateway.metrics.render());
  }
  const all = texts.join('\n');
  assert.ok(all.includes('"type":"access"'), 'there is something to scan');
  assert.equal(all.includes(MARK), false);
});
