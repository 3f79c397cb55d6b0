// Keep-alive connection pools to upstream nodes, shared across snapshots: a reload that keeps a
// node keeps its warm connections. A pool is closed (gracefully) when no snapshot uses it.
import { Pool } from 'undici';

export interface PoolOptions {
  readonly connectTimeoutMs: number;
  readonly size: number;
  readonly idleTimeoutMs: number;
  readonly maxRequestsPerConnection: number;
  /** TLS to an https origin (resolved PEMs); none: Node's defaults (verified against its root CAs). */
  readonly tls?: PoolTls;
}

/**
 * The TLS options of the connections of an https pool. The server name (SNI) is not among them:
 * undici takes it from each request's Host header (never an IP literal), and the certificate is
 * checked against that name, or the node's address when there is none.
 */
export interface PoolTls {
  /** false: the server's certificate is not verified (`tls.verify: false`, logged at build). */
  readonly rejectUnauthorized: boolean;
  /** The CAs that verify the server (PEM), instead of Node's root CAs. */
  readonly ca?: string;
  /** The client certificate and key (PEM) presented to a server that asks for one (mTLS). */
  readonly cert?: string;
  readonly key?: string;
  /** A digest of all of the above: the pool's key holds this, never the key material. */
  readonly digest: string;
}

export class UpstreamPools {
  private readonly pools = new Map<string, { pool: Pool; refs: number }>();

  /** Get (or create) the pool for an origin and take a reference to it. */
  acquire(origin: string, o: PoolOptions): Pool {
    // new TLS material (a rotated client certificate) is a new pool: new connections use it, the
    // old pool's finish their requests and close with the last snapshot that holds it
    const key = `${origin}|${o.connectTimeoutMs}|${o.size}|${o.idleTimeoutMs}|${o.maxRequestsPerConnection}|${o.tls?.digest ?? ''}`;
    let e = this.pools.get(key);
    if (!e) {
      const pool = new Pool(origin, {
        connections: o.size,
        pipelining: 1,
        keepAliveTimeout: o.idleTimeoutMs,
        keepAliveMaxTimeout: Math.max(o.idleTimeoutMs, 1000),
        maxRequestsPerClient: o.maxRequestsPerConnection,
        connect: o.tls === undefined ? { timeout: o.connectTimeoutMs } : { timeout: o.connectTimeoutMs, ...tlsOptions(o.tls) },
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

/** The `tls.connect` options of a pool's TLS (the digest is the pool's, not Node's). */
function tlsOptions(t: PoolTls): { rejectUnauthorized: boolean; ca?: string; cert?: string; key?: string } {
  return { rejectUnauthorized: t.rejectUnauthorized, ...(t.ca === undefined ? {} : { ca: t.ca }), ...(t.cert === undefined ? {} : { cert: t.cert, key: t.key }) };
}
