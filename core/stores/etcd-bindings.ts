// The etcd store's destination bindings: one key per credential,
// <prefix>/_gatehouse/bindings/<credential, URI-encoded>, holding its binding as JSON (bindings.ts).
// Bookkeeping, not data: the loader and the watch leave these keys out of the data sections, and
// a change to one reloads nothing. "Bind unless bound" is one transaction (create if absent, else
// read the key), so nodes binding one credential at once agree on the winner. Every bind asks etcd,
// so an operator's unbind is seen at once by every node; only when etcd cannot answer (away, or a
// read-only role that may not write) does what the node read (the prefix at each full read, the
// watch since) answer a bind that asks for the destination it knows bound: a node keeps using its
// bindings while etcd is away, and a read-only etcd user can use bindings other nodes wrote, but
// records none of its own.
import type { Etcd3, IKeyValue } from 'etcd3';
import type { DestinationBindings } from '../contracts';
import { GatehouseError } from '../errors';
import { decodeBinding, encodeBinding, encodeCredential } from './bindings';
import { BINDINGS } from './etcd-keys';
import { readPrefix } from './etcd-read';

/** What the store lends its bindings: each call's deadline, and what a failure means (etcd-errors.ts). */
export interface EtcdCalls {
  deadline(): { deadline: number };
  failure(err: unknown, doing: 'read' | 'write'): GatehouseError;
}

export class EtcdBindings implements DestinationBindings {
  /**
   * By relative key, as of the last full read and the watch since: the destination (none when
   * deleted or unreadable) and the revision that said so, so a late event of an older one is ignored.
   */
  private readonly known = new Map<string, { destination?: string; mod: number }>();
  /** Revision of the last full read. */
  private readRev = 0;

  /** @param root the store's prefix with its trailing slash */
  constructor(private readonly client: Etcd3, private readonly root: string, private readonly calls: EtcdCalls) {}

  /** Whether a relative key of the prefix is a binding's. */
  static owns(rel: string): boolean {
    return rel.startsWith(BINDINGS);
  }

  private static keyOf(credential: string): string {
    return BINDINGS + encodeCredential(credential);
  }

  /** The binding a key holds, checked against the credential its name says. @throws GatehouseError GH_ERR_CONFIG_PARSE naming the key */
  private decode(rel: string, kv: IKeyValue): string {
    const where = `etcd key ${this.root}${rel}`;
    let credential: string;
    try {
      credential = decodeURIComponent(rel.slice(BINDINGS.length));
    } catch {
      throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${where}: not the key of a destination binding (malformed percent-encoding); delete it`);
    }
    return decodeBinding(kv.value.toString('utf8'), where, credential).destination;
  }

  /** A full read of the prefix at `revision`: its binding keys replace what this node knew. */
  reset(kvs: ReadonlyArray<{ rel: string; kv: IKeyValue }>, revision: number): void {
    this.known.clear();
    this.readRev = revision;
    for (const { rel, kv } of kvs) this.learn(rel, kv, Number(kv.mod_revision));
  }

  /** A watch event on a binding key; one no newer than what this node knows is ignored. */
  apply(rel: string, type: string, kv: IKeyValue): void {
    const mod = Number(kv.mod_revision);
    if (mod <= Math.max(this.readRev, this.known.get(rel)?.mod ?? 0)) return;
    if (type === 'Put') this.learn(rel, kv, mod);
    else this.known.set(rel, { mod });
  }

  private learn(rel: string, kv: IKeyValue, mod: number): void {
    let destination: string | undefined;
    try {
      destination = this.decode(rel, kv);
    } catch {
      // unreadable: a bind of its credential asks etcd, and fails naming the key
    }
    this.known.set(rel, { destination, mod });
  }

  async list(): Promise<ReadonlyMap<string, string>> {
    const out = new Map<string, string>();
    const page = (kvs: readonly IKeyValue[]) => {
      for (const kv of kvs) {
        const rel = kv.key.toString('utf8').slice(this.root.length);
        out.set(decodeURIComponent(rel.slice(BINDINGS.length)), this.decode(rel, kv));
      }
    };
    try {
      await readPrefix(this.client, this.root + BINDINGS, { call: () => this.calls.deadline(), page, restart: () => out.clear() });
    } catch (err) {
      if (err instanceof GatehouseError) throw err;
      throw this.calls.failure(err, 'read');
    }
    return out;
  }

  async bind(credential: string, destination: string): Promise<string> {
    const rel = EtcdBindings.keyOf(credential);
    const key = this.root + rel;
    let res;
    try {
      res = await this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(encodeBinding(credential, destination))).else(this.client.get(key)).options(this.calls.deadline()).commit();
    } catch (err) {
      // etcd cannot answer: a destination this node knows bound is still that credential's
      if (this.known.get(rel)?.destination === destination) return destination;
      const e = this.calls.failure(err, 'write');
      throw new GatehouseError(e.code, `${e.message} (recording the destination binding of ${credential})`);
    }
    const rev = Number(res.header.revision);
    if (res.succeeded) {
      this.known.set(rel, { destination, mod: rev });
      return destination;
    }
    // bound before (by this node or another): the earlier binding stands
    const kv = res.responses[0]?.response_range?.kvs?.[0];
    if (!kv) throw new GatehouseError('GH_ERR_STORE_CONFLICT', `etcd key ${key}: the destination binding of ${credential} was removed while it was being recorded; try again`);
    const bound = this.decode(rel, kv);
    this.known.set(rel, { destination: bound, mod: Number(kv.mod_revision) });
    return bound;
  }

  async unbind(credential: string): Promise<boolean> {
    const rel = EtcdBindings.keyOf(credential);
    let res;
    try {
      res = await this.client.delete().key(this.root + rel).options(this.calls.deadline()).exec();
    } catch (err) {
      throw this.calls.failure(err, 'write');
    }
    this.known.set(rel, { mod: Number(res.header.revision) });
    return Number(res.deleted) > 0;
  }
}
