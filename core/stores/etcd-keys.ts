// The layout of a Gatehouse prefix in etcd, APISIX-style: one key per resource,
// <prefix>/routes/<id>, /upstreams/<id>, /consumers/<username>, /secrets/<manager>/<id>, and
// bookkeeping under <prefix>/_gatehouse/ (the seed marker, cluster commands, destination
// bindings). What a key holds: the resource as JSON, plaintext secret fields encrypted
// (AES-256-GCM, encryption.ts), references left as written; and back from the keys to the data
// sections, in creation order, made of the very objects the store keeps (frozen: nobody edits them
// in place, so a change can be told from the object it replaced by identity).
import type { IKeyValue } from 'etcd3';
import { DATA_KINDS, type DataKind, type DataSections, type SecretFieldPaths } from '../contracts';
import { GatehouseError } from '../errors';
import { looksLikeReference } from '../secrets/reference';
import { mapStringsAt } from '../config/paths';
import { deepFreeze } from '../config/validate';
import { ENC_PREFIX, decryptAll, encrypt } from './encryption';

/** Keys under <prefix>/_gatehouse/ are bookkeeping and commands, not data. */
const META = '_gatehouse/';
/** Relative key of the marker that records the prefix was seeded from a config file. */
export const SEEDED = `${META}seeded`;
/** Relative key prefix of cluster commands: <prefix>/_gatehouse/commands/<type>. */
export const COMMANDS = `${META}commands/`;
/** Relative key prefix of destination bindings: <prefix>/_gatehouse/bindings/<credential, URI-encoded> (etcd-bindings.ts). */
export const BINDINGS = `${META}bindings/`;
/** etcd's default --max-txn-ops. */
export const MAX_TXN_OPS = 128;

/** One resource key as this node read it. */
export interface Item {
  readonly kind: DataKind;
  /**
   * Parsed and decrypted (deep-frozen), or the object a write of this node stored; undefined when
   * `error` says why it cannot be used. The data sections hand out this object itself.
   */
  readonly value: Readonly<Record<string, unknown>> | undefined;
  readonly create: number;
  readonly mod: number;
  readonly error?: string;
}

/** A resource's id as a string (`username` for consumers). */
export function idOf(kind: DataKind, item: Readonly<Record<string, unknown>>): string {
  return String(kind === 'consumers' ? item.username : item.id);
}

/** Relative key of the resource `id`: ids are URI-encoded per segment, so one key is one resource. */
export function keyOfId(kind: DataKind, id: string): string {
  return `${kind}/${id.split('/').map(encodeURIComponent).join('/')}`;
}

/** Relative key of a resource. */
export function keyOf(kind: DataKind, item: Readonly<Record<string, unknown>>): string {
  return keyOfId(kind, idOf(kind, item));
}

/** The data kind of a relative key; undefined for bookkeeping and unknown keys. */
export function kindOf(rel: string): DataKind | undefined {
  const k = rel.slice(0, rel.indexOf('/')) as DataKind;
  return DATA_KINDS.includes(k) ? k : undefined;
}

/**
 * Parse and decrypt one stored value.
 * @param root the prefix with its trailing slash, to name the key in an error
 * @returns undefined for a key that holds no resource; an item with `error` for one that cannot be read
 */
export function decodeItem(root: string, rel: string, kv: IKeyValue, encryptionKey: Buffer | undefined): Item | undefined {
  const kind = kindOf(rel);
  if (!kind) return undefined;
  const create = Number(kv.create_revision);
  const mod = Number(kv.mod_revision);
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(kv.value.toString('utf8')) as Record<string, unknown>;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
  } catch {
    return { kind, value: undefined, create, mod, error: `etcd key ${root}${rel}: not a JSON object` };
  }
  const bad: string[] = [];
  decryptAll(value, encryptionKey, (p) => bad.push(p));
  if (bad.length) {
    const why = encryptionKey ? 'cannot be decrypted with config_store.encryption_key (wrong key?)' : 'is encrypted but config_store.encryption_key is not set';
    return { kind, value: undefined, create, mod, error: `etcd key ${root}${rel}: ${bad.join(', ')} ${why}` };
  }
  return { kind, value: deepFreeze(value), create, mod };
}

/** The stored form of a resource: plaintext secret fields encrypted, references left as written. */
export function encodeItem(kind: DataKind, item: Readonly<Record<string, unknown>>, encryptionKey: Buffer | undefined, secretFields: SecretFieldPaths): string {
  if (!encryptionKey) return JSON.stringify(item);
  const copy = structuredClone(item);
  mapStringsAt(copy, secretFields(kind, item), (s) => (looksLikeReference(s) || s.startsWith(ENC_PREFIX) ? s : encrypt(encryptionKey, s)));
  return JSON.stringify(copy);
}

/**
 * The data sections, in creation order: new lists of the items' own objects (not copies).
 * @throws GatehouseError GH_ERR_CONFIG_READ when a stored value is unusable (the last good config keeps serving)
 */
export function dataSections(items: Iterable<Item>): DataSections {
  const out = Object.fromEntries(DATA_KINDS.map((k) => [k, []])) as unknown as Record<DataKind, Array<{ v: Readonly<Record<string, unknown>>; c: number }>>;
  const errors: string[] = [];
  for (const it of items) {
    if (it.error !== undefined) errors.push(it.error);
    else out[it.kind].push({ v: it.value!, c: it.create });
  }
  if (errors.length) {
    throw new GatehouseError('GH_ERR_CONFIG_READ', errors.join('; '));
  }
  const sorted = (k: DataKind) => out[k].sort((a, b) => a.c - b.c).map((x) => x.v);
  return Object.fromEntries(DATA_KINDS.map((k) => [k, sorted(k)])) as unknown as DataSections;
}
