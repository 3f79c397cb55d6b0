// Route config of the mocking plugin (Apache APISIX's `mocking`, minus response_schema generation).
import { SENT_TO_CLIENT, type JsonSchema } from 'gatehouse-gateway/sdk';

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
    // the answer itself: a reference here would serve the secret to any client (SENT_TO_CLIENT)
    content_type: { type: 'string', minLength: 1, default: 'application/json;charset=utf8', [SENT_TO_CLIENT]: true },
    response_example: { type: 'string', [SENT_TO_CLIENT]: true },
    response_headers: { type: 'object', additionalProperties: { type: 'string' }, [SENT_TO_CLIENT]: true },
    with_mock_header: { type: 'boolean', default: true },
  },
  additionalProperties: false,
};
