// References in the gateway's own settings (`gateway:`, `admin:`), resolved when the config is
// read. They are needed before any secret backend runs (where to listen, the log level, the
// admin allow-list), so they come from the environment: `$env://NAME` (or a JSON field of it).
// `admin.key` and the Admin API's certificate (`admin.tls`: cert, key, client_ca) are the exception:
// they are resolved live, through the secret cache, may be any reference, and rotate without a
// restart; `config_store` resolves its own (encryption_key, password).
import type { ConfigIssue } from '../errors';
import { joinPath } from './paths';
import { looksLikeReference, parseReference, type SecretRef } from '../secrets/reference';

/** Settings resolved live elsewhere, left as written. */
const LIVE = new Set(['admin.key', 'admin.tls.cert', 'admin.tls.key', 'admin.tls.client_ca']);

/**
 * Replace every `$env://` reference under `doc.gateway` and `doc.admin` (but the live ones) by the
 * variable's value, in place. Another kind of reference there, an unset variable or a missing
 * JSON field is an issue naming the setting (never a value).
 */
export function resolveSettingReferences(doc: Record<string, unknown>, issues: ConfigIssue[], env: NodeJS.ProcessEnv = process.env): void {
  for (const section of ['gateway', 'admin']) {
    const v = doc[section];
    if (v !== null && typeof v === 'object') walk(v as Record<string, unknown> | unknown[], section, issues, env);
  }
}

function walk(node: Record<string, unknown> | unknown[], path: string, issues: ConfigIssue[], env: NodeJS.ProcessEnv): void {
  const keys: Array<string | number> = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
  for (const k of keys) {
    const p = joinPath(path, k);
    if (LIVE.has(p)) continue;
    const v = (node as Record<string | number, unknown>)[k];
    if (typeof v === 'string') {
      if (!looksLikeReference(v)) continue;
      const r = resolve(v, env);
      if ('issue' in r) issues.push({ path: p, message: r.issue });
      else (node as Record<string | number, unknown>)[k] = r.value;
    } else if (v !== null && typeof v === 'object') walk(v as Record<string, unknown> | unknown[], p, issues, env);
  }
}

function resolve(text: string, env: NodeJS.ProcessEnv): { value: string } | { issue: string } {
  let ref;
  try {
    ref = parseReference(text);
  } catch (err) {
    return { issue: (err as Error).message };
  }
  if (ref.manager !== 'env') return { issue: 'only $env:// references are resolved in gateway and admin settings (they are needed before any secret backend starts); admin.key and admin.tls may hold any reference' };
  return envReferenceValue(ref, env);
}

/**
 * What an `$env://NAME` (or `$env://NAME/field`, a field of the JSON it holds) reference points at,
 * or why there is nothing: unset, no JSON, no such field, a pinned version. Never the value in an issue.
 * @param nonString what a JSON field that is not a string gives: its JSON text, or an issue
 */
export function envReferenceValue(ref: SecretRef, env: NodeJS.ProcessEnv = process.env, nonString: 'json' | 'refuse' = 'json'): { value: string } | { issue: string } {
  if (ref.version !== undefined) return { issue: `environment variables have no versions (asked for #${ref.version})` };
  const raw = env[ref.path];
  if (raw === undefined) return { issue: `environment variable ${ref.path} is not set` };
  if (ref.field === '') return { value: raw };
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch {
    return { issue: `environment variable ${ref.path} does not hold JSON, so it has no field "${ref.field}"` };
  }
  const f = doc !== null && typeof doc === 'object' ? (doc as Record<string, unknown>)[ref.field] : undefined;
  if (f === undefined) return { issue: `environment variable ${ref.path} has no field "${ref.field}"` };
  if (typeof f === 'string') return { value: f };
  return nonString === 'json' ? { value: JSON.stringify(f) } : { issue: `field "${ref.field}" of environment variable ${ref.path} is not a string` };
}
