// Validating a change against the live config (validate-changes.ts): on random documents and random
// batches of changes (valid and not), the result equals what validating the whole changed document
// gives (validateConfig, then the reference policy): the same normalised config and reference sites,
// or the same issues at the same paths in the same order. Unchanged items stay the very objects of
// the live config.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import keyAuth from '../../plugins/key-auth';
import basicAuth from '../../plugins/basic-auth';
import jwtAuth from '../../plugins/jwt-auth';
import limitCount from '../../plugins/limit-count';
import proxyRewrite from '../../plugins/proxy-rewrite';
import envProvider from '../../providers/env';
import vaultProvider from '../../providers/vault';
import type { DataChange, DataKind } from '../contracts';
import type { ConfigIssue } from '../errors';
import { createRegistry } from './registry';
import { checkSecretPolicy, type PolicyContext } from './secret-policy';
import { validateConfig, type ValidatedConfig } from './validate';
import { validateChanges, validateChangesOrThrow, type ChangeValidation } from './validate-changes';
import { prng } from '../../test/helpers/prng';
import { makeTestCa, type IssuedPair } from '../../test/helpers/tls-pki';

const registry = createRegistry([keyAuth, basicAuth, jwtAuth, limitCount, proxyRewrite], [envProvider, vaultProvider]);
const ctx: PolicyContext = { baseDir: '/srv/gatehouse', protectedFiles: [] };

type Raw = Record<string, any>;
type Doc = { routes: Raw[]; upstreams: Raw[]; consumers: Raw[]; secrets: Raw[]; ssls?: Raw[]; gateway?: Raw };

/** Real certificates and keys (openssl, tls-pki.ts) for the SSL resources of the random documents: literal pairs are parsed and matched. */
let pki: { pairs: IssuedPair[]; ca: string } | undefined;
function pairs(): { pairs: IssuedPair[]; ca: string } {
  if (!pki) {
    const ca = makeTestCa('validate-changes CA');
    pki = { pairs: [0, 1, 2].map((k) => ca.issue(`p${k}`, { names: [`p${k}.example.com`], keyType: 'ec' })), ca: ca.cert };
  }
  return pki;
}
/** Server names SSL resources of the random documents take (few: changes often take a name another resource holds, or free one). */
const NAMES = ['a.example.com', 'b.example.com', '*.example.com', 'c.test', '*.c.test', 'd.example.com', 'e.test'];

/** The settings every document shares: a reference policy, the admin key a data section may not name, one Vault. */
function settings(): Raw {
  return {
    admin: { key: '$env://GH_ADMIN_KEY' },
    secret_policy: { env: ['GH_*'] },
  };
}
const VAULT = { id: 'vault/prod', uri: 'https://vault.example.com:8200', prefix: 'kv', token: '$env://GH_VAULT_TOKEN' };

/** The full path: the whole document validated, then the policy (as the snapshot builder runs them). */
function full(doc: Doc): ValidatedConfig | { issues: ConfigIssue[] } {
  const v = validateConfig({ ...settings(), ...doc }, registry);
  if (v.issues) return { issues: v.issues };
  const p = checkSecretPolicy(v.config, v.refs, registry, ctx);
  if (p.issues.length) return { issues: p.issues };
  return { ...v, credentials: p.uses };
}

class Gen {
  private readonly rnd: () => number;
  private n = 0;
  constructor(seed: number) {
    this.rnd = prng(seed);
  }
  chance(p: number): boolean {
    return this.rnd() < p;
  }
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  fresh(prefix: string): string {
    return `${prefix}${++this.n}`;
  }

  upstream(id: string | number, bad: boolean): Raw {
    const u: Raw = { id, nodes: this.chance(0.5) ? { [`127.0.0.${1 + this.int(3)}:${8000 + this.int(3)}`]: 1 + this.int(3) } : [{ host: `10.0.0.${1 + this.int(3)}`, port: 80 + this.int(3), weight: this.int(3) + 1 }] };
    if (this.chance(0.3)) u.type = this.pick(['roundrobin', 'least_conn']);
    if (this.chance(0.2)) u.timeout = { connect: 1 + this.int(5) };
    if (!bad) return u;
    switch (this.int(6)) {
      case 0:
        return { ...u, nodes: {} }; // schema
      case 5:
        return { ...u, nodes: null }; // schema, and a cross-check that throws on it
      case 1:
        return { ...u, type: 'chash' }; // cross-check: key
      case 2:
        return { ...u, nodes: { '127.0.0.1:80': 1, '127.0.0.1': 2 } }; // the same node twice
      case 3:
        return { ...u, scheme: 'ftp' }; // schema enum
      default:
        return { ...u, nodes: { 'a_b:80': 1 } }; // schema pattern
    }
  }

  route(id: string | number, upstreams: readonly Raw[], bad: boolean): Raw {
    const r: Raw = { id };
    if (this.chance(0.5)) r.uri = `/r${this.int(50)}${this.chance(0.3) ? '/*' : ''}`;
    else r.uris = [`/a${this.int(50)}`, `/b${this.int(50)}`];
    if (this.chance(0.3)) r.host = `Host${this.int(9)}.Example.com`;
    else if (this.chance(0.3)) r.hosts = ['a.example.com', '*.B.example.com'];
    if (upstreams.length && this.chance(0.6)) r.upstream_id = this.chance(0.5) ? String(this.pick(upstreams).id) : this.pick(upstreams).id;
    else r.upstream = this.upstream('x', false), delete r.upstream.id;
    const plugins: Raw = {};
    if (this.chance(0.4)) plugins['key-auth'] = {};
    if (this.chance(0.3)) plugins['limit-count'] = { count: 1 + this.int(100), time_window: 60 };
    if (this.chance(0.4)) plugins['proxy-rewrite'] = { uri: '/up', headers: { set: { 'X-Token': this.pick(['$env://GH_UP_TOKEN', '$secret://vault/prod/up/token', 'plain']) } } };
    if (Object.keys(plugins).length || this.chance(0.5)) r.plugins = plugins;
    if (!bad) return r;
    switch (this.int(10)) {
      case 0:
        return { ...r, uri: 'no-slash', uris: undefined }; // schema pattern
      case 1:
        return { ...r, uri: '/a', uris: ['/b'] }; // cross-check
      case 2:
        return { ...r, upstream: undefined, upstream_id: 'missing' }; // unknown upstream
      case 3:
        return { ...r, plugins: { nope: {} } }; // unknown plugin
      case 4:
        return { ...r, plugins: { 'limit-count': { count: 0, time_window: 60 } } }; // the plugin's schema
      case 5:
        return { ...r, uri: undefined, uris: 'x' }; // schema, and a cross-check that throws on it
      case 6:
        return { ...r, plugins: { 'proxy-rewrite': { headers: { set: { 'X-A': '$secret://vault/nope/a/b' } } } } }; // unknown resource
      case 7:
        return { ...r, plugins: { 'proxy-rewrite': { headers: { set: { 'X-A': '$env://HOME' } } } } }; // the policy
      case 8:
        return { ...r, uri: '/a*b', uris: undefined }; // "*" not at the end
      default:
        return { ...r, status: 7, plugins: 'x' }; // two schema issues
    }
  }

  consumer(username: string, bad: boolean): unknown {
    const plugins: Raw = {};
    const which = this.int(4);
    if (which === 0) plugins['key-auth'] = { key: this.pick([`k-${username}-${this.int(1000)}`, `$env://GH_KEY_${username}`, `$secret://vault/prod/keys/${username}`]) };
    if (which === 1) plugins['basic-auth'] = { username, password: this.pick(['pw', '$env://GH_PW']) };
    if (which === 2) plugins['jwt-auth'] = { key: `jwt-${username}`, secret: 'a-long-enough-secret' };
    const k: Raw = { username, plugins };
    if (this.chance(0.2)) k.desc = 'a consumer';
    if (!bad) return k;
    switch (this.int(8)) {
      case 0:
        return { username: 'bad name!', plugins }; // schema pattern
      case 1:
        return { username, plugins: { 'key-auth': {} } }; // the plugin's consumer schema
      case 2:
        return { username, plugins: { nope: {} } };
      case 3:
        return { username, plugins: { 'key-auth': { key: '$env://GH_ADMIN_KEY' } } }; // the gateway's own credential
      case 4:
        return { username, plugins: { 'key-auth': { key: '$secret://vault/prod' } } }; // missing segments
      case 5:
        return 'not an object'; // schema, and cross-checks that throw on it
      case 6:
        return { username, plugins: 'x' };
      default:
        return { username, plugins: { 'key-auth': { key: '$env://PATH' } } }; // the policy
    }
  }

  ssl(id: string | number, names: readonly string[], bad: boolean): Raw {
    const { pairs: ps, ca } = pairs();
    const p = this.pick(ps);
    const s: Raw = { id, cert: p.cert, key: this.pick([p.key, p.key, '$env://GH_TLS_KEY', '$secret://vault/prod/tls/key']), snis: names.map((n) => (this.chance(0.1) ? n.toUpperCase() : n)) };
    if (this.chance(0.2)) {
      const q = this.pick(ps);
      s.certs = [q.cert];
      s.keys = [q.key];
    }
    if (this.chance(0.15)) s.status = 0;
    else if (this.chance(0.1)) s.type = 'client';
    if (this.chance(0.1)) s.client = { ca: this.pick([ca, '$secret://vault/prod/tls/ca']) };
    if (this.chance(0.1)) s.labels = { team: 'edge' };
    if (!bad) return s;
    switch (this.int(10)) {
      case 0:
        return { ...s, key: ps[(ps.indexOf(p) + 1) % ps.length].key }; // a key of another certificate
      case 1:
        return { ...s, certs: [p.cert], keys: [] }; // one key per certificate
      case 2:
        return { ...s, snis: ['bad_name.example.com'] }; // not a host name
      case 3:
        return { ...s, snis: [names[0] ?? 'x.test', names[0] ?? 'x.test'] }; // listed twice
      case 4:
        return { ...s, cert: 'not a certificate' };
      case 5:
        return { ...s, snis: [] }; // schema
      case 6:
        return { ...s, snis: 'x' }; // schema, and a cross-check that throws on it
      case 7:
        return { ...s, key: '$env://HOME' }; // the policy
      case 8:
        return { ...s, cert: '$secret://vault/nope/a/b' }; // unknown resource
      default:
        return { ...s, status: 3, client: { depth: 1 } }; // two schema issues
    }
  }

  /** 1-2 server names: one another resource of `doc` lists (taken) now and then, else a fresh or pooled one. */
  names(doc?: Doc): string[] {
    const held = (doc?.ssls ?? []).flatMap((x) => (Array.isArray(x?.snis) ? (x.snis as string[]) : []));
    const one = () => (held.length && this.chance(0.3) ? this.pick(held) : this.chance(0.5) ? this.pick(NAMES) : `${this.fresh('n')}.example.org`);
    const out = new Set([one()]);
    if (this.chance(0.3)) out.add(one());
    return [...out].map((n) => n.toLowerCase());
  }

  document(): Doc {
    const upstreams = Array.from({ length: 1 + this.int(4) }, (_, i) => this.upstream(this.chance(0.3) ? 1000 + i : this.fresh('u'), false));
    return {
      upstreams,
      routes: Array.from({ length: this.int(6) }, () => this.route(this.chance(0.2) ? 2000 + this.int(1000) : this.fresh('r'), upstreams, false)),
      consumers: Array.from({ length: this.int(8) }, () => this.consumer(this.fresh('c'), false) as Raw),
      secrets: [VAULT],
      ...this.ssls(),
    };
  }

  /** SSL resources with names of their own (a valid document), and now and then a fallback name one of them serves. */
  ssls(): { ssls: Raw[]; gateway?: Raw } {
    const ssls = Array.from({ length: this.int(5) }, (_, i) => this.ssl(this.chance(0.3) ? 3000 + i : this.fresh('s'), [`${this.fresh('own')}.example.org`, ...(this.chance(0.3) ? [`*.${this.fresh('w')}.example.org`] : [])], false));
    const servedOne = ssls.find((x) => x.status !== 0 && x.type !== 'client');
    if (!servedOne || this.chance(0.3)) return { ssls };
    const name = (servedOne.snis as string[])[0];
    return { ssls, gateway: { tls: { fallback_sni: this.chance(0.3) ? name.toUpperCase() : name } } };
  }
}

const idOf = (kind: DataKind, item: any): string => String(kind === 'consumers' ? item?.username : item?.id);

/** Apply changes to the raw document as the Admin API's document operations do: replace in place, append, splice. */
function apply(doc: Doc, changes: readonly DataChange[]): Doc {
  const next: Doc = { routes: [...doc.routes], upstreams: [...doc.upstreams], consumers: [...doc.consumers], secrets: [...doc.secrets], ssls: [...(doc.ssls ?? [])], ...(doc.gateway ? { gateway: doc.gateway } : {}) };
  for (const c of changes) {
    const list = next[c.kind]! as unknown[];
    const i = c.before === undefined ? -1 : list.findIndex((x) => idOf(c.kind, x) === c.id);
    if (c.after === undefined) list.splice(i, 1);
    else if (i === -1) list.push(c.after);
    else list[i] = c.after;
  }
  return next;
}

/** An SSL resource enabled or disabled, its names kept (a disabled one frees them; enabling takes them back, perhaps from another). */
function flip(s: Raw): Raw {
  return { ...s, status: s.status === 0 ? 1 : 0 };
}

/** A random batch of 1-4 changes to the document, each valid or not. */
function batch(g: Gen, doc: Doc): DataChange[] {
  const changes: DataChange[] = [];
  let cur = doc;
  for (let n = 1 + g.int(g.chance(0.2) ? 40 : 4); n > 0; n--) {
    const kind = g.pick(['routes', 'upstreams', 'consumers', 'consumers', 'ssls', 'ssls'] as const);
    // what a later change of the batch names has an id (a change names its resource by it)
    const list = ((cur[kind] ?? []) as Raw[]).filter((x) => idOf(kind, x) !== 'undefined');
    const bad = g.chance(0.15);
    const op = list.length === 0 ? 0 : g.int(kind === 'upstreams' ? 4 : 3);
    let change: DataChange;
    const make = (id: string): unknown => (kind === 'routes' ? g.route(id, cur.upstreams, bad) : kind === 'upstreams' ? g.upstream(id, bad) : kind === 'ssls' ? g.ssl(id, g.names(cur), bad) : g.consumer(id, bad));
    if (op === 0) {
      // a create: a new id, now and then one that exists already (a duplicate)
      const id = list.length && g.chance(0.1) ? idOf(kind, g.pick(list)) : g.fresh(kind[0]);
      change = { kind, id, after: make(id) as Raw };
    } else if (op === 1 || op === 3) {
      const before = g.pick(list);
      const id = idOf(kind, before);
      // now and then a consumer renamed in place (a store may report one)
      const after = kind === 'consumers' && g.chance(0.05) ? g.consumer(g.fresh('renamed'), bad) : kind === 'ssls' && g.chance(0.3) ? flip(before) : make(id);
      change = { kind, id, before, after: after as Raw };
    } else {
      const before = g.pick(list);
      change = { kind, id: idOf(kind, before), before };
    }
    changes.push(change);
    cur = apply(cur, [change]);
  }
  return changes;
}

function assertDeepFrozen(v: unknown, path = ''): void {
  if (v === null || typeof v !== 'object') return;
  assert.ok(Object.isFrozen(v), `${path} is not frozen`);
  for (const [k, x] of Object.entries(v)) assertDeepFrozen(x, `${path}.${k}`);
}

const lines = (issues: readonly ConfigIssue[]) => issues.map((i) => `${i.path}: ${i.message}`);

/** validateChanges against the full path on the changed document; returns the new live state when the change is valid. */
function compare(live: ValidatedConfig, doc: Doc, changes: readonly DataChange[], label: string): { live: ValidatedConfig; doc: Doc; outcome: 'valid' | 'issues' | 'full' | 'client' } {
  const nextDoc = apply(doc, changes);
  const expected = full(nextDoc);
  const actual: ChangeValidation = validateChanges(live, changes, registry, ctx);
  // only a batch naming an id that an earlier change of it gave to two items is left to the full path
  let held = doc;
  let ambiguous = false;
  for (const c of changes) {
    ambiguous ||= c.before !== undefined && ((held[c.kind] ?? []) as unknown[]).filter((x) => idOf(c.kind, x) === c.id).length > 1;
    held = apply(held, [c]);
  }
  // ... and those writing an SSL resource of type client (an upstream's tls.client_cert_id may name it)
  const client = changes.some((c) => c.kind === 'ssls' && [c.before, c.after].some((x) => (x as Raw | undefined)?.type === 'client'));
  assert.equal(actual.full === true, ambiguous || client, `${label}: ${actual.full ? actual.why : 'not full'}`);
  if (actual.full) return { live, doc, outcome: ambiguous ? 'full' : 'client' };
  if (expected.issues) {
    assert.ok(actual.issues, `${label}: expected issues ${JSON.stringify(lines(expected.issues))}`);
    assert.deepEqual(lines(actual.issues), lines(expected.issues), label);
    return { live, doc, outcome: 'issues' };
  }
  assert.equal(actual.issues, undefined, `${label}: unexpected issues ${JSON.stringify(actual.issues && lines(actual.issues))}`);
  assert.deepEqual(actual.config, expected.config, label);
  assert.deepEqual(actual.refs, expected.refs, label);
  assert.equal(actual.credentials, live.credentials, `${label}: the credentials stay the live ones`);
  assertDeepFrozen(actual.config, label);
  // every item not written by the batch is the live config's very object
  for (const kind of ['routes', 'upstreams', 'consumers', 'ssls'] as const) {
    const was = new Set<unknown>(live.config[kind]);
    const written = changes.filter((c) => c.kind === kind && c.after !== undefined).length;
    const other = actual.config[kind].filter((x) => !was.has(x)).length;
    assert.ok(other <= written, `${label}: ${other} ${kind} are new objects, ${written} were written`);
    if (!changes.some((c) => c.kind === kind)) assert.equal(actual.config[kind], live.config[kind], `${label}: ${kind} untouched`);
  }
  return { live: actual, doc: nextDoc, outcome: 'valid' };
}

describe('validateChanges', () => {
  test('random documents and random batches of changes: the same result as validating the whole changed document', () => {
    const counts = { valid: 0, issues: 0, full: 0, client: 0 };
    /** Batches writing SSL resources, by outcome, and the SSL issues among them (taken names, the fallback). */
    const ssl = { valid: 0, issues: 0, taken: 0, fallback: 0 };
    for (let seed = 1; seed <= 80; seed++) {
      const g = new Gen(seed);
      let doc = g.document();
      const first = full(doc);
      assert.equal(first.issues, undefined, `seed ${seed}: ${JSON.stringify(first.issues)}`);
      let live = first as ValidatedConfig;
      for (let step = 0; step < 25; step++) {
        const changes = batch(g, doc);
        const r = compare(live, doc, changes, `seed ${seed} step ${step}`);
        counts[r.outcome]++;
        if (changes.some((c) => c.kind === 'ssls') && (r.outcome === 'valid' || r.outcome === 'issues')) {
          ssl[r.outcome]++;
          const issues = r.outcome === 'issues' ? lines((validateChanges(live, changes, registry, ctx) as { issues: ConfigIssue[] }).issues) : [];
          if (issues.some((l) => l.includes('is already served by SSL resource'))) ssl.taken++;
          if (issues.some((l) => l.startsWith('gateway.tls.fallback_sni'))) ssl.fallback++;
        }
        ({ live, doc } = r);
      }
    }
    // the batches exercise both outcomes; the full path is left only the batches naming an id they made ambiguous
    assert.ok(counts.valid > 600 && counts.issues > 400 && counts.full < counts.valid / 5, JSON.stringify(counts));
    assert.ok(ssl.valid > 100 && ssl.issues > 100 && ssl.taken > 20 && ssl.fallback > 5, JSON.stringify(ssl));
  });

  test('unchanged items keep their identity; the changed one is the normalised, frozen new item', () => {
    const doc: Doc = {
      upstreams: [{ id: 1, nodes: { '127.0.0.1:80': 1 } }],
      routes: [{ id: 'a', uri: '/a', upstream_id: 1 }, { id: 'b', uri: '/b', upstream_id: '1' }],
      consumers: [{ username: 'x' }, { username: 'y' }, { username: 'z' }],
      secrets: [],
    };
    const live = full(doc) as ValidatedConfig;
    const r = validateChanges(live, [{ kind: 'consumers', id: 'y', before: doc.consumers[1], after: { username: 'y', desc: 'new', plugins: { 'key-auth': { key: 'k' } } } }], registry, ctx);
    assert.ok(r.config);
    assert.equal(r.config.consumers[0], live.config.consumers[0]);
    assert.equal(r.config.consumers[2], live.config.consumers[2]);
    assert.deepEqual(r.config.consumers[1], { username: 'y', desc: 'new', plugins: { 'key-auth': { key: 'k' } } });
    assert.ok(Object.isFrozen(r.config.consumers[1]) && Object.isFrozen(r.config.consumers[1].plugins));
    assert.equal(r.config.routes, live.config.routes);
    assert.equal(r.config.upstreams, live.config.upstreams);
    assert.equal(r.config.gateway, live.config.gateway);
  });

  test('a deleted upstream a route still names: the issue the whole document gives, at the route', () => {
    const doc: Doc = {
      upstreams: [{ id: 'u1', nodes: { '127.0.0.1:80': 1 } }, { id: 'u2', nodes: { '127.0.0.1:81': 1 } }],
      routes: [{ id: 'a', uri: '/a', upstream_id: 'u1' }, { id: 'b', uri: '/b', upstream_id: 'u2' }, { id: 'c', uri: '/c', upstream_id: 'u2' }],
      consumers: [],
      secrets: [],
    };
    const live = full(doc) as ValidatedConfig;
    const changes: DataChange[] = [{ kind: 'upstreams', id: 'u2', before: doc.upstreams[1] }];
    const r = validateChanges(live, changes, registry, ctx);
    assert.deepEqual(lines(r.issues!), ['routes[1].upstream_id: refers to unknown upstream "u2"', 'routes[2].upstream_id: refers to unknown upstream "u2"']);
    assert.deepEqual(lines(r.issues!), lines(full(apply(doc, changes)).issues!));
  });

  test('a changed item whose checks throw (a shape its schema refused): nothing after it is checked, as in the whole document', () => {
    const doc: Doc = {
      upstreams: [{ id: 'u1', nodes: { '127.0.0.1:80': 1 } }, { id: 'u2', nodes: { '127.0.0.1:81': 1 } }],
      routes: [{ id: 'a', uri: '/a', upstream_id: 'u2' }],
      consumers: [],
      secrets: [],
    };
    const live = full(doc) as ValidatedConfig;
    const changes: DataChange[] = [
      { kind: 'upstreams', id: 'u2', before: doc.upstreams[1] },
      { kind: 'upstreams', id: 'u1', before: doc.upstreams[0], after: { id: 'u1', nodes: null } },
    ];
    const expected = ['upstreams[0].nodes: must be an object or an array'];
    assert.deepEqual(lines(full(apply(doc, changes)).issues!), expected);
    assert.deepEqual(lines(validateChanges(live, changes, registry, ctx).issues!), expected);
  });

  test('a duplicate username, created or taken by a rename: the issue at the later one, as the whole document gives it', () => {
    const doc: Doc = { upstreams: [], routes: [], consumers: [{ username: 'x' }, { username: 'y' }, { username: 'z' }], secrets: [] };
    const live = full(doc) as ValidatedConfig;
    const create: DataChange[] = [{ kind: 'consumers', id: 'y', after: { username: 'y' } }];
    assert.deepEqual(lines(validateChanges(live, create, registry, ctx).issues!), ['consumers[3].username: duplicate consumer "y"']);
    assert.deepEqual(lines(full(apply(doc, create)).issues!), ['consumers[3].username: duplicate consumer "y"']);
    // x renamed to z: the unchanged z (after it) is the duplicate
    const rename: DataChange[] = [{ kind: 'consumers', id: 'x', before: doc.consumers[0], after: { username: 'z' } }];
    assert.deepEqual(lines(validateChanges(live, rename, registry, ctx).issues!), ['consumers[2].username: duplicate consumer "z"']);
    assert.deepEqual(lines(full(apply(doc, rename)).issues!), ['consumers[2].username: duplicate consumer "z"']);
  });

  test('deleting an item moves the reference sites after it to their new paths; the others are the live sites', () => {
    const doc: Doc = {
      upstreams: [],
      routes: [],
      consumers: ['a', 'b', 'c', 'd'].map((u) => ({ username: u, plugins: { 'key-auth': { key: `$env://GH_${u.toUpperCase()}` } } })),
      secrets: [],
    };
    const live = full(doc) as ValidatedConfig;
    const changes: DataChange[] = [{ kind: 'consumers', id: 'b', before: doc.consumers[1] }];
    const r = validateChanges(live, changes, registry, ctx);
    assert.ok(r.config);
    assert.deepEqual(
      r.refs.map((s) => `${s.path} ${s.ref.text}`),
      ['consumers[0].plugins.key-auth.key $env://GH_A', 'consumers[1].plugins.key-auth.key $env://GH_C', 'consumers[2].plugins.key-auth.key $env://GH_D', 'admin.key $env://GH_ADMIN_KEY'],
    );
    assert.equal(r.refs[0], live.refs[0]);
    assert.equal(r.refs[3], live.refs[4]);
  });

  test('SSL resources: a delete, a status flip, names freed and taken, the fallback losing its resource: the whole document\'s issues, the live objects kept', () => {
    const { pairs: [p0, p1] } = pairs();
    const ssl = (id: string, snis: string[], more: Raw = {}): Raw => ({ id, cert: p0.cert, key: p0.key, snis, ...more });
    const doc: Doc = {
      upstreams: [],
      routes: [],
      consumers: [],
      secrets: [VAULT],
      ssls: [ssl('a', ['a.example.com', '*.example.com']), ssl('b', ['b.example.com'], { status: 0 }), ssl('c', ['c.example.com'], { key: '$secret://vault/prod/tls/c' }), ssl('d', ['b.example.com'])],
      gateway: { tls: { fallback_sni: 'A.example.com' } },
    };
    const live = full(doc) as ValidatedConfig;
    assert.equal(live.issues, undefined);
    const check = (changes: DataChange[], expected: string[] | 'valid') => {
      const want = full(apply(doc, changes));
      const got = validateChanges(live, changes, registry, ctx);
      assert.equal(got.full, undefined, 'an SSL write is validated on its own');
      if (expected === 'valid') {
        assert.equal(want.issues, undefined);
        assert.equal(got.issues, undefined, JSON.stringify(got.issues));
        assert.deepEqual(got.config, (want as ValidatedConfig).config);
        assert.deepEqual(got.refs, (want as ValidatedConfig).refs);
        return got as ValidatedConfig;
      }
      assert.deepEqual(lines(want.issues!), expected);
      assert.deepEqual(lines(got.issues!), expected);
      return undefined;
    };
    const [a, b, c, d] = doc.ssls!;
    // b enabled: it takes b.example.com back from d, an unchanged resource after it, which gets the issue
    check([{ kind: 'ssls', id: 'b', before: b, after: flip(b) }], ['ssls[3].snis[0]: "b.example.com" is already served by SSL resource "b" (ssls[1]): a name has one SSL resource']);
    // the fallback's resource deleted, or disabled, or its name dropped
    const lost = ['gateway.tls.fallback_sni: "a.example.com" is not a name an enabled server SSL resource serves (ssls[*].snis)'];
    check([{ kind: 'ssls', id: 'a', before: a }], lost);
    check([{ kind: 'ssls', id: 'a', before: a, after: flip(a) }], lost);
    check([{ kind: 'ssls', id: 'a', before: a, after: ssl('a', ['x.example.com']) }], lost);
    // ... while a wildcard of another resource still covers it: valid
    check([{ kind: 'ssls', id: 'a', before: a, after: ssl('a', ['a.example.com']) }], 'valid');
    // d deleted: c's reference site moves from nowhere (it is before d), d's name is free for b
    const v = check([{ kind: 'ssls', id: 'd', before: d }, { kind: 'ssls', id: 'b', before: b, after: flip(b) }], 'valid')!;
    assert.equal(v.config.ssls[0], live.config.ssls[0], 'an unchanged resource is the live object');
    assert.equal(v.config.ssls[2], live.config.ssls[2]);
    // a deleted resource before one with a reference: the site is re-pathed
    const moved = check([{ kind: 'ssls', id: 'a', before: a, after: undefined }, { kind: 'ssls', id: 'x', after: ssl('x', ['a.example.com']) }], 'valid')!;
    assert.deepEqual(moved.refs.filter((r) => r.path.startsWith('ssls')).map((r) => r.path), ['ssls[1].key']);
    // a created one with a taken name, an id held twice, a key of another certificate, a reference to an unknown resource
    check([{ kind: 'ssls', id: 'e', after: ssl('e', ['c.example.com']) }], ['ssls[4].snis[0]: "c.example.com" is already served by SSL resource "c" (ssls[2]): a name has one SSL resource']);
    check([{ kind: 'ssls', id: 'c', after: ssl('c', ['e.example.com']) }], ['ssls[4].id: duplicate SSL resource id "c"']);
    check([{ kind: 'ssls', id: 'c', before: c, after: ssl('c', ['c.example.com'], { key: p1.key }) }], ['ssls[2].key: does not match its certificate (ssls[2].cert)']);
    check([{ kind: 'ssls', id: 'c', before: c, after: ssl('c', ['c.example.com'], { key: '$secret://vault/nope/x/y' }) }], ['ssls[2].key: refers to unknown secret resource "vault/nope" (add it under secrets:)']);
    check([{ kind: 'ssls', id: 'c', before: c, after: ssl('c', ['c.example.com'], { key: '$env://HOME' }) }], ['ssls[2].key: $env://HOME is not allowed by secret_policy.env: the operator allows it by adding "HOME" to secret_policy.env in the config file']);
  });

  test('an upstream with tls: an SSL resource of type client is left to the full validation; a deleted upstream before one moves its reference sites', () => {
    const { pairs: [p0] } = pairs();
    const doc: Doc = {
      upstreams: [
        { id: 'plain', nodes: { '127.0.0.1:80': 1 } },
        { id: 'mtls', scheme: 'https', nodes: { '127.0.0.1:443': 1 }, tls: { client_cert_id: 'cc' } },
        { id: 'refs', scheme: 'https', nodes: { '127.0.0.1:444': 1 }, tls: { client_cert: '$env://GH_UP_CERT', client_key: '$env://GH_UP_KEY' } },
      ],
      routes: [],
      consumers: [],
      secrets: [],
      ssls: [{ id: 'cc', cert: p0.cert, key: p0.key, snis: ['cc.example.com'], type: 'client' }, { id: 'srv', cert: p0.cert, key: p0.key, snis: ['srv.example.com'] }],
    };
    const live = full(doc) as ValidatedConfig;
    assert.equal(live.issues, undefined, JSON.stringify(live.issues));
    const cc = doc.ssls![0];
    assert.equal(validateChanges(live, [{ kind: 'ssls', id: 'cc', before: cc }], registry, ctx).full, true);
    assert.equal(validateChanges(live, [{ kind: 'ssls', id: 'cc', before: cc, after: { ...cc, type: 'server' } }], registry, ctx).full, true);
    // (the whole validation names the upstream that lost its client certificate)
    assert.deepEqual(lines(full(apply(doc, [{ kind: 'ssls', id: 'cc', before: cc }])).issues!), ['upstreams[1].tls.client_cert_id: names no SSL resource ("cc")']);
    // a server resource is validated on its own
    const srv = doc.ssls![1];
    const r = validateChanges(live, [{ kind: 'ssls', id: 'srv', before: srv, after: { ...srv, snis: ['other.example.com'] } }], registry, ctx);
    assert.equal(r.full, undefined);
    assert.deepEqual(r.config, (full(apply(doc, [{ kind: 'ssls', id: 'srv', before: srv, after: { ...srv, snis: ['other.example.com'] } }])) as ValidatedConfig).config);
    // the plain upstream deleted: the tls sites of the one after it move up, as the whole document has them
    const del: DataChange[] = [{ kind: 'upstreams', id: 'plain', before: doc.upstreams[0] }];
    const moved = validateChanges(live, del, registry, ctx);
    assert.ok(moved.config, JSON.stringify(moved));
    assert.deepEqual(moved.refs, (full(apply(doc, del)) as ValidatedConfig).refs);
    assert.deepEqual(moved.refs.filter((x) => x.path.startsWith('upstreams')).map((x) => x.path), ['upstreams[1].tls.client_cert', 'upstreams[1].tls.client_key']);
  });

  test('a secret resource, or a kind it does not know, is left to the full validation', () => {
    const doc: Doc = { upstreams: [], routes: [], consumers: [], secrets: [VAULT] };
    const live = full(doc) as ValidatedConfig;
    assert.deepEqual(validateChanges(live, [{ kind: 'secrets', id: 'vault/prod', before: VAULT, after: { ...VAULT, prefix: 'v2' } }], registry, ctx), { full: true, why: 'a secret resource changed' });
    assert.equal(validateChanges(live, [{ kind: 'plugin_configs' as DataKind, id: '1', after: {} }], registry, ctx).full, true);
    // a change of something the live config does not hold: its document is not this one
    assert.equal(validateChanges(live, [{ kind: 'consumers', id: 'ghost', before: { username: 'ghost' } }], registry, ctx).full, true);
    // no change: the live config itself
    assert.equal(validateChanges(live, [], registry, ctx), live);
  });

  test('the build path\'s form: the next config, undefined for the full validation, GH_ERR_CONFIG_INVALID with every issue', () => {
    const doc: Doc = { upstreams: [], routes: [], consumers: [{ username: 'x' }], secrets: [VAULT] };
    const live = full(doc) as ValidatedConfig;
    const next = validateChangesOrThrow(live, [{ kind: 'consumers', id: 'y', after: { username: 'y' } }], registry, ctx);
    assert.deepEqual(next?.config.consumers.map((k) => k.username), ['x', 'y']);
    assert.equal(validateChangesOrThrow(live, [{ kind: 'secrets', id: 'vault/prod', before: VAULT }], registry, ctx), undefined);
    assert.throws(
      () => validateChangesOrThrow(live, [{ kind: 'consumers', id: 'y', after: { username: 'y', plugins: { 'key-auth': { key: '$env://PATH' } } } }], registry, ctx),
      (err: Error & { code?: string }) => err.code === 'GH_ERR_CONFIG_INVALID' && err.message.includes('consumers[1].plugins.key-auth.key: $env://PATH is not allowed by secret_policy.env'),
    );
  });

  test('an item check gives the issues and defaults the document check gives for that item', () => {
    const route = { id: 'a', uri: 'x', status: 3, upstream: { nodes: {} } };
    const docIssues = registry.documentCheck({ routes: [structuredClone(route)] }, '', ['/admin/key']);
    const item = structuredClone(route) as Raw;
    assert.deepEqual(registry.itemCheck('routes')(item, 'routes[0]'), docIssues);
    assert.equal(registry.itemCheck('routes'), registry.itemCheck('routes'));
    const ok: Raw = { id: 'u', nodes: { 'h:1': 1 } };
    assert.deepEqual(registry.itemCheck('upstreams')(ok, 'upstreams[0]'), []);
    assert.deepEqual(ok.keepalive_pool, { size: 320, idle_timeout: 60, requests: 1000 });
    assert.deepEqual(lines(registry.itemCheck('upstreams')({ nodes: { 'h:1': 1 } }, 'upstreams[4]')), ['upstreams[4].id: is required']);
  });
});
