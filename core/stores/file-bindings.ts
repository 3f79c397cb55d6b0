// The file store's destination bindings: a folder beside the data file (gatehouse.data.json →
// gatehouse.data.bindings/), one file per credential holding its binding (bindings.ts). One file
// each, rather than one file for all, because "bind unless bound" is then one atomic step that
// needs no lock, even between the worker processes of a node sharing the folder: the binding is
// written to a temp file, flushed, and hard-linked to its name, which fails when another process
// linked it first (then its binding is the one read back and returned), as etcd's "create if
// absent". A file is never rewritten in place, so a crash leaves the old binding or the new one
// whole, at worst with an unused temp file beside it (ignored). A binding that cannot be read is
// an error naming its file, never "not bound": forgetting it would let the credential be bound anew.
import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import type { DestinationBindings } from '../contracts';
import { GatehouseError } from '../errors';
import { MemoryBindings } from '../credentials';
import { decodeBinding, encodeBinding, encodeCredential, type BindingRecord } from './bindings';

/** The bindings folder of a data file: its name without the extension, plus `.bindings`. */
export function bindingsDirOf(dataFile: string): string {
  const name = basename(dataFile);
  return join(dirname(dataFile), `${name.slice(0, name.length - extname(name).length) || name}.bindings`);
}

/** Longest file name used as is; a longer encoded credential is named by its SHA-256. */
const MAX_NAME = 200;

/**
 * The file of a credential: its name URI-encoded (no `/`), a leading dot and `*` escaped too
 * (temp files start with a dot; `*` is not portable). The hashed form starts with `%s`, which no
 * URI-encoded name can.
 */
function fileName(credential: string): string {
  const enc = encodeCredential(credential).replace(/^\./, '%2E').replace(/\*/g, '%2A');
  return enc.length <= MAX_NAME ? enc : `%sha256-${createHash('sha256').update(credential).digest('hex')}`;
}

/** A file system failure as the store's error: denied (waiting will not help) or unavailable. */
function fsFailure(err: unknown, path: string, doing: string): GatehouseError {
  const code = (err as NodeJS.ErrnoException).code;
  const denied = code === 'EACCES' || code === 'EPERM' || code === 'EROFS';
  return new GatehouseError(denied ? 'GH_ERR_STORE_DENIED' : 'GH_ERR_STORE_UNAVAILABLE', `${path}: cannot ${doing} (${code ?? (err as Error).message})`);
}

/** Flush a folder, so a link or unlink in it survives a crash; a platform that cannot is let be. */
async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Windows cannot open a folder for fsync; the rename-free design still never loses a whole binding
  } finally {
    await fh?.close();
  }
}

export class FileBindings implements DestinationBindings {
  private where: Promise<string | MemoryBindings> | undefined;
  /** One bind or unbind at a time in this process (the link keeps processes apart). */
  private tail: Promise<unknown> = Promise.resolve();

  /** @param locate the bindings folder, or undefined for a read-only store (bindings in memory); asked once */
  constructor(private readonly locate: () => Promise<string | undefined>) {}

  /** The folder, or the in-memory bindings of a read-only store. */
  private target(): Promise<string | MemoryBindings> {
    this.where ??= this.locate().then(
      (dir) => dir ?? new MemoryBindings(),
      (err: unknown) => {
        this.where = undefined; // the config file could not be read: ask again next time
        throw err;
      },
    );
    return this.where;
  }

  private serial<T>(job: () => Promise<T>): Promise<T> {
    const run = this.tail.then(job);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** The binding in `file`, or undefined when there is none. */
  private async read(file: string, credential?: string): Promise<BindingRecord | undefined> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw fsFailure(err, file, 'read the destination binding');
    }
    return decodeBinding(text, file, credential);
  }

  async list(): Promise<ReadonlyMap<string, string>> {
    const dir = await this.target();
    if (dir instanceof MemoryBindings) return dir.list();
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw fsFailure(err, dir, 'list the destination bindings');
    }
    const out = new Map<string, string>();
    for (const name of names.sort()) {
      if (name.startsWith('.')) continue; // a temp file, written or left by a crash: not a binding yet
      const file = join(dir, name);
      const record = await this.read(file);
      if (!record) continue; // unbound since the listing
      if (fileName(record.credential) !== name) throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${file}: holds the binding of ${record.credential}, which belongs in ${fileName(record.credential)}; repair or delete it`);
      out.set(record.credential, record.destination);
    }
    return out;
  }

  bind(credential: string, destination: string): Promise<string> {
    return this.serial(async () => {
      const dir = await this.target();
      if (dir instanceof MemoryBindings) return dir.bind(credential, destination);
      const file = join(dir, fileName(credential));
      const bound = await this.read(file, credential);
      if (bound !== undefined) return bound.destination;
      try {
        await mkdir(dir, { mode: 0o700 });
        await syncDir(dirname(dir));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsFailure(err, dir, 'create the destination bindings folder');
      }
      const tmp = join(dir, `.${fileName(credential).slice(0, 60)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
      try {
        const fh = await open(tmp, 'wx', 0o600);
        try {
          await fh.writeFile(encodeBinding(credential, destination));
          await fh.sync();
        } finally {
          await fh.close();
        }
        // atomic "create unless it exists": another process may have bound it meanwhile
        await link(tmp, file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsFailure(err, file, `record the destination binding of ${credential}`);
        const winner = await this.read(file, credential);
        if (winner !== undefined) return winner.destination;
        throw new GatehouseError('GH_ERR_STORE_CONFLICT', `${file}: the destination binding of ${credential} was removed while it was being recorded; try again`);
      } finally {
        await unlink(tmp).catch(() => undefined);
      }
      await syncDir(dir);
      return destination;
    });
  }

  unbind(credential: string): Promise<boolean> {
    return this.serial(async () => {
      const dir = await this.target();
      if (dir instanceof MemoryBindings) return dir.unbind(credential);
      const file = join(dir, fileName(credential));
      try {
        await unlink(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw fsFailure(err, file, `remove the destination binding of ${credential}`);
      }
      await syncDir(dir);
      return true;
    });
  }
}
