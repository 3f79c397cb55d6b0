// The checks of the SSL resources (`ssls:`) and of the Admin API's certificate (`admin.tls`) a schema cannot express: unique ids, the form of each
// server name, one resource per name, as many extra keys as extra certificates, literal PEMs that
// parse and keys that match their certificates, and `gateway.tls.fallback_sni` naming a served
// name. A PEM that is a reference is checked once resolved, when the snapshot is built (the same
// pair check, core/build/tls.ts). No issue ever quotes a PEM: a key is secret, and a certificate
// field may hold a key by mistake.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { ConfigIssue } from '../errors';
import { looksLikeReference } from '../secrets/reference';
import { joinPath } from './paths';
import type { AdminTlsSettings } from './types';

/** A host name label: letters, digits and inner hyphens, 63 at most. */
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
/** An exact name (one label or more) or a one-label wildcard (`*.` and two labels or more), lower case. */
const SNI = new RegExp(`^(?:\\*\\.${LABEL}(?:\\.${LABEL})+|${LABEL}(?:\\.${LABEL})*)$`);

/** Whether an SSL resource's certificates are served (enabled, a server certificate). */
export function served(s: { status?: unknown; type?: unknown }): boolean {
  return s.status !== 0 && s.type !== 'client';
}

/**
 * The issues of one certificate and key, PEM strings (literal or resolved); none when they parse
 * and the key belongs to the certificate. Messages name the field, never its value.
 */
export function pairIssues(cert: string, key: string, certPath: string, keyPath: string): ConfigIssue[] {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    return [{ path: certPath, message: 'is not a PEM certificate that parses' }];
  }
  let k: KeyObject;
  try {
    k = createPrivateKey(key);
  } catch {
    return [{ path: keyPath, message: 'is not a PEM private key that parses (an encrypted key is not supported)' }];
  }
  if (!x509.checkPrivateKey(k)) return [{ path: keyPath, message: `does not match its certificate (${certPath})` }];
  return [];
}

/** The issue of a CA bundle (`client.ca`) that does not parse, literal or resolved. */
export function caIssues(ca: string, path: string): ConfigIssue[] {
  try {
    new X509Certificate(ca);
    return [];
  } catch {
    return [{ path, message: 'is not a PEM certificate that parses' }];
  }
}

/**
 * The issues of `admin.tls` once its values are known: the pair parses and matches, the client CA
 * parses. A field whose value is not known yet (a reference before it is resolved) is checked when
 * it is: alone, a known certificate is checked to parse.
 * @param value a field's value: its literal PEM, a reference's resolved value, or undefined
 */
export function adminTlsIssues(tls: AdminTlsSettings, value: (field: string) => string | undefined): ConfigIssue[] {
  const cert = value(tls.cert);
  const key = value(tls.key);
  const out: ConfigIssue[] = [];
  if (cert !== undefined && key !== undefined) out.push(...pairIssues(cert, key, 'admin.tls.cert', 'admin.tls.key'));
  else if (cert !== undefined) out.push(...caIssues(cert, 'admin.tls.cert'));
  const ca = tls.client_ca === undefined ? undefined : value(tls.client_ca);
  if (ca !== undefined) out.push(...caIssues(ca, 'admin.tls.client_ca'));
  return out;
}

/** The certificate and key pairs of an SSL resource with their paths: `cert`/`key`, then `certs[j]`/`keys[j]`. */
export function pairsOf(s: { cert: string; key: string; certs?: readonly string[]; keys?: readonly string[] }, path: string): Array<{ cert: string; key: string; certPath: string; keyPath: string }> {
  const out = [{ cert: s.cert, key: s.key, certPath: joinPath(path, 'cert'), keyPath: joinPath(path, 'key') }];
  const certs = s.certs ?? [];
  const keys = s.keys ?? [];
  for (let j = 0; j < Math.min(certs.length, keys.length); j++) {
    out.push({ cert: certs[j], key: keys[j], certPath: joinPath(joinPath(path, 'certs'), j), keyPath: joinPath(joinPath(path, 'keys'), j) });
  }
  return out;
}

/** Every check of the `ssls:` section and `gateway.tls.fallback_sni` of a schema-valid document; normalises ids (strings) and names (lower case) in place. */
export function checkSsls(c: any, issues: ConfigIssue[]): void {
  checkSslSection(c.ssls as any[], c.gateway?.tls, issues);
}

/**
 * The checks of an `ssls:` section, in document order: each resource's own checks (normalising it
 * in place) for the resources `own` names, and for every resource what relates it to the others
 * (an id held twice, a name an earlier served resource holds), then the fallback name. A change
 * (validate-changes.ts) passes the section after it with `own` true for the items it wrote: the
 * others are normalised and valid on their own already, so only their relations are looked at
 * again (no certificate of theirs is parsed), and the issues are those of the whole document.
 * @param tls `gateway.tls`; its `fallback_sni` is normalised too when `own` is left out
 */
export function checkSslSection(ssls: readonly any[], tls: { fallback_sni?: unknown } | undefined, issues: ConfigIssue[], own?: (index: number) => boolean): void {
  const ids = new Set<string>();
  /** Each served name, and the resource (index) that claims it first. */
  const owners = new Map<string, number>();
  ssls.forEach((s, i) => {
    const path = joinPath('ssls', i);
    const mine = own === undefined || own(i);
    if (mine) s.id = String(s.id);
    if (ids.has(s.id)) issues.push({ path: joinPath(path, 'id'), message: `duplicate SSL resource id ${JSON.stringify(s.id)}` });
    ids.add(s.id);
    if (mine) s.snis = (s.snis as string[]).map((n) => n.toLowerCase());
    const listed = new Set<string>();
    (s.snis as string[]).forEach((n, j) => {
      const at = joinPath(joinPath(path, 'snis'), j);
      if (!SNI.test(n)) issues.push({ path: at, message: `${JSON.stringify(n)} is not a host name or a one-label wildcard ("*.example.com")` });
      else if (listed.has(n)) issues.push({ path: at, message: `${JSON.stringify(n)} is listed twice` });
      else if (served(s)) {
        const first = owners.get(n);
        if (first !== undefined) issues.push({ path: at, message: `${JSON.stringify(n)} is already served by SSL resource ${JSON.stringify(ssls[first].id)} (ssls[${first}]): a name has one SSL resource` });
        else owners.set(n, i);
      }
      listed.add(n);
    });
    if (mine) sslItemIssues(s, path, issues);
  });
  const fallback = tls?.fallback_sni;
  if (typeof fallback === 'string') {
    const name = fallback.toLowerCase();
    const dot = name.indexOf('.');
    if (!owners.has(name) && !(dot > 0 && owners.has(`*${name.slice(dot)}`))) {
      issues.push({ path: 'gateway.tls.fallback_sni', message: `${JSON.stringify(name)} is not a name an enabled server SSL resource serves (ssls[*].snis)` });
    }
    if (own === undefined) tls!.fallback_sni = name;
  }
}

/** One resource's own checks that involve no other: as many keys as certificates, literal PEMs that parse and pairs that match. */
function sslItemIssues(s: any, path: string, issues: ConfigIssue[]): void {
  const certs = s.certs ?? [];
  const keys = s.keys ?? [];
  if (certs.length !== keys.length) issues.push({ path: joinPath(path, 'keys'), message: `must have one key per entry of certs (${certs.length}), has ${keys.length}` });
  for (const p of pairsOf(s, path)) {
    if (!looksLikeReference(p.cert) && !looksLikeReference(p.key)) issues.push(...pairIssues(p.cert, p.key, p.certPath, p.keyPath));
    else if (!looksLikeReference(p.cert)) issues.push(...caIssues(p.cert, p.certPath));
  }
  if (s.client !== undefined && !looksLikeReference(s.client.ca)) issues.push(...caIssues(s.client.ca, joinPath(joinPath(path, 'client'), 'ca')));
}

/**
 * The checks of an upstream's `tls` (at `path`, `upstreams[0].tls`) a schema cannot express: only
 * for `scheme: https`, `client_cert_id` instead of (not with) a literal pair, literal PEMs that parse
 * and a literal key that matches its certificate. Referenced PEMs are checked once resolved, at build
 * (core/build/upstream-tls.ts). Normalises `client_cert_id` to a string.
 */
export function upstreamTlsIssues(u: { scheme?: unknown; tls?: any }, path: string, issues: ConfigIssue[]): void {
  const t = u.tls;
  if (t === undefined || t === null || typeof t !== 'object') return;
  if (u.scheme !== 'https') issues.push({ path, message: 'applies to scheme "https" only (this upstream is "http")' });
  if (t.client_cert_id !== undefined) {
    t.client_cert_id = String(t.client_cert_id);
    if (t.client_cert !== undefined) issues.push({ path: joinPath(path, 'client_cert_id'), message: 'cannot be used together with client_cert and client_key' });
  }
  if (typeof t.ca === 'string' && !looksLikeReference(t.ca)) issues.push(...caIssues(t.ca, joinPath(path, 'ca')));
  if (typeof t.client_cert === 'string' && typeof t.client_key === 'string') {
    const certPath = joinPath(path, 'client_cert');
    if (!looksLikeReference(t.client_cert) && !looksLikeReference(t.client_key)) issues.push(...pairIssues(t.client_cert, t.client_key, certPath, joinPath(path, 'client_key')));
    else if (!looksLikeReference(t.client_cert)) issues.push(...caIssues(t.client_cert, certPath));
  }
}

/** The issue of an upstream's `tls.client_cert_id` (at `path`) that names no SSL resource of `type: client`. */
export function clientCertIdIssue(id: string, ssls: ReadonlyArray<{ id: unknown; type?: unknown }>, path: string): ConfigIssue | undefined {
  const s = ssls.find((x) => String(x.id) === id);
  if (s === undefined) return { path, message: `names no SSL resource (${JSON.stringify(id)})` };
  if (s.type !== 'client') return { path, message: `names SSL resource ${JSON.stringify(id)}, which is not of type "client"` };
  return undefined;
}
