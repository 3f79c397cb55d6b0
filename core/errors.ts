// The coded error catalogue: every error Gatehouse raises on purpose has a stable code and a
// message that names the thing at fault and what to do.

/** Error codes, stable across releases. */
export const ErrorCodes = {
  GH_ERR_CONFIG_INVALID: 'configuration is invalid',
  GH_ERR_CONFIG_PARSE: 'configuration cannot be parsed',
  GH_ERR_CONFIG_READ: 'configuration cannot be read',
  GH_ERR_PLUGIN_UNKNOWN: 'unknown plugin',
  GH_ERR_PLUGIN_DUPLICATE: 'plugin registered twice',
  GH_ERR_PROVIDER_DUPLICATE: 'secret provider registered twice',
  GH_ERR_LISTEN: 'cannot listen',
  GH_ERR_SECRET_UNRESOLVED: 'secret unavailable',
  GH_ERR_STORE_READONLY: 'the config store is read-only',
  GH_ERR_STORE_UNAVAILABLE: 'the config store is unreachable',
  GH_ERR_STORE_CONFLICT: 'the config store changed underneath this write',
  GH_ERR_STORE_DENIED: 'the config store refused access',
} as const;
export type ErrorCode = keyof typeof ErrorCodes;

/**
 * The HTTP status each code answers with where a request caused it (an Admin API write), as
 * Fastify's `createError(code, message, statusCode)`: one table, so no component maps codes to
 * statuses by hand. A store that refuses writes by design is 403; one that is down, 503; a write
 * that lost a race, 409; a config, a store or credentials that are broken are the server's fault, 500.
 */
export const ErrorStatus: Readonly<Record<ErrorCode, number>> = {
  GH_ERR_CONFIG_INVALID: 400,
  GH_ERR_CONFIG_PARSE: 500,
  GH_ERR_CONFIG_READ: 500,
  GH_ERR_PLUGIN_UNKNOWN: 400,
  GH_ERR_PLUGIN_DUPLICATE: 500,
  GH_ERR_PROVIDER_DUPLICATE: 500,
  GH_ERR_LISTEN: 500,
  GH_ERR_SECRET_UNRESOLVED: 503,
  GH_ERR_STORE_READONLY: 403,
  GH_ERR_STORE_UNAVAILABLE: 503,
  GH_ERR_STORE_CONFLICT: 409,
  GH_ERR_STORE_DENIED: 500,
};

/** One problem found in a configuration, with the path to the field at fault. */
export interface ConfigIssue {
  /** e.g. `routes[0].upstream.nodes` ('' for the document itself) */
  readonly path: string;
  readonly message: string;
}

/** Format issues one per line: `routes[0].upstream.nodes: must have at least 1 entry`. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('\n');
}

/** An error with a code from the catalogue. */
export class GatehouseError extends Error {
  readonly code: ErrorCode;
  /** The HTTP status of the code ({@link ErrorStatus}). */
  readonly statusCode: number;
  /** For GH_ERR_CONFIG_INVALID: every problem found. */
  readonly issues: readonly ConfigIssue[];
  constructor(code: ErrorCode, detail?: string, issues: readonly ConfigIssue[] = []) {
    super(detail ? `${ErrorCodes[code]}: ${detail}` : ErrorCodes[code]);
    this.name = 'GatehouseError';
    this.code = code;
    this.statusCode = ErrorStatus[code];
    this.issues = issues;
  }
}

/** The HTTP status of any error: a coded error's own, 500 for anything else. */
export function statusOf(err: unknown): number {
  return err instanceof GatehouseError ? err.statusCode : 500;
}

/** A GH_ERR_CONFIG_INVALID error listing every issue. */
export function configInvalid(issues: readonly ConfigIssue[]): GatehouseError {
  const n = issues.length;
  return new GatehouseError('GH_ERR_CONFIG_INVALID', `${n} error${n === 1 ? '' : 's'}\n${formatIssues(issues)}`, issues);
}

/**
 * A TLS error's text without the hint Node.js 24 appends to certificate verification errors
 * ("…; if the root CA is installed locally, try running Node.js with --use-system-ca"). Node adds it
 * whatever CAs the connection was given, so next to a configured CA (config_store.tls.ca, a Vault
 * provider's tls.ca) it points away from the setting that matters; Node 20 and 22 do not add it.
 * Gatehouse's messages name their own settings instead, the same on every Node version.
 * @example withoutNodeCaHint('self-signed certificate; if the root CA is installed locally, try running Node.js with --use-system-ca') // 'self-signed certificate'
 */
export function withoutNodeCaHint(text: string): string {
  return text.replace(/; if the root CA is installed locally, try running Node\.js with\s+--use-system-ca/g, '');
}
