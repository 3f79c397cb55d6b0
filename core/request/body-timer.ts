// nginx's client_body_timeout: how long the gateway waits for the next piece of a request body it
// is reading. Only time spent waiting on the client counts: while the gateway itself holds the
// client back (the upstream is slow to take the body, the request waits for an upstream
// connection), the client is not late.

/**
 * One request body's read timer. `wait()` when the gateway wants bytes, `progress()` for each chunk,
 * `hold()` when the gateway stops reading (backpressure), `stop()` when the body is over. One timer
 * per body, re-armed only when it fires (a chunk costs a clock read, not a timer).
 */
export class BodyTimer {
  private timer: NodeJS.Timeout | null = null;
  private last = 0;
  private waiting = false;

  constructor(private readonly ms: number, private readonly now: () => number, private readonly onTimeout: () => void) {}

  /** The gateway is reading: the client has `ms` from now, and from each chunk, to send more. */
  wait(): void {
    if (this.waiting) return;
    this.waiting = true;
    this.last = this.now();
    if (this.timer === null) this.arm(this.ms);
  }

  /** A chunk arrived (at `at`, the clock's now). */
  progress(at: number = this.now()): void {
    this.last = at;
  }

  /** The gateway stopped reading: the client is not waited on until the next `wait()`. */
  hold(): void {
    this.waiting = false;
  }

  /** The body is over (ended, refused, or the request is gone). */
  stop(): void {
    this.waiting = false;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.check, ms);
    this.timer.unref();
  }

  private readonly check = (): void => {
    this.timer = null;
    if (!this.waiting) return;
    const idle = this.now() - this.last;
    if (idle >= this.ms) {
      this.waiting = false;
      this.onTimeout();
    } else this.arm(this.ms - idle);
  };
}
