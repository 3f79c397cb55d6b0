// Where the Admin API answers: its two prefixes and the resource kinds under them. One list for
// the router (server.ts) and its OpenAPI description (openapi.ts), so that a kind added to the
// router without a description fails the build.
import { DATA_KINDS } from '../contracts';

/** The prefixes, longest first (APISIX scripts use `/apisix/admin/`). */
export const ADMIN_PREFIXES = ['/apisix/admin/', '/admin/'] as const;

/** The resource kinds the router dispatches on (the first segment after a prefix): the data kinds, and the plugins' schemas. */
export const ADMIN_KINDS = [...DATA_KINDS, 'plugins'] as const;

/** One of {@link ADMIN_KINDS}. */
export type AdminKind = (typeof ADMIN_KINDS)[number];

/** The OpenAPI description's name under each prefix: `GET /admin/openapi.json`. */
export const OPENAPI_DOCUMENT = 'openapi.json';
