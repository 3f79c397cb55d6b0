// The file store's journal: an Admin write appends one record (the data file is not rewritten), a
// restart replays it, a write cut at any byte of its record loads as if it never happened, compaction
// folds the journal into the data file without losing a write (a crash at any of its steps either),
// and another process's appends reach the watcher as the resources they changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA_KINDS, type DataChange, type DataKind, type DataSections } from '../core/contracts';
import { GatehouseError } from '../core/errors';
import { FileConfigStore, journalOf, MemoryConfigStore, sealedJournalOf, type FileStoreOptions } from '../core/stores/file-store';
import { readRecords } from '../core/stores/journal';
import { captureLogger, delay, eventually, tempDir } from './helpers/harness';

type Item = Readonly<Record<string, unknown>>;

/** The data sections a writer holds, and the changes that lead from one version to the next. */
class Writer {
  data: Record<DataKind, Item[]> = { routes: [], upstreams: [], consumers: [], secrets: [], ssls: [] };
  private field = (kind: DataKind) => (kind === 'consumers' ? 'username' : 'id');
  put(kind: DataKind, item: Item): DataChange {
    const id = String(item[this.field(kind)]);
    const list = [...this.data[kind]];
    const at = list.findIndex((i) => String(i[this.field(kind)]) === id);
    const before = at === -1 ? undefined : list[at];
    if (at === -1) list.push(item);
    else list[at] = item;
    this.data = { ...this.data, [kind]: list };
    return { kind, id, ...(before ? { before } : {}), after: item };
  }
  del(kind: DataKind, id: string): DataChange {
    const list = [...this.data[kind]];
    const at = list.findIndex((i) => String(i[this.field(kind)]) === id);
    const before = list[at];
    list.splice(at, 1);
    this.data = { ...this.data, [kind]: list };
    return { kind, id, before };
  }
  async write(store: FileConfigStore, ...changes: DataChange[]): Promise<void> {
    await store.writeChanges(changes, () => this.data as unknown as DataSections);
  }
}

const sectionsOf = (raw: Record<string, unknown>) => Object.fromEntries(DATA_KINDS.map((k) => [k, raw[k] ?? []]));

function setup(yaml = 'proxy: { listen: "127.0.0.1:0" }\n') {
  const dir = tempDir('gatehouse-journal-');
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, yaml);
  const data = join(dir, 'gatehouse.data.json');
  return { dir, file, data, journal: journalOf(data) };
}

/** A run of writes touching every kind: creates, replaces, deletes. */
async function someWrites(store: FileConfigStore, w: Writer, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const step = i % 4;
    if (step === 0) await w.write(store, w.put('consumers', { username: `c${i}`, plugins: { 'key-auth': { key: `$env://KEY_${i}` } } }));
    else if (step === 1) await w.write(store, w.put('upstreams', { id: `u${i % 3}`, nodes: { [`127.0.0.1:${8000 + i}`]: 1 } }), w.put('routes', { id: `r${i % 5}`, uri: `/r${i}`, upstream_id: `u${i % 3}` }));
    else if (step === 2) await w.write(store, w.put('consumers', { username: `c${i - 2}`, desc: `replaced at ${i}` }));
    else if (w.data.routes.length > 1) await w.write(store, w.del('routes', String(w.data.routes[0].id)));
    else await w.write(store, w.put('secrets', { id: `vault/s${i}`, uri: 'http://127.0.0.1:8200' }));
  }
}

const recordsOf = (path: string) => readRecords(readFileSync(path), 0, path).records;

test('a write appends one record to the journal and leaves the data file as it is; a new store loads what was written', async () => {
  const { file, data, journal } = setup();
  const store = new FileConfigStore(file, 20);
  store.shareObjects = true;
  await store.load();
  const w = new Writer();
  // the first write: the config file was the source, so the data file is written whole
  await w.write(store, w.put('routes', { id: 'r1', uri: '/a' }));
  assert.ok(existsSync(data));
  const base = statSync(data);
  const size = () => statSync(journal).size;
  for (let i = 0; i < 12; i++) {
    const before = { size: size(), records: recordsOf(journal).length };
    if (i % 3 === 0) await w.write(store, w.put('consumers', { username: `jack${i}`, plugins: {} }));
    else if (i % 3 === 1) await w.write(store, w.put('routes', { id: 'r1', uri: `/a${i}` }), w.put('upstreams', { id: `u${i}`, nodes: { '127.0.0.1:1': 1 } }));
    else await w.write(store, w.del('upstreams', `u${i - 1}`));
    const after = statSync(data);
    assert.deepEqual([after.ino, after.size, after.mtimeMs], [base.ino, base.size, base.mtimeMs], 'the data file is not rewritten');
    const recs = recordsOf(journal);
    assert.equal(recs.length, before.records + 1, 'one record per write');
    assert.equal(recs[recs.length - 1].offset, before.size, 'appended at the end');
  }
  // identity: what load hands out is the objects written, the same ones at every load
  const loaded = await store.load();
  assert.equal((loaded.routes as Item[])[0], w.data.routes[0]);
  assert.equal((loaded.consumers as Item[])[3], w.data.consumers[3]);
  assert.equal((await store.load()).consumers === loaded.consumers, false, 'a new list each time (the caller may change it)');
  assert.equal(((await store.load()).consumers as Item[])[3], w.data.consumers[3]);
  // without shareObjects: a copy, which a caller may normalise in place
  store.shareObjects = false;
  const copy = await store.load();
  assert.notEqual((copy.routes as Item[])[0], w.data.routes[0]);
  assert.deepEqual(copy.routes, w.data.routes);
  store.shareObjects = true;
  assert.deepEqual(sectionsOf(await new FileConfigStore(file).load()), w.data, 'a restart loads the state written');
  assert.ok(store.ownFiles().includes(journal) && store.ownFiles().includes(sealedJournalOf(data)), 'no secret resource may read the journals');
  await store.close();
});

test('a write cut at every byte offset of its record loads as the state before it, and the next write appends after the cut', async () => {
  const { file, journal } = setup();
  const store = new FileConfigStore(file, 20);
  await store.load();
  const w = new Writer();
  await someWrites(store, w, 9);
  const good = structuredClone(w.data);
  const start = statSync(journal).size;
  await w.write(store, w.put('consumers', { username: 'last', plugins: { 'basic-auth': { username: 'last', password: '$env://LAST_PASSWORD' } } }), w.del('consumers', 'c0'));
  const full = readFileSync(journal);
  const end = full.length;
  assert.ok(end - start > 40);
  let checked = 0;
  for (let cut = start; cut < end; cut++) {
    writeFileSync(journal, full.subarray(0, cut));
    const logs = captureLogger('warn');
    const recovered = new FileConfigStore(file, 20, true, logs.logger);
    assert.deepEqual(sectionsOf(await recovered.load()), good, `cut at byte ${cut}`);
    await recovered.load();
    const warned = logs.lines.filter((l) => /incomplete/.test(String(l.msg)));
    if (cut > start) assert.equal(warned.length, 1, `cut at byte ${cut}: logged once`);
    else assert.equal(warned.length, 0, 'a cut on a record boundary is no torn record');
    assert.ok(!logs.text().includes('LAST_PASSWORD'), 'no value logged');
    // the next write goes after the last good record: the torn bytes are cut off first
    const next = new Writer();
    next.data = structuredClone(good);
    await next.write(recovered, next.put('routes', { id: 'after-crash', uri: `/cut${cut}` }));
    assert.equal(recordsOf(journal).at(-1)!.offset, start, 'the new record starts where the torn one did');
    assert.deepEqual(sectionsOf(await new FileConfigStore(file).load()), next.data, `cut at byte ${cut}: written after recovery`);
    await recovered.close();
    checked++;
  }
  assert.equal(checked, end - start);
  await store.close();
});

test('a flipped byte in the last record drops it (checksum); in an earlier record it is an error naming the journal and the offset', async () => {
  const { file, journal } = setup();
  const store = new FileConfigStore(file, 20);
  await store.load();
  const w = new Writer();
  await someWrites(store, w, 6);
  const good = structuredClone(w.data);
  const start = statSync(journal).size;
  await w.write(store, w.put('routes', { id: 'flip', uri: '/flip' }));
  await store.close();
  const full = readFileSync(journal);
  for (let at = start; at < full.length; at++) {
    const bad = Buffer.from(full);
    bad[at] ^= 0x20;
    writeFileSync(journal, bad);
    assert.deepEqual(sectionsOf(await new FileConfigStore(file).load()), good, `byte ${at} flipped`);
  }
  const earlier = readRecords(full, 0, journal).records[2];
  for (const at of [earlier.offset + 1, earlier.offset + 5, earlier.offset + 14, earlier.end - 2]) {
    const bad = Buffer.from(full);
    bad[at] ^= 0x01;
    writeFileSync(journal, bad);
    await assert.rejects(new FileConfigStore(file).load(), (err: unknown) => {
      assert.ok(err instanceof GatehouseError);
      assert.equal(err.code, 'GH_ERR_CONFIG_PARSE');
      assert.ok(err.message.includes(journal) && err.message.includes(`byte ${earlier.offset}`), err.message);
      return true;
    });
  }
});

/** A store whose journal is compacted past a few kilobytes; `compacted` settles when a compaction is over. */
function compactingStore(file: string, options: FileStoreOptions = {}) {
  return new FileConfigStore(file, 20, true, undefined, { compactMinBytes: 3000, compactRatio: 0.25, chunkItems: 7, ...options });
}

test('compaction: past the threshold the data file is rewritten from the journal, the journal starts afresh, writes meanwhile are kept', async () => {
  const { file, data, journal } = setup();
  let duringWrites = 0;
  let w: Writer;
  let store: FileConfigStore;
  // a write lands while the data file is being written: it goes to the fresh journal
  const compactions: string[] = [];
  store = compactingStore(file, {
    compactionStep: async (step) => {
      compactions.push(step);
      if (step === 'written') {
        duringWrites++;
        await w.write(store, w.put('consumers', { username: `during${duringWrites}`, plugins: {} }));
      }
    },
  });
  await store.load();
  w = new Writer();
  for (let i = 0; i < 60; i++) await w.write(store, w.put('consumers', { username: `c${i}`, plugins: { 'key-auth': { key: `$env://K${i}` } }, desc: 'x'.repeat(40) }));
  await eventually('a compaction has run', () => compactions.includes('renamed'), 5000);
  await store.close(); // waits for a compaction under way
  assert.ok(duringWrites >= 1);
  const doc = JSON.parse(readFileSync(data, 'utf8')) as { journal_generation: number; consumers: Item[] };
  assert.ok(doc.journal_generation >= 2, 'the data file names the journal generation after the one folded in');
  // when the last compaction ran depends on how fast the writes came: together the two hold every write
  assert.ok(doc.consumers.length >= 1, 'the data file holds what the journal held');
  assert.ok(doc.consumers.length + recordsOf(journal).length >= 60, 'the data file and the journal hold every write');
  assert.ok(recordsOf(journal).length < 30, 'the journal holds only what came after the last compaction');
  assert.equal(existsSync(sealedJournalOf(data)), false, 'the sealed journal is gone');
  assert.equal(existsSync(`${data}.compact.tmp`), false);
  // the writes during a compaction ran beside the loop's own: which of two came first is not fixed, so not their order
  const byName = (l: unknown) => [...(l as Item[])].sort((x, y) => String(x.username ?? x.id).localeCompare(String(y.username ?? y.id)));
  const loaded = sectionsOf(await new FileConfigStore(file).load());
  for (const k of DATA_KINDS) assert.deepEqual(byName(loaded[k]), byName(w.data[k]), `${k}: every write is there, those during the compaction too`);
});

for (const step of ['sealed', 'written', 'renamed'] as const) {
  test(`compaction cut short after it ${step} (a crash): a new store loads every acknowledged write, and writes and compacts on`, async () => {
    const { file, data } = setup();
    let crashed = false;
    const store = compactingStore(file, {
      compactionStep: (s) => {
        if (s === step && !crashed) {
          crashed = true;
          throw new Error('crash');
        }
      },
    });
    await store.load();
    const w = new Writer();
    for (let i = 0; i < 40 && !crashed; i++) await w.write(store, w.put('consumers', { username: `c${i}`, desc: 'y'.repeat(60) }));
    await eventually('the compaction stopped', () => crashed, 5000);
    await store.close();
    if (step === 'written') assert.ok(existsSync(`${data}.compact.tmp`), 'a leftover temp file');
    if (step !== 'written') assert.ok(existsSync(sealedJournalOf(data)), 'a sealed journal is left');
    const again = compactingStore(file);
    assert.deepEqual(sectionsOf(await again.load()), w.data, 'what the crash left loads to every write');
    for (let i = 0; i < 40; i++) await w.write(again, w.put('routes', { id: `r${i}`, uri: `/r${i}`, desc: 'z'.repeat(60) }));
    await again.close();
    assert.equal(existsSync(sealedJournalOf(data)), false, 'the next compaction cleans up');
    assert.deepEqual(sectionsOf(await new FileConfigStore(file).load()), w.data);
  });
}

test("another process's appends reach the watcher as the resources they changed; this store's own are no news", async () => {
  const { file } = setup();
  const a = new FileConfigStore(file, 20);
  const b = new FileConfigStore(file, 20);
  a.shareObjects = true;
  await a.load();
  const w = new Writer();
  await w.write(a, w.put('consumers', { username: 'jack', plugins: {} }), w.put('routes', { id: 'r1', uri: '/a' }));
  const seenA = await a.load();
  const jack = (seenA.consumers as Item[])[0];
  const r1 = (seenA.routes as Item[])[0];
  const heard: Array<readonly DataChange[] | undefined> = [];
  a.watch((changes) => heard.push(changes));
  // this store's own write: nothing to hear
  await w.write(a, w.put('upstreams', { id: 'u1', nodes: { '127.0.0.1:1': 1 } }));
  await delay(300);
  assert.equal(heard.length, 0, 'own appends are not news');
  // the other process (a second store on the same files) writes
  const other = new Writer();
  other.data = sectionsOf(await b.load()) as Writer['data'];
  const jack2 = { username: 'jack', plugins: { 'key-auth': { key: '$env://JACK' } } };
  await other.write(b, other.put('consumers', jack2), other.del('routes', 'r1'), other.put('routes', { id: 'r2', uri: '/b' }));
  await eventually('the watcher heard', () => heard.length > 0, 3000);
  assert.equal(heard.length, 1);
  const changes = heard[0]!;
  assert.ok(changes !== undefined, 'told exactly what changed');
  const byId = Object.fromEntries(changes.map((c) => [`${c.kind}/${c.id}`, c]));
  assert.deepEqual(Object.keys(byId).sort(), ['consumers/jack', 'routes/r1', 'routes/r2']);
  assert.equal(byId['consumers/jack'].before, jack, 'before is the object this store had');
  assert.deepEqual(byId['consumers/jack'].after, jack2);
  assert.equal(byId['routes/r1'].before, r1);
  assert.equal(byId['routes/r1'].after, undefined);
  assert.equal(byId['routes/r2'].before, undefined);
  // after is what this store now holds
  assert.equal(((await a.load()).consumers as Item[])[0], byId['consumers/jack'].after);
  // both orders interleaved: a's own write after b's lands after it, b's next one is heard
  await w.write(a, w.put('secrets', { id: 'vault/one', uri: 'http://127.0.0.1:8200' }));
  await other.write(b, other.put('upstreams', { id: 'u9', nodes: { '127.0.0.1:9': 1 } }));
  await eventually('the second write heard', () => heard.length > 1, 3000);
  assert.deepEqual(heard.slice(1).flatMap((c) => c!.map((x) => `${x.kind}/${x.id}`)), ['upstreams/u9']);
  // the data file rewritten by the other process (a full write): read again whole
  await b.writeData({ ...other.data, routes: [] } as unknown as DataSections);
  await eventually('a full reload asked for', () => heard.some((c) => c === undefined), 3000);
  assert.deepEqual(sectionsOf(await a.load()).routes, []);
  await a.close();
  await b.close();
});

test('readonly: writeChanges is refused as writeData is, and nothing is written', async () => {
  const { file, data, journal } = setup('config_store: { readonly: true }\n');
  const store = new FileConfigStore(file, 20);
  await store.load();
  const w = new Writer();
  for (const write of [() => w.write(store, w.put('routes', { id: 'r', uri: '/' })), () => store.writeData(w.data as unknown as DataSections)]) {
    await assert.rejects(write(), (err: unknown) => err instanceof GatehouseError && err.code === 'GH_ERR_STORE_READONLY');
  }
  assert.equal(existsSync(data) || existsSync(journal), false);
});

test('the config file is read once for load and writes: a write reads it again only once it changed, and then honours readonly', async (t) => {
  const { file, data } = setup();
  // every read of the config file, whoever makes it (load, a write's check of config_store)
  const loader = require('../core/config/loader') as typeof import('../core/config/loader');
  const original = loader.readConfigFile;
  let reads = 0;
  loader.readConfigFile = (path: string) => ((reads += path === file ? 1 : 0), original(path));
  t.after(() => void (loader.readConfigFile = original));
  const store = new FileConfigStore(file, 20);
  const raw = await store.load();
  assert.equal(reads, 1);
  assert.deepEqual(Object.keys(raw), ['proxy']);
  assert.equal(JSON.stringify(raw).includes('Stamp'), false, 'the stamp is not part of the document');
  const w = new Writer();
  await w.write(store, w.put('routes', { id: 'r1', uri: '/a' }));
  await w.write(store, w.put('routes', { id: 'r2', uri: '/b' }));
  assert.equal(reads, 1, 'writes after load take what the loaded document said');
  assert.ok(existsSync(data));
  // an edit of the config file: the next write reads it again and is refused
  await delay(20); // a later mtime even on coarse clocks
  writeFileSync(file, 'proxy: { listen: "127.0.0.1:0" }\nconfig_store: { readonly: true }\n');
  await assert.rejects(w.write(store, w.put('routes', { id: 'r3', uri: '/c' })), (err: unknown) => err instanceof GatehouseError && err.code === 'GH_ERR_STORE_READONLY');
  assert.equal(reads, 2);
  // a document handed over by whoever read the file (the CLI) carries its stamp as well
  writeFileSync(file, 'proxy: { listen: "127.0.0.1:0" }\n');
  const handed = await original(file);
  reads = 0;
  const other = new FileConfigStore(file, 20);
  await other.complete(handed);
  await w.write(other, w.put('routes', { id: 'r4', uri: '/d' }));
  assert.equal(reads, 0);
  // a document without a stamp (made in memory) leaves the write to read the file
  const third = new FileConfigStore(file, 20);
  await third.complete({ proxy: { listen: '127.0.0.1:0' } });
  await w.write(third, w.put('routes', { id: 'r5', uri: '/e' }));
  assert.equal(reads, 1);
});

test('a full write (writeData) replaces the data file and starts the journal afresh; the older journal left by a cut-short full write is not replayed', async () => {
  const { file, data, journal } = setup();
  const store = new FileConfigStore(file, 20);
  await store.load();
  const w = new Writer();
  await someWrites(store, w, 8);
  const oldJournal = readFileSync(journal);
  await store.writeData(w.data as unknown as DataSections);
  assert.equal(recordsOf(journal).length, 1, 'only the header');
  assert.deepEqual(sectionsOf(await new FileConfigStore(file).load()), w.data);
  // a crash between the data file's rename and the new journal: the old journal is in the data file already
  const replaced = structuredClone(w.data);
  replaced.routes = [];
  await store.writeData(replaced as unknown as DataSections);
  writeFileSync(journal, oldJournal);
  assert.deepEqual(sectionsOf(await new FileConfigStore(file).load()).routes, [], 'the older journal is not replayed over the newer data file');
  await store.close();
});

test('MemoryConfigStore.writeChanges: the resource kept is change.after itself; deletes remove it', async () => {
  const store = new MemoryConfigStore({ routes: [{ id: 'r1', uri: '/a' }], consumers: [] });
  store.shareObjects = true;
  const r1 = ((await store.load()).routes as Item[])[0];
  assert.equal(((await store.load()).routes as Item[])[0], r1, 'the same object at every load');
  const after = { id: 'r1', uri: '/b' };
  const jack = { username: 'jack' };
  await store.writeChanges([{ kind: 'routes', id: 'r1', before: r1, after }, { kind: 'consumers', id: 'jack', after: jack }]);
  const loaded = await store.load();
  assert.equal((loaded.routes as Item[])[0], after);
  assert.equal((loaded.consumers as Item[])[0], jack);
  await store.writeChanges([{ kind: 'routes', id: 'r1', before: after }]);
  assert.deepEqual((await store.load()).routes, []);
  const ro = new MemoryConfigStore({ config_store: { readonly: true } });
  await assert.rejects(ro.writeChanges([{ kind: 'routes', id: 'x', after: { id: 'x' } }]), (err: unknown) => err instanceof GatehouseError && err.code === 'GH_ERR_STORE_READONLY');
});

test('a data file written before the journal (no journal_generation) takes appends, and a compaction by another process is a full reload for the watcher', async () => {
  const { file, data, journal } = setup();
  const legacy = { routes: [{ id: 'old', uri: '/old' }], upstreams: [], consumers: [{ username: 'jack' }], secrets: [] };
  writeFileSync(data, JSON.stringify(legacy, null, 2));
  const a = new FileConfigStore(file, 20);
  const w = new Writer();
  w.data = sectionsOf(await a.load()) as Writer['data'];
  // (a kind the file predates reads as empty)
  assert.deepEqual(w.data, { ...legacy, ssls: [] });
  await w.write(a, w.put('routes', { id: 'new', uri: '/new' }));
  assert.deepEqual(JSON.parse(readFileSync(data, 'utf8')), legacy, 'the data file as it was');
  assert.equal(recordsOf(journal).length, 2, 'a journal (header and one record) beside it');
  assert.deepEqual(sectionsOf(await new FileConfigStore(file).load()), w.data);
  const heard: Array<readonly DataChange[] | undefined> = [];
  a.watch((c) => heard.push(c));
  const b = compactingStore(file, { compactMinBytes: 1, compactRatio: 0 });
  const other = new Writer();
  other.data = sectionsOf(await b.load()) as Writer['data'];
  await other.write(b, other.put('consumers', { username: 'jill' }));
  await b.close(); // its compaction done
  assert.equal((JSON.parse(readFileSync(data, 'utf8')) as { consumers: unknown[] }).consumers.length, 2, 'compacted');
  await eventually('a full reload asked for', () => heard.includes(undefined), 3000);
  assert.deepEqual(sectionsOf(await a.load()), other.data);
  await a.close();
});

test('two stores appending at once (as two workers): every write is kept, and each ends with what the files hold, in their order', async () => {
  const { file } = setup();
  const a = new FileConfigStore(file, 20);
  const b = new FileConfigStore(file, 20);
  const first = new Writer();
  await a.load();
  await first.write(a, first.put('routes', { id: 'r', uri: '/' }));
  await b.load();
  const run = async (store: FileConfigStore, name: string) => {
    const w = new Writer();
    w.data = sectionsOf(await store.load()) as Writer['data'];
    for (let i = 0; i < 30; i++) {
      // both write the shared route too: the last append wins, for every reader alike
      await w.write(store, w.put('consumers', { username: `${name}${i}` }), w.put('routes', { id: 'r', uri: `/${name}${i}` }));
    }
  };
  await Promise.all([run(a, 'a'), run(b, 'b')]);
  const files = sectionsOf(await new FileConfigStore(file).load());
  assert.equal((files.consumers as Item[]).length, 60);
  assert.deepEqual(sectionsOf(await a.load()), files, "a's view is the files'");
  assert.deepEqual(sectionsOf(await b.load()), files, "b's view is the files'");
  await a.close();
  await b.close();
});
