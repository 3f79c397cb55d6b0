// `gatehouse start`: run the gateway (optionally one process per CPU) until SIGTERM/SIGINT, then
// drain: stop accepting, let in-flight requests finish within gateway.drain_timeout, exit 0.
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { AddressInfo } from 'node:net';
import { startGateway, type Gateway } from '../gateway';
import { parseListen } from '../config/settings-check';
import { GatehouseError } from '../errors';
import { createLogger } from '../observe/log';
import type { Logger } from '../contracts';
import { readConfigFile } from '../config/loader';
import { resolveSettingReferences } from '../config/settings-refs';
import { createMetrics } from '../observe/metrics';
import { isGatehouseWorker, relay, WorkerChannel, WORKER_ENV } from '../stores/cluster-bus';
import { generateAdminKey, printGeneratedAdminKey } from '../admin/access';

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
  // $env:// references in gateway settings (log_level, workers) count from the start; what cannot
  // be resolved is reported by the load below
  resolveSettingReferences(raw, []);
  const level = (raw.gateway as { log_level?: unknown } | undefined)?.log_level;
  const root = createLogger({ level: typeof level === 'string' ? level : undefined });
  const logger = cluster.isWorker ? root.child({ worker: cluster.worker?.id }) : root;
  const workers = cluster.isPrimary ? workerCount(raw) : 1;
  if (cluster.isPrimary && workers > 1) return runPrimary(workers, logger, raw);
  // a worker of our primary: secret refreshes fan out to the other workers, /metrics sums them all
  const channel = isGatehouseWorker() ? new WorkerChannel() : undefined;
  const bus = channel?.bus(logger);
  const metrics = channel?.metrics(createMetrics());
  let gw: Gateway;
  try {
    // hand the document over: with no reference left here the gateway validates it in place and
    // drops it before the build (100 000 consumers: tens of MB less peak memory)
    let handoff: Record<string, unknown> | undefined = readOk ? raw : undefined;
    raw = {};
    // the key the primary generated, if any, comes over IPC (never through the environment)
    const generatedAdminKey = await channel?.adminKey();
    const take = () => {
      const d = handoff;
      handoff = undefined;
      return d;
    };
    gw = await startGateway({ configPath: file, logger, bus, metrics, generatedAdminKey, takeInitialConfig: take });
  } catch (err) {
    const errors = fatalErrors(err);
    // the log line for whatever collects the logs (stdout); the plain line for the person or
    // script that ran the command: stderr, from the primary alone when workers start
    logger.error({ errors }, 'gatehouse cannot start');
    root.flush?.();
    if (channel) await toPrimaryThenExit(errors);
    else process.stderr.write(fatalLine(errors));
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

/** What stops a start, one entry per problem: each config issue with its path, or the error's message. */
function fatalErrors(err: unknown): string[] {
  const issues = err instanceof GatehouseError ? err.issues : [];
  return issues.length ? issues.map((i) => `${i.path}: ${i.message}`) : [(err as Error).message];
}

/**
 * The one stderr line of a failed start: `gatehouse: cannot start: <problems, "; " between>`. A
 * message of several lines (a YAML file with several syntax errors) stays on that one line.
 */
export function fatalLine(errors: readonly string[]): string {
  return `gatehouse: cannot start: ${errors.join('; ').replace(/\s*\n\s*/g, '; ')}\n`;
}

/** The IPC message a worker that cannot start sends its primary, which prints one line for all. */
const FATAL = 'start-failed';

/** A worker's failed start goes to the primary (which prints it once); resolves when it is sent. */
function toPrimaryThenExit(errors: readonly string[]): Promise<void> {
  return new Promise<void>((resolve) => {
    if (typeof process.send !== 'function' || !process.connected) return resolve();
    process.send({ gatehouse: FATAL, errors }, undefined, {}, () => resolve());
  });
}

/** The Admin API port of a config that has an `admin:` section (undefined when unknown or 0). */
function adminPort(admin: Record<string, unknown>): number | undefined {
  const listen = typeof admin.listen === 'string' ? admin.listen : '127.0.0.1:9180';
  const port = parseListen(listen).port;
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/**
 * node:cluster primary: workers share the listeners; signals are passed on; exit when all exit.
 * It relays cluster commands and aggregates metrics between the workers (core/stores/cluster-bus), and
 * when the config has `admin:` without `key` it generates the admin key for all of them and prints
 * it once, when the first worker's Admin API listens.
 */
function runPrimary(n: number, logger: Logger, raw: Record<string, unknown>): Promise<number> {
  const env: Record<string, string> = { [WORKER_ENV]: '1' };
  const admin = raw.admin;
  let adminKey: string | undefined;
  if (admin !== null && typeof admin === 'object' && !Array.isArray(admin) && (admin as Record<string, unknown>).key === undefined) {
    const key = (adminKey = generateAdminKey());
    const port = adminPort(admin as Record<string, unknown>);
    const onListening = (_w: unknown, addr: AddressInfo) => {
      if (port !== undefined && addr.port !== port) return;
      cluster.off('listening', onListening);
      printGeneratedAdminKey(key);
    };
    cluster.on('listening', onListening);
  }
  // each worker asks for the generated key over IPC as it starts
  const stopRelay = relay({ logger, adminKey });
  // the first worker that cannot start says why; the others fail the same way
  let fatal: readonly string[] | undefined;
  cluster.on('message', (_w, m: { gatehouse?: unknown; errors?: unknown }) => {
    if (m?.gatehouse === FATAL && fatal === undefined && Array.isArray(m.errors)) fatal = m.errors.map(String);
  });
  return new Promise<number>((resolve) => {
    let stopping = false;
    let failed = false;
    for (let i = 0; i < n; i++) cluster.fork(env);
    cluster.on('exit', (w, code) => {
      if (code !== 0) failed = true;
      if (!stopping) {
        logger.error({ worker: w.process.pid, code }, 'worker exited; stopping the gateway');
        stopping = true;
        for (const other of Object.values(cluster.workers ?? {})) other?.process.kill('SIGTERM');
      }
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        stopRelay();
        if (fatal !== undefined) process.stderr.write(fatalLine(fatal));
        resolve(failed && !stoppingBySignal ? 1 : 0);
      }
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
