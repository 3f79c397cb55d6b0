// Tests for upstream node selection (core/request/balancer.ts) and passive health checks (core/request/health.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBalancer, type BalancerOptions, type HashSource, type UpstreamNode } from './balancer';
import { PassiveHealth } from './health';

function node(host: string, weight = 1, port = 80): UpstreamNode {
  return { host, port, weight, key: `${host}:${port}` };
}

function src(over: Partial<HashSource> = {}): HashSource {
  return { remoteAddr: '10.0.0.1', uri: '/', host: 'example.com', headers: {}, query: '', ...over };
}

const healthy = (_key: string): boolean => true;
const SRC = src();

function picks(opts: BalancerOptions, count: number, exclude: ReadonlySet<string> | null = null, isHealthy: (key: string) => boolean = healthy): string[] {
  const b = createBalancer(opts);
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(b.pick(SRC, exclude, isHealthy)?.host ?? '<none>');
  return out;
}

function tally(list: readonly string[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const x of list) t[x] = (t[x] ?? 0) + 1;
  return t;
}

// ---------------------------------------------------------------------------------------------
// roundrobin

test('roundrobin follows weights exactly over a full cycle', () => {
  const nodes = [node('a', 3), node('b', 2), node('c', 1), node('d', 4)];
  const sum = 10;
  for (let cycles = 1; cycles <= 5; cycles++) {
    assert.deepEqual(tally(picks({ type: 'roundrobin', nodes }, cycles * sum)), { a: 3 * cycles, b: 2 * cycles, c: cycles, d: 4 * cycles });
  }
});

test('roundrobin interleaves like nginx smooth weighted round robin (5,1,1 gives a a b a c a a)', () => {
  const seq = picks({ type: 'roundrobin', nodes: [node('a', 5), node('b', 1), node('c', 1)] }, 21);
  const cycle = ['a', 'a', 'b', 'a', 'c', 'a', 'a'];
  assert.deepEqual(seq, [...cycle, ...cycle, ...cycle]);
});

test('roundrobin with equal weights alternates', () => {
  assert.deepEqual(picks({ type: 'roundrobin', nodes: [node('a'), node('b'), node('c')] }, 6), ['a', 'b', 'c', 'a', 'b', 'c']);
});

test('roundrobin never picks weight-0 nodes and returns undefined when every weight is 0', () => {
  const seq = picks({ type: 'roundrobin', nodes: [node('a', 1), node('z', 0), node('b', 2)] }, 30);
  assert.deepEqual(tally(seq), { a: 10, b: 20 });
  assert.deepEqual(picks({ type: 'roundrobin', nodes: [node('a', 0), node('b', 0)] }, 3), ['<none>', '<none>', '<none>']);
  assert.deepEqual(picks({ type: 'roundrobin', nodes: [] }, 1), ['<none>']);
});

test('roundrobin never returns an excluded node and returns undefined when all are excluded', () => {
  const nodes = [node('a', 5), node('b', 1), node('c', 1)];
  const seq = picks({ type: 'roundrobin', nodes }, 20, new Set(['a:80']));
  assert.ok(!seq.includes('a'));
  assert.deepEqual(tally(seq), { b: 10, c: 10 });
  assert.deepEqual(picks({ type: 'roundrobin', nodes }, 2, new Set(['a:80', 'b:80', 'c:80'])), ['<none>', '<none>']);
});

test('roundrobin skips unhealthy nodes while a healthy one remains', () => {
  const nodes = [node('a', 5), node('b', 1), node('c', 1)];
  const seq = picks({ type: 'roundrobin', nodes }, 30, null, (k) => k !== 'a:80');
  assert.deepEqual(tally(seq), { b: 15, c: 15 });
  // Excluded + unhealthy together leave exactly one candidate.
  assert.deepEqual(picks({ type: 'roundrobin', nodes }, 4, new Set(['b:80']), (k) => k !== 'a:80'), ['c', 'c', 'c', 'c']);
});

test('roundrobin fails open among non-excluded nodes when every remaining node is unhealthy', () => {
  const nodes = [node('a', 2), node('b', 1), node('c', 1)];
  const seq = picks({ type: 'roundrobin', nodes }, 12, null, () => false);
  assert.deepEqual(tally(seq), { a: 6, b: 3, c: 3 });
  // b is healthy but excluded, a and c unhealthy: still a and c by weight, never b.
  const seq2 = picks({ type: 'roundrobin', nodes }, 9, new Set(['b:80']), (k) => k === 'b:80');
  assert.deepEqual(tally(seq2), { a: 6, c: 3 });
});

test('roundrobin acquire and release do not change the rotation', () => {
  const b = createBalancer({ type: 'roundrobin', nodes: [node('a'), node('b')] });
  const first = b.pick(SRC, null, healthy)!;
  b.acquire(first);
  b.acquire(first);
  assert.equal(b.pick(SRC, null, healthy)?.host, 'b');
  b.release(first);
  assert.equal(b.pick(SRC, null, healthy)?.host, 'a');
});

test('createBalancer rejects duplicate keys, bad weights and unknown types', () => {
  assert.throws(() => createBalancer({ type: 'roundrobin', nodes: [node('a'), node('a')] }), TypeError);
  assert.throws(() => createBalancer({ type: 'roundrobin', nodes: [node('a', -1)] }), TypeError);
  assert.throws(() => createBalancer({ type: 'least_conn', nodes: [node('a', 1.5)] }), TypeError);
  assert.throws(() => createBalancer({ type: 'chash', nodes: [node('a', Number.NaN)] }), TypeError);
  assert.throws(() => createBalancer({ type: 'random' as never, nodes: [node('a')] }), TypeError);
});

// ---------------------------------------------------------------------------------------------
// chash

const FOUR = [node('n1'), node('n2'), node('n3'), node('n4')];

function keys(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `user-${i}`);
}

test('chash maps the same key to the same node every time, independent of node order', () => {
  const b1 = createBalancer({ type: 'chash', nodes: FOUR });
  const b2 = createBalancer({ type: 'chash', nodes: [...FOUR].reverse() });
  const seen = new Set<string>();
  for (const k of keys(300)) {
    const s = src({ remoteAddr: k });
    const first = b1.pick(s, null, healthy)!.key;
    seen.add(first);
    for (let i = 0; i < 3; i++) assert.equal(b1.pick(s, null, healthy)!.key, first);
    assert.equal(b2.pick(s, null, healthy)!.key, first);
  }
  assert.equal(seen.size, 4, 'keys spread over all nodes');
});

test('chash spreads keys in proportion to weight', () => {
  const b = createBalancer({ type: 'chash', nodes: [node('light', 1), node('heavy', 3), node('off', 0)] });
  const t = tally(keys(20000).map((k) => b.pick(src({ remoteAddr: k }), null, healthy)!.host));
  assert.equal(t.off, undefined);
  const heavyShare = t.heavy / 20000;
  assert.ok(heavyShare > 0.68 && heavyShare < 0.82, `heavy share ${heavyShare}`);
  const b4 = createBalancer({ type: 'chash', nodes: FOUR });
  const t4 = tally(keys(20000).map((k) => b4.pick(src({ remoteAddr: k }), null, healthy)!.host));
  for (const n of ['n1', 'n2', 'n3', 'n4']) assert.ok(t4[n] > 4000 && t4[n] < 6000, `${n}: ${t4[n]}`);
});

/**
 * A chash balancer configured with `opts` must pick, for value v placed into the request by `place`,
 * the same node as the default (remote_addr) balancer picks for a client whose address is v.
 * The placed value is surrounded by unrelated request data (noise), which must not matter.
 */
function assertHashesOn(opts: Omit<BalancerOptions, 'type' | 'nodes'>, place: (v: string, noise: string) => Partial<HashSource>): void {
  const b = createBalancer({ type: 'chash', nodes: FOUR, ...opts });
  const ref = createBalancer({ type: 'chash', nodes: FOUR });
  const chosen = new Set<string>();
  for (const v of keys(200)) {
    const expected = ref.pick(src({ remoteAddr: v }), null, healthy)!.key;
    for (const noise of ['x1', 'y2']) {
      const s = src({ remoteAddr: `192.0.2.${noise.length}${noise}`, ...place(v, noise) });
      const got = b.pick(s, null, healthy)!.key;
      assert.equal(got, expected, `value ${v} (noise ${noise}) with ${JSON.stringify(opts)}`);
      chosen.add(got);
    }
  }
  assert.equal(chosen.size, 4);
}

test('chash hashes on the client address by default and with vars remote_addr', () => {
  const b = createBalancer({ type: 'chash', nodes: FOUR, hashOn: 'vars', key: 'remote_addr' });
  const d = createBalancer({ type: 'chash', nodes: FOUR });
  for (const k of keys(100)) {
    const chosen = b.pick(src({ remoteAddr: k }), null, healthy)!.key;
    assert.equal(d.pick(src({ remoteAddr: k, uri: `/other/${k}`, query: 'a=1' }), null, healthy)!.key, chosen);
  }
  assertHashesOn({ hashOn: 'vars', key: 'remote_addr' }, (v, noise) => ({ remoteAddr: v, uri: `/${noise}`, query: `a=${noise}` }));
  assertHashesOn({}, (v, noise) => ({ remoteAddr: v, host: noise, headers: { cookie: `x=${noise}` } }));
});

test('chash hash_on vars uri, request_uri and host use those request parts', () => {
  assertHashesOn({ hashOn: 'vars', key: 'uri' }, (v, noise) => ({ uri: v, query: `q=${noise}`, host: noise }));
  assertHashesOn({ hashOn: 'vars', key: 'host' }, (v, noise) => ({ host: v, uri: `/${noise}` }));
  // request_uri is path + '?' + query, or just the path without a query.
  const b = createBalancer({ type: 'chash', nodes: FOUR, key: 'request_uri' });
  const ref = createBalancer({ type: 'chash', nodes: FOUR });
  for (const k of keys(50)) {
    assert.equal(b.pick(src({ uri: '/p', query: `v=${k}` }), null, healthy), ref.pick(src({ remoteAddr: `/p?v=${k}` }), null, healthy));
    assert.equal(b.pick(src({ uri: `/p/${k}`, query: '' }), null, healthy), ref.pick(src({ remoteAddr: `/p/${k}` }), null, healthy));
  }
});

test('chash hash_on vars arg_<name> reads the named query argument', () => {
  assertHashesOn({ key: 'arg_x' }, (v, noise) => ({ query: `xx=${noise}&a=${noise}&x=${v}&x=${noise}&y=1` }));
  // The value is URL-decoded: both spellings hash as "<k> b/ü".
  const b = createBalancer({ type: 'chash', nodes: FOUR, key: 'arg_x' });
  const ref = createBalancer({ type: 'chash', nodes: FOUR });
  for (const k of keys(50)) {
    const want = ref.pick(src({ remoteAddr: `${k} b/ü` }), null, healthy);
    assert.equal(b.pick(src({ query: `x=${k}+b/%C3%BC` }), null, healthy), want);
    assert.equal(b.pick(src({ query: `x=${k}%20b%2F%C3%BC` }), null, healthy), want);
    // A bare name counts as present and empty.
    assert.equal(b.pick(src({ remoteAddr: k, query: 'a=1&x' }), null, healthy), ref.pick(src({ remoteAddr: '' }), null, healthy));
  }
});

test('chash hash_on vars http_<name> reads the header with underscores as dashes', () => {
  assertHashesOn({ key: 'http_x_user' }, (v, noise) => ({ headers: { 'x-user': v, 'x-other': noise, x_user: noise } }));
  assertHashesOn({ key: 'http_X_User' }, (v, noise) => ({ headers: { 'x-user': v, 'x-other': noise } }));
});

test('chash hash_on vars cookie_<name> parses the Cookie header', () => {
  assertHashesOn({ key: 'cookie_x' }, (v, noise) => ({ headers: { cookie: `a=1; xx=${noise}; x=${v}; b=2` } }));
  assertHashesOn({ key: 'cookie_x' }, (v) => ({ headers: { cookie: `x=${v}` } }));
  assertHashesOn({ key: 'cookie_x' }, (v, noise) => ({ headers: { cookie: `a=${noise};x = ${v} ;b=2`, 'x-cookie': noise } }));
  assertHashesOn({ key: 'cookie_x' }, (v, noise) => ({ headers: { cookie: `ax=${noise}; x=${v}` } }));
});

test('chash hash_on header and hash_on cookie use the named header / cookie', () => {
  assertHashesOn({ hashOn: 'header', key: 'X-Tenant' }, (v, noise) => ({ headers: { 'x-tenant': v, 'x-user': noise } }));
  assertHashesOn({ hashOn: 'header', key: 'x_tenant' }, (v, noise) => ({ headers: { x_tenant: v, 'x-tenant': noise } }));
  assertHashesOn({ hashOn: 'cookie', key: 'sid' }, (v, noise) => ({ headers: { cookie: `theme=${noise}; sid=${v}` } }));
});

test('chash falls back to the client address when the chosen header, cookie or argument is missing', () => {
  const ref = createBalancer({ type: 'chash', nodes: FOUR });
  const configs: Omit<BalancerOptions, 'type' | 'nodes'>[] = [
    { key: 'arg_x' },
    { key: 'http_x_user' },
    { key: 'cookie_x' },
    { hashOn: 'header', key: 'x-user' },
    { hashOn: 'cookie', key: 'x' },
  ];
  for (const cfg of configs) {
    const b = createBalancer({ type: 'chash', nodes: FOUR, ...cfg });
    const chosen = new Set<string>();
    for (const k of keys(100)) {
      const s = src({ remoteAddr: k, query: 'y=1&xx=2', headers: { 'x-other': 'v', cookie: 'xx=1; y=2' } });
      const got = b.pick(s, null, healthy)!.key;
      assert.equal(got, ref.pick(src({ remoteAddr: k }), null, healthy)!.key, JSON.stringify(cfg));
      chosen.add(got);
    }
    assert.equal(chosen.size, 4);
  }
});

test('chash rejects unknown vars keys and missing header / cookie names', () => {
  assert.throws(() => createBalancer({ type: 'chash', nodes: FOUR, key: 'server_name' }), TypeError);
  assert.throws(() => createBalancer({ type: 'chash', nodes: FOUR, key: 'arg_' }), TypeError);
  assert.throws(() => createBalancer({ type: 'chash', nodes: FOUR, hashOn: 'header' }), TypeError);
  assert.throws(() => createBalancer({ type: 'chash', nodes: FOUR, hashOn: 'cookie', key: '' }), TypeError);
  assert.throws(() => createBalancer({ type: 'chash', nodes: FOUR, hashOn: 'query' as never }), TypeError);
});

test('chash moves under 35% of keys, all to the new node, when a fifth equal node is added', () => {
  const before = createBalancer({ type: 'chash', nodes: FOUR });
  const after = createBalancer({ type: 'chash', nodes: [...FOUR, node('n5')] });
  let moved = 0;
  const all = keys(20000);
  for (const k of all) {
    const s = src({ remoteAddr: k });
    const a = before.pick(s, null, healthy)!.key;
    const b = after.pick(s, null, healthy)!.key;
    if (a !== b) {
      moved++;
      assert.equal(b, 'n5:80', `key ${k} moved between old nodes`);
    }
  }
  const share = moved / all.length;
  assert.ok(share > 0.1 && share < 0.35, `moved share ${share}`);
});

test('chash walks the ring to the next distinct node when the chosen one is excluded', () => {
  const nodes = [...FOUR, node('n5')];
  const full = createBalancer({ type: 'chash', nodes });
  for (const k of keys(300)) {
    const s = src({ remoteAddr: k });
    const primary = full.pick(s, null, healthy)!.key;
    // Skipping the primary on the ring gives exactly the node a ring without it would choose.
    const without = createBalancer({ type: 'chash', nodes: nodes.filter((n) => n.key !== primary) });
    const second = full.pick(s, new Set([primary]), healthy)!.key;
    assert.notEqual(second, primary);
    assert.equal(second, without.pick(s, null, healthy)!.key);
    assert.equal(full.pick(s, new Set([primary]), healthy)!.key, second, 'walk is deterministic');
    // Excluding two: a third distinct node, again the same as a ring without both.
    const without2 = createBalancer({ type: 'chash', nodes: nodes.filter((n) => n.key !== primary && n.key !== second) });
    assert.equal(full.pick(s, new Set([primary, second]), healthy)!.key, without2.pick(s, null, healthy)!.key);
  }
  assert.equal(full.pick(SRC, new Set(nodes.map((n) => n.key)), healthy), undefined);
  assert.equal(createBalancer({ type: 'chash', nodes: [node('a', 0)] }).pick(SRC, null, healthy), undefined);
});

test('chash skips unhealthy nodes along the ring and fails open to the normal choice when all are unhealthy', () => {
  const b = createBalancer({ type: 'chash', nodes: FOUR });
  for (const k of keys(200)) {
    const s = src({ remoteAddr: k });
    const primary = b.pick(s, null, healthy)!.key;
    const second = b.pick(s, new Set([primary]), healthy)!.key;
    const asked: string[] = [];
    const got = b.pick(s, null, (key) => {
      asked.push(key);
      return key !== primary;
    });
    assert.equal(got!.key, second);
    assert.deepEqual(asked, [primary, second], 'each node is asked about once, in ring order');
    // Everyone unhealthy: the normal choice.
    assert.equal(b.pick(s, null, () => false)!.key, primary);
    // Everyone unhealthy and the primary excluded: the normal choice among the rest.
    assert.equal(b.pick(s, new Set([primary]), () => false)!.key, second);
    // Only one healthy node: it is found whatever the key.
    assert.equal(b.pick(s, null, (key) => key === 'n3:80')!.key, 'n3:80');
  }
});

test('chash does not let a huge total weight blow up the ring', () => {
  const nodes = Array.from({ length: 20 }, (_, i) => node(`h${i}`, 10_000));
  const t0 = process.hrtime.bigint();
  const b = createBalancer({ type: 'chash', nodes });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.ok(ms < 2000, `ring build took ${ms} ms`);
  const t = tally(keys(10000).map((k) => b.pick(src({ remoteAddr: k }), null, healthy)!.host));
  assert.equal(Object.keys(t).length, 20);
});

// ---------------------------------------------------------------------------------------------
// least_conn

/** A least_conn balancer over nodes a, b and c with `inFlight[i]` requests acquired on each. */
function leastConn(inFlight: [number, number, number]) {
  const nodes = [node('a'), node('b'), node('c')];
  const b = createBalancer({ type: 'least_conn', nodes });
  inFlight.forEach((n, i) => {
    for (let k = 0; k < n; k++) b.acquire(nodes[i]);
  });
  return { nodes, b };
}

test('least_conn picks the least loaded node', () => {
  const { nodes, b } = leastConn([2, 0, 1]);
  for (let i = 0; i < 5; i++) assert.equal(b.pick(SRC, null, healthy)?.host, 'b');
  b.acquire(nodes[1]);
  b.acquire(nodes[1]);
  for (let i = 0; i < 5; i++) assert.equal(b.pick(SRC, null, healthy)?.host, 'c');
  b.release(nodes[0]);
  b.release(nodes[0]);
  for (let i = 0; i < 5; i++) assert.equal(b.pick(SRC, null, healthy)?.host, 'a');
});

test('least_conn scores (active + 1) / weight so heavier nodes carry proportionally more', () => {
  const nodes = [node('a', 3), node('b', 1)];
  const b = createBalancer({ type: 'least_conn', nodes });
  // Simulate long-lived requests: acquire every pick and never release.
  const seq: string[] = [];
  for (let i = 0; i < 8; i++) {
    const n = b.pick(SRC, null, healthy)!;
    b.acquire(n);
    seq.push(n.host);
  }
  assert.deepEqual(tally(seq), { a: 6, b: 2 });
  assert.equal(seq[0], 'a', 'empty heavier node scores best');
  const zero = createBalancer({ type: 'least_conn', nodes: [node('z', 0), node('y', 1)] });
  for (let i = 0; i < 4; i++) assert.equal(zero.pick(SRC, null, healthy)?.host, 'y');
});

test('least_conn breaks ties by rotating instead of always taking the first node', () => {
  const b = createBalancer({ type: 'least_conn', nodes: [node('a'), node('b'), node('c')] });
  const seq = Array.from({ length: 6 }, () => b.pick(SRC, null, healthy)!.host);
  assert.deepEqual(tally(seq), { a: 2, b: 2, c: 2 });
});

test('least_conn release never drives a count below zero', () => {
  const nodes = [node('a'), node('b')];
  const b = createBalancer({ type: 'least_conn', nodes });
  b.release(nodes[0]);
  b.release(nodes[0]);
  b.release(nodes[0]);
  b.acquire(nodes[0]); // a: 1 (not -2)
  for (let i = 0; i < 3; i++) assert.equal(b.pick(SRC, null, healthy)?.host, 'b');
  b.release(nodes[0]); // a: 0
  b.acquire(nodes[1]); // b: 1
  for (let i = 0; i < 3; i++) assert.equal(b.pick(SRC, null, healthy)?.host, 'a');
  // Unknown nodes are ignored.
  b.acquire(node('stranger'));
  b.release(node('stranger'));
  assert.equal(b.pick(SRC, null, healthy)?.host, 'a');
});

test('least_conn respects exclude and health, failing open when all remaining are unhealthy', () => {
  const { b } = leastConn([0, 1, 2]);
  // a is least loaded but excluded / unhealthy.
  for (let i = 0; i < 4; i++) assert.equal(b.pick(SRC, new Set(['a:80']), healthy)?.host, 'b');
  for (let i = 0; i < 4; i++) assert.equal(b.pick(SRC, null, (k) => k !== 'a:80')?.host, 'b');
  for (let i = 0; i < 4; i++) assert.equal(b.pick(SRC, null, () => false)?.host, 'a');
  for (let i = 0; i < 4; i++) assert.equal(b.pick(SRC, new Set(['a:80']), () => false)?.host, 'b');
  assert.equal(b.pick(SRC, new Set(['a:80', 'b:80', 'c:80']), healthy), undefined);
  assert.equal(createBalancer({ type: 'least_conn', nodes: [] }).pick(SRC, null, healthy), undefined);
});

// ---------------------------------------------------------------------------------------------
// PassiveHealth

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test('PassiveHealth marks a node unhealthy only after the configured consecutive failures', () => {
  const c = clock();
  const h = new PassiveHealth({ failures: 3, cooldown: 5, now: c.now });
  assert.equal(h.isHealthy('a:80'), true);
  h.reportFailure('a:80');
  h.reportFailure('a:80');
  assert.equal(h.isHealthy('a:80'), true);
  h.reportSuccess('a:80'); // breaks the streak
  h.reportFailure('a:80');
  h.reportFailure('a:80');
  assert.equal(h.isHealthy('a:80'), true);
  h.reportFailure('a:80');
  assert.equal(h.isHealthy('a:80'), false);
  assert.equal(h.isHealthy('b:80'), true, 'other nodes unaffected');
});

test('PassiveHealth keeps a node out for the cool-down and lets it back in afterwards', () => {
  const c = clock();
  const h = new PassiveHealth({ failures: 2, cooldown: 5, now: c.now });
  h.reportFailure('a:80');
  h.reportFailure('a:80');
  assert.equal(h.isHealthy('a:80'), false);
  c.advance(4999);
  assert.equal(h.isHealthy('a:80'), false);
  h.reportFailure('a:80'); // late failure during cool-down does not extend it
  c.advance(1);
  assert.equal(h.isHealthy('a:80'), true);
});

test('PassiveHealth half-open: one failure after the cool-down re-opens it, one success resets it', () => {
  const c = clock();
  const h = new PassiveHealth({ failures: 3, cooldown: 10, now: c.now });
  for (let i = 0; i < 3; i++) h.reportFailure('a:80');
  c.advance(10_000);
  assert.equal(h.isHealthy('a:80'), true);
  h.reportFailure('a:80');
  assert.equal(h.isHealthy('a:80'), false, 'single half-open failure trips again');
  c.advance(9_999);
  assert.equal(h.isHealthy('a:80'), false, 'a full new cool-down');
  c.advance(1);
  assert.equal(h.isHealthy('a:80'), true);
  h.reportSuccess('a:80');
  h.reportFailure('a:80');
  h.reportFailure('a:80');
  assert.equal(h.isHealthy('a:80'), true, 'after a success it takes the full count again');
  h.reportFailure('a:80');
  assert.equal(h.isHealthy('a:80'), false);
});

test('PassiveHealth defaults to 3 failures and 10 seconds', () => {
  const c = clock();
  const h = new PassiveHealth({ now: c.now });
  h.reportFailure('a:80');
  h.reportFailure('a:80');
  assert.equal(h.isHealthy('a:80'), true);
  h.reportFailure('a:80');
  assert.equal(h.isHealthy('a:80'), false);
  c.advance(9_999);
  assert.equal(h.isHealthy('a:80'), false);
  c.advance(1);
  assert.equal(h.isHealthy('a:80'), true);
  const real = new PassiveHealth();
  assert.equal(real.isHealthy('x'), true);
});

test('PassiveHealth with failures 1 trips on the first failure', () => {
  const c = clock();
  const h = new PassiveHealth({ failures: 1, cooldown: 1, now: c.now });
  h.reportFailure('a:80');
  assert.equal(h.isHealthy('a:80'), false);
  c.advance(1000);
  assert.equal(h.isHealthy('a:80'), true);
});

test('PassiveHealth rejects invalid options', () => {
  assert.throws(() => new PassiveHealth({ failures: 0 }), RangeError);
  assert.throws(() => new PassiveHealth({ failures: 1.5 }), RangeError);
  assert.throws(() => new PassiveHealth({ cooldown: -1 }), RangeError);
  assert.throws(() => new PassiveHealth({ cooldown: Number.POSITIVE_INFINITY }), RangeError);
});

test('PassiveHealth.check is bound and steers a balancer away from a failing node', () => {
  const c = clock();
  const h = new PassiveHealth({ failures: 2, cooldown: 1, now: c.now });
  const { check } = h;
  const nodes = [node('a'), node('b')];
  const b = createBalancer({ type: 'roundrobin', nodes });
  h.reportFailure('a:80');
  h.reportFailure('a:80');
  assert.equal(check('a:80'), false);
  assert.deepEqual(Array.from({ length: 4 }, () => b.pick(SRC, null, check)!.host), ['b', 'b', 'b', 'b']);
  c.advance(1000);
  assert.equal(check('a:80'), true);
  const after = Array.from({ length: 4 }, () => b.pick(SRC, null, check)!.host);
  assert.ok(after.includes('a'));
});
