// The retry budget of a service (as Linkerd and Finagle do it): over a sliding window, retries
// may add at most `budgetPercent` of the requests plus a small floor per second, so that when
// every replica fails, retries cannot multiply the load on a service that is already down.
import { RollingWindow } from "./rolling-window.js";

export interface RetryBudgetOptions {
  /** Retries may add at most this percent of the requests in the window... */
  budgetPercent: number;
  /** ...plus this many retries per second of window, so quiet services can still retry. */
  minPerSecond: number;
  /** Default 10 s, in 10 buckets. */
  windowMs?: number;
}

const REQUESTS = 0;
const RETRIES = 1;

export class RetryBudget {
  private readonly window: RollingWindow;
  private readonly ratio: number;
  private readonly floor: number;

  constructor(options: RetryBudgetOptions) {
    const windowMs = options.windowMs ?? 10_000;
    this.window = new RollingWindow({ buckets: 10, bucketMs: windowMs / 10, fields: 2 });
    this.ratio = options.budgetPercent / 100;
    this.floor = options.minPerSecond * (windowMs / 1000);
  }

  /** Counts a first attempt (retries are not requests). */
  recordRequest(now: number): void {
    this.window.data[this.window.offset(now) + REQUESTS]!++;
  }

  /** Takes one retry from the budget; false (and nothing taken) when it is used up. */
  tryRetry(now: number): boolean {
    const retries = this.window.sum(RETRIES, now);
    if (retries + 1 > this.window.sum(REQUESTS, now) * this.ratio + this.floor) return false;
    this.window.data[this.window.offset(now) + RETRIES]!++;
    return true;
  }

  /** Requests and retries in the window and how many more retries it allows now. */
  snapshot(now: number): { requests: number; retries: number; available: number } {
    const requests = this.window.sum(REQUESTS, now);
    const retries = this.window.sum(RETRIES, now);
    return { requests, retries, available: Math.max(0, Math.floor(requests * this.ratio + this.floor - retries)) };
  }
}
