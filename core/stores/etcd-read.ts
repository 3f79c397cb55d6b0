// Reading a key range of etcd in pages. One range response is capped by the client's gRPC message
// limit (4 MB), which a prefix of 100 000 consumers and 10 000 routes (11 to 14 MB) passes three
// times over; so a range is read a page at a time, each page from the key after the last one. All
// pages are read at the revision of the first (etcd's MVCC serves a past revision until it is
// compacted), so together they are one consistent snapshot of the range; when that revision is
// compacted meanwhile, the read starts over at the newest one.
//
// The first page asks for FIRST_PAGE_KEYS keys; each next one for as many as PAGE_BYTES hold at
// the size per key seen so far. Few large pages rather than many small ones: etcd 3.4 counts the
// rest of the range for every page, so 1 000-key pages read that prefix in 2.1–3.5 s and ~2 MB
// pages in 0.9–1.0 s (one unlimited read: 0.8 s; docs/performance.md). A page that is still over
// the limit (values of up to etcd's 1.5 MB request size) is asked again with half as many keys.
import { Range, type Etcd3, type IKeyValue } from 'etcd3';

/** Keys of the first page, before the size of a key is known. */
export const FIRST_PAGE_KEYS = 1000;
/** What a page after the first aims at: half the client's 4 MB message limit. */
export const PAGE_BYTES = 2 * 1024 * 1024;
/** Read again from the start at most this many times when the snapshot's revision was compacted. */
const RESTARTS = 5;

export interface RangeRead {
  /** The revision every page was read at. */
  readonly revision: number;
  /** Pages of the read that counted (the last attempt's). */
  readonly pages: number;
  /** Times it started over because its revision was compacted. */
  readonly restarts: number;
}

export interface PageOptions {
  /** Options of each call (its deadline). */
  call(): { deadline: number };
  /** Keys per page, all pages alike (default: sized by PAGE_BYTES). */
  readonly pageKeys?: number;
  /** A page of keys, in key order (the next is asked once it returns); after a restart the pages come again from the first key. */
  page(kvs: readonly IKeyValue[]): void | Promise<void>;
  /** The read starts over (the revision of its first page was compacted): forget the pages so far. */
  restart(): void;
}

function compacted(err: unknown): boolean {
  return /required revision has been compacted/.test((err as { message?: string }).message ?? '');
}

function tooLarge(err: unknown): boolean {
  return /RESOURCE_EXHAUSTED|larger than max/i.test((err as { message?: string }).message ?? '');
}

/**
 * Read every key with `prefix`, page by page, at one revision.
 * @throws what etcd3 throws (the caller says what it means)
 */
export async function readPrefix(client: Etcd3, prefix: string, o: PageOptions): Promise<RangeRead> {
  const end = Range.prefix(prefix).end;
  for (let attempt = 0; ; attempt++) {
    let start: Buffer = Buffer.from(prefix);
    let revision = 0;
    let pages = 0;
    let limit = o.pageKeys ?? FIRST_PAGE_KEYS;
    let keys = 0;
    let bytes = 0;
    try {
      for (;;) {
        let res;
        try {
          const q = client.getAll().inRange(new Range(start, end)).limit(limit);
          res = await (revision ? q.revision(revision) : q).options(o.call()).exec();
        } catch (err) {
          if (!tooLarge(err) || limit === 1) throw err;
          limit = Math.max(1, limit >> 1);
          continue;
        }
        if (!revision) revision = Number(res.header.revision);
        pages++;
        if (o.pageKeys === undefined) {
          for (const kv of res.kvs) bytes += kv.key.length + kv.value.length;
          keys += res.kvs.length;
          if (keys) limit = Math.max(1, Math.floor(PAGE_BYTES / (bytes / keys)));
        }
        await o.page(res.kvs);
        if (!res.more || !res.kvs.length) return { revision, pages, restarts: attempt };
        // the next page starts right after the last key of this one
        start = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
      }
    } catch (err) {
      if (!compacted(err) || attempt >= RESTARTS) throw err;
      o.restart();
    }
  }
}
