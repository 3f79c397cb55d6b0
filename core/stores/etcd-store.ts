// The etcd config store (cluster mode). The config file keeps its own sections (gateway, admin,
// config_store, secret_cache…) and is watched as usual; the data sections live in etcd, one key
// per resource (the layout and what a key holds: etcd-keys.ts). Every node reads the prefix, then
// watches it from the revision it read (etcd-watch.ts), so a write on any node reaches all of
// them. When etcd goes away, nodes keep the last data they had and writes fail (503); when it
// returns they resync, by a fresh read, also after the watch history was compacted. With
// credentials the client authenticates (and re-authenticates when its token expires); with TLS it
// verifies etcd's certificate and may present its own. This file is the store itself: the first
// read (in pages, etcd-read.ts) and the seed, the data this node holds, writes of the changed keys
// as one guarded transaction, watch events applied one resource at a time, commands.
//
// The resources this node holds are objects nobody edits: the data sections a load hands out are
// made of them, a change's `before` is one of them, and a write's `after` becomes one. So a writer
// that worked from an older object than the store holds (this node's watch applied another node's
// write meanwhile) is told by identity, before etcd is even asked.
import { Etcd3, EtcdPermissionDeniedError, type IKeyValue } from 'etcd3';
import { ExponentialBackoff, noop } from 'cockatiel';
import { DATA_KINDS, type ClusterCommand, type ConfigStore, type DataChange, type DataKind, type DataSections, type Logger, type RawConfig, type SecretFieldPaths } from '../contracts';
import { GatehouseError } from '../errors';
import type { FileConfigStore } from './file-store';
import { COMMANDS, dataSections, decodeItem, encodeItem, idOf, keyOf, keyOfId, kindOf, MAX_TXN_OPS, SEEDED, type Item } from './etcd-keys';
import { etcdFailure } from './etcd-errors';
import { PrefixWatch, type Applied, type OnChange } from './etcd-watch';
import { EtcdBindings } from './etcd-bindings';
import { readPrefix } from './etcd-read';
import { deepFreeze } from '../config/validate';

/** etcd user and password (config_store.user, and the value config_store.password points at). */
export interface EtcdAuth {
  readonly username: string;
  readonly password: string;
}

/** PEM contents of config_store.tls: the CA bundle that verifies etcd (Node's default CAs without it) and a client certificate. */
export interface EtcdTls {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

export interface EtcdStoreOptions {
  readonly endpoints: readonly string[];
  /** Key prefix, e.g. "/gatehouse" (no trailing slash). */
  readonly prefix: string;
  /** Deadline of each etcd call, ms. */
  readonly timeoutMs: number;
  /** AES-256 key for plaintext secret fields; without it they are stored as given (a warning says so). */
  readonly encryptionKey?: Buffer;
  readonly logger: Logger;
  /** Read only (`gatehouse validate`): never seed, and validate the file alone when etcd is unreachable. */
  readonly dryRun?: boolean;
  readonly auth?: EtcdAuth;
  /** Endpoints are https:// (checked by the caller). */
  readonly tls?: EtcdTls;
  /** Keys per page of a full read, all pages alike (default: pages of about 2 MB, etcd-read.ts). */
  readonly pageKeys?: number;
}

/** One key a write puts (with the object that becomes the store's item) or deletes. */
interface Write {
  readonly rel: string;
  readonly kind: DataKind;
  readonly after: Readonly<Record<string, unknown>> | undefined;
  /** The store's item when the write was made: the transaction commits only if etcd still holds it. */
  readonly have: Item | undefined;
}

const CONFLICT = 'the resource was changed by another writer meanwhile; read it again and retry';

export class EtcdConfigStore implements ConfigStore {
  readonly description: string;
  private readonly client: Etcd3;
  private readonly root: string;
  private items = new Map<string, Item>();
  /** Deleted keys and the revision of their deletion (stale events are recognised). */
  private readonly gone = new Map<string, number>();
  /** Revision of the last full read the items reflect. */
  private rev = 0;
  private have = false;
  /** Whether the prefix holds the seed marker (as of the last full read). */
  private seeded = false;
  private readonly loop: PrefixWatch;
  /**
   * Keys of a transaction in flight and the watch events on them that came before its answer:
   * applied once it is answered, so this node's own write is no news even when its event comes first.
   */
  private readonly held = new Map<string, Array<{ type: string; kv: IKeyValue }>>();
  /** How the last full read went (pages, ms, resources), for the log and the measurements. */
  lastRead: { readonly pages: number; readonly ms: number; readonly resources: number } | undefined;
  private onCommand: ((cmd: ClusterCommand) => void) | undefined;
  private secretFields: SecretFieldPaths = () => [];
  /** Where each credential may be sent, under <prefix>/_gatehouse/bindings/ (etcd-bindings.ts). */
  readonly bindings: EtcdBindings;

  constructor(private readonly file: FileConfigStore, private readonly o: EtcdStoreOptions) {
    this.root = o.prefix.replace(/\/+$/, '') + '/';
    this.description = `etcd ${o.endpoints.join(',')} ${o.prefix} (with ${file.description})`;
    this.client = new Etcd3({
      hosts: [...o.endpoints],
      dialTimeout: o.timeoutMs,
      // our own deadlines and resync; no retry storms or open circuits after etcd returns
      faultHandling: { host: () => noop, global: noop, watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }).next() },
      grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 },
      // the token exchange gets the same deadline as every call (it has none of its own)
      auth: o.auth ? { username: o.auth.username, password: o.auth.password, callOptions: () => this.deadline() } : undefined,
      // no ca: null makes gRPC use Node's default CAs (etcd3's type wants a Buffer)
      credentials: o.tls ? { rootCertificate: (o.tls.ca ?? null) as Buffer, privateKey: o.tls.key, certChain: o.tls.cert } : undefined,
    });
    this.bindings = new EtcdBindings(this.client, this.root, { deadline: () => this.deadline(), failure: (err, doing) => this.failure(err, doing) });
    this.loop = new PrefixWatch(this.client, this.root, o.logger, this.description, {
      revision: () => this.rev,
      resync: () => this.fetch(),
      apply: (ev) => this.apply(ev),
    });
    if (!o.encryptionKey) o.logger.warn({ store: this.description }, 'config_store.encryption_key is not set: plaintext secret fields are stored in etcd unencrypted');
  }

  /** What a failed call means (etcd-errors.ts). */
  private failure(err: unknown, doing: 'read' | 'write'): GatehouseError {
    return etcdFailure(err, doing, this.o, this.root);
  }

  useSecretFields(paths: SecretFieldPaths): void {
    this.secretFields = paths;
  }

  private deadline(): { deadline: number } {
    return { deadline: Date.now() + this.o.timeoutMs };
  }

  /** Parse and decrypt one stored value. */
  private ingest(rel: string, kv: IKeyValue): Item | undefined {
    return decodeItem(this.root, rel, kv, this.o.encryptionKey);
  }

  /**
   * Read the whole prefix (in pages, at one revision); replaces the items when the read is at least
   * as new as they are. A resource whose key was not modified since this node had it keeps its
   * object (and is not parsed again).
   * @returns whether anything changed
   */
  private async fetch(): Promise<boolean> {
    const t0 = Date.now();
    let items = new Map<string, Item>();
    let bindings: Array<{ rel: string; kv: IKeyValue }> = [];
    let seeded = false;
    let read;
    try {
      read = await readPrefix(this.client, this.root, {
        call: () => this.deadline(),
        pageKeys: this.o.pageKeys,
        restart: () => {
          items = new Map();
          bindings = [];
          seeded = false;
        },
        page: (kvs) => {
          for (const kv of kvs) {
            const rel = kv.key.toString('utf8').slice(this.root.length);
            if (rel === SEEDED) seeded = true;
            if (EtcdBindings.owns(rel)) bindings.push({ rel, kv });
            const had = this.items.get(rel);
            const it = had && had.mod === Number(kv.mod_revision) && had.create === Number(kv.create_revision) ? had : this.ingest(rel, kv);
            if (it) items.set(rel, it);
          }
        },
      });
    } catch (err) {
      throw this.failure(err, 'read');
    }
    if (this.have && read.revision < this.rev) return false;
    // what the watch applied, and this node wrote, while the pages were read is newer than the read
    for (const [rel, it] of this.items) if (it.mod > read.revision) items.set(rel, it);
    for (const [rel, rev] of this.gone) {
      if (rev > read.revision) items.delete(rel);
      else this.gone.delete(rel);
    }
    let changed = items.size !== this.items.size;
    if (!changed) for (const [k, it] of items) if (this.items.get(k) !== it) { changed = true; break; }
    this.items = items;
    this.seeded = seeded;
    this.bindings.reset(bindings, read.revision);
    this.rev = read.revision;
    this.have = true;
    this.loop.reachable();
    this.lastRead = { pages: read.pages, ms: Date.now() - t0, resources: items.size };
    return changed;
  }

  private merge(fileDoc: RawConfig): RawConfig {
    return { ...fileDoc, ...dataSections(this.items.values()) };
  }

  /** The stored form of a resource (etcd-keys.ts). */
  private stored(kind: DataKind, item: Readonly<Record<string, unknown>>): string {
    return encodeItem(kind, item, this.o.encryptionKey, this.secretFields);
  }

  /**
   * First read: seed an empty prefix from the config file's data sections (once: a marker key
   * records it), then read everything.
   * @throws GatehouseError GH_ERR_STORE_UNAVAILABLE when etcd cannot be reached and nothing was read before
   */
  async complete(fileDoc: RawConfig): Promise<RawConfig> {
    if (this.o.dryRun) {
      try {
        await this.fetch();
      } catch (err) {
        // unreachable: the file alone is checked; refused credentials are a config error to report
        if ((err as GatehouseError).code === 'GH_ERR_STORE_DENIED') throw err;
        return fileDoc;
      }
      return this.seeded ? this.merge(fileDoc) : fileDoc;
    }
    await this.seed(fileDoc);
    await this.fetch();
    return this.merge(fileDoc);
  }

  ownFiles(): readonly string[] {
    return this.file.ownFiles();
  }

  async load(): Promise<RawConfig> {
    const fileDoc = await this.file.load();
    if (!this.have) return this.complete(fileDoc);
    try {
      await this.fetch();
    } catch (err) {
      // etcd away: the data last read is still the truth this node serves
      if (!this.have) throw err;
    }
    return this.merge(fileDoc);
  }

  /** A reload uses the data as the watch keeps it: no etcd round trip, and it works while etcd is away. */
  async reload(): Promise<RawConfig> {
    return this.merge(await this.file.load());
  }

  private async seed(fileDoc: RawConfig): Promise<void> {
    const puts: Array<[string, string]> = [];
    for (const kind of DATA_KINDS) {
      const list = fileDoc[kind];
      if (!Array.isArray(list)) continue;
      for (const item of list) if (item !== null && typeof item === 'object') puts.push([keyOf(kind, item as Record<string, unknown>), this.stored(kind, item as Record<string, unknown>)]);
    }
    let claimed;
    try {
      claimed = await this.client
        .if(this.root + SEEDED, 'Create', '==', 0)
        .then(this.client.put(this.root + SEEDED).value(JSON.stringify({ at: new Date().toISOString(), resources: puts.length })))
        .options(this.deadline())
        .commit();
    } catch (err) {
      const e = this.failure(err, 'write');
      if (!(err instanceof EtcdPermissionDeniedError)) throw e;
      // a read-only user (a serving-only node): fine once another node has seeded the prefix
      await this.fetch();
      if (!this.seeded && puts.length) throw new GatehouseError('GH_ERR_STORE_DENIED', `${e.message.slice(e.message.indexOf('etcd '))}; the prefix is not seeded yet, and this node cannot seed it from its config file`);
      this.o.logger.warn({ store: this.description }, 'the etcd user may read but not write the prefix: this node serves what etcd holds; Admin API writes on it are refused');
      return;
    }
    if (!claimed.succeeded) {
      if (puts.length) this.o.logger.warn({ store: this.description }, 'the config file has data sections, but etcd was seeded before: etcd is the source (use the Admin API to change data)');
      return;
    }
    for (let i = 0; i < puts.length; i += MAX_TXN_OPS) {
      const ops = puts.slice(i, i + MAX_TXN_OPS).map(([k, v]) => this.client.put(this.root + k).value(v));
      try {
        await this.client.if(this.root + SEEDED, 'Create', '>', 0).then(...ops).options(this.deadline()).commit();
      } catch (err) {
        throw this.failure(err, 'write');
      }
    }
    this.o.logger.info({ store: this.description, resources: puts.length }, 'etcd seeded from the config file');
  }

  /**
   * Write what changed between the stored data and `data`, in one transaction that only commits
   * when none of those keys changed since this node read them. An object the store holds stands
   * for itself (unchanged, not even compared).
   * @throws GatehouseError GH_ERR_STORE_UNAVAILABLE (etcd away), GH_ERR_STORE_CONFLICT (another write won)
   */
  async writeData(data: DataSections): Promise<void> {
    const wanted = new Map<string, { kind: DataKind; item: Record<string, unknown> }>();
    for (const kind of DATA_KINDS) for (const item of (data[kind] ?? []) as Array<Record<string, unknown>>) wanted.set(keyOf(kind, item), { kind, item });
    const writes: Write[] = [];
    for (const [rel, w] of wanted) {
      const have = this.items.get(rel);
      if (have?.value !== undefined && (have.value === w.item || JSON.stringify(have.value) === JSON.stringify(w.item))) continue;
      writes.push({ rel, kind: w.kind, after: w.item, have });
    }
    for (const [rel, have] of this.items) if (!wanted.has(rel)) writes.push({ rel, kind: have.kind, after: undefined, have });
    if (!(await this.commit(writes))) {
      void this.fetch().then((changed) => changed && this.loop.notify(), () => undefined);
      throw new GatehouseError('GH_ERR_STORE_CONFLICT', CONFLICT);
    }
  }

  /**
   * Write the keys of these changes alone, in one transaction: a created key must not exist, a
   * replaced or deleted one must still be at the revision this node holds. A change whose `before`
   * is not the object the store holds for that resource (another write came first, and this node
   * has applied it) is refused before etcd is asked. Afterwards the store's item is `after` itself,
   * deep-frozen.
   * Several changes of one resource are one (the first `before`, the last `after`). The whole data
   * (`_data`) is not needed: etcd holds one key per resource.
   * @throws GatehouseError GH_ERR_STORE_UNAVAILABLE (etcd away), GH_ERR_STORE_CONFLICT (another write won)
   */
  async writeChanges(changes: readonly DataChange[], _data?: () => DataSections): Promise<void> {
    const byKey = new Map<string, { kind: DataKind; before: DataChange['before']; after: DataChange['after'] }>();
    for (const c of changes) {
      const rel = keyOfId(c.kind, c.id);
      const earlier = byKey.get(rel);
      byKey.set(rel, { kind: c.kind, before: earlier ? earlier.before : c.before, after: c.after });
    }
    const writes: Write[] = [];
    for (const [rel, c] of byKey) {
      const have = this.items.get(rel);
      // the store's current object, or none: anything else is an older copy
      if (have ? have.error !== undefined || have.value !== c.before : c.before !== undefined) throw new GatehouseError('GH_ERR_STORE_CONFLICT', CONFLICT);
      if (c.before !== c.after) writes.push({ rel, kind: c.kind, after: c.after, have });
    }
    if (!(await this.commit(writes, true))) throw new GatehouseError('GH_ERR_STORE_CONFLICT', CONFLICT);
  }

  /**
   * Put and delete `writes` in one transaction guarded by each key's revision; on success the
   * store's items are the written objects (the watch events of this revision are then no news).
   * @param learn on a refusal, read the contested keys in the same transaction and apply them as
   *   watch events (told to the watcher), so the store is current before the writer retries
   * @returns whether it committed
   */
  private async commit(writes: readonly Write[], learn = false): Promise<boolean> {
    if (!writes.length) return true;
    if (writes.length > MAX_TXN_OPS) throw new GatehouseError('GH_ERR_STORE_CONFLICT', `one change may touch at most ${MAX_TXN_OPS} resources`);
    const stored = writes.map((w) => (w.after ? this.stored(w.kind, w.after) : undefined));
    const guard = (w: Write): [string, 'Create' | 'Mod', '==', number] => (w.have ? [this.root + w.rel, 'Mod', '==', w.have.mod] : [this.root + w.rel, 'Create', '==', 0]);
    let txn = this.client.if(...guard(writes[0]));
    for (const w of writes.slice(1)) txn = txn.and(...guard(w));
    txn = txn.then(...writes.map((w, i) => (stored[i] !== undefined ? this.client.put(this.root + w.rel).value(stored[i]) : this.client.delete().key(this.root + w.rel))));
    if (learn) txn = txn.else(...writes.map((w) => this.client.get(this.root + w.rel)));
    for (const w of writes) this.held.set(w.rel, []);
    let res;
    try {
      res = await txn.options(this.deadline()).commit();
    } catch (err) {
      this.release(writes);
      throw this.failure(err, 'write');
    }
    const rev = Number(res.header.revision);
    try {
      return this.committed(writes, res, rev, learn);
    } finally {
      this.release(writes);
    }
  }

  /** The keys of an answered transaction: the events that came meanwhile are applied now. */
  private release(writes: readonly Write[]): void {
    for (const w of writes) {
      const evs = this.held.get(w.rel) ?? [];
      this.held.delete(w.rel);
      for (const ev of evs) {
        const applied = this.apply(ev);
        if (applied) this.loop.notify(applied);
      }
    }
  }

  /** The store after a transaction etcd answered (its keys still held). @returns whether it committed */
  private committed(writes: readonly Write[], res: { succeeded: boolean; responses: Array<{ response_range?: { kvs?: IKeyValue[] } | null }> }, rev: number, learn: boolean): boolean {
    if (!res.succeeded) {
      // what the keys hold now, as events after those that came meanwhile (applied on release)
      if (learn) {
        writes.forEach((w, i) => {
          const kv = res.responses[i]?.response_range?.kvs?.[0];
          this.held.get(w.rel)?.push(kv ? { type: 'Put', kv } : { type: 'Delete', kv: { key: Buffer.from(this.root + w.rel), mod_revision: String(rev) } as IKeyValue });
        });
      }
      return false;
    }
    // what this node wrote is what it now has (frozen, as every item): the watch events of this
    // revision are not news
    for (const w of writes) {
      if (w.after) {
        this.items.set(w.rel, { kind: w.kind, value: deepFreeze(w.after), create: w.have?.create ?? rev, mod: rev });
        this.gone.delete(w.rel);
      } else {
        this.items.delete(w.rel);
        this.gone.set(w.rel, rev);
      }
    }
    return true;
  }

  /** Tell the other nodes (they watch the same prefix) to run a command. */
  /** Resources of `kind` under the prefix now, every node's writes included: a count-only read (`admin.limits`). */
  async count(kind: DataKind): Promise<number> {
    try {
      return await this.client.getAll().prefix(`${this.root}${kind}/`).options(this.deadline()).count();
    } catch (err) {
      throw this.failure(err, 'read');
    }
  }

  async publish(cmd: ClusterCommand): Promise<void> {
    try {
      await this.client.put(`${this.root}${COMMANDS}${cmd.type}`).value(JSON.stringify(cmd)).options(this.deadline()).exec();
    } catch (err) {
      throw this.failure(err, 'write');
    }
  }

  /**
   * Changes in etcd are told resource by resource (`onChange(changes)`, a burst in one call); a
   * resync after etcd was away, and an edit of the config file, as `onChange()`.
   */
  watch(onChange: OnChange, onCommand?: (cmd: ClusterCommand) => void): void {
    this.onCommand = onCommand;
    this.file.watch(() => onChange());
    this.loop.start(onChange);
  }

  /** A watch event on the prefix: a command to run, or a change to the data this node holds. */
  private apply(ev: { type: string; kv: IKeyValue }): Applied {
    const rel = ev.kv.key.toString('utf8').slice(this.root.length);
    const mod = Number(ev.kv.mod_revision);
    if (rel.startsWith(COMMANDS)) {
      if (ev.type === 'Put') {
        try {
          const cmd = JSON.parse(ev.kv.value.toString('utf8')) as ClusterCommand;
          if (cmd && typeof cmd.type === 'string' && typeof cmd.resource === 'string') this.onCommand?.(cmd);
        } catch {
          this.o.logger.warn({ key: this.root + rel }, 'ignored a malformed command in etcd');
        }
      }
      return undefined;
    }
    // a destination binding is bookkeeping: the node's copy follows it, the config does not change
    if (EtcdBindings.owns(rel)) {
      this.bindings.apply(rel, ev.type, ev.kv);
      return undefined;
    }
    const kind = kindOf(rel);
    if (!kind) return undefined;
    const holding = this.held.get(rel);
    if (holding) {
      holding.push(ev);
      return undefined;
    }
    const had = this.items.get(rel);
    if ((had && had.mod >= mod) || (this.gone.get(rel) ?? 0) >= mod) return undefined;
    let now: Item | undefined;
    if (ev.type === 'Delete') {
      this.items.delete(rel);
      this.gone.set(rel, mod);
      if (!had) return undefined;
    } else {
      now = this.ingest(rel, ev.kv);
      if (!now) return undefined;
      this.items.set(rel, now);
      this.gone.delete(rel);
    }
    // a value that cannot be used (or no longer is), or that names another resource than its key:
    // the full read says what is wrong, naming the key
    const fits = (it: Item | undefined) => it === undefined || (it.value !== undefined && keyOf(kind, it.value) === rel);
    if (!fits(had) || !fits(now)) return 'full';
    return { kind, id: idOf(kind, (now ?? had)!.value!), before: had?.value, after: now?.value };
  }

  async close(): Promise<void> {
    this.loop.stop();
    await this.file.close();
    await this.loop.close();
    this.client.close();
  }
}
