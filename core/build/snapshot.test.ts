// The build as plugins see it: `buildStart` once per build, before that build's consumer indexes
// and `create`s, its value given to every `create` of that build and to no other; the declared
// `maxBodySize` read once per route with the route's config; and two builds in the same tick
// (two gateways, or a reload next to a start) keeping limit-count's group checks apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import limitCount from '../../plugins/limit-count';
import { ConfigError, definePlugin } from '../sdk';
import { captureLogs } from '../testing';
import type { Plugin } from '../contracts';
import { createRegistry } from '../config/registry';
import { validateConfig, type ValidatedConfig } from '../config/validate';
import { silentLogger } from '../observe/log';
import { createMetrics } from '../observe/metrics';
import { FakeClock } from '../secrets/fake-clock';
import { UpstreamPools } from '../request/upstream-pools';
import { PluginStates } from './plugin-state';
import { compileSnapshot, type SnapshotDeps } from './snapshot';
import { FailClosedLog } from './fail-closed';

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

/** Deps whose builds log to `logs` and remember what failed closed, as a gateway's do. */
function loggedDeps(plugins: Plugin[]): { deps: SnapshotDeps; logs: ReturnType<typeof captureLogs> } {
  const logs = captureLogs('info');
  const base = depsOf(plugins);
  return { deps: { ...base, services: { ...base.services, logger: logs.logger }, failures: new FailClosedLog(logs.logger) }, logs };
}

test("a create that refuses only the resolved config fails that route closed, logged once per appearance without the plugin's message; one that refuses what was written is a config error", () => {
  const seenRefs: boolean[] = [];
  const picky = definePlugin<{ value: string; mode?: string }>({
    name: 'picky',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object', properties: { value: { type: 'string' }, mode: { type: 'string' } }, required: ['value'] },
    create(conf, { isReference }) {
      if (conf.mode === 'bad') throw new ConfigError('mode', 'is not a known mode');
      if (conf.value.includes('!')) throw new Error(`cannot use ${conf.value}`);
      seenRefs.push(isReference(['value']));
      return {};
    },
  });
  const { deps, logs } = loggedDeps([picky]);
  const doc = { routes: [route('a', { picky: { value: '$env://GH_SNAP_PICKY' } }), route('b', { picky: { value: 'fine' } })] };
  const config = validated(deps, doc);
  const build = (value: string) => {
    const c = compileSnapshot(config, deps, new Map([['$env://GH_SNAP_PICKY', value]]));
    assert.deepEqual(c.issues, undefined);
    c.snapshot.retire();
    return c.snapshot.routes.map((r) => r.unavailable?.reason ?? 'ok');
  };
  const failed = 'plugin "picky" rejected the value of $env://GH_SNAP_PICKY';
  assert.deepEqual(build('planted-snap!value'), [failed, 'ok']);
  assert.deepEqual(build('planted-snap!value'), [failed, 'ok'], 'still closed at the next rebuild');
  assert.deepEqual(build('good'), ['ok', 'ok']);
  assert.deepEqual(seenRefs.slice(-2), [true, false], 'isReference tells the referenced value from a written one');
  assert.deepEqual(build('planted-snap!again'), [failed, 'ok']);
  const lines = logs.lines.filter((l) => l.msg === 'fails closed: a plugin rejected the value of a secret it needs');
  assert.deepEqual(
    lines.map((l) => [l.route, l.plugin, l.references, l.cause]),
    [
      ['a', 'picky', ['$env://GH_SNAP_PICKY'], failed],
      ['a', 'picky', ['$env://GH_SNAP_PICKY'], failed],
    ],
    'logged when it appears, not at every rebuild while it lasts; again when it comes back',
  );
  assert.equal(logs.text().includes('planted-snap'), false);
  // what was written is at fault: refused, with the run that saw only reference texts
  const bad = compileSnapshot(validated(deps, { routes: [route('a', { picky: { value: '$env://GH_SNAP_PICKY', mode: 'bad' } })] }), deps, new Map([['$env://GH_SNAP_PICKY', 'planted-snap!value']]));
  assert.deepEqual(bad.issues, [{ path: 'routes[0].plugins.picky.mode', message: 'is not a known mode' }]);
});

test('indexConsumers: an excluded consumer, or one holding references that a throw names, is left out and the rest indexed; a throw about what was written refuses the config', () => {
  const runs: string[][] = [];
  const vouch = definePlugin<Record<string, never>, { key: string }, string[]>({
    name: 'vouch',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object' },
    consumerSchema: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'] },
    indexConsumers(consumers, { exclude, isReference }) {
      runs.push(consumers.map((c) => c.username));
      for (const c of consumers) {
        if (c.config.key === 'skip') exclude(c, 'its key says skip');
        if (c.config.key.includes('!')) throw Object.assign(new Error(`bad key ${c.config.key}`), { path: `${c.path}.key`, ref: isReference(c, ['key']) });
      }
      return consumers.map((c) => c.username);
    },
    create: () => ({}),
  });
  const { deps, logs } = loggedDeps([vouch]);
  const consumer = (username: string, key: string) => ({ username, plugins: { vouch: { key } } });
  const values = new Map([['$env://GH_SNAP_ANN', 'planted-snap!ann'], ['$env://GH_SNAP_BOB', 'skip']]);
  const c = compileSnapshot(validated(deps, { routes: [], consumers: [consumer('ann', '$env://GH_SNAP_ANN'), consumer('bob', '$env://GH_SNAP_BOB'), consumer('cy', 'ok')] }), deps, values);
  assert.deepEqual(c.issues, undefined);
  c.snapshot.retire();
  assert.deepEqual(runs, [['ann', 'bob', 'cy'], ['bob', 'cy'], ['cy']]);
  assert.deepEqual(
    logs.lines.filter((l) => l.plugin === 'vouch').map((l) => [l.consumer, l.references, l.cause]),
    [
      ['ann', ['$env://GH_SNAP_ANN'], 'plugin "vouch" rejected the value of $env://GH_SNAP_ANN'],
      ['bob', ['$env://GH_SNAP_BOB'], 'its key says skip'],
    ],
  );
  assert.equal(logs.text().includes('planted-snap'), false);
  const written = compileSnapshot(validated(deps, { routes: [], consumers: [consumer('cy', 'w!')] }), deps);
  assert.deepEqual(written.issues, [{ path: 'consumers[0].plugins.vouch.key', message: 'bad key w!' }]);
});
