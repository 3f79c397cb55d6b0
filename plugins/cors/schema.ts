// Route config of cors (Apache APISIX's cors, minus allow_origins_by_metadata).
import { SENT_TO_CLIENT, type JsonSchema } from 'gatehouse-gateway/sdk';

export interface CorsConfig {
  /** `*` (any, without credentials), `**` (any, echoed, even with credentials), or `scheme://host[:port]` list; default `*`. */
  readonly allow_origins: string;
  /** Comma list, `*`, or `**` (every method, even with credentials); default `*`. */
  readonly allow_methods: string;
  /** Comma list, `*`, or `**` (echo Access-Control-Request-Headers); default `*`. */
  readonly allow_headers: string;
  /** Access-Control-Expose-Headers; not sent when unset. */
  readonly expose_headers?: string;
  /** Access-Control-Max-Age in seconds (-1: no caching); default 5. */
  readonly max_age: number;
  /** Send Access-Control-Allow-Credentials: true; default false. `*` is then refused in the other fields. */
  readonly allow_credential: boolean;
  /** Regexes an origin must match; when set, `allow_origins` is ignored. */
  readonly allow_origins_by_regex?: readonly string[];
  /** Origins (same syntax as allow_origins) that get Timing-Allow-Origin. */
  readonly timing_allow_origins?: string;
  /** Regexes for Timing-Allow-Origin; when set, `timing_allow_origins` is ignored. */
  readonly timing_allow_origins_by_regex?: readonly string[];
}

/** As APISIX: `*`, `**`, `null`, or a comma list of `scheme://host[:port]`. */
const ORIGINS = '^(\\*|\\*\\*|null|\\w+://[^,]+(,\\w+://[^,]+)*)$';
/** Visible ASCII, space and tab: what a response header value may be. */
const HEADER_TEXT = '^[\\t\\x20-\\x7e]*$';
const regexList: JsonSchema = { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 4096 }, [SENT_TO_CLIENT]: true };

export const schema: JsonSchema = {
  type: 'object',
  // CORS is a policy published to browsers: every field is sent in a response header, or learnt
  // by trying origins against it, so none may be a secret reference (SENT_TO_CLIENT)
  properties: {
    allow_origins: { type: 'string', pattern: ORIGINS, default: '*', [SENT_TO_CLIENT]: true },
    allow_methods: { type: 'string', minLength: 1, pattern: HEADER_TEXT, default: '*', [SENT_TO_CLIENT]: true },
    allow_headers: { type: 'string', minLength: 1, pattern: HEADER_TEXT, default: '*', [SENT_TO_CLIENT]: true },
    expose_headers: { type: 'string', pattern: HEADER_TEXT, [SENT_TO_CLIENT]: true },
    max_age: { type: 'integer', minimum: -1, default: 5 },
    allow_credential: { type: 'boolean', default: false },
    allow_origins_by_regex: regexList,
    timing_allow_origins: { type: 'string', pattern: ORIGINS, [SENT_TO_CLIENT]: true },
    timing_allow_origins_by_regex: regexList,
  },
  additionalProperties: false,
};
