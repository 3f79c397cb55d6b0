// mocking: answer from config without calling an upstream (as Apache APISIX's mocking plugin).
import { definePlugin, type RequestContext } from 'gatehouse-gateway/sdk';
import { schema, type MockingConfig } from './schema';

export default definePlugin<MockingConfig>({
  name: 'mocking',
  version: '1.0.0',
  // as APISIX; it answers in the access phase, so auth plugins (rewrite phase, as in APISIX) run first
  priority: 10900,
  schema,
  create(conf) {
    const headers: Record<string, string> = { 'content-type': conf.content_type, ...(conf.response_headers ?? {}) };
    if (conf.with_mock_header) headers['x-mock-by'] = 'Gatehouse';
    const body = conf.response_example ?? '';
    const status = conf.response_status;
    if (conf.delay > 0) {
      const ms = conf.delay * 1000;
      return {
        access: function mockingDelayed(ctx: RequestContext) {
          return new Promise<void>((resolve) => setTimeout(resolve, ms)).then(() => ctx.respond(status, body, headers));
        },
      };
    }
    return {
      access: function mocking(ctx: RequestContext) {
        ctx.respond(status, body, headers);
      },
    };
  },
});
