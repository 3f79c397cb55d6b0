// Request bodies nobody will read: dropping them within bounds, and closing a connection that has
// one without losing the answer to a reset.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { BodyTimer } from './body-timer';

/** Lingering close bounds (nginx's lingering_close, lingering_time and lingering_timeout, shorter). */
const LINGER_MS = 5000;
const LINGER_IDLE_MS = 1000;
const LINGER_BYTES = 16 * 1024 * 1024;
const LINGER_TICK_MS = 250;

/**
 * Close `req`'s connection the way nginx does after answering before reading a body: send the
 * answer and a FIN, then read and drop what the client still sends until it closes, goes quiet
 * for LINGER_IDLE_MS, or LINGER_MS / LINGER_BYTES are used up. Closing at once, as Node's
 * `socket.destroySoon()` does after a `Connection: close` response, closes with unread input,
 * which makes the kernel send a reset; a client that writes its whole body before reading (many
 * do) then gets ECONNRESET/EPIPE and never sees the answer.
 */
export function lingerOnClose(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket as Socket & { destroySoon(): void };
  // before Node's own 'finish' handler: a request with a reader is not dumped (a dumped one drops
  // its body inside the parser, where it cannot be counted)
  res.prependOnceListener('finish', () => discardRest(req, LINGER_BYTES, 0));
  // Node's server calls destroySoon() once the `Connection: close` response is written
  socket.destroySoon = function lingeringClose(this: Socket): void {
    if (this.writable) this.end();
    let last = this.bytesRead;
    let idle = 0;
    let spent = 0;
    const timer = setInterval(() => {
      const n = this.bytesRead;
      idle = n === last ? idle + LINGER_TICK_MS : 0;
      last = n;
      spent += LINGER_TICK_MS;
      if (idle >= LINGER_IDLE_MS || spent >= LINGER_MS) this.destroy();
    }, LINGER_TICK_MS);
    timer.unref();
    this.once('close', () => clearInterval(timer));
    // a 'data' listener would take the socket from the HTTP parser; 'end' does not
    this.once('end', () => this.destroy());
    this.resume();
  };
}

/**
 * Read and drop the rest of a request body that will not be used, so a client still uploading
 * reads the answer instead of stalling. With a `limit` (`gateway.client_max_body_size`), a body
 * that grows past it in all (`seen` bytes were read before) has its connection closed instead.
 * With `idle` (`gateway.client_body_timeout`), so is one whose client goes quiet that long: the
 * answer is out, and a body that never comes would otherwise hold the connection for ever.
 */
export function discardRest(req: IncomingMessage, limit: number, seen: number, idle?: { readonly ms: number; readonly now: () => number }): void {
  if (idle !== undefined) {
    const timer = new BodyTimer(idle.ms, idle.now, () => req.socket.destroy());
    req.on('data', () => timer.progress());
    req.once('end', () => timer.stop());
    req.once('close', () => timer.stop());
    timer.wait();
  }
  if (limit !== 0) {
    let n = seen;
    const count = (chunk: Buffer): void => {
      n += chunk.length;
      if (n > limit) {
        req.off('data', count);
        req.socket.destroy();
      }
    };
    req.on('data', count);
  }
  req.resume();
}
