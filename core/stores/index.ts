// Picks the config store a config file asks for: the file itself (default) or etcd.
import type { ConfigStore, Logger, RawConfig } from '../contracts';
import { GatehouseError } from '../errors';
import { parseReference } from '../secrets/reference';
import { FileConfigStore } from './file-store';
import { parseKey } from './encryption';

const DEFAULT_TIMEOUT_S = 2;

/**
 * The store for a config file, chosen by its `config_store` section (already read by the caller).
 * @throws GatehouseError GH_ERR_CONFIG_INVALID when the etcd encryption key is unusable
 */
export function storeForFile(path: string, fileDoc: RawConfig, logger: Logger, dryRun = false): ConfigStore {
  const cs = (fileDoc.config_store ?? {}) as { type?: unknown; endpoints?: unknown; prefix?: unknown; timeout?: unknown; encryption_key?: unknown };
  if (cs.type !== 'etcd') return new FileConfigStore(path);
  const endpoints = Array.isArray(cs.endpoints) && cs.endpoints.length ? cs.endpoints.map(String) : ['http://127.0.0.1:2379'];
  const prefix = typeof cs.prefix === 'string' && cs.prefix.startsWith('/') ? cs.prefix : '/gatehouse';
  const timeoutMs = (typeof cs.timeout === 'number' && cs.timeout > 0 ? cs.timeout : DEFAULT_TIMEOUT_S) * 1000;
  // etcd3 (gRPC) is loaded only by gateways that use it
  const { EtcdConfigStore } = require('./etcd-store') as typeof import('./etcd-store');
  return new EtcdConfigStore(new FileConfigStore(path, 100, false), { endpoints, prefix, timeoutMs, logger, dryRun, encryptionKey: encryptionKey(cs.encryption_key) });
}

/**
 * config_store.encryption_key: an `$env://` reference (the key guards the store that holds the
 * secret resources, so it cannot come from one of them).
 */
function encryptionKey(v: unknown): Buffer | undefined {
  if (v === undefined) return undefined;
  const where = 'config_store.encryption_key';
  const fail = (message: string) => new GatehouseError('GH_ERR_CONFIG_INVALID', `${where}: ${message}`, [{ path: where, message }]);
  if (typeof v !== 'string') throw fail('must be a string');
  let ref;
  try {
    ref = parseReference(v);
  } catch {
    throw fail('must be a reference like $env://GATEHOUSE_ETCD_KEY, not the key itself');
  }
  if (ref.manager !== 'env') throw fail('must be an $env:// reference: the key protects the store that holds the secret resources');
  let value = process.env[ref.path];
  if (value !== undefined && ref.field !== '') {
    try {
      const f = (JSON.parse(value) as Record<string, unknown>)[ref.field];
      value = typeof f === 'string' ? f : undefined;
    } catch {
      value = undefined;
    }
  }
  if (value === undefined || value === '') throw fail(`environment variable ${ref.path}${ref.field ? ` (field ${ref.field})` : ''} is not set`);
  return parseKey(value, where);
}
