// The real `gatehouse` CLI as a child process: `validate` exit codes and messages, and `start`
// refusing a bad config.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
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
    const f = file('secret.yaml', VALID);
    chmodSync(f, 0o000);
    // root reads any file whatever its mode: run the CLI as "nobody" then
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    if (asUser.uid !== undefined) chmodSync(dir, 0o711);
    const r = await runCli(['validate', '-c', f], asUser);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `configuration cannot be read: ${f}: permission denied (EACCES)\n`);
  });

  test('exits 1 when -c is not given', async () => {
    const r = await runCli(['validate']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /required option '-c, --config <file>' not specified/);
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

describe('gatehouse start', () => {
  test('refuses an invalid config: exit 1 and one error line naming each path', async () => {
    const f = file('start-bad.yaml', 'routes:\n  - id: r\n    uri: /\n    upstream:\n      nodes: {}\n    plugins: { nope: {} }\n');
    const r = await runCli(['start', '-c', f]);
    assert.equal(r.code, 1);
    const errors = r.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { level: number; msg: string; errors?: string[] })
      .filter((l) => l.level >= 50);
    assert.equal(errors.length, 1, r.stdout);
    assert.equal(errors[0].msg, 'gatehouse cannot start');
    assert.deepEqual(errors[0].errors, ['routes[0].upstream.nodes: must have at least 1 entry', 'routes[0].plugins.nope: unknown plugin "nope"']);
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
      'admin.listen: only $env:// references are resolved in gateway and admin settings (they are needed before any secret backend starts); admin.key may be any reference',
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
