// Type-level tests of what hooks see (compiled with the rest; nothing here runs): the members of
// RequestContext are there, the core's own per-request state is not.
import { definePlugin, type RequestContext } from '../../core/sdk';

const definition = { version: '1.0.0', priority: 1, schema: {} };

export const reads = definePlugin({
  ...definition,
  name: 'reads',
  create: () => ({
    access(ctx: RequestContext) {
      ctx.path = `${ctx.method} ${ctx.host} ${ctx.clientIp} ${ctx.route.id} ${ctx.params.id ?? ''} ${ctx.query}`;
      ctx.vars.set('seen', ctx.headers['user-agent']);
      if (ctx.consumer === undefined) ctx.setUpstreamHeader('x-anonymous', '1');
    },
    response(ctx: RequestContext) {
      ctx.setResponseHeader('x-status', String(ctx.status + ctx.startTime));
      void ctx.responseHeaders;
      void ctx.upstreamNode;
      void ctx.responded;
    },
  }),
});

export const reachesForTheCore = definePlugin({
  ...definition,
  name: 'reaches-for-the-core',
  create: () => ({
    access(ctx) {
      // @ts-expect-error the body limit is the core's (a plugin declares maxBodySize instead)
      void ctx.bodyLimit;
      // @ts-expect-error the snapshot is the core's
      void ctx.snapshot;
      // @ts-expect-error Node's response is the core's: a plugin answers with respond()
      void ctx.res;
      // @ts-expect-error the response's progress is the core's
      void ctx.sent;
    },
    response(ctx) {
      // @ts-expect-error status is read-only to a plugin
      ctx.status = 200;
      // @ts-expect-error the consumer is set with setConsumer, which also sets the upstream header
      ctx.consumer = { username: 'someone' };
    },
  }),
});
