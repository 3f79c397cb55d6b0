// The DI kernel: a child container per gateway, built-ins registered through the same function as
// extensions, typed tokens, duplicates refused, a service swapped by registering another in a
// child container, and no trace of the container in the SDK's types.
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { container as root } from 'tsyringe';
import { createGatewayContainer, registerExtension, systemClock } from '../core/container';
import { PLUGIN, LOGGER, METRICS, CLOCK, CONFIG_STORE, TIMERS, token, resolve, resolveAll } from '../core/tokens';
import { SnapshotBuilder } from '../core/build/snapshot-builder';
import { DataPlane } from '../core/request/data-plane';
import { listenProxy } from '../core/request/listener';
import { FakeClock } from '../core/secrets/fake-clock';
import { captureLogger, eventually } from './helpers/harness';
import { definePlugin } from '../core/sdk';
import { createMetrics } from '../core/observe/metrics';
import { silentLogger } from '../core/observe/log';
import { MemoryConfigStore } from '../core/stores/file-store';
import { builtinExtensions } from '../core/extensions/builtins';
import type { Plugin } from '../core/contracts';

const base = () => ({ logger: silentLogger(), metrics: createMetrics(), clock: systemClock, store: new MemoryConfigStore({}) });
const extra = definePlugin({ name: 'extra', version: '0.0.1', priority: 1, schema: { type: 'object' }, create: () => ({}) });

test('each gateway gets its own child container; the root container stays empty', () => {
  const a = createGatewayContainer({ ...base(), extensions: [{ kind: 'plugin', plugin: extra }] });
  const b = createGatewayContainer(base());
  assert.notEqual(a, b);
  assert.ok(resolveAll(a, PLUGIN).some((p) => p.name === 'extra'));
  assert.ok(!resolveAll(b, PLUGIN).some((p) => p.name === 'extra'));
  assert.equal(root.isRegistered(PLUGIN, false), false);
});

test('built-ins are registered from the one list, the same way as extensions', () => {
  const c = createGatewayContainer(base());
  const names = resolveAll(c, PLUGIN).map((p) => p.name).sort();
  const listed = builtinExtensions.filter((e) => e.kind === 'plugin').map((e) => (e as { plugin: Plugin }).plugin.name).sort();
  assert.deepEqual(names, listed);
  assert.ok(names.includes('mocking'));
});

test('core services resolve through typed tokens', () => {
  const o = base();
  const c = createGatewayContainer(o);
  assert.equal(resolve(c, LOGGER), o.logger);
  assert.equal(resolve(c, METRICS), o.metrics);
  assert.equal(resolve(c, CLOCK), o.clock);
  assert.equal(resolve(c, CONFIG_STORE), o.store);
  const T = token<{ hello(): string }>('Greeter');
  c.register(T, { useValue: { hello: () => 'hi' } });
  assert.equal(resolve(c, T).hello(), 'hi');
});

test('registering a second plugin with the same name is refused with a coded error', () => {
  const c = createGatewayContainer(base());
  assert.throws(() => registerExtension(c, { kind: 'plugin', plugin: definePlugin({ name: 'mocking', version: '9', priority: 1, schema: {}, create: () => ({}) }) }), {
    code: 'GH_ERR_PLUGIN_DUPLICATE',
  });
});

test('definePlugin rejects a bad name, a missing schema and a missing create at definition time', () => {
  assert.throws(() => definePlugin({ name: 'Bad_Name', version: '1', priority: 1, schema: {}, create: () => ({}) }), /must match/);
  assert.throws(() => definePlugin({ name: 'x', version: '1', priority: 1, schema: undefined as never, create: () => ({}) }), /schema is required/);
  assert.throws(() => definePlugin({ name: 'x', version: '1', priority: Number.NaN, schema: {}, create: () => ({}) }), /priority/);
});

test('metrics registries are per gateway and render Prometheus text', async () => {
  const m1 = createMetrics();
  const m2 = createMetrics();
  m1.counter('things_total', 'Things', ['kind']).inc({ kind: 'a' });
  m1.counter('things_total', 'Things', ['kind']).inc({ kind: 'a' }, 2);
  const text = await m1.render();
  assert.match(text, /gatehouse_things_total\{kind="a"\} 3/);
  assert.doesNotMatch(await m2.render(), /things_total/);
});

test('a service registered over the default in a child container is the one the classes resolved there use', async (t) => {
  const parentLogs = captureLogger();
  const logs = captureLogger();
  const clock = new FakeClock();
  // a plugin that answers locally after the fake clock moved 1234 ms: the request's latency
  const tick = definePlugin({ name: 'tick', version: '0.0.1', priority: 1, schema: { type: 'object' }, create: () => ({ access: (ctx) => (clock.advance(1234), ctx.respond(200, 'ticked')) }) });
  const parent = createGatewayContainer({ ...base(), logger: parentLogs.logger, extensions: [{ kind: 'plugin', plugin: tick }] });
  const child = parent.createChildContainer();
  child.register(LOGGER, { useValue: logs.logger });
  child.register(CLOCK, { useValue: clock });
  child.register(TIMERS, { useValue: clock });

  const builder = child.resolve(SnapshotBuilder);
  assert.equal(child.resolve(SnapshotBuilder), builder, 'one builder per container');
  assert.notEqual(parent.resolve(SnapshotBuilder), builder, 'the parent builds its own from its own services');
  const plane = child.resolve(DataPlane);
  plane.current = await builder.build(builder.validate({ routes: [{ id: 't', uri: '/t', plugins: { tick: {} } }] }));
  t.after(() => builder.close());

  const { server, address } = await listenProxy(plane, '127.0.0.1', 0, 60);
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const res = await fetch(`http://127.0.0.1:${address.port}/t`);
  assert.equal(await res.text(), 'ticked');

  await eventually('the access log line', () => logs.lines.some((l) => l.type === 'access'), 2000);
  const line = logs.lines.find((l) => l.type === 'access')!;
  assert.equal(line.latency_ms, 1234, 'the request was timed by the fake clock');
  assert.equal(line.path, '/t');
  assert.equal(parentLogs.lines.length, 0, 'nothing went to the parent container\'s logger');
});

test('no type of the SDK mentions the DI container', () => {
  // sdk.d.ts and every declaration file it reaches through relative imports
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /tsyringe|DependencyContainer/, `${file} mentions the DI container`);
    for (const m of text.matchAll(/from '(\.[^']+)'/g)) {
      const next = resolvePath(dirname(file), `${m[1].replace(/\.js$/, '')}.d.ts`);
      if (existsSync(next)) visit(next);
    }
  };
  visit(join(__dirname, '..', 'core', 'sdk.d.ts'));
  assert.ok(seen.size > 1, 'the SDK re-exports the contracts');
  // nor do its values: the token helpers take a container
  const sdk = require('../core/sdk') as Record<string, unknown>;
  for (const name of ['resolve', 'resolveAll', 'token', 'createGatewayContainer', 'registerExtension']) assert.equal(name in sdk, false, `the SDK exports ${name}`);
});
