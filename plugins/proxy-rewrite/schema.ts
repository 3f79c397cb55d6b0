// Route config of proxy-rewrite (Apache APISIX's proxy-rewrite, minus the deprecated `scheme` and
// `use_real_request_uri_unsafe`).
import type { JsonSchema } from 'gatehouse-gateway/sdk';

/** A header value: text (may hold `$variables` and `$1` captures) or a number. */
export type HeaderValue = string | number;

/** `headers` in APISIX's current form; the older flat form `{ name: value }` means `set`. */
export interface HeaderActions {
  /** Appended to the header the client sent (`a` + `b` → `a, b`); added when absent. */
  readonly add?: Readonly<Record<string, HeaderValue>>;
  /** Replaces the header (added when absent); an empty string removes it. */
  readonly set?: Readonly<Record<string, HeaderValue>>;
  /** Header names removed before proxying. */
  readonly remove?: readonly string[];
}

export interface ProxyRewriteConfig {
  /** New upstream path (may carry a query and `$variables`); wins over `regex_uri`. */
  readonly uri?: string;
  /** `[regex, template, regex, template, …]`: the first regex that matches the path is replaced. */
  readonly regex_uri?: readonly string[];
  /** Host header sent upstream (`name` or `name:port`). */
  readonly host?: string;
  /** The method sent upstream, as APISIX. */
  readonly method?: string;
  /** Header actions, or the flat form (every other key is a header to set). */
  readonly headers?: HeaderActions & Readonly<Record<string, unknown>>;
}

/** RFC 9110 token: what a header name may be. */
const HEADER_NAME = '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$';
/** No CR, LF or NUL: a value must not split or end the header block. */
const HEADER_TEXT = '^[^\\r\\n\\x00]*$';
const headerValue: JsonSchema = { type: ['string', 'number'], pattern: HEADER_TEXT };
// a name that is not a token is "not a known field", reported with the name in the path
const headerMap: JsonSchema = { type: 'object', minProperties: 1, patternProperties: { [HEADER_NAME]: headerValue }, additionalProperties: false };
/** A header of the flat form: a token other than add, set and remove. */
const FLAT_HEADER_NAME = `^(?!(add|set|remove)$)${HEADER_NAME.slice(1)}`;

/** As APISIX's list. */
export const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'MKCOL', 'COPY', 'MOVE', 'PROPFIND', 'LOCK', 'UNLOCK', 'PATCH', 'TRACE'];

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    uri: { type: 'string', minLength: 1, maxLength: 4096, pattern: '^/' },
    regex_uri: { type: 'array', minItems: 2, items: { type: 'string' } },
    host: { type: 'string', pattern: '^[0-9a-zA-Z.-]+(:[0-9]{1,5})?$' },
    method: { type: 'string', enum: METHODS },
    headers: {
      type: 'object',
      minProperties: 1,
      properties: {
        add: headerMap,
        set: headerMap,
        remove: { type: 'array', minItems: 1, items: { type: 'string', pattern: HEADER_NAME } },
      },
      // the older flat form: { "X-Api-Version": "v1" }
      patternProperties: { [FLAT_HEADER_NAME]: headerValue },
      additionalProperties: false,
    },
  },
  minProperties: 1,
  additionalProperties: false,
};
