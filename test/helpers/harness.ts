// Shared test harness of this repository's tests. The gateway, the upstreams and the log capture are
// the public test kit's (core/testing.ts), so extension authors test with what the core is tested
// with; this file adds what only the repository needs: raw TCP servers, the CLI as a child
// process, /proc readers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import assert from 'node:assert/strict';
import { Gateway } from '../../core/gateway';
import { GatehouseError } from '../../core/errors';
import { silentLogger } from '../../core/observe/log';
import { bootTestGateway, captureLogs, delay, eventually, listenOnLoopback, startUpstream, type BootOptions, type CapturedLogs, type GatewayUnderTest, type Upstream } from '../../core/testing';

export { delay, eventually, startUpstream, type Upstream };

/** A logger whose JSON lines are kept in memory (and parsed), for asserting on logs. */
export function captureLogger(level = 'info'): CapturedLogs {
  return captureLogs(level);
}

/** The kit's gateway, with `gw` for the gateway itself. */
export interface TestGateway extends GatewayUnderTest {
  readonly gw: Gateway;
}

/** Boot a real gateway on 127.0.0.1:0 from an in-memory config (or any GatewayOptions). */
export async function bootGateway(config: Record<string, unknown>, opts: BootOptions = {}): Promise<TestGateway> {
  const g = await bootTestGateway(config, opts);
  return { ...g, gw: g.gateway };
}

// Below: helpers for proxy tests (upstreams that misbehave at the TCP level). Imports are hoisted.
import { spawn } from 'node:child_process';
import { connect as netConnect, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';

/** A raw TCP server on 127.0.0.1:0 (for upstreams that misbehave below HTTP). */
export interface TcpServer {
  readonly server: NetServer;
  readonly port: number;
  /** "127.0.0.1:<port>" */
  readonly node: string;
  /** Connections accepted so far. */
  readonly accepted: () => number;
  /** Connections still open now. */
  readonly open: () => number;
  close(): Promise<void>;
}

/** Start a TCP server whose `onConnection` gets every accepted socket; all sockets are destroyed on close. */
export async function startTcpServer(onConnection: (socket: Socket) => void): Promise<TcpServer> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createNetServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  const { port, node } = await listenOnLoopback(server);
  return {
    server,
    port,
    node,
    accepted: () => accepted,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A loopback port with nothing listening on it (bound, then closed): connections are refused. */
export async function refusedPort(): Promise<number> {
  const s = createNetServer();
  const { port } = await listenOnLoopback(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A free loopback port for a process that binds it itself (bound, then closed). */
export const freePort = refusedPort;

const BLACKHOLE_PY = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.listen(0)
port = s.getsockname()[1]
fill = []
for i in range(2):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    fill.append(c)
time.sleep(0.2)
print(port, flush=True)
sys.stdin.read()
`;

/**
 * A loopback listener that never completes a TCP handshake: a python3 child listens with a backlog
 * of 0, never accepts, and fills its accept queue itself, so the kernel drops further SYNs and a
 * connect attempt hangs until the client's connect timeout. The child exits when its stdin closes.
 * Verified before returning: a probe connect must not succeed within 300 ms.
 * @throws Error when python3 is missing or the port is not a black hole
 */
export async function startBlackhole(): Promise<{ port: number; node: string; close(): Promise<void> }> {
  const child = spawn('python3', ['-c', BLACKHOLE_PY], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const close = async () => {
    child.stdin.end();
    child.kill('SIGTERM');
    await exited;
  };
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`blackhole helper exited with ${code}`)));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
  }).catch(async (err) => {
    await close();
    throw err;
  });
  const connected = await new Promise<boolean>((resolve) => {
    const probe = netConnect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      probe.destroy();
      resolve(false);
    }, 300);
    probe.once('connect', () => {
      clearTimeout(timer);
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  if (connected) {
    await close();
    throw new Error(`blackhole on port ${port} completed or refused a handshake`);
  }
  return { port, node: `127.0.0.1:${port}`, close };
}

// Below: helpers for tests that run the real `gatehouse` CLI as a child process. Imports are hoisted.
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';

/** A new empty directory under the OS temp dir (the caller removes it). */
export function tempDir(prefix = 'gatehouse-test-'): string {
  return mkdtempSync(joinPath(tmpdir(), prefix));
}

/** Absolute path of the compiled CLI entry point, dist/core/cli/main.js. */
export function cliPath(): string {
  return joinPath(__dirname, '..', '..', 'core', 'cli', 'main.js');
}

/**
 * Run `gatehouse <args>` to completion (killed after `timeoutMs`).
 * @param opts.cwd working directory (default this process's)
 * @param opts.via a command the CLI runs under, e.g. `['setpriv', ...options, '--']`
 */
export function runCli(args: readonly string[], opts: { timeoutMs?: number; cwd?: string; via?: readonly string[] } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = [...(opts.via ?? []), process.execPath, cliPath(), ...args];
  return new Promise((resolve) => {
    execFile(argv[0], argv.slice(1), { timeout: opts.timeoutMs ?? 15000, encoding: 'utf8', cwd: opts.cwd }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A running `gatehouse start` child process. */
export interface GatehouseProcess {
  readonly child: ChildProcess;
  /** Everything written to stdout so far (JSON log lines). */
  stdout(): string;
  stderr(): string;
  /** stdout parsed line by line (non-JSON lines as `{ raw }`). */
  logLines(): Array<Record<string, any>>;
  /** Settles when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL the process if it still runs, and wait for it (for `after()`). */
  kill(): Promise<void>;
}

/** Resolve once a TCP connection to 127.0.0.1:`port` succeeds; reject after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 10000, gaveUp: () => string | undefined = () => undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    const reason = gaveUp();
    if (reason !== undefined) throw new Error(reason);
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await delay(25);
  }
}

/**
 * Start `gatehouse start -c <configPath>` as a child process and wait until `port` (the config's
 * `gateway.listen` port) accepts connections. Logs are captured from stdout/stderr.
 * @param cwd its working directory (default this process's)
 */
export async function startGatehouse(configPath: string, port: number, env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<GatehouseProcess> {
  const child = spawn(process.execPath, [cliPath(), 'start', '-c', configPath], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, cwd });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve((exit = { code, signal }))),
  );
  const proc: GatehouseProcess = {
    child,
    stdout: () => out,
    stderr: () => err,
    logLines: () =>
      out
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, any>;
          } catch {
            return { raw: l };
          }
        }),
    exited,
    async kill() {
      if (exit === undefined) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  try {
    await waitForPort(port, 15000, () => (exit ? `gatehouse exited (code ${exit.code}) before listening:\n${out}${err}` : undefined));
  } catch (e) {
    await proc.kill();
    throw e;
  }
  return proc;
}


/** An upstream closed when test `t` ends. */
export async function upstreamFor(t: { after(fn: () => unknown): void }, handler?: (req: IncomingMessage, res: ServerResponse) => void, name?: string): Promise<Upstream> {
  const u = await startUpstream(handler, name);
  t.after(() => u.close());
  return u;
}

/** A gateway (in-process, port 0) closed when test `t` ends. */
export async function gatewayFor(t: { after(fn: () => unknown): void }, config: Record<string, unknown>): Promise<TestGateway> {
  const g = await bootGateway(config);
  t.after(() => g.close());
  return g;
}

// Below: what another process holds, read from /proc (Linux only), for leak checks on a gateway
// process. Imports are hoisted.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** One TCP socket a process has open. */
export interface ProcTcpSocket {
  readonly localPort: number;
  readonly remotePort: number;
  /** ESTABLISHED, LISTEN, CLOSE_WAIT, ... */
  readonly state: string;
}

const TCP_STATES: Record<string, string> = {
  '01': 'ESTABLISHED', '02': 'SYN_SENT', '03': 'SYN_RECV', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '06': 'TIME_WAIT',
  '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0A': 'LISTEN', '0B': 'CLOSING',
};

/**
 * The TCP sockets process `pid` has open: its socket descriptors (/proc/<pid>/fd) matched by inode
 * against its network namespace's tables (/proc/<pid>/net/tcp and tcp6). Sockets the kernel
 * keeps after the process closed them (TIME_WAIT) are not the process's and are not listed.
 */
export function tcpSocketsOf(pid: number): ProcTcpSocket[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed while we listed
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]);
  }
  const out: ProcTcpSocket[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || !inodes.has(cols[9])) continue;
      const port = (addr: string) => parseInt(addr.slice(addr.lastIndexOf(':') + 1), 16);
      out.push({ localPort: port(cols[1]), remotePort: port(cols[2]), state: TCP_STATES[cols[3]] ?? cols[3] });
    }
  }
  return out;
}

/** Resident set size of process `pid` in bytes (VmRSS). */
export function rssOf(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

/** Load a config file as `gatehouse start` would: the issues it is refused with (it must be refused). */
export async function loadIssues(file: string): Promise<string[]> {
  try {
    const gw = await Gateway.create({ configPath: file, logger: silentLogger(), watch: false });
    await gw.close(0);
  } catch (err) {
    assert.ok(err instanceof GatehouseError, String(err));
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('the config loaded');
}
