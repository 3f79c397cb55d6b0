// The Admin API's OpenAPI 3.1 description (`GET /admin/openapi.json`, docs/openapi.json). It is
// built from the schema objects the config validator itself uses (core/config/schema.ts and each
// registered plugin's and secret provider's schema), so what it says a write accepts cannot drift
// from what the validator accepts. Schemas only: it never holds a config value, so no secret.
import type { Extension, JsonSchema, Plugin, SecretProvider } from '../contracts';
import { configSchema, sslSchema, upstreamSchema } from '../config/schema';
import { version } from '../version';
import { builtinExtensions } from '../extensions/builtins';
import { ADMIN_PREFIXES, OPENAPI_DOCUMENT, type AdminKind } from './paths';

/** An OpenAPI document, as plain JSON. */
export type OpenApiDocument = Record<string, unknown>;

/** The extensions the description covers: a gateway's registry, or the built-ins alone. */
export interface OpenApiExtensions {
  readonly plugins: ReadonlyMap<string, Plugin>;
  readonly providers: ReadonlyMap<string, SecretProvider>;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** `#/components/schemas/<name>`, escaped as a JSON pointer (RFC 6901) inside a URI fragment. */
const schemaPointer = (name: string) => `#/components/schemas/${encodeURIComponent(name.replace(/~/g, '~0').replace(/\//g, '~1'))}`;
const ref = (name: string): Json => ({ $ref: schemaPointer(name) });

// ---------------------------------------------------------------------------------------------
// draft-07 → 2020-12

/** Keywords whose value is one schema. */
const ONE_SCHEMA = ['additionalProperties', 'contains', 'propertyNames', 'if', 'then', 'else', 'not', 'unevaluatedItems', 'unevaluatedProperties', 'contentSchema'];
/** Keywords whose value is a list of schemas. */
const SCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf', 'prefixItems'];
/** Keywords whose value maps names (not keywords) to schemas. */
const SCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'dependentSchemas'];

/**
 * One schema in OpenAPI 3.1's dialect (JSON Schema 2020-12), from the draft-07 ajv compiles:
 * `definitions` becomes `$defs`, `dependencies` `dependentRequired` / `dependentSchemas`, a tuple
 * `items` array `prefixItems` (and `additionalItems` `items`). A local `$ref` is rewritten to point
 * into the document (`#/definitions/x` → `<base>/$defs/x`): embedded in it, `#` is the document's
 * root. `$schema` and `$id` are dropped, since either would change how the schema is read. A
 * sub-schema that is itself a component (`named`, by identity) becomes a `$ref` to it, so the
 * route's `upstream` is the `Upstream` component, not a copy.
 */
export function toDraft2020(schema: unknown, base: string, named: ReadonlyMap<object, string> = new Map()): unknown {
  const walk = (s: unknown, root: boolean): unknown => {
    if (!isObject(s)) return s; // a boolean schema
    const name = named.get(s);
    if (!root && name !== undefined) return ref(name);
    const out: Json = {};
    const defs: Json = {};
    for (const [k, v] of Object.entries(s)) {
      if (k === '$schema' || k === '$id') continue;
      if (k === '$ref' && typeof v === 'string') out.$ref = v.startsWith('#') ? base + v.slice(1).replace(/^\/definitions\//, '/$defs/') : v;
      else if (k === 'definitions' || k === '$defs') Object.assign(defs, mapValues(v, (x) => walk(x, false)));
      else if (k === 'dependencies' && isObject(v)) {
        for (const [prop, dep] of Object.entries(v)) {
          const target = Array.isArray(dep) ? 'dependentRequired' : 'dependentSchemas';
          out[target] = { ...(out[target] as Json | undefined), [prop]: Array.isArray(dep) ? dep : walk(dep, false) };
        }
      } else if (k === 'items' && Array.isArray(v)) {
        out.prefixItems = v.map((x) => walk(x, false));
        if (s.additionalItems !== undefined) out.items = walk(s.additionalItems, false);
      } else if (k === 'additionalItems') continue; // only meaningful next to a tuple (above)
      else if (k === 'items' || ONE_SCHEMA.includes(k)) out[k] = walk(v, false);
      else if (SCHEMA_LISTS.includes(k) && Array.isArray(v)) out[k] = v.map((x) => walk(x, false));
      else if (SCHEMA_MAPS.includes(k)) out[k] = mapValues(v, (x) => walk(x, false));
      else out[k] = v; // enum, const, default, type, pattern, …: values, not schemas
    }
    if (Object.keys(defs).length) out.$defs = defs;
    return out;
  };
  return walk(schema, true);
}

function mapValues(v: unknown, fn: (x: unknown) => unknown): unknown {
  return isObject(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fn(x)])) : v;
}

// ---------------------------------------------------------------------------------------------
// component schemas

const routeSchema = (configSchema.properties as Json).routes as Json;
const consumerSchema = (configSchema.properties as Json).consumers as Json;
const secretSchema = (configSchema.properties as Json).secrets as Json;
const itemOf = (listSchema: Json): Json => listSchema.items as Json;
const propertyOf = (schema: Json, name: string): Json => (schema.properties as Json)[name] as Json;

/** Component names: `[A-Za-z0-9._-]` only (OpenAPI's rule for component keys). */
const safeName = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');
const pluginComponent = (name: string, consumer: boolean) => `plugin.${safeName(name)}${consumer ? '.consumer' : ''}`;
const secretComponent = (manager: string) => `Secret.${safeName(manager)}`;

/**
 * The managers that can have secret resources: every registered provider but `env`, which the
 * validator refuses under `secrets:` ($env:// references need no resource).
 */
const resourceManagers = (x: OpenApiExtensions) => [...x.providers.values()].filter((p) => p.name !== 'env');

/** Every schema of the document by component name, in the validator's own objects (draft-07). */
function sourceSchemas(x: OpenApiExtensions): Array<[string, JsonSchema]> {
  const plugins = [...x.plugins.values()];
  const byName = (list: Plugin[], consumer: boolean) => Object.fromEntries(list.map((p) => [p.name, consumer ? p.consumerSchema : p.schema]));
  // the validator's schema leaves `plugins` open and checks each name (unknown ones refused) and
  // config with the plugin's schema itself: here that check is spelled out as properties
  const pluginsOf = (owner: Json, list: Plugin[], consumer: boolean): JsonSchema => ({
    ...propertyOf(owner, 'plugins'),
    description: consumer ? 'Plugins that take a consumer config, by name.' : 'Plugins by name; an unknown name is refused.',
    properties: byName(list, consumer),
    additionalProperties: false,
  });
  const route = itemOf(routeSchema);
  const consumer = itemOf(consumerSchema);
  const routePlugins = pluginsOf(route, plugins, false);
  const consumerPlugins = pluginsOf(consumer, plugins.filter((p) => p.consumerSchema !== undefined), true);
  const consumerWithPlugins = { ...consumer, properties: { ...(consumer.properties as Json), plugins: consumerPlugins } };
  const out: Array<[string, JsonSchema]> = [
    ['Route', { ...route, properties: { ...(route.properties as Json), plugins: routePlugins } }],
    ['RoutePlugins', routePlugins],
    ['Upstream', upstreamSchema],
    ['Ssl', sslSchema],
    ['Consumer', consumerWithPlugins],
    // the body of PUT /consumers/{username}: the path gives the username
    ['ConsumerWrite', optional(consumerWithPlugins, 'username')],
    ['ConsumerPlugins', consumerPlugins],
  ];
  for (const p of plugins) {
    out.push([pluginComponent(p.name, false), p.schema]);
    if (p.consumerSchema) out.push([pluginComponent(p.name, true), p.consumerSchema]);
  }
  // a secret resource: the provider's fields (its schema, as the validator checks them) plus `id`
  for (const p of resourceManagers(x)) out.push([secretComponent(p.name), { ...p.schema, properties: { id: propertyOf(itemOf(secretSchema), 'id'), ...(p.schema.properties as Json | undefined) } }]);
  return out;
}

/** `schema` with `field` no longer required: a write body whose id the path gives. */
function optional(schema: Json, field: string): Json {
  const { required, ...rest } = schema;
  const still = ((required as string[] | undefined) ?? []).filter((f) => f !== field);
  return still.length ? { ...rest, required: still } : rest;
}

const error: Json = {
  type: 'object',
  description: 'Every refusal. `errors` lists each validation problem with its config path.',
  properties: { error_msg: { type: 'string' }, errors: { type: 'array', items: { type: 'string' } } },
  required: ['error_msg'],
};

/** `{"key":…,"value":…}`, APISIX's envelope of one resource. */
const entry = (value: Json): Json => ({ type: 'object', properties: { key: { type: 'string', description: 'APISIX style: /apisix/<kind>/<id>' }, value }, required: ['key', 'value'] });
/** `{"total":N,"list":[…]}`, APISIX's envelope of a list. */
const list = (item: Json): Json => ({ type: 'object', properties: { total: { type: 'integer', minimum: 0 }, list: { type: 'array', items: item } }, required: ['total', 'list'] });

/** Schemas of the envelopes and other answers (not the validator's: the Admin API's own). */
function envelopeSchemas(x: OpenApiExtensions): Array<[string, Json]> {
  const secrets = resourceManagers(x).map((p) => ref(secretComponent(p.name)));
  const pluginInfo: Json = {
    type: 'object',
    properties: {
      name: { type: 'string' },
      version: { type: 'string' },
      priority: { type: 'integer' },
      schema: { type: 'object', description: 'JSON schema of the route config' },
      consumer_schema: { type: ['object', 'null'], description: 'JSON schema of the consumer config; null when the plugin has none' },
    },
    required: ['name', 'version', 'priority', 'schema', 'consumer_schema'],
  };
  return [
    ['Error', error],
    ['RouteEntry', entry(ref('Route'))],
    ['RouteList', list(ref('RouteEntry'))],
    ['UpstreamEntry', entry(ref('Upstream'))],
    ['UpstreamList', list(ref('UpstreamEntry'))],
    ['SslEntry', entry(ref('Ssl'))],
    ['SslList', list(ref('SslEntry'))],
    ['ConsumerEntry', entry(ref('Consumer'))],
    ['ConsumerList', list(ref('ConsumerEntry'))],
    ['SecretEntry', entry(secrets.length ? { anyOf: secrets } : { type: 'object' })],
    ['SecretList', list(ref('SecretEntry'))],
    ['PluginInfo', pluginInfo],
    ['PluginList', list(ref('PluginInfo'))],
    ['Deleted', { type: 'object', properties: { deleted: { const: '1' }, key: { type: 'string' } }, required: ['deleted', 'key'] }],
    [
      'Refreshed',
      {
        type: 'object',
        description: "Counts are this process's; the refresh is also published to every other worker and node.",
        properties: { key: { type: 'string' }, refreshed: { type: 'integer', minimum: 0 }, failed: { type: 'integer', minimum: 0 }, published: { type: 'boolean' } },
        required: ['key', 'refreshed', 'failed', 'published'],
      },
    ],
  ];
}

// ---------------------------------------------------------------------------------------------
// operations

type Method = 'get' | 'head' | 'put' | 'post' | 'patch' | 'delete';
/** One operation, its path relative to a prefix (`routes/{id}`), or absolute (`/metrics`). */
interface Operation {
  readonly path: string;
  readonly method: Method;
  readonly id: string;
  readonly summary: string;
  readonly tag: string;
  readonly body?: Json;
  /** Status → [description, schema (JSON) or `text` for a text answer]. */
  readonly ok: Record<string, [string, Json]>;
  /** Error statuses besides 401 and 403, which every keyed call may answer. */
  readonly errors: readonly string[];
  /** `false`: no X-API-KEY (only /metrics). */
  readonly keyed?: false;
}

const WRITE_ERRORS = ['400', '413', '500'];
const ERROR_TEXT: Record<string, string> = {
  '400': 'Refused: not valid (nothing was changed); `errors` lists each problem with its path',
  '401': 'No X-API-KEY, or not the admin key',
  '403': 'The client address is not in admin.allow, or (writes) the store is read-only',
  '404': 'No such resource',
  '413': 'The body is larger than 1 MiB',
  '500': 'The config file could not be read, or an internal error',
};

const SUBPATH_BODY: Json = { description: 'Any JSON value: it replaces the attribute `{path}` names; `null` deletes it.' };
const mergeBody = (what: string): Json => ({ type: 'object', description: `A JSON merge patch (RFC 7386) of the stored ${what}: objects merge key by key, null deletes a key, anything else replaces.` });

/** What the generic resources (routes, upstreams, consumers) differ in. */
interface ResourceKind {
  readonly one: string;
  readonly component: string;
  /** The path parameter naming one resource. */
  readonly param: string;
  /** Body of `PUT …/{param}` (the path gives the id). */
  readonly putBody: Json;
  /** The collection also takes `POST` (generated id) or `PUT` (username from the body). */
  readonly create?: { method: 'post' | 'put'; body: Json; summary: string };
}

/** The operations of one kind; a Record over every kind, so a new kind cannot go undescribed. */
const OPERATIONS: Record<AdminKind, (x: OpenApiExtensions) => Operation[]> = {
  routes: () => resourceOperations('routes', { one: 'route', component: 'Route', param: 'id', putBody: ref('Route'), create: { method: 'post', body: ref('Route'), summary: 'Create a route with a generated, time-ordered id' } }),
  upstreams: () => resourceOperations('upstreams', { one: 'upstream', component: 'Upstream', param: 'id', putBody: ref('Upstream'), create: { method: 'post', body: ref('Upstream'), summary: 'Create an upstream with a generated, time-ordered id' } }),
  ssls: () => resourceOperations('ssls', { one: 'SSL resource', component: 'Ssl', param: 'id', putBody: ref('Ssl'), create: { method: 'post', body: ref('Ssl'), summary: 'Create an SSL resource with a generated, time-ordered id' } }),
  consumers: () => resourceOperations('consumers', { one: 'consumer', component: 'Consumer', param: 'username', putBody: ref('ConsumerWrite'), create: { method: 'put', body: ref('Consumer'), summary: 'Create or replace the consumer the body names (APISIX style)' } }),
  secrets: (x) => [
    { path: 'secrets', method: 'get', id: 'listSecrets', summary: 'List the secret resources (plaintext secret fields masked)', tag: 'secrets', ok: { '200': ['The list', ref('SecretList')] }, errors: [] },
    ...resourceManagers(x).flatMap((p): Operation[] => {
      const n = safeName(p.name);
      const path = `secrets/${p.name}/{id}`;
      const entryOf: Json = entry(ref(secretComponent(p.name)));
      return [
        { path, method: 'get', id: `getSecret.${n}`, summary: `Get a ${p.name} secret resource`, tag: 'secrets', ok: { '200': ['The resource (plaintext secret fields masked)', entryOf] }, errors: ['404'] },
        { path, method: 'put', id: `putSecret.${n}`, summary: `Create or replace a ${p.name} secret resource`, tag: 'secrets', body: ref(secretComponent(p.name)), ok: { '200': ['Replaced', entryOf], '201': ['Created', entryOf] }, errors: WRITE_ERRORS },
        { path, method: 'patch', id: `patchSecret.${n}`, summary: `Merge-patch a ${p.name} secret resource`, tag: 'secrets', body: mergeBody('secret resource'), ok: { '200': ['Patched', entryOf] }, errors: [...WRITE_ERRORS, '404'] },
        { path, method: 'delete', id: `deleteSecret.${n}`, summary: `Delete a ${p.name} secret resource (refused while referenced)`, tag: 'secrets', ok: { '200': ['Deleted', ref('Deleted')] }, errors: ['400', '404', '500'] },
        { path: `${path}/{path}`, method: 'patch', id: `patchSecretPath.${n}`, summary: `SubPath PATCH of a ${p.name} secret resource`, tag: 'secrets', body: SUBPATH_BODY, ok: { '200': ['Patched', entryOf] }, errors: [...WRITE_ERRORS, '404'] },
        { path: `${path}/refresh`, method: 'post', id: `refreshSecret.${n}`, summary: `Fetch every cached reference of a ${p.name} secret resource now, here and on every other worker and node`, tag: 'secrets', ok: { '200': ['Refreshed', ref('Refreshed')] }, errors: ['404'] },
      ];
    }),
  ],
  plugins: () => [
    { path: 'plugins', method: 'get', id: 'listPlugins', summary: 'List the plugins with their schemas', tag: 'plugins', ok: { '200': ['The list', ref('PluginList')] }, errors: [] },
    { path: 'plugins/{name}', method: 'get', id: 'getPlugin', summary: 'One plugin with its schemas', tag: 'plugins', ok: { '200': ['The plugin', ref('PluginInfo')] }, errors: ['404'] },
  ],
};

function resourceOperations(kind: AdminKind, k: ResourceKind): Operation[] {
  const Name = k.component;
  const item = `${kind}/{${k.param}}`;
  const one = ref(`${Name}Entry`);
  const ops: Operation[] = [
    { path: kind, method: 'get', id: `list${Name}s`, summary: `List the ${kind}`, tag: kind, ok: { '200': ['The list', ref(`${Name}List`)] }, errors: [] },
    { path: item, method: 'get', id: `get${Name}`, summary: `Get a ${k.one}`, tag: kind, ok: { '200': [`The ${k.one}`, one] }, errors: ['404'] },
    { path: item, method: 'put', id: `put${Name}`, summary: `Create or replace a ${k.one}`, tag: kind, body: k.putBody, ok: { '200': ['Replaced', one], '201': ['Created', one] }, errors: WRITE_ERRORS },
    { path: item, method: 'patch', id: `patch${Name}`, summary: `Merge-patch a ${k.one}`, tag: kind, body: mergeBody(k.one), ok: { '200': ['Patched', one] }, errors: [...WRITE_ERRORS, '404'] },
    { path: item, method: 'delete', id: `delete${Name}`, summary: `Delete a ${k.one}`, tag: kind, ok: { '200': ['Deleted', ref('Deleted')] }, errors: ['400', '404', '500'] },
    { path: `${item}/{path}`, method: 'patch', id: `patch${Name}Path`, summary: `SubPath PATCH: replace one attribute of a ${k.one}`, tag: kind, body: SUBPATH_BODY, ok: { '200': ['Patched', one] }, errors: [...WRITE_ERRORS, '404'] },
  ];
  // POST always creates; PUT of the collection creates or replaces
  const created: Record<string, [string, Json]> = k.create?.method === 'post' ? { '201': ['Created', one] } : { '200': ['Replaced', one], '201': ['Created', one] };
  if (k.create) ops.push({ path: kind, method: k.create.method, id: `create${Name}`, summary: k.create.summary, tag: kind, body: k.create.body, ok: created, errors: WRITE_ERRORS });
  return ops;
}

/** Operations outside the resource kinds. */
const OTHER_OPERATIONS: readonly Operation[] = [
  { path: OPENAPI_DOCUMENT, method: 'get', id: 'getOpenApi', summary: 'This description', tag: 'meta', ok: { '200': ['OpenAPI 3.1', { type: 'object' }] }, errors: [] },
  ...(['get', 'head'] as const).map((method): Operation => ({
    path: '/metrics',
    method,
    id: `${method}Metrics`,
    summary: 'Prometheus metrics (admin.allow applies; no key)',
    tag: 'meta',
    ok: { '200': ['Prometheus text exposition format', { type: 'string' }] },
    errors: [],
    keyed: false,
  })),
];

/** Path parameters, by name. */
function parameter(name: string): Json {
  const pattern = (s: Json, field: string): Json => ({ type: 'string', pattern: propertyOf(s, field).pattern });
  switch (name) {
    case 'id':
      return { name, in: 'path', required: true, description: 'The id of the resource (a route id is also checked against the pattern when written)', schema: { type: 'string' } };
    case 'username':
      return { name, in: 'path', required: true, schema: pattern(itemOf(consumerSchema), 'username') };
    case 'name':
      return { name, in: 'path', required: true, description: 'A plugin name', schema: { type: 'string' } };
    case 'path':
      return {
        name,
        in: 'path',
        required: true,
        // OpenAPI has no multi-segment parameter: this one is the exception, said in words
        description: 'The attribute to replace: one or more segments separated by unescaped `/` (`plugins/limit-count`); `__proto__` and the id field are refused',
        schema: { type: 'string' },
      };
    default:
      throw new Error(`openapi: no description of the path parameter {${name}}`);
  }
}

function operationObject(op: Operation, prefixTag: string): Json {
  const responses: Json = {};
  for (const [status, [description, schema]] of Object.entries(op.ok)) {
    const text = op.path === '/metrics';
    responses[status] = op.method === 'head' ? { description } : { description, content: { [text ? 'text/plain' : 'application/json']: { schema } } };
  }
  for (const status of [...op.errors, ...(op.keyed === false ? ['403'] : ['401', '403'])].sort()) responses[status] = { $ref: `#/components/responses/E${status}` };
  const params = [...op.path.matchAll(/\{([^}]+)\}/g)].map((m) => ({ $ref: `#/components/parameters/${m[1]}` }));
  return {
    operationId: `${op.id}${prefixTag}`,
    summary: op.summary,
    tags: [op.tag],
    ...(op.keyed === false ? { security: [] } : {}),
    ...(params.length ? { parameters: params } : {}),
    ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: op.body } } } } : {}),
    responses,
  };
}

/**
 * The Admin API's OpenAPI 3.1 document for a gateway with these extensions: every method and path
 * the router answers, under both prefixes, with the validator's schemas as component schemas.
 */
export function adminOpenApi(x: OpenApiExtensions): OpenApiDocument {
  const sources = sourceSchemas(x);
  const named = new Map<object, string>();
  for (const [name, s] of sources) if (!named.has(s)) named.set(s, name);
  const schemas: Json = {};
  for (const [name, s] of sources) schemas[name] = toDraft2020(s, schemaPointer(name), named);
  for (const [name, s] of envelopeSchemas(x)) schemas[name] = s;

  const operations = [...Object.values(OPERATIONS).flatMap((f) => f(x)), ...OTHER_OPERATIONS];
  const paths: Record<string, Record<string, Json>> = {};
  const parameters: Json = {};
  // "/apisix/admin/…" second: it is the alias
  for (const prefix of [...ADMIN_PREFIXES].sort((a, b) => a.length - b.length)) {
    const alias = prefix !== '/admin/';
    for (const op of operations) {
      if (op.path.startsWith('/') && alias) continue; // absolute: once
      const path = op.path.startsWith('/') ? op.path : `${prefix}${op.path}`;
      (paths[path] ??= {})[op.method] = operationObject(op, alias ? '.apisix' : '');
      for (const m of op.path.matchAll(/\{([^}]+)\}/g)) parameters[m[1]] ??= parameter(m[1]);
    }
  }
  const responses: Json = {};
  for (const [status, description] of Object.entries(ERROR_TEXT)) responses[`E${status}`] = { description, content: { 'application/json': { schema: ref('Error') } } };

  return {
    openapi: '3.1.0',
    info: {
      title: 'Gatehouse Admin API',
      version,
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      description:
        'Resources under /admin/ and, for APISIX scripts, /apisix/admin/, in APISIX envelopes. Every call but /metrics needs the X-API-KEY header. ' +
        'Component schemas are the ones the config validator uses; a field of a plugin or secret resource may also hold a $secret:// or $env:// reference, checked once resolved. ' +
        'Plaintext secret fields (writeOnly) are answered as "******", and "******" written back keeps the stored value.',
    },
    tags: ['routes', 'upstreams', 'consumers', 'secrets', 'ssls', 'plugins', 'meta'].map((name) => ({ name })),
    security: [{ adminKey: [] }],
    paths,
    components: {
      schemas,
      parameters,
      responses,
      securitySchemes: { adminKey: { type: 'apiKey', in: 'header', name: 'X-API-KEY', description: 'The admin key (admin.key)' } },
    },
  };
}

/** A registry view of a list of extensions. */
export function extensionsOf(list: readonly Extension[]): OpenApiExtensions {
  const plugins = new Map<string, Plugin>();
  const providers = new Map<string, SecretProvider>();
  for (const e of list) (e.kind === 'plugin' ? plugins.set(e.plugin.name, e.plugin) : providers.set(e.provider.name, e.provider));
  return { plugins, providers };
}

/** docs/openapi.json's text: the document of the built-in extensions only, as the generator writes it. */
export function builtinOpenApiText(): string {
  return `${JSON.stringify(adminOpenApi(extensionsOf(builtinExtensions)), null, 2)}\n`;
}
