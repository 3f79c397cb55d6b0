// env: `$env://NAME` is the variable's value; `$env://NAME/field` a field of the JSON it holds.
import { defineProvider, type SecretBackend, type SecretRequest, type SecretValue } from 'gatehouse-gateway/sdk';
import { schema } from './schema';

/** A backend over an environment (process.env by default; tests pass their own). */
export function envBackend(env: NodeJS.ProcessEnv = process.env): SecretBackend {
  return {
    async get({ path: name, field, version }: SecretRequest): Promise<SecretValue | undefined> {
      // a pinned version the backend cannot honour is an error, not silently the current value
      if (version !== undefined) throw new Error(`env: environment variables have no versions (asked for #${version}); remove it from the reference`);
      const raw = env[name];
      if (raw === undefined || raw === '') return undefined;
      if (field === '') return { value: raw };
      let doc: unknown;
      try {
        doc = JSON.parse(raw);
      } catch {
        // the message names the variable, never its content
        throw new Error(`$env://${name} does not hold JSON, so it has no field "${field}"`);
      }
      if (doc === null || typeof doc !== 'object' || !(field in doc)) return undefined;
      const v = (doc as Record<string, unknown>)[field];
      if (v === null || v === undefined) return undefined;
      return { value: typeof v === 'string' ? v : JSON.stringify(v) };
    },
  };
}

export default defineProvider({
  name: 'env',
  version: '1.0.0',
  schema,
  create: () => envBackend(),
});
