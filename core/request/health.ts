// Passive health checks: upstream nodes that keep failing real requests are skipped for a cool-down period.

/** Tuning for {@link PassiveHealth}. */
export interface PassiveHealthOptions {
  /** consecutive failures that mark a node unhealthy; default 3 */
  failures?: number;
  /** seconds an unhealthy node is skipped; default 10 */
  cooldown?: number;
  /** clock in ms, default Date.now */
  now?: () => number;
}

interface NodeState {
  /** consecutive failures while closed */
  fails: number;
  /** whether the node has tripped since its last success (open or half-open) */
  tripped: boolean;
  /** end of the current / last cool-down in ms; meaningful only when tripped */
  until: number;
}

/**
 * Circuit breaker per node key, fed by the proxy's request outcomes.
 *
 * - closed: healthy; `failures` consecutive failures open it for `cooldown` seconds.
 * - open: `isHealthy` is false until the cool-down ends.
 * - half-open: after the cool-down the node is healthy again and gets traffic (concurrency is not limited);
 *   its next failure re-opens it at once, its next success closes it (full reset).
 *
 * Any success resets the node completely. A failure reported while the node is still cooling down
 * (e.g. from a request that started before it tripped) does not extend the cool-down.
 * Only nodes with failures since their last success are kept in memory. Every call is O(1).
 */
export class PassiveHealth {
  /** bound version of isHealthy for passing to Balancer.pick */
  readonly check: (key: string) => boolean;

  private readonly threshold: number;
  private readonly cooldownMs: number;
  private readonly now: () => number;
  private readonly states = new Map<string, NodeState>();

  /** @throws RangeError when `failures` is not a positive integer or `cooldown` is negative / not finite. */
  constructor(opts: PassiveHealthOptions = {}) {
    const failures = opts.failures ?? 3;
    const cooldown = opts.cooldown ?? 10;
    if (!Number.isSafeInteger(failures) || failures < 1) {
      throw new RangeError(`passive health: failures must be a positive integer, got ${String(failures)}`);
    }
    if (!Number.isFinite(cooldown) || cooldown < 0) {
      throw new RangeError(`passive health: cooldown must be a non-negative number of seconds, got ${String(cooldown)}`);
    }
    this.threshold = failures;
    this.cooldownMs = cooldown * 1000;
    this.now = opts.now ?? Date.now;
    this.check = (key: string) => this.isHealthy(key);
  }

  /** False while the node is cooling down; true otherwise (including half-open). */
  isHealthy(key: string): boolean {
    const s = this.states.get(key);
    return s === undefined || !s.tripped || this.now() >= s.until;
  }

  /** Record a failed request (connect error, timeout, 5xx as the caller defines it) on a node. */
  reportFailure(key: string): void {
    const s = this.states.get(key);
    if (s === undefined) {
      const tripped = this.threshold === 1;
      this.states.set(key, { fails: 1, tripped, until: tripped ? this.now() + this.cooldownMs : 0 });
      return;
    }
    if (s.tripped) {
      const now = this.now();
      // Half-open trial failed: straight back into cool-down. Still cooling down: leave it as it is.
      if (now >= s.until) s.until = now + this.cooldownMs;
      return;
    }
    if (++s.fails >= this.threshold) {
      s.tripped = true;
      s.until = this.now() + this.cooldownMs;
    }
  }

  /** Record a successful request on a node: clears its failure count and any cool-down. */
  reportSuccess(key: string): void {
    this.states.delete(key);
  }
}
