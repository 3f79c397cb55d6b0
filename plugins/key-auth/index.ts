// key-auth: authenticate a request by an API key in a header or query argument, against the keys
// of the consumers (which may come from Vault, AWS or the environment, and rotate live).
import { credentialIndex, definePlugin, withoutQueryArg, type ConsumerEntry, type CredentialEntry, type CredentialIndex, type RequestContext } from 'gatehouse-gateway/sdk';
import { consumerSchema, schema, type KeyAuthConfig, type KeyAuthConsumerConfig } from './schema';

interface Who {
  readonly username: string;
}

const MISSING = { message: 'Missing API key found in request' };
const INVALID = { message: 'Invalid API key in request' };
const CHALLENGE = { 'www-authenticate': 'Key realm="gatehouse"' };

/** The keys of `consumers`: each one's current key, then those in rotation grace (newest first). */
function entriesOf(consumers: readonly ConsumerEntry<KeyAuthConsumerConfig>[]): CredentialEntry<Who>[] {
  const entries: CredentialEntry<Who>[] = [];
  for (const c of consumers) {
    const who = Object.freeze({ username: c.username });
    entries.push({ credential: c.config.key, value: who, owner: c.username, path: `${c.path}.key` });
    for (const p of c.previous) entries.push({ credential: p.config.key, value: who, owner: c.username, until: p.until });
  }
  return entries;
}

export default definePlugin<KeyAuthConfig, KeyAuthConsumerConfig, CredentialIndex<Who>>({
  name: 'key-auth',
  version: '1.0.0',
  // as APISIX: authentication runs in the rewrite phase, before access-phase plugins
  priority: 2500,
  schema,
  consumerSchema,

  indexConsumers(consumers, { exclude, isReference }) {
    // (a rare case: the entries are looked up then, not mapped for every build)
    const entryOf = (owner: string) => consumers.find((c) => c.username === owner)!;
    return credentialIndex(entriesOf(consumers), {
      onDuplicate(first, second) {
        const a = entryOf(first.owner);
        const b = entryOf(second.owner);
        // two keys written as literals: a config error, as APISIX. Whoever writes a literal key
        // knows it, and the Admin API key opens both writes, so the refusal tells nothing new
        if (!isReference(a, ['key']) && !isReference(b, ['key'])) {
          throw Object.assign(new Error(`consumers "${first.owner}" and "${second.owner}" have the same key; each key must identify one consumer`), { path: second.path });
        }
        // a key held in a secret manager: never a refused config, which would tell the writer of
        // the other consumer that its key equals the secret. Neither authenticates with key-auth
        exclude(a, `its key is also consumer "${second.owner}"'s; each key must identify one consumer`);
        exclude(b, `its key is also consumer "${first.owner}"'s; each key must identify one consumer`);
      },
    });
  },

  updateConsumers(index, delta) {
    // a key two consumers would share: indexConsumers decides (a config error naming both in the
    // order of the config, or both left out), exactly as a full build does
    let shared = false;
    const next = index.update({ removed: entriesOf(delta.removed), added: entriesOf(delta.added) }, { onDuplicate: () => void (shared = true) });
    return shared ? undefined : next;
  },

  create(conf, { consumers, clock, hasConsumer }) {
    // as APISIX: the anonymous consumer must be a declared consumer
    if (conf.anonymous_consumer !== undefined && !hasConsumer(conf.anonymous_consumer)) {
      throw new Error(`anonymous_consumer "${conf.anonymous_consumer}" is not a consumer (declare it under consumers:)`);
    }
    const header = conf.header.toLowerCase();
    const arg = conf.query;
    const anonymous = conf.anonymous_consumer === undefined ? undefined : Object.freeze({ username: conf.anonymous_consumer });
    const hide = conf.hide_credentials;
    return {
      rewrite: function keyAuth(ctx: RequestContext) {
        let key = ctx.headers[header];
        let fromQuery = false;
        if (Array.isArray(key)) key = key[0];
        if (key === undefined && ctx.query !== '') {
          const q = new URLSearchParams(ctx.query).get(arg);
          if (q !== null) {
            key = q;
            fromQuery = true;
          }
        }
        if (key === undefined || key === '') {
          // no key sent
          if (anonymous !== undefined) ctx.setConsumer(anonymous);
          else ctx.respond(401, MISSING, CHALLENGE);
          return;
        }
        // the index of the config this request started on: a consumer change replaces it without
        // creating this route again
        const who = (ctx.consumerIndex<CredentialIndex<Who>>('key-auth') ?? consumers).find(key, clock.now());
        if (who === undefined) {
          ctx.respond(401, INVALID, CHALLENGE);
          return;
        }
        ctx.setConsumer(who);
        if (hide) {
          if (fromQuery) ctx.query = withoutQueryArg(ctx.query, arg);
          else ctx.setUpstreamHeader(header, undefined);
        }
      },
    };
  },
});
