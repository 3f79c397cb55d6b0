// A secret provider whose values a test holds and changes (a rotation): `$secret://mem/<id>/<path>/<field>`
// reads `values.get("<path>/<field>")` on every fetch.
import { defineProvider, type SecretValue } from '../../core/sdk';
import type { Extension } from '../../core/contracts';

export function memProvider(values: ReadonlyMap<string, string>): Extension {
  return {
    kind: 'provider',
    provider: defineProvider({
      name: 'mem',
      version: '1.0.0',
      schema: { type: 'object', properties: {}, additionalProperties: false },
      create: () => ({
        async get({ path, field }): Promise<SecretValue | undefined> {
          const v = values.get(`${path}/${field}`);
          return v === undefined ? undefined : { value: v };
        },
      }),
    }),
  };
}
