// Validating a change of a few resources against a valid live config, without validating the rest:
// the changed items go through the very checks the whole document's validation runs on each item
// (the item's schema, its cross-checks, its references, the reference policy on its references),
// and their relations to the other items are asked of the live config (a duplicate id, an upstream
// a route names, a route still naming a deleted upstream). The result equals validateConfig's on
// the changed document (the same normalised items, the same issues at the same index-based paths,
// in the same order), sharing every unchanged item with the live config.
import type { DataChange, DataKind } from '../contracts';
import { configInvalid, type ConfigIssue } from '../errors';
import type { ReferenceSite } from '../secrets/reference';
import { checkConsumerItem, checkRouteItem, checkUpstreamItem, duplicateIssue, unknownUpstreamIssue, type Neighbours } from './cross-checks';
import { joinPath } from './paths';
import { referenceWalker } from './reference-sites';
import type { Registry } from './registry';
import { checkDataReferences, type PolicyContext } from './secret-policy';
import { checkSslSection } from './ssl-checks';
import type { GatewayConfig } from './types';
import { deepFreeze, type ValidatedConfig } from './validate';
import { Section, sectionOf, withSections } from './section';

/**
 * What a change validates to: the next valid config, every issue (as the whole document's
 * validation lists them), or `full` when the change is one this check leaves to that validation.
 */
export type ChangeValidation = ValidatedConfig | { readonly issues: ConfigIssue[]; readonly config?: undefined; readonly full?: undefined } | { readonly full: true; readonly why: string; readonly config?: undefined; readonly issues?: undefined };

type Kind = 'routes' | 'upstreams' | 'consumers' | 'ssls';

/**
 * Where the resource `id` of `kind` stands in a config's section (a consumer's username, a route's
 * or upstream's id as a string): its index, or -1 when the section has none. The config control
 * keeps these for the document the live config was validated from (same resources, same order),
 * so a change finds what it replaces without a pass over the section.
 */
export type PositionOf = (kind: DataKind, id: string) => number;

/** The kinds checked here. A secret resource is not: resources reference each other (cycles), and their credentials, files and destinations are the policy's whole-config part. */
const SECTIONS: ReadonlySet<string> = new Set<Kind>(['routes', 'upstreams', 'consumers', 'ssls']);

/** The order the document's cross-checks go through the sections (cross-checks.ts) and the order its schema reports them in (schema.ts). */
const CROSS_ORDER: Record<Kind, number> = { upstreams: 0, routes: 1, consumers: 2, ssls: 3 };
const SCHEMA_ORDER: Record<Kind, number> = { routes: 0, upstreams: 1, consumers: 2, ssls: 4 };

/** A deleted slot while changes are applied: positions stay put until the end. */
const GONE = Object.freeze({});

/**
 * Above this many changes to one section, one pass over it finds every id the changes name
 * (a few ms at 100,000 items) instead of one scan per change (about 1 ms each).
 */
const SCAN_LIMIT = 4;

/** The id an item is known by, as the cross-checks compare it: a route's, upstream's or SSL resource's as a string, a consumer's username as written. */
function keyOf(kind: Kind, item: any): unknown {
  if (item === null || typeof item !== 'object') return undefined;
  if (kind === 'consumers') return item.username;
  return item.id === undefined ? undefined : String(item.id);
}

/** One section while the changes are applied to it: the live section, and the slots the changes filled. */
class Working {
  /** Slots the changes filled: live slots replaced (or GONE: deleted), and slots from live.length on, appended. */
  private readonly over = new Map<number, unknown>();
  /** Slots of new items → the item (raw until validated; not keyed by the item: two may be the same string). */
  readonly fresh = new Map<number, unknown>();
  /** Slots of live items that are replaced or deleted, and of those deleted. */
  readonly dropped = new Set<number>();
  readonly deleted = new Set<number>();
  /** Keys held twice by now: a later change naming one cannot say which item it means. */
  readonly ambiguous = new Set<unknown>();
  /** Slots deleted (removed at the end). */
  private readonly gone: number[] = [];
  /** With many changes: where each id they name stands (only those: a map of every item costs tens of ms). */
  private index?: Map<unknown, number>;
  private named?: ReadonlySet<unknown>;
  /** The end of the section: the next appended item's slot. */
  private end: number;

  constructor(readonly kind: Kind, readonly live: Section<unknown>, changes: readonly DataChange[], private readonly at?: PositionOf) {
    this.end = live.length;
    if (changes.length > SCAN_LIMIT && at === undefined) {
      const named = new Set<unknown>();
      for (const c of changes) named.add(c.id).add(keyOf(kind, c.after));
      named.delete(undefined);
      const index = new Map<unknown, number>();
      for (let i = 0; i < live.length; i++) {
        const key = keyOf(kind, live.get(i));
        if (named.has(key)) index.set(key, i);
      }
      this.index = index;
      this.named = named;
    }
  }

  /** What `slot` holds now (GONE when deleted). */
  get(slot: number): unknown {
    if (this.over.has(slot)) return this.over.get(slot);
    return slot < this.live.length ? this.live.get(slot) : GONE;
  }

  find(key: unknown): number {
    if (this.index && this.named!.has(key)) return this.index.get(key) ?? -1;
    const { kind } = this;
    if (this.at !== undefined && typeof key === 'string') {
      const p = this.at(kind, key);
      if (p === -1 || keyOf(kind, this.live.get(p)) === key) {
        // the live item where it stands (unless this batch took its slot), or the first slot this batch filled (a few) holding it
        let found = p !== -1 && keyOf(kind, this.get(p)) === key ? p : -1;
        for (const slot of this.fresh.keys()) if ((found === -1 || slot < found) && keyOf(kind, this.get(slot)) === key) found = slot;
        return found;
      }
      // positions that do not describe this section: searched below
    }
    for (let i = 0; i < this.end; i++) {
      const x = this.get(i);
      if (x !== GONE && keyOf(kind, x) === key) return i;
    }
    return -1;
  }

  /** Put `item` (undefined: delete) at `slot` (-1: append). */
  put(slot: number, item: unknown): void {
    const key = item === undefined ? undefined : keyOf(this.kind, item);
    const was = slot === -1 ? undefined : this.get(slot);
    const wasKey = was === undefined ? undefined : keyOf(this.kind, was);
    if (slot !== -1) {
      this.fresh.delete(slot);
      if (this.index && this.index.get(wasKey) === slot) this.index.delete(wasKey);
      if (slot < this.live.length) this.dropped.add(slot);
      this.over.set(slot, GONE);
    }
    if (item === undefined) {
      this.gone.push(slot);
      if (slot < this.live.length) this.deleted.add(slot);
      return;
    }
    // a created item, or one renamed, may take an id another item holds (a duplicate, reported as such)
    if (key !== undefined && (slot === -1 || key !== wasKey) && this.find(key) !== -1) this.ambiguous.add(key);
    if (slot === -1) slot = this.end++;
    this.over.set(slot, item);
    this.fresh.set(slot, item);
    if (this.index && this.named!.has(key) && !this.index.has(key)) this.index.set(key, slot);
  }

  /**
   * Each new item's final position (in position order), and the section after the changes with
   * the items `checked` gives at those positions (their validated copies): all but the chunks the
   * changes touch shared with the live section, or, after a deletion, made again (its items move).
   */
  finish(): { fresh: Array<{ raw: unknown; index: number }>; section: (checked: ReadonlyMap<number, unknown>) => Section<unknown> } {
    const gone = this.gone.sort((a, b) => a - b);
    const shift = (slot: number) => slot - lowerBound(gone.length, (k) => gone[k] >= slot);
    const fresh = [...this.fresh].map(([slot, raw]) => ({ raw, index: shift(slot) })).sort((a, b) => a.index - b.index);
    if (gone.length) {
      return {
        fresh,
        section: (checked) => {
          const items: unknown[] = [];
          for (let i = 0; i < this.end; i++) {
            const x = this.get(i);
            if (x !== GONE) items.push(checked.get(items.length) ?? x);
          }
          return Section.own(items);
        },
      };
    }
    // no deletion: a slot is its final position
    return {
      fresh,
      section: (checked) => {
        const replaced = new Map<number, unknown>();
        const appended: unknown[] = [];
        for (const [slot, x] of this.over) if (slot < this.live.length) replaced.set(slot, checked.get(slot) ?? x);
        for (let i = this.live.length; i < this.end; i++) appended.push(checked.get(i) ?? this.over.get(i));
        return this.live.with(replaced).concat(appended);
      },
    };
  }
}

/** The first k in [0, n) where `above(k)` holds (it holds from some point on), or n. */
function lowerBound(n: number, above: (k: number) => boolean): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (above(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** An issue and where the document's cross-checks would have reported it: section, item, then push order. */
interface Placed {
  readonly issue: ConfigIssue;
  readonly section: number;
  readonly index: number;
  /** For an unchanged item: 0 its duplicate id, 1 its upstream_id (the order its checks run in). */
  readonly step: number;
  readonly seq: number;
}

/**
 * Validate `changes` (applied in order to `live`'s data sections: a replaced item keeps its place,
 * a created one is appended, a deleted one is removed) without validating what they leave alone.
 * @param live a valid config (validateConfig's, with the policy's credentials when `policy` is given)
 * @param policy when given, the reference policy runs on the changed items' references, as
 *   checkSecretPolicy would on the whole document (its other parts depend on what no route,
 *   upstream or consumer changes); `credentials` stay live's
 * @returns the next config (every unchanged item the very object of `live.config`, new items
 *   deep-frozen), the issues validateConfig (then the policy) would list for the changed document,
 *   or `{ full: true }`: changes to secret resources or to kinds this does not know, and changes
 *   that do not apply to `live` (a replaced or deleted resource it does not hold, a change naming
 *   a resource that an earlier change of the batch made ambiguous); the caller validates the whole
 *   document then
 */
export function validateChanges(live: ValidatedConfig, changes: readonly DataChange[], registry: Registry, policy?: PolicyContext, at?: PositionOf): ChangeValidation {
  if (changes.length === 0) return live;
  const perKind = new Map<Kind, DataChange[]>();
  for (const c of changes) {
    if (!SECTIONS.has(c.kind)) return { full: true, why: c.kind === 'secrets' ? 'a secret resource changed' : `unknown kind "${c.kind}"` };
    // an upstream's TLS names SSL resources and holds references outside the route and consumer sites
    if (hasUpstreamTls(c.before) || hasUpstreamTls(c.after)) return { full: true, why: `${c.kind}/${c.id}: an upstream with tls` };
    // an SSL resource of type client may be named by an upstream's tls.client_cert_id (checked over the whole document)
    if (c.kind === 'ssls' && (isClientSsl(c.before) || isClientSsl(c.after))) return { full: true, why: `ssls/${c.id}: an SSL resource of type client` };
    const mine = perKind.get(c.kind as Kind);
    if (mine) mine.push(c);
    else perKind.set(c.kind as Kind, [c]);
  }
  const config = live.config;

  // 1. apply the changes to the sections (the slots they fill, over the live sections)
  const working = new Map<Kind, Working>();
  for (const [kind, n] of perKind) working.set(kind, new Working(kind, sectionOf(config, kind), n, at));
  for (const c of changes) {
    const w = working.get(c.kind as Kind)!;
    if (c.before !== undefined && w.ambiguous.has(c.id)) return { full: true, why: `${c.kind}/${c.id} is held twice by an earlier change of the batch` };
    const slot = c.before === undefined ? -1 : w.find(c.id);
    if (c.before !== undefined && slot === -1) return { full: true, why: `${c.kind}/${c.id} is not in the live config` };
    if (c.before === undefined && c.after === undefined) return { full: true, why: `${c.kind}/${c.id}: a change with neither before nor after` };
    w.put(slot, c.after);
  }
  const lists = new Map<Kind, Section<unknown>>();
  const fresh = new Map<Kind, Array<{ raw: unknown; index: number; item?: any }>>();
  const sections = new Map<Kind, (checked: ReadonlyMap<number, unknown>) => Section<unknown>>();
  for (const [kind, w] of working) {
    const done = w.finish();
    sections.set(kind, done.section);
    fresh.set(kind, done.fresh);
  }
  // a section as one array: only for what a change rarely needs (an id held twice, a deleted upstream's routes)
  const listOf = (kind: Kind) => (lists.get(kind) ?? sectionOf(config, kind)).toArray();

  // 2. each new item's schema (a copy of it: its defaults are applied), reported in document order
  const schemaIssues: Array<{ issue: ConfigIssue; at: number; index: number }> = [];
  for (const [kind, items] of fresh) {
    const check = registry.itemCheck(kind as DataKind);
    const checked = new Map<number, unknown>();
    for (const f of items) {
      f.item = structuredClone(f.raw);
      for (const issue of check(f.item, joinPath(kind, f.index))) schemaIssues.push({ issue, at: SCHEMA_ORDER[kind], index: f.index });
      checked.set(f.index, f.item);
    }
    // (the section is made with the checked items in place: one copy of the chunks they are in)
    lists.set(kind, sections.get(kind)!(checked));
  }
  schemaIssues.sort((a, b) => a.at - b.at || a.index - b.index);
  const freshItems = new Map<Kind, Set<unknown>>();
  for (const [kind, items] of fresh) freshItems.set(kind, new Set(items.map((f) => f.item)));
  // (an unchanged item is always an object: a new one that is the same string as another is never confused with it)
  const isNew = (kind: Kind, item: unknown) => freshItems.get(kind)?.has(item) === true;

  // 3. the cross-checks of each new item, then what its neighbours get for it
  const placed: Placed[] = [];
  let seq = 0;
  const place = (issue: ConfigIssue, kind: Kind, index: number, step: number) => placed.push({ issue, section: CROSS_ORDER[kind], index, step, seq: seq++ });
  const positions = positionsOfNewKeys(working, listOf);
  const upstreamsChanged = working.get('upstreams');
  let upstreamKeys: Set<unknown> | undefined;
  // (upstreams: where the live positions say, or where this change put them)
  const hasUpstream =
    at === undefined
      ? (id: string) => (upstreamKeys ??= new Set(listOf('upstreams').map((u) => keyOf('upstreams', u)))).has(id)
      : upstreamsChanged === undefined
        ? (id: string) => at('upstreams', id) !== -1
        : (id: string) => upstreamsChanged.find(id) !== -1;
  let cut: { section: number; index: number } | undefined;
  for (const kind of ['upstreams', 'routes', 'consumers'] as const) {
    for (const f of fresh.get(kind) ?? []) {
      const n: Neighbours = { seenBefore: (key) => (positions.get(kind)?.get(key)?.[0] ?? f.index) < f.index, hasUpstream };
      const issues: ConfigIssue[] = [];
      try {
        if (kind === 'upstreams') checkUpstreamItem(f.item, f.index, n, issues);
        else if (kind === 'routes') checkRouteItem(f.item, f.index, registry, n, issues);
        else checkConsumerItem(f.item, f.index, registry, n, issues);
      } catch (err) {
        // as validateConfig: the checks of an item the schema refused may throw; what they found
        // up to there stands, and nothing after it in the document is checked
        if (schemaIssues.length === 0) throw err;
        cut = { section: CROSS_ORDER[kind], index: f.index };
      }
      for (const issue of issues) place(issue, kind, f.index, 0);
      if (cut) break;
    }
    if (cut) break;
  }
  // the SSL resources: each new one's own checks, and what relates every resource to the others
  // (an id held twice, a name two served resources list, the fallback name): a pass over the
  // section's ids and names, no certificate parsed but the new ones'
  if (!cut && fresh.has('ssls')) {
    const own = new Set((fresh.get('ssls') ?? []).map((f) => f.index));
    const issues: ConfigIssue[] = [];
    try {
      checkSslSection(listOf('ssls'), config.gateway.tls, issues, (i) => own.has(i));
    } catch (err) {
      if (schemaIssues.length === 0) throw err;
      cut = { section: CROSS_ORDER.ssls, index: Infinity };
    }
    for (const issue of issues) place(issue, 'ssls', 0, 0);
  }
  // an unchanged item repeating a new item's id after it (SSL resources: above)
  for (const [kind, byKey] of positions) {
    if (kind === 'ssls') continue;
    const list = listOf(kind);
    for (const [key, at] of byKey) for (const p of at.slice(1)) if (!isNew(kind, list[p])) place(duplicateIssue(kind, p, key), kind, p, 0);
  }
  // an unchanged route naming an upstream that is gone
  const upstreams = working.get('upstreams');
  if (upstreams) {
    const gone = new Set<unknown>();
    for (const slot of upstreams.dropped) {
      const key = keyOf('upstreams', sectionOf(config, 'upstreams').get(slot));
      if (!hasUpstream(key as string)) gone.add(key);
    }
    if (gone.size) {
      listOf('routes').forEach((r: any, i) => {
        if (r.upstream_id !== undefined && gone.has(r.upstream_id) && !isNew('routes', r)) place(unknownUpstreamIssue(i, r.upstream_id), 'routes', i, 1);
      });
    }
  }
  const before = (p: Placed) => cut === undefined || p.section < cut.section || (p.section === cut.section && p.index <= cut.index);
  const cross = placed
    .filter(before)
    .sort((a, b) => a.section - b.section || a.index - b.index || a.step - b.step || a.seq - b.seq)
    .map((p) => p.issue);
  if (schemaIssues.length) {
    const schema = schemaIssues.map((s) => s.issue);
    const within = (p: string, base: string) => base === '' || p === base || p.startsWith(`${base}.`) || p.startsWith(`${base}[`);
    return { issues: [...schema, ...cross.filter((m) => !schema.some((s) => within(m.path, s.path)))] };
  }
  if (cross.length) return { issues: cross };

  // 4. the new items' references, against the live secret resources (none of them changed)
  const refIssues: ConfigIssue[] = [];
  const newSites = new Map<Kind, Array<{ index: number; sites: ReferenceSite[] }>>();
  const all: ReferenceSite[] = [];
  const resources = secretIds(config);
  for (const kind of ['routes', 'consumers'] as const) {
    const out: Array<{ index: number; sites: ReferenceSite[] }> = [];
    for (const f of fresh.get(kind) ?? []) {
      const sites: ReferenceSite[] = [];
      referenceWalker(registry, (id) => resources.has(id), refIssues, sites).item(kind, f.item, f.index);
      out.push({ index: f.index, sites });
      all.push(...sites);
    }
    newSites.set(kind, out);
  }
  const sslSites: Array<{ index: number; sites: ReferenceSite[] }> = [];
  for (const f of fresh.get('ssls') ?? []) {
    const sites: ReferenceSite[] = [];
    referenceWalker(registry, (id) => resources.has(id), refIssues, sites).ssl(f.item, f.index);
    sslSites.push({ index: f.index, sites });
    all.push(...sites);
  }
  newSites.set('ssls', sslSites);
  if (refIssues.length) return { issues: refIssues };

  // 5. the reference policy on the new references
  if (policy) {
    const policyIssues: ConfigIssue[] = [];
    checkDataReferences(config, all, policyIssues);
    if (policyIssues.length) return { issues: policyIssues };
  }

  // 6. the next config: new items frozen, every other one shared, the changed sections sharing all but their touched chunks
  for (const items of fresh.values()) for (const f of items) deepFreeze(f.item);
  const refs = nextRefs(live.refs, config, working, newSites);
  return {
    config: withSections(config, lists),
    refs,
    ...(live.credentials === undefined ? {} : { credentials: live.credentials }),
  };
}

/** Whether an SSL resource is of `type: client` (what an upstream's `tls.client_cert_id` names). */
function isClientSsl(item: unknown): boolean {
  return item !== null && typeof item === 'object' && (item as { type?: unknown }).type === 'client';
}

/** Whether an upstream, or a route's own upstream, has `tls`. */
function hasUpstreamTls(item: unknown): boolean {
  if (item === null || typeof item !== 'object') return false;
  const o = item as { tls?: unknown; upstream?: { tls?: unknown } };
  return o.tls !== undefined || (o.upstream !== null && typeof o.upstream === 'object' && o.upstream.tls !== undefined);
}

/**
 * validateChanges as the build path validates (SnapshotBuilder.validate): the next config, or
 * undefined when the whole document must be validated instead.
 * @throws GatehouseError GH_ERR_CONFIG_INVALID listing every issue
 */
export function validateChangesOrThrow(live: ValidatedConfig, changes: readonly DataChange[], registry: Registry, policy: PolicyContext, at?: PositionOf): ValidatedConfig | undefined {
  const r = validateChanges(live, changes, registry, policy, at);
  if (r.full) return undefined;
  if (r.issues) throw configInvalid(r.issues);
  return r;
}

/**
 * For each section, every position holding an id that a new item took while another item held it
 * (the only ids that can be duplicates: the live config has none, and a new item keeping its id
 * is its only holder). Items without an id are left out: their schema issue covers the duplicate's.
 */
function positionsOfNewKeys(working: Map<Kind, Working>, listOf: (kind: Kind) => readonly unknown[]): Map<Kind, Map<unknown, number[]>> {
  const out = new Map<Kind, Map<unknown, number[]>>();
  for (const [kind, w] of working) {
    const keys = w.ambiguous;
    if (keys.size === 0) continue;
    const at = new Map<unknown, number[]>([...keys].map((k) => [k, []]));
    const list = listOf(kind);
    if (keys.size <= 4) {
      for (const k of keys) for (let i = 0; i < list.length; i++) if (keyOf(kind, list[i]) === k) at.get(k)!.push(i);
    } else list.forEach((x, i) => at.get(keyOf(kind, x))?.push(i));
    out.set(kind, at);
  }
  return out;
}

/** The live config's secret resource ids, once per list of them (secret resources change rarely, and never here). */
const secretIdCache = new WeakMap<object, ReadonlySet<string>>();
function secretIds(c: GatewayConfig): ReadonlySet<string> {
  let ids = secretIdCache.get(c.secrets);
  if (!ids) secretIdCache.set(c.secrets, (ids = new Set(c.secrets.map((s) => s.id))));
  return ids;
}

// ---------------------------------------------------------------------------------------------
// the reference sites of the next config

/**
 * The sections holding reference sites, in validateConfig's order of sites (collectReferences);
 * settings come after them. An upstream's sites are its `tls` PEMs: a change of an upstream with
 * `tls` is left to the full validation, but a deleted upstream before one moves its sites.
 */
const SITE_SECTIONS = ['routes', 'consumers', 'secrets', 'upstreams', 'ssls'] as const;

/** Where a site stands in validateConfig's order of sites: routes, consumers, secret resources, upstreams, SSL resources, then settings. */
function siteSection(path: string): number {
  const k = SITE_SECTIONS.findIndex((kind) => path.startsWith(`${kind}[`));
  return k === -1 ? SITE_SECTIONS.length : k;
}

function siteIndex(path: string, prefix: string): number {
  return Number(path.slice(prefix.length, path.indexOf(']')));
}

/**
 * The sites after the changes, in validateConfig's order: the live sites of each unchanged item
 * (re-pathed only when a deletion before it moved it), each new item's sites at its position.
 * Runs of untouched sites are copied as they are; only the positions a change touched are searched.
 */
function nextRefs(refs: readonly ReferenceSite[], config: GatewayConfig, working: Map<Kind, Working>, newSites: Map<Kind, Array<{ index: number; sites: ReferenceSite[] }>>): readonly ReferenceSite[] {
  const out: ReferenceSite[] = [];
  let to = 0;
  for (const [n, kind] of SITE_SECTIONS.entries()) {
    const from = to;
    to = lowerBound(refs.length, (k) => siteSection(refs[k].path) > n);
    const w = kind === 'secrets' ? undefined : working.get(kind);
    if (!w) {
      for (let k = from; k < to; k++) out.push(refs[k]);
      continue;
    }
    const prefix = `${kind}[`;
    const first = (item: number) => lowerBound(to - from, (k) => siteIndex(refs[from + k].path, prefix) >= item) + from;
    const dropped = [...w.dropped].sort((a, b) => a - b);
    const deleted = [...w.deleted].sort((a, b) => a - b);
    const added = newSites.get(kind as Kind) ?? [];
    let a = 0;
    let shift = 0;
    // kept runs of live items: [start, end) between dropped ones, each moved up by the deletions before it
    const runs: Array<[number, number]> = [];
    let start = 0;
    for (const d of dropped) {
      if (d > start) runs.push([start, d]);
      start = d + 1;
    }
    const length = sectionOf(config, kind).length;
    if (start < length) runs.push([start, length]);
    let d = 0;
    for (const [s, e] of runs) {
      while (d < deleted.length && deleted[d] < s) d++;
      shift = d;
      while (a < added.length && added[a].index < s - shift) out.push(...added[a++].sites);
      const lo = first(s);
      const hi = first(e);
      for (let k = lo; k < hi; k++) {
        const site = refs[k];
        if (shift === 0) out.push(site);
        else {
          const i = siteIndex(site.path, prefix);
          out.push({ path: `${prefix}${i - shift}${site.path.slice(site.path.indexOf(']'))}`, ref: site.ref });
        }
      }
    }
    while (a < added.length) out.push(...added[a++].sites);
  }
  for (let k = to; k < refs.length; k++) out.push(refs[k]);
  return Object.freeze(out);
}
