// Credential lookup for authentication plugins: O(1) in the number of consumers (a map keyed by
// the SHA-256 of each credential), a constant-time final comparison, and rotation-grace entries
// that stop matching when their grace ends; the same by a key that is no secret (a username). Both
// are persistent: an update by a few entries copies the shards it touches and shares the rest, so
// requests in flight keep the index they started with. And where credentials may be sent: bindings
// kept in memory.
import { hash, timingSafeEqual } from 'node:crypto';
import type { DestinationBindings } from './contracts';

/** One credential to index. */
export interface CredentialEntry<T> {
  /** The secret credential (an API key); only its SHA-256 is kept. */
  readonly credential: string;
  /** What a match returns (e.g. the consumer). */
  readonly value: T;
  /** Who owns it, for duplicate errors (e.g. the consumer's username). */
  readonly owner: string;
  /** Config path of the credential, set on the error for duplicates. */
  readonly path?: string;
  /** ms after which it no longer matches (a rotated-out credential in its grace); none = current. */
  readonly until?: number;
}

/**
 * What identifies an entry to remove: its owner, its credential and its `until` (none = current).
 * A `CredentialEntry` given earlier fits; its `value` and `path` are not looked at.
 */
export type CredentialKey = Pick<CredentialEntry<unknown>, 'credential' | 'owner' | 'until'>;

/** Entries an update adds and removes (see {@link CredentialIndex.update}). */
export interface CredentialDelta<T> {
  readonly added?: Iterable<CredentialEntry<T>>;
  readonly removed?: Iterable<CredentialKey>;
}

/** Finds who a presented credential belongs to. */
export interface CredentialIndex<T> {
  /** @param now ms, for grace expiry */
  find(presented: string, now: number): T | undefined;
  readonly size: number;
  /**
   * A new index with `delta` applied; this one keeps answering exactly as before (requests in
   * flight use it). It shares every shard the delta does not touch, so it costs what the delta
   * changes (one entry replaced among 100 000: a few dozen cells copied, not 100 000).
   *
   * The new index answers as `credentialIndex` would over its entries: those of this index less
   * the removed ones, then the added ones in order. Removals come first. A removal takes away one
   * held entry with the same owner, credential and `until` (entries alike in all three are
   * interchangeable: give them the same value). An added current credential that another owner
   * holds current is a duplicate, as in `credentialIndex`: without `onDuplicate` it throws, its
   * `path` the added entry's (nothing changes: this index stays as it was); with it, `onDuplicate`
   * is called (the first holder, rebuilt from what the index keeps, then the added entry) and the
   * credential matches nobody.
   *
   * @returns undefined — "build it again with `credentialIndex`" — when an exact answer would need
   *   what the index does not keep: a removal of an entry it does not hold (the caller's view
   *   differs from the index's); a removal from a credential two owners hold current (whatever
   *   `onDuplicate` did about that pair cannot be undone here); a touched credential that no one
   *   holds current and that two or more owners hold in grace (which of them it identifies
   *   depends on the order the owners were listed in, which only the caller knows).
   * @throws Error with `path` for a duplicate without `onDuplicate`
   */
  update(delta: CredentialDelta<T>, options?: CredentialIndexOptions<T>): CredentialIndex<T> | undefined;
}

/** Options of {@link credentialIndex}. */
export interface CredentialIndexOptions<T> {
  /**
   * Two owners with the same current credential: called once per pair (the first entry seen, then
   * the other), and that credential then matches nobody, so neither owner authenticates with it.
   * Without it, a duplicate throws. Authentication plugins pass one that leaves both consumers out
   * (`services.exclude` in `indexConsumers`): a refused config would tell whoever wrote it that
   * their value equals a credential held elsewhere (a key in Vault, a literal shown as `******`).
   */
  onDuplicate?(first: CredentialEntry<T>, second: CredentialEntry<T>): void;
}

/** One of an owner's entries for a key, as an index keeps it (never a credential itself). */
export interface Owned<T> {
  readonly owner: string;
  readonly value: T;
  /** ms after which it no longer holds (rotation grace); Infinity for a current entry. */
  readonly until: number;
}

/** One entry of an {@link ownerIndex}: a key that is no secret (a username, a JWT key claim). */
export interface OwnerEntry<T> {
  /** What the index is looked up by. */
  readonly key: string;
  readonly value: T;
  /** Who holds the key (e.g. the consumer's username). */
  readonly owner: string;
  /** Config path of the key, set on the error for duplicates. */
  readonly path?: string;
  /** ms after which it no longer holds (rotation grace); none = current. */
  readonly until?: number;
}

/** What identifies an entry to remove from an {@link OwnerIndex}; an `OwnerEntry` given earlier fits. */
export type OwnerKey = Pick<OwnerEntry<unknown>, 'key' | 'owner' | 'until'>;

/** Entries an update adds and removes (see {@link OwnerIndex.update}). */
export interface OwnerDelta<T> {
  readonly added?: Iterable<OwnerEntry<T>>;
  readonly removed?: Iterable<OwnerKey>;
}

/** Options of {@link ownerIndex}. */
export interface OwnerIndexOptions<T> {
  /** As {@link CredentialIndexOptions.onDuplicate}: two owners with the same current key. */
  onDuplicate?(first: OwnerEntry<T>, second: OwnerEntry<T>): void;
}

/** Finds which owner a key names, and that owner's entries for it. */
export interface OwnerIndex<T> {
  /**
   * The entries of the owner `key` names, allocation-free: its current entries first, then those
   * in grace, each group in the order given (check `until`); undefined when it names nobody (no
   * entry, or two owners hold it current). The owner: the one holding it current, else the first
   * listed of those holding it in grace — a key rotated out never shadows another owner's current one.
   */
  get(key: string): readonly Owned<T>[] | undefined;
  /** How many keys name someone. */
  readonly size: number;
  /** As {@link CredentialIndex.update}, for keys: same removals, duplicates and undefined. */
  update(delta: OwnerDelta<T>, options?: OwnerIndexOptions<T>): OwnerIndex<T> | undefined;
}

const DIGEST = 32;
/**
 * Shards of an index, 64 × 64 (two levels, so an update copies 64 + 64 pointers, not 4 096): an
 * update copies the few it touches (100 000 keys: ~25 per shard).
 */
const FANOUT = 64;
const SHARDS = FANOUT * FANOUT;

/** One-shot SHA-256 as base64 text: no Hash object and no Buffer per credential. */
function digestOf(s: string): string {
  return hash('sha256', s, 'base64');
}

const BASE64_VALUE = new Uint8Array(128);
for (let i = 0; i < 64; i++) BASE64_VALUE['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;

/** A digest's shard: its first 12 bits (two base64 characters), uniform by construction. */
function digestShard(k: string): number {
  return (BASE64_VALUE[k.charCodeAt(0)] << 6) | BASE64_VALUE[k.charCodeAt(1)];
}

/** A key's shard: FNV-1a of its characters (only spreads the keys; each shard is a Map). */
function keyShard(k: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193);
  return (h >>> 0) & (SHARDS - 1);
}

/** What the internals read of an entry (its key is computed apart: a digest, or the key itself). */
interface Item<T> {
  readonly value: T;
  readonly owner: string;
  readonly path?: string;
  readonly until?: number;
}

interface Held<T> extends Owned<T> {
  readonly current: boolean;
}

/** A key several entries hold: all of them in order, and what it answers (empty: nobody). */
interface Many<T> {
  readonly held: readonly Held<T>[];
  readonly answer: readonly Held<T>[];
  /** Two owners hold it current. */
  readonly shared: boolean;
}

/**
 * One key. Usually one entry holds it, and the cell is that entry (one object per key: 100 000
 * keys are 100 000 objects for the collector, as a plain Map of them would be); `many` otherwise.
 */
interface Cell<T> extends Held<T> {
  /** Offset of the digest in its shard's slab (credential indexes). */
  readonly at: number;
  readonly many: Many<T> | undefined;
  /** What an owner index answers (undefined: nobody; unused by credential indexes). */
  readonly list: readonly Held<T>[] | undefined;
}

interface Shard<T> {
  readonly cells: ReadonlyMap<string, Cell<T>>;
  /** The digests of the cells, 32 bytes each (credential indexes; empty otherwise). */
  readonly slab: Buffer;
}

type Leaf<T> = readonly Shard<T>[];

const NO_SLAB = Buffer.alloc(0);
const EMPTY_SHARD: Shard<never> = Object.freeze({ cells: new Map(), slab: NO_SLAB });
const EMPTY_LEAF: Leaf<never> = Object.freeze(new Array<Shard<never>>(FANOUT).fill(EMPTY_SHARD));
const NOBODY: readonly never[] = Object.freeze([]);

/** How the two kinds of index differ: where a key lives, and what a cell keeps. */
interface Kind {
  readonly shardOf: (k: string) => number;
  /** Digests in slabs, for the constant-time comparison (credential indexes). */
  readonly slab: boolean;
  readonly duplicate: (first: string, second: string) => string;
}

function heldOf<T>(e: Item<T>): Held<T> {
  const current = e.until === undefined;
  return { owner: e.owner, value: e.value, until: current ? Number.POSITIVE_INFINITY : e.until!, current };
}

/** Every entry holding the key of `c`. */
function heldIn<T>(c: Cell<T>): readonly Held<T>[] {
  return c.many === undefined ? [c] : c.many.held;
}

/** Whether `c`'s key names someone. */
function answers<T>(c: Cell<T>): boolean {
  return c.many === undefined || c.many.answer.length > 0;
}

/**
 * What a key answers: the entries of the owner holding it current (several owners: nobody), else
 * of the first owner holding it in grace; that owner's current entries first, then its grace ones.
 * `ambiguous`: nobody holds it current and several owners hold it in grace, so the answer depends
 * on the order owners were listed in.
 */
function many<T>(held: readonly Held<T>[]): Many<T> & { ambiguous: boolean } {
  let owner: string | undefined;
  let shared = false;
  let graceOwner: string | undefined;
  let ambiguous = false;
  for (const h of held) {
    if (h.current) {
      if (owner === undefined) owner = h.owner;
      else if (h.owner !== owner) shared = true;
    } else if (graceOwner === undefined) graceOwner = h.owner;
    else if (h.owner !== graceOwner) ambiguous = true;
  }
  if (shared) return { held, answer: NOBODY, shared, ambiguous: false };
  const winner = owner ?? graceOwner;
  const answer: Held<T>[] = [];
  for (const h of held) if (h.current && h.owner === winner) answer.push(h);
  for (const h of held) if (!h.current && h.owner === winner) answer.push(h);
  return { held, answer, shared, ambiguous: ambiguous && owner === undefined };
}

/** The cell of a key at `at` held by `held` (one entry or more). */
function cellOf<T>(kind: Kind, at: number, held: readonly Held<T>[], m?: Many<T>): Cell<T> {
  if (held.length === 1) {
    const h = held[0];
    const cell: { -readonly [K in keyof Cell<T>]: Cell<T>[K] } = { owner: h.owner, value: h.value, until: h.until, current: h.current, at, many: undefined, list: undefined };
    if (!kind.slab) cell.list = [cell];
    return cell;
  }
  const { answer, shared } = m ?? many(held);
  return { owner: '', value: undefined as T, until: Number.NEGATIVE_INFINITY, current: false, at, many: { held, answer, shared }, list: kind.slab || answer.length === 0 ? undefined : answer };
}

/** Whether `h` is the entry `k` names (same owner, current or the same `until`). */
function sameEntry<T>(h: Held<T>, k: { owner: string; until?: number }): boolean {
  return h.owner === k.owner && (k.until === undefined ? h.current : !h.current && h.until === k.until);
}

/** The sharded, copy-on-write table under both kinds of index. */
class Table<T> {
  constructor(
    readonly kind: Kind,
    readonly leaves: readonly Leaf<T>[],
    readonly size: number,
  ) {}

  /** Build from entries in order; duplicates as `credentialIndex` documents (`onDuplicate` gets the entries as given). */
  static build<T, E extends Item<T>>(kind: Kind, entries: Iterable<E>, keyOf: (e: E) => string, onDuplicate: ((first: E, second: E) => void) | undefined): Table<T> {
    const maps: Array<Map<string, Cell<T>> | undefined> = new Array(SHARDS);
    const keys: string[] = [];
    // the first entry holding each key current (by the key's ordinal), for duplicate reports
    const firsts: Array<E | undefined> = [];
    // keys several entries hold (rare): their entries in order
    const several = new Map<string, Held<T>[]>();
    for (const e of entries) {
      const k = keyOf(e);
      const s = kind.shardOf(k);
      const map = (maps[s] ??= new Map());
      const cell = map.get(k);
      if (cell === undefined) {
        const at = keys.length * DIGEST;
        map.set(k, cellOf(kind, at, [heldOf(e)]));
        firsts.push(e.until === undefined ? e : undefined);
        keys.push(k);
        continue;
      }
      const ordinal = cell.at / DIGEST;
      if (e.until === undefined) {
        const other = firsts[ordinal];
        if (other === undefined) firsts[ordinal] = e;
        else if (other.owner !== e.owner) {
          if (!onDuplicate) throw Object.assign(new Error(kind.duplicate(other.owner, e.owner)), { path: e.path });
          onDuplicate(other, e);
        }
      }
      const list = several.get(k);
      if (list === undefined) several.set(k, [cell, heldOf(e)]);
      else list.push(heldOf(e));
    }
    firsts.length = 0;
    for (const [k, held] of several) {
      const map = maps[kind.shardOf(k)]!;
      map.set(k, cellOf(kind, map.get(k)!.at, held));
    }
    // every digest in one slab: 100 000 keys cost 3 MB and one object, not 100 000 buffers
    const slab = kind.slab ? Buffer.allocUnsafeSlow(keys.length * DIGEST) : NO_SLAB;
    if (kind.slab) for (let i = 0; i < keys.length; i++) slab.write(keys[i], i * DIGEST, DIGEST, 'base64');
    let size = keys.length;
    for (const held of several.values()) if (many(held).answer.length === 0) size--;
    const leaves: Leaf<T>[] = [];
    for (let hi = 0; hi < FANOUT; hi++) {
      let leaf: Shard<T>[] | undefined;
      for (let lo = 0; lo < FANOUT; lo++) {
        const map = maps[hi * FANOUT + lo];
        if (map === undefined) continue;
        leaf ??= new Array<Shard<T>>(FANOUT).fill(EMPTY_SHARD as Shard<T>);
        leaf[lo] = { cells: map, slab };
      }
      leaves.push(leaf ?? (EMPTY_LEAF as Leaf<T>));
    }
    return new Table(kind, leaves, size);
  }

  shard(s: number): Shard<T> {
    return this.leaves[s >>> 6][s & (FANOUT - 1)];
  }

  cell(k: string): Cell<T> | undefined {
    return this.shard(this.kind.shardOf(k)).cells.get(k);
  }

  /** See {@link CredentialIndex.update}. */
  update<E extends Item<T>, R extends { owner: string; until?: number }>(added: Iterable<E>, removed: Iterable<R>, keyOf: (e: E | R) => string, onDuplicate: ((first: Held<T>, second: E) => void) | undefined): Table<T> | undefined {
    // the touched keys' new entry lists
    const touched = new Map<string, Held<T>[]>();
    const listOf = (k: string): Held<T>[] => {
      let list = touched.get(k);
      if (list === undefined) {
        const cell = this.cell(k);
        touched.set(k, (list = cell === undefined ? [] : [...heldIn(cell)]));
      }
      return list;
    };
    for (const r of removed) {
      const k = keyOf(r);
      const cell = this.cell(k);
      if (cell === undefined || cell.many?.shared === true) return undefined;
      const list = listOf(k);
      const i = list.findIndex((h) => sameEntry(h, r));
      if (i === -1) return undefined;
      list.splice(i, 1);
    }
    const calls: Array<[Held<T>, E]> = [];
    for (const e of added) {
      const list = listOf(keyOf(e));
      if (e.until === undefined) {
        const first = list.find((h) => h.current);
        if (first !== undefined && first.owner !== e.owner) {
          if (!onDuplicate) throw Object.assign(new Error(this.kind.duplicate(first.owner, e.owner)), { path: e.path });
          calls.push([first, e]);
        }
      }
      list.push(heldOf(e));
    }
    const byShard = new Map<number, string[]>();
    for (const k of touched.keys()) {
      const s = this.kind.shardOf(k);
      const keys = byShard.get(s);
      if (keys === undefined) byShard.set(s, [k]);
      else keys.push(k);
    }
    // each touched shard copied once, its slab packed again; the rest shared
    let size = this.size;
    const leaves = this.leaves.slice();
    const copied = new Set<number>();
    for (const [s, keys] of byShard) {
      const old = this.shard(s);
      for (const k of keys) {
        const was = old.cells.get(k);
        if (was !== undefined && answers(was)) size--;
      }
      const fresh = new Map<string, Cell<T>>();
      for (const k of keys) {
        const held = touched.get(k)!;
        if (held.length === 0) continue;
        const m = held.length > 1 ? many(held) : undefined;
        if (m?.ambiguous) return undefined;
        const cell = cellOf(this.kind, 0, held, m);
        if (answers(cell)) size++;
        fresh.set(k, cell);
      }
      const count = old.cells.size + keys.length;
      const slab = this.kind.slab ? Buffer.allocUnsafeSlow(count * DIGEST) : NO_SLAB;
      const cells = new Map<string, Cell<T>>();
      let at = 0;
      const place = (k: string, c: Cell<T>, from: number | undefined) => {
        if (!this.kind.slab) {
          cells.set(k, c);
          return;
        }
        if (from === undefined) slab.write(k, at, DIGEST, 'base64');
        else old.slab.copy(slab, at, from, from + DIGEST);
        cells.set(k, c.many === undefined ? cellOf(this.kind, at, [c]) : { ...c, at });
        at += DIGEST;
      };
      for (const [k, c] of old.cells) {
        const f = fresh.get(k);
        if (f !== undefined) place(k, f, c.at);
        else if (!touched.has(k)) place(k, c, c.at);
      }
      for (const [k, f] of fresh) if (!old.cells.has(k)) place(k, f, undefined);
      const hi = s >>> 6;
      if (!copied.has(hi)) {
        leaves[hi] = leaves[hi].slice();
        copied.add(hi);
      }
      (leaves[hi] as Shard<T>[])[s & (FANOUT - 1)] = cells.size === 0 ? (EMPTY_SHARD as Shard<T>) : { cells, slab: this.kind.slab ? slab.subarray(0, at) : NO_SLAB };
    }
    // called once the update is certain: a rebuild asked for instead must not have run them
    for (const [first, second] of calls) onDuplicate!(first, second);
    return new Table(this.kind, leaves, size);
  }
}

const CREDENTIALS: Kind = {
  shardOf: digestShard,
  slab: true,
  duplicate: (a, b) => `consumers "${a}" and "${b}" have the same key; each key must identify one consumer`,
};
const KEYS: Kind = {
  shardOf: keyShard,
  slab: false,
  duplicate: (a, b) => `"${a}" and "${b}" have the same key; each key must identify one owner`,
};

const credentialKey = (e: { credential: string }) => digestOf(e.credential);
const ownerKey = (e: { key: string }) => e.key;

function credentialView<T>(table: Table<T>): CredentialIndex<T> {
  return {
    size: table.size,
    find(presented, now) {
      const k = digestOf(presented);
      const shard = table.leaves[BASE64_VALUE[k.charCodeAt(0)]][BASE64_VALUE[k.charCodeAt(1)]];
      const cell = shard.cells.get(k);
      if (cell === undefined) return undefined;
      // the map matched on the digest; confirm it in constant time before trusting it
      if (!timingSafeEqual(shard.slab.subarray(cell.at, cell.at + DIGEST), Buffer.from(k, 'base64'))) return undefined;
      const first = cell.many === undefined ? cell : cell.many.answer[0];
      return first !== undefined && now < first.until ? first.value : undefined;
    },
    update(delta, options = {}) {
      const { onDuplicate } = options;
      const next = table.update<CredentialEntry<T>, CredentialKey>(delta.added ?? [], delta.removed ?? [], credentialKey, onDuplicate && ((first, second) => onDuplicate({ credential: second.credential, value: first.value, owner: first.owner }, second)));
      return next && credentialView(next);
    },
  };
}

/**
 * Build an index. Two owners with the same current credential is an error naming both (a key
 * must identify one consumer), or with `onDuplicate` a credential that matches nobody; a
 * rotated-out credential never shadows a current one (of several owners holding it in grace,
 * the first listed). Persistent: `update` gives a new index for a few entries added and removed
 * at the cost of what they change (the key space is split in 4 096 shards, each a Map and a slab
 * of its digests, copied on write), and leaves this one as it is.
 * Digests live in one slab (32 bytes each) rather than one Buffer per credential: 100 000 keys
 * cost 3 MB and one object, not 100 000 buffers for the collector to trace.
 * @throws Error with `path` set to the second owner's credential path (without `onDuplicate`)
 * @example
 * const idx = credentialIndex([{ credential: 'k1', value: jack, owner: 'jack' }]);
 * idx.find(presentedKey, Date.now()) // jack | undefined
 * const next = idx.update({ removed: [{ credential: 'k1', owner: 'jack' }], added: [{ credential: 'k2', value: jack, owner: 'jack' }] }) ?? credentialIndex(all);
 */
export function credentialIndex<T>(entries: Iterable<CredentialEntry<T>>, options: CredentialIndexOptions<T> = {}): CredentialIndex<T> {
  return credentialView(Table.build<T, CredentialEntry<T>>(CREDENTIALS, entries, credentialKey, options.onDuplicate));
}

function ownerView<T>(table: Table<T>): OwnerIndex<T> {
  return {
    size: table.size,
    get(key) {
      return table.cell(key)?.list;
    },
    update(delta, options = {}) {
      const { onDuplicate } = options;
      const next = table.update<OwnerEntry<T>, OwnerKey>(delta.added ?? [], delta.removed ?? [], ownerKey, onDuplicate && ((first, second) => onDuplicate({ key: second.key, value: first.value, owner: first.owner }, second)));
      return next && ownerView(next);
    },
  };
}

/**
 * Index entries by a key that is no secret (a username, a JWT key claim): `get(key)` gives the
 * entries of the owner it names, current first. Duplicates, grace, `update` and its cost as
 * {@link credentialIndex} (the keys are compared as they are: not for secrets).
 * @throws Error with `path` set to the second owner's key path (without `onDuplicate`)
 * @example
 * const idx = ownerIndex([{ key: 'alice', value: account, owner: 'c1' }]);
 * idx.get('alice')?.[0].value // account
 */
export function ownerIndex<T>(entries: Iterable<OwnerEntry<T>>, options: OwnerIndexOptions<T> = {}): OwnerIndex<T> {
  return ownerView(Table.build<T, OwnerEntry<T>>(KEYS, entries, ownerKey, options.onDuplicate));
}

/**
 * Credential → destination bindings kept in memory, for the lifetime of their owner: a gateway
 * whose config store keeps none (every gateway container has its own), the memory store's, a
 * read-only file store's.
 */
export class MemoryBindings implements DestinationBindings {
  private readonly map = new Map<string, string>();

  async list(): Promise<ReadonlyMap<string, string>> {
    return new Map(this.map);
  }

  async bind(credential: string, destination: string): Promise<string> {
    const bound = this.map.get(credential);
    if (bound !== undefined) return bound;
    this.map.set(credential, destination);
    return destination;
  }

  async unbind(credential: string): Promise<boolean> {
    return this.map.delete(credential);
  }
}
