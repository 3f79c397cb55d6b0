// Whole-gateway routing tests: a real gateway on 127.0.0.1:0 in front of real upstreams, one
// upstream per route so the upstream that answers names the route that matched.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { bootGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness';

const agent = new Agent({ keepAliveTimeout: 1000 });
const upstreams = new Map<string, Upstream>();
const gateways: TestGateway[] = [];

after(async () => {
  for (const g of gateways) await g.close();
  for (const u of upstreams.values()) await u.close();
  await agent.close();
});

/** The upstream that answers for `name` (echo server reporting `name`), started on first use. */
async function upstreamFor(name: string): Promise<Upstream> {
  let u = upstreams.get(name);
  if (!u) upstreams.set(name, (u = await startUpstream(undefined, name)));
  return u;
}

/** A route whose inline upstream is the echo server named after the route id. */
async function route(id: string, fields: Record<string, unknown>): Promise<Record<string, unknown>> {
  const u = await upstreamFor(id);
  return { id, ...fields, upstream: { nodes: { [u.node]: 1 } } };
}

async function boot(config: Record<string, unknown>): Promise<TestGateway> {
  const g = await bootGateway(config);
  gateways.push(g);
  return g;
}

interface Reply {
  status: number;
  body: string;
  contentType: string | undefined;
  /** The upstream that answered (the route id), or undefined for a gateway-made response. */
  via: string | undefined;
  /** The URL the upstream received. */
  upstreamUrl: string | undefined;
}

async function send(g: TestGateway, path: string, o: { method?: string; host?: string } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (o.host !== undefined) headers.host = o.host;
  const res = await request(`${g.url}${path}`, { method: (o.method ?? 'GET') as 'GET', headers, dispatcher: agent });
  const body = await res.body.text();
  let via: string | undefined;
  let upstreamUrl: string | undefined;
  const ct = res.headers['content-type'];
  if (res.statusCode === 200 && body.startsWith('{"name"')) {
    const j = JSON.parse(body) as { name: string; url: string };
    via = j.name;
    upstreamUrl = j.url;
  }
  return { status: res.statusCode, body, contentType: Array.isArray(ct) ? ct[0] : ct, via, upstreamUrl };
}

const NOT_FOUND = '{"message":"404 Route Not Found"}';

describe('uri forms', () => {
  let g: TestGateway;
  before(async () => {
    g = await boot({
      routes: [
        await route('exact', { uri: '/exact' }),
        await route('prefix', { uri: '/api/*' }),
        await route('param', { uri: '/users/:id' }),
        await route('two-params', { uri: '/orgs/:org/repos/:repo' }),
      ],
    });
  });

  test('an exact uri matches only that path', async () => {
    const r = await send(g, '/exact');
    assert.equal(r.status, 200);
    assert.equal(r.via, 'exact');
    assert.equal((await send(g, '/exact/more')).status, 404);
    assert.equal((await send(g, '/exactly')).status, 404);
    assert.equal((await send(g, '/exact/')).status, 404);
  });

  test('the query string does not take part in matching and reaches the upstream unchanged', async () => {
    const r = await send(g, '/exact?a=1&b=two');
    assert.equal(r.via, 'exact');
    assert.equal(r.upstreamUrl, '/exact?a=1&b=two');
  });

  test('a /prefix/* uri matches every path below the prefix and forwards the full path', async () => {
    for (const p of ['/api/', '/api/v1', '/api/v1/things/7']) {
      const r = await send(g, p);
      assert.equal(r.status, 200, p);
      assert.equal(r.via, 'prefix', p);
      assert.equal(r.upstreamUrl, p);
    }
  });

  test('a /prefix/* uri does not match the prefix without its slash or a longer sibling', async () => {
    assert.equal((await send(g, '/api')).status, 404);
    assert.equal((await send(g, '/apis/x')).status, 404);
  });

  test('a :param segment matches exactly one path segment', async () => {
    const r = await send(g, '/users/42');
    assert.equal(r.via, 'param');
    assert.equal(r.upstreamUrl, '/users/42');
    assert.equal((await send(g, '/users/42/extra')).status, 404);
    const two = await send(g, '/orgs/acme/repos/gatehouse');
    assert.equal(two.via, 'two-params');
  });

  test('matching is case-sensitive', async () => {
    assert.equal((await send(g, '/EXACT')).status, 404);
  });

  test('an unmatched path gets 404 with the exact JSON body', async () => {
    const r = await send(g, '/nowhere');
    assert.equal(r.status, 404);
    assert.equal(r.body, NOT_FOUND);
    assert.equal(r.contentType, 'application/json');
  });
});

describe('precedence between uri forms', () => {
  let g: TestGateway;
  before(async () => {
    // listed weakest-first, so config order cannot be what decides
    g = await boot({
      routes: [
        await route('users-wildcard', { uri: '/users/*' }),
        await route('users-param', { uri: '/users/:id' }),
        await route('users-static', { uri: '/users/me' }),
      ],
    });
  });

  test('a static uri beats a :param uri for the same path', async () => {
    assert.equal((await send(g, '/users/me')).via, 'users-static');
  });

  test('a :param uri beats a /prefix/* uri for a one-segment path', async () => {
    assert.equal((await send(g, '/users/7')).via, 'users-param');
    assert.equal((await send(g, '/users/mee')).via, 'users-param');
  });

  test('a /prefix/* uri takes what neither static nor :param can match', async () => {
    assert.equal((await send(g, '/users/7/posts')).via, 'users-wildcard');
    assert.equal((await send(g, '/users/me/posts')).via, 'users-wildcard');
  });
});

describe('methods', () => {
  let g: TestGateway;
  before(async () => {
    g = await boot({
      routes: [
        await route('shop-items-get', { uri: '/shop/items', methods: ['GET'] }),
        await route('shop-any', { uri: '/shop/*' }),
        await route('orders-get', { uri: '/orders', methods: ['GET', 'HEAD'] }),
        await route('orders-post', { uri: '/orders/new', methods: ['POST'] }),
      ],
    });
  });

  test('a request with a listed method uses the method-filtered route', async () => {
    assert.equal((await send(g, '/shop/items')).via, 'shop-items-get');
    assert.equal((await send(g, '/orders')).via, 'orders-get');
    assert.equal((await send(g, '/orders/new', { method: 'POST' })).via, 'orders-post');
  });

  test('a POST to a GET-only exact route falls through to a matching prefix route', async () => {
    const r = await send(g, '/shop/items', { method: 'POST' });
    assert.equal(r.status, 200);
    assert.equal(r.via, 'shop-any');
    assert.equal((await send(g, '/shop/items', { method: 'DELETE' })).via, 'shop-any');
  });

  test('a method no route accepts gets 404 when nothing else matches', async () => {
    const r = await send(g, '/orders', { method: 'POST' });
    assert.equal(r.status, 404);
    assert.equal(r.body, NOT_FOUND);
    assert.equal((await send(g, '/orders/new')).status, 404);
  });

  test('HEAD is matched only when listed', async () => {
    assert.equal((await send(g, '/orders', { method: 'HEAD' })).status, 200);
    assert.equal((await send(g, '/orders/new', { method: 'HEAD' })).status, 404);
  });
});

describe('hosts', () => {
  let g: TestGateway;
  before(async () => {
    g = await boot({
      routes: [
        await route('host-any', { uri: '/h' }),
        await route('host-wild', { uri: '/h', hosts: ['*.example.com'] }),
        await route('host-exact', { uri: '/h', hosts: ['api.example.com'] }),
        await route('host-single', { uri: '/only', host: 'only.example.com' }),
        await route('host-list', { uri: '/multi', hosts: ['a.test', 'B.Test'] }),
      ],
    });
  });

  test('an exact host route wins over wildcard and host-less routes for its host', async () => {
    assert.equal((await send(g, '/h', { host: 'api.example.com' })).via, 'host-exact');
  });

  test('the Host header matches regardless of port and letter case', async () => {
    assert.equal((await send(g, '/h', { host: 'api.example.com:8080' })).via, 'host-exact');
    assert.equal((await send(g, '/h', { host: 'API.Example.COM:443' })).via, 'host-exact');
    assert.equal((await send(g, '/only', { host: 'only.example.com:9080' })).via, 'host-single');
  });

  test('a *.example.com host matches subdomains at any depth but not the bare domain', async () => {
    assert.equal((await send(g, '/h', { host: 'www.example.com' })).via, 'host-wild');
    assert.equal((await send(g, '/h', { host: 'a.b.example.com:8443' })).via, 'host-wild');
    assert.equal((await send(g, '/h', { host: 'example.com' })).via, 'host-any');
    assert.equal((await send(g, '/h', { host: 'notexample.com' })).via, 'host-any');
  });

  test('a route without hosts serves any other host', async () => {
    assert.equal((await send(g, '/h', { host: 'other.org' })).via, 'host-any');
    assert.equal((await send(g, '/h')).via, 'host-any');
  });

  test('a host-restricted route answers 404 to every other host', async () => {
    const r = await send(g, '/only', { host: 'evil.example.com' });
    assert.equal(r.status, 404);
    assert.equal(r.body, NOT_FOUND);
    assert.equal((await send(g, '/only')).status, 404);
  });

  test('any host of a hosts list matches, compared case-insensitively', async () => {
    assert.equal((await send(g, '/multi', { host: 'a.test' })).via, 'host-list');
    assert.equal((await send(g, '/multi', { host: 'b.test' })).via, 'host-list');
    assert.equal((await send(g, '/multi', { host: 'c.test' })).status, 404);
  });
});

describe('priority', () => {
  let g: TestGateway;
  before(async () => {
    g = await boot({
      routes: [
        await route('p-low', { uri: '/p', priority: 1 }),
        await route('p-high', { uri: '/p', priority: 5 }),
        await route('p-default', { uri: '/p' }),
        await route('tie-first', { uri: '/tie', priority: 3 }),
        await route('tie-second', { uri: '/tie', priority: 3 }),
        await route('zero-first', { uri: '/zero' }),
        await route('zero-second', { uri: '/zero' }),
        await route('neg', { uri: '/neg', priority: -1 }),
        await route('neg-default', { uri: '/neg' }),
        // the high-priority route only takes GET; other methods go to the low one
        await route('m-low', { uri: '/m', priority: 0 }),
        await route('m-high-get', { uri: '/m', methods: ['GET'], priority: 10 }),
      ],
    });
  });

  test('the highest priority wins among routes with the same uri', async () => {
    assert.equal((await send(g, '/p')).via, 'p-high');
  });

  test('equal priority goes to the route listed first', async () => {
    assert.equal((await send(g, '/tie')).via, 'tie-first');
    assert.equal((await send(g, '/zero')).via, 'zero-first');
  });

  test('a negative priority loses to the default of 0', async () => {
    assert.equal((await send(g, '/neg')).via, 'neg-default');
  });

  test('uris that differ only in parameter names are the same uri: priority decides and the winner names the params', async () => {
    const routes = [
      await route('pn-id', { uri: '/pn/:id', priority: 1 }),
      await route('pn-name', { uri: '/pn/:name', priority: 2 }),
      await route('pn-first', { uri: '/pt/:a/x' }),
      await route('pn-second', { uri: '/pt/:b/x' }),
    ];
    const g2 = await boot({ routes });
    const r = await send(g2, '/pn/5');
    assert.equal(r.status, 200);
    assert.equal(r.via, 'pn-name');
    assert.equal((await send(g2, '/pt/1/x')).via, 'pn-first');
    const winner = g2.gw.snapshot.router.find('GET', '', '/pn/abc');
    assert.deepEqual({ ...winner?.params }, { name: 'abc' });
  });

  test('priority only decides among routes that match the method', async () => {
    assert.equal((await send(g, '/m')).via, 'm-high-get');
    assert.equal((await send(g, '/m', { method: 'POST' })).via, 'm-low');
  });
});

describe('uris, status and upstream_id', () => {
  let g: TestGateway;
  let shared: Upstream;
  before(async () => {
    shared = await upstreamFor('shared-upstream');
    g = await boot({
      upstreams: [{ id: 'shared', nodes: { [shared.node]: 1 } }, { id: 7, nodes: [{ host: '127.0.0.1', port: shared.port, weight: 1 }] }],
      routes: [
        await route('many', { uris: ['/one', '/two/*', '/three/:x'] }),
        await route('disabled', { uri: '/off', status: 0 }),
        await route('disabled-high', { uri: '/shadow', status: 0, priority: 100 }),
        await route('enabled-low', { uri: '/shadow', status: 1 }),
        { id: 'by-ref', uri: '/ref', upstream_id: 'shared' },
        { id: 'by-numeric-ref', uri: '/ref-num', upstream_id: 7 },
      ],
    });
  });

  test('every uri of a uris list routes to the same route', async () => {
    assert.equal((await send(g, '/one')).via, 'many');
    assert.equal((await send(g, '/two/deep/path')).via, 'many');
    assert.equal((await send(g, '/three/x')).via, 'many');
    assert.equal((await send(g, '/four')).status, 404);
  });

  test('status 0 disables a route: its uri answers 404', async () => {
    const r = await send(g, '/off');
    assert.equal(r.status, 404);
    assert.equal(r.body, NOT_FOUND);
    assert.equal(upstreams.get('disabled')!.seen.length, 0);
  });

  test('a disabled route never wins, whatever its priority', async () => {
    assert.equal((await send(g, '/shadow')).via, 'enabled-low');
    assert.equal(upstreams.get('disabled-high')!.seen.length, 0);
  });

  test('a route with upstream_id is proxied to the referenced upstream', async () => {
    const before = shared.seen.length;
    const r = await send(g, '/ref');
    assert.equal(r.status, 200);
    assert.equal(r.via, 'shared-upstream');
    assert.equal(r.upstreamUrl, '/ref');
    assert.equal((await send(g, '/ref-num')).via, 'shared-upstream');
    assert.equal(shared.seen.length, before + 2);
  });
});

describe('host-first matching (as APISIX radixtree_host_uri)', () => {
  let g: TestGateway;
  before(async () => {
    const tenants = [];
    for (let i = 0; i < 40; i++) tenants.push({ id: `t${i}`, uri: '/*', hosts: [`t${i}.example.com`], upstream: { nodes: { [(await upstreamFor('tenant')).node]: 1 } }, plugins: { mocking: { response_example: `tenant ${i}` } } });
    g = await boot({
      routes: [
        ...tenants,
        await route('generic-exact', { uri: '/api/users' }),
        await route('host-prefix', { uri: '/api/*', hosts: ['shop.example.com'] }),
        await route('wild-deep', { uri: '/w', hosts: ['*.a.example.com'] }),
        await route('wild', { uri: '/w', hosts: ['*.example.com'] }),
      ],
    });
  });

  test('serves 40 tenants on the same uri, each by its own host', async () => {
    for (const i of [0, 17, 39]) {
      const r = await send(g, '/anything', { host: `t${i}.example.com` });
      assert.equal(r.status, 200);
      assert.equal(r.body, `tenant ${i}`);
    }
    assert.equal((await send(g, '/anything', { host: 't40.example.com' })).status, 404);
  });

  test("routes naming the request's host are searched before routes without hosts", async () => {
    assert.equal((await send(g, '/api/users', { host: 'shop.example.com' })).via, 'host-prefix');
    assert.equal((await send(g, '/api/users', { host: 'other.example.org' })).via, 'generic-exact');
  });

  test('a host route that does not match the path falls back to routes without hosts', async () => {
    assert.equal((await send(g, '/api/users', { host: 't1.example.com' })).status, 200);
    const r = await send(g, '/api/users', { host: 'www.example.com' });
    assert.equal(r.via, 'generic-exact');
  });

  test('the most specific wildcard host wins, and a wildcard never matches the bare domain', async () => {
    assert.equal((await send(g, '/w', { host: 'x.a.example.com' })).via, 'wild-deep');
    assert.equal((await send(g, '/w', { host: 'x.b.example.com' })).via, 'wild');
    assert.equal((await send(g, '/w', { host: 'example.com' })).status, 404);
  });
});

test('a uri the router cannot take is a config error with its path', async () => {
  await assert.rejects(bootGateway({ routes: [{ id: 'ok', uri: '/ok' }, { id: 'bad', uri: '/a/:id(\\d+' }] }), (err: Error & { issues?: Array<{ path: string }> }) => {
    assert.equal(err.issues?.[0]?.path, 'routes[1].uris[0]');
    return true;
  });
});
