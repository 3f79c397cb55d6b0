// The control path without listeners: resolved from a gateway container over an in-memory store,
// it installs, reloads (an invalid config changes nothing; waiting reloads share one build),
// applies Admin API writes (a refused one leaves the store and the live snapshot as they were),
// reports a changed restart-only setting, and swaps nothing once closed.
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createGatewayContainer, systemClock } from '../container';
import { createMetrics } from '../observe/metrics';
import { MemoryConfigStore } from '../stores/file-store';
import { SnapshotBuilder } from '../build/snapshot-builder';
import { DataPlane } from '../request/data-plane';
import { captureLogs } from '../testing';
import { ConfigControl } from './config-control';
import { deleteResource, patchResource, putResource } from '../admin/documents';
import { validateConfig } from '../config/validate';
import { prng } from '../../test/helpers/prng';

const route = (id: string) => ({ id, uri: `/${id}`, plugins: { mocking: { response_status: 200 } } });

/** A control over `doc`, with its first snapshot installed. */
async function controlOver(doc: Record<string, unknown>) {
  const logs = captureLogs();
  const store = new MemoryConfigStore(doc);
  const c = createGatewayContainer({ logger: logs.logger, metrics: createMetrics(), clock: systemClock, store });
  const builder = c.resolve(SnapshotBuilder);
  const plane = c.resolve(DataPlane);
  const control = c.resolve(ConfigControl);
  const v = builder.validate(await store.load());
  control.install(v, await builder.build(v));
  const close = async () => {
    control.close();
    plane.current.retire();
    await builder.close();
  };
  return { logs, store, plane, control, close };
}

test('an Admin API write is validated, persisted and installed; a refused one leaves nothing behind', async (t) => {
  const g = await controlOver({ routes: [route('a')] });
  t.after(g.close);
  const first = g.plane.current;
  assert.deepEqual(await g.control.change((doc) => doc.set('routes', 'b', route('b'))), { ok: true });
  assert.notEqual(g.plane.current, first);
  assert.deepEqual(((await g.store.load()).routes as { id: string }[]).map((r) => r.id), ['a', 'b']);
  assert.ok(g.logs.lines.some((l) => l.msg === 'admin change applied' && l.generation === g.plane.current.generation));

  const live = g.plane.current;
  const invalid = await g.control.change((doc) => doc.set('routes', 'c', { id: 'c', uri: 42 }));
  assert.equal(invalid.ok, false);
  assert.equal(!invalid.ok && invalid.status, 400);
  const thrown = await g.control.change(() => {
    throw Object.assign(new Error('no such route'), { status: 404 });
  });
  assert.deepEqual(thrown, { ok: false, status: 404, message: 'no such route', issues: [] });
  assert.equal(g.plane.current, live, 'the live snapshot stayed');
  assert.deepEqual(((await g.store.load()).routes as { id: string }[]).map((r) => r.id), ['a', 'b'], 'nothing was persisted');
});

test('a store that refuses writes answers with its own status', async (t) => {
  const g = await controlOver({ config_store: { readonly: true }, routes: [route('a')] });
  t.after(g.close);
  const r = await g.control.change((doc) => doc.set('routes', 'b', route('b')));
  assert.equal(!r.ok && r.status, 403);
});

test('reloads waiting together share one build; an invalid config is logged and changes nothing', async (t) => {
  const g = await controlOver({ routes: [route('a')] });
  t.after(g.close);
  g.store.set({ routes: [route('a'), route('b')] });
  const [one, two] = [g.control.reload(), g.control.reload()];
  assert.equal(one, two);
  const r = await one;
  assert.ok(r.ok && r.generation === g.plane.current.generation);
  assert.equal(g.plane.current.routes.length, 2);

  const live = g.plane.current;
  g.store.set({ routes: [{ id: 'x' }] });
  const bad = await g.control.reload();
  assert.equal(bad.ok, false);
  assert.equal(g.plane.current, live);
  assert.ok(g.logs.lines.some((l) => l.msg === 'config reload rejected; the last good config keeps serving' && l.source === 'memory'));
});

test('a changed restart-only setting is reported and kept', async (t) => {
  const g = await controlOver({ gateway: { listen: '127.0.0.1:9080' }, routes: [route('a')] });
  t.after(g.close);
  g.store.set({ gateway: { listen: '127.0.0.1:9081' }, routes: [route('a')] });
  assert.ok((await g.control.reload()).ok);
  assert.ok(g.logs.lines.some((l) => l.msg === 'gateway.listen changed: takes effect at the next restart'));
});

test('once closed, nothing is swapped in', async (t) => {
  const g = await controlOver({ routes: [route('a')] });
  t.after(g.close);
  const live = g.plane.current;
  g.control.close();
  assert.equal(g.control.closed, true);
  assert.deepEqual(await g.control.change((doc) => doc.set('routes', 'b', route('b'))), { ok: false, status: 503, message: 'gateway is closing', issues: [] });
  assert.deepEqual(await g.control.reload(), { ok: false, issues: [], message: 'gateway is closed' });
  assert.equal(g.plane.current, live);
});

test('random Admin API writes, applied one resource at a time: the live config is always what validating the stored document gives, and each resource is found by id', async (t) => {
  const none = () => [];
  for (const seed of [1, 2, 3]) {
    const rnd = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const ids = Array.from({ length: 8 }, (_, i) => `x${i}`);
    const g = await controlOver({
      upstreams: [{ id: 'u0', nodes: { '127.0.0.1:1': 1 } }],
      routes: ids.slice(0, 3).map((id) => ({ id, uri: `/${id}`, upstream_id: 'u0' })),
      consumers: ids.slice(0, 5).map((username) => ({ username, plugins: { 'key-auth': { key: `key-of-${username}` } } })),
    });
    t.after(g.close);
    const registry = (g.control as unknown as { builder: SnapshotBuilder }).builder.deps.registry;
    for (let step = 0; step < 60; step++) {
      const kind = pick(['routes', 'consumers', 'upstreams'] as const);
      const id = pick(ids);
      const op = rnd();
      const body =
        kind === 'consumers'
          ? { username: id, plugins: { 'key-auth': { key: `key-${seed}-${step}` } } }
          : kind === 'routes'
            ? { uri: rnd() < 0.1 ? 42 : `/${id}/${step}`, upstream_id: pick(['u0', 'u1']) }
            : { nodes: { [`127.0.0.1:${1000 + step}`]: 1 } };
      const r = await g.control.change((doc) => {
        if (op < 0.55) putResource(doc, kind, id, body as Record<string, unknown>, { writeOnly: none });
        else if (op < 0.75) patchResource(doc, kind, id, { desc: `step ${step}` }, none);
        else deleteResource(doc, kind, id);
      });
      const stored = await g.store.load();
      const whole = validateConfig(stored, registry);
      assert.ok(whole.config, `seed ${seed} step ${step}: the stored document is valid (${JSON.stringify(r)})`);
      const live = g.plane.current.config;
      for (const k of ['routes', 'consumers', 'upstreams'] as const) {
        assert.deepEqual(live[k], whole.config![k], `seed ${seed} step ${step}: ${k}`);
        for (const x of ids) {
          const found = (live[k] as unknown as readonly Record<string, unknown>[]).find((item) => String(item[k === 'consumers' ? 'username' : 'id']) === x);
          assert.equal(g.control.resource(k, x), found, `seed ${seed} step ${step}: ${k}/${x} by id`);
        }
      }
    }
  }
});
