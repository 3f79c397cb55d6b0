// The TLS table of a snapshot (core/request/tls-table.ts) from the config's SSL resources: one
// secure context per enabled server resource, its references resolved and every pair checked
// again on the resolved values (a reference cannot be checked before), each name into the exact
// or the wildcard map, the fallback from `gateway.tls.fallback_sni`. A build after a change makes
// a context only for a resource whose certificates or keys changed, and shares the others.
import { createHash, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../contracts';
import { joinPath } from '../config/paths';
import { caIssues, pairIssues, pairsOf, served } from '../config/ssl-checks';
import type { GatewayConfig, SslConfig } from '../config/types';
import type { ConfigIssue } from '../errors';
import { TLS_SERVER_DEFAULTS } from '../request/listener';
import { TlsTable, type ServedCertificate, type ServedSsl, type TlsEntry } from '../request/tls-table';
import { looksLikeReference } from '../secrets/reference';
/** Reference text → value (snapshot.ts's ResolvedValues; not imported from there: no cycle). */
type ResolvedValues = ReadonlyMap<string, string | Error>;

/** Each SSL resource's context, by id, with a digest of the resolved PEMs it was made from. */
export type TlsContexts = ReadonlyMap<string, { readonly digest: string; readonly source: string; readonly entry: TlsEntry }>;

/** A TLS table and the contexts it holds (the next build reuses them). */
export interface BuiltTls {
  readonly table: TlsTable;
  readonly contexts: TlsContexts;
  /** How many contexts this build made (the others were reused). */
  readonly created: number;
  readonly issues?: undefined;
}

/**
 * The TLS table of `config`.
 * @param values the resolved values of the SSL resources' references, by reference text
 * @param previous the contexts of the live build: one whose PEMs are unchanged is reused
 * @param live the contexts of the live snapshot (a full build passes them here only): a resource
 *   written as the live one was, whose rotated values are refused, keeps its live context
 * @returns the table, or the issues of pairs that do not parse or match once resolved (the build is refused)
 */
export function buildTls(config: GatewayConfig, values: ResolvedValues, logger: Logger, previous: TlsContexts = new Map(), live: TlsContexts = previous): BuiltTls | { issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const contexts = new Map<string, { digest: string; source: string; entry: TlsEntry }>();
  const exact = new Map<string, TlsEntry>();
  const wildcard = new Map<string, TlsEntry>();
  const servedSsls: ServedSsl[] = [];
  let created = 0;
  (config.ssls ?? []).forEach((s, i) => {
    if (!served(s)) return;
    const path = joinPath('ssls', i);
    const resolved = resolveSsl(s, path, values, logger);
    if (resolved === undefined) return;
    const digest = digestOf(resolved);
    const source = digestOf(s);
    const reusable = previous.get(s.id);
    const current = live.get(s.id);
    // the same PEMs as the live context: checked when it was made, reused as it is (no PEM parsed again)
    let entry = reusable?.digest === digest ? reusable.entry : undefined;
    let kept = false;
    if (entry === undefined) {
      const found: ConfigIssue[] = [];
      for (const p of pairsOf(resolved, path)) found.push(...pairIssues(p.cert, p.key, p.certPath, p.keyPath));
      if (resolved.client !== undefined && looksLikeReference(s.client!.ca)) found.push(...caIssues(resolved.client.ca, joinPath(joinPath(path, 'client'), 'ca')));
      if (found.length > 0 && current !== undefined && current.source === source) {
        // the resource as written is the live one's: only values behind its references changed (a
        // rotation, perhaps half done: a new certificate read before its key). The previous pair keeps
        // serving this resource, and the rest of the build (other rotations with it) goes ahead;
        // the next change of these references builds it again
        logger.error({ ssl: s.id, issues: found.map((f) => `${f.path}: ${f.message}`) }, 'the rotated certificate and key of an SSL resource were refused; its previous pair keeps serving');
        entry = current.entry;
        kept = true;
      } else if (found.length > 0) {
        issues.push(...found);
        return;
      }
    }
    if (entry === undefined) {
      try {
        const client = resolved.client;
        const options = { cert: [resolved.cert, ...(resolved.certs ?? [])], key: [resolved.key, ...(resolved.keys ?? [])], ...(client ? { ca: client.ca } : {}), ...TLS_SERVER_DEFAULTS };
        const context = createSecureContext(options);
        // a resource with a client CA: the listener verifies client certificates with a TLS server made of these options
        entry = Object.freeze({ context, sslId: s.id, ...(client ? { clientAuth: { depth: client.depth, options } } : {}), certificates: certificatesOf(resolved) });
        created++;
      } catch {
        // (OpenSSL's message is not repeated: it could quote what it read)
        issues.push({ path, message: 'its certificates and keys could not be loaded into a TLS context' });
        return;
      }
    }
    // a kept entry keeps its own digest: the next build compares new values with what it serves
    contexts.set(s.id, kept ? current! : { digest, source, entry });
    servedSsls.push(Object.freeze({ entry, snis: s.snis }));
    for (const n of s.snis) {
      if (n.startsWith('*.')) wildcard.set(n.slice(2), entry);
      else exact.set(n, entry);
    }
  });
  if (issues.length) return { issues };
  const table = new TlsTable(exact, wildcard, undefined, servedSsls);
  const fallback = config.gateway.tls?.fallback_sni;
  return { table: fallback === undefined ? table : new TlsTable(exact, wildcard, fallbackOf(table, fallback), servedSsls), contexts, created };
}

/** The entry a fallback name chooses: the resource serving it (a wildcard given as written included). */
function fallbackOf(table: TlsTable, name: string): TlsEntry | undefined {
  return name.startsWith('*.') ? table.select(`x${name.slice(1)}`) : table.select(name);
}

/**
 * The resource with its references replaced by their values; undefined when one has none (the
 * resource fails closed: its names are not served, logged with the reference, never the value).
 */
function resolveSsl(s: SslConfig, path: string, values: ResolvedValues, logger: Logger): SslConfig | undefined {
  let failed: { path: string; reference: string; cause: string } | undefined;
  const one = (v: string, at: string): string => {
    if (!looksLikeReference(v)) return v;
    const got = values.get(v);
    if (typeof got === 'string') return got;
    failed ??= { path: at, reference: v, cause: got ? got.message : 'not resolved' };
    return '';
  };
  const out: SslConfig = {
    ...s,
    cert: one(s.cert, joinPath(path, 'cert')),
    key: one(s.key, joinPath(path, 'key')),
    certs: s.certs?.map((c, j) => one(c, joinPath(joinPath(path, 'certs'), j))),
    keys: s.keys?.map((k, j) => one(k, joinPath(joinPath(path, 'keys'), j))),
    client: s.client === undefined ? undefined : { ...s.client, ca: one(s.client.ca, joinPath(joinPath(path, 'client'), 'ca')) },
  };
  if (failed) {
    logger.error({ ssl: s.id, path: failed.path, reference: failed.reference, cause: failed.cause }, 'fails closed: a secret an SSL resource needs is unavailable; its names are not served');
    return undefined;
  }
  return out;
}

/** The leaf certificate of each pair of a resolved resource (checked: they parse) and its notAfter. */
function certificatesOf(s: SslConfig): ServedCertificate[] {
  const one = (field: string, pem: string): ServedCertificate => Object.freeze({ field, notAfter: Date.parse(new X509Certificate(pem).validTo) });
  return [one('cert', s.cert), ...(s.certs ?? []).map((c, j) => one(`certs[${j}]`, c))];
}

/** A digest of a resource's PEMs and references (resolved: a context is made again only when it changes; as written: whether only values changed). */
function digestOf(s: SslConfig): string {
  return createHash('sha256').update(JSON.stringify([s.cert, s.key, s.certs ?? [], s.keys ?? [], s.client ?? null])).digest('hex');
}
