// The counting key of limit-count: APISIX-style variables (`remote_addr`, `http_x_api_user`, …)
// compiled once, at config-load time, into a function of the request.
import type { RequestContext } from 'gatehouse-gateway/sdk';

/** Reads one variable of a request; undefined when the request has none. */
export type Variable = (ctx: RequestContext) => string | undefined;

const remoteAddr: Variable = (ctx) => ctx.clientIp;

const NAMED: Readonly<Record<string, Variable>> = {
  remote_addr: remoteAddr,
  remote_port: (ctx) => portOf(ctx.req.socket.remotePort),
  server_addr: (ctx) => ctx.req.socket.localAddress,
  server_port: (ctx) => portOf(ctx.req.socket.localPort),
  consumer_name: (ctx) => ctx.consumer?.username,
  route_id: (ctx) => ctx.route.id,
  host: (ctx) => ctx.host,
  uri: (ctx) => ctx.path,
  request_uri: (ctx) => ctx.req.url,
  request_method: (ctx) => ctx.method,
};

function portOf(port: number | undefined): string | undefined {
  return port === undefined ? undefined : String(port);
}

/** The value of query argument `name` in a raw query string (first occurrence), decoded. */
function queryArg(query: string, name: string): string | undefined {
  if (query === '') return undefined;
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end === -1) end = query.length;
    const eq = query.indexOf('=', start);
    const keyEnd = eq === -1 || eq > end ? end : eq;
    if (decode(query.slice(start, keyEnd)) === name) return keyEnd === end ? '' : decode(query.slice(keyEnd + 1, end));
    start = end + 1;
  }
  return undefined;
}

function decode(s: string): string {
  if (s.indexOf('%') === -1 && s.indexOf('+') === -1) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/** The value of cookie `name` in a Cookie header. */
function cookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * The reader of one variable, as nginx/APISIX name them: the names of {@link NAMED},
 * `http_<header>` (dashes written as underscores), `arg_<query argument>`, `cookie_<name>`.
 * @returns undefined for an unknown name
 */
export function variable(name: string): Variable | undefined {
  const named = NAMED[name];
  if (named !== undefined) return named;
  if (name.startsWith('http_') && name.length > 5) {
    const header = name.slice(5).toLowerCase().replace(/_/g, '-');
    return (ctx) => {
      const v = ctx.headers[header];
      return Array.isArray(v) ? v.join(', ') : v;
    };
  }
  if (name.startsWith('arg_') && name.length > 4) {
    const arg = name.slice(4);
    return (ctx) => queryArg(ctx.query, arg);
  }
  if (name.startsWith('cookie_') && name.length > 7) {
    const c = name.slice(7);
    return (ctx) => cookie(ctx.headers.cookie, c);
  }
  return undefined;
}

const KNOWN = `${Object.keys(NAMED).join(', ')}, http_<header>, arg_<name>, cookie_<name>`;

function unknown(name: string): Error {
  return new Error(`key: unknown variable "${name}" (known: ${KNOWN})`);
}

/**
 * Build the function that gives a request's counting key, as APISIX does: `var` reads one variable,
 * `var_combination` fills a template (`$remote_addr $consumer_name`, or `${var}`), `constant` is the
 * key itself. When no variable has a value the client address is used.
 * @throws Error naming an unknown variable or a template without one
 * @example keyOf('var', 'http_x_api_user')(ctx) // the X-Api-User header, else the client address
 */
export function keyOf(type: 'var' | 'var_combination' | 'constant', key: string): (ctx: RequestContext) => string {
  if (type === 'constant') return () => key;
  if (type === 'var') {
    // as APISIX the name has no `$`; one is accepted for convenience
    const name = key.startsWith('$') ? key.slice(1) : key;
    const read = variable(name);
    if (read === undefined) throw unknown(name);
    if (read === remoteAddr) return remoteAddr as (ctx: RequestContext) => string;
    return function limitKey(ctx) {
      const v = read(ctx);
      return v === undefined ? ctx.clientIp : v;
    };
  }
  // var_combination: literal text and variables, in order (`\$` keeps a literal dollar)
  const literals: string[] = [];
  const vars: Variable[] = [];
  const pattern = /(?<!\\)\$(?:\{(\w+)\}|(\w+))/g;
  let last = 0;
  for (const m of key.matchAll(pattern)) {
    const name = m[1] ?? m[2];
    const read = variable(name);
    if (read === undefined) throw unknown(name);
    literals.push(key.slice(last, m.index));
    vars.push(read);
    last = m.index! + m[0].length;
  }
  if (vars.length === 0) throw new Error(`key: "${key}" names no variable (write them as $name or \${name}, e.g. "$remote_addr $consumer_name"), or use key_type constant`);
  const tail = key.slice(last);
  return function limitKey(ctx) {
    let out = literals[0];
    let resolved = 0;
    for (let i = 0; i < vars.length; i++) {
      const v = vars[i](ctx);
      if (v !== undefined) {
        out += v;
        resolved++;
      }
      out += i + 1 < literals.length ? literals[i + 1] : tail;
    }
    return resolved === 0 ? ctx.clientIp : out;
  };
}
