// Cluster mode on a real etcd (Debian's etcd-server, started on free ports with a temp data dir):
// three gateway processes share one prefix; a write on one is served by all within 1 s; with etcd
// killed they keep serving and Admin writes answer 503; when it returns, writes work again and all
// nodes converge. Also: a node cut off while the others write and etcd compacts resyncs; plaintext
// secret fields are encrypted at rest; a secret refresh on one node refreshes all.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { Etcd3 } from 'etcd3';
import NodeVault from 'node-vault';
import { startEtcd, startRelay, type EtcdServer } from './helpers/etcd';
import { bootGateway, captureLogger, delay, eventually, freePort, runCli, startGatehouse, startUpstream, tempDir, type GatehouseProcess, type Upstream } from './helpers/harness';
import { startVaultServer, type VaultServer } from './servers/vault';

const ADMIN_KEY = 'cluster-admin-key';
const ENC_KEY = randomBytes(32).toString('hex');
const PLANTED_KEY = `planted-consumer-key-${randomBytes(6).toString('hex')}`;
const VAULT_TOKEN = `hvs.planted-${randomBytes(8).toString('hex')}`;

let etcd: EtcdServer;
let upstream: Upstream;
let vault: VaultServer;

before(async () => {
  etcd = await startEtcd();
  upstream = await startUpstream();
  vault = await startVaultServer({ rootToken: VAULT_TOKEN });
  const v = NodeVault({ endpoint: vault.url, token: VAULT_TOKEN, requestOptions: { timeout: 5000 } });
  await v.mount({ mount_point: 'kv1', type: 'kv', options: { version: '1' } });
  await v.write('kv1/app', { greeting: 'hello v1' });
});

after(async () => {
  await etcd?.close();
  await upstream?.close();
  await vault?.close();
});

/** One fresh connection per call, so nothing is pooled across an outage. */
async function call(url: string, init: { method?: string; body?: unknown; key?: boolean } = {}): Promise<{ status: number; text: string; ms: number }> {
  const t0 = Date.now();
  const agent = new Agent({ pipelining: 0 });
  try {
    const r = await request(url, {
      method: (init.method ?? 'GET') as 'GET',
      headers: { ...(init.key ? { 'x-api-key': ADMIN_KEY } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
      dispatcher: agent,
      headersTimeout: 10000,
    });
    return { status: r.statusCode, text: await r.body.text(), ms: Date.now() - t0 };
  } finally {
    await agent.close();
  }
}


/**
 * `clients` sequential clients per URL until stopped; every answer but a 200 is a failure. Keep-alive
 * connections: the gateways stay up, only etcd goes away.
 */
function steadyLoad(urls: readonly string[], clients: number): { outage(on: boolean): void; stop(): Promise<{ total: number; duringOutage: number; failed: string[] }> } {
  const agent = new Agent({ connections: clients });
  let stopped = false;
  let down = false;
  let total = 0;
  let duringOutage = 0;
  const failed: string[] = [];
  let stopping: Promise<{ total: number; duringOutage: number; failed: string[] }> | undefined;
  const runs = urls.flatMap((url) =>
    Array.from({ length: clients }, async () => {
      while (!stopped) {
        try {
          const r = await request(url, { dispatcher: agent, headersTimeout: 10000, bodyTimeout: 10000 });
          await r.body.text();
          if (r.statusCode !== 200) failed.push(`${url}: ${r.statusCode}`);
        } catch (err) {
          failed.push(`${url}: ${(err as { code?: string }).code ?? (err as Error).message}`);
        }
        total++;
        if (down) duringOutage++;
      }
    }),
  );
  return {
    outage: (on) => void (down = on),
    stop: () =>
      (stopping ??= (async () => {
        stopped = true;
        await Promise.all(runs);
        await agent.close();
        return { total, duringOutage, failed };
      })()),
  };
}

interface Node {
  proc: GatehouseProcess;
  url: string;
  admin: string;
}

async function startNode(prefix: string, data = ''): Promise<Node> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const dir = tempDir();
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(
    file,
    `gateway: { listen: "127.0.0.1:${port}" }
admin: { listen: "127.0.0.1:${adminPort}", key: ${ADMIN_KEY} }
config_store:
  type: etcd
  endpoints: ["${etcd.endpoint}"]
  prefix: ${prefix}
  encryption_key: $env://GH_TEST_ETCD_KEY
secret_cache: { ttl: 300 }
${data}`,
  );
  const proc = await startGatehouse(file, port, { GH_TEST_ETCD_KEY: ENC_KEY, GH_TEST_VAULT_TOKEN: VAULT_TOKEN, NO_PROXY: '127.0.0.1,localhost' });
  return { proc, url: `http://127.0.0.1:${port}`, admin: `http://127.0.0.1:${adminPort}/apisix/admin` };
}

const served = (n: Node, path: string, body: string) => async () => {
  const r = await call(n.url + path);
  return r.status === 200 && r.text.includes(body);
};

test('three gateway processes on one etcd: writes reach all within 1 s, etcd outage keeps traffic and answers writes 503, all converge after', { timeout: 180000 }, async () => {
  const prefix = '/gh-cluster';
  const nodes: Node[] = [];
  let load: ReturnType<typeof steadyLoad> | undefined;
  try {
    // node 1's file seeds the empty prefix; the others' files have no data sections
    nodes.push(await startNode(prefix, `routes:\n  - id: seeded\n    uri: /seeded\n    plugins: { mocking: { response_example: seeded } }\n`));
    nodes.push(await startNode(prefix));
    nodes.push(await startNode(prefix));
    for (const n of nodes) assert.ok(await served(n, '/seeded', 'seeded')(), 'every node serves the seeded route');

    // a write on node 2 is served by nodes 1 and 3 within 1 s
    const route = { uri: '/r1', upstream: { type: 'roundrobin', nodes: { [upstream.node]: 1 } } };
    const put = await call(`${nodes[1].admin}/routes/r1`, { method: 'PUT', body: route, key: true });
    assert.equal(put.status, 201, put.text);
    const lag = await Promise.all([nodes[0], nodes[2]].map((n) => eventually('r1 on another node', served(n, '/r1', '"url":"/r1"'), 5000)));
    for (const ms of lag) assert.ok(ms < 1000, `a write reached another node in ${ms} ms (limit 1000)`);
    process.stdout.write(`# propagation to the other nodes: ${lag.join(' ms, ')} ms\n`);

    // a consumer with a literal key: encrypted at rest in etcd, shown as ******, and it works on every node
    const kr = { uri: '/private', plugins: { 'key-auth': {} }, upstream: { type: 'roundrobin', nodes: { [upstream.node]: 1 } } };
    assert.equal((await call(`${nodes[0].admin}/routes/private`, { method: 'PUT', body: kr, key: true })).status, 201);
    const cons = await call(`${nodes[0].admin}/consumers`, { method: 'PUT', body: { username: 'jack', plugins: { 'key-auth': { key: PLANTED_KEY } } }, key: true });
    assert.equal(cons.status, 201, cons.text);
    assert.ok(!cons.text.includes(PLANTED_KEY) && cons.text.includes('******'), 'the Admin API answers ******');
    for (const n of nodes) {
      await eventually('jack authenticates on every node', async () => {
        const agent = new Agent({ pipelining: 0 });
        const r = await request(`${n.url}/private`, { headers: { apikey: PLANTED_KEY }, dispatcher: agent });
        await r.body.text();
        await agent.close();
        return r.statusCode === 200;
      }, 1000);
    }
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      const stored = await client.get(`${prefix}/consumers/jack`).string();
      assert.ok(stored !== null && !stored.includes(PLANTED_KEY), 'the key is not stored in plaintext');
      assert.match(JSON.parse(stored).plugins['key-auth'].key, /^\$enc:v1:[A-Za-z0-9+/=]+$/);
      const all = await client.getAll().prefix(prefix).strings();
      assert.ok(!Object.values(all).some((v) => v.includes(PLANTED_KEY)), 'no key under the prefix holds the plaintext');
    } finally {
      client.close();
    }

    // a secret refresh on node 3 refreshes the value on every node
    const sec = await call(`${nodes[2].admin}/secrets/vault/main`, { method: 'PUT', body: { uri: vault.url, prefix: 'kv1', kv_version: 1, token: '$env://GH_TEST_VAULT_TOKEN' }, key: true });
    assert.equal(sec.status, 201, sec.text);
    // sent upstream, whose echo shows it (a response field may not hold a reference)
    const greet = { uri: '/greet', plugins: { 'proxy-rewrite': { headers: { set: { 'x-greeting': '$secret://vault/main/app/greeting' } } } }, upstream: { type: 'roundrobin', nodes: { [upstream.node]: 1 } } };
    assert.equal((await call(`${nodes[2].admin}/routes/greet`, { method: 'PUT', body: greet, key: true })).status, 201);
    for (const n of nodes) await eventually('greet v1 everywhere', served(n, '/greet', 'hello v1'), 3000);
    const v = NodeVault({ endpoint: vault.url, token: VAULT_TOKEN, requestOptions: { timeout: 5000 } });
    await v.write('kv1/app', { greeting: 'hello v2' });
    assert.ok(await served(nodes[0], '/greet', 'hello v1')(), 'the cached value stands until refreshed (ttl 300 s)');
    const readsBefore = vault.count('kv1/app', 'GET');
    const refresh = await call(`${nodes[2].admin}/secrets/vault/main/refresh`, { method: 'POST', key: true });
    assert.equal(refresh.status, 200, refresh.text);
    assert.equal(JSON.parse(refresh.text).published, true);
    const rl = await Promise.all(nodes.map((n) => eventually('greet v2 everywhere after one refresh', served(n, '/greet', 'hello v2'), 3000)));
    for (const ms of rl) assert.ok(ms < 1000, `refresh reached a node in ${ms} ms`);
    assert.equal(vault.count('kv1/app', 'GET') - readsBefore, 3, 'each of the three nodes read Vault once');

    // etcd outage: traffic continues on every node (steady load, from before etcd goes until every
    // node has converged after it returns); writes answer 503; reads still answer
    load = steadyLoad(nodes.map((n) => n.url + '/r1'), 3);
    await delay(300);
    await etcd.kill();
    load.outage(true);
    await delay(2500);
    const w = await call(`${nodes[2].admin}/routes/r2`, { method: 'PUT', body: { uri: '/r2', plugins: { mocking: { response_example: 'r2' } } }, key: true });
    assert.equal(w.status, 503, w.text);
    assert.match(JSON.parse(w.text).error_msg, /etcd/);
    assert.ok(w.ms < 5000, `the 503 came in ${w.ms} ms`);
    assert.equal((await call(`${nodes[2].admin}/routes/r1`, { key: true })).status, 200, 'reads are served from the last config');
    assert.equal((await call(nodes[2].url + '/r2')).status, 404, 'the refused write did not apply');

    // etcd back: writes work again and every node converges
    await etcd.restart();
    load.outage(false);
    await eventually('a write succeeds after etcd returns', async () => (await call(`${nodes[2].admin}/routes/r2`, { method: 'PUT', body: { uri: '/r2', plugins: { mocking: { response_example: 'r2' } } }, key: true })).status === 201, 30000);
    for (const n of nodes) await eventually('r2 everywhere after the outage', served(n, '/r2', 'r2'), 5000);
    const traffic = await load.stop();
    assert.deepEqual(traffic.failed, [], `requests that failed around the outage (of ${traffic.total})`);
    assert.ok(traffic.duringOutage >= 100, `only ${traffic.duringOutage} requests while etcd was down`);
    process.stdout.write(`# steady load: ${traffic.total} requests from 9 clients, ${traffic.duringOutage} while etcd was down, 0 failed; a write answered 503 in ${w.ms} ms\n`);
    // and once reconnected, propagation is back under a second
    assert.equal((await call(`${nodes[0].admin}/routes/r3`, { method: 'PUT', body: { uri: '/r3', plugins: { mocking: { response_example: 'r3' } } }, key: true })).status, 201);
    const lag2 = await Promise.all([nodes[1], nodes[2]].map((n) => eventually('r3', served(n, '/r3', 'r3'), 5000)));
    for (const ms of lag2) assert.ok(ms < 1000, `after the outage a write reached another node in ${ms} ms`);
    // DELETE propagates too
    assert.equal((await call(`${nodes[1].admin}/routes/r3`, { method: 'DELETE', key: true })).status, 200);
    for (const n of [nodes[0], nodes[2]]) await eventually('r3 gone', async () => (await call(n.url + '/r3')).status === 404, 1000);

    // nothing any node logged holds a planted secret
    for (const n of nodes) {
      const out = n.proc.stdout() + n.proc.stderr();
      assert.ok(!out.includes(PLANTED_KEY) && !out.includes(VAULT_TOKEN) && !out.includes(ENC_KEY), 'logs hold no secret');
    }
  } finally {
    await load?.stop();
    for (const n of nodes) await n.proc.kill();
  }
});

test('a node cut off while others write and etcd compacts its history resyncs when it is back', { timeout: 120000 }, async () => {
  const prefix = '/gh-compact';
  const relay = await startRelay(etcd.clientPort);
  const dir = tempDir();
  const mk = (name: string, endpoint: string) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, `admin: { key: ${ADMIN_KEY} }\nconfig_store: { type: etcd, endpoints: ["${endpoint}"], prefix: ${prefix} }\nroutes:\n  - { id: old, uri: /old, plugins: { mocking: { response_example: old } } }\n`);
    return file;
  };
  const logA = captureLogger();
  const a = await bootGateway({}, { configPath: mk('a', `http://127.0.0.1:${relay.port}`), logger: logA.logger, adminListen: '127.0.0.1:0' });
  const b = await bootGateway({}, { configPath: mk('b', etcd.endpoint), adminListen: '127.0.0.1:0' });
  const client = new Etcd3({ hosts: etcd.endpoint });
  try {
    assert.equal(await request(`${a.url}/old`).then((r) => r.body.text()), 'old');
    relay.cut();
    await eventually('A notices', async () => logA.text().includes('etcd'), 5000);
    const admin = `http://127.0.0.1:${b.gw.adminAddress!.port}/admin`;
    for (let i = 0; i < 5; i++) {
      const r = await call(`${admin}/routes/new${i}`, { method: 'PUT', body: { uri: `/new${i}`, plugins: { mocking: { response_example: `new${i}` } } }, key: true });
      assert.equal(r.status, 201, r.text);
    }
    assert.equal((await call(`${admin}/routes/old`, { method: 'DELETE', key: true })).status, 200);
    const rev = (await client.get(`${prefix}/routes/new4`).exec()).header.revision;
    await client.kv.compact({ revision: rev, physical: true } as never);
    // A kept serving its last config meanwhile
    assert.equal(await request(`${a.url}/old`).then((r) => r.body.text()), 'old');
    assert.equal((await request(`${a.url}/new4`)).statusCode, 404);
    relay.restore();
    await eventually('A resynced after the compaction', async () => {
      const r1 = await request(`${a.url}/new4`);
      const r2 = await request(`${a.url}/old`);
      const t = await r1.body.text();
      await r2.body.text();
      return t === 'new4' && r2.statusCode === 404;
    }, 15000);
    for (let i = 0; i < 4; i++) assert.equal(await request(`${a.url}/new${i}`).then((r) => r.body.text()), `new${i}`);
    assert.match(logA.text(), /resynced/);
    process.stdout.write(`# node A's store log: ${logA.lines.filter((l) => /etcd/.test(String(l.msg))).map((l) => l.msg).join(' | ')}\n`);
    // and A follows live changes again
    assert.equal((await call(`${admin}/routes/after`, { method: 'PUT', body: { uri: '/after', plugins: { mocking: { response_example: 'after' } } }, key: true })).status, 201);
    await eventually('A follows live writes after the resync', async () => (await request(`${a.url}/after`).then((r) => r.body.text())) === 'after', 1000);
  } finally {
    client.close();
    await a.close();
    await b.close();
    await relay.close();
  }
});

test('etcd store errors: an encrypted field without the right key, a bad value in etcd, a bad encryption_key', { timeout: 60000 }, async () => {
  const prefix = '/gh-errors';
  const dir = tempDir();
  const client = new Etcd3({ hosts: etcd.endpoint });
  try {
    const key = randomBytes(32).toString('hex');
    process.env.GH_TEST_ETCD_KEY_A = key;
    process.env.GH_TEST_ETCD_KEY_B = randomBytes(32).toString('base64');
    process.env.GH_TEST_ETCD_KEY_SHORT = 'too-short';
    const file = (name: string, keyVar?: string) => {
      const f = join(dir, `${name}.yaml`);
      writeFileSync(f, `admin: { key: ${ADMIN_KEY} }\nconfig_store: { type: etcd, endpoints: ["${etcd.endpoint}"], prefix: ${prefix}${keyVar ? `, encryption_key: "$env://${keyVar}"` : ''} }\n`);
      return f;
    };
    const a = await bootGateway({}, { configPath: file('a', 'GH_TEST_ETCD_KEY_A'), adminListen: '127.0.0.1:0' });
    try {
      const admin = `http://127.0.0.1:${a.gw.adminAddress!.port}/admin`;
      const kate = await call(`${admin}/consumers/kate`, { method: "PUT", body: { plugins: { "key-auth": { key: PLANTED_KEY } } }, key: true });
      assert.equal(kate.status, 201, kate.text + a.logs.text());
      // the same data under another key (or none) cannot be opened: the node refuses to start, naming the etcd key
      for (const v of ['GH_TEST_ETCD_KEY_B', undefined]) {
        await assert.rejects(bootGateway({}, { configPath: file(`b${v ?? ''}`, v) }), (err: Error) => {
          assert.match(err.message, new RegExp(`${prefix}/consumers/kate: plugins\\.key-auth\\.key`));
          assert.ok(!err.message.includes(PLANTED_KEY));
          return true;
        });
      }
      await assert.rejects(bootGateway({}, { configPath: file('short', 'GH_TEST_ETCD_KEY_SHORT') }), /config_store\.encryption_key: the key must be 32 bytes/);
      // a value someone wrote by hand that is not JSON: the reload is refused, the last good config keeps serving
      await call(`${admin}/routes/ok`, { method: 'PUT', body: { uri: '/ok', plugins: { mocking: { response_example: 'ok' } } }, key: true });
      await client.put(`${prefix}/routes/broken`).value('{not json');
      await eventually('the reload is refused, naming the etcd key', async () => /config reload rejected/.test(a.logs.text()) && a.logs.text().includes(`${prefix}/routes/broken: not a JSON object`), 3000);
      assert.equal(await request(`${a.url}/ok`).then((r) => r.body.text()), 'ok');
      // writes are refused too while the stored data is unusable (nothing half-applies)
      const w = await call(`${admin}/routes/more`, { method: 'PUT', body: { uri: '/more', plugins: { mocking: { response_example: 'more' } } }, key: true });
      assert.equal(w.status, 500, w.text);
      assert.match(JSON.parse(w.text).error_msg, new RegExp(`configuration cannot be read: etcd key ${prefix}/routes/broken: not a JSON object`));
      await client.delete().key(`${prefix}/routes/broken`);
    } finally {
      await a.close();
    }
  } finally {
    client.close();
  }
});

test('gatehouse validate reads an etcd-backed config without writing to etcd', { timeout: 60000 }, async () => {
  const prefix = '/gh-validate';
  const dir = tempDir();
  const client = new Etcd3({ hosts: etcd.endpoint });
  try {
    const file = join(dir, 'gatehouse.yaml');
    const head = `config_store: { type: etcd, endpoints: ["${etcd.endpoint}"], prefix: ${prefix} }\n`;
    writeFileSync(file, `${head}routes:\n  - { id: a, uri: /a, plugins: { mocking: { response_example: a } } }\n`);
    const ok = await runCli(['validate', '-c', file]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /ok \(1 route\)/);
    assert.deepEqual(await client.getAll().prefix(prefix).keys(), [], 'validate did not seed the prefix');
    writeFileSync(file, `${head}routes:\n  - { id: a, uri: /a, upstream: { nodes: {} } }\n`);
    const bad = await runCli(['validate', '-c', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /routes\[0\]\.upstream\.nodes/);
    // once the prefix is seeded, validate checks what etcd holds (the file's data sections are not used)
    await client.put(`${prefix}/_gatehouse/seeded`).value('{}');
    await client.put(`${prefix}/routes/x`).value(JSON.stringify({ id: 'x', uri: '/x', plugins: { mocking: { response_example: 'x' } } }));
    await client.put(`${prefix}/routes/y`).value(JSON.stringify({ id: 'y', uri: '/y', plugins: { mocking: { response_example: 'y' } } }));
    const seeded = await runCli(['validate', '-c', file]);
    assert.equal(seeded.code, 0, seeded.stderr);
    assert.match(seeded.stdout, /ok \(2 routes\)/);
  } finally {
    client.close();
  }
});
