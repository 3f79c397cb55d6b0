// gateway.workers: several processes (node:cluster) share the listeners; SIGTERM drains them all;
// metrics, secret refreshes and a generated admin key are shared between them through the primary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { freePort, startGatehouse, startUpstream, tempDir, delay, type GatehouseProcess } from './helpers/harness';
import { startVaultServer } from './servers/vault';

test('workers: 2 runs two worker processes that both serve, and SIGTERM stops them all with exit 0', { timeout: 60000 }, async () => {
  const port = await freePort();
  const dir = tempDir();
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, `gateway: { listen: "127.0.0.1:${port}", workers: 2 }\nroutes:\n  - id: hi\n    uri: /hi\n    plugins: { mocking: { response_example: hi } }\n`);
  const gw = await startGatehouse(file, port);
  try {
    // both workers must be up before counting; new connections are spread over them
    const seen = new Set<number>();
    for (let round = 0; round < 40 && seen.size < 2; round++) {
      const agent = new Agent({ pipelining: 0 });
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          const r = await request(`http://127.0.0.1:${port}/hi`, { dispatcher: agent, reset: true });
          assert.equal(await r.body.text(), 'hi');
        }),
      );
      await agent.close();
      await delay(50);
      for (const l of gw.logLines()) if (l.type === 'access' && typeof l.worker === 'number') seen.add(l.worker);
    }
    assert.deepEqual([...seen].sort(), [1, 2], 'both workers answered requests');
    gw.child.kill('SIGTERM');
    const { code } = await gw.exited;
    assert.equal(code, 0);
    await assert.rejects(request(`http://127.0.0.1:${port}/hi`), /ECONNREFUSED/);
  } finally {
    await gw.kill();
  }
});

// ---- workers share what a client of any one worker sees: metrics, secret refreshes, the admin key

/** Poll `cond` every 25 ms until it is true; throw `what` after `ms`. */
async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await delay(25);
  }
}

/** Wait until both workers log that their Admin API listens (stdout lines are flushed within 200 ms). */
async function bothAdminsUp(gw: GatehouseProcess): Promise<void> {
  const up = () => new Set(gw.logLines().filter((l) => l.msg === 'gatehouse admin API listening').map((l) => l.worker));
  await until(() => up().size === 2, `both workers' Admin API listening:\n${gw.stdout()}${gw.stderr()}`);
}

/** One request on a connection of its own (`connection: close`), so the cluster hands it to the next worker. */
async function fresh(url: string, opts: { method?: 'GET' | 'POST'; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  const r = await request(url, { method: opts.method ?? 'GET', headers: opts.headers, reset: true });
  return { status: r.statusCode, body: await r.body.text() };
}

const accessLines = (gw: GatehouseProcess, route: string) => gw.logLines().filter((l) => l.type === 'access' && l.route === route);

/** `gatehouse start` with workers: 2, an Admin API (for /metrics) and one mocked route /hi. */
async function twoWorkersWithMetrics(): Promise<{ gw: GatehouseProcess; port: number; adminPort: number }> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = join(tempDir(), 'gatehouse.yaml');
  writeFileSync(
    file,
    `gateway: { listen: "127.0.0.1:${port}", workers: 2 }\nadmin: { listen: "127.0.0.1:${adminPort}", key: "metrics-test-admin-key" }\n` +
      `routes:\n  - id: hi\n    uri: /hi\n    plugins: { mocking: { response_example: hi } }\n`,
  );
  const gw = await startGatehouse(file, port);
  return { gw, port, adminPort };
}

test('workers: 2 — /metrics on any worker counts the requests of every worker', { timeout: 60000 }, async () => {
  const { gw, port, adminPort } = await twoWorkersWithMetrics();
  try {
    await bothAdminsUp(gw);
    const K = 40;
    for (let i = 0; i < K; i += 8) {
      const batch = await Promise.all(Array.from({ length: 8 }, () => fresh(`http://127.0.0.1:${port}/hi`)));
      for (const r of batch) assert.deepEqual(r, { status: 200, body: 'hi' });
    }
    // the access line is written where the counter is incremented: all K are counted once all K are logged
    await until(() => accessLines(gw, 'hi').length === K, `${K} access lines`);
    const served = new Map<number, number>();
    for (const l of accessLines(gw, 'hi')) served.set(l.worker, (served.get(l.worker) ?? 0) + 1);
    assert.deepEqual([...served.keys()].sort(), [1, 2], 'both workers served some of the requests');
    assert.ok(Math.max(...served.values()) < K, 'so no single worker counted them all');
    // consecutive connections are handed to the workers in turn: both answer /metrics
    for (let i = 0; i < 8; i++) {
      const r = await fresh(`http://127.0.0.1:${adminPort}/metrics`);
      assert.equal(r.status, 200);
      assert.equal(/^gatehouse_http_requests_total\{route="hi",status="200"\} (\d+)$/m.exec(r.body)?.[1], String(K), `requests counter of every worker (ask ${i}):\n${r.body}`);
      assert.equal(/^gatehouse_http_request_duration_seconds_count\{route="hi"\} (\d+)$/m.exec(r.body)?.[1], String(K), 'latency histogram of every worker');
      assert.equal(r.body.match(/^# TYPE gatehouse_http_requests_total counter$/gm)?.length, 1, 'one metric family, not one per worker');
    }
  } finally {
    await gw.kill();
  }
});

test('workers: 2 — a worker that does not send its metrics within 2 s is left out of that /metrics answer', { timeout: 60000 }, async () => {
  const { gw, port, adminPort } = await twoWorkersWithMetrics();
  try {
    await bothAdminsUp(gw);
    const K = 16;
    for (let i = 0; i < K; i += 8) await Promise.all(Array.from({ length: 8 }, () => fresh(`http://127.0.0.1:${port}/hi`)));
    await until(() => accessLines(gw, 'hi').length === K, `${K} access lines`);
    const served = [1, 2].map((w) => accessLines(gw, 'hi').filter((l) => l.worker === w).length);
    assert.ok(served.every((n) => n > 0 && n < K), `both workers served some: ${served}`);
    const count = (body: string) => Number(/^gatehouse_http_requests_total\{route="hi",status="200"\} (\d+)$/m.exec(body)?.[1]);
    // the workers are the primary's children (Linux /proc); stop one of them
    const pid = gw.child.pid!;
    const workers = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    assert.equal(workers.length, 2, `worker pids: ${workers}`);
    const stopped = workers[1];
    process.kill(stopped, 'SIGSTOP');
    const answered: Array<{ status: number; value: number; ms: number }> = [];
    let all: Promise<unknown>;
    try {
      const t0 = Date.now();
      // one of these connections may be handed to the stopped worker: it answers after SIGCONT
      all = Promise.all(
        Array.from({ length: 3 }, () =>
          fresh(`http://127.0.0.1:${adminPort}/metrics`).then((r) => answered.push({ status: r.status, value: count(r.body), ms: Date.now() - t0 })),
        ),
      );
      await until(() => answered.length >= 2, '/metrics answered while a worker is stopped', 8000);
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
    await all;
    const partial = answered.filter((a) => a.value !== K);
    assert.ok(partial.length >= 2, `answers without the stopped worker: ${JSON.stringify(answered)}`);
    for (const a of partial) {
      assert.equal(a.status, 200);
      assert.ok(served.includes(a.value), `the running worker's own count (${served}): ${a.value}`);
      assert.ok(a.ms >= 1900 && a.ms < 5000, `answered after the 2 s timeout: ${a.ms} ms`);
    }
    await until(() => gw.logLines().some((l) => l.msg === 'workers did not send their metrics in time; /metrics answered without them'), 'the primary says a worker was left out');
    // back: every answer counts both again
    for (let i = 0; i < 4; i++) assert.equal(count((await fresh(`http://127.0.0.1:${adminPort}/metrics`)).body), K);
  } finally {
    await gw.kill();
  }
});

test('workers: 2 — POST /admin/secrets/{m}/{id}/refresh on one worker refreshes the secret in every worker', { timeout: 60000 }, async () => {
  const token = 'workers-test-vault-root-token';
  const vault = await startVaultServer({ rootToken: token });
  const vaultCall = async (path: string, body: unknown) => {
    const r = await request(`${vault.url}/v1/${path}`, { method: 'POST', headers: { 'x-vault-token': token }, body: JSON.stringify(body) });
    await r.body.text();
    assert.ok(r.statusCode < 300, `vault ${path}: ${r.statusCode}`);
  };
  await vaultCall('sys/mounts/apisix', { type: 'kv', options: { version: '1' } });
  await vaultCall('apisix/app', { msg: 'first-value' });
  // the route sends the secret upstream and the upstream answers with it (a response field may not
  // hold a reference: the value would go to any client)
  const up = await startUpstream((req, res) => res.end(String(req.headers['x-msg'])));
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = join(tempDir(), 'gatehouse.yaml');
  writeFileSync(
    file,
    `gateway: { listen: "127.0.0.1:${port}", workers: 2 }\n` +
      `admin: { listen: "127.0.0.1:${adminPort}", key: "refresh-test-admin-key" }\n` +
      // a long ttl: without a forced refresh nothing would read Vault again during the test
      `secret_cache: { ttl: 3600 }\n` +
      `secrets:\n  - { id: vault/x, uri: "${vault.url}", prefix: apisix, kv_version: 1, token: "$env://GH_WORKERS_VAULT_TOKEN" }\n` +
      `routes:\n  - id: msg\n    uri: /msg\n    plugins: { proxy-rewrite: { headers: { set: { x-msg: "$secret://vault/x/app/msg" } } } }\n    upstream: { nodes: { "${up.node}": 1 } }\n`,
  );
  const gw = await startGatehouse(file, port, { GH_WORKERS_VAULT_TOKEN: token });
  const reads = () => vault.count('apisix/app', 'GET');
  try {
    await bothAdminsUp(gw);
    // warm: both workers serve the first value
    for (let i = 0; i < 8; i++) assert.deepEqual(await fresh(`http://127.0.0.1:${port}/msg`), { status: 200, body: 'first-value' });
    await until(() => new Set(accessLines(gw, 'msg').map((l) => l.worker)).size === 2, 'both workers served /msg');
    assert.equal(reads(), 2, 'one Vault read per worker at start');

    await vaultCall('apisix/app', { msg: 'second-value' });
    const r = await fresh(`http://127.0.0.1:${adminPort}/admin/secrets/vault/x/refresh`, { method: 'POST', headers: { 'x-api-key': 'refresh-test-admin-key' } });
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).refreshed, 1);
    // the worker that took the call refreshed; the bus made the other one refresh too
    await until(() => reads() === 4, `a Vault read by each worker after the refresh (reads: ${reads()})`, 5000);
    await delay(300);
    assert.equal(reads(), 4, 'exactly one more read per worker');

    // both workers now serve the new value, an hour before the ttl would have picked it up
    const before = accessLines(gw, 'msg').length;
    for (let i = 0; i < 8; i++) assert.deepEqual(await fresh(`http://127.0.0.1:${port}/msg`), { status: 200, body: 'second-value' }, `request ${i} after the refresh`);
    await until(() => accessLines(gw, 'msg').length === before + 8, 'access lines of the requests after the refresh');
    assert.deepEqual([...new Set(accessLines(gw, 'msg').slice(before).map((l) => l.worker))].sort(), [1, 2], 'both workers served the new value');
    assert.ok(gw.logLines().some((l) => l.msg === 'secret refresh requested by another gateway process' && l.resource === 'vault/x'), 'the other worker logged the relayed command');
    for (const secret of [token, 'first-value', 'second-value']) assert.equal(gw.stdout().includes(secret) || gw.stderr().includes(secret), false, 'no secret in the logs');
  } finally {
    await gw.kill();
    await vault.close();
    await up.close();
  }
});

test('workers: 2 without admin.key — one generated key, printed once, accepted by every worker', { timeout: 60000 }, async () => {
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = join(tempDir(), 'gatehouse.yaml');
  writeFileSync(file, `gateway: { listen: "127.0.0.1:${port}", workers: 2 }\nadmin: { listen: "127.0.0.1:${adminPort}" }\n`);
  const gw = await startGatehouse(file, port);
  try {
    await bothAdminsUp(gw);
    await delay(300);
    const lines = gw.stderr().split('\n').filter((l) => l.includes('admin key'));
    assert.equal(lines.length, 1, `printed once:\n${gw.stderr()}`);
    const key = /^gatehouse: no admin\.key configured; this run's admin key \(X-API-KEY\) is (\S+)$/.exec(lines[0])?.[1];
    assert.ok(key, lines[0]);
    // consecutive connections go to the workers in turn: each one accepts the key
    for (let i = 0; i < 10; i++) {
      const r = await fresh(`http://127.0.0.1:${adminPort}/admin/routes`, { headers: { 'x-api-key': key } });
      assert.equal(r.status, 200, `request ${i}: ${r.body}`);
    }
    for (let i = 0; i < 4; i++) assert.equal((await fresh(`http://127.0.0.1:${adminPort}/admin/routes`, { headers: { 'x-api-key': `${key}x` } })).status, 401);
    assert.equal(gw.stdout().includes(key), false, 'the key is never in the logs');
    // the key reached the workers over IPC: no process's environment holds it (/proc/<pid>/environ
    // shows the environment a process was started with, whatever it deletes later)
    const pid = gw.child.pid!;
    const workers = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    assert.equal(workers.length, 2, `worker pids: ${workers}`);
    for (const p of [pid, ...workers]) {
      const environ = readFileSync(`/proc/${p}/environ`);
      assert.ok(environ.length > 0, `environment of ${p} readable`);
      assert.equal(environ.includes(key), false, `the key is not in the environment of process ${p === pid ? 'primary' : 'worker'} ${p}`);
    }
  } finally {
    await gw.kill();
  }
});

test('workers: 2 — an Admin write answered by one worker is served by every worker (each reloads the data file the other wrote)', { timeout: 60000 }, async () => {
  const { gw, port, adminPort } = await twoWorkersWithMetrics();
  try {
    await bothAdminsUp(gw);
    for (const [i, id] of ['w1', 'w2', 'w3'].entries()) {
      const put = await request(`http://127.0.0.1:${adminPort}/admin/routes/${id}`, {
        method: 'PUT',
        headers: { 'x-api-key': 'metrics-test-admin-key' },
        body: JSON.stringify({ uri: `/${id}`, plugins: { mocking: { response_example: `${id}-${i}` } } }),
        reset: true,
      });
      await put.body.text();
      assert.equal(put.statusCode, 201);
      // new connections go to the workers in turn: all of them must serve it (3 s: a loaded machine)
      await until(async () => {
        const got = await Promise.all(Array.from({ length: 6 }, () => fresh(`http://127.0.0.1:${port}/${id}`)));
        return got.every((r) => r.status === 200 && r.body === `${id}-${i}`);
      }, `${id} served by every worker`, 3000);
    }
    // (access lines reach stdout asynchronously: wait for them)
    await until(() => new Set(accessLines(gw, 'w3').map((l) => l.worker)).size === 2, `both workers served the new route:\n${gw.stdout()}`, 3000);
  } finally {
    await gw.kill();
  }
});
