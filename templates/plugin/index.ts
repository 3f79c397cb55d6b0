// template-plugin: adds a configurable header to every response of the routes that use it.
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { definePlugin, type RequestContext } from 'gatehouse-gateway/sdk';
import { schema, type TemplatePluginConfig } from './schema';

export default definePlugin<TemplatePluginConfig>({
  name: 'template-plugin',
  version: '0.1.0',
  // the Gatehouse versions this plugin is written for; `extensions:` refuses it on any other
  gatehouse: '^0.1.0',
  // higher runs first within a phase (as in Apache APISIX); only the response phase is used here
  priority: 1000,
  schema,
  create(conf) {
    // a bad header name or value is a config error at load, reported with its path, not a 500 per request
    validateHeaderName(conf.header_name);
    validateHeaderValue(conf.header_name, conf.header_value);
    return {
      response: function templatePlugin(ctx: RequestContext) {
        ctx.setResponseHeader(conf.header_name, conf.header_value);
      },
    };
  },
});
