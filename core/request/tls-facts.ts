// The TLS facts of a connection (the SDK's TlsFacts): read once, when its handshake is done, and
// kept on the TLS socket, where a request reads them (`RequestContext.tls`) over HTTP/1.1 (the
// request's socket is the TLS socket) and HTTP/2 (Node's request socket is a proxy that reads
// properties of the session's TLS socket).
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { ClientCertificate, TlsFacts } from '../contracts';

/** The property of a TLS socket that holds its facts. */
const FACTS = Symbol('gatehouse.tls-facts');

type WithFacts = { [FACTS]?: TlsFacts };

/**
 * Read the facts of `socket`'s finished handshake and keep them on it. The client certificate is
 * read only when `verified` (the SSL resource asked for one and Node verified it).
 */
export function keepTlsFacts(socket: TLSSocket, serverName: string | undefined, verified: boolean): void {
  const alpn = socket.alpnProtocol;
  (socket as WithFacts)[FACTS] = Object.freeze({
    serverName: serverName === undefined ? undefined : serverName.toLowerCase(),
    version: socket.getProtocol() ?? '',
    alpn: typeof alpn === 'string' ? alpn : undefined,
    clientCert: verified ? clientCertificate(socket.getPeerCertificate()) : undefined,
  });
}

/** The facts kept on a request's socket; undefined for a connection that is not TLS. */
export function tlsFactsOf(socket: object | null | undefined): TlsFacts | undefined {
  return socket == null ? undefined : (socket as WithFacts)[FACTS];
}

function clientCertificate(c: PeerCertificate): ClientCertificate | undefined {
  if (c === undefined || c === null || c.fingerprint256 === undefined) return undefined;
  return Object.freeze({
    subject: distinguishedName(c.subject as unknown as Dn),
    issuer: distinguishedName(c.issuer as unknown as Dn),
    serial: c.serialNumber.toUpperCase(),
    fingerprint256: c.fingerprint256,
    validFrom: Date.parse(c.valid_from),
    validTo: Date.parse(c.valid_to),
  });
}

/** `{C: 'DE', O: 'Example', CN: 'alice'}` → `C=DE,O=Example,CN=alice` (repeated attributes each once per value). */
type Dn = Record<string, string | string[] | undefined> | undefined;

function distinguishedName(dn: Dn): string {
  if (dn === undefined || dn === null) return '';
  const parts: string[] = [];
  for (const k of Object.keys(dn)) {
    const v = dn[k];
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) parts.push(`${k}=${one.replace(/([,+"\\<>;])/g, '\\$1')}`);
  }
  return parts.join(',');
}
