// client-control: a request body limit per route, as Apache APISIX's client-control (which sets
// nginx's client_max_body_size for the request). The core applies it: a declared length over it is
// 413 before any hook and before `100 Continue`, a chunked body is cut when it passes it.
import { definePlugin } from 'gatehouse-gateway/sdk';
import { schema, type ClientControlConfig } from './schema';

export default definePlugin<ClientControlConfig>({
  name: 'client-control',
  version: '1.0.0',
  // APISIX's priority: before the authentication and traffic plugins
  priority: 22000,
  schema,
  // no hook: the limit is declared, so a route with client-control costs nothing per request
  maxBodySize: (conf) => conf.max_body_size,
  create: () => ({}),
});
