// AWS Signature Version 4 (header form) for the test servers: verify requests as AWS does, sign raw ones for wire tests.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The only algorithm of SigV4's header form. */
export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';

/** One AWS key pair; `sessionToken` is set for temporary (STS) credentials. */
export interface SigV4Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

/** A request as received on the wire. */
export interface SigV4Request {
  readonly method: string;
  /** Path and query exactly as on the request line (`/`, `/a%20b?x=1`). */
  readonly url: string;
  /** Header values by lowercase name; repeated headers as arrays (Node's `headersDistinct`). */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  readonly body: Buffer;
}

/** What the verifier needs to know about the service it guards. */
export interface SigV4VerifyOptions {
  /** Signing name of the service, e.g. `secretsmanager`. */
  readonly service: string;
  readonly region: string;
  /** The known key pair for an access key id, or undefined for an unknown one. */
  readonly lookup: (accessKeyId: string) => SigV4Credentials | undefined;
  /** Current time in ms; default `Date.now()`. */
  readonly now?: number;
  /** Allowed clock difference in ms; default 15 minutes, as AWS. */
  readonly maxSkewMs?: number;
}

/** Verification outcome: the caller's credentials, or the AWS error to answer with. */
export type SigV4Result =
  | { readonly ok: true; readonly credentials: SigV4Credentials }
  | { readonly ok: false; readonly status: number; readonly type: string; readonly message: string };

const SKEW_MS = 15 * 60 * 1000;
const SIGNATURE_MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';
const INVALID_TOKEN = 'The security token included in the request is invalid.';
// headers a signer must leave out (they change in transit or are the signature itself)
const UNSIGNABLE = new Set(['authorization', 'connection', 'expect', 'keep-alive', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'x-amzn-trace-id']);

/** Hex SHA-256 of a string or bytes. */
export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** RFC 3986 percent-encoding of everything but the unreserved characters, as SigV4 requires. */
export function uriEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The signing key: HMAC chain over date, region, service and `aws4_request`. */
export function deriveSigningKey(secretAccessKey: string, shortDate: string, region: string, service: string): Buffer {
  const kDate = hmac(`AWS4${secretAccessKey}`, shortDate);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

/** Canonical URI: dot segments removed, each segment URI-encoded again (non-S3 services). */
export function canonicalPath(rawPath: string): string {
  const segments: string[] = [];
  for (const seg of rawPath.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') segments.pop();
    else segments.push(seg);
  }
  const trailing = segments.length > 0 && rawPath.endsWith('/') ? '/' : '';
  return `/${segments.map(uriEscape).join('/')}${trailing}`;
}

/** Canonical query string: each name and value decoded then encoded, sorted by name then value. */
export function canonicalQuery(rawQuery: string): string {
  if (!rawQuery) return '';
  const pairs: Array<[string, string]> = [];
  for (const part of rawQuery.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    pairs.push([uriEscape(safeDecode(name)), uriEscape(safeDecode(value))]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([n, v]) => `${n}=${v}`).join('&');
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Header value in canonical form: values trimmed, inner runs of spaces collapsed, repeats joined by ','. */
function canonicalHeaderValue(v: string | readonly string[] | undefined): string {
  const values = v === undefined ? [] : typeof v === 'string' ? [v] : v;
  return values.map((x) => x.trim().replace(/\s+/g, ' ')).join(',');
}

/** The canonical request of SigV4 step 1. */
export function canonicalRequest(req: SigV4Request, signedHeaders: readonly string[], payloadHash: string): string {
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const query = q < 0 ? '' : req.url.slice(q + 1);
  const headerLines = signedHeaders.map((h) => `${h}:${canonicalHeaderValue(req.headers[h])}\n`).join('');
  return [req.method.toUpperCase(), canonicalPath(path), canonicalQuery(query), headerLines, signedHeaders.join(';'), payloadHash].join('\n');
}

/** The string to sign of SigV4 step 2. */
export function stringToSign(longDate: string, scope: string, canonical: string): string {
  return `${SIGV4_ALGORITHM}\n${longDate}\n${scope}\n${sha256Hex(canonical)}`;
}

/** `20240102T030405Z` for a time. */
export function amzLongDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

function parseLongDate(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  const t = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  return Number.isNaN(t) ? undefined : t;
}

function first(v: string | readonly string[] | undefined): string | undefined {
  return v === undefined ? undefined : typeof v === 'string' ? v : v[0];
}

function fail(type: string, message: string, status = 400): SigV4Result {
  return { ok: false, status, type, message };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Verify the SigV4 Authorization header of a request, in AWS's order of checks, answering with
 * the errors AWS JSON services answer with (`MissingAuthenticationTokenException`,
 * `IncompleteSignatureException`, `InvalidSignatureException`, `UnrecognizedClientException`).
 * @example
 * const r = verifySigV4({ method, url, headers: req.headersDistinct, body }, { service: 'secretsmanager', region: 'us-east-1', lookup });
 */
export function verifySigV4(req: SigV4Request, opts: SigV4VerifyOptions): SigV4Result {
  const auth = first(req.headers.authorization);
  if (auth === undefined || auth.trim() === '') return fail('MissingAuthenticationTokenException', 'Missing Authentication Token');

  const space = auth.indexOf(' ');
  const algorithm = space < 0 ? auth : auth.slice(0, space);
  const params = new Map<string, string>();
  for (const part of (space < 0 ? '' : auth.slice(space + 1)).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) params.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const rawDate = first(req.headers['x-amz-date']);
  const httpDate = first(req.headers.date);
  const missing: string[] = [];
  for (const p of ['Credential', 'Signature', 'SignedHeaders']) if (!params.get(p)) missing.push(`Authorization header requires '${p}' parameter.`);
  if (rawDate === undefined && httpDate === undefined) missing.push("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
  if (missing.length > 0) return fail('IncompleteSignatureException', missing.join(' '));
  if (algorithm !== SIGV4_ALGORITHM) return fail('IncompleteSignatureException', `Unsupported AWS 'algorithm': '${algorithm}'.`);

  const scopeParts = params.get('Credential')!.split('/');
  if (scopeParts.length !== 5) return fail('IncompleteSignatureException', "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term.");
  const [accessKeyId, scopeDate, scopeRegion, scopeService, terminator] = scopeParts;
  if (terminator !== 'aws4_request') return fail('IncompleteSignatureException', `Credential should be scoped with a valid terminator: 'aws4_request', not '${terminator}'.`);

  const signedHeaders = params.get('SignedHeaders')!.split(';');
  if (signedHeaders.some((h) => h !== h.toLowerCase()) || signedHeaders.join(';') !== [...signedHeaders].sort().join(';')) {
    return fail('IncompleteSignatureException', 'SignedHeaders must be lowercase header names, sorted and separated by semicolons.');
  }
  if (!signedHeaders.includes('host')) return fail('IncompleteSignatureException', "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");

  // x-amz-date wins over Date, as in SigV4
  let longDate: string;
  let signedAt: number | undefined;
  if (rawDate !== undefined) {
    longDate = rawDate;
    signedAt = parseLongDate(rawDate);
    if (signedAt === undefined) return fail('IncompleteSignatureException', `Date must be in ISO-8601 'basic format'. Got '${rawDate}'. See http://en.wikipedia.org/wiki/ISO_8601`);
  } else {
    signedAt = Date.parse(httpDate!);
    if (Number.isNaN(signedAt)) return fail('IncompleteSignatureException', `Date must be in RFC 1123 format. Got '${httpDate}'.`);
    longDate = amzLongDate(signedAt);
  }
  if (scopeDate !== longDate.slice(0, 8)) {
    return fail('InvalidSignatureException', `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${longDate.slice(0, 8)}', from '${longDate}'.`);
  }
  const now = opts.now ?? Date.now();
  const skew = opts.maxSkewMs ?? SKEW_MS;
  const minutes = Math.round(skew / 60000);
  if (signedAt < now - skew) return fail('InvalidSignatureException', `Signature expired: ${longDate} is now earlier than ${amzLongDate(now - skew)} (${amzLongDate(now)} - ${minutes} min.)`);
  if (signedAt > now + skew) return fail('InvalidSignatureException', `Signature not yet current: ${longDate} is still later than ${amzLongDate(now + skew)} (${amzLongDate(now)} + ${minutes} min.)`);
  if (scopeService !== opts.service) return fail('InvalidSignatureException', `Credential should be scoped to correct service: '${opts.service}'. `);
  if (scopeRegion !== opts.region) return fail('InvalidSignatureException', `Credential should be scoped to a valid region. `);

  const creds = opts.lookup(accessKeyId);
  if (!creds) return fail('UnrecognizedClientException', INVALID_TOKEN);
  const token = first(req.headers['x-amz-security-token']);
  if (creds.sessionToken !== undefined ? token === undefined || !safeEqual(token, creds.sessionToken) : token !== undefined) {
    return fail('UnrecognizedClientException', INVALID_TOKEN);
  }

  // non-S3 services always hash the payload themselves
  const payloadHash = sha256Hex(req.body);
  const declared = first(req.headers['x-amz-content-sha256']);
  if (declared !== undefined && declared !== payloadHash) {
    return fail('InvalidSignatureException', "The provided 'x-amz-content-sha256' header does not match what was computed.");
  }
  const canonical = canonicalRequest(req, signedHeaders, payloadHash);
  const key = deriveSigningKey(creds.secretAccessKey, scopeDate, scopeRegion, scopeService);
  const expected = createHmac('sha256', key).update(stringToSign(longDate, `${scopeDate}/${scopeRegion}/${scopeService}/aws4_request`, canonical), 'utf8').digest('hex');
  if (!safeEqual(expected, params.get('Signature')!)) return fail('InvalidSignatureException', SIGNATURE_MISMATCH);
  return { ok: true, credentials: creds };
}

/** What `signRequest` needs. */
export interface SignInput {
  readonly method: string;
  /** `host[:port]` as the client will send it. */
  readonly host: string;
  /** Path and query as on the wire. */
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: string | Buffer;
  readonly credentials: SigV4Credentials;
  readonly region: string;
  readonly service: string;
  /** Signing time in ms; default now. */
  readonly date?: number;
}

/**
 * Sign a raw request (header form): returns every header to send, including `host`,
 * `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` when the credentials have one,
 * and `authorization`. For wire-level tests; real clients sign for themselves.
 * @example
 * const headers = signRequest({ method: 'POST', host: '127.0.0.1:4566', url: '/', body, credentials, region: 'us-east-1', service: 'secretsmanager' });
 */
export function signRequest(input: SignInput): Record<string, string> {
  const longDate = amzLongDate(input.date ?? Date.now());
  const body = typeof input.body === 'string' ? Buffer.from(input.body, 'utf8') : input.body;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.headers ?? {})) headers[k.toLowerCase()] = v;
  headers.host = input.host;
  headers['x-amz-date'] = longDate;
  headers['x-amz-content-sha256'] = sha256Hex(body);
  if (input.credentials.sessionToken !== undefined) headers['x-amz-security-token'] = input.credentials.sessionToken;
  const signed = Object.keys(headers).filter((h) => !UNSIGNABLE.has(h)).sort();
  const scope = `${longDate.slice(0, 8)}/${input.region}/${input.service}/aws4_request`;
  const canonical = canonicalRequest({ method: input.method, url: input.url, headers, body }, signed, sha256Hex(body));
  const key = deriveSigningKey(input.credentials.secretAccessKey, longDate.slice(0, 8), input.region, input.service);
  const signature = createHmac('sha256', key).update(stringToSign(longDate, scope, canonical), 'utf8').digest('hex');
  headers.authorization = `${SIGV4_ALGORITHM} Credential=${input.credentials.accessKeyId}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${signature}`;
  return headers;
}
