// Faults under concurrent load against a `gatehouse start` process, config side: an invalid config
// file written under load, and Admin API writes racing each other and the traffic. Each test asserts
// the exact statuses, that traffic never failed nor saw a half-applied config, and that what the
// Admin API shows is what is served and stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { FileConfigStore } from '../core/stores/file-store';
import { delay, eventually, upstreamFor, type Upstream } from './helpers/harness';
import { ADMIN_KEY, BOUND_MS, clientSockets, gatehouse, metrics, send, total, type Gh, type Outcome } from './helpers/faults-traffic';

// ---------------------------------------------------------------------------------------------
// an invalid config file under load

test('an invalid config file written under load: zero failed requests, the old config serves, one error line; then a valid edit is served', { timeout: 60_000 }, async (t) => {
  const a = await upstreamFor(t, undefined, 'A');
  const b = await upstreamFor(t, undefined, 'B');
  const route = (up: Upstream) => ({ id: 'load', uri: '/load/*', upstream: { nodes: { [up.node]: 1 } } });
  const gh = await gatehouse(t, { routes: [route(a)] }, { log_level: 'info' });
  const errorLines = () => gh.proc.logLines().filter((l) => l.level >= 50);
  const reloaded = () => gh.proc.logLines().filter((l) => l.msg === 'config reloaded');

  const agent = new Agent({ connections: 32 });
  let stop = false;
  let count = 0;
  const failed: string[] = [];
  /** One client: sequential requests; returns the upstreams it saw, in order, repeats collapsed. */
  const client = async (c: number) => {
    const seen: string[] = [];
    for (let i = 0; !stop; i++) {
      const o = await send(agent, `${gh.url}/load/${c}/${i}`);
      count++;
      if (o.status !== 200 || o.error !== null) {
        failed.push(`${o.status} ${o.error ?? ''}`);
        continue;
      }
      const name = JSON.parse(o.body).name as string;
      if (seen[seen.length - 1] !== name) seen.push(name);
    }
    return seen;
  };
  const clients = Array.from({ length: 16 }, (_, c) => client(c));
  await delay(500);

  // moves /load/* to B (fine on its own) and adds a route without nodes: none of it may apply
  writeFileSync(gh.file, gh.doc({ routes: [route(b), { id: 'broken', uri: '/broken/*', upstream: { nodes: {} } }] }));
  await eventually('the rejection is logged', () => errorLines().length > 0, 3000);
  const atRejection = count;
  await delay(1000); // time for a duplicate reload or a late half-apply to show
  assert.equal(b.seen.length, 0, 'nothing of the invalid file was applied');
  assert.ok(count - atRejection > 50, `traffic kept flowing after the rejection (${count - atRejection} requests)`);

  writeFileSync(gh.file, gh.doc({ routes: [route(b)] }));
  const pickup = await eventually('the valid edit is served', () => b.seen.length > 0, 3000);
  await delay(1000);
  stop = true;
  const seen = await Promise.all(clients);
  await agent.close();

  assert.deepEqual(failed, [], `${failed.length} of ${count} requests failed`);
  // each client (sequential requests) moved from A to B once and never back: the swap is atomic
  assert.deepEqual(seen, Array.from({ length: 16 }, () => ['A', 'B']));
  const errs = errorLines();
  assert.equal(errs.length, 1, JSON.stringify(errs));
  assert.equal(errs[0].msg, 'config reload rejected; the last good config keeps serving');
  assert.equal(errs[0].source, gh.file);
  assert.deepEqual(errs[0].errors, ['routes[1].upstream.nodes: must have at least 1 entry']);
  assert.equal(reloaded().length, 1, 'the valid edit is the one reload');
  const m = await metrics(gh);
  assert.deepEqual([total(m, 'gatehouse_http_requests_total', { route: 'load', status: '200' }), total(m, 'gatehouse_http_requests_total')], [count, count]);
  assert.equal(a.seen.length + b.seen.length, count);
  await eventually('client connections of the gateway drop to 0', () => clientSockets(gh).length === 0, 3000);
  t.diagnostic(`${count} requests from 16 clients, 0 failed; ${a.seen.length} to A, ${b.seen.length} to B; the valid edit served ${pickup} ms after it was written`);
});

// ---------------------------------------------------------------------------------------------
// Admin API writes racing each other and the traffic

async function adminCall(gh: Gh, method: 'GET' | 'PUT' | 'DELETE', path: string, body?: string | object): Promise<{ status: number; json: any }> {
  const r = await request(`${gh.admin}/apisix/admin${path}`, {
    method,
    headers: { 'x-api-key': ADMIN_KEY, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    headersTimeout: BOUND_MS,
  });
  const text = await r.body.text();
  return { status: r.statusCode, json: text ? JSON.parse(text) : undefined };
}

/** Fisher–Yates, so each round's writes start in a different order. */
function shuffled<T>(xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Traffic that runs until stopped: `check` judges each response; every other outcome is a failure. */
function traffic(agent: Agent, urls: () => string[], clients: number, check: (o: Outcome, url: string) => string | null): { stop(): Promise<{ count: number; problems: string[] }> } {
  let stopped = false;
  let count = 0;
  const problems: string[] = [];
  const runs = Array.from({ length: clients }, async (_, c) => {
    for (let i = 0; !stopped; i++) {
      const list = urls();
      const url = list[(c + i) % list.length];
      const o = await send(agent, url);
      count++;
      const p = check(o, url);
      if (p !== null) problems.push(p);
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(runs);
      return { count, problems };
    },
  };
}

test('racing Admin API PUTs of one route, valid and invalid, under traffic: only 200 or 400, the stored route is one valid body whole, traffic never sees a mix', { timeout: 120_000 }, async (t) => {
  const ups = await Promise.all([0, 1, 2, 3].map((i) => upstreamFor(t, undefined, `u${i}`)));
  // three fields of one body that traffic can see together: the node, the Host it is sent, a header
  const body = (v: number) => ({
    uri: '/race/*',
    desc: `version ${v}`,
    labels: { version: `v${v}` },
    upstream: { nodes: { [ups[v % 4].node]: 1 }, pass_host: 'rewrite', upstream_host: `v${v}.race.test` },
    plugins: { 'proxy-rewrite': { headers: { set: { 'x-version': `v${v}` } } } },
  });
  /** What GET answers for body(v): the same fields, normalised. */
  const shown = (v: number) => ({ uris: ['/race/*'], desc: `version ${v}`, labels: { version: `v${v}` }, nodes: [{ host: '127.0.0.1', port: ups[v % 4].port, weight: 1 }], pass_host: 'rewrite', upstream_host: `v${v}.race.test`, plugins: { 'proxy-rewrite': { headers: { set: { 'x-version': `v${v}` } } } } });
  const project = (value: any) => ({ uris: value.uris, desc: value.desc, labels: value.labels, nodes: value.upstream?.nodes, pass_host: value.upstream?.pass_host, upstream_host: value.upstream?.upstream_host, plugins: value.plugins });
  const gh = await gatehouse(t, { routes: [{ id: 'race', ...body(0) }] });

  const agent = new Agent({ connections: 32 });
  const versionsSeen = new Set<string>();
  const load = traffic(agent, () => [`${gh.url}/race/x`], 12, (o) => {
    if (o.status !== 200 || o.error !== null) return `${o.status} ${o.error ?? o.body}`;
    const got = JSON.parse(o.body) as { name: string; headers: Record<string, string> };
    const v = Number(/^v(\d+)$/.exec(got.headers['x-version'] ?? '')?.[1] ?? NaN);
    versionsSeen.add(got.headers['x-version']);
    if (!(got.headers.host === `v${v}.race.test` && got.name === `u${v % 4}`)) return `mixed: ${got.name}, host ${got.headers.host}, x-version ${got.headers['x-version']}`;
    return null;
  });

  const ROUNDS = 5;
  const VALID = 8;
  const statuses: Record<string, number> = {};
  for (let round = 0; round < ROUNDS; round++) {
    const versions = Array.from({ length: VALID }, (_, k) => round * VALID + k + 1);
    const bad = round * VALID + 100;
    const invalid: Array<[string, string, RegExp]> = [
      ['not JSON', '{"uri": "/race/*", "upstream": ', /^the body is not valid JSON$/],
      ['no nodes', JSON.stringify({ ...body(bad), upstream: { nodes: {} } }), /upstream\.nodes: must have at least 1 entry/],
      ['unknown upstream_id', JSON.stringify({ ...body(bad + 1), upstream: undefined, upstream_id: 'missing' }), /upstream_id: refers to unknown upstream "missing"/],
      ['bad plugin config', JSON.stringify({ ...body(bad + 2), plugins: { 'proxy-rewrite': { uri: 'no-slash' } } }), /proxy-rewrite/],
      ['unknown plugin', JSON.stringify({ ...body(bad + 3), plugins: { 'no-such-plugin': {} } }), /no-such-plugin/],
      ['id mismatch', JSON.stringify({ ...body(bad + 4), id: 'other' }), /^id "other" in the body does not match "race" in the path$/],
    ];
    const writes = shuffled([...versions.map((v) => ({ v, raw: JSON.stringify(body(v)), err: null as RegExp | null, what: `v${v}` })), ...invalid.map(([what, raw, err]) => ({ v: -1, raw, err, what }))]);
    const answers = await Promise.all(writes.map((w) => adminCall(gh, 'PUT', '/routes/race', w.raw).then((r) => ({ w, r }))));
    for (const { w, r } of answers) {
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (w.err === null) {
        assert.equal(r.status, 200, `${w.what}: ${JSON.stringify(r.json)}`);
        // the answer shows what this write stored, whole, whatever the others did meanwhile
        assert.deepEqual(project(r.json.value), shown(w.v), `${w.what}: the answer is its own body`);
      } else {
        assert.equal(r.status, 400, `${w.what}: ${JSON.stringify(r.json)}`);
        assert.match(r.json.error_msg, w.err, w.what);
      }
    }
    // what GET answers is one of this round's valid bodies, whole, and it is what is served and stored
    const got = await adminCall(gh, 'GET', '/routes/race');
    const n = Number(/^version (\d+)$/.exec(got.json.value.desc)?.[1]);
    assert.ok(versions.includes(n), `round ${round}: GET shows version ${got.json.value.desc}`);
    assert.deepEqual(project(got.json.value), shown(n), `round ${round}: GET shows one body whole`);
    // what the file store holds: the data file and the journal of writes beside it
    const stored = ((await new FileConfigStore(gh.file).load()) as { routes: Array<Record<string, unknown>> }).routes;
    assert.deepEqual(stored, [{ id: 'race', ...body(n) }], `round ${round}: the stored route is body v${n} exactly`);
    for (let i = 0; i < 5; i++) {
      const o = await send(agent, `${gh.url}/race/check`);
      assert.equal(JSON.parse(o.body).headers['x-version'], `v${n}`, `round ${round}: GET shows v${n}, traffic is served by it`);
    }
  }
  const { count, problems } = await load.stop();
  await agent.close();
  assert.deepEqual(problems, [], `${problems.length} of ${count} requests were wrong`);
  assert.deepEqual(statuses, { 200: ROUNDS * VALID, 400: ROUNDS * 6 });
  assert.ok(versionsSeen.size > ROUNDS, `traffic saw only ${[...versionsSeen].join(', ')}`);
  const errors = gh.proc.logLines().filter((l) => l.level >= 50);
  assert.deepEqual(errors, [], 'nothing was logged as an error');
  t.diagnostic(`${ROUNDS * (VALID + 6)} racing PUTs: ${JSON.stringify(statuses)}; ${count} requests during them, 0 failed, 0 mixed, ${versionsSeen.size} versions served`);
});

test('racing PUT and DELETE of upstreams that routes reference, under traffic: refused consistently, no route ever points at a missing upstream', { timeout: 120_000 }, async (t) => {
  const A = await upstreamFor(t, undefined, 'A');
  const B = await upstreamFor(t, undefined, 'B');
  const gh = await gatehouse(t, { upstreams: [{ id: 'shared', nodes: { [A.node]: 1 } }], routes: [{ id: 'via-shared', uri: '/via/*', upstream_id: 'shared' }] });
  const agent = new Agent({ connections: 32 });
  /** Routes that must answer 200 right now (besides /via/*), by path prefix. */
  const live = new Set<string>();
  const load = traffic(agent, () => [`${gh.url}/via/x`, ...[...live].map((p) => `${gh.url}${p}x`)], 10, (o, url) => {
    if (o.error !== null || o.status >= 500) return `${url}: ${o.status} ${o.error ?? o.body}`;
    if (url.includes('/via/') && o.status !== 200) return `${url}: ${o.status}`;
    return null;
  });

  // PUTs and DELETEs of the referenced upstream at once: every DELETE refused, every PUT applied
  const referenced = 'upstream "shared" is still used by routes: via-shared';
  for (let round = 0; round < 3; round++) {
    const ops = shuffled([...Array.from({ length: 6 }, (_, k) => ({ del: false, node: k % 2 ? B : A })), ...Array.from({ length: 6 }, () => ({ del: true, node: A }))]);
    const rs = await Promise.all(ops.map((op) => (op.del ? adminCall(gh, 'DELETE', '/upstreams/shared') : adminCall(gh, 'PUT', '/upstreams/shared', { nodes: { [op.node.node]: 1 } }))));
    rs.forEach((r, i) => {
      if (ops[i].del) assert.deepEqual([r.status, r.json.error_msg], [400, referenced]);
      else assert.equal(r.status, 200, JSON.stringify(r.json));
    });
    const shown = await adminCall(gh, 'GET', '/upstreams/shared');
    assert.equal(shown.status, 200);
    const port = shown.json.value.nodes[0].port as number;
    for (let i = 0; i < 4; i++) assert.equal(JSON.parse((await send(agent, `${gh.url}/via/check`)).body).name, port === A.port ? 'A' : 'B', 'the upstream GET shows is the one served');
  }

  /** Two calls at once, the first sent first on even rounds and second on odd ones. */
  const both = async <T>(k: number, x: () => Promise<T>, y: () => Promise<T>): Promise<[T, T]> => {
    if (k % 2 === 0) return Promise.all([x(), y()]);
    const [b, a] = await Promise.all([y(), x()]);
    return [a, b];
  };

  // DELETE of a route and of its upstream at once: the route always goes; the upstream goes only
  // when its DELETE came second (else refused, and deleted after)
  const outcomes: Record<string, number> = {};
  for (let k = 0; k < 10; k++) {
    assert.equal((await adminCall(gh, 'PUT', `/upstreams/tmp${k}`, { nodes: { [A.node]: 1 } })).status, 201);
    assert.equal((await adminCall(gh, 'PUT', `/routes/r${k}`, { uri: `/r${k}/*`, upstream_id: `tmp${k}` })).status, 201);
    live.add(`/r${k}/`);
    const [route, upstream] = await both(k, () => adminCall(gh, 'DELETE', `/routes/r${k}`), () => adminCall(gh, 'DELETE', `/upstreams/tmp${k}`));
    live.delete(`/r${k}/`);
    assert.equal(route.status, 200);
    assert.ok(upstream.status === 200 || (upstream.status === 400 && upstream.json.error_msg === `upstream "tmp${k}" is still used by routes: r${k}`), JSON.stringify(upstream));
    const key = `route deleted, upstream ${upstream.status === 200 ? 'deleted' : 'refused'}`;
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    if (upstream.status === 400) assert.equal((await adminCall(gh, 'DELETE', `/upstreams/tmp${k}`)).status, 200);
    assert.equal((await send(agent, `${gh.url}/r${k}/x`)).status, 404);
  }

  // PUT of a route naming an upstream, and DELETE of that upstream, at once: exactly one wins
  for (let k = 0; k < 10; k++) {
    assert.equal((await adminCall(gh, 'PUT', `/upstreams/pair${k}`, { nodes: { [B.node]: 1 } })).status, 201);
    const [route, upstream] = await both(k, () => adminCall(gh, 'PUT', `/routes/s${k}`, { uri: `/s${k}/*`, upstream_id: `pair${k}` }), () => adminCall(gh, 'DELETE', `/upstreams/pair${k}`));
    const pair = `${route.status}/${upstream.status}`;
    outcomes[`route ${route.status}, upstream DELETE ${upstream.status}`] = (outcomes[`route ${route.status}, upstream DELETE ${upstream.status}`] ?? 0) + 1;
    if (route.status === 201) {
      assert.deepEqual([pair, upstream.json.error_msg], ['201/400', `upstream "pair${k}" is still used by routes: s${k}`]);
      assert.equal((await send(agent, `${gh.url}/s${k}/x`)).status, 200);
      live.add(`/s${k}/`);
    } else {
      assert.equal(pair, '400/200', JSON.stringify(route.json));
      assert.match(route.json.error_msg, new RegExp(`upstream_id: refers to unknown upstream "pair${k}"`));
      assert.equal((await send(agent, `${gh.url}/s${k}/x`)).status, 404);
    }
  }

  const { count, problems } = await load.stop();
  await agent.close();
  assert.deepEqual(problems, [], `${problems.length} of ${count} requests were wrong`);
  // both orders of each pair happened, so both sides of each race were checked
  assert.deepEqual(Object.keys(outcomes).sort(), ['route 201, upstream DELETE 400', 'route 400, upstream DELETE 200', 'route deleted, upstream deleted', 'route deleted, upstream refused'], JSON.stringify(outcomes));
  // the end state: every route's upstream_id names an upstream that exists, in what GET shows and what is stored
  const routes = (await adminCall(gh, 'GET', '/routes')).json.list.map((i: { value: Record<string, unknown> }) => i.value);
  const upstreams = new Set((await adminCall(gh, 'GET', '/upstreams')).json.list.map((i: { value: { id: string } }) => i.value.id));
  const dangling = routes.filter((r: Record<string, unknown>) => r.upstream_id !== undefined && !upstreams.has(r.upstream_id));
  assert.deepEqual(dangling, []);
  const stored = (await new FileConfigStore(gh.file).load()) as { routes: Array<{ upstream_id?: string }>; upstreams: Array<{ id: string }> };
  assert.deepEqual(stored.routes.filter((r) => r.upstream_id !== undefined && !stored.upstreams.some((u) => u.id === r.upstream_id)), []);
  assert.deepEqual(gh.proc.logLines().filter((l) => l.level >= 50), [], 'nothing was logged as an error');
  t.diagnostic(`${count} requests during the races, 0 failed; outcomes ${JSON.stringify(outcomes)}`);
});
