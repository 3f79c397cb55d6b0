// A raw HTTP/2 client for the abuse tests: it writes whatever frames a test asks for (the attacker,
// not the product), over TLS with ALPN h2, and reads the server's frames back without interpreting
// them beyond their header. Header blocks are HPACK literals without indexing (RFC 7541 §6.2.2),
// never Huffman-coded: enough for any request a test sends.
import { connect, type TLSSocket } from 'node:tls';

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
/** HTTP/2 error codes (RFC 9113 §7) the tests look for. */
export const H2_ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, CANCEL: 8, REFUSED_STREAM: 7, ENHANCE_YOUR_CALM: 11 } as const;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** One frame: 9-byte header (length, type, flags, stream id) and payload. */
export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), the prefix's other bits from `first`. */
function hpackInt(value: number, n: number, first = 0): number[] {
  const max = (1 << n) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A header block: each field a literal without indexing, new name, no Huffman. */
export function headerBlock(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(Buffer.from([0x00, ...hpackInt(n.length, 7)]), n, Buffer.from(hpackInt(v.length, 7)), v);
  }
  return Buffer.concat(parts);
}

/** The pseudo-headers of a GET of `path` on `authority`, then `extra`. */
export function request(authority: string, path: string, extra: ReadonlyArray<readonly [string, string]> = [], method = 'GET'): Buffer {
  return headerBlock([[':method', method], [':scheme', 'https'], [':authority', authority], [':path', path], ...extra]);
}

export function settings(entries: ReadonlyArray<readonly [number, number]> = []): Buffer {
  const p = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, v], i) => {
    p.writeUInt16BE(id, i * 6);
    p.writeUInt32BE(v, i * 6 + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, p);
}

export function rstStream(stream: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, stream, p);
}

export function ping(data = 0): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(data >>> 0, 4);
  return frame(FRAME.PING, 0, 0, p);
}

export interface ReadFrame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

export interface RawH2 {
  readonly socket: TLSSocket;
  /** Every frame the server sent so far, in order. */
  readonly frames: ReadFrame[];
  /** Resolves when the connection is closed (by either side). */
  readonly closed: Promise<void>;
  isClosed(): boolean;
  write(b: Buffer): boolean;
  /** The GOAWAY the server sent, if any: its error code. */
  goaway(): number | undefined;
  /** RST_STREAM codes the server sent, by stream. */
  resets(): Map<number, number>;
  /** Streams the server answered with a HEADERS frame. */
  answered(): Set<number>;
  /** Resolve when `pred` holds of the frames read (or reject after `ms`). */
  until(pred: () => boolean, ms?: number): Promise<void>;
}

/**
 * Connect with TLS (ALPN h2 only, the test CA, `servername`), send the preface and an empty
 * SETTINGS, acknowledge the server's SETTINGS as they come (unless `ackSettings` is false).
 */
export function rawH2(port: number, servername: string, ca: string, opts: { ackSettings?: boolean } = {}): Promise<RawH2> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ca, ALPNProtocols: ['h2'] });
    const frames: ReadFrame[] = [];
    let buf: Buffer = Buffer.alloc(0);
    let closed = false;
    const waiters: Array<() => void> = [];
    const closedP = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('close', () => {
      closed = true;
      for (const w of waiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const f = { type: buf[3], flags: buf[4], stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
        buf = buf.subarray(9 + len);
        frames.push(f);
        if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0 && opts.ackSettings !== false && socket.writable) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      }
      for (const w of waiters.splice(0)) w();
    });
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== 'h2') {
        socket.destroy();
        reject(new Error(`ALPN chose ${String(socket.alpnProtocol)}, not h2`));
        return;
      }
      socket.write(Buffer.concat([PREFACE, settings()]));
      const raw: RawH2 = {
        socket,
        frames,
        closed: closedP,
        isClosed: () => closed,
        write: (b) => (socket.writable ? socket.write(b) : false),
        goaway: () => {
          const g = frames.find((f) => f.type === FRAME.GOAWAY);
          return g === undefined ? undefined : g.payload.readUInt32BE(4);
        },
        resets: () => new Map(frames.filter((f) => f.type === FRAME.RST_STREAM).map((f) => [f.stream, f.payload.readUInt32BE(0)])),
        answered: () => new Set(frames.filter((f) => f.type === FRAME.HEADERS).map((f) => f.stream)),
        until: (pred, ms = 10_000) =>
          new Promise<void>((res, rej) => {
            const timer = setTimeout(() => rej(new Error(`condition not met within ${ms} ms (${frames.length} frames read, closed=${closed})`)), ms);
            const check = () => {
              if (pred()) {
                clearTimeout(timer);
                res();
              } else if (closed) {
                clearTimeout(timer);
                rej(new Error(`connection closed before the condition held (${frames.length} frames read)`));
              } else waiters.push(check);
            };
            check();
          }),
      };
      resolve(raw);
    });
    socket.once('error', reject);
  });
}
