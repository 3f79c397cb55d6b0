// docs/tls.md's walkthrough, "A certificate from Vault", command for command: openssl makes a CA
// and a certificate, curl puts the pair into the test Vault (KV v2), `gatehouse start` runs
// examples/tls.yaml (the ports moved to free ones), curl fetches over HTTPS against the CA,
// openssl s_client shows the certificate served; a new pair written to Vault is served within the
// ttl with no restart, and the expiry metric (curl /metrics) and the 30-day warning follow it.
// Every command this test runs is checked to be in the doc as written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, freePort, startGatehouse, tempDir, waitForPort } from './helpers/harness';
import { startVaultServer } from './servers/vault';
import { plantCanary } from './helpers/leak-tap';

const ROOT = join(__dirname, '..', '..');
const DOC = readFileSync(join(ROOT, 'docs', 'tls.md'), 'utf8');

/** The walkthrough's commands, as docs/tls.md prints them (after `$ `). */
const CMD = {
  ca: `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 365 -subj "/CN=Walkthrough CA"`,
  san: `printf 'subjectAltName=DNS:api.example.test\\n' > san.ext`,
  csr: `openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout api.key -out api.csr -subj "/CN=api.example.test"`,
  sign90: `openssl x509 -req -in api.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 90 -extfile san.ext -out api.crt`,
  sign20: `openssl x509 -req -in api.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 20 -extfile san.ext -out api.crt`,
  mount: `curl -s -X POST -H 'X-Vault-Token: root' -d '{"type":"kv","options":{"version":"2"}}' http://127.0.0.1:8200/v1/sys/mounts/kv`,
  put: `node -e 'const fs = require("fs"); console.log(JSON.stringify({ data: { cert: fs.readFileSync("api.crt", "utf8"), key: fs.readFileSync("api.key", "utf8") } }))' | curl -s -o /dev/null -w '%{http_code}\\n' -X POST -H 'X-Vault-Token: root' --data-binary @- http://127.0.0.1:8200/v1/kv/data/tls/api`,
  get: `curl --cacert ca.crt --resolve api.example.test:9443:127.0.0.1 https://api.example.test:9443/ip`,
  served: `openssl s_client -connect 127.0.0.1:9443 -servername api.example.test -CAfile ca.crt </dev/null 2>/dev/null | openssl x509 -noout -enddate`,
  metric: `curl -s http://127.0.0.1:9180/metrics | grep '^gatehouse_ssl_certificate_expiry'`,
};

/** The expiry series the metric command printed, and the notAfter an s_client line shows, in Unix seconds. */
const metricValue = (out: string) => {
  const m = /^gatehouse_ssl_certificate_expiry_timestamp_seconds\{ssl_id="api",sni="api\.example\.test",cert="cert"\} (\d+)$/.exec(out.trim());
  assert.ok(m, `one expiry series: ${out}`);
  return Number(m[1]);
};
const endSeconds = (enddate: string) => Date.parse(enddate.slice('notAfter='.length)) / 1000;

function sh(cmd: string, cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('/bin/sh', ['-c', cmd], { cwd, env: { ...process.env, ...env }, timeout: 30000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('docs/tls.md walkthrough: a certificate and key from Vault KV v2 served over HTTPS, rotated in Vault with no restart', { timeout: 90000 }, async (t) => {
  for (const [name, cmd] of Object.entries(CMD)) assert.ok(DOC.includes(`$ ${cmd}\n`), `docs/tls.md shows the ${name} command as this test runs it:\n$ ${cmd}`);
  const dir = tempDir('gatehouse-tls-walkthrough-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const vault = await startVaultServer({ rootToken: 'root' });
  t.after(() => vault.close());
  const [http, https, admin, up] = [await freePort(), await freePort(), await freePort(), await freePort()];
  // `node dist/examples/demo-upstream.js --port 9081 &`, on a free port
  const demo = spawn(process.execPath, [join(ROOT, 'dist', 'examples', 'demo-upstream.js'), '--port', String(up)], { stdio: 'ignore' });
  t.after(() => void demo.kill());
  await waitForPort(up, 10000);
  const ports = (cmd: string) =>
    cmd
      .replaceAll('127.0.0.1:8200', `127.0.0.1:${vault.port}`)
      .replaceAll(':9443', `:${https}`)
      .replaceAll('127.0.0.1:9180', `127.0.0.1:${admin}`)
      .replaceAll('127.0.0.1:9081', `127.0.0.1:${up}`)
      .replaceAll('127.0.0.1:9080', `127.0.0.1:${http}`);
  const run = async (cmd: string) => {
    // the `node -e` of the put command stands in for `vault kv put`: the operator's own client,
    // which prints the pair into the pipe to Vault by design. It runs outside the leak tap (the tap
    // watches what Gatehouse and the tests let out); the gateway's own output stays tapped.
    const r = await sh(ports(cmd), dir, cmd === CMD.put ? { GATEHOUSE_LEAK_TAP: '' } : {});
    assert.equal(r.code, 0, `${cmd}\n${r.stderr}`);
    return r.stdout;
  };

  await run(CMD.ca);
  await run(CMD.san);
  await run(CMD.csr);
  await run(CMD.sign90);
  plantCanary('walkthrough key (first)', readFileSync(join(dir, 'api.key'), 'utf8').split('\n')[1]);
  await run(CMD.mount);
  assert.equal((await run(CMD.put)).trim(), '200');

  const config = join(dir, 'tls.yaml');
  writeFileSync(config, ports(readFileSync(join(ROOT, 'examples', 'tls.yaml'), 'utf8')));
  const gh = await startGatehouse(config, http, { VAULT_TOKEN: 'root' }, dir);
  t.after(async () => {
    gh.child.kill('SIGTERM');
    await Promise.race([gh.exited, new Promise((r) => setTimeout(r, 5000).unref())]);
    await gh.kill();
  });
  await waitForPort(https, 10000);

  assert.equal((await run(CMD.get)).trim(), '{"origin":"127.0.0.1"}');
  const firstEnd = (await run(CMD.served)).trim();
  assert.match(firstEnd, /^notAfter=/);
  assert.equal(metricValue(await run(CMD.metric)), endSeconds(firstEnd), 'the expiry metric has the served certificate\'s notAfter');

  // rotation: a new key and a certificate valid 20 days, written to Vault; no restart
  await run(CMD.csr);
  await run(CMD.sign20);
  plantCanary('walkthrough key (rotated)', readFileSync(join(dir, 'api.key'), 'utf8').split('\n')[1]);
  assert.equal((await run(CMD.put)).trim(), '200');
  const rotatedAt = Date.now();
  let now = firstEnd;
  await eventually('the rotated certificate is served', async () => (now = (await run(CMD.served)).trim()) !== firstEnd, 15000);
  t.diagnostic(`the rotated certificate served ${Date.now() - rotatedAt} ms after the write (secret_cache.ttl 5 s)`);
  const days = (Date.parse(now.slice('notAfter='.length)) - Date.now()) / 86400000;
  assert.ok(days > 19 && days < 21, `the new certificate is the 20-day one (${now})`);
  assert.equal((await run(CMD.get)).trim(), '{"origin":"127.0.0.1"}');
  await eventually('the metric follows the rotation', async () => metricValue(await run(CMD.metric)) === endSeconds(now), 10000);
  const warning = gh.logLines().find((l) => l.ssl === 'api' && l.level === 40);
  assert.ok(warning, 'a warning for the certificate in its last 30 days');
  assert.deepEqual([warning.field, warning.snis, warning.not_after, warning.msg], ['cert', ['api.example.test'], new Date(endSeconds(now) * 1000).toISOString(), 'an SSL certificate ends within 30 days: replace it before then']);
  assert.equal(gh.child.exitCode, null, 'the same process serves: no restart');
});
