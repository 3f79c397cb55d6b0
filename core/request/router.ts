// Route matching on find-my-way: uri (exact, `/prefix/*`, `:param`), methods and hosts. Host first,
// then uri, as APISIX's default `radixtree_host_uri` router: routes naming the request's host are
// searched first (exact host, then `*.` wildcards, most specific first), then routes without hosts.
// Routes sharing method, uri and host are ordered by priority, then by their place in the config.
//
// A router is immutable (a request keeps the router it started with); `updateRouter` makes the next
// one from a change, sharing everything the change does not touch. What would be one find-my-way
// tree (one host table, one method) is split by the routes' leading static segments into small
// trees, so a change builds one small tree (or only a tree of the changed key's uris), not all of
// them; the split answers every request as the one tree would (see "The split of one tree" and "A
// change to a large bucket" below, docs/architecture.md and docs/performance.md).
import { maxHeaderSize } from 'node:http';
import FindMyWay from 'find-my-way';
import { HTTP_METHODS } from '../config/types';

/** What a route contributes to the router. */
export interface RoutableRoute {
  readonly id: string;
  readonly uris: readonly string[];
  readonly methods?: readonly string[];
  readonly hosts?: readonly string[];
  readonly priority: number;
}

export interface RouteMatch<R> {
  readonly route: R;
  readonly params: Record<string, string | undefined>;
}

/** An immutable router over a set of routes. */
export interface Router<R> {
  /** @param host the request's host as {@link hostForMatching} gives it */
  find(method: string, host: string, path: string): RouteMatch<R> | null;
}

/** A uri find-my-way refuses (e.g. an unclosed regex parameter). */
export class RouteUriError extends Error {
  constructor(readonly routeId: string, readonly uri: string, cause: Error) {
    super(`invalid uri "${uri}": ${cause.message}`);
  }
}

/** The uri as find-my-way tells routes apart: parameter names do not count (`/u/:id` = `/u/:name`). */
function uriShape(uri: string): string {
  // "::" is an escaped literal colon, not a parameter
  return uri.replace(/::|:[^/.\-(]*/g, (m) => (m === '::' ? m : ':'));
}

type Fmw = ReturnType<typeof FindMyWay>;
type FmwMatch<R> = { store: Entry<R>; params: Record<string, string | undefined> };

/** Methods a route can list; others (PROPFIND, MKCOL, …) are matched by the routes without `methods` only. */
const LISTED = new Set<string>(HTTP_METHODS);
/** The tree key of the routes without `methods`: they answer every method. */
const ANY = '*';

/** One uri of one route, as stored in a tree. */
interface Entry<R> {
  readonly route: R;
  readonly uri: string;
  readonly shape: string;
  /** The route's place in the config: the earlier wins a tie of equal priority. */
  readonly ord: number;
  /** The uri's index in the route's `uris`: the earlier wins among one route's uris. */
  readonly u: number;
  /** Unique per entry: names it in the cache of pair trees. */
  readonly eid: number;
  /** The hash of the uri's key (see placeUri; 0 at level 0). */
  readonly key: number;
}

/** Whether `x` comes before `y` in config order (routes, then their uris). */
function earlier<R>(x: Entry<R>, y: Entry<R>): boolean {
  return x.ord !== y.ord ? x.ord < y.ord : x.u < y.u;
}

/** The entry find-my-way is given for a group of one shape: the higher priority, then the earlier in config. */
function better<R extends RoutableRoute>(x: Entry<R>, y: Entry<R>): boolean {
  return x.route.priority !== y.route.priority ? x.route.priority > y.route.priority : earlier(x, y);
}

/**
 * find-my-way skips a `:param` node whose value is longer than `maxParamLength` and goes on to the
 * next candidate, so a long value would leave `/users/:id` (and its auth plugins) for a public
 * `/*`. nginx and APISIX have no such limit: the request line's is the only one. The whole request
 * head, request line included, is bounded by Node's header limit (431 beyond it), so a parameter
 * can never be longer than that, and no request reaches a less specific route for its length.
 */
const MAX_PARAM_LENGTH = Math.max(maxHeaderSize, 16 * 1024);

function newTree(): Fmw {
  return FindMyWay({ ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, caseSensitive: true, maxParamLength: MAX_PARAM_LENGTH });
}

// ---------------------------------------------------------------------------------------------
// The split of one tree by leading static segments
//
// A route's level is the number of its uri's leading segments that are entirely static (no `:`,
// `*`, `(`, and, to stay on the safe side, no `%`, `?` or `#`), at most `maxLevel`; its key is the
// uri up to the end of those segments (`/svc/r1/items/:id` → level 3, key `/svc/r1/items`; `/:v/x`
// and `/a*` → level 0). A request's keys are its own first 1, 2, … segments, as find-my-way reads
// the path (up to `?` or `#`, decoded as find-my-way decodes it). Routes of one level are spread
// over `buckets` small trees by a hash of their key; a request is looked up at each level, deepest
// first, in the tree its key hashes to, and the first match wins.
//
// Why this is the one tree's answer: find-my-way walks the request's path through static nodes
// first and backtracks to a parametric node, then a wildcard, only when what lies below fails
// (static before parametric before wildcard). The routes whose first k+1 segments are static and
// equal to the request's sit below the static node that ends the request's segment k+1; every
// route that leaves the request's path earlier does so at a parametric or wildcard node within
// one of its first k+1 segments, so it is tried only after that whole static subtree failed. So
// the deeper level's routes, when one of them matches, win over every shallower one, and within a
// level the routes of other keys cannot match (their static segments differ from the request's).
// Routes that find-my-way must order among themselves (several parameters or regexes at the same
// node) share every segment before that node, so they share a key and a tree, where they are
// inserted in config order as in the one tree.

/** How a tree is split; `SINGLE_TREE` is one find-my-way tree per host table and method. */
export interface RouterLayout {
  /** The deepest level (0: no split). */
  readonly maxLevel: number;
  /** Small trees per level, a power of two. */
  readonly buckets: number;
  /**
   * A bucket holding at most this many uri shapes is rebuilt whole on a change; a larger one
   * keeps its tree and gets a tree per changed key (see "A change to a large bucket" below).
   * Default {@link WHOLE_UP_TO}; the property tests set 0 to put every change on key trees.
   */
  readonly wholeUpTo?: number;
  /**
   * The share of a large bucket's keys that may have key trees: a change that would pass it
   * rebuilds the bucket whole. Default {@link KEY_TREE_SHARE}; the property tests raise it so that
   * their few keys per bucket get key trees.
   */
  readonly keyTreeShare?: number;
}

/**
 * The default split: 16 trees per level. A lookup costs about what it did in one tree; 64 and 256
 * trees per level made lookups 1.4–1.7 and 2.2–2.4 times dearer (find-my-way compiles a matcher function
 * per tree node, and small trees each repeat the upper nodes one big tree shares, so a lookup
 * runs more functions that are rarely run, hence slow), and a lookup is paid per request. A change
 * does not rebuild the bucket's tree of about 600 uris at 10,000 routes (3–5 ms) but a tree of the
 * changed key (see "A change to a large bucket"). Measured with bench/router.ts: docs/performance.md.
 */
export const DEFAULT_LAYOUT: RouterLayout = Object.freeze({ maxLevel: 8, buckets: 16 });
/**
 * Buckets of up to this many uri shapes are rebuilt whole on a change: about 0.2 ms, no cheaper
 * with key trees, and so small buckets carry none.
 */
export const WHOLE_UP_TO = 32;
/** A large bucket is rebuilt whole once more than this share of its keys have key trees. */
export const KEY_TREE_SHARE = 0.25;
/** One find-my-way tree per host table and method, as the router was before the split (tests and benches compare the two). */
export const SINGLE_TREE: RouterLayout = Object.freeze({ maxLevel: 0, buckets: 1 });

const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 16777619;
const HASH_OF_SLASH = Math.imul(FNV_OFFSET ^ 47, FNV_PRIME);
/** Key hashes are kept to 30 bits: small integers for V8, in a Set and as indexes. */
const KEY_MASK = 0x3fffffff;

/** A route uri's level, the hash of its key and the bucket of that hash. */
function placeUri(uri: string, layout: RouterLayout): { level: number; key: number; bucket: number } {
  if (layout.maxLevel === 0 || uri.charCodeAt(0) !== 47 /* / */) return { level: 0, key: 0, bucket: 0 };
  let h = HASH_OF_SLASH;
  let level = 0;
  let key = 0;
  let isStatic = true;
  for (let i = 1; i <= uri.length; i++) {
    const c = i === uri.length ? -1 : uri.charCodeAt(i);
    if (c === 47 || c === -1) {
      if (!isStatic) break;
      level++;
      key = h & KEY_MASK;
      if (level === layout.maxLevel || c === -1) break;
    } else if (c === 58 /* : */ || c === 42 /* * */ || c === 40 /* ( */ || c === 37 /* % */ || c === 63 /* ? */ || c === 35 /* # */) {
      isStatic = false;
    }
    if (c !== -1) h = Math.imul(h ^ c, FNV_PRIME);
  }
  return level === 0 ? { level, key: 0, bucket: 0 } : { level, key, bucket: key & (layout.buckets - 1) };
}

/**
 * The hashes of a request path's keys (`out[k]`: its first k segments), as find-my-way reads the
 * path: up to `?` or `#`, percent-decoded as it decodes (decodeURI, `%25` and reserved characters
 * kept escaped). Returns the number of keys (at most `maxLevel`), or -1 when find-my-way cannot
 * decode the path (it then matches nothing).
 */
function pathKeys(path: string, maxLevel: number, out: Int32Array): number {
  if (maxLevel === 0 || path.charCodeAt(0) !== 47) return 0;
  let h = HASH_OF_SLASH;
  let level = 0;
  for (let i = 1; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 47) {
      out[++level] = h & KEY_MASK;
      if (level === maxLevel) return level;
    } else if (c === 63 /* ? */ || c === 35 /* # */) break;
    else if (c === 37 /* % */) return decodedKeys(path, maxLevel, out);
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  out[++level] = h & KEY_MASK;
  return level;
}

/** {@link pathKeys} of a path with escapes (rare: the data plane has decoded the unreserved ones). */
function decodedKeys(path: string, maxLevel: number, out: Int32Array): number {
  let end = path.length;
  for (let i = 1; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 63 || c === 35) {
      end = i;
      break;
    }
  }
  let p: string;
  try {
    p = decodeURI(path.slice(0, end).replace(/%25/g, '%2525'));
  } catch {
    return -1;
  }
  let h = HASH_OF_SLASH;
  let level = 0;
  for (let i = 1; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 47) {
      out[++level] = h & KEY_MASK;
      if (level === maxLevel) return level;
    }
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  out[++level] = h & KEY_MASK;
  return level;
}

// A change to a large bucket
//
// Rebuilding a bucket's tree costs its size (about 8 µs of CPU per uri: find-my-way compiles
// functions per node and handler), 3–5 ms for the 600 uris of a bucket at 10,000 routes, and
// smaller buckets make every lookup dearer (DEFAULT_LAYOUT). So a change to a bucket of more than
// `wholeUpTo` uri shapes keeps the bucket's tree and builds a tree of each key it changed: the
// key's groups alone, usually one or two uris. A key tree answers for its key instead of the
// bucket's tree, which still holds that key's uris as they were and is no longer asked about it.
// This answers as the bucket's tree rebuilt would: a request reaches a bucket only for its own key,
// only routes of that key can match it (see above), and the key tree holds all of them, inserted in
// config order. When the changed keys would be more than a quarter of the bucket's keys, the
// change rebuilds the bucket whole instead, dropping the key trees and the stale uris: so a whole
// rebuild is paid for by at least a quarter of the bucket's keys changed one by one (at 10,000
// routes, 3–5 ms once per about 150 changes to a bucket), and key trees, about 4.5 KB each against
// 2 KB for a uri in a shared tree, add at most half the bucket's heap.

/** The groups (entries of one uri shape) of one key: an array, not a map by shape (a map per key took 5 % more heap). */
type Groups<R> = ReadonlyArray<readonly Entry<R>[]>;

/** A changed key's own tree, over its groups as they are now. */
interface KeyTree<R> {
  readonly groups: Groups<R>;
  readonly tree: Fmw;
}

/**
 * One bucket's small tree. Never changed once built: a change makes a new one, which shares the
 * tree when it only adds key trees.
 */
interface Shard<R> {
  /**
   * The groups the tree was built over, by the hash of their key. A request whose key is not
   * among them (nor changed) is not looked up in it: a miss in a map of numbers costs a tenth of
   * a miss in the tree.
   */
  readonly byKey: ReadonlyMap<number, Groups<R>>;
  readonly tree: Fmw;
  /**
   * The keys changed since the tree was built: each one's own tree, which answers for it instead
   * of `tree`, or null for a key that has no uri now. Undefined when none changed.
   */
  readonly changed: ReadonlyMap<number, KeyTree<R> | null> | undefined;
  /** The uri shapes and keys it holds now (changed keys as they are now). */
  readonly size: number;
  readonly keyCount: number;
}

/**
 * What one find-my-way tree would hold (the routes of one host table for one method), split: per
 * level, its small trees by bucket. `order` lists the non-empty levels, deepest first.
 */
interface Tree<R> {
  readonly levels: ReadonlyArray<ReadonlyArray<Shard<R> | undefined> | undefined>;
  readonly order: readonly number[];
}

/** A tree while a change builds it. */
interface MutableTree<R> {
  levels: Array<ReadonlyArray<Shard<R> | undefined> | undefined>;
  order: number[];
}

/** A host table: its trees by method (ANY for the routes without `methods`). */
type Table<R> = ReadonlyMap<string, Tree<R>>;

/** Scratch for the keys of the path being looked up (a lookup never runs inside another). */
const KEYS = new Int32Array(64);

function findInTree<R>(t: Tree<R>, path: string, keys: number, mask: number): FmwMatch<R> | null {
  for (let i = 0; i < t.order.length; i++) {
    const level = t.order[i];
    if (level > keys) continue;
    const key = KEYS[level];
    const shard = t.levels[level]![level === 0 ? 0 : key & mask];
    if (shard === undefined) continue;
    // level 0 is one key, 0 (KEYS[0] is never written), so its bucket takes the same path
    const changed = shard.changed === undefined ? undefined : shard.changed.get(key);
    const tree = changed !== undefined ? (changed === null ? null : changed.tree) : level === 0 || shard.byKey.has(key) ? shard.tree : null;
    if (tree !== null) {
      const m = tree.find('GET', path) as FmwMatch<R> | null;
      if (m !== null) return m;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// A persistent map for the few maps that grow with the config (routes by id, tables by host): a
// change copies the array of buckets and the buckets it touches, not the whole map.

const COW_BUCKETS = 256;

function strHash(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h & (COW_BUCKETS - 1);
}

class CowMap<V> {
  static readonly EMPTY = new CowMap<never>(new Array(COW_BUCKETS).fill(undefined), 0);
  private constructor(
    private readonly buckets: ReadonlyArray<ReadonlyMap<string, V> | undefined>,
    readonly size: number,
  ) {}
  get(k: string): V | undefined {
    return this.buckets[strHash(k)]?.get(k);
  }
  /** An editor: its changes make a new map at `done()`, this one stays as it is. */
  edit(): { get(k: string): V | undefined; set(k: string, v: V): void; delete(k: string): void; done(): CowMap<V> } {
    let buckets: Array<ReadonlyMap<string, V> | undefined> | undefined;
    const fresh = new Set<number>();
    let size = this.size;
    const own = (i: number): Map<string, V> => {
      buckets ??= [...this.buckets];
      if (!fresh.has(i)) {
        fresh.add(i);
        buckets[i] = new Map(buckets[i]);
      }
      return buckets[i] as Map<string, V>;
    };
    return {
      get: (k) => (buckets ?? this.buckets)[strHash(k)]?.get(k),
      set: (k, v) => {
        const b = own(strHash(k));
        if (!b.has(k)) size++;
        b.set(k, v);
      },
      delete: (k) => {
        const b = own(strHash(k));
        if (b.delete(k)) size--;
      },
      done: () => (buckets === undefined ? this : new CowMap(buckets, size)),
    };
  }
}

// ---------------------------------------------------------------------------------------------
// The router's state and one change to it

interface Slot<R> {
  readonly route: R;
  readonly ord: number;
}

interface State<R> {
  readonly layout: RouterLayout;
  /** The routes without hosts. */
  readonly any: Table<R>;
  /** Exact host → table. */
  readonly exact: CowMap<Table<R>>;
  /** `*.` wildcards (".example.com" → table), longest suffix first: "*.a.example.com" is more specific than "*.example.com". */
  readonly wild: ReadonlyArray<{ readonly suffix: string; readonly table: Table<R> }>;
  readonly routes: CowMap<Slot<R>>;
  readonly nextOrd: number;
}

let nextEid = 0;

/** The routes' table keys: '' for the routes without hosts, `=host` and `*.suffix`. */
function tableKeys(r: RoutableRoute): string[] {
  if (r.hosts === undefined) return [''];
  // as the request's host is compared: lowercase, without a trailing dot
  return r.hosts.map((h) => {
    const host = h.toLowerCase().replace(/\.$/, '');
    return host.startsWith('*.') ? host : `=${host}`;
  });
}

/** The groups of one key while a change makes them, by shape. */
type Draft<R> = Map<string, Entry<R>[]>;

/** The groups of `key` a shard holds now (a changed key's as it is now); undefined when none. */
function groupsNow<R>(shard: Shard<R> | undefined, key: number): Groups<R> | undefined {
  if (shard === undefined) return undefined;
  const c = shard.changed === undefined ? undefined : shard.changed.get(key);
  return c === undefined ? shard.byKey.get(key) : c === null ? undefined : c.groups;
}

/**
 * One change in the making. Everything it copies is its own until `done()` (so it changes those
 * copies in place); everything else is shared with the state it started from, which stays as it was.
 */
class Edit<R extends RoutableRoute> {
  private readonly own = new Set<object>();
  private readonly tables = new Map<string, Map<string, Tree<R>>>();
  /** The buckets to change, by table key, method, level and bucket: the groups of the keys changed, by key. */
  private readonly drafts = new Map<string, { table: string; method: string; level: number; bucket: number; keys: Map<number, Draft<R>> }>();
  private readonly routes;
  private nextOrd: number;

  constructor(private readonly s: State<R>) {
    this.routes = s.routes.edit();
    this.nextOrd = s.nextOrd;
  }

  private oldTable(key: string): Table<R> | undefined {
    if (key === '') return this.s.any;
    if (key.startsWith('=')) return this.s.exact.get(key.slice(1));
    return this.s.wild.find((w) => w.suffix === key.slice(1))?.table;
  }

  /** The groups of `key` in a bucket, copied into the change on first use. */
  private draft(table: string, method: string, level: number, bucket: number, key: number): Draft<R> {
    const k = `${table}\n${method}\n${level}\n${bucket}`;
    let d = this.drafts.get(k);
    if (d === undefined) this.drafts.set(k, (d = { table, method, level, bucket, keys: new Map() }));
    let groups = d.keys.get(key);
    if (groups === undefined) {
      const now = groupsNow(this.oldShard(table, method, level, bucket), key);
      d.keys.set(key, (groups = new Map(now?.map((g) => [g[0].shape, g as Entry<R>[]]))));
    }
    return groups;
  }

  private oldShard(table: string, method: string, level: number, bucket: number): Shard<R> | undefined {
    return this.oldTable(table)?.get(method)?.levels[level]?.[bucket];
  }

  private entries(r: R, ord: number, fn: (e: Entry<R>, table: string, method: string, level: number, bucket: number) => void): void {
    const tables = tableKeys(r);
    r.uris.forEach((uri, u) => {
      const { level, key, bucket } = placeUri(uri, this.s.layout);
      const e: Entry<R> = { route: r, uri, shape: uriShape(uri), ord, u, eid: nextEid++, key };
      for (const method of r.methods ?? [ANY]) for (const t of tables) fn(e, t, method, level, bucket);
    });
  }

  remove(r: RoutableRoute): number {
    const slot = this.routes.get(r.id);
    if (slot === undefined) throw new Error(`route ${r.id} is not in the router`);
    this.routes.delete(r.id);
    const gone = slot.route;
    this.entries(gone, slot.ord, (e, table, method, level, bucket) => {
      const groups = this.draft(table, method, level, bucket, e.key);
      const g = groups.get(e.shape);
      if (g === undefined) return;
      const kept = g.filter((x) => x.route !== gone);
      if (kept.length === 0) groups.delete(e.shape);
      else groups.set(e.shape, kept);
    });
    return slot.ord;
  }

  add(r: R, ord = this.nextOrd++): void {
    if (this.routes.get(r.id) !== undefined) throw new Error(`route ${r.id} is already in the router`);
    this.routes.set(r.id, { route: r, ord });
    this.entries(r, ord, (e, table, method, level, bucket) => {
      const groups = this.draft(table, method, level, bucket, e.key);
      const g = groups.get(e.shape);
      // a group this change made is its own to grow (many routes of one uri would copy it each time)
      if (g !== undefined && this.own.has(g)) g.push(e);
      else {
        const grown = g === undefined ? [e] : [...g, e];
        this.own.add(grown);
        groups.set(e.shape, grown);
      }
    });
  }

  /** The table of `key` as this change leaves it, copied into the change on first use. */
  private table(key: string): Map<string, Tree<R>> {
    let t = this.tables.get(key);
    if (t === undefined) this.tables.set(key, (t = new Map(this.oldTable(key))));
    return t;
  }

  /**
   * The bucket's next shard, `keys` its changed keys' groups: the old tree kept and a tree built
   * for each changed key, or, for a small bucket or one with too many changed keys, the tree
   * rebuilt whole (see "A change to a large bucket"). Undefined when the bucket is left empty.
   */
  private shard(old: Shard<R> | undefined, keys: ReadonlyMap<number, Draft<R>>): Shard<R> | undefined {
    let size = old?.size ?? 0;
    let keyCount = old?.keyCount ?? 0;
    for (const [k, groups] of keys) {
      const before = groupsNow(old, k);
      size += groups.size - (before?.length ?? 0);
      keyCount += (groups.size > 0 ? 1 : 0) - (before === undefined ? 0 : 1);
    }
    if (size === 0) return undefined;
    if (old !== undefined && size > (this.s.layout.wholeUpTo ?? WHOLE_UP_TO)) {
      const changed = new Map(old.changed);
      for (const k of keys.keys()) if (!changed.has(k)) changed.set(k, null);
      if (changed.size <= keyCount * (this.s.layout.keyTreeShare ?? KEY_TREE_SHARE)) {
        for (const [k, groups] of keys) changed.set(k, groups.size === 0 ? null : { groups: [...groups.values()], tree: buildShard(groups.values()) });
        return { byKey: old.byKey, tree: old.tree, changed, size, keyCount };
      }
    }
    const byKey = new Map(old?.byKey);
    for (const [k, c] of old?.changed ?? []) {
      if (c === null) byKey.delete(k);
      else byKey.set(k, c.groups);
    }
    for (const [k, groups] of keys) {
      if (groups.size === 0) byKey.delete(k);
      else byKey.set(k, [...groups.values()]);
    }
    const all: Array<readonly Entry<R>[]> = [];
    for (const groups of byKey.values()) for (const g of groups) all.push(g);
    return { byKey, tree: buildShard(all), changed: undefined, size, keyCount };
  }

  /** @throws RouteUriError for a uri find-my-way refuses; nothing of the state changed */
  done(): State<R> {
    for (const d of this.drafts.values()) {
      const table = this.table(d.table);
      const old = table.get(d.method);
      let tree: MutableTree<R>;
      if (old !== undefined && this.own.has(old)) tree = old as MutableTree<R>;
      else {
        tree = { levels: old === undefined ? [] : [...old.levels], order: [] };
        this.own.add(tree);
        table.set(d.method, tree);
      }
      let level = tree.levels[d.level] as Array<Shard<R> | undefined> | undefined;
      if (level === undefined || !this.own.has(level)) {
        tree.levels[d.level] = level = level === undefined ? new Array<undefined>(d.level === 0 ? 1 : this.s.layout.buckets).fill(undefined) : [...level];
        this.own.add(level);
      }
      level[d.bucket] = this.shard(this.oldShard(d.table, d.method, d.level, d.bucket), d.keys);
    }
    // the trees this change touched: their levels' order, and the empty ones dropped
    for (const table of this.tables.values()) {
      for (const [method, tree] of table) {
        if (!this.own.has(tree)) continue;
        const t = tree as MutableTree<R>;
        for (let l = 0; l < t.levels.length; l++) if (t.levels[l]?.every((x) => x === undefined)) t.levels[l] = undefined;
        t.order = t.levels.flatMap((m, l) => (m === undefined ? [] : [l])).reverse();
        if (t.order.length === 0) table.delete(method);
      }
    }
    let any = this.s.any;
    const exact = this.s.exact.edit();
    let wild = this.s.wild;
    for (const [key, table] of this.tables) {
      if (key === '') any = table;
      else if (key.startsWith('=')) {
        if (table.size === 0) exact.delete(key.slice(1));
        else exact.set(key.slice(1), table);
      } else {
        const suffix = key.slice(1);
        wild = wild.filter((w) => w.suffix !== suffix);
        if (table.size > 0) wild = [...wild, { suffix, table }].sort((a, b) => b.suffix.length - a.suffix.length);
      }
    }
    return { layout: this.s.layout, any, exact: exact.done(), wild, routes: this.routes.done(), nextOrd: this.nextOrd };
  }
}

/** What this process has built so far: tests count what a change rebuilds. */
const built = { trees: 0, uris: 0 };

/** How many small trees (bucket and key trees) this process has built so far. */
export function routerTreesBuilt(): number {
  return built.trees;
}

/** How many uris this process has put into small trees so far: what the changes cost, in uris. */
export function routerUrisBuilt(): number {
  return built.uris;
}

/** One small tree over its groups: each group's best entry, the groups in config order (the order find-my-way sees them in the one tree). */
function buildShard<R extends RoutableRoute>(groups: Iterable<readonly Entry<R>[]>): Fmw {
  const firsts: Array<{ first: Entry<R>; best: Entry<R> }> = [];
  for (const g of groups) {
    let first = g[0];
    let best = g[0];
    for (let i = 1; i < g.length; i++) {
      if (earlier(g[i], first)) first = g[i];
      if (better(g[i], best)) best = g[i];
    }
    firsts.push({ first, best });
  }
  firsts.sort((a, b) => (earlier(a.first, b.first) ? -1 : 1));
  built.trees++;
  built.uris += firsts.length;
  const t = newTree();
  for (const { best } of firsts) {
    try {
      // the winner's own uri names the params
      t.on('GET', best.uri, noop, best);
    } catch (err) {
      throw new RouteUriError(best.route.id, best.uri, err as Error);
    }
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// The router

class SplitRouter<R extends RoutableRoute> implements Router<R> {
  private readonly hasHosts: boolean;
  private readonly mask: number;
  /**
   * A method-restricted route and a route without methods both match: the one find-my-way would
   * pick if both were in one tree wins (static before parameter before wildcard), or, for the same
   * uri shape, the higher priority, then the earlier in config. The two-route tree that answers
   * this is built once per pair.
   */
  private readonly pairs = new Map<string, Fmw>();

  constructor(readonly state: State<R>) {
    this.hasHosts = state.exact.size > 0 || state.wild.length > 0;
    this.mask = state.layout.buckets - 1;
  }

  private prefer(a: FmwMatch<R>, b: FmwMatch<R>, path: string): FmwMatch<R> {
    const x = a.store;
    const y = b.store;
    // the higher priority, then the earlier in config
    const ranked = () => (better(x, y) ? a : b);
    if (x.shape === y.shape) return ranked();
    const key = x.eid < y.eid ? `${x.eid} ${y.eid}` : `${y.eid} ${x.eid}`;
    let t = this.pairs.get(key);
    if (t === undefined) {
      t = newTree();
      t.on('GET', x.uri, noop, x);
      try {
        t.on('GET', y.uri, noop, y);
      } catch {
        // find-my-way takes each alone but not both
        return ranked();
      }
      if (this.pairs.size < 10_000) this.pairs.set(key, t);
    }
    return t.find('GET', path)?.store === y ? b : a;
  }

  private lookup(table: Table<R>, method: string, path: string, keys: number): RouteMatch<R> | null {
    const anyTree = table.get(ANY);
    const listed = LISTED.has(method) ? table.get(method) : undefined;
    const b = anyTree === undefined ? null : findInTree(anyTree, path, keys, this.mask);
    const a = listed === undefined ? null : findInTree(listed, path, keys, this.mask);
    const m = a === null ? b : b === null ? a : this.prefer(a, b, path);
    return m ? { route: m.store.route, params: m.params } : null;
  }

  private findIn(method: string, host: string, path: string): RouteMatch<R> | null {
    const keys = pathKeys(path, this.state.layout.maxLevel, KEYS);
    // find-my-way matches nothing on a path it cannot decode
    if (keys < 0) return null;
    if (this.hasHosts && host !== '') {
      const t = this.state.exact.get(host);
      if (t !== undefined) {
        const m = this.lookup(t, method, path, keys);
        if (m !== null) return m;
      }
      const wild = this.state.wild;
      for (let i = 0; i < wild.length; i++) {
        const w = wild[i];
        // "*.example.com" matches any depth of subdomain, not the bare domain
        if (host.length > w.suffix.length && host.endsWith(w.suffix)) {
          const m = this.lookup(w.table, method, path, keys);
          if (m !== null) return m;
        }
      }
    }
    return this.lookup(this.state.any, method, path, keys);
  }

  find(method: string, host: string, path: string): RouteMatch<R> | null {
    const m = this.findIn(method, host, path);
    if (m !== null || path.indexOf('%') === -1) return m;
    const kept = undecodableKept(path);
    return kept === undefined ? null : this.findIn(method, host, kept);
  }
}

function emptyState<R>(layout: RouterLayout): State<R> {
  if (!Number.isInteger(layout.maxLevel) || layout.maxLevel < 0 || layout.maxLevel >= KEYS.length) throw new RangeError(`maxLevel must be 0..${KEYS.length - 1}`);
  if (!(layout.buckets >= 1 && (layout.buckets & (layout.buckets - 1)) === 0)) throw new RangeError('buckets must be a power of two');
  if (layout.wholeUpTo !== undefined && !(Number.isInteger(layout.wholeUpTo) && layout.wholeUpTo >= 0)) throw new RangeError('wholeUpTo must be an integer >= 0');
  if (layout.keyTreeShare !== undefined && !(layout.keyTreeShare >= 0 && layout.keyTreeShare <= 1)) throw new RangeError('keyTreeShare must be 0..1');
  return { layout, any: new Map(), exact: CowMap.EMPTY, wild: [], routes: CowMap.EMPTY, nextOrd: 0 };
}

/**
 * Build a router. Routes later in `routes` lose ties of equal priority. Route ids must be unique
 * (as the config's are): {@link updateRouter} finds routes by id.
 * @throws RouteUriError for a uri the router cannot take
 */
export function buildRouter<R extends RoutableRoute>(routes: readonly R[], layout: RouterLayout = DEFAULT_LAYOUT): Router<R> {
  const edit = new Edit<R>(emptyState<R>(layout));
  for (const r of routes) edit.add(r);
  return new SplitRouter(edit.done());
}

/**
 * The router after a change, as {@link buildRouter} would build it over the resulting list of
 * routes, where (as the config's list after an Admin API write) a route replaced (its id both
 * removed and added) keeps its place, a new route goes last (in the order of `added`) and a
 * removed route's place disappears. Only the small trees holding the changed routes' uris are
 * rebuilt; everything else is shared with `router`, which stays as it was and may go on serving.
 * `removed` are matched by id (the route objects the router holds need not be given). A route
 * with no uris matches nothing but holds its place: a route that stays in the config while out of
 * the router (disabled, `status: 0`) can be given so, and keeps its place when it comes back.
 * @throws RouteUriError for an added uri the router cannot take (nothing is changed)
 * @throws Error for a removed id the router does not hold, or an added id it holds and is not removed
 */
export function updateRouter<R extends RoutableRoute>(router: Router<R>, removed: readonly RoutableRoute[], added: readonly R[]): Router<R> {
  if (!(router instanceof SplitRouter)) throw new TypeError('updateRouter takes a router made by buildRouter or updateRouter');
  const edit = new Edit<R>((router as SplitRouter<R>).state);
  const places = new Map<string, number>();
  for (const r of removed) places.set(r.id, edit.remove(r));
  for (const r of added) edit.add(r, places.get(r.id));
  return new SplitRouter(edit.done());
}
/**
 * The request's host as routes are matched on it, as nginx reads the Host header: without the
 * port, lowercased, without one trailing dot (`API.Example.COM.:80` is `api.example.com`, the
 * same name in DNS), an IPv6 literal kept in its brackets (`[::1]`). So no spelling of a host
 * reaches its routes' fallbacks rather than the routes (and plugins) it names. '' when there is
 * no Host (HTTP/1.0) or it is empty: only routes without hosts match.
 * @returns undefined for a host nginx refuses with 400: two dots in a row, a path separator, a
 * control character or space, nothing before the port
 */
export function hostForMatching(h: string | undefined): string | undefined {
  if (h === undefined || h === '') return '';
  let end = h.length;
  let dot = -2;
  // 0: the name; 1: inside an IPv6 literal's brackets; 2: the port
  let state = 0;
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (c === 46 /* . */) {
      if (dot === i - 1) return undefined;
      dot = i;
    } else if (c === 58 /* : */) {
      if (state === 0) {
        end = i;
        state = 2;
      }
    } else if (c === 91 /* [ */) {
      if (i === 0) state = 1;
    } else if (c === 93 /* ] */) {
      if (state === 1) {
        end = i + 1;
        state = 2;
      }
    } else if (c === 47 /* / */ || c === 92 /* \ */ || c <= 0x20 || c === 0x7f) return undefined;
  }
  if (dot === end - 1) end--;
  if (end === 0) return undefined;
  return (end === h.length ? h : h.slice(0, end)).toLowerCase();
}

/** A `%` not followed by two hex digits: nginx answers such a request 400 (the data plane does too). */
const MALFORMED_ESCAPE = /%(?![0-9A-Fa-f]{2})/;

/** Whether `path` has a malformed percent-escape (`%zz`, a cut `%4`). */
export function hasMalformedEscape(path: string): boolean {
  return path.indexOf('%') !== -1 && MALFORMED_ESCAPE.test(path);
}

/**
 * find-my-way decodes the path with decodeURI and matches nothing when that throws, as it does for
 * well-formed escapes of bytes that are not UTF-8 (`%E9` of Latin-1, a cut `%E0%A4`). nginx routes
 * those as they are, so `/files/*` serves `/files/caf%E9`. For such a path this returns it with
 * each non-ASCII escape itself escaped (`%E9` → `%25E9`), which find-my-way decodes back to the
 * literal `%E9`; undefined when the path decodes (the miss was real) or is malformed.
 */
function undecodableKept(path: string): string | undefined {
  if (MALFORMED_ESCAPE.test(path)) return undefined;
  try {
    decodeURI(path);
    return undefined;
  } catch {
    return path.replace(/%([89A-Fa-f][0-9A-Fa-f])/g, '%25$1');
  }
}

function noop(): void {}
