// What a change of the data sections changed, as DataChanges: by content after a reload (whose
// document is parsed afresh), or by object identity. One pass over the lists' pointers; an Admin
// API write records its changes as it makes them instead (positions.ts).
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
