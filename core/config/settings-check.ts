// The gateway's and the Admin API's own settings that are more than their schema: listen addresses
// ("host:port", "[v6]:port", ":port") and nginx-style sizes, parsed here for the checks at load and
// for the listeners alike, and the checks a schema cannot make (a port in range, the Admin API on a
// port of its own, each `admin.allow` and `gateway.trusted_proxies` entry an address or range, the
// `admin.tls` certificate and key that match).
import type { ConfigIssue } from '../errors';
import { looksLikeReference } from '../secrets/reference';
import { allowList } from './allow-list';
import { joinPath } from './paths';
import { adminTlsIssues } from './ssl-checks';

/**
 * Split a listen address: "host:port", "[v6]:port" or ":port" (all interfaces: `anyHost`). The
 * one parser of `gateway.listen` and `admin.listen`, for the check at load and for the listeners.
 * @param anyHost the host of ":port" (default 0.0.0.0; the Admin API's is 127.0.0.1)
 * @example parseListen('[::1]:9080') // { host: '::1', port: 9080 }
 */
export function parseListen(s: string, anyHost = '0.0.0.0'): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  let host = s.slice(0, i);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host: host || anyHost, port: Number(s.slice(i + 1)) };
}

/** Hosts that bind every interface: a listener there takes the port from every other host too. */
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::']);

/**
 * What a listen would fail on, found at load so that `validate` refuses what `start` would: a port
 * outside 1-65535 (the schema's pattern admits 0 and 65536-99999) and the Admin API on the proxy's
 * address. Runtime failures (a port in use by another process) remain start's alone.
 */
function checkListeners(c: any, issues: ConfigIssue[]): void {
  const proxy = parseListen(c.gateway.listen);
  const tls = typeof c.gateway.listen_tls === 'string' ? parseListen(c.gateway.listen_tls) : undefined;
  const admin = c.admin ? parseListen(c.admin.listen, '127.0.0.1') : undefined;
  for (const [path, l] of [['gateway.listen', proxy], ['gateway.listen_tls', tls], ['admin.listen', admin]] as const) {
    if (l !== undefined && !(Number.isInteger(l.port) && l.port >= 1 && l.port <= 65535)) issues.push({ path, message: `port ${l.port} is out of range (1-65535)` });
  }
  const clash = (a: { host: string; port: number }, b: { host: string; port: number }) => a.port === b.port && (a.host === b.host || WILDCARD_HOSTS.has(a.host) || WILDCARD_HOSTS.has(b.host));
  if (tls !== undefined && clash(tls, proxy)) issues.push({ path: 'gateway.listen_tls', message: `is on port ${tls.port} of the plain listener (gateway.listen): give TLS its own port` });
  if (admin !== undefined && clash(admin, proxy)) {
    issues.push({ path: 'admin.listen', message: `is on port ${admin.port} of the proxy listener (gateway.listen): give the Admin API its own port` });
  }
  if (admin !== undefined && tls !== undefined && clash(admin, tls)) issues.push({ path: 'admin.listen', message: `is on port ${admin.port} of the TLS listener (gateway.listen_tls): give the Admin API its own port` });
}

const SIZE_UNITS: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * Bytes of an nginx-style size: an integer, or digits with `k`, `m` or `g` (either case, powers of
 * 1024, as nginx's `client_max_body_size`). @returns undefined when it is not one
 */
export function parseSize(v: number | string): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  const m = /^([0-9]+)([kKmMgG]?)$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]) * (m[2] ? SIZE_UNITS[m[2].toLowerCase()] : 1);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * The checks of the `gateway` and `admin` sections after the schema's; normalises
 * `gateway.client_max_body_size` to bytes in place.
 */
export function checkSettings(c: any, issues: ConfigIssue[]): void {
  const size = c.gateway.client_max_body_size;
  const bytes = parseSize(size);
  if (bytes === undefined) {
    // a reference passes the schema's pattern (checked on resolved values), but a size is read at load
    const why = typeof size === 'string' && looksLikeReference(size) ? 'must be a size, not a reference' : 'is too large';
    issues.push({ path: 'gateway.client_max_body_size', message: why });
  } else c.gateway.client_max_body_size = bytes;

  checkListeners(c, issues);
  if (c.admin) checkAddresses(c.admin.allow, 'admin', 'allow', issues);
  // the Admin API's certificate: literal PEMs now, references when the build resolves them
  if (c.admin?.tls) issues.push(...adminTlsIssues(c.admin.tls, (v) => (looksLikeReference(v) ? undefined : v)));
  checkAddresses(c.gateway.trusted_proxies, 'gateway', 'trusted_proxies', issues);
}

/** Each entry of an address list (`admin.allow`, `gateway.trusted_proxies`) an address or CIDR range. */
function checkAddresses(entries: string[], section: string, key: string, issues: ConfigIssue[]): void {
  entries.forEach((entry, i) => {
    try {
      allowList([entry]);
    } catch (err) {
      issues.push({ path: joinPath(joinPath(section, key), i), message: (err as Error).message });
    }
  });
}
