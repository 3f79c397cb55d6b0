// The OpenAPI generator on its own: docs/openapi.json is what it makes now, every component schema
// is valid JSON Schema 2020-12, and draft-07 schemas are translated without changing what they accept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { adminOpenApi, builtinOpenApiText, extensionsOf, toDraft2020 } from './openapi';
import { builtinExtensions } from '../extensions/builtins';
import { configSchema, upstreamSchema } from '../config/schema';
import { definePlugin } from '../sdk';
import { componentRef, componentsAjv, legacySchema as legacy, legacySamples as samples } from '../../test/helpers/openapi';

const ROOT = join(__dirname, '..', '..', '..');

test('docs/openapi.json is what the generator makes now (run `npm run openapi` after changing a schema or the Admin API)', () => {
  const written = readFileSync(join(ROOT, 'docs', 'openapi.json'), 'utf8');
  const now = builtinOpenApiText();
  if (written !== now) {
    // name the first differing line rather than dumping 100 kB
    const a = written.split('\n');
    const b = now.split('\n');
    const i = a.findIndex((l, n) => l !== b[n]);
    assert.fail(`docs/openapi.json is stale at line ${i + 1}: ${JSON.stringify(a[i])} but the generator makes ${JSON.stringify(b[i])}; run npm run openapi`);
  }
});

test('info.version is the package version; the document is OpenAPI 3.1.0', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const doc = JSON.parse(builtinOpenApiText());
  assert.equal(doc.openapi, '3.1.0');
  assert.equal(doc.info.version, pkg.version);
});

test('every component schema compiles with ajv in 2020-12 strict mode', () => {
  const doc = adminOpenApi(extensionsOf(builtinExtensions));
  const { names, compile } = componentsAjv(doc);
  // one per built-in plugin (and consumer schema) and secret manager, besides the resources
  for (const e of builtinExtensions) {
    if (e.kind === 'plugin') assert.ok(names.includes(`plugin.${e.plugin.name}`), e.plugin.name);
    else if (e.provider.name !== 'env') assert.ok(names.includes(`Secret.${e.provider.name}`), e.provider.name);
  }
  for (const name of names) assert.doesNotThrow(() => compile(componentRef(name)), name);
});

test('the validator schema objects are used, not copies: a config section is the component', () => {
  const doc = adminOpenApi(extensionsOf(builtinExtensions)) as any;
  // the Upstream component is upstreamSchema, in the 2020-12 dialect (the same keys, nothing else)
  assert.deepEqual(Object.keys(doc.components.schemas.Upstream), Object.keys(upstreamSchema));
  assert.deepEqual(doc.components.schemas.Upstream.properties.timeout, (upstreamSchema.properties as any).timeout);
  // a route embeds it by reference; every route field of the validator is there
  assert.deepEqual(doc.components.schemas.Route.properties.upstream, { $ref: '#/components/schemas/Upstream' });
  const routeFields = Object.keys((configSchema.properties as any).routes.items.properties);
  assert.deepEqual(Object.keys(doc.components.schemas.Route.properties), routeFields);
  assert.deepEqual(doc.components.schemas.Route.properties.plugins, { $ref: '#/components/schemas/RoutePlugins' });
});

test('toDraft2020 rewrites definitions, $ref, dependencies and tuple items', () => {
  const out = toDraft2020(legacy, '#/components/schemas/x') as any;
  assert.equal(out.$schema, undefined);
  assert.equal(out.definitions, undefined);
  assert.deepEqual(Object.keys(out.$defs), ['port', 'name']);
  assert.deepEqual(out.properties.port, { $ref: '#/components/schemas/x/$defs/port' });
  assert.deepEqual(out.properties.self, { $ref: '#/components/schemas/x' });
  assert.deepEqual(out.properties.pair, { type: 'array', prefixItems: [{ $ref: '#/components/schemas/x/$defs/name' }, { $ref: '#/components/schemas/x/$defs/port' }], items: false });
  // additionalItems next to a single items schema means nothing in draft-07: dropped
  assert.deepEqual(out.properties.list, { type: 'array', items: { $ref: '#/components/schemas/x/$defs/name' } });
  assert.deepEqual(out.properties.dependencies, { type: 'array', prefixItems: [{ type: 'string' }] });
  assert.deepEqual(out.dependentRequired, { user: ['pass'] });
  assert.deepEqual(out.dependentSchemas, { pass: { required: ['user'] } });
  assert.equal(out.dependencies, undefined);
});

test('a translated draft-07 plugin schema accepts exactly what the draft-07 original accepts', () => {
  const plugin = definePlugin({ name: 'legacy', version: '1.0.0', priority: 1, schema: legacy, create: () => ({}) });
  const doc = adminOpenApi(extensionsOf([{ kind: 'plugin', plugin }]));
  const translated = componentsAjv(doc).compile(componentRef('plugin.legacy'));
  // the validator's ajv is draft-07 (ajv's default class), as here
  const original = new Ajv({ strict: false }).compile(legacy);
  const verdicts = samples.map((s) => [JSON.stringify(s), original(structuredClone(s)), translated(structuredClone(s))]);
  for (const [sample, a, b] of verdicts) assert.equal(b, a, `${sample}: draft-07 says ${a}, the OpenAPI schema says ${b}`);
  // the samples are not all one answer: both verdicts occur
  assert.ok(verdicts.some((v) => v[1]) && verdicts.some((v) => !v[1]));
});
