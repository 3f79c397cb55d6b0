// Configuration validation: the pipeline from a raw document to a valid config. Setting
// references first (settings-refs.ts), then the document's schema (schema-check.ts, compiled by the
// registry), the cross-checks (cross-checks.ts) and the secret references (reference-sites.ts).
// Never throws half-way: it returns all issues, each with its path, or a normalised, deeply frozen
// config.
import type { ConfigIssue } from '../errors';
import type { ReferenceSite } from '../secrets/reference';
import { crossCheck } from './cross-checks';
import { collectReferences } from './reference-sites';
import type { Registry } from './registry';
import type { CredentialUse } from './secret-policy';
import { resolveSettingReferences } from './settings-refs';
import type { GatewayConfig } from './types';

// what the gateway and its container take from here

/** A valid config and every secret reference it holds. */
export interface ValidatedConfig {
  readonly config: GatewayConfig;
  /** Where references stand: plugin and consumer configs, secret resources, gateway settings. */
  readonly refs: readonly ReferenceSite[];
  /**
   * Each credential of a secret resource and the origin it would go to (secret-policy.ts), once
   * the config passed the reference policy; the build path admits them against the bindings.
   */
  readonly credentials?: readonly CredentialUse[];
  readonly issues?: undefined;
  readonly full?: undefined;
}

/**
 * Validate and normalise a raw config document.
 * @returns `{ config }` (deep-frozen) or `{ issues }` listing every problem with its path
 */
export function validateConfig(raw: unknown, registry: Registry, inPlace = false): ValidatedConfig | { issues: ConfigIssue[]; config?: undefined } {
  // a document nobody else holds (just parsed) is normalised in place: no second copy of 100 000 consumers
  const doc = raw === null || raw === undefined ? {} : inPlace ? raw : structuredClone(raw);
  // $env:// references in gateway and admin settings are resolved now, before they are checked;
  // admin.key stays a reference (resolved live)
  const settingIssues: ConfigIssue[] = [];
  if (doc !== null && typeof doc === 'object' && !Array.isArray(doc)) resolveSettingReferences(doc as Record<string, unknown>, settingIssues);
  // (a setting whose reference failed is reported once, by what failed, not by later checks too)
  const failed = new Set(settingIssues.map((i) => i.path));
  const schemaIssues = registry.documentCheck(doc, '', settingIssues.length ? ['/gateway', '/admin'] : ['/admin/key']);
  if (schemaIssues.length === 0) {
    const issues: ConfigIssue[] = [];
    crossCheck(doc, registry, issues);
    const all = [...settingIssues, ...issues.filter((i) => !failed.has(i.path))];
    const refs = all.length ? [] : collectReferences(doc, registry, all);
    if (all.length) return { issues: all };
    return { config: deepFreeze(doc) as GatewayConfig, refs: Object.freeze(refs) };
  }
  schemaIssues.unshift(...settingIssues);
  // Still run the cross-checks so one load lists every problem (an unknown plugin next to an empty
  // `nodes`). They assume a schema-valid document: they may throw on the broken parts, and what
  // they say about a part the schema already rejected is noise.
  const more: ConfigIssue[] = [];
  try {
    crossCheck(doc, registry, more);
  } catch {
    // a broken shape the schema issues already explain
  }
  const within = (p: string, base: string) => base === '' || p === base || p.startsWith(`${base}.`) || p.startsWith(`${base}[`);
  return { issues: [...schemaIssues, ...more.filter((m) => !schemaIssues.some((s) => within(m.path, s.path)))] };
}

/** Freeze an object graph in place (config is immutable once loaded). */
export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}
