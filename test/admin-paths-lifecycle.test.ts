// The Admin API path by path (docs/admin-api.md): the life of one resource of each kind (routes,
// upstreams, consumers, secrets/{manager}/{id}, ssls) on both prefixes (/admin/ and /apisix/admin/):
// - PUT creates (201) and replaces (200), GET, list, PATCH (RFC 7386 merge: null deletes) and
//   DELETE answer APISIX envelopes, and each write is live on the data plane when it is answered;
// - "******" written back keeps the stored secret;
// - no answer in the whole file carries a planted secret (every plaintext secret written here
//   contains MARK; the last test scans every answer).
// Refused calls: admin-paths-refusals.test.ts; readonly stores and the CLI: admin-paths-stores.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminPathsFixture, answer, hit, planted, PREFIXES, ONE, scanAnswers, servedBy, stateOf, tagOf, vaultKey, withKey, type Kind, type Prefix } from './helpers/admin-paths';
import type { Upstream } from './helpers/harness';
import { makeSslPki, type SslPair, type SslPki } from './helpers/ssl-pki';

const fx = adminPathsFixture({ main: true });

// ---------------------------------------------------------------------------------------------
// 1. the life of one resource of each kind: PUT create, PUT replace, GET, list, PATCH, DELETE

interface Ctx {
  /** "a" for /admin/, "x" for /apisix/admin/ */
  t: string;
  p: Prefix;
}

interface Lifecycle {
  kind: Kind;
  id(c: Ctx): string;
  create(c: Ctx): Record<string, unknown>;
  replace(c: Ctx): Record<string, unknown>;
  patch(c: Ctx): Record<string, unknown>;
  /** Checks of the `value` answered by each write (and then by GET). */
  created(v: any, c: Ctx): void;
  replaced(v: any, c: Ctx): void;
  patched(v: any, c: Ctx): void;
  /** Data plane checks right after each write's answer (no wait: writes are live when answered). */
  live: Record<'created' | 'replaced' | 'patched' | 'deleted', (c: Ctx) => Promise<void>>;
  /** Resources that make the kind observable on the data plane (a route on an upstream, a consumer on a secret). */
  afterCreate?(c: Ctx): Promise<void>;
  beforeDelete?(c: Ctx): Promise<void>;
}

const node = (u: Upstream, weight = 1) => ({ host: '127.0.0.1', port: u.port, weight });
const consumerKey = (c: Ctx, n: number) => planted(`c-${c.t}-${n}`);
let pki: SslPki | undefined;
const pairs = new Map<string, SslPair>();
/** The n-th certificate and key of a prefix's SSL resource (made with openssl when first asked for). */
const sslPair = (c: Ctx, n: number): SslPair => {
  const k = `${c.t}${n}`;
  if (!pairs.has(k)) pairs.set(k, (pki ??= makeSslPki()).leaf([`${c.t}.ssl.test`]));
  return pairs.get(k)!;
};
/** The SSL resource the main gateway's TLS table gives a server name, with the context (no TLS listener yet). */
const tlsFor = (name: string) => fx.mainGateway.gw.snapshot.tls.select(name);

const LIFECYCLES: Lifecycle[] = [
  {
    kind: 'routes',
    id: (c) => `r-${c.t}`,
    create: (c) => ({ uri: `/r-${c.t}`, desc: 'first', plugins: { mocking: { response_example: `r-${c.t} v1` } } }),
    created(v, c) {
      assert.equal(v.id, `r-${c.t}`);
      assert.deepEqual(v.uris, [`/r-${c.t}`]);
      assert.equal(v.desc, 'first');
      assert.equal(v.plugins.mocking.response_example, `r-${c.t} v1`);
    },
    replace: (c) => ({ uri: `/r-${c.t}`, name: 'second', plugins: { mocking: { response_example: `r-${c.t} v2`, response_headers: { 'x-one': '1', 'x-two': '2' } } } }),
    replaced(v, c) {
      assert.equal('desc' in v, false, 'a PUT replaces the whole resource');
      assert.equal(v.name, 'second');
      assert.equal(v.plugins.mocking.response_example, `r-${c.t} v2`);
    },
    // RFC 7386: null deletes a field, at any depth; objects merge
    patch: (c) => ({ name: null, desc: 'patched', plugins: { mocking: { response_example: `r-${c.t} v3`, response_status: 202, response_headers: { 'x-one': null } } } }),
    patched(v, c) {
      assert.equal('name' in v, false);
      assert.equal(v.desc, 'patched');
      assert.deepEqual(v.uris, [`/r-${c.t}`], 'kept from the stored route');
      assert.equal(v.plugins.mocking.response_example, `r-${c.t} v3`);
      assert.equal(v.plugins.mocking.response_status, 202);
      assert.deepEqual(v.plugins.mocking.response_headers, { 'x-two': '2' });
    },
    live: {
      async created(c) {
        assert.equal(await answer(fx.main.url, `/r-${c.t}`), `200 r-${c.t} v1`);
      },
      async replaced(c) {
        const h = await hit(fx.main.url, `/r-${c.t}`);
        assert.deepEqual([h.status, h.text, h.headers['x-one'], h.headers['x-two']], [200, `r-${c.t} v2`, '1', '2']);
      },
      async patched(c) {
        const h = await hit(fx.main.url, `/r-${c.t}`);
        assert.deepEqual([h.status, h.text, h.headers['x-one'], h.headers['x-two']], [202, `r-${c.t} v3`, undefined, '2']);
      },
      async deleted(c) {
        assert.equal((await hit(fx.main.url, `/r-${c.t}`)).status, 404);
      },
    },
  },
  {
    kind: 'upstreams',
    id: (c) => `u-${c.t}`,
    create: () => ({ nodes: { [fx.A.node]: 1 }, desc: 'first' }),
    created(v, c) {
      assert.equal(v.id, `u-${c.t}`);
      assert.deepEqual(v.nodes, [node(fx.A)]);
      assert.equal(v.desc, 'first');
    },
    // a route by upstream_id shows where the upstream sends requests
    afterCreate: async (c) => void (await fx.put(`${c.p}routes/via-u-${c.t}`, { uri: `/via-u-${c.t}`, upstream_id: `u-${c.t}` }, 201)),
    replace: () => ({ nodes: { [fx.B.node]: 1 }, name: 'second' }),
    replaced(v) {
      assert.deepEqual(v.nodes, [node(fx.B)]);
      assert.equal('desc' in v, false, 'a PUT replaces the whole resource');
      assert.equal(v.name, 'second');
    },
    // null deletes a node of the map form, and a field
    patch: () => ({ nodes: { [fx.B.node]: null, [fx.A.node]: 2 }, name: null, desc: 'patched' }),
    patched(v) {
      assert.deepEqual(v.nodes, [node(fx.A, 2)]);
      assert.equal('name' in v, false);
      assert.equal(v.desc, 'patched');
    },
    beforeDelete: (c) => fx.del(`${c.p}routes/via-u-${c.t}`),
    live: {
      async created(c) {
        assert.equal(await servedBy(fx.main.url, `/via-u-${c.t}`), 'A');
      },
      async replaced(c) {
        assert.equal(await servedBy(fx.main.url, `/via-u-${c.t}`), 'B');
      },
      async patched(c) {
        assert.equal(await servedBy(fx.main.url, `/via-u-${c.t}`), 'A');
      },
      async deleted(c) {
        const r = await fx.main.admin.call('PUT', `${c.p}routes/via-u-${c.t}`, { body: { uri: `/via-u-${c.t}`, upstream_id: `u-${c.t}` } });
        assert.equal(r.status, 400, r.text);
        assert.match(r.json.error_msg, new RegExp(`^routes\\[\\d+\\]\\.upstream_id: refers to unknown upstream "u-${c.t}"$`));
      },
    },
  },
  {
    kind: 'consumers',
    id: (c) => `c-${c.t}`,
    create: (c) => ({ desc: 'first', plugins: { 'key-auth': { key: consumerKey(c, 1) } } }),
    created(v, c) {
      assert.equal(v.username, `c-${c.t}`);
      assert.equal(v.desc, 'first');
      assert.equal(v.plugins['key-auth'].key, '******', 'a literal key is shown as ******');
    },
    replace: (c) => ({ desc: 'second', plugins: { 'key-auth': { key: consumerKey(c, 2) } } }),
    replaced(v) {
      assert.equal(v.desc, 'second');
      assert.equal(v.plugins['key-auth'].key, '******');
    },
    patch: (c) => ({ desc: null, labels: { team: c.t }, plugins: { 'key-auth': { key: consumerKey(c, 3) } } }),
    patched(v, c) {
      assert.equal('desc' in v, false);
      assert.deepEqual(v.labels, { team: c.t });
      assert.equal(v.plugins['key-auth'].key, '******');
    },
    live: {
      async created(c) {
        assert.equal(await withKey(fx.main.url, '/fx-ka', consumerKey(c, 1)), 200);
      },
      async replaced(c) {
        assert.deepEqual([await withKey(fx.main.url, '/fx-ka', consumerKey(c, 2)), await withKey(fx.main.url, '/fx-ka', consumerKey(c, 1))], [200, 401]);
      },
      async patched(c) {
        assert.deepEqual([await withKey(fx.main.url, '/fx-ka', consumerKey(c, 3)), await withKey(fx.main.url, '/fx-ka', consumerKey(c, 2))], [200, 401]);
      },
      async deleted(c) {
        assert.equal(await withKey(fx.main.url, '/fx-ka', consumerKey(c, 3)), 401);
      },
    },
  },
  {
    kind: 'secrets',
    id: (c) => `vault/s-${c.t}`,
    create: () => fx.vaultResource('apisix'),
    created(v, c) {
      assert.deepEqual(v, { id: `vault/s-${c.t}`, uri: fx.vault.url, prefix: 'apisix', token: '******', kv_version: 1, timeout: 5 });
    },
    // a consumer whose key is a reference into the resource
    async afterCreate(c) {
      const ref = `$secret://vault/s-${c.t}/jack-${c.t}/auth-key`;
      const r = await fx.put(`${c.p}consumers/sv-${c.t}`, { plugins: { 'key-auth': { key: ref } } }, 201);
      assert.equal(r.json.value.plugins['key-auth'].key, ref, 'a reference is shown as written');
    },
    replace: () => fx.vaultResource('apisix2'),
    replaced(v) {
      assert.equal(v.prefix, 'apisix2');
      assert.equal(v.token, '******');
    },
    // "******" keeps the stored token; null brings kv_version back to its default
    patch: () => ({ prefix: 'apisix', kv_version: null, token: '******' }),
    patched(v, c) {
      assert.deepEqual(v, { id: `vault/s-${c.t}`, uri: fx.vault.url, prefix: 'apisix', token: '******', kv_version: 'auto', timeout: 5 });
    },
    beforeDelete: (c) => fx.del(`${c.p}consumers/sv-${c.t}`),
    live: {
      async created(c) {
        assert.equal(await withKey(fx.main.url, '/fx-ka', vaultKey('apisix', `jack-${c.t}`)), 200);
      },
      async replaced(c) {
        assert.deepEqual([await withKey(fx.main.url, '/fx-ka', vaultKey('apisix2', `jack-${c.t}`)), await withKey(fx.main.url, '/fx-ka', vaultKey('apisix', `jack-${c.t}`))], [200, 401]);
      },
      async patched(c) {
        assert.deepEqual([await withKey(fx.main.url, '/fx-ka', vaultKey('apisix', `jack-${c.t}`)), await withKey(fx.main.url, '/fx-ka', vaultKey('apisix2', `jack-${c.t}`))], [200, 401]);
      },
      async deleted(c) {
        const r = await fx.main.admin.call('PUT', `${c.p}consumers/sv-${c.t}`, { body: { plugins: { 'key-auth': { key: `$secret://vault/s-${c.t}/jack-${c.t}/auth-key` } } } });
        assert.equal(r.status, 400, r.text);
        assert.match(r.json.error_msg, new RegExp(`refers to unknown secret resource "vault/s-${c.t}"`));
      },
    },
  },
  {
    kind: 'ssls',
    id: (c) => `ssl-${c.t}`,
    create: (c) => ({ ...sslPair(c, 1), snis: [`${c.t}.ssl.test`], desc: 'first' }),
    created(v, c) {
      assert.deepEqual(v, { id: `ssl-${c.t}`, cert: sslPair(c, 1).cert, key: '******', snis: [`${c.t}.ssl.test`], desc: 'first', type: 'server', status: 1 });
    },
    replace: (c) => ({ ...sslPair(c, 2), snis: [`${c.t}.ssl.test`, `*.${c.t}.ssl.test`], labels: { v: '2' } }),
    replaced(v, c) {
      assert.equal('desc' in v, false, 'a PUT replaces the whole resource');
      assert.equal(v.cert, sslPair(c, 2).cert);
      assert.equal(v.key, '******');
      assert.deepEqual(v.snis, [`${c.t}.ssl.test`, `*.${c.t}.ssl.test`]);
    },
    // "******" keeps the stored key; null deletes a field
    patch: () => ({ labels: null, desc: 'patched', key: '******' }),
    patched(v, c) {
      assert.equal('labels' in v, false);
      assert.equal(v.desc, 'patched');
      assert.equal(v.key, '******');
      assert.equal(v.cert, sslPair(c, 2).cert, 'kept from the stored resource');
    },
    live: {
      async created(c) {
        assert.equal(tlsFor(`${c.t}.ssl.test`)?.sslId, `ssl-${c.t}`);
        assert.equal(tlsFor(`www.${c.t}.ssl.test`), undefined);
      },
      async replaced(c) {
        assert.equal(tlsFor(`www.${c.t}.ssl.test`)?.sslId, `ssl-${c.t}`);
      },
      async patched(c) {
        const stored = fx.mainGateway.gw.snapshot.config.ssls.find((s) => s.id === `ssl-${c.t}`);
        assert.ok(stored?.key === sslPair(c, 2).key, 'the stored key is the one written before "******"');
        assert.equal(tlsFor(`${c.t}.ssl.test`)?.sslId, `ssl-${c.t}`);
      },
      async deleted(c) {
        assert.equal(tlsFor(`${c.t}.ssl.test`), undefined);
        assert.equal(tlsFor(`www.${c.t}.ssl.test`), undefined);
      },
    },
  },
];

for (const p of PREFIXES) {
  for (const L of LIFECYCLES) {
    test(`${p}${L.kind}: PUT creates (201) and replaces (200), GET, list, PATCH merges, DELETE; each write live at once`, async () => {
      const c: Ctx = { t: tagOf(p), p };
      const id = L.id(c);
      const path = `${p}${L.kind}/${id}`;
      const key = `/apisix/${L.kind}/${id}`;
      const listBefore = (await fx.main.admin.call('GET', `${p}${L.kind}`)).json;

      const created = await fx.main.admin.call('PUT', path, { body: L.create(c) });
      assert.equal(created.status, 201, created.text);
      assert.deepEqual(Object.keys(created.json).sort(), ['key', 'value']);
      assert.equal(created.json.key, key);
      L.created(created.json.value, c);
      await L.afterCreate?.(c);
      await L.live.created(c);

      const replaced = await fx.main.admin.call('PUT', path, { body: L.replace(c) });
      assert.equal(replaced.status, 200, replaced.text);
      assert.equal(replaced.json.key, key);
      L.replaced(replaced.json.value, c);
      await L.live.replaced(c);

      const one = await fx.main.admin.call('GET', path);
      assert.equal(one.status, 200, one.text);
      assert.deepEqual(one.json, { key, value: replaced.json.value });

      const list = await fx.main.admin.call('GET', `${p}${L.kind}`);
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(Object.keys(list.json).sort(), ['list', 'total']);
      assert.equal(list.json.total, list.json.list.length);
      assert.equal(list.json.total, listBefore.total + 1);
      for (const item of list.json.list) assert.deepEqual(Object.keys(item).sort(), ['key', 'value']);
      assert.deepEqual(
        list.json.list.find((i: { key: string }) => i.key === key),
        { key, value: one.json.value },
      );

      const patched = await fx.main.admin.call('PATCH', path, { body: L.patch(c) });
      assert.equal(patched.status, 200, patched.text);
      assert.equal(patched.json.key, key);
      L.patched(patched.json.value, c);
      assert.deepEqual((await fx.main.admin.call('GET', path)).json, { key, value: patched.json.value });
      await L.live.patched(c);

      await L.beforeDelete?.(c);
      const deleted = await fx.main.admin.call('DELETE', path);
      assert.equal(deleted.status, 200, deleted.text);
      assert.deepEqual(deleted.json, { deleted: '1', key });
      const gone = await fx.main.admin.call('GET', path);
      assert.equal(gone.status, 404, gone.text);
      assert.deepEqual(gone.json, { error_msg: `${ONE[L.kind]} "${id}" not found` });
      await L.live.deleted(c);
      assert.deepEqual((await fx.main.admin.call('GET', `${p}${L.kind}`)).json, listBefore, 'the list is back to what it was');
    });
  }

  test(`${p}consumers: PUT on the list takes the username from the body (APISIX), create then replace`, async () => {
    const t = tagOf(p);
    const [k1, k2] = [planted(`b-${t}-1`), planted(`b-${t}-2`)];
    const created = await fx.main.admin.call('PUT', `${p}consumers`, { body: { username: `b-${t}`, plugins: { 'key-auth': { key: k1 } } } });
    assert.equal(created.status, 201, created.text);
    assert.deepEqual(created.json, { key: `/apisix/consumers/b-${t}`, value: { username: `b-${t}`, plugins: { 'key-auth': { key: '******' } } } });
    assert.equal(await withKey(fx.main.url, '/fx-ka', k1), 200);
    const replaced = await fx.main.admin.call('PUT', `${p}consumers`, { body: { username: `b-${t}`, plugins: { 'key-auth': { key: k2 } } } });
    assert.equal(replaced.status, 200, replaced.text);
    assert.deepEqual([await withKey(fx.main.url, '/fx-ka', k2), await withKey(fx.main.url, '/fx-ka', k1)], [200, 401]);
    await fx.del(`${p}consumers/b-${t}`);
    assert.equal(await withKey(fx.main.url, '/fx-ka', k2), 401);
  });
}

// ---------------------------------------------------------------------------------------------
// 2. GET-edit-PUT round trips: "******" written back keeps the stored secret

interface RoundTrip {
  kind: Kind;
  id: string;
  edit?(v: any): void;
  /** A merge patch sending "******" back for a plaintext secret field. */
  maskPatch?: Record<string, unknown>;
}

const ROUND_TRIPS: RoundTrip[] = [
  { kind: 'routes', id: 'fx', edit: (v) => (v.desc = 'edited') },
  { kind: 'upstreams', id: 'fxu', edit: (v) => (v.desc = 'edited') },
  { kind: 'consumers', id: 'fxc', edit: (v) => (v.desc = 'edited'), maskPatch: { plugins: { 'key-auth': { key: '******' } } } },
  { kind: 'consumers', id: 'fxv', edit: (v) => (v.desc = 'edited') },
  { kind: 'secrets', id: 'vault/fxs', maskPatch: { token: '******' } },
];

for (const p of PREFIXES) {
  test(`${p}: what GET answers can be PUT back as is; "******" keeps the stored secret and the data plane keeps accepting it`, async (t) => {
    for (const rt of ROUND_TRIPS) {
      await t.test(`${rt.kind}/${rt.id}`, async () => {
        const path = `${p}${rt.kind}/${rt.id}`;
        const before = await stateOf(fx.main);
        const got = await fx.main.admin.call('GET', path);
        assert.equal(got.status, 200, got.text);
        const value = structuredClone(got.json.value);
        rt.edit?.(value);
        const r = await fx.main.admin.call('PUT', path, { body: value });
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json.value, value, 'stored as sent, secrets shown as ******');
        assert.deepEqual((await fx.main.admin.call('GET', path)).json.value, value);
        if (rt.maskPatch) {
          const m = await fx.main.admin.call('PATCH', path, { body: rt.maskPatch });
          assert.equal(m.status, 200, m.text);
          assert.deepEqual(m.json.value, value);
        }
        const now = await stateOf(fx.main);
        assert.deepEqual([now.plane, now.refresh], [before.plane, before.refresh], 'the data plane still accepts the stored keys; the Vault token still works');
      });
    }
    // the secrets are still shown as ******, references as written
    const c = (await fx.main.admin.call('GET', `${p}consumers`)).json.list.map((i: any) => [i.value.username, i.value.plugins?.['key-auth']?.key]);
    assert.deepEqual(c, [
      ['fxc', '******'],
      ['fxv', '$secret://vault/fxs/fx/auth-key'],
      ['fxn', undefined],
    ]);
    assert.equal((await fx.main.admin.call('GET', `${p}secrets/vault/fxs`)).json.value.token, '******');
  });
}

// ---------------------------------------------------------------------------------------------
// redaction over the whole file

scanAnswers({ answers: 100, masked: 20 });
