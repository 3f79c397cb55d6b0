// The leak scan of the test run must be able to fail: the scanner finds planted values in
// every encoded form and reports them without the value; the tap catches what real processes let
// out (pino on fd 1, Admin API bodies, in-memory logs, uncaught errors, children's env); and
// scripts/run-tests.js exits non-zero when a child process of a test logs a planted value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canaryForms, formatLeakReport, scanTapDir } from './helpers/leak-scan';
import { CANARY_DIR } from './helpers/leak-tap';
import { tempDir } from './helpers/harness';

const dist = join(__dirname, '..');
const tapModule = join(__dirname, 'helpers', 'leak-tap.js');

/** A fresh secret-looking value (never printed: assertions below report only booleans). */
const newSecret = (what: string) => `leak-${what}-${randomBytes(9).toString('hex')}`;

/** Whether `text` holds the value in any form the scanner looks for. */
const holds = (text: string, value: string) => canaryForms(value).some((f) => text.includes(f.bytes.toString('utf8')));

function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('the scanner finds a planted value raw, in base64 inside a Basic credential, URL- and JSON-encoded, and reports none of them', (t) => {
  const dir = tempDir('gatehouse-leak-unit-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = `${newSecret('unit')} "quoted" & spaced`;
  mkdirSync(join(dir, CANARY_DIR));
  const canary = (source: string, value: string) => JSON.stringify({ source, value });
  writeFileSync(join(dir, CANARY_DIR, 'a.1.aaaaaa.jsonl'), [canary('env GH_UNIT', secret), canary('env GH_SHORT', 'short'), canary('env GH_DIGITS', '1234567890'), canary('env GH_UNIT again', secret)].join('\n') + '\n');
  writeFileSync(join(dir, 'gw.1.aaaaaa.stdout'), `${JSON.stringify({ level: 30, msg: 'connected', token: secret })}\n`);
  writeFileSync(join(dir, 'gw.1.aaaaaa.admin'), `{"auth":"Basic ${Buffer.from(`jack:${secret}`).toString('base64')}"}`);
  writeFileSync(join(dir, 'gw.1.aaaaaa.log'), `GET /cb?code=${encodeURIComponent(secret)} 200\n`);
  writeFileSync(join(dir, 'gw.2.bbbbbb.stderr'), `${JSON.stringify({ err: `bad value ${secret}` })}\n`);
  // the generated admin key line is printed by design: not a hit; the same value later is
  writeFileSync(join(dir, 'gw.3.cccccc.stderr'), `gatehouse: no admin.key configured; this run's admin key (X-API-KEY) is ${secret}\nlater: ${secret}\n`);
  writeFileSync(join(dir, 'clean.4.dddddd.stdout'), 'short 1234567890 nothing planted here\n'.repeat(100));

  const r = scanTapDir(dir, { extra: [] });
  assert.equal(r.files, 6);
  assert.equal(r.canaries, 1, 'one value of 8+ chars, deduplicated');
  assert.equal(r.skipped, 2, 'the short and the all-digit value are skipped');
  assert.equal(r.exempt, 1);
  assert.deepEqual(
    r.hits.map((h) => [h.file, h.form, h.canary]),
    [
      ['gw.1.aaaaaa.admin', 'base64', 1],
      ['gw.1.aaaaaa.log', 'url-encoded', 1],
      ['gw.1.aaaaaa.stdout', 'json-escaped', 1],
      ['gw.2.bbbbbb.stderr', 'json-escaped', 1],
      ['gw.3.cccccc.stderr', 'raw', 1],
    ],
  );
  assert.equal(r.hits[4].offset, `gatehouse: no admin.key configured; this run's admin key (X-API-KEY) is ${secret}\nlater: `.length);
  assert.equal(r.hits[0].source, 'env GH_UNIT');
  const report = formatLeakReport(r).join('\n');
  assert.match(report, /^leak-scan: 6 tap files, 0\.0 MiB scanned, 1 canaries \(2 planted values skipped: under 8 chars, all digits, or public\), 1 exempt occurrences, 5 hits, \d+ ms$/m);
  assert.match(report, /^ {4}.*"token":"«canary #1»"\}\\n$/m);
  assert.equal(holds(report, secret), false, 'the report holds no form of the value');
});

test('a loopback listen address planted through an env variable is public, not a canary: free ports recur across the run', (t) => {
  const dir = tempDir('gatehouse-leak-unit-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, CANARY_DIR));
  const planted = ['127.0.0.1:40123', 'localhost:40123', '[::1]:40123', ':40123', '10.1.2.3:40123', 'https://127.0.0.1:40123'];
  writeFileSync(join(dir, CANARY_DIR, 'a.1.aaaaaa.jsonl'), planted.map((value, i) => JSON.stringify({ source: `env GH_LISTEN_${i}`, value })).join('\n') + '\n');
  writeFileSync(join(dir, 'gw.1.aaaaaa.stdout'), `${JSON.stringify({ msg: 'gatehouse proxy listening', listen: planted.join(' ') })}\n`);
  const r = scanTapDir(dir, { extra: [] });
  assert.equal(r.skipped, 4, 'the four loopback forms are public');
  assert.deepEqual([...new Set(r.hits.map((h) => h.source))].sort(), ['env GH_LISTEN_4', 'env GH_LISTEN_5'], 'any other address is still a canary');
});

test('the tap, preloaded into a real process, catches pino on fd 1, Admin API bodies, in-memory logs, uncaught errors and a child given a secret in its env', async (t) => {
  const dir = tempDir('gatehouse-leak-tap-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = `${newSecret('tap')}/a+b`; // URL-encoding changes it
  const childSecret = newSecret('child');
  const scripts = tempDir('gatehouse-leak-script-');
  t.after(() => rmSync(scripts, { recursive: true, force: true }));
  const script = join(scripts, 'leaky-child.js');
  writeFileSync(
    script,
    `'use strict';
const http = require('node:http');
const { spawnSync } = require('node:child_process');
const { createLogger } = require(${JSON.stringify(join(dist, 'core', 'observe', 'log.js'))});
const { captureLogs } = require(${JSON.stringify(join(dist, 'core', 'testing.js'))});
const secret = process.env.GH_LEAK_INPUT;
process.env.GH_LEAK_PLANTED = secret; // a test planting a secret
const logger = createLogger({ sync: false });
logger.info({ token: secret }, 'pino line with the secret');
logger.flush();
captureLogs().logger.warn({ token: secret }, 'in-memory line');
const server = http.createServer((req, res) => res.end(req.url === '/apisix/admin/routes' ? JSON.stringify({ key: Buffer.from(secret).toString('base64') }) : 'upstream echo ' + secret));
server.listen(0, '127.0.0.1', async () => {
  const base = 'http://127.0.0.1:' + server.address().port;
  await (await fetch(base + '/apisix/admin/routes')).text();
  await (await fetch(base + '/proxied/path')).text();
  server.close();
  const c = spawnSync(process.execPath, ['-e', 'process.stderr.write("child: " + process.env.GH_LEAK_CHILD + "\\\\n")'], { env: { ...process.env, GH_LEAK_CHILD: process.env.GH_LEAK_CHILD_INPUT.split('').reverse().join('') } });
  if (c.status !== 0) process.exit(3);
  throw new Error('uncaught: ' + encodeURIComponent(secret));
});
`,
  );
  // the child's secret is handed over reversed, so only the child's own env carries it as is
  const env = { ...process.env, NODE_OPTIONS: `--require "${tapModule}"`, GATEHOUSE_LEAK_TAP: dir, GH_LEAK_INPUT: secret, GH_LEAK_CHILD_INPUT: childSecret.split('').reverse().join('') };
  const r = await run(script, [], env);
  assert.equal(r.code, 1, 'the uncaught error ends the process');
  assert.equal(holds(r.stdout, secret), true, 'the pino line really was written to stdout');

  const scan = scanTapDir(dir, { extra: [] });
  const names = readdirSync(dir).filter((f) => f !== CANARY_DIR);
  assert.ok(names.every((f) => /^(?:leaky-child\.js|node)\.\d+\.[0-9a-f]{6}\.(?:stdout|stderr|admin|log|error)$/.test(f)), names.join(', '));
  const where = scan.hits.map((h) => `${h.file.replace(/\.\d+\.[0-9a-f]{6}\./, '.')} ${h.form} ${h.source.replace(/ \(.*\)$/, '')}`).sort();
  assert.deepEqual(where, [
    'leaky-child.js.admin base64 env GH_LEAK_PLANTED',
    'leaky-child.js.error url-encoded env GH_LEAK_PLANTED',
    'leaky-child.js.log raw env GH_LEAK_PLANTED',
    'leaky-child.js.stdout raw env GH_LEAK_PLANTED',
    'node.stderr raw env GH_LEAK_CHILD of a child',
  ]);
  assert.equal(scan.canaries, 2);
  assert.equal(holds(formatLeakReport(scan).join('\n'), secret) || holds(formatLeakReport(scan).join('\n'), childSecret), false);
});

test('npm test fails when a child process of a test logs a planted secret, and passes when it does not', async (t) => {
  const dir = tempDir('gatehouse-leak-e2e-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tests = join(dir, 'tests');
  const tmp = join(dir, 'tmp');
  mkdirSync(tests);
  mkdirSync(tmp);
  // a test whose child process logs with the product's logger (pino on fd 1), with or without the secret
  writeFileSync(
    join(tests, 'fixture.test.js'),
    `'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
test('a child process logs a line', async () => {
  const code = 'const l = require(${JSON.stringify(join(dist, 'core', 'observe', 'log.js'))}).createLogger(); l.info(process.env.GH_E2E_MODE === "leak" ? { password: process.env.GH_E2E_SECRET } : { password: "[redacted]" }, "connected"); l.flush();';
  const child = spawn(process.execPath, ['-e', code], { env: { ...process.env, GH_E2E_SECRET: process.env.GH_E2E_INPUT }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const status = await new Promise((resolve) => child.once('close', resolve));
  assert.equal(status, 0);
  assert.match(out, /"msg":"connected"/);
});
`,
  );
  const secret = newSecret('e2e');
  const runTests = join(dist, '..', 'scripts', 'run-tests.js');
  // NODE_TEST_CONTEXT (set for this file by the outer runner) would make the inner `node --test` run nothing
  const { NODE_TEST_CONTEXT: _, ...outer } = process.env;
  const inner = (mode: string) => run(runTests, [], { ...outer, GATEHOUSE_TEST_DIR: tests, TMPDIR: tmp, GH_E2E_MODE: mode, GH_E2E_INPUT: secret });

  const clean = await inner('clean');
  assert.equal(clean.code, 0, holds(clean.stdout + clean.stderr, secret) ? 'the output holds the secret' : clean.stdout + clean.stderr);
  assert.match(clean.stdout, /^ℹ pass 1$/m);
  assert.match(clean.stdout, /^leak-scan: \d+ tap files, [\d.]+ MiB scanned, \d+ canaries .*, 0 hits, \d+ ms$/m);
  assert.deepEqual(readdirSync(tmp), [], 'a clean run removes its tap directory');

  const leaky = await inner('leak');
  const out = leaky.stdout + leaky.stderr;
  assert.equal(leaky.code, 1, holds(out, secret) ? 'the output holds the secret' : out);
  assert.match(leaky.stdout, /^ℹ pass 1$/m, 'the test itself passed');
  assert.match(leaky.stdout, /, 1 hits, \d+ ms$/m);
  assert.match(leaky.stdout, /^leak-scan: LEAK in node\.\d+\.[0-9a-f]{6}\.stdout at byte \d+: canary #\d+ \(env GH_E2E_SECRET of a child \(fixture\.test\.js\.\d+\.[0-9a-f]{6}\)\), raw$/m);
  assert.match(leaky.stdout, /"password":"«canary #\d+»","msg":"connected"/);
  assert.match(leaky.stderr, /^leak-scan: FAILED: 1 occurrence\(s\) of planted secrets; tap files kept in /m);
  assert.equal(holds(out, secret), false, 'the failing run prints no form of the secret');
});
