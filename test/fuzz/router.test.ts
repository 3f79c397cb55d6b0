// Property tests of route matching (core/request/router.ts) and path normalisation (normalizePath in
// core/request/data-plane.ts) against a small reference model of docs/configuration.md:
// - hosts first: routes naming the request's host exactly, then `*.` wildcards (longest suffix
//   first, never the bare domain), then routes without hosts; the first set with a match answers;
// - within a set, among the routes accepting the method: an exact uri beats any prefix, a longer
//   `/prefix*` beats a shorter one; among routes with the same uri the highest priority wins, ties
//   go to the route listed first; a route without `methods` accepts every method;
// - the path is what an upstream that decodes once sees: unreserved escapes decoded, %2F, %5C and
//   '\' taken as separators, dot-segments resolved (RFC 3986), repeated slashes merged; a path that
//   climbs above the root is refused (400), one with a malformed escape matches nothing (404). So no dot-segment or escape trick reaches another route
//   than the one the upstream will serve.
// Generated route sets are checked in-process (router + normalizePath) and through real gateways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { buildRouter, hasMalformedEscape } from '../../core/request/router';
import { normalizePath } from '../../core/request/data-plane';
import { HTTP_METHODS } from '../../core/config/types';
import { bootGateway, startUpstream } from '../helpers/harness';
import { fc, noEscapes, params, watchProcess } from './runs';

watchProcess();

// ---------------------------------------------------------------------------------------------
// generated routes

const SEGS = ['a', 'b', 'ab', 'api', 'x.y'];
const HOSTS = ['a.example.com', 'b.example.com', 'example.com', '*.example.com', '*.a.example.com'];
/** Request hosts: each host pattern's own names, deeper subdomains, the bare domain, a stranger. */
const REQUEST_HOSTS = ['a.example.com', 'b.example.com', 'example.com', 'x.a.example.com', 'y.b.example.com', 'x.y.a.example.com', 'other.org'];
/** Methods Node's HTTP server accepts that no route can list. */
const OTHER_METHODS = ['PROPFIND', 'MKCOL', 'LOCK'];

interface GenRoute {
  id: string;
  uris: string[];
  methods?: string[];
  hosts?: string[];
  priority: number;
  status: 0 | 1;
}

const uri = fc.tuple(fc.array(fc.constantFrom(...SEGS), { maxLength: 3 }), fc.constantFrom('exact', 'exact/', 'prefix/', 'prefix')).map(([segs, form]) => {
  const base = `/${segs.join('/')}`;
  const dir = segs.length ? `${base}/` : '/';
  return form === 'exact' ? base : form === 'exact/' ? dir : form === 'prefix/' ? `${dir}*` : `${base}*`;
});

const route = fc.record({
  uris: fc.array(uri, { minLength: 1, maxLength: 2 }),
  methods: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.subarray([...HTTP_METHODS], { minLength: 1 }) }),
  hosts: fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.subarray(HOSTS, { minLength: 1 }) }),
  priority: fc.integer({ min: -2, max: 2 }),
  status: fc.constantFrom<0 | 1>(1, 1, 1, 1, 0),
});
const routeSet = fc.array(route, { minLength: 1, maxLength: 8 }).map((rs) => rs.map((r, i): GenRoute => ({ id: `r${i}`, ...r })));

// ---------------------------------------------------------------------------------------------
// generated requests: paths with dot-segments, escapes and odd separators

const segmentToken = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...SEGS, 'c', 'A') },
  { weight: 3, arbitrary: fc.constantFrom('.', '..', '%2e', '%2E', '%2e%2e', '%2E%2e', '.%2e', '%2e.', '...', '..a', 'a..', '.a') },
  { weight: 2, arbitrary: fc.constantFrom('%61', '%62', '%61%62', '%41', '%2561', '%252e', '%252e%252e', '%25', '%7e', '%zz', '%E0%A4', '%c3%a9', '') },
);
const separator = fc.constantFrom('/', '/', '/', '/', '//', '%2f', '%2F', '%5c', '%5C', '\\');
const rawPath = fc
  .tuple(segmentToken, fc.array(fc.tuple(separator, segmentToken), { maxLength: 5 }), fc.boolean())
  .map(([first, rest, trailing]) => `/${first}${rest.map(([s, t]) => s + t).join('')}${trailing ? '/' : ''}`);

interface Req {
  method: string;
  host: string;
  path: string;
}
const requestFor = (methods: readonly string[]) => fc.record({ method: fc.constantFrom(...methods), host: fc.constantFrom(...REQUEST_HOSTS), path: rawPath });

// ---------------------------------------------------------------------------------------------
// the reference model

/** What an upstream that decodes once sees, or null when the path climbs above the root. */
function upstreamView(raw: string): string | null {
  const decoded = raw
    .replace(/%([0-9A-Fa-f]{2})/g, (m, h: string) => {
      const c = String.fromCharCode(parseInt(h, 16));
      if (/[A-Za-z0-9._~-]/.test(c)) return c;
      return c === '/' || c === '\\' ? '/' : m;
    })
    .replace(/\\/g, '/');
  // RFC 3986 5.2.4 remove_dot_segments, repeated slashes merged (nginx merge_slashes)
  const segs = decoded.split('/').slice(1);
  const out: string[] = [];
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    const last = i === segs.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..') {
        if (out.length === 0) return null;
        out.pop();
      }
      if (last) out.push('');
      continue;
    }
    if (s === '' && !last) continue;
    out.push(s);
  }
  return `/${out.join('/')}`;
}

/** The route the model picks, by id, or null. */
function modelFind(routes: readonly GenRoute[], method: string, host: string, path: string): string | null {
  const live = routes.filter((r) => r.status === 1 && (r.methods === undefined || r.methods.includes(method)));
  const sets: GenRoute[][] = [];
  sets.push(live.filter((r) => r.hosts?.includes(host)));
  const suffixes = [...new Set(live.flatMap((r) => (r.hosts ?? []).filter((h) => h.startsWith('*.')).map((h) => h.slice(1))))].sort((a, b) => b.length - a.length);
  for (const sfx of suffixes) if (host.length > sfx.length && host.endsWith(sfx)) sets.push(live.filter((r) => r.hosts?.includes(`*${sfx}`)));
  sets.push(live.filter((r) => r.hosts === undefined));
  for (const set of sets) {
    // (route, uri) pairs in config order: the first of equal priority wins
    const pairs = set.flatMap((r) => r.uris.map((u) => ({ r, u })));
    const best = (cands: typeof pairs) => cands.reduce((a, b) => (b.r.priority > a.r.priority ? b : a)).r.id;
    const exact = pairs.filter((p) => !p.u.endsWith('*') && p.u === path);
    if (exact.length) return best(exact);
    const prefixes = pairs.filter((p) => p.u.endsWith('*') && path.startsWith(p.u.slice(0, -1)));
    if (prefixes.length) {
      const longest = Math.max(...prefixes.map((p) => p.u.length));
      return best(prefixes.filter((p) => p.u.length === longest));
    }
  }
  return null;
}

/** The model's answer to a raw request: a route id, 404 or 400. */
function modelAnswer(routes: readonly GenRoute[], q: Req): string {
  const view = upstreamView(q.path);
  if (view === null) return '400';
  // a malformed escape (%zz, a cut %4) is 400, as nginx answers; escapes of bytes that are not
  // UTF-8 (%E9, a cut %E0%A4) are routed as they are, as nginx does
  if (/%(?![0-9A-Fa-f]{2})/.test(view)) return '400';
  return modelFind(routes, q.method, q.host, view) ?? '404';
}

const show = (routes: readonly GenRoute[]) => JSON.stringify(routes.map((r) => ({ id: r.id, uris: r.uris, methods: r.methods, hosts: r.hosts, priority: r.priority, status: r.status })));

// ---------------------------------------------------------------------------------------------

test('in-process: the router, after normalizePath, picks the route the model picks', async () => {
  const methods = [...HTTP_METHODS, ...OTHER_METHODS];
  fc.assert(
    fc.property(routeSet, fc.array(requestFor(methods), { minLength: 25, maxLength: 25 }), (routes, reqs) => {
      const router = buildRouter(routes.filter((r) => r.status === 1));
      for (const q of reqs) {
        const path = normalizePath(q.path);
        // the upstream sees the normalised path as it would have seen the raw one
        assert.equal(path === '' ? null : upstreamView(path), upstreamView(q.path), `normalizePath(${JSON.stringify(q.path)}) = ${JSON.stringify(path)}`);
        const got = path === '' || hasMalformedEscape(path) ? '400' : (router.find(q.method, q.host, path)?.route.id ?? '404');
        assert.equal(got, modelAnswer(routes, q), `${q.method} ${q.host} ${q.path} with ${show(routes)}`);
      }
    }),
    params('router: in-process route sets x 25 requests', 1100),
  );
  await noEscapes();
});

test('found by the property above: a route without methods answers PROPFIND even when another route lists methods', () => {
  // before the fix, listing methods anywhere switched to per-method trees that only knew the ten listable methods
  const alone = buildRouter([{ id: 'dav', uris: ['/dav/*'], priority: 0 }]);
  const mixed = buildRouter([{ id: 'dav', uris: ['/dav/*'], priority: 0 }, { id: 'get-only', uris: ['/x'], methods: ['GET'], priority: 0 }]);
  for (const m of OTHER_METHODS) {
    assert.equal(alone.find(m, '', '/dav/f')?.route.id, 'dav', m);
    assert.equal(mixed.find(m, '', '/dav/f')?.route.id, 'dav', m);
    assert.equal(mixed.find(m, '', '/x'), null, `${m} is not GET`);
  }
  assert.equal(mixed.find('GET', '', '/x')?.route.id, 'get-only');
});

test('found by the property above: a last "." segment leaves the directory, as a last ".." does', () => {
  // before the fix "/a/." became "/a" (and was routed to an exact /a) while "/a/b/.." became "/a/"
  for (const [raw, want] of [['/a/.', '/a/'], ['/a/%2e', '/a/'], ['/a/b/..', '/a/'], ['/.', '/'], ['/a/./b', '/a/b']]) assert.equal(normalizePath(raw), want, raw);
  const r = buildRouter([{ id: 'exact', uris: ['/a'], priority: 0 }, { id: 'below', uris: ['/a/*'], priority: 0 }]);
  assert.equal(r.find('GET', '', normalizePath('/a/.'))?.route.id, 'below');
});

/** One raw HTTP/1.1 request; the status and the x-route header of the answer. */
function rawRequest(port: number, q: Req, hostHeader: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (out += d));
    s.on('error', reject);
    s.on('close', () => {
      const status = /^HTTP\/1\.1 (\d{3})/.exec(out)?.[1];
      if (status === undefined) return reject(new Error(`no HTTP answer to ${q.method} ${q.path}: ${JSON.stringify(out.slice(0, 80))}`));
      const routeId = /\r\nx-route: ([^\r]*)\r\n/i.exec(out)?.[1];
      resolve(status === '200' && routeId !== undefined ? routeId : status);
    });
    s.end(`${q.method} ${q.path} HTTP/1.1\r\nHost: ${hostHeader}\r\nConnection: close\r\n\r\n`);
  });
}

// CONNECT is left out: Node's HTTP server hands it to a 'connect' listener, never to the request handler
const HTTP_REQUEST_METHODS = [...HTTP_METHODS.filter((m) => m !== 'CONNECT'), ...OTHER_METHODS];
/** The Host header as a client may send it: any letter case, with or without a trailing dot (the same name in DNS) and a port. */
const hostForm = fc.record({ upper: fc.boolean(), dot: fc.boolean(), port: fc.boolean() });
const hostHeader = (h: string, f: { upper: boolean; dot: boolean; port: boolean }) => `${f.upper ? h.toUpperCase() : h}${f.dot ? '.' : ''}${f.port ? ':8080' : ''}`;

test('through a real gateway: every generated request is answered by the route the model picks (or 404 / 400)', async () => {
  await fc.assert(
    fc.asyncProperty(routeSet, fc.array(fc.tuple(requestFor(HTTP_REQUEST_METHODS), hostForm), { minLength: 25, maxLength: 25 }), async (routes, reqs) => {
      const g = await bootGateway({
        routes: routes.map((r) => ({ ...r, plugins: { mocking: { response_headers: { 'x-route': r.id } } } })),
      });
      try {
        for (const [q, form] of reqs) {
          const got = await rawRequest(g.port, q, hostHeader(q.host, form));
          assert.equal(got, modelAnswer(routes, q), `${q.method} ${q.path} Host: ${hostHeader(q.host, form)} with ${show(routes)}`);
        }
      } finally {
        await g.close();
      }
    }),
    params('router: real gateways x 25 raw requests', 35, { shrink: false }),
  );
  await noEscapes();
});

test('escapes: a malformed one (%zz) is 400 as nginx answers; well-formed escapes of bytes that are not UTF-8 (%E9) are routed as they are', async () => {
  const r = buildRouter([{ id: 'files', uris: ['/files/*'], priority: 0 }, { id: 'exact', uris: ['/x'], priority: 0 }, { id: 'param', uris: ['/p/:name'], priority: 0 }]);
  // before: find-my-way's decodeURI threw on these and nothing matched, not even /files/*
  for (const p of ['/files/caf%E9', '/files/%E0%A4', '/files/%ff%fe', '/files/ok%C3%A9/%E9']) assert.equal(r.find('GET', '', p)?.route.id, 'files', p);
  assert.equal(r.find('GET', '', '/p/caf%E9')?.params.name, 'caf%E9', 'the undecodable bytes stay escaped in a parameter');
  assert.equal(r.find('GET', '', '/p/caf%C3%A9')?.params.name, 'café', 'decodable ones are decoded as before');
  assert.equal(r.find('GET', '', '/x%E9'), null, 'a real miss stays a miss');
  for (const p of ['/files/%zz', '/files/a%4', '/files/%', '/files/%%41']) {
    assert.equal(hasMalformedEscape(p), true, p);
    assert.equal(r.find('GET', '', p), null, p);
  }
  for (const p of ['/files/%41', '/files/%25', '/files/a%E9']) assert.equal(hasMalformedEscape(p), false, p);

  // end to end: proxied with the path exactly as sent; a malformed escape is 400
  const up = await startUpstream();
  const g = await bootGateway({ routes: [{ id: 'files', uri: '/files/*', upstream: { nodes: { [`127.0.0.1:${up.port}`]: 1 } } }] });
  try {
    const answer = (path: string) =>
      new Promise<string>((resolve, reject) => {
        const s = connect(g.port, '127.0.0.1');
        let out = '';
        s.setEncoding('latin1');
        s.on('data', (d: string) => (out += d));
        s.on('error', reject);
        s.on('close', () => resolve(out));
        s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      });
    const ok = await answer('/files/caf%E9?q=1');
    assert.match(ok, /^HTTP\/1\.1 200 /);
    assert.equal(JSON.parse(ok.slice(ok.indexOf('\r\n\r\n') + 4)).url, '/files/caf%E9?q=1');
    const bad = await answer('/files/%zz');
    assert.match(bad, /^HTTP\/1\.1 400 /);
    assert.ok(bad.endsWith('{"message":"400 Bad Request"}'), bad);
    assert.match(await answer('/nothing%E9'), /^HTTP\/1\.1 404 /);
  } finally {
    await g.close();
    await up.close();
  }
});
