// Outlier ejection (as Envoy does it): an endpoint that fails `consecutiveFailures` times in a
// row (5xx answers, connect failures, timeouts) leaves the rotation for base × 2^(n-1) ms (n =
// how often it was ejected), capped, and never more than `maxEjectedPercent` of a service's
// endpoints are out at once; at least one always stays.
import type { ServicePolicy } from "@keelson/protocol";

/** The per-endpoint state ejection reads and writes. */
export interface Ejectable {
  consecutiveFailures: number;
  /** Monotonic ms until which it is ejected; 0 when it takes traffic. */
  ejectedUntil: number;
  /** Ejections so far; reset after a long enough healthy spell. */
  timesEjected: number;
  /** When it last came back (monotonic ms), 0 if never ejected. */
  returnedAt: number;
}

export type OutlierEjection = ServicePolicy["outlierEjection"];

export class OutlierDetector {
  /** Endpoints ejected now. */
  ejected = 0;
  /** Earliest `ejectedUntil` among the ejected ones (Infinity when none). */
  nextReturnAt = Number.POSITIVE_INFINITY;

  constructor(readonly config: OutlierEjection) {}

  success(e: Ejectable): void {
    e.consecutiveFailures = 0;
  }

  /**
   * Records a failure of `e`, one of `total` endpoints of its service. Returns true when this
   * ejected it (the caller then rebuilds the service's pick lists). With `mayEject` false the
   * failure is counted but `e` stays in rotation (the last endpoint of a release under a split).
   */
  failure(e: Ejectable, total: number, now: number, mayEject = true): boolean {
    // Answers of requests sent before the ejection still arrive; they change nothing.
    if (e.ejectedUntil > now) return false;
    if (++e.consecutiveFailures < this.config.consecutiveFailures || !mayEject) return false;
    const cap = Math.min(Math.floor((total * this.config.maxEjectedPercent) / 100), total - 1);
    if (this.ejected >= cap) return false;
    // A replica that stayed healthy for a whole maximum ejection time starts from the base again.
    if (e.returnedAt > 0 && now - e.returnedAt >= this.config.maxEjectionMs) e.timesEjected = 0;
    e.timesEjected++;
    const ms = Math.min(this.config.baseEjectionMs * 2 ** Math.min(e.timesEjected - 1, 30), this.config.maxEjectionMs);
    e.ejectedUntil = now + ms;
    e.consecutiveFailures = 0;
    this.ejected++;
    if (e.ejectedUntil < this.nextReturnAt) this.nextReturnAt = e.ejectedUntil;
    return true;
  }

  /**
   * Brings back the endpoints whose ejection is over and recounts the rest (also after the
   * endpoint set changed). Returns true when any came back.
   */
  release(endpoints: readonly Ejectable[], now: number): boolean {
    let returned = false;
    let ejected = 0;
    let next = Number.POSITIVE_INFINITY;
    for (const e of endpoints) {
      if (e.ejectedUntil === 0) continue;
      if (e.ejectedUntil <= now) {
        e.ejectedUntil = 0;
        e.returnedAt = now;
        e.consecutiveFailures = 0;
        returned = true;
      } else {
        ejected++;
        if (e.ejectedUntil < next) next = e.ejectedUntil;
      }
    }
    this.ejected = ejected;
    this.nextReturnAt = next;
    return returned;
  }
}
