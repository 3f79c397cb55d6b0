// Picks the config store a config file asks for: the file itself (default) or etcd.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DATA_KINDS, type ConfigStore, type Logger, type RawConfig } from '../contracts';
import { GatehouseError, type ConfigIssue } from '../errors';
import { parseReference } from '../secrets/reference';
import { envReferenceValue } from '../config/settings-refs';
import { FileConfigStore } from './file-store';
import { parseKey } from './encryption';
import type { EtcdAuth, EtcdTls } from './etcd-store';

const DEFAULT_TIMEOUT_S = 2;

/**
 * The store for a config file, chosen by its `config_store` section (already read by the caller).
 * @throws GatehouseError GH_ERR_CONFIG_INVALID when the etcd encryption key, credentials or TLS files are unusable
 */
export function storeForFile(path: string, fileDoc: RawConfig, logger: Logger, dryRun = false): ConfigStore {
  const cs = (fileDoc.config_store ?? {}) as { type?: unknown; endpoints?: unknown; prefix?: unknown; timeout?: unknown; encryption_key?: unknown; user?: unknown; password?: unknown; tls?: unknown };
  if (cs.type !== 'etcd') return new FileConfigStore(path, 100, true, logger);
  const endpoints = Array.isArray(cs.endpoints) && cs.endpoints.length ? cs.endpoints.map(String) : ['http://127.0.0.1:2379'];
  const prefix = typeof cs.prefix === 'string' && cs.prefix.startsWith('/') ? cs.prefix : '/gatehouse';
  const timeoutMs = (typeof cs.timeout === 'number' && cs.timeout > 0 ? cs.timeout : DEFAULT_TIMEOUT_S) * 1000;
  const key = encryptionKey(cs.encryption_key);
  // every credential and TLS problem at once, as the schema check reports its issues
  const issues: ConfigIssue[] = [];
  const auth = credentials(cs.user, cs.password, issues);
  const tls = tlsFiles(cs.tls, endpoints, dirname(path), issues);
  if (issues.length) {
    throw new GatehouseError('GH_ERR_CONFIG_INVALID', issues.map((i) => `${i.path}: ${i.message}`).join('; '), issues);
  }
  // etcd3 (gRPC) is loaded only by gateways that use it
  const { EtcdConfigStore } = require('./etcd-store') as typeof import('./etcd-store');
  return new EtcdConfigStore(new FileConfigStore(path, 100, false), { endpoints, prefix, timeoutMs, logger, dryRun, encryptionKey: key, auth, tls });
}

/**
 * A config_store secret (the encryption key, the etcd password): an `$env://` reference only, as
 * the store holds the secret resources, so its own secrets cannot come from one of them (and a
 * literal would sit in the config file). Never echoes the value: it may be the secret itself.
 */
function envOnly(v: string, example: string, noun: string, why: string): { value: string } | { issue: string } {
  let ref;
  try {
    ref = parseReference(v);
  } catch {
    return { issue: `must be a reference like ${example}, not the ${noun} itself` };
  }
  if (ref.manager !== 'env') return { issue: `must be an $env:// reference: ${why}` };
  if (ref.version !== undefined) return { issue: `environment variables have no versions (asked for #${ref.version})` };
  const r = envReferenceValue(ref, process.env, 'refuse');
  // unset, empty, no such field: not set
  return 'value' in r && r.value !== '' ? r : { issue: `environment variable ${ref.path}${ref.field ? ` (field ${ref.field})` : ''} is not set` };
}

/** config_store.encryption_key: an `$env://` reference (see envOnly). */
function encryptionKey(v: unknown): Buffer | undefined {
  if (v === undefined) return undefined;
  const where = 'config_store.encryption_key';
  const fail = (message: string) => new GatehouseError('GH_ERR_CONFIG_INVALID', `${where}: ${message}`, [{ path: where, message }]);
  if (typeof v !== 'string') throw fail('must be a string');
  const r = envOnly(v, '$env://GATEHOUSE_ETCD_KEY', 'key', 'the key protects the store that holds the secret resources');
  if ('issue' in r) throw fail(r.issue);
  return parseKey(r.value, where);
}

/** config_store.user / password: both or neither; the password an `$env://` reference (see envOnly). */
function credentials(user: unknown, password: unknown, issues: ConfigIssue[]): EtcdAuth | undefined {
  if (user === undefined && password === undefined) return undefined;
  const add = (path: string, message: string) => void issues.push({ path, message });
  if (user === undefined) add('config_store.user', 'is required with config_store.password');
  else if (typeof user !== 'string' || user === '') add('config_store.user', 'must be a non-empty string');
  const where = 'config_store.password';
  if (password === undefined) {
    add(where, 'is required with config_store.user');
    return undefined;
  }
  // never echo the value: it may be the password itself
  if (typeof password !== 'string') {
    add(where, 'must be a string');
    return undefined;
  }
  const r = envOnly(password, '$env://GATEHOUSE_ETCD_PASSWORD', 'password', 'the password opens the store that holds the secret resources');
  if ('issue' in r) {
    add(where, r.issue);
    return undefined;
  }
  return typeof user === 'string' && user !== '' ? { username: user, password: r.value } : undefined;
}

/**
 * config_store.tls: PEM files read once at start (paths relative to the config file). Endpoints
 * must all be https:// with it; an https:// endpoint without it verifies etcd with Node's default CAs.
 */
function tlsFiles(v: unknown, endpoints: readonly string[], base: string, issues: ConfigIssue[]): EtcdTls | undefined {
  const add = (path: string, message: string) => void issues.push({ path, message });
  const secure = endpoints.filter((e) => /^https:\/\//i.test(e)).length;
  if (secure > 0 && secure < endpoints.length) add('config_store.endpoints', 'mixes http:// and https:// endpoints: use one scheme for all');
  if (v === undefined) return undefined;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    add('config_store.tls', 'must be an object with ca, cert and key file paths');
    return undefined;
  }
  const t = v as Record<string, unknown>;
  if (secure === 0) add('config_store.endpoints', 'must be https:// endpoints when config_store.tls is set');
  if ((t.cert === undefined) !== (t.key === undefined)) add(`config_store.tls.${t.cert === undefined ? 'cert' : 'key'}`, 'is required with the other: cert and key go together (the client certificate and its private key)');
  const read = (field: 'ca' | 'cert' | 'key'): Buffer | undefined => {
    const p = t[field];
    if (p === undefined) return undefined;
    const where = `config_store.tls.${field}`;
    if (typeof p !== 'string' || p === '') {
      add(where, 'must be a file path');
      return undefined;
    }
    let pem: Buffer;
    try {
      pem = readFileSync(resolve(base, p));
    } catch (err) {
      add(where, `cannot read ${p} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
      return undefined;
    }
    // the contents are never quoted: the key file is a secret
    const want = field === 'key' ? /-----BEGIN [A-Z ]*PRIVATE KEY-----/ : /-----BEGIN CERTIFICATE-----/;
    if (!want.test(pem.toString('latin1'))) {
      add(where, `${p} is not a PEM ${field === 'key' ? 'private key' : 'certificate'} file`);
      return undefined;
    }
    return pem;
  };
  return { ca: read('ca'), cert: read('cert'), key: read('key') };
}
