// template-provider: secrets served from a JSON file. `$secret://template-provider/<id>/<key>/<field>`
// is `<field>` of the object under `<key>` in the file (`<key>` may be several segments: nested objects).
import { readFile } from 'node:fs/promises';
import { defineProvider, type SecretBackend, type SecretRequest, type SecretValue } from 'gatehouse-gateway/sdk';
import { schema, type TemplateProviderConfig } from './schema';

/** `obj[key]` for plain objects only, own properties only (no `__proto__`, no `constructor`). */
function child(obj: unknown, key: string): unknown {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return undefined;
  return Object.hasOwn(obj, key) ? (obj as Record<string, unknown>)[key] : undefined;
}

/**
 * A backend over one JSON file. The file is read at every `get`: the gateway's secret cache decides
 * how often that happens (`secret_cache.ttl`), so a changed file is seen at the next refresh.
 * @param file absolute path of the JSON file
 */
export function templateProviderBackend(file: string): SecretBackend {
  return {
    async get({ path, field }: SecretRequest): Promise<SecretValue | undefined> {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        // a failure, not "not found": the gateway keeps serving the last good values while it may
        throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch {
        // JSON.parse's own message quotes the file's content, which may be a secret
        throw new Error(`${file} does not hold valid JSON`);
      }
      let node = doc;
      for (const key of path === '' ? [] : path.split('/')) node = child(node, key);
      const value = child(node, field);
      if (value === undefined || value === null) return undefined;
      return { value: typeof value === 'string' ? value : JSON.stringify(value) };
    },
  };
}

export default defineProvider<TemplateProviderConfig>({
  name: 'template-provider',
  version: '0.1.0',
  // the Gatehouse versions this provider is written for; `extensions:` refuses it on any other
  gatehouse: '^0.1.0',
  schema,
  // a relative path is relative to gatehouse.yaml's folder, as every path in the config
  create: (conf, services) => templateProviderBackend(services.resolvePath(conf.path)),
  // the file it reads, checked against the operator's secret_policy.files before any load uses it;
  // a provider that sends credentials over the network declares `destination` (its address) too
  access: (conf) => ({ files: { path: conf.path } }),
});
