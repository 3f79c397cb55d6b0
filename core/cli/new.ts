// `gatehouse new plugin|provider <name>`: a working extension copied from templates/, with the
// template's name tokens replaced. In a project (a folder with gatehouse.yaml) it goes to plugins/
// or providers/ and is registered in gatehouse.yaml, so `npm start` loads it with no edit.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { builtinExtensions } from '../extensions/builtins';
import { EXTENSION_NAME } from '../sdk';
import { packageName } from '../version';

/** Root of the Gatehouse package (dist/core/cli → three levels up). */
export const PACKAGE_ROOT = resolve(__dirname, '..', '..', '..');
/** Where the templates live: templates/plugin, templates/provider, templates/project. */
export const TEMPLATES_DIR = join(PACKAGE_ROOT, 'templates');

/** A refusal with a message for the user; the command exits 1 and writes nothing. */
export class ScaffoldError extends Error {}

export type TemplateKind = 'plugin' | 'provider' | 'project';

/** A file to write: absolute path and content. */
export interface PlannedFile {
  readonly path: string;
  readonly content: string;
}

// single-segment names whose camelCase form would be a reserved word, an invalid identifier
const RESERVED = new Set(
  ('break case catch class const continue debugger default delete do else enum export extends false finally for function if ' +
    'import in instanceof new null return super switch this throw true try typeof var void while with yield let static ' +
    'implements interface package private protected public await arguments eval').split(' '),
);

/** The three spellings of a name that templates carry as tokens: `hello-header`, `helloHeader`, `HelloHeader`. */
export function nameForms(name: string): { kebab: string; camel: string; pascal: string } {
  const words = name.split('-').filter((w) => w !== '');
  const cap = (w: string) => w.charAt(0).toUpperCase() + w.slice(1);
  const camel = words.map((w, i) => (i === 0 ? w : cap(w))).join('');
  return { kebab: name, camel, pascal: cap(camel) };
}

/**
 * Check a plugin, provider or project name.
 * @throws ScaffoldError naming the rule it breaks
 */
export function checkName(name: string, what: string): void {
  if (!EXTENSION_NAME.test(name)) {
    throw new ScaffoldError(`invalid ${what} name ${JSON.stringify(name)}: use lowercase letters, digits and dashes, starting with a letter (${EXTENSION_NAME.source})`);
  }
  const { camel } = nameForms(name);
  if (RESERVED.has(camel)) throw new ScaffoldError(`invalid ${what} name "${name}": "${camel}" is a reserved word in JavaScript and cannot name the generated code; choose another name`);
}

/**
 * Refuse a target that exists, unless it is an empty folder (nothing there can be overwritten).
 * @throws ScaffoldError
 */
export function checkTarget(target: string): void {
  if (!existsSync(target)) return;
  if (statSync(target).isDirectory() && readdirSync(target).length === 0) return;
  throw new ScaffoldError(`${display(target)} already exists; nothing was written (choose another name or folder, or remove it)`);
}

/** `p` relative to the working directory when inside it, else absolute. */
export function display(p: string): string {
  const r = relative(process.cwd(), p);
  return r === '' ? '.' : r.startsWith('..') ? p : r;
}

function walk(dir: string, base = dir, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) walk(p, base, out);
    else out.push(relative(base, p));
  }
  return out;
}

/**
 * The files of `templates/<kind>` rendered for `name` into `target` (nothing is written). Tokens
 * replaced in paths and contents: `template-<kind>`, `template<Kind>`, `Template<Kind>`.
 * @param edit a last change to each file's content (relative path, content) → content
 */
export function renderTemplate(kind: TemplateKind, name: string, target: string, edit: (rel: string, content: string) => string = (_r, c) => c): PlannedFile[] {
  const dir = join(TEMPLATES_DIR, kind);
  if (!existsSync(dir)) throw new ScaffoldError(`the ${kind} template is missing (${dir}); this Gatehouse installation is incomplete`);
  const from = nameForms(`template-${kind}`);
  const to = nameForms(name);
  const swap = (s: string) => s.replaceAll(from.kebab, to.kebab).replaceAll(from.camel, to.camel).replaceAll(from.pascal, to.pascal);
  return walk(dir).map((rel) => {
    // npm drops .gitignore files from packages, so the template keeps it as "gitignore"
    const out = swap(rel === 'gitignore' ? '.gitignore' : rel);
    return { path: join(target, out), content: edit(out, swap(readFileSync(join(dir, rel), 'utf8'))) };
  });
}

/** Write `files` (their folders are created). Files are created, never replaced. */
export function writeFiles(files: readonly PlannedFile[], out: NodeJS.WritableStream, verb = 'created'): void {
  for (const f of files) {
    mkdirSync(dirname(f.path), { recursive: true });
    writeFileSync(f.path, f.content, { flag: 'wx' });
    out.write(`${verb} ${display(f.path)}\n`);
  }
}

/** The Gatehouse checkout `dir` belongs to, when it is one (the code written there is a built-in). */
function gatehouseCheckout(dir: string): string | undefined {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const pkg = join(d, 'package.json');
    if (existsSync(pkg)) {
      try {
        const name = (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name;
        return name === packageName && existsSync(join(d, 'core', 'sdk.ts')) ? d : undefined;
      } catch {
        return undefined;
      }
    }
    if (dirname(d) === d) return undefined;
  }
}

/**
 * gatehouse.yaml with the extension registered: `./dist/<plugins|providers>/<name>` in
 * `extensions:` and, for a plugin, a route `/<name>/*` using it on the upstream `demo` (else the
 * first of `upstreams:`; no route when there is none, or a route already has that id).
 * Comments and formatting of the rest of the file are kept.
 * @returns the new text, what changed (in words), and `gateway.listen` as a loopback address for examples
 * @throws ScaffoldError when the file cannot be parsed or its sections have the wrong shape
 */
export function registerInConfig(text: string, file: string, kind: 'plugin' | 'provider', name: string): { text: string; changes: string[]; address: string } {
  const doc: Document = parseDocument(text);
  if (doc.errors.length > 0) throw new ScaffoldError(`${display(file)} cannot be parsed, so the ${kind} cannot be registered in it (nothing was written): ${doc.errors[0].message.split('\n')[0]}`);
  if (doc.contents !== null && !isMap(doc.contents)) throw new ScaffoldError(`${display(file)} is not a mapping of sections; nothing was written`);
  const changes: string[] = [];
  const entry = `./dist/${kind}s/${name}`;
  const extensions = doc.get('extensions', true);
  if (extensions === undefined || extensions === null || (isScalar(extensions) && extensions.value === null)) {
    doc.set('extensions', doc.createNode([entry]));
    changes.push(`extensions: ${entry}`);
  } else if (isSeq(extensions)) {
    if (!extensions.items.some((i) => (isScalar(i) ? i.value : i) === entry)) {
      extensions.add(doc.createNode(entry));
      // an empty `[]` becomes a block list, one entry per line
      extensions.flow = false;
      changes.push(`extensions: ${entry}`);
    }
  } else {
    throw new ScaffoldError(`${display(file)}: extensions must be a list; nothing was written`);
  }
  if (kind === 'plugin') {
    const routes = doc.get('routes', true);
    const upstreams = doc.get('upstreams', true);
    const ids = isSeq(upstreams) ? upstreams.items.map((u) => (isMap(u) ? u.get('id') : undefined)).filter((id): id is string => typeof id === 'string') : [];
    const upstreamId = ids.includes('demo') ? 'demo' : ids[0];
    const taken = isSeq(routes) && routes.items.some((r) => isMap(r) && r.get('id') === name);
    if (upstreamId !== undefined && !taken && (routes === undefined || isSeq(routes))) {
      const route = doc.createNode({ id: name, uri: `/${name}/*`, plugins: { [name]: {} }, upstream_id: upstreamId });
      if (isSeq(routes)) routes.add(route);
      else doc.set('routes', doc.createNode([route]));
      changes.push(`route ${name}: /${name}/* through upstream ${upstreamId}`);
    }
  }
  const listen = doc.getIn(['gateway', 'listen']);
  const address = typeof listen === 'string' ? listen.replace(/^(0\.0\.0\.0|\[::\])?(?=:\d+$)/, '127.0.0.1') : '127.0.0.1:9080';
  return { text: doc.toString({ flowCollectionPadding: false }), changes, address };
}

export interface NewOptions {
  /** Where to create it; a project (folder with gatehouse.yaml) gets it in plugins/ or providers/. Default: the working directory. */
  readonly dir?: string;
}

/**
 * `gatehouse new plugin|provider <name>`.
 * @returns the exit code: 0, or 1 after one error line on `err`
 */
export function newCommand(kind: 'plugin' | 'provider', name: string, opts: NewOptions, out: NodeJS.WritableStream, err: NodeJS.WritableStream): number {
  try {
    checkName(name, kind);
    const base = resolve(opts.dir ?? '.');
    const config = join(base, 'gatehouse.yaml');
    const project = existsSync(config);
    const target = project ? join(base, `${kind}s`, name) : join(base, name);
    const repo = gatehouseCheckout(target);
    if (repo === undefined) {
      const builtin = builtinExtensions.some((e) => (e.kind === 'plugin' ? e.plugin.name : e.provider.name) === name && e.kind === kind);
      if (builtin) throw new ScaffoldError(`"${name}" is the name of a built-in ${kind} of Gatehouse; an extension cannot take it. Choose another name`);
    }
    checkTarget(target);
    // everything is read and checked before the first write: a refusal writes nothing
    const registration = project ? registerInConfig(readFileSync(config, 'utf8'), config, kind, name) : undefined;
    const files = renderTemplate(kind, name, target);
    writeFiles(files, out);
    if (registration !== undefined && registration.changes.length > 0) {
      writeFileSync(config, registration.text);
      out.write(`updated ${display(config)} (${registration.changes.join('; ')})\n`);
    }
    const routed = registration?.changes.some((c) => c.startsWith('route')) === true;
    out.write(nextSteps(kind, name, { project, base, repo, address: routed ? registration?.address : undefined }));
    return 0;
  } catch (e) {
    if (!(e instanceof ScaffoldError)) throw e;
    err.write(`gatehouse: ${e.message}\n`);
    return 1;
  }
}

function nextSteps(kind: 'plugin' | 'provider', name: string, w: { project: boolean; base: string; repo: string | undefined; address: string | undefined }): string {
  const lines = ['', 'next:'];
  if (w.repo !== undefined) {
    lines.push(`  register it in core/extensions/builtins.ts (one import, one list entry), then: npm run build && node scripts/run-tests.js ${name}`);
  } else if (w.project) {
    if (display(w.base) !== '.') lines.push(`  cd ${display(w.base)}`);
    lines.push('  npm test      # builds, then runs its test with the others');
    if (w.address !== undefined) lines.push(`  npm start     # then: curl -i http://${w.address}/${name}/hi`);
    if (kind === 'provider') lines.push(`  add a secrets: entry with id ${name}/<id> to gatehouse.yaml, and use $secret://${name}/<id>/<key>/<field>`);
  } else {
    lines.push(`  compile it with your project and list its compiled folder under extensions: in gatehouse.yaml (see ${display(join(w.base, name, 'README.md'))})`);
  }
  return `${lines.join('\n')}\n`;
}
