// The operator's reference policy (`secret_policy`, a section of the config file that the Admin API
// cannot change), checked at every load and Admin API write before any secret backend is contacted:
// which environment variables the data sections (routes, consumers, secret resources) may name,
// which files secret resources may read, and where each credential of a secret resource goes (the
// destination its provider declares, for the build path to check against the bindings). The
// gateway's own credentials (the admin key, the config store's password and encryption key) are
// never referenceable from data sections. Issues name references, variables, files and origins,
// never a value.
import { existsSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { SecretAccess } from '../contracts';
import type { ConfigIssue } from '../errors';
import { looksLikeReference, parseReference, type ReferenceSite, type SecretRef } from '../secrets/reference';
import { joinPath } from './paths';
import type { Registry } from './registry';
import type { GatewayConfig } from './types';

/** One credential of a secret resource and the origin it would be sent to by this config. */
export interface CredentialUse {
  /** The resource's config path (`secrets[0]`). */
  readonly path: string;
  /** `$env://VAULT_TOKEN`, `$secret://aws/prod/vault/token`, `file:/var/run/…/token` or a provider's implicit credential. */
  readonly credential: string;
  /** The origin (`https://vault.example.com:8200`). */
  readonly destination: string;
  /** Whether secret_policy.destinations lists the origin (or `*`): allowed whatever the credential is bound to. */
  readonly allowed: boolean;
}

/** What the check needs from outside the document. */
export interface PolicyContext {
  /** Where relative paths of the config resolve from. */
  readonly baseDir: string;
  /** Files no secret resource may read, whatever the policy says (the config file, the data file). */
  readonly protectedFiles: readonly string[];
}

/** Folders no secret resource reads, whatever the policy says: the process's memory, environment and devices. */
const NEVER = ['/proc', '/sys', '/dev'];
/**
 * Where Kubernetes mounts a pod's service-account token: allowed as a credential file (Vault's
 * Kubernetes login) without a policy, so that the default `jwt_path` works out of the box. Only as
 * a file sent to the bound destination, never as a folder a resource reads values from.
 */
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

const REFERENCE_TEXT = /\$(env|secret):\/\//i;

/** The name a credential is bound by: the variable for `$env://` (a JSON field is the same credential), the secret without a pinned version otherwise. */
export function credentialName(ref: SecretRef): string {
  if (ref.manager === 'env') return `$env://${ref.path}`;
  return `$secret://${ref.resource}/${ref.path === '' ? '' : `${ref.path}/`}${ref.field}`;
}

/** The origin of a URL (`https://vault.example.com:8200`), or undefined when it is not an http(s) URL. */
export function originOf(url: string): string | undefined {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `p` is `dir` or inside it (both absolute). */
function within(p: string, dir: string): boolean {
  const rel = relative(dir, p);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/**
 * `p` with every symbolic link and `..` resolved as far as the path exists (a folder may be
 * mounted after the config is checked): the real path of its longest existing prefix, then the rest.
 */
export function realPathLoose(p: string): string {
  let head = resolve(p);
  const tail: string[] = [];
  for (;;) {
    if (existsSync(head)) {
      try {
        return join(realpathSync(head), ...tail.reverse());
      } catch {
        // unreadable: compare the path as written
        return join(head, ...tail.reverse());
      }
    }
    const up = dirname(head);
    if (up === head) return join(head, ...tail.reverse());
    tail.push(head.slice(up.length).replace(/^[/\\]+/, ''));
    head = up;
  }
}

/** Whether an `$env://` variable name matches one of the policy's entries (`NAME`, `PREFIX_*`, `*`). */
function envAllowed(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p));
}

/** The references that hold the gateway's own credentials: the setting that holds each, by variable and by secret. */
function ownCredentials(c: GatewayConfig): { vars: Map<string, string>; secrets: Map<string, string> } {
  const vars = new Map<string, string>();
  const secrets = new Map<string, string>();
  const cs = c.config_store as Record<string, unknown>;
  const settings: Array<[string, unknown]> = [
    ['admin.key', c.admin?.key],
    ['admin.tls.key', c.admin?.tls?.key],
    ['config_store.password', cs.password],
    ['config_store.encryption_key', cs.encryption_key],
  ];
  for (const [setting, v] of settings) {
    if (typeof v !== 'string' || !looksLikeReference(v)) continue;
    let ref: SecretRef;
    try {
      ref = parseReference(v);
    } catch {
      continue; // reported where the setting is read
    }
    if (ref.manager === 'env') vars.set(ref.path, setting);
    else secrets.set(credentialName(ref), setting);
  }
  return { vars, secrets };
}

const inData = (path: string) => path.startsWith('routes[') || path.startsWith('consumers[') || path.startsWith('secrets[') || path.startsWith('ssls[') || path.startsWith('upstreams[');

/**
 * What data sections may name (`secret_policy.env`, never the gateway's own credentials): the
 * sites of routes, consumers and secret resources among `sites`, each on its own (settings decide,
 * not the other sites), so a change is checked by its own sites alone.
 */
export function checkDataReferences(c: GatewayConfig, sites: readonly ReferenceSite[], issues: ConfigIssue[]): void {
  const policy = c.secret_policy;
  const own = ownCredentials(c);
  for (const site of sites) {
    if (!inData(site.path)) continue;
    const ref = site.ref;
    if (ref.manager === 'env') {
      const setting = own.vars.get(ref.path);
      if (setting !== undefined) issues.push({ path: site.path, message: `$env://${ref.path} holds the gateway's own credential (${setting}): routes, consumers and secret resources can never reference it` });
      else if (!envAllowed(ref.path, policy.env)) issues.push({ path: site.path, message: `$env://${ref.path} is not allowed by secret_policy.env: the operator allows it by adding "${ref.path}" to secret_policy.env in the config file` });
    } else {
      const setting = own.secrets.get(credentialName(ref));
      if (setting !== undefined) issues.push({ path: site.path, message: `${credentialName(ref)} is the gateway's own credential (${setting}): routes, consumers and secret resources can never reference it` });
    }
  }
}

/**
 * Check a valid config against its `secret_policy`.
 * @returns every issue (with its path), and the credential uses the bindings must admit
 */
export function checkSecretPolicy(c: GatewayConfig, refs: readonly ReferenceSite[], registry: Registry, ctx: PolicyContext): { issues: ConfigIssue[]; uses: CredentialUse[] } {
  const issues: ConfigIssue[] = [];
  const uses: CredentialUse[] = [];
  const policy = c.secret_policy;
  // 1. what data sections may name
  checkDataReferences(c, refs, issues);
  // 2. the policy's own destinations
  const allowedOrigins = new Set<string>();
  policy.destinations.forEach((d, i) => {
    const o = d === '*' ? '*' : originOf(d);
    if (o === undefined) issues.push({ path: joinPath(joinPath('secret_policy', 'destinations'), i), message: `"${d}" is not an http(s) origin such as https://vault.example.com:8200 (or "*" for any)` });
    else allowedOrigins.add(o);
  });
  // 3. what each secret resource reads and where its credentials go
  const allowedDirs = policy.files.map((f) => realPathLoose(resolve(ctx.baseDir, f)));
  const guarded = [...ctx.protectedFiles, ...tlsKeyFile(c, ctx.baseDir)].map((f) => realPathLoose(f));
  const serviceAccount = realPathLoose(SERVICE_ACCOUNT_DIR);
  c.secrets.forEach((s, i) => {
    const path = joinPath('secrets', i);
    const manager = s.id.slice(0, s.id.indexOf('/'));
    const provider = registry.providers.get(manager);
    if (!provider?.access) return;
    const { id: _id, ...fields } = s;
    let access: SecretAccess;
    try {
      access = provider.access(fields);
    } catch (err) {
      issues.push({ path, message: `provider "${manager}" cannot say what this resource reaches: ${(err as Error).message}` });
      return;
    }
    // the file paths are never quoted: a field may hold key material by mistake (tls.key)
    const credentialFiles = new Set(access.credentialFiles ?? []);
    const realCredentialFiles: string[] = [];
    for (const [field, f] of Object.entries(access.files ?? {})) {
      if (typeof f !== 'string') continue; // a field left unset
      const at = field.split('.').reduce(joinPath, path);
      if (REFERENCE_TEXT.test(f)) {
        issues.push({ path: at, message: 'names a file this resource reads through a reference: write the path literally, so that it is checked against secret_policy.files before anything is read' });
        continue;
      }
      const real = realPathLoose(resolve(ctx.baseDir, f));
      const why = refusedFile(real, guarded);
      if (why !== undefined) {
        issues.push({ path: at, message: `names a file that ${why}` });
        continue;
      }
      const asCredential = credentialFiles.has(field) && within(real, serviceAccount);
      if (!asCredential && !allowedDirs.some((d) => within(real, d))) {
        issues.push({ path: at, message: 'names a file outside the folders secret_policy.files allows (symbolic links and ".." resolved): the operator allows it by adding its folder to secret_policy.files in the config file' });
        continue;
      }
      if (credentialFiles.has(field)) realCredentialFiles.push(real);
    }
    if (access.destination === undefined) return;
    if (REFERENCE_TEXT.test(access.destination)) {
      issues.push({ path, message: 'where this resource sends its credentials comes from a reference: write the address literally, so it is checked against the bindings and secret_policy.destinations before any credential is sent' });
      return;
    }
    const destination = originOf(access.destination);
    if (destination === undefined) return; // the provider's own checks name the field
    const credentials = new Set<string>();
    for (const site of refs) if (site.path === path || site.path.startsWith(`${path}.`) || site.path.startsWith(`${path}[`)) credentials.add(credentialName(site.ref));
    for (const f of realCredentialFiles) credentials.add(`file:${f}`);
    if (access.implicitCredential !== undefined) credentials.add(access.implicitCredential);
    const allowed = allowedOrigins.has('*') || allowedOrigins.has(destination);
    for (const credential of credentials) uses.push({ path, credential, destination, allowed });
  });
  return { issues, uses };
}

/** Why a file (real path) can never be read by a secret resource, or undefined. */
function refusedFile(real: string, guarded: readonly string[]): string | undefined {
  for (const n of NEVER) if (within(real, n) || within(n, real)) return `is or holds ${n}: no secret resource reads the process's memory, environment or devices`;
  for (const g of guarded) if (within(g, real)) return 'is or holds a file of the gateway itself (its config file, its data file, its etcd client key): no secret resource reads them';
  return undefined;
}

/** config_store.tls.key, the gateway's own key file. */
function tlsKeyFile(c: GatewayConfig, baseDir: string): string[] {
  const key = (c.config_store as { tls?: { key?: unknown } }).tls?.key;
  return typeof key === 'string' ? [resolve(baseDir, key)] : [];
}
