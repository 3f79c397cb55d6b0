// What fails closed because of a secret's value (a route a plugin cannot create with it, a consumer
// a plugin leaves out of its index), logged once: when the failure appears, not again at every
// rebuild while it lasts (a secret refreshed every `ttl` would repeat the line forever). A failure
// that goes away and comes back is logged again.
import type { Logger } from '../contracts';
import { joinPath } from '../config/paths';
import { looksLikeReference } from '../secrets/reference';

/** One build's reports, compared with the failures of the build before. */
export class FailClosedLog {
  /** The failures the last build saw (by key). */
  private live = new Set<string>();
  /** The failures the build in progress has seen. */
  private seen = new Set<string>();

  constructor(private readonly logger: Logger) {}

  /**
   * A failure of the build in progress, logged at error level unless the last build had it too.
   * @param key what identifies it: who fails, the plugin and the cause
   * @param fields the log line's fields; never a value
   */
  report(key: string, fields: Record<string, unknown>, msg: string): void {
    this.seen.add(key);
    if (!this.live.has(key)) this.logger.error(fields, msg);
  }

  /**
   * The build in progress ended. A snapshot's failures replace the last ones; a refused build
   * only adds its own (what it logged is not logged again when the next build has it).
   */
  settle(built: boolean): void {
    if (built) this.live = this.seen;
    else for (const k of this.seen) this.live.add(k);
    this.seen = new Set();
  }

  /**
   * An incremental build ended with a snapshot: it reported for the consumers and routes it
   * compiled again only, so only their failures are replaced; every other one lasts.
   */
  settleTouched(consumers: ReadonlySet<string>, routes: ReadonlySet<string>): void {
    const prefixes: string[] = [];
    for (const u of consumers) prefixes.push(`consumer|${u}|`, `{"consumer":${JSON.stringify(u)},`);
    for (const r of routes) prefixes.push(`route|${r}|`, `{"route":${JSON.stringify(r)},`);
    for (const k of this.live) if (prefixes.some((p) => k.startsWith(p))) this.live.delete(k);
    for (const k of this.seen) this.live.add(k);
    this.seen = new Set();
  }
}

/** The paths (`headers.set.X-Id`, `regex_uri[1]`; keys that are not identifiers quoted) of every reference in `v`. */
export function referencePaths(v: unknown, base = '', out = new Set<string>()): Set<string> {
  if (typeof v === 'string') {
    if (looksLikeReference(v)) out.add(base);
  } else if (Array.isArray(v)) v.forEach((x, i) => referencePaths(x, joinPath(base, i), out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) referencePaths(x, joinPath(base, k), out);
  return out;
}

/** A path as `isReference` takes it: a string as it is, a list of keys joined like config paths. */
export function pathText(path: string | ReadonlyArray<string | number>): string {
  return typeof path === 'string' ? path : path.reduce<string>((base, k) => joinPath(base, k), '');
}
