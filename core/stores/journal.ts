// The file store's journal: Admin API writes appended as records beside the data file, so that a
// write costs what it changes, and the data sections kept in memory by resource id.
//
// A journal file is a sequence of framed records:
//   'GHJ1' (4 bytes) | payload length (uint32 BE) | crc32 of length + payload (uint32 BE) | payload (JSON, UTF-8)
// The first record is the file's header ({ journal: 1, generation }), written before the file gets
// its name (temp file + rename or link), so it is never torn. Every other record is one write:
// { w: writer, s: sequence, changes: [{ kind, id, after? }] }, each change absolute (set the resource
// to `after`, or delete it), so replaying a record twice leaves what replaying it once does.
//
// A crash mid-append leaves a torn record at the end of the file: it was never acknowledged, so it is
// dropped. A bad record with a good one after it is not a crash: it is corruption, and an error.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { DATA_KINDS, type DataChange, type DataKind, type DataSections } from '../contracts';
import { GatehouseError } from '../errors';

const MAGIC = Buffer.from('GHJ1', 'latin1');
const HEADER_BYTES = 12;

/** One change as a record holds it: the resource's new value, or none (deleted). */
export interface StoredChange {
  readonly kind: DataKind;
  readonly id: string;
  readonly after?: Readonly<Record<string, unknown>>;
}

/** A change record: who wrote it (a writer id per store instance, and its sequence) and what. */
export interface ChangeRecord {
  readonly w: string;
  readonly s: number;
  readonly changes: readonly StoredChange[];
}

/** A framed record, ready for one write. */
export function frame(payload: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(payload), 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  MAGIC.copy(out, 0);
  out.writeUInt32BE(body.length, 4);
  out.writeUInt32BE(crc32(body, crc32(out.subarray(4, 8))), 8);
  body.copy(out, HEADER_BYTES);
  return out;
}

/** The header record of a journal of this generation. */
export const headerRecord = (generation: number): Buffer => frame({ journal: 1, generation });

/** A record read back: its payload and where it lies in the file. */
export interface ReadRecord {
  readonly offset: number;
  readonly end: number;
  readonly payload: unknown;
}

export interface ReadRecords {
  readonly records: ReadRecord[];
  /** The file offset just past the last good record. */
  readonly end: number;
  /** A torn or unfinished last record: where it starts and how many bytes it has. */
  readonly torn?: { readonly offset: number; readonly bytes: number };
}

/** The record at `p` of `buf` with its end, or undefined when it is not a whole, intact record. */
function recordAt(buf: Buffer, p: number): { end: number; body: Buffer } | undefined {
  if (buf.length - p < HEADER_BYTES || !buf.subarray(p, p + 4).equals(MAGIC)) return undefined;
  const length = buf.readUInt32BE(p + 4);
  const end = p + HEADER_BYTES + length;
  if (end > buf.length) return undefined;
  const body = buf.subarray(p + HEADER_BYTES, end);
  if (crc32(body, crc32(buf.subarray(p + 4, p + 8))) !== buf.readUInt32BE(p + 8)) return undefined;
  return { end, body };
}

/**
 * The records of `buf`, the bytes of `file` from offset `base` on. A bad record with no intact
 * record after it is the torn tail (a write cut by a crash, or one another process has not finished
 * yet); a bad record followed by an intact one is corruption.
 * @throws GatehouseError GH_ERR_CONFIG_PARSE naming the file and the byte offset
 */
export function readRecords(buf: Buffer, base: number, file: string): ReadRecords {
  const records: ReadRecord[] = [];
  let p = 0;
  while (p < buf.length) {
    const r = recordAt(buf, p);
    if (r === undefined) {
      for (let q = buf.indexOf(MAGIC, p + 1); q !== -1; q = buf.indexOf(MAGIC, q + 1)) {
        if (recordAt(buf, q) !== undefined) throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${file}: the journal record at byte ${base + p} is corrupt, and intact records follow it (not a write cut short): restore the file from a backup`);
      }
      return { records, end: base + p, torn: { offset: base + p, bytes: buf.length - p } };
    }
    let payload: unknown;
    try {
      payload = JSON.parse(r.body.toString('utf8'));
    } catch {
      throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${file}: the journal record at byte ${base + p} is not valid JSON`);
    }
    records.push({ offset: base + p, end: base + r.end, payload });
    p = r.end;
  }
  return { records, end: base + p };
}

/** The generation a journal's header record names. @throws GatehouseError GH_ERR_CONFIG_PARSE */
export function generationOf(header: ReadRecord | undefined, file: string): number {
  const g = (header?.payload as { journal?: unknown; generation?: unknown } | undefined)?.generation;
  if (header?.offset !== 0 || (header.payload as { journal?: unknown }).journal !== 1 || typeof g !== 'number') {
    throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${file}: not a journal of this store (no header record)`);
  }
  return g;
}

/** A change record's payload, checked. @throws GatehouseError GH_ERR_CONFIG_PARSE */
export function changeRecord(r: ReadRecord, file: string): ChangeRecord {
  const p = r.payload as Partial<ChangeRecord> | null;
  const ok =
    p !== null &&
    typeof p === 'object' &&
    typeof p.w === 'string' &&
    typeof p.s === 'number' &&
    Array.isArray(p.changes) &&
    p.changes.every((c) => c !== null && typeof c === 'object' && (DATA_KINDS as readonly string[]).includes(c.kind) && typeof c.id === 'string' && (c.after === undefined || (c.after !== null && typeof c.after === 'object')));
  if (!ok) throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${file}: the journal record at byte ${r.offset} is not a change record`);
  return p as ChangeRecord;
}

/** The field naming a resource: `username` for consumers (APISIX), `id` for the rest. */
export const idOf = (kind: DataKind, item: unknown): string | undefined => {
  const v = item !== null && typeof item === 'object' ? (item as Record<string, unknown>)[kind === 'consumers' ? 'username' : 'id'] : undefined;
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
};

/**
 * The data sections by resource id, in their order (a replaced resource keeps its place, a new one
 * goes last, as the Admin API does). The items are the very objects given or read: never copied,
 * never changed in place.
 */
export class DataState {
  private readonly maps = new Map<DataKind, Map<string, unknown>>();
  /** A section that is no list in the data file: handed on as it is, for validation to name. */
  private readonly odd = new Map<DataKind, unknown>();
  private anonymous = 0;

  constructor(data: Partial<Record<DataKind, unknown>>) {
    for (const step of this.fill(data, Infinity)) void step;
  }

  /**
   * The state of `data`, made a slice of `slice` resources per turn of the event loop: a 100,000
   * consumer section is about 20 ms of the proxy's thread in one go.
   */
  static async build(data: Partial<Record<DataKind, unknown>>, slice: number): Promise<DataState> {
    const state = new DataState({});
    for (const step of state.fill(data, slice)) {
      void step;
      await nextTurn();
    }
    return state;
  }

  /** Index `data` into the (empty) state, yielding after every `slice` resources. */
  private *fill(data: Partial<Record<DataKind, unknown>>, slice: number): Generator<void> {
    let n = 0;
    for (const kind of DATA_KINDS) {
      const list = data[kind];
      const map = new Map<string, unknown>();
      this.maps.set(kind, map);
      if (list === undefined) continue;
      if (!Array.isArray(list)) {
        this.odd.set(kind, list);
        continue;
      }
      // a resource without an id (or a second one with the same id) cannot be written to: kept as is
      for (const item of list) {
        const id = idOf(kind, item);
        map.set(id === undefined || map.has(id) ? `\0${this.anonymous++}` : id, item);
        if (++n % slice === 0) yield;
      }
    }
  }

  get(kind: DataKind, id: string): Readonly<Record<string, unknown>> | undefined {
    return this.maps.get(kind)?.get(id) as Readonly<Record<string, unknown>> | undefined;
  }

  apply(c: StoredChange): void {
    this.odd.delete(c.kind);
    const map = this.maps.get(c.kind)!;
    if (c.after === undefined) map.delete(c.id);
    else map.set(c.id, c.after);
  }

  /**
   * Apply changes, returning what each resource was before and is now, for those that changed
   * (a resource changed and changed back is no change).
   */
  applyAll(changes: Iterable<StoredChange>): DataChange[] {
    const touched = new Map<string, { kind: DataKind; id: string; before: Readonly<Record<string, unknown>> | undefined }>();
    for (const c of changes) {
      const key = `${c.kind}\0${c.id}`;
      if (!touched.has(key)) touched.set(key, { kind: c.kind, id: c.id, before: this.get(c.kind, c.id) });
      this.apply(c);
    }
    const out: DataChange[] = [];
    for (const { kind, id, before } of touched.values()) {
      const after = this.get(kind, id);
      if (after !== before) out.push({ kind, id, ...(before === undefined ? {} : { before }), ...(after === undefined ? {} : { after }) });
    }
    return out;
  }

  /** Every data section as a new list of the kept items. */
  sections(): DataSections {
    return Object.fromEntries(DATA_KINDS.map((k) => [k, this.odd.has(k) ? this.odd.get(k) : [...this.maps.get(k)!.values()]])) as unknown as DataSections;
  }
}
