// Config of a `file` secret resource: the folder where secrets are mounted as files.
import type { JsonSchema } from 'gatehouse-gateway/sdk';

export interface FileConfig {
  /**
   * The folder holding one file per secret (a Kubernetes secret volume, Docker's /run/secrets).
   * A relative path is resolved from the gateway's working directory.
   */
  readonly dir: string;
}

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    dir: { type: 'string', minLength: 1 },
  },
  required: ['dir'],
  additionalProperties: false,
};
