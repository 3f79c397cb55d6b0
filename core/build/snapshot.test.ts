// The build as plugins see it: `buildStart` once per build, before that build's consumer indexes
// and `create`s, its value given to every `create` of that build and to no other; the declared
// `maxBodySize` read once per route with the route's config; and two builds in the same tick
// (two gateways, or a reload next to a start) keeping limit-count's group checks apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import limitCount from '../../plugins/limit-count';
import { definePlugin } from '../sdk';
import type { Plugin } from '../contracts';
import { createRegistry } from '../config/registry';
import { validateConfig, type ValidatedConfig } from '../config/validate';
import { silentLogger } from '../observe/log';
import { createMetrics } from '../observe/metrics';
import { FakeClock } from '../secrets/fake-clock';
import { UpstreamPools } from '../request/upstream-pools';
import { PluginStates } from './plugin-state';
import { compileSnapshot, type SnapshotDeps } from './snapshot';

/** What one gateway's builds share, over these plugins (no secrets, no upstream traffic). */
function depsOf(plugins: Plugin[]): SnapshotDeps {
  const logger = silentLogger();
  const states = new PluginStates(logger);
  let generations = 0;
  return {
    registry: createRegistry(plugins, []),
    pools: new UpstreamPools(),
    healthStates: new Map(),
    services: { logger, metrics: createMetrics(), clock: new FakeClock(), consumers: undefined, hasConsumer: () => false, secrets: { resolve: async () => undefined }, fetch: globalThis.fetch },
    state: (name, hold) => states.view(name, hold),
    holdState: () => states.hold(),
    nextGeneration: () => ++generations,
  };
}

function validated(deps: SnapshotDeps, doc: Record<string, unknown>): ValidatedConfig['config'] {
  const v = validateConfig(doc, deps.registry);
  assert.deepEqual(v.issues, undefined);
  return v.config!;
}

/** The issues of a build, as `path: message` lines ([] when it built). */
function issuesOf(deps: SnapshotDeps, doc: Record<string, unknown>): string[] {
  const c = compileSnapshot(validated(deps, doc), deps);
  c.snapshot?.retire();
  return (c.issues ?? []).map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
}

const route = (id: string, plugins: Record<string, unknown>) => ({ id, uri: `/${id}`, plugins, upstream: { nodes: { '127.0.0.1:1': 1 } } });

test('buildStart runs once per build, before its consumer index and every create, whose services.build is its value', () => {
  const calls: string[] = [];
  let builds = 0;
  const recorder = definePlugin<{ tag?: string }, { key: string }, string, { build: number }>({
    name: 'recorder',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object', properties: { tag: { type: 'string' } } },
    consumerSchema: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'] },
    buildStart() {
      calls.push(`buildStart ${++builds}`);
      return { build: builds };
    },
    indexConsumers(consumers) {
      calls.push(`index ${consumers.length}`);
      return 'index';
    },
    create(conf, services) {
      calls.push(`create ${services.route?.id} build ${services.build.build} ${services.consumers}`);
      return {};
    },
  });
  const deps = depsOf([recorder]);
  const doc = { routes: [route('a', { recorder: {} }), route('b', { recorder: { tag: 'x' } })], consumers: [{ username: 'jack', plugins: { recorder: { key: 'k' } } }] };
  assert.deepEqual(issuesOf(deps, doc), []);
  assert.deepEqual(issuesOf(deps, doc), []);
  assert.deepEqual(calls, ['buildStart 1', 'index 1', 'create a build 1 index', 'create b build 1 index', 'buildStart 2', 'index 1', 'create a build 2 index', 'create b build 2 index']);
});

test('buildStart runs for a plugin no route uses; one that throws refuses the build, named by plugin', () => {
  let started = 0;
  const idle = definePlugin({ name: 'idle', version: '1.0.0', priority: 1, schema: { type: 'object' }, buildStart: () => void started++, create: () => ({}) });
  const broken = definePlugin({
    name: 'broken',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object' },
    buildStart() {
      throw new Error('no load state today');
    },
    create: () => ({}),
  });
  assert.deepEqual(issuesOf(depsOf([idle]), { routes: [] }), []);
  assert.equal(started, 1);
  assert.deepEqual(issuesOf(depsOf([broken]), { routes: [] }), ['plugin "broken": buildStart failed: no load state today']);
});

test('maxBodySize is read once per route with its config; a limit still returned by create refuses the config', () => {
  const seen: unknown[] = [];
  const sized = definePlugin<{ size?: number }>({
    name: 'sized',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object', properties: { size: { type: 'integer' } } },
    maxBodySize(conf) {
      seen.push(conf.size);
      return conf.size;
    },
    create: () => ({}),
  });
  const deps = depsOf([sized]);
  const c = compileSnapshot(validated(deps, { gateway: { client_max_body_size: 77 }, routes: [route('a', { sized: { size: 5 } }), route('b', { sized: {} })] }), deps);
  assert.ok(c.snapshot);
  assert.deepEqual(seen, [5, undefined]);
  assert.deepEqual(c.snapshot.routes.map((r) => r.bodyLimit), [5, 77]);
  c.snapshot.retire();

  const legacy = definePlugin({ name: 'legacy', version: '1.0.0', priority: 1, schema: { type: 'object' }, create: () => ({ maxBodySize: 10 }) as never });
  assert.deepEqual(issuesOf(depsOf([legacy]), { routes: [route('a', { legacy: {} })] }), ['routes[0].plugins.legacy: maxBodySize is declared on the plugin (maxBodySize(config)), not returned by create']);
  assert.throws(() => definePlugin({ name: 'number', version: '1.0.0', priority: 1, schema: { type: 'object' }, maxBodySize: 10 as never, create: () => ({}) }), /plugin "number": maxBodySize must be a function/);
});

test("limit-count: two builds in one tick keep their group checks apart; within one build a differing route is refused", () => {
  const group = (count: number) => ({ routes: [route('n1', { 'limit-count': { count, time_window: 60, group: 'g1' } }), route('n2', { 'limit-count': { count, time_window: 60, group: 'g1' } })] });
  // synchronously one after the other: no microtask between them to forget the first one's groups
  const one = depsOf([limitCount]);
  const other = depsOf([limitCount]);
  assert.deepEqual([issuesOf(one, group(2)), issuesOf(other, group(5)), issuesOf(one, group(4))], [[], [], []]);
  assert.deepEqual(issuesOf(one, { routes: [...group(2).routes, route('n3', { 'limit-count': { count: 3, time_window: 60, group: 'g1' } })] }), [
    'routes[2].plugins.limit-count: group "g1" is configured differently on another route (count); every route of a group shares one counter and must have the same limit-count config',
  ]);
});
