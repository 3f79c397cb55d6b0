// The edges of a request that must not route around a route's plugins or put words in the
// gateway's mouth: a long path parameter, spellings of a host, header names with underscores, and
// forwarding headers from clients and from trusted proxies. Each case sends what an attacker
// would (the planted values below) and looks at what the route, the plugins and the upstream saw.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness';
import { rawRequest } from './helpers/proxy';
import { MemoryConfigStore } from '../core/stores/file-store';

const KEY = 'edges-test-key';
const consumers = [{ username: 'jack', plugins: { 'key-auth': { key: KEY } } }];

let up: Upstream;
const gateways: TestGateway[] = [];
before(async () => {
  up = await startUpstream();
});
after(async () => {
  for (const g of gateways) await g.close();
  await up?.close();
});

async function boot(config: Record<string, unknown>): Promise<TestGateway> {
  const g = await bootGateway(config);
  gateways.push(g);
  return g;
}

/** One request over a fresh connection; `headers` are written as given (names keep their spelling). */
async function send(g: TestGateway, path: string, headers: Record<string, string> = {}): Promise<{ status: number; echo: any }> {
  const lines = [`GET ${path} HTTP/1.1`, ...Object.entries({ host: 'gw.test', ...headers }).map(([k, v]) => `${k}: ${v}`), 'Connection: close', ''];
  const r = await rawRequest(g.port, lines.join('\n'));
  let echo: any;
  if (r.status === 200) echo = JSON.parse(r.body.toString());
  return { status: r.status, echo };
}

describe('a long path parameter', () => {
  let g: TestGateway;
  before(async () => {
    g = await boot({
      routes: [
        { id: 'users', uri: '/users/:id', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.node]: 1 } } },
        { id: 'repos', uri: '/orgs/:org/repos/:repo', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.node]: 1 } } },
        { id: 'public', uri: '/*', upstream: { nodes: { [up.node]: 1 } } },
      ],
      consumers,
    });
  });

  test('never leaves /users/:id (key-auth) for the public /*, whatever its length', async () => {
    const before = up.seen.length;
    for (const n of [999, 1001, 5000, 15000]) {
      assert.equal((await send(g, `/users/${'a'.repeat(n)}`)).status, 401, `a ${n}-character id`);
      assert.equal((await send(g, `/orgs/${'o'.repeat(n)}/repos/r`)).status, 401, `a ${n}-character org`);
    }
    assert.equal(up.seen.length, before, 'none reached the upstream');
    // with the key, the route and its upstream get the whole value
    const long = 'b'.repeat(5000);
    const ok = await send(g, `/users/${long}`, { apikey: KEY });
    assert.equal(ok.status, 200);
    assert.equal(ok.echo.url, `/users/${long}`);
  });
});

describe('spellings of a host', () => {
  let g: TestGateway;
  before(async () => {
    const upstream = { nodes: { [up.node]: 1 } };
    // proxy-rewrite reports the host the route saw (ctx.host) to the upstream
    const seen = { 'proxy-rewrite': { headers: { set: { 'X-Seen-Host': '$host' } } } };
    g = await boot({
      routes: [
        { id: 'api', uri: '/h', hosts: ['api.example.com'], plugins: { 'key-auth': {}, ...seen }, upstream },
        { id: 'wild', uri: '/w', hosts: ['*.example.com'], plugins: { 'key-auth': {} }, upstream },
        { id: 'dotted', uri: '/d', hosts: ['Dotted.Example.ORG.'], plugins: { 'key-auth': {} }, upstream },
        { id: 'public', uri: '/*', plugins: seen, upstream },
      ],
      consumers,
    });
  });

  test('a trailing dot, letter case and a port never avoid a hosts: route', async () => {
    for (const host of ['api.example.com', 'api.example.com.', 'API.Example.COM:80', 'API.EXAMPLE.COM.:80', 'api.example.com.:8080', 'Api.Example.Com.']) {
      assert.equal((await send(g, '/h', { host })).status, 401, host);
      const ok = await send(g, '/h', { host, apikey: KEY });
      assert.equal(ok.status, 200, host);
      assert.equal(ok.echo.headers['x-seen-host'], 'api.example.com', `ctx.host of ${host}`);
    }
    for (const host of ['x.example.com.', 'X.Y.EXAMPLE.COM.:443']) assert.equal((await send(g, '/w', { host })).status, 401, host);
    // a route's own host is read the same way
    for (const host of ['dotted.example.org', 'DOTTED.example.org.:80']) assert.equal((await send(g, '/d', { host })).status, 401, host);
  });

  test('a host nginx refuses is 400, never a fallback route', async () => {
    const before = up.seen.length;
    for (const host of ['api.example.com..', 'api..example.com', '.api.example.com..', 'api.example.com/x', 'api.example.com\\x', 'api example.com', ':80']) {
      assert.equal((await send(g, '/h', { host })).status, 400, JSON.stringify(host));
    }
    assert.equal(up.seen.length, before, 'none reached the upstream');
  });

  test('an IPv6 literal keeps its brackets, without the port', async () => {
    const r = await send(g, '/h', { host: '[::ABCD]:8080' });
    assert.equal(r.status, 200);
    assert.equal(r.echo.headers['x-seen-host'], '[::abcd]');
  });

  test('routes are matched on Host, never on X-Forwarded-Host', async () => {
    assert.equal((await send(g, '/h', { host: 'api.example.com', 'X-Forwarded-Host': 'public.test' })).status, 401);
    const r = await send(g, '/h', { host: 'public.test', 'X-Forwarded-Host': 'api.example.com' });
    assert.equal(r.status, 200);
    assert.equal(r.echo.headers['x-seen-host'], 'public.test');
  });
});

describe('header names with underscores', () => {
  const spoofs = { X_Consumer_Username: 'admin', 'X-Consumer_Username': 'admin', X_Real_IP: '198.51.100.66', X_Custom: 'one', 'x-forwarded_for': '198.51.100.66' };
  const routes = (up: Upstream) => [
    { id: 'auth', uri: '/auth', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.node]: 1 } } },
    // a key header whose name has an underscore: the plugin reads what the gateway kept
    { id: 'underscored-key', uri: '/key', plugins: { 'key-auth': { header: 'api_key' } }, upstream: { nodes: { [up.node]: 1 } } },
  ];

  test('are dropped by default: neither the upstream nor the plugins see them', async () => {
    const g = await boot({ routes: routes(up), consumers });
    const r = await send(g, '/auth', { apikey: KEY, ...spoofs });
    assert.equal(r.status, 200);
    const names = Object.keys(r.echo.headers);
    assert.deepEqual(names.filter((n) => n.includes('_')), [], 'no name with an underscore reaches the upstream');
    assert.equal(r.echo.headers['x-consumer-username'], 'jack');
    assert.equal(r.echo.headers['x-real-ip'], '127.0.0.1');
    assert.equal((await send(g, '/key', { api_key: KEY })).status, 401, 'key-auth does not see api_key');
  });

  test('pass with gateway.underscores_in_headers, except spellings of the headers the gateway sets', async () => {
    const g = await boot({ gateway: { underscores_in_headers: true }, routes: routes(up), consumers });
    const r = await send(g, '/auth', { apikey: KEY, ...spoofs });
    assert.equal(r.status, 200);
    assert.equal(r.echo.headers['x_custom'], 'one');
    for (const n of ['x_consumer_username', 'x-consumer_username', 'x_real_ip', 'x-forwarded_for']) assert.equal(r.echo.headers[n], undefined, n);
    assert.equal(r.echo.headers['x-consumer-username'], 'jack');
    assert.equal((await send(g, '/key', { api_key: KEY })).status, 200, 'key-auth reads api_key');
  });
});

describe('forwarding headers', () => {
  // what a client (or a proxy) claims: every one is a planted value the upstream must not get from an untrusted peer
  const claims = {
    'X-Forwarded-For': '198.51.100.9, 203.0.113.7, 10.0.0.5',
    'X-Forwarded-Proto': 'https',
    'X-Forwarded-Host': 'claimed.example.test',
    'X-Forwarded-Port': '8443',
    'X-Forwarded-Prefix': '/claimed',
    'X-Forwarded-Server': 'claimed-lb',
    Forwarded: 'for=203.0.113.7;proto=https;host=claimed.example.test',
    'X-Real-IP': '198.51.100.66',
  };
  const routes = (up: Upstream) => [
    { id: 'fwd', uri: '/fwd', upstream: { nodes: { [up.node]: 1 } } },
    // only the address the claims name is let in
    { id: 'only-claimed', uri: '/only', plugins: { 'ip-restriction': { whitelist: ['203.0.113.7'] } }, upstream: { nodes: { [up.node]: 1 } } },
  ];

  for (const [name, gateway] of [
    ['from a client (no trusted proxies)', {}],
    ['from a peer outside gateway.trusted_proxies', { trusted_proxies: ['10.0.0.0/8', '192.0.2.1'] }],
  ] as const) {
    test(`${name}: none reaches the upstream; the gateway sets its own`, async () => {
      const g = await boot({ gateway, routes: routes(up) });
      const r = await send(g, '/fwd', { host: 'shop.example.test:9999', ...claims });
      assert.equal(r.status, 200);
      const h = r.echo.headers;
      assert.equal(h['x-forwarded-for'], '127.0.0.1');
      assert.equal(h['x-forwarded-proto'], 'http');
      assert.equal(h['x-forwarded-host'], 'shop.example.test:9999');
      assert.equal(h['x-forwarded-port'], String(g.port));
      assert.equal(h['x-real-ip'], '127.0.0.1');
      for (const n of ['x-forwarded-prefix', 'x-forwarded-server', 'forwarded']) assert.equal(h[n], undefined, n);
      assert.equal((await send(g, '/only', claims)).status, 403, 'ip-restriction sees the peer, not the claim');
    });
  }

  test('from a trusted proxy: its claims pass, and the client is the rightmost untrusted X-Forwarded-For address', async () => {
    const g = await boot({ gateway: { trusted_proxies: ['127.0.0.1', '10.0.0.0/8'] }, routes: routes(up) });
    const r = await send(g, '/fwd', { host: 'shop.example.test', ...claims });
    assert.equal(r.status, 200);
    const h = r.echo.headers;
    assert.equal(h['x-forwarded-for'], '198.51.100.9, 203.0.113.7, 10.0.0.5, 127.0.0.1', 'the proxy chain, with this peer appended');
    assert.equal(h['x-real-ip'], '203.0.113.7');
    assert.equal(h['x-forwarded-proto'], 'https');
    assert.equal(h['x-forwarded-host'], 'claimed.example.test');
    assert.equal(h['x-forwarded-port'], '8443');
    assert.equal(h['x-forwarded-prefix'], '/claimed');
    assert.equal(h['x-forwarded-server'], 'claimed-lb');
    assert.equal(h.forwarded, claims.Forwarded);
    assert.equal((await send(g, '/only', claims)).status, 200, 'ip-restriction sees the client the proxies name');
    // what the proxy does not say, the gateway fills in
    const bare = await send(g, '/fwd', { host: 'shop.example.test' });
    assert.deepEqual([bare.echo.headers['x-forwarded-for'], bare.echo.headers['x-real-ip'], bare.echo.headers['x-forwarded-proto'], bare.echo.headers['x-forwarded-host']], ['127.0.0.1', '127.0.0.1', 'http', 'shop.example.test']);
    // an entry that is not an address stops the walk at the last trusted one
    assert.equal((await send(g, '/fwd', { 'X-Forwarded-For': '203.0.113.7, unknown, 10.0.0.5' })).echo.headers['x-real-ip'], '10.0.0.5');
    // every entry trusted: the leftmost is the client
    assert.equal((await send(g, '/fwd', { 'X-Forwarded-For': '10.1.1.1, 10.0.0.5' })).echo.headers['x-real-ip'], '10.1.1.1');
  });
});

test('trusted_proxies and underscores_in_headers apply from the next request on reload, with no restart warning', async () => {
  const doc = (gateway: Record<string, unknown>) => ({ gateway, routes: [{ id: 'fwd', uri: '/fwd', upstream: { nodes: { [up.node]: 1 } } }] });
  const store = new MemoryConfigStore(doc({}));
  const g = await bootGateway({}, { store, watch: false });
  gateways.push(g);
  const claims = { 'X-Forwarded-For': '203.0.113.7', X_Custom: 'one' };
  const before = (await send(g, '/fwd', claims)).echo.headers;
  assert.deepEqual([before['x-real-ip'], before['x_custom']], ['127.0.0.1', undefined]);
  store.set(doc({ trusted_proxies: ['127.0.0.1'], underscores_in_headers: true }));
  assert.equal((await g.gw.reload()).ok, true);
  const after = (await send(g, '/fwd', claims)).echo.headers;
  assert.deepEqual([after['x-real-ip'], after['x_custom']], ['203.0.113.7', 'one']);
  assert.deepEqual(g.logs.lines.filter((l) => typeof l.msg === 'string' && l.msg.endsWith('takes effect at the next restart')), []);
});
