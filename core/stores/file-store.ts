// The file config store: gatehouse.yaml on disk, watched for changes (hot reload).
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { ConfigStore, RawConfig } from '../contracts';
import { readConfigFile } from '../config/loader';

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

  watch(onChange: () => void): void {
    const name = basename(this.path);
    this.watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
      if (file !== null && file !== name && !String(file).startsWith(name)) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(onChange, this.debounceMs);
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
