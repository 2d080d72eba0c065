// The token bucket of a route's rate limit: `rps` tokens a second, at most `burst` saved up; a
// request takes one or is refused (429). Refilled lazily on use, so an idle route costs nothing.

export class TokenBucket {
  private tokens: number;
  private stamp: number;

  constructor(
    readonly rps: number,
    readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.stamp = now;
  }

  /** Takes a token; false when none is left. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until the next token. */
  retryAfterMs(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : ((1 - this.tokens) / this.rps) * 1000;
  }

  private refill(now: number): void {
    const elapsed = now - this.stamp;
    if (elapsed <= 0) return;
    this.stamp = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rps) / 1000);
  }
}
