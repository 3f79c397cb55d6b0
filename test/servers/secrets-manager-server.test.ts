// The Secrets Manager test server, driven by the real AWS SDK v3 and by raw signed HTTP for exact wire checks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  BatchGetSecretValueCommand,
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  PutSecretValueCommand,
  RestoreSecretCommand,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { startSecretsManagerServer, type SecretsManagerServer } from './secrets-manager';
import { signRequest, type SigV4Credentials } from './sigv4';

const CREDS: SigV4Credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
let sm: SecretsManagerServer;
let client: SecretsManagerClient;
const clients: SecretsManagerClient[] = [];

function sdk(server: SecretsManagerServer, credentials: SigV4Credentials = CREDS, extra: { maxAttempts?: number; region?: string } = {}): SecretsManagerClient {
  const c = new SecretsManagerClient({ region: extra.region ?? server.region, endpoint: server.url, credentials, maxAttempts: extra.maxAttempts });
  clients.push(c);
  return c;
}

before(async () => {
  sm = await startSecretsManagerServer();
  client = sdk(sm);
});
after(async () => {
  for (const c of clients) c.destroy();
  await sm?.close();
});

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

interface RawOptions {
  target?: string;
  body?: string;
  method?: string;
  path?: string;
  contentType?: string;
  /** false = no Authorization at all */
  sign?: false | { credentials?: SigV4Credentials; date?: number; region?: string; service?: string };
  /** replace the body after signing */
  tamperedBody?: string;
  headers?: Record<string, string>;
}

/** One request over plain node:http, signed with our own SigV4 signer unless told otherwise. */
function raw(server: SecretsManagerServer, o: RawOptions = {}): Promise<RawResponse> {
  const body = o.body ?? '{}';
  const path = o.path ?? '/';
  const method = o.method ?? 'POST';
  let headers: Record<string, string> = {
    'content-type': o.contentType ?? 'application/x-amz-json-1.1',
    ...(o.target !== undefined ? { 'x-amz-target': o.target } : {}),
    ...(o.headers ?? {}),
  };
  if (o.sign !== false) {
    const s = o.sign ?? {};
    headers = signRequest({
      method,
      host: `${server.host}:${server.port}`,
      url: path,
      headers,
      body,
      credentials: s.credentials ?? CREDS,
      region: s.region ?? server.region,
      service: s.service ?? 'secretsmanager',
      date: s.date,
    });
  }
  const sent = Buffer.from(o.tamperedBody ?? body, 'utf8');
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: server.host, port: server.port, method, path, headers: { ...headers, 'content-length': String(sent.length) }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(sent);
  });
}

/** Assert an AWS error answer on the wire: status, body exactly {__type, message}, and the headers. */
function assertWireError(r: RawResponse, status: number, type: string, message?: string | RegExp): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.headers['content-type'], 'application/x-amz-json-1.1');
  assert.equal(r.headers['x-amzn-errortype'], type);
  assert.match(String(r.headers['x-amzn-requestid']), /^[0-9a-f-]{36}$/);
  assert.deepEqual(Object.keys(r.json), ['__type', 'message']);
  assert.equal(r.json.__type, type);
  if (typeof message === 'string') assert.equal(r.json.message, message);
  else if (message) assert.match(r.json.message, message);
}

/** Assert that an SDK call fails with this AWS error name (and message). */
async function rejectsWith(p: Promise<unknown>, name: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: any) => {
    assert.equal(e.name, name, `${e.name}: ${e.message}`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

async function create(name: string, value: string | Uint8Array, extra: Record<string, unknown> = {}) {
  return client.send(new CreateSecretCommand({ Name: name, ...(typeof value === 'string' ? { SecretString: value } : { SecretBinary: value }), ...extra }));
}

test('creates a secret and reads it back by name with GetSecretValue', async () => {
  const created = await create('app/db', '{"user":"app","password":"pw1"}');
  assert.match(created.ARN!, /^arn:aws:secretsmanager:us-east-1:123456789012:secret:app\/db-[A-Za-z0-9]{6}$/);
  assert.equal(created.Name, 'app/db');
  const got = await client.send(new GetSecretValueCommand({ SecretId: 'app/db' }));
  assert.equal(got.SecretString, '{"user":"app","password":"pw1"}');
  assert.equal(got.SecretBinary, undefined);
  assert.equal(got.VersionId, created.VersionId);
  assert.deepEqual(got.VersionStages, ['AWSCURRENT']);
  assert.equal(got.ARN, created.ARN);
  assert.ok(got.CreatedDate instanceof Date && Math.abs(got.CreatedDate.getTime() - Date.now()) < 60_000);
});

test('answers with application/x-amz-json-1.1, a request id and epoch-second timestamps on the wire', async () => {
  await create('wire/plain', 'hello');
  const r = await raw(sm, { target: 'secretsmanager.GetSecretValue', body: JSON.stringify({ SecretId: 'wire/plain' }) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers['content-type'], 'application/x-amz-json-1.1');
  assert.match(String(r.headers['x-amzn-requestid']), /^[0-9a-f-]{36}$/);
  assert.equal(r.headers['x-amzn-errortype'], undefined);
  assert.equal(typeof r.json.CreatedDate, 'number');
  assert.ok(Math.abs(r.json.CreatedDate - Date.now() / 1000) < 60, `CreatedDate ${r.json.CreatedDate} is in epoch seconds`);
  assert.equal(r.json.SecretString, 'hello');
});

test('moves AWSCURRENT to each new value and leaves AWSPREVIOUS on the one before', async () => {
  const v1 = (await create('rotating', 'one')).VersionId!;
  const v2 = (await client.send(new PutSecretValueCommand({ SecretId: 'rotating', SecretString: 'two' }))).VersionId!;
  const put3 = await client.send(new PutSecretValueCommand({ SecretId: 'rotating', SecretString: 'three' }));
  assert.deepEqual(put3.VersionStages, ['AWSCURRENT']);
  const v3 = put3.VersionId!;
  assert.equal((await client.send(new GetSecretValueCommand({ SecretId: 'rotating' }))).SecretString, 'three');
  const prev = await client.send(new GetSecretValueCommand({ SecretId: 'rotating', VersionStage: 'AWSPREVIOUS' }));
  assert.equal(prev.SecretString, 'two');
  assert.equal(prev.VersionId, v2);
  const d = await client.send(new DescribeSecretCommand({ SecretId: 'rotating' }));
  // the first version lost its last label: deprecated, no longer listed
  assert.deepEqual(d.VersionIdsToStages, { [v2]: ['AWSPREVIOUS'], [v3]: ['AWSCURRENT'] });
  const old = await client.send(new GetSecretValueCommand({ SecretId: 'rotating', VersionId: v1 }));
  assert.equal(old.SecretString, 'one');
  assert.deepEqual(old.VersionStages, []);
});

test('treats PutSecretValue with a reused token and the same value as a no-op, and a different value as ResourceExistsException', async () => {
  await create('idem', 'base');
  const token = 'a1b2c3d4-0000-4000-8000-000000000001';
  const first = await client.send(new PutSecretValueCommand({ SecretId: 'idem', ClientRequestToken: token, SecretString: 'same' }));
  assert.equal(first.VersionId, token);
  const again = await client.send(new PutSecretValueCommand({ SecretId: 'idem', ClientRequestToken: token, SecretString: 'same' }));
  assert.equal(again.VersionId, token);
  assert.deepEqual(again.VersionStages, ['AWSCURRENT']);
  const d = await client.send(new DescribeSecretCommand({ SecretId: 'idem' }));
  assert.equal(Object.keys(d.VersionIdsToStages!).length, 2, 'the retry created no version');
  assert.equal((await client.send(new GetSecretValueCommand({ SecretId: 'idem', VersionStage: 'AWSPREVIOUS' }))).SecretString, 'base');
  await rejectsWith(client.send(new PutSecretValueCommand({ SecretId: 'idem', ClientRequestToken: token, SecretString: 'other' })), 'ResourceExistsException', /can't modify an existing version/);
  assert.equal((await client.send(new GetSecretValueCommand({ SecretId: 'idem' }))).SecretString, 'same');
});

test('adds a version under AWSPENDING without touching AWSCURRENT, then promotes it with UpdateSecretVersionStage', async () => {
  const current = (await create('staged', 'live')).VersionId!;
  const pending = (await client.send(new PutSecretValueCommand({ SecretId: 'staged', SecretString: 'next', VersionStages: ['AWSPENDING'] }))).VersionId!;
  assert.equal((await client.send(new GetSecretValueCommand({ SecretId: 'staged' }))).SecretString, 'live');
  assert.equal((await client.send(new GetSecretValueCommand({ SecretId: 'staged', VersionStage: 'AWSPENDING' }))).SecretString, 'next');

  await rejectsWith(
    client.send(new UpdateSecretVersionStageCommand({ SecretId: 'staged', VersionStage: 'AWSCURRENT', MoveToVersionId: pending })),
    'InvalidParameterException',
    new RegExp(`RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version ${current}`),
  );
  const moved = await client.send(new UpdateSecretVersionStageCommand({ SecretId: 'staged', VersionStage: 'AWSCURRENT', MoveToVersionId: pending, RemoveFromVersionId: current }));
  assert.equal(moved.Name, 'staged');
  let d = await client.send(new DescribeSecretCommand({ SecretId: 'staged' }));
  assert.deepEqual(d.VersionIdsToStages, { [current]: ['AWSPREVIOUS'], [pending]: ['AWSPENDING', 'AWSCURRENT'] });
  assert.equal((await client.send(new GetSecretValueCommand({ SecretId: 'staged' }))).SecretString, 'next');

  await client.send(new UpdateSecretVersionStageCommand({ SecretId: 'staged', VersionStage: 'AWSPENDING', RemoveFromVersionId: pending }));
  d = await client.send(new DescribeSecretCommand({ SecretId: 'staged' }));
  assert.deepEqual(d.VersionIdsToStages, { [current]: ['AWSPREVIOUS'], [pending]: ['AWSCURRENT'] });
  await rejectsWith(client.send(new UpdateSecretVersionStageCommand({ SecretId: 'staged', VersionStage: 'AWSCURRENT', RemoveFromVersionId: pending })), 'InvalidParameterException');
  await rejectsWith(client.send(new UpdateSecretVersionStageCommand({ SecretId: 'staged', VersionStage: 'AWSPENDING', RemoveFromVersionId: current })), 'InvalidParameterException', /not attached/);
  await rejectsWith(client.send(new UpdateSecretVersionStageCommand({ SecretId: 'staged', VersionStage: 'X', MoveToVersionId: 'no-such-version-00000000000000000000' })), 'ResourceNotFoundException');
});

test('reads a version by VersionId and rejects a VersionStage that does not belong to it', async () => {
  const v1 = (await create('by-version', 'first')).VersionId!;
  await client.send(new PutSecretValueCommand({ SecretId: 'by-version', SecretString: 'second' }));
  const got = await client.send(new GetSecretValueCommand({ SecretId: 'by-version', VersionId: v1, VersionStage: 'AWSPREVIOUS' }));
  assert.equal(got.SecretString, 'first');
  await rejectsWith(client.send(new GetSecretValueCommand({ SecretId: 'by-version', VersionId: v1, VersionStage: 'AWSCURRENT' })), 'InvalidRequestException', /not associated/);
  await rejectsWith(client.send(new GetSecretValueCommand({ SecretId: 'by-version', VersionId: '00000000-0000-4000-8000-00000000dead' })), 'ResourceNotFoundException', /VersionId/);
  await rejectsWith(client.send(new GetSecretValueCommand({ SecretId: 'by-version', VersionStage: 'AWSPENDING' })), 'ResourceNotFoundException', /staging label: AWSPENDING/);
  await rejectsWith(client.send(new GetSecretValueCommand({ SecretId: 'no/such/secret' })), 'ResourceNotFoundException', /^Secrets Manager can't find the specified secret\.$/);
});

test('stores and returns binary secrets byte for byte, base64 on the wire', async () => {
  const bytes = new Uint8Array([0, 255, 1, 2, 0x80, 0xfe, 10, 13]);
  await create('bin/blob', bytes);
  const got = await client.send(new GetSecretValueCommand({ SecretId: 'bin/blob' }));
  assert.equal(got.SecretString, undefined);
  assert.deepEqual(Buffer.from(got.SecretBinary!), Buffer.from(bytes));
  const r = await raw(sm, { target: 'secretsmanager.GetSecretValue', body: JSON.stringify({ SecretId: 'bin/blob' }) });
  assert.equal(r.json.SecretBinary, Buffer.from(bytes).toString('base64'));
  assert.equal('SecretString' in r.json, false);
});

test('accepts the full ARN and the ARN without its random suffix as SecretId for a name with slashes', async () => {
  const { ARN } = await create('team/svc/api-key', 'k-1');
  assert.equal((await client.send(new GetSecretValueCommand({ SecretId: ARN! }))).SecretString, 'k-1');
  assert.equal((await client.send(new DescribeSecretCommand({ SecretId: ARN! }))).Name, 'team/svc/api-key');
  const partial = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:team/svc/api-key';
  assert.equal((await client.send(new GetSecretValueCommand({ SecretId: partial }))).SecretString, 'k-1');
  await rejectsWith(client.send(new GetSecretValueCommand({ SecretId: ARN!.replace('us-east-1', 'eu-west-1') })), 'ResourceNotFoundException');
  await client.send(new PutSecretValueCommand({ SecretId: ARN!, SecretString: 'k-2' }));
  assert.equal((await client.send(new GetSecretValueCommand({ SecretId: 'team/svc/api-key' }))).SecretString, 'k-2');
});

test('rejects a second secret with the same name and names outside the allowed characters', async () => {
  await create('dup', 'x');
  await rejectsWith(create('dup', 'y'), 'ResourceExistsException', /The operation failed because the secret dup already exists\./);
  await rejectsWith(create('bad name', 'y'), 'InvalidParameterException', /Invalid name/);
  await rejectsWith(client.send(new CreateSecretCommand({ Name: 'both', SecretString: 'a', SecretBinary: new Uint8Array([1]) })), 'InvalidParameterException', /both a binary secret value and a string/);
});

test('creates a secret without a value, which has no AWSCURRENT until PutSecretValue', async () => {
  const c = await client.send(new CreateSecretCommand({ Name: 'empty-first', Description: 'filled later' }));
  assert.equal(c.VersionId, undefined);
  await rejectsWith(client.send(new GetSecretValueCommand({ SecretId: 'empty-first' })), 'ResourceNotFoundException', /staging label: AWSCURRENT/);
  await client.send(new PutSecretValueCommand({ SecretId: 'empty-first', SecretString: 'now' }));
  assert.equal((await client.send(new GetSecretValueCommand({ SecretId: 'empty-first' }))).SecretString, 'now');
  assert.equal((await client.send(new DescribeSecretCommand({ SecretId: 'empty-first' }))).Description, 'filled later');
});

test('answers BatchGetSecretValue by id list with the values and an Errors entry per missing secret', async () => {
  const a = await create('batch/a', 'A');
  await create('batch/b', new Uint8Array([7, 8]));
  const r = await client.send(new BatchGetSecretValueCommand({ SecretIdList: ['batch/a', 'batch/missing', a.ARN!, 'batch/b'] }));
  assert.deepEqual(
    r.SecretValues!.map((v) => [v.Name, v.SecretString ?? Buffer.from(v.SecretBinary!).toString('hex'), v.VersionStages]),
    [
      ['batch/a', 'A', ['AWSCURRENT']],
      ['batch/a', 'A', ['AWSCURRENT']],
      ['batch/b', '0708', ['AWSCURRENT']],
    ],
  );
  assert.deepEqual(r.Errors, [{ SecretId: 'batch/missing', ErrorCode: 'ResourceNotFoundException', Message: "Secrets Manager can't find the specified secret." }]);
  assert.equal(r.NextToken, undefined);
});

test('pages BatchGetSecretValue with Filters through MaxResults and NextToken, negation included', async () => {
  for (let i = 0; i < 7; i++) await create(`paged/s${i}`, `v${i}`, { Tags: [{ Key: 'team', Value: i % 2 ? 'odd' : 'even' }] });
  const seen: string[] = [];
  const sizes: number[] = [];
  let token: string | undefined;
  do {
    const r = await client.send(new BatchGetSecretValueCommand({ Filters: [{ Key: 'name', Values: ['paged/'] }], MaxResults: 3, NextToken: token }));
    sizes.push(r.SecretValues!.length);
    for (const v of r.SecretValues!) seen.push(`${v.Name}=${v.SecretString}`);
    token = r.NextToken;
  } while (token);
  assert.deepEqual(sizes, [3, 3, 1]);
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6].map((i) => `paged/s${i}=v${i}`));
  const odd = await client.send(new BatchGetSecretValueCommand({ Filters: [{ Key: 'name', Values: ['paged/'] }, { Key: 'tag-value', Values: ['odd'] }] }));
  assert.deepEqual(odd.SecretValues!.map((v) => v.Name), ['paged/s1', 'paged/s3', 'paged/s5']);
  const notS0 = await client.send(new BatchGetSecretValueCommand({ Filters: [{ Key: 'name', Values: ['paged/', '!paged/s0'] }] }));
  assert.equal(notS0.SecretValues!.some((v) => v.Name === 'paged/s0'), false);
  assert.equal(notS0.SecretValues!.length, 6);
});

test('rejects BatchGetSecretValue with more than 20 ids, with both or neither selector, and with a bad NextToken', async () => {
  const ids = Array.from({ length: 21 }, (_, i) => `n${i}`);
  await rejectsWith(client.send(new BatchGetSecretValueCommand({ SecretIdList: ids })), 'ValidationException', /less than or equal to 20/);
  await rejectsWith(client.send(new BatchGetSecretValueCommand({ SecretIdList: ['a'], Filters: [{ Key: 'name', Values: ['a'] }] })), 'InvalidParameterException');
  await rejectsWith(client.send(new BatchGetSecretValueCommand({})), 'InvalidParameterException');
  await rejectsWith(client.send(new BatchGetSecretValueCommand({ Filters: [{ Key: 'name', Values: ['a'] }], NextToken: 'garbage' })), 'InvalidNextTokenException');
});

test('schedules a deletion, refuses reads meanwhile as AWS does, restores, and force-deletes', async () => {
  await create('doomed', 'bye');
  await rejectsWith(client.send(new DeleteSecretCommand({ SecretId: 'doomed', RecoveryWindowInDays: 7, ForceDeleteWithoutRecovery: true })), 'InvalidParameterException', /in conjunction with RecoveryWindowInDays/);
  await rejectsWith(client.send(new DeleteSecretCommand({ SecretId: 'doomed', RecoveryWindowInDays: 3 })), 'InvalidParameterException', /between 7 and 30/);
  const del = await client.send(new DeleteSecretCommand({ SecretId: 'doomed', RecoveryWindowInDays: 7 }));
  assert.ok(Math.abs(del.DeletionDate!.getTime() - (Date.now() + 7 * 86400_000)) < 60_000);

  const deletedMessage = "You can't perform this operation on the secret because it was marked for deletion.";
  await rejectsWith(client.send(new GetSecretValueCommand({ SecretId: 'doomed' })), 'InvalidRequestException', new RegExp(`^${deletedMessage}$`));
  await rejectsWith(client.send(new PutSecretValueCommand({ SecretId: 'doomed', SecretString: 'x' })), 'InvalidRequestException');
  await rejectsWith(client.send(new DeleteSecretCommand({ SecretId: 'doomed' })), 'InvalidRequestException');
  await rejectsWith(create('doomed', 'again'), 'InvalidRequestException', /already scheduled for deletion/);
  const d = await client.send(new DescribeSecretCommand({ SecretId: 'doomed' }));
  assert.ok(d.DeletedDate instanceof Date);
  const b = await client.send(new BatchGetSecretValueCommand({ SecretIdList: ['doomed'] }));
  assert.deepEqual(b.Errors, [{ SecretId: 'doomed', ErrorCode: 'InvalidRequestException', Message: deletedMessage }]);

  await client.send(new RestoreSecretCommand({ SecretId: 'doomed' }));
  assert.equal((await client.send(new GetSecretValueCommand({ SecretId: 'doomed' }))).SecretString, 'bye');

  const forced = await client.send(new DeleteSecretCommand({ SecretId: 'doomed', ForceDeleteWithoutRecovery: true }));
  assert.equal(forced.Name, 'doomed');
  await rejectsWith(client.send(new GetSecretValueCommand({ SecretId: 'doomed' })), 'ResourceNotFoundException');
  // forcing the deletion of a secret that is gone is not an error (documented)
  await client.send(new DeleteSecretCommand({ SecretId: 'doomed', ForceDeleteWithoutRecovery: true }));
  await rejectsWith(client.send(new DeleteSecretCommand({ SecretId: 'doomed' })), 'ResourceNotFoundException');
});

test('lists secrets page by page and leaves out those scheduled for deletion unless asked', async () => {
  for (const n of ['list/a', 'list/b', 'list/c']) await create(n, n);
  await client.send(new DeleteSecretCommand({ SecretId: 'list/b' }));
  const names: string[] = [];
  let token: string | undefined;
  do {
    const r = await client.send(new ListSecretsCommand({ Filters: [{ Key: 'name', Values: ['list/'] }], MaxResults: 1, NextToken: token }));
    names.push(...r.SecretList!.map((s) => s.Name!));
    token = r.NextToken;
  } while (token);
  assert.deepEqual(names, ['list/a', 'list/c']);
  const all = await client.send(new ListSecretsCommand({ Filters: [{ Key: 'name', Values: ['list/'] }], IncludePlannedDeletion: true }));
  assert.deepEqual(all.SecretList!.map((s) => s.Name), ['list/a', 'list/b', 'list/c']);
  assert.equal(Object.values(all.SecretList![0].SecretVersionsToStages!)[0][0], 'AWSCURRENT');
});

test('answers a request without Authorization with 400 MissingAuthenticationTokenException', async () => {
  const r = await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}', sign: false });
  assertWireError(r, 400, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
});

test('answers a signature made with the wrong secret key with 400 InvalidSignatureException', async () => {
  const r = await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}', sign: { credentials: { accessKeyId: 'test', secretAccessKey: 'not-the-key' } } });
  assertWireError(r, 400, 'InvalidSignatureException', /^The request signature we calculated does not match the signature you provided\. Check your AWS Secret Access Key and signing method\./);
  // and through the SDK, which must not retry it
  const before = sm.count('GetSecretValue');
  await rejectsWith(sdk(sm, { accessKeyId: 'test', secretAccessKey: 'nope' }).send(new GetSecretValueCommand({ SecretId: 'app/db' })), 'InvalidSignatureException');
  assert.equal(sm.count('GetSecretValue') - before, 1);
});

test('answers a body changed after signing with 400 InvalidSignatureException', async () => {
  const r = await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}', tamperedBody: '{"SecretId":"app/xx"}' });
  assertWireError(r, 400, 'InvalidSignatureException');
  // without the optional x-amz-content-sha256 header the signature itself no longer matches
  const signed = signRequest({ method: 'POST', host: `${sm.host}:${sm.port}`, url: '/', headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'secretsmanager.GetSecretValue' }, body: '{"SecretId":"app/db"}', credentials: CREDS, region: sm.region, service: 'secretsmanager' });
  const r2 = await new Promise<RawResponse>((resolve, reject) => {
    const { 'x-amz-content-sha256': _dropped, ...headers } = signed;
    const body = '{"SecretId":"app/xy"}';
    const req = httpRequest({ host: sm.host, port: sm.port, method: 'POST', path: '/', headers: { ...headers, 'content-length': String(body.length) }, agent: false }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
  assertWireError(r2, 400, 'InvalidSignatureException', /does not match the signature you provided/);
});

test('answers an unknown access key id with 400 UnrecognizedClientException, through the SDK too', async () => {
  const r = await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}', sign: { credentials: { accessKeyId: 'AKIDUNKNOWN', secretAccessKey: 'x' } } });
  assertWireError(r, 400, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
  await rejectsWith(sdk(sm, { accessKeyId: 'AKIDUNKNOWN', secretAccessKey: 'x' }).send(new GetSecretValueCommand({ SecretId: 'app/db' })), 'UnrecognizedClientException', /security token included in the request is invalid/);
});

test('answers a request signed more than 15 minutes away from now with InvalidSignatureException', async () => {
  const old = await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}', sign: { date: Date.now() - 16 * 60_000 } });
  assertWireError(old, 400, 'InvalidSignatureException', /^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 15 min\.\)$/);
  const future = await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}', sign: { date: Date.now() + 16 * 60_000 } });
  assertWireError(future, 400, 'InvalidSignatureException', /^Signature not yet current: /);
  const slightlyOff = await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}', sign: { date: Date.now() - 10 * 60_000 } });
  assert.equal(slightlyOff.status, 200, slightlyOff.text);
});

test('answers a signature scoped to another region or service with InvalidSignatureException', async () => {
  const region = await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}', sign: { region: 'eu-west-1' } });
  assertWireError(region, 400, 'InvalidSignatureException', /scoped to a valid region/);
  const service = await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}', sign: { service: 'kms' } });
  assertWireError(service, 400, 'InvalidSignatureException', /scoped to correct service: 'secretsmanager'/);
  await rejectsWith(sdk(sm, CREDS, { region: 'eu-west-1' }).send(new GetSecretValueCommand({ SecretId: 'app/db' })), 'InvalidSignatureException');
});

test('answers an Authorization header that lacks its parts with 400 IncompleteSignatureException', async () => {
  const r = await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{}', sign: false, headers: { authorization: 'AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/secretsmanager/aws4_request' } });
  assertWireError(r, 400, 'IncompleteSignatureException', /requires 'Signature' parameter\. .*requires 'SignedHeaders' parameter\. .*'X-Amz-Date' or a 'Date' header/);
});

test('requires the session token of temporary credentials and rejects a wrong or missing one', async () => {
  const temp = { accessKeyId: 'ASIATEMP', secretAccessKey: 'temp-secret', sessionToken: 'session-token-1' };
  const server = await startSecretsManagerServer({ credentials: [temp, { accessKeyId: 'AKIAPERM', secretAccessKey: 'perm-secret' }] });
  try {
    await sdk(server, temp).send(new CreateSecretCommand({ Name: 's', SecretString: 'v' }));
    assert.equal((await sdk(server, temp).send(new GetSecretValueCommand({ SecretId: 's' }))).SecretString, 'v');
    assert.equal((await sdk(server, { accessKeyId: 'AKIAPERM', secretAccessKey: 'perm-secret' }).send(new GetSecretValueCommand({ SecretId: 's' }))).SecretString, 'v');
    await rejectsWith(sdk(server, { ...temp, sessionToken: 'session-token-2' }).send(new GetSecretValueCommand({ SecretId: 's' })), 'UnrecognizedClientException');
    await rejectsWith(sdk(server, { accessKeyId: temp.accessKeyId, secretAccessKey: temp.secretAccessKey }).send(new GetSecretValueCommand({ SecretId: 's' })), 'UnrecognizedClientException');
    await rejectsWith(sdk(server, { accessKeyId: 'AKIAPERM', secretAccessKey: 'perm-secret', sessionToken: 'extra' }).send(new GetSecretValueCommand({ SecretId: 's' })), 'UnrecognizedClientException');
  } finally {
    await server.close();
  }
});

test('answers an unknown X-Amz-Target with 400 UnknownOperationException and bad JSON with 400 SerializationException', async () => {
  assertWireError(await raw(sm, { target: 'secretsmanager.RotateSecret' }), 400, 'UnknownOperationException');
  assertWireError(await raw(sm, { target: 'kms.Decrypt' }), 400, 'UnknownOperationException');
  assertWireError(await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{not json' }), 400, 'SerializationException');
  assertWireError(await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{}' }), 400, 'ValidationException', /'secretId' failed to satisfy constraint: Member must not be null/);
  assertWireError(await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}', contentType: 'text/plain' }), 400, 'SerializationException');
});

test('lets the SDK retry through injected throttling and counts every attempt', async () => {
  await create('throttled', 'ok');
  const before = sm.count('GetSecretValue');
  sm.faults.throttleNext(2);
  const got = await client.send(new GetSecretValueCommand({ SecretId: 'throttled' }));
  assert.equal(got.SecretString, 'ok');
  assert.equal(got.$metadata.attempts, 3);
  assert.equal(sm.count('GetSecretValue') - before, 3);
});

test('answers injected throttling with 400 ThrottlingException "Rate exceeded" on the wire', async () => {
  sm.faults.throttleNext(1);
  assertWireError(await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}' }), 400, 'ThrottlingException', 'Rate exceeded');
  assert.equal((await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}' })).status, 200);
});

test('answers injected failures with 500 InternalServiceError or 503 ServiceUnavailable', async () => {
  sm.faults.failNext(1);
  sm.faults.failNext(1, 503);
  assertWireError(await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}' }), 500, 'InternalServiceError');
  assertWireError(await raw(sm, { target: 'secretsmanager.GetSecretValue', body: '{"SecretId":"app/db"}' }), 503, 'ServiceUnavailable');
  sm.faults.failNext(1);
  await assert.rejects(sdk(sm, CREDS, { maxAttempts: 1 }).send(new GetSecretValueCommand({ SecretId: 'app/db' })), (e: any) => e.name === 'InternalServiceError' && e.$metadata.httpStatusCode === 500);
  assert.equal((await client.send(new GetSecretValueCommand({ SecretId: 'app/db' }))).VersionStages![0], 'AWSCURRENT');
});

test('delays every answer by faults.latencyMs', async () => {
  sm.faults.latencyMs = 300;
  try {
    const t0 = Date.now();
    await client.send(new GetSecretValueCommand({ SecretId: 'app/db' }));
    assert.ok(Date.now() - t0 >= 280, `answered after ${Date.now() - t0} ms`);
  } finally {
    sm.faults.latencyMs = 0;
  }
});

test('drops connections on stop(), refuses new ones, and serves the same secrets on the same port after start()', async () => {
  const server = await startSecretsManagerServer();
  try {
    const c = sdk(server, CREDS, { maxAttempts: 1 });
    await c.send(new CreateSecretCommand({ Name: 'kept', SecretString: 'still here' }));
    const port = server.port;
    server.faults.latencyMs = 2000;
    const inFlight = c.send(new GetSecretValueCommand({ SecretId: 'kept' }));
    await new Promise((r) => setTimeout(r, 100));
    await server.stop();
    await assert.rejects(inFlight, (e: any) => /ECONNRESET|socket hang up|aborted/i.test(`${e.code} ${e.message}`));
    await assert.rejects(c.send(new GetSecretValueCommand({ SecretId: 'kept' })), (e: any) => e.code === 'ECONNREFUSED');
    server.faults.latencyMs = 0;
    await server.start();
    assert.equal(server.port, port);
    assert.equal((await c.send(new GetSecretValueCommand({ SecretId: 'kept' }))).SecretString, 'still here');
  } finally {
    await server.close();
  }
});

test('runs standalone from the CLI: prints one line when listening, serves signed requests, exits on SIGTERM', async () => {
  const child = spawn(process.execPath, [join(__dirname, 'secrets-manager.js'), '--port', '0', '--access-key-id', 'cli-key', '--secret-access-key', 'cli-secret', '--region', 'eu-west-2', '--host', '127.0.0.1'], {
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  try {
    const rl = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no line within 10 s')), 10_000);
      rl.once('line', (l) => {
        clearTimeout(timer);
        resolve(l);
      });
      child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
    });
    lines.push(first);
    rl.on('line', (l) => lines.push(l));
    const m = /listening on (http:\/\/127\.0\.0\.1:(\d+)) \(region eu-west-2\)$/.exec(first);
    assert.ok(m, first);
    const c = new SecretsManagerClient({ region: 'eu-west-2', endpoint: m[1], credentials: { accessKeyId: 'cli-key', secretAccessKey: 'cli-secret' } });
    clients.push(c);
    const created = await c.send(new CreateSecretCommand({ Name: 'cli/secret', SecretString: 'from-cli' }));
    assert.match(created.ARN!, /^arn:aws:secretsmanager:eu-west-2:/);
    assert.equal((await c.send(new GetSecretValueCommand({ SecretId: 'cli/secret' }))).SecretString, 'from-cli');
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.deepEqual(lines, [first], 'exactly one line on stdout');
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});
