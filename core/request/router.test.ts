// Router internals: routes without methods live in one tree; routes that list methods get per-method
// trees of their own, and a request matching in both gets find-my-way's precedence between the two.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRouter, DEFAULT_LAYOUT, hostForMatching, RouteUriError, routerTreesBuilt, routerUrisBuilt, updateRouter, WHOLE_UP_TO } from './router';

const route = (id: string, uri: string, methods?: string[], priority = 0) => ({ id, uris: [uri], methods, priority });

test('without method restrictions every method (even one outside the usual list) finds the same routes', () => {
  const r = buildRouter([route('exact', '/a/x'), route('param', '/a/:id'), route('prefix', '/p/*')]);
  for (const m of ['GET', 'POST', 'DELETE', 'HEAD', 'OPTIONS', 'PROPFIND']) {
    assert.equal(r.find(m, '', '/a/x')?.route.id, 'exact', m);
    assert.equal(r.find(m, '', '/a/7')?.route.id, 'param', m);
    assert.equal(r.find(m, '', '/a/7')?.params.id, '7', m);
    assert.equal(r.find(m, '', '/p/q/r')?.route.id, 'prefix', m);
    assert.equal(r.find(m, '', '/nope'), null, m);
  }
});

test('with one restricted route the others still answer every listed method, and the restriction holds', () => {
  const r = buildRouter([route('get-only', '/a/x', ['GET']), route('param', '/a/:id')]);
  assert.equal(r.find('GET', '', '/a/x')?.route.id, 'get-only');
  assert.equal(r.find('POST', '', '/a/x')?.route.id, 'param', 'POST /a/x falls to the param route, as in a per-method tree');
  assert.equal(r.find('DELETE', '', '/a/9')?.route.id, 'param');
});

test('a restricted route and a route without methods: find-my-way precedence across the two trees', () => {
  const r = buildRouter([
    route('get-param', '/b/:id', ['GET']),
    route('any-static', '/b/x'),
    route('get-static', '/c/x', ['GET']),
    route('any-prefix', '/c/*'),
    route('get-prefix', '/d/*', ['GET']),
    route('any-param', '/d/:id'),
  ]);
  assert.equal(r.find('GET', '', '/b/x')?.route.id, 'any-static', 'static beats a parameter, whichever tree holds it');
  assert.equal(r.find('GET', '', '/b/y')?.route.id, 'get-param');
  assert.equal(r.find('GET', '', '/b/y')?.params.id, 'y');
  assert.equal(r.find('GET', '', '/c/x')?.route.id, 'get-static');
  assert.equal(r.find('GET', '', '/c/y')?.route.id, 'any-prefix');
  assert.equal(r.find('GET', '', '/d/y')?.route.id, 'any-param', 'a parameter beats a wildcard');
  assert.equal(r.find('GET', '', '/d/y/z')?.route.id, 'get-prefix');
  assert.equal(r.find('POST', '', '/d/y/z'), null);
  assert.equal(r.find('PROPFIND', '', '/b/x')?.route.id, 'any-static', 'an unlisted method finds the routes without methods');
});

test('the same uri in both trees: higher priority wins, then the earlier in config', () => {
  const hi = buildRouter([route('get', '/e', ['GET'], 1), route('any', '/e', undefined, 5)]);
  assert.equal(hi.find('GET', '', '/e')?.route.id, 'any');
  const tie = buildRouter([route('any', '/e/:a'), route('get', '/e/:b', ['GET'])]);
  assert.equal(tie.find('GET', '', '/e/1')?.route.id, 'any');
  assert.equal(tie.find('GET', '', '/e/1')?.params.a, '1');
  const tie2 = buildRouter([route('get', '/e/:b', ['GET']), route('any', '/e/:a')]);
  assert.equal(tie2.find('GET', '', '/e/1')?.route.id, 'get');
  assert.equal(tie2.find('POST', '', '/e/1')?.route.id, 'any');
});

test('one method-restricted route does not copy the other routes into ten per-method trees', () => {
  const many = (n: number) => Array.from({ length: n }, (_, i) => route(`r${i}`, `/svc${i}/:id/items/*`));
  const heap = (build: () => unknown): number => {
    global.gc?.();
    const before = process.memoryUsage().heapUsed;
    const keep = build();
    global.gc?.();
    const used = process.memoryUsage().heapUsed - before;
    assert.ok(keep);
    return used;
  };
  const plain = heap(() => buildRouter(many(3000)));
  const mixed = heap(() => buildRouter([...many(3000), route('only-get', '/x', ['GET'])]));
  // per-method copies made this about 10x; without gc() exposed the figures are noisier, hence 3x
  assert.ok(mixed < plain * 3, `mixed ${Math.round(mixed / 1024)} KiB vs plain ${Math.round(plain / 1024)} KiB`);
});

test('a parameter of any length the request line allows stays on its route, never falling to a wildcard', () => {
  const r = buildRouter([route('users', '/users/:id'), route('two', '/o/:org/r/:repo'), route('any', '/*')]);
  for (const n of [100, 1000, 1001, 16 * 1024]) {
    const id = 'x'.repeat(n);
    assert.equal(r.find('GET', '', `/users/${id}`)?.route.id, 'users', `${n} characters`);
    assert.equal(r.find('GET', '', `/users/${id}`)?.params.id, id);
    assert.equal(r.find('GET', '', `/o/${id}/r/${id}`)?.route.id, 'two', `${n} characters, twice`);
  }
});

test('hostForMatching reads a Host header as nginx does', () => {
  const cases: Array<[string | undefined, string | undefined]> = [
    [undefined, ''],
    ['', ''],
    ['api.example.com', 'api.example.com'],
    ['API.Example.COM:80', 'api.example.com'],
    ['api.example.com.', 'api.example.com'],
    ['Api.Example.Com.:8443', 'api.example.com'],
    ['[::1]', '[::1]'],
    ['[2001:DB8::1]:8080', '[2001:db8::1]'],
    ['localhost', 'localhost'],
    ['.example.com', '.example.com'],
    // refused (400)
    ['api.example.com..', undefined],
    ['a..b', undefined],
    ['a/b', undefined],
    ['a\\b', undefined],
    ['a b', undefined],
    ['a\tb', undefined],
    [':80', undefined],
    ['.', undefined],
  ];
  for (const [h, want] of cases) assert.equal(hostForMatching(h), want, JSON.stringify(h));
});

test('hosts of routes are read like the request host: letter case and a trailing dot do not count', () => {
  const r = buildRouter([{ id: 'a', uris: ['/'], hosts: ['API.example.com.'], priority: 0 }, { id: 'w', uris: ['/'], hosts: ['*.Example.ORG.'], priority: 0 }]);
  assert.equal(r.find('GET', 'api.example.com', '/')?.route.id, 'a');
  assert.equal(r.find('GET', 'x.example.org', '/')?.route.id, 'w');
});

// ---------------------------------------------------------------------------------------------
// updateRouter: the next router from a change (the property test/fuzz/router-update.test.ts checks
// it against one tree over the whole list; these are its rules one by one)

test('a replaced route keeps its place: it still wins a tie of equal priority against a later route', () => {
  const r0 = buildRouter([route('first', '/t'), route('second', '/t')]);
  const r1 = updateRouter(r0, [route('first', '/t')], [route('first', '/t', ['GET', 'POST'])]);
  assert.equal(r1.find('GET', '', '/t')?.route.id, 'first');
  assert.deepEqual(r1.find('GET', '', '/t')?.route.methods, ['GET', 'POST'], 'the new version of the route');
  assert.equal(r1.find('PUT', '', '/t')?.route.id, 'second');
  // the same route replaced on top of a list: it did not move behind the later one
  assert.equal(buildRouter([route('first', '/t', ['GET', 'POST']), route('second', '/t')]).find('GET', '', '/t')?.route.id, 'first');
});

test('a new route goes last: it loses a tie of equal priority, wins with a higher one', () => {
  const r0 = buildRouter([route('old', '/t/:a')]);
  const tie = updateRouter(r0, [], [route('new', '/t/:b')]);
  assert.equal(tie.find('GET', '', '/t/1')?.route.id, 'old');
  assert.equal(tie.find('GET', '', '/t/1')?.params.a, '1', "the winner's own parameter names");
  const higher = updateRouter(r0, [], [route('new', '/t/:b', undefined, 1)]);
  assert.equal(higher.find('GET', '', '/t/1')?.route.id, 'new');
  assert.equal(higher.find('GET', '', '/t/1')?.params.b, '1');
});

test('a deleted route leaves its place: the next in config order wins the tie', () => {
  const r0 = buildRouter([route('a', '/t'), route('b', '/t'), route('c', '/t')]);
  const r1 = updateRouter(r0, [route('a', '/t')], []);
  assert.equal(r1.find('GET', '', '/t')?.route.id, 'b');
  const r2 = updateRouter(r1, [route('b', '/t')], []);
  assert.equal(r2.find('GET', '', '/t')?.route.id, 'c');
  const r3 = updateRouter(r2, [route('c', '/t')], []);
  assert.equal(r3.find('GET', '', '/t'), null);
  // deleted then added again under the same id: a new route, so last
  const r4 = updateRouter(updateRouter(r0, [route('a', '/t')], []), [], [route('a', '/t')]);
  assert.equal(r4.find('GET', '', '/t')?.route.id, 'b');
});

test('a route without uris (a disabled one) matches nothing and holds its place for when it comes back', () => {
  const disabled = { id: 'a', uris: [], priority: 0 };
  const r0 = buildRouter([disabled, route('b', '/t')]);
  assert.equal(r0.find('GET', '', '/t')?.route.id, 'b');
  const enabled = updateRouter(r0, [disabled], [route('a', '/t')]);
  assert.equal(enabled.find('GET', '', '/t')?.route.id, 'a', 'back in its place, before b');
  const again = updateRouter(enabled, [route('a', '/t')], [disabled]);
  assert.equal(again.find('GET', '', '/t')?.route.id, 'b');
});

test('several changes at once: replaced in place, added in the order given, deleted gone', () => {
  const r0 = buildRouter([route('a', '/t'), route('b', '/t'), route('c', '/u')]);
  const r1 = updateRouter(r0, [route('b', '/t'), route('a', '/t')], [route('x', '/u'), route('b', '/u'), route('y', '/t')]);
  // the list is now [b (/u, b's place), c, x, y]: b wins /u over c and x, y is alone on /t
  assert.equal(r1.find('GET', '', '/u')?.route.id, 'b');
  assert.equal(r1.find('GET', '', '/t')?.route.id, 'y');
});

test('the router a change replaced answers as before; a refused uri changes nothing', () => {
  const r0 = buildRouter([route('a', '/x/:id'), route('b', '/y')]);
  const r1 = updateRouter(r0, [route('a', '/x/:id')], [route('a', '/x/*')]);
  assert.equal(r0.find('GET', '', '/x/1/2'), null);
  assert.equal(r0.find('GET', '', '/x/1')?.route.id, 'a');
  assert.equal(r1.find('GET', '', '/x/1/2')?.route.id, 'a');
  assert.throws(
    () => updateRouter(r1, [route('b', '/y')], [route('b', '/y/:n(^\\d+')]),
    (e) => e instanceof RouteUriError && e.routeId === 'b' && e.uri === '/y/:n(^\\d+',
  );
  assert.equal(r1.find('GET', '', '/y')?.route.id, 'b', 'the refused change left the router as it was');
  // and it still takes the next change
  assert.equal(updateRouter(r1, [], [route('c', '/z')]).find('GET', '', '/z')?.route.id, 'c');
});

test('a change names routes the router holds: an unknown removal or a second route of an id is an error', () => {
  const r0 = buildRouter([route('a', '/x')]);
  assert.throws(() => updateRouter(r0, [route('nope', '/x')], []), /route nope is not in the router/);
  assert.throws(() => updateRouter(r0, [], [route('a', '/y')]), /route a is already in the router/);
  assert.throws(() => buildRouter([route('a', '/x'), route('a', '/y')]), /route a is already in the router/);
  assert.throws(() => updateRouter({ find: () => null }, [], []), TypeError);
});

test('one route changed among 10,000 builds at most one small tree; the router before the change is untouched', () => {
  const routes = Array.from({ length: 10_000 }, (_, i) => route(`r${i}`, i % 2 ? `/svc/r${i}/items` : `/svc/r${i}/items/:id`));
  const start = routerTreesBuilt();
  const r0 = buildRouter(routes);
  const full = routerTreesBuilt() - start;
  // every uri has 3 static segments: one level, at most one tree per bucket
  assert.ok(full > 1 && full <= DEFAULT_LAYOUT.buckets, `${full} small trees for 10,000 routes of one level`);
  const rebuilt = (change: () => unknown) => {
    const before = routerTreesBuilt();
    change();
    return routerTreesBuilt() - before;
  };
  let r1 = r0;
  assert.equal(rebuilt(() => (r1 = updateRouter(r0, [], [route('new', '/svc/new/items')]))), 1, 'added');
  assert.equal(r1.find('GET', '', '/svc/new/items')?.route.id, 'new');
  assert.equal(r1.find('GET', '', '/svc/r9/items')?.route.id, 'r9');
  assert.equal(r0.find('GET', '', '/svc/new/items'), null);
  assert.equal(rebuilt(() => (r1 = updateRouter(r0, [routes[5000]], [route('r5000', '/svc/r5000/items/:other')]))), 1, 'replaced');
  assert.equal(r1.find('GET', '', '/svc/r5000/items/9')?.params.other, '9');
  assert.equal(r0.find('GET', '', '/svc/r5000/items/9')?.params.id, '9');
  // the key's last uri gone: no tree to build, the key is skipped
  assert.ok(rebuilt(() => (r1 = updateRouter(r0, [routes[7]], []))) <= 1, 'removed');
  assert.equal(r1.find('GET', '', '/svc/r7/items'), null);
  assert.equal(r0.find('GET', '', '/svc/r7/items')?.route.id, 'r7');
});

test('one route changed among 10,000 builds the uris of its key, not of its bucket', () => {
  const routes = Array.from({ length: 10_000 }, (_, i) => route(`r${i}`, i % 2 ? `/svc/r${i}/items` : `/svc/r${i}/items/:id`));
  const r0 = buildRouter(routes);
  const uris = (change: () => unknown) => {
    const before = routerUrisBuilt();
    change();
    return routerUrisBuilt() - before;
  };
  // rebuilding its bucket would build about 10,000 / 16 uris
  assert.equal(uris(() => updateRouter(r0, [], [route('new', '/svc/new/items')])), 1, 'added');
  assert.equal(uris(() => updateRouter(r0, [routes[5000]], [route('r5000', '/svc/r5000/items/:other')])), 1, 'replaced');
  assert.equal(uris(() => updateRouter(r0, [routes[7]], [])), 0, 'removed');
  // a second uri of the same key: the key tree holds both
  const two = updateRouter(r0, [], [route('deeper', '/svc/r8/items/:id/:sub')]);
  assert.equal(two.find('GET', '', '/svc/r8/items/1/2')?.route.id, 'deeper');
  assert.equal(two.find('GET', '', '/svc/r8/items/1')?.route.id, 'r8');
  assert.equal(uris(() => updateRouter(two, [routes[8]], [route('r8', '/svc/r8/items/:x')])), 2, 'a key of two uris');
});

test('changes one after another: each builds its key, and a bucket is rebuilt whole only after a quarter of its keys changed', () => {
  const n = 2_000;
  const routes = Array.from({ length: n }, (_, i) => route(`r${i}`, `/svc/r${i}/items/:id`));
  let router = buildRouter(routes);
  let list = routes;
  const perChange: number[] = [];
  for (let c = 0; c < 3 * n; c++) {
    // every route replaced three times, in an order that visits every bucket
    const i = (c * 7919) % n;
    const next = route(`r${i}`, `/svc/r${i}/items/:id${c % 2 ? '/v' : ''}`, undefined, c);
    const before = routerUrisBuilt();
    router = updateRouter(router, [list[i]], [next]);
    perChange.push(routerUrisBuilt() - before);
    list = list.map((x, k) => (k === i ? next : x));
  }
  const total = perChange.reduce((a, b) => a + b, 0);
  const bucket = n / DEFAULT_LAYOUT.buckets;
  assert.ok(bucket > WHOLE_UP_TO, 'the buckets are large enough for key trees');
  // one uri per change, plus a whole bucket once per quarter of a bucket of distinct keys changed
  assert.ok(total <= 6 * perChange.length, `${total} uris built over ${perChange.length} changes`);
  assert.ok(Math.max(...perChange) <= 1.5 * bucket, `at most a bucket at once: ${Math.max(...perChange)}`);
  assert.ok(perChange.filter((u) => u > 1).length < perChange.length / 20, 'whole rebuilds are rare');
  // and it answers as a router built over the list
  const fresh = buildRouter(list);
  for (let i = 0; i < n; i += 7) {
    for (const p of [`/svc/r${i}/items/5`, `/svc/r${i}/items/5/v`, `/svc/r${i}/items`]) {
      assert.deepEqual(router.find('GET', '', p), fresh.find('GET', '', p), p);
    }
  }
});
