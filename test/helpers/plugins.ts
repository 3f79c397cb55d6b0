// Test-only plugins (registered as extensions, like a user's): they expose what they were given.
import { definePlugin } from '../../core/sdk';
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
