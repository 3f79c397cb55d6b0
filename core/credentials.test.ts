// Credential and owner indexes updated by delta: after every update of a long random run (adds,
// removals, replacements, rotations with grace; keys reused across owners to make duplicates and
// grace collisions), the new index answers every key ever seen exactly as one built from scratch
// over the same entries, and the index it came from still answers as it did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { credentialIndex, ownerIndex, type CredentialEntry, type CredentialIndex, type OwnerIndex } from './credentials';
import { prng } from '../test/helpers/prng';


/** An entry both kinds of index take: `credential` and `key` are the same text. */
interface E {
  readonly credential: string;
  readonly key: string;
  readonly owner: string;
  readonly value: { readonly owner: string; readonly n: number };
  readonly path: string;
  readonly until?: number;
}

type Dup = (first: { owner: string }, second: { owner: string }) => void;

/** One kind of index as the driver sees it. */
interface Kind<I> {
  readonly name: string;
  build(entries: readonly E[], onDuplicate?: Dup): I;
  update(index: I, removed: readonly E[], added: readonly E[], onDuplicate?: Dup): I | undefined;
  /** What `index` answers for `key` at `now`, comparable with deepEqual (values by identity). */
  answer(index: I, key: string, now: number): unknown;
  size(index: I): number;
}

const CREDENTIALS: Kind<CredentialIndex<E['value']>> = {
  name: 'credentialIndex',
  build: (entries, onDuplicate) => credentialIndex<E['value']>(entries, { onDuplicate }),
  update: (index, removed, added, onDuplicate) => index.update({ removed, added }, { onDuplicate }),
  answer: (index, key, now) => index.find(key, now),
  size: (index) => index.size,
};

const OWNERS: Kind<OwnerIndex<E['value']>> = {
  name: 'ownerIndex',
  build: (entries, onDuplicate) => ownerIndex<E['value']>(entries, { onDuplicate }),
  update: (index, removed, added, onDuplicate) => index.update({ removed, added }, { onDuplicate }),
  answer: (index, key, now) => index.get(key)?.map((o) => [o.owner, o.value, o.until, now < o.until]),
  size: (index) => index.size,
};

/** A consumer as the model keeps it: its current key and the keys a rotation replaced. */
interface Owner {
  readonly key: string;
  readonly previous: ReadonlyArray<{ key: string; until: number }>;
  readonly entries: readonly E[];
}

/** Whether an update of `before` into `after` touching `keys` must answer undefined (see CredentialIndex.update). */
function rebuildNeeded(before: readonly E[], after: readonly E[], removed: readonly E[], keys: ReadonlySet<string>): boolean {
  const owners = (list: readonly E[], key: string, current: boolean) => new Set(list.filter((e) => e.key === key && (e.until === undefined) === current).map((e) => e.owner));
  // a removal from a key two owners hold current
  if (removed.some((r) => owners(before, r.key, true).size > 1)) return true;
  // a touched key nobody holds current, held in grace by several owners
  return [...keys].some((k) => owners(after, k, true).size === 0 && owners(after, k, false).size > 1);
}

function drive<I>(kind: Kind<I>, seed: number, withCallback: boolean): { steps: number; updates: number; rebuilds: number; refused: number; calls: number } {
  const random = prng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(random() * a.length)];
  const seen: string[] = [];
  let fresh = 0;
  let serial = 0;
  const newKey = (): string => {
    // one key in ten is one seen before: duplicates, grace collisions, a key coming back
    const k = seen.length > 0 && random() < 0.1 ? pick(seen) : `key-${seed}-${fresh++}`;
    if (!seen.includes(k)) seen.push(k);
    return k;
  };
  const entriesOf = (name: string, key: string, previous: Owner['previous']): E[] => {
    const value = Object.freeze({ owner: name, n: serial++ });
    return [{ credential: key, key, owner: name, value, path: `consumers.${name}.key` }, ...previous.map((p) => ({ credential: p.key, key: p.key, owner: name, value, path: `consumers.${name}.key`, until: p.until }))];
  };
  const owners = new Map<string, Owner>();
  let list: E[] = [];
  const calls: string[] = [];
  const onDuplicate: Dup | undefined = withCallback ? (a, b) => calls.push(`${a.owner}|${b.owner}`) : undefined;
  let now = 1_000_000;
  // a start with 150 consumers (a key seen before among them only makes a duplicate in the callback run)
  for (let i = 0; i < 150; i++) {
    const name = `c${i}`;
    const key = withCallback ? newKey() : `key-${seed}-${fresh++}`;
    if (!seen.includes(key)) seen.push(key);
    const o: Owner = { key, previous: [], entries: entriesOf(name, key, []) };
    owners.set(name, o);
    list.push(...o.entries);
  }
  let index = kind.build(list, onDuplicate);
  const stats = { steps: 0, updates: 0, rebuilds: 0, refused: 0, calls: 0 };
  const times = () => [now, now + 150, now + 1_000];
  const answers = (i: I, keys: readonly string[]) => keys.flatMap((k) => times().map((t) => kind.answer(i, k, t)));
  for (let step = 0; step < 2_000; step++) {
    now += 10;
    const names = [...owners.keys()];
    const r = random();
    let name: string;
    let next: Owner | undefined;
    if (r < 0.2 || names.length < 50) {
      name = `c${150 + step}`;
      const key = newKey();
      next = { key, previous: [], entries: entriesOf(name, key, []) };
    } else {
      name = pick(names);
      const o = owners.get(name)!;
      if (r < 0.35) next = undefined; // removed
      else if (r < 0.55) {
        // replaced: a new key, no grace
        const key = newKey();
        next = { key, previous: [], entries: entriesOf(name, key, []) };
      } else {
        // rotated: the old key in grace, with those still in theirs (newest first)
        const key = newKey();
        const previous = [{ key: o.key, until: now + 20 + Math.floor(random() * 400) }, ...o.previous.filter((p) => p.until > now)];
        next = { key, previous, entries: entriesOf(name, key, previous) };
      }
    }
    const removed = owners.get(name)?.entries ?? [];
    const added = next?.entries ?? [];
    const after = [...list.filter((e) => !removed.includes(e)), ...added];
    const touched = new Set([...removed, ...added].map((e) => e.key));
    // the previous index's answers, asked again once the update is done
    const sample = [...touched, ...Array.from({ length: 10 }, () => pick(seen))];
    const before = answers(index, sample);
    const sizeBefore = kind.size(index);
    stats.steps++;
    calls.length = 0;
    let updated: I | undefined;
    let thrown: unknown;
    try {
      updated = kind.update(index, removed, added, onDuplicate);
    } catch (err) {
      thrown = err;
    }
    const updateCalls = [...calls];
    calls.length = 0;
    let rebuilt: I | undefined;
    let rebuildThrown: unknown;
    const pairs: string[] = [];
    try {
      rebuilt = kind.build(after, withCallback ? (a, b) => void (b.owner === name && pairs.push(`${a.owner}|${b.owner}`)) : undefined);
    } catch (err) {
      rebuildThrown = err;
    }
    // the index updated from is untouched, whatever the update did
    assert.deepEqual(answers(index, sample), before, `${kind.name} step ${step}: the previous index answers as before`);
    assert.equal(kind.size(index), sizeBefore);
    if (rebuildThrown !== undefined) {
      // a duplicate without onDuplicate: refused the same way, naming the added entry's path
      assert.ok(thrown !== undefined, `${kind.name} step ${step}: the update refuses what a build refuses`);
      assert.equal((thrown as Error).message, (rebuildThrown as Error).message);
      assert.equal((thrown as { path?: string }).path, (rebuildThrown as { path?: string }).path);
      stats.refused++;
      continue;
    }
    assert.equal(thrown, undefined, `${kind.name} step ${step}: no throw where a build does not`);
    const mustRebuild = rebuildNeeded(list, after, removed, touched);
    assert.equal(updated === undefined, mustRebuild, `${kind.name} step ${step}: undefined exactly when the documented cases apply`);
    if (updated === undefined) {
      stats.rebuilds++;
      index = rebuilt!;
    } else {
      stats.updates++;
      // onDuplicate: the pairs a build reports whose second holder is the owner added (its old
      // entries are gone: every entry of that owner in `after` is an added one)
      stats.calls += updateCalls.length;
      assert.deepEqual(updateCalls.sort(), pairs.sort(), `${kind.name} step ${step}: onDuplicate for the new pairs, as a build calls it`);
      const check = step % 100 === 0 ? seen : sample;
      assert.deepEqual(answers(updated, check), answers(rebuilt!, check), `${kind.name} step ${step}: the update answers as a build over the same entries`);
      assert.equal(kind.size(updated), kind.size(rebuilt!), `${kind.name} step ${step}: size`);
      index = updated;
    }
    list = after;
    if (next === undefined) owners.delete(name);
    else owners.set(name, next);
  }
  // at the end, every key ever seen, at every time that matters
  const rebuilt = kind.build(list, onDuplicate);
  assert.deepEqual(answers(index, seen), answers(rebuilt, seen));
  return stats;
}

for (const kind of [CREDENTIALS, OWNERS] as Kind<unknown>[]) {
  test(`${kind.name}: 2 000 random updates (add, remove, replace, rotate with grace; keys reused across owners) answer as a build over the same entries, and leave the index they came from as it was`, () => {
    const strict = drive(kind, 18, false);
    const lenient = drive(kind, 7, true);
    // the run met every case: plain updates, refused duplicates, onDuplicate calls, rebuilds asked for
    assert.ok(strict.updates > 1_500, `${strict.updates} updates`);
    assert.ok(strict.refused > 10, `${strict.refused} duplicates refused`);
    assert.ok(strict.rebuilds > 0, `${strict.rebuilds} rebuilds asked for`);
    assert.ok(lenient.calls > 10, `${lenient.calls} onDuplicate calls`);
    assert.ok(lenient.rebuilds > 10 && lenient.rebuilds < 300, `${lenient.rebuilds} rebuilds asked for`);
  });
}

type Who = { readonly username: string };
const jack: Who = Object.freeze({ username: 'jack' });
const jill: Who = Object.freeze({ username: 'jill' });

test('credentialIndex.update: a rotated key of one consumer is one removed entry and two added (the new key, the old one in grace until `until`)', () => {
  const v1 = credentialIndex([
    { credential: 'jack-1', value: jack, owner: 'jack' },
    { credential: 'jill-1', value: jill, owner: 'jill' },
  ]);
  const v2 = v1.update({ removed: [{ credential: 'jack-1', owner: 'jack' }], added: [{ credential: 'jack-2', value: jack, owner: 'jack' }, { credential: 'jack-1', value: jack, owner: 'jack', until: 5_000 }] })!;
  assert.equal(v2.find('jack-2', 0), jack);
  assert.equal(v2.find('jack-1', 4_999), jack, 'in grace');
  assert.equal(v2.find('jack-1', 5_000), undefined, 'grace over at until');
  assert.equal(v2.find('jill-1', 0), jill);
  assert.equal(v2.size, 3);
  // the index it came from: as it was
  assert.equal(v1.find('jack-2', 0), undefined);
  assert.equal(v1.find('jack-1', 10_000), jack);
  assert.equal(v1.size, 2);
  // grace over: the entry removed
  const v3 = v2.update({ removed: [{ credential: 'jack-1', owner: 'jack', until: 5_000 }] })!;
  assert.equal(v3.find('jack-1', 0), undefined);
  assert.equal(v3.size, 2);
});

test('credentialIndex.update: a current key another consumer holds throws with the added path and changes nothing; with onDuplicate the key matches nobody; a rotated-out key never shadows a current one', () => {
  const v1 = credentialIndex([{ credential: 'k', value: jack, owner: 'jack' }]);
  assert.throws(
    () => v1.update({ added: [{ credential: 'k', value: jill, owner: 'jill', path: 'consumers[1].plugins.key-auth.key' }] }),
    (err: Error & { path?: string }) => err.message === 'consumers "jack" and "jill" have the same key; each key must identify one consumer' && err.path === 'consumers[1].plugins.key-auth.key',
  );
  assert.equal(v1.find('k', 0), jack);
  const pairs: string[] = [];
  const v2 = v1.update({ added: [{ credential: 'k', value: jill, owner: 'jill' }] }, { onDuplicate: (a, b) => pairs.push(`${a.owner}/${b.owner}/${a.credential === b.credential}`) })!;
  assert.deepEqual(pairs, ['jack/jill/true']);
  assert.equal(v2.find('k', 0), undefined);
  assert.equal(v2.size, 0);
  // jill's old key in grace, jack's current: jack's
  const v3 = v1.update({ added: [{ credential: 'k', value: jill, owner: 'jill', until: 9_000 }] })!;
  assert.equal(v3.find('k', 0), jack);
});

test('credentialIndex.update answers undefined (build again) for an entry it does not hold, a removal from a shared key, and a key only in grace of two owners', () => {
  const v1 = credentialIndex([{ credential: 'k', value: jack, owner: 'jack' }]);
  assert.equal(v1.update({ removed: [{ credential: 'k', owner: 'jill' }] }), undefined, 'not held by jill');
  assert.equal(v1.update({ removed: [{ credential: 'k', owner: 'jack', until: 5 }] }), undefined, 'jack holds it current, not in grace');
  assert.equal(v1.update({ removed: [{ credential: 'other', owner: 'jack' }] }), undefined, 'no such key');
  const shared = credentialIndex(
    [
      { credential: 'k', value: jack, owner: 'jack' },
      { credential: 'k', value: jill, owner: 'jill' },
    ],
    { onDuplicate: () => undefined },
  );
  assert.equal(shared.update({ removed: [{ credential: 'k', owner: 'jill' }] }), undefined);
  const grace = v1.update({ removed: [{ credential: 'k', owner: 'jack' }], added: [{ credential: 'k', value: jack, owner: 'jack', until: 10 }] })!;
  assert.equal(grace.find('k', 0), jack);
  assert.equal(grace.update({ added: [{ credential: 'k', value: jill, owner: 'jill', until: 20 }] }), undefined);
});

test('ownerIndex: the owner a key names with its entries, current first; updates share what they do not touch', () => {
  const a = { owner: 'jack', n: 1 };
  const b = { owner: 'jack', n: 2 };
  const c = { owner: 'jill', n: 3 };
  const v1 = ownerIndex([
    { key: 'alice', value: b, owner: 'jack', until: 50 },
    { key: 'alice', value: a, owner: 'jack' },
    { key: 'bob', value: c, owner: 'jill' },
  ]);
  assert.deepEqual(v1.get('alice')?.map((o) => [o.value, o.until]), [
    [a, Number.POSITIVE_INFINITY],
    [b, 50],
  ]);
  assert.equal(v1.get('carol'), undefined);
  const v2 = v1.update({ removed: [{ key: 'bob', owner: 'jill' }], added: [{ key: 'carol', value: c, owner: 'jill' }] })!;
  assert.equal(v2.get('bob'), undefined);
  assert.equal(v2.get('carol')?.[0].value, c);
  assert.equal(v2.get('alice'), v1.get('alice'), 'an untouched key: the same list, not a copy');
  assert.equal(v1.get('bob')?.[0].value, c);
});
