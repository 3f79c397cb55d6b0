// The DI kernel: a child container per gateway, built-ins registered through the same function as
// extensions, typed tokens, duplicates refused.
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { container as root } from 'tsyringe';
import { createGatewayContainer, registerExtension, systemClock } from '../core/container';
import { PLUGIN, LOGGER, METRICS, CLOCK, CONFIG_STORE, token, resolve, resolveAll } from '../core/tokens';
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
