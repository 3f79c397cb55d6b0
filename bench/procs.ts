// Child processes of the bench (upstream, gateways): start, wait until ready, and always clean up.
import { stopLoad } from './load';
import { processTree } from './proc-tree';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get, type IncomingHttpHeaders } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** dist/ root of the compiled repo (this file runs as dist/bench/procs.js). */
const DIST = resolve(__dirname, '..');
const CLI = join(DIST, 'core', 'cli', 'main.js');
const GUARD = join(__dirname, 'orphan-guard.js');
const STOP_GRACE_MS = 3000;

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly port: number;
  /** File holding the child's stdout and stderr. */
  readonly logFile: string;
}

const children = new Set<ChildProcess>();
/** Pids of the programs run through exec-guard (not children of the bench itself). */
const guarded = new Set<number>();
let workDir: string | undefined;

/** A private temp dir for configs and child logs, removed by `cleanup`. */
export function benchDir(): string {
  workDir ??= mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
  return workDir;
}

/** Track a child the bench started itself (e.g. a load generator), so cleanup stops it too. */
export function adopt(proc: ChildProcess): ChildProcess {
  return track(proc);
}

function track(proc: ChildProcess): ChildProcess {
  children.add(proc);
  proc.once('exit', function untrack() {
    children.delete(proc);
  });
  return proc;
}

/**
 * Child output goes to a file, not a pipe: a pipe would make the bench process (which also runs the
 * load generator) spend CPU reading access-log lines, and a full pipe would stall the child.
 */
function logFd(name: string): { fd: number; file: string } {
  const file = join(benchDir(), `${name}.log`);
  return { fd: openSync(file, 'w'), file };
}

/** Last lines of a child's log, for error messages. */
export function logTail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** The upstream in its own process; resolves once it listens (it reports its port over IPC). */
export function startUpstream(): Promise<Child> {
  return startForked('upstream', join(__dirname, 'upstream.js'));
}

/**
 * A Node script of the bench in its own tracked process (output to `<name>.log`). The script listens
 * on a port of its choice and reports it over IPC (`process.send({ port })`); it must exit when the
 * IPC channel closes (the bench died) and on SIGTERM.
 */
export function startForked(name: string, script: string, env: Record<string, string> = {}, args: readonly string[] = []): Promise<Child> {
  const { fd, file } = logFd(name);
  const proc = track(fork(script, [...args], { stdio: ['ignore', fd, fd, 'ipc'], env: { ...process.env, ...env } }));
  closeSync(fd);
  return new Promise<Child>(function waitForPort(ok, fail) {
    proc.once('message', function onPort(m: { port: number }) {
      proc.off('exit', onExit);
      ok({ name, proc, port: m.port, logFile: file });
    });
    function onExit(code: number | null, signal: string | null): void {
      fail(new Error(`${name} exited before listening (code ${code}, signal ${signal})\n${logTail(file)}`));
    }
    proc.once('exit', onExit);
  });
}

/**
 * A non-Node program (nginx) in its own tracked process, started through `exec-guard.js`: a
 * small Node parent that passes SIGTERM on and kills the program when the bench dies (even by
 * SIGKILL), which a plain spawn could not promise. Resolves with the guard's process and the
 * program's own pid (reported by the guard over IPC).
 */
export function spawnGuarded(name: string, command: string, args: readonly string[]): Promise<{ proc: ChildProcess; pid: number; logFile: string }> {
  const { fd, file } = logFd(name);
  const proc = track(fork(join(__dirname, 'exec-guard.js'), [command, ...args], { stdio: ['ignore', fd, fd, 'ipc'] }));
  closeSync(fd);
  return new Promise(function waitForPid(ok, fail) {
    proc.once('message', function onPid(m: { pid?: number; error?: string }) {
      proc.off('exit', onExit);
      if (m.pid === undefined) return fail(new Error(`${name}: ${m.error ?? 'could not start'}`));
      const pid = m.pid;
      guarded.add(pid);
      proc.once('exit', () => guarded.delete(pid));
      ok({ proc, pid, logFile: file });
    });
    function onExit(code: number | null, signal: string | null): void {
      fail(new Error(`${name} exited before starting (code ${code}, signal ${signal})\n${logTail(file)}`));
    }
    proc.once('exit', onExit);
  });
}

/** A port that was free a moment ago (the gateway config needs a concrete port). */
export function freePort(): Promise<number> {
  return new Promise<number>(function probe(ok, fail) {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', function release() {
      const { port } = s.address() as AddressInfo;
      s.close(() => ok(port));
    });
  });
}

export interface GatewaySpec {
  /** Short name: file names and messages. */
  readonly name: string;
  readonly upstreamPort: number;
  readonly accessLog: boolean;
  /** Path the route matches and the readiness probe requests. */
  readonly path: string;
}

function gatewayYaml(spec: GatewaySpec, port: number): string {
  return [
    'gateway:',
    `  listen: 127.0.0.1:${port}`,
    `  access_log: ${spec.accessLog}`,
    'routes:',
    `  - id: ${spec.name}`,
    `    uri: ${spec.path}`,
    '    upstream:',
    '      type: roundrobin',
    '      nodes:',
    `        "127.0.0.1:${spec.upstreamPort}": 1`,
    '',
  ].join('\n');
}

/**
 * Gatehouse through its real CLI (`gatehouse start -c <yaml>`) in its own process. Ready means a
 * request through the route came back 200 with the upstream's exact body.
 */
export async function startGateway(spec: GatewaySpec, expectBody: Buffer): Promise<Child> {
  // freePort() can race another process for the port: retry a couple of times on EADDRINUSE
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = join(benchDir(), `${spec.name}.yaml`);
    const yaml = gatewayYaml(spec, port);
    writeFileSync(config, yaml);
    const { proc, logFile: file } = spawnGateway(spec.name, config);
    try {
      await waitReady(proc, port, spec.path, expectBody);
      return { name: spec.name, proc, port, logFile: file };
    } catch (err) {
      await stop(proc);
      const tail = logTail(file);
      if (attempt < 3 && tail.includes('EADDRINUSE')) continue;
      // the temp dir is removed on exit, so the config and log go into the message
      throw new Error(`${spec.name}: ${(err as Error).message}\nconfig:\n${yaml}last log lines:\n${tail}`);
    }
  }
}

/**
 * The real CLI (`gatehouse start -c <config>`) in its own tracked process, output to `<name>.log`.
 * Returns at once; readiness is the caller's to check.
 */
export function spawnGateway(name: string, config: string, nodeArgs: readonly string[] = []): { proc: ChildProcess; logFile: string } {
  return spawnNode(name, CLI, ['start', '-c', config], nodeArgs);
}

/**
 * A Node script in its own tracked process, with the orphan guard preloaded (it SIGTERMs the
 * process when the bench dies), output to `<name>.log`. Returns at once; readiness is the caller's.
 */
export function spawnNode(name: string, script: string, args: readonly string[], nodeArgs: readonly string[] = []): { proc: ChildProcess; logFile: string } {
  const { fd, file } = logFd(name);
  // the preloaded guard only listens for the bench's IPC channel closing
  const proc = track(spawn(process.execPath, [...nodeArgs, '-r', GUARD, script, ...args], { stdio: ['ignore', fd, fd, 'ipc'] }));
  closeSync(fd);
  return { proc, logFile: file };
}

/** Poll (every 50 ms) until a GET of `path` with `headers` answers 200 with `expectBody`. */
export async function waitReady(proc: ChildProcess, port: number, path: string, expectBody: Buffer, timeoutMs = 10_000, headers: Record<string, string> = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`exited during startup (code ${proc.exitCode}, signal ${proc.signalCode})`);
    try {
      const r = await getOnce(port, path, headers);
      if (r.status === 200 && r.body.equals(expectBody)) return;
      last = `HTTP ${r.status}: ${r.body.toString('utf8').slice(0, 200)}`;
    } catch (err) {
      last = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not ready after ${timeoutMs} ms (last probe: ${last})`);
}

/** One GET on a fresh connection. */
export function getOnce(port: number, path: string, headers: Record<string, string> = {}, timeoutMs = 2000): Promise<{ status: number; body: Buffer; headers: IncomingHttpHeaders }> {
  return new Promise(function request(ok, fail) {
    const req = get({ host: '127.0.0.1', port, path, headers, agent: false, timeout: timeoutMs }, function onResponse(res) {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', fail);
  });
}

/** SIGTERM (the gateway drains), then SIGKILL after a grace period. */
export function stop(proc: ChildProcess, graceMs = STOP_GRACE_MS): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise<void>(function awaitExit(ok) {
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.once('exit', function exited() {
      clearTimeout(timer);
      ok();
    });
    proc.kill('SIGTERM');
  });
}

/** Stop every child still running and remove the temp dir. Safe to call more than once. */
export async function cleanup(): Promise<void> {
  // not .map(stop): map's index would become stop's grace period (a SIGKILL 0, 1, 2… ms later)
  await Promise.all([...children].map((p) => stop(p)));
  removeWorkDir();
}

/** Last resort from a synchronous `exit` handler: no waiting possible, so SIGKILL. */
export function killAllNow(): void {
  // a program behind exec-guard would outlive its SIGKILLed guard: kill its whole tree by pid
  for (const pid of guarded) for (const p of processTree(pid)) killQuietly(p);
  for (const proc of children) proc.kill('SIGKILL');
  removeWorkDir();
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function removeWorkDir(): void {
  if (workDir === undefined) return;
  rmSync(workDir, { recursive: true, force: true });
  workDir = undefined;
}

/** How many times `needle` occurs in a child's log file (e.g. access-log lines). */
export function countInLog(file: string, needle: string): number {
  const buf = readFileSync(file);
  const n = Buffer.from(needle);
  let count = 0;
  for (let i = buf.indexOf(n); i !== -1; i = buf.indexOf(n, i + n.length)) count++;
  return count;
}

/** CPU seconds (user + system) a process has used so far, from /proc; undefined where unavailable. */
export function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the ")" that closes the command name: utime is the 12th, stime the 13th
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

// USER_HZ is 100 on every mainstream Linux build; Node offers no sysconf() to ask
const CLOCK_TICKS = 100;

let interrupted = false;

/** True once Ctrl-C / kill started the teardown (errors from the torn-down run are then expected). */
export function wasInterrupted(): boolean {
  return interrupted;
}

/** Ctrl-C / kill: stop the load, stop the children, then exit; a second signal kills them outright. */
function onSignal(signal: NodeJS.Signals): void {
  const code = 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1);
  if (interrupted) {
    killAllNow();
    process.exit(code);
  }
  interrupted = true;
  process.stderr.write(`\n${signal}: stopping the bench and its child processes\n`);
  stopLoad();
  cleanup().finally(() => process.exit(code));
}

/** Signals and exit never leave a child process behind. */
export function installCleanupHandlers(): void {
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  // whatever else ends the process (an uncaught error, process.exit): no child may outlive it
  process.on('exit', killAllNow);
}

/** A flag's whole number, at least `min`; the error names the flag and what it got. */
export function wholeNumber(flag: string, raw: string, min: number): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

/**
 * The entry point every flag-taking bench shares: parse the flags (exit 2 with the usage on a
 * bad one), install the cleanup handlers, run, clean up, exit with the bench's code (1 when it
 * throws). After Ctrl-C the signal handler owns the exit.
 */
export async function runBench<F>(name: string, usage: string, parse: (argv: string[]) => F, bench: (flags: F) => Promise<number>, banner?: string): Promise<void> {
  let flags: F;
  try {
    flags = parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}\n`);
    process.exit(2);
  }
  installCleanupHandlers();
  if (banner !== undefined) process.stdout.write(banner);
  let code: number;
  try {
    code = await bench(flags);
  } catch (err) {
    // after Ctrl-C, errors from the torn-down run are expected; onSignal owns the exit
    if (wasInterrupted()) return;
    process.stderr.write(`${name} failed: ${(err as Error).stack ?? err}\n`);
    code = 1;
  }
  if (wasInterrupted()) return;
  await cleanup();
  process.exit(code);
}
