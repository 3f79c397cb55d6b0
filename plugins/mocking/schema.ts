// Route config of the mocking plugin (Apache APISIX's `mocking`, minus response_schema generation).
import type { JsonSchema } from 'gatehouse-gateway/sdk';

export interface MockingConfig {
  /** Seconds to wait before answering; default 0. */
  readonly delay: number;
  /** Default 200. */
  readonly response_status: number;
  /** Default `application/json;charset=utf8`. */
  readonly content_type: string;
  /** Body sent as is. */
  readonly response_example?: string;
  readonly response_headers?: Readonly<Record<string, string>>;
  /** Adds `x-mock-by: Gatehouse`; default true. */
  readonly with_mock_header: boolean;
}

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    delay: { type: 'number', minimum: 0, maximum: 60, default: 0 },
    response_status: { type: 'integer', minimum: 100, maximum: 599, default: 200 },
    content_type: { type: 'string', minLength: 1, default: 'application/json;charset=utf8' },
    response_example: { type: 'string' },
    response_headers: { type: 'object', additionalProperties: { type: 'string' } },
    with_mock_header: { type: 'boolean', default: true },
  },
  additionalProperties: false,
};
