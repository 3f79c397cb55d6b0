// Gatehouse as a user gets it: the package `npm pack` makes, installed from that tarball (not from
// this checkout, not from the registry, where the name is not published from here), then the whole
// user flow with real npm — `gatehouse init` from the installed package, `npm install` of the
// tarball, `gatehouse new plugin|provider` through the project's own bin, its `npm test`, its
// `npm start` and a request showing the plugin's header — plus a plugin packed as a package of its
// own (Gatehouse as its peer dependency, with the package.json and tsconfig.json that
// docs/writing-a-plugin.md gives), installed from its tarball and loaded by package name.
// Dependencies of the tarballs come from npm's cache where `npm ci` put them (--prefer-offline).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseDocument } from 'yaml';
import { packageName, version } from '../core/version';
import { freePort, tempDir, waitForPort } from './helpers/harness';
import { sh, startGroup, testCounts } from './helpers/npm';

const root = realpathSync(join(__dirname, '..', '..'));
const tarball = `${packageName}-${version}.tgz`;
const npmInstall = ['install', '--prefer-offline', '--no-audit', '--no-fund'];
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The files and links under `dir` (node_modules and build output included) whose content or target names this checkout. */
function mentionsOfCheckout(dir: string, base = dir, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) mentionsOfCheckout(p, base, out);
    else if ((e.isSymbolicLink() ? readlinkSync(p) : readFileSync(p, 'latin1')).includes(root)) out.push(relative(base, p));
  }
  return out;
}

/** A JSON code block of docs/writing-a-plugin.md, found by a string it contains. */
function docBlock(marker: string): Record<string, unknown> {
  const doc = readFileSync(join(root, 'docs', 'writing-a-plugin.md'), 'utf8');
  const block = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.includes(marker));
  assert.ok(block !== undefined, `docs/writing-a-plugin.md has no json block with ${marker}`);
  return JSON.parse(block) as Record<string, unknown>;
}

test('npm pack holds what users need and nothing else', async () => {
  const { stdout } = await sh('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], root, 120_000);
  const [info] = JSON.parse(stdout) as Array<{ name: string; files: Array<{ path: string }> }>;
  assert.equal(info.name, packageName);
  const paths = info.files.map((f) => f.path);
  for (const p of paths) {
    assert.match(p, /^(dist\/(core|plugins|providers)\/|templates\/|docs\/|README\.md$|LICENSE$|package\.json$)/, p);
    assert.doesNotMatch(p, /\.test\.(js|d\.ts)$|\.map$/, p);
  }
  for (const needed of ['LICENSE', 'README.md', 'dist/core/cli/main.js', 'dist/core/index.d.ts', 'dist/plugins/key-auth/index.js', 'dist/providers/vault/index.js', 'templates/project/gitignore', 'templates/plugin/index.ts', 'docs/configuration.md']) {
    assert.ok(paths.includes(needed), `the package lacks ${needed}`);
  }
});

test('from the packed tarball: init, npm install, new plugin and provider, a plugin package by name, npm test, npm start', { timeout: 900_000 }, async (t) => {
  const work = realpathSync(tempDir('gatehouse-packaging-'));
  dirs.push(work);
  await sh('npm', ['pack', '--ignore-scripts', '--pack-destination', work], root, 120_000);
  assert.ok(existsSync(join(work, tarball)), `npm pack made no ${tarball}`);

  // `npx gatehouse-gateway init`, with the tarball in the registry's place: installed into a folder of its own
  const tool = join(work, 'tool');
  mkdirSync(tool);
  await sh('npm', [...npmInstall, `../${tarball}`], tool, 300_000);
  const toolCli = join(tool, 'node_modules', '.bin', 'gatehouse');
  assert.ok(existsSync(toolCli), 'the package installs the gatehouse command');
  const port = await freePort();
  await sh(process.execPath, [toolCli, 'init', 'demo', '--port', String(port)], work, 30_000);
  const demo = join(work, 'demo');
  const pkgOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
  assert.deepEqual(pkgOf(demo).dependencies, { [packageName]: `^${version}` }, 'init depends on the running version by a caret range');

  await sh('npm', [...npmInstall, `../${tarball}`], demo, 300_000);
  assert.equal(pkgOf(demo).dependencies[packageName], `file:../${tarball}`);
  const installed = join(demo, 'node_modules', packageName);
  assert.ok(lstatSync(installed).isDirectory() && !lstatSync(installed).isSymbolicLink(), 'Gatehouse is unpacked into the project, not linked');

  // the project's own gatehouse, as its README says
  const plugin = await sh('npx', ['gatehouse', 'new', 'plugin', 'hello-header'], demo, 60_000);
  assert.match(plugin.out, /updated gatehouse\.yaml \(extensions: \.\/dist\/plugins\/hello-header; route hello-header/);
  await sh('npx', ['gatehouse', 'new', 'provider', 'team-secrets'], demo, 60_000);

  // a plugin as a package of its own, set up exactly as docs/writing-a-plugin.md says
  await sh(process.execPath, [toolCli, 'new', 'plugin', 'shout-header'], work, 30_000);
  const shout = join(work, 'shout-header');
  const shoutPkg = JSON.stringify(docBlock('"name": "gatehouse-plugin-hello-header"')).replaceAll('hello-header', 'shout-header');
  writeFileSync(join(shout, 'package.json'), shoutPkg);
  writeFileSync(join(shout, 'tsconfig.json'), JSON.stringify(docBlock('"compilerOptions"')));
  assert.deepEqual((JSON.parse(shoutPkg) as { peerDependencies: unknown }).peerDependencies, { [packageName]: `^${version}` });
  // its development copy of Gatehouse: the tarball again, in the registry's place
  await sh('npm', [...npmInstall, '--save-dev', `../${tarball}`], shout, 300_000);
  const shoutTested = await sh('npm', ['test'], shout, 180_000);
  assert.deepEqual(testCounts(shoutTested.out), { pass: 5, fail: 0 }, shoutTested.out);
  await sh('npm', ['pack', '--pack-destination', work], shout, 120_000);
  const shoutTarball = 'gatehouse-plugin-shout-header-0.1.0.tgz';
  await sh('npm', [...npmInstall, `../${shoutTarball}`], demo, 300_000);
  // loaded by package name, used on the hello-header route
  const config = join(demo, 'gatehouse.yaml');
  const doc = parseDocument(readFileSync(config, 'utf8'));
  doc.addIn(['extensions'], 'gatehouse-plugin-shout-header');
  const routes = doc.toJS().routes as Array<{ id: string }>;
  doc.setIn(['routes', routes.findIndex((r) => r.id === 'hello-header'), 'plugins', 'shout-header'], { header_name: 'X-Shout', header_value: 'loud' });
  writeFileSync(config, doc.toString());

  const tested = await sh('npm', ['test'], demo, 180_000);
  assert.match(tested.out, /adds X-Hello: hello to a proxied response by default/);
  assert.match(tested.out, /a consumer key referenced in the file authenticates through a gateway/);
  assert.match(tested.out, /gatehouse\.yaml loads with every extension/);
  const counts = testCounts(tested.out);
  assert.ok(counts !== undefined && counts.fail === 0 && counts.pass >= 9, tested.out);

  const start = startGroup('npm', ['start'], demo);
  t.after(async () => {
    start.kill('SIGKILL');
    await start.closed;
  });
  await waitForPort(port, 120_000, () => (start.exited() ? `npm start exited before the gateway listened:\n${start.log()}` : undefined));
  const res = await fetch(`http://127.0.0.1:${port}/hello-header/hi`);
  assert.equal(res.status, 200, start.log());
  assert.equal(res.headers.get('x-hello'), 'hello');
  assert.equal(res.headers.get('x-shout'), 'loud', 'the plugin package loaded by name runs');
  // proxied: the demo upstream (the mocking route for host upstream.demo) made the body and its header
  assert.equal(res.headers.get('x-mock-by'), 'Gatehouse');
  assert.deepEqual(await res.json(), { message: 'hello from the demo upstream' });
  const plain = await fetch(`http://127.0.0.1:${port}/anything`);
  assert.equal(plain.status, 200);
  assert.equal(plain.headers.get('x-hello'), null, 'only the route that uses the plugin has its header');

  start.kill('SIGTERM');
  const timer = setTimeout(() => start.kill('SIGKILL'), 20_000);
  await start.closed;
  clearTimeout(timer);
  assert.match(start.log(), /"route":"hello-header".*"upstream":"127\.0\.0\.1:\d+"/, 'the access log shows the proxied request');
  assert.match(start.log(), /"msg":"gatehouse stopped"/);

  // nothing made here knows where this checkout is
  assert.ok(statSync(join(demo, 'dist')).isDirectory());
  assert.deepEqual(mentionsOfCheckout(demo), []);
  assert.deepEqual(mentionsOfCheckout(shout), []);
});
