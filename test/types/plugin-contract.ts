// Type-level tests, compiled by tsc with the rest: each @ts-expect-error line must fail to compile,
// or the build fails ("unused @ts-expect-error"). Nothing here runs.
import { definePlugin } from '../../core/sdk';

// a plugin without a name does not compile
// @ts-expect-error name is required
definePlugin({ version: '1.0.0', priority: 1, schema: {}, create: () => ({}) });

// a hook of the wrong shape does not compile
definePlugin({
  name: 'wrong-hook',
  version: '1.0.0',
  priority: 1,
  schema: {},
  // @ts-expect-error access must take a context and return void or a promise
  create: () => ({ access: (a: number, b: string) => a + b }),
});

// config types flow into create()
definePlugin<{ header: string }>({
  name: 'typed',
  version: '1.0.0',
  priority: 1,
  schema: {},
  create(conf) {
    // @ts-expect-error header is a string, not a number
    const n: number = conf.header;
    return { response: (ctx) => ctx.setResponseHeader(conf.header, String(n)) };
  },
});

// a valid plugin compiles
export const ok = definePlugin({ name: 'ok', version: '1.0.0', priority: 1, schema: {}, create: () => ({ access: (ctx) => ctx.respond(204) }) });

// buildStart's value is services.build in every create of that build, typed by the fourth parameter
definePlugin<{ group?: string }, never, undefined, Map<string, number>>({
  name: 'load-state',
  version: '1.0.0',
  priority: 1,
  schema: {},
  buildStart: () => new Map(),
  create(conf, { build }) {
    // @ts-expect-error build is the Map buildStart returns, not a string
    const s: string = build;
    build.set(conf.group ?? s, 1);
    return {};
  },
});

// the body limit is declared on the plugin, a function of the route's config
definePlugin<{ limit: number }>({ name: 'limit', version: '1.0.0', priority: 1, schema: {}, maxBodySize: (conf) => conf.limit, create: () => ({}) });
