// The certificates a TLS listener serves, by server name: built with the snapshot (every reference
// resolved, every pair checked), read at each handshake. Choosing one is two map lookups.
import type { SecureContext, SecureContextOptions } from 'node:tls';

/** A certificate choice: the context a handshake uses, and the SSL resource it came from. */
export interface TlsEntry {
  readonly context: SecureContext;
  /** The SSL resource's id (metrics, logs). */
  readonly sslId: string;
  /**
   * The SSL resource's `client`: clients must present a certificate that chains to `options.ca`,
   * at most `depth` certificates below it (1: signed by the CA itself). `options` are the PEM
   * options the context was made of (certificates, keys, the CA): Node verifies a client
   * certificate only for a TLS server of its own, which is made of them. Never logged.
   */
  readonly clientAuth?: { readonly depth: number; readonly options: SecureContextOptions };
  /** The leaf certificate of each pair the context serves, with its end of validity (the expiry metric and warnings; the build always sets it). */
  readonly certificates?: readonly ServedCertificate[];
}

/** One certificate a context serves: the field it came from (`cert`, `certs[0]`) and its notAfter. */
export interface ServedCertificate {
  readonly field: string;
  /** The certificate's notAfter, in ms since the epoch. */
  readonly notAfter: number;
}

/** A served SSL resource: its context and the names it is served for (lower case, as listed). */
export interface ServedSsl {
  readonly entry: TlsEntry;
  readonly snis: readonly string[];
}

/**
 * Server names to certificates, as APISIX chooses them: an exact name first, then a wildcard
 * (`*.example.com` covers `api.example.com`, one label deep, not `example.com` nor
 * `a.b.example.com`), names compared without case. A client that sends no name gets the
 * fallback, when there is one.
 */
export class TlsTable {
  constructor(
    /** Exact names, lower case. */
    private readonly exact: ReadonlyMap<string, TlsEntry>,
    /** Wildcards by the part after `*.`, lower case. */
    private readonly wildcard: ReadonlyMap<string, TlsEntry>,
    /** The entry for a ClientHello without a server name (`gateway.tls.fallback_sni`), if any. */
    readonly fallback: TlsEntry | undefined,
    /** Every served SSL resource, in config order (read off the request path: metrics, expiry warnings). */
    readonly served: readonly ServedSsl[] = [],
  ) {}

  /** How many names the table holds (exact and wildcard). */
  get size(): number {
    return this.exact.size + this.wildcard.size;
  }

  /**
   * The certificate for a ClientHello's server name, or undefined: the handshake then fails.
   * @param servername as the client sent it; undefined or empty when it sent none
   */
  select(servername: string | undefined): TlsEntry | undefined {
    if (servername === undefined || servername === '') return this.fallback;
    const name = servername.toLowerCase();
    const hit = this.exact.get(name);
    if (hit !== undefined) return hit;
    const dot = name.indexOf('.');
    // "*.example.com" matches one label: "a.example.com", never ".example.com" (an empty label)
    return dot > 0 ? this.wildcard.get(name.slice(dot + 1)) : undefined;
  }
}

/** A table with no certificates: every handshake fails (no TLS listener serves without one). */
export const EMPTY_TLS_TABLE = new TlsTable(new Map(), new Map(), undefined);
