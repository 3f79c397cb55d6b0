// The real `gatehouse` CLI as a child process: `validate` exit codes and messages, and `start`
// refusing a bad config.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { eventually, freePort, runCli, startGatehouse, tempDir } from './helpers/harness';

const dir = tempDir('gatehouse-cli-');
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const VALID = `
routes:
  - id: mock
    uri: /ip
    plugins:
      mocking: { response_example: '{"origin":"127.0.0.1"}' }
  - id: proxied
    uri: /anything/*
    upstream:
      nodes: { "127.0.0.1:9081": 1 }
`;

describe('gatehouse validate', () => {
  test('exits 1 and names routes[0].upstream.nodes when the upstream has no nodes', async () => {
    const f = file('no-nodes.yaml', 'routes:\n  - id: r\n    uri: /\n    upstream:\n      nodes: {}\n');
    const r = await runCli(['validate', '-c', f]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `${f}: 1 error\nroutes[0].upstream.nodes: must have at least 1 entry\n`);
    assert.equal(r.stdout, '');
  });

  test('exits 0 and says ok with the route count for a valid file', async () => {
    const f = file('valid.yaml', VALID);
    const r = await runCli(['validate', '-c', f]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${f}: ok (2 routes)\n`);
    assert.equal(r.stderr, '');
  });

  test('accepts a JSON file', async () => {
    const f = file('valid.json', JSON.stringify({ routes: [{ id: 'a', uri: '/a', plugins: { mocking: {} } }] }));
    const r = await runCli(['validate', '-c', f]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${f}: ok (1 route)\n`);
  });

  test('lists every error, one per line, after a count', async () => {
    const f = file(
      'many.yaml',
      `routes:
  - id: a
    uri: /a
    upstream: { nodes: [] }
  - id: a
    uri: /b
    plugins: { nope: {} }
  - id: c
    uri: /c
    upstream_id: ghost
`,
    );
    const r = await runCli(['validate', '-c', f]);
    assert.equal(r.code, 1);
    assert.deepEqual(r.stderr.split('\n'), [
      `${f}: 4 errors`,
      'routes[0].upstream.nodes: must have at least 1 entry',
      'routes[1].id: duplicate route id "a"',
      'routes[1].plugins.nope: unknown plugin "nope"',
      'routes[2].upstream_id: refers to unknown upstream "ghost"',
      '',
    ]);
  });

  test('exits 1 with the line and column of a YAML syntax error', async () => {
    const f = file('broken.yaml', 'routes:\n  - id: a\n    id: b\n');
    const r = await runCli(['validate', '-c', f]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `configuration cannot be parsed: ${f}:3:5: Map keys must be unique\n`);
  });

  test('exits 1 with a clear message when the file does not exist', async () => {
    const f = join(dir, 'missing.yaml');
    const r = await runCli(['validate', '-c', f]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `configuration cannot be read: ${f}: no such file (ENOENT)\n`);
    assert.equal(r.stdout, '');
  });

  test('exits 1 with a clear message when the path is a directory', async () => {
    const r = await runCli(['validate', '-c', dir]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `configuration cannot be read: ${dir}: is a directory, not a file (EISDIR)\n`);
  });

  test('exits 1 with a clear message when the file cannot be read for lack of permission', async () => {
    const f = file('unreadable.yaml', VALID);
    chmodSync(f, 0o000);
    // root reads any file whatever its mode, by its capabilities CAP_DAC_OVERRIDE and
    // CAP_DAC_READ_SEARCH: without them it is held to the modes like any user. Dropping them keeps
    // root the owner of the checkout and of the Node binary (another user may not be able to enter
    // the folder they live in, e.g. under /root), and of the file, whose mode 000 then refuses it
    const via = process.getuid?.() === 0 ? ['setpriv', '--bounding-set', '-dac_override,-dac_read_search', '--inh-caps', '-dac_override,-dac_read_search', '--'] : undefined;
    const r = await runCli(['validate', '-c', f], { via });
    assert.equal(r.code, 1, via ? `as root the CLI runs under setpriv (util-linux), which must be installed: ${r.stdout}${r.stderr}` : r.stdout);
    assert.equal(r.stderr, `configuration cannot be read: ${f}: permission denied (EACCES)\n`);
  });

  test('-c defaults to gatehouse.yaml in the working directory, as for start', async () => {
    const cwd = join(dir, 'default-config');
    mkdirSync(cwd);
    const none = await runCli(['validate'], { cwd });
    assert.equal(none.code, 1);
    assert.equal(none.stderr, 'configuration cannot be read: gatehouse.yaml: no such file (ENOENT)\n');
    writeFileSync(join(cwd, 'gatehouse.yaml'), VALID);
    const r = await runCli(['validate'], { cwd });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'gatehouse.yaml: ok (2 routes)\n');
  });
});

describe('a data file of Admin API writes replacing the config file\'s data sections', () => {
  const dataJson = JSON.stringify({ routes: [{ id: 'from-data', uri: '/d', plugins: { mocking: { response_example: 'd' } } }], upstreams: [], consumers: [], secrets: [] });

  test('validate still checks the file\'s own data sections (exit 1 naming the field) and says they are not in force', async () => {
    const sub = join(dir, 'shadow');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'gw.data.json'), dataJson);
    const bad = join(sub, 'gw.yaml');
    writeFileSync(bad, `${VALID}consumers:\n  - username: jack\n    bogus: 1\n`);
    const r = await runCli(['validate', '-c', bad]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(r.stderr.includes(`${bad}: its own data sections (not in force: ${join(sub, 'gw.data.json')} replaces them): 1 error`), r.stderr);
    assert.ok(r.stderr.includes('consumers[0].bogus: is not a known field'), r.stderr);
    writeFileSync(bad, VALID);
    const ok = await runCli(['validate', '-c', bad]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `${bad}: ok (1 route)\nnote: the data sections of ${bad} are not in force: ${join(sub, 'gw.data.json')} (Admin API writes) replaces them\n`);
  });

  test('start and every reload that changes the file\'s data sections log one warning that they are not in force', async () => {
    const sub = join(dir, 'shadow-start');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'gw.data.json'), dataJson);
    const port = await freePort();
    const f = join(sub, 'gw.yaml');
    writeFileSync(f, `gateway: { listen: "127.0.0.1:${port}" }\n${VALID}`);
    const gh = await startGatehouse(f, port);
    try {
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/d`)).text(), 'd', 'the data file is in force');
      assert.equal((await fetch(`http://127.0.0.1:${port}/ip`)).status, 404, 'the file\'s own route is not');
      const warned = () => gh.logLines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('the config file has data sections, but the data file')).length;
      assert.equal(warned(), 1);
      writeFileSync(f, `gateway: { listen: "127.0.0.1:${port}" }\n${VALID.replace('/ip', '/ip2')}`);
      await eventually('a reload warned again', () => warned() === 2, 5000);
      writeFileSync(f, `gateway: { listen: "127.0.0.1:${port}", access_log: false }\n${VALID.replace('/ip', '/ip2')}`);
      await eventually('the second edit reloaded', () => gh.logLines().filter((l) => l.msg === 'config reloaded').length >= 2, 5000);
      assert.equal(warned(), 2, 'an edit outside the data sections does not warn again');
    } finally {
      await gh.kill();
    }
  });
});

describe('validate refuses what start refuses', () => {
  const cases: Array<[string, string, string]> = [
    ['gateway.listen port 0', 'gateway: { listen: "127.0.0.1:0" }\n', 'gateway.listen: port 0 is out of range (1-65535)'],
    ['gateway.listen port 70000', 'gateway: { listen: ":70000" }\n', 'gateway.listen: port 70000 is out of range (1-65535)'],
    ['admin.listen port 65536', 'admin: { listen: "127.0.0.1:65536" }\n', 'admin.listen: port 65536 is out of range (1-65535)'],
    ['the Admin API on the proxy\'s port', 'gateway: { listen: ":9311" }\nadmin: { listen: "127.0.0.1:9311" }\n', 'admin.listen: is on port 9311 of the proxy listener (gateway.listen): give the Admin API its own port'],
  ];
  for (const [what, settings, issue] of cases) {
    test(`${what}: both exit 1 naming the setting`, async () => {
      const f = file(`same-${what.replace(/[^a-z0-9]+/gi, '-')}.yaml`, `${settings}${VALID}`);
      const v = await runCli(['validate', '-c', f]);
      assert.equal(v.code, 1, v.stdout);
      assert.equal(v.stderr, `${f}: 1 error\n${issue}\n`);
      assert.equal((await failedStart(['-c', f])).line, `gatehouse: cannot start: ${issue}\n`);
    });
  }

  test('an empty file, or one with comments only: both exit 1 saying so (as a reload refuses it)', async () => {
    for (const [name, text] of [['empty.yaml', ''], ['comments.yaml', '# nothing yet\n\n']]) {
      const f = file(name, text);
      const v = await runCli(['validate', '-c', f]);
      assert.equal(v.code, 1, v.stdout);
      assert.equal(v.stderr, `configuration cannot be parsed: ${f}: the file is empty\n`);
      assert.equal((await failedStart(['-c', f])).line, `gatehouse: cannot start: configuration cannot be parsed: ${f}: the file is empty\n`);
    }
  });
});

/** `gatehouse start` that must fail: exit 1, one plain line on stderr (returned), JSON log lines only on stdout. */
async function failedStart(args: readonly string[], opts: { cwd?: string } = {}): Promise<{ line: string; logged: string[] | undefined }> {
  const r = await runCli(['start', ...args], opts);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const logs = r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { level: number; msg: string; errors?: string[] });
  const errors = logs.filter((l) => l.level >= 50);
  assert.equal(errors.length, 1, r.stdout);
  assert.equal(errors[0].msg, 'gatehouse cannot start');
  assert.match(r.stderr, /^gatehouse: cannot start: [^\n]+\n$/, 'one line on stderr');
  return { line: r.stderr, logged: errors[0].errors };
}

describe('gatehouse start', () => {
  test('refuses an invalid config: exit 1, one line on stderr naming each path, one error log line on stdout', async () => {
    const f = file('start-bad.yaml', 'routes:\n  - id: r\n    uri: /\n    upstream:\n      nodes: {}\n    plugins: { nope: {} }\n');
    const { line, logged } = await failedStart(['-c', f]);
    assert.equal(line, 'gatehouse: cannot start: routes[0].upstream.nodes: must have at least 1 entry; routes[0].plugins.nope: unknown plugin "nope"\n');
    assert.deepEqual(logged, ['routes[0].upstream.nodes: must have at least 1 entry', 'routes[0].plugins.nope: unknown plugin "nope"']);
  });

  test('a missing file, a port in use, an extension that cannot load, YAML errors: one line on stderr, exit 1', async () => {
    const missing = join(dir, 'start-missing.yaml');
    assert.equal((await failedStart(['-c', missing])).line, `gatehouse: cannot start: configuration cannot be read: ${missing}: no such file (ENOENT)\n`);
    const cwd = join(dir, 'start-default');
    mkdirSync(cwd);
    assert.equal((await failedStart([], { cwd })).line, 'gatehouse: cannot start: configuration cannot be read: gatehouse.yaml: no such file (ENOENT)\n');

    const busy = createNetServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as AddressInfo).port;
    try {
      const f = file('start-busy.yaml', `gateway: { listen: "127.0.0.1:${port}" }\n${VALID}`);
      assert.equal((await failedStart(['-c', f])).line, `gatehouse: cannot start: cannot listen: 127.0.0.1:${port}: EADDRINUSE\n`);
    } finally {
      await new Promise<void>((r) => busy.close(() => r()));
    }

    const ext = file('start-ext.yaml', `extensions: [./no-such-extension]\n${VALID}`);
    assert.equal((await failedStart(['-c', ext])).line, `gatehouse: cannot start: extensions[0]: ./no-such-extension: not found (relative to ${dir}; build it first?)\n`);

    // several syntax errors: still one line
    const yaml = file('start-yaml.yaml', 'routes:\n  - id: a\n    id: b\n  - id: c\n    id: d\n');
    assert.equal((await failedStart(['-c', yaml])).line, `gatehouse: cannot start: configuration cannot be parsed: ${yaml}:3:5: Map keys must be unique; ${yaml}:5:5: Map keys must be unique\n`);
  });

  test('with workers, a config no worker can start on gives one stderr line (from the primary), exit 1', async () => {
    const f = file('start-workers-bad.yaml', 'gateway: { workers: 2 }\nroutes: [{ id: r, uri: /, plugins: { nope: {} } }]\n');
    const r = await runCli(['start', '-c', f]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal(r.stderr, 'gatehouse: cannot start: routes[0].plugins.nope: unknown plugin "nope"\n');
    const failed = r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { msg: string }).filter((l) => l.msg === 'gatehouse cannot start');
    // the first worker to fail stops the others: one or both log why
    assert.ok(failed.length >= 1, r.stdout);
  });

  test('serves a valid config on gateway.listen', async () => {
    const port = await freePort();
    const f = file('start-ok.yaml', `gateway: { listen: "127.0.0.1:${port}" }\n${VALID}`);
    const gh = await startGatehouse(f, port);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/ip`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), '{"origin":"127.0.0.1"}');
    } finally {
      await gh.kill();
    }
  });
});

describe('references in gateway and admin settings', () => {
  test('$env:// references in gateway.listen, log_level, client_max_body_size, admin.listen and admin.allow are resolved at start; admin.key stays live', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const env = {
      GH_SET_LISTEN: `127.0.0.1:${port}`,
      GH_SET_LEVEL: 'warn',
      GH_SET_BODY: '1k',
      GH_SET_ADMIN: JSON.stringify({ listen: `127.0.0.1:${adminPort}`, allow: '127.0.0.0/8' }),
      GH_SET_ADMIN_KEY: 'settings-admin-key-0001',
    };
    const f = file(
      'start-refs.yaml',
      `gateway: { listen: $env://GH_SET_LISTEN, log_level: $env://GH_SET_LEVEL, client_max_body_size: $env://GH_SET_BODY }
admin: { listen: $env://GH_SET_ADMIN/listen, allow: [$env://GH_SET_ADMIN/allow], key: $env://GH_SET_ADMIN_KEY }
${VALID}`,
    );
    Object.assign(process.env, env);
    try {
      const v = await runCli(['validate', '-c', f]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      const gh = await startGatehouse(f, port, env);
      try {
        assert.equal((await fetch(`http://127.0.0.1:${port}/ip`)).status, 200, 'listening where GH_SET_LISTEN says');
        assert.equal((await fetch(`http://127.0.0.1:${port}/ip`, { method: 'POST', body: 'x'.repeat(2000) })).status, 413, 'client_max_body_size 1k');
        const admin = await fetch(`http://127.0.0.1:${adminPort}/admin/routes`, { headers: { 'x-api-key': env.GH_SET_ADMIN_KEY } });
        assert.equal(admin.status, 200, 'admin on the port from a JSON field, key from its reference');
        // log_level warn: the info lines of a start are not written
        assert.equal(gh.logLines().some((l) => l.msg === 'gatehouse proxy listening'), false, gh.stdout());
      } finally {
        await gh.kill();
      }
    } finally {
      for (const k of Object.keys(env)) delete process.env[k];
    }
  });

  test('an unset variable, a missing JSON field or a $secret:// reference in a gateway setting: validate and start name the setting, exit 1', async () => {
    const f = file('start-refs-bad.yaml', `gateway: { listen: $env://GH_SET_UNSET_LISTEN, log_level: $env://GH_SET_UNSET_LEVEL }
admin: { listen: $secret://vault/x/listen }
${VALID}`);
    const want = [
      'gateway.listen: environment variable GH_SET_UNSET_LISTEN is not set',
      'gateway.log_level: environment variable GH_SET_UNSET_LEVEL is not set',
      'admin.listen: only $env:// references are resolved in gateway and admin settings (they are needed before any secret backend starts); admin.key and admin.tls may hold any reference',
    ];
    const v = await runCli(['validate', '-c', f]);
    assert.equal(v.code, 1);
    for (const w of want) assert.ok(v.stdout.includes(w) || v.stderr.includes(w), `${w}\n${v.stdout}${v.stderr}`);
    const r = await runCli(['start', '-c', f]);
    assert.equal(r.code, 1, 'no crash on the unresolved listen or log level: a config error');
    const errors = r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { level: number; msg: string; errors?: string[] }).filter((l) => l.level >= 50);
    assert.equal(errors.length, 1, r.stdout + r.stderr);
    assert.deepEqual(errors[0].errors, want);
  });
});

describe('relative paths in the config file', () => {
  test('resolve from its folder, not the working directory: validate, secret resolve, start and reload', async () => {
    const proj = join(dir, 'rel');
    mkdirSync(join(proj, 'secrets'), { recursive: true });
    mkdirSync(join(proj, 'state'));
    const cwd = join(dir, 'elsewhere');
    mkdirSync(cwd);
    writeFileSync(join(proj, 'secrets', 'jack-key'), 'rel-jack-key-0001\n');
    const data = (uri: string) =>
      JSON.stringify({
        routes: [{ id: 'k', uri, plugins: { 'key-auth': {}, mocking: { response_example: 'in' } } }],
        upstreams: [],
        consumers: [{ username: 'jack', plugins: { 'key-auth': { key: '$secret://file/local/jack-key' } } }],
        secrets: [{ id: 'file/local', dir: './secrets' }],
      });
    // the data file of Admin API writes, at a relative data_file, holds the data sections
    writeFileSync(join(proj, 'state', 'admin.json'), data('/k'));
    const port = await freePort();
    writeFileSync(join(proj, 'gatehouse.yaml'), `gateway: { listen: "127.0.0.1:${port}" }\nconfig_store: { data_file: ./state/admin.json }\nsecret_policy: { files: [./secrets] }\n`);
    const f = join('..', 'rel', 'gatehouse.yaml');

    const v = await runCli(['validate', '-c', f], { cwd });
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout, `${f}: ok (1 route)\n`);
    const { createHash } = await import('node:crypto');
    const s = await runCli(['secret', 'resolve', '$secret://file/local/jack-key', '-c', f], { cwd });
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, new RegExp(`^fingerprint +sha256:${createHash('sha256').update('rel-jack-key-0001').digest('hex').slice(0, 12)}$`, 'm'));
    const missing = await runCli(['secret', 'resolve', '$secret://file/local/nope', '-c', f], { cwd });
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `secret unavailable: $secret://file/local/nope (provider file): not found (looked for ${join(proj, 'secrets', 'nope')})\n`);

    const gh = await startGatehouse(f, port, {}, cwd);
    try {
      const get = (path: string, key?: string) => fetch(`http://127.0.0.1:${port}${path}`, { headers: key ? { apikey: key } : {} });
      assert.equal((await get('/k', 'rel-jack-key-0001')).status, 200, gh.stdout());
      assert.equal((await get('/k', 'wrong')).status, 401);
      writeFileSync(join(proj, 'state', 'admin.json'), data('/k2'));
      // (a hand edit of the data file, in its own folder: the watch sees it)
      await eventually('the edited data file reloaded', async () => (await get('/k2', 'rel-jack-key-0001')).status === 200, 5000);
    } finally {
      await gh.kill();
    }
  });
});

describe('gatehouse secret resolve', () => {
  test('prints provider, latency and a sha256 fingerprint, never the value without --reveal', async () => {
    process.env.GH_CLI_SECRET = 'cli-planted-value';
    const f = file('secret.yaml', VALID);
    const r = await runCli(['secret', 'resolve', '$env://GH_CLI_SECRET', '-c', f]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^reference +\$env:\/\/GH_CLI_SECRET$/m);
    assert.match(r.stdout, /^provider +env$/m);
    assert.match(r.stdout, /^latency +\d+\.\d ms$/m);
    // sha256("cli-planted-value"), first 12 hex digits
    const { createHash } = await import('node:crypto');
    const fp = createHash('sha256').update('cli-planted-value').digest('hex').slice(0, 12);
    assert.match(r.stdout, new RegExp(`^fingerprint +sha256:${fp}$`, 'm'));
    assert.doesNotMatch(r.stdout + r.stderr, /cli-planted-value/);
  });

  test('prints the value with --reveal', async () => {
    process.env.GH_CLI_SECRET = 'cli-planted-value';
    const r = await runCli(['secret', 'resolve', '$env://GH_CLI_SECRET', '-c', file('secret2.yaml', VALID), '--reveal']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^value +cli-planted-value$/m);
  });

  test('an $env:// reference needs no config file; a $secret:// one without it names the file', async () => {
    process.env.GH_CLI_SECRET = 'cli-planted-value';
    const cwd = join(dir, 'no-config');
    mkdirSync(cwd);
    const env = await runCli(['secret', 'resolve', '$env://GH_CLI_SECRET'], { cwd });
    assert.equal(env.code, 0, env.stderr);
    assert.match(env.stdout, /^provider +env$/m);
    const secret = await runCli(['secret', 'resolve', '$secret://file/local/pw'], { cwd });
    assert.equal(secret.code, 1);
    assert.equal(secret.stderr, 'gatehouse.yaml: no such file: a $secret:// reference is resolved with the secret resources of a config file; name it with -c FILE\n');
    // a file named with -c must exist, whatever the reference
    const named = await runCli(['secret', 'resolve', '$env://GH_CLI_SECRET', '-c', 'other.yaml'], { cwd });
    assert.equal(named.code, 1);
    assert.equal(named.stderr, 'configuration cannot be read: other.yaml: no such file (ENOENT)\n');
    // the default file, when present, is read (and checked) as with -c
    writeFileSync(join(cwd, 'gatehouse.yaml'), 'routes: [{ id: r, uri: /, plugins: { nope: {} } }]\n');
    const checked = await runCli(['secret', 'resolve', '$env://GH_CLI_SECRET'], { cwd });
    assert.equal(checked.code, 1);
    assert.equal(checked.stderr, 'gatehouse.yaml: 1 error\nroutes[0].plugins.nope: unknown plugin "nope"\n');
  });

  test('exits 1 naming the reference and cause when it cannot be resolved, or when it is malformed', async () => {
    delete process.env.GH_CLI_UNSET;
    const f = file('secret3.yaml', VALID);
    const missing = await runCli(['secret', 'resolve', '$env://GH_CLI_UNSET', '-c', f]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'secret unavailable: $env://GH_CLI_UNSET (provider env): not found\n');
    const bad = await runCli(['secret', 'resolve', '$secret://vault/only-id', '-c', f]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^invalid reference: missing segments/);
    const unknown = await runCli(['secret', 'resolve', '$secret://vault/gw/jack/key', '-c', f]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no secret resource "vault\/gw"|unknown secret manager "vault"/);
  });
});
