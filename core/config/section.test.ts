// Persistent sections against plain arrays, and configs that carry them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prng } from '../../test/helpers/prng';
import { Section, sectionOf, withSections } from './section';
import type { GatewayConfig } from './types';

test('a section changed by replacements and appends reads like the array changed the same way; every older section is unchanged', () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rnd = prng(seed);
    const start = Array.from({ length: Math.floor(rnd() * 3000) }, (_, i) => ({ i }));
    const copy = [...start];
    let model: unknown[] = [...start];
    let s: Section<unknown> = Section.of(start);
    const history: Array<[Section<unknown>, unknown[]]> = [];
    for (let step = 0; step < 30; step++) {
      history.push([s, model]);
      const replaced = new Map<number, unknown>();
      for (let k = Math.floor(rnd() * 4); k > 0 && model.length; k--) replaced.set(Math.floor(rnd() * model.length), { step, k });
      const added = Array.from({ length: Math.floor(rnd() * 3) * (rnd() < 0.1 ? 300 : 1) }, (_, k) => ({ step, added: k }));
      model = [...model];
      for (const [i, x] of replaced) model[i] = x;
      model.push(...added);
      s = s.with(replaced).concat(added);
      assert.equal(s.length, model.length, `seed ${seed} step ${step}`);
      for (const i of [0, model.length - 1, Math.floor(rnd() * model.length)]) if (i >= 0) assert.equal(s.get(i), model[i]);
    }
    for (const [old, m] of [...history, [s, model] as [Section<unknown>, unknown[]]]) assert.deepEqual(old.toArray(), m, `seed ${seed}`);
    assert.deepEqual(start, copy, 'the list a section was made of is untouched');
  }
});

test("a section made by a change shows a frozen array, made once; one made of a list shows that list as it is", () => {
  const list = [{ a: 1 }, { a: 2 }];
  const of = Section.of(list);
  assert.equal(of.toArray(), list);
  assert.equal(Object.isFrozen(list), false);
  const next = of.with(new Map([[1, { a: 3 }]]));
  assert.equal(next.toArray(), next.toArray());
  assert.ok(Object.isFrozen(next.toArray()));
  assert.deepEqual(next.toArray(), [{ a: 1 }, { a: 3 }]);
  assert.ok(Object.isFrozen(Section.own([1, 2]).toArray()));
});

test('a config with changed sections reads, spreads and serialises as the same config with those lists; the rest is the very same', () => {
  const config = Object.freeze({ gateway: { listen: 'x' }, routes: Object.freeze([{ id: 'r1' }]), consumers: Object.freeze([{ username: 'a' }, { username: 'b' }]), upstreams: [], secrets: [] }) as unknown as GatewayConfig;
  const consumers = sectionOf(config, 'consumers').with(new Map([[1, { username: 'b', desc: 'new' }]])).concat([{ username: 'c' }]);
  const next = withSections(config, new Map([['consumers', consumers]]));
  assert.ok(Object.isFrozen(next));
  assert.equal(next.gateway, config.gateway);
  assert.equal(next.routes, config.routes);
  assert.deepEqual(next.consumers, [{ username: 'a' }, { username: 'b', desc: 'new' }, { username: 'c' }]);
  assert.equal(next.consumers, next.consumers, 'one array, made once');
  assert.deepEqual(JSON.parse(JSON.stringify(next)), { ...JSON.parse(JSON.stringify(config)), consumers: [{ username: 'a' }, { username: 'b', desc: 'new' }, { username: 'c' }] });
  assert.deepEqual(Object.keys(next), Object.keys(config));
  assert.equal(sectionOf(next, 'consumers'), consumers, 'the config carries its section');
  // a config made from that one carries both its own and the earlier change's sections
  const routes = sectionOf(next, 'routes').concat([{ id: 'r2' }]);
  const third = withSections(next, new Map([['routes', routes]]));
  assert.equal(sectionOf(third, 'consumers'), consumers);
  assert.deepEqual(third.routes, [{ id: 'r1' }, { id: 'r2' }]);
  assert.deepEqual(next.routes, [{ id: 'r1' }]);
});
