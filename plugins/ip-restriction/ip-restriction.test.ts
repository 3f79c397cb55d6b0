// ip-restriction through a real gateway: clients on different loopback addresses (127.0.0.x, ::1,
// IPv4 through a dual-stack listener) against whitelists and blacklists of IPs and CIDRs, the
// refusal's status and body, and the config errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { startTestGateway, type TestGateway } from 'gatehouse-gateway/testing';
import type { ConfigIssue } from 'gatehouse-gateway/sdk';
import { bootTestGateway, startUpstream, type GatewayUnderTest, type Upstream } from 'gatehouse-gateway/testing';

interface Answer {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly body: string;
}

/** GET `url` from the local address `from` (any 127.x.y.z is a loopback address on Linux). */
function get(url: string, from?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { localAddress: from, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const REFUSED = '{"message":"Your IP address is not allowed"}';

const routes: Array<[string, Record<string, unknown>]> = [
  ['/white-ip', { whitelist: ['127.0.0.1'] }],
  ['/white-cidr', { whitelist: ['127.0.0.0/30', '10.0.0.0/8'] }],
  ['/black', { blacklist: ['127.0.0.2', '127.0.1.0/24'] }],
  ['/custom', { blacklist: ['127.0.0.3'], message: 'Go away', response_code: 404 }],
  ['/unaligned', { whitelist: ['127.0.0.9/29'] }],
];

let gw: TestGateway;
before(async () => {
  gw = await startTestGateway({
    config: (upstream) => ({ routes: routes.map(([uri, conf], i) => ({ id: `r${i}`, uri, plugins: { 'ip-restriction': conf }, upstream: { nodes: { [upstream]: 1 } } })) }),
  });
});
after(() => gw?.close());

const ipv6: GatewayUnderTest[] = [];
let up: Upstream;
before(async () => {
  up = await startUpstream();
});
after(async () => {
  for (const g of ipv6) await g.close();
  await up.close();
});

/** A gateway listening on `listen` (e.g. "[::1]:0") with one route "/" guarded by `conf`. */
async function bootOn(listen: string, conf: Record<string, unknown>): Promise<GatewayUnderTest> {
  const g = await bootTestGateway({ routes: [{ id: 'r', uri: '/', plugins: { 'ip-restriction': conf }, upstream: { nodes: { [up.node]: 1 } } }] }, { listen });
  ipv6.push(g);
  return g;
}

async function refused(conf: unknown): Promise<readonly ConfigIssue[]> {
  let issues: readonly ConfigIssue[] | undefined;
  await assert.rejects(startTestGateway({ config: (up) => ({ routes: [{ id: 'r', uri: '/', plugins: { 'ip-restriction': conf }, upstream: { nodes: { [up]: 1 } } }] }) }), (err: Error & { code?: string; issues?: readonly ConfigIssue[] }) => {
    assert.equal(err.code, 'GH_ERR_CONFIG_INVALID');
    issues = err.issues;
    return true;
  });
  return issues!;
}

test('whitelist: a listed IP passes to the upstream; any other gets 403 {"message":"Your IP address is not allowed"} and the upstream is not called', async () => {
  const ok = await get(`${gw.url}/white-ip`, '127.0.0.1');
  assert.equal(ok.status, 200);
  assert.equal(JSON.parse(ok.body).url, '/white-ip');
  const before = gw.upstream.requests.length;
  const no = await get(`${gw.url}/white-ip`, '127.0.0.2');
  assert.equal(no.status, 403);
  assert.equal(no.contentType, 'application/json');
  assert.equal(no.body, REFUSED);
  assert.equal(gw.upstream.requests.length, before);
});

test('whitelist: CIDR ranges include their addresses and nothing else', async () => {
  assert.equal((await get(`${gw.url}/white-cidr`, '127.0.0.1')).status, 200);
  assert.equal((await get(`${gw.url}/white-cidr`, '127.0.0.3')).status, 200);
  const outside = await get(`${gw.url}/white-cidr`, '127.0.0.4');
  assert.equal(outside.status, 403);
  assert.equal(outside.body, REFUSED);
});

test('a CIDR written with host bits set (127.0.0.9/29) covers its whole network, as APISIX', async () => {
  assert.equal((await get(`${gw.url}/unaligned`, '127.0.0.8')).status, 200);
  assert.equal((await get(`${gw.url}/unaligned`, '127.0.0.15')).status, 200);
  assert.equal((await get(`${gw.url}/unaligned`, '127.0.0.16')).status, 403);
});

test('blacklist: listed IPs and CIDRs get 403, everyone else passes', async () => {
  assert.equal((await get(`${gw.url}/black`, '127.0.0.1')).status, 200);
  const ip = await get(`${gw.url}/black`, '127.0.0.2');
  assert.equal(ip.status, 403);
  assert.equal(ip.body, REFUSED);
  assert.equal((await get(`${gw.url}/black`, '127.0.1.77')).status, 403);
  assert.equal((await get(`${gw.url}/black`, '127.0.2.1')).status, 200);
});

test('message and response_code change the refusal', async () => {
  const r = await get(`${gw.url}/custom`, '127.0.0.3');
  assert.equal(r.status, 404);
  assert.equal(r.contentType, 'application/json');
  assert.equal(r.body, '{"message":"Go away"}');
  assert.equal((await get(`${gw.url}/custom`, '127.0.0.4')).status, 200);
});

test('IPv6 clients: addresses and CIDRs match, IPv4 entries do not', async () => {
  const white = await bootOn('[::1]:0', { whitelist: ['::1'] });
  const ok = await get(`http://[::1]:${white.port}/`);
  assert.equal(ok.status, 200);
  assert.equal(JSON.parse(ok.body).headers['x-real-ip'], '::1');
  const range = await bootOn('[::1]:0', { whitelist: ['2001:db8::/32', '127.0.0.1'] });
  const r = await get(`http://[::1]:${range.port}/`);
  assert.equal(r.status, 403);
  assert.equal(r.body, REFUSED);
  const black = await bootOn('[::1]:0', { blacklist: ['0:0:0:0:0:0:0:0/120'] });
  assert.equal((await get(`http://[::1]:${black.port}/`)).status, 403, '::1 is inside ::/120');
});

test('an IPv4 client of a dual-stack listener (::ffff:127.0.0.1) is matched against IPv4 entries', async () => {
  const white = await bootOn('[::]:0', { whitelist: ['127.0.0.1'] });
  const ok = await get(`http://127.0.0.1:${white.port}/`, '127.0.0.1');
  assert.equal(ok.status, 200);
  assert.equal(JSON.parse(ok.body).headers['x-real-ip'], '::ffff:127.0.0.1', 'the gateway sees the mapped address');
  assert.equal((await get(`http://127.0.0.1:${white.port}/`, '127.0.0.2')).status, 403);
  const black = await bootOn('[::]:0', { blacklist: ['127.0.0.0/8'] });
  assert.equal((await get(`http://127.0.0.1:${black.port}/`, '127.0.0.1')).status, 403);
});

test('exactly one of whitelist and blacklist', async () => {
  assert.deepEqual(await refused({ whitelist: ['127.0.0.1'], blacklist: ['10.0.0.1'] }), [{ path: 'routes[0].plugins.ip-restriction', message: 'must set only one of: whitelist, blacklist' }]);
  assert.deepEqual(await refused({ message: 'no list' }), [{ path: 'routes[0].plugins.ip-restriction', message: 'must set one of: whitelist, blacklist' }]);
});

test('schema errors name the field', async () => {
  assert.deepEqual(await refused({ whitelist: ['127.0.0.1', 'localhost'] }), [{ path: 'routes[0].plugins.ip-restriction.whitelist[1]', message: 'has an invalid format (must match ^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$)' }]);
  assert.deepEqual(await refused({ blacklist: [] }), [{ path: 'routes[0].plugins.ip-restriction.blacklist', message: 'must have at least 1 entry' }]);
  assert.deepEqual(await refused({ whitelist: ['127.0.0.1'], message: '' }), [{ path: 'routes[0].plugins.ip-restriction.message', message: 'must not be empty' }]);
  assert.deepEqual(await refused({ whitelist: ['127.0.0.1'], response_code: 401 }), [{ path: 'routes[0].plugins.ip-restriction.response_code', message: 'must be one of: 403, 404' }]);
  assert.deepEqual(await refused({ whitelist: ['127.0.0.1'], deny: true }), [{ path: 'routes[0].plugins.ip-restriction.deny', message: 'is not a known field' }]);
});

test('addresses are checked when the config loads: not an IP, or a prefix too long for its family', async () => {
  assert.deepEqual(await refused({ whitelist: ['127.0.0.1', '300.1.1.1'] }), [{ path: 'routes[0].plugins.ip-restriction', message: 'whitelist[1]: "300.1.1.1" is not an IP address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)' }]);
  assert.deepEqual(await refused({ blacklist: ['10.0.0.0/33'] }), [{ path: 'routes[0].plugins.ip-restriction', message: 'blacklist[0]: "10.0.0.0/33" has a prefix length above 32, the most an IPv4 CIDR can have' }]);
  assert.deepEqual(await refused({ blacklist: ['2001:db8::/129'] }), [{ path: 'routes[0].plugins.ip-restriction', message: 'blacklist[0]: "2001:db8::/129" has a prefix length above 128, the most an IPv6 CIDR can have' }]);
  assert.deepEqual(await refused({ blacklist: ['1:2:3'] }), [{ path: 'routes[0].plugins.ip-restriction', message: 'blacklist[0]: "1:2:3" is not an IP address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)' }]);
});
