// Raw HTTP/1.1 for the body-limit tests (test/limits.test.ts, plugins/client-control): a raw client
// connection, a response parser, chunked framing and an upstream that records each request body.
import { connect, type Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startUpstream, type Upstream } from '../../core/testing';

export const TOO_LARGE = '{"message":"413 Request Entity Too Large"}';

/** A raw client connection: what came back, and when the server half-closed (FIN) and closed it. */
export interface Raw {
  readonly socket: Socket;
  text(): string;
  /** Resolves with the received text once it matches `re`; rejects after `ms`. */
  until(re: RegExp, ms?: number): Promise<string>;
  /** The server's FIN (or the connection's end), as Date.now(). */
  readonly ended: Promise<number>;
  /** The connection closed; `error` is the socket error code, if any (ECONNRESET, EPIPE). */
  readonly closed: Promise<{ at: number; error?: string }>;
}

/** `paused`: read nothing until resumed; `halfOpen`: keep sending after the server's FIN (a hostile client). */
export function rawConnect(port: number, opts: { paused?: boolean; halfOpen?: boolean } = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: opts.halfOpen === true });
    let received = '';
    let error: string | undefined;
    const waiters: Array<() => void> = [];
    if (opts.paused) socket.pause();
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      received += d;
      for (const w of [...waiters]) w();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code));
    const ended = new Promise<number>((r) => {
      socket.once('end', () => r(Date.now()));
      socket.once('close', () => r(Date.now()));
    });
    const closed = new Promise<{ at: number; error?: string }>((r) => socket.once('close', () => r({ at: Date.now(), error })));
    socket.once('connect', () =>
      resolve({
        socket,
        text: () => received,
        until: (re, ms = 5000) =>
          new Promise<string>((res, rej) => {
            const check = () => {
              if (!re.test(received)) return false;
              clearTimeout(timer);
              waiters.splice(waiters.indexOf(check), 1);
              res(received);
              return true;
            };
            const timer = setTimeout(() => {
              waiters.splice(waiters.indexOf(check), 1);
              rej(new Error(`no ${re} within ${ms} ms; received ${JSON.stringify(received.slice(0, 300))}`));
            }, ms);
            waiters.push(check);
            check();
          }),
        ended,
        closed,
      }),
    );
    socket.once('error', reject);
  });
}

/** Status line, lower-cased headers and body of the first response in `text` (Content-Length framed). */
export function parseResponse(text: string): { status: string; headers: Record<string, string>; body: string } {
  const end = text.indexOf('\r\n\r\n');
  const [status, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
  const len = Number(headers['content-length'] ?? 0);
  return { status, headers, body: text.slice(end + 4, end + 4 + len) };
}

export const chunk = (n: number, c = 'a') => `${n.toString(16)}\r\n${c.repeat(n)}\r\n`;

/** An upstream that records each request body's size and whether it arrived in full. */
export interface Recorder extends Upstream {
  readonly bodies: Array<{ url: string; bytes: number; complete: boolean; closedAt: number }>;
}

export async function recordingUpstream(answerFirst = false): Promise<Recorder> {
  const bodies: Recorder['bodies'] = [];
  const up = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
    const rec = { url: req.url ?? '', bytes: 0, complete: false, closedAt: 0 };
    if (answerFirst) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('started\n');
    }
    req.on('data', (d: Buffer) => (rec.bytes += d.length));
    req.on('end', () => {
      rec.complete = true;
      res.end(answerFirst ? 'done\n' : JSON.stringify({ bytes: rec.bytes }));
    });
    req.on('close', () => {
      rec.closedAt = Date.now();
      bodies.push(rec);
    });
  });
  return Object.assign(up, { bodies });
}
