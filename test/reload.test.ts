// Hot reload through the file store: edits in place and by rename, invalid files that change
// nothing, reloads under load without a failed request, and in-flight requests finishing on the
// config they started with. Also once end to end through `gatehouse start`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { bootGateway, delay, freePort, startGatehouse, startUpstream, tempDir, type TestGateway, type Upstream } from './helpers/harness';

const agent = new Agent({ keepAliveTimeout: 2000, connections: 64 });
const dir = tempDir('gatehouse-reload-');
let upA: Upstream;
let upB: Upstream;
const cleanups: Array<() => Promise<void> | void> = [];

before(async () => {
  upA = await startUpstream(undefined, 'A');
  upB = await startUpstream(undefined, 'B');
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await upA.close();
  await upB.close();
  await agent.close();
  rmSync(dir, { recursive: true, force: true });
});

let files = 0;
/** A fresh config path in the temp dir (each test watches its own directory). */
function configPath(): string {
  const d = join(dir, `case-${++files}`);
  mkdirSync(d);
  return join(d, 'gatehouse.yaml');
}

function routeTo(id: string, uri: string, up: Upstream): Record<string, unknown> {
  return { id, uri, upstream: { nodes: { [up.node]: 1 } } };
}

/** JSON is YAML: a config document as file text. */
const text = (doc: Record<string, unknown>) => JSON.stringify(doc, null, 2);

function writeInPlace(path: string, content: string): void {
  writeFileSync(path, content);
}

let renames = 0;
/** Write a sibling temp file (a name the watcher does not know), then rename it over the config. */
function writeByRename(path: string, content: string): void {
  const tmp = join(path, '..', `.tmp-${++renames}`);
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}

async function bootFromFile(path: string, doc: Record<string, unknown>): Promise<TestGateway> {
  writeFileSync(path, text(doc));
  const g = await bootGateway({}, { configPath: path });
  cleanups.push(() => g.close());
  return g;
}

async function get(g: TestGateway, path: string): Promise<{ status: number; body: string }> {
  const res = await request(`${g.url}${path}`, { dispatcher: agent });
  return { status: res.statusCode, body: await res.body.text() };
}

/** Poll until `check` is true; returns the elapsed milliseconds. */
async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await delay(20);
  }
}

const errorLines = (g: TestGateway) => g.logs.lines.filter((l) => l.level >= 50);
const reloadedLines = (g: TestGateway) => g.logs.lines.filter((l) => l.msg === 'config reloaded');

describe('hot reload from the file', () => {
  test('an in-place write serves the new routes within a second', async () => {
    const path = configPath();
    const g = await bootFromFile(path, { routes: [routeTo('a', '/a', upA)] });
    assert.equal((await get(g, '/b')).status, 404);
    writeInPlace(path, text({ routes: [routeTo('a', '/a', upA), routeTo('b', '/b', upB)] }));
    const ms = await eventually(async () => (await get(g, '/b')).status === 200, 1000, '/b is served after an in-place write');
    assert.ok(ms <= 1000, `took ${ms} ms`);
    assert.equal(JSON.parse((await get(g, '/b')).body).name, 'B');
    assert.equal((await get(g, '/a')).status, 200);
  });

  test('a write to a temp file renamed over the config serves the new routes within a second', async () => {
    const path = configPath();
    const g = await bootFromFile(path, { routes: [routeTo('a', '/a', upA)] });
    writeByRename(path, text({ routes: [routeTo('c', '/c', upB)] }));
    await eventually(async () => (await get(g, '/c')).status === 200, 1000, '/c is served after a rename');
    assert.equal((await get(g, '/a')).status, 404);
    // the watcher follows the new file, not the replaced one: a second rename is seen as well
    writeByRename(path, text({ routes: [routeTo('d', '/d', upA)] }));
    await eventually(async () => (await get(g, '/d')).status === 200, 1000, '/d is served after a second rename');
  });

  test('a burst of writes ends on the last version', async () => {
    const path = configPath();
    const g = await bootFromFile(path, { routes: [routeTo('v0', '/v0', upA)] });
    for (let i = 1; i <= 5; i++) writeInPlace(path, text({ routes: [routeTo(`v${i}`, `/v${i}`, upA)] }));
    await eventually(async () => (await get(g, '/v5')).status === 200, 1000, 'the last version is served');
    await delay(300);
    assert.equal((await get(g, '/v5')).status, 200);
    assert.equal((await get(g, '/v4')).status, 404);
  });

  test('an invalid file keeps the old config serving and logs exactly one error line with the path', async () => {
    const path = configPath();
    const g = await bootFromFile(path, { routes: [routeTo('a', '/a', upA)] });
    writeInPlace(path, 'routes:\n  - id: a\n    uri: /a\n    upstream:\n      nodes: {}\n  - id: b\n    uri: /b\n    upstream_id: nope\n');
    await eventually(() => errorLines(g).length > 0, 2000, 'the rejection is logged');
    await delay(400); // time for any second, duplicate reload to show up
    const errs = errorLines(g);
    assert.equal(errs.length, 1, JSON.stringify(errs));
    assert.equal(errs[0].msg, 'config reload rejected; the last good config keeps serving');
    assert.equal(errs[0].source, path);
    assert.deepEqual(errs[0].errors, ['routes[0].upstream.nodes: must have at least 1 entry', 'routes[1].upstream_id: refers to unknown upstream "nope"']);
    assert.equal((await get(g, '/a')).status, 200);
    assert.equal((await get(g, '/b')).status, 404);
    assert.equal(reloadedLines(g).length, 0);
  });

  test('a file that does not parse keeps the old config serving and logs the line and column', async () => {
    const path = configPath();
    const g = await bootFromFile(path, { routes: [routeTo('a', '/a', upA)] });
    writeByRename(path, 'routes:\n  - id: a\n    id: b\n');
    await eventually(() => errorLines(g).length > 0, 2000, 'the rejection is logged');
    await delay(300);
    const errs = errorLines(g);
    assert.equal(errs.length, 1, JSON.stringify(errs));
    assert.deepEqual(errs[0].errors, [`configuration cannot be parsed: ${path}:3:5: Map keys must be unique`]);
    assert.equal((await get(g, '/a')).status, 200);
  });

  test('a deleted file keeps the old config serving, and its return is loaded', async () => {
    const path = configPath();
    const g = await bootFromFile(path, { routes: [routeTo('a', '/a', upA)] });
    rmSync(path);
    await eventually(() => errorLines(g).length > 0, 2000, 'the missing file is logged');
    assert.deepEqual(errorLines(g)[0].errors, [`configuration cannot be read: ${path}: no such file (ENOENT)`]);
    assert.equal((await get(g, '/a')).status, 200);
    writeByRename(path, text({ routes: [routeTo('back', '/back', upB)] }));
    await eventually(async () => (await get(g, '/back')).status === 200, 1000, 'the restored file is served');
  });

  test('fixing an invalid file reloads it', async () => {
    const path = configPath();
    const g = await bootFromFile(path, { routes: [routeTo('a', '/a', upA)] });
    writeInPlace(path, text({ routes: [{ id: 'bad', uri: '/fixed', upstream: { nodes: [] } }] }));
    await eventually(() => errorLines(g).length > 0, 2000, 'the rejection is logged');
    writeInPlace(path, text({ routes: [routeTo('fixed', '/fixed', upB)] }));
    await eventually(async () => (await get(g, '/fixed')).status === 200, 1000, 'the fixed file is served');
    assert.equal((await get(g, '/a')).status, 404);
    assert.equal(errorLines(g).length, 1);
    assert.equal(reloadedLines(g).length, 1);
  });
});

describe('reload under load', () => {
  test('20 clients see only 200s for 3 s while the config flips between two upstreams every 250 ms', async (t) => {
    const path = configPath();
    const version = (up: Upstream, n: number) => text({ gateway: { access_log: false }, routes: [{ id: 'load', uri: '/load/*', upstream: { nodes: { [up.node]: 1 } }, labels: { n: String(n) } }] });
    writeFileSync(path, version(upA, 0));
    const g = await bootGateway({}, { configPath: path });
    cleanups.push(() => g.close());
    const seenA = upA.seen.length;
    const seenB = upB.seen.length;

    const statuses = new Map<string, number>();
    let total = 0;
    const end = Date.now() + 3000;
    const client = async (c: number) => {
      for (let i = 0; Date.now() < end; i++) {
        let key: string;
        try {
          const res = await request(`${g.url}/load/${c}/${i}`, { dispatcher: agent });
          await res.body.text();
          key = String(res.statusCode);
        } catch (err) {
          key = `error ${(err as { code?: string }).code ?? (err as Error).message}`;
        }
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        total++;
      }
    };
    let writes = 0;
    const writer = (async () => {
      while (Date.now() < end) {
        // longer than the store's 100 ms debounce, so each version is loaded and served: at 100 ms,
        // writes fell inside the debounce and only every fifth debounce forced a reload, which on a
        // slow run read an A version every time (B served nothing)
        await delay(250);
        writes++;
        // alternate the upstream, and the way the file is written
        const content = version(writes % 2 === 1 ? upB : upA, writes);
        if (writes % 4 < 2) writeInPlace(path, content);
        else writeByRename(path, content);
      }
    })();
    await Promise.all([...Array.from({ length: 20 }, (_, c) => client(c)), writer]);

    t.diagnostic(`${total} requests, ${writes} writes, ${reloadedLines(g).length} reloads, A ${upA.seen.length - seenA}, B ${upB.seen.length - seenB}`);
    assert.deepEqual([...statuses.entries()], [['200', total]], `every response must be 200 (${total} requests)`);
    assert.ok(total > 200, `only ${total} requests were made`);
    assert.ok(upA.seen.length - seenA > 0, 'upstream A served traffic');
    assert.ok(upB.seen.length - seenB > 0, 'upstream B served traffic');
    assert.ok(reloadedLines(g).length >= 3, `only ${reloadedLines(g).length} reloads for ${writes} writes`);
    assert.equal(errorLines(g).length, 0, JSON.stringify(errorLines(g)));
  });

  test('a request in flight when its route is removed completes on the config it started with', async () => {
    const slow = await startUpstream((req, res) => {
      setTimeout(() => res.end(`slow answer to ${req.url}`), 800);
    }, 'slow');
    cleanups.push(() => slow.close());
    const path = configPath();
    const g = await bootFromFile(path, { routes: [routeTo('slow', '/slow', slow), routeTo('a', '/a', upA)] });
    let settled = false;
    const inflight = request(`${g.url}/slow`, { dispatcher: agent }).then(async (res) => ({ status: res.statusCode, body: await res.body.text() }));
    void inflight.finally(() => (settled = true)).catch(() => undefined);
    await eventually(() => slow.seen.length === 1, 1000, 'the slow upstream has the request');
    writeByRename(path, text({ routes: [routeTo('a', '/a', upA)] }));
    await eventually(() => reloadedLines(g).length === 1, 1000, 'the config is reloaded');
    assert.equal((await get(g, '/slow')).status, 404, 'the route is gone for new requests');
    assert.equal(settled, false, 'the request is still in flight after the reload');
    assert.equal(slow.seen.length, 1);
    assert.deepEqual(await inflight, { status: 200, body: 'slow answer to /slow' });
    assert.equal(slow.seen.length, 1);
  });
});

describe('hot reload of a running `gatehouse start`', () => {
  test('serves edited routes, ignores an invalid edit, then applies the fix, logging one error', async () => {
    const path = configPath();
    const port = await freePort();
    const doc = (routes: unknown[]) => text({ gateway: { listen: `127.0.0.1:${port}` }, routes });
    writeFileSync(path, doc([routeTo('a', '/a', upA)]));
    const gh = await startGatehouse(path, port);
    cleanups.push(() => gh.kill());
    const url = `http://127.0.0.1:${port}`;
    const status = async (p: string) => {
      const res = await request(`${url}${p}`, { dispatcher: agent });
      await res.body.text();
      return res.statusCode;
    };
    assert.equal(await status('/a'), 200);

    writeInPlace(path, doc([routeTo('a', '/a', upA), routeTo('b', '/b', upB)]));
    await eventually(async () => (await status('/b')) === 200, 1000, '/b is served');

    writeInPlace(path, doc([{ id: 'c', uri: '/c', upstream: { nodes: {} } }]));
    await delay(700);
    assert.equal(await status('/a'), 200, 'the old config keeps serving');
    assert.equal(await status('/c'), 404);

    writeByRename(path, doc([routeTo('c', '/c', upB)]));
    await eventually(async () => (await status('/c')) === 200, 1000, 'the fixed file is served');
    assert.equal(await status('/a'), 404);

    gh.child.kill('SIGTERM');
    assert.deepEqual(await gh.exited, { code: 0, signal: null });
    // logs are complete once the process has exited
    const errors = gh.logLines().filter((l) => l.level >= 50);
    assert.equal(errors.length, 1, gh.stdout());
    assert.equal(errors[0].source, path);
    assert.deepEqual(errors[0].errors, ['routes[0].upstream.nodes: must have at least 1 entry']);
    assert.equal(gh.logLines().filter((l) => l.msg === 'config reloaded').length, 2);
  });
});
