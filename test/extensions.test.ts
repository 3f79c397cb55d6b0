// Extension loading (`extensions:` in the config: paths and npm package names, each declaring the
// Gatehouse versions it supports), the extension authors' test kit, and the rule that first-party
// plugins and providers use only the public SDK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway } from '../core/gateway';
import { MemoryConfigStore } from '../core/stores/file-store';
import { captureLogs, ConfigError, definePlugin, FakeClock, startTestGateway } from '../core';
import { GatehouseError } from '../core/errors';
import { silentLogger } from '../core/observe/log';
import { captureLogger, delay, eventually, freePort, runCli, startGatehouse, tempDir, loadIssues } from './helpers/harness';

/** A CommonJS module defining one plugin that stamps a response header. */
function pluginModule(name: string, opts: { gatehouse?: string | null; schema?: unknown; header?: string } = {}): string {
  const range = opts.gatehouse === undefined ? '"^0.1.0"' : opts.gatehouse === null ? 'undefined' : JSON.stringify(opts.gatehouse);
  return `module.exports = {
  name: ${JSON.stringify(name)}, version: '1.0.0', priority: 10, gatehouse: ${range},
  schema: ${JSON.stringify(opts.schema ?? { type: 'object', properties: { value: { type: 'string', default: 'on' } } })},
  create(conf) { return { response: function stamp(ctx) { ctx.setResponseHeader(${JSON.stringify(opts.header ?? `x-${name}`)}, conf.value); } }; },
};\n`;
}

/** A module exporting { providers: [...] }: a provider answering every field with "<id>:<path>/<field>". */
const providerModule = `exports.default = { providers: [{
  name: 'echo-secrets', version: '1.0.0', gatehouse: '>=0.1.0 <1.0.0',
  schema: { type: 'object', properties: { id: { type: 'string' }, prefix: { type: 'string' } }, required: ['prefix'] },
  create(conf) { return { async get(req) { return { value: conf.prefix + ':' + req.path + '/' + req.field }; } }; },
}] };\n`;

function project(files: Record<string, string>, config: string): { dir: string; file: string } {
  const dir = tempDir();
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, config);
  return { dir, file };
}

test('extensions load from a path relative to the config file and from an npm package; their plugins and providers work', { timeout: 30000 }, async () => {
  const port = await freePort();
  const { file } = project(
    {
      'ext/stamp.js': pluginModule('stamp'),
      'ext/providers.js': providerModule,
      'node_modules/gatehouse-plugin-shout/package.json': JSON.stringify({ name: 'gatehouse-plugin-shout', version: '1.0.0', main: 'main.js' }),
      'node_modules/gatehouse-plugin-shout/main.js': pluginModule('shout', { header: 'x-shout' }),
    },
    `gateway: { listen: "127.0.0.1:${port}" }
extensions: [./ext/stamp.js, ./ext/providers, gatehouse-plugin-shout]
secrets:
  - { id: echo-secrets/main, prefix: p }
routes:
  - id: r
    uri: /r
    plugins:
      stamp: { value: "$secret://echo-secrets/main/a/b" }
      shout: {}
      mocking: { response_example: ok }
`,
  );
  const gw = await startGatehouse(file, port);
  try {
    const r = await fetch(`http://127.0.0.1:${port}/r`);
    assert.equal(await r.text(), 'ok');
    assert.equal(r.headers.get('x-stamp'), 'p:a/b', "the path extension's plugin, configured through the npm extension's provider");
    assert.equal(r.headers.get('x-shout'), 'on', "the npm package's plugin");
  } finally {
    await gw.kill();
  }
  const v = await runCli(['validate', '-c', file]);
  assert.equal(v.code, 0, v.stderr);
});

test('a bad extension refuses the config with its entry and the reason; none is skipped', { timeout: 30000 }, async () => {
  const { file } = project(
    {
      'ok.js': pluginModule('fine'),
      'norange.js': pluginModule('no-range', { gatehouse: null }),
      'future.js': pluginModule('future', { gatehouse: '^2.0.0' }),
      'dup-a.js': pluginModule('twin'),
      'dup-b.js': pluginModule('twin'),
      'builtin.js': pluginModule('key-auth'),
      'badschema.js': pluginModule('bad-schema', { schema: { type: 'nonsense' } }),
      'throws.js': "throw new Error('boom at load');\n",
      'nothing.js': 'module.exports = { hello: 1 };\n',
      'badname.js': pluginModule('Bad_Name'),
    },
    `extensions: [./ok.js, ./norange.js, ./future.js, ./dup-a.js, ./dup-b.js, ./builtin.js, ./badschema.js, ./throws.js, ./nothing.js, ./missing.js, not-installed-pkg, ./badname.js]\n`,
  );
  const issues = await loadIssues(file);
  const expect: Array<[number, RegExp]> = [
    [1, /no-range" must declare the Gatehouse versions it supports, e\.g\. gatehouse: "\^0\.1\.0"/],
    [2, /"future" supports Gatehouse \^2\.0\.0; this is Gatehouse 0\.1\.0/],
    [4, /plugin "twin" is also defined by \.\/dup-a\.js/],
    [5, /plugin "key-auth" is already a built-in plugin/],
    [6, /"bad-schema": its schema is not a valid JSON schema/],
    [7, /cannot be loaded: boom at load/],
    [8, /exports neither a plugin \(definePlugin\), a provider \(defineProvider\) nor \{ plugins, providers \}/],
    [9, /\.\/missing\.js: not found \(relative to /],
    [10, /not-installed-pkg: package not found from .* \(npm install it\)/],
    [11, /plugin name "Bad_Name" must match/],
  ];
  for (const [i, re] of expect) assert.ok(issues.some((l) => l.startsWith(`extensions[${i}]: `) && re.test(l)), `extensions[${i}] ${re}\n${issues.join('\n')}`);
  assert.equal(issues.length, expect.length, `exactly one issue per bad entry (the good ./ok.js and ./dup-a.js have none):\n${issues.join('\n')}`);
  const v = await runCli(['validate', '-c', file]);
  assert.equal(v.code, 1);
  assert.match(v.stderr, /extensions\[2\]: \.\/future\.js: plugin "future" supports Gatehouse \^2\.0\.0/);
});

test('the test kit boots a gateway with your plugin and an echo upstream in a few lines', async () => {
  const hello = definePlugin<{ who: string }>({
    name: 'hello',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object', properties: { who: { type: 'string', default: 'world' } } },
    create: (conf) => ({
      beforeProxy: (ctx) => ctx.setUpstreamHeader('x-hello', conf.who),
      response: (ctx) => ctx.setResponseHeader('x-hello', conf.who),
    }),
  });
  const gw = await startTestGateway({ extensions: [hello], config: (up) => ({ routes: [{ id: 'r', uri: '/hi', plugins: { hello: {} }, upstream: { nodes: { [up]: 1 } } }] }) });
  try {
    const res = await gw.request('/hi?x=1', { method: 'POST', body: 'payload' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-hello'), 'world');
    assert.deepEqual([gw.upstream.requests.length, gw.upstream.requests[0].url, gw.upstream.requests[0].headers['x-hello'], gw.upstream.requests[0].body], [1, '/hi?x=1', 'world', 'payload']);
    assert.equal(res.json().method, 'POST');
  } finally {
    await gw.close();
  }
  await assert.rejects(startTestGateway({ extensions: [hello], config: { routes: [{ id: 'r', uri: '/', plugins: { hello: { who: 5 } } }] } }), /routes\[0\]\.plugins\.hello\.who/);
});

test('plugin state survives a reload and is disposed when the gateway closes', async () => {
  let disposed = 0;
  const counter = definePlugin({
    name: 'counter',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object' },
    create: (_conf, services) => {
      const n = services.state.get('n', () => ({ value: 0 }), () => void disposed++);
      return { access: (ctx) => ctx.respond(200, String(++n.value)) };
    },
  });
  const gw = await startTestGateway({ extensions: [counter], config: { routes: [{ id: 'r', uri: '/', plugins: { counter: {} } }] } });
  try {
    assert.equal((await gw.request('/')).body, '1');
    assert.equal((await gw.request('/')).body, '2');
    const r = await gw.gateway.reload();
    assert.equal(r.ok, true);
    assert.equal((await gw.request('/')).body, '3', 'the count went on after the reload');
    assert.equal(disposed, 0);
  } finally {
    await gw.close();
  }
  assert.equal(disposed, 1);
});

test('plugin state no config uses any more is disposed once the old config\'s last request is done; state still used lives on', async () => {
  const disposed: string[] = [];
  let releaseSlow: (() => void) | undefined;
  const conn = definePlugin<{ name: string }>({
    name: 'conn',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
    create: (conf, services) => {
      // as limit-count's Redis connection: one per target, the target built from the config
      const c = services.state.get(`conn:${conf.name}`, () => ({ name: conf.name, uses: 0 }), (v) => void disposed.push(v.name));
      return {
        access: async (ctx) => {
          c.uses++;
          if (ctx.path === '/slow') await new Promise<void>((r) => (releaseSlow = r));
          ctx.respond(200, `${c.name}:${c.uses}`);
        },
      };
    },
  });
  const doc = (name: string, extra: unknown[] = []) => ({ routes: [{ id: 'r', uri: '/*', plugins: { conn: { name } } }, ...extra] });
  const store = new MemoryConfigStore(doc('a'));
  const gw = await startGateway({ store, listen: '127.0.0.1:0', logger: silentLogger(), extensions: [{ kind: 'plugin', plugin: conn }] });
  const url = `http://127.0.0.1:${gw.address.port}`;
  const get = async (path: string) => (await fetch(url + path)).text();
  try {
    assert.equal(await get('/'), 'a:1');
    const slow = get('/slow'); // in flight on the first config
    await eventually('the slow request reached its hook', () => releaseSlow !== undefined, 5000, 5);
    store.set(doc('b'));
    assert.equal((await gw.reload()).ok, true);
    assert.equal(await get('/'), 'b:1', 'the new config got its own value');
    await delay(100);
    assert.deepEqual(disposed, [], 'not while a request of the old config is in flight');
    releaseSlow!();
    assert.equal(await slow, 'a:2', 'the old config kept its value to the end');
    await eventually('the value no config uses is disposed', () => disposed.length === 1, 5000, 5);
    assert.deepEqual(disposed, ['a']);

    // a value the new config still gets lives on, with its count
    store.set(doc('b', [{ id: 'other', uri: '/other', plugins: { conn: { name: 'b' } } }]));
    assert.equal((await gw.reload()).ok, true);
    assert.equal(await get('/'), 'b:2');
    // a refused config disposes nothing and takes nothing
    store.set(doc('c', [{ id: 'bad', uri: '/bad', plugins: { conn: {} } }]));
    assert.equal((await gw.reload()).ok, false);
    assert.equal(await get('/other'), 'b:3');
    await delay(100);
    assert.deepEqual(disposed, ['a']);
  } finally {
    await gw.close(1000);
  }
  assert.deepEqual(disposed, ['a', 'b'], 'the rest is disposed when the gateway closes');
});

/** Every import specifier of a TypeScript file (static imports and requires). */
function importsOf(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'([^']+)'|require\('([^']+)'\)|import\('([^']+)'\)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}

test('first-party plugins and providers import only the public SDK, by the package name (plus node builtins, their own files and npm packages)', () => {
  const root = join(__dirname, '..', '..');
  const deps = new Set(Object.keys((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies));
  const offenders: string[] = [];
  let files = 0;
  for (const kind of ['plugins', 'providers']) {
    for (const name of readdirSync(join(root, kind))) {
      const dir = join(root, kind, name);
      if (!statSync(dir).isDirectory()) continue;
      for (const f of readdirSync(dir)) {
        if (!f.endsWith('.ts') || f.endsWith('.test.ts') || f.endsWith('.fixture.ts') || f.endsWith('.d.ts')) continue;
        files++;
        for (const spec of importsOf(join(dir, f))) {
          const ok = spec === 'gatehouse-gateway/sdk' || spec.startsWith('node:') || (spec.startsWith('./') && !spec.includes('..')) || deps.has(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
          if (!ok) offenders.push(`${kind}/${name}/${f}: ${spec}`);
        }
      }
    }
  }
  assert.ok(files >= 10, `checked ${files} files`);
  assert.deepEqual(offenders, []);
});

test('a plugin rejecting its config with ConfigError is reported at the field it names', async () => {
  const picky = definePlugin({
    name: 'picky',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object' },
    create: () => {
      throw new ConfigError('rules[1].pattern', 'is not a valid regular expression');
    },
  });
  await assert.rejects(startTestGateway({ extensions: [picky], config: { routes: [{ id: 'r', uri: '/', plugins: { picky: {} } }] } }), (err: GatehouseError) => {
    assert.deepEqual(err.issues.map((i) => `${i.path}: ${i.message}`), ['routes[0].plugins.picky.rules[1].pattern: is not a valid regular expression']);
    return true;
  });
});

test('the access log carries the request id the request-id plugin set', async () => {
  const logs = captureLogger();
  const gw = await startTestGateway({ logger: logs.logger, config: (up) => ({ gateway: { access_log: true }, routes: [{ id: 'r', uri: '/', plugins: { 'request-id': {} }, upstream: { nodes: { [up]: 1 } } }] }) });
  try {
    const res = await gw.request('/', { headers: { 'x-request-id': 'req-123' } });
    assert.equal(res.headers.get('x-request-id'), 'req-123');
  } finally {
    await gw.close();
  }
  const line = logs.lines.find((l) => l.type === 'access');
  assert.equal(line?.request_id, 'req-123');
});

test('the test kit: services.route in create, an injected clock, and captured logs', async () => {
  const clock = new FakeClock(1_000_000);
  const logs = captureLogs();
  const probe = definePlugin({
    name: 'probe',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object' },
    create: (_conf, services) => {
      services.logger.info({ route: services.route?.id }, 'probe created');
      return { access: (ctx) => ctx.respond(200, `${services.route?.id} ${services.route?.uri} ${services.clock.now()}`) };
    },
  });
  const gw = await startTestGateway({ extensions: [probe], clock, logger: logs.logger, config: { routes: [{ id: 'one', uri: '/one', plugins: { probe: {} } }, { id: 'two', uri: '/two/*', plugins: { probe: {} } }] } });
  try {
    assert.equal((await gw.request('/one')).body, 'one /one 1000000');
    clock.advance(5000);
    assert.equal((await gw.request('/two/x')).body, 'two /two/* 1005000');
  } finally {
    await gw.close();
  }
  assert.deepEqual(logs.lines.filter((l) => l.msg === 'probe created').map((l) => l.route), ['one', 'two']);
});
