// Credential → destination bindings (trust on first use, as SSH's known hosts), as the stores keep
// them: what one binding holds when it is written down (the file store's files and the etcd
// store's keys hold the same JSON), and the in-memory bindings of the stores that persist nothing
// (the memory store, a read-only file store). Neither a credential's name nor a destination is a
// secret, so a binding is stored in the clear and may be quoted in errors.
import type { DestinationBindings } from '../contracts';
import { GatehouseError } from '../errors';

/** One binding as stored: the credential it is for, where it may go, and since when. */
export interface BindingRecord {
  readonly credential: string;
  readonly destination: string;
  readonly bound_at: string;
}

/**
 * A credential's name URI-encoded, for a file or key name (no `/` left in it).
 * @throws GatehouseError GH_ERR_CONFIG_INVALID for a name that is not well-formed Unicode (a lone surrogate)
 */
export function encodeCredential(credential: string): string {
  try {
    return encodeURIComponent(credential);
  } catch {
    throw new GatehouseError('GH_ERR_CONFIG_INVALID', `${JSON.stringify(credential)}: a credential's name must be well-formed Unicode to be bound to a destination`);
  }
}

/** The stored form of a new binding. */
export function encodeBinding(credential: string, destination: string): string {
  const record: BindingRecord = { credential, destination, bound_at: new Date().toISOString() };
  return JSON.stringify(record) + '\n';
}

/**
 * Read a stored binding.
 * @param where names the file or key in the error
 * @param credential the credential the file or key is named for, when known: one that holds another's is corrupt too
 * @throws GatehouseError GH_ERR_CONFIG_PARSE when it is not a binding: never read as "no binding",
 *   which would let the credential be bound anew
 */
export function decodeBinding(text: string, where: string, credential?: string): BindingRecord {
  let v: Partial<BindingRecord> | null;
  try {
    v = JSON.parse(text) as Partial<BindingRecord> | null;
  } catch {
    v = null;
  }
  if (v === null || typeof v !== 'object' || typeof v.credential !== 'string' || typeof v.destination !== 'string' || v.destination === '') {
    throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${where}: not a destination binding (JSON with credential and destination); repair or delete it, which lets the credential be bound again`);
  }
  if (credential !== undefined && v.credential !== credential) {
    throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${where}: holds the binding of ${v.credential}, not of ${credential}; repair or delete it`);
  }
  return { credential: v.credential, destination: v.destination, bound_at: typeof v.bound_at === 'string' ? v.bound_at : '' };
}
