// Logging: pino JSON lines, written asynchronously so a slow terminal never slows requests.
import pino from 'pino';
import type { Logger } from '../contracts';

export interface LogOptions {
  /** pino level; default 'info' (env GATEHOUSE_LOG_LEVEL overrides) */
  level?: string;
  /** Where lines go: a file descriptor (default 1 = stdout) or a writable stream (tests). */
  destination?: number | NodeJS.WritableStream;
  /** Synchronous writes (tests, CLI one-shots). Default false. */
  sync?: boolean;
}

/** Create the root logger. Call its `flush()` before exiting to write buffered lines. */
/** pino's levels (gateway.log_level's schema lists the same). */
const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export function createLogger(opts: LogOptions = {}): Logger & { flush?: () => void } {
  // an unknown level must not crash the logger before the config load can report it
  const fromEnv = process.env.GATEHOUSE_LOG_LEVEL;
  const level = [fromEnv, opts.level].find((l): l is string => l !== undefined && LEVELS.has(l)) ?? 'info';
  const logger = build(level, opts);
  if (fromEnv !== undefined && !LEVELS.has(fromEnv)) logger.warn({ GATEHOUSE_LOG_LEVEL: fromEnv.slice(0, 40), using: level }, `unknown log level in GATEHOUSE_LOG_LEVEL (one of ${[...LEVELS].join(', ')})`);
  return logger;
}

function build(level: string, opts: LogOptions): Logger & { flush?: () => void } {
  const base = { name: 'gatehouse' };
  if (opts.destination !== undefined && typeof opts.destination !== 'number') {
    return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, opts.destination as pino.DestinationStream);
  }
  const sync = opts.sync ?? false;
  // Asynchronous writes batch themselves: while one write is in flight (on the libuv thread pool),
  // new lines collect and go out together in the next, so a busy gateway makes few large writes and a
  // quiet one writes each line at once. No flush timer: sonic-boom's flush() ends in an fsync, and a
  // timer calling it fsynced stdout five times a second even on an idle gateway.
  const dest = pino.destination({ dest: opts.destination ?? 1, sync, minLength: 0 });
  const logger = pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, dest);
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
