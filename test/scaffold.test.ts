// The scaffolder: `gatehouse new plugin|provider` and `gatehouse init` (name checks, no overwrite,
// every file listed, gatehouse.yaml registration, the dependency it writes), and the templates
// compiled and tested as they are. The whole user flow from a packed tarball with real npm is
// test/packaging.test.ts.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { Writable } from 'node:stream';
import semver from 'semver';
import { initCommand } from '../core/cli/init';
import { newCommand, registerInConfig } from '../core/cli/new';
import { nodeEngine, packageName, version } from '../core/version';
import { runCli, tempDir } from './helpers/harness';
import { sh, testCounts } from './helpers/npm';

const root = join(__dirname, '..', '..');
const templates = join(root, 'templates');
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function scratch(): string {
  const d = tempDir('gatehouse-scaffold-');
  dirs.push(d);
  return d;
}

/** Run a scaffold command in-process; stdout and stderr captured. */
function run(fn: (out: NodeJS.WritableStream, err: NodeJS.WritableStream) => number): { code: number; stdout: string; stderr: string } {
  let stdout = '';
  let stderr = '';
  const sink = (add: (s: string) => void) => new Writable({ write: (c: Buffer, _e, cb) => (add(c.toString()), cb()) });
  const code = fn(sink((s) => (stdout += s)), sink((s) => (stderr += s)));
  return { code, stdout, stderr };
}

/** Every file under `dir`, relative, sorted. */
function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'dist') continue;
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)));
    }
  };
  walk(dir);
  return out.sort();
}

/** The paths a command printed as "created …" / "updated …", made absolute against `cwd`. */
function listed(stdout: string, cwd = process.cwd()): string[] {
  return stdout
    .split('\n')
    .filter((l) => /^(created|updated) /.test(l))
    .map((l) => resolve(cwd, l.replace(/^(created|updated) /, '').replace(/ \(.*\)$/, '')));
}

describe('gatehouse new and init: names, targets and output', () => {
  test('init writes the project, lists every file it wrote, and depends on the running version by a caret range', () => {
    const dir = join(scratch(), 'my-gateway');
    const r = run((o, e) => initCommand(dir, { port: '9123' }, o, e));
    assert.equal(r.code, 0, r.stderr);
    const written = files(dir);
    assert.deepEqual(written, ['.gitignore', 'README.md', 'gatehouse.yaml', 'package.json', 'plugins/.gitkeep', 'providers/.gitkeep', 'test/gateway.test.ts', 'tsconfig.json']);
    assert.deepEqual(listed(r.stdout).sort(), written.map((f) => join(dir, f)).sort());
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    assert.equal(pkg.name, 'my-gateway');
    assert.deepEqual(pkg.dependencies, { [packageName]: `^${version}` });
    assert.deepEqual(pkg.engines, { node: nodeEngine });
    assert.deepEqual(pkg.devDependencies, { '@types/node': '20.19.25', typescript: '5.9.3' });
    // no path of this installation anywhere in the project
    for (const f of written) assert.ok(!readFileSync(join(dir, f), 'utf8').includes(root), f);
    const yaml = readFileSync(join(dir, 'gatehouse.yaml'), 'utf8');
    assert.match(yaml, /listen: 127\.0\.0\.1:9123/);
    assert.doesNotMatch(yaml, /9080/);
    for (const f of written) assert.doesNotMatch(readFileSync(join(dir, f), 'utf8'), /template-project/i, f);
  });

  test('init --link depends on this installation by absolute path instead, for developing Gatehouse itself', async () => {
    const dir = join(scratch(), 'linked');
    const r = await runCli(['init', dir, '--link']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).dependencies, { [packageName]: `file:${root}` });
  });

  test('new plugin in a project writes plugins/<name>, registers ./dist/plugins/<name> and a route, and lists every file', () => {
    const dir = join(scratch(), 'proj');
    assert.equal(run((o, e) => initCommand(dir, {}, o, e)).code, 0);
    const before = files(dir);
    const r = run((o, e) => newCommand('plugin', 'rate-guard', { dir }, o, e));
    assert.equal(r.code, 0, r.stderr);
    const added = files(dir).filter((f) => !before.includes(f));
    assert.deepEqual(added, ['plugins/rate-guard/README.md', 'plugins/rate-guard/index.ts', 'plugins/rate-guard/rate-guard.test.ts', 'plugins/rate-guard/schema.ts']);
    assert.deepEqual(listed(r.stdout).sort(), [...added, 'gatehouse.yaml'].map((f) => join(dir, f)).sort());
    const index = readFileSync(join(dir, 'plugins/rate-guard/index.ts'), 'utf8');
    assert.match(index, /name: 'rate-guard'/);
    assert.match(index, /function rateGuard\(/);
    assert.match(readFileSync(join(dir, 'plugins/rate-guard/schema.ts'), 'utf8'), /interface RateGuardConfig/);
    assert.ok(index.includes(`from '${packageName}/sdk'`), 'the plugin imports the SDK by the package name');
    for (const f of added) assert.doesNotMatch(readFileSync(join(dir, f), 'utf8'), /template-?plugin/i, f);
    const yaml = readFileSync(join(dir, 'gatehouse.yaml'), 'utf8');
    assert.match(yaml, /extensions:\n {2}- \.\/dist\/plugins\/rate-guard\n/);
    assert.match(yaml, /- id: rate-guard\n {4}uri: \/rate-guard\/\*\n {4}plugins:\n {6}rate-guard: \{\}\n {4}upstream_id: demo\n/);
    // the template's comments survive the edit
    assert.match(yaml, /# The demo upstream is this gateway itself/);
  });

  test('new provider in a project writes providers/<name> and registers ./dist/providers/<name>', () => {
    const dir = join(scratch(), 'proj');
    assert.equal(run((o, e) => initCommand(dir, {}, o, e)).code, 0);
    const r = run((o, e) => newCommand('provider', 'team-vault', { dir }, o, e));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(files(join(dir, 'providers', 'team-vault')), ['README.md', 'index.ts', 'schema.ts', 'team-vault.test.ts']);
    assert.match(readFileSync(join(dir, 'providers/team-vault/index.ts'), 'utf8'), /export function teamVaultBackend\(/);
    assert.match(readFileSync(join(dir, 'gatehouse.yaml'), 'utf8'), /extensions:\n {2}- \.\/dist\/providers\/team-vault\n/);
  });

  test('new outside a project writes <dir>/<name> and nothing else', () => {
    const dir = scratch();
    const r = run((o, e) => newCommand('plugin', 'hello', { dir }, o, e));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(files(dir), ['hello/README.md', 'hello/hello.test.ts', 'hello/index.ts', 'hello/schema.ts']);
    assert.deepEqual(listed(r.stdout).sort(), files(dir).map((f) => join(dir, f)));
  });

  test('refuses an invalid name with exit 1, saying the rule, and writes nothing', () => {
    const dir = scratch();
    for (const name of ['Hello', '1st', 'my_plugin', '-x', '']) {
      const r = run((o, e) => newCommand('plugin', name, { dir }, o, e));
      assert.equal(r.code, 1, name);
      assert.match(r.stderr, /invalid plugin name .*lowercase letters, digits and dashes, starting with a letter/);
      assert.equal(r.stdout, '');
    }
    assert.deepEqual(files(dir), []);
  });

  test('refuses a name whose identifier is a reserved word, and a built-in plugin name', () => {
    const dir = scratch();
    const reserved = run((o, e) => newCommand('plugin', 'delete', { dir }, o, e));
    assert.equal(reserved.code, 1);
    assert.match(reserved.stderr, /reserved word/);
    const builtin = run((o, e) => newCommand('plugin', 'key-auth', { dir }, o, e));
    assert.equal(builtin.code, 1);
    assert.match(builtin.stderr, /"key-auth" is the name of a built-in plugin/);
    assert.deepEqual(files(dir), []);
  });

  test('never overwrites: an existing plugin folder is refused with exit 1, and gatehouse.yaml is left as it was', () => {
    const dir = join(scratch(), 'proj');
    assert.equal(run((o, e) => initCommand(dir, {}, o, e)).code, 0);
    mkdirSync(join(dir, 'plugins', 'hello'));
    writeFileSync(join(dir, 'plugins', 'hello', 'index.ts'), '// mine\n');
    const yaml = readFileSync(join(dir, 'gatehouse.yaml'), 'utf8');
    const r = run((o, e) => newCommand('plugin', 'hello', { dir }, o, e));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /plugins\/hello already exists; nothing was written/);
    assert.equal(r.stdout, '');
    assert.deepEqual(files(join(dir, 'plugins', 'hello')), ['index.ts']);
    assert.equal(readFileSync(join(dir, 'plugins', 'hello', 'index.ts'), 'utf8'), '// mine\n');
    assert.equal(readFileSync(join(dir, 'gatehouse.yaml'), 'utf8'), yaml);
  });

  test('init refuses a folder that has files, and a folder name that is not a package name; an empty folder is used', () => {
    const base = scratch();
    mkdirSync(join(base, 'taken'));
    writeFileSync(join(base, 'taken', 'notes.txt'), 'keep');
    const taken = run((o, e) => initCommand(join(base, 'taken'), {}, o, e));
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /taken already exists; nothing was written/);
    assert.deepEqual(files(join(base, 'taken')), ['notes.txt']);
    const bad = run((o, e) => initCommand(join(base, 'My_Gateway'), {}, o, e));
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid project folder name "My_Gateway"/);
    assert.equal(existsSync(join(base, 'My_Gateway')), false);
    const port = run((o, e) => initCommand(join(base, 'p'), { port: '70000' }, o, e));
    assert.equal(port.code, 1);
    assert.match(port.stderr, /invalid --port "70000"/);
    assert.equal(existsSync(join(base, 'p')), false);
    mkdirSync(join(base, 'empty'));
    assert.equal(run((o, e) => initCommand(join(base, 'empty'), {}, o, e)).code, 0);
    assert.ok(existsSync(join(base, 'empty', 'gatehouse.yaml')));
  });

  test('a gatehouse.yaml that cannot be parsed refuses the plugin before anything is written', () => {
    const dir = scratch();
    writeFileSync(join(dir, 'gatehouse.yaml'), 'routes: [\n');
    const r = run((o, e) => newCommand('plugin', 'hello', { dir }, o, e));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /gatehouse\.yaml cannot be parsed, so the plugin cannot be registered in it \(nothing was written\)/);
    assert.deepEqual(files(dir), ['gatehouse.yaml']);
  });

  test('registration adds an extensions list and a route when the config has neither, and no route without an upstream', () => {
    const withUpstream = registerInConfig('upstreams:\n  - id: api\n    nodes: { "127.0.0.1:1": 1 }\n', 'g.yaml', 'plugin', 'x');
    assert.match(withUpstream.text, /extensions:\n {2}- \.\/dist\/plugins\/x\n/);
    assert.match(withUpstream.text, /routes:\n {2}- id: x\n {4}uri: \/x\/\*\n {4}plugins:\n {6}x: \{\}\n {4}upstream_id: api\n/);
    const without = registerInConfig('gateway:\n  listen: 127.0.0.1:9080\n', 'g.yaml', 'plugin', 'x');
    assert.deepEqual(without.changes, ['extensions: ./dist/plugins/x']);
    assert.doesNotMatch(without.text, /routes:/);
  });

  test('inside the Gatehouse repository, generated code imports the SDK by the package name, as first-party code does', () => {
    const repo = scratch();
    writeFileSync(join(repo, 'package.json'), JSON.stringify({ name: packageName }));
    mkdirSync(join(repo, 'core'));
    writeFileSync(join(repo, 'core', 'sdk.ts'), '');
    const r = run((o, e) => newCommand('provider', 'file', { dir: join(repo, 'providers') }, o, e));
    assert.equal(r.code, 0, r.stderr);
    const dir = join(repo, 'providers', 'file');
    assert.match(readFileSync(join(dir, 'index.ts'), 'utf8'), new RegExp(`from '${packageName}/sdk';`));
    assert.match(readFileSync(join(dir, 'schema.ts'), 'utf8'), new RegExp(`from '${packageName}/sdk';`));
    assert.match(readFileSync(join(dir, 'file.test.ts'), 'utf8'), new RegExp(`from '${packageName}/testing';`));
    for (const f of files(dir)) assert.ok(!/from '\.[^']*core\//.test(readFileSync(join(dir, f), 'utf8')), `${f} imports no core file by path`);
  });

  test('the gatehouse CLI runs the commands: exit 1 and one error line for a bad name, exit 0 listing files otherwise', async () => {
    const dir = scratch();
    const bad = await runCli(['new', 'plugin', 'Bad', '--dir', dir]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'gatehouse: invalid plugin name "Bad": use lowercase letters, digits and dashes, starting with a letter (^[a-z][a-z0-9-]*$)\n');
    const ok = await runCli(['new', 'provider', 'hello', '--dir', dir]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^created .*hello\/index\.ts$/m);
    const init = await runCli(['init', join(dir, 'proj'), '--port', '9999']);
    assert.equal(init.code, 0, init.stderr);
    assert.match(readFileSync(join(dir, 'proj', 'gatehouse.yaml'), 'utf8'), /127\.0\.0\.1:9999/);
  });
});

test('the templates as they are (tokens unreplaced) compile and pass their own tests against this checkout', { timeout: 180_000 }, async () => {
  const dir = scratch();
  cpSync(join(templates, 'project'), dir, { recursive: true });
  cpSync(join(templates, 'plugin'), join(dir, 'plugins', 'template-plugin'), { recursive: true });
  cpSync(join(templates, 'provider'), join(dir, 'providers', 'template-provider'), { recursive: true });
  // loaded through `extensions:` too, which checks the declared Gatehouse range against this version
  let yaml = readFileSync(join(dir, 'gatehouse.yaml'), 'utf8');
  yaml = registerInConfig(yaml, 'gatehouse.yaml', 'plugin', 'template-plugin').text;
  yaml = registerInConfig(yaml, 'gatehouse.yaml', 'provider', 'template-provider').text;
  writeFileSync(join(dir, 'gatehouse.yaml'), yaml);
  // what `npm install` gives a project, without the registry: this checkout and its typescript and @types/node
  mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true });
  symlinkSync(root, join(dir, 'node_modules', packageName));
  symlinkSync(join(root, 'node_modules', '@types', 'node'), join(dir, 'node_modules', '@types', 'node'));
  await sh(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], dir, 120_000);
  const { out } = await sh(process.execPath, ['--test', '--test-reporter=spec'], join(dir, 'dist'), 120_000);
  assert.match(out, /adds X-Hello: hello to a proxied response by default/);
  assert.match(out, /a consumer key referenced in the file authenticates through a gateway/);
  assert.match(out, /gatehouse\.yaml loads with every extension/);
  assert.deepEqual(testCounts(out), { pass: 13, fail: 0 }, out);
  for (const kind of ['plugin', 'provider']) {
    const range = /gatehouse: '([^']+)'/.exec(readFileSync(join(templates, kind, 'index.ts'), 'utf8'))?.[1];
    assert.ok(range !== undefined && semver.satisfies(version, range), `templates/${kind} declares gatehouse: '${range}', which Gatehouse ${version} does not satisfy`);
  }
});
