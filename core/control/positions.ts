// The store's document as the config control keeps it between changes, with where each resource
// stands in its section (by id), so that a write of one resource finds it, applies and records
// its change without a pass over 100,000 others; and the edit an Admin API operation makes on it.
// The validated config lists the same resources in the same order, so the positions answer for
// it too (validateChanges and the incremental build ask them).
import { DATA_KINDS, type DataChange, type DataKind } from '../contracts';
import type { PositionOf } from '../config/validate-changes';
import { idOf, type DataDocument } from './data-diff';

type Item = Readonly<Record<string, unknown>>;

/**
 * A data document and the positions of its resources, by kind then id, built on first use of a
 * kind. A document derived by {@link IndexedDocument.apply} shares the position maps of the kinds
 * that only had resources replaced or appended: a map only ever gains the positions of appended
 * resources, and every answer is checked against the list it is asked about. So a document and
 * every one it was derived from answer right (an id appended later points past their lists' end,
 * or at another resource), whatever was derived from them and dropped meanwhile (a refused
 * change); a dropped one is not asked again. A kind with a deletion gets a map of its own, built
 * when first asked.
 */
export class IndexedDocument {
  private constructor(
    readonly doc: DataDocument,
    private readonly maps: Map<DataKind, Map<string, number>>,
  ) {}

  static of(doc: DataDocument): IndexedDocument {
    return new IndexedDocument(doc, new Map());
  }

  /** The section of `kind` (an empty list when the document has none, or something else there). */
  list(kind: DataKind): readonly unknown[] {
    const l = this.doc[kind];
    return Array.isArray(l) ? l : [];
  }

  /** Where `id` stands in the section `kind`, or -1. */
  readonly at: PositionOf = (kind, id) => {
    const list = this.list(kind);
    const p = this.map(kind).get(id);
    if (p !== undefined && p < list.length && idOf(kind, list[p]) === id) return p;
    return -1;
  };

  /** The resource `id` of `kind`, or undefined. */
  get(kind: DataKind, id: string): Item | undefined {
    const p = this.at(kind, id);
    return p === -1 ? undefined : (this.list(kind)[p] as Item);
  }

  /**
   * The document after `changes`, as a store applies them: a replaced resource keeps its place, a
   * new one is appended, a deleted one removed. Only the sections changed are new lists.
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
    const doc: DataDocument = { ...this.doc };
    for (const [kind, mine] of byKind) {
      const deletes = mine.some((c) => c.after === undefined);
      const list = deletes ? this.withDeletions(kind, mine) : this.withReplacements(kind, mine);
      if (list === undefined) return undefined;
      doc[kind] = list;
      if (deletes) maps.delete(kind);
    }
    return new IndexedDocument(doc, maps);
  }

  /**
   * The section of `kind` with `changes` (no deletion among them) applied: one copy of the list, of
   * its final length; the appended resources' positions go into the shared map (see the class comment).
   */
  private withReplacements(kind: DataKind, changes: readonly DataChange[]): unknown[] | undefined {
    const base = this.list(kind);
    const appended = new Map<string, unknown>();
    const replaced: Array<[number, unknown]> = [];
    for (const c of changes) {
      if (appended.has(c.id)) appended.set(c.id, c.after);
      else {
        const p = this.at(kind, c.id);
        if (p !== -1) replaced.push([p, c.after]);
        else if (c.before !== undefined) return undefined;
        else appended.set(c.id, c.after);
      }
    }
    // (concat allocates the final length once; a spread then push would copy the list again to grow it)
    const list = appended.size ? base.concat([...appended.values()]) : [...base];
    for (const [p, item] of replaced) list[p] = item;
    if (appended.size) {
      const map = this.map(kind);
      let at = base.length;
      for (const id of appended.keys()) map.set(id, at++);
    }
    return list;
  }

  /** The section of `kind` with `changes` applied one by one, some of them deletions (the positions of `kind` are built again when next asked). */
  private withDeletions(kind: DataKind, changes: readonly DataChange[]): unknown[] | undefined {
    const list = [...this.list(kind)];
    for (const c of changes) {
      const p = list.findIndex((x) => idOf(kind, x) === c.id);
      if (c.after === undefined) {
        if (p === -1) return undefined;
        list.splice(p, 1);
      } else if (p !== -1) list[p] = c.after;
      else if (c.before !== undefined) return undefined;
      else list.push(c.after);
    }
    return list;
  }

  private map(kind: DataKind): Map<string, number> {
    let m = this.maps.get(kind);
    if (m === undefined) {
      m = new Map();
      const list = this.list(kind);
      for (let i = 0; i < list.length; i++) {
        const id = idOf(kind, list[i]);
        // the first of two resources with one id is the one a write edits (the document is refused anyway)
        if (id !== undefined && !m.has(id)) m.set(id, i);
      }
      this.maps.set(kind, m);
    }
    return m;
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
    let n = this.base.list(kind).length;
    for (const [id, e] of this.edits.get(kind) ?? []) {
      const had = this.base.at(kind, id) !== -1;
      if (had && e === null) n--;
      else if (!had && e !== null) n++;
    }
    return n;
  }

  /** The section as edited (a new list: for the operations that look through every resource, a deletion's users). */
  list(kind: DataKind): readonly unknown[] {
    const mine = this.edits.get(kind);
    if (mine === undefined || mine.size === 0) return this.base.list(kind);
    const out: unknown[] = [];
    for (const x of this.base.list(kind)) {
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
