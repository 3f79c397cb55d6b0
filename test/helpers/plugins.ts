// Test-only plugins (registered as extensions, like a user's): they expose what they were given.
import { definePlugin, SENT_TO_CLIENT } from '../../core/sdk';
import type { Extension } from '../../core/contracts';

/**
 * `show-secret`: answers 200 with its (resolved) `value` in the `x-value` header, so a test can see
 * what the plugin received. Test data only: real plugins never echo secrets.
 */
export const showSecret: Extension = {
  kind: 'plugin',
  plugin: definePlugin<{ value: string }>({
    name: 'show-secret',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object', properties: { value: { type: 'string', minLength: 1 } }, required: ['value'], additionalProperties: false },
    create: (conf) => ({
      access(ctx) {
        ctx.respond(200, { ok: true }, { 'x-value': conf.value });
      },
    }),
  }),
};

/** A third-party plugin: a banner page sent to the client (marked), a token for the upstream (not). */
export const banner = definePlugin<{ page: { title: string; lines?: string[] }; upstream_token?: string }, { greeting?: string; key?: string }>({
  name: 'banner',
  version: '1.0.0',
  priority: 1,
  schema: {
    type: 'object',
    properties: {
      page: { type: 'object', properties: { title: { type: 'string' }, lines: { type: 'array', items: { type: 'string' } } }, required: ['title'], [SENT_TO_CLIENT]: true },
      upstream_token: { type: 'string' },
    },
    required: ['page'],
    additionalProperties: false,
  },
  consumerSchema: { type: 'object', properties: { greeting: { type: 'string', [SENT_TO_CLIENT]: true }, key: { type: 'string' } }, additionalProperties: false },
  create: (conf) => ({
    access(ctx) {
      ctx.respond(200, [conf.page.title, ...(conf.page.lines ?? [])].join('\n'), { 'content-type': 'text/plain' });
    },
  }),
});
