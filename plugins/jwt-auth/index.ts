// jwt-auth: authenticate a request by a JSON Web Token (RFC 7519) from a header, query argument or
// cookie, verified with the key material of the consumer its key claim names (HMAC secrets and public
// keys may come from Vault, AWS or the environment, and rotate live). Verification uses node:crypto.
import { createHmac, createPublicKey, createSecretKey, timingSafeEqual, verify as verifySignature, type KeyObject } from 'node:crypto';
import { definePlugin, ownerIndex, withoutQueryArg, type ConsumerDelta, type ConsumerEntry, type IndexServices, type OwnerEntry, type OwnerIndex, type OwnerKey, type RequestContext } from 'gatehouse-gateway/sdk';
import { consumerSchema, schema, type JwtAlgorithm, type JwtAuthConfig, type JwtAuthConsumerConfig } from './schema';

interface Who {
  readonly username: string;
}

/** What verifies one consumer's tokens: its current config, or one replaced by a rotation (its `until` is the entry's). */
interface Verifier {
  readonly who: Who;
  /** The only `alg` accepted. */
  readonly alg: JwtAlgorithm;
  /** HMAC secret (HS*) or public key (RS256, ES256). */
  readonly key: KeyObject;
  /** Seconds of clock skew tolerated on `exp` and `nbf`. */
  readonly leeway: number;
}

/**
 * Finds what verifies the tokens of the consumer a key claim names: `get(key)` gives its current
 * verifier first, then those still in rotation grace (check `until`).
 */
export type JwtAuthIndex = OwnerIndex<Verifier>;

/** A token split and decoded; the signature is not checked yet. */
interface Token {
  readonly alg: string;
  /** The header has a `crit` member: extensions that must be understood, and none are. */
  readonly crit: boolean;
  readonly payload: Record<string, unknown>;
  /** `<header>.<payload>` as sent: what the signature covers. */
  readonly signed: string;
  readonly signature: Buffer;
}

const MISSING = { message: 'Missing JWT token in request' };
const MALFORMED = { message: 'JWT token invalid' };
const NO_KEY = { message: 'missing user key in JWT token' };
const UNKNOWN_KEY = { message: 'Invalid user key in JWT token' };
const UNVERIFIED = { message: 'failed to verify jwt' };
const CHALLENGE = { 'www-authenticate': 'Bearer realm="jwt"' };

const HMAC_HASH = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' } as const;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BEARER = /^bearer[ \t]+/i;

type Problem = { readonly field: 'secret' | 'public_key'; readonly message: string };

/** The key object a consumer config verifies with, or what is wrong with its key material (never the value). */
function keyOf(conf: JwtAuthConsumerConfig): KeyObject | Problem {
  if (conf.algorithm in HMAC_HASH) {
    const secret = conf.secret!;
    if (!conf.base64_secret) return createSecretKey(Buffer.from(secret, 'utf8'));
    if (!BASE64.test(secret)) return { field: 'secret', message: 'base64_secret is set but secret is not base64' };
    return createSecretKey(Buffer.from(secret, 'base64'));
  }
  const pem = conf.public_key!;
  // a private key would be accepted by createPublicKey (it derives the public half): refuse it
  if (/PRIVATE KEY/.test(pem)) return { field: 'public_key', message: 'public_key holds a private key; give the public key only (the gateway never needs the private one)' };
  const wanted = conf.algorithm === 'RS256' ? 'an RSA public key' : 'an EC P-256 public key';
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    return { field: 'public_key', message: `public_key is not a PEM public key (${conf.algorithm} needs ${wanted})` };
  }
  const ok = conf.algorithm === 'RS256' ? key.asymmetricKeyType === 'rsa' : key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  return ok ? key : { field: 'public_key', message: `public_key is not ${wanted} (algorithm ${conf.algorithm})` };
}

/** The configs a rotation replaced whose key material is usable (an old config that is not verifies nothing). */
function* usablePrevious(c: ConsumerEntry<JwtAuthConsumerConfig>): Iterable<{ config: Readonly<JwtAuthConsumerConfig>; until: number; key: KeyObject }> {
  for (const p of c.previous) {
    const key = keyOf(p.config);
    if (!('field' in key)) yield { config: p.config, until: p.until, key };
  }
}

/** A consumer's verifiers: the current one (when its key material is usable: `key`), then those in rotation grace. */
function entriesOf(c: ConsumerEntry<JwtAuthConsumerConfig>, key: KeyObject | undefined, into: OwnerEntry<Verifier>[]): void {
  const who = Object.freeze({ username: c.username });
  if (key !== undefined) into.push({ key: c.config.key, owner: c.username, path: `${c.path}.key`, value: { who, alg: c.config.algorithm, key, leeway: c.config.lifetime_grace_period } });
  // secrets (or keys) replaced by a rotation keep verifying until their grace ends
  for (const p of usablePrevious(c)) into.push({ key: p.config.key, owner: c.username, until: p.until, value: { who, alg: p.config.algorithm, key: p.key, leeway: p.config.lifetime_grace_period } });
}

/**
 * Index the consumers by key. Two consumers with the same current key is an error naming both when
 * both keys are written as they are; when one comes from a reference, both are left out (a refused
 * config would tell its writer that the referenced value equals the other key). A key from a
 * rotated-out config never shadows another consumer's current one. Key material that came from a
 * reference and cannot be used (a secret that rotated to something that is not base64) leaves that
 * consumer out; written so, it is an error.
 * @throws Error with `path` set to the field at fault (duplicate key, unusable key material)
 */
function indexVerifiers(consumers: readonly ConsumerEntry<JwtAuthConsumerConfig>[], { exclude, isReference }: Pick<IndexServices, 'exclude' | 'isReference'>): JwtAuthIndex {
  // the checks in the order of the config, each consumer's key before its key material: the
  // first error met is the one reported, and a consumer left out holds no key
  const holders = new Map<string, ConsumerEntry>();
  const usable = new Map<ConsumerEntry, KeyObject>();
  for (const c of consumers) {
    const other = holders.get(c.config.key);
    if (other !== undefined) {
      if (isReference(c, ['key']) || isReference(other, ['key'])) {
        exclude(other, `its jwt-auth key is also consumer "${c.username}"'s; each key must identify one consumer`);
        exclude(c, `its jwt-auth key is also consumer "${other.username}"'s; each key must identify one consumer`);
        continue;
      }
      throw Object.assign(new Error(`consumers "${other.username}" and "${c.username}" have the same jwt-auth key; each key must identify one consumer`), { path: `${c.path}.key` });
    }
    const key = keyOf(c.config);
    if ('field' in key) {
      if (isReference(c, [key.field])) {
        exclude(c, key.message);
        continue;
      }
      throw Object.assign(new Error(`consumer "${c.username}": ${key.message}`), { path: `${c.path}.${key.field}` });
    }
    holders.set(c.config.key, c);
    usable.set(c, key);
  }
  holders.clear();
  const entries: OwnerEntry<Verifier>[] = [];
  for (const c of consumers) entriesOf(c, usable.get(c), entries);
  // no two consumers hold one key current any more: the checks above left them out or threw
  return ownerIndex(entries);
}

/** Update `index` by `delta`; undefined when an added consumer needs what indexVerifiers decides (left out, refused). */
function updateVerifiers(index: JwtAuthIndex, delta: ConsumerDelta<JwtAuthConsumerConfig>): JwtAuthIndex | undefined {
  const added: OwnerEntry<Verifier>[] = [];
  for (const c of delta.added) {
    const key = keyOf(c.config);
    if ('field' in key) return undefined;
    entriesOf(c, key, added);
  }
  const removed: OwnerKey[] = [];
  for (const c of delta.removed) {
    removed.push({ key: c.config.key, owner: c.username });
    for (const p of usablePrevious(c)) removed.push({ key: p.config.key, owner: c.username, until: p.until });
  }
  let shared = false;
  const next = index.update({ removed, added }, { onDuplicate: () => void (shared = true) });
  return shared ? undefined : next;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Split and decode a compact JWS; undefined when it is not one. */
function parse(token: string): Token | undefined {
  const a = token.indexOf('.');
  const b = token.indexOf('.', a + 1);
  if (a === -1 || b === -1 || token.indexOf('.', b + 1) !== -1) return undefined;
  const h = token.slice(0, a);
  const p = token.slice(a + 1, b);
  const s = token.slice(b + 1);
  if (!BASE64URL.test(h) || !BASE64URL.test(p) || !BASE64URL.test(s)) return undefined;
  let header: unknown;
  let payload: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(header) || !isObject(payload) || typeof header.alg !== 'string') return undefined;
  return { alg: header.alg, crit: Object.hasOwn(header, 'crit'), payload, signed: token.slice(0, b), signature: Buffer.from(s, 'base64url') };
}

/** Whether the signature is `v`'s (the algorithms already match). */
function signatureValid(v: Verifier, t: Token): boolean {
  if (v.alg === 'RS256' || v.alg === 'ES256') {
    try {
      // ES256 signatures are r || s, 32 bytes each (RFC 7518 §3.4), not DER
      return verifySignature('sha256', Buffer.from(t.signed, 'utf8'), v.alg === 'ES256' ? { key: v.key, dsaEncoding: 'ieee-p1363' } : v.key, t.signature);
    } catch {
      return false;
    }
  }
  const mac = createHmac(HMAC_HASH[v.alg], v.key).update(t.signed, 'utf8').digest();
  return mac.length === t.signature.length && timingSafeEqual(mac, t.signature);
}

/** `exp` and `nbf` (when present, numbers) hold at `nowMs`, give or take `leeway` seconds. */
function timeValid(payload: Record<string, unknown>, nowMs: number, leeway: number): boolean {
  const now = nowMs / 1000;
  if (Object.hasOwn(payload, 'exp')) {
    const exp = payload.exp;
    if (typeof exp !== 'number' || !(now < exp + leeway)) return false;
  }
  if (Object.hasOwn(payload, 'nbf')) {
    const nbf = payload.nbf;
    if (typeof nbf !== 'number' || !(nbf <= now + leeway)) return false;
  }
  return true;
}

/** The cookies of a Cookie header as [name, value] pairs, in order. */
function cookiesOf(header: string | undefined): Array<[string, string]> {
  if (header === undefined || header === '') return [];
  const out: Array<[string, string]> = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out.push([part.slice(0, eq).trim(), value]);
  }
  return out;
}

type Source = 'header' | 'query' | 'cookie';

export default definePlugin<JwtAuthConfig, JwtAuthConsumerConfig, JwtAuthIndex>({
  name: 'jwt-auth',
  version: '1.0.0',
  // as APISIX: authentication runs in the rewrite phase, before access-phase plugins
  priority: 2510,
  schema,
  consumerSchema,

  indexConsumers(consumers, services) {
    return indexVerifiers(consumers, services);
  },

  // a key two consumers would share, or key material that cannot be used: indexConsumers decides
  // (a config error in the order of the config, or the consumer left out), as a full build does
  updateConsumers: (index, delta) => updateVerifiers(index, delta),

  create(conf, { consumers, clock, hasConsumer }) {
    // as APISIX: the anonymous consumer must be a declared consumer
    if (conf.anonymous_consumer !== undefined && !hasConsumer(conf.anonymous_consumer)) {
      throw new Error(`anonymous_consumer "${conf.anonymous_consumer}" is not a consumer (declare it under consumers:)`);
    }
    const header = conf.header.toLowerCase();
    const arg = conf.query;
    const cookie = conf.cookie;
    const claim = conf.key_claim_name;
    const hide = conf.hide_credentials;
    const anonymous = conf.anonymous_consumer === undefined ? undefined : Object.freeze({ username: conf.anonymous_consumer });

    /** The token sent and where it came from: the header wins over the query argument, which wins over the cookie. */
    function tokenOf(ctx: RequestContext): { token: string; from: Source } | undefined {
      let h = ctx.headers[header];
      if (Array.isArray(h)) h = h[0];
      if (h !== undefined && h.trim() !== '') return { token: h.trim().replace(BEARER, ''), from: 'header' };
      if (ctx.query !== '') {
        const q = new URLSearchParams(ctx.query).get(arg);
        if (q !== null && q !== '') return { token: q, from: 'query' };
      }
      for (const [name, value] of cookiesOf(ctx.headers.cookie)) {
        if (name === cookie && value !== '') return { token: value, from: 'cookie' };
      }
      return undefined;
    }

    function hideToken(ctx: RequestContext, from: Source): void {
      if (from === 'header') ctx.setUpstreamHeader(header, undefined);
      else if (from === 'query') ctx.query = withoutQueryArg(ctx.query, arg);
      else {
        const rest = cookiesOf(ctx.headers.cookie).filter(([name]) => name !== cookie);
        ctx.setUpstreamHeader('cookie', rest.length === 0 ? undefined : rest.map(([n, v]) => `${n}=${v}`).join('; '));
      }
    }

    return {
      rewrite: function jwtAuth(ctx: RequestContext) {
        const sent = tokenOf(ctx);
        if (sent === undefined) {
          // no token sent
          if (anonymous !== undefined) ctx.setConsumer(anonymous);
          else ctx.respond(401, MISSING, CHALLENGE);
          return;
        }
        const token = parse(sent.token);
        if (token === undefined) {
          ctx.respond(401, MALFORMED, CHALLENGE);
          return;
        }
        if (!Object.hasOwn(token.payload, claim) || token.payload[claim] === null) {
          ctx.respond(401, NO_KEY, CHALLENGE);
          return;
        }
        const key = token.payload[claim];
        // the index of the config this request started on: a consumer change replaces it without
        // creating this route again
        const verifiers = typeof key === 'string' ? (ctx.consumerIndex<JwtAuthIndex>('jwt-auth') ?? consumers).get(key) : undefined;
        const now = clock.now();
        if (verifiers === undefined || !verifiers.some((v) => now < v.until)) {
          // no consumer has this key (any more: a rotated-out key whose grace ended)
          ctx.respond(401, UNKNOWN_KEY, CHALLENGE);
          return;
        }
        let match: Verifier | undefined;
        // the consumer's algorithm is the only one accepted: no "none", no switch to another family
        if (!token.crit) {
          for (const { value: v, until } of verifiers) {
            if (v.alg === token.alg && now < until && signatureValid(v, token)) {
              match = v;
              break;
            }
          }
        }
        if (match === undefined || !timeValid(token.payload, now, match.leeway)) {
          ctx.respond(401, UNVERIFIED, CHALLENGE);
          return;
        }
        ctx.setConsumer(match.who);
        if (hide) hideToken(ctx, sent.from);
      },
    };
  },
});
