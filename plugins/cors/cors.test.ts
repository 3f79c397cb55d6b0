// cors through a real gateway and a real upstream: defaults, origin lists, regexes, "**", credentials,
// preflights answered without the upstream, Vary, Timing-Allow-Origin, local responses, and the
// config errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startTestGateway, type TestGateway } from 'gatehouse-gateway/testing';
import type { ConfigIssue } from 'gatehouse-gateway/sdk';

const CORS_HEADERS = ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-expose-headers', 'access-control-max-age', 'access-control-allow-credentials'];

const routes: Array<[string, Record<string, unknown>]> = [
  ['/default', { cors: {} }],
  ['/list', { cors: { allow_origins: 'http://a.com,https://b.com:8443', allow_methods: 'GET,POST', allow_headers: 'x-a,x-b', expose_headers: 'x-e1,x-e2', max_age: 50, allow_credential: true } }],
  ['/single', { cors: { allow_origins: 'http://a.com' } }],
  ['/regex', { cors: { allow_origins: 'http://ignored.com', allow_origins_by_regex: ['^https://[a-z]+\\.test\\.com$', '^http://localhost:[0-9]+$'] } }],
  ['/force', { cors: { allow_origins: '**', allow_methods: '**', allow_headers: '**', expose_headers: 'x-e', max_age: -1, allow_credential: true } }],
  ['/timing', { cors: { timing_allow_origins: 'http://a.com,http://b.com' } }],
  ['/timing-regex', { cors: { timing_allow_origins: 'http://ignored.com', timing_allow_origins_by_regex: ['\\.test\\.com$'] } }],
  ['/vary', { cors: { allow_origins: 'http://a.com' }, mocking: { response_example: 'mocked', response_headers: { Vary: 'Accept-Encoding', 'Access-Control-Allow-Origin': 'http://from-upstream.com' } } }],
  ['/auth', { cors: { allow_origins: 'http://a.com' }, 'key-auth': {} }],
];

let gw: TestGateway;
before(async () => {
  gw = await startTestGateway({
    config: (upstream) => ({
      routes: routes.map(([uri, plugins], i) => ({ id: `r${i}`, uri, plugins, upstream: { nodes: { [upstream]: 1 } } })),
      consumers: [{ username: 'jack', plugins: { 'key-auth': { key: 'k' } } }],
    }),
  });
});
after(() => gw?.close());

async function call(path: string, headers: Record<string, string> = {}, method: 'GET' | 'OPTIONS' | 'POST' = 'GET') {
  const r = await request(gw.url + path, { method, headers });
  const body = await r.body.text();
  return { status: r.statusCode, headers: r.headers, body };
}

/** Only the CORS headers of a response, to compare whole sets at once. */
function corsOf(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of CORS_HEADERS) if (h[k] !== undefined) out[k] = String(h[k]);
  return out;
}

async function refused(cors: unknown): Promise<readonly ConfigIssue[]> {
  let issues: readonly ConfigIssue[] | undefined;
  await assert.rejects(startTestGateway({ config: (up) => ({ routes: [{ id: 'r', uri: '/', plugins: { cors }, upstream: { nodes: { [up]: 1 } } }] }) }), (err: Error & { code?: string; issues?: readonly ConfigIssue[] }) => {
    assert.equal(err.code, 'GH_ERR_CONFIG_INVALID');
    issues = err.issues;
    return true;
  });
  return issues!;
}

test('defaults: any origin gets "*" for origin, methods and headers, max-age 5, no expose or credentials headers, no Vary', async () => {
  const before = gw.upstream.requests.length;
  const r = await call('/default', { origin: 'http://a.com' });
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).url, '/default', 'a simple request reaches the upstream');
  assert.equal(gw.upstream.requests.length, before + 1);
  assert.deepEqual(corsOf(r.headers), { 'access-control-allow-origin': '*', 'access-control-allow-methods': '*', 'access-control-allow-headers': '*', 'access-control-max-age': '5' });
  assert.equal(r.headers.vary, undefined);
});

test('defaults: a request without Origin still gets "*" (as APISIX)', async () => {
  const r = await call('/default');
  assert.equal(r.headers['access-control-allow-origin'], '*');
});

test('a preflight is answered 200 by the gateway with the CORS headers and an empty body; the upstream is not called', async () => {
  const before = gw.upstream.requests.length;
  const r = await call('/list', { origin: 'https://b.com:8443', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-a' }, 'OPTIONS');
  assert.equal(r.status, 200);
  assert.equal(r.body, '');
  assert.equal(r.headers['content-length'], '0');
  assert.deepEqual(corsOf(r.headers), {
    'access-control-allow-origin': 'https://b.com:8443',
    'access-control-allow-methods': 'GET,POST',
    'access-control-allow-headers': 'x-a,x-b',
    'access-control-expose-headers': 'x-e1,x-e2',
    'access-control-max-age': '50',
    'access-control-allow-credentials': 'true',
  });
  assert.equal(r.headers.vary, 'Origin');
  assert.equal(gw.upstream.requests.length, before);
});

test('every OPTIONS request is answered by the gateway, even without Origin (as APISIX)', async () => {
  const before = gw.upstream.requests.length;
  const r = await call('/default', {}, 'OPTIONS');
  assert.equal(r.status, 200);
  assert.equal(r.headers['access-control-allow-origin'], '*');
  assert.equal(gw.upstream.requests.length, before);
});

test('an origin in the list is echoed with credentials on a simple request; others get no CORS headers but Vary: Origin', async () => {
  const ok = await call('/list', { origin: 'http://a.com' }, 'POST');
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['access-control-allow-origin'], 'http://a.com');
  assert.equal(ok.headers['access-control-allow-credentials'], 'true');
  assert.equal(ok.headers['access-control-expose-headers'], 'x-e1,x-e2');
  assert.equal(ok.headers.vary, 'Origin');
  const no = await call('/list', { origin: 'http://evil.com' });
  assert.equal(no.status, 200, 'the request itself is not refused: the browser enforces CORS');
  assert.deepEqual(corsOf(no.headers), {});
  assert.equal(no.headers.vary, 'Origin');
  const preflight = await call('/list', { origin: 'http://evil.com', 'access-control-request-method': 'GET' }, 'OPTIONS');
  assert.equal(preflight.status, 200);
  assert.deepEqual(corsOf(preflight.headers), {});
  assert.deepEqual(corsOf((await call('/list')).headers), {}, 'no Origin, no CORS headers when origins are listed');
});

test('a single origin must match exactly', async () => {
  assert.equal((await call('/single', { origin: 'http://a.com' })).headers['access-control-allow-origin'], 'http://a.com');
  assert.deepEqual(corsOf((await call('/single', { origin: 'http://a.com:8080' })).headers), {});
  assert.deepEqual(corsOf((await call('/single', { origin: 'https://a.com' })).headers), {});
});

test('allow_origins_by_regex: matching origins are echoed and allow_origins is ignored', async () => {
  assert.equal((await call('/regex', { origin: 'https://app.test.com' })).headers['access-control-allow-origin'], 'https://app.test.com');
  assert.equal((await call('/regex', { origin: 'http://localhost:3000' })).headers['access-control-allow-origin'], 'http://localhost:3000');
  assert.deepEqual(corsOf((await call('/regex', { origin: 'http://ignored.com' })).headers), {});
  assert.deepEqual(corsOf((await call('/regex', { origin: 'https://app.test.com.evil.net' })).headers), {});
  assert.equal((await call('/regex', { origin: 'http://x.org' })).headers.vary, 'Origin');
});

test('"**" echoes the origin and the requested headers, lists every method, and works with credentials', async () => {
  const r = await call('/force', { origin: 'http://any.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-custom,content-type' }, 'OPTIONS');
  assert.deepEqual(corsOf(r.headers), {
    'access-control-allow-origin': 'http://any.example',
    'access-control-allow-methods': 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE',
    'access-control-allow-headers': 'x-custom,content-type',
    'access-control-expose-headers': 'x-e',
    'access-control-max-age': '-1',
    'access-control-allow-credentials': 'true',
  });
  const simple = await call('/force', { origin: 'http://other.example' });
  assert.equal(simple.headers['access-control-allow-origin'], 'http://other.example');
  assert.equal(simple.headers['access-control-allow-headers'], undefined, 'nothing requested, no Access-Control-Allow-Headers');
});

test('timing_allow_origins sends Timing-Allow-Origin to listed origins only', async () => {
  assert.equal((await call('/timing', { origin: 'http://b.com' })).headers['timing-allow-origin'], 'http://b.com');
  assert.equal((await call('/timing', { origin: 'http://c.com' })).headers['timing-allow-origin'], undefined);
  assert.equal((await call('/default', { origin: 'http://b.com' })).headers['timing-allow-origin'], undefined, 'not configured, not sent');
});

test('timing_allow_origins_by_regex replaces timing_allow_origins', async () => {
  assert.equal((await call('/timing-regex', { origin: 'https://a.test.com' })).headers['timing-allow-origin'], 'https://a.test.com');
  assert.equal((await call('/timing-regex', { origin: 'http://ignored.com' })).headers['timing-allow-origin'], undefined);
});

test('Origin is appended to the Vary the response already has, and CORS headers from behind the gateway are replaced', async () => {
  const r = await call('/vary', { origin: 'http://a.com' });
  assert.equal(r.body, 'mocked');
  assert.equal(r.headers.vary, 'Accept-Encoding, Origin');
  assert.equal(r.headers['access-control-allow-origin'], 'http://a.com');
});

test('preflights skip authentication (cors runs first), and refusals from other plugins still carry CORS headers', async () => {
  const preflight = await call('/auth', { origin: 'http://a.com', 'access-control-request-method': 'GET', 'access-control-request-headers': 'apikey' }, 'OPTIONS');
  assert.equal(preflight.status, 200);
  assert.equal(preflight.headers['access-control-allow-origin'], 'http://a.com');
  const denied = await call('/auth', { origin: 'http://a.com' });
  assert.equal(denied.status, 401);
  assert.equal(denied.body, '{"message":"Missing API key found in request"}');
  assert.equal(denied.headers['access-control-allow-origin'], 'http://a.com');
  const ok = await call('/auth', { origin: 'http://a.com', apikey: 'k' });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['access-control-allow-origin'], 'http://a.com');
});

test('allow_credential refuses "*" in allow_origins, allow_methods, allow_headers and expose_headers', async () => {
  assert.deepEqual(await refused({ allow_credential: true }), [{ path: 'routes[0].plugins.cors', message: 'allow_origins: "*" cannot be used when allow_credential is true; list the values explicitly (or use "**" to allow any, which is unsafe)' }]);
  assert.deepEqual(await refused({ allow_credential: true, allow_origins: 'http://a.com' }), [{ path: 'routes[0].plugins.cors', message: 'allow_methods: "*" cannot be used when allow_credential is true; list the values explicitly (or use "**" to allow any, which is unsafe)' }]);
  assert.deepEqual(await refused({ allow_credential: true, allow_origins: 'http://a.com', allow_methods: 'GET' }), [{ path: 'routes[0].plugins.cors', message: 'allow_headers: "*" cannot be used when allow_credential is true; list the values explicitly (or use "**" to allow any, which is unsafe)' }]);
  assert.deepEqual(await refused({ allow_credential: true, allow_origins: 'http://a.com', allow_methods: 'GET', allow_headers: 'x-a', expose_headers: '*' }), [{ path: 'routes[0].plugins.cors', message: 'expose_headers: "*" cannot be used when allow_credential is true; list the values explicitly' }]);
});

test('schema errors name the field', async () => {
  assert.deepEqual(await refused({ allow_origins: 'a.com' }), [{ path: 'routes[0].plugins.cors.allow_origins', message: 'has an invalid format (must match ^(\\*|\\*\\*|null|\\w+://[^,]+(,\\w+://[^,]+)*)$)' }]);
  assert.deepEqual(await refused({ allow_origins: 'http://a.com, http://b.com' }), [{ path: 'routes[0].plugins.cors.allow_origins', message: 'has an invalid format (must match ^(\\*|\\*\\*|null|\\w+://[^,]+(,\\w+://[^,]+)*)$)' }]);
  assert.deepEqual(await refused({ max_age: 'long' }), [{ path: 'routes[0].plugins.cors.max_age', message: 'must be an integer' }]);
  assert.deepEqual(await refused({ max_age: -2 }), [{ path: 'routes[0].plugins.cors.max_age', message: 'must be >= -1' }]);
  assert.deepEqual(await refused({ allow_credential: 'yes' }), [{ path: 'routes[0].plugins.cors.allow_credential', message: 'must be a boolean' }]);
  assert.deepEqual(await refused({ allow_origins_by_regex: [] }), [{ path: 'routes[0].plugins.cors.allow_origins_by_regex', message: 'must have at least 1 entry' }]);
  assert.deepEqual(await refused({ allow_methods: 'GET\r\nX: y' }), [{ path: 'routes[0].plugins.cors.allow_methods', message: 'has an invalid format (must match ^[\\t\\x20-\\x7e]*$)' }]);
  assert.deepEqual(await refused({ allow_origins_by_metadata: ['k'] }), [{ path: 'routes[0].plugins.cors.allow_origins_by_metadata', message: 'is not a known field' }]);
});

test('a regex that does not compile is refused at load, naming the entry', async () => {
  const [issue] = await refused({ allow_origins_by_regex: ['^https://ok\\.com$', '(unclosed'] });
  assert.equal(issue.path, 'routes[0].plugins.cors');
  assert.match(issue.message, /^allow_origins_by_regex\[1\]: "\(unclosed" is not a valid regular expression \(Invalid regular expression/);
  const [timing] = await refused({ timing_allow_origins_by_regex: ['['] });
  assert.match(timing.message, /^timing_allow_origins_by_regex\[0\]: "\[" is not a valid regular expression/);
});
