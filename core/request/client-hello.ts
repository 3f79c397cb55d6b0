// The server name of a TLS ClientHello, read from the first bytes of a connection before the TLS
// layer takes it (as nginx's ssl_preread and HAProxy's req.ssl_sni do): so that the handshake runs
// on the whole context of the certificate chosen for that name — every certificate of it (RSA and
// ECDSA side by side), and the fallback's for a client that sends none — where Node's SNICallback
// would copy one certificate into the listener's default context. Every length is checked against
// the bytes there are; anything that is not a ClientHello is "not TLS".

/** What the bytes read so far say. */
export type HelloRead =
  | { readonly kind: 'more' }
  | { readonly kind: 'hello'; readonly servername: string | undefined }
  | { readonly kind: 'not-tls' };

/** The largest ClientHello read (records reassembled): far over any real one (a few KB with post-quantum key shares). */
export const MAX_HELLO_BYTES = 64 * 1024;

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const NAME_HOST = 0;

/**
 * Read the server name from the ClientHello at the start of `buf`.
 * @returns `more` until the whole ClientHello has arrived; `not-tls` for anything else (an HTTP
 * request on the TLS port, SSLv2, a malformed hello); `hello` with the name (lower case, or
 * undefined when the client sent none)
 */
export function readClientHello(buf: Buffer): HelloRead {
  // the handshake message, possibly split over several records
  const parts: Buffer[] = [];
  let have = 0;
  let need = -1;
  let at = 0;
  while (need === -1 || have < need) {
    if (buf.length < at + 5) return buf.length > MAX_HELLO_BYTES ? { kind: 'not-tls' } : { kind: 'more' };
    if (buf[at] !== RECORD_HANDSHAKE || buf[at + 1] !== 3 || buf[at + 2] > 4) return { kind: 'not-tls' };
    const len = buf.readUInt16BE(at + 3);
    if (len === 0 || len > 16384 + 2048) return { kind: 'not-tls' };
    if (buf.length < at + 5 + len) return at + 5 + len > MAX_HELLO_BYTES + 5 ? { kind: 'not-tls' } : { kind: 'more' };
    parts.push(buf.subarray(at + 5, at + 5 + len));
    have += len;
    at += 5 + len;
    if (need === -1) {
      const first = parts[0];
      if (first.length < 4) {
        // the message header itself split over records: reassemble before reading it
        const head = Buffer.concat(parts);
        if (head.length < 4) continue;
        need = checkHeader(head);
      } else need = checkHeader(first);
      if (need < 0) return { kind: 'not-tls' };
    }
  }
  const msg = parts.length === 1 ? parts[0] : Buffer.concat(parts);
  return parseHello(msg.subarray(4, need));
}

/** The handshake message's total length (header included), or -1 when it is no ClientHello. */
function checkHeader(h: Buffer): number {
  if (h[0] !== HANDSHAKE_CLIENT_HELLO) return -1;
  const len = (h[1] << 16) | (h[2] << 8) | h[3];
  return len < 38 || len + 4 > MAX_HELLO_BYTES ? -1 : len + 4;
}

function parseHello(b: Buffer): HelloRead {
  let p = 2 + 32; // client_version, random
  const skip = (lenBytes: 1 | 2): boolean => {
    if (p + lenBytes > b.length) return false;
    const n = lenBytes === 1 ? b[p] : b.readUInt16BE(p);
    p += lenBytes + n;
    return p <= b.length;
  };
  if (!skip(1) || !skip(2) || !skip(1)) return { kind: 'not-tls' }; // session id, cipher suites, compression methods
  if (p === b.length) return { kind: 'hello', servername: undefined }; // no extensions at all
  if (p + 2 > b.length) return { kind: 'not-tls' };
  const end = p + 2 + b.readUInt16BE(p);
  if (end > b.length) return { kind: 'not-tls' };
  p += 2;
  while (p + 4 <= end) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    p += 4;
    if (p + len > end) return { kind: 'not-tls' };
    if (type === EXT_SERVER_NAME) return serverName(b.subarray(p, p + len));
    p += len;
  }
  return p === end ? { kind: 'hello', servername: undefined } : { kind: 'not-tls' };
}

/** The host name of a server_name extension (RFC 6066: one host_name entry). */
function serverName(e: Buffer): HelloRead {
  if (e.length < 2 || e.readUInt16BE(0) !== e.length - 2) return { kind: 'not-tls' };
  let p = 2;
  while (p + 3 <= e.length) {
    const type = e[p];
    const len = e.readUInt16BE(p + 1);
    p += 3;
    if (p + len > e.length) return { kind: 'not-tls' };
    if (type === NAME_HOST) {
      const name = e.toString('latin1', p, p + len);
      // a host name is letters, digits, hyphens and dots; anything else is refused like a malformed hello
      return /^[A-Za-z0-9_.-]{1,253}$/.test(name) ? { kind: 'hello', servername: name.toLowerCase() } : { kind: 'not-tls' };
    }
    p += len;
  }
  return { kind: 'hello', servername: undefined };
}
