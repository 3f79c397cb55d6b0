// key-auth, basic-auth and jwt-auth updated by delta: after each of a few hundred random consumer
// changes (added, removed, replaced, rotated with grace; credentials reused across consumers),
// `updateConsumers` answers every credential ever used exactly as `indexConsumers` over the
// consumers in config order does, or hands the decision to it (undefined) — always where a full
// build would refuse the config. And their hooks read the index of the request's config
// (`ctx.consumerIndex`), not the one their route was created with.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type { ConsumerEntry, CreateServices, IndexServices, Plugin, RequestContext } from 'gatehouse-gateway/sdk';
import keyAuth from '../plugins/key-auth';
import basicAuth from '../plugins/basic-auth';
import jwtAuth from '../plugins/jwt-auth';
import { prng } from './helpers/prng';


/** One plugin as the driver sees it: its consumer config for a credential, and what its index answers. */
interface Subject {
  readonly plugin: Plugin;
  /** The consumer config of `owner` whose credential is `credential` (`version`: what else changes). */
  config(owner: string, credential: string, version: number): Record<string, unknown>;
  /** What a request presents for that config. */
  probe(config: Record<string, unknown>): unknown;
  /** What `index` answers to `probe` at `now`, comparable with deepEqual across builds. */
  answer(index: any, probe: any, now: number): unknown;
  /** The route config `create` gets (defaults applied) and a request context presenting `probe`. */
  readonly route: Record<string, unknown>;
  request(probe: any): Record<string, unknown>;
}

const KEY_AUTH: Subject = {
  plugin: keyAuth,
  config: (_owner, credential) => ({ key: credential }),
  probe: (c) => c.key,
  answer: (index, key, now) => index.find(key, now)?.username,
  route: { header: 'apikey', query: 'apikey', hide_credentials: false },
  request: (key) => ({ headers: { apikey: key }, query: '' }),
};

const BASIC_AUTH: Subject = {
  plugin: basicAuth,
  config: (owner, credential, version) => ({ username: credential, password: `pw-${owner}-${version}` }),
  probe: (c) => [c.username, c.password],
  answer: (index, [username, password], now) => index.find(username, password, now)?.username,
  route: { hide_credentials: false },
  request: ([username, password]) => ({ headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` }, query: '' }),
};

function hs256(key: string, secret: string): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ key })}`;
  return `${signed}.${createHmac('sha256', secret).update(signed).digest('base64url')}`;
}

const JWT_AUTH: Subject = {
  plugin: jwtAuth,
  config: (owner, credential, version) => ({ key: credential, secret: `hs-${owner}-${version}`, algorithm: 'HS256', base64_secret: false, lifetime_grace_period: version % 3 }),
  probe: (c) => [c.key, c.secret],
  // every verifier, in order: whose, its algorithm, leeway, grace and key material
  answer: (index, [key], now) => index.get(key)?.map((o: any) => [o.owner, o.value.who.username, o.value.alg, o.value.leeway, o.until, now < o.until, o.value.key.export().toString('hex')]),
  route: { header: 'authorization', query: 'jwt', cookie: 'jwt', key_claim_name: 'key', hide_credentials: false },
  request: ([key, secret]) => ({ headers: { authorization: `Bearer ${hs256(key, secret)}` }, query: '' }),
};

const SUBJECTS = [KEY_AUTH, BASIC_AUTH, JWT_AUTH];

/** What `indexConsumers` and `updateConsumers` get: nothing is a reference here, so a duplicate is a config error. */
function indexServices(excluded: string[]): IndexServices {
  return {
    exclude: (entry: ConsumerEntry, reason: string) => void excluded.push(`${entry.username}: ${reason}`),
    isReference: () => false,
    hasConsumer: () => true,
    clock: { now: () => 0 },
  } as unknown as IndexServices;
}

for (const subject of SUBJECTS) {
  const { plugin } = subject;
  test(`${plugin.name}: 400 random consumer changes applied by updateConsumers answer as indexConsumers over the consumers in config order; a change a build refuses is handed to indexConsumers`, () => {
    const random = prng(18);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(random() * a.length)];
    const excluded: string[] = [];
    const services = indexServices(excluded);
    const seen: string[] = [];
    const probes: unknown[] = [];
    let fresh = 0;
    let version = 0;
    let reuse = false;
    const credential = () => {
      // once started, one in ten is a credential seen before: another consumer's (current or in
      // grace), or its own again
      const c = reuse && random() < 0.1 ? pick(seen) : `cred-${fresh++}`;
      if (!seen.includes(c)) seen.push(c);
      return c;
    };
    const entry = (username: string, previous: ConsumerEntry['previous']): ConsumerEntry => {
      const config = subject.config(username, credential(), version++);
      probes.push(subject.probe(config));
      return Object.freeze({ username, config, previous, path: `consumers.${username}.plugins.${plugin.name}` });
    };
    let consumers: ConsumerEntry[] = [];
    for (let i = 0; i < 100; i++) consumers.push(entry(`c${i}`, []));
    let index = plugin.indexConsumers!(consumers, services);
    reuse = true;
    let now = 1_000_000;
    const stats = { updates: 0, rebuilds: 0, refused: 0 };
    const answers = (i: unknown, some: readonly unknown[]) => some.flatMap((p) => [now, now + 150, now + 1_000].map((t) => subject.answer(i, p, t)));
    for (let step = 0; step < 400; step++) {
      now += 10;
      const r = random();
      let removed: ConsumerEntry | undefined;
      let added: ConsumerEntry | undefined;
      if (r < 0.2 || consumers.length < 30) added = entry(`n${step}`, []);
      else {
        removed = pick(consumers);
        if (r < 0.35) added = undefined;
        else if (r < 0.55) added = entry(removed.username, []);
        else added = entry(removed.username, [{ config: removed.config, until: now + 20 + Math.floor(random() * 400) }, ...removed.previous.filter((p) => p.until > now)]);
      }
      // the config order: a replaced consumer keeps its place, a new one comes last
      const after = removed === undefined ? [...consumers, added!] : consumers.flatMap((c) => (c !== removed ? [c] : added ? [added] : []));
      const updated = plugin.updateConsumers!(index, { removed: removed ? [removed] : [], added: added ? [added] : [] }, services);
      let rebuilt: unknown;
      try {
        rebuilt = plugin.indexConsumers!(after, services);
      } catch {
        // a duplicate a full build refuses: updateConsumers left the decision to it
        assert.equal(updated, undefined, `${plugin.name} step ${step}: undefined where a build refuses the config`);
        stats.refused++;
        continue;
      }
      if (updated === undefined) {
        stats.rebuilds++;
        index = rebuilt;
      } else {
        stats.updates++;
        // every credential ever used now and then; otherwise those of the change and a sample
        const some = step % 20 === 0 ? probes : [removed && subject.probe(removed.config), ...probes.slice(-5), ...Array.from({ length: 20 }, () => pick(probes))].filter((p) => p !== undefined);
        assert.deepEqual(answers(updated, some), answers(rebuilt, some), `${plugin.name} step ${step}: updateConsumers answers as indexConsumers`);
        assert.equal((updated as { size: number }).size, (rebuilt as { size: number }).size);
        index = updated;
      }
      consumers = after;
    }
    assert.deepEqual(excluded, [], 'nothing is a reference: nothing left out');
    assert.ok(stats.updates > 250, `${stats.updates} updates`);
    assert.ok(stats.refused > 5, `${stats.refused} refused`);
    assert.deepEqual(answers(index, probes), answers(plugin.indexConsumers!(consumers, services), probes));
  });

  test(`${plugin.name}: a credential two consumers hold only in rotation grace is handed to indexConsumers (the first in config order names it); one held current by another consumer is not`, () => {
    const services = indexServices([]);
    const at = (username: string, credential: string, version: number, previous: ConsumerEntry['previous'] = []): ConsumerEntry => ({ username, config: subject.config(username, credential, version), previous, path: `consumers.${username}` });
    const jack = at('jack', 'shared', 1);
    const jill = at('jill', 'jill-1', 2);
    const v1 = plugin.indexConsumers!([jack, jill], services);
    // jack rotates away from it: in his grace
    const jack2 = at('jack', 'jack-2', 3, [{ config: jack.config, until: 5_000 }]);
    const v2 = plugin.updateConsumers!(v1, { removed: [jack], added: [jack2] }, services);
    assert.notEqual(v2, undefined);
    // jill takes it as current: hers, jack's grace shadowed
    const jill2 = at('jill', 'shared', 4);
    const v3 = plugin.updateConsumers!(v2, { removed: [jill], added: [jill2] }, services);
    assert.notEqual(v3, undefined);
    const full = plugin.indexConsumers!([jack2, jill2], services);
    for (const c of [jack, jack2, jill2]) assert.deepEqual(subject.answer(v3, subject.probe(c.config), 0), subject.answer(full, subject.probe(c.config), 0));
    assert.deepEqual(subject.answer(v3, subject.probe(jill2.config), 0), subject.answer(plugin.indexConsumers!([jill2], services), subject.probe(jill2.config), 0), 'jill holds it');
    // jill rotates away too: only in grace, of two consumers
    const jill3 = at('jill', 'jill-3', 5, [{ config: jill2.config, until: 6_000 }]);
    assert.equal(plugin.updateConsumers!(v3, { removed: [jill2], added: [jill3] }, services), undefined);
    // the full build: jack's, the first in config order
    assert.deepEqual(subject.answer(plugin.indexConsumers!([jack2, jill3], services), subject.probe(jack.config), 0), subject.answer(plugin.indexConsumers!([jack2], services), subject.probe(jack.config), 0));
  });

  test(`${plugin.name}: the hook reads the index of the request's config (ctx.consumerIndex), and the one it was created with only when the request has none`, () => {
    const services = indexServices([]);
    const jack: ConsumerEntry = { username: 'jack', config: subject.config('jack', 'jack-credential', 1), previous: [], path: 'consumers.jack' };
    const empty = plugin.indexConsumers!([], services);
    const withJack = plugin.indexConsumers!([jack], services);
    const run = (created: unknown, requested: unknown) => {
      const seen: { consumer?: string; status?: number } = {};
      const hooks = plugin.create(subject.route, { consumers: created, clock: { now: () => 1_000 }, hasConsumer: () => true } as unknown as CreateServices);
      const ctx = {
        ...subject.request(subject.probe(jack.config)),
        consumerIndex: (name: string) => (name === plugin.name ? requested : undefined),
        setConsumer: (c: { username: string }) => void (seen.consumer = c.username),
        respond: (status: number) => void (seen.status = status),
        setUpstreamHeader: () => undefined,
      } as unknown as RequestContext;
      void hooks.rewrite!(ctx);
      return seen;
    };
    assert.deepEqual(run(empty, withJack), { consumer: 'jack' }, 'created before jack existed; the request config has him');
    assert.deepEqual(run(withJack, empty), { status: 401 }, 'created with jack; the request config no longer has him');
    assert.deepEqual(run(withJack, undefined), { consumer: 'jack' }, 'no index in the request: the one it was created with');
  });
}
