// The setup the admin-paths-*.test.ts files share (docs/admin-api.md, path by path on both
// prefixes): planted secrets, an Admin API client recording every answer, data plane probes, a
// refused call checked to change nothing, and the shared servers (two echo upstreams, a test
// Vault) with the main file-configured gateway.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { bootGateway, startUpstream, tempDir, type TestGateway, type Upstream } from './harness';
import { startVaultServer, type VaultServer } from '../servers/vault';
import { adminCall, type Reply } from './admin-client';

// ---------------------------------------------------------------------------------------------
// planted secrets: every plaintext secret field written by a test file contains MARK

export const MARK = `planted${randomBytes(6).toString('hex')}`;
export const planted = (what: string) => `${MARK}-${what}`;
export const ADMIN_KEY = planted('admin-key');
export const VAULT_TOKEN = `hvs.${planted('vault-token')}`;
/** The literal key-auth key of the fixture consumer `fxc`. */
export const FX_KEY = planted('fx-key');
/** The literal key-auth key of the readonly gateway's consumer `roc`. */
export const RO_KEY = planted('ro-key');
/** What the test Vault holds at `<mount>/<path>` under `auth-key` (KV v1 mounts apisix and apisix2). */
export const vaultKey = (mount: 'apisix' | 'apisix2', path: string) => (mount === 'apisix2' && path === 'fx' ? FX_KEY : planted(`vault-${mount}-${path}`));
export const VAULT_PATHS = ['jack-a', 'jack-x', 'fx', 'ro', 'cli'];

export const PREFIXES = ['/admin/', '/apisix/admin/'] as const;
export type Prefix = (typeof PREFIXES)[number];
/** A short tag per prefix, so that both prefixes use their own ids. */
export const tagOf = (p: Prefix) => (p === '/admin/' ? 'a' : 'x');
export type Kind = 'routes' | 'upstreams' | 'consumers' | 'secrets' | 'ssls';
export const KINDS: readonly Kind[] = ['routes', 'upstreams', 'consumers', 'secrets', 'ssls'];
export const ONE: Record<Kind, string> = { routes: 'route', upstreams: 'upstream', consumers: 'consumer', secrets: 'secret', ssls: 'ssl' };
export const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Admin API client: records every answer for the final redaction scan

/** Every Admin API answer of the test file, scanned for MARK by its last test (scanAnswers). */
export const answers: Array<{ call: string; text: string }> = [];

export class Admin {
  constructor(readonly base: string) {}

  /** One call: `body` is sent as JSON, `raw` as is; `key: null` sends no X-API-KEY. */
  call(method: string, path: string, o: { body?: unknown; raw?: string; key?: string | null } = {}): Promise<Reply> {
    return adminCall(answers, this.base, method, path, { ...o, key: o.key === undefined ? ADMIN_KEY : o.key });
  }

  /** GET of every list. */
  async lists(prefix: Prefix = '/admin/'): Promise<Record<Kind, any>> {
    const out = {} as Record<Kind, any>;
    for (const kind of KINDS) {
      const r = await this.call('GET', `${prefix}${kind}`);
      assert.equal(r.status, 200, r.text);
      out[kind] = r.json;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// data plane probes

export async function hit(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
  const r = await request(`${base}${path}`, { headers });
  return { status: r.statusCode, text: await r.body.text(), headers: r.headers };
}

/** "<status> <body>" of a request. */
export const answer = (base: string, path: string) => hit(base, path).then((h) => `${h.status} ${h.text}`);
/** Name of the echo upstream (A or B) that answered. */
export const servedBy = (base: string, path: string) => hit(base, path).then((h) => (h.status === 200 ? (JSON.parse(h.text) as { name: string }).name : `status ${h.status}`));
/** Status of a request sending `key` in the key-auth header (none when undefined). */
export const withKey = (base: string, path: string, key?: string) => hit(base, path, key === undefined ? {} : { apikey: key }).then((h) => h.status);

// ---------------------------------------------------------------------------------------------
// a gateway under test and its observable state

export interface Rig {
  admin: Admin;
  url: string;
  /** Data plane requests whose answers must not change on a refused write. */
  probes: Record<string, () => Promise<unknown>>;
  /** A secret resource whose forced refresh must keep working (`vault/fxs`). */
  refresh: string;
}

/** Everything a refused write must leave as it was: the lists, the data plane, a secret refresh. */
export async function stateOf(rig: Rig): Promise<Record<string, unknown>> {
  const plane: Record<string, unknown> = {};
  for (const [name, probe] of Object.entries(rig.probes)) plane[name] = await probe();
  const refreshed = await rig.admin.call('POST', `/admin/secrets/${rig.refresh}/refresh`);
  return { lists: await rig.admin.lists(), plane, refresh: refreshed.json };
}

/** Index of an item in the running config's list (error paths are `routes[3].uri`), or the next free one. */
export type Ix = (kind: Kind, id?: string) => number;

/** A call that must be refused. `path` is relative to the prefix. */
export interface Refusal {
  name: string;
  method: string;
  path: string;
  body?: unknown;
  raw?: string;
  key?: string | null;
  status: number;
  /** The exact error_msg, or a pattern it must match. */
  msg?: string | RegExp;
  /** The exact `errors` list (then error_msg must be its first entry). */
  errors?: (ix: Ix) => string[];
}

/** Send a refused call; check its answer, then that nothing it touched changed. */
export async function refuse(rig: Rig, prefix: Prefix, c: Refusal): Promise<void> {
  const before = await stateOf(rig);
  const lists = before.lists as Record<Kind, { list: Array<{ key: string }> }>;
  const ix: Ix = (kind, id) => (id === undefined ? lists[kind].list.length : lists[kind].list.findIndex((i) => i.key === `/apisix/${kind}/${id}`));
  const r = await rig.admin.call(c.method, `${prefix}${c.path}`, { body: c.body, raw: c.raw, key: c.key });
  assert.equal(r.status, c.status, r.text);
  assert.equal(typeof r.json?.error_msg, 'string', `an error_msg: ${r.text}`);
  if (c.errors) {
    const errors = c.errors(ix);
    assert.deepEqual(r.json.errors, errors, r.text);
    assert.equal(r.json.error_msg, errors[0]);
  } else assert.equal(r.json.errors, undefined, r.text);
  if (typeof c.msg === 'string') assert.equal(r.json.error_msg, c.msg);
  else if (c.msg) assert.match(r.json.error_msg, c.msg);
  assert.deepEqual(await stateOf(rig), before, 'the running config, the data plane and the secret backends are unchanged');
}

/** A JSON route body of exactly `n` bytes. */
export function routeOfSize(n: number): string {
  const head = '{"uri":"/big","desc":"';
  const tail = '"}';
  return head + 'x'.repeat(n - head.length - tail.length) + tail;
}


// ---------------------------------------------------------------------------------------------
// shared servers and the main gateway (file-configured, the default store)

/** What a test file's `before` starts; read in tests, not at load. */
export interface Fixture {
  A: Upstream;
  B: Upstream;
  vault: VaultServer;
  /** The main gateway (when asked for). */
  main: Rig;
  /** The main gateway itself (its snapshot: the TLS table has no listener to probe yet). */
  mainGateway: TestGateway;
  /** Temporary directories removed by `after`. */
  dirs: string[];
  /** A vault secret resource on the test Vault. */
  vaultResource(prefix: 'apisix' | 'apisix2', token?: string, extra?: Record<string, unknown>): Record<string, unknown>;
  /**
   * A gateway config: routes `/<t>` (mocking), `/<t>-up` (on upstream `<t>u`, node A) and `/<t>-ka`
   * (key-auth), consumers `<t>c` (literal `key`) and `<t>v` (a key from the Vault resource
   * `vault/<t>s`), then the `more` items of each list.
   */
  config(t: 'fx' | 'ro', key: string, more?: { config_store?: unknown; upstreams?: unknown[]; consumers?: unknown[]; secrets?: unknown[] }): Record<string, unknown>;
  /** A gateway on `config` (written as `name` in a fresh directory), and the rig over its `probes`; closed by the caller. */
  boot(name: string, config: Record<string, unknown>, refresh: string, probes: (url: string) => Rig['probes']): Promise<{ gateway: TestGateway; rig: Rig; dir: string }>;
  /** PUT to the main gateway, expecting `status`. */
  put(path: string, body: unknown, status: number): Promise<Reply>;
  /** DELETE on the main gateway, expecting 200. */
  del(path: string): Promise<void>;
}

/**
 * Register the file's `before` and `after`: the shared servers, and with `main` the main gateway,
 * checked to serve its fixture.
 */
export function adminPathsFixture(o: { main: boolean }): Fixture {
  let mainGw: TestGateway | undefined;
  const fx = { dirs: [] as string[] } as unknown as Fixture;
  fx.vaultResource = (prefix, token = VAULT_TOKEN, extra = {}) => ({ uri: fx.vault.url, prefix, token, kv_version: 1, ...extra });
  fx.config = (t, key, more = {}) => ({
    admin: { key: ADMIN_KEY },
    ...(more.config_store === undefined ? {} : { config_store: more.config_store }),
    upstreams: [{ id: `${t}u`, nodes: { [fx.A.node]: 1 } }, ...(more.upstreams ?? [])],
    routes: [
      { id: t, uri: `/${t}`, plugins: { mocking: { response_example: t } } },
      { id: `${t}-up`, uri: `/${t}-up`, upstream_id: `${t}u` },
      { id: `${t}-ka`, uri: `/${t}-ka`, plugins: { 'key-auth': {}, mocking: { response_example: `${t}-ka` } } },
    ],
    consumers: [
      { username: `${t}c`, plugins: { 'key-auth': { key } } },
      { username: `${t}v`, plugins: { 'key-auth': { key: `$secret://vault/${t}s/${t}/auth-key` } } },
      ...(more.consumers ?? []),
    ],
    secrets: [{ id: `vault/${t}s`, ...fx.vaultResource('apisix') }, ...(more.secrets ?? [])],
  });
  fx.boot = async (name, config, refresh, probes) => {
    const dir = tempDir('gatehouse-admin-paths-');
    fx.dirs.push(dir);
    writeFileSync(join(dir, name), JSON.stringify(config, null, 2));
    const gateway = await bootGateway({}, { configPath: join(dir, name), adminListen: '127.0.0.1:0' });
    return { gateway, dir, rig: { admin: new Admin(`http://127.0.0.1:${gateway.gw.adminAddress!.port}`), url: gateway.url, refresh, probes: probes(gateway.url) } };
  };
  fx.put = async (path, body, status) => {
    const r = await fx.main.admin.call('PUT', path, { body });
    assert.equal(r.status, status, `PUT ${path}: ${r.text}`);
    return r;
  };
  fx.del = async (path) => {
    const r = await fx.main.admin.call('DELETE', path);
    assert.equal(r.status, 200, `DELETE ${path}: ${r.text}`);
  };

  async function vaultCall(method: 'POST' | 'PUT', path: string, body: unknown): Promise<void> {
    const r = await request(`${fx.vault.url}/v1/${path}`, { method, headers: { 'x-vault-token': VAULT_TOKEN, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await r.body.text();
    assert.ok(r.statusCode === 200 || r.statusCode === 204, `vault ${method} ${path}: ${r.statusCode} ${text}`);
  }

  before(async () => {
    fx.A = await startUpstream(undefined, 'A');
    fx.B = await startUpstream(undefined, 'B');
    fx.vault = await startVaultServer({ rootToken: VAULT_TOKEN });
    for (const mount of ['apisix', 'apisix2'] as const) {
      await vaultCall('POST', `sys/mounts/${mount}`, { type: 'kv', options: { version: '1' } });
      for (const p of VAULT_PATHS) await vaultCall('PUT', `${mount}/${p}`, { 'auth-key': vaultKey(mount, p) });
    }
    if (!o.main) return;
    const booted = await fx.boot('gatehouse.yaml', fx.config('fx', FX_KEY, { consumers: [{ username: 'fxn', desc: 'no plugins' }] }), 'vault/fxs', (url) => ({
      'GET /fx': () => answer(url, '/fx'),
      'GET /fx-up (upstream fxu)': () => servedBy(url, '/fx-up'),
      'fx-ka with the literal key of fxc': () => withKey(url, '/fx-ka', FX_KEY),
      'fx-ka with the Vault key of fxv': () => withKey(url, '/fx-ka', vaultKey('apisix', 'fx')),
      'fx-ka with the apisix2 value': () => withKey(url, '/fx-ka', vaultKey('apisix2', 'jack-a')),
      'fx-ka without a key': () => withKey(url, '/fx-ka'),
      'fx-ka with a wrong key': () => withKey(url, '/fx-ka', 'wrong'),
      'GET /nowhere': () => answer(url, '/nowhere'),
    }));
    mainGw = fx.mainGateway = booted.gateway;
    const main = (fx.main = booted.rig);
    const url = main.url;
    // the fixture is what the data plane serves
    assert.deepEqual(await stateOf(main), {
      lists: await main.admin.lists(),
      plane: {
        'GET /fx': '200 fx',
        'GET /fx-up (upstream fxu)': 'A',
        'fx-ka with the literal key of fxc': 200,
        'fx-ka with the Vault key of fxv': 200,
        'fx-ka with the apisix2 value': 401,
        'fx-ka without a key': 401,
        'fx-ka with a wrong key': 401,
        'GET /nowhere': `404 ${(await hit(url, '/nowhere')).text}`,
      },
      refresh: { key: '/apisix/secrets/vault/fxs', refreshed: 1, failed: 0, published: true },
    });
  });

  after(async () => {
    await mainGw?.close();
    await fx.A?.close();
    await fx.B?.close();
    await fx.vault?.close();
    for (const d of fx.dirs) rmSync(d, { recursive: true, force: true });
  });
  return fx;
}

/**
 * The file's last test: no Admin API answer of the file carried a planted secret.
 * @param atLeast how many answers, and how many with a masked field, the file is known to make
 */
export function scanAnswers(atLeast: { answers: number; masked: number }): void {
  test('no Admin API answer in this file carried a planted secret', () => {
    assert.ok(answers.length > atLeast.answers, `answers were collected (${answers.length})`);
    assert.ok(answers.filter((a) => a.text.includes('"******"')).length > atLeast.masked, 'plaintext secret fields were answered, masked');
    assert.deepEqual(
      answers.filter((a) => a.text.includes(MARK)).map((a) => a.call),
      [],
    );
  });
}
