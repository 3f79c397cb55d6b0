// The etcd config store (cluster mode). The config file keeps its own sections (gateway, admin,
// config_store, secret_cache…) and is watched as usual; the data sections live in etcd, one key
// per resource, APISIX-style: <prefix>/routes/<id>, /upstreams/<id>, /consumers/<username>,
// /secrets/<manager>/<id>. Every node reads the prefix, then watches it from the revision it read,
// so a write on any node reaches all of them. When etcd goes away, nodes keep the last data they
// had and writes fail (503); when it returns they resync, by a fresh read, also after the watch
// history was compacted. Plaintext secret fields are encrypted at rest (AES-256-GCM). With
// credentials the client authenticates (and re-authenticates when its token expires); with TLS it
// verifies etcd's certificate and may present its own.
import { Etcd3, EtcdAuthenticationFailedError, EtcdPermissionDeniedError, type IKeyValue, type Watcher } from 'etcd3';
import { ExponentialBackoff, noop } from 'cockatiel';
import { DATA_KINDS, type ClusterCommand, type ConfigStore, type DataKind, type DataSections, type Logger, type RawConfig, type SecretFieldPaths } from '../contracts';
import { GatehouseError, withoutNodeCaHint } from '../errors';
import { looksLikeReference } from '../secrets/reference';
import { mapStringsAt } from '../config/paths';
import { ENC_PREFIX, decryptAll, encrypt } from './encryption';
import type { FileConfigStore } from './file-store';

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

type Kind = DataKind;
const KINDS: readonly Kind[] = DATA_KINDS;
/** Keys under <prefix>/_gatehouse/ are bookkeeping and commands, not data. */
const META = '_gatehouse/';
const SEEDED = `${META}seeded`;
const COMMANDS = `${META}commands/`;
/** etcd's default --max-txn-ops. */
const MAX_TXN_OPS = 128;

interface Item {
  readonly kind: Kind;
  /** Parsed and decrypted; undefined when `error` says why it cannot be used. */
  readonly value: Record<string, unknown> | undefined;
  /** JSON of `value`, to tell an unchanged resource from a changed one. */
  readonly plain: string;
  readonly create: number;
  readonly mod: number;
  readonly error?: string;
}

function idOf(kind: Kind, item: Record<string, unknown>): string {
  return String(kind === 'consumers' ? item.username : item.id);
}

/** Relative key of a resource: ids are URI-encoded per segment, so one key is one resource. */
function keyOf(kind: Kind, item: Record<string, unknown>): string {
  return `${kind}/${idOf(kind, item).split('/').map(encodeURIComponent).join('/')}`;
}

function kindOf(rel: string): Kind | undefined {
  const k = rel.slice(0, rel.indexOf('/')) as Kind;
  return KINDS.includes(k) ? k : undefined;
}

/** The first line of an error's message, without Node 24's --use-system-ca hint (see withoutNodeCaHint). */
function firstLine(err: unknown): string {
  return withoutNodeCaHint(((err as { message?: string }).message ?? String(err)).split('\n')[0]);
}

/**
 * gRPC's message without its status prefix and trailing resolution note:
 * "14 UNAVAILABLE: No connection established. Last error: … Resolution note: " → "No connection established. Last error: …".
 */
function grpcCause(line: string): string {
  const cleaned = line.replace(/^\d+ [A-Z_]+: /, '').replace(/\s*Resolution note:.*$/, '').trim();
  return cleaned === '' ? line : cleaned;
}

/**
 * What a failed TLS handshake means, from gRPC's "Last error: …" (Node's TLS error); undefined when it was no TLS failure.
 * @param withCa whether config_store.tls.ca is set (else Node's default CAs verify etcd)
 */
function tlsCause(message: string, withCa: boolean): string | undefined {
  const last = withoutNodeCaHint(/Last error: (?:Error: )?(.*?)(?: \(\d{4}-[^)]*\))?(?:\. Resolution note|$)/m.exec(message)?.[1] ?? '');
  const alert = /alert ([a-z ]+?)(?::|$)/.exec(last)?.[1];
  if (alert) return `etcd refused the TLS handshake (alert: ${alert}): it requires a client certificate signed by a CA it trusts (config_store.tls.cert and key)`;
  if (/certificate|self[- ]signed|issuer|Hostname\/IP does not match/i.test(last)) {
    // without tls.ca, Node's built-in CAs (plus NODE_EXTRA_CA_CERTS) verify etcd, not the operating system's store
    const signer = withCa ? 'config_store.tls.ca' : 'a CA Node.js trusts by default (set config_store.tls.ca to the CA that signed it)';
    return `certificate verify failed (${last}): etcd's server certificate is not signed by ${signer} or does not name the endpoint's host`;
  }
  if (/wrong version number|packet length too long|EPROTO/i.test(last)) return `TLS handshake failed (${last}): is the endpoint http://?`;
  return undefined;
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
  private watcher: Watcher | undefined;
  private onChange: (() => void) | undefined;
  private onCommand: ((cmd: ClusterCommand) => void) | undefined;
  private notifyTimer: NodeJS.Timeout | undefined;
  private rewatchTimer: NodeJS.Timeout | undefined;
  private secretFields: SecretFieldPaths = () => [];
  private up = true;
  private closed = false;

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
    if (!o.encryptionKey) o.logger.warn({ store: this.description }, 'config_store.encryption_key is not set: plaintext secret fields are stored in etcd unencrypted');
  }

  /**
   * One line naming etcd, its endpoints and the cause; never a credential. Refused credentials or
   * permissions are GH_ERR_STORE_DENIED (waiting will not help); anything else, TLS failures
   * included, is GH_ERR_STORE_UNAVAILABLE.
   */
  private failure(err: unknown, doing: 'read' | 'write'): GatehouseError {
    const where = `etcd ${this.o.endpoints.join(',')}`;
    const msg = (err as { message?: string }).message ?? String(err);
    const who = this.o.auth ? `etcd user "${this.o.auth.username}"` : 'this client (no config_store.user)';
    if (err instanceof EtcdAuthenticationFailedError) return new GatehouseError('GH_ERR_STORE_DENIED', `${where}: authentication failed, invalid user ID or password (config_store.user "${this.o.auth?.username ?? ''}")`);
    if (err instanceof EtcdPermissionDeniedError) {
      return new GatehouseError('GH_ERR_STORE_DENIED', `${where}: permission denied: ${who} may not ${doing} under ${this.root} (grant its role ${doing === 'write' ? 'readwrite' : 'read'} on that prefix)`);
    }
    if (msg.includes('etcdserver: user name is empty')) return new GatehouseError('GH_ERR_STORE_DENIED', `${where}: authentication is enabled on etcd and this client has no credentials (set config_store.user and password)`);
    if (msg.includes('etcdserver: authentication is not enabled')) return new GatehouseError('GH_ERR_STORE_DENIED', `${where}: config_store.user is set but authentication is not enabled on etcd`);
    const tls = tlsCause(msg, this.o.tls?.ca !== undefined);
    if (tls) return new GatehouseError('GH_ERR_STORE_UNAVAILABLE', `${where}: ${tls}`);
    return new GatehouseError('GH_ERR_STORE_UNAVAILABLE', `${where}: ${grpcCause(firstLine(err))}`);
  }

  useSecretFields(paths: SecretFieldPaths): void {
    this.secretFields = paths;
  }

  private deadline(): { deadline: number } {
    return { deadline: Date.now() + this.o.timeoutMs };
  }

  /** Parse and decrypt one stored value. */
  private ingest(rel: string, kv: IKeyValue): Item | undefined {
    const kind = kindOf(rel);
    if (!kind) return undefined;
    const create = Number(kv.create_revision);
    const mod = Number(kv.mod_revision);
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(kv.value.toString('utf8')) as Record<string, unknown>;
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
    } catch {
      return { kind, value: undefined, plain: '', create, mod, error: `etcd key ${this.root}${rel}: not a JSON object` };
    }
    const bad: string[] = [];
    decryptAll(value, this.o.encryptionKey, (p) => bad.push(p));
    if (bad.length) {
      const why = this.o.encryptionKey ? 'cannot be decrypted with config_store.encryption_key (wrong key?)' : 'is encrypted but config_store.encryption_key is not set';
      return { kind, value: undefined, plain: '', create, mod, error: `etcd key ${this.root}${rel}: ${bad.join(', ')} ${why}` };
    }
    return { kind, value, plain: JSON.stringify(value), create, mod };
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
    for (const kv of res.kvs) {
      const rel = kv.key.toString('utf8').slice(this.root.length);
      if (rel === SEEDED) this.seeded = true;
      const it = this.ingest(rel, kv);
      if (it) this.items.set(rel, it);
    }
    this.rev = rev;
    this.have = true;
    this.up = true;
    return this.signature() !== before;
  }

  private signature(): string {
    let s = '';
    for (const [k, it] of this.items) s += `${k}@${it.mod};`;
    return s;
  }

  /** The data sections, in creation order; throws when a stored value is unusable (the last good config keeps serving). */
  private data(): DataSections {
    const out = Object.fromEntries(KINDS.map((k) => [k, []])) as unknown as Record<Kind, Array<{ v: Record<string, unknown>; c: number }>>;
    const errors: string[] = [];
    for (const it of this.items.values()) {
      if (it.error !== undefined) errors.push(it.error);
      else out[it.kind].push({ v: structuredClone(it.value!), c: it.create });
    }
    if (errors.length) {
      throw new GatehouseError('GH_ERR_CONFIG_READ', errors.join('; '));
    }
    const sorted = (k: Kind) => out[k].sort((a, b) => a.c - b.c).map((x) => x.v);
    return Object.fromEntries(KINDS.map((k) => [k, sorted(k)])) as unknown as DataSections;
  }

  private merge(fileDoc: RawConfig): RawConfig {
    return { ...fileDoc, ...this.data() };
  }

  /** The stored form of a resource: plaintext secret fields encrypted, references left as written. */
  private stored(kind: Kind, item: Record<string, unknown>): string {
    const key = this.o.encryptionKey;
    if (!key) return JSON.stringify(item);
    const copy = structuredClone(item);
    mapStringsAt(copy, this.secretFields(kind, item), (s) => (looksLikeReference(s) || s.startsWith(ENC_PREFIX) ? s : encrypt(key, s)));
    return JSON.stringify(copy);
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
    for (const kind of KINDS) {
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
    const wanted = new Map<string, { kind: Kind; item: Record<string, unknown>; plain: string }>();
    for (const kind of KINDS) for (const item of (data[kind] ?? []) as Array<Record<string, unknown>>) wanted.set(keyOf(kind, item), { kind, item, plain: JSON.stringify(item) });
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
      void this.fetch().then((changed) => changed && this.notify(), () => undefined);
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
    this.onChange = onChange;
    this.onCommand = onCommand;
    this.file.watch(onChange);
    this.startWatch();
  }

  private notify(): void {
    if (this.notifyTimer || this.closed) return;
    // a burst of events (a seed, a transaction) is one reload
    this.notifyTimer = setTimeout(() => {
      this.notifyTimer = undefined;
      this.onChange?.();
    }, 5);
  }

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

  /** Watch the prefix from the revision after the last read; on any failure, resync and watch again. */
  private startWatch(): void {
    if (this.closed) return;
    // the watcher is ours from this line on (not only once connected), so close() can always cancel it
    const w = this.client.watch().prefix(this.root).startRevision(String(this.rev + 1)).watcher();
    this.watcher = w;
    w.on('data', (res) => {
      let changed = false;
      for (const ev of res.events) if (this.apply(ev as { type: string; kv: IKeyValue })) changed = true;
      if (changed) this.notify();
    });
    w.on('disconnected', (err: Error) => {
      if (this.up) this.o.logger.warn({ store: this.description, err: firstLine(err) }, 'etcd connection lost: serving the last config; admin writes answer 503 until it returns');
      this.up = false;
    });
    w.on('connected', () => {
      if (this.up) return;
      // back: read everything once more (events missed while away may already be compacted)
      this.fetch().then(
        (changed) => {
          this.o.logger.info({ store: this.description, revision: this.rev }, 'etcd connection restored; resynced');
          if (changed) this.notify();
        },
        () => undefined,
      );
    });
    w.on('error', (err: Error) => {
      // e.g. the watch's start revision was compacted: the watcher is gone, start over
      this.lost(err);
    });
  }

  private lost(err: unknown): void {
    if (this.closed) return;
    if (this.watcher) {
      this.watcher.removeAllListeners();
      void this.watcher.cancel().catch(() => undefined);
      this.watcher = undefined;
    }
    if (this.up) this.o.logger.warn({ store: this.description, err: firstLine(err) }, 'etcd watch lost: serving the last config; resyncing');
    this.up = false;
    clearTimeout(this.rewatchTimer);
    this.rewatchTimer = setTimeout(() => {
      this.rewatchTimer = undefined;
      this.fetch().then(
        (changed) => {
          this.o.logger.info({ store: this.description, revision: this.rev }, 'etcd resynced');
          if (changed) this.notify();
          this.startWatch();
        },
        (e: unknown) => this.lost(e),
      );
    }, 500);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.notifyTimer);
    clearTimeout(this.rewatchTimer);
    await this.file.close();
    const w = this.watcher;
    this.watcher = undefined;
    if (w) {
      w.removeAllListeners();
      await Promise.race([w.cancel().catch(() => undefined), new Promise((r) => setTimeout(r, 200))]);
    }
    this.client.close();
  }
}
