// Route config of client-control (Apache APISIX's client-control).
import type { JsonSchema } from 'gatehouse-gateway/sdk';

export interface ClientControlConfig {
  /**
   * Largest request body for this route, in bytes, instead of `gateway.client_max_body_size`;
   * 0 = no limit. Absent: the gateway's limit applies (as APISIX, where the field is optional).
   */
  readonly max_body_size?: number;
}

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    // a byte count the core compares with Content-Length and counts against: a safe integer
    max_body_size: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
  },
  additionalProperties: false,
};
