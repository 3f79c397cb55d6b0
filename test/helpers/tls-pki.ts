// A test CA and the certificates TLS tests need, made with the openssl command line in a temp dir:
// server certificates for any set of names (EC P-256 or RSA 2048), client certificates, and ones
// whose validity has ended. Private keys are planted as leak-scan canaries: no test output may
// contain them.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './harness';
import { plantCanary } from './leak-tap';

export interface IssuedPair {
  /** PEM certificate and key, and the files that hold them. */
  readonly cert: string;
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface IssueOptions {
  /** DNS names in subjectAltName (the first is also the CN). */
  readonly names: readonly string[];
  readonly keyType?: 'ec' | 'rsa';
  /** A client certificate (extendedKeyUsage clientAuth) instead of a server one. */
  readonly client?: boolean;
  /** Days of validity from now (default 2); ignored with `expired`. */
  readonly days?: number;
  /** Valid from 2020-01-01 to 2020-01-02: expired. */
  readonly expired?: boolean;
}

export interface TestCa {
  readonly dir: string;
  /** The CA certificate (PEM) and its file. */
  readonly cert: string;
  readonly certFile: string;
  /** A certificate and key signed by this CA. */
  issue(name: string, opts: IssueOptions): IssuedPair;
}

/** Run the openssl CLI (in `cwd` when given); its failure names the subcommand and what openssl said. */
export function openssl(args: readonly string[], cwd?: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (err) {
    throw new Error(`openssl ${args[0]} failed (apt-get install -y openssl): ${String((err as { stderr?: unknown }).stderr ?? (err as Error).message)}`);
  }
}

const keyArgs = (t: 'ec' | 'rsa') => (t === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['-newkey', 'rsa:2048']);

/** The base64 body of a PEM block (what a leak would show, in any line wrapping). */
export function pemBody(pem: string): string {
  return pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
}

/** A new CA (EC P-256, valid 30 days) in a new temp dir. */
export function makeTestCa(label = 'gatehouse test CA'): TestCa {
  const dir = tempDir('gatehouse-tls-pki-');
  const p = (n: string) => join(dir, n);
  openssl(['req', '-x509', ...keyArgs('ec'), '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', `/CN=${label}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  plantCanary(`${label} key`, pemBody(readFileSync(p('ca.key'), 'utf8')));
  // `openssl ca` (for certificates with set dates) keeps a small database
  writeFileSync(p('index.txt'), '');
  writeFileSync(p('ca.cnf'), ['[ca]', 'default_ca = test', '[test]', `dir = ${dir}`, 'database = $dir/index.txt', 'new_certs_dir = $dir', 'serial = $dir/serial', 'default_md = sha256', 'policy = any', 'unique_subject = no', 'copy_extensions = none', '[any]', 'commonName = supplied', ''].join('\n'));
  writeFileSync(p('serial'), '1000\n');
  return {
    dir,
    cert: readFileSync(p('ca.pem'), 'utf8'),
    certFile: p('ca.pem'),
    issue(name, opts) {
      const ext = [`subjectAltName=${opts.names.map((n) => `DNS:${n}`).join(',')}`, `extendedKeyUsage=${opts.client ? 'clientAuth' : 'serverAuth'}`, 'basicConstraints=critical,CA:FALSE', ''].join('\n');
      writeFileSync(p(`${name}.ext`), ext);
      openssl(['req', ...keyArgs(opts.keyType ?? 'ec'), '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${opts.names[0] ?? name}`], dir);
      if (opts.expired) {
        openssl(['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key', '-in', `${name}.csr`, '-out', `${name}.pem`, '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extfile', `${name}.ext`, '-notext'], dir);
      } else {
        openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', String(opts.days ?? 2), '-extfile', `${name}.ext`], dir);
      }
      const key = readFileSync(p(`${name}.key`), 'utf8');
      plantCanary(`test TLS key ${name}`, pemBody(key));
      return { cert: readFileSync(p(`${name}.pem`), 'utf8'), key, certFile: p(`${name}.pem`), keyFile: p(`${name}.key`) };
    },
  };
}
