// Certificates for SSL resources, made with the openssl CLI in a temp folder: a test CA and leaves
// it signs (EC P-256 or RSA 2048) for the names asked, as PEM strings. Every private key is planted
// as a canary: the leak scan fails the run if one shows up in anything the run lets out.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './harness';
import { openssl, pemBody } from './etcd';
import { plantCanary } from './leak-tap';

export interface SslPair {
  readonly cert: string;
  readonly key: string;
}

export interface SslPki {
  readonly dir: string;
  /** The CA's certificate (PEM). */
  readonly ca: string;
  /** A leaf for `names` (subjectAltName DNS entries), signed by the CA. */
  leaf(names: readonly string[], alg?: 'ec' | 'rsa'): SslPair;
}

export function makeSslPki(): SslPki {
  const dir = tempDir('gatehouse-ssl-pki-');
  const p = (n: string) => join(dir, n);
  const ssl = openssl;
  const newKey = (alg: 'ec' | 'rsa') => (alg === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'] : ['-newkey', 'rsa:2048', '-nodes']);
  ssl('req', '-x509', ...newKey('ec'), '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=gatehouse ssl test ca');
  plantCanary('ssl test CA key', pemBody(readFileSync(p('ca.key'), 'utf8')));
  let n = 0;
  return {
    dir,
    ca: readFileSync(p('ca.pem'), 'utf8'),
    leaf(names, alg = 'ec') {
      const name = `leaf${++n}`;
      ssl('req', ...newKey(alg), '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${names[0]}`);
      writeFileSync(p(`${name}.ext`), `subjectAltName=${names.map((x) => `DNS:${x}`).join(',')}\nextendedKeyUsage=serverAuth\n`);
      ssl('x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p(`${name}.pem`), '-days', '2', '-extfile', p(`${name}.ext`));
      const key = readFileSync(p(`${name}.key`), 'utf8');
      plantCanary(`ssl test key ${name}`, pemBody(key));
      return { cert: readFileSync(p(`${name}.pem`), 'utf8'), key };
    },
  };
}
