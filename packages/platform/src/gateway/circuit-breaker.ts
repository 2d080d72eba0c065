// The circuit breaker of a service: closed until `failureRatio` of the requests in a sliding
// window failed (with at least `minRequests` of them), then open (answering at once, without
// touching the service) for `openMs`, then half-open: probes go through one at a time, and
// `halfOpenProbes` successes in a row close it while any failure opens it again.
import type { ServicePolicy } from "@keelson/protocol";
import { RollingWindow } from "./rolling-window.js";

export type CircuitBreakerConfig = NonNullable<ServicePolicy["circuitBreaker"]>;
export type BreakerState = "closed" | "open" | "half-open";

/** What `admit` answers. */
export const ADMITTED = 1;
export const PROBE = 2;
export const REJECTED = 0;
export type Admission = typeof ADMITTED | typeof PROBE | typeof REJECTED;

const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;
const REQUESTS = 0;
const FAILURES = 1;

export class CircuitBreaker {
  private code: typeof CLOSED | typeof OPEN | typeof HALF_OPEN = CLOSED;
  private openedAt = 0;
  private probing = false;
  private probeSuccesses = 0;
  /** Times it opened, for metrics. */
  opened = 0;
  private readonly window: RollingWindow;

  constructor(readonly config: CircuitBreakerConfig) {
    this.window = new RollingWindow({ buckets: 10, bucketMs: config.windowMs / 10, fields: 2 });
  }

  /** Whether a request may go to the service now; a PROBE must be reported with `record` or `abandon`. */
  admit(now: number): Admission {
    if (this.code === CLOSED) return ADMITTED;
    if (this.code === OPEN) {
      if (now - this.openedAt < this.config.openMs) return REJECTED;
      this.code = HALF_OPEN;
      this.probeSuccesses = 0;
      this.probing = false;
    }
    if (this.probing) return REJECTED;
    this.probing = true;
    return PROBE;
  }

  /** The outcome of a request `admit` let through. */
  record(admission: Admission, success: boolean, now: number): void {
    if (admission === PROBE) {
      this.probing = false;
      if (this.code !== HALF_OPEN) return;
      if (!success) this.open(now);
      else if (++this.probeSuccesses >= this.config.halfOpenProbes) this.close();
      return;
    }
    // Answers of requests admitted before it opened do not count twice.
    if (this.code !== CLOSED || admission !== ADMITTED) return;
    const o = this.window.offset(now);
    this.window.data[o + REQUESTS]!++;
    if (success) return;
    this.window.data[o + FAILURES]!++;
    const requests = this.window.sum(REQUESTS, now);
    if (requests >= this.config.minRequests && this.window.sum(FAILURES, now) >= this.config.failureRatio * requests) this.open(now);
  }

  /** A request that was let through ended without a verdict (the client left): frees the probe slot. */
  abandon(admission: Admission): void {
    if (admission === PROBE) this.probing = false;
  }

  state(now: number): BreakerState {
    if (this.code === CLOSED) return "closed";
    if (this.code === HALF_OPEN || now - this.openedAt >= this.config.openMs) return "half-open";
    return "open";
  }

  /** How long a rejected client should wait before trying again (ms, at least 1 s). */
  retryAfterMs(now: number): number {
    return Math.max(1_000, this.code === OPEN ? this.openedAt + this.config.openMs - now : 0);
  }

  snapshot(now: number): { state: BreakerState; requests: number; failures: number; opened: number; retryAfterMs?: number } {
    const state = this.state(now);
    return {
      state,
      requests: this.window.sum(REQUESTS, now),
      failures: this.window.sum(FAILURES, now),
      opened: this.opened,
      ...(state === "open" ? { retryAfterMs: this.openedAt + this.config.openMs - now } : {}),
    };
  }

  private open(now: number): void {
    this.code = OPEN;
    this.openedAt = now;
    this.opened++;
    this.window.reset();
  }

  private close(): void {
    this.code = CLOSED;
    this.window.reset();
  }
}
