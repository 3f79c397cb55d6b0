// A real Redis server (Debian's redis-server) for tests: started on a free loopback port with a
// temporary directory and no persistence, stopped and removed afterwards. When the binary is
// missing it is installed with apt when we are root; otherwise the suite fails loudly (never skips).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { delay, freePort, tempDir } from '../helpers/harness';
import { debianBinary, lifecycle } from './debian';

/** Path of redis-server, installing Debian's redis-server package first when needed and possible. */
export function redisBinary(): string {
  return debianBinary('redis-server', 'redis-server', 'a real Redis');
}

export interface RedisServer {
  readonly port: number;
  /** The password it requires (`--requirepass`), if any. */
  readonly password: string | undefined;
  /** True when it speaks only TLS (a self-signed certificate for `localhost`). */
  readonly tls: boolean;
  /** Stop the server (SIGKILL: an outage); `restart` brings it back on the same port. */
  kill(): Promise<void>;
  /** Start again on the same port (an empty dataset: nothing is persisted). */
  restart(): Promise<void>;
  /** Stop for good and remove the temporary directory. */
  close(): Promise<void>;
  /** Send one command on a new connection and return its reply (errors as `Error` values). */
  command(...args: string[]): Promise<RespReply>;
  /** What redis-server wrote to stdout/stderr (for failure messages). */
  log(): string;
}

/** A RESP reply: simple/bulk strings, integers, errors (as `Error`), nil (null) and arrays. */
export type RespReply = string | number | null | Error | RespReply[];

/** Parse one RESP reply from `buf` at `at`; undefined when the reply is not complete yet. */
function parseReply(buf: string, at: number): { value: RespReply; end: number } | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol === -1) return undefined;
  const type = buf[at];
  const line = buf.slice(at + 1, eol);
  if (type === '+') return { value: line, end: eol + 2 };
  if (type === '-') return { value: new Error(line), end: eol + 2 };
  if (type === ':') return { value: Number(line), end: eol + 2 };
  if (type === '$') {
    const n = Number(line);
    if (n === -1) return { value: null, end: eol + 2 };
    if (buf.length < eol + 2 + n + 2) return undefined;
    return { value: buf.slice(eol + 2, eol + 2 + n), end: eol + 2 + n + 2 };
  }
  if (type === '*') {
    const n = Number(line);
    if (n === -1) return { value: null, end: eol + 2 };
    const items: RespReply[] = [];
    let pos = eol + 2;
    for (let i = 0; i < n; i++) {
      const r = parseReply(buf, pos);
      if (!r) return undefined;
      items.push(r.value);
      pos = r.end;
    }
    return { value: items, end: pos };
  }
  throw new Error(`unexpected RESP reply ${JSON.stringify(buf.slice(at, eol))}`);
}

/** One command on a fresh connection (AUTH first when a password is set); resolves with its reply. */
function rawCommand(port: number, password: string | undefined, tls: boolean, args: string[]): Promise<RespReply> {
  const encode = (a: string[]) => `*${a.length}\r\n${a.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    const s = tls ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : connect(port, '127.0.0.1');
    let buf = '';
    s.setTimeout(2000, () => s.destroy(new Error('redis command timed out')));
    s.once('error', reject);
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let pos = 0;
      const replies: RespReply[] = [];
      for (let r = parseReply(buf, pos); r; r = parseReply(buf, pos)) {
        replies.push(r.value);
        pos = r.end;
      }
      if (replies.length >= (password === undefined ? 1 : 2)) {
        s.end();
        resolve(replies[replies.length - 1]);
      }
    });
    s.write((password === undefined ? '' : encode(['AUTH', password])) + encode(args));
  });
}

/**
 * Start redis-server on a free loopback port: `--port P --dir D --save '' --appendonly no`,
 * `--requirepass` when `password` is given, and with `tls` TLS only (`--port 0 --tls-port P`, a
 * self-signed certificate made with openssl in the temporary directory). Resolves once it answers PING.
 */
export async function startRedis(opts: { password?: string; tls?: boolean } = {}): Promise<RedisServer> {
  const bin = redisBinary();
  const dir = tempDir('gatehouse-redis-');
  const port = await freePort();
  const tls = opts.tls === true;
  if (tls) {
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`openssl could not make the test certificate (apt-get install -y openssl): ${(err as Error).message}`);
    }
  }
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const run = async () => {
    const args = ['--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'];
    if (tls) args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', join(dir, 'cert.pem'), '--tls-key-file', join(dir, 'key.pem'), '--tls-auth-clients', 'no');
    else args.push('--port', String(port));
    if (opts.password !== undefined) args.push('--requirepass', opts.password);
    child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const c = child;
    const keep = (d: string) => (log = (log + d).slice(-20000));
    c.stdout!.setEncoding('utf8').on('data', keep);
    c.stderr!.setEncoding('utf8').on('data', keep);
    exited = new Promise<void>((r) => c.once('exit', () => r()));
    let gone = false;
    void exited.then(() => (gone = true));
    const deadline = Date.now() + 10000;
    for (;;) {
      const reply = await rawCommand(port, opts.password, tls, ['PING']).catch(() => '');
      if (reply === 'PONG') return;
      if (gone) throw new Error(`redis-server exited before it answered PING:\n${log}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING within 10 s:\n${log}`);
      await delay(25);
    }
  };
  const kill = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  try {
    await run();
  } catch (err) {
    await kill();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    password: opts.password,
    tls,
    ...lifecycle(run, kill, dir),
    command: (...args: string[]) => rawCommand(port, opts.password, tls, args),
    log: () => log,
  };
}
