// proxy-rewrite through a real gateway and a real upstream: uri (with variables and a query),
// regex_uri (captures, several pairs, no match), host, headers add/set/remove and the flat form,
// and the config errors, each naming its field.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startTestGateway, type TestGateway } from 'gatehouse-gateway/testing';
import type { ConfigIssue } from 'gatehouse-gateway/sdk';

interface Echo {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string | undefined>;
}

const routes: Array<[string, Record<string, unknown>]> = [
  ['/uri/plain', { uri: '/new/path' }],
  ['/uri/query', { uri: '/search?lang=en' }],
  ['/uri/vars/*', { uri: '/v?q=$arg_name&id=${arg_id}&from=$uri&m=$request_method&h=$host&ip=$remote_addr' }],
  ['/uri/header-var', { uri: '/users/$http_x_user' }],
  ['/uri/request-uri', { uri: '/orig$request_uri' }],
  ['/uri/escaped', { uri: '/price/\\$5' }],
  ['/regex/*', { regex_uri: ['^/regex/(\\w+)/(\\w+)$', '/v2/$2/${1}', '^/regex/(.*)', '/fallback/$1'] }],
  ['/nomatch/*', { regex_uri: ['^/zzz/(.*)', '/x/$1'] }],
  ['/part/*', { regex_uri: ['/old/', '/new/'] }],
  ['/rq/*', { regex_uri: ['^/rq/(\\w+)$', '/q?item=$1&was=$0'] }],
  ['/both/*', { uri: '/from-uri', regex_uri: ['^/both/(.*)', '/from-regex/$1'] }],
  ['/unknown-in-regex/*', { regex_uri: ['^/unknown-in-regex/(\\w+)', '/u/$1/$nope'] }],
  ['/host', { host: 'api.internal:8443' }],
  ['/headers', { headers: { add: { 'X-Tag': 'gw', 'X-Added': 'new' }, set: { 'X-Api-Version': 'v2', 'X-Client': '$remote_addr via $request_method', 'X-Emptied': '' }, remove: ['X-Remove-Me', 'x-other'] } }],
  ['/flat', { headers: { 'X-Api-Engine': 'gatehouse', 'X-Api-Useless': '', 'X-Num': 7 } }],
  ['/cap/*', { regex_uri: ['^/cap/(\\w+)/(\\w+)', '/user/$2'], headers: { set: { 'X-User-Id': '$1', 'X-Path': '$uri' } } }],
  ['/method', { method: 'PUT' }],
  ['/host-wins', { host: 'from-host-field', headers: { set: { Host: 'from-headers' } } }],
];

let gw: TestGateway;
before(async () => {
  gw = await startTestGateway({
    config: (upstream) => ({
      routes: routes.map(([uri, conf], i) => ({ id: `r${i}`, uri, plugins: { 'proxy-rewrite': conf }, upstream: { nodes: { [upstream]: 1 } } })),
    }),
  });
});
after(() => gw?.close());

/** Send a request through the gateway; returns what the echo upstream received. */
async function echo(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Echo> {
  const r = await request(gw.url + path, { method: method as 'GET', headers });
  const text = await r.body.text();
  assert.equal(r.statusCode, 200, text);
  return JSON.parse(text) as Echo;
}

/** Boot a gateway with this proxy-rewrite config, which must be refused; returns the issues. */
async function refused(conf: unknown): Promise<readonly ConfigIssue[]> {
  let issues: readonly ConfigIssue[] | undefined;
  await assert.rejects(startTestGateway({ config: (up) => ({ routes: [{ id: 'r', uri: '/', plugins: { 'proxy-rewrite': conf }, upstream: { nodes: { [up]: 1 } } }] }) }), (err: Error & { code?: string; issues?: readonly ConfigIssue[] }) => {
    assert.equal(err.code, 'GH_ERR_CONFIG_INVALID');
    issues = err.issues;
    return true;
  });
  return issues!;
}

test('uri replaces the path and keeps the client query', async () => {
  assert.equal((await echo('/uri/plain')).url, '/new/path');
  assert.equal((await echo('/uri/plain?a=1&b=2')).url, '/new/path?a=1&b=2');
});

test('a query in uri comes first, then the client query after "&"', async () => {
  assert.equal((await echo('/uri/query')).url, '/search?lang=en');
  assert.equal((await echo('/uri/query?page=2')).url, '/search?lang=en&page=2');
});

test('uri resolves $arg_, ${braces}, $uri, $request_method, $host and $remote_addr', async () => {
  const e = await echo('/uri/vars/x?name=jo%20e&ID=42', { host: 'shop.example:9080' }, 'POST');
  assert.equal(e.method, 'POST');
  // $arg_ is raw and case-insensitive (as nginx); $host has no port
  assert.equal(e.url, '/v?q=jo%20e&id=42&from=/uri/vars/x&m=POST&h=shop.example&ip=127.0.0.1&name=jo%20e&ID=42');
});

test('a missing argument or header resolves to an empty string', async () => {
  assert.equal((await echo('/uri/vars/y')).url, '/v?q=&id=&from=/uri/vars/y&m=GET&h=127.0.0.1&ip=127.0.0.1');
  assert.equal((await echo('/uri/header-var')).url, '/users/');
});

test('variable values are percent-encoded in the path: a "?" in a value cannot start a query', async () => {
  assert.equal((await echo('/uri/header-var', { 'x-user': 'jack' })).url, '/users/jack');
  assert.equal((await echo('/uri/header-var', { 'x-user': 'a?b c#d' })).url, '/users/a%3Fb%20c%23d');
  assert.equal((await echo('/uri/request-uri?x=1')).url, '/orig/uri/request-uri%3Fx=1?x=1');
});

test('\\$ in a template is a literal dollar sign', async () => {
  assert.equal((await echo('/uri/escaped')).url, '/price/$5');
});

test('regex_uri: the first pair whose regex matches rewrites the path with its captures ($N and ${N})', async () => {
  assert.equal((await echo('/regex/alpha/beta')).url, '/v2/beta/alpha');
  assert.equal((await echo('/regex/alpha/beta?x=1')).url, '/v2/beta/alpha?x=1');
  // the first regex does not match three segments; the second does
  assert.equal((await echo('/regex/a/b/c')).url, '/fallback/a/b/c');
});

test('regex_uri: no match leaves the path as the client sent it', async () => {
  assert.equal((await echo('/nomatch/keep/me?q=1')).url, '/nomatch/keep/me?q=1');
});

test('regex_uri replaces only the first match and keeps the rest of the path', async () => {
  assert.equal((await echo('/part/old/x/old/y')).url, '/part/new/x/old/y');
});

test('regex_uri: a "?" in the template starts the query, $0 is the whole match, the client query follows', async () => {
  assert.equal((await echo('/rq/abc?a=1')).url, '/q?item=abc&was=/rq/abc&a=1');
});

test('uri wins over regex_uri when both are set', async () => {
  assert.equal((await echo('/both/zzz')).url, '/from-uri');
});

test('an unknown $name in a regex_uri template stays as text (as APISIX)', async () => {
  assert.equal((await echo('/unknown-in-regex/abc')).url, '/u/abc/$nope');
});

test('host sets the Host header sent upstream; X-Forwarded-Host keeps the client one', async () => {
  const e = await echo('/host', { host: 'public.example' });
  assert.equal(e.headers.host, 'api.internal:8443');
  assert.equal(e.headers['x-forwarded-host'], 'public.example');
  assert.equal(e.url, '/host');
});

test('host wins over a Host in headers.set', async () => {
  assert.equal((await echo('/host-wins')).headers.host, 'from-host-field');
});

test('without host, the upstream gets the client Host (pass_host default)', async () => {
  assert.equal((await echo('/uri/plain', { host: 'public.example' })).headers.host, 'public.example');
});

test('headers: add appends to the client value, set replaces (with variables), "" and remove delete', async () => {
  const e = await echo('/headers', { 'x-tag': 'client', 'x-api-version': 'v1', 'x-remove-me': 'bye', 'x-other': 'o', 'x-emptied': 'e', 'x-kept': 'k' });
  assert.equal(e.headers['x-tag'], 'client, gw');
  assert.equal(e.headers['x-added'], 'new', 'add on an absent header adds it');
  assert.equal(e.headers['x-api-version'], 'v2');
  assert.equal(e.headers['x-client'], '127.0.0.1 via GET');
  assert.equal(e.headers['x-emptied'], undefined);
  assert.equal(e.headers['x-remove-me'], undefined);
  assert.equal(e.headers['x-other'], undefined);
  assert.equal(e.headers['x-kept'], 'k');
  assert.equal(e.url, '/headers', 'headers alone leave the path alone');
});

test('headers in the older flat form set each header; "" removes; numbers become text', async () => {
  const e = await echo('/flat', { 'x-api-engine': 'client', 'x-api-useless': 'drop' });
  assert.equal(e.headers['x-api-engine'], 'gatehouse');
  assert.equal(e.headers['x-api-useless'], undefined);
  assert.equal(e.headers['x-num'], '7');
});

test('header values may use regex_uri captures and see the rewritten $uri', async () => {
  const e = await echo('/cap/jack/profile');
  assert.equal(e.url, '/user/profile');
  assert.equal(e.headers['x-user-id'], 'jack');
  assert.equal(e.headers['x-path'], '/user/profile');
});

test('schema errors name the field: uri must start with "/"', async () => {
  assert.deepEqual(await refused({ uri: 'relative' }), [{ path: 'routes[0].plugins.proxy-rewrite.uri', message: 'has an invalid format (must match ^/)' }]);
});

test('schema errors name the field: host, header names, regex_uri size, unknown fields, empty config', async () => {
  assert.deepEqual(await refused({ host: 'bad host' }), [{ path: 'routes[0].plugins.proxy-rewrite.host', message: 'has an invalid format (must match ^[0-9a-zA-Z.-]+(:[0-9]{1,5})?$)' }]);
  assert.deepEqual(await refused({ headers: { set: { 'bad name': 'x' } } }), [{ path: 'routes[0].plugins.proxy-rewrite.headers.set["bad name"]', message: 'is not a known field' }]);
  assert.deepEqual(await refused({ headers: { 'bad:name': 'x' } }), [{ path: 'routes[0].plugins.proxy-rewrite.headers["bad:name"]', message: 'is not a known field' }]);
  assert.deepEqual(await refused({ headers: { set: { 'x-a': true } } }), [{ path: 'routes[0].plugins.proxy-rewrite.headers.set.x-a', message: 'must be a string or a number' }]);
  assert.deepEqual(await refused({ headers: { set: { 'x-a': 'line\r\nbreak' } } }), [{ path: 'routes[0].plugins.proxy-rewrite.headers.set.x-a', message: 'has an invalid format (must match ^[^\\r\\n\\x00]*$)' }]);
  assert.deepEqual(await refused({ headers: { remove: [] } }), [{ path: 'routes[0].plugins.proxy-rewrite.headers.remove', message: 'must have at least 1 entry' }]);
  assert.deepEqual(await refused({ regex_uri: ['^/a'] }), [{ path: 'routes[0].plugins.proxy-rewrite.regex_uri', message: 'must have at least 2 entries' }]);
  assert.deepEqual(await refused({ uri: '/a', scheme: 'https' }), [{ path: 'routes[0].plugins.proxy-rewrite.scheme', message: 'is not a known field' }]);
  assert.deepEqual(await refused({}), [{ path: 'routes[0].plugins.proxy-rewrite', message: 'must have at least 1 entry' }]);
  const bad = await refused({ method: 'FETCH' });
  assert.equal(bad.length, 1);
  assert.equal(bad[0].path, 'routes[0].plugins.proxy-rewrite.method');
  assert.match(bad[0].message, /^must be one of: "GET", "POST"/);
});

test('method changes the method sent upstream', async () => {
  const e = await echo('/method');
  assert.equal(e.method, 'PUT');
  assert.equal((await echo('/method', {}, 'DELETE')).method, 'PUT');
});

test('regexes and templates are checked when the config loads, naming the entry', async () => {
  const [badRegex] = await refused({ regex_uri: ['^/(a', '/$1'] });
  assert.equal(badRegex.path, 'routes[0].plugins.proxy-rewrite');
  assert.match(badRegex.message, /^regex_uri\[0\]: "\^\/\(a" is not a valid regular expression \(Invalid regular expression/);
  assert.deepEqual(await refused({ regex_uri: ['^/a', '/b', '^/c'] }), [{ path: 'routes[0].plugins.proxy-rewrite', message: 'regex_uri: must hold [regex, template] pairs, so an even number of entries (it has 3)' }]);
  assert.deepEqual(await refused({ regex_uri: ['^/(a)/(b)', '/$3'] }), [{ path: 'routes[0].plugins.proxy-rewrite', message: 'regex_uri[1]: $3 refers to a capture group the regex does not have (it has 2)' }]);
  const [unknown] = await refused({ uri: '/x/$nope' });
  assert.match(unknown.message, /^uri: unknown variable \$nope \(known: \$uri, /);
  assert.deepEqual(await refused({ uri: '/x/$1' }), [{ path: 'routes[0].plugins.proxy-rewrite', message: 'uri: $1 is a regex_uri capture; captures are not available in uri (use regex_uri)' }]);
  assert.deepEqual(await refused({ headers: { set: { 'x-id': '$1' } } }), [{ path: 'routes[0].plugins.proxy-rewrite', message: 'headers.set.x-id: $1 is a regex_uri capture, but regex_uri is not set' }]);
  assert.deepEqual(await refused({ headers: { 'x-a': '1', set: { 'x-b': '2' } } }), [{ path: 'routes[0].plugins.proxy-rewrite', message: 'headers: use either add/set/remove or the flat form { name: value }, not both (found x-a beside them)' }]);
});

test('a value from a reference is data: used byte for byte in uri, regex_uri templates and headers, never read as a template', async () => {
  process.env.GH_PR_REF_HEADER = 'Bearer abc$host ${uri} \\$1 $nope';
  process.env.GH_PR_REF_URI = '/lit/$arg_x?y=$host';
  const g = await startTestGateway({
    config: (upstream) => ({
      routes: [
        { id: 'h', uri: '/ref/h', plugins: { 'proxy-rewrite': { headers: { set: { 'X-Token': '$env://GH_PR_REF_HEADER' }, add: { 'X-Added': '$env://GH_PR_REF_HEADER' } } } }, upstream: { nodes: { [upstream]: 1 } } },
        { id: 'f', uri: '/ref/f', plugins: { 'proxy-rewrite': { headers: { 'X-Flat': '$env://GH_PR_REF_HEADER' } } }, upstream: { nodes: { [upstream]: 1 } } },
        { id: 'u', uri: '/ref/u', plugins: { 'proxy-rewrite': { uri: '$env://GH_PR_REF_URI' } }, upstream: { nodes: { [upstream]: 1 } } },
        { id: 'r', uri: '/ref/r/*', plugins: { 'proxy-rewrite': { regex_uri: ['^/ref/r/(.*)', '$env://GH_PR_REF_URI'] } }, upstream: { nodes: { [upstream]: 1 } } },
      ],
    }),
  });
  try {
    const h = await g.request('/ref/h', { headers: { host: 'client.example' } });
    const got = h.json<Echo>().headers;
    assert.equal(got['x-token'], 'Bearer abc$host ${uri} \\$1 $nope');
    assert.equal(got['x-added'], 'Bearer abc$host ${uri} \\$1 $nope');
    assert.equal((await g.request('/ref/f')).json<Echo>().headers['x-flat'], 'Bearer abc$host ${uri} \\$1 $nope');
    assert.equal((await g.request('/ref/u?x=1')).json<Echo>().url, '/lit/$arg_x?y=$host&x=1');
    assert.equal((await g.request('/ref/r/abc')).json<Echo>().url, '/lit/$arg_x?y=$host');
  } finally {
    await g.close();
  }
});
