// The etcd store on a real etcd, change by change: a prefix larger than the client's 4 MB message
// limit is read in pages, all at one revision (a writer swapping keys meanwhile is never seen
// half-way; a compaction during the read starts it over); a write puts and deletes its changed
// keys alone (one watch event per key), refuses a writer that worked from an older object, and
// leaves the writer's own objects as the store's; another node receives a write as one
// onChange(changes) with the objects it held as `before`, a burst (one transaction, or events
// within 5 ms) as one call with the events of one resource merged; a resync, an unusable value
// and an edit of the config file are onChange() (read everything again); a full read does not
// undo the events applied while its pages were read.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3, IKeyValue } from 'etcd3';
import { FileConfigStore } from '../core/stores/file-store';
import { EtcdConfigStore } from '../core/stores/etcd-store';
import { readPrefix } from '../core/stores/etcd-read';
import { PrefixWatch, type Applied } from '../core/stores/etcd-watch';
import type { DataChange, DataKind } from '../core/contracts';
import { silentLogger } from '../core/observe/log';
import { startEtcd, startRelay, type EtcdServer } from './helpers/etcd';
import { delay, eventually, tempDir } from './helpers/harness';

let etcd: EtcdServer;
let raw: Etcd3;

before(async () => {
  etcd = await startEtcd();
  raw = etcd.client();
});

after(async () => {
  raw?.close();
  await etcd?.close();
});

type Obj = Readonly<Record<string, unknown>>;
type Calls = Array<readonly DataChange[] | undefined>;

/** A store on `prefix` (its config file in a new folder, polled every 100 ms); `endpoint` defaults to etcd's. */
function store(prefix: string, o: { endpoint?: string; pageKeys?: number } = {}): { store: EtcdConfigStore; file: string } {
  const file = join(tempDir('gatehouse-etcd-changes-'), 'gatehouse.yaml');
  writeFileSync(file, `gateway:\n  listen: 127.0.0.1:0\nconfig_store:\n  type: etcd\n  prefix: ${prefix}\n`);
  const s = new EtcdConfigStore(new FileConfigStore(file, 100, false), { endpoints: [o.endpoint ?? etcd.endpoint], prefix, timeoutMs: 3000, logger: silentLogger(), encryptionKey: randomBytes(32), pageKeys: o.pageKeys });
  return { store: s, file };
}

/** Start watching; every onChange call is recorded (its changes, or undefined for "read everything"). */
function record(s: EtcdConfigStore): Calls {
  const calls: Calls = [];
  s.watch((changes) => calls.push(changes));
  return calls;
}

function route(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, uri: `/${id}`, plugins: { mocking: { response_example: id } }, ...extra };
}

async function list(s: EtcdConfigStore, kind: DataKind, how: 'load' | 'reload' = 'reload'): Promise<Obj[]> {
  return (await s[how]())[kind] as Obj[];
}

function byId(items: readonly Obj[], id: string): Obj | undefined {
  return items.find((x) => x.id === id || x.username === id);
}

/** Seed the prefix by hand (the marker and `routes`), as another node would have. */
async function seedRoutes(prefix: string, routes: ReadonlyArray<Record<string, unknown>>): Promise<void> {
  await raw.put(`${prefix}/_gatehouse/seeded`).value('{}');
  for (let i = 0; i < routes.length; i += 100) {
    await raw.if(`${prefix}/_gatehouse/seeded`, 'Create', '>', 0).then(...routes.slice(i, i + 100).map((r) => raw.put(`${prefix}/routes/${String(r.id)}`).value(JSON.stringify(r)))).commit();
  }
}

/** Every event etcd reports under `prefix` from now on, as "Put key" / "Delete key". */
async function eventsOf(prefix: string): Promise<{ seen: string[]; stop(): Promise<void> }> {
  const seen: string[] = [];
  const w = await raw.watch().prefix(prefix).create();
  w.on('put', (kv) => seen.push(`Put ${kv.key.toString().slice(prefix.length)}`));
  w.on('delete', (kv) => seen.push(`Delete ${kv.key.toString().slice(prefix.length)}`));
  return { seen, stop: () => w.cancel() };
}

test('a prefix over 4 MB (6 000 consumers of ~1 KB) loads completely, in pages', { timeout: 120000 }, async () => {
  const prefix = '/gh-pages';
  const pad = 'x'.repeat(1000);
  await raw.put(`${prefix}/_gatehouse/seeded`).value('{}');
  for (let i = 0; i < 6000; i += 100) {
    const ops = Array.from({ length: 100 }, (_, j) => raw.put(`${prefix}/consumers/c${String(i + j).padStart(5, '0')}`).value(JSON.stringify({ username: `c${String(i + j).padStart(5, '0')}`, desc: pad })));
    await raw.if(`${prefix}/_gatehouse/seeded`, 'Create', '>', 0).then(...ops).commit();
  }
  const bytes = Object.values(await raw.getAll().prefix(`${prefix}/consumers/c0`).limit(500).strings()).reduce((n, v) => n + v.length, 0) * 12;
  assert.ok(bytes > 4 * 1024 * 1024, `the prefix holds about ${bytes} bytes, more than the 4 MB message limit`);
  // pages sized by bytes (the default), and pages of 6 000 keys, which etcd's answer cannot hold: asked again with half as many
  for (const pageKeys of [undefined, 6000]) {
    const { store: s } = store(prefix, { pageKeys });
    try {
      const consumers = await list(s, 'consumers', 'load');
      assert.equal(consumers.length, 6000);
      assert.deepEqual(consumers.map((c) => c.username), Array.from({ length: 6000 }, (_, i) => `c${String(i).padStart(5, '0')}`));
      assert.ok(consumers.every((c) => c.desc === pad));
      assert.ok(s.lastRead!.pages >= 3, `${s.lastRead!.pages} pages, each under the 4 MB limit`);
      process.stdout.write(`# read ${s.lastRead?.resources} resources (~${(bytes / 1048576).toFixed(1)} MB) in ${s.lastRead?.pages} pages (${pageKeys ?? 'sized by bytes'}), ${s.lastRead?.ms} ms\n`);
    } finally {
      await s.close();
    }
  }
});

test('all pages are read at the revision of the first: a writer swapping the first and last keys meanwhile is never seen half-way', { timeout: 120000 }, async () => {
  const prefix = '/gh-pages-rev';
  await seedRoutes(prefix, Array.from({ length: 600 }, (_, i) => route(`m${String(i).padStart(3, '0')}`)));
  await raw.put(`${prefix}/routes/a0`).value(JSON.stringify(route('a0')));
  await raw.put(`${prefix}/routes/z0`).value(JSON.stringify(route('z0')));
  // one transaction at a time replaces a<k> (before every other key) and z<k> (after them) by a<k+1>, z<k+1>
  let k = 0;
  let stop = false;
  let swaps = 0;
  const writer = (async () => {
    while (!stop) {
      await raw.if(`${prefix}/routes/a${k}`, 'Create', '>', 0)
        .then(raw.delete().key(`${prefix}/routes/a${k}`), raw.delete().key(`${prefix}/routes/z${k}`), raw.put(`${prefix}/routes/a${k + 1}`).value(JSON.stringify(route(`a${k + 1}`))), raw.put(`${prefix}/routes/z${k + 1}`).value(JSON.stringify(route(`z${k + 1}`))))
        .commit();
      k++;
      swaps++;
    }
  })();
  const { store: s } = store(prefix, { pageKeys: 20 });
  try {
    for (let i = 0; i < 5; i++) {
      const before = swaps;
      const ids = (await list(s, 'routes', 'load')).map((r) => String(r.id));
      const edges = ids.filter((id) => !id.startsWith('m'));
      assert.equal(edges.length, 2, `one a<k> and one z<k>: ${edges.join(', ')}`);
      assert.equal(edges[0].slice(1), edges[1].slice(1), `a<k> and z<k> of one revision: ${edges.join(', ')}`);
      assert.equal(ids.length, 602);
      assert.ok(s.lastRead!.pages >= 30, `${s.lastRead!.pages} pages`);
      assert.ok(swaps > before, 'the writer committed while the pages were read');
    }
  } finally {
    stop = true;
    await writer;
    await s.close();
  }
});

test('a read whose revision is compacted between two pages starts over at the newest revision', { timeout: 60000 }, async () => {
  const prefix = '/gh-pages-compact';
  await seedRoutes(prefix, Array.from({ length: 50 }, (_, i) => route(`r${String(i).padStart(2, '0')}`)));
  let pagesSeen = 0;
  let restarted = 0;
  const got = new Set<string>();
  const read = await readPrefix(raw, `${prefix}/routes/`, {
    call: () => ({ deadline: Date.now() + 3000 }),
    pageKeys: 10,
    restart: () => {
      restarted++;
      got.clear();
    },
    page: async (kvs) => {
      for (const kv of kvs) got.add(kv.key.toString().slice(prefix.length + 8));
      if (++pagesSeen === 2) {
        // after the second page: one more route, and the history before it compacted away
        const res = await raw.put(`${prefix}/routes/r99`).value(JSON.stringify(route('r99'))).exec();
        await raw.kv.compact({ revision: res.header.revision, physical: true } as never);
      }
    },
  });
  assert.equal(restarted, 1);
  assert.equal(read.restarts, 1);
  assert.equal(got.size, 51, 'the read after the restart has every route, the new one too');
  assert.ok(got.has('r99'));
  assert.equal(read.pages, 6);
});

test('writeChanges puts and deletes the changed keys alone, in one transaction, and keeps the writer\'s objects', { timeout: 60000 }, async () => {
  const prefix = '/gh-write';
  await seedRoutes(prefix, Array.from({ length: 40 }, (_, i) => route(`r${i}`)));
  const { store: s } = store(prefix);
  try {
    const calls = record(s);
    const first = await list(s, 'routes', 'load');
    assert.equal(first.length, 40);
    assert.ok(Object.isFrozen(first[0]) && Object.isFrozen(first[0].plugins), 'the store\'s objects are frozen');
    // a second load hands out the very same objects (unchanged keys are not parsed again)
    const again = await list(s, 'routes', 'load');
    assert.ok(first.every((r, i) => again[i] === r), 'the same objects on every load');
    const events = await eventsOf(prefix);
    const r1 = byId(first, 'r1')!;
    const r2 = byId(first, 'r2')!;
    const r1b = route('r1', { desc: 'changed' });
    const created = route('new');
    const rev0 = (await raw.get(`${prefix}/routes/r1`).exec()).header.revision;
    await s.writeChanges([
      { kind: 'routes', id: 'r1', before: r1, after: r1b },
      { kind: 'routes', id: 'new', after: created },
      { kind: 'routes', id: 'r2', before: r2 },
    ]);
    await eventually('the three events', async () => events.seen.length >= 3, 3000);
    await delay(200);
    await events.stop();
    assert.deepEqual(events.seen.sort(), ['Delete /routes/r2', 'Put /routes/new', 'Put /routes/r1'], 'one event per changed key, nothing else');
    const rev1 = (await raw.get(`${prefix}/routes/r1`).exec()).header.revision;
    assert.equal(Number(rev1), Number(rev0) + 1, 'one transaction (one revision)');
    assert.equal(JSON.parse((await raw.get(`${prefix}/routes/r1`).string())!).desc, 'changed');
    // the store's items are the writer's objects now; the others are untouched
    const now = await list(s, 'routes');
    assert.equal(byId(now, 'r1'), r1b);
    assert.ok(Object.isFrozen(r1b) && Object.isFrozen(r1b.plugins), 'frozen, as every object the store holds');
    assert.equal(byId(now, 'new'), created);
    assert.equal(byId(now, 'r2'), undefined);
    assert.equal(byId(now, 'r3'), byId(first, 'r3'));
    // and a full read from etcd keeps them (same revision: no parse)
    assert.equal(byId(await list(s, 'routes', 'load'), 'r1'), r1b);
    // this node's own write is no news to it
    await delay(200);
    assert.deepEqual(calls, []);
    // a change that changes nothing writes nothing
    const rev2 = (await raw.get(`${prefix}/routes/r1`).exec()).header.revision;
    await s.writeChanges([{ kind: 'routes', id: 'r1', before: r1b, after: r1b }]);
    assert.equal((await raw.get(`${prefix}/routes/r1`).exec()).header.revision, rev2);
  } finally {
    await s.close();
  }
});

test('writeChanges refuses a writer that worked from an older object (409) without writing, and learns what won', { timeout: 60000 }, async () => {
  const prefix = '/gh-stale';
  await seedRoutes(prefix, [route('r1'), route('r2')]);
  const { store: a } = store(prefix);
  const { store: b } = store(prefix);
  try {
    const callsA = record(a);
    const old = byId(await list(a, 'routes', 'load'), 'r1')!;
    await b.load();
    const conflict = (e: Error & { code?: string }) => e.code === 'GH_ERR_STORE_CONFLICT' && /changed by another writer/.test(e.message);
    const revOf = async () => Number((await raw.get(`${prefix}/routes/r1`).exec()).header.revision);
    // an equal copy is not the store's object
    const rev0 = await revOf();
    await assert.rejects(a.writeChanges([{ kind: 'routes', id: 'r1', before: structuredClone(old), after: route('r1', { desc: 'copy' }) }]), conflict);
    // a create of what exists, a delete of what does not
    await assert.rejects(a.writeChanges([{ kind: 'routes', id: 'r1', after: route('r1') }]), conflict);
    await assert.rejects(a.writeChanges([{ kind: 'routes', id: 'nope', before: route('nope') }]), conflict);
    assert.equal(await revOf(), rev0, 'nothing was written');
    // node B writes r1; A's watch applies it; A's writer still holding the old object is refused before etcd is asked
    const byB = route('r1', { desc: 'by B' });
    await b.writeChanges([{ kind: 'routes', id: 'r1', before: byId(await list(b, 'routes'), 'r1'), after: byB }]);
    await eventually('A applied B\'s write', async () => callsA.length === 1, 3000);
    const rev1 = await revOf();
    await assert.rejects(a.writeChanges([{ kind: 'routes', id: 'r1', before: old, after: route('r1', { desc: 'by A' }) }]), conflict);
    assert.equal(await revOf(), rev1, 'nothing was written');
  } finally {
    await a.close();
    await b.close();
  }
});

test('a write etcd refuses (another writer won, unseen yet) is a 409 that reads the winner in the same transaction', { timeout: 60000 }, async () => {
  const prefix = '/gh-stale-etcd';
  await seedRoutes(prefix, [route('r2')]);
  // a store that does not watch: only the refused transaction can tell it what won
  const { store: e } = store(prefix);
  try {
    const mine = byId(await list(e, 'routes', 'load'), 'r2')!;
    await raw.put(`${prefix}/routes/r2`).value(JSON.stringify(route('r2', { desc: 'by hand' })));
    const rev = Number((await raw.get(`${prefix}/routes/r2`).exec()).header.revision);
    await assert.rejects(e.writeChanges([{ kind: 'routes', id: 'r2', before: mine, after: route('r2', { desc: 'mine' }) }]), (err: Error & { code?: string }) => err.code === 'GH_ERR_STORE_CONFLICT');
    assert.equal(Number((await raw.get(`${prefix}/routes/r2`).exec()).header.revision), rev, 'nothing was written');
    // reload() makes no etcd round trip: the store learned the winner from the refused transaction
    const learned = byId(await list(e, 'routes'), 'r2')!;
    assert.equal(learned.desc, 'by hand');
    await e.writeChanges([{ kind: 'routes', id: 'r2', before: learned, after: route('r2', { desc: 'retried' }) }]);
    assert.equal(JSON.parse((await raw.get(`${prefix}/routes/r2`).string())!).desc, 'retried');
  } finally {
    await e.close();
  }
});

test('another node receives a write as one onChange([change]) holding its own objects as `before`; a transaction of three as one call; a delete', { timeout: 60000 }, async () => {
  const prefix = '/gh-follow';
  await seedRoutes(prefix, [route('r1'), route('r2'), route('r3')]);
  const { store: a } = store(prefix);
  const { store: b } = store(prefix);
  try {
    const onA = await list(a, 'routes', 'load');
    const onB = await list(b, 'routes', 'load');
    const calls = record(b);
    const r1 = route('r1', { desc: 'one' });
    await a.writeChanges([{ kind: 'routes', id: 'r1', before: byId(onA, 'r1'), after: r1 }]);
    await eventually('B is told', async () => calls.length > 0, 3000);
    await delay(100);
    assert.equal(calls.length, 1, 'one call');
    const [change] = calls[0]!;
    assert.equal(calls[0]!.length, 1);
    assert.equal(change.kind, 'routes');
    assert.equal(change.id, 'r1');
    assert.equal(change.before, byId(onB, 'r1'), 'before is the object B held (and handed out)');
    assert.deepEqual(change.after, r1);
    assert.ok(Object.isFrozen(change.after));
    const nowB = await list(b, 'routes');
    assert.equal(byId(nowB, 'r1'), change.after, 'B\'s data sections hold the object it told');
    assert.equal(byId(nowB, 'r2'), byId(onB, 'r2'), 'and the untouched ones it held');

    // one transaction of three changes: one call, the changes in the transaction's order
    calls.length = 0;
    const onA2 = await list(a, 'routes');
    await a.writeChanges([
      { kind: 'routes', id: 'r2', before: byId(onA2, 'r2'), after: route('r2', { desc: 'two' }) },
      { kind: 'upstreams', id: 'u1', after: { id: 'u1', nodes: { '127.0.0.1:1': 1 } } },
      { kind: 'routes', id: 'r3', before: byId(onA2, 'r3') },
    ]);
    await eventually('B is told of the burst', async () => calls.length > 0, 3000);
    await delay(100);
    assert.equal(calls.length, 1, 'one call for the transaction');
    assert.deepEqual(calls[0]!.map((c) => `${c.kind}/${c.id} ${c.before ? 'had' : 'new'} ${c.after ? 'put' : 'deleted'}`), ['routes/r2 had put', 'upstreams/u1 new put', 'routes/r3 had deleted']);
    assert.equal(calls[0]![2].before, byId(onB, 'r3'));
    assert.equal(calls[0]![2].after, undefined);
    assert.equal(byId(await list(b, 'routes'), 'r3'), undefined);
    // etcd's own ids: a consumer is told by its username, an id with a slash as written
    calls.length = 0;
    await raw.put(`${prefix}/consumers/jack`).value(JSON.stringify({ username: 'jack' }));
    await raw.put(`${prefix}/secrets/vault/main`).value(JSON.stringify({ id: 'vault/main', uri: 'http://127.0.0.1:1', prefix: 'kv', token: '$env://T' }));
    await eventually('both told', async () => calls.flat().length === 2, 3000);
    assert.deepEqual(calls.flat().map((c) => `${c!.kind} ${c!.id}`), ['consumers jack', 'secrets vault/main']);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a burst of events within 5 ms is one call, the events of one resource merged (first before, last after; created then deleted: nothing)', async () => {
  // the watch loop alone, on a stand-in client: events are handed to it as etcd would
  const watcher = Object.assign(new EventEmitter(), { cancel: async () => undefined });
  const client = { watch: () => ({ prefix: () => ({ startRevision: () => ({ watcher: () => watcher }) }) }) } as unknown as Etcd3;
  const objs = { a0: { id: 'a', v: 0 }, a1: { id: 'a', v: 1 }, a2: { id: 'a', v: 2 }, b1: { id: 'b' }, c1: { id: 'c' } };
  const told: Record<string, Applied> = {
    a1: { kind: 'routes', id: 'a', before: objs.a0, after: objs.a1 },
    b1: { kind: 'routes', id: 'b', after: objs.b1 },
    a2: { kind: 'routes', id: 'a', before: objs.a1, after: objs.a2 },
    c1: { kind: 'routes', id: 'c', after: objs.c1 },
    bx: { kind: 'routes', id: 'b', before: objs.b1 },
    cx: { kind: 'routes', id: 'c', before: objs.c1 },
    c2: { kind: 'routes', id: 'c', after: objs.c1 },
    cmd: undefined,
    bad: 'full',
  };
  const loop = new PrefixWatch(client, '/p/', silentLogger(), 'test', { revision: () => 1, resync: async () => false, apply: (ev) => told[ev.kv.key.toString()] });
  const calls: Calls = [];
  loop.start((changes) => calls.push(changes));
  const emit = (...keys: string[]) => watcher.emit('data', { events: keys.map((k) => ({ type: 'Put', kv: { key: Buffer.from(k) } as IKeyValue })) });
  try {
    // two watch responses inside one burst: a changed twice, b created then deleted, c created, deleted, created
    emit('a1', 'b1', 'cmd');
    emit('a2', 'c1', 'bx', 'cx', 'c2');
    await delay(30);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0], [
      { kind: 'routes', id: 'a', before: objs.a0, after: objs.a2 },
      { kind: 'routes', id: 'c', after: objs.c1 },
    ]);
    assert.equal(calls[0]![0].before, objs.a0);
    // nothing left after cancelling out: no call
    emit('b1', 'bx');
    await delay(30);
    assert.equal(calls.length, 1);
    // a change only a full read can tell makes the whole burst "read everything again"
    emit('a1', 'bad', 'b1');
    await delay(30);
    assert.deepEqual(calls.slice(1), [undefined]);
  } finally {
    await loop.close();
  }
});

test('a resync after the watch was lost (history compacted meanwhile), a value that cannot be used, and an edit of the config file are onChange() (read everything)', { timeout: 60000 }, async () => {
  const prefix = '/gh-resync';
  await seedRoutes(prefix, [route('r1')]);
  const relay = await startRelay(etcd.clientPort);
  const { store: b, file } = store(prefix, { endpoint: `http://127.0.0.1:${relay.port}` });
  try {
    await b.load();
    const calls = record(b);
    await delay(300);
    relay.cut();
    await delay(500);
    // written and compacted while B is away: its watch cannot resume, B reads everything again
    await raw.put(`${prefix}/routes/r2`).value(JSON.stringify(route('r2')));
    const last = await raw.put(`${prefix}/routes/r3`).value(JSON.stringify(route('r3'))).exec();
    await raw.kv.compact({ revision: last.header.revision, physical: true } as never);
    relay.restore();
    await eventually('B resynced', async () => calls.length > 0, 15000);
    assert.deepEqual(calls, [undefined], 'a resync is onChange() with no changes');
    assert.ok(byId(await list(b, 'routes'), 'r2'));
    // a value that is no JSON object: the full read names the key
    calls.length = 0;
    await raw.put(`${prefix}/routes/broken`).value('{not json');
    await eventually('told', async () => calls.length > 0, 3000);
    assert.deepEqual(calls, [undefined]);
    await assert.rejects(b.reload(), /routes\/broken: not a JSON object/);
    // and when it is deleted again, read everything again as well (the last good config had no such route)
    calls.length = 0;
    await raw.delete().key(`${prefix}/routes/broken`);
    await eventually('told', async () => calls.length > 0, 3000);
    assert.deepEqual(calls, [undefined]);
    // a value naming another resource than its key
    calls.length = 0;
    await raw.put(`${prefix}/routes/r4`).value(JSON.stringify(route('other')));
    await eventually('told', async () => calls.length > 0, 3000);
    assert.deepEqual(calls, [undefined]);
    // the config file's own sections
    calls.length = 0;
    writeFileSync(file, `gateway:\n  listen: 127.0.0.1:0\n  log_level: warn\nconfig_store:\n  type: etcd\n  prefix: ${prefix}\n`);
    await eventually('told of the file', async () => calls.length > 0, 5000);
    assert.deepEqual(calls, [undefined]);
  } finally {
    await b.close();
    await relay.close();
  }
});

test('a full read does not undo what the watch applied while its pages were read', { timeout: 60000 }, async () => {
  const prefix = '/gh-read-vs-watch';
  await seedRoutes(prefix, Array.from({ length: 400 }, (_, i) => route(`m${String(i).padStart(3, '0')}`)));
  const { store: s } = store(prefix, { pageKeys: 10 });
  try {
    await s.load();
    const calls = record(s);
    // a writer adds routes (sorting before every page) while the store reads everything again
    let stop = false;
    let written = 0;
    const writer = (async () => {
      while (!stop) await raw.put(`${prefix}/routes/a${written++}`).value(JSON.stringify(route(`a${written - 1}`)));
    })();
    await delay(20);
    for (let i = 0; i < 3; i++) await s.load();
    stop = true;
    await writer;
    await eventually('every write applied', async () => (await list(s, 'routes')).length === 400 + written, 3000);
    assert.ok(calls.length > 0);
    const held = new Set((await list(s, 'routes')).map((r) => String(r.id)));
    for (let i = 0; i < written; i++) assert.ok(held.has(`a${i}`), `a${i} is held`);
  } finally {
    await s.close();
  }
});
