// The counter stores of limit-count: fixed windows in this gateway's memory, or in Redis (shared by
// every gateway node, counted atomically by a Lua script).
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type Redis from 'ioredis';

/** ioredis, loaded when the first redis-policy counter store is made (local-policy gateways never need it). */
function ioredis(): typeof Redis {
  return (require('ioredis') as { default: typeof Redis }).default;
}
import { withoutNodeCaHint, type Logger } from 'gatehouse-gateway/sdk';

/** One key's window: requests counted so far and when the window ends (ms). */
export interface Window {
  count: number;
  resetAt: number;
}

/**
 * Fixed windows in memory, for one window length. A key's window opens with its first request
 * (as APISIX). No timers: expired windows are dropped in bulk when the store rolls over, every
 * window length, so memory holds at most the keys seen in the last two windows.
 */
export class LocalCounters {
  private current = new Map<string, Window>();
  private previous = new Map<string, Window>();
  private rollAt: number;

  /** @param windowMs window length in milliseconds */
  constructor(
    private readonly windowMs: number,
    now: number,
  ) {
    this.rollAt = now + windowMs;
  }

  /** Count one request under `key` at time `now`; the returned window is live (do not keep it). */
  hit(key: string, now: number): Window {
    if (now >= this.rollAt) this.roll(now);
    let w = this.current.get(key);
    if (w === undefined) {
      // a window opened before the last roll is still in `previous` until it ends
      w = this.previous.get(key);
      if (w === undefined || w.resetAt <= now) {
        w = { count: 0, resetAt: now + this.windowMs };
        this.current.set(key, w);
      }
    } else if (w.resetAt <= now) {
      w.count = 0;
      w.resetAt = now + this.windowMs;
    }
    w.count++;
    return w;
  }

  /** Keys held (live and not yet dropped). */
  get size(): number {
    return this.current.size + this.previous.size;
  }

  // Every window in `current` opened after the last roll, so it has ended by the roll after next:
  // dropping `previous` at a roll never loses a live window.
  private roll(now: number): void {
    if (now >= this.rollAt + this.windowMs) {
      // idle for a whole window: everything has ended
      this.current.clear();
      this.previous.clear();
    } else {
      const emptied = this.previous;
      emptied.clear();
      this.previous = this.current;
      this.current = emptied;
    }
    this.rollAt = now + this.windowMs;
  }
}

/** Where a Redis counter store connects. */
export interface RedisTarget {
  readonly host: string;
  readonly port: number;
  readonly username?: string;
  readonly password?: string;
  readonly database: number;
  readonly timeoutMs: number;
  readonly tls: boolean;
  readonly tlsVerify: boolean;
}

// INCR, and give the key its expiry on the first hit (or if it somehow has none). Atomic: Redis runs
// a script alone, so every gateway node sees one count. Returns { count, ms left in the window }.
const HIT_SCRIPT = `
local n = redis.call('incr', KEYS[1])
local ttl = -1
if n > 1 then ttl = redis.call('pttl', KEYS[1]) end
if ttl < 0 then
  redis.call('pexpire', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return { n, ttl }
`;

type HitClient = Redis & { ghLimitCountHit(key: string, windowMs: number): Promise<[number, number]> };

/** Identity of a Redis target, for sharing one connection per distinct target (the password hashed). */
export function redisTargetId(t: RedisTarget): string {
  const secret = t.password === undefined ? '' : createHash('sha256').update(t.password).digest('hex');
  return `redis:${JSON.stringify([t.host, t.port, t.username ?? '', t.database, t.timeoutMs, t.tls, t.tlsVerify, secret])}`;
}

/**
 * Counters in one Redis server, over one connection (commands are pipelined on it). Connects on the
 * first request. While the connection is down, calls fail at once instead of queueing; it reconnects
 * in the background (every ≤ 1 s). An outage is logged once (and its end), never with the password.
 */
export class RedisCounters {
  private readonly client: HitClient;
  private readonly where: string;
  /** Message of the failure last logged; cleared (and recovery logged) once Redis answers again. */
  private failing: string | undefined;

  constructor(
    t: RedisTarget,
    private readonly logger: Logger,
  ) {
    this.where = `${t.host}:${t.port}/${t.database}`;
    this.client = new (ioredis())({
      host: t.host,
      port: t.port,
      username: t.username,
      password: t.password === '' ? undefined : t.password,
      db: t.database,
      tls: t.tls ? { servername: isIP(t.host) === 0 ? t.host : undefined, rejectUnauthorized: t.tlsVerify } : undefined,
      connectTimeout: t.timeoutMs,
      commandTimeout: t.timeoutMs,
      lazyConnect: true,
      // a command in flight when the connection drops fails at once (the request decides: 500 or allow)
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
      disableClientInfo: true,
    }) as HitClient;
    this.client.defineCommand('ghLimitCountHit', { numberOfKeys: 1, lua: HIT_SCRIPT });
    this.client.on('error', (err: Error) => this.failed(err));
    this.client.on('ready', () => this.recovered());
  }

  /**
   * Count one request under `key` in a window of `windowMs`.
   * @returns [requests counted in the window, ms until it ends]
   * @throws Error when Redis cannot answer (down, timed out, auth refused)
   */
  hit(key: string, windowMs: number): Promise<[number, number]> {
    // known down: fail now rather than queue behind the reconnect
    if (this.client.status === 'reconnecting') return Promise.reject(new Error(this.failing ?? 'redis connection lost, reconnecting'));
    return this.client.ghLimitCountHit(key, windowMs);
  }

  /** Log the first failure of an outage; later ones until recovery are not logged again. */
  failed(err: Error): void {
    if (this.failing !== undefined) return;
    // a TLS failure's text without Node 24's --use-system-ca hint, as on Node 20 and 22 (redis_ssl_verify is the setting here)
    this.failing = withoutNodeCaHint(err.message);
    this.logger.error({ redis: this.where, err: this.failing }, 'limit-count: redis unavailable; its routes answer 500, or let requests through where allow_degradation is true');
  }

  /** Note that Redis answers again (logged once, after failures). */
  recovered(): void {
    if (this.failing === undefined) return;
    this.failing = undefined;
    this.logger.info({ redis: this.where }, 'limit-count: redis available again');
  }

  /** True between a failure and the next success. */
  get isFailing(): boolean {
    return this.failing !== undefined;
  }

  /** Close the connection (gateway close). */
  async close(): Promise<void> {
    this.client.disconnect();
  }
}
