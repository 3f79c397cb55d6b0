// Whole-gateway proxy tests, choosing a node: real upstreams on 127.0.0.1, a real gateway, real
// clients. Covers passive health and the load balancers (roundrobin, chash, least_conn).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { gatewayFor as gateway, upstreamFor as upstream, delay, startTcpServer } from './helpers/harness';
import { get, getJson, oneRoute } from './helpers/proxy';

// ---------------------------------------------------------------------------------------------
// passive health

test('passive health: a node that failed `failures` times is skipped for the cool-down, then tried again', async (t) => {
  const dead = await startTcpServer((socket) => socket.destroy());
  t.after(() => dead.close());
  const live = await upstream(t, undefined, 'live');
  const g = await gateway(t, oneRoute({ nodes: { [dead.node]: 1, [live.node]: 1 }, checks: { passive: { failures: 2, cooldown: 1 } } }));
  const burst = async (n: number) => {
    for (let i = 0; i < n; i++) assert.equal((await getJson(`${g.url}/h`)).name, 'live');
  };
  // round robin alternates, so two failures need at most four requests
  await burst(4);
  assert.equal(dead.accepted(), 2);
  const tripped = Date.now();
  await burst(10);
  assert.ok(Date.now() - tripped < 900, 'the burst must finish inside the cool-down for this test to mean anything');
  assert.equal(dead.accepted(), 2, 'not tried during the cool-down');
  await delay(1100 - (Date.now() - tripped));
  await burst(2);
  assert.equal(dead.accepted(), 3, 'tried again after the cool-down');
  assert.equal(live.seen.length, 16);
});

test('passive health counts the configured http_statuses as failures and skips the node for the cool-down', async (t) => {
  const sick = await upstream(t, (_req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end('{"name":"sick"}');
  });
  const well = await upstream(t, undefined, 'well');
  const g = await gateway(t, oneRoute({ nodes: { [sick.node]: 1, [well.node]: 1 }, checks: { passive: { failures: 2, cooldown: 30, http_statuses: [500] } } }));
  const statuses: number[] = [];
  for (let i = 0; i < 12; i++) statuses.push((await get(`${g.url}/s`)).status);
  // the 500s are answers, passed to the client (not retried); after two the node is skipped
  assert.equal(sick.seen.length, 2);
  assert.equal(statuses.filter((s) => s === 500).length, 2);
  assert.equal(statuses.filter((s) => s === 200).length, 10);
});

// ---------------------------------------------------------------------------------------------
// load balancing

test('roundrobin with weights 3:1 sends exactly 30 of 40 requests to the heavier node', async (t) => {
  const a = await upstream(t, undefined, 'a');
  const b = await upstream(t, undefined, 'b');
  const g = await gateway(t, oneRoute({ type: 'roundrobin', nodes: { [a.node]: 3, [b.node]: 1 } }));
  const counts: Record<string, number> = { a: 0, b: 0 };
  for (let i = 0; i < 40; i++) counts[(await getJson(`${g.url}/rr`)).name]++;
  assert.deepEqual(counts, { a: 30, b: 10 });
});

test('chash on arg_user sends each user to the same node every time, spreading users over nodes', async (t) => {
  const ups = await Promise.all(['a', 'b', 'c'].map((n) => upstream(t, undefined, n)));
  const g = await gateway(t, oneRoute({ type: 'chash', hash_on: 'vars', key: 'arg_user', nodes: Object.fromEntries(ups.map((u) => [u.node, 1])) }));
  const owner = new Map<string, string>();
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 30; i++) {
      const user = `user-${i}`;
      const name = (await getJson(`${g.url}/profile?other=${round}&user=${user}`)).name as string;
      if (round === 0) owner.set(user, name);
      else assert.equal(name, owner.get(user), `${user} moved from ${owner.get(user)} to ${name}`);
    }
  }
  assert.equal(new Set(owner.values()).size, 3, '30 users should land on all three nodes');
});

test('chash falls back to the client address when the hashed argument is absent', async (t) => {
  const ups = await Promise.all(['a', 'b', 'c'].map((n) => upstream(t, undefined, n)));
  const g = await gateway(t, {
    routes: [
      { id: 'arg', uri: '/arg', upstream: { type: 'chash', key: 'arg_user', nodes: Object.fromEntries(ups.map((u) => [u.node, 1])) } },
      { id: 'addr', uri: '/addr', upstream: { type: 'chash', key: 'remote_addr', nodes: Object.fromEntries(ups.map((u) => [u.node, 1])) } },
      { id: 'uri', uri: '/uri/*', upstream: { type: 'chash', key: 'uri', nodes: Object.fromEntries(ups.map((u) => [u.node, 1])) } },
    ],
  });
  const names = new Set<string>();
  for (let i = 0; i < 5; i++) names.add((await getJson(`${g.url}/arg?q=${i}`)).name);
  for (let i = 0; i < 5; i++) names.add((await getJson(`${g.url}/addr?q=${i}`)).name);
  assert.equal(names.size, 1, 'every request comes from 127.0.0.1, so one node serves them all');
  const byUri = new Map<string, string>();
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 12; i++) {
      const name = (await getJson(`${g.url}/uri/${i}?round=${round}`)).name as string;
      if (round === 0) byUri.set(`/uri/${i}`, name);
      else assert.equal(name, byUri.get(`/uri/${i}`));
    }
  }
  assert.ok(new Set(byUri.values()).size > 1, 'different paths should spread over nodes');
});

test('least_conn sends new requests away from a node busy with a slow in-flight request', async (t) => {
  const held: Array<{ name: string; res: ServerResponse }> = [];
  const handler = (name: string) => (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/slow') {
      held.push({ name, res });
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name }));
  };
  const a = await upstream(t, handler('a'), 'a');
  const b = await upstream(t, handler('b'), 'b');
  t.after(() => held.forEach((h) => h.res.destroy()));
  const g = await gateway(t, oneRoute({ type: 'least_conn', nodes: { [a.node]: 1, [b.node]: 1 } }));
  const slow = request(`${g.url}/slow`);
  while (held.length < 1) await delay(5);
  const other = held[0].name === 'a' ? 'b' : 'a';
  for (let i = 0; i < 10; i++) assert.equal((await getJson(`${g.url}/fast`)).name, other, `fast request ${i} went to the busy node`);
  held[0].res.end('done');
  assert.equal(await (await slow).body.text(), 'done');
  // with nothing in flight, both nodes serve again
  const names = new Set<string>();
  for (let i = 0; i < 4; i++) names.add((await getJson(`${g.url}/fast`)).name);
  assert.equal(names.size, 2);
});
