// The file config store: gatehouse.yaml on disk, watched for changes (hot reload), plus the
// embedded data file that Admin API writes persist to (atomically), unless the store is readonly.
import { watch, type FSWatcher } from 'node:fs';
import { access, open, readFile, rename } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { DATA_KINDS, type ConfigStore, type DataSections, type DestinationBindings, type Logger, type RawConfig } from '../contracts';

/** The data sections of a document, each as it is there; the file's own sections left out. */
export function dataSections(doc: Readonly<Record<string, unknown>>): DataSections {
  return Object.fromEntries(DATA_KINDS.map((k) => [k, doc[k]])) as unknown as DataSections;
}

/** Whether a config document has any data section of its own. */
const hasDataSections = (raw: RawConfig): boolean => DATA_KINDS.some((k) => raw[k] !== undefined && raw[k] !== null);
import { readConfigFile } from '../config/loader';
import { GatehouseError } from '../errors';
import { MemoryBindings } from '../credentials';
import { bindingsDirOf, FileBindings } from './file-bindings';

/** Watches the file's directory, so editors that save by rename (vim, kubectl ConfigMaps) are seen. */
export class FileConfigStore implements ConfigStore {
  readonly description: string;
  private readonly path: string;
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The data file, so that a write by another process (a worker) or a hand edit reloads this one. */
  private dataPath: string | undefined;

  /**
   * @param debounceMs changes closer together than this cause one reload
   * @param withDataFile false: the file's own sections only, no data file (the etcd store keeps the data)
   */
  /** What this process last wrote to the data file: seeing its own write is no reason to reload. */
  private lastWritten: { file: string; text: string } | undefined;
  /** The file's own data sections last warned about as shadowed (JSON), so one edit warns once. */
  private shadowWarned: string | undefined;

  /**
   * Where each credential may be sent: a folder beside the data file (file-bindings.ts), in memory
   * when the store is readonly; none without a data file (the etcd store keeps its own).
   */
  readonly bindings: DestinationBindings | undefined;

  constructor(path: string, private readonly debounceMs = 100, private readonly withDataFile = true, private readonly logger?: Logger) {
    this.path = resolve(path);
    this.description = this.path;
    // config_store is read at start only, so the folder (or memory) chosen on first use stays
    this.bindings = withDataFile ? new FileBindings(async () => {
      const raw = await readConfigFile(this.path);
      return (raw.config_store as { readonly?: unknown } | undefined)?.readonly === true ? undefined : bindingsDirOf(this.dataFile(raw));
    }) : undefined;
  }

  /**
   * The data file that replaces `raw`'s own data sections (routes, upstreams, consumers, secrets),
   * or undefined when none does: no data file yet, `readonly`, or `raw` has no data sections.
   */
  async shadowedBy(raw: RawConfig): Promise<string | undefined> {
    if (!this.withDataFile || (raw.config_store as { readonly?: unknown } | undefined)?.readonly === true) return undefined;
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

  private async withData(raw: RawConfig): Promise<RawConfig> {
    if (!this.withDataFile) return raw;
    this.dataPath = this.dataFile(raw);
    if ((raw.config_store as { readonly?: unknown } | undefined)?.readonly === true) return raw;
    let text: string;
    try {
      text = await readFile(this.dataFile(raw), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return raw; // no Admin write yet: the file is the source
      throw new GatehouseError('GH_ERR_CONFIG_READ', `${this.dataFile(raw)}: ${(err as Error).message}`);
    }
    let data: DataSections;
    try {
      data = JSON.parse(text) as DataSections;
    } catch {
      throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${this.dataFile(raw)}: not valid JSON`);
    }
    // the file's own data sections are not in force: say so once per edit of them (etcd mode does too)
    const own = hasDataSections(raw) ? JSON.stringify(DATA_KINDS.map((k) => raw[k] ?? null)) : undefined;
    if (own !== undefined && own !== this.shadowWarned) {
      this.logger?.warn({ store: this.path, data_file: this.dataFile(raw) }, 'the config file has data sections, but the data file of Admin API writes replaces them: they are not in force (edit through the Admin API, or delete the data file to make the file the source again)');
    }
    this.shadowWarned = own;
    return { ...raw, ...dataSections(data) };
  }

  async load(): Promise<RawConfig> {
    return this.withData(await readConfigFile(this.path));
  }

  ownFiles(): readonly string[] {
    return this.dataPath === undefined ? [this.path] : [this.path, this.dataPath];
  }

  complete(fileDoc: RawConfig): Promise<RawConfig> {
    return this.withData(fileDoc);
  }

  async assertWritable(): Promise<void> {
    const raw = await readConfigFile(this.path);
    if ((raw.config_store as { readonly?: unknown } | undefined)?.readonly === true) throw new GatehouseError('GH_ERR_STORE_READONLY', 'config_store.readonly is set: change the config file instead');
  }

  /** Persist Admin API data atomically: write a temp file, flush it, rename it over the old one. */
  async writeData(data: DataSections): Promise<void> {
    const raw = await readConfigFile(this.path);
    if ((raw.config_store as { readonly?: unknown } | undefined)?.readonly === true) throw new GatehouseError('GH_ERR_STORE_READONLY', 'config_store.readonly is set: change the config file instead');
    const target = this.dataFile(raw);
    const tmp = `${target}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    const text = JSON.stringify(data, null, 2) + '\n';
    this.lastWritten = { file: target, text };
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  }

  watch(onChange: () => void): void {
    const name = basename(this.path);
    let firstPending = 0;
    // only the data file changed since the last reload (no config file event, no unnamed event)
    let dataOnly = true;
    const fire = () => {
      firstPending = 0;
      this.timer = undefined;
      const onlyData = dataOnly;
      dataOnly = true;
      if (!onlyData || this.lastWritten === undefined) return onChange();
      // this process's own Admin write is live already: reload only if the data file holds something
      // else (another worker's write, a hand edit)
      const own = this.lastWritten;
      readFile(own.file, 'utf8').then(
        (text) => {
          if (text !== own.text) onChange();
        },
        () => onChange(),
      );
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
    for (const w of this.watchers) w.close();
  }
}

/** A store over an in-memory document (tests and embedding); `set` triggers a reload. */
export class MemoryConfigStore implements ConfigStore {
  readonly description = 'memory';
  /** Destination bindings in memory, shared by the gateways of this store, for the store's lifetime. */
  readonly bindings: DestinationBindings = new MemoryBindings();
  private listener: (() => void) | undefined;
  constructor(private doc: RawConfig) {}
  async load(): Promise<RawConfig> {
    return structuredClone(this.doc);
  }
  watch(onChange: () => void): void {
    this.listener = onChange;
  }
  async assertWritable(): Promise<void> {
    if ((this.doc.config_store as { readonly?: unknown } | undefined)?.readonly === true) throw new GatehouseError('GH_ERR_STORE_READONLY', 'config_store.readonly is set');
  }
  async writeData(data: DataSections): Promise<void> {
    if ((this.doc.config_store as { readonly?: unknown } | undefined)?.readonly === true) throw new GatehouseError('GH_ERR_STORE_READONLY', 'config_store.readonly is set');
    this.doc = { ...this.doc, ...structuredClone(data) };
  }
  /** Replace the document and notify the gateway. */
  set(doc: RawConfig): void {
    this.doc = doc;
    this.listener?.();
  }
  async close(): Promise<void> {
    this.listener = undefined;
  }
}
