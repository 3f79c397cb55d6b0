// Property tests of the split router and its updates (core/request/router.ts): a router built or
// updated with the split layout answers every request exactly as one find-my-way tree per host
// table and method (SINGLE_TREE, the router before the split) over the same list of routes, where
// the list after a change is what the config's list is after an Admin API write: a replaced route
// keeps its place, a new one goes last, a deleted one leaves. Route sets mix static, `:param`,
// regex and multi-parameter segments, `*` wildcards (after a slash and inside a segment), escaped
// colons, hosts (exact and `*.`), methods, priorities, routes of the same shape and routes without
// uris (disabled ones, holding their place); requests are the routes' own uris filled in, near
// misses and escapes. Changes to large buckets go to trees of the changed keys (the layouts with
// `wholeUpTo: 0`), over sequences long enough for those buckets to be rebuilt whole. After each change the router it replaced still answers as before, and a
// refused uri leaves the router as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRouter, DEFAULT_LAYOUT, RouteUriError, SINGLE_TREE, updateRouter, type Router, type RouterLayout } from '../../core/request/router';
import { fc, noEscapes, params, watchProcess } from './runs';

watchProcess();

interface R {
  readonly id: string;
  readonly uris: readonly string[];
  readonly methods?: readonly string[];
  readonly hosts?: readonly string[];
  readonly priority: number;
}

const STATIC = ['a', 'b', 'ab', 'api', 'v1', 'x.y', ''];
const DYNAMIC = [':p', ':q', ':n(^\\d+)', ':h(^[a-f]+)', ':a-:b', 'ab*', 'a:p', ':f.json', 'a::b', '*'];
const HOSTS = ['a.example.com', 'example.com', '*.example.com', '*.a.example.com'];
const REQUEST_HOSTS = ['', 'a.example.com', 'example.com', 'x.a.example.com', 'y.example.com', 'other.org'];
const METHODS = ['GET', 'POST', 'DELETE'];
const REQUEST_METHODS = [...METHODS, 'PUT', 'PROPFIND'];
/** Uris find-my-way refuses (an unclosed regex). */
const REFUSED = ['/a/:n(^\\d+', '/:x('];

const segment = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...STATIC) }, { weight: 2, arbitrary: fc.constantFrom(...DYNAMIC) });
const uri = fc
  .array(segment, { minLength: 1, maxLength: 4 })
  // a wildcard ends a uri
  .map((segs) => {
    const w = segs.findIndex((s) => s.includes('*'));
    return `/${(w === -1 ? segs : segs.slice(0, w + 1)).join('/')}`;
  });
const body = fc.record(
  {
    uris: fc.oneof(
      { weight: 30, arbitrary: fc.array(uri, { minLength: 1, maxLength: 2 }) },
      { weight: 1, arbitrary: fc.constantFrom(...REFUSED).map((u) => [u]) },
      // no uris: a disabled route, holding its place
      { weight: 2, arbitrary: fc.constant([]) },
    ),
    methods: fc.option(fc.subarray(METHODS, { minLength: 1 }), { nil: undefined, freq: 3 }),
    hosts: fc.option(fc.subarray(HOSTS, { minLength: 1 }), { nil: undefined, freq: 2 }),
    priority: fc.integer({ min: -1, max: 1 }),
  },
  { requiredKeys: ['uris', 'priority'] },
);

/** One change: replace a live route (by its index among the live ones), add one, delete one, or several at once. */
type Op = { kind: 'replace'; at: number; body: Omit<R, 'id'>; keepUris: boolean } | { kind: 'add'; body: Omit<R, 'id'> } | { kind: 'delete'; at: number };
const op: fc.Arbitrary<Op> = fc.oneof(
  // keepUris: the same uris (a change of priority, methods or hosts), where config order decides ties
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), body, keepUris: fc.boolean() }),
  fc.record({ kind: fc.constant('add' as const), body }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
);
// wholeUpTo 0: changes go to key trees (the default only does so above 32 uri shapes, more than
// these route sets hold), until the keys with key trees pass keyTreeShare of the bucket's keys
// and the bucket is rebuilt whole (the default share, a quarter, needs more keys than these have)
const layout = fc.constantFrom<RouterLayout>(
  DEFAULT_LAYOUT,
  { maxLevel: 1, buckets: 1 },
  { maxLevel: 2, buckets: 2 },
  { maxLevel: 3, buckets: 4 },
  { maxLevel: 3, buckets: 1, wholeUpTo: 0, keyTreeShare: 1 },
  { maxLevel: 2, buckets: 2, wholeUpTo: 0, keyTreeShare: 0.5 },
);

/** Paths to ask: each uri filled in a few ways, its near misses, and a few random ones. */
function probes(routes: readonly R[], extra: readonly string[]): string[] {
  const fill = (u: string, k: number) =>
    u
      .replace(/::/g, '\u0000')
      .replace(/:n\(\^\\d\+\)/g, ['12', 'x', '7'][k % 3])
      .replace(/:h\(\^\[a-f\]\+\)/g, ['cafe', '9', 'be'][k % 3])
      .replace(/:[a-z]+/g, ['v', 'a', 'x.json', 'b-c'][k % 4])
      .replace(/\*$/, ['', 'z', 'z/w', '/'][k % 4])
      .replace(/\u0000/g, ':');
  const out = new Set<string>(['/', '/a', '/a/', '/api/v1', '/nope', '/a%2Fb', '/%61pi/v1', '/a/%E9', '/ab%25', '/a?x=1', '/a/b#f']);
  for (const r of routes) for (const u of r.uris) for (let k = 0; k < 4; k++) {
    const p = fill(u, k);
    out.add(p);
    out.add(`${p}/`);
    out.add(`${p}x`);
  }
  for (const p of extra) out.add(p);
  return [...out];
}

function answers(router: Router<R>, paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    for (const m of REQUEST_METHODS) {
      for (const h of REQUEST_HOSTS) {
        const f = router.find(m, h, p);
        out.push(f === null ? '-' : `${f.route.id} ${JSON.stringify(f.params)}`);
      }
    }
  }
  return out;
}

/** The reference router over a list, or the id of the route it refuses. */
function reference(list: readonly R[]): Router<R> | { refused: string } {
  try {
    return buildRouter(list, SINGLE_TREE);
  } catch (err) {
    if (err instanceof RouteUriError) return { refused: err.routeId };
    throw err;
  }
}

test('the split router, built and updated, answers every request as one tree over the same list', async () => {
  let ids = 0;
  fc.assert(
    fc.property(fc.array(body, { minLength: 1, maxLength: 10 }), fc.array(op, { minLength: 1, maxLength: 8 }), layout, fc.array(fc.constantFrom(...STATIC, 'z', '12'), { maxLength: 3 }), (initial, ops, lay, rnd) => {
      let list: R[] = initial.map((b) => ({ id: `r${ids++}`, ...b }));
      const extra = [`/${rnd.join('/')}`];
      const ref0 = reference(list);
      if ('refused' in ref0) {
        assert.throws(() => buildRouter(list, lay), (e) => e instanceof RouteUriError);
        return;
      }
      let router = buildRouter(list, lay);
      let asked = probes(list, extra);
      assert.deepEqual(answers(router, asked), answers(ref0, asked), 'built');
      for (const o of ops) {
        const beforeAsked = asked;
        const before = answers(router, beforeAsked);
        let next = list;
        let removed: R[] = [];
        let added: R[] = [];
        if (o.kind === 'add') {
          const r = { id: `r${ids++}`, ...o.body };
          next = [...list, r];
          added = [r];
        } else {
          if (list.length === 0) continue;
          const at = o.at % list.length;
          removed = [list[at]];
          if (o.kind === 'delete') next = list.filter((_, i) => i !== at);
          else {
            const r = { id: list[at].id, ...o.body, ...(o.keepUris ? { uris: list[at].uris } : {}) };
            next = list.map((x, i) => (i === at ? r : x));
            added = [r];
          }
        }
        const ref = reference(next);
        const old = router;
        if ('refused' in ref) {
          assert.throws(() => updateRouter(router, removed, added), (e) => e instanceof RouteUriError && e.routeId === ref.refused, `${o.kind} refused`);
        } else {
          router = updateRouter(router, removed, added);
          list = next;
          asked = probes(list, extra);
          assert.deepEqual(answers(router, asked), answers(ref, asked), `after ${o.kind} of ${JSON.stringify([...removed, ...added])} over ${JSON.stringify(list)}`);
        }
        // the router it replaced (or that refused the change) answers as before
        assert.deepEqual(answers(old, beforeAsked), before, 'the previous router changed');
      }
    }),
    params('router updates: route sets x change sequences', 100),
  );
  await noEscapes();
});
