// The file config store: gatehouse.yaml on disk, watched for changes (hot reload).
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { ConfigStore, RawConfig } from '../contracts';
import { readConfigFile } from '../config/loader';
import { GatehouseError } from '../errors';

/** Watches the file's directory, so editors that save by rename (vim, kubectl ConfigMaps) are seen. */
export class FileConfigStore implements ConfigStore {
  readonly description: string;
  private readonly path: string;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** @param debounceMs changes closer together than this cause one reload */
  constructor(path: string, private readonly debounceMs = 100) {
    this.path = resolve(path);
    this.description = this.path;
  }

  load(): Promise<RawConfig> {
    return readConfigFile(this.path);
  }

  /**
   * For reloads: an empty file is what an in-place write looks like half-way through, never a
   * config anyone means to deploy over a running one (an empty document has no routes).
   */
  async reload(): Promise<RawConfig> {
    const raw = await readConfigFile(this.path);
    if (Object.keys(raw).length === 0) throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${this.path}: the file is empty`);
    return raw;
  }

  watch(onChange: () => void): void {
    const name = basename(this.path);
    let firstPending = 0;
    const fire = () => {
      firstPending = 0;
      this.timer = undefined;
      onChange();
    };
    this.watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
      if (file !== null && file !== name && !String(file).startsWith(name)) return;
      clearTimeout(this.timer);
      const now = Date.now();
      if (firstPending === 0) firstPending = now;
      // a file rewritten more often than the debounce still reloads at least every 5 debounces
      const wait = now - firstPending >= this.debounceMs * 5 ? 0 : this.debounceMs;
      this.timer = setTimeout(fire, wait);
    });
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.watcher?.close();
  }
}

/** A store over an in-memory document (tests and embedding); `set` triggers a reload. */
export class MemoryConfigStore implements ConfigStore {
  readonly description = 'memory';
  private listener: (() => void) | undefined;
  constructor(private doc: RawConfig) {}
  async load(): Promise<RawConfig> {
    return structuredClone(this.doc);
  }
  watch(onChange: () => void): void {
    this.listener = onChange;
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
