// Shared by the fault tests under concurrent load (test/faults-traffic-*.test.ts): a `gatehouse start`
// process on free loopback ports, what it holds (its sockets, read from /proc) and counted (/metrics),
// bounded clients and a tally of what they got, and raw TCP upstreams that misbehave once the request
// is in.
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { freePort, startGatehouse, startTcpServer, tcpSocketsOf, tempDir, waitForPort, type GatehouseProcess, type TcpServer, type Upstream } from './harness';

export const ADMIN_KEY = 'faults-traffic-admin-key';
/** No client request may take longer than this; one that does is a hang. */
export const BOUND_MS = 15_000;
export const MiB = 1024 * 1024;

export interface Gh {
  readonly proc: GatehouseProcess;
  readonly pid: number;
  readonly port: number;
  /** "http://127.0.0.1:<proxy port>" */
  readonly url: string;
  /** "http://127.0.0.1:<admin port>" */
  readonly admin: string;
  /** The config file it watches. */
  readonly file: string;
  /** The config file text for these data sections (same ports and admin key), to edit the file with. */
  doc(data: Record<string, unknown>, gateway?: Record<string, unknown>): string;
}

/** `gatehouse start` on free loopback ports with an Admin API, from `data` (routes, upstreams). */
export async function gatehouse(t: TestContext, data: Record<string, unknown>, gateway: Record<string, unknown> = {}): Promise<Gh> {
  const dir = tempDir('gatehouse-faults-');
  const port = await freePort();
  const adminPort = await freePort();
  const file = join(dir, 'gatehouse.yaml');
  const doc = (d: Record<string, unknown>, g: Record<string, unknown> = gateway) =>
    JSON.stringify({ gateway: { listen: `127.0.0.1:${port}`, access_log: false, log_level: 'warn', drain_timeout: 1, ...g }, admin: { key: ADMIN_KEY, listen: `127.0.0.1:${adminPort}` }, ...d }, null, 2);
  writeFileSync(file, doc(data));
  const proc = await startGatehouse(file, port);
  t.after(async () => {
    await proc.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  await waitForPort(adminPort);
  return { proc, pid: proc.child.pid!, port, url: `http://127.0.0.1:${port}`, admin: `http://127.0.0.1:${adminPort}`, file, doc };
}

/** Connections from clients the gateway process holds (any state but LISTEN). */
export const clientSockets = (gh: Gh) => tcpSocketsOf(gh.pid).filter((s) => s.localPort === gh.port && s.state !== 'LISTEN');
/** Connections the gateway process holds to the given upstream ports. */
export const upstreamSockets = (gh: Gh, ports: readonly number[]) => tcpSocketsOf(gh.pid).filter((s) => ports.includes(s.remotePort));

export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** The gateway's /metrics (Prometheus text), parsed. */
export async function metrics(gh: Gh): Promise<Sample[]> {
  const agent = new Agent();
  try {
    const r = await request(`${gh.admin}/metrics`, { dispatcher: agent });
    assert.equal(r.statusCode, 200);
    const out: Sample[] = [];
    for (const line of (await r.body.text()).split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) continue;
      const labels: Record<string, string> = {};
      for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
      out.push({ name: m[1], labels, value: Number(m[3]) });
    }
    return out;
  } finally {
    await agent.close();
  }
}

/** Sum of the samples named `name` whose labels include `match`. */
export function total(samples: readonly Sample[], name: string, match: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

/** Run `job(0..count-1)` with at most `concurrency` at once. */
export async function pool<T>(count: number, concurrency: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(count, concurrency) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await job(i);
      }
    }),
  );
  return out;
}

export interface Outcome {
  /** 0: no response head */
  readonly status: number;
  readonly body: string;
  /** Error code while waiting for the head or reading the body; null when the body ended. */
  readonly error: string | null;
  readonly ms: number;
}

const errorCode = (err: unknown) => (err as { code?: string }).code ?? (err as Error).name;
/** Errors a client sees only when it gave up waiting: a hang, not an answer. */
export const GAVE_UP = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'AbortError', 'TimeoutError']);

/** One request, bounded by BOUND_MS. `onHead` runs once, when the first body chunk arrived. */
export async function send(agent: Agent, url: string, o: { method?: 'GET' | 'POST'; body?: Buffer; onHead?: () => void } = {}): Promise<Outcome> {
  const t0 = Date.now();
  let status = 0;
  try {
    const r = await request(url, { method: o.method ?? 'GET', body: o.body, dispatcher: agent, headersTimeout: BOUND_MS, bodyTimeout: BOUND_MS, signal: AbortSignal.timeout(BOUND_MS) });
    status = r.statusCode;
    const chunks: Buffer[] = [];
    let first = true;
    for await (const c of r.body) {
      chunks.push(c as Buffer);
      if (first) o.onHead?.();
      first = false;
    }
    return { status, body: Buffer.concat(chunks).toString('latin1'), error: null, ms: Date.now() - t0 };
  } catch (err) {
    return { status, body: '', error: errorCode(err), ms: Date.now() - t0 };
  }
}

/** Tally of outcomes, e.g. { "200": 40, "502": 12, "200+UND_ERR_SOCKET": 3 }. */
export function tally(outs: readonly Outcome[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const o of outs) {
    const k = o.error === null ? String(o.status) : `${o.status}+${o.error}`;
    t[k] = (t[k] ?? 0) + 1;
  }
  return t;
}

/**
 * Read one HTTP/1.1 request (head, then a Content-Length or chunked body) from a raw socket, then
 * call `done` with the request target. For upstreams that misbehave once the request is in.
 */
export function onRequest(socket: Socket, done: (target: string) => void): void {
  let buf = Buffer.alloc(0);
  const onData = (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    const end = buf.indexOf('\r\n\r\n');
    if (end === -1) return;
    const head = buf.subarray(0, end).toString('latin1');
    const body = buf.length - end - 4;
    const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
    if (cl ? body < Number(cl[1]) : chunked && !buf.subarray(end).includes('\r\n0\r\n\r\n')) return;
    socket.off('data', onData);
    done(head.split(' ')[1]);
  };
  socket.on('data', onData);
}

export async function tcpFor(t: TestContext, onConnection: (socket: Socket) => void): Promise<TcpServer> {
  const s = await startTcpServer(onConnection);
  t.after(() => s.close());
  return s;
}

export const connections = (u: Upstream) => new Promise<number>((resolve, reject) => u.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

/** Log lines of failed upstream attempts of one route. */
export const failureLines = (gh: Gh, route: string) => gh.proc.logLines().filter((l) => l.msg === 'upstream request failed' && l.route === route);
