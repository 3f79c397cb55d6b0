// A self-signed EC certificate and key made by the openssl command, for benches with SSL resources.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A P-256 certificate for `name`, valid 30 days, and its key (PEM). */
export function selfSigned(name: string): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-ssl-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '30', '-subj', `/CN=${name}`], { cwd: dir, stdio: 'ignore' });
    return { cert: readFileSync(join(dir, 'c.pem'), 'utf8'), key: readFileSync(join(dir, 'k.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
