// Upstream node selection: smooth weighted round robin, consistent hashing (chash) and least connections.

import type { IncomingHttpHeaders } from 'node:http';

/** One upstream server a route can forward to. */
export interface UpstreamNode {
  readonly host: string;
  readonly port: number;
  /** Relative share of traffic; a non-negative integer. 0 disables the node. */
  readonly weight: number;
  /** "host:port" (IPv6 as "[::1]:80") */
  readonly key: string;
}

/** What a chash balancer may hash on; built once per request by the caller. */
export interface HashSource {
  readonly remoteAddr: string;
  /** path without query */
  readonly uri: string;
  /** Host header without port, lowercased */
  readonly host: string;
  readonly headers: IncomingHttpHeaders;
  /** raw query string without '?', '' when none */
  readonly query: string;
}

/** The balancing algorithms {@link createBalancer} understands. */
export type BalancerType = 'roundrobin' | 'chash' | 'least_conn';

/** Configuration for {@link createBalancer}. */
export interface BalancerOptions {
  type: BalancerType;
  nodes: readonly UpstreamNode[];
  /** chash only, as Apache APISIX: 'vars' (default) | 'header' | 'cookie' */
  hashOn?: 'vars' | 'header' | 'cookie';
  /**
   * chash only. hashOn 'vars': 'remote_addr' (default) | 'uri' | 'request_uri' | 'host' | 'arg_<name>' |
   * 'http_<name>' | 'cookie_<name>'. hashOn 'header': a header name. hashOn 'cookie': a cookie name.
   *
   * When the selected value is absent from the request (no such header, cookie or query argument),
   * the client address (`remoteAddr`) is hashed instead, as APISIX does. A value that is present but
   * empty is hashed as the empty string.
   */
  key?: string;
}

/** Chooses an upstream node per request attempt. */
export interface Balancer {
  /**
   * Choose a node. Nodes whose key is in `exclude` (already tried for this request) are never returned.
   * Nodes for which `isHealthy(key)` is false are skipped, unless every remaining candidate is unhealthy,
   * in which case the normal choice is made among the remaining (non-excluded) nodes anyway (fail open, as nginx does).
   * Returns undefined only when every node is excluded (nodes with weight 0 are disabled and never returned,
   * so a balancer whose nodes all have weight 0 always returns undefined).
   * `isHealthy` must not call `pick` on the same balancer.
   */
  pick(src: HashSource, exclude: ReadonlySet<string> | null, isHealthy: (key: string) => boolean): UpstreamNode | undefined;
  /** Called by the proxy when a request starts / ends on a node (least_conn uses it; others may no-op). */
  acquire(node: UpstreamNode): void;
  /** Counterpart of {@link Balancer.acquire}; counts never go below 0. */
  release(node: UpstreamNode): void;
}

/** Ring points per weight unit for chash. */
const POINTS_PER_WEIGHT = 160;
/** Upper bound on the total number of chash ring points. */
const MAX_RING_POINTS = 100_000;

/**
 * Build a balancer. All per-balancer structures (weight tables, the hash ring, key extractors) are built here;
 * `pick` only reads and updates them.
 *
 * @throws TypeError on an unknown type / hashOn / key, a duplicate node key, or a weight that is not a
 *   non-negative safe integer.
 */
export function createBalancer(opts: BalancerOptions): Balancer {
  const seen = new Set<string>();
  for (const node of opts.nodes) {
    if (!Number.isSafeInteger(node.weight) || node.weight < 0) {
      throw new TypeError(`upstream node ${node.key}: weight must be a non-negative integer, got ${String(node.weight)}`);
    }
    if (seen.has(node.key)) throw new TypeError(`duplicate upstream node ${node.key}`);
    seen.add(node.key);
  }
  // Weight 0 means disabled: such nodes are dropped up front and can never be picked.
  const active = opts.nodes.filter((n) => n.weight > 0);
  switch (opts.type) {
    case 'roundrobin':
      return new RoundRobinBalancer(active);
    case 'least_conn':
      return new LeastConnBalancer(active);
    case 'chash':
      return new ConsistentHashBalancer(active, keyExtractor(opts.hashOn ?? 'vars', opts.key));
    default:
      throw new TypeError(`unknown balancer type ${String((opts as { type: unknown }).type)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Smooth weighted round robin (nginx's ngx_http_upstream_get_peer).

class RoundRobinBalancer implements Balancer {
  private readonly nodes: readonly UpstreamNode[];
  private readonly weights: Float64Array;
  private readonly current: Float64Array;

  constructor(nodes: readonly UpstreamNode[]) {
    this.nodes = nodes;
    this.weights = Float64Array.from(nodes, (n) => n.weight);
    this.current = new Float64Array(nodes.length);
  }

  pick(_src: HashSource, exclude: ReadonlySet<string> | null, isHealthy: (key: string) => boolean): UpstreamNode | undefined {
    const nodes = this.nodes;
    const w = this.weights;
    const cur = this.current;
    let best = -1;
    let total = 0;
    for (let i = 0; i < nodes.length; i++) {
      const key = nodes[i].key;
      if (exclude !== null && exclude.has(key)) continue;
      if (!isHealthy(key)) continue;
      cur[i] += w[i];
      total += w[i];
      if (best === -1 || cur[i] > cur[best]) best = i;
    }
    if (best === -1) {
      // Every remaining candidate is unhealthy (or all are excluded): fail open among the non-excluded.
      for (let i = 0; i < nodes.length; i++) {
        if (exclude !== null && exclude.has(nodes[i].key)) continue;
        cur[i] += w[i];
        total += w[i];
        if (best === -1 || cur[i] > cur[best]) best = i;
      }
      if (best === -1) return undefined;
    }
    cur[best] -= total;
    return nodes[best];
  }

  acquire(_node: UpstreamNode): void {}
  release(_node: UpstreamNode): void {}
}

// ---------------------------------------------------------------------------------------------
// Least connections, scored (active + 1) / weight; ties go to the first node found from a rotating start.

class LeastConnBalancer implements Balancer {
  private readonly nodes: readonly UpstreamNode[];
  private readonly weights: Float64Array;
  private readonly active: Float64Array;
  private readonly index: Map<string, number>;
  private cursor = 0;

  constructor(nodes: readonly UpstreamNode[]) {
    this.nodes = nodes;
    this.weights = Float64Array.from(nodes, (n) => n.weight);
    this.active = new Float64Array(nodes.length);
    this.index = new Map(nodes.map((n, i) => [n.key, i]));
  }

  pick(_src: HashSource, exclude: ReadonlySet<string> | null, isHealthy: (key: string) => boolean): UpstreamNode | undefined {
    const nodes = this.nodes;
    const n = nodes.length;
    if (n === 0) return undefined;
    const start = this.cursor;
    this.cursor = start + 1 === n ? 0 : start + 1;
    let best = -1;
    let bestScore = Infinity;
    let anyBest = -1;
    let anyScore = Infinity;
    for (let j = 0; j < n; j++) {
      const i = start + j < n ? start + j : start + j - n;
      const key = nodes[i].key;
      if (exclude !== null && exclude.has(key)) continue;
      const score = (this.active[i] + 1) / this.weights[i];
      if (score < anyScore) {
        anyScore = score;
        anyBest = i;
      }
      if (score < bestScore && isHealthy(key)) {
        bestScore = score;
        best = i;
      }
    }
    if (best === -1) best = anyBest; // fail open: all remaining unhealthy
    return best === -1 ? undefined : nodes[best];
  }

  acquire(node: UpstreamNode): void {
    const i = this.index.get(node.key);
    if (i !== undefined) this.active[i]++;
  }

  release(node: UpstreamNode): void {
    const i = this.index.get(node.key);
    if (i !== undefined && this.active[i] > 0) this.active[i]--;
  }
}

// ---------------------------------------------------------------------------------------------
// Consistent hashing.

type KeyFn = (src: HashSource) => string | undefined;

class ConsistentHashBalancer implements Balancer {
  private readonly nodes: readonly UpstreamNode[];
  /** Sorted point hashes. */
  private readonly ringHash: Uint32Array;
  /** Index into `nodes` of the owner of each point. */
  private readonly ringOwner: Uint32Array;
  /** Per-node "visited in walk number N" marks, so a ring walk asks about each node once. */
  private readonly stamp: Uint32Array;
  private epoch = 0;

  constructor(nodes: readonly UpstreamNode[], private readonly keyOf: KeyFn) {
    this.nodes = nodes;
    this.stamp = new Uint32Array(nodes.length);
    let totalWeight = 0;
    for (const n of nodes) totalWeight += n.weight;
    const perUnit = Math.min(POINTS_PER_WEIGHT, MAX_RING_POINTS / Math.max(1, totalWeight));
    const hashes: number[] = [];
    const owners: number[] = [];
    nodes.forEach((node, ni) => {
      const points = Math.max(1, Math.floor(node.weight * perUnit));
      for (let p = 0; p < points; p++) {
        hashes.push(hash32(`${node.key}#${p}`));
        owners.push(ni);
      }
    });
    // Order by hash; ties by node key so the ring does not depend on the order nodes were listed in.
    const order = hashes.map((_, i) => i);
    order.sort((a, b) => {
      const d = hashes[a] - hashes[b];
      if (d !== 0) return d;
      const ka = nodes[owners[a]].key;
      const kb = nodes[owners[b]].key;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    this.ringHash = Uint32Array.from(order, (i) => hashes[i]);
    this.ringOwner = Uint32Array.from(order, (i) => owners[i]);
  }

  pick(src: HashSource, exclude: ReadonlySet<string> | null, isHealthy: (key: string) => boolean): UpstreamNode | undefined {
    const ringHash = this.ringHash;
    const len = ringHash.length;
    if (len === 0) return undefined;
    const value = this.keyOf(src);
    const h = hash32(value === undefined ? src.remoteAddr : value);
    // First point clockwise from h (lower bound), wrapping to the start.
    let lo = 0;
    let hi = len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ringHash[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    let idx = lo === len ? 0 : lo;
    const owners = this.ringOwner;
    const nodes = this.nodes;
    const first = owners[idx];
    const firstNode = nodes[first];
    const firstExcluded = exclude !== null && exclude.has(firstNode.key);
    if (!firstExcluded && isHealthy(firstNode.key)) return firstNode;

    // Walk clockwise to the next distinct acceptable node. The first non-excluded node met is the
    // fail-open answer, i.e. the normal choice among the remaining nodes.
    let epoch = (this.epoch + 1) >>> 0;
    if (epoch === 0) {
      this.stamp.fill(0);
      epoch = 1;
    }
    this.epoch = epoch;
    const stamp = this.stamp;
    stamp[first] = epoch;
    let seen = 1;
    let fallback = firstExcluded ? -1 : first;
    const n = nodes.length;
    for (let steps = 1; steps < len && seen < n; steps++) {
      if (++idx === len) idx = 0;
      const o = owners[idx];
      if (stamp[o] === epoch) continue;
      stamp[o] = epoch;
      seen++;
      const key = nodes[o].key;
      if (exclude !== null && exclude.has(key)) continue;
      if (isHealthy(key)) return nodes[o];
      if (fallback === -1) fallback = o;
    }
    return fallback === -1 ? undefined : nodes[fallback];
  }

  acquire(_node: UpstreamNode): void {}
  release(_node: UpstreamNode): void {}
}

function keyExtractor(hashOn: 'vars' | 'header' | 'cookie', key: string | undefined): KeyFn {
  switch (hashOn) {
    case 'vars': {
      const k = key ?? 'remote_addr';
      if (k === 'remote_addr') return (s) => s.remoteAddr;
      if (k === 'uri') return (s) => s.uri;
      if (k === 'request_uri') return (s) => (s.query === '' ? s.uri : `${s.uri}?${s.query}`);
      if (k === 'host') return (s) => s.host;
      if (k.startsWith('arg_') && k.length > 4) {
        const name = k.slice(4);
        return (s) => queryArg(s.query, name);
      }
      if (k.startsWith('http_') && k.length > 5) {
        const name = k.slice(5).replace(/_/g, '-').toLowerCase();
        return (s) => headerValue(s.headers, name);
      }
      if (k.startsWith('cookie_') && k.length > 7) {
        const name = k.slice(7);
        return (s) => cookieValue(s.headers.cookie, name);
      }
      throw new TypeError(`chash: unsupported vars key "${k}"`);
    }
    case 'header': {
      if (!key) throw new TypeError('chash: hashOn "header" needs a header name as key');
      const name = key.toLowerCase();
      return (s) => headerValue(s.headers, name);
    }
    case 'cookie': {
      if (!key) throw new TypeError('chash: hashOn "cookie" needs a cookie name as key');
      return (s) => cookieValue(s.headers.cookie, key);
    }
    default:
      throw new TypeError(`chash: unknown hashOn ${String(hashOn)}`);
  }
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(', ');
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * Value of cookie `name` in a Cookie header ("a=1; b=2"), without building a map.
 * Surrounding whitespace is trimmed; the value is otherwise raw (not decoded, quotes kept, as nginx's $cookie_).
 */
function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const len = header.length;
  let i = 0;
  while (i < len) {
    while (i < len && isSpace(header.charCodeAt(i))) i++;
    let end = header.indexOf(';', i);
    if (end === -1) end = len;
    const eq = header.indexOf('=', i);
    if (eq !== -1 && eq < end) {
      let ne = eq;
      while (ne > i && isSpace(header.charCodeAt(ne - 1))) ne--;
      if (ne - i === name.length && header.startsWith(name, i)) {
        let vs = eq + 1;
        let ve = end;
        while (vs < ve && isSpace(header.charCodeAt(vs))) vs++;
        while (ve > vs && isSpace(header.charCodeAt(ve - 1))) ve--;
        return header.slice(vs, ve);
      }
    }
    i = end + 1;
  }
  return undefined;
}

/**
 * Value of the first query argument named exactly `name` in a raw query string ("a=1&b=2").
 * `name` alone (no '=') yields ''. The value is URL-decoded ('+' as space); a malformed escape leaves it raw.
 */
function queryArg(query: string, name: string): string | undefined {
  const len = query.length;
  let i = 0;
  while (i < len) {
    let end = query.indexOf('&', i);
    if (end === -1) end = len;
    if (query.startsWith(name, i)) {
      const after = i + name.length;
      if (after === end) return '';
      if (query.charCodeAt(after) === 61 /* = */) {
        const raw = query.slice(after + 1, end);
        if (raw.indexOf('%') === -1 && raw.indexOf('+') === -1) return raw;
        const plus = raw.replace(/\+/g, ' ');
        try {
          return decodeURIComponent(plus);
        } catch {
          return plus;
        }
      }
    }
    i = end + 1;
  }
  return undefined;
}

/** 32-bit FNV-1a over the UTF-8 bytes of `s`, finished with murmur3's fmix32 for avalanche. No allocation. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, 0x01000193);
      continue;
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), 0x01000193);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193);
      continue;
    }
    if (c >= 0xd800 && c < 0xe000) {
      const d = i + 1 < len ? s.charCodeAt(i + 1) : 0;
      if (c < 0xdc00 && d >= 0xdc00 && d < 0xe000) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        h = Math.imul(h ^ (0xf0 | (cp >> 18)), 0x01000193);
        h = Math.imul(h ^ (0x80 | ((cp >> 12) & 0x3f)), 0x01000193);
        h = Math.imul(h ^ (0x80 | ((cp >> 6) & 0x3f)), 0x01000193);
        h = Math.imul(h ^ (0x80 | (cp & 0x3f)), 0x01000193);
        continue;
      }
      c = 0xfffd; // lone surrogate: encode as U+FFFD like Buffer.from(s)
    }
    h = Math.imul(h ^ (0xe0 | (c >> 12)), 0x01000193);
    h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), 0x01000193);
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
