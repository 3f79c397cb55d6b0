// basic-auth: authenticate a request by HTTP Basic credentials (RFC 7617) against the usernames and
// passwords of the consumers (passwords may come from Vault, AWS or the environment, and rotate live).
import { createHash, timingSafeEqual } from 'node:crypto';
import { definePlugin, ownerIndex, type ConsumerEntry, type IndexServices, type OwnerEntry, type OwnerIndex, type RequestContext } from 'gatehouse-gateway/sdk';
import { consumerSchema, schema, type BasicAuthConfig, type BasicAuthConsumerConfig } from './schema';

interface Who {
  readonly username: string;
}

/** One password a username accepts (its `until` is the entry's: Infinity, or the end of its grace). */
interface Accepted {
  readonly who: Who;
  readonly digest: Buffer;
}

/** Finds the consumer a username and password belong to. */
export interface BasicAuthIndex {
  /** @param now ms, for rotation-grace expiry */
  find(username: string, password: string, now: number): Who | undefined;
  readonly size: number;
  /** The passwords each username accepts, updated by delta. */
  readonly accounts: OwnerIndex<Accepted>;
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

/** The usernames of `consumers` with the password each accepts: the current one, then those in rotation grace. */
function entriesOf(consumers: readonly ConsumerEntry<BasicAuthConsumerConfig>[]): OwnerEntry<Accepted>[] {
  const entries: OwnerEntry<Accepted>[] = [];
  for (const c of consumers) {
    const who = Object.freeze({ username: c.username });
    entries.push({ key: c.config.username, owner: c.username, path: `${c.path}.username`, value: { who, digest: sha256(c.config.password) } });
    // passwords (or usernames) replaced by a rotation, accepted until their grace ends
    for (const p of c.previous) entries.push({ key: p.config.username, owner: c.username, until: p.until, value: { who, digest: sha256(p.config.password) } });
  }
  return entries;
}

/**
 * Index the consumers by username. Two consumers with the same current username is an error
 * naming both when both are written as they are; when one comes from a reference, both are left
 * out (a refused config would tell its writer that the referenced value equals the other username).
 * A username from a rotated-out config never shadows another consumer's current one.
 * @throws Error with `path` set to the second consumer's username path
 */
function indexAccounts(consumers: readonly ConsumerEntry<BasicAuthConsumerConfig>[], { exclude, isReference }: Pick<IndexServices, 'exclude' | 'isReference'>): BasicAuthIndex {
  // (a rare case: the entries are looked up then, not mapped for every build)
  const entryOf = (owner: string) => consumers.find((c) => c.username === owner)!;
  const accounts = ownerIndex(entriesOf(consumers), {
    onDuplicate(first, second) {
      const a = entryOf(first.owner);
      const b = entryOf(second.owner);
      if (isReference(b, ['username']) || isReference(a, ['username'])) {
        exclude(a, `its basic-auth username is also consumer "${second.owner}"'s; each username must identify one consumer`);
        exclude(b, `its basic-auth username is also consumer "${first.owner}"'s; each username must identify one consumer`);
        return;
      }
      throw Object.assign(new Error(`consumers "${first.owner}" and "${second.owner}" have the same basic-auth username; each username must identify one consumer`), { path: second.path });
    },
  });
  return view(accounts);
}

function view(accounts: OwnerIndex<Accepted>): BasicAuthIndex {
  return {
    accounts,
    size: accounts.size,
    find(username, password, now) {
      const presented = sha256(password);
      const accepted = accounts.get(username);
      if (accepted === undefined) {
        timingSafeEqual(NOBODY, presented);
        return undefined;
      }
      // every accepted password is compared, with no early exit
      let ok = false;
      for (const a of accepted) {
        if (timingSafeEqual(a.value.digest, presented) && now < a.until) ok = true;
      }
      return ok ? accepted[0].value.who : undefined;
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

  updateConsumers(index, delta) {
    // a username two consumers would share: indexConsumers decides (a config error naming both in
    // the order of the config, or both left out), exactly as a full build does
    let shared = false;
    const next = index.accounts.update({ removed: entriesOf(delta.removed), added: entriesOf(delta.added) }, { onDuplicate: () => void (shared = true) });
    return shared || next === undefined ? undefined : view(next);
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
        // the index of the config this request started on: a consumer change replaces it without
        // creating this route again
        const who = (ctx.consumerIndex<BasicAuthIndex>('basic-auth') ?? consumers).find(sent.username, sent.password, clock.now());
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
