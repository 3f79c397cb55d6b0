// proxy-rewrite: change the path, query, Host and headers of the request sent upstream (as Apache
// APISIX's proxy-rewrite). Templates and regexes are compiled once, when the route is created; a
// value that came from a secret reference is data, used byte for byte, never read as a template.
import { definePlugin, type CreateServices, type RequestContext } from 'gatehouse-gateway/sdk';
import { schema, type HeaderValue, type ProxyRewriteConfig } from './schema';

/** Reads one variable (`$uri`, `$arg_page`, `$http_x_user`…) of a request. */
type Variable = (ctx: RequestContext) => string;
/** A piece of a template: literal text, a variable, or the number of a regex capture. */
type Part = string | Variable | number;

/** A compiled template: `constant` when it holds no variable nor capture. */
interface Template {
  readonly constant: string | undefined;
  readonly parts: readonly Part[];
}

interface Rule {
  readonly regex: RegExp;
  readonly template: Template;
}

interface HeaderAction {
  /** Lowercase header name. */
  readonly name: string;
  readonly value: Template;
}

const uriVar: Variable = (ctx) => ctx.path;
const requestUriVar: Variable = (ctx) => ctx.req.url ?? '';
const argsVar: Variable = (ctx) => ctx.query;
const isArgsVar: Variable = (ctx) => (ctx.query === '' ? '' : '?');
const hostVar: Variable = (ctx) => ctx.host;
const remoteAddrVar: Variable = (ctx) => ctx.clientIp;
const methodVar: Variable = (ctx) => ctx.method;
const schemeVar: Variable = (ctx) => ((ctx.req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http');
const routeIdVar: Variable = (ctx) => ctx.route.id;
const consumerVar: Variable = (ctx) => ctx.consumer?.username ?? '';

const NAMED: Readonly<Record<string, Variable>> = {
  uri: uriVar,
  request_uri: requestUriVar,
  args: argsVar,
  query_string: argsVar,
  is_args: isArgsVar,
  host: hostVar,
  remote_addr: remoteAddrVar,
  request_method: methodVar,
  scheme: schemeVar,
  route_id: routeIdVar,
  consumer_name: consumerVar,
};
const KNOWN = `$${Object.keys(NAMED).join(', $')}, $arg_<name>, $http_<name>`;
/** The highest capture a template may name after a regex whose groups are not known (one from a reference). */
const MAX_CAPTURE = 99;

/** The raw value of the first query argument `name` (ASCII case-insensitive, as nginx's $arg_), or ''. */
function queryArg(query: string, name: string): string {
  const n = name.length;
  let start = 0;
  while (start < query.length) {
    let end = query.indexOf('&', start);
    if (end === -1) end = query.length;
    if (end - start >= n && (end - start === n || query.charCodeAt(start + n) === 61 /* = */)) {
      let same = true;
      for (let i = 0; i < n && same; i++) same = (query.charCodeAt(start + i) | 0x20) === (name.charCodeAt(i) | 0x20);
      if (same) return end - start === n ? '' : query.slice(start + n + 1, end);
    }
    start = end + 1;
  }
  return '';
}

function variable(name: string): Variable | undefined {
  if (Object.prototype.hasOwnProperty.call(NAMED, name)) return NAMED[name];
  if (name.startsWith('arg_') && name.length > 4) {
    const arg = name.slice(4);
    return function argVar(ctx) {
      return ctx.query === '' ? '' : queryArg(ctx.query, arg);
    };
  }
  if (name.startsWith('http_') && name.length > 5) {
    const header = name.slice(5).toLowerCase().replace(/_/g, '-');
    return function httpVar(ctx) {
      const v = ctx.headers[header];
      return v === undefined ? '' : Array.isArray(v) ? v.join(', ') : v;
    };
  }
  return undefined;
}

/** Characters a path may carry as they are; anything else from a variable is percent-encoded. */
const PATH_UNSAFE = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]/gu;
/** A variable's value made safe inside a path (a `?` in a value must not start the query). */
function pathSafe(v: string): string {
  PATH_UNSAFE.lastIndex = 0;
  if (!PATH_UNSAFE.test(v)) return v;
  PATH_UNSAFE.lastIndex = 0;
  return v.replace(PATH_UNSAFE, (c) => {
    try {
      return encodeURIComponent(c);
    } catch {
      return ''; // a lone surrogate cannot be encoded
    }
  });
}

interface TemplateRules {
  /** Where the template is, for error messages (`uri`, `headers.set.X-Id`). */
  readonly where: string;
  /** Highest capture number the template may use; -1 when captures are not available. */
  readonly maxCapture: number;
  /** Why captures are unavailable (error text), when maxCapture is -1. */
  readonly noCaptures?: string;
  /** Unknown `$name`: kept as text (regex_uri templates, as APISIX) or a config error. */
  readonly unknownAsText: boolean;
  /** Percent-encode variable values for a path. */
  readonly forPath: boolean;
}

/**
 * Compile `text` into parts: `$name` / `${name}` variables, `$1` / `${1}` captures (`$0` the whole
 * match), `\$` a literal dollar sign.
 * @throws Error naming `rules.where` for an unknown variable or an unavailable capture
 */
function compileTemplate(text: string, rules: TemplateRules): Template {
  const parts: Part[] = [];
  let lit = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\' && text[i + 1] === '$') {
      lit += '$';
      i += 2;
      continue;
    }
    if (c !== '$') {
      lit += c;
      i++;
      continue;
    }
    let name: string | undefined;
    let end = i + 1;
    if (text[end] === '{') {
      const close = text.indexOf('}', end);
      if (close !== -1 && /^\w+$/.test(text.slice(end + 1, close))) {
        name = text.slice(end + 1, close);
        end = close + 1;
      }
    } else {
      const m = /^\w+/.exec(text.slice(end));
      if (m !== null) {
        // $12abc is capture 12 followed by "abc", as ngx.re.sub reads it
        name = /^[0-9]/.test(m[0]) ? /^[0-9]+/.exec(m[0])![0] : m[0];
        end += name.length;
      }
    }
    if (name === undefined) {
      lit += '$';
      i++;
      continue;
    }
    const source = text.slice(i, end);
    if (/^[0-9]+$/.test(name)) {
      const n = Number(name);
      if (rules.maxCapture < 0) throw new Error(`${rules.where}: ${source} ${rules.noCaptures}`);
      if (n > rules.maxCapture) throw new Error(`${rules.where}: ${source} refers to a capture group the regex does not have (it has ${rules.maxCapture})`);
      if (lit) parts.push(lit);
      lit = '';
      parts.push(n);
    } else {
      const get = variable(name);
      if (get === undefined) {
        if (!rules.unknownAsText) throw new Error(`${rules.where}: unknown variable ${source} (known: ${KNOWN})`);
        lit += source;
      } else {
        if (lit) parts.push(lit);
        lit = '';
        parts.push(rules.forPath ? (ctx: RequestContext) => pathSafe(get(ctx)) : get);
      }
    }
    i = end;
  }
  if (lit) parts.push(lit);
  const constant = parts.length === 0 ? '' : parts.length === 1 && typeof parts[0] === 'string' ? parts[0] : undefined;
  return { constant, parts };
}

function render(t: Template, ctx: RequestContext, match: RegExpExecArray | null): string {
  if (t.constant !== undefined) return t.constant;
  let out = '';
  const parts = t.parts;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (typeof p === 'string') out += p;
    else if (typeof p === 'number') out += match === null ? '' : (match[p] ?? '');
    else out += p(ctx);
  }
  return out;
}

/** Make `uri` (path, maybe `?query`) the upstream target; the client's query is kept after it. */
function setTarget(ctx: RequestContext, uri: string): void {
  const q = uri.indexOf('?');
  const path = q === -1 ? uri : uri.slice(0, q);
  // undici needs a path that starts with '/'
  ctx.path = path.charCodeAt(0) === 47 ? path : `/${path}`;
  if (q === -1 || q === uri.length - 1) return;
  const added = uri.slice(q + 1);
  ctx.query = ctx.query === '' ? added : `${added}&${ctx.query}`;
}

/** A value that came from a secret reference: data, used byte for byte, never read as a template. */
function literal(text: string): Template {
  return { constant: text, parts: text === '' ? [] : [text] };
}

function headerList(map: Readonly<Record<string, HeaderValue>> | undefined, at: readonly string[], rules: Omit<TemplateRules, 'where'>, isReference: CreateServices['isReference']): HeaderAction[] {
  if (map === undefined) return [];
  return Object.keys(map).map((name) => {
    const text = String(map[name]);
    const value = isReference([...at, name]) ? literal(text) : compileTemplate(text, { ...rules, where: `${at.join('.')}.${name}` });
    return { name: name.toLowerCase(), value };
  });
}

export default definePlugin<ProxyRewriteConfig>({
  name: 'proxy-rewrite',
  version: '1.0.0',
  // as APISIX: rewrite phase, after authentication (key-auth 2500) and cors (4000)
  priority: 1008,
  schema,
  create(conf, { isReference }) {

    const rules: Rule[] = [];
    let maxCapture = -1;
    if (conf.regex_uri !== undefined) {
      const list = conf.regex_uri;
      if (list.length % 2 !== 0) throw new Error(`regex_uri: must hold [regex, template] pairs, so an even number of entries (it has ${list.length})`);
      for (let i = 0; i < list.length; i += 2) {
        let regex: RegExp;
        try {
          regex = new RegExp(list[i]);
        } catch (err) {
          // a regex from a reference is a secret: say what is wrong without quoting it
          if (isReference(['regex_uri', i])) throw new Error(`regex_uri[${i}]: the referenced value is not a valid regular expression`);
          throw new Error(`regex_uri[${i}]: ${JSON.stringify(list[i])} is not a valid regular expression (${(err as Error).message})`);
        }
        // an alternative that matches the empty string shows how many groups the regex has; a regex
        // from a reference may have any number (its text is not known when the config is written):
        // a group it lacks is empty
        const groups = isReference(['regex_uri', i]) ? MAX_CAPTURE : new RegExp(`${list[i]}|`).exec('')!.length - 1;
        maxCapture = Math.max(maxCapture, groups);
        const template = isReference(['regex_uri', i + 1]) ? literal(list[i + 1]) : compileTemplate(list[i + 1], { where: `regex_uri[${i + 1}]`, maxCapture: groups, unknownAsText: true, forPath: true });
        rules.push({ regex, template });
      }
    }

    const uri = conf.uri === undefined ? undefined : isReference(['uri']) ? literal(conf.uri) : compileTemplate(conf.uri, { where: 'uri', maxCapture: -1, noCaptures: 'is a regex_uri capture; captures are not available in uri (use regex_uri)', unknownAsText: false, forPath: true });
    // uri wins over regex_uri (as APISIX), so captures exist for headers only when regex_uri is used
    const headerRules = {
      maxCapture: uri === undefined ? maxCapture : -1,
      noCaptures: uri === undefined ? 'is a regex_uri capture, but regex_uri is not set' : 'is a regex_uri capture, but uri is set and wins over regex_uri',
      unknownAsText: false,
      forPath: false,
    };

    const h = conf.headers;
    let add: HeaderAction[] = [];
    let set: HeaderAction[] = [];
    let remove: string[] = [];
    if (h !== undefined) {
      const keys = Object.keys(h);
      const actionForm = keys.some((k) => k === 'add' || k === 'set' || k === 'remove');
      if (actionForm) {
        const flat = keys.filter((k) => k !== 'add' && k !== 'set' && k !== 'remove');
        if (flat.length > 0) throw new Error(`headers: use either add/set/remove or the flat form { name: value }, not both (found ${flat.join(', ')} beside them)`);
        add = headerList(h.add, ['headers', 'add'], headerRules, isReference);
        set = headerList(h.set, ['headers', 'set'], headerRules, isReference);
        remove = (h.remove ?? []).map((n) => n.toLowerCase());
      } else {
        // the older flat form means set (as APISIX)
        set = headerList(h as Readonly<Record<string, HeaderValue>>, ['headers'], headerRules, isReference);
      }
    }
    const host = conf.host;
    const method = conf.method;

    return {
      rewrite: function proxyRewrite(ctx: RequestContext) {
        let match: RegExpExecArray | null = null;
        if (method !== undefined) ctx.method = method;
        if (uri !== undefined) setTarget(ctx, render(uri, ctx, null));
        else {
          const path = ctx.path;
          for (let i = 0; i < rules.length; i++) {
            match = rules[i].regex.exec(path);
            if (match === null) continue;
            // the first match is replaced (ngx.re.sub), the rest of the path is kept
            setTarget(ctx, path.slice(0, match.index) + render(rules[i].template, ctx, match) + path.slice(match.index + match[0].length));
            break;
          }
        }
        // as APISIX: add, then set, then remove
        for (let i = 0; i < add.length; i++) {
          const v = render(add[i].value, ctx, match);
          if (v === '') continue;
          const had = ctx.headers[add[i].name];
          const before = had === undefined ? '' : Array.isArray(had) ? had.join(', ') : had;
          ctx.setUpstreamHeader(add[i].name, before === '' ? v : `${before}, ${v}`);
        }
        for (let i = 0; i < set.length; i++) {
          const v = render(set[i].value, ctx, match);
          // an empty value removes the header, as in APISIX
          ctx.setUpstreamHeader(set[i].name, v === '' ? undefined : v);
        }
        for (let i = 0; i < remove.length; i++) ctx.setUpstreamHeader(remove[i], undefined);
        if (host !== undefined) ctx.setUpstreamHeader('host', host);
      },
    };
  },
});
