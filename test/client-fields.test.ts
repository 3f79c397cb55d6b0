// Fields whose value goes back to clients (a mocked body and its headers, a third-party plugin's
// field marked x-sent-to-client) cannot hold a secret reference: the gateway would resolve it and
// serve the secret to anyone. An Admin API write is refused with 400 naming the field and stores
// nothing; a config file does not load and `gatehouse validate` names the field. Planted canaries
// (an env variable, a secret provider's value, the admin key) are never in any answer.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { defineProvider, type SecretValue } from '../core/sdk';
import type { Extension } from '../core/contracts';
import { createRegistry } from '../core/config/registry';
import { validateConfig } from '../core/config/validate';
import { builtinExtensions } from '../core/extensions/builtins';
import { plantSecret } from '../core/testing';
import { banner } from './helpers/plugins';
import { bootGateway, runCli, tempDir, type TestGateway, loadIssues } from './helpers/harness';

const ENV_CANARY = `cf-env-canary-${randomBytes(12).toString('hex')}`;
const MEM_CANARY = `cf-mem-canary-${randomBytes(12).toString('hex')}`;
const ADMIN_KEY = `cf-admin-key-${randomBytes(12).toString('hex')}`;
const REFUSED = 'is sent back to clients, so it cannot be a secret reference: write the value itself';

/** A secret provider holding one canary. */
const mem: Extension = {
  kind: 'provider',
  provider: defineProvider({
    name: 'mem',
    version: '1.0.0',
    schema: { type: 'object', additionalProperties: false },
    create: () => ({
      async get({ path, field }): Promise<SecretValue | undefined> {
        return path === 'app' && field === 'value' ? { value: MEM_CANARY } : undefined;
      },
    }),
  }),
};

let g: TestGateway;
let admin: string;
/** Every answer the tests got, to look for the canaries in. */
const answers: string[] = [];

before(async () => {
  process.env.GH_CF_CANARY = ENV_CANARY;
  process.env.GH_CF_ADMIN_KEY = ADMIN_KEY;
  plantSecret('env', ENV_CANARY, ADMIN_KEY);
  plantSecret('mem', MEM_CANARY);
  g = await bootGateway(
    {
      admin: { key: '$env://GH_CF_ADMIN_KEY' },
      secrets: [{ id: 'mem/main' }],
      routes: [{ id: 'lit', uri: '/lit', plugins: { mocking: { response_example: 'hello', response_headers: { 'x-lit': 'v' } } } }],
    },
    { extensions: [mem, { kind: 'plugin', plugin: banner }], adminListen: '127.0.0.1:0' },
  );
  admin = `http://127.0.0.1:${g.gw.adminAddress!.port}`;
});
after(async () => {
  await g?.close();
  delete process.env.GH_CF_CANARY;
  delete process.env.GH_CF_ADMIN_KEY;
});

async function call(method: string, url: string, body?: unknown, key: string | null = ADMIN_KEY): Promise<{ status: number; text: string; json: any }> {
  const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
  if (key !== null) headers['x-api-key'] = key;
  const r = await request(url, { method: method as 'GET', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.body.text();
  answers.push(JSON.stringify(r.headers), text);
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, text, json };
}

/** The write is refused with 400 naming exactly these fields (in the document: `routes[i].<field>`). */
async function refused(method: string, path: string, body: unknown, fields: string[], probe: string): Promise<void> {
  const r = await call(method, `${admin}${path}`, body);
  // what a client gets from the route now (had the write been taken, the resolved secret)
  const served = await g.request(probe);
  answers.push(served.body, JSON.stringify([...served.headers]));
  assert.equal(r.status, 400, r.text);
  assert.deepEqual(
    (r.json.errors as string[]).filter((e) => e.endsWith(REFUSED)).map((e) => e.replace(/^(routes|consumers)\[\d+\]\./, '')),
    fields.map((f) => `${f}: ${REFUSED}`),
    r.text,
  );
}

const REFERENCES = ['$env://GH_CF_CANARY', '$ENV://GH_CF_CANARY', '$env://GH_CF_ADMIN_KEY', '$secret://mem/main/app/value'];

test("Admin API: a reference in mocking's body, content type or headers is 400 naming the field; nothing is stored or served", async () => {
  for (const ref of REFERENCES) {
    await refused('PUT', '/admin/routes/leak', { uri: '/leak', plugins: { mocking: { response_example: ref } } }, ['plugins.mocking.response_example'], '/leak');
    await refused('PUT', '/apisix/admin/routes/leak', { uri: '/leak', plugins: { mocking: { response_headers: { 'x-ok': 'plain', 'X-Leak': ref } } } }, ['plugins.mocking.response_headers.X-Leak'], '/leak');
    await refused('POST', '/admin/routes', { uri: '/leak', plugins: { mocking: { content_type: ref, response_example: ref } } }, ['plugins.mocking.content_type', 'plugins.mocking.response_example'], '/leak');
    // a PATCH of a working route, and a sub-path PATCH of the field itself
    await refused('PATCH', '/admin/routes/lit', { plugins: { mocking: { response_example: ref } } }, ['plugins.mocking.response_example'], '/lit');
    const sub = await call('PATCH', `${admin}/admin/routes/lit/plugins/mocking/response_headers/x-lit`, ref);
    assert.equal(sub.status, 400, sub.text);
    assert.ok((sub.json.errors as string[]).some((e) => e.endsWith(`response_headers.x-lit: ${REFUSED}`)), sub.text);
  }
  assert.equal((await call('GET', `${admin}/admin/routes/leak`)).status, 404, 'nothing stored');
  assert.equal((await call('GET', `${admin}/admin/routes`)).json.total, 1, 'only the literal route');
  const leak = await g.request('/leak');
  answers.push(leak.body, JSON.stringify([...leak.headers]));
  assert.equal(leak.status, 404);
  // the literal route is untouched
  const lit = await g.request('/lit');
  answers.push(lit.body, JSON.stringify([...lit.headers]));
  assert.equal(lit.body, 'hello');
  assert.equal(lit.headers.get('x-lit'), 'v');
});

test("Admin API: a third-party plugin's marked field refuses a reference anywhere in it, on routes and consumers; its other fields do not", async () => {
  await refused('PUT', '/admin/routes/b', { uri: '/b', plugins: { banner: { page: { title: 'hi', lines: ['ok', '$env://GH_CF_CANARY'] } } } }, ['plugins.banner.page.lines[1]'], '/b');
  await refused('PUT', '/admin/consumers/jack', { plugins: { banner: { greeting: '$secret://mem/main/app/value' } } }, ['plugins.banner.greeting'], '/b');
  assert.equal((await call('GET', `${admin}/admin/consumers/jack`)).status, 404);
  // a reference in the field that goes upstream, and literals in the marked one, are accepted
  const ok = await call('PUT', `${admin}/admin/routes/b`, { uri: '/b', plugins: { banner: { page: { title: 'hi', lines: ['costs $5'] }, upstream_token: '$env://GH_CF_CANARY' } } });
  assert.equal(ok.status, 201, ok.text);
  const consumer = await call('PUT', `${admin}/admin/consumers/jack`, { plugins: { banner: { greeting: 'hello', key: '$secret://mem/main/app/value' } } });
  assert.equal(consumer.status, 201, consumer.text);
  const b = await g.request('/b');
  answers.push(b.body, JSON.stringify([...b.headers]));
  assert.equal(b.body, 'hi\ncosts $5');
});

test('a literal value in a mocking field is stored and served as written', async () => {
  const put = await call('PUT', `${admin}/admin/routes/lit2`, { uri: '/lit2', plugins: { mocking: { response_example: 'see $env://GH_CF_CANARY', response_headers: { 'x-a': '$5' }, content_type: 'text/plain' } } });
  assert.equal(put.status, 201, put.text);
  const r = await g.request('/lit2');
  answers.push(r.body, JSON.stringify([...r.headers]));
  assert.equal(r.body, 'see $env://GH_CF_CANARY');
  assert.equal(r.headers.get('x-a'), '$5');
});

test('a config file with a reference in a field sent to clients does not load, and `gatehouse validate` names the field', { timeout: 30000 }, async () => {
  const dir = tempDir();
  const file = join(dir, 'gatehouse.yaml');
  // a Vault resource nobody answers for: the file is refused before any backend is asked
  writeFileSync(
    file,
    `secrets: [{ id: vault/main, uri: "http://127.0.0.1:1", prefix: kv, token: "t" }]
routes:
  - id: leak
    uri: /leak
    plugins: { mocking: { response_example: "$env://GH_CF_CANARY", response_headers: { x-leak: "$secret://vault/main/app/key" } } }
`,
  );
  const expected = [`routes[0].plugins.mocking.response_example: ${REFUSED}`, `routes[0].plugins.mocking.response_headers.x-leak: ${REFUSED}`];
  assert.deepEqual(await loadIssues(file), expected);
  const v = await runCli(['validate', '-c', file]);
  answers.push(v.stdout, v.stderr);
  assert.notEqual(v.code, 0);
  for (const line of expected) assert.ok(v.stderr.includes(line) || v.stdout.includes(line), `${line}\n${v.stdout}${v.stderr}`);
});

test('a plugin loaded through extensions: uses the keyword the same way; a keyword that is not a boolean refuses the extension', { timeout: 30000 }, async () => {
  const dir = tempDir();
  const sdk = join(__dirname, '..', 'core', 'sdk');
  const module = (mark: string) => `const { definePlugin, SENT_TO_CLIENT } = require(${JSON.stringify(sdk)});
module.exports = definePlugin({
  name: 'notice', version: '1.0.0', priority: 1, gatehouse: '^0.1.0',
  schema: { type: 'object', properties: { text: { type: 'string', [SENT_TO_CLIENT]: ${mark} } }, required: ['text'] },
  create: (conf) => ({ access: (ctx) => ctx.respond(200, conf.text) }),
});\n`;
  writeFileSync(join(dir, 'notice.js'), module('true'));
  writeFileSync(join(dir, 'odd.js'), module("'yes'"));
  const file = join(dir, 'gatehouse.yaml');
  const config = (ext: string, text: string) => `extensions: [${ext}]\nroutes:\n  - { id: n, uri: /n, plugins: { notice: { text: "${text}" } } }\n`;
  writeFileSync(file, config('./notice.js', '$env://GH_CF_CANARY'));
  assert.deepEqual(await loadIssues(file), [`routes[0].plugins.notice.text: ${REFUSED}`]);
  const v = await runCli(['validate', '-c', file]);
  answers.push(v.stdout, v.stderr);
  assert.notEqual(v.code, 0);
  assert.ok(`${v.stdout}${v.stderr}`.includes(`routes[0].plugins.notice.text: ${REFUSED}`), v.stdout + v.stderr);
  writeFileSync(file, config('./notice.js', 'plain notice'));
  assert.equal((await runCli(['validate', '-c', file])).code, 0);
  writeFileSync(file, config('./odd.js', 'plain notice'));
  const odd = await loadIssues(file);
  assert.equal(odd.length, 1, odd.join('\n'));
  assert.match(odd[0], /^extensions\[0\]: \.\/odd\.js: plugin "notice": its schema is not a valid JSON schema: .*x-sent-to-client/);
});

test('every first-party field whose value goes to clients refuses a reference; the fields that go upstream keep taking one', () => {
  const registry = createRegistry(
    builtinExtensions.flatMap((x) => (x.kind === 'plugin' ? [x.plugin] : [])),
    builtinExtensions.flatMap((x) => (x.kind === 'provider' ? [x.provider] : [])),
  );
  const ref = '$env://GH_CF_CANARY';
  const plugins = {
    cors: { allow_origins: ref, allow_methods: ref, allow_headers: ref, expose_headers: ref, timing_allow_origins: ref, allow_origins_by_regex: ['^https://a\\.example$', ref], timing_allow_origins_by_regex: [ref] },
    'ip-restriction': { whitelist: ['127.0.0.1'], message: ref },
    'limit-count': { count: 1, time_window: 1, rejected_msg: ref, policy: 'redis', redis_host: 'localhost', redis_password: ref },
    'request-id': { header_name: ref, range_id: { char_set: ref } },
    'proxy-rewrite': { headers: { set: { 'x-upstream': ref } } },
  };
  const r = validateConfig({ routes: [{ id: 'r', uri: '/r', plugins }] }, registry);
  assert.deepEqual(
    (r.issues ?? []).map((i) => `${i.path}: ${i.message}`),
    [
      'cors.allow_origins',
      'cors.allow_methods',
      'cors.allow_headers',
      'cors.expose_headers',
      'cors.allow_origins_by_regex[1]',
      'cors.timing_allow_origins',
      'cors.timing_allow_origins_by_regex[0]',
      'ip-restriction.message',
      'limit-count.rejected_msg',
      'request-id.header_name',
      'request-id.range_id.char_set',
    ].map((f) => `routes[0].plugins.${f}: ${REFUSED}`),
  );
});

test('no canary was in any answer', () => {
  for (const [name, canary] of Object.entries({ ENV_CANARY, MEM_CANARY, ADMIN_KEY })) assert.equal(answers.some((a) => a.includes(canary)), false, `${name} was served`);
  assert.ok(answers.length > 20, `${answers.length} answers`);
});
