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
