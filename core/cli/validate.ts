// `gatehouse validate -c FILE`: every error with its path, exit 1; "ok" and exit 0 when valid.
import { Gateway } from '../gateway';
import { GatehouseError } from '../errors';
import { silentLogger } from '../log';

export async function validateCommand(file: string, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  try {
    const gw = await Gateway.create({ configPath: file, logger: silentLogger(), watch: false, dryRun: true });
    const n = gw.snapshot.routes.length;
    await gw.close(0);
    out.write(`${file}: ok (${n} route${n === 1 ? '' : 's'})\n`);
    return 0;
  } catch (e) {
    if (e instanceof GatehouseError && e.issues.length) {
      err.write(`${file}: ${e.issues.length} error${e.issues.length === 1 ? '' : 's'}\n`);
      for (const i of e.issues) err.write(`${i.path ? `${i.path}: ` : ''}${i.message}\n`);
    } else err.write(`${(e as Error).message}\n`);
    return 1;
  }
}
