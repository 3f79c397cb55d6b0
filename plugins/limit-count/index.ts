// limit-count: at most `count` requests per `time_window` seconds and key (client address, consumer,
// header…), counted in fixed windows in this gateway's memory or in Redis for the whole cluster.
import { STATUS_CODES, type OutgoingHttpHeaders } from 'node:http';
import { definePlugin, type RequestContext } from 'gatehouse-gateway/sdk';
import { LocalCounters, RedisCounters, redisTargetId, type RedisTarget } from './counters';
import { keyOf } from './key';
import { schema, type LimitCountConfig } from './schema';

const LIMIT = 'x-ratelimit-limit';
const REMAINING = 'x-ratelimit-remaining';
const RESET = 'x-ratelimit-reset';
const JSON_TYPE: OutgoingHttpHeaders = Object.freeze({ 'content-type': 'application/json' });
const TEXT_TYPE: OutgoingHttpHeaders = Object.freeze({ 'content-type': 'text/plain; charset=utf-8' });
// as APISIX when the counter store fails and allow_degradation is false
const STORE_FAILED = '{"error_msg":"failed to limit count"}';

/** Every config field: routes of one group must agree on all of them (as APISIX). */
const FIELDS = Object.keys((schema as { properties: object }).properties) as ReadonlyArray<keyof LimitCountConfig>;

/** The group configs met by the `create` calls of one build (its `buildStart` value). */
type GroupConfigs = Map<string, Readonly<LimitCountConfig>>;

/** @throws Error when another route of the same group has a different config (names the fields, not values) */
function checkGroup(groups: GroupConfigs, conf: Readonly<LimitCountConfig>): void {
  if (conf.group === undefined) return;
  const first = groups.get(conf.group);
  if (first === undefined) {
    groups.set(conf.group, conf);
    return;
  }
  const differ = FIELDS.filter((f) => first[f] !== conf[f]);
  if (differ.length) throw new Error(`group "${conf.group}" is configured differently on another route (${differ.join(', ')}); every route of a group shares one counter and must have the same limit-count config`);
}

/** A name for a counter scope that no other group or route can produce (lengths keep it unambiguous). */
function scopeName(kind: 'group' | 'route', name: string): string {
  return `${kind}:${name.length}:${name}:`;
}

export default definePlugin<LimitCountConfig, never, undefined, GroupConfigs>({
  name: 'limit-count',
  version: '1.0.0',
  // as APISIX: access phase, after authentication (key-auth 2500) so consumer_name is known
  priority: 1002,
  schema,
  // each load checks its own routes' groups: a reload may change a group's config on all of them
  buildStart: (): GroupConfigs => new Map(),

  create(conf, { state, clock, logger, build: groups }) {
    const keyFn = keyOf(conf.key_type, conf.key);
    checkGroup(groups, conf);
    const limit = conf.count;
    const limitText = String(limit);
    const windowMs = conf.time_window * 1000;
    const headers = conf.show_limit_quota_header;
    const code = conf.rejected_code;
    // as APISIX: {"error_msg": rejected_msg}, else the status alone (here its text)
    const rejectBody = conf.rejected_msg !== undefined ? JSON.stringify({ error_msg: conf.rejected_msg }) : STATUS_CODES[code] ? `${code} ${STATUS_CODES[code]}` : String(code);
    const rejectType = conf.rejected_msg !== undefined ? JSON_TYPE : TEXT_TYPE;
    const allowDegradation = conf.allow_degradation;
    // the route is known from the first request (every request of these hooks has the same one)
    let scope = conf.group === undefined ? undefined : scopeName('group', conf.group);

    /** Apply one counted request: quota headers, and the rejection once over `count`. */
    function decide(ctx: RequestContext, count: number, msLeft: number): void {
      if (headers) {
        ctx.setResponseHeader(LIMIT, limitText);
        ctx.setResponseHeader(REMAINING, count >= limit ? '0' : String(limit - count));
        ctx.setResponseHeader(RESET, String(Math.max(0, Math.ceil(msLeft / 1000))));
      }
      // over the quota: rejected
      if (count > limit) ctx.respond(code, rejectBody, rejectType);
    }

    if (conf.policy === 'local') {
      const counters = state.get(`local:${windowMs}`, () => new LocalCounters(windowMs, clock.now()));
      return {
        access: function limitCount(ctx: RequestContext) {
          const now = clock.now();
          const w = counters.hit((scope ??= scopeName('route', ctx.route.id)) + keyFn(ctx), now);
          decide(ctx, w.count, w.resetAt - now);
        },
      };
    }

    const target: RedisTarget = {
      host: conf.redis_host!,
      port: conf.redis_port,
      username: conf.redis_username,
      password: conf.redis_password,
      database: conf.redis_database,
      timeoutMs: conf.redis_timeout,
      tls: conf.redis_ssl,
      tlsVerify: conf.redis_ssl_verify,
    };
    // one connection per distinct Redis target, shared by routes and kept across reloads
    const store = state.get(redisTargetId(target), () => new RedisCounters(target, logger.child({ plugin: 'limit-count' })), (s) => s.close());
    const prefix = `limit-count:${conf.time_window}:`;
    return {
      access: async function limitCountRedis(ctx: RequestContext) {
        let count: number;
        let msLeft: number;
        try {
          [count, msLeft] = await store.hit(prefix + (scope ??= scopeName('route', ctx.route.id)) + keyFn(ctx), windowMs);
        } catch (err) {
          store.failed(err as Error);
          // counter store down: let through when allowed, else 500 (as APISIX)
          if (!allowDegradation) ctx.respond(500, STORE_FAILED, JSON_TYPE);
          return;
        }
        if (store.isFailing) store.recovered();
        decide(ctx, count, msLeft);
      },
    };
  },
});
