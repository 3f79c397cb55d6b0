// Encryption at rest for plaintext secret fields (AES-256-GCM, a fresh 12-byte IV per value).
// Stored form: "$enc:v1:" + base64(iv ‖ ciphertext ‖ 16-byte tag). References are never
// encrypted: they hold no secret.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { GatehouseError } from '../errors';

export const ENC_PREFIX = '$enc:v1:';

/**
 * The 32-byte key from its text form: 64 hex digits or base64 of 32 bytes.
 * @throws GatehouseError GH_ERR_CONFIG_INVALID naming the setting, never the value
 */
export function parseKey(text: string, where: string): Buffer {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const b = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (b.length === 32) return b;
  }
  throw new GatehouseError('GH_ERR_CONFIG_INVALID', `${where}: the key must be 32 bytes, written as 64 hex digits or base64 (e.g. openssl rand -hex 32)`, [
    { path: where, message: 'the key must be 32 bytes, written as 64 hex digits or base64 (e.g. openssl rand -hex 32)' },
  ]);
}

export function encrypt(key: Buffer, plain: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
  return ENC_PREFIX + Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64');
}

/** @returns the plaintext, or undefined when the key is wrong or the value was tampered with */
export function decrypt(key: Buffer, stored: string): string | undefined {
  const raw = Buffer.from(stored.slice(ENC_PREFIX.length), 'base64');
  if (raw.length < 12 + 16) return undefined;
  try {
    const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    d.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

/** Replace, in place, every "$enc:v1:" string anywhere in `v` by its plaintext; `onFail(path)` for the ones that will not open. */
export function decryptAll(v: unknown, key: Buffer | undefined, onFail: (path: string) => void, path = ''): void {
  if (v === null || typeof v !== 'object') return;
  const entries: Array<[string | number, unknown]> = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  for (const [k, x] of entries) {
    const p = path ? `${path}.${k}` : String(k);
    if (typeof x === 'string' && x.startsWith(ENC_PREFIX)) {
      const plain = key ? decrypt(key, x) : undefined;
      if (plain === undefined) onFail(p);
      else (v as Record<string | number, unknown>)[k] = plain;
    } else decryptAll(x, key, onFail, p);
  }
}
