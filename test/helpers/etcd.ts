// A real etcd server (Debian's etcd-server) for tests: started on free loopback ports with a
// temporary data directory, stopped and removed afterwards. When the binary is missing it is
// installed with apt when we are root; otherwise the suite fails loudly (never skips).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { createServer as createNetServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { delay, freePort, tempDir } from './harness';

let binary: string | undefined;

/** Path of the etcd binary, installing Debian's etcd-server first when needed and possible. */
export function etcdBinary(): string {
  if (binary) return binary;
  const find = () => ['/usr/bin/etcd', '/usr/local/bin/etcd', ...(process.env.PATH ?? '').split(':').map((d) => join(d, 'etcd'))].find((p) => existsSync(p));
  let found = find();
  if (!found && process.getuid?.() === 0) {
    execFileSync('apt-get', ['update'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    execFileSync('apt-get', ['install', '-y', 'etcd-server'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    found = find();
  }
  if (!found) throw new Error('etcd is not installed and cannot be installed here (not root): run `apt-get install -y etcd-server` — these tests need a real etcd');
  return (binary = found);
}

export interface EtcdServer {
  /** "http://127.0.0.1:<client port>" */
  readonly endpoint: string;
  readonly clientPort: number;
  /** SIGKILL: an outage, data kept. */
  kill(): Promise<void>;
  /** Start again on the same ports and data directory. */
  restart(): Promise<void>;
  /** Stop for good and remove the data directory. */
  close(): Promise<void>;
  /** Everything etcd wrote to stderr (for failure messages). */
  log(): string;
}

function healthy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/health', timeout: 1000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Start a one-member etcd cluster on free ports with a new data directory. */
export async function startEtcd(): Promise<EtcdServer> {
  const bin = etcdBinary();
  const dir = tempDir('gatehouse-etcd-');
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `http://127.0.0.1:${clientPort}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const run = async () => {
    const peer = `http://127.0.0.1:${peerPort}`;
    child = spawn(
      bin,
      [
        '--name', 'n1', '--data-dir', join(dir, 'data'),
        '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `n1=${peer}`, '--initial-cluster-state', 'new',
        '--logger', 'zap', '--log-level', 'warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch === 'arm64' ? 'arm64' : '' } },
    );
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-20000)));
    const c = child;
    exited = new Promise<void>((r) => c.once('exit', () => r()));
    let gone = false;
    void exited.then(() => (gone = true));
    const deadline = Date.now() + 20000;
    while (!(await healthy(clientPort))) {
      if (gone) throw new Error(`etcd exited before it was healthy:\n${log}`);
      if (Date.now() > deadline) throw new Error(`etcd not healthy after 20 s:\n${log}`);
      await delay(50);
    }
  };
  const kill = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  await run();
  return {
    endpoint,
    clientPort,
    kill,
    restart: run,
    async close() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => log,
  };
}

/** A TCP relay to 127.0.0.1:`target` that can be cut (every connection dropped, new ones refused by reset) and restored. */
export interface Relay {
  readonly port: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startRelay(target: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  let open = true;
  const server: Server = createNetServer((client) => {
    if (!open) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut() {
      open = false;
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
    },
    restore() {
      open = true;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
