// The TLS of an https upstream's pools, from its `tls` (docs/tls.md, "TLS to upstreams"): the CA
// and client certificate and key with their references resolved (or the client pair of the SSL
// resource `client_cert_id` names), checked again on the resolved values (the same pair check as SSL
// resources, with the same paths), and a digest of it all that keys the pools. Verification is on
// unless `verify: false`, which is logged at every build that compiles the upstream.
import { createHash } from 'node:crypto';
import type { Logger } from '../contracts';
import { joinPath } from '../config/paths';
import { caIssues, clientCertIdIssue, pairIssues } from '../config/ssl-checks';
import type { SslConfig, UpstreamConfig } from '../config/types';
import type { ConfigIssue } from '../errors';
import type { PoolTls } from '../request/upstream-pools';
import { looksLikeReference } from '../secrets/reference';

/** Reference text → value (snapshot.ts's ResolvedValues; not imported from there: no cycle). */
type ResolvedValues = ReadonlyMap<string, string | Error>;

/** What compiling one upstream needs to make its TLS. */
export interface UpstreamTlsInput {
  /** Where the upstream is (`upstreams[2]`, `routes[0].upstream`): issues are named there. */
  readonly path: string;
  readonly ssls: readonly SslConfig[];
  readonly values: ResolvedValues;
  /** Issues of PEMs that do not parse or match once resolved: the build is refused. */
  readonly issues: ConfigIssue[];
}

/** An upstream's TLS: none (http), the pools' options, or unavailable (a reference it needs has no value: it fails closed). */
export type UpstreamTls = { readonly tls?: PoolTls; readonly unavailable?: undefined } | { readonly unavailable: { readonly reference: string; readonly reason: string }; readonly tls?: undefined };

const PLAIN: UpstreamTls = Object.freeze({});

/** An upstream's TLS as last made from checked PEMs, and its `tls` (with a client_cert_id's resource) as written then. */
export interface KeptUpstreamTls {
  readonly source: string;
  readonly tls: PoolTls;
}

/**
 * The TLS options of `u`'s pools.
 * @param identity the upstream's identity (`upstream:<id>`, `route:<id>`) for log lines
 */
export function upstreamTls(u: UpstreamConfig, identity: string, input: UpstreamTlsInput, logger: Logger, kept?: Map<string, KeptUpstreamTls>): UpstreamTls {
  if (u.scheme !== 'https') return PLAIN;
  const t = u.tls ?? {};
  const written = () => JSON.stringify([t, t.client_cert_id === undefined ? null : (input.ssls.find((s) => s.id === t.client_cert_id) ?? null)]);
  const found: ConfigIssue[] = [];
  const at = joinPath(input.path, 'tls');
  let failed: { path: string; reference: string; reason: string } | undefined;
  const value = (v: string | undefined, path: string): string | undefined => {
    if (v === undefined || !looksLikeReference(v)) return v;
    const got = input.values.get(v);
    if (typeof got === 'string') return got;
    failed ??= { path, reference: v, reason: got ? got.message : 'not resolved' };
    return undefined;
  };
  const ca = value(t.ca, joinPath(at, 'ca'));
  if (ca !== undefined && t.ca !== undefined && looksLikeReference(t.ca)) found.push(...caIssues(ca, joinPath(at, 'ca')));
  let pair: { cert: string; key: string } | undefined;
  if (t.client_cert_id !== undefined) {
    // the client pair of an SSL resource of type client, by id
    const idPath = joinPath(at, 'client_cert_id');
    const issue = clientCertIdIssue(t.client_cert_id, input.ssls, idPath);
    if (issue) found.push(issue);
    else {
      const j = input.ssls.findIndex((s) => s.id === t.client_cert_id);
      const s = input.ssls[j];
      const sslPath = joinPath('ssls', j);
      const cert = value(s.cert, joinPath(sslPath, 'cert'));
      const key = value(s.key, joinPath(sslPath, 'key'));
      if (cert !== undefined && key !== undefined) {
        if (looksLikeReference(s.cert) || looksLikeReference(s.key)) found.push(...pairIssues(cert, key, joinPath(sslPath, 'cert'), joinPath(sslPath, 'key')));
        pair = { cert, key };
      }
    }
  } else if (t.client_cert !== undefined && t.client_key !== undefined) {
    const cert = value(t.client_cert, joinPath(at, 'client_cert'));
    const key = value(t.client_key, joinPath(at, 'client_key'));
    if (cert !== undefined && key !== undefined) {
      if (looksLikeReference(t.client_cert) || looksLikeReference(t.client_key)) found.push(...pairIssues(cert, key, joinPath(at, 'client_cert'), joinPath(at, 'client_key')));
      pair = { cert, key };
    }
  }
  if (found.length > 0) {
    // the upstream's tls as written is the one its last good TLS was made from: only values behind
    // its references changed (a rotation, perhaps half done). It keeps that TLS, and the rest of the
    // build goes ahead; the next change of those references makes it again
    const last = kept?.get(identity);
    if (last !== undefined && last.source === written()) {
      logger.error({ upstream: identity, issues: found.map((f) => `${f.path}: ${f.message}`) }, "an upstream's rotated TLS certificate and key were refused; its previous ones stay in use");
      return { tls: last.tls };
    }
    input.issues.push(...found);
    return PLAIN;
  }
  if (failed) {
    // never half-applied: no connection without the client certificate or CA it is configured with
    logger.error({ upstream: identity, path: failed.path, reference: failed.reference, cause: failed.reason }, 'fails closed: a secret an upstream TLS setting needs is unavailable; requests to it answer 503');
    return { unavailable: { reference: failed.reference, reason: failed.reason } };
  }
  const verify = t.verify !== false;
  if (!verify) logger.warn({ upstream: identity, path: joinPath(at, 'verify') }, 'TLS verification of this https upstream is off (tls.verify: false): its certificate is not checked');
  const digest = createHash('sha256')
    .update(JSON.stringify([verify, ca ?? null, pair?.cert ?? null, pair?.key ?? null]))
    .digest('hex');
  const tls: PoolTls = Object.freeze({ rejectUnauthorized: verify, ...(ca === undefined ? {} : { ca }), ...(pair === undefined ? {} : { cert: pair.cert, key: pair.key }), digest });
  // kept only where there is something to rotate: a reference, or an SSL resource by id
  if (kept !== undefined && (t.client_cert_id !== undefined || [t.ca, t.client_cert, t.client_key].some((v) => v !== undefined && looksLikeReference(v)))) kept.set(identity, Object.freeze({ source: written(), tls }));
  return { tls };
}
