// Credential lookup for authentication plugins: O(1) in the number of consumers (a map keyed by
// the SHA-256 of each credential), a constant-time final comparison, and rotation-grace entries
// that stop matching when their grace ends. And where credentials may be sent: bindings kept in memory.
import { hash, timingSafeEqual } from 'node:crypto';
import type { DestinationBindings } from './contracts';

/** One credential to index. */
export interface CredentialEntry<T> {
  /** The secret credential (an API key); only its SHA-256 is kept. */
  readonly credential: string;
  /** What a match returns (e.g. the consumer). */
  readonly value: T;
  /** Who owns it, for duplicate errors (e.g. the consumer's username). */
  readonly owner: string;
  /** Config path of the credential, set on the error for duplicates. */
  readonly path?: string;
  /** ms after which it no longer matches (a rotated-out credential in its grace); none = current. */
  readonly until?: number;
}

/** Finds who a presented credential belongs to. */
export interface CredentialIndex<T> {
  /** @param now ms, for grace expiry */
  find(presented: string, now: number): T | undefined;
  readonly size: number;
}

interface Slot<T> {
  /** Where this credential's digest sits in the digest slab (index × 32). */
  readonly at: number;
  readonly value: T;
  readonly until: number;
}

const DIGEST = 32;

/** One-shot SHA-256 as base64 text: no Hash object and no Buffer per credential. */
function digestOf(s: string): string {
  return hash('sha256', s, 'base64');
}

/** Options of {@link credentialIndex}. */
export interface CredentialIndexOptions<T> {
  /**
   * Two owners with the same current credential: called once per pair (the first entry seen, then
   * the other), and that credential then matches nobody, so neither owner authenticates with it.
   * Without it, a duplicate throws. Authentication plugins pass one that leaves both consumers out
   * (`services.exclude` in `indexConsumers`): a refused config would tell whoever wrote it that
   * their value equals a credential held elsewhere (a key in Vault, a literal shown as `******`).
   */
  onDuplicate?(first: CredentialEntry<T>, second: CredentialEntry<T>): void;
}

/**
 * Build an index. Two owners with the same current credential is an error naming both (a key
 * must identify one consumer), or with `onDuplicate` a credential that matches nobody; a
 * rotated-out credential never shadows a current one.
 * Digests live in one slab (32 bytes each) rather than one Buffer per credential: 100 000 keys
 * cost 3 MB and one object, not 100 000 buffers for the collector to trace.
 * @throws Error with `path` set to the second owner's credential path (without `onDuplicate`)
 * @example
 * const idx = credentialIndex([{ credential: 'k1', value: jack, owner: 'jack' }]);
 * idx.find(presentedKey, Date.now()) // jack | undefined
 */
export function credentialIndex<T>(entries: Iterable<CredentialEntry<T>>, options: CredentialIndexOptions<T> = {}): CredentialIndex<T> {
  const owners = new Map<string, CredentialEntry<T>>();
  const shared = new Set<string>();
  const later: CredentialEntry<T>[] = [];
  for (const e of entries) {
    if (e.until !== undefined) {
      later.push(e);
      continue;
    }
    const k = digestOf(e.credential);
    const other = owners.get(k);
    if (other !== undefined && other.owner !== e.owner) {
      if (!options.onDuplicate) {
        throw Object.assign(new Error(`consumers "${other.owner}" and "${e.owner}" have the same key; each key must identify one consumer`), { path: e.path });
      }
      options.onDuplicate(other, e);
      shared.add(k);
      continue;
    }
    if (other === undefined) owners.set(k, e);
  }
  const slots = new Map<string, Slot<T>>();
  const digests: string[] = [];
  const add = (k: string, value: T, until: number) => {
    slots.set(k, { at: digests.length * DIGEST, value, until });
    digests.push(k);
  };
  for (const [k, e] of owners) if (!shared.has(k)) add(k, e.value, Number.POSITIVE_INFINITY);
  owners.clear();
  for (const e of later) {
    const k = digestOf(e.credential);
    if (!slots.has(k) && !shared.has(k)) add(k, e.value, e.until!);
  }
  const slab = Buffer.allocUnsafeSlow(digests.length * DIGEST);
  for (let i = 0; i < digests.length; i++) slab.write(digests[i], i * DIGEST, DIGEST, 'base64');
  digests.length = 0;
  return {
    size: slots.size,
    find(presented, now) {
      const k = digestOf(presented);
      const slot = slots.get(k);
      if (slot === undefined) return undefined;
      // the map matched on the digest; confirm it in constant time before trusting it
      if (!timingSafeEqual(slab.subarray(slot.at, slot.at + DIGEST), Buffer.from(k, 'base64'))) return undefined;
      return now < slot.until ? slot.value : undefined;
    },
  };
}

/**
 * Credential → destination bindings kept in memory, for the lifetime of their owner: a gateway
 * whose config store keeps none (every gateway container has its own), the memory store's, a
 * read-only file store's.
 */
export class MemoryBindings implements DestinationBindings {
  private readonly map = new Map<string, string>();

  async list(): Promise<ReadonlyMap<string, string>> {
    return new Map(this.map);
  }

  async bind(credential: string, destination: string): Promise<string> {
    const bound = this.map.get(credential);
    if (bound !== undefined) return bound;
    this.map.set(credential, destination);
    return destination;
  }

  async unbind(credential: string): Promise<boolean> {
    return this.map.delete(credential);
  }
}
