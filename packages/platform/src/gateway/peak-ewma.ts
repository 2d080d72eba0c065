// Peak-EWMA latency estimate of one endpoint, as Linkerd's balancer keeps it (tower's PeakEwma):
// a slower response raises the estimate at once (the peak), faster ones pull it down with a
// time-based exponential decay, and with no responses it decays toward zero so an idle
// endpoint becomes attractive again.

/** Linkerd's defaults: a 30 ms first guess, decaying with a 10 s time constant. */
export const DEFAULT_RTT_MS = 30;
export const DEFAULT_DECAY_MS = 10_000;

export class PeakEwma {
  private estimate: number;
  private stamp: number;

  constructor(
    now: number,
    private readonly decayMs = DEFAULT_DECAY_MS,
    initialMs = DEFAULT_RTT_MS,
  ) {
    this.estimate = initialMs;
    this.stamp = now;
  }

  /** Records the latency of one response. */
  observe(rttMs: number, now: number): void {
    if (rttMs > this.estimate) {
      this.estimate = rttMs;
    } else {
      const decay = Math.exp(-Math.max(0, now - this.stamp) / this.decayMs);
      this.estimate = this.estimate * decay + rttMs * (1 - decay);
    }
    this.stamp = now;
  }

  /** The estimate now (decayed toward zero since the last update), in ms. */
  value(now: number): number {
    const elapsed = now - this.stamp;
    if (elapsed > 0) {
      this.estimate *= Math.exp(-elapsed / this.decayMs);
      this.stamp = now;
    }
    return this.estimate;
  }
}
