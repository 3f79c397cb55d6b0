#!/usr/bin/env node
// Runs every compiled *.test.js under dist/ with Node's built-in test runner.
// Node 20's `node --test` takes no globs and its default patterns would also pick up
// the helpers under dist/test/, so the file list is made here.
'use strict';
const { readdirSync, statSync } = require('node:fs');
const { join } = require('node:path');
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

const filter = process.argv.slice(2);
let files = walk('dist', []).sort();
if (filter.length) files = files.filter((f) => filter.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('run-tests: no compiled test files found under dist/ (did the build run?)');
  process.exit(1);
}
const env = { ...process.env, NO_PROXY: '127.0.0.1,localhost', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit', env });
process.exit(r.status === null ? 1 : r.status);
