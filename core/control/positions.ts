// The store's document as the config control keeps it between changes, with where each resource
// stands in its section (by id), so that a write of one resource finds it, applies and records
// its change without a pass over 100,000 others; and the edit an Admin API operation makes on it.
// The validated config lists the same resources in the same order, so the positions answer for
// it too (validateChanges and the incremental build ask them).
import { DATA_KINDS, type DataChange, type DataKind } from '../contracts';
import type { PositionOf } from '../config/validate-changes';
import { Section } from '../config/section';
import { idOf, type DataDocument } from './data-diff';

type Item = Readonly<Record<string, unknown>>;

/**
 * A data document and the positions of its resources, by kind then id, built on first use of a
 * kind. Its data sections are persistent lists (config/section.ts): the document after a change
 * of a few resources shares all but the chunks they touch with this one, and `doc`, the plain
 * document, is made only when asked (a whole validation, a store's first write, a reload's
 * comparison).
 *
 * A document derived by {@link IndexedDocument.apply} shares the position maps of the kinds that
 * only had resources replaced or appended: a map only ever gains the positions of appended
 * resources, and every answer is checked against the section it is asked about. So a document and
 * every one it was derived from answer right (an id appended later points past their sections'
 * end, or at another resource), whatever was derived from them and dropped meanwhile (a refused
 * change); a dropped one is not asked again. A kind with a deletion gets a map of its own, built
 * when first asked.
 */
export class IndexedDocument {
  /** The plain document, once made. */
  private plain: DataDocument | undefined;

  private constructor(
    /** The settings, and the data sections as lists where `sections` has none. */
    private readonly base: DataDocument,
    /** The data sections, each made when first asked of a list of `base`, or by a change. */
    private readonly sections: Map<DataKind, Section<unknown>>,
    private readonly maps: Map<DataKind, Map<string, number>>,
    /** The kinds whose section is not `base`'s list any more. */
    private readonly changed: ReadonlySet<DataKind>,
  ) {}

  static of(doc: DataDocument): IndexedDocument {
    const d = new IndexedDocument(doc, new Map(), new Map(), new Set());
    d.plain = doc;
    return d;
  }

  /** The document with its data sections as lists. */
  get doc(): DataDocument {
    if (this.plain === undefined) {
      const doc: DataDocument = { ...this.base };
      for (const kind of this.changed) doc[kind] = this.section(kind).toArray();
      this.plain = doc;
    }
    return this.plain;
  }

  /** The section of `kind` (empty when the document has none, or something else there). */
  section(kind: DataKind): Section<unknown> {
    let s = this.sections.get(kind);
    if (s === undefined) {
      const l = this.base[kind];
      this.sections.set(kind, (s = Section.of(Array.isArray(l) ? l : [])));
    }
    return s;
  }

  /** Where `id` stands in the section `kind`, or -1. */
  readonly at: PositionOf = (kind, id) => {
    const section = this.section(kind);
    const p = this.map(kind).get(id);
    if (p !== undefined && p < section.length && idOf(kind, section.get(p)) === id) return p;
    return -1;
  };

  /** The resource `id` of `kind`, or undefined. */
  get(kind: DataKind, id: string): Item | undefined {
    const p = this.at(kind, id);
    return p === -1 ? undefined : (this.section(kind).get(p) as Item);
  }

  /**
   * The document after `changes`, as a store applies them: a replaced resource keeps its place, a
   * new one is appended, a deleted one removed. Only the sections changed are new.
   * @returns undefined when a change does not fit (a replaced or deleted resource the document does not hold)
   */
  apply(changes: readonly DataChange[]): IndexedDocument | undefined {
    const byKind = new Map<DataKind, DataChange[]>();
    for (const c of changes) {
      const mine = byKind.get(c.kind);
      if (mine) mine.push(c);
      else byKind.set(c.kind, [c]);
    }
    const maps = new Map(this.maps);
    const sections = new Map(this.sections);
    for (const [kind, mine] of byKind) {
      const deletes = mine.some((c) => c.after === undefined);
      const section = deletes ? this.withDeletions(kind, mine) : this.withReplacements(kind, mine);
      if (section === undefined) return undefined;
      sections.set(kind, section);
      if (deletes) maps.delete(kind);
    }
    return new IndexedDocument(this.base, sections, maps, new Set([...this.changed, ...byKind.keys()]));
  }

  /**
   * The section of `kind` with `changes` (no deletion among them) applied: a few chunks copied; the
   * appended resources' positions go into the shared map (see the class comment).
   */
  private withReplacements(kind: DataKind, changes: readonly DataChange[]): Section<unknown> | undefined {
    const base = this.section(kind);
    const appended = new Map<string, unknown>();
    const replaced = new Map<number, unknown>();
    for (const c of changes) {
      if (appended.has(c.id)) appended.set(c.id, c.after);
      else {
        const p = this.at(kind, c.id);
        if (p !== -1) replaced.set(p, c.after);
        else if (c.before !== undefined) return undefined;
        else appended.set(c.id, c.after);
      }
    }
    if (appended.size) {
      const map = this.map(kind);
      let at = base.length;
      for (const id of appended.keys()) map.set(id, at++);
    }
    return base.with(replaced).concat([...appended.values()]);
  }

  /** The section of `kind` with `changes` applied one by one, some of them deletions (its resources move: a new list, whose positions are built again when next asked). */
  private withDeletions(kind: DataKind, changes: readonly DataChange[]): Section<unknown> | undefined {
    const list = [...this.section(kind).toArray()];
    for (const c of changes) {
      const p = list.findIndex((x) => idOf(kind, x) === c.id);
      if (c.after === undefined) {
        if (p === -1) return undefined;
        list.splice(p, 1);
      } else if (p !== -1) list[p] = c.after;
      else if (c.before !== undefined) return undefined;
      else list.push(c.after);
    }
    return Section.own(list);
  }

  /** True when every kind's positions are indexed. */
  get prepared(): boolean {
    return this.maps.size === DATA_KINDS.length;
  }

  /**
   * Index the positions of up to `budget` more resources, of the kinds not indexed yet, so that the
   * first write of a kind does not index a large section in one go (100,000 consumers: about
   * 20 ms of the event loop). A kind asked for meanwhile is finished at once.
   * @returns true when every kind is indexed
   */
  prepare(budget: number): boolean {
    for (const kind of DATA_KINDS) {
      if (this.maps.has(kind)) continue;
      let p = this.partial.get(kind);
      if (p === undefined) this.partial.set(kind, (p = { map: new Map(), next: 0 }));
      const section = this.section(kind);
      const end = Math.min(section.length, p.next + budget);
      budget -= end - p.next;
      indexPositions(kind, section, p.map, p.next, end);
      p.next = end;
      if (end === section.length) {
        this.maps.set(kind, p.map);
        this.partial.delete(kind);
      }
      if (budget <= 0) break;
    }
    return this.prepared;
  }

  /** Maps being indexed a slice at a time by `prepare`: the map so far and the next position. */
  private readonly partial = new Map<DataKind, { map: Map<string, number>; next: number }>();

  private map(kind: DataKind): Map<string, number> {
    let m = this.maps.get(kind);
    if (m === undefined) {
      const p = this.partial.get(kind);
      const section = this.section(kind);
      m = p?.map ?? new Map();
      indexPositions(kind, section, m, p?.next ?? 0, section.length);
      this.partial.delete(kind);
      this.maps.set(kind, m);
    }
    return m;
  }
}

/** Index the ids of `section`'s resources in [from, to) into `m` (the first of two with one id wins: the document is refused anyway, and a write edits that one). */
function indexPositions(kind: DataKind, section: Section<unknown>, m: Map<string, number>, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const id = idOf(kind, section.get(i));
    if (id !== undefined && !m.has(id)) m.set(id, i);
  }
}

/**
 * An Admin API operation's edit of a document: what it reads is the document with its own edits
 * applied; what it records is a list of DataChanges (each resource once: what it was, what it is
 * now), in the order the resources were first touched. The document itself is not modified.
 */
export class DocumentEdit {
  /** Edited resources by kind and id: the new value, or null when deleted. */
  private readonly edits = new Map<DataKind, Map<string, Item | null>>();

  constructor(private readonly base: IndexedDocument) {}

  /** The resource `id` of `kind` as edited so far, or undefined. */
  get(kind: DataKind, id: string): Item | undefined {
    const e = this.edits.get(kind)?.get(id);
    if (e !== undefined) return e ?? undefined;
    return this.base.get(kind, id);
  }

  /** Replace the resource `id` (or create it: appended to its section). */
  set(kind: DataKind, id: string, item: Item): void {
    this.kind(kind).set(id, item);
  }

  /** Delete the resource `id` (nothing when there is none). */
  remove(kind: DataKind, id: string): void {
    this.kind(kind).set(id, null);
  }

  /** How many resources the section holds as edited. */
  count(kind: DataKind): number {
    let n = this.base.section(kind).length;
    for (const [id, e] of this.edits.get(kind) ?? []) {
      const had = this.base.at(kind, id) !== -1;
      if (had && e === null) n--;
      else if (!had && e !== null) n++;
    }
    return n;
  }

  /** The section as edited (a new list: for the operations that look through every resource, a deletion's users). */
  list(kind: DataKind): readonly unknown[] {
    const all = this.base.section(kind).toArray();
    const mine = this.edits.get(kind);
    if (mine === undefined || mine.size === 0) return all;
    const out: unknown[] = [];
    for (const x of all) {
      const id = idOf(kind, x);
      const e = id === undefined ? undefined : mine.get(id);
      if (e === undefined) out.push(x);
      else if (e !== null) out.push(e);
    }
    for (const [id, e] of mine) if (e !== null && this.base.at(kind, id) === -1) out.push(e);
    return out;
  }

  /** What the edit changed: each touched resource once, those left as they were left out. */
  changes(): DataChange[] {
    const out: DataChange[] = [];
    for (const kind of DATA_KINDS) {
      for (const [id, e] of this.edits.get(kind) ?? []) {
        const before = this.base.get(kind, id);
        const after = e ?? undefined;
        if (before === after) continue;
        out.push({ kind, id, ...(before === undefined ? {} : { before }), ...(after === undefined ? {} : { after }) });
      }
    }
    return out;
  }

  private kind(kind: DataKind): Map<string, Item | null> {
    let m = this.edits.get(kind);
    if (m === undefined) this.edits.set(kind, (m = new Map()));
    return m;
  }
}
