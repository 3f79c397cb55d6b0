// Shared by the secret-backend fault tests (test/faults-secrets-*.test.ts): the Vault and AWS Secrets
// Manager test servers and an upstream that echoes what it was sent, started once per file; a real
// `gatehouse start` process whose consumer key (key-auth) and upstream credential (proxy-rewrite) are
// `$secret://` references; concurrent load and its figures; and the check that no planted value ever
// appears in what the gateway printed.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Agent, request } from 'undici';
import { freePort, startGatehouse, startUpstream, tempDir, type GatehouseProcess, type Upstream } from './harness';
import { startVaultServer, type VaultServer } from '../servers/vault';
import { startSecretsManagerServer, type SecretsManagerServer } from '../servers/secrets-manager';

// planted to prove they never leak into anything the gateway prints
export const ROOT_TOKEN = 'planted-fault-root-token-0001';
export const AWS_KEY_ID = 'fault-test-key-id-0001';
export const AWS_SECRET = 'planted-aws-secret-key-fault-7f7f';
export const AWS_WRONG_SECRET = 'planted-wrong-aws-secret-key-8e8e';
export const AWS_UNKNOWN_SECRET = 'planted-unknown-aws-secret-key-9d9d';
/** Every secret value planted anywhere (keys, credentials, tokens): none may appear in gateway output. */
export const planted = new Set<string>([ROOT_TOKEN, AWS_SECRET, AWS_WRONG_SECRET, AWS_UNKNOWN_SECRET]);

const LOAD_CONCURRENCY = 8;
export const SECRET_UNAVAILABLE = '{"message":"secret unavailable"}';
export const INVALID_KEY = '{"message":"Invalid API key in request"}';

export let vault: VaultServer;
export let sm: SecretsManagerServer;
export let smClient: SecretsManagerClient;
export let upstream: Upstream;
export let roleId: string;
export let secretId: string;
const dir = tempDir('gatehouse-faults-secrets-');
const agent = new Agent({ keepAliveTimeout: 10_000, connections: 64 });

/** The upstream answers with the credential and consumer the gateway sent, so every request checks both. */
function echoCredential(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  req.on('end', () => res.end(`${req.headers.authorization ?? ''}|${req.headers['x-consumer-username'] ?? ''}`));
}

export async function vaultCall(method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<any> {
  const r = await request(`${vault.url}/v1/${path}`, {
    method: method as 'GET',
    headers: { 'x-vault-token': ROOT_TOKEN, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const text = await r.body.text();
  assert.ok(r.statusCode < 300, `${method} ${path}: HTTP ${r.statusCode}`);
  return text ? JSON.parse(text) : undefined;
}

/** A consumer key and an upstream credential for one scenario, written to Vault KV v2 under kv/<scenario>/. */
export async function plantVault(scenario: string): Promise<{ key: string; credential: string }> {
  const v = { key: `planted-${scenario}-key-${Math.random().toString(36).slice(2, 10)}`, credential: `Bearer planted-${scenario}-cred-${Math.random().toString(36).slice(2, 10)}` };
  planted.add(v.key).add(v.credential);
  await vaultCall('POST', `kv/data/${scenario}/jack`, { data: { 'auth-key': v.key } });
  await vaultCall('POST', `kv/data/${scenario}/upstream`, { data: { credential: v.credential } });
  return v;
}

/**
 * Starts, before the file's tests, the backends it asks for and the echoing upstream; stops them
 * after. Vault gets a KV v2 mount `kv` and an AppRole role `gw` reading kv/approle/*.
 */
export function useSecretBackends(backends: { vault?: boolean; aws?: boolean }): void {
  before(async () => {
    if (backends.vault) {
      vault = await startVaultServer({ rootToken: ROOT_TOKEN });
      await vaultCall('POST', 'sys/mounts/kv', { type: 'kv', options: { version: '2' } });
      await vaultCall('PUT', 'sys/policies/acl/gw-read', { policy: 'path "kv/data/approle/*" { capabilities = ["read"] }' });
      await vaultCall('POST', 'sys/auth/approle', { type: 'approle' });
      await vaultCall('POST', 'auth/approle/role/gw', { token_policies: ['gw-read'], token_ttl: '20m' });
      roleId = (await vaultCall('GET', 'auth/approle/role/gw/role-id')).data.role_id;
      secretId = (await vaultCall('POST', 'auth/approle/role/gw/secret-id', {})).data.secret_id;
      planted.add(secretId);
    }
    if (backends.aws) {
      sm = await startSecretsManagerServer({ accessKeyId: AWS_KEY_ID, secretAccessKey: AWS_SECRET });
      smClient = new SecretsManagerClient({ region: 'us-east-1', endpoint: sm.url, credentials: { accessKeyId: AWS_KEY_ID, secretAccessKey: AWS_SECRET } });
    }
    upstream = await startUpstream(echoCredential);
  });

  after(async () => {
    smClient?.destroy();
    await vault?.close();
    await sm?.close();
    await upstream?.close();
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });
}

// ---------------------------------------------------------------------------------------------
// the gateway

export interface Refs {
  /** Reference of jack's key-auth key. */
  key: string;
  /** Reference of the credential proxy-rewrite sets as Authorization upstream on /api. */
  credential: string;
}

/**
 * Config: /api (key-auth + upstream credential), /keyed (key-auth only), consumer jack.
 * `secretsEntries` are the `secrets:` resources; `cache` is `secret_cache`.
 */
export function gatewayConfig(port: number, secretsEntries: unknown[], refs: Refs, cache: Record<string, number>, extraRoutes: unknown[] = []): Record<string, unknown> {
  const nodes = { [upstream.node]: 1 };
  return {
    gateway: { listen: `127.0.0.1:${port}`, access_log: false },
    secret_cache: cache,
    secrets: secretsEntries,
    routes: [
      { id: 'api', uri: '/api', plugins: { 'key-auth': {}, 'proxy-rewrite': { headers: { set: { Authorization: refs.credential } } } }, upstream: { nodes } },
      { id: 'keyed', uri: '/keyed', plugins: { 'key-auth': {} }, upstream: { nodes } },
      ...extraRoutes,
    ],
    consumers: [{ username: 'jack', plugins: { 'key-auth': { key: refs.key } } }],
  };
}

export interface Gw {
  readonly url: string;
  readonly proc: GatehouseProcess;
  /** Parsed log lines with this `msg` (and, if given, this reference). */
  lines(msg: string, reference?: string): Array<Record<string, any>>;
}

let cases = 0;
export async function gatehouse(t: { after(fn: () => unknown): void }, config: (port: number) => Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<Gw> {
  const d = join(dir, `case-${++cases}`);
  mkdirSync(d);
  const port = await freePort();
  const path = join(d, 'gatehouse.yaml');
  writeFileSync(path, JSON.stringify(config(port), null, 2));
  const proc = await startGatehouse(path, port, { GATEHOUSE_LOG_LEVEL: 'info', ...env });
  t.after(async () => {
    await proc.kill();
    assertNoLeak(proc);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    proc,
    lines: (msg, reference) => proc.logLines().filter((l) => l.msg === msg && (reference === undefined || l.reference === reference)),
  };
}

/** Nothing the gateway printed contains a planted value (checked by name, never printing the value). */
function assertNoLeak(proc: GatehouseProcess): void {
  const out = proc.stdout() + proc.stderr();
  let i = 0;
  for (const v of planted) {
    i++;
    assert.equal(out.includes(v), false, `planted secret #${i} appeared in the gateway's output`);
  }
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; contentType: string | undefined; ms: number }> {
  const t0 = performance.now();
  const r = await request(url, { headers, dispatcher: agent });
  const body = await r.body.text();
  return { status: r.statusCode, body, contentType: r.headers['content-type'] as string | undefined, ms: performance.now() - t0 };
}


// ---------------------------------------------------------------------------------------------
// load

export interface LoadResult {
  n: number;
  failed: number;
  /** Failure kinds with counts ("HTTP 503", "wrong upstream credential"): never a value. */
  failures: Record<string, number>;
  latencies: number[];
  /** How many answers carried each accepted body, by its index in `accept`. */
  accepted: number[];
}

/**
 * `LOAD_CONCURRENCY` keep-alive clients asking `path` with `headers` in a loop until stopped. An
 * answer counts as good when it is 200 and its body is one of `accept()` (read at each answer, so
 * a test can widen it when it rotates a value).
 */
export function startLoad(url: string, headers: Record<string, string>, accept: () => string[]): { stop(): Promise<LoadResult>; result: LoadResult } {
  const result: LoadResult = { n: 0, failed: 0, failures: {}, latencies: [], accepted: [] };
  let running = true;
  const fail = (kind: string) => {
    result.failed++;
    result.failures[kind] = (result.failures[kind] ?? 0) + 1;
  };
  const worker = async () => {
    while (running) {
      try {
        const r = await get(url, headers);
        result.n++;
        result.latencies.push(r.ms);
        const i = accept().indexOf(r.body);
        if (r.status !== 200) fail(`HTTP ${r.status}`);
        else if (i < 0) fail('wrong upstream credential or consumer');
        else result.accepted[i] = (result.accepted[i] ?? 0) + 1;
      } catch (e) {
        result.n++;
        fail(`client error ${(e as { code?: string }).code ?? 'unknown'}`);
      }
    }
  };
  const workers = Array.from({ length: LOAD_CONCURRENCY }, worker);
  return {
    result,
    async stop() {
      running = false;
      await Promise.all(workers);
      return result;
    },
  };
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)];
}

export const round = (x: number) => Math.round(x * 10) / 10;

/** Figures for the report, printed as test diagnostics (never values). */
export function report(t: { diagnostic(msg: string): void }, what: string, figures: Record<string, unknown>): void {
  t.diagnostic(`${what}: ${JSON.stringify(figures)}`);
}
