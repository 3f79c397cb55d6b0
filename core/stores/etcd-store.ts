// The etcd config store (cluster mode). The config file keeps its own sections (gateway, admin,
// config_store, secret_cache…) and is watched as usual; the data sections live in etcd, one key
// per resource (the layout and what a key holds: etcd-keys.ts). Every node reads the prefix, then
// watches it from the revision it read (etcd-watch.ts), so a write on any node reaches all of
// them. When etcd goes away, nodes keep the last data they had and writes fail (503); when it
// returns they resync, by a fresh read, also after the watch history was compacted. With
// credentials the client authenticates (and re-authenticates when its token expires); with TLS it
// verifies etcd's certificate and may present its own. This file is the store itself: the first
// read and the seed, the data this node holds, writes as one guarded transaction, commands.
import { Etcd3, EtcdPermissionDeniedError, type IKeyValue } from 'etcd3';
import { ExponentialBackoff, noop } from 'cockatiel';
import { DATA_KINDS, type ClusterCommand, type ConfigStore, type DataKind, type DataSections, type Logger, type RawConfig, type SecretFieldPaths } from '../contracts';
import { GatehouseError } from '../errors';
import type { FileConfigStore } from './file-store';
import { COMMANDS, dataSections, decodeItem, encodeItem, keyOf, kindOf, MAX_TXN_OPS, SEEDED, type Item } from './etcd-keys';
import { etcdFailure } from './etcd-errors';
import { PrefixWatch } from './etcd-watch';
import { EtcdBindings } from './etcd-bindings';

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
}

export class EtcdConfigStore implements ConfigStore {
  readonly description: string;
  private readonly client: Etcd3;
  private readonly root: string;
  private readonly items = new Map<string, Item>();
  /** Deleted keys and the revision of their deletion (stale events are recognised). */
  private readonly gone = new Map<string, number>();
  /** Revision of the last full read the items reflect. */
  private rev = 0;
  private have = false;
  /** Whether the prefix holds the seed marker (as of the last full read). */
  private seeded = false;
  private readonly loop: PrefixWatch;
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

  /** Read the whole prefix; replaces the items when the read is at least as new as they are. @returns whether anything changed */
  private async fetch(): Promise<boolean> {
    let res;
    try {
      res = await this.client.getAll().prefix(this.root).options(this.deadline()).exec();
    } catch (err) {
      throw this.failure(err, 'read');
    }
    const rev = Number(res.header.revision);
    if (this.have && rev < this.rev) return false;
    const before = this.signature();
    this.items.clear();
    this.gone.clear();
    this.seeded = false;
    const bindings: Array<{ rel: string; kv: IKeyValue }> = [];
    for (const kv of res.kvs) {
      const rel = kv.key.toString('utf8').slice(this.root.length);
      if (rel === SEEDED) this.seeded = true;
      if (EtcdBindings.owns(rel)) bindings.push({ rel, kv });
      const it = this.ingest(rel, kv);
      if (it) this.items.set(rel, it);
    }
    this.bindings.reset(bindings, rev);
    this.rev = rev;
    this.have = true;
    this.loop.reachable();
    return this.signature() !== before;
  }

  private signature(): string {
    let s = '';
    for (const [k, it] of this.items) s += `${k}@${it.mod};`;
    return s;
  }

  private merge(fileDoc: RawConfig): RawConfig {
    return { ...fileDoc, ...dataSections(this.items.values()) };
  }

  /** The stored form of a resource (etcd-keys.ts). */
  private stored(kind: DataKind, item: Record<string, unknown>): string {
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
   * when none of those keys changed since this node read them.
   * @throws GatehouseError GH_ERR_STORE_UNAVAILABLE (etcd away), GH_ERR_STORE_CONFLICT (another write won)
   */
  async writeData(data: DataSections): Promise<void> {
    const wanted = new Map<string, { kind: DataKind; item: Record<string, unknown>; plain: string }>();
    for (const kind of DATA_KINDS) for (const item of (data[kind] ?? []) as Array<Record<string, unknown>>) wanted.set(keyOf(kind, item), { kind, item, plain: JSON.stringify(item) });
    const cmp: Array<[string, 'Create' | 'Mod', number]> = [];
    const puts: Array<[string, string]> = [];
    const dels: string[] = [];
    for (const [k, w] of wanted) {
      const have = this.items.get(k);
      if (have?.plain === w.plain) continue;
      cmp.push(have ? [k, 'Mod', have.mod] : [k, 'Create', 0]);
      puts.push([k, this.stored(w.kind, w.item)]);
    }
    for (const [k, it] of this.items) {
      if (wanted.has(k)) continue;
      cmp.push([k, 'Mod', it.mod]);
      dels.push(k);
    }
    if (!puts.length && !dels.length) return;
    const ops = [...puts.map(([k, v]) => this.client.put(this.root + k).value(v)), ...dels.map((k) => this.client.delete().key(this.root + k))];
    if (ops.length > MAX_TXN_OPS) throw new GatehouseError('GH_ERR_STORE_CONFLICT', `one change may touch at most ${MAX_TXN_OPS} resources`);
    let txn = this.client.if(this.root + cmp[0][0], cmp[0][1], '==', cmp[0][2]);
    for (const [k, col, v] of cmp.slice(1)) txn = txn.and(this.root + k, col, '==', v);
    let res;
    try {
      res = await txn.then(...ops).options(this.deadline()).commit();
    } catch (err) {
      throw this.failure(err, 'write');
    }
    if (!res.succeeded) {
      void this.fetch().then((changed) => changed && this.loop.notify(), () => undefined);
      throw new GatehouseError('GH_ERR_STORE_CONFLICT', 'the resource was changed by another writer meanwhile; read it again and retry');
    }
    // what this node wrote is what it now has: the watch events of this revision are not news
    const rev = Number(res.header.revision);
    for (const [k, v] of puts) {
      const it = this.ingest(k, { key: Buffer.from(this.root + k), value: Buffer.from(v), create_revision: String(this.items.get(k)?.create ?? rev), mod_revision: String(rev), version: '1', lease: '0' });
      if (it) this.items.set(k, it);
      this.gone.delete(k);
    }
    for (const k of dels) {
      this.items.delete(k);
      this.gone.set(k, rev);
    }
  }

  /** Tell the other nodes (they watch the same prefix) to run a command. */
  async publish(cmd: ClusterCommand): Promise<void> {
    try {
      await this.client.put(`${this.root}${COMMANDS}${cmd.type}`).value(JSON.stringify(cmd)).options(this.deadline()).exec();
    } catch (err) {
      throw this.failure(err, 'write');
    }
  }

  watch(onChange: () => void, onCommand?: (cmd: ClusterCommand) => void): void {
    this.onCommand = onCommand;
    this.file.watch(onChange);
    this.loop.start(onChange);
  }

  /** A watch event on the prefix: a command to run, or a change to the data this node holds. @returns whether the data changed */
  private apply(ev: { type: string; kv: IKeyValue }): boolean {
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
      return false;
    }
    // a destination binding is bookkeeping: the node's copy follows it, the config does not change
    if (EtcdBindings.owns(rel)) {
      this.bindings.apply(rel, ev.type, ev.kv);
      return false;
    }
    if (!kindOf(rel)) return false;
    const have = this.items.get(rel);
    if ((have && have.mod >= mod) || (this.gone.get(rel) ?? 0) >= mod) return false;
    if (ev.type === 'Delete') {
      this.items.delete(rel);
      this.gone.set(rel, mod);
    } else {
      const it = this.ingest(rel, ev.kv);
      if (!it) return false;
      this.items.set(rel, it);
      this.gone.delete(rel);
    }
    return true;
  }

  async close(): Promise<void> {
    this.loop.stop();
    await this.file.close();
    await this.loop.close();
    this.client.close();
  }
}
