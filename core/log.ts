// Logging: pino JSON lines, written asynchronously so a slow terminal never slows requests.
import pino from 'pino';
import type { Logger } from './contracts';

export interface LogOptions {
  /** pino level; default 'info' (env GATEHOUSE_LOG_LEVEL overrides) */
  level?: string;
  /** Where lines go: a file descriptor (default 1 = stdout) or a writable stream (tests). */
  destination?: number | NodeJS.WritableStream;
  /** Synchronous writes (tests, CLI one-shots). Default false. */
  sync?: boolean;
}

/** Longest time a buffered log line waits before it is written. */
const FLUSH_MS = 200;
const noop = () => undefined;

/** Create the root logger. Call its `flush()` before exiting to write buffered lines. */
export function createLogger(opts: LogOptions = {}): Logger & { flush?: () => void } {
  const level = process.env.GATEHOUSE_LOG_LEVEL ?? opts.level ?? 'info';
  const base = { name: 'gatehouse' };
  if (opts.destination !== undefined && typeof opts.destination !== 'number') {
    return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, opts.destination as pino.DestinationStream);
  }
  const sync = opts.sync ?? false;
  const dest = pino.destination({ dest: opts.destination ?? 1, sync, minLength: sync ? 0 : 4096 });
  const logger = pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, dest);
  if (!sync) {
    // lines are batched up to 4 KiB; never hold a line longer than FLUSH_MS on a quiet gateway
    const timer = setInterval(() => dest.flush(noop), FLUSH_MS);
    timer.unref();
  }
  return Object.assign(logger, {
    flush: () => {
      try {
        dest.flushSync();
      } catch {
        // not ready yet (nothing written): nothing to flush
      }
    },
  });
}

/** A logger that drops everything (for tools that must print nothing). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
