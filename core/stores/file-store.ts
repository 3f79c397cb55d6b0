// The file config store: gatehouse.yaml on disk, watched for changes (hot reload), plus the
// embedded data file that Admin API writes persist to, unless the store is readonly.
//
// A write appends what it changed to the journal beside the data file (`<data file>.journal`,
// journal.ts), one fsynced record; the data file is rewritten only by a full write (`writeData`)
// and by compaction, which folds the journal into it in the background once the journal has grown.
// Compaction seals the journal (`<data file>.journal.sealed`, the same file under another name),
// starts a fresh one, writes the data file from what the sealed one leads to, renames it into place
// and deletes the sealed journal. The data file names the first journal generation not in it
// (`journal_generation`), so a crash at any point leaves files that load to every acknowledged write.
import { randomBytes } from 'node:crypto';
import { constants, watch, type FSWatcher, type Stats } from 'node:fs';
import { access, link, open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DATA_KINDS, type ConfigStore, type DataChange, type DataSections, type DestinationBindings, type Logger, type RawConfig } from '../contracts';
import { configFileStamp, fileStamp, readConfigFile } from '../config/loader';
import { GatehouseError } from '../errors';
import { MemoryBindings } from '../credentials';
import { bindingsDirOf, FileBindings } from './file-bindings';
import { changeRecord, DataState, frame, generationOf, headerRecord, readRecords, type ReadRecord, type StoredChange } from './journal';

/** The data sections of a document, each as it is there; the file's own sections left out. */
export function dataSections(doc: Readonly<Record<string, unknown>>): DataSections {
  return Object.fromEntries(DATA_KINDS.map((k) => [k, doc[k]])) as unknown as DataSections;
}

/** Whether a config document has any data section of its own. */
const hasDataSections = (raw: RawConfig): boolean => DATA_KINDS.some((k) => raw[k] !== undefined && raw[k] !== null);

const isReadonly = (raw: RawConfig): boolean => (raw.config_store as { readonly?: unknown } | undefined)?.readonly === true;

/** The journal of Admin API writes beside a data file, and the one compaction seals. */
export const journalOf = (dataFile: string): string => `${dataFile}.journal`;
export const sealedJournalOf = (dataFile: string): string => `${dataFile}.journal.sealed`;

/** How a file store compacts its journal; tests make it small. */
export interface FileStoreOptions {
  /** Compact once the journal is larger than this share of the data file (default 0.25)… */
  readonly compactRatio?: number;
  /** …and larger than this many bytes (default 1 MiB). */
  readonly compactMinBytes?: number;
  /** Resources serialised per turn of the event loop when the data file is written (default 1,000). */
  readonly chunkItems?: number;
  /** Tests: called after each step of a compaction; a throw stops it there, as a crash would. */
  readonly compactionStep?: (step: 'sealed' | 'written' | 'renamed') => void | Promise<void>;
}

const COMPACT_RATIO = 0.25;
const COMPACT_MIN_BYTES = 1024 * 1024;
const CHUNK_ITEMS = 1000;
/** Resources indexed per turn of the event loop when a full write makes the store's state. */
const STATE_SLICE = 10_000;
const WRITE_BYTES = 1024 * 1024;

/** What identifies a version of the data file: a rename or an edit changes one of these. */
interface FileId {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}
const fileId = (s: Stats): FileId => ({ ino: s.ino, size: s.size, mtimeMs: s.mtimeMs });
const sameFile = (a: FileId, b: FileId): boolean => a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;

/** The files as this process last read or wrote them: what it finds beyond that is another's doing. */
interface Known {
  readonly target: string;
  base: FileId;
  /** The data file's `journal_generation`: journals of this generation and later are replayed over it. */
  generation: number;
  /** The journal: its inode, generation, the offset read up to, a torn tail to cut before the next append. */
  journal?: { ino: number; generation: number; offset: number; torn?: { offset: number; size: number } };
  /** The sealed journal's inode, when one exists. */
  sealedIno?: number;
}

/** A change this store appended, and whether the resource was new to it then. */
type OwnChange = StoredChange & { readonly created: boolean };

interface JournalFile {
  readonly ino: number;
  readonly size: number;
  readonly generation: number;
  readonly records: readonly ReadRecord[];
  readonly end: number;
  readonly torn?: { readonly offset: number; readonly bytes: number };
}

const notFound = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT';
const statOrNone = (path: string): Promise<Stats | undefined> =>
  stat(path).catch((err: unknown) => {
    if (notFound(err)) return undefined;
    throw err;
  });

/** Flush a folder, so that a rename or a new file in it survives a power cut. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A journal file, its header checked, or undefined when there is none. @throws GatehouseError GH_ERR_CONFIG_PARSE */
async function readJournal(file: string): Promise<JournalFile | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if (notFound(err)) return undefined;
    throw new GatehouseError('GH_ERR_CONFIG_READ', `${file}: ${(err as Error).message}`);
  }
  try {
    const st = await fh.stat();
    const buf = await fh.readFile();
    const read = readRecords(buf, 0, file);
    const generation = generationOf(read.records[0], file);
    return { ino: st.ino, size: buf.length, generation, records: read.records.slice(1), end: read.end, torn: read.torn };
  } finally {
    await fh.close();
  }
}

/** Take the compaction lock shared by the processes of one data file; false when a live one holds it. */
async function takeLock(lock: string): Promise<boolean> {
  for (let i = 0; i < 2; i++) {
    try {
      const fh = await open(lock, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(await readFile(lock, 'utf8').catch(() => ''));
      if (pid > 0) {
        try {
          process.kill(pid, 0);
          return false; // a live process compacts
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EPERM') return false;
        }
      }
      // left by a process that died mid-compaction: the files are loadable as they are
      await unlink(lock).catch(() => undefined);
    }
  }
  return false;
}

/** Watches the file's directory, so editors that save by rename (vim, kubectl ConfigMaps) are seen. */
export class FileConfigStore implements ConfigStore {
  readonly description: string;
  private readonly path: string;
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The data file, so that a write by another process (a worker) or a hand edit reloads this one. */
  private dataPath: string | undefined;
  /** The file's own data sections last warned about as shadowed (JSON), so one edit warns once. */
  private shadowWarned: string | undefined;
  /** The data sections as the data file and its journal lead to (the very objects load hands out). */
  private state: DataState | undefined;
  private known: Known | undefined;
  /** This store's records in the journal, as `w`; `seq` numbers them. */
  private readonly writer = `${process.pid}-${randomBytes(4).toString('hex')}`;
  private seq = 0;
  /** This store's records not yet passed over by a read of the journal (another process appended around them). */
  private readonly pendingOwn = new Map<number, readonly OwnChange[]>();
  /** Reads and writes of the data files, one at a time. */
  private chain: Promise<unknown> = Promise.resolve();
  private compacting: Promise<void> | undefined;
  private listener: ((changes?: readonly DataChange[]) => void) | undefined;
  /** Torn journal tails already warned about (file, inode, offset): a crash is logged once. */
  private readonly tornWarned = new Set<string>();

  /**
   * Where each credential may be sent: a folder beside the data file (file-bindings.ts), in memory
   * when the store is readonly; none without a data file (the etcd store keeps its own).
   */
  readonly bindings: DestinationBindings | undefined;

  /**
   * true: `load` and `complete` hand out the resources the store keeps, the very objects (the
   * `before` of the changes it reports, the `after` of the changes written), for a caller that
   * diffs by identity and never changes them in place. false (default): a copy, which the caller
   * may normalise in place (the first validation and a reload do).
   */
  shareObjects = false;

  /**
   * @param debounceMs changes closer together than this cause one reload
   * @param withDataFile false: the file's own sections only, no data file (the etcd store keeps the data)
   */
  constructor(
    path: string,
    private readonly debounceMs = 100,
    private readonly withDataFile = true,
    private readonly logger?: Logger,
    private readonly options: FileStoreOptions = {},
  ) {
    this.path = resolve(path);
    this.description = this.path;
    // config_store is read at start only, so the folder (or memory) chosen on first use stays
    this.bindings = withDataFile ? new FileBindings(async () => {
      const raw = await readConfigFile(this.path);
      return isReadonly(raw) ? undefined : bindingsDirOf(this.dataFile(raw));
    }) : undefined;
  }

  /**
   * The data file that replaces `raw`'s own data sections (routes, upstreams, consumers, secrets),
   * or undefined when none does: no data file yet, `readonly`, or `raw` has no data sections.
   */
  async shadowedBy(raw: RawConfig): Promise<string | undefined> {
    if (!this.withDataFile || isReadonly(raw)) return undefined;
    if (!hasDataSections(raw)) return undefined;
    try {
      await access(this.dataFile(raw));
      return this.dataFile(raw);
    } catch {
      return undefined;
    }
  }

  /**
   * Where Admin API writes go: `config_store.data_file`, default `<name>.data.json` beside the
   * config file (gatehouse.yaml → gatehouse.data.json). Once it exists, its data sections
   * (routes, upstreams, consumers, secrets) replace the config file's.
   */
  private dataFile(raw: RawConfig): string {
    const cs = raw.config_store as { data_file?: unknown } | undefined;
    if (typeof cs?.data_file === 'string') return resolve(dirname(this.path), cs.data_file);
    const name = basename(this.path);
    return join(dirname(this.path), `${name.slice(0, name.length - extname(name).length)}.data.json`);
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async withData(raw: RawConfig): Promise<RawConfig> {
    if (!this.withDataFile) return raw;
    const target = this.dataFile(raw);
    this.dataPath = target;
    // what a write needs of the config file, from the document read now: the first Admin write
    // does not parse the file again (a 100 000-consumer file holds the event loop for half a second)
    const stamp = configFileStamp(raw);
    if (stamp !== undefined) this.writeFacts = { key: stamp, readonly: isReadonly(raw), target };
    if (isReadonly(raw)) return raw;
    const sections = await this.locked(async () => {
      // what this process holds is current unless another one wrote more than appends since
      if ((await this.catchUp(target).catch(() => 'full' as const)) === 'full') await this.readAll(target);
      return this.state?.sections();
    });
    if (sections === undefined) return raw; // no Admin write yet: the file is the source
    // the file's own data sections are not in force: say so once per edit of them (etcd mode does too)
    const own = hasDataSections(raw) ? JSON.stringify(DATA_KINDS.map((k) => raw[k] ?? null)) : undefined;
    if (own !== undefined && own !== this.shadowWarned) {
      this.logger?.warn({ store: this.path, data_file: target }, 'the config file has data sections, but the data file of Admin API writes replaces them: they are not in force (edit through the Admin API, or delete the data file to make the file the source again)');
    }
    this.shadowWarned = own;
    return { ...raw, ...(this.shareObjects ? sections : structuredClone(sections)) };
  }

  /**
   * Read the data file and its journals whole; the state is undefined when there is no data file.
   * @throws GatehouseError GH_ERR_CONFIG_READ, GH_ERR_CONFIG_PARSE (naming the file, and the byte offset in a journal)
   */
  private async readAll(target: string): Promise<void> {
    this.state = undefined;
    this.known = undefined;
    this.pendingOwn.clear();
    // the journal, then the sealed one, then the data file: the order a compaction by another process
    // changes them in reverse, so what is read is either consistent or older than the files (and
    // then read again whole at the next look: the journal read is no longer the one named so)
    const settled = <T>(p: Promise<T>) => p.then((value) => ({ value }), (error: unknown) => ({ error }));
    const journalRead = await settled(readJournal(journalOf(target)));
    const sealedRead = await settled(readJournal(sealedJournalOf(target)));
    let fh: FileHandle;
    try {
      fh = await open(target, 'r');
    } catch (err) {
      // no data file: the config file is the source, whatever journal is left beside it
      if (notFound(err)) return;
      throw new GatehouseError('GH_ERR_CONFIG_READ', `${target}: ${(err as Error).message}`);
    }
    let text: string;
    let base: FileId;
    try {
      base = fileId(await fh.stat());
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${target}: not valid JSON`);
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${target}: not a JSON object`);
    const marker = (doc as { journal_generation?: unknown }).journal_generation;
    const generation = typeof marker === 'number' ? marker : 0;
    const state = new DataState(doc as Record<string, unknown>);
    if ('error' in journalRead) throw journalRead.error;
    if ('error' in sealedRead) throw sealedRead.error;
    const journal = journalRead.value;
    const sealed = sealedRead.value;
    // a sealed journal the data file does not include yet (a compaction cut short), unless it is still the journal itself
    if (sealed !== undefined && sealed.generation >= generation && sealed.ino !== journal?.ino) this.replay(state, sealedJournalOf(target), sealed);
    let j: Known['journal'];
    if (journal !== undefined) {
      if (journal.generation >= generation) this.replay(state, journalOf(target), journal);
      // else: older than the data file (a full write cut short before it started a new journal): in it already
      j = { ino: journal.ino, generation: journal.generation, offset: journal.end, ...(journal.torn ? { torn: { offset: journal.torn.offset, size: journal.size } } : {}) };
    }
    this.state = state;
    this.known = { target, base, generation, journal: j, sealedIno: sealed?.ino };
  }

  private replay(state: DataState, file: string, journal: JournalFile): void {
    for (const r of journal.records) for (const c of changeRecord(r, file).changes) state.apply(c);
    if (journal.torn === undefined) return;
    const key = `${file}:${journal.ino}:${journal.torn.offset}`;
    if (this.tornWarned.has(key)) return;
    this.tornWarned.add(key);
    this.logger?.warn({ store: this.path, journal: file, offset: journal.torn.offset, bytes: journal.torn.bytes }, 'the last journal record is incomplete (a write cut short, never acknowledged): it is dropped, and cut off before the next write');
  }

  /**
   * Bring the state up to what the files hold when another process only appended to the journal:
   * the resources that changed (empty: nothing new), or 'full' when the files must be read again.
   */
  private async catchUp(target: string): Promise<DataChange[] | 'full'> {
    const k = this.known;
    if (k === undefined || this.state === undefined || k.target !== target) return 'full';
    const jpath = journalOf(target);
    const [b, s, j] = await Promise.all([statOrNone(target), statOrNone(sealedJournalOf(target)), statOrNone(jpath)]);
    if (b === undefined || !sameFile(fileId(b), k.base)) return 'full'; // a full write, a compaction, a hand edit
    if (s !== undefined && s.ino !== k.sealedIno && s.ino !== j?.ino) return 'full'; // another process compacts
    if (j === undefined) return k.journal === undefined ? [] : 'full';
    if (k.journal === undefined || j.ino !== k.journal.ino || j.size < k.journal.offset) return 'full';
    if (j.size === k.journal.offset) return [];
    const fh = await open(jpath, 'r');
    let buf: Buffer;
    try {
      buf = Buffer.alloc(j.size - k.journal.offset);
      const { bytesRead } = await fh.read(buf, 0, buf.length, k.journal.offset);
      buf = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
    // an unfinished last record is one another process is writing: read again on its next event
    const read = readRecords(buf, k.journal.offset, jpath);
    const changes = this.applyRecords(read.records, jpath);
    k.journal.offset = read.end;
    return changes;
  }

  /**
   * Apply records read from a journal in their order: another process's as read, this store's own
   * as the very objects it wrote (the state holds them already). A resource this store created
   * and that is still its own goes last again (deleted, then set): records of others read now may
   * have been appended before it, and the order is then the files' for every reader.
   */
  private applyRecords(records: readonly ReadRecord[], file: string): DataChange[] {
    const self = this;
    function* changes(): Generator<StoredChange> {
      for (const r of records) {
        const rec = changeRecord(r, file);
        const own = rec.w === self.writer ? self.pendingOwn.get(rec.s) : undefined;
        if (own === undefined) {
          yield* rec.changes;
          continue;
        }
        self.pendingOwn.delete(rec.s);
        for (const c of own) {
          if (c.created && self.state!.get(c.kind, c.id) === c.after) yield { kind: c.kind, id: c.id };
          yield c;
        }
      }
    }
    return this.state!.applyAll(changes());
  }

  /** catchUp, then tell the watcher what another process changed. */
  private async refresh(target: string): Promise<void> {
    const r = await this.catchUp(target).catch(() => 'full' as const);
    if (r === 'full') {
      // no data file before, none now: the config file is still the source, nothing to tell
      if (this.known === undefined && (await statOrNone(target)) === undefined) return;
      this.state = undefined;
      this.known = undefined;
      this.pendingOwn.clear();
      this.listener?.();
    } else if (r.length > 0) this.listener?.(r);
  }

  async load(): Promise<RawConfig> {
    return this.withData(await readConfigFile(this.path));
  }

  ownFiles(): readonly string[] {
    if (this.dataPath === undefined) return [this.path];
    // the compaction's temp file holds the whole data, and one a crash left stays until the next compaction
    return [this.path, this.dataPath, journalOf(this.dataPath), sealedJournalOf(this.dataPath), `${this.dataPath}.compact.tmp`];
  }

  complete(fileDoc: RawConfig): Promise<RawConfig> {
    return this.withData(fileDoc);
  }

  async assertWritable(): Promise<void> {
    await this.writableTarget();
  }

  /** The data file, when the config file allows writes. @throws GatehouseError GH_ERR_STORE_READONLY */
  private async writableTarget(): Promise<string> {
    // what the config file says about writes, read again only when the file changed: a config file
    // that holds 100 000 consumers itself is not parsed twice per write
    const st = await stat(this.path).catch(() => undefined);
    const key = st === undefined ? undefined : fileStamp(st);
    let facts = this.writeFacts;
    if (key === undefined || facts?.key !== key) {
      const raw = await readConfigFile(this.path);
      facts = { key: key ?? '', readonly: isReadonly(raw), target: this.dataFile(raw) };
      this.writeFacts = key === undefined ? undefined : facts;
    }
    if (facts.readonly) throw new GatehouseError('GH_ERR_STORE_READONLY', 'config_store.readonly is set: change the config file instead');
    return facts.target;
  }

  /** The config file's `config_store.readonly` and data file, with the file's identity and time they were read at. */
  private writeFacts: { key: string; readonly: boolean; target: string } | undefined;

  /** A full write: the data file rewritten atomically (temp file, fsync, rename), the journal started afresh. */
  async writeData(data: DataSections): Promise<void> {
    const target = await this.writableTarget();
    await this.locked(() => this.writeBase(target, data));
  }

  /**
   * Persist what one Admin API write changed: one record appended to the journal and fsynced. The
   * first write, while the config file is still the source, writes the data file whole.
   */
  async writeChanges(changes: readonly DataChange[], data: () => DataSections): Promise<void> {
    const target = await this.writableTarget();
    if (changes.length === 0) return;
    await this.locked(async () => {
      // another process's appends first: this record goes after them, and the watcher hears of them
      await this.refresh(target);
      if (this.state === undefined) await this.readAll(target);
      if (this.state === undefined) return this.writeBase(target, data());
      await this.append(target, changes);
    });
    this.maybeCompact(target);
  }

  private async writeBase(target: string, data: DataSections): Promise<void> {
    const jpath = journalOf(target);
    const headers = await Promise.all([jpath, sealedJournalOf(target)].map((f) => readJournal(f).catch(() => undefined)));
    const generation = Math.max(this.known?.generation ?? 0, ...headers.map((h) => h?.generation ?? 0)) + 1;
    const tmp = `${target}.${process.pid}.tmp`;
    const base = await this.writeTemp(tmp, data, generation);
    // the state is made while nothing depends on it yet, a slice per turn of the event loop
    const state = await DataState.build(data, STATE_SLICE);
    await rename(tmp, target);
    // the data file first: a crash before the new journal leaves an older one, which it names as included
    const journal = await this.startJournal(jpath, generation, 'replace');
    await unlink(sealedJournalOf(target)).catch(() => undefined);
    this.state = state;
    this.known = { target, base, generation, journal };
    this.pendingOwn.clear();
  }

  /** Write data sections to a temp file, a chunk of resources per turn of the event loop, and flush it. */
  private async writeTemp(tmp: string, data: DataSections, generation: number): Promise<FileId> {
    const chunk = this.options.chunkItems ?? CHUNK_ITEMS;
    const fh = await open(tmp, 'w', 0o600);
    try {
      // text is written a megabyte at a time: a write per chunk of resources costs more than the chunk
      let pending: string[] = [];
      let bytes = 0;
      const put = async (text: string, flush = false) => {
        pending.push(text);
        bytes += text.length;
        if (bytes < WRITE_BYTES && !flush) return;
        const out = pending.join('');
        pending = [];
        bytes = 0;
        await fh.write(out);
      };
      await put('{\n');
      for (const kind of DATA_KINDS) {
        const list: unknown = data[kind];
        if (!Array.isArray(list)) {
          await put(`  ${JSON.stringify(kind)}: ${JSON.stringify(list ?? [])},\n`);
          continue;
        }
        await put(`  ${JSON.stringify(kind)}: [`);
        for (let at = 0; at < list.length; at += chunk) {
          // the proxy serves requests on this thread: a 15 MB document is never serialised in one go
          if (at > 0) await nextTurn();
          const part = list.slice(at, at + chunk).map((item) => JSON.stringify(item) ?? 'null').join(',\n    ');
          await put(`${at === 0 ? '\n    ' : ',\n    '}${part}`);
        }
        await put(list.length > 0 ? '\n  ],\n' : '],\n');
      }
      await put(`  "journal_generation": ${generation}\n}\n`, true);
      await fh.sync();
      return fileId(await fh.stat());
    } finally {
      await fh.close();
    }
  }

  /** A journal with only its header, given its name whole: replacing the old one, or only where there is none. */
  private async startJournal(jpath: string, generation: number, how: 'replace' | 'create'): Promise<NonNullable<Known['journal']>> {
    const tmp = `${jpath}.${process.pid}.tmp`;
    const head = headerRecord(generation);
    const fh = await open(tmp, 'w', 0o600);
    let ino: number;
    try {
      await fh.write(head);
      await fh.sync();
      ino = (await fh.stat()).ino;
    } finally {
      await fh.close();
    }
    if (how === 'replace') await rename(tmp, jpath);
    else {
      try {
        await link(tmp, jpath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        ino = -1; // another process started it first
      } finally {
        await unlink(tmp);
      }
    }
    await syncDir(dirname(jpath));
    return { ino, generation, offset: head.length };
  }

  /** Append one record: one write on an O_APPEND handle, fsynced before the write is answered. */
  private async append(target: string, changes: readonly DataChange[]): Promise<void> {
    const k = this.known!;
    const jpath = journalOf(target);
    if (k.journal === undefined || k.journal.generation < k.generation) k.journal = await this.startJournal(jpath, k.generation, k.journal === undefined ? 'create' : 'replace');
    const seq = ++this.seq;
    const stored: StoredChange[] = changes.map(({ kind, id, after }) => (after === undefined ? { kind, id } : { kind, id, after }));
    const record = frame({ w: this.writer, s: seq, changes: stored });
    let written: Stats | undefined;
    for (let attempt = 0; written === undefined; attempt++) {
      let fh: FileHandle;
      try {
        fh = await open(jpath, constants.O_WRONLY | constants.O_APPEND);
      } catch (err) {
        if (!notFound(err) || attempt > 2) throw err;
        await this.startJournal(jpath, k.generation, 'create');
        continue;
      }
      let st: Stats;
      try {
        const torn = k.journal?.torn;
        if (torn !== undefined) {
          // the record a crash cut short goes before this one does, or it would hide it
          const now = await fh.stat();
          if (now.ino === k.journal!.ino && now.size === torn.size) await fh.truncate(torn.offset);
          delete k.journal!.torn;
        }
        await fh.write(record);
        await fh.datasync();
        st = await fh.stat();
      } finally {
        await fh.close();
      }
      // a journal replaced meanwhile (another process compacted or wrote whole) may not be read: write it to the new one
      if ((await statOrNone(jpath))?.ino === st.ino || attempt > 2) written = st;
    }
    const own: OwnChange[] = stored.map((c) => ({ ...c, created: c.after !== undefined && this.state!.get(c.kind, c.id) === undefined }));
    for (const c of stored) this.state!.apply(c);
    if (k.journal !== undefined && written.ino === k.journal.ino && written.size - record.length === k.journal.offset) k.journal.offset = written.size;
    else this.pendingOwn.set(seq, own); // another process appended around it: the next read sorts the order out
  }

  private maybeCompact(target: string): void {
    const k = this.known;
    if (this.compacting !== undefined || k?.journal === undefined || k.target !== target) return;
    const threshold = Math.max(this.options.compactMinBytes ?? COMPACT_MIN_BYTES, k.base.size * (this.options.compactRatio ?? COMPACT_RATIO));
    if (k.journal.offset <= threshold) return;
    this.compacting = this.compact(target)
      .catch((err: unknown) => this.logger?.warn({ store: this.path, err: (err as Error).message }, 'journal compaction failed: the journal keeps every write; compaction is tried again after a later one'))
      .finally(() => {
        this.compacting = undefined;
      });
  }

  /** Fold the journal into the data file, in the background; appends go on meanwhile. */
  private async compact(target: string): Promise<void> {
    const lock = `${journalOf(target)}.lock`;
    if (!(await takeLock(lock))) return;
    const step = this.options.compactionStep;
    try {
      const sealedPath = sealedJournalOf(target);
      const snapshot = await this.locked(async () => {
        await this.refresh(target);
        if (this.state === undefined) await this.readAll(target);
        const k = this.known;
        if (this.state === undefined || k?.journal === undefined) return undefined;
        if (k.sealedIno === undefined) {
          // the journal goes on under the sealed name (appends in flight land there, and are written again
          // to the fresh journal by their writers), a fresh one takes its name
          await link(journalOf(target), sealedPath);
          const sealedIno = k.journal.ino;
          const fresh = await this.startJournal(journalOf(target), k.journal.generation + 1, 'replace');
          await this.readSealedTail(sealedPath, k.journal.offset);
          k.sealedIno = sealedIno;
          k.journal = fresh;
          await step?.('sealed');
        }
        // else a compaction cut short left a sealed journal: the state holds it already
        return { data: this.state.sections(), generation: k.journal.generation, base: k.base };
      });
      if (snapshot === undefined) return;
      const tmp = `${target}.compact.tmp`;
      const base = await this.writeTemp(tmp, snapshot.data, snapshot.generation);
      await step?.('written');
      await this.locked(async () => {
        const now = await statOrNone(target);
        // a full write by another process meanwhile is newer than this snapshot
        if (now === undefined || !sameFile(fileId(now), snapshot.base)) return unlink(tmp);
        await rename(tmp, target);
        await syncDir(dirname(target));
        if (this.known?.target === target) {
          this.known.base = base;
          this.known.generation = snapshot.generation;
        }
        await step?.('renamed');
        await unlink(sealedPath).catch(() => undefined);
        if (this.known?.target === target) this.known.sealedIno = undefined;
      });
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }

  /** Records other processes appended to the journal just sealed after what this one had read. */
  private async readSealedTail(sealedPath: string, from: number): Promise<void> {
    const sealed = await readJournal(sealedPath);
    if (sealed === undefined) return;
    const news = this.applyRecords(sealed.records.filter((r) => r.offset >= from), sealedPath);
    if (news.length > 0) this.listener?.(news);
  }

  watch(onChange: (changes?: readonly DataChange[]) => void): void {
    this.listener = onChange;
    const name = basename(this.path);
    let firstPending = 0;
    // only the data files changed since the last reload (no config file event, no unnamed event)
    let dataOnly = true;
    const fire = () => {
      firstPending = 0;
      this.timer = undefined;
      const onlyData = dataOnly;
      dataOnly = true;
      const target = this.known?.target ?? this.dataPath;
      if (!onlyData || target === undefined) return onChange();
      // this process's own writes are live already: only what another process (a worker) appended is
      // news, one resource at a time; a data file rewritten by another or by hand is read again whole
      this.locked(() => this.refresh(target)).catch(() => onChange());
    };
    const changed = (isData: boolean) => {
      if (!isData) dataOnly = false;
      clearTimeout(this.timer);
      const now = Date.now();
      if (firstPending === 0) firstPending = now;
      // a file rewritten more often than the debounce still reloads at least every 5 debounces
      const wait = now - firstPending >= this.debounceMs * 5 ? 0 : this.debounceMs;
      this.timer = setTimeout(fire, wait);
    };
    // the data file's folder as it is now (a data_file moved by a reload is watched from the next start)
    const dir = dirname(this.path);
    const dataDir = this.dataPath === undefined ? undefined : dirname(this.dataPath);
    // the data file, its journals and their temp files
    const isData = (file: string | Buffer | null) => file !== null && this.dataPath !== undefined && String(file).startsWith(basename(this.dataPath));
    // the destination bindings' folder is no config: its creation beside either file reloads nothing
    const bindings = this.dataPath === undefined ? undefined : basename(bindingsDirOf(this.dataPath));
    this.watchers.push(
      watch(dir, { persistent: false }, (_event, file) => {
        if (file !== null && String(file) === bindings) return;
        // the config file, an editor's temp copy of it, or the data file (written by another worker)
        const data = dataDir === dir && isData(file);
        if (file !== null && file !== name && !String(file).startsWith(name) && !data) return;
        changed(data);
      }),
    );
    if (dataDir !== undefined && dataDir !== dir) {
      try {
        // a data_file in another folder (config_store.data_file: ./state/admin.json)
        this.watchers.push(
          watch(dataDir, { persistent: false }, (_event, file) => {
            if (file !== null && String(file) === bindings) return;
            if (file === null || isData(file)) changed(true);
          }),
        );
      } catch {
        // no such folder: no Admin API write can land there either (the write fails, naming it)
      }
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.listener = undefined;
    for (const w of this.watchers) w.close();
    // a compaction under way finishes (or stops at a step that leaves loadable files) before the files are let go
    await this.compacting;
  }
}

/**
 * A store over an in-memory document (tests and embedding); `set` triggers a reload. The data
 * sections' resources are the very objects written to it (with `shareObjects`, load hands out new
 * lists of them), so a change is seen by identity, as in the file store.
 */
export class MemoryConfigStore implements ConfigStore {
  readonly description = 'memory';
  /** Destination bindings in memory, shared by the gateways of this store, for the store's lifetime. */
  readonly bindings: DestinationBindings = new MemoryBindings();
  private listener: ((changes?: readonly DataChange[]) => void) | undefined;
  /** As FileConfigStore's: the kept resources themselves from `load`, or (default) a copy. */
  shareObjects = false;
  /** The document's data sections by id, made (from a copy) on first use after `set`. */
  private data: DataState | undefined;
  constructor(private doc: RawConfig) {}
  private state(): DataState {
    this.data ??= new DataState(structuredClone(dataSections(this.doc)));
    return this.data;
  }
  async load(): Promise<RawConfig> {
    const own = Object.fromEntries(Object.entries(this.doc).filter(([k]) => !(DATA_KINDS as readonly string[]).includes(k)));
    const kept = this.state().sections();
    const data = this.shareObjects ? kept : structuredClone(kept);
    // a section the document does not have stays absent, as in the document
    return { ...structuredClone(own), ...Object.fromEntries(DATA_KINDS.filter((k) => this.doc[k] !== undefined || data[k].length > 0).map((k) => [k, data[k]])) };
  }
  watch(onChange: (changes?: readonly DataChange[]) => void): void {
    this.listener = onChange;
  }
  async assertWritable(): Promise<void> {
    if ((this.doc.config_store as { readonly?: unknown } | undefined)?.readonly === true) throw new GatehouseError('GH_ERR_STORE_READONLY', 'config_store.readonly is set');
  }
  async writeData(data: DataSections): Promise<void> {
    await this.assertWritable();
    this.doc = { ...this.doc, ...data };
    this.data = new DataState(data);
  }
  /** Apply what a write changed: the store's resource for each is then `change.after` itself. */
  async writeChanges(changes: readonly DataChange[]): Promise<void> {
    await this.assertWritable();
    const state = this.state();
    for (const { kind, id, after } of changes) {
      state.apply(after === undefined ? { kind, id } : { kind, id, after });
      if (this.doc[kind] === undefined) this.doc = { ...this.doc, [kind]: [] };
    }
  }
  /** Replace the document and notify the gateway. */
  set(doc: RawConfig): void {
    this.doc = doc;
    this.data = undefined;
    this.listener?.();
  }
  async close(): Promise<void> {
    this.listener = undefined;
  }
}
