// limit-count through real gateways: exact counts, quota headers, rejections, windows, keys,
// groups, reloads and bounded memory (local policy); and with a real redis-server, one quota
// shared by two gateways, outages with and without allow_degradation, and the password's handling.
import { test, after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryConfigStore } from 'gatehouse-gateway';
import { bootTestGateway, delay, FakeClock, startUpstream, type BootOptions, type GatewayUnderTest, type Upstream } from 'gatehouse-gateway/testing';
import { startRedis, type RedisServer } from '../../test/servers/redis';
import type { LocalCounters } from './counters';

let up: Upstream;
const gateways: GatewayUnderTest[] = [];
before(async () => {
  up = await startUpstream();
});
after(async () => {
  for (const g of gateways) await g.close();
  await up.close();
});

async function boot(config: Record<string, unknown>, opts: BootOptions = {}): Promise<GatewayUnderTest> {
  const g = await bootTestGateway(config, opts);
  gateways.push(g);
  return g;
}

async function closeGateway(g: GatewayUnderTest): Promise<void> {
  gateways.splice(gateways.indexOf(g), 1);
  await g.close();
}

const route = (id: string, limitCount: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  id,
  uri: `/${id}`,
  plugins: { 'limit-count': limitCount, ...extra },
  upstream: { nodes: { [up.node]: 1 } },
});

interface Reply {
  status: number;
  body: string;
  type: string | null;
  limit: string | null;
  remaining: string | null;
  reset: string | null;
}

async function call(g: GatewayUnderTest, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  const r = await fetch(g.url + path, { headers });
  const body = await r.text();
  const h = r.headers;
  return { status: r.status, body, type: h.get('content-type'), limit: h.get('x-ratelimit-limit'), remaining: h.get('x-ratelimit-remaining'), reset: h.get('x-ratelimit-reset') };
}

/** Statuses of `n` sequential requests. */
async function statuses(g: GatewayUnderTest, path: string, n: number, headers: Record<string, string> = {}): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await call(g, path, headers)).status);
  return out;
}

describe('local policy', () => {
  test('allows exactly count requests per window, then rejects with 503 and the status text; the quota headers count down', async () => {
    const g = await boot({ routes: [route('a', { count: 3, time_window: 60 })] });
    const seen = up.seen.length;
    const replies: Reply[] = [];
    for (let i = 0; i < 5; i++) replies.push(await call(g, '/a'));
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 503, 503]);
    assert.deepEqual(replies.map((r) => r.remaining), ['2', '1', '0', '0', '0']);
    assert.deepEqual(replies.map((r) => r.limit), ['3', '3', '3', '3', '3']);
    assert.equal(replies[0].reset, '60');
    assert.ok(replies.every((r) => Number(r.reset) > 0 && Number(r.reset) <= 60));
    assert.equal(replies[3].body, '503 Service Unavailable');
    assert.equal(replies[3].type, 'text/plain; charset=utf-8');
    assert.equal(up.seen.length - seen, 3, 'rejected requests never reach the upstream');
  });

  test('rejected_code and rejected_msg answer with that status and {"error_msg": rejected_msg}', async () => {
    const g = await boot({ routes: [route('b', { count: 1, time_window: 60, rejected_code: 429, rejected_msg: 'Too many requests, slow down' })] });
    assert.equal((await call(g, '/b')).status, 200);
    const r = await call(g, '/b');
    assert.equal(r.status, 429);
    assert.equal(r.body, '{"error_msg":"Too many requests, slow down"}');
    assert.equal(r.type, 'application/json');
    assert.equal(r.remaining, '0');
  });

  test('show_limit_quota_header false sends no quota headers, on success or rejection', async () => {
    const g = await boot({ routes: [route('c', { count: 1, time_window: 60, show_limit_quota_header: false })] });
    const ok = await call(g, '/c');
    const no = await call(g, '/c');
    assert.deepEqual([ok.status, no.status], [200, 503]);
    assert.deepEqual([ok.limit, ok.remaining, ok.reset, no.limit, no.remaining, no.reset], [null, null, null, null, null, null]);
  });

  test('a window ends time_window seconds after its first request: X-RateLimit-Reset counts down, then the quota is whole again', async () => {
    const clock = new FakeClock();
    const g = await boot({ routes: [route('d', { count: 2, time_window: 10 })] }, { clock });
    assert.deepEqual(await statuses(g, '/d', 3), [200, 200, 503]);
    clock.advance(4000);
    const r = await call(g, '/d');
    assert.deepEqual([r.status, r.reset], [503, '6']);
    clock.advance(5999);
    assert.equal((await call(g, '/d')).status, 503, 'still the same window 1 ms before its end');
    clock.advance(1);
    const fresh = await call(g, '/d');
    assert.deepEqual([fresh.status, fresh.remaining, fresh.reset], [200, '1', '10']);
    assert.deepEqual(await statuses(g, '/d', 2), [200, 503]);
  });

  test('a real-time window of 1 s: rejected, then allowed again after a second', async () => {
    const g = await boot({ routes: [route('e', { count: 1, time_window: 1 })] });
    assert.deepEqual(await statuses(g, '/e', 2), [200, 503]);
    await delay(1050);
    assert.deepEqual(await statuses(g, '/e', 2), [200, 503]);
  });

  test('key http_x_api_user counts each user apart; without the header the client address is the key', async () => {
    const g = await boot({ routes: [route('f', { count: 2, time_window: 60, key: 'http_x_api_user' })] });
    assert.deepEqual(await statuses(g, '/f', 3, { 'x-api-user': 'alice' }), [200, 200, 503]);
    assert.deepEqual(await statuses(g, '/f', 3, { 'x-api-user': 'bob' }), [200, 200, 503], 'bob has his own quota');
    assert.deepEqual(await statuses(g, '/f', 3), [200, 200, 503], 'no header: counted by client address, apart from the users');
  });

  test('key consumer_name with key-auth: each consumer has its own quota', async () => {
    const g = await boot({
      routes: [route('g', { count: 1, time_window: 60, key: 'consumer_name', rejected_code: 429 }, { 'key-auth': {} })],
      consumers: [
        { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } },
        { username: 'jill', plugins: { 'key-auth': { key: 'jill-key' } } },
      ],
    });
    assert.deepEqual(await statuses(g, '/g', 2, { apikey: 'jack-key' }), [200, 429]);
    assert.deepEqual(await statuses(g, '/g', 2, { apikey: 'jill-key' }), [200, 429]);
    assert.equal((await call(g, '/g')).status, 401, 'authentication runs first');
  });

  test('var_combination keys combine variables (missing ones count as empty); constant keys share one quota; arg_ and cookie_ variables', async () => {
    const g = await boot({
      routes: [
        route('h', { count: 1, time_window: 60, key_type: 'var_combination', key: '$http_x_team-${arg_user}' }),
        route('i', { count: 2, time_window: 60, key_type: 'constant', key: 'everyone' }),
        route('j', { count: 1, time_window: 60, key: 'cookie_session' }),
      ],
    });
    assert.deepEqual(await statuses(g, '/h?user=ann', 2, { 'x-team': 'red' }), [200, 503]);
    assert.deepEqual(await statuses(g, '/h?user=bo', 2, { 'x-team': 'red' }), [200, 503], 'another user of the same team');
    assert.deepEqual(await statuses(g, '/h?user=ann', 2), [200, 503], 'team missing: "-ann" is its own key');
    assert.deepEqual(await statuses(g, '/i', 1, { 'x-api-user': 'a' }), [200]);
    assert.deepEqual(await statuses(g, '/i', 2, { 'x-api-user': 'b' }), [200, 503], 'one quota for every client');
    assert.deepEqual(await statuses(g, '/j', 2, { cookie: 'theme=dark; session=s1' }), [200, 503]);
    assert.deepEqual(await statuses(g, '/j', 1, { cookie: 'session=s2' }), [200]);
  });

  test('an unknown variable, or a template without one, is a config error naming the route', async () => {
    await assert.rejects(boot({ routes: [route('k', { count: 1, time_window: 60, key: 'http-x-user' })] }), /routes\[0\]\.plugins\.limit-count: key: unknown variable "http-x-user"/);
    await assert.rejects(boot({ routes: [route('k', { count: 1, time_window: 60, key_type: 'var_combination', key: 'remote_addr' })] }), /routes\[0\]\.plugins\.limit-count: key: "remote_addr" names no variable/);
    await assert.rejects(boot({ routes: [route('k', { count: 0, time_window: 60 })] }), /routes\[0\]\.plugins\.limit-count\.count/);
    await assert.rejects(boot({ routes: [route('k', { count: 1, time_window: 60, policy: 'redis' })] }), /routes\[0\]\.plugins\.limit-count.*redis_host/);
  });

  test('routes of one group share one counter; a route outside the group has its own', async () => {
    const conf = { count: 3, time_window: 60, group: 'shared' };
    const g = await boot({ routes: [route('m1', conf), route('m2', conf), route('m3', { count: 3, time_window: 60 })] });
    assert.deepEqual([...(await statuses(g, '/m1', 2)), ...(await statuses(g, '/m2', 2))], [200, 200, 200, 503]);
    assert.equal((await call(g, '/m1')).status, 503);
    assert.deepEqual(await statuses(g, '/m3', 3), [200, 200, 200]);
  });

  test('routes of one group with different configs are a config error naming the differing fields; changing them all in a reload is fine', async () => {
    await assert.rejects(
      boot({ routes: [route('n1', { count: 3, time_window: 60, group: 'g1' }), route('n2', { count: 5, time_window: 60, group: 'g1', rejected_code: 429 })] }),
      /routes\[1\]\.plugins\.limit-count: group "g1" is configured differently on another route \(count, rejected_code\)/,
    );
    const doc = (count: number) => ({ routes: [route('n1', { count, time_window: 60, group: 'g1' }), route('n2', { count, time_window: 60, group: 'g1' })] });
    const store = new MemoryConfigStore(doc(2));
    const g = await boot({}, { store });
    assert.deepEqual([(await call(g, '/n1')).status, (await call(g, '/n2')).status, (await call(g, '/n1')).status], [200, 200, 503]);
    store.set(doc(4));
    assert.equal((await g.gateway.reload()).ok, true, 'every route of the group changed together');
    assert.deepEqual([(await call(g, '/n2')).status, (await call(g, '/n1')).status], [200, 503], 'the shared count (3) went on: one more, then rejected');
  });

  test('a reload keeps the count; a changed count applies to the requests already counted', async () => {
    const doc = (count: number, more: unknown[] = []) => ({ routes: [route('p', { count, time_window: 60 }), ...more] });
    const store = new MemoryConfigStore(doc(3));
    const g = await boot({}, { store });
    assert.deepEqual(await statuses(g, '/p', 2), [200, 200]);
    store.set(doc(3, [route('other', { count: 1, time_window: 60 })]));
    assert.equal((await g.gateway.reload()).ok, true);
    assert.equal((await call(g, '/other')).status, 200, 'the reload took effect');
    const third = await call(g, '/p');
    assert.deepEqual([third.status, third.remaining], [200, '0'], 'the count went on across the reload');
    assert.equal((await call(g, '/p')).status, 503);
    store.set(doc(6));
    assert.equal((await g.gateway.reload()).ok, true);
    const after = await call(g, '/p');
    assert.deepEqual([after.status, after.remaining], [200, '1'], '4 counted before + this one = 5 of 6');
  });

  test('memory stays bounded: the keys of ended windows are dropped when the window rolls over', async () => {
    const clock = new FakeClock();
    const g = await boot({ routes: [route('q', { count: 5, time_window: 1, key: 'http_x_api_user' })] }, { clock });
    const counters = () => g.gateway.builder.stateOf('limit-count').get<LocalCounters>('local:1000', () => assert.fail('no local counters'));
    const perRound = 100;
    let most = 0;
    for (let round = 0; round < 8; round++) {
      await Promise.all(Array.from({ length: perRound }, (_, i) => call(g, '/q', { 'x-api-user': `user-${round}-${i}` })));
      most = Math.max(most, counters().size);
      clock.advance(1000);
    }
    assert.ok(most <= 2 * perRound, `at most two windows of keys are held (held ${most})`);
    clock.advance(5000);
    await call(g, '/q', { 'x-api-user': 'last' });
    assert.equal(counters().size, 1, 'after an idle window only the new key is left');
  });
});

describe('redis policy', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis({ password: 'redis-test-pass' });
    process.env.GH_LC_REDIS_PASSWORD = 'redis-test-pass';
  });
  after(async () => {
    await redis?.close();
  });

  const redisConf = (extra: Record<string, unknown> = {}) => ({ count: 5, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port, redis_password: '$env://GH_LC_REDIS_PASSWORD', ...extra });
  const clientsOf = async (r: RedisServer) => Number(/connected_clients:(\d+)/.exec(String(await r.command('INFO', 'clients')))![1]) - 1;

  test('two gateways sharing one Redis (password from an $env:// reference) allow count requests in total, not per gateway', async () => {
    const config = { routes: [route('r1', redisConf())] };
    const a = await boot(config);
    const b = await boot(config);
    const replies: Reply[] = [];
    for (let i = 0; i < 8; i++) replies.push(await call(i % 2 === 0 ? a : b, '/r1'));
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200, 200, 503, 503, 503]);
    assert.deepEqual(replies.map((r) => r.remaining), ['4', '3', '2', '1', '0', '0', '0', '0']);
    assert.ok(replies.every((r) => r.limit === '5' && Number(r.reset) > 0 && Number(r.reset) <= 60));
    const keys = (await redis.command('KEYS', 'limit-count:*')) as string[];
    assert.equal(keys.length, 1, 'one counter in Redis');
    const ttl = (await redis.command('PTTL', keys[0])) as number;
    assert.ok(ttl > 0 && ttl <= 60000, `the counter expires with its window (pttl ${ttl})`);
    assert.ok(!a.logs.text().includes('redis-test-pass') && !b.logs.text().includes('redis-test-pass'));
  });

  test('concurrent requests through two gateways: the quota holds exactly (atomic counting)', async () => {
    const config = { routes: [route('r2', redisConf({ count: 10, rejected_code: 429 }))] };
    const a = await boot(config);
    const b = await boot(config);
    const all = await Promise.all(Array.from({ length: 40 }, (_, i) => call(i % 2 === 0 ? a : b, '/r2')));
    assert.equal(all.filter((r) => r.status === 200).length, 10);
    assert.equal(all.filter((r) => r.status === 429).length, 30);
  });

  test('a Redis window ends after time_window seconds', async () => {
    const g = await boot({ routes: [route('r3', redisConf({ count: 1, time_window: 1 }))] });
    assert.deepEqual(await statuses(g, '/r3', 2), [200, 503]);
    await delay(1100);
    assert.deepEqual(await statuses(g, '/r3', 2), [200, 503]);
  });

  test('groups share one Redis counter across routes and gateways', async () => {
    const conf = redisConf({ count: 4, group: 'api' });
    const a = await boot({ routes: [route('r4', conf), route('r5', conf)] });
    const b = await boot({ routes: [route('r5', conf)] });
    assert.deepEqual([(await call(a, '/r4')).status, (await call(a, '/r5')).status, (await call(b, '/r5')).status, (await call(b, '/r5')).status, (await call(a, '/r4')).status], [200, 200, 200, 200, 503]);
  });

  test('a rotated Redis password: the new config connects with the new one, and the old connection is closed once the old config is done', async () => {
    const r = await startRedis({ password: 'rot-admin-pass-0000' });
    try {
      // a Redis ACL user may hold two passwords at once: how a password is rotated without downtime
      await r.command('ACL', 'SETUSER', 'gh', 'on', '>rot-pass-one-0001', '~*', '+@all');
      process.env.GH_LC_ROT_ONE = 'rot-pass-one-0001';
      process.env.GH_LC_ROT_TWO = 'rot-pass-two-0002';
      const conf = (ref: string) => ({ count: 100, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_port: r.port, redis_username: 'gh', redis_password: ref });
      const store = new MemoryConfigStore({ routes: [route('t1', conf('$env://GH_LC_ROT_ONE'))] });
      const g = await boot({}, { store });
      assert.equal((await call(g, '/t1')).status, 200);
      assert.equal(await clientsOf(r), 1);
      await r.command('ACL', 'SETUSER', 'gh', '>rot-pass-two-0002');
      store.set({ routes: [route('t1', conf('$env://GH_LC_ROT_TWO'))] });
      assert.equal((await g.gateway.reload()).ok, true);
      const after = await call(g, '/t1');
      assert.deepEqual([after.status, after.remaining], [200, '98'], 'the same counter in Redis, through the new connection');
      // before, the first connection stayed open until the gateway closed: one more per rotation
      for (let i = 0; i < 50 && (await clientsOf(r)) !== 1; i++) await delay(20);
      assert.equal(await clientsOf(r), 1, 'only the new connection is left');
      await r.command('ACL', 'SETUSER', 'gh', '<rot-pass-one-0001');
      assert.equal((await call(g, '/t1')).remaining, '97', 'the old password can be revoked');
    } finally {
      delete process.env.GH_LC_ROT_ONE;
      delete process.env.GH_LC_ROT_TWO;
      await r.close();
    }
  });

  test('one connection per Redis target, shared by routes and kept across reloads; closed with the gateway', async () => {
    const r = await startRedis();
    try {
      const conf = { count: 100, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_port: r.port };
      const doc = { routes: [route('s1', conf), route('s2', conf), route('s3', { ...conf, count: 50, group: 'x' })] };
      const store = new MemoryConfigStore(doc);
      const g = await boot({}, { store });
      assert.equal(await clientsOf(r), 0, 'connects on the first request, not at load');
      for (const p of ['/s1', '/s2', '/s3']) assert.equal((await call(g, p)).status, 200);
      assert.equal(await clientsOf(r), 1);
      store.set({ routes: [...doc.routes, route('s4', conf)] });
      assert.equal((await g.gateway.reload()).ok, true);
      assert.equal((await call(g, '/s4')).status, 200);
      assert.equal((await call(g, '/s1')).remaining, '98', 'the count went on across the reload');
      assert.equal(await clientsOf(r), 1, 'still one connection');
      await closeGateway(g);
      for (let i = 0; i < 50 && (await clientsOf(r)) !== 0; i++) await delay(20);
      assert.equal(await clientsOf(r), 0, 'closed with the gateway');
    } finally {
      await r.close();
    }
  });

  test('Redis down: 500 {"error_msg":"failed to limit count"}, or let through with allow_degradation; one log line; back when Redis is', async () => {
    const r = await startRedis();
    try {
      const conf = { count: 100, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_port: r.port, redis_timeout: 500 };
      const g = await boot({ routes: [route('t1', conf), route('t2', { ...conf, allow_degradation: true })] });
      assert.deepEqual([(await call(g, '/t1')).status, (await call(g, '/t2')).status], [200, 200]);
      await r.kill();
      for (let i = 0; i < 3; i++) {
        const strict = await call(g, '/t1');
        assert.deepEqual([strict.status, strict.body, strict.type], [500, '{"error_msg":"failed to limit count"}', 'application/json']);
        const lenient = await call(g, '/t2');
        assert.deepEqual([lenient.status, lenient.limit], [200, null], 'let through, without quota headers');
      }
      await delay(300);
      assert.equal((await call(g, '/t1')).status, 500);
      const down = g.logs.lines.filter((l) => l.msg?.includes('redis unavailable'));
      assert.equal(down.length, 1, `one line for the outage: ${JSON.stringify(down)}`);
      assert.equal(down[0].redis, `127.0.0.1:${r.port}/0`);
      assert.equal(down[0].plugin, 'limit-count');
      assert.match(down[0].err, /ECONNREFUSED|Connection is closed|max retries|reconnecting/i);
      await r.restart();
      let back = 0;
      for (let i = 0; i < 100 && back !== 200; i++) {
        back = (await call(g, '/t1')).status;
        if (back !== 200) await delay(50);
      }
      assert.equal(back, 200, 'counting again once Redis is back');
      assert.equal(g.logs.lines.filter((l) => l.msg?.includes('redis available again')).length, 1);
    } finally {
      await r.close();
    }
  });

  test('a wrong password: 500, one clear log line (WRONGPASS), and the password never in the logs', async () => {
    const g = await boot({ routes: [route('u', redisConf({ redis_password: 'not-the-password-4711' }))] });
    for (let i = 0; i < 3; i++) assert.equal((await call(g, '/u')).status, 500);
    await delay(300);
    assert.equal((await call(g, '/u')).status, 500);
    const lines = g.logs.lines.filter((l) => l.plugin === 'limit-count');
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.match(lines[0].err, /WRONGPASS|invalid username-password/);
    assert.ok(!g.logs.text().includes('not-the-password-4711'));
    assert.ok(!g.logs.text().includes('redis-test-pass'));
  });

  test('redis_ssl connects over TLS; redis_ssl_verify (default true) refuses an untrusted certificate', async () => {
    const r = await startRedis({ tls: true });
    try {
      const conf = { count: 1, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_port: r.port, redis_ssl: true };
      const g = await boot({ routes: [route('w1', { ...conf, redis_ssl_verify: false }), route('w2', conf)] });
      assert.deepEqual(await statuses(g, '/w1', 2), [200, 503], 'counted in Redis over TLS');
      assert.equal((await r.command('DBSIZE')) as number, 1);
      assert.equal((await call(g, '/w2')).status, 500, 'the self-signed certificate is not trusted');
      const lines = g.logs.lines.filter((l) => l.plugin === 'limit-count');
      assert.equal(lines.length, 1, JSON.stringify(lines));
      // the whole text, the same on every Node version (without Node 24's --use-system-ca hint)
      assert.equal(lines[0].err, 'self-signed certificate');
    } finally {
      await r.close();
    }
  });

  test('the Admin API shows redis_password masked, and a reference as written', async () => {
    const g = await boot(
      { admin: { key: 'admin-key' }, routes: [route('v1', redisConf({ redis_password: 'literal-pass' })), route('v2', redisConf())] },
      { adminListen: '127.0.0.1:0' },
    );
    const get = async (id: string) => (await fetch(`http://127.0.0.1:${g.gateway.adminAddress!.port}/admin/routes/${id}`, { headers: { 'x-api-key': 'admin-key' } })).text();
    const v1 = await get('v1');
    assert.ok(!v1.includes('literal-pass') && v1.includes('"redis_password":"******"'), v1);
    assert.ok((await get('v2')).includes('"redis_password":"$env://GH_LC_REDIS_PASSWORD"'));
  });
});
