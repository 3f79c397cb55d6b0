// Extension loading: `extensions:` in the config lists module paths (relative to the config file)
// and npm package names. Each module exports a plugin, a provider, or `{ plugins, providers }`;
// each of those declares the Gatehouse versions it supports (`gatehouse: "<semver range>"`).
// Anything wrong — not found, failing to load, incompatible, duplicated, a schema that does not
// compile — refuses the config with the entry's path; nothing is skipped silently.
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import semver from 'semver';
import type { Extension, Plugin, SecretProvider } from '../contracts';
import { compileSchema } from '../config/schema-check';
import { configInvalid, type ConfigIssue } from '../errors';
import { version as gatehouseVersion } from '../version';
import { EXTENSION_NAME } from '../sdk';

/** What an extension module may export (as `default` or as the module itself). */
export interface ExtensionModule {
  readonly plugins?: readonly Plugin[];
  readonly providers?: readonly SecretProvider[];
}

function isPlugin(x: unknown): x is Plugin {
  return x !== null && typeof x === 'object' && typeof (x as Plugin).create === 'function' && typeof (x as Plugin).priority === 'number';
}

function isProvider(x: unknown): x is SecretProvider {
  return x !== null && typeof x === 'object' && typeof (x as SecretProvider).create === 'function' && (x as Plugin).priority === undefined;
}

/** The definitions a loaded module offers. @throws Error saying what the module exports instead */
function definitionsOf(mod: unknown): Extension[] {
  const m = (mod as { default?: unknown })?.default ?? mod;
  if (isPlugin(m)) return [{ kind: 'plugin', plugin: m }];
  if (isProvider(m)) return [{ kind: 'provider', provider: m }];
  if (m !== null && typeof m === 'object' && (Array.isArray((m as ExtensionModule).plugins) || Array.isArray((m as ExtensionModule).providers))) {
    const out: Extension[] = [];
    for (const p of (m as ExtensionModule).plugins ?? []) {
      if (!isPlugin(p)) throw new Error('an entry of "plugins" is not a plugin (definePlugin)');
      out.push({ kind: 'plugin', plugin: p });
    }
    for (const p of (m as ExtensionModule).providers ?? []) {
      if (!isProvider(p)) throw new Error('an entry of "providers" is not a provider (defineProvider)');
      out.push({ kind: 'provider', provider: p });
    }
    return out;
  }
  throw new Error('the module exports neither a plugin (definePlugin), a provider (defineProvider) nor { plugins, providers }');
}

/**
 * Load the extensions a config names.
 * @param specs the `extensions:` entries: paths ("./dist/plugins/x", relative to `baseDir`) or npm names
 * @param taken names already registered (built-ins), to refuse duplicates
 * @throws GatehouseError GH_ERR_CONFIG_INVALID with one issue per bad entry (`extensions[i]`)
 */
export function loadExtensions(specs: readonly unknown[], baseDir: string, taken: { plugins: ReadonlySet<string>; providers: ReadonlySet<string> }): Extension[] {
  const issues: ConfigIssue[] = [];
  const out: Extension[] = [];
  const seen = { plugin: new Map<string, string>(), provider: new Map<string, string>() };
  const req = createRequire(join(resolve(baseDir), 'gatehouse.extensions.js'));
  specs.forEach((spec, i) => {
    const path = `extensions[${i}]`;
    const fail = (message: string) => issues.push({ path, message: `${String(spec)}: ${message}` });
    if (typeof spec !== 'string' || spec === '') return void issues.push({ path, message: 'must be a module path or package name' });
    const local = spec.startsWith('.') || isAbsolute(spec);
    let file: string;
    try {
      file = req.resolve(local ? resolve(baseDir, spec) : spec);
    } catch {
      return void fail(local ? `not found (relative to ${resolve(baseDir)}; build it first?)` : `package not found from ${resolve(baseDir)} (npm install it)`);
    }
    let defs: Extension[];
    try {
      defs = definitionsOf(req(file));
    } catch (err) {
      return void fail(`cannot be loaded: ${(err as Error).message.split('\n')[0]}`);
    }
    if (defs.length === 0) return void fail('exports no plugin or provider');
    for (const d of defs) {
      const x = d.kind === 'plugin' ? d.plugin : d.provider;
      const what = `${d.kind} "${String(x.name)}"`;
      if (typeof x.name !== 'string' || !EXTENSION_NAME.test(x.name)) return void fail(`${d.kind} name ${JSON.stringify(x.name)} must match ${EXTENSION_NAME}`);
      const range = x.gatehouse;
      if (typeof range !== 'string' || semver.validRange(range) === null) return void fail(`${what} must declare the Gatehouse versions it supports, e.g. gatehouse: "^${semver.major(gatehouseVersion)}.${semver.minor(gatehouseVersion)}.0"`);
      if (!semver.satisfies(gatehouseVersion, range, { includePrerelease: true })) return void fail(`${what} supports Gatehouse ${range}; this is Gatehouse ${gatehouseVersion}`);
      const builtin = d.kind === 'plugin' ? taken.plugins : taken.providers;
      if (builtin.has(x.name)) return void fail(`${what} is already a built-in ${d.kind}`);
      const other = seen[d.kind].get(x.name);
      if (other !== undefined) return void fail(`${what} is also defined by ${other}`);
      seen[d.kind].set(x.name, String(spec));
      const schemas: Array<[string, unknown]> = d.kind === 'plugin' ? [['schema', d.plugin.schema], ['consumerSchema', d.plugin.consumerSchema]] : [['schema', d.provider.schema]];
      for (const [field, schema] of schemas) {
        if (field === 'consumerSchema' && schema === undefined) continue;
        if (schema === null || typeof schema !== 'object') return void fail(`${what}: ${field} must be a JSON schema object`);
        try {
          compileSchema(schema as Record<string, unknown>);
        } catch (err) {
          return void fail(`${what}: its ${field} is not a valid JSON schema: ${(err as Error).message}`);
        }
      }
      out.push(d);
    }
  });
  if (issues.length) throw configInvalid(issues);
  return out;
}
