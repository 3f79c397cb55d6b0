// Certificates for SSL resources as PEM strings: a test CA and leaves it signs (EC P-256 or RSA)
// for the names asked, made by tls-pki.ts (openssl; every private key planted as a leak canary).
import { makeTestCa } from './tls-pki';

export interface SslPair {
  readonly cert: string;
  readonly key: string;
}

export interface SslPki {
  readonly dir: string;
  /** The CA's certificate (PEM). */
  readonly ca: string;
  /** A leaf for `names` (subjectAltName DNS entries, the first as CN), signed by the CA. */
  leaf(names: readonly string[], alg?: 'ec' | 'rsa'): SslPair;
}

export function makeSslPki(): SslPki {
  const ca = makeTestCa('gatehouse ssl test CA');
  let n = 0;
  return {
    dir: ca.dir,
    ca: ca.cert,
    leaf(names, alg = 'ec') {
      const { cert, key } = ca.issue(`leaf${++n}`, { names, keyType: alg });
      return { cert, key };
    },
  };
}
