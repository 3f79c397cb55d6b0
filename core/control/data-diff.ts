// What a change of the data sections changed, as DataChanges: by object identity after an Admin API
// operation (which replaces, appends or removes the objects it changes and leaves the others as
// they are), by content after a reload (whose document is parsed afresh); and the same changes
// applied to a document. Costs what the change costs, but one pass over the lists' pointers.
import { DATA_KINDS, type DataChange, type DataKind } from '../contracts';

/** A data document: the data sections as lists of raw resources (other keys are left alone). */
export type DataDocument = Record<string, unknown>;

type Item = Readonly<Record<string, unknown>>;

/** The field naming a resource: `username` for consumers (APISIX), `id` for the rest. */
export function idOf(kind: DataKind, item: unknown): string | undefined {
  if (item === null || typeof item !== 'object') return undefined;
  const v = (item as Item)[kind === 'consumers' ? 'username' : 'id'];
  return v === undefined || v === null ? undefined : String(v);
}

/** A copy of `doc` whose data sections are new lists holding the same resources (an operation edits the copy). */
export function copyOnWrite(doc: DataDocument): Record<string, unknown[]> {
  const out: Record<string, unknown> = { ...doc };
  for (const k of DATA_KINDS) out[k] = Array.isArray(doc[k]) ? [...(doc[k] as unknown[])] : [];
  return out as Record<string, unknown[]>;
}

/**
 * The changes from `before` to `after`, telling resources apart by identity (`same` = `===`) or by
 * content (`same` compares JSON). Unchanged heads and tails of each list are skipped pointer by
 * pointer; the middle is matched by id.
 * @returns undefined when a list holds something without an id, or an id twice (only a full
 *   validation can say what is wrong there)
 */
export function diffData(before: DataDocument, after: DataDocument, same: (a: unknown, b: unknown) => boolean = identical): DataChange[] | undefined {
  const changes: DataChange[] = [];
  for (const kind of DATA_KINDS) {
    const a = (Array.isArray(before[kind]) ? before[kind] : []) as unknown[];
    const b = (Array.isArray(after[kind]) ? after[kind] : []) as unknown[];
    if (a === b) continue;
    let head = 0;
    while (head < a.length && head < b.length && same(a[head], b[head])) head++;
    let ta = a.length;
    let tb = b.length;
    while (ta > head && tb > head && same(a[ta - 1], b[tb - 1])) {
      ta--;
      tb--;
    }
    const old = new Map<string, unknown>();
    for (let i = head; i < ta; i++) {
      const id = idOf(kind, a[i]);
      if (id === undefined || old.has(id)) return undefined;
      old.set(id, a[i]);
    }
    const seen = new Set<string>();
    for (let i = head; i < tb; i++) {
      const id = idOf(kind, b[i]);
      if (id === undefined || seen.has(id)) return undefined;
      seen.add(id);
      const was = old.get(id);
      old.delete(id);
      if (was !== undefined && same(was, b[i])) continue;
      changes.push(was === undefined ? { kind, id, after: b[i] as Item } : { kind, id, before: was as Item, after: b[i] as Item });
    }
    for (const [id, was] of old) changes.push({ kind, id, before: was as Item });
  }
  return changes;
}

function identical(a: unknown, b: unknown): boolean {
  return a === b;
}

/** Same content: for documents parsed afresh (a reload), whose unchanged resources are new objects. */
export function sameContent(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/**
 * `doc` (copied on write) with `changes` applied as a store applies them: a replaced resource
 * keeps its place, a new one is appended, a deleted one removed.
 * @returns undefined when a change does not fit the document (a replaced or deleted resource it does not hold)
 */
export function applyChanges(doc: DataDocument, changes: readonly DataChange[]): Record<string, unknown[]> | undefined {
  const out = copyOnWrite(doc);
  for (const c of changes) {
    const list = out[c.kind];
    const at = list.findIndex((x) => idOf(c.kind, x) === c.id);
    if (c.after === undefined) {
      if (at === -1) return undefined;
      list.splice(at, 1);
    } else if (at === -1) list.push(c.after);
    else list[at] = c.after;
  }
  return out;
}
