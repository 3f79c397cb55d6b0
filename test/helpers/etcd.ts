// A real etcd server (Debian's etcd-server) for tests: started on free loopback ports with a
// temporary data directory, stopped and removed afterwards. When the binary is missing it is
// installed with apt when we are root; otherwise the suite fails loudly (never skips).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer as createNetServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { bootGateway, delay, freePort, tempDir, type TestGateway } from './harness';
import { plantCanary } from './leak-tap';
import { openssl, pemBody } from './tls-pki';
import { debianBinary, lifecycle } from '../servers/debian';

/** Path of the etcd binary, installing Debian's etcd-server first when needed and possible. */
export function etcdBinary(): string {
  return debianBinary('etcd', 'etcd-server', 'a real etcd');
}

export interface EtcdServer {
  /** "http://127.0.0.1:<client port>" (https:// with `tls`) */
  readonly endpoint: string;
  readonly clientPort: number;
  /** SIGKILL: an outage, data kept. */
  kill(): Promise<void>;
  /** Start again on the same ports and data directory. */
  restart(): Promise<void>;
  /** Stop for good and remove the data directory. */
  close(): Promise<void>;
  /** Everything etcd wrote to stderr (for failure messages). */
  log(): string;
  /** An etcd3 client for this server (its TLS client certificate when it has TLS), as `auth` when given. */
  client(auth?: { username: string; password: string }): Etcd3;
}

/** One etcd user to create, with readwrite or read permission on a key prefix. */
export interface EtcdUser {
  readonly name: string;
  readonly password: string;
  readonly prefix: string;
  readonly permission: 'Read' | 'Readwrite';
}

/**
 * Turn authentication on, as etcdctl would (`user add root`, `role add`, `role grant-permission
 * --prefix`, `user grant-role`, `auth enable`), through the etcd3 client's own Auth API. The
 * passwords are planted for the leak scan.
 */
export async function enableEtcdAuth(etcd: EtcdServer, rootPassword: string, users: readonly EtcdUser[]): Promise<void> {
  plantCanary('etcd root password', rootPassword);
  const c = etcd.client();
  try {
    // as `etcdctl auth enable` does: the root role, granted to the root user
    await c.role('root').create();
    await (await c.user('root').create(rootPassword)).addRole('root');
    for (const u of users) {
      plantCanary(`etcd password of ${u.name}`, u.password);
      const role = await c.role(`${u.name}-role`).create();
      await role.grant({ permission: u.permission, range: c.range({ prefix: u.prefix }) });
      const user = await c.user(u.name).create(u.password);
      await user.addRole(role);
    }
    await c.auth.authEnable();
  } finally {
    c.close();
  }
}

/** PEM files of a throwaway PKI, made with the openssl CLI. */
export interface TestPki {
  readonly dir: string;
  /** CA that signed the server and client certificates. */
  readonly ca: string;
  /** Server certificate (SAN IP:127.0.0.1, DNS:localhost) and key. */
  readonly serverCert: string;
  readonly serverKey: string;
  /** Client certificate (CN=gatehouse, clientAuth) and key. */
  readonly clientCert: string;
  readonly clientKey: string;
  /** Another CA, unrelated to the certificates above. */
  readonly otherCa: string;
}

/** Generate a CA, a server and a client certificate (EC P-256, valid one day) into a new temp dir. */
export function makeTestPki(): TestPki {
  const dir = tempDir('gatehouse-pki-');
  const p = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => openssl(args);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string) => ssl('req', '-x509', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.pem`), '-days', '1', '-subj', `/CN=gatehouse test ${name}`);
  const leaf = (name: string, cn: string, ext: string) => {
    ssl('req', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${cn}`);
    writeFileSync(p(`${name}.ext`), ext);
    ssl('x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p(`${name}.pem`), '-days', '1', '-extfile', p(`${name}.ext`));
  };
  ca('ca');
  ca('other-ca');
  leaf('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  leaf('client', 'gatehouse', 'extendedKeyUsage=clientAuth\n');
  // private keys are secrets like any other: the leak scan looks for them in everything the run lets out
  for (const k of ['ca.key', 'server.key', 'client.key', 'other-ca.key']) plantCanary(`test PKI ${k}`, pemBody(readFileSync(p(k), 'utf8')));
  return { dir, ca: p('ca.pem'), serverCert: p('server.pem'), serverKey: p('server.key'), clientCert: p('client.pem'), clientKey: p('client.key'), otherCa: p('other-ca.pem') };
}

export interface EtcdOptions {
  /**
   * Serve clients over https only, with the PKI's server certificate (--cert-file, --key-file,
   * --trusted-ca-file); `clientCertAuth` adds --client-cert-auth (a client certificate signed by the
   * PKI's CA is required).
   */
  readonly tls?: { readonly pki: TestPki; readonly clientCertAuth?: boolean };
  /** --auth-token-ttl (seconds): how long an idle simple auth token lives. */
  readonly authTokenTtl?: number;
}

function healthy(port: number, tls?: EtcdOptions['tls']): Promise<boolean> {
  return new Promise((resolve) => {
    const opts = { host: '127.0.0.1', port, path: '/health', timeout: 1000 };
    const onRes = (res: import('node:http').IncomingMessage) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
    };
    const req = tls
      ? httpsRequest({ ...opts, servername: 'localhost', ca: readFileSync(tls.pki.ca), cert: readFileSync(tls.pki.clientCert), key: readFileSync(tls.pki.clientKey) }, onRes)
      : request(opts, onRes);
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Start a one-member etcd cluster on free ports with a new data directory. */
export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdServer> {
  const bin = etcdBinary();
  const dir = tempDir('gatehouse-etcd-');
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const extra: string[] = [];
  if (opts.tls) {
    extra.push('--cert-file', opts.tls.pki.serverCert, '--key-file', opts.tls.pki.serverKey, '--trusted-ca-file', opts.tls.pki.ca);
    if (opts.tls.clientCertAuth) extra.push('--client-cert-auth');
  }
  if (opts.authTokenTtl !== undefined) extra.push('--auth-token-ttl', String(opts.authTokenTtl));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const run = async () => {
    const peer = `http://127.0.0.1:${peerPort}`;
    child = spawn(
      bin,
      [
        '--name', 'n1', '--data-dir', join(dir, 'data'),
        '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `n1=${peer}`, '--initial-cluster-state', 'new',
        '--logger', 'zap', '--log-level', 'warn',
        ...extra,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch === 'arm64' ? 'arm64' : '' } },
    );
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-20000)));
    const c = child;
    exited = new Promise<void>((r) => c.once('exit', () => r()));
    let gone = false;
    void exited.then(() => (gone = true));
    const deadline = Date.now() + 20000;
    while (!(await healthy(clientPort, opts.tls))) {
      if (gone) throw new Error(`etcd exited before it was healthy:\n${log}`);
      if (Date.now() > deadline) throw new Error(`etcd not healthy after 20 s:\n${log}`);
      await delay(50);
    }
  };
  const kill = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  await run();
  return {
    endpoint,
    clientPort,
    ...lifecycle(run, kill, dir),
    log: () => log,
    client: (auth) =>
      new Etcd3({
        hosts: endpoint,
        auth,
        credentials: opts.tls ? { rootCertificate: readFileSync(opts.tls.pki.ca), privateKey: readFileSync(opts.tls.pki.clientKey), certChain: readFileSync(opts.tls.pki.clientCert) } : undefined,
      }),
  };
}

/** A TCP relay to 127.0.0.1:`target` that can be cut (every connection dropped, new ones refused by reset) and restored. */
export interface Relay {
  readonly port: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startRelay(target: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  let open = true;
  const server: Server = createNetServer((client) => {
    if (!open) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut() {
      open = false;
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
    },
    restore() {
      open = true;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/**
 * Gateways (Admin API on a free port each) started from config files with the same `config`, one
 * per name: nodes of one cluster when `config.config_store` names an etcd prefix (the first one
 * seeds it; the others find it seeded). The caller closes them.
 */
export async function bootNodes(config: Record<string, unknown>, names: readonly string[] = ['a', 'b']): Promise<TestGateway[]> {
  const dir = tempDir('gatehouse-nodes-');
  const nodes: TestGateway[] = [];
  for (const name of names) {
    const file = join(dir, `${name}.yaml`);
    // JSON is YAML
    writeFileSync(file, JSON.stringify(config));
    nodes.push(await bootGateway({}, { configPath: file, adminListen: '127.0.0.1:0' }));
  }
  return nodes;
}
