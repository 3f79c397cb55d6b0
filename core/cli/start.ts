// `gatehouse start`: run the gateway (optionally one process per CPU) until SIGTERM/SIGINT, then
// drain: stop accepting, let in-flight requests finish within gateway.drain_timeout, exit 0.
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { startGateway, type Gateway } from '../gateway';
import { GatehouseError } from '../errors';
import { createLogger } from '../log';
import type { Logger } from '../contracts';
import { readConfigFile } from '../config/loader';

function workerCount(raw: Record<string, unknown>): number {
  const w = (raw.gateway as { workers?: unknown } | undefined)?.workers;
  if (w === 'auto') return availableParallelism();
  return typeof w === 'number' && Number.isInteger(w) && w > 0 ? w : 1;
}

export async function startCommand(file: string): Promise<number> {
  let raw: Record<string, unknown> = {};
  let readOk = false;
  try {
    raw = await readConfigFile(file);
    readOk = true;
  } catch {
    // reported by the load below, with full detail
  }
  const level = (raw.gateway as { log_level?: unknown } | undefined)?.log_level;
  const root = createLogger({ level: typeof level === 'string' ? level : undefined });
  const logger = cluster.isWorker ? root.child({ worker: cluster.worker?.id }) : root;
  const workers = cluster.isPrimary ? workerCount(raw) : 1;
  if (cluster.isPrimary && workers > 1) return runPrimary(workers, logger);
  let gw: Gateway;
  try {
    gw = await startGateway({ configPath: file, logger, initialConfig: readOk ? raw : undefined });
  } catch (err) {
    const issues = err instanceof GatehouseError ? err.issues : [];
    logger.error({ errors: issues.length ? issues.map((i) => `${i.path}: ${i.message}`) : [(err as Error).message] }, 'gatehouse cannot start');
    root.flush?.();
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // a second signal: stop now
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'draining');
      gw.close().then(
        () => {
          root.flush?.();
          resolve(0);
        },
        () => {
          root.flush?.();
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => void gw.reload());
  });
}

/** node:cluster primary: workers share the listener; signals are passed on; exit when all exit. */
function runPrimary(n: number, logger: Logger): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    let failed = false;
    for (let i = 0; i < n; i++) cluster.fork();
    cluster.on('exit', (w, code) => {
      if (code !== 0) failed = true;
      if (!stopping) {
        logger.error({ worker: w.process.pid, code }, 'worker exited; stopping the gateway');
        stopping = true;
        for (const other of Object.values(cluster.workers ?? {})) other?.process.kill('SIGTERM');
      }
      if (Object.keys(cluster.workers ?? {}).length === 0) resolve(failed && !stoppingBySignal ? 1 : 0);
    });
    let stoppingBySignal = false;
    const stop = (signal: NodeJS.Signals) => {
      stopping = true;
      stoppingBySignal = true;
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal === 'SIGINT' ? 'SIGTERM' : signal);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
    });
    logger.info({ workers: n }, 'gatehouse primary started');
  });
}
