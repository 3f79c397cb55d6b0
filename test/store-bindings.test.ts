// Destination bindings (credential → the one origin it may be sent to, trust on first use) as the
// config stores keep them: the file store's folder beside the data file (survives a new store on
// the same file, mode 0600, a corrupt binding an error naming its file, a crash mid-write losing
// nothing, no hot reload), the etcd store's keys on a real etcd (racing nodes agree on one winner,
// a node started later sees it, unbind, no reload, a node keeps its bindings while etcd is away,
// a read-only etcd user records none), and the in-memory ones.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileConfigStore, MemoryConfigStore } from '../core/stores/file-store';
import { EtcdConfigStore } from '../core/stores/etcd-store';
import type { DestinationBindings } from '../core/contracts';
import { silentLogger } from '../core/observe/log';
import { enableEtcdAuth, startEtcd, type EtcdServer } from './helpers/etcd';
import { delay, eventually, tempDir } from './helpers/harness';

const VAULT = '$env://VAULT_TOKEN';

/** A config file in a new folder; `extra` YAML lines are appended. @returns its path */
function configFile(extra = ''): string {
  const path = join(tempDir('gatehouse-bindings-'), 'gatehouse.yaml');
  writeFileSync(path, `gateway:\n  listen: 127.0.0.1:0\n${extra}`);
  return path;
}

function bindingsOf(store: { bindings?: DestinationBindings }): DestinationBindings {
  assert.ok(store.bindings, 'the store keeps destination bindings');
  return store.bindings;
}

/** Many credentials, each bound by two stores to two origins at once: both must return the same winner. */
async function race(a: DestinationBindings, b: DestinationBindings, n: number): Promise<Map<string, string>> {
  const winners = new Map<string, string>();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const cred = `$env://RACE_${i}`;
      const [wa, wb] = await Promise.all([a.bind(cred, 'https://a.example:8200'), b.bind(cred, 'https://b.example:8200')]);
      assert.equal(wa, wb, `${cred}: both stores agree on the winner`);
      winners.set(cred, wa);
    }),
  );
  return winners;
}

test('file store: a binding is the first destination, survives a new store on the same file, in a 0600 file; unbind frees it', async () => {
  const path = configFile();
  const one = bindingsOf(new FileConfigStore(path));
  assert.equal(await one.bind(VAULT, 'https://vault.example:8200'), 'https://vault.example:8200');
  assert.equal(await one.bind(VAULT, 'https://evil.example:8200'), 'https://vault.example:8200', 'the first destination stays');
  const dir = join(path, '..', 'gatehouse.data.bindings');
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const files = readdirSync(dir);
  assert.equal(files.length, 1);
  assert.equal(statSync(join(dir, files[0])).mode & 0o777, 0o600);
  assert.ok(!existsSync(join(path, '..', 'gatehouse.data.json')), 'no data file is made: the config file stays the source of data');
  // a restart: a new store on the same file remembers
  const two = bindingsOf(new FileConfigStore(path));
  assert.deepEqual([...(await two.list())], [[VAULT, 'https://vault.example:8200']]);
  assert.equal(await two.bind(VAULT, 'https://evil.example:8200'), 'https://vault.example:8200');
  assert.equal(await two.unbind(VAULT), true);
  assert.equal(await two.unbind(VAULT), false);
  assert.equal((await one.list()).size, 0);
  assert.equal(await one.bind(VAULT, 'https://vault2.example:8200'), 'https://vault2.example:8200', 'unbound: the next destination is the first again');
  // names that are no plain file name: a long one (hashed), dots and slashes (encoded), an ill-formed one (refused)
  const long = `$secret://vault/${'x'.repeat(300)}`;
  for (const cred of [long, '..', '../../etc/passwd']) assert.equal(await one.bind(cred, 'https://vault.example:8200'), 'https://vault.example:8200', cred.slice(0, 30));
  assert.equal(await two.bind(long, 'https://evil.example'), 'https://vault.example:8200');
  assert.deepEqual([...(await two.list()).keys()].sort(), [VAULT, long, '..', '../../etc/passwd'].sort());
  assert.ok(readdirSync(dir).every((f) => f.length <= 200 && !f.startsWith('.')), 'every binding is a plain file of the folder');
  await assert.rejects(one.bind('$env://\ud800', 'https://vault.example:8200'), (e: Error & { code?: string }) => e.code === 'GH_ERR_CONFIG_INVALID');
});

test('file store: two stores (as two workers) racing to bind one credential to two origins agree on one winner', async () => {
  const path = configFile();
  const a = bindingsOf(new FileConfigStore(path));
  const b = bindingsOf(new FileConfigStore(path));
  const winners = await race(a, b, 20);
  assert.deepEqual(new Map(await a.list()), winners);
  assert.deepEqual(new Map(await bindingsOf(new FileConfigStore(path)).list()), winners);
  // within one store, concurrent binds are serialised too
  const c = bindingsOf(new FileConfigStore(path));
  const got = await Promise.all(['https://x.example', 'https://y.example', 'https://z.example'].map((d) => c.bind('$env://ONE', d)));
  assert.deepEqual(new Set(got).size, 1);
});

test('file store: a truncated or garbled binding is an error naming its file, never "not bound"; a leftover temp file loses nothing', async () => {
  const path = configFile();
  const store = bindingsOf(new FileConfigStore(path));
  await store.bind(VAULT, 'https://vault.example:8200');
  await store.bind('$env://OTHER', 'https://other.example');
  const dir = join(path, '..', 'gatehouse.data.bindings');
  // a crash mid-write leaves a temp file, whole or cut short: not a binding, and the others stay
  writeFileSync(join(dir, `.${encodeURIComponent('$env://NEW')}.999999.abc.tmp`), '{"credential":"$env://NEW","dest');
  writeFileSync(join(dir, `.${encodeURIComponent(VAULT)}.999999.def.tmp`), JSON.stringify({ credential: VAULT, destination: 'https://evil.example' }));
  const fresh = bindingsOf(new FileConfigStore(path));
  assert.deepEqual(new Map(await fresh.list()), new Map([[VAULT, 'https://vault.example:8200'], ['$env://OTHER', 'https://other.example']]));
  assert.equal(await fresh.bind(VAULT, 'https://evil.example'), 'https://vault.example:8200');
  assert.equal(await fresh.bind('$env://NEW', 'https://new.example'), 'https://new.example');
  // the binding file itself truncated (disk trouble, a hand edit)
  const file = join(dir, encodeURIComponent(VAULT));
  writeFileSync(file, readFileSync(file, 'utf8').slice(0, 20));
  const broken = bindingsOf(new FileConfigStore(path));
  await assert.rejects(broken.list(), (e: Error) => e.message.includes(file) && /not a destination binding/.test(e.message));
  await assert.rejects(broken.bind(VAULT, 'https://evil.example'), (e: Error) => e.message.includes(file));
  assert.equal(readFileSync(file, 'utf8').length, 20, 'the corrupt binding is not overwritten');
  assert.equal(await broken.bind('$env://OTHER', 'https://evil.example'), 'https://other.example', 'the other bindings still hold');
  // a file that holds another credential's binding (copied over) is refused too
  writeFileSync(file, JSON.stringify({ credential: '$env://OTHER', destination: 'https://evil.example' }));
  await assert.rejects(broken.bind(VAULT, 'https://evil.example'), (e: Error) => e.message.includes(file) && e.message.includes('$env://OTHER'));
});

test('file store: bindings are no config: creating their folder reloads nothing, also beside a data file without an extension', async () => {
  const path = configFile('config_store:\n  data_file: ./admin-data\n');
  const store = new FileConfigStore(path, 20);
  await store.load();
  let reloads = 0;
  store.watch(() => reloads++);
  try {
    await delay(100);
    await bindingsOf(store).bind(VAULT, 'https://vault.example:8200');
    await bindingsOf(store).bind('$env://OTHER', 'https://other.example');
    assert.ok(existsSync(join(path, '..', 'admin-data.bindings')));
    await delay(400);
    assert.equal(reloads, 0, 'no reload for the bindings folder');
    // the watch still works
    writeFileSync(path, 'gateway:\n  listen: 127.0.0.1:1\n');
    await eventually('a config edit reloads', () => reloads > 0, 3000);
  } finally {
    await store.close();
  }
});

test('read-only file store and memory store: bindings in memory, nothing written', async () => {
  const path = configFile('config_store:\n  readonly: true\n');
  const ro = bindingsOf(new FileConfigStore(path));
  assert.equal(await ro.bind(VAULT, 'https://vault.example:8200'), 'https://vault.example:8200');
  assert.equal(await ro.bind(VAULT, 'https://evil.example'), 'https://vault.example:8200');
  assert.deepEqual(readdirSync(join(path, '..')), ['gatehouse.yaml']);
  assert.equal((await bindingsOf(new FileConfigStore(path)).list()).size, 0, 'another store (a restart) starts empty');
  const mem = bindingsOf(new MemoryConfigStore({}));
  assert.equal(await mem.bind(VAULT, 'https://vault.example:8200'), 'https://vault.example:8200');
  assert.equal(await mem.bind(VAULT, 'https://evil.example'), 'https://vault.example:8200');
  assert.equal(await mem.unbind(VAULT), true);
  assert.equal((await mem.list()).size, 0);
  // the etcd store's own file store (no data file) has none: the etcd store keeps them
  assert.equal(new FileConfigStore(path, 100, false).bindings, undefined);
});

// ---- etcd --------------------------------------------------------------------------------------

let etcd: EtcdServer;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.close();
});

function etcdStore(prefix: string, auth?: { username: string; password: string }): EtcdConfigStore {
  const path = configFile(`config_store:\n  type: etcd\n  prefix: ${prefix}\n`);
  return new EtcdConfigStore(new FileConfigStore(path, 100, false), { endpoints: [etcd.endpoint], prefix, timeoutMs: 1500, logger: silentLogger(), encryptionKey: randomBytes(32), auth });
}

test('etcd: two nodes racing to bind one credential to two origins agree; a node started later lists it; unbind frees it; bindings are no data and reload nothing', { timeout: 60000 }, async () => {
  const prefix = '/gh-bindings-race';
  const a = etcdStore(prefix);
  const b = etcdStore(prefix);
  let c: EtcdConfigStore | undefined;
  try {
    await a.load();
    let reloads = 0;
    a.watch(() => reloads++);
    const winners = await race(a.bindings, b.bindings, 20);
    c = etcdStore(prefix);
    const doc = await c.load();
    assert.deepEqual(doc.routes, [], 'binding keys are not data');
    assert.deepEqual(new Map(await c.bindings.list()), winners);
    assert.equal(await c.bindings.bind('$env://RACE_0', 'https://c.example'), winners.get('$env://RACE_0'));
    // the keys: under the prefix's bookkeeping, the credential URI-encoded, the binding in the clear
    const raw = etcd.client();
    try {
      const v = await raw.get(`${prefix}/_gatehouse/bindings/${encodeURIComponent('$env://RACE_0')}`).string();
      assert.equal(JSON.parse(v!).destination, winners.get('$env://RACE_0'));
    } finally {
      raw.close();
    }
    assert.equal(await b.bindings.unbind('$env://RACE_0'), true);
    assert.equal(await b.bindings.unbind('$env://RACE_0'), false);
    assert.equal((await c.bindings.list()).has('$env://RACE_0'), false);
    assert.equal(await c.bindings.bind('$env://RACE_0', 'https://c.example'), 'https://c.example');
    assert.equal(await a.bindings.bind('$env://RACE_0', 'https://a.example:8200'), 'https://c.example', 'a node that bound it before learns the new binding');
    await delay(300);
    assert.equal(reloads, 0, 'no reload for binding changes');
    assert.deepEqual((await a.load()).routes, []);
  } finally {
    await a.close();
    await b.close();
    await c?.close();
  }
});

test('etcd: a node keeps its bindings while etcd is away (a new destination is refused, not bound); a garbled binding key is an error naming it', { timeout: 60000 }, async () => {
  const prefix = '/gh-bindings-outage';
  const a = etcdStore(prefix);
  const b = etcdStore(prefix);
  try {
    await a.load();
    a.watch(() => undefined);
    assert.equal(await b.bindings.bind(VAULT, 'https://vault.example:8200'), 'https://vault.example:8200');
    // the watch brings it to node a, which then answers without etcd
    await eventually('node a learns the binding', async () => (await a.bindings.bind(VAULT, 'https://vault.example:8200')) === 'https://vault.example:8200', 3000);
    await etcd.kill();
    try {
      assert.equal(await a.bindings.bind(VAULT, 'https://vault.example:8200'), 'https://vault.example:8200');
      await assert.rejects(a.bindings.bind(VAULT, 'https://evil.example'), (e: Error & { code?: string }) => e.code === 'GH_ERR_STORE_UNAVAILABLE' && e.message.includes(VAULT));
      await assert.rejects(a.bindings.bind('$env://NEW', 'https://new.example'), (e: Error & { code?: string }) => e.code === 'GH_ERR_STORE_UNAVAILABLE');
    } finally {
      await etcd.restart();
    }
    const raw = etcd.client();
    const key = `${prefix}/_gatehouse/bindings/${encodeURIComponent('$env://GARBLED')}`;
    try {
      await raw.put(key).value('{"credential":"$env://GARB');
    } finally {
      raw.close();
    }
    await assert.rejects(b.bindings.list(), (e: Error) => e.message.includes(`etcd key ${key}`));
    await assert.rejects(b.bindings.bind('$env://GARBLED', 'https://evil.example'), (e: Error) => e.message.includes(`etcd key ${key}`));
    assert.deepEqual((await b.load()).routes, [], 'a garbled binding breaks no config load');
  } finally {
    await a.close();
    await b.close();
  }
});

// last: it turns authentication on for this etcd
test('etcd: a read-only etcd user uses the bindings others recorded, and a bind of its own fails with a clear error', { timeout: 60000 }, async () => {
  const prefix = '/gh-bindings-auth';
  const rw = { username: 'bind-rw', password: `planted-etcd-rw-${randomBytes(6).toString('hex')}` };
  const ro = { username: 'bind-ro', password: `planted-etcd-ro-${randomBytes(6).toString('hex')}` };
  await enableEtcdAuth(etcd, `planted-etcd-root-${randomBytes(6).toString('hex')}`, [
    { name: rw.username, password: rw.password, prefix, permission: 'Readwrite' },
    { name: ro.username, password: ro.password, prefix, permission: 'Read' },
  ]);
  const writer = etcdStore(prefix, rw);
  const reader = etcdStore(prefix, ro);
  try {
    await writer.load();
    assert.equal(await writer.bindings.bind(VAULT, 'https://vault.example:8200'), 'https://vault.example:8200');
    await reader.load();
    assert.deepEqual([...(await reader.bindings.list())], [[VAULT, 'https://vault.example:8200']]);
    assert.equal(await reader.bindings.bind(VAULT, 'https://vault.example:8200'), 'https://vault.example:8200');
    await assert.rejects(reader.bindings.bind('$env://NEW', 'https://new.example'), (e: Error & { code?: string }) => e.code === 'GH_ERR_STORE_DENIED' && /permission denied/.test(e.message) && e.message.includes('$env://NEW'));
    await assert.rejects(reader.bindings.unbind(VAULT), (e: Error & { code?: string }) => e.code === 'GH_ERR_STORE_DENIED');
    assert.deepEqual([...(await writer.bindings.list())], [[VAULT, 'https://vault.example:8200']], 'nothing recorded, nothing removed');
  } finally {
    await writer.close();
    await reader.close();
  }
});
