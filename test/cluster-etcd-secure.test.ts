// Cluster mode against a secured etcd (Debian's etcd-server): authentication (user/password, with
// a short --auth-token-ttl so tokens expire during the test), a read-only user, and TLS with client
// certificates from a throwaway CA made with openssl. Gateways are real `gatehouse start`
// processes; failures to start are checked as an operator sees them (exit code, the one error log
// line) and no password appears in any output.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { enableEtcdAuth, makeTestPki, startEtcd, type EtcdServer, type TestPki } from './helpers/etcd';
import { bootGateway, delay, eventually, freePort, runCli, startGatehouse, tempDir, type GatehouseProcess } from './helpers/harness';

const ADMIN_KEY = 'secure-cluster-admin-key';
const ROOT_PW = `root-pw-${randomBytes(8).toString('hex')}`;
// set in this process's environment: the leak tap plants every GH_* value, and the CLI children inherit them
const PW = { GH_TEST_ETCD_PASSWORD: `gh-pw-${randomBytes(8).toString('hex')}`, GH_TEST_ETCD_READER_PASSWORD: `reader-pw-${randomBytes(8).toString('hex')}`, GH_TEST_ETCD_WRONG_PASSWORD: `wrong-pw-${randomBytes(8).toString('hex')}`, GH_TEST_ETCD_LITERAL_PASSWORD: `literal-pw-${randomBytes(8).toString('hex')}` };
Object.assign(process.env, PW);
const ALL_SECRETS = [ROOT_PW, ...Object.values(PW)];
/** Seconds an idle etcd auth token lives on the auth-enabled etcd (etcd's default is 300). */
const TOKEN_TTL_S = 2;

let authEtcd: EtcdServer;
let tlsEtcd: EtcdServer;
let pki: TestPki;

before(async () => {
  pki = makeTestPki();
  authEtcd = await startEtcd({ authTokenTtl: TOKEN_TTL_S });
  await enableEtcdAuth(authEtcd, ROOT_PW, [
    { name: 'gatehouse', password: PW.GH_TEST_ETCD_PASSWORD, prefix: '/gh-auth/', permission: 'Readwrite' },
    // '/gh-ro' (no slash) also covers '/gh-ro-empty/'
    { name: 'reader', password: PW.GH_TEST_ETCD_READER_PASSWORD, prefix: '/gh-ro', permission: 'Read' },
  ]);
  tlsEtcd = await startEtcd({ tls: { pki, clientCertAuth: true } });
  await enableEtcdAuth(tlsEtcd, ROOT_PW, [{ name: 'gatehouse', password: PW.GH_TEST_ETCD_PASSWORD, prefix: '/gh-tls/', permission: 'Readwrite' }]);
});

after(async () => {
  await authEtcd?.close();
  await tlsEtcd?.close();
});

/** One fresh connection per call. */
async function call(url: string, init: { method?: string; body?: unknown } = {}): Promise<{ status: number; text: string }> {
  const agent = new Agent({ pipelining: 0 });
  try {
    const r = await request(url, {
      method: (init.method ?? 'GET') as 'GET',
      headers: { 'x-api-key': ADMIN_KEY, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
      dispatcher: agent,
      headersTimeout: 10000,
    });
    return { status: r.statusCode, text: await r.body.text() };
  } finally {
    await agent.close();
  }
}

const mock = (id: string) => ({ uri: `/${id}`, plugins: { mocking: { response_example: id } } });

interface Node {
  proc: GatehouseProcess;
  url: string;
  admin: string;
}

/** A config file: `store` is the rest of the config_store section (YAML flow entries), `data` any data sections. */
function configFile(endpoint: string, store: string, data = '', ports: [number, number] = [0, 0]): string {
  const file = join(tempDir(), 'gatehouse.yaml');
  writeFileSync(
    file,
    `gateway: { listen: "127.0.0.1:${ports[0]}" }
admin: { listen: "127.0.0.1:${ports[1]}", key: ${ADMIN_KEY} }
config_store: { type: etcd, endpoints: ["${endpoint}"]${store ? `, ${store}` : ''} }
${data}`,
  );
  return file;
}

async function startNode(endpoint: string, store: string, data = ''): Promise<Node> {
  const ports: [number, number] = [await freePort(), await freePort()];
  const proc = await startGatehouse(configFile(endpoint, store, data, ports), ports[0]);
  return { proc, url: `http://127.0.0.1:${ports[0]}`, admin: `http://127.0.0.1:${ports[1]}/apisix/admin` };
}

const served = (n: Node, path: string, body: string) => async () => {
  const r = await call(n.url + path);
  return r.status === 200 && r.text === body;
};

/** `gatehouse start` that must fail: exit 1, exactly one error-level log line (returned) and its stderr line, no secret anywhere. */
async function failedStart(file: string): Promise<{ error: string; stdout: string; stderr: string }> {
  const t0 = Date.now();
  const r = await runCli(['start', '-c', file], { timeoutMs: 20000 });
  const ms = Date.now() - t0;
  assert.equal(r.code, 1, `gatehouse start should exit 1 (stdout: ${r.stdout.slice(0, 2000)}; stderr: ${r.stderr.slice(0, 2000)})`);
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as { level: number; msg: string; errors?: string[] });
  const errors = lines.filter((l) => l.level >= 50);
  assert.equal(errors.length, 1, `one error line, got: ${JSON.stringify(errors)}`);
  assert.equal(errors[0].msg, 'gatehouse cannot start');
  assert.equal(errors[0].errors?.length, 1);
  // (stderr may also hold Node's warnings about the etcd client's TLS options)
  assert.deepEqual(r.stderr.split('\n').filter((l) => l.startsWith('gatehouse:')), [`gatehouse: cannot start: ${errors[0].errors![0]}`], 'the same error, one plain line on stderr');
  noSecrets(r.stdout + r.stderr);
  process.stdout.write(`# start refused in ${ms} ms: ${errors[0].errors![0]}\n`);
  return { error: errors[0].errors![0], stdout: r.stdout, stderr: r.stderr };
}

function noSecrets(out: string): void {
  ALL_SECRETS.forEach((s, i) => assert.ok(!out.includes(s), `planted secret #${i} appears in the output`));
}

const authStore = (prefix: string, user = 'gatehouse', pwVar = 'GH_TEST_ETCD_PASSWORD') => `prefix: ${prefix}, user: ${user}, password: "$env://${pwVar}"`;

test('user/password: two gateways share config through an auth-enabled etcd, also after their tokens expire; a wrong password or unknown user does not start', { timeout: 120000 }, async () => {
  const nodes: Node[] = [];
  try {
    nodes.push(await startNode(authEtcd.endpoint, authStore('/gh-auth'), `routes:\n  - ${JSON.stringify({ id: 'seeded', ...mock('seeded') })}\n`));
    nodes.push(await startNode(authEtcd.endpoint, authStore('/gh-auth')));
    for (const n of nodes) assert.ok(await served(n, '/seeded', 'seeded')(), 'both nodes serve the route node 1 seeded');

    const put = await call(`${nodes[0].admin}/routes/r1`, { method: 'PUT', body: mock('r1') });
    assert.equal(put.status, 201, put.text);
    const lag = await eventually('r1 on node 2', served(nodes[1], '/r1', 'r1'), 5000);
    assert.ok(lag < 1000, `the write reached node 2 in ${lag} ms`);

    // what the gateways stored is under their prefix, readable with the gatehouse user's own rights
    const c = authEtcd.client({ username: 'gatehouse', password: PW.GH_TEST_ETCD_PASSWORD });
    try {
      assert.deepEqual((await c.getAll().prefix('/gh-auth/routes/').keys()).sort(), ['/gh-auth/routes/r1', '/gh-auth/routes/seeded']);
    } finally {
      c.close();
    }

    // etcd drops a token idle for --auth-token-ttl; check that this etcd does (a client authenticates again)...
    const probe = authEtcd.client({ username: 'gatehouse', password: PW.GH_TEST_ETCD_PASSWORD });
    try {
      const authenticator = (probe as unknown as { pool: { authenticator: { getCredentialsFromHost: (...a: unknown[]) => Promise<string> } } }).pool.authenticator;
      const original = authenticator.getCredentialsFromHost.bind(authenticator);
      let logins = 0;
      authenticator.getCredentialsFromHost = (...a: unknown[]) => {
        logins++;
        return original(...a);
      };
      await probe.get('/gh-auth/routes/r1').string();
      await probe.get('/gh-auth/routes/r1').string();
      assert.equal(logins, 1, 'one login while the token is fresh');
      await delay(TOKEN_TTL_S * 1000 + 1500);
      assert.equal(await probe.get('/gh-auth/routes/r1').string().then((v) => v !== null), true);
      assert.equal(logins, 2, 'the idle token expired and the client logged in again');
    } finally {
      probe.close();
    }
    // ...by now the gateways' tokens are idle past it too: writes and the watch still work, both ways
    const put2 = await call(`${nodes[1].admin}/routes/r2`, { method: 'PUT', body: mock('r2') });
    assert.equal(put2.status, 201, put2.text);
    await eventually('r2 on node 1 after the token expired', served(nodes[0], '/r2', 'r2'), 5000);
    await delay(TOKEN_TTL_S * 1000 + 1500);
    const del = await call(`${nodes[0].admin}/routes/r1`, { method: 'DELETE' });
    assert.equal(del.status, 200, del.text);
    await eventually('r1 gone on node 2 after the token expired', async () => (await call(nodes[1].url + '/r1')).status === 404, 5000);

    // wrong password, unknown user: no start, one line naming etcd, the endpoint and the cause
    for (const [user, pwVar] of [['gatehouse', 'GH_TEST_ETCD_WRONG_PASSWORD'], ['nobody', 'GH_TEST_ETCD_PASSWORD']]) {
      const { error } = await failedStart(configFile(authEtcd.endpoint, authStore('/gh-auth', user, pwVar)));
      assert.equal(error, `the config store refused access: etcd ${authEtcd.endpoint}: authentication failed, invalid user ID or password (config_store.user "${user}")`);
    }
    // no credentials at all against an etcd with auth on
    const { error } = await failedStart(configFile(authEtcd.endpoint, 'prefix: /gh-auth'));
    assert.equal(error, `the config store refused access: etcd ${authEtcd.endpoint}: authentication is enabled on etcd and this client has no credentials (set config_store.user and password)`);
    // `gatehouse validate` reports refused credentials too (it only falls back to the file alone when etcd is unreachable)
    const v = await runCli(['validate', '-c', configFile(authEtcd.endpoint, authStore('/gh-auth', 'gatehouse', 'GH_TEST_ETCD_WRONG_PASSWORD'))]);
    assert.equal(v.code, 1, v.stdout);
    assert.match(v.stderr, /etcd http:\/\/127\.0\.0\.1:\d+: authentication failed, invalid user ID or password/);
    noSecrets(v.stdout + v.stderr);

    for (const n of nodes) noSecrets(n.proc.stdout() + n.proc.stderr());
    for (const n of nodes) process.stdout.write(`# node log warnings: ${JSON.stringify(n.proc.logLines().filter((l) => l.level >= 40).map((l) => l.msg))}; stderr: ${JSON.stringify(n.proc.stderr().slice(0, 300))}\n`);
  } finally {
    for (const n of nodes) await n.proc.kill();
  }
});

test('read-only etcd user: the node starts and serves; an Admin write answers 500 naming the permission, and nothing is stored', { timeout: 60000 }, async () => {
  // root seeds the prefix, as a control-plane node would have
  const root = authEtcd.client({ username: 'root', password: ROOT_PW });
  let node: Node | undefined;
  try {
    await root.put('/gh-ro/_gatehouse/seeded').value('{}');
    await root.put('/gh-ro/routes/ro').value(JSON.stringify({ id: 'ro', ...mock('ro') }));
    const before = await root.getAll().prefix('/gh-ro/').strings();

    // the file's data sections are not used (the prefix is seeded), so the seed transaction is not needed
    node = await startNode(authEtcd.endpoint, authStore('/gh-ro', 'reader', 'GH_TEST_ETCD_READER_PASSWORD'), `routes:\n  - ${JSON.stringify({ id: 'fromfile', ...mock('fromfile') })}\n`);
    assert.ok(await served(node, '/ro', 'ro')(), 'the node serves what etcd holds');
    assert.match(node.proc.stdout(), /the etcd user may read but not write the prefix/);

    const w = await call(`${node.admin}/routes/new`, { method: 'PUT', body: mock('new') });
    assert.equal(w.status, 500, w.text);
    assert.equal(JSON.parse(w.text).error_msg, `the config store refused access: etcd ${authEtcd.endpoint}: permission denied: etcd user "reader" may not write under /gh-ro/ (grant its role readwrite on that prefix)`);
    const d = await call(`${node.admin}/routes/ro`, { method: 'DELETE' });
    assert.equal(d.status, 500, d.text);
    assert.deepEqual(await root.getAll().prefix('/gh-ro/').strings(), before, 'nothing was stored or deleted');
    assert.equal((await call(node.url + '/new')).status, 404, 'the refused write did not apply');
    assert.ok(await served(node, '/ro', 'ro')(), 'the refused delete did not apply');
    assert.equal((await call(`${node.admin}/routes/ro`)).status, 200, 'Admin reads still answer');

    // it still follows changes others make
    await root.put('/gh-ro/routes/later').value(JSON.stringify({ id: 'later', ...mock('later') }));
    await eventually('a change made by another writer reaches the read-only node', served(node, '/later', 'later'), 5000);

    // an unseeded prefix it would have to seed from its file: no start, saying why
    const { error } = await failedStart(configFile(authEtcd.endpoint, authStore('/gh-ro-empty', 'reader', 'GH_TEST_ETCD_READER_PASSWORD'), `routes:\n  - ${JSON.stringify({ id: 'x', ...mock('x') })}\n`));
    assert.equal(error, `the config store refused access: etcd ${authEtcd.endpoint}: permission denied: etcd user "reader" may not write under /gh-ro-empty/ (grant its role readwrite on that prefix); the prefix is not seeded yet, and this node cannot seed it from its config file`);
    // a prefix it may not even read
    const { error: e2 } = await failedStart(configFile(authEtcd.endpoint, authStore('/gh-auth', 'reader', 'GH_TEST_ETCD_READER_PASSWORD')));
    assert.equal(e2, `the config store refused access: etcd ${authEtcd.endpoint}: permission denied: etcd user "reader" may not read under /gh-auth/ (grant its role read on that prefix)`);
    noSecrets(node.proc.stdout() + node.proc.stderr());
  } finally {
    await node?.proc.kill();
    root.close();
  }
});

test('TLS with client certificates (and auth): gateways share config over https; a foreign CA, a missing client certificate or the default CAs of Node.js fail to start with a certificate error', { timeout: 120000 }, async () => {
  const tls = (ca: string, client = true) => `tls: { ca: "${ca}"${client ? `, cert: "${pki.clientCert}", key: "${pki.clientKey}"` : ''} }`;
  const nodes: Node[] = [];
  try {
    nodes.push(await startNode(tlsEtcd.endpoint, `${authStore('/gh-tls')}, ${tls(pki.ca)}`, `routes:\n  - ${JSON.stringify({ id: 'seeded', ...mock('seeded') })}\n`));
    nodes.push(await startNode(tlsEtcd.endpoint, `${authStore('/gh-tls')}, ${tls(pki.ca)}`));
    assert.ok(await served(nodes[1], '/seeded', 'seeded')());
    const put = await call(`${nodes[1].admin}/routes/t1`, { method: 'PUT', body: mock('t1') });
    assert.equal(put.status, 201, put.text);
    const lag = await eventually('t1 on node 1 over TLS', served(nodes[0], '/t1', 't1'), 5000);
    assert.ok(lag < 1000, `the write reached node 1 in ${lag} ms`);

    // the whole message, the same on every Node version: Node 24 appends "; if the root CA is installed locally,
    // try running Node.js with --use-system-ca" to OpenSSL's text, which Gatehouse leaves out (it names its own setting)
    const verify = (signer: string) => `the config store is unreachable: etcd ${tlsEtcd.endpoint}: certificate verify failed (unable to verify the first certificate): etcd's server certificate is not signed by ${signer} or does not name the endpoint's host`;
    // ca: a CA that did not sign etcd's certificate
    const foreign = await failedStart(configFile(tlsEtcd.endpoint, `${authStore('/gh-tls')}, ${tls(pki.otherCa)}`));
    assert.equal(foreign.error, verify('config_store.tls.ca'));
    // no tls section: https:// endpoints are verified with Node's default CAs, which do not know the test CA
    const system = await failedStart(configFile(tlsEtcd.endpoint, authStore('/gh-tls')));
    assert.equal(system.error, verify('a CA Node.js trusts by default (set config_store.tls.ca to the CA that signed it)'));
    // the right CA but no client certificate, while etcd runs with --client-cert-auth
    const noCert = await failedStart(configFile(tlsEtcd.endpoint, `${authStore('/gh-tls')}, ${tls(pki.ca, false)}`));
    assert.match(noCert.error, new RegExp(`^the config store is unreachable: etcd ${tlsEtcd.endpoint.replace(/[.]/g, '\\.')}: etcd refused the TLS handshake \\(alert: (bad certificate|certificate required)\\): it requires a client certificate`));
    // plain http:// to the TLS port: unreachable, not a hang
    const plain = await failedStart(configFile(tlsEtcd.endpoint.replace('https:', 'http:'), authStore('/gh-tls')));
    assert.match(plain.error, /^the config store is unreachable: etcd https?:\/\/[^:]+:\d+: /);
    for (const f of [foreign, system, noCert, plain]) assert.ok(!f.stdout.includes('PRIVATE KEY') && !f.stderr.includes('PRIVATE KEY'));
    for (const n of nodes) noSecrets(n.proc.stdout() + n.proc.stderr());
    process.stdout.write(`# a failed TLS start's stderr: ${JSON.stringify(noCert.stderr.slice(0, 300))}\n`);
  } finally {
    for (const n of nodes) await n.proc.kill();
  }
});

test('config_store.user against an etcd without authentication: no start, saying so (not silently unauthenticated)', { timeout: 60000 }, async () => {
  const plain = await startEtcd();
  try {
    const { error } = await failedStart(configFile(plain.endpoint, authStore('/gh-plain')));
    assert.equal(error, `the config store refused access: etcd ${plain.endpoint}: config_store.user is set but authentication is not enabled on etcd`);
  } finally {
    await plain.close();
  }
});

test('config errors: a literal password, user without password, TLS files and schemes; `gatehouse validate` and start report them by path', { timeout: 60000 }, async () => {
  const ep = 'https://127.0.0.1:2379';
  const literal = PW.GH_TEST_ETCD_LITERAL_PASSWORD;
  const cases: Array<{ endpoints: string; store: string; issues: Array<[string, RegExp]> }> = [
    { endpoints: `"${ep}"`, store: `user: gatehouse, password: "${literal}"`, issues: [['config_store.password', /^must be a reference like \$env:\/\/GATEHOUSE_ETCD_PASSWORD, not the password itself$/]] },
    { endpoints: `"${ep}"`, store: `user: gatehouse, password: "$secret://vault/main/etcd"`, issues: [['config_store.password', /^must be an \$env:\/\/ reference/]] },
    { endpoints: `"${ep}"`, store: `user: gatehouse, password: "$env://GH_TEST_UNSET_VARIABLE"`, issues: [['config_store.password', /^environment variable GH_TEST_UNSET_VARIABLE is not set$/]] },
    { endpoints: `"${ep}"`, store: 'user: gatehouse', issues: [['config_store.password', /^is required with config_store.user$/]] },
    { endpoints: `"${ep}"`, store: 'password: "$env://GH_TEST_ETCD_PASSWORD"', issues: [['config_store.user', /^is required with config_store.password$/]] },
    { endpoints: '"http://127.0.0.1:2379"', store: `tls: { ca: "${pki.ca}" }`, issues: [['config_store.endpoints', /^must be https:\/\/ endpoints when config_store.tls is set$/]] },
    { endpoints: `"${ep}", "http://127.0.0.2:2379"`, store: '', issues: [['config_store.endpoints', /^mixes http:\/\/ and https:\/\/ endpoints/]] },
    { endpoints: `"${ep}"`, store: `tls: { cert: "${pki.clientCert}" }`, issues: [['config_store.tls.key', /^is required with the other: cert and key go together/]] },
    {
      endpoints: `"${ep}"`,
      // the key file given as the CA: named by path, its contents never shown
      store: `tls: { ca: "${pki.clientKey}", cert: "${join(pki.dir, 'missing.pem')}", key: "${pki.clientKey}" }`,
      issues: [['config_store.tls.ca', /is not a PEM certificate file$/], ['config_store.tls.cert', /^cannot read .*missing\.pem \(ENOENT\)$/]],
    },
  ];
  for (const c of cases) {
    const file = join(tempDir(), 'gatehouse.yaml');
    writeFileSync(file, `admin: { key: ${ADMIN_KEY} }\nconfig_store: { type: etcd, endpoints: [${c.endpoints}]${c.store ? `, ${c.store}` : ''} }\n`);
    const what = c.issues.map((i) => i[0]).join(', ');
    // in process: the error's issues, by path
    await assert.rejects(bootGateway({}, { configPath: file }), (err: { code?: string; issues?: Array<{ path: string; message: string }> }) => {
      assert.equal(err.code, 'GH_ERR_CONFIG_INVALID', what);
      assert.deepEqual(err.issues!.map((i) => i.path), c.issues.map((i) => i[0]));
      c.issues.forEach(([, re], k) => assert.match(err.issues![k].message, re));
      return true;
    });
    // `gatehouse validate`: exit 1, one line per issue, as for any config error
    const v = await runCli(['validate', '-c', file]);
    assert.equal(v.code, 1, `${what}: ${v.stdout}`);
    const lines = v.stderr.trimEnd().split('\n');
    assert.equal(lines[0], `${file}: ${c.issues.length} error${c.issues.length === 1 ? '' : 's'}`);
    assert.deepEqual(lines.slice(1).map((l) => l.slice(0, l.indexOf(': '))), c.issues.map((i) => i[0]));
    // `gatehouse start`: exit 1, the issue in the one error line
    const s = await runCli(['start', '-c', file]);
    assert.equal(s.code, 1, what);
    assert.match(s.stdout, new RegExp(`"errors":\\["${c.issues[0][0].replace(/\./g, '\\.')}: `));
    const out = v.stdout + v.stderr + s.stdout + s.stderr;
    noSecrets(out);
    assert.ok(!out.includes('PRIVATE KEY'), 'no key file content in any output');
  }
});
