// Running npm (and other commands) from tests as a user would in a shell: real npm, a clean
// environment, output kept for the failure message.
import { spawn, type ChildProcess } from 'node:child_process';

/**
 * The environment without the npm_* variables of an enclosing `npm test` (they would steer the inner
 * npm) and without NODE_TEST_CONTEXT (with it, a nested `node --test` skips every file and exits 0).
 */
export function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'NODE_TEST_CONTEXT') env[k] = v;
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
}

/** What a command printed: `stdout` alone, and `out`, stdout and stderr interleaved as they came. */
export interface ShOutput {
  readonly stdout: string;
  readonly out: string;
}

/** Run a command to completion; rejects with its output when it fails or outlives `timeoutMs`. */
export function sh(cmd: string, args: readonly string[], cwd: string, timeoutMs: number, env: NodeJS.ProcessEnv = npmEnv()): Promise<ShOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let out = '';
    child.stdout.on('data', (d: Buffer) => ((stdout += d), (out += d)));
    child.stderr.on('data', (d: Buffer) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, out });
      else reject(new Error(`${cmd} ${args.join(' ')} (in ${cwd}) ${signal ? `was killed (${signal}) after ${timeoutMs} ms` : `exited ${code}`}:\n${out}`));
    });
  });
}

/**
 * The closing counts of a `node --test` run, whichever reporter printed them: TAP (`# pass 5`, the
 * default without a terminal on Node 20) or spec (`ℹ pass 5`, Node 22 and later).
 */
export function testCounts(output: string): { pass: number; fail: number } | undefined {
  const found = new Map<string, number>();
  for (const m of output.matchAll(/^(?:#|ℹ) (pass|fail) (\d+)$/gm)) found.set(m[1], Number(m[2]));
  const pass = found.get('pass');
  const fail = found.get('fail');
  return pass === undefined || fail === undefined ? undefined : { pass, fail };
}

/** A long-running command (`npm start`) in its own process group, so that a signal reaches npm, its shell and the program. */
export interface Started {
  readonly child: ChildProcess;
  /** Everything it printed so far, stdout and stderr. */
  log(): string;
  readonly exited: () => boolean;
  /** Resolves when it has exited. */
  readonly closed: Promise<void>;
  /** Signal the whole group. */
  kill(signal: NodeJS.Signals): void;
}

/** Start `cmd args` in `cwd` as its own process group (as a shell does for a job). */
export function startGroup(cmd: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = npmEnv()): Started {
  const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d));
  child.stderr!.on('data', (d: Buffer) => (log += d));
  let exited = false;
  const closed = new Promise<void>((r) =>
    child.once('close', () => {
      exited = true;
      r();
    }),
  );
  return {
    child,
    log: () => log,
    exited: () => exited,
    closed,
    kill: (signal) => {
      if (!exited) process.kill(-child.pid!, signal);
    },
  };
}
