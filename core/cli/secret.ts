// `gatehouse secret resolve <ref> -c FILE [--reveal]`: resolve one reference with the config's
// secret resources; print the provider, the latency and a fingerprint, the value only on request.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import 'reflect-metadata';
import { SnapshotBuilder } from '../build/snapshot-builder';
import { createGatewayContainer, systemClock } from '../container';
import { readConfigFile } from '../config/loader';
import { GatehouseError } from '../errors';
import { silentLogger } from '../observe/log';
import { createMetrics } from '../observe/metrics';
import { parseReference, ReferenceSyntaxError } from '../secrets/reference';
import { MemoryConfigStore } from '../stores/file-store';
import { storeForFile } from '../stores';
import type { Logger, RawConfig } from '../contracts';

/** sha256 of the value, first 12 hex digits: enough to compare two values, useless to recover one. */
export function fingerprint(value: string): string {
  return `sha256:${createHash('sha256').update(value).digest('hex').slice(0, 12)}`;
}

/**
 * The document in force for `file`: with its secret resources as start would see them (from the
 * data file of Admin API writes, or etcd, when the config store keeps them there). Writes nothing.
 */
async function inForce(file: string, fileDoc: RawConfig, logger: Logger): Promise<RawConfig> {
  const store = storeForFile(file, fileDoc, logger, true);
  try {
    return store.complete ? await store.complete(fileDoc) : await store.load();
  } finally {
    await store.close();
  }
}

/**
 * `gatehouse secret resolve`: resolve `text` with the secret resources of `file`; exit code 0 or 1.
 * @param fileOptional the file is only the default (no -c): when it does not exist, an `$env://`
 *   reference is resolved without it, and a `$secret://` one is refused naming the file
 */
export async function secretResolveCommand(text: string, file: string, reveal: boolean, out: NodeJS.WritableStream, err: NodeJS.WritableStream, fileOptional = false): Promise<number> {
  let builder: SnapshotBuilder | undefined;
  try {
    const ref = parseReference(text);
    const absent = fileOptional && !existsSync(file);
    if (absent && ref.manager !== 'env') throw new Error(`${file}: no such file: a $secret:// reference is resolved with the secret resources of a config file; name it with -c FILE`);
    // an $env:// reference reads the environment only: no config is needed, nor the data sections
    // (no etcd round trip); the file is still checked when there is one
    const logger = silentLogger();
    const fileDoc = absent ? {} : await readConfigFile(file);
    const raw = ref.manager === 'env' ? fileDoc : await inForce(file, fileDoc, logger);
    const container = createGatewayContainer({ logger, metrics: createMetrics(), clock: systemClock, store: new MemoryConfigStore(raw), baseDir: dirname(resolve(file)) });
    builder = container.resolve(SnapshotBuilder);
    const v = builder.validate(raw);
    if (ref.manager !== 'env' && !builder.deps.registry.providers.has(ref.manager)) throw new Error(`unknown secret manager "${ref.manager}"`);
    if (ref.manager !== 'env' && !v.config.secrets.some((s) => s.id === ref.resource)) throw new Error(`${file} has no secret resource "${ref.resource}"`);
    await builder.backends.sync(v.config, v.refs, builder.resolver);
    const t0 = performance.now();
    const value = await builder.resolver.resolve(ref);
    const ms = performance.now() - t0;
    const lines = [
      ['reference', ref.text],
      ['provider', ref.manager === 'env' ? 'env' : `${ref.manager} (resource ${ref.resource})`],
      ['latency', `${ms.toFixed(1)} ms`],
      ['fingerprint', fingerprint(value)],
      ...(reveal ? [['value', value]] : []),
    ];
    for (const [k, val] of lines) out.write(`${k.padEnd(12)} ${val}\n`);
    return 0;
  } catch (e) {
    if (e instanceof GatehouseError && e.issues.length) {
      err.write(`${file}: ${e.issues.length} error${e.issues.length === 1 ? '' : 's'}\n`);
      for (const i of e.issues) err.write(`${i.path ? `${i.path}: ` : ''}${i.message}\n`);
    } else if (e instanceof ReferenceSyntaxError) err.write(`invalid reference: ${e.message}\n`);
    else err.write(`${(e as Error).message}\n`);
    return 1;
  } finally {
    await builder?.close();
  }
}
