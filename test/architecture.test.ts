// The import rules of docs/architecture.md's map, checked against the source: the table's third
// column says what each folder or file may import, and every relative import of every source file
// under core/ (tests aside), plugins/ and providers/ (their tests too) must be allowed by its row; no
// import cycle either, and no source file that no row covers. The package's own name counts as a
// relative import of the entry it names (`gatehouse-gateway/sdk` is core/sdk.ts); other packages
// are not checked. The imports are read by TypeScript's own pre-processor (static imports and
// exports, `import()`, `require()`), not by a pattern.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const root = join(__dirname, '..', '..');

/** One row of the map: the places it covers and what they may import. */
interface Row {
  /**
   * Repository paths: a folder ends with `/` (`core/request/`); the folder, `*` and a suffix are its
   * files of that suffix at any depth (`plugins/*.test.ts`); else a file (`core/gateway.ts`).
   */
  readonly places: readonly string[];
  /** Allowed targets: folders and files as above (`test/...` from the root, the rest under core/), or the words `contracts` and `anything`. */
  readonly may: readonly string[];
}

/** The contract files, which the word `contracts` stands for. */
function contractFiles(rows: readonly Row[]): string[] {
  const row = rows.find((r) => r.may.length === 1 && r.may[0] === 'contracts' && r.places.every((p) => p.endsWith('.ts')));
  assert.ok(row, 'the map has a row of contract files that may import only `contracts`');
  return [...row.places];
}

/** The table under "## The map" in docs/architecture.md. */
function readMap(markdown: string): Row[] {
  const section = markdown.split(/^## /m).find((s) => s.startsWith('The map'));
  assert.ok(section, 'docs/architecture.md has a "## The map" section');
  const ticks = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
  const rows = section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) => l.split('|').map((c) => c.trim()))
    .map((cells) => ({ places: ticks(cells[1]), may: ticks(cells[3]) }));
  assert.ok(rows.length > 0, 'the map has rows');
  return rows;
}

/** Where an allowed item of the third column points, as a repository path (`sdk.ts` is `core/sdk.ts`). */
function target(item: string): string {
  if (item === 'plugins/' || item === 'providers/' || item.startsWith('test/')) return item;
  return `core/${item}`;
}

/** Source files (not declarations; tests only with `tests`) under `dir`, as repository paths. */
function sources(dir: string, tests = false, out: string[] = []): string[] {
  for (const name of readdirSync(join(root, dir))) {
    const rel = `${dir}/${name}`;
    if (statSync(join(root, rel)).isDirectory()) sources(rel, tests, out);
    else if (name.endsWith('.ts') && (tests || !name.endsWith('.test.ts')) && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/** The package's own name and its `exports` subpaths, as the repository files they stand for. */
const selfName = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string };
const ENTRIES: Record<string, string> = { '': 'core/index.ts', '/sdk': 'core/sdk.ts', '/testing': 'core/testing.ts' };

/** The repository files a source file imports by relative path or by the package's own name (other packages are not followed). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.') || spec === selfName.name || spec.startsWith(`${selfName.name}/`))
    .map((spec) => {
      if (!spec.startsWith('.')) {
        const entry = ENTRIES[spec.slice(selfName.name.length)];
        assert.ok(entry, `${file} imports ${spec}, which package.json does not export`);
        return entry;
      }
      const abs = resolve(root, dirname(file), spec.replace(/\.js$/, ''));
      const path = [`${abs}.ts`, join(abs, 'index.ts'), abs].find((p) => existsSync(p) && statSync(p).isFile());
      assert.ok(path, `${file} imports ${spec}, which is no file of the repository`);
      return relative(root, path).split(sep).join('/');
    });
}

/** The row that covers `file` (the most specific place wins) and the folder counted as its own. */
function rowOf(rows: readonly Row[], file: string): { row: Row; own: string } | undefined {
  let best: { row: Row; own: string; len: number } | undefined;
  for (const row of rows) {
    for (const place of row.places) {
      const star = place.indexOf('/*');
      const suffixed = star !== -1 && file.startsWith(place.slice(0, star + 1)) && file.endsWith(place.slice(star + 2));
      if (place === file || (place.endsWith('/') && file.startsWith(place)) || suffixed) {
        // plugins/ and providers/ hold one extension per folder: a plugin's own folder is plugins/<name>/
        const own = /^(?:plugins|providers)\//.test(place) ? file.split('/').slice(0, 2).join('/') + '/' : place;
        if (!best || place.length > best.len) best = { row, own, len: place.length };
      }
    }
  }
  return best && { row: best.row, own: best.own };
}

/** Whether `row` lets `file` import `to`. */
function allowed(rows: readonly Row[], row: Row, own: string, to: string): boolean {
  if (own.endsWith('/') ? to.startsWith(own) : to === own) return true;
  const contracts = contractFiles(rows);
  return row.may.some((item) => {
    if (item === 'anything') return true;
    if (item === 'contracts') return contracts.includes(to);
    const t = target(item);
    return t.endsWith('/') ? to.startsWith(t) : to === t;
  });
}

/** Every import the map forbids, as `from → to` lines, and every file no row covers. */
function violations(rows: readonly Row[], graph: ReadonlyMap<string, readonly string[]>): string[] {
  const out: string[] = [];
  for (const [file, deps] of graph) {
    const at = rowOf(rows, file);
    if (!at) {
      out.push(`${file}: no row of the map covers it`);
      continue;
    }
    for (const to of deps) if (!allowed(rows, at.row, at.own, to)) out.push(`${file} → ${to}`);
  }
  return out;
}

/** The import cycles of `graph` (strongly connected components of more than one file, or a file importing itself). */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const rows = readMap(readFileSync(join(root, 'docs', 'architecture.md'), 'utf8'));
const graph = new Map([...sources('core'), ...sources('plugins', true), ...sources('providers', true)].map((f) => [f, importsOf(f)] as const));

test('every import of core/, plugins/ and providers/ (with their tests) is one the map in docs/architecture.md allows', () => {
  assert.ok(graph.size > 50, `read ${graph.size} source files`);
  assert.ok(graph.has('plugins/cors/cors.test.ts'), 'plugin tests are read');
  // the package's own name is followed, not skipped as a package
  assert.ok(graph.get('plugins/cors/index.ts')?.includes('core/sdk.ts'), 'gatehouse-gateway/sdk is core/sdk.ts');
  assert.deepEqual(violations(rows, graph), []);
});

test('no import cycle', () => {
  assert.deepEqual(cycles(graph), []);
});

test('the checks can fail: a forbidden direction, a file no row covers and a cycle are each reported', () => {
  const bad = new Map(graph);
  // the request path reaching into the Admin API, the library into the CLI, a plugin into the core's internals
  bad.set('core/request/router.ts', [...(graph.get('core/request/router.ts') ?? []), 'core/admin/access.ts']);
  bad.set('core/config/validate.ts', [...(graph.get('core/config/validate.ts') ?? []), 'core/cli/main.ts']);
  bad.set('plugins/key-auth/index.ts', [...(graph.get('plugins/key-auth/index.ts') ?? []), 'core/secrets/resolver.ts', 'plugins/basic-auth/index.ts']);
  bad.set('core/unmapped/thing.ts', []);
  // a plugin's test reaching into the core's internals and the repository's own test helpers
  bad.set('plugins/key-auth/key-auth.test.ts', [...(graph.get('plugins/key-auth/key-auth.test.ts') ?? []), 'core/stores/file-store.ts', 'test/helpers/harness.ts']);
  // a plugin's source may not use the test kit, which its test may
  bad.set('plugins/cors/index.ts', [...(graph.get('plugins/cors/index.ts') ?? []), 'core/testing.ts']);
  assert.deepEqual(violations(rows, bad).sort(), [
    'core/config/validate.ts → core/cli/main.ts',
    'core/request/router.ts → core/admin/access.ts',
    'core/unmapped/thing.ts: no row of the map covers it',
    'plugins/cors/index.ts → core/testing.ts',
    'plugins/key-auth/index.ts → core/secrets/resolver.ts',
    'plugins/key-auth/index.ts → plugins/basic-auth/index.ts',
    'plugins/key-auth/key-auth.test.ts → core/stores/file-store.ts',
    'plugins/key-auth/key-auth.test.ts → test/helpers/harness.ts',
  ]);
  bad.set('core/config/paths.ts', [...(graph.get('core/config/paths.ts') ?? []), 'core/config/validate.ts']);
  const found = cycles(bad);
  assert.equal(found.length, 1);
  assert.ok(found[0].includes('core/config/paths.ts') && found[0].includes('core/config/validate.ts'), found[0].join(' '));
});
