// What the vault provider's tests share: a Vault test server seeded with KV v1 and v2 mounts, a
// policy and an AppRole; backends built from configs and closed after the file; a logger that
// records each call; and checks that no secret shows up in an error or a log line.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { inspect } from 'node:util';
import { request } from 'undici';
import type { Logger, SecretBackend } from 'gatehouse-gateway/sdk';
import { scanForLeaks } from 'gatehouse-gateway/testing';
import vaultProvider from './index';
import type { VaultConfig } from './schema';
import { startVaultServer, type VaultServer } from '../../test/servers/vault';

export interface LogLine {
  level: string;
  msg?: string;
  [k: string]: unknown;
}

export function memoryLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const make = (bindings: Record<string, unknown>): Logger => {
    const at = (level: string) => (obj: object | string, msg?: string) => {
      const line = typeof obj === 'string' ? { level, ...bindings, msg: obj } : { level, ...bindings, ...obj, msg };
      lines.push(line);
      // scanned for planted secrets with the rest of the run's output (test/helpers/leak-scan.ts)
      scanForLeaks(inspect(line, { depth: 6, breakLength: Infinity }) + '\n');
    };
    return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (b) => make({ ...bindings, ...b }) };
  };
  return { logger: make({}), lines };
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Raw call to the test server with its root token (setup only). */
export async function admin(server: VaultServer, method: string, path: string, body?: unknown, ns?: string): Promise<any> {
  const headers: Record<string, string> = { 'x-vault-token': server.rootToken };
  if (ns) headers['x-vault-namespace'] = ns;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await request(`${server.url}/v1/${path}`, { method: method as 'GET', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.body.text();
  assert.ok(r.statusCode < 300, `${method} ${path}: ${r.statusCode} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

export type Conf = Partial<VaultConfig> & Pick<VaultConfig, 'uri' | 'prefix'>;

const backends: SecretBackend[] = [];
export async function backend(conf: Conf, logger: Logger = memoryLogger().logger): Promise<SecretBackend> {
  const b = await vaultProvider.create({ kv_version: 'auto', timeout: 5, ...conf } as VaultConfig, { logger, clock: { now: () => Date.now() }, resolvePath });
  backends.push(b);
  return b;
}

export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  assert.fail('expected a rejection');
}

/** Every way an error could be printed, logged or serialised. */
export function everything(err: Error): string {
  return [err.message, err.stack, inspect(err, { depth: 10, showHidden: true }), JSON.stringify(err), String((err as { cause?: unknown }).cause ?? '')].join('\n');
}

export function assertNoLeak(text: string, secrets: Record<string, string>): void {
  for (const [what, s] of Object.entries(secrets)) assert.equal(text.includes(s), false, `the ${what} leaked`);
}

export const POLICY = `
path "secret/data/gw/*" { capabilities = ["read"] }
path "kv/data/apisix/*" { capabilities = ["read"] }
`;

export let vault: VaultServer;
export let roleId: string;
export let secretId: string;
export const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-vault-'));

/** Start and seed the Vault test server before the tests of the calling file; close it, the backends and the temp folder after. */
export function useSeededVault(): void {
  before(async () => {
    vault = await startVaultServer();
    const s = vault;
    await admin(s, 'POST', 'sys/mounts/legacy', { type: 'kv' });
    await admin(s, 'POST', 'sys/mounts/kv', { type: 'kv', options: { version: '2' } });
    await admin(s, 'POST', 'legacy/gw/jack', { 'auth-key': 'legacy-jack-key' });
    await admin(s, 'POST', 'legacy/gw/short', { 'auth-key': 'short-lived', ttl: '1h' });
    await admin(s, 'POST', 'secret/data/gw/jack', { data: { 'auth-key': 'jack-key-v1' } });
    await admin(s, 'POST', 'secret/data/gw/jack', { data: { 'auth-key': 'jack-key-v2' } });
    await admin(s, 'POST', 'secret/data/gw/typed', { data: { port: 5432, enabled: true, obj: { a: 1 }, nothing: null } });
    await admin(s, 'POST', 'secret/data/gw/deleted', { data: { k: 'old' } });
    await admin(s, 'POST', 'secret/data/gw/deleted', { data: { k: 'newest' } });
    await admin(s, 'DELETE', 'secret/data/gw/deleted');
    await admin(s, 'POST', 'secret/data/gw/destroyed', { data: { k: 'burnt' } });
    await admin(s, 'POST', 'secret/data/gw/destroyed', { data: { k: 'current' } });
    await admin(s, 'POST', 'secret/destroy/gw/destroyed', { versions: [1] });
    await admin(s, 'POST', 'secret/data/elsewhere/x', { data: { k: 'not for the gateway' } });
    await admin(s, 'POST', 'kv/data/apisix/jack', { data: { 'auth-key': 'apisix-jack-key' } });
    await admin(s, 'PUT', 'sys/policies/acl/gw-read', { policy: POLICY });
    await admin(s, 'POST', 'sys/auth/approle', { type: 'approle' });
    await admin(s, 'POST', 'auth/approle/role/gw', { token_policies: ['gw-read'], token_ttl: '5m' });
    roleId = (await admin(s, 'GET', 'auth/approle/role/gw/role-id')).data.role_id;
    secretId = (await admin(s, 'POST', 'auth/approle/role/gw/secret-id', {})).data.secret_id;
  });

  after(async () => {
    for (const b of backends) await b.close?.();
    await vault?.close();
    rmSync(tmp, { recursive: true, force: true });
  });
}
