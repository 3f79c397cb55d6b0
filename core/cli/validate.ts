// `gatehouse validate -c FILE`: every error with its path, exit 1; "ok" and exit 0 when valid.
// With a data file of Admin API writes in force, the config file's own data sections are checked
// too (a typo in them never passes silently, even while the data file replaces them). A served
// certificate (references resolved, as the build resolves them) that ends within 7 days or has
// ended is a warning on stderr: the exit code stays 0 (a gateway serves it: docs/tls.md, "Expiry").
import { Gateway } from '../gateway';
import { GatehouseError } from '../errors';
import { silentLogger } from '../observe/log';
import { readConfigFile } from '../config/loader';
import { FileConfigStore } from '../stores/file-store';
import { endingCertificates } from '../build/tls-expiry';

/** How soon a certificate's end makes `validate` warn. */
export const VALIDATE_EXPIRY_DAYS = 7;

function report(err: NodeJS.WritableStream, what: string, e: unknown): void {
  if (e instanceof GatehouseError && e.issues.length) {
    err.write(`${what}: ${e.issues.length} error${e.issues.length === 1 ? '' : 's'}\n`);
    for (const i of e.issues) err.write(`${i.path ? `${i.path}: ` : ''}${i.message}\n`);
  } else err.write(`${(e as Error).message}\n`);
}

export async function validateCommand(file: string, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let n: number;
  let raw;
  let warnings: string[] = [];
  try {
    // read once: the same document is checked whole, then (below) its own data sections
    raw = await readConfigFile(file);
    const gw = await Gateway.create({ configPath: file, initialConfig: raw, logger: silentLogger(), watch: false, dryRun: true });
    n = gw.snapshot.routes.length;
    const now = Date.now();
    warnings = endingCertificates(gw.snapshot.tls, gw.config.ssls, now, VALIDATE_EXPIRY_DAYS).map((c) => {
      const when = new Date(c.notAfter).toISOString();
      return c.notAfter <= now ? `warning: ${c.path}: the certificate of SSL resource ${JSON.stringify(c.sslId)} expired on ${when} (it is still served)` : `warning: ${c.path}: the certificate of SSL resource ${JSON.stringify(c.sslId)} expires on ${when}, within ${VALIDATE_EXPIRY_DAYS} days`;
    });
    await gw.close(0);
  } catch (e) {
    report(err, file, e);
    return 1;
  }
  const shadowedBy = (raw.config_store as { type?: unknown } | undefined)?.type === 'etcd' ? undefined : await new FileConfigStore(file).shadowedBy(raw);
  if (shadowedBy !== undefined) {
    try {
      const own = await Gateway.create({ configPath: file, initialConfig: raw, store: new FileConfigStore(file, 100, false), logger: silentLogger(), watch: false, dryRun: true });
      await own.close(0);
    } catch (e) {
      report(err, `${file}: its own data sections (not in force: ${shadowedBy} replaces them)`, e);
      return 1;
    }
  }
  out.write(`${file}: ok (${n} route${n === 1 ? '' : 's'})\n`);
  for (const w of warnings) err.write(`${w}\n`);
  if (shadowedBy !== undefined) out.write(`note: the data sections of ${file} are not in force: ${shadowedBy} (Admin API writes) replaces them\n`);
  return 0;
}
