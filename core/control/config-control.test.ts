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
