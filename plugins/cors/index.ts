// cors: Cross-Origin Resource Sharing, as Apache APISIX's cors. Preflight (OPTIONS) requests are
// answered by the gateway; every response of the route gets the CORS headers its origin earns.
import { definePlugin, type RequestContext } from 'gatehouse-gateway/sdk';
import { schema, type CorsConfig } from './schema';

/** `allow_methods: "**"` as APISIX spells it out. */
const EVERY_METHOD = 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE';

/** Which origin a request earns: the value to send, or undefined for none. */
type OriginRule = (origin: string | undefined) => string | undefined;

const anyOrigin: OriginRule = () => '*';
const mirrorOrigin: OriginRule = (origin) => origin ?? '*';

/**
 * The rule for an `allow_origins`-style value, or for a regex list (which, when given, replaces it).
 * @throws Error naming `field[i]` for a regex that does not compile
 */
function originRule(origins: string | undefined, regexes: readonly string[] | undefined, field: string): OriginRule | undefined {
  if (regexes !== undefined) {
    regexes.forEach((r, i) => {
      try {
        new RegExp(r);
      } catch (err) {
        throw new Error(`${field}[${i}]: ${JSON.stringify(r)} is not a valid regular expression (${(err as Error).message})`);
      }
    });
    // one regex for the whole list, as APISIX joins them with "|"
    const any = new RegExp(regexes.map((r) => `(?:${r})`).join('|'));
    return function originByRegex(origin) {
      return origin !== undefined && any.test(origin) ? origin : undefined;
    };
  }
  if (origins === undefined) return undefined;
  if (origins === '*') return anyOrigin;
  if (origins === '**') return mirrorOrigin;
  const allowed = new Set(origins.split(','));
  return function originInList(origin) {
    return origin !== undefined && allowed.has(origin) ? origin : undefined;
  };
}

/** Append `Origin` to the response's Vary unless it is already there (or is `*`). */
function varyOnOrigin(ctx: RequestContext): void {
  const vary = ctx.responseHeaders.vary;
  if (vary === undefined || vary === '') {
    ctx.setResponseHeader('vary', 'Origin');
    return;
  }
  const text = Array.isArray(vary) ? vary.join(', ') : String(vary);
  if (/(^|,)\s*(origin|\*)\s*(,|$)/i.test(text)) return;
  ctx.setResponseHeader('vary', `${text}, Origin`);
}

function oneHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

export default definePlugin<CorsConfig>({
  name: 'cors',
  version: '1.0.0',
  // as APISIX: preflights are answered in the rewrite phase, before authentication (key-auth 2500)
  priority: 4000,
  schema,
  create(conf) {
    if (conf.allow_credential) {
      // as APISIX: the CORS specification forbids "*" together with credentials
      for (const field of ['allow_origins', 'allow_methods', 'allow_headers', 'expose_headers'] as const) {
        if (conf[field] === '*') {
          throw new Error(`${field}: "*" cannot be used when allow_credential is true; list the values explicitly${field === 'expose_headers' ? '' : ' (or use "**" to allow any, which is unsafe)'}`);
        }
      }
    }
    const allowOrigin = originRule(conf.allow_origins, conf.allow_origins_by_regex, 'allow_origins_by_regex')!;
    const timingOrigin = originRule(conf.timing_allow_origins, conf.timing_allow_origins_by_regex, 'timing_allow_origins_by_regex');
    // the answer depends on the request's Origin unless every origin gets "*"
    const vary = conf.allow_origins_by_regex !== undefined || conf.allow_origins !== '*';
    const methods = conf.allow_methods === '**' ? EVERY_METHOD : conf.allow_methods;
    const mirrorHeaders = conf.allow_headers === '**';
    const headers = conf.allow_headers;
    const exposeHeaders = conf.expose_headers === undefined || conf.expose_headers === '' ? undefined : conf.expose_headers;
    const maxAge = String(conf.max_age);
    const credentials = conf.allow_credential;

    return {
      rewrite: function corsPreflight(ctx: RequestContext) {
        // as APISIX: every OPTIONS request is answered here, never proxied
        if (ctx.method === 'OPTIONS') ctx.respond(200);
      },
      response: function corsHeaders(ctx: RequestContext) {
        const origin = oneHeader(ctx.headers.origin);
        if (vary) varyOnOrigin(ctx);
        const allowed = allowOrigin(origin);
        if (allowed !== undefined) {
          ctx.setResponseHeader('access-control-allow-origin', allowed);
          ctx.setResponseHeader('access-control-allow-methods', methods);
          ctx.setResponseHeader('access-control-max-age', maxAge);
          if (exposeHeaders !== undefined) ctx.setResponseHeader('access-control-expose-headers', exposeHeaders);
          // "**": whatever the preflight asks for (nothing when it asks for nothing)
          ctx.setResponseHeader('access-control-allow-headers', mirrorHeaders ? oneHeader(ctx.headers['access-control-request-headers']) : headers);
          if (credentials) ctx.setResponseHeader('access-control-allow-credentials', 'true');
        }
        if (timingOrigin !== undefined) {
          const timing = timingOrigin(origin);
          if (timing !== undefined) ctx.setResponseHeader('timing-allow-origin', timing);
        }
      },
    };
  },
});
