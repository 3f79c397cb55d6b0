// file: secrets mounted as files, as Kubernetes secret volumes and Docker secrets provide them.
// `$secret://file/<id>/<name>` is the content of <dir>/<name> (one trailing newline trimmed);
// `$secret://file/<id>/<name>/<field>` is a field of the JSON object in <dir>/<name>, or the file
// <dir>/<name>/<field> when <name> is a folder. Read again at every fetch; never outside <dir>.
import { statSync, type Stats } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { join, relative, sep, isAbsolute } from 'node:path';
import { defineProvider, type ProviderServices, type SecretBackend, type SecretRequest, type SecretValue } from 'gatehouse-gateway/sdk';
import { schema, type FileConfig } from './schema';

/** Secret files larger than this are refused (a mistake, such as a folder of logs, not a secret). */
export const MAX_SECRET_BYTES = 1024 * 1024;

/** `stat` following symlinks (Kubernetes volumes are made of them); undefined when nothing is there. */
async function statOrNothing(p: string): Promise<Stats | undefined> {
  try {
    return await stat(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOTDIR: a segment of the path is a file, so this path cannot exist
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new Error(`cannot read ${p}: ${code ?? (err as Error).message}`);
  }
}

/** The content of a regular file, size-checked. */
async function readSecretFile(p: string, st: Stats): Promise<string> {
  if (st.isDirectory()) throw new Error(`${p} is a folder, not a secret file`);
  if (!st.isFile()) throw new Error(`${p} is not a regular file`);
  if (st.size > MAX_SECRET_BYTES) throw new Error(`${p} is larger than ${MAX_SECRET_BYTES} bytes; refusing it as a secret`);
  try {
    return await readFile(p, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Files written by `echo`, editors and `kubectl create secret --from-file` end with one newline that is not part of the value. */
function trimOneNewline(s: string): string {
  if (s.endsWith('\r\n')) return s.slice(0, -2);
  if (s.endsWith('\n')) return s.slice(0, -1);
  return s;
}

/**
 * The path of `segments` under `dir`.
 * @throws Error for a segment that would leave `dir` ('.', '..', a backslash or NUL): path traversal is refused
 */
function inside(dir: string, segments: readonly string[]): string {
  for (const s of segments) {
    if (s === '.' || s === '..' || s.includes('\\') || s.includes('\0')) {
      throw new Error(`the reference names "${s}", which is not a file name: a reference cannot leave the secret folder`);
    }
  }
  const p = join(dir, ...segments);
  const rel = relative(dir, p);
  // unreachable after the segment check; kept so that a future change cannot open a way out
  if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) throw new Error('a reference cannot leave the secret folder');
  return p;
}

/**
 * Refuse a file that leads out of `dir` through a symbolic link: the folder is what the operator's
 * secret_policy.files allowed, not wherever a link in it points. Links inside it (Kubernetes volumes
 * are made of them) are fine.
 */
async function confined(dir: string, p: string): Promise<void> {
  let real: string;
  let root: string;
  try {
    [root, real] = await Promise.all([realpath(dir), realpath(p)]);
  } catch (err) {
    throw new Error(`cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const rel = relative(root, real);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) throw new Error(`${p} is a link that leads out of the secret folder: refused`);
}

/** The field of a JSON object held by a file; undefined when it has no such field. */
function jsonField(p: string, text: string, field: string): SecretValue | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // JSON.parse's own message quotes the content, which is a secret
    throw new Error(`${p} does not hold JSON, so it has no field "${field}"`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${p} does not hold a JSON object, so it has no field "${field}"`);
  if (!Object.hasOwn(doc, field)) return undefined;
  const v = (doc as Record<string, unknown>)[field];
  if (v === null || v === undefined) return undefined;
  return { value: typeof v === 'string' ? v : JSON.stringify(v) };
}

/**
 * A backend over one folder of secret files. Nothing is cached here: every `get` reads the file, and
 * the gateway's secret cache decides how often that happens, so a rotated file is seen at the next
 * refresh (`secret_cache.ttl`, or at once with `POST /admin/secrets/file/<id>/refresh`).
 * @param dir absolute path of the folder
 */
export function fileBackend(dir: string): SecretBackend {
  return {
    locate({ path, field }: SecretRequest): string | undefined {
      const segments = path === '' ? [] : path.split('/');
      try {
        // <dir>/<name>/<field>, or field <field> of the JSON file <dir>/<name> (see get)
        const file = inside(dir, [...segments, field]);
        return segments.length === 0 ? file : `${file} or field "${field}" of ${inside(dir, segments)}`;
      } catch {
        return undefined; // a reference that would leave dir: get says why
      }
    },
    async get({ path, field, version }: SecretRequest): Promise<SecretValue | undefined> {
      // a pinned version the backend cannot honour is an error, not silently the current value
      if (version !== undefined) throw new Error(`file: files have no versions (asked for #${version}); remove it from the reference`);
      const segments = path === '' ? [] : path.split('/');
      const target = inside(dir, [...segments, field]);
      if (segments.length > 0) {
        const named = inside(dir, segments);
        const st = await statOrNothing(named);
        if (st === undefined) return undefined;
        // <name> is a file: <field> is a field of its JSON; a folder: <field> is a file in it (below)
        if (!st.isDirectory()) {
          await confined(dir, named);
          return jsonField(named, await readSecretFile(named, st), field);
        }
      }
      const st = await statOrNothing(target);
      if (st === undefined) return undefined;
      await confined(dir, target);
      // an empty file gives '', which the gateway treats as unavailable ("empty value")
      return { value: trimOneNewline(await readSecretFile(target, st)) };
    },
  };
}

export default defineProvider<FileConfig>({
  name: 'file',
  version: '1.0.0',
  gatehouse: '^0.1.0',
  // $secret://file/<id>/<name>: a mounted file is addressed by its name alone
  pathOptional: true,
  schema,
  // the folder is all it reads (a file in it that links outside it is refused at read time)
  access: (conf) => ({ files: { dir: conf.dir } }),
  create(conf, services: ProviderServices) {
    const dir = services.resolvePath(conf.dir);
    let isDir = false;
    try {
      isDir = statSync(dir).isDirectory();
    } catch {
      // reported below
    }
    // not refused: volumes may be mounted after the config is checked (and `validate` runs elsewhere)
    if (!isDir) services.logger.warn({ dir }, 'file provider: dir is not a folder (yet); its references are not found until it is');
    return fileBackend(dir);
  },
});
