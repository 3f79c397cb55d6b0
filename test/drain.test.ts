// Graceful drain of the real `gatehouse start` process: on SIGTERM or SIGINT it stops accepting
// connections, lets in-flight requests finish within gateway.drain_timeout, and exits 0.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { delay, freePort, startGatehouse, startUpstream, tempDir, type GatehouseProcess, type Upstream } from './helpers/harness';

const dir = tempDir('gatehouse-drain-');
let slow: Upstream;
let silent: Upstream;
const procs: GatehouseProcess[] = [];
const agents: Agent[] = [];

before(async () => {
  // answers one second after the request arrives
  slow = await startUpstream((req, res) => {
    setTimeout(() => res.end(`slow answer to ${req.url}`), 1000);
  }, 'slow');
  // never answers
  silent = await startUpstream(() => undefined, 'silent');
});

after(async () => {
  for (const p of procs) await p.kill();
  for (const a of agents) await a.destroy();
  await slow.close();
  await silent.close();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
/** Start `gatehouse start` on a free port with routes to the slow and the silent upstream. */
async function start(gateway: Record<string, unknown> = {}): Promise<{ gh: GatehouseProcess; url: string; port: number }> {
  const port = await freePort();
  const path = join(dir, `gatehouse-${++n}.yaml`);
  const config = {
    gateway: { listen: `127.0.0.1:${port}`, ...gateway },
    routes: [
      { id: 'slow', uri: '/slow', upstream: { nodes: { [slow.node]: 1 } } },
      { id: 'silent', uri: '/silent', upstream: { nodes: { [silent.node]: 1 }, timeout: { read: 30 } } },
      { id: 'quick', uri: '/quick', plugins: { mocking: { response_example: 'quick' } } },
    ],
  };
  writeFileSync(path, JSON.stringify(config));
  const gh = await startGatehouse(path, port);
  procs.push(gh);
  return { gh, url: `http://127.0.0.1:${port}`, port };
}

function newAgent(): Agent {
  const a = new Agent({ keepAliveTimeout: 10000 });
  agents.push(a);
  return a;
}

/** Whether a new TCP connection to the port is refused right now. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await delay(10);
  }
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  describe(`${signal}`, () => {
    test(`refuses new connections, finishes the in-flight request with 200, and exits 0`, async () => {
      const { gh, url, port } = await start();
      const seen = slow.seen.length;
      const events: string[] = [];
      const inflight = request(`${url}/slow`, { dispatcher: newAgent() }).then(async (res) => {
        const r = { status: res.statusCode, connection: res.headers.connection, body: await res.body.text() };
        events.push('response');
        return r;
      });
      void gh.exited.then(() => events.push('exit'));
      await until(() => slow.seen.length === seen + 1, 2000, 'the slow upstream has the request');

      gh.child.kill(signal);
      const refusedAfter = await until(() => refused(port), 1000, 'new connections are refused');
      assert.ok(refusedAfter < 1000);
      assert.deepEqual(events, [], 'neither the response nor the exit came before the upstream answered');

      assert.deepEqual(await inflight, { status: 200, connection: 'close', body: 'slow answer to /slow' });
      assert.deepEqual(await gh.exited, { code: 0, signal: null });
      assert.deepEqual(events, ['response', 'exit']);
      const lines = gh.logLines();
      assert.ok(lines.some((l) => l.msg === 'draining' && l.signal === signal), gh.stdout());
      assert.ok(lines.some((l) => l.msg === 'gatehouse stopped'), gh.stdout());
      assert.equal(lines.filter((l) => l.level >= 40).length, 0, gh.stdout());
    });

    test('exits 0 at once when only idle keep-alive connections are open', async () => {
      const { gh, url } = await start();
      const agent = newAgent();
      const res = await request(`${url}/quick`, { dispatcher: agent });
      assert.equal(await res.body.text(), 'quick');
      // the agent keeps its connection open and idle
      const t0 = Date.now();
      gh.child.kill(signal);
      assert.deepEqual(await gh.exited, { code: 0, signal: null });
      assert.ok(Date.now() - t0 < 1500, `took ${Date.now() - t0} ms`);
    });

    test('with drain_timeout 1 and an upstream that never answers, exits 0 within about 2 s', async (t) => {
      const { gh, url } = await start({ drain_timeout: 1 });
      const seen = silent.seen.length;
      const inflight = request(`${url}/silent`, { dispatcher: newAgent() }).then(
        async (res) => ({ status: res.statusCode, body: await res.body.text() }),
        (err: Error) => err,
      );
      await until(() => silent.seen.length === seen + 1, 2000, 'the silent upstream has the request');

      const t0 = Date.now();
      gh.child.kill(signal);
      assert.deepEqual(await gh.exited, { code: 0, signal: null });
      const took = Date.now() - t0;
      t.diagnostic(`exited ${took} ms after ${signal}`);
      assert.ok(took >= 900, `exited after ${took} ms, before drain_timeout`);
      assert.ok(took <= 2000, `exited after ${took} ms, later than drain_timeout + 1 s`);
      // the connection was closed under the unfinished request
      assert.ok((await inflight) instanceof Error, 'the unfinished request fails');
      const warn = gh.logLines().filter((l) => l.msg === 'drain timeout: closing remaining connections');
      assert.equal(warn.length, 1, gh.stdout());
    });
  });
}
