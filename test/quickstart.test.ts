// The README walkthrough: `npm start`'s quickstart (examples/quickstart.ts with
// examples/gatehouse.yaml) answers the README's requests exactly (ports moved to free ones).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { freePort, tempDir, waitForPort } from './helpers/harness';

const root = join(__dirname, '..', '..');

/** `npm start`'s quickstart on free ports (examples/gatehouse.yaml with its ports moved); `out()` is stdout + stderr. */
async function startQuickstart(demoKey: string | undefined): Promise<{ gwPort: number; child: ChildProcess; out: () => string }> {
  const [gwPort, upPort] = [await freePort(), await freePort()];
  const yaml = readFileSync(join(root, 'examples', 'gatehouse.yaml'), 'utf8').replaceAll('127.0.0.1:9080', `127.0.0.1:${gwPort}`).replaceAll('127.0.0.1:9081', `127.0.0.1:${upPort}`);
  const cfg = join(tempDir(), 'gatehouse.yaml');
  writeFileSync(cfg, yaml);
  // the demo upstream follows the config's node port: nothing else says where it listens
  const env: NodeJS.ProcessEnv = { ...process.env, GATEHOUSE_CONFIG: cfg };
  if (demoKey === undefined) delete env.DEMO_API_KEY; // the documented default applies
  else env.DEMO_API_KEY = demoKey;
  const child = spawn(process.execPath, [join(root, 'dist', 'examples', 'quickstart.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  return { gwPort, child, out: () => out };
}

test('the quickstart protects /ip with key-auth (401 without a key, 200 with the demo key) and proxies /anything', { timeout: 30000 }, async () => {
  const { gwPort, child, out } = await startQuickstart(undefined);
  try {
    await waitForPort(gwPort, 15000);
    const base = `http://127.0.0.1:${gwPort}`;
    const noKey = await request(`${base}/ip`);
    assert.equal(noKey.statusCode, 401);
    assert.equal(noKey.headers['www-authenticate'], 'Key realm="gatehouse"');
    assert.equal(await noKey.body.text(), '{"message":"Missing API key found in request"}');
    const ok = await request(`${base}/ip`, { headers: { apikey: 'secret-key' } });
    assert.equal(ok.statusCode, 200);
    assert.equal(await ok.body.text(), '{"origin":"127.0.0.1"}\n');
    const bad = await request(`${base}/ip`, { headers: { apikey: 'wrong' } });
    assert.equal(await bad.body.text(), '{"message":"Invalid API key in request"}');
    const echo = (await (await request(`${base}/anything/hello?x=1`)).body.json()) as { url: string; headers: Record<string, string> };
    assert.equal(echo.url, '/anything/hello?x=1');
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.match(out(), /Gatehouse quickstart is running/);
    // the banner shows the demo's documented key as a curl example; the logs never carry it
    await new Promise((r) => setTimeout(r, 300)); // buffered log lines are flushed every 200 ms
    const logLines = out().split('\n').filter((l) => l.startsWith('{'));
    assert.ok(logLines.some((l) => l.includes('"consumer":"jack"')), 'the access log names the consumer');
    assert.equal(logLines.filter((l) => l.includes('secret-key')).length, 0, 'no log line carries the key');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});

test('with DEMO_API_KEY set, the quickstart takes that key and its banner never prints it (the curl hint lets the shell fill it in)', { timeout: 30000 }, async () => {
  const own = 'quickstart-own-demo-key-0001';
  const { gwPort, child, out } = await startQuickstart(own);
  try {
    await waitForPort(gwPort, 15000);
    const base = `http://127.0.0.1:${gwPort}`;
    const ok = await request(`${base}/ip`, { headers: { apikey: own } });
    await ok.body.text();
    assert.equal(ok.statusCode, 200, 'the own key is the consumer key');
    const demo = await request(`${base}/ip`, { headers: { apikey: 'secret-key' } });
    await demo.body.text();
    assert.equal(demo.statusCode, 401, 'the demo default is not in force');
    assert.ok(out().includes(`curl -i http://127.0.0.1:${gwPort}/ip -H "apikey: $DEMO_API_KEY"  # 200 as consumer jack`), out());
    assert.equal(out().includes(own), false, 'the own key is never printed');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});
