// aws provider: driven against the Secrets Manager test server through the real AWS SDK v3.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import Ajv from 'ajv';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import aws, { candidates } from './index';
import type { AwsConfig } from './schema';
import type { Logger, ProviderServices, SecretBackend, SecretValue } from 'gatehouse-gateway/sdk';
import { startSecretsManagerServer, type SecretsManagerServer } from '../../test/servers/secrets-manager';
import { scanForLeaks } from 'gatehouse-gateway/testing';
import { resolve as resolvePath } from 'node:path';

const CREDS = { accessKeyId: 'test', secretAccessKey: 'test' };
let sm: SecretsManagerServer;
let admin: SecretsManagerClient;
const logLines: string[] = [];
const backends: SecretBackend[] = [];
const servers: SecretsManagerServer[] = [];
const clients: SecretsManagerClient[] = [];

function captureLogger(bindings: Record<string, unknown> = {}): Logger {
  const write = (level: string) => (obj: object | string, msg?: string) => {
    const line = JSON.stringify({ level, ...bindings, obj, msg });
    logLines.push(line);
    // scanned for planted secrets with the rest of the run's output (test/helpers/leak-scan.ts)
    scanForLeaks(line + '\n');
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error'), child: (b) => captureLogger({ ...bindings, ...b }) };
}
const services: ProviderServices = { logger: captureLogger(), clock: { now: () => Date.now() }, resolvePath };

async function backend(conf: Partial<AwsConfig> = {}, server: SecretsManagerServer = sm): Promise<SecretBackend> {
  const b = await aws.create({ region: server.region, endpoint_url: server.url, access_key_id: 'test', secret_access_key: 'test', ...conf }, services);
  backends.push(b);
  return b;
}

function adminFor(server: SecretsManagerServer, credentials: { accessKeyId: string; secretAccessKey: string } = CREDS): SecretsManagerClient {
  const c = new SecretsManagerClient({ region: server.region, endpoint: server.url, credentials });
  clients.push(c);
  return c;
}

async function put(name: string, value: string | Uint8Array | object, client = admin): Promise<string> {
  const body = value instanceof Uint8Array ? { SecretBinary: value } : { SecretString: typeof value === 'string' ? value : JSON.stringify(value) };
  return (await client.send(new CreateSecretCommand({ Name: name, ...body }))).VersionId!;
}

async function startServer(opts: Parameters<typeof startSecretsManagerServer>[0] = {}): Promise<SecretsManagerServer> {
  const s = await startSecretsManagerServer(opts);
  servers.push(s);
  return s;
}

/** Run `fn` with these environment variables set (undefined = unset), then restore them. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

before(async () => {
  sm = await startServer();
  admin = adminFor(sm);
});
after(async () => {
  for (const b of backends) await b.close?.();
  for (const c of clients) c.destroy();
  for (const s of servers) await s.close();
});

test('is defined as provider "aws" 1.0.0 whose schema marks secret_access_key and session_token writeOnly', () => {
  assert.equal(aws.name, 'aws');
  assert.equal(aws.version, '1.0.0');
  const props = (aws.schema as any).properties;
  assert.equal(props.secret_access_key.writeOnly, true);
  assert.equal(props.session_token.writeOnly, true);
  assert.notEqual(props.access_key_id.writeOnly, true);
});

test('schema fills the defaults and rejects a lone key, a session token without keys and unknown fields', () => {
  // the same ajv options as the core's config validation
  const validate = new Ajv({ allErrors: true, useDefaults: true, strict: false, allowUnionTypes: true }).compile(aws.schema);
  const conf: Record<string, unknown> = {};
  assert.equal(validate(conf), true);
  assert.deepEqual(conf, { version_stage: 'AWSCURRENT', timeout: 5, max_attempts: 4 });
  assert.equal(validate({ access_key_id: 'AKIA' }), false);
  assert.equal(validate({ secret_access_key: 's' }), false);
  assert.equal(validate({ session_token: 't' }), false);
  assert.equal(validate({ region: 'us-east-1', bogus: 1 }), false);
  assert.equal(validate({ timeout: 0 }), false);
  assert.equal(validate({ max_attempts: 0 }), false);
  assert.equal(validate({ region: 'eu-west-1', access_key_id: 'AKIA', secret_access_key: 's', session_token: 't', endpoint_url: 'http://127.0.0.1:1' }), true);
});

test('rejects at create a lone access key, a session token without keys and a non-http endpoint_url, naming the field', async () => {
  await assert.rejects(async () => aws.create({ region: 'us-east-1', access_key_id: 'AKIA' }, services), /^Error: secret_access_key: /);
  await assert.rejects(async () => aws.create({ region: 'us-east-1', secret_access_key: 's' }, services), /^Error: access_key_id: /);
  await assert.rejects(async () => aws.create({ region: 'us-east-1', session_token: 't' }, services), /^Error: session_token: /);
  await assert.rejects(async () => aws.create({ region: 'us-east-1', endpoint_url: 'ftp://x' }, services), /^Error: endpoint_url: /);
  await assert.rejects(async () => aws.create({ region: 'us-east-1', endpoint_url: 'not a url' }, services), /^Error: endpoint_url: /);
});

test('fails at create, naming region, when none is configured and the SDK resolves none', async () => {
  await withEnv({ AWS_REGION: undefined, AWS_DEFAULT_REGION: undefined, AWS_PROFILE: undefined, AWS_CONFIG_FILE: '/nonexistent/gatehouse-aws-config-1', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/gatehouse-aws-credentials-1' }, async () => {
    await assert.rejects(async () => aws.create({ endpoint_url: sm.url, access_key_id: 'test', secret_access_key: 'test' }, services), /^Error: region: no region/);
  });
});

test("takes the region from the SDK's own resolution (AWS_REGION) when none is configured", async () => {
  await put('region-from-env', 'r');
  await withEnv({ AWS_REGION: sm.region, AWS_CONFIG_FILE: '/nonexistent/gatehouse-aws-config-2' }, async () => {
    const b = await backend({ region: undefined });
    assert.equal((await b.get({ path: '', field: 'region-from-env' }))?.value, 'r');
  });
});

test('uses the SDK default credential chain (environment variables) when no keys are configured', async () => {
  await put('chain/secret', { k: 'from-chain' });
  await withEnv(
    { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined, AWS_CONFIG_FILE: '/nonexistent/gatehouse-aws-config-3', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/gatehouse-aws-credentials-3' },
    async () => {
      const b = await backend({ access_key_id: undefined, secret_access_key: undefined });
      assert.equal((await b.get({ path: 'chain/secret', field: 'k' }))?.value, 'from-chain');
    },
  );
});

test('signs with the configured session token of temporary credentials', async () => {
  const temp = { accessKeyId: 'ASIATEMP', secretAccessKey: 'temp-secret', sessionToken: 'sts-token' };
  const server = await startServer({ credentials: [temp] });
  const c = new SecretsManagerClient({ region: server.region, endpoint: server.url, credentials: temp });
  clients.push(c);
  await c.send(new CreateSecretCommand({ Name: 'temp/creds', SecretString: '{"a":"b"}' }));
  const b = await backend({ access_key_id: temp.accessKeyId, secret_access_key: temp.secretAccessKey, session_token: temp.sessionToken }, server);
  assert.equal((await b.get({ path: 'temp/creds', field: 'a' }))?.value, 'b');
  const noToken = await backend({ access_key_id: temp.accessKeyId, secret_access_key: temp.secretAccessKey }, server);
  await assert.rejects(noToken.get({ path: 'temp/creds', field: 'a' }), /UnrecognizedClientException/);
});

test('lists the candidate names of a reference longest first', () => {
  assert.deepEqual(candidates({ path: 'a/b', field: 'f' }), [
    { name: 'a/b/f', fieldPath: [] },
    { name: 'a/b', fieldPath: ['f'] },
    { name: 'a', fieldPath: ['b', 'f'] },
  ]);
  assert.deepEqual(candidates({ path: '', field: 'solo' }), [{ name: 'solo', fieldPath: [] }]);
});

test('returns a JSON field of the SecretString with its VersionId as version', async () => {
  const versionId = await put('prod/db-creds', { username: 'app', password: 's3cr3t' });
  const b = await backend();
  assert.deepEqual(await b.get({ path: 'prod/db-creds', field: 'password' }), { value: 's3cr3t', version: versionId });
  assert.equal((await b.get({ path: 'prod/db-creds', field: 'username' }))?.value, 'app');
});

test('returns the whole SecretString when the reference names the whole secret', async () => {
  await put('plain/token', 'not-json-at-all');
  await put('toplevel', 'top');
  const b = await backend();
  assert.equal((await b.get({ path: 'plain', field: 'token' }))?.value, 'not-json-at-all');
  assert.equal((await b.get({ path: '', field: 'toplevel' }))?.value, 'top');
});

test('reads UTF-8 SecretBinary like a string and returns other bytes base64-encoded', async () => {
  await put('bin/json', new Uint8Array(Buffer.from('{"k":"from-binary","n":7}', 'utf8')));
  const bytes = new Uint8Array([0xff, 0x00, 0xfe, 0x80]);
  await put('bin/raw', bytes);
  const b = await backend();
  assert.equal((await b.get({ path: 'bin/json', field: 'k' }))?.value, 'from-binary');
  assert.equal((await b.get({ path: 'bin', field: 'json' }))?.value, '{"k":"from-binary","n":7}');
  assert.equal((await b.get({ path: 'bin', field: 'raw' }))?.value, Buffer.from(bytes).toString('base64'));
  assert.equal(await b.get({ path: 'bin/raw', field: 'k' }), undefined);
});

test('prefers the longest existing name: a/b/f whole, then a/b with field f, then a with path b.f', async () => {
  await put('lm/a', { b: { f: 'from-a', g: 'g-from-a' } });
  await put('lm/a/b', { f: 'from-a-b' });
  const b = await backend();
  assert.equal((await b.get({ path: 'lm/a/b', field: 'f' }))?.value, 'from-a-b');
  // a/b exists, so its missing field is missing: no fall-through to a's b.g
  assert.equal(await b.get({ path: 'lm/a/b', field: 'g' }), undefined);
  await put('lm/a/b/f', 'whole');
  const fresh = await backend();
  assert.equal((await fresh.get({ path: 'lm/a/b', field: 'f' }))?.value, 'whole');
});

test('follows a nested JSON path into a shorter name and returns non-string values as JSON text', async () => {
  await put('nest', { db: { port: 5432, tls: true, hosts: ['a', 'b'], opts: { x: 1 }, none: null } });
  const b = await backend();
  assert.equal((await b.get({ path: 'nest/db', field: 'port' }))?.value, '5432');
  assert.equal((await b.get({ path: 'nest/db', field: 'tls' }))?.value, 'true');
  assert.equal((await b.get({ path: 'nest/db', field: 'hosts' }))?.value, '["a","b"]');
  assert.equal((await b.get({ path: 'nest/db', field: 'opts' }))?.value, '{"x":1}');
  assert.equal((await b.get({ path: 'nest/db', field: 'none' }))?.value, 'null');
  assert.equal((await b.get({ path: 'nest', field: 'db' }))?.value, '{"port":5432,"tls":true,"hosts":["a","b"],"opts":{"x":1},"none":null}');
  assert.equal(await b.get({ path: 'nest/db', field: '__proto__' }), undefined);
});

test('remembers which name exists and asks for it first, walking again from the longest when it disappears', async () => {
  await put('memo/app', { key: 'short-name' });
  await put('memo/app/key', 'long-name');
  const b = await backend();
  assert.equal((await b.get({ path: 'memo/app', field: 'key' }))?.value, 'long-name');
  let before = sm.count('GetSecretValue');
  assert.equal((await b.get({ path: 'memo/app', field: 'key' }))?.value, 'long-name');
  assert.equal(sm.count('GetSecretValue') - before, 1, 'one call for a remembered name');

  await admin.send(new DeleteSecretCommand({ SecretId: 'memo/app/key', ForceDeleteWithoutRecovery: true }));
  assert.equal((await b.get({ path: 'memo/app', field: 'key' }))?.value, 'short-name');
  before = sm.count('GetSecretValue');
  assert.equal((await b.get({ path: 'memo/app', field: 'key' }))?.value, 'short-name');
  assert.equal(sm.count('GetSecretValue') - before, 1, 'the shorter name is remembered now');
});

test('reads the configured version_stage, e.g. AWSPREVIOUS', async () => {
  await put('staged/key', { k: 'old' });
  await admin.send(new PutSecretValueCommand({ SecretId: 'staged/key', SecretString: '{"k":"new"}' }));
  const previous = await backend({ version_stage: 'AWSPREVIOUS' });
  const current = await backend();
  assert.equal((await previous.get({ path: 'staged/key', field: 'k' }))?.value, 'old');
  assert.equal((await current.get({ path: 'staged/key', field: 'k' }))?.value, 'new');
});

test('sees a rotation: after PutSecretValue the next get returns the new value and VersionId', async () => {
  const v1 = await put('rot/api', { key: 'k1' });
  const b = await backend();
  assert.deepEqual(await b.get({ path: 'rot/api', field: 'key' }), { value: 'k1', version: v1 });
  const v2 = (await admin.send(new PutSecretValueCommand({ SecretId: 'rot/api', SecretString: '{"key":"k2"}' }))).VersionId!;
  assert.notEqual(v2, v1);
  assert.deepEqual(await b.get({ path: 'rot/api', field: 'key' }), { value: 'k2', version: v2 });
});

test('reads a pinned VersionId (#version in the reference) whatever its stage', async () => {
  const v1 = await put('pin/api', { key: 'first' });
  await admin.send(new PutSecretValueCommand({ SecretId: 'pin/api', SecretString: '{"key":"second"}' }));
  await admin.send(new PutSecretValueCommand({ SecretId: 'pin/api', SecretString: '{"key":"third"}' }));
  const b = await backend();
  assert.deepEqual(await b.get({ path: 'pin/api', field: 'key', version: v1 }), { value: 'first', version: v1 });
  assert.equal(await b.get({ path: 'pin/api', field: 'key', version: '00000000-0000-4000-8000-000000000000' }), undefined);
});

test('returns undefined for a missing secret, a missing field, a field of non-JSON text, and a secret scheduled for deletion', async () => {
  await put('nf/json', { present: 'yes' });
  await put('nf/text', 'plain text');
  await put('nf/deleted', { k: 'v' });
  await admin.send(new DeleteSecretCommand({ SecretId: 'nf/deleted', RecoveryWindowInDays: 7 }));
  const b = await backend();
  assert.equal(await b.get({ path: 'nf/none', field: 'x' }), undefined);
  assert.equal(await b.get({ path: 'nf/json', field: 'absent' }), undefined);
  assert.equal(await b.get({ path: 'nf/text', field: 'x' }), undefined);
  assert.equal(await b.get({ path: 'nf/deleted', field: 'k' }), undefined);
});

test('warms 45 references with BatchGetSecretValue alone, no GetSecretValue, in 20-id chunks', async () => {
  for (let i = 0; i < 45; i++) await put(`warm/svc-${i}`, { password: `pw-${i}` });
  const b = await backend();
  const reqs = Array.from({ length: 45 }, (_, i) => ({ path: `warm/svc-${i}`, field: 'password' }));
  const gets = sm.count('GetSecretValue');
  const batches = sm.count('BatchGetSecretValue');
  const out = await b.getMany!([...reqs, { path: 'warm/none', field: 'password' }]);
  assert.equal(out.length, 46);
  for (let i = 0; i < 45; i++) assert.equal((out[i] as SecretValue).value, `pw-${i}`);
  assert.ok((out[0] as SecretValue).version);
  assert.equal(out[45], undefined);
  assert.equal(sm.count('GetSecretValue') - gets, 0, 'GetSecretValue was not used');
  // round 1 asks for warm/svc-N/password (missing), round 2 for warm/svc-N: 3 chunks each, round 3 for warm
  assert.equal(sm.count('BatchGetSecretValue') - batches, 7);

  // the names are remembered now: one round of 3 chunks
  const again = sm.count('BatchGetSecretValue');
  const out2 = await b.getMany!(reqs);
  assert.equal((out2[44] as SecretValue).value, 'pw-44');
  assert.equal(sm.count('BatchGetSecretValue') - again, 3);
  assert.equal(sm.count('GetSecretValue') - gets, 0);
});

test('getMany falls back to GetSecretValue for pinned versions, other stages, and when BatchGetSecretValue fails', async () => {
  const v1 = await put('fb/one', { k: 'one' });
  await put('fb/two', { k: 'two' });
  const b = await backend({ max_attempts: 1 });
  let gets = sm.count('GetSecretValue');
  const pinned = await b.getMany!([{ path: 'fb/one', field: 'k', version: v1 }]);
  assert.deepEqual(pinned, [{ value: 'one', version: v1 }]);
  assert.ok(sm.count('GetSecretValue') - gets > 0);

  const previous = await backend({ version_stage: 'AWSPREVIOUS' });
  const batches = sm.count('BatchGetSecretValue');
  assert.deepEqual(await previous.getMany!([{ path: 'fb/one', field: 'k' }]), [undefined]);
  assert.equal(sm.count('BatchGetSecretValue') - batches, 0, 'BatchGetSecretValue reads AWSCURRENT only');

  sm.faults.failNext(1);
  gets = sm.count('GetSecretValue');
  const out = await b.getMany!([{ path: 'fb/one', field: 'k' }, { path: 'fb/two', field: 'k' }]);
  assert.deepEqual(out.map((v) => (v as SecretValue).value), ['one', 'two']);
  assert.ok(sm.count('GetSecretValue') - gets >= 2);
  assert.ok(logLines.some((l) => l.includes('BatchGetSecretValue failed') && l.includes('InternalServiceError')));
});

test('getMany answers each failed reference with its own Error', async () => {
  const server = await startServer();
  const b = await backend({ max_attempts: 1 }, server);
  server.faults.failNext(100);
  const out = await b.getMany!([{ path: 'x', field: 'y' }, { path: '', field: 'z' }]);
  for (const e of out) {
    assert.ok(e instanceof Error);
    assert.match(e.message, /InternalServiceError/);
  }
  server.faults.clear();
});

test('retries throttling with backoff and then succeeds, counting every attempt', async () => {
  await put('thr/key', { k: 'v' });
  const b = await backend();
  await b.get({ path: 'thr/key', field: 'k' }); // remember the name: one call per get from now on
  const before = sm.count('GetSecretValue');
  sm.faults.throttleNext(2);
  assert.equal((await b.get({ path: 'thr/key', field: 'k' }))?.value, 'v');
  assert.equal(sm.count('GetSecretValue') - before, 3);
});

test('rejects after max_attempts of persistent 500s with an error naming InternalServiceError, the status and the secret', async () => {
  await put('p500/key', { k: 'v' });
  const b = await backend();
  const before = sm.count('GetSecretValue');
  sm.faults.failNext(1000);
  try {
    await assert.rejects(b.get({ path: 'p500', field: 'key' }), (e: Error) => {
      assert.match(e.message, /^aws: GetSecretValue of secret "p500\/key" failed: InternalServiceError \(HTTP 500\) after 4 attempts$/);
      return true;
    });
  } finally {
    sm.faults.clear();
  }
  assert.equal(sm.count('GetSecretValue') - before, 4, 'default max_attempts is 4');
});

test('rejects bad credentials at once with an error naming UnrecognizedClientException', async () => {
  const b = await backend({ access_key_id: 'AKIDUNKNOWN', secret_access_key: 'whatever' });
  const before = sm.count('GetSecretValue');
  await assert.rejects(b.get({ path: 'prod/db-creds', field: 'password' }), /^Error: aws: GetSecretValue of secret "prod\/db-creds\/password" failed: UnrecognizedClientException \(HTTP 400\) after 1 attempt$/);
  assert.equal(sm.count('GetSecretValue') - before, 1, 'not retried');
  const wrongKey = await backend({ secret_access_key: 'not-test' });
  await assert.rejects(wrongKey.get({ path: 'prod/db-creds', field: 'password' }), /InvalidSignatureException/);
});

test('rejects while the server is down and reads again once it is back', async () => {
  const server = await startServer();
  await put('down/key', { k: 'v' }, adminFor(server));
  const b = await backend({ max_attempts: 2 }, server);
  await server.stop();
  await assert.rejects(b.get({ path: 'down/key', field: 'k' }), /^Error: aws: GetSecretValue of secret "down\/key\/k" failed: ECONNREFUSED/);
  await server.start();
  assert.equal((await b.get({ path: 'down/key', field: 'k' }))?.value, 'v');
});

test('rejects quickly with TimeoutError when answers take longer than timeout', async () => {
  const server = await startServer();
  await put('slow/key', { k: 'v' }, adminFor(server));
  const b = await backend({ timeout: 0.2, max_attempts: 2 }, server);
  server.faults.latencyMs = 5000;
  const t0 = Date.now();
  await assert.rejects(b.get({ path: 'slow/key', field: 'k' }), /failed: TimeoutError after 2 attempts$/);
  const elapsed = Date.now() - t0;
  assert.ok(elapsed < 2500, `rejected after ${elapsed} ms`);
  server.faults.latencyMs = 0;
});

test('never puts a secret value or the secret key in error messages, stacks or logs', async () => {
  const PLANTED_VALUE = 'planted-value-7f3a9c41';
  const PLANTED_KEY = 'planted-secret-key-c81e2d77';
  const server = await startServer({ credentials: [{ accessKeyId: 'leak-id', secretAccessKey: PLANTED_KEY }] });
  const c = adminFor(server, { accessKeyId: 'leak-id', secretAccessKey: PLANTED_KEY });
  await put('leak/db', { password: PLANTED_VALUE }, c);
  await put('leak/raw', PLANTED_VALUE, c);
  logLines.length = 0;
  const errors: unknown[] = [];
  const capture = async (p: Promise<unknown>) => {
    try {
      await p;
      assert.fail('expected a rejection');
    } catch (e) {
      errors.push(e);
    }
  };

  const good = await backend({ access_key_id: 'leak-id', secret_access_key: PLANTED_KEY, max_attempts: 2, timeout: 0.2 }, server);
  // a value was read successfully before the failures start
  assert.equal((await good.get({ path: 'leak/db', field: 'password' }))?.value, PLANTED_VALUE);
  await capture((await backend({ access_key_id: 'leak-id', secret_access_key: 'wrong' }, server)).get({ path: 'leak/db', field: 'password' }));
  await capture((await backend({ access_key_id: 'other-id', secret_access_key: PLANTED_KEY }, server)).get({ path: 'leak/db', field: 'password' }));
  server.faults.failNext(1000);
  await capture(good.get({ path: 'leak/db', field: 'password' }));
  await capture(good.get({ path: 'leak', field: 'raw' }));
  const many = await good.getMany!([{ path: 'leak/db', field: 'password' }, { path: 'leak', field: 'raw' }]);
  errors.push(...many);
  server.faults.clear();
  server.faults.latencyMs = 1000;
  await capture(good.get({ path: 'leak/db', field: 'password' }));
  server.faults.latencyMs = 0;

  assert.equal(errors.length, 7);
  for (const e of errors) {
    assert.ok(e instanceof Error, `an Error: ${inspect(e)}`);
    for (const text of [e.message, String(e.stack), String(e), inspect(e, { depth: 10, showHidden: true }), JSON.stringify(e)]) {
      assert.ok(!text.includes(PLANTED_VALUE), `value leaked: ${text}`);
      assert.ok(!text.includes(PLANTED_KEY), `key leaked: ${text}`);
    }
  }
  for (const line of logLines) {
    assert.ok(!line.includes(PLANTED_VALUE) && !line.includes(PLANTED_KEY), `leaked in log: ${line}`);
  }
});
