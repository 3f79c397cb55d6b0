// Property tests of the secret reference parser (core/secrets/reference.ts) and of where config
// recognises references (looksLikeReference):
// - any string: parseReference returns or throws ReferenceSyntaxError, nothing else; what it
//   accepts prints back to the same text (no part of the reference is dropped or rewritten);
// - references built from valid parts parse back into exactly those parts, and two references
//   share a cache key only when they name the same secret (same resource, path, field, version);
// - a valid reference with one thing broken is refused with the message for that thing, and the
//   message quotes nothing but the manager, id or variable name it is about: a broken path, field
//   or version (where a pasted value would sit) is never echoed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { bootGateway, startUpstream, tempDir } from '../helpers/harness';
import { looksLikeReference, parseReference, ReferenceSyntaxError, type SecretRef } from '../../core/secrets/reference';
import { fc, noEscapes, params, watchProcess } from './runs';

watchProcess();

// ---------------------------------------------------------------------------------------------
// valid parts

const manager = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
const resourceId = fc.stringMatching(/^[A-Za-z0-9_.-]{1,10}$/);
const version = fc.stringMatching(/^[A-Za-z0-9_.-]{1,8}$/);
const envName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,12}$/);
/** One code point that may stand in a path segment: anything but '/', '#', '?' and whitespace. */
const segmentChar = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('a', 'b', 'k', 'z', 'A', '0', '7', '-', '_', '.') },
  // separators other formats use, and characters that mean something in URLs, JSON or shells
  { weight: 3, arbitrary: fc.constantFrom('|', '%', ':', '@', '$', '=', '&', ';', '\\', '"', "'", '*', '~', '+', ',', '{', '}', '\0') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }).filter((c) => !/[/#?\s]/.test(c)) },
);
const segment = fc.string({ unit: segmentChar, minLength: 1, maxLength: 6 });

type Built =
  | { kind: 'env'; scheme: '$env://' | '$ENV://'; name: string; field?: string }
  | { kind: 'secret'; manager: string; id: string; path: string[]; field: string; version?: string };

const envRef: fc.Arbitrary<Built> = fc.record({
  kind: fc.constant('env' as const),
  scheme: fc.constantFrom('$env://' as const, '$ENV://' as const),
  name: envName,
  field: fc.option(segment, { nil: undefined }),
});
const secretRef: fc.Arbitrary<Built> = fc.record({
  kind: fc.constant('secret' as const),
  manager,
  id: resourceId,
  path: fc.array(segment, { maxLength: 4 }),
  field: segment,
  version: fc.option(version, { nil: undefined }),
});
const built = fc.oneof({ weight: 1, arbitrary: envRef }, { weight: 3, arbitrary: secretRef });

function textOf(b: Built): string {
  if (b.kind === 'env') return `${b.scheme}${b.name}${b.field === undefined ? '' : `/${b.field}`}`;
  return `$secret://${[b.manager, b.id, ...b.path, b.field].join('/')}${b.version === undefined ? '' : `#${b.version}`}`;
}

/** The fields parseReference must return for `b`. */
function fieldsOf(b: Built): Pick<SecretRef, 'manager' | 'resource' | 'path' | 'field' | 'version'> {
  if (b.kind === 'env') return { manager: 'env', resource: 'env', path: b.name, field: b.field ?? '', version: undefined };
  return { manager: b.manager, resource: `${b.manager}/${b.id}`, path: b.path.join('/'), field: b.field, version: b.version };
}

/** What a reference names: two references name the same secret exactly when these are equal. */
function identityOf(b: Built): string {
  if (b.kind === 'env') return JSON.stringify(['env', b.name, b.field ?? '']);
  return JSON.stringify([b.manager, b.id, b.path, b.field, b.version ?? null]);
}

const pick = (r: SecretRef) => ({ manager: r.manager, resource: r.resource, path: r.path, field: r.field, version: r.version });

/** The text a parsed reference stands for, rebuilt from its fields (`$ENV://` as written). */
function render(r: SecretRef): string {
  if (r.manager === 'env') return `${r.text.slice(0, 7)}${r.path}${r.field === '' ? '' : `/${r.field}`}`;
  return `$secret://${r.resource}/${r.path === '' ? '' : `${r.path}/`}${r.field}${r.version === undefined ? '' : `#${r.version}`}`;
}

// ---------------------------------------------------------------------------------------------
// every message the parser may give; a quoted part must be the manager, id or name at fault

const q = (s: string) => JSON.stringify(s);
const FIXED = new Set([
  'an $env:// reference needs a variable name: $env://NAME or $env://NAME/field',
  'the field after the variable name is empty or has invalid characters',
  'a reference starts with $secret:// or $env://',
  'the version after "#" is empty or has invalid characters',
  'missing segments: expected $secret://<manager>/<id>/<path>/<field> (the last segment is the field)',
  'a path segment has invalid characters',
]);
const QUOTING = [' is not a valid environment variable name', ' is not a valid secret manager name', ' is not a valid secret resource id'];

/** Checks a refusal's message against the catalogue; returns the quoted part, if any. */
function checkMessage(text: string, err: unknown): string | undefined {
  assert.ok(err instanceof ReferenceSyntaxError, `only ReferenceSyntaxError is thrown, got ${err instanceof Error ? err.name : typeof err} for ${q(text)}`);
  const m = err.message;
  if (FIXED.has(m)) return undefined;
  const empty = /^segment ([0-9]+) is empty \(expected \$secret:\/\/<manager>\/<id>\/<path>\/<field>\)$/.exec(m);
  if (empty) {
    assert.equal(text.slice(10).split('#')[0].split('/')[Number(empty[1]) - 1], '', `the segment named is the empty one in ${q(text)}`);
    return undefined;
  }
  const tail = QUOTING.find((t) => m.endsWith(t));
  assert.ok(tail, `a message from the catalogue for ${q(text)}: ${q(m)}`);
  const quoted = m.slice(0, -tail.length);
  // no raw control character (a line break would split one issue into two lines of `gatehouse validate`)
  assert.ok(!/[\x00-\x1f]/.test(quoted), `the quoted part has its control characters escaped: ${q(m)}`);
  let part: unknown;
  assert.doesNotThrow(() => (part = JSON.parse(quoted)), `the part is quoted as a JSON string: ${q(m)}`);
  assert.equal(typeof part, 'string');
  assert.ok(text.includes(part as string), `the quoted part comes from the reference itself: ${q(m)}`);
  return part as string;
}

function parseOrError(text: string): { ref: SecretRef; err?: undefined } | { err: unknown; ref?: undefined } {
  try {
    return { ref: parseReference(text) };
  } catch (err) {
    return { err };
  }
}

// ---------------------------------------------------------------------------------------------

test('a reference built from valid parts parses back into exactly those parts', async () => {
  fc.assert(
    fc.property(built, (b) => {
      const text = textOf(b);
      assert.equal(looksLikeReference(text), true);
      const r = parseReference(text);
      assert.equal(r.text, text);
      assert.deepEqual(pick(r), fieldsOf(b));
      assert.equal(render(r), text);
    }),
    params('reference: valid parts round-trip', 7000),
  );
  await noEscapes();
});

/** Two references, often naming neighbouring secrets: the same parts with '/' and '|' swapped, or another version. */
const pair: fc.Arbitrary<[Built, Built]> = fc.oneof(
  fc.tuple(built, built),
  secretRef.chain((a) => {
    const s = a as Extract<Built, { kind: 'secret' }>;
    const joined = [...s.path, s.field].join('/');
    // each '/' or '|' of the path and field may become the other: the same characters, other boundaries
    return fc.array(fc.boolean(), { minLength: joined.length, maxLength: joined.length }).chain((flips) => {
      const swapped = [...joined].map((c, i) => (flips[i] && (c === '/' || c === '|') ? (c === '/' ? '|' : '/') : c)).join('');
      const segs = swapped.split('/');
      const b: Built = { ...s, path: segs.slice(0, -1), field: segs[segs.length - 1] };
      if (segs.some((x) => x === '')) return fc.constant<[Built, Built]>([a, a]);
      return fc.constant<[Built, Built]>([a, b]);
    });
  }),
  envRef.map((a): [Built, Built] => [a, { ...(a as Extract<Built, { kind: 'env' }>), scheme: (a as { scheme: string }).scheme === '$env://' ? '$ENV://' : '$env://' }]),
  fc.tuple(secretRef, fc.option(version, { nil: undefined })).map(([a, v]): [Built, Built] => [a, { ...(a as Extract<Built, { kind: 'secret' }>), version: v }]),
);

test('two references share a cache key exactly when they name the same secret', async () => {
  fc.assert(
    fc.property(pair, ([a, b]) => {
      const same = identityOf(a) === identityOf(b);
      const ka = parseReference(textOf(a)).key;
      const kb = parseReference(textOf(b)).key;
      assert.equal(ka === kb, same, same ? 'the same secret has one cache entry' : `different secrets must not share a cache entry: ${q(textOf(a))} and ${q(textOf(b))}`);
    }),
    params('reference: cache key identifies the secret', 7000),
  );
  await noEscapes();
});

test('found by the property above: "a|b/c" and "a/b|c" are two secrets, each consumer gets its own key through a gateway', async () => {
  // before the fix both references had the cache key "file/m|a|b|c|": the second consumer got the first one's value
  assert.notEqual(parseReference('$secret://file/m/a|b/c').key, parseReference('$secret://file/m/a/b|c').key);
  const dir = tempDir('gatehouse-fuzz-ref-');
  const up = await startUpstream();
  let g: Awaited<ReturnType<typeof bootGateway>> | undefined;
  try {
    mkdirSync(join(dir, 'a|b'));
    writeFileSync(join(dir, 'a|b', 'c'), 'alice-file-key\n');
    mkdirSync(join(dir, 'a'));
    writeFileSync(join(dir, 'a', 'b|c'), 'bob-file-key\n');
    g = await bootGateway({
      secret_policy: { files: [dir] },
      secrets: [{ id: 'file/m', dir }],
      consumers: [
        { username: 'alice', plugins: { 'key-auth': { key: '$secret://file/m/a|b/c' } } },
        { username: 'bob', plugins: { 'key-auth': { key: '$secret://file/m/a/b|c' } } },
      ],
      routes: [{ id: 'r', uri: '/who', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.node]: 1 } } }],
    });
    const who = async (key: string) => {
      const r = await request(`${g!.url}/who`, { headers: { apikey: key } });
      const text = await r.body.text();
      return r.statusCode === 200 ? (JSON.parse(text) as { headers: Record<string, string> }).headers['x-consumer-username'] : `status ${r.statusCode}`;
    };
    assert.equal(await who('alice-file-key'), 'alice');
    assert.equal(await who('bob-file-key'), 'bob');
  } finally {
    await g?.close();
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  }
  await noEscapes();
});

const PREFIXES = ['$secret://', '$env://', '$ENV://', '$SECRET://', '$Env://', '$secret:/', '$secret:', 'secret://', '$', '', ' $env://'];
/** Any text, often behind a reference scheme, often made of reference-ish pieces. */
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.tuple(fc.constantFrom(...PREFIXES), fc.string({ unit: 'binary', maxLength: 30 })).map(([p, s]) => p + s),
  fc
    .tuple(fc.constantFrom(...PREFIXES), fc.array(fc.oneof(segment, fc.constantFrom('/', '//', '#', '?', ' ', '\n', '', '.', '..', 'A', '1x', 'x y')), { maxLength: 8 }))
    .map(([p, parts]) => p + parts.join('')),
);

test('any string either parses to a reference that prints back the same, or is refused with a catalogued message', async () => {
  fc.assert(
    fc.property(anyText, (text) => {
      const looks = looksLikeReference(text);
      assert.equal(looks, text.startsWith('$secret://') || text.startsWith('$env://') || text.startsWith('$ENV://'));
      const r = parseOrError(text);
      if (r.ref) {
        assert.equal(looks, true, 'only what looks like a reference parses');
        assert.equal(r.ref.text, text);
        assert.equal(render(r.ref), text, 'nothing of the reference is dropped or rewritten');
      } else checkMessage(text, r.err);
    }),
    params('reference: arbitrary strings', 11000),
  );
  await noEscapes();
});

// ---------------------------------------------------------------------------------------------
// near-valid: one thing broken, refused with the message for that thing

/** Marks the part of a broken reference where a pasted secret would sit: it must never be echoed. */
const MARK = 'pasted0value';

type Broken = { text: string; expect: RegExp | string; quotes?: string; planted?: boolean };

const badManager = fc.oneof(
  fc.stringMatching(/^[A-Z0-9_][a-z0-9-]{0,6}$/),
  fc.tuple(manager, fc.constantFrom('_', 'A', ' ', '.', '\n', '"', '\u2028', '|'), fc.stringMatching(/^[a-z0-9-]{0,4}$/)).map(([a, c, b]) => a + c + b),
);
const badId = fc.tuple(resourceId, fc.constantFrom(' ', '\t', '|', ':', '@', '%', '"', '\n', 'é'), resourceId).map(([a, c, b]) => a + c + b);
const badSegment = fc.tuple(fc.constantFrom(' ', '\t', '?', '\n', '\u00a0', '\u3000'), fc.boolean()).map(([c, front]) => (front ? `${c}${MARK}` : `${MARK}${c}`));
const badVersion = fc.oneof(fc.constant(''), fc.constantFrom(' ', '|', '/', '#', ':', '+').map((c) => `${MARK}${c}1`));
const badEnvName = fc.oneof(
  fc.stringMatching(/^[0-9][A-Za-z0-9_]{0,6}$/),
  fc.tuple(envName, fc.constantFrom('-', '.', ' ', ':', '$', '"', '\n', 'é'), fc.stringMatching(/^[A-Za-z0-9_]{0,4}$/)).map(([a, c, b]) => a + c + b),
);
const badEnvField = fc.oneof(fc.constant(''), badSegment, fc.tuple(segment, segment).map(([a, b]) => `${a}/${b}${MARK}`));

const broken: fc.Arbitrary<Broken> = fc.oneof(
  // $secret:// with one segment empty: named by its position
  fc.tuple(secretRef, fc.nat()).map(([b, n]): Broken => {
    const s = b as Extract<Built, { kind: 'secret' }>;
    const segs = [s.manager, s.id, ...s.path, s.field];
    const i = n % segs.length;
    segs[i] = '';
    return { text: `$secret://${segs.join('/')}${s.version === undefined ? '' : `#${s.version}`}`, expect: `segment ${i + 1} is empty (expected $secret://<manager>/<id>/<path>/<field>)` };
  }),
  fc.tuple(manager, fc.option(resourceId, { nil: undefined })).map(([m, id]): Broken => ({ text: `$secret://${m}${id === undefined ? '' : `/${id}`}`, expect: /^missing segments: / })),
  fc.tuple(secretRef, badManager).map(([b, m]): Broken => ({ text: textOf({ ...(b as Extract<Built, { kind: 'secret' }>), manager: m }), expect: `${q(m)} is not a valid secret manager name`, quotes: m })),
  fc.tuple(secretRef, badId).map(([b, id]): Broken => ({ text: textOf({ ...(b as Extract<Built, { kind: 'secret' }>), id }), expect: `${q(id)} is not a valid secret resource id`, quotes: id })),
  fc.tuple(secretRef, badSegment, fc.nat()).map(([b, bad, n]): Broken => {
    const s = b as Extract<Built, { kind: 'secret' }>;
    const segs = [...s.path, s.field];
    segs[n % segs.length] = bad;
    return { text: textOf({ ...s, path: segs.slice(0, -1), field: segs[segs.length - 1] }), expect: 'a path segment has invalid characters', planted: true };
  }),
  fc.tuple(secretRef, badVersion).map(([b, v]): Broken => ({ text: `${textOf({ ...(b as Extract<Built, { kind: 'secret' }>), version: undefined })}#${v}`, expect: 'the version after "#" is empty or has invalid characters', planted: v !== '' })),
  fc.constantFrom('$env://', '$ENV://').map((s): Broken => ({ text: s, expect: /^an \$env:\/\/ reference needs a variable name/ })),
  fc.tuple(envRef, badEnvName).map(([b, name]): Broken => ({ text: textOf({ ...(b as Extract<Built, { kind: 'env' }>), name }), expect: `${q(name)} is not a valid environment variable name`, quotes: name })),
  fc.tuple(envRef, badEnvField).map(([b, field]): Broken => ({ text: textOf({ ...(b as Extract<Built, { kind: 'env' }>), field }), expect: 'the field after the variable name is empty or has invalid characters', planted: field !== '' })),
);

test('a valid reference with one thing broken is refused naming that thing, never echoing a path, field or version', async () => {
  fc.assert(
    fc.property(broken, (c) => {
      const r = parseOrError(c.text);
      assert.ok(r.err !== undefined, `refused: ${q(c.text)}`);
      const quoted = checkMessage(c.text, r.err);
      const m = (r.err as Error).message;
      if (typeof c.expect === 'string') assert.equal(m, c.expect);
      else assert.match(m, c.expect);
      assert.equal(quoted, c.quotes);
      if (c.planted) assert.equal(m.includes(MARK), false, 'the broken path, field or version is not echoed');
    }),
    params('reference: near-valid references refused', 7000),
  );
  await noEscapes();
});
