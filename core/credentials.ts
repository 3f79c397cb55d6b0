// Credential lookup for authentication plugins: O(1) in the number of consumers (a map keyed by
// the SHA-256 of each credential), a constant-time final comparison, and rotation-grace entries
// that stop matching when their grace ends.
import { createHash, timingSafeEqual } from 'node:crypto';

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
  readonly digest: Buffer;
  readonly value: T;
  readonly until: number;
}

function digestOf(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/**
 * Build an index. Two owners with the same current credential is an error naming both (a key
 * must identify one consumer); a rotated-out credential never shadows a current one.
 * @throws Error with `path` set to the second owner's credential path
 * @example
 * const idx = credentialIndex([{ credential: 'k1', value: jack, owner: 'jack' }]);
 * idx.find(presentedKey, Date.now()) // jack | undefined
 */
export function credentialIndex<T>(entries: Iterable<CredentialEntry<T>>): CredentialIndex<T> {
  const slots = new Map<string, Slot<T>>();
  const owners = new Map<string, string>();
  const later: CredentialEntry<T>[] = [];
  for (const e of entries) {
    if (e.until !== undefined) {
      later.push(e);
      continue;
    }
    const digest = digestOf(e.credential);
    const k = digest.toString('latin1');
    const other = owners.get(k);
    if (other !== undefined && other !== e.owner) {
      throw Object.assign(new Error(`consumers "${other}" and "${e.owner}" have the same key; each key must identify one consumer`), { path: e.path });
    }
    owners.set(k, e.owner);
    slots.set(k, { digest, value: e.value, until: Number.POSITIVE_INFINITY });
  }
  for (const e of later) {
    const digest = digestOf(e.credential);
    const k = digest.toString('latin1');
    if (!slots.has(k)) slots.set(k, { digest, value: e.value, until: e.until! });
  }
  return {
    size: slots.size,
    find(presented, now) {
      const d = digestOf(presented);
      const slot = slots.get(d.toString('latin1'));
      if (slot === undefined) return undefined;
      // the map matched on the digest; confirm it in constant time before trusting it
      if (!timingSafeEqual(slot.digest, d)) return undefined;
      return now < slot.until ? slot.value : undefined;
    },
  };
}
