// basic-auth: authenticate a request by HTTP Basic credentials (RFC 7617) against the usernames and
// passwords of the consumers (passwords may come from Vault, AWS or the environment, and rotate live).
import { createHash, timingSafeEqual } from 'node:crypto';
import { definePlugin, type ConsumerEntry, type IndexServices, type RequestContext } from 'gatehouse-gateway/sdk';
import { consumerSchema, schema, type BasicAuthConfig, type BasicAuthConsumerConfig } from './schema';

interface Who {
  readonly username: string;
}

/** One password a username accepts: the current one (until Infinity) or one in rotation grace. */
interface Accepted {
  readonly digest: Buffer;
  readonly until: number;
}

interface Account {
  readonly who: Who;
  readonly accepted: Accepted[];
}

/** Finds the consumer a username and password belong to. */
export interface BasicAuthIndex {
  /** @param now ms, for rotation-grace expiry */
  find(username: string, password: string, now: number): Who | undefined;
  readonly size: number;
}

const MISSING = { message: 'Missing authorization in request' };
const INVALID = { message: 'Invalid authorization in request' };
const DENIED = { message: 'Invalid user authorization' };
const CHALLENGE = { 'www-authenticate': 'Basic realm="basic"' };

// "Basic <token68>", scheme case-insensitive (RFC 7235)
const BASIC = /^basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i;

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

// compared against when the username is unknown, so that case costs what a wrong password costs
const NOBODY = sha256('\0gatehouse basic-auth: no such user\0');

/**
 * Index the consumers by username. Two consumers with the same current username is an error
 * naming both when both are written as they are; when one comes from a reference, both are left
 * out (a refused config would tell its writer that the referenced value equals the other username).
 * A username from a rotated-out config never shadows another consumer's current one.
 * @throws Error with `path` set to the second consumer's username path
 */
function indexAccounts(consumers: readonly ConsumerEntry<BasicAuthConsumerConfig>[], { exclude, isReference }: Pick<IndexServices, 'exclude' | 'isReference'>): BasicAuthIndex {
  const accounts = new Map<string, Account & { readonly owner: string; readonly entry: ConsumerEntry }>();
  for (const c of consumers) {
    const name = c.config.username;
    const other = accounts.get(name);
    if (other !== undefined) {
      if (isReference(c, ['username']) || isReference(other.entry, ['username'])) {
        exclude(other.entry, `its basic-auth username is also consumer "${c.username}"'s; each username must identify one consumer`);
        exclude(c, `its basic-auth username is also consumer "${other.owner}"'s; each username must identify one consumer`);
        continue;
      }
      throw Object.assign(new Error(`consumers "${other.owner}" and "${c.username}" have the same basic-auth username; each username must identify one consumer`), { path: `${c.path}.username` });
    }
    accounts.set(name, { owner: c.username, entry: c, who: Object.freeze({ username: c.username }), accepted: [{ digest: sha256(c.config.password), until: Number.POSITIVE_INFINITY }] });
  }
  // passwords (or usernames) replaced by a rotation, accepted until their grace ends
  for (const c of consumers) {
    for (const p of c.previous) {
      const name = p.config.username;
      let account = accounts.get(name);
      if (account === undefined) accounts.set(name, (account = { owner: c.username, entry: c, who: Object.freeze({ username: c.username }), accepted: [] }));
      else if (account.owner !== c.username) continue;
      account.accepted.push({ digest: sha256(p.config.password), until: p.until });
    }
  }
  return {
    size: accounts.size,
    find(username, password, now) {
      const presented = sha256(password);
      const account = accounts.get(username);
      if (account === undefined) {
        timingSafeEqual(NOBODY, presented);
        return undefined;
      }
      // every accepted password is compared, with no early exit
      let ok = false;
      for (const a of account.accepted) {
        if (timingSafeEqual(a.digest, presented) && now < a.until) ok = true;
      }
      return ok ? account.who : undefined;
    },
  };
}

/** The user-id and password of an `Authorization: Basic …` value, or undefined when malformed. */
function credentials(authorization: string): { username: string; password: string } | undefined {
  const m = BASIC.exec(authorization);
  if (m === null) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return undefined;
  // the first colon separates them: a password may contain colons (RFC 7617)
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export default definePlugin<BasicAuthConfig, BasicAuthConsumerConfig, BasicAuthIndex>({
  name: 'basic-auth',
  version: '1.0.0',
  // as APISIX: authentication runs in the rewrite phase, before access-phase plugins
  priority: 2520,
  schema,
  consumerSchema,

  indexConsumers(consumers, services) {
    return indexAccounts(consumers, services);
  },

  create(conf, { consumers, clock, hasConsumer }) {
    // as APISIX: the anonymous consumer must be a declared consumer
    if (conf.anonymous_consumer !== undefined && !hasConsumer(conf.anonymous_consumer)) {
      throw new Error(`anonymous_consumer "${conf.anonymous_consumer}" is not a consumer (declare it under consumers:)`);
    }
    const anonymous = conf.anonymous_consumer === undefined ? undefined : Object.freeze({ username: conf.anonymous_consumer });
    const hide = conf.hide_credentials;
    return {
      rewrite: function basicAuth(ctx: RequestContext) {
        const authorization = ctx.headers.authorization;
        if (authorization === undefined || authorization.trim() === '') {
          // no credentials sent
          if (anonymous !== undefined) ctx.setConsumer(anonymous);
          else ctx.respond(401, MISSING, CHALLENGE);
          return;
        }
        const sent = credentials(authorization);
        if (sent === undefined) {
          // not "Basic <base64 of user:password>"
          ctx.respond(401, INVALID, CHALLENGE);
          return;
        }
        const who = consumers.find(sent.username, sent.password, clock.now());
        if (who === undefined) {
          // unknown username or wrong password: one answer for both
          ctx.respond(401, DENIED, CHALLENGE);
          return;
        }
        ctx.setConsumer(who);
        if (hide) ctx.setUpstreamHeader('authorization', undefined);
      },
    };
  },
});
