// Keep-alive connection pools to upstream nodes, shared across snapshots: a reload that keeps a
// node keeps its warm connections. A pool is closed (gracefully) when no snapshot uses it.
import { Pool } from 'undici';

export interface PoolOptions {
  readonly connectTimeoutMs: number;
  readonly size: number;
  readonly idleTimeoutMs: number;
  readonly maxRequestsPerConnection: number;
}

export class UpstreamPools {
  private readonly pools = new Map<string, { pool: Pool; refs: number }>();

  /** Get (or create) the pool for an origin and take a reference to it. */
  acquire(origin: string, o: PoolOptions): Pool {
    const key = `${origin}|${o.connectTimeoutMs}|${o.size}|${o.idleTimeoutMs}|${o.maxRequestsPerConnection}`;
    let e = this.pools.get(key);
    if (!e) {
      const pool = new Pool(origin, {
        connections: o.size,
        pipelining: 1,
        keepAliveTimeout: o.idleTimeoutMs,
        keepAliveMaxTimeout: Math.max(o.idleTimeoutMs, 1000),
        maxRequestsPerClient: o.maxRequestsPerConnection,
        connect: { timeout: o.connectTimeoutMs },
        // per-request timeouts are set at dispatch from the route's upstream config
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      e = { pool, refs: 0 };
      this.pools.set(key, e);
      (pool as any).__ghKey = key;
    }
    e.refs++;
    return e.pool;
  }

  /** Take one more reference to a pool this owns (a snapshot that keeps an upstream of the one before). */
  retain(pool: Pool): void {
    const e = this.pools.get((pool as any).__ghKey as string);
    if (e && e.pool === pool) e.refs++;
  }

  /** Drop a reference; the last one closes the pool after its in-flight requests finish. */
  release(pool: Pool): void {
    const key = (pool as any).__ghKey as string;
    const e = this.pools.get(key);
    if (!e || e.pool !== pool) return;
    if (--e.refs === 0) {
      this.pools.delete(key);
      pool.close().catch(() => undefined);
    }
  }

  /** Number of open pools (tests and metrics). */
  get size(): number {
    return this.pools.size;
  }

  /** Close every pool; in-flight requests finish first unless `force`. */
  async closeAll(force = false): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((e) => (force ? e.pool.destroy() : e.pool.close()).catch(() => undefined)));
  }
}
