// The Vault test server, health and the test controls: sys/health, sealing, injected faults, request
// counters, stop and start, and the command line.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { request } from 'undici';
import { startVaultServer } from './vault';
import { assertErrorBody, client, delay, raw, rejectedStatus, useVaultServer, vault } from '../helpers/vault-server';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

useVaultServer();

// ---------------------------------------------------------------------------------------------

describe('sys/health and sealing', () => {
  test('answers GET with the health body in Vault order and HEAD with the status only', async () => {
    const r = await raw(vault, 'GET', 'sys/health', { token: null });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(Object.keys(r.json), ['initialized', 'sealed', 'standby', 'performance_standby', 'replication_performance_mode', 'replication_dr_mode', 'server_time_utc', 'version', 'cluster_name', 'cluster_id']);
    assert.equal(r.json.initialized, true);
    assert.equal(r.json.sealed, false);
    assert.ok(Math.abs(r.json.server_time_utc - Date.now() / 1000) < 5);
    const head = await raw(vault, 'HEAD', 'sys/health', { token: null });
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
    assert.equal((await raw(vault, 'GET', 'sys/health?activecode=299', { token: null })).status, 299);
  });

  test('while sealed: health says 503 sealed, every other path 503 Vault is sealed; unseal restores', async () => {
    const s = await startVaultServer();
    try {
      s.seal();
      const h = await raw(s, 'GET', 'sys/health', { token: null });
      assert.equal(h.status, 503);
      assert.equal(h.json.sealed, true);
      const head = await raw(s, 'HEAD', 'sys/health', { token: null });
      assert.equal(head.status, 503);
      assert.equal(head.text, '');
      assertErrorBody(await raw(s, 'GET', 'secret/data/x'), 503, ['Vault is sealed']);
      assertErrorBody(await raw(s, 'GET', 'auth/token/lookup-self', { token: null }), 503, ['Vault is sealed']);
      assert.equal((await client(s).health()).sealed, true);
      assert.equal((await raw(s, 'GET', 'sys/seal-status', { token: null })).json.sealed, true);
      s.unseal();
      assert.equal((await raw(s, 'GET', 'sys/health', { token: null })).status, 200);
      assert.equal((await raw(s, 'GET', 'auth/token/lookup-self')).status, 200);
    } finally {
      await s.close();
    }
  });
});

describe('faults, counters, stop and start', () => {
  test('faults.latencyMs delays every response and faults.status answers every request with that status', async () => {
    const s = await startVaultServer();
    try {
      s.faults.latencyMs = 300;
      const t0 = Date.now();
      assert.equal((await raw(s, 'GET', 'sys/health', { token: null })).status, 200);
      assert.ok(Date.now() - t0 >= 290, `took ${Date.now() - t0} ms`);
      s.faults.latencyMs = 0;
      s.faults.status = 500;
      assertErrorBody(await raw(s, 'GET', 'secret/data/x'), 500, ['internal error']);
      assertErrorBody(await raw(s, 'GET', 'sys/health', { token: null }), 500, ['internal error']);
      s.faults.status = 503;
      assert.equal((await rejectedStatus(client(s).read('secret/data/x'))).status, 503);
      s.faults.status = undefined;
      assert.equal((await raw(s, 'GET', 'sys/health', { token: null })).status, 200);
    } finally {
      await s.close();
    }
  });

  test('count() counts requests by path prefix and method', async () => {
    const s = await startVaultServer();
    try {
      await raw(s, 'GET', 'auth/token/lookup-self');
      await raw(s, 'POST', 'auth/token/renew-self');
      await raw(s, 'GET', 'auth/token/lookup-self');
      assert.equal(s.count('auth/token/lookup-self'), 2);
      assert.equal(s.count('auth/token/'), 3);
      assert.equal(s.count('auth/token/', 'POST'), 1);
      assert.equal(s.count('secret/'), 0);
      assert.equal(s.requests[0].hasToken, true);
    } finally {
      await s.close();
    }
  });

  test('stop() refuses connections and start() listens again on the same port with the state kept', async () => {
    const s = await startVaultServer();
    try {
      await raw(s, 'POST', 'secret/data/kept', { body: { data: { v: 'still here' } } });
      await s.stop();
      await assert.rejects(raw(s, 'GET', 'secret/data/kept'), (e: NodeJS.ErrnoException) => /ECONNREFUSED/.test(`${e.code} ${e.message}`));
      await s.start();
      assert.equal((await raw(s, 'GET', 'secret/data/kept')).json.data.data.v, 'still here');
    } finally {
      await s.close();
    }
  });

  test('stop() drops a request that is waiting on injected latency', async () => {
    const s = await startVaultServer();
    try {
      s.faults.latencyMs = 5000;
      const pending = raw(s, 'GET', 'sys/health', { token: null });
      await delay(100);
      const t0 = Date.now();
      await s.stop();
      await assert.rejects(pending);
      assert.ok(Date.now() - t0 < 2000);
    } finally {
      await s.close();
    }
  });
});

describe('CLI', () => {
  test('prints one line when listening, serves requests, and exits on SIGTERM', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [join(__dirname, 'vault.js'), '--port', String(port), '--token', 'cli-root', '--host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const rl = createInterface({ input: child.stdout });
        rl.once('line', resolve);
        child.once('exit', (code) => reject(new Error(`CLI exited early with ${code}`)));
        setTimeout(() => reject(new Error('CLI printed nothing within 10 s')), 10_000).unref();
      });
      assert.equal(line, `vault test server listening on http://127.0.0.1:${port} (root token: cli-root)`);
      const r = await request(`http://127.0.0.1:${port}/v1/auth/token/lookup-self`, { headers: { 'x-vault-token': 'cli-root' } });
      assert.equal(r.statusCode, 200);
      assert.deepEqual(JSON.parse(await r.body.text()).data.policies, ['root']);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
