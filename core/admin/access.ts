// Who may call the Admin API: the client address against `admin.allow` (compiled by
// config/allow-list) and the X-API-KEY header against the admin key (constant-time, length-independent).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * A constant-time check of a presented key against the admin key: both are hashed first, so the
 * comparison takes the same time whatever their lengths.
 */
export function keyChecker(adminKey: string): (presented: string | string[] | undefined) => boolean {
  const expected = createHash('sha256').update(adminKey, 'utf8').digest();
  return (presented) => {
    if (typeof presented !== 'string' || presented === '') return false;
    return timingSafeEqual(createHash('sha256').update(presented, 'utf8').digest(), expected);
  };
}

/** A random admin key for a gateway started without one (printed once, never logged again). */
export function generateAdminKey(): string {
  return randomBytes(24).toString('base64url');
}

/** Print a generated admin key, once per run, on stderr (the only place it ever appears). */
export function printGeneratedAdminKey(key: string): void {
  process.stderr.write(`gatehouse: no admin.key configured; this run's admin key (X-API-KEY) is ${key}\n`);
}
