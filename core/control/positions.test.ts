// The config control's document with positions, and an Admin API operation's edit of it, against a
// plain model: lists changed one resource at a time by scanning them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DataChange, DataKind } from '../contracts';
import { prng } from '../../test/helpers/prng';
import { idOf, type DataDocument } from './data-diff';
import { DocumentEdit, IndexedDocument } from './positions';

const KINDS: DataKind[] = ['routes', 'consumers'];

/** The model: what a store does with a change (replace in place, append, remove). */
function model(doc: DataDocument, changes: readonly DataChange[]): DataDocument | undefined {
  const out: DataDocument = { ...doc };
  for (const c of changes) {
    const list = (out[c.kind] as unknown[] | undefined) ?? [];
    const held = list.some((x) => idOf(c.kind, x) === c.id);
    if (!held && (c.before !== undefined || c.after === undefined)) return undefined;
    out[c.kind] = held ? list.flatMap((x) => (idOf(c.kind, x) !== c.id ? [x] : c.after === undefined ? [] : [c.after])) : [...list, c.after];
  }
  return out;
}

function item(kind: DataKind, id: string, v: number): Record<string, unknown> {
  return kind === 'consumers' ? { username: id, v } : { id, v };
}

/** Every id's position, asked of the indexed document, equals a scan of its lists. */
function assertPositions(d: IndexedDocument, ids: readonly string[], seed: number): void {
  for (const kind of KINDS) {
    const list = d.section(kind).toArray();
    for (const id of ids) assert.equal(d.at(kind, id), list.findIndex((x) => idOf(kind, x) === id), `seed ${seed}: ${kind}/${id}`);
  }
}

test('positions follow replacements, appends and deletions; older documents keep answering for their own lists after refused changes and later ones', () => {
  for (let seed = 1; seed <= 60; seed++) {
    const rnd = prng(seed);
    const ids = Array.from({ length: 12 }, (_, i) => `x${i}`);
    const pick = () => ids[Math.floor(rnd() * ids.length)];
    const start: DataDocument = { routes: ids.slice(0, 5).map((id) => item('routes', id, 0)), consumers: ids.slice(3, 9).map((id) => item('consumers', id, 0)), settings: { keep: true } };
    let doc = IndexedDocument.of(start);
    let plain = start;
    const history: Array<[IndexedDocument, DataDocument]> = [];
    for (let step = 0; step < 40; step++) {
      const changes: DataChange[] = [];
      let scratch: DataDocument | undefined = plain;
      for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) {
        const kind = KINDS[Math.floor(rnd() * KINDS.length)];
        const id = pick();
        const has = (scratch![kind] as unknown[]).some((x) => idOf(kind, x) === id);
        const del = has && rnd() < 0.3;
        const c: DataChange = del ? { kind, id, before: item(kind, id, -1) } : { kind, id, ...(has ? { before: item(kind, id, -1) } : {}), after: item(kind, id, step * 10 + k) };
        changes.push(c);
        scratch = model(scratch!, [c]);
      }
      const expected = model(plain, changes);
      const next = doc.apply(changes);
      assert.deepEqual(next?.doc, expected, `seed ${seed} step ${step}`);
      assertPositions(next!, ids, seed);
      if (rnd() < 0.25) continue; // refused: dropped, and the next change is made on the live document again
      history.push([doc, plain]);
      doc = next!;
      plain = expected!;
      assertPositions(doc, ids, seed);
    }
    // every document that was live still answers for its own lists
    for (const [d, p] of history) {
      assert.deepEqual(d.doc, p);
      assertPositions(d, ids, seed);
    }
  }
});

test('a change that does not fit the document is refused whole', () => {
  const d = IndexedDocument.of({ routes: [{ id: 'a' }] });
  assert.equal(d.apply([{ kind: 'routes', id: 'b', before: { id: 'b' }, after: { id: 'b', v: 1 } }]), undefined);
  assert.equal(d.apply([{ kind: 'routes', id: 'b', before: { id: 'b' } }]), undefined);
  assert.deepEqual(d.doc, { routes: [{ id: 'a' }] });
});

test("an edit reads its own writes, counts and lists the section as edited, and records each resource's change once", () => {
  const a = { id: 'a', v: 1 };
  const b = { id: 'b', v: 1 };
  const base = IndexedDocument.of({ routes: [a, b], upstreams: [{ id: 'u' }] });
  const e = new DocumentEdit(base);
  assert.equal(e.get('routes', 'a'), a);
  e.set('routes', 'a', { id: 'a', v: 2 });
  e.set('routes', 'a', { id: 'a', v: 3 });
  e.set('routes', 'c', { id: 'c' });
  e.remove('routes', 'b');
  e.set('upstreams', 'u', base.get('upstreams', 'u')!);
  e.set('routes', 'tmp', { id: 'tmp' });
  e.remove('routes', 'tmp');
  assert.deepEqual(e.get('routes', 'a'), { id: 'a', v: 3 });
  assert.equal(e.get('routes', 'b'), undefined);
  assert.equal(e.count('routes'), 2);
  assert.deepEqual(e.list('routes'), [{ id: 'a', v: 3 }, { id: 'c' }]);
  assert.deepEqual(e.changes(), [
    { kind: 'routes', id: 'a', before: a, after: { id: 'a', v: 3 } },
    { kind: 'routes', id: 'c', after: { id: 'c' } },
    { kind: 'routes', id: 'b', before: b },
  ]);
  // the document itself is as it was
  assert.deepEqual(base.doc, { routes: [a, b], upstreams: [{ id: 'u' }] });
  assert.deepEqual(base.apply(e.changes())!.doc, { routes: [{ id: 'a', v: 3 }, { id: 'c' }], upstreams: [{ id: 'u' }] });
});

test('a numeric route id is found by its string', () => {
  const d = IndexedDocument.of({ routes: [{ id: 5, uri: '/5' }] });
  assert.equal(d.at('routes', '5'), 0);
  assert.deepEqual(new DocumentEdit(d).get('routes', '5'), { id: 5, uri: '/5' });
});

test('prepare indexes a slice at a time; a kind asked for half-way is finished at once; the answers are those of a scan, duplicates included', () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rnd = prng(seed);
    const n = 1 + Math.floor(rnd() * 60);
    // ids repeat now and then: the first of two is the one found, as without prepare
    const ids = Array.from({ length: n }, () => `x${Math.floor(rnd() * n * 0.8)}`);
    const doc: DataDocument = { routes: ids.map((id, i) => item('routes', id, i)), consumers: ids.slice(0, n >> 1).map((id, i) => item('consumers', id, i)) };
    const d = IndexedDocument.of(doc);
    const slice = 1 + Math.floor(rnd() * 7);
    let turns = 0;
    assert.equal(d.prepared, false);
    while (!d.prepare(slice)) {
      turns++;
      // a write meanwhile asks for a kind: found as by a scan whatever was indexed so far
      if (rnd() < 0.3) assertPositions(d, [...ids, 'absent'], seed);
      assert.ok(turns < 1000, `seed ${seed}: prepare ends`);
    }
    assert.equal(d.prepared, true);
    assertPositions(d, [...ids, 'absent'], seed);
    // a document derived afterwards shares what was prepared and still answers right
    const next = d.apply([{ kind: 'routes', id: 'new', after: item('routes', 'new', -1) }]);
    assert.ok(next);
    assertPositions(next, [...ids, 'new'], seed);
  }
});
