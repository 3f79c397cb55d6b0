// Leak tap (docs/security.md, "How it is checked"). scripts/run-tests.js preloads this file into every Node process of a test run
// (NODE_OPTIONS=--require) with GATEHOUSE_LEAK_TAP naming a directory. Each process then copies what
// it lets out into files there — stdout and stderr (pino writes fd 1 directly, so fs writes to fds 1
// and 2 too), Admin API and /metrics response bodies, uncaught errors and warnings, and the lines of
// the in-memory test loggers — and records the secret values the run plants (values the test Vault
// and Secrets Manager hold or issue, env variables tests set) as canaries. After the run,
// test/helpers/leak-scan.ts looks for every canary in every file. Without the variable this module
// does nothing, so the test servers and harness can import it unconditionally.
import fs = require('node:fs');
import http = require('node:http');
import childProcess = require('node:child_process');
import { randomBytes } from 'node:crypto';
import { basename, join } from 'node:path';

/** The variable naming the tap directory. */
export const TAP_ENV = 'GATEHOUSE_LEAK_TAP';
/** Subdirectory of the tap directory holding the canaries (JSON lines `{ source, value }`), not scanned. */
export const CANARY_DIR = 'canaries';

/** What a tap file holds: one file per process and stream. */
export type TapStream = 'stdout' | 'stderr' | 'admin' | 'log' | 'error';

export interface LeakTap {
  /** Append what a process let out on `stream`. */
  record(stream: TapStream, chunk: unknown, encoding?: unknown): void;
  /** Record a planted secret value (strings only; the scanner decides which are long enough). */
  plant(source: string, value: unknown): void;
}

// a global, not a module variable: core/testing.ts cannot import test code, and a second copy of
// this module (another path to the same file) must find the installed tap rather than install one
const HOOK = Symbol.for('gatehouse.leak-tap');
type Global = { [HOOK]?: LeakTap };

/** The installed tap, if this process runs under one. */
export function leakTap(): LeakTap | undefined {
  return (globalThis as Global)[HOOK];
}

/** Record secret values a test server holds or issues (strings; objects and arrays by their string leaves). */
export function plantCanary(source: string, ...values: unknown[]): void {
  const tap = leakTap();
  if (!tap) return;
  const walk = (v: unknown, depth: number): void => {
    if (typeof v === 'string') tap.plant(source, v);
    else if (depth < 8 && Array.isArray(v)) for (const x of v) walk(x, depth + 1);
    else if (depth < 8 && v !== null && typeof v === 'object') for (const x of Object.values(v)) walk(x, depth + 1);
  };
  for (const v of values) walk(v, 0);
}

/** Record lines an in-memory test logger captured (they never reach stdout). */
export function tapLog(text: string): void {
  leakTap()?.record('log', text);
}

/**
 * Env variables that hold planted secrets: the tests' GH_* variables and any name that says key,
 * secret, token, password or credential — but not a file, path, directory, id, URL or address
 * (AWS_ACCESS_KEY_ID, AWS_SHARED_CREDENTIALS_FILE). npm's and node's own variables (INIT_CWD,
 * NODE, npm_*) and config paths are not secrets. A generated admin key is in no environment: it is
 * planted from the stderr line that prints it (the scanner exempts only that line).
 */
const SECRET_ENV = /^GH_|KEY|SECRET|TOKEN|PASSW|_PW$|CRED/;
/** The line `gatehouse start` prints a generated admin key on (core/admin/access.ts). */
const GENERATED_KEY_LINE = /this run's admin key \(X-API-KEY\) is (\S+)/;
const NOT_SECRET_ENV = /(?:_FILE|_PATH|_DIR|_ID|_URL|_ADDR)$|^(?:npm_|NODE_)|^GATEHOUSE_LEAK_TAP$/;
const secretEnv = (name: string) => SECRET_ENV.test(name) && !NOT_SECRET_ENV.test(name);

/** Paths of the Admin API listener (core/admin/server.ts) and of /metrics. */
const ADMIN_PATH = /^\/(?:apisix\/admin|admin)(?:\/|$)|^\/metrics$/;

const ADMIN_FLAG = Symbol('gatehouse.leak-tap.admin');

/** A short, value-free name for this process: the script and, for the CLI, its command. */
function processLabel(): string {
  if (process.execArgv.includes('--test')) return 'test-runner';
  const script = process.argv[1] ? basename(process.argv[1]) : 'node';
  const parts = [script];
  const sub = process.argv[2];
  // only known words: an argument could be a secret, and file names end up in reports
  if (script === 'main.js' && sub !== undefined && /^(?:start|validate|secret|new|init|version)$/.test(sub)) parts.push(sub);
  if (process.argv.includes('--reveal')) parts.push('reveal');
  if (process.env.NODE_UNIQUE_ID !== undefined) parts.push('worker');
  return parts.join('-').replace(/[^A-Za-z0-9._-]/g, '_');
}

function toBuffer(chunk: unknown, encoding: unknown): Buffer | undefined {
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' && Buffer.isEncoding(encoding) ? encoding : 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return undefined;
}

/** The bytes an fs.write/fs.writeSync call writes: (fd, buffer, offset?, length?, …) or (fd, string, position?, encoding?). */
function written(data: unknown, rest: unknown[]): { chunk: unknown; encoding?: unknown } {
  if (data instanceof Uint8Array && typeof rest[0] === 'number') {
    const off = rest[0];
    const len = typeof rest[1] === 'number' ? rest[1] : data.byteLength - off;
    return { chunk: data.subarray(off, off + len) };
  }
  if (typeof data === 'string') return { chunk: data, encoding: typeof rest[0] === 'string' ? rest[0] : rest[1] };
  return { chunk: data };
}

function install(dir: string): LeakTap {
  const id = `${processLabel()}.${process.pid}.${randomBytes(3).toString('hex')}`;
  const rawWriteSync = fs.writeSync;
  const rawWrite = fs.write;
  const fds = new Map<string, number>();
  const planted = new Set<string>();
  // set while process.stdout/stderr.write runs: a file-backed stdout writes through fs.writeSync
  let inStreamWrite = 0;

  const append = (name: string, buf: Buffer) => {
    try {
      let fd = fds.get(name);
      if (fd === undefined) {
        fd = fs.openSync(join(dir, name), 'a', 0o600);
        fds.set(name, fd);
      }
      rawWriteSync(fd, buf);
    } catch {
      // the tap must never break the process it watches
    }
  };

  const tap: LeakTap = {
    record(stream, chunk, encoding) {
      const buf = toBuffer(chunk, encoding);
      if (!buf || !buf.length) return;
      append(`${id}.${stream}`, buf);
      // a generated admin key lives only in memory and on this one stderr line: plant it from there
      if (stream === 'stderr') {
        const m = GENERATED_KEY_LINE.exec(buf.toString('latin1'));
        if (m) tap.plant('generated admin key (printed on stderr)', m[1]);
      }
    },
    plant(source, value) {
      if (typeof value !== 'string' || value === '' || value.length > 65536) return;
      const key = `${source}\0${value}`;
      if (planted.has(key)) return;
      planted.add(key);
      append(join(CANARY_DIR, `${id}.jsonl`), Buffer.from(`${JSON.stringify({ source: `${source} (${id})`, value })}\n`));
    },
  };

  for (const name of ['stdout', 'stderr'] as const) {
    const stream = process[name];
    const original = stream.write;
    stream.write = function (this: unknown, chunk: unknown, ...rest: unknown[]) {
      tap.record(name, chunk, typeof rest[0] === 'string' ? rest[0] : undefined);
      inStreamWrite++;
      try {
        return (original as (...a: unknown[]) => boolean).apply(this, [chunk, ...rest]);
      } finally {
        inStreamWrite--;
      }
    } as typeof stream.write;
  }

  // pino's destination (sonic-boom) writes fds 1 and 2 with fs.write / fs.writeSync
  const fdStream = (fd: unknown): TapStream | undefined => (inStreamWrite > 0 ? undefined : fd === 1 ? 'stdout' : fd === 2 ? 'stderr' : undefined);
  const tapFd = (fd: number, data: unknown, rest: unknown[]): void => {
    const s = fdStream(fd);
    if (!s) return;
    const w = written(data, rest);
    tap.record(s, w.chunk, w.encoding);
  };
  (fs as { writeSync: unknown }).writeSync = function (fd: number, data: unknown, ...rest: unknown[]) {
    tapFd(fd, data, rest);
    return (rawWriteSync as (...a: unknown[]) => number).call(fs, fd, data, ...rest);
  };
  (fs as { write: unknown }).write = function (fd: number, data: unknown, ...rest: unknown[]) {
    tapFd(fd, data, rest);
    return (rawWrite as (...a: unknown[]) => void).call(fs, fd, data, ...rest);
  };

  // Admin API and /metrics bodies, on whichever server answers those paths; proxied and upstream
  // bodies are not taps (upstreams echo what clients send, secrets included, by design)
  const isAdmin = (res: http.ServerResponse & { [ADMIN_FLAG]?: boolean }): boolean => {
    if (res[ADMIN_FLAG] === undefined) {
      let admin = false;
      try {
        admin = ADMIN_PATH.test(new URL(res.req?.url ?? '', 'http://tap.invalid').pathname);
      } catch {
        admin = false;
      }
      res[ADMIN_FLAG] = admin;
    }
    return res[ADMIN_FLAG];
  };
  const proto = http.ServerResponse.prototype;
  const rawResWrite = proto.write;
  const rawResEnd = proto.end;
  proto.write = function (this: http.ServerResponse, chunk: unknown, ...rest: unknown[]) {
    if (isAdmin(this)) tap.record('admin', chunk, typeof rest[0] === 'string' ? rest[0] : undefined);
    return (rawResWrite as (...a: unknown[]) => boolean).apply(this, [chunk, ...rest]);
  } as typeof proto.write;
  proto.end = function (this: http.ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    if (typeof chunk !== 'function' && isAdmin(this)) tap.record('admin', chunk, typeof rest[0] === 'string' ? rest[0] : undefined);
    return (rawResEnd as (...a: unknown[]) => http.ServerResponse).apply(this, [chunk, ...rest]);
  } as typeof proto.end;

  // node prints a fatal error from C++, past process.stderr; the monitor sees it without handling it
  process.on('uncaughtExceptionMonitor', (err: unknown) => tap.record('error', `${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`));
  process.on('warning', (w: Error) => tap.record('error', `${w.name}: ${w.message}\n`));

  // env values a test sets are planted secrets: in this process (process.env writes) and in the
  // children it starts (env entries that differ from ours; spawn, execFile, fork and cluster pass here)
  const realEnv = process.env;
  process.env = new Proxy(realEnv, {
    set(target, key, value) {
      target[key as string] = value;
      if (typeof key === 'string' && secretEnv(key)) tap.plant(`env ${key}`, target[key]);
      return true;
    },
  });
  const proto2 = childProcess.ChildProcess.prototype as unknown as { spawn(options: { envPairs?: string[] }): unknown };
  const rawSpawn = proto2.spawn;
  proto2.spawn = function (this: unknown, options: { envPairs?: string[] }) {
    for (const pair of options?.envPairs ?? []) {
      const eq = pair.indexOf('=');
      const key = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (eq > 0 && realEnv[key] !== value && secretEnv(key)) tap.plant(`env ${key} of a child`, value);
    }
    return rawSpawn.call(this, options);
  };
  // the synchronous ones do not go through ChildProcess: their options' env, against ours
  const cp = childProcess as unknown as Record<'spawnSync' | 'execFileSync' | 'execSync', (...a: unknown[]) => unknown>;
  for (const name of ['spawnSync', 'execFileSync', 'execSync'] as const) {
    const raw = cp[name];
    cp[name] = function (this: unknown, ...args: unknown[]) {
      const options = args.find((a): a is { env?: Record<string, unknown> } => a !== null && typeof a === 'object' && !Array.isArray(a));
      for (const [key, value] of Object.entries(options?.env ?? {})) {
        if (typeof value === 'string' && realEnv[key] !== value && secretEnv(key)) tap.plant(`env ${key} of a child`, value);
      }
      return raw.apply(this, args);
    };
  }
  return tap;
}

const dir = process.env[TAP_ENV];
if (dir && !leakTap()) {
  try {
    fs.mkdirSync(join(dir, CANARY_DIR), { recursive: true });
    (globalThis as Global)[HOOK] = install(dir);
  } catch {
    // no tap directory: this process is not watched (the scan fails a run that produced no tap files)
  }
}
