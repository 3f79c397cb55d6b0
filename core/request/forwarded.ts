// What the gateway believes of the forwarding headers a request arrives with. The address of the
// connection's peer is a fact; X-Forwarded-For, X-Forwarded-Proto/Host/Port/Prefix and Forwarded
// are claims anyone can write. They are believed only from a peer in `gateway.trusted_proxies`
// (a load balancer in front of the gateway), as nginx's `set_real_ip_from` and APISIX's
// `trusted_addresses`; from anyone else the gateway drops them and sets its own.
import { isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';

/** Whether an address is one of `gateway.trusted_proxies` (null: none configured). */
export type TrustedProxies = ((address: string) => boolean) | null;

/**
 * Client headers never passed upstream: the gateway sets these itself on every request
 * (X-Consumer-Username only when a plugin identifies a consumer).
 */
const ALWAYS_REPLACED = new Set(['x-forwarded-for', 'x-real-ip', 'x-consumer-username']);

/**
 * Whether the client's header `name` (lowercase) stays out of the upstream request: one the
 * gateway always sets, or, from a peer that is not a trusted proxy, any `X-Forwarded-*` and
 * `Forwarded` (RFC 7239).
 */
export function isReplacedForwardingHeader(name: string, fromTrustedProxy: boolean): boolean {
  if (ALWAYS_REPLACED.has(name)) return true;
  if (!fromTrustedProxy && (name === 'forwarded' || name.startsWith('x-forwarded-'))) return true;
  // with `underscores_in_headers` on: X_Real_IP is X-Real-IP to an upstream that folds `_` into `-`
  return name.indexOf('_') !== -1 && isReplacedForwardingHeader(name.replace(/_/g, '-'), fromTrustedProxy);
}

/** One X-Forwarded-For entry as an address: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:5678`; undefined if it is none. */
function entryAddress(entry: string): string | undefined {
  let a = entry.trim();
  if (a.charCodeAt(0) === 91 /* [ */) {
    const end = a.indexOf(']');
    if (end === -1) return undefined;
    a = a.slice(1, end);
  } else {
    const c = a.indexOf(':');
    if (c !== -1 && a.indexOf(':', c + 1) === -1) a = a.slice(0, c);
  }
  return isIP(a) === 0 ? undefined : a;
}

/**
 * The client's address for a request whose peer is a trusted proxy, as nginx's realip module
 * with `real_ip_recursive on`: X-Forwarded-For read from the right, each trusted proxy skipped;
 * the first address that is not a trusted proxy is the client. An entry that is not an address
 * ends the walk at the last trusted one (a proxy passed on something it should not have); with
 * no X-Forwarded-For the peer itself is the client.
 */
export function clientFromForwardedFor(xff: string | string[] | undefined, peer: string, trusted: (address: string) => boolean): string {
  if (xff === undefined || xff === '') return peer;
  let client = peer;
  const entries = (Array.isArray(xff) ? xff.join(',') : xff).split(',');
  for (let i = entries.length - 1; i >= 0; i--) {
    if (entries[i].trim() === '') continue;
    const a = entryAddress(entries[i]);
    if (a === undefined) return client;
    client = a;
    if (!trusted(a)) return client;
  }
  return client;
}

/**
 * Set the forwarding headers of an upstream request, after the client's own were copied (or
 * left out by {@link isReplacedForwardingHeader}). X-Forwarded-For: a trusted proxy's list with
 * the peer appended, else the peer alone. X-Forwarded-Proto/Host/Port: a trusted proxy's when
 * it sent them, else the gateway's (the connection's scheme, the Host header, the port the
 * client connected to). X-Real-IP: the client's address as the gateway determined it.
 */
export function setForwardingHeaders(out: Record<string, string | string[]>, src: IncomingHttpHeaders, peer: string, fromTrustedProxy: boolean, clientIp: string, encrypted: boolean, localPort: number | undefined): void {
  const xff = src['x-forwarded-for'];
  out['x-forwarded-for'] = fromTrustedProxy && xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${peer}` : peer;
  if (out['x-forwarded-proto'] === undefined) out['x-forwarded-proto'] = encrypted ? 'https' : 'http';
  if (out['x-forwarded-host'] === undefined && src.host !== undefined) out['x-forwarded-host'] = src.host;
  if (out['x-forwarded-port'] === undefined && localPort !== undefined) out['x-forwarded-port'] = String(localPort);
  out['x-real-ip'] = clientIp;
}
