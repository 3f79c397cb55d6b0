#!/usr/bin/env node
// Runs every compiled *.test.js under dist/ with Node's built-in test runner, then the leak scan.
// Node 20's `node --test` takes no globs and its default patterns would also pick up
// the helpers under dist/test/, so the file list is made here.
//
// Leak scan (docs/security.md): every Node process of the run gets the leak tap preloaded (NODE_OPTIONS
// --require dist/test/helpers/leak-tap.js, GATEHOUSE_LEAK_TAP = a fresh directory). It copies
// stdout/stderr, Admin API and /metrics bodies, uncaught errors and in-memory test logs there and
// records the secrets the run plants; afterwards every planted value is looked for in all of it
// (dist/test/helpers/leak-scan.js). Any occurrence fails the run, reported without the value.
// GATEHOUSE_TEST_DIR (default dist) is the directory searched for test files.
'use strict';
const { existsSync, mkdtempSync, readdirSync, rmSync, statSync } = require('node:fs');
const { join, resolve } = require('node:path');
const { tmpdir } = require('node:os');
const { spawnSync } = require('node:child_process');

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === 'node_modules') continue;
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const root = process.env.GATEHOUSE_TEST_DIR || 'dist';
const filter = process.argv.slice(2);
let files = walk(root, []).sort();
if (filter.length) files = files.filter((f) => filter.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(`run-tests: no compiled test files found under ${root}/ (did the build run?)`);
  process.exit(1);
}

const helpers = resolve(__dirname, '..', 'dist', 'test', 'helpers');
const tapModule = join(helpers, 'leak-tap.js');
if (!existsSync(tapModule)) {
  console.error(`run-tests: ${tapModule} is missing (did the build run?)`);
  process.exit(1);
}
const tapDir = mkdtempSync(join(tmpdir(), 'gatehouse-leak-tap-'));
const preload = `--require "${tapModule}"`;
const nodeOptions = (process.env.NODE_OPTIONS || '').includes(tapModule) ? process.env.NODE_OPTIONS : [process.env.NODE_OPTIONS, preload].filter(Boolean).join(' ');
const env = {
  ...process.env,
  NO_PROXY: '127.0.0.1,localhost',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  NODE_OPTIONS: nodeOptions,
  GATEHOUSE_LEAK_TAP: tapDir,
};
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit', env });
const testStatus = r.status === null ? 1 : r.status;

const { scanTapDir, formatLeakReport } = require(join(helpers, 'leak-scan.js'));
const scan = scanTapDir(tapDir);
for (const line of formatLeakReport(scan)) console.log(line);
let leakStatus = 0;
if (scan.files === 0) {
  console.error('leak-scan: no tap files: the tap was not loaded, nothing was checked');
  leakStatus = 1;
} else if (scan.hits.length > 0) {
  // the files hold test secrets only; kept so the leak can be looked at
  console.error(`leak-scan: FAILED: ${scan.hits.length} occurrence(s) of planted secrets; tap files kept in ${tapDir}`);
  leakStatus = 1;
}
if (leakStatus === 0) rmSync(tapDir, { recursive: true, force: true });
process.exit(testStatus !== 0 ? testStatus : leakStatus);
