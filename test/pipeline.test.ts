// Plugin pipeline: phase order, priority order, ending a request from a hook, async hooks,
// response and log phases, failures of a hook, and load-time (not per-request) plugin creation.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { definePlugin, type RequestContext } from '../core/sdk';
import type { Extension } from '../core/contracts';
import { bootGateway, startUpstream, type Upstream } from './helpers/harness';

const trace: string[] = [];
let creates = 0;

function tracer(name: string, priority: number): Extension {
  return {
    kind: 'plugin',
    plugin: definePlugin<{ stop_in?: string; status?: number }>({
      name,
      version: '1.0.0',
      priority,
      schema: { type: 'object', properties: { stop_in: { type: 'string' }, status: { type: 'integer', default: 403 } }, additionalProperties: false },
      create(conf) {
        creates++;
        const mark = (phase: string) => (ctx: RequestContext) => {
          trace.push(`${name}.${phase}`);
          if (conf.stop_in === phase) ctx.respond(conf.status ?? 403, { message: `stopped by ${name}` }, { 'x-stopped-by': name });
        };
        return {
          rewrite: mark('rewrite'),
          access: mark('access'),
          beforeProxy: mark('beforeProxy'),
          response: (ctx) => {
            trace.push(`${name}.response`);
            ctx.setResponseHeader(`x-seen-${name}`, String(ctx.status));
          },
          log: () => {
            trace.push(`${name}.log`);
          },
        };
      },
    }),
  };
}

const asyncAuth: Extension = {
  kind: 'plugin',
  plugin: definePlugin({
    name: 'async-auth',
    version: '1.0.0',
    priority: 100,
    schema: { type: 'object' },
    create: () => ({
      async access(ctx) {
        await new Promise((r) => setTimeout(r, 20));
        if (ctx.headers['x-pass'] !== 'yes') ctx.respond(401, { message: 'no pass' });
        else ctx.setUpstreamHeader('x-authed', 'async');
      },
    }),
  }),
};

const rewriter: Extension = {
  kind: 'plugin',
  plugin: definePlugin<{ prefix: string }>({
    name: 'rewriter',
    version: '1.0.0',
    priority: 50,
    schema: { type: 'object', properties: { prefix: { type: 'string' } }, required: ['prefix'] },
    create: (conf) => ({
      rewrite(ctx) {
        ctx.path = conf.prefix + ctx.path;
        ctx.query = ctx.query ? `${ctx.query}&rewritten=1` : 'rewritten=1';
        ctx.setUpstreamHeader('x-removed', undefined);
      },
    }),
  }),
};

const broken: Extension = {
  kind: 'plugin',
  plugin: definePlugin({
    name: 'broken',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object' },
    create: () => ({
      access() {
        throw new Error('boom');
      },
    }),
  }),
};

const picky: Extension = {
  kind: 'plugin',
  plugin: definePlugin<{ n: number }>({
    name: 'picky',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object', properties: { n: { type: 'integer' } } },
    create(conf) {
      if (conf.n === 13) throw new Error('13 is not allowed');
      return {};
    },
  }),
};

let up: Upstream;
let gwh: Awaited<ReturnType<typeof bootGateway>>;

const config = (upNode: string) => ({
  routes: [
    { id: 'all', uri: '/all', plugins: { low: {}, high: {} }, upstream: { nodes: { [upNode]: 1 } } },
    { id: 'stop-access', uri: '/stop', plugins: { low: {}, high: { stop_in: 'access', status: 418 } }, upstream: { nodes: { [upNode]: 1 } } },
    { id: 'async', uri: '/async', plugins: { 'async-auth': {} }, upstream: { nodes: { [upNode]: 1 } } },
    { id: 'rewrite', uri: '/r/*', plugins: { rewriter: { prefix: '/base' } }, upstream: { nodes: { [upNode]: 1 } } },
    { id: 'broken', uri: '/broken', plugins: { broken: {} }, upstream: { nodes: { [upNode]: 1 } } },
  ],
});

const extensions = [tracer('high', 2000), tracer('low', 1000), asyncAuth, rewriter, broken, picky];

test('setup', async () => {
  up = await startUpstream();
  gwh = await bootGateway(config(up.node), { extensions });
});
after(async () => {
  await gwh?.close();
  await up?.close();
});

test('plugins are created once at load, not per request', async () => {
  const before = creates;
  for (let i = 0; i < 5; i++) await (await request(`${gwh.url}/all`)).body.text();
  assert.equal(creates, before);
});

test('runs rewrite, access, beforeProxy, response, log in order, higher priority first in each phase', async () => {
  trace.length = 0;
  const r = await request(`${gwh.url}/all`);
  await r.body.text();
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['x-seen-high'], '200');
  assert.equal(r.headers['x-seen-low'], '200');
  await new Promise((res) => setTimeout(res, 20));
  assert.deepEqual(trace, [
    'high.rewrite', 'low.rewrite', 'high.access', 'low.access', 'high.beforeProxy', 'low.beforeProxy',
    'high.response', 'low.response', 'high.log', 'low.log',
  ]);
});

test('a hook that responds ends the request: later request hooks and the upstream are skipped, response and log hooks still run', async () => {
  trace.length = 0;
  const seenBefore = up.seen.length;
  const r = await request(`${gwh.url}/stop`);
  assert.equal(r.statusCode, 418);
  assert.deepEqual(await r.body.json(), { message: 'stopped by high' });
  assert.equal(r.headers['x-stopped-by'], 'high');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.headers['x-seen-low'], '418');
  await new Promise((res) => setTimeout(res, 20));
  assert.deepEqual(trace, ['high.rewrite', 'low.rewrite', 'high.access', 'high.response', 'low.response', 'high.log', 'low.log']);
  assert.equal(up.seen.length, seenBefore, 'upstream must not be called');
});

test('asynchronous hooks are awaited and can both reject and let through', async () => {
  const denied = await request(`${gwh.url}/async`);
  assert.equal(denied.statusCode, 401);
  assert.deepEqual(await denied.body.json(), { message: 'no pass' });
  const ok = await request(`${gwh.url}/async`, { headers: { 'x-pass': 'yes' } });
  assert.equal(ok.statusCode, 200);
  const echo = (await ok.body.json()) as { headers: Record<string, string> };
  assert.equal(echo.headers['x-authed'], 'async');
});

test('a rewrite hook changes the path, query and headers sent upstream', async () => {
  const r = await request(`${gwh.url}/r/x?a=1`, { headers: { 'x-removed': 'gone' } });
  const echo = (await r.body.json()) as { url: string; headers: Record<string, string> };
  assert.equal(echo.url, '/base/r/x?a=1&rewritten=1');
  assert.equal(echo.headers['x-removed'], undefined);
});

test('a hook that throws answers 500 with a JSON body and logs the plugin name, not the request', async () => {
  const r = await request(`${gwh.url}/broken`);
  assert.equal(r.statusCode, 500);
  assert.deepEqual(await r.body.json(), { message: '500 Internal Server Error' });
  const line = gwh.logs.lines.find((l) => l.msg === 'plugin hook failed');
  assert.ok(line, 'an error line is logged');
  assert.equal(line.plugin, 'broken');
  assert.equal(line.route, 'broken');
});

test('a plugin factory that rejects its config fails the load with the config path', async () => {
  await assert.rejects(
    bootGateway({ routes: [{ id: 'p', uri: '/p', plugins: { picky: { n: 13 } } }] }, { extensions }),
    (err: Error & { issues?: Array<{ path: string; message: string }> }) => {
      assert.deepEqual(err.issues, [{ path: 'routes[0].plugins.picky', message: '13 is not allowed' }]);
      return true;
    },
  );
});

test('plugin config is validated against its schema at load, with defaults applied and frozen', async () => {
  let seen: unknown;
  const probe: Extension = {
    kind: 'plugin',
    plugin: definePlugin<{ n: number; s: string }>({
      name: 'probe',
      version: '1.0.0',
      priority: 1,
      schema: { type: 'object', properties: { n: { type: 'integer', minimum: 1 }, s: { type: 'string', default: 'dflt' } }, additionalProperties: false },
      create(conf) {
        seen = conf;
        return {};
      },
    }),
  };
  await assert.rejects(bootGateway({ routes: [{ id: 'p', uri: '/p', plugins: { probe: { n: 0, zz: 1 } } }] }, { extensions: [probe] }), (err: Error & { issues?: Array<{ path: string }> }) => {
    const paths = (err.issues ?? []).map((i) => i.path).sort();
    assert.deepEqual(paths, ['routes[0].plugins.probe.n', 'routes[0].plugins.probe.zz']);
    return true;
  });
  const g = await bootGateway({ routes: [{ id: 'p', uri: '/p', plugins: { probe: { n: 2 } } }] }, { extensions: [probe] });
  try {
    assert.deepEqual(seen, { n: 2, s: 'dflt' });
    assert.ok(Object.isFrozen(seen));
  } finally {
    await g.close();
  }
});
