// The SDK's published surface (dist/core/sdk.d.ts, what `gatehouse-gateway/sdk` gives an
// extension's TypeScript): the contracts an extension needs and nothing the core keeps for itself,
// and closed: every Gatehouse type its declarations mention is itself exported, so no internal
// contract or the DI container leaks in through a property's type.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import ts from 'typescript';

const sdk = join(__dirname, 'sdk.d.ts');
/** Contracts of the core's own (stores, the cluster bus, raw documents, registration) and of the DI container. */
const INTERNAL = ['ConfigStore', 'ClusterBus', 'ClusterCommand', 'DataSections', 'RawConfig', 'SecretFieldPaths', 'Extension', 'DependencyContainer', 'Token'];

const program = ts.createProgram([sdk], { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, types: [] });
const checker = program.getTypeChecker();
const exported = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(sdk)!)!);
const real = (s: ts.Symbol) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
const ownDir = __dirname + sep;

test('the SDK exports the contracts of plugins and providers, and none of the core\'s own', () => {
  const names = exported.map((s) => s.name);
  for (const name of ['Plugin', 'PluginHooks', 'PluginServices', 'RequestContext', 'SecretProvider', 'ProviderServices', 'SecretBackend', 'SecretRequest', 'SecretValue', 'Logger', 'JsonSchema', 'definePlugin', 'defineProvider', 'ConfigError', 'GatehouseError']) {
    assert.ok(names.includes(name), `the SDK exports ${name}`);
  }
  assert.deepEqual(names.filter((n) => INTERNAL.includes(n)), []);
  assert.doesNotMatch(readFileSync(sdk, 'utf8'), /tsyringe|DependencyContainer/);
  assert.deepEqual(program.getSourceFiles().map((f) => f.fileName).filter((f) => /tsyringe/.test(f)), [], 'no declaration of tsyringe is reachable from the SDK');
});

test('every Gatehouse type the SDK\'s declarations mention is exported by the SDK', () => {
  const surface = new Set(exported.map(real));
  const leaks = new Set<string>();
  const visit = (node: ts.Node): void => {
    const name = ts.isTypeReferenceNode(node) ? node.typeName : ts.isExpressionWithTypeArguments(node) ? node.expression : ts.isTypeQueryNode(node) ? node.exprName : undefined;
    const symbol = name && checker.getSymbolAtLocation(name);
    if (symbol && !(symbol.flags & ts.SymbolFlags.TypeParameter)) {
      const target = real(symbol);
      const files = (target.declarations ?? []).map((d) => d.getSourceFile().fileName);
      if (files.some((f) => /tsyringe/.test(f)) || (files.some((f) => f.startsWith(ownDir)) && !surface.has(target))) leaks.add(target.name);
    }
    ts.forEachChild(node, visit);
  };
  for (const s of surface) for (const d of s.declarations ?? []) visit(d);
  assert.ok(surface.size > 20, `${surface.size} exports read`);
  assert.deepEqual([...leaks].sort(), []);
});
