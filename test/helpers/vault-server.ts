// Shared by the Vault test server's own tests (test/servers/vault-server-*.test.ts): one server
// started per file, raw HTTP requests (undici) for exact wire checks, the real node-vault client, and
// the shapes of Vault's answers.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import NodeVault = require('node-vault');
import { startVaultServer, type VaultServer } from '../servers/vault';

export interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

export interface RawOpts {
  /** default: the root token; null: none */
  token?: string | null;
  body?: unknown;
  ns?: string;
  headers?: Record<string, string>;
}

/** One raw HTTP request to the server. */
export async function raw(server: VaultServer, method: string, path: string, o: RawOpts = {}): Promise<Raw> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  const token = o.token === undefined ? server.rootToken : o.token;
  if (token !== null) headers['x-vault-token'] = token;
  if (o.ns) headers['x-vault-namespace'] = o.ns;
  let body: string | undefined;
  if (o.body !== undefined) {
    body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
    headers['content-type'] ??= 'application/json';
  }
  const r = await request(`${server.url}/v1/${path}`, { method: method as 'GET', headers, body });
  const text = await r.body.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, headers: r.headers, text, json };
}

export function client(server: VaultServer, opts: { token?: string; namespace?: string } = {}): NodeVault.client {
  return NodeVault({ endpoint: server.url, token: opts.token ?? server.rootToken, namespace: opts.namespace, requestOptions: { timeout: 5000 } });
}

/** The status of a rejected node-vault call (fails the test if it resolved). */
export async function rejectedStatus(p: Promise<unknown>): Promise<{ status: number | undefined; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { response?: { statusCode?: number }; message: string };
    return { status: err.response?.statusCode, message: err.message };
  }
  assert.fail('expected the call to be rejected');
}

export const ENVELOPE_KEYS = ['request_id', 'lease_id', 'renewable', 'lease_duration', 'data', 'wrap_info', 'warnings', 'auth', 'mount_type'];
export const INVALID_TOKEN = '2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n';

export function assertErrorBody(r: Raw, status: number, errors: string[]): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(r.text), { errors });
  assert.equal(r.text, JSON.stringify({ errors }));
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export const policy = (s: VaultServer, name: string, text: string, ns?: string) => raw(s, 'PUT', `sys/policies/acl/${name}`, { body: { policy: text }, ns });
export const createToken = async (s: VaultServer, body: Record<string, unknown>, ns?: string): Promise<string> => {
  const r = await raw(s, 'POST', 'auth/token/create', { body, ns });
  assert.equal(r.status, 200, r.text);
  return r.json.auth.client_token;
};

/** The server the file's tests share: started before them, closed after. */
export let vault: VaultServer;

export function useVaultServer(): void {
  before(async () => {
    vault = await startVaultServer();
  });
  after(async () => {
    await vault?.close();
  });
}
