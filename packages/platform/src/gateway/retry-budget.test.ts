// Tests for the retry budget: percent of requests plus a floor, over a sliding window.
import { describe, expect, it } from "vitest";
import { RetryBudget } from "./retry-budget.js";

describe("RetryBudget", () => {
  it("allows the floor with no traffic, then 20% of the requests on top", () => {
    const budget = new RetryBudget({ budgetPercent: 20, minPerSecond: 1 });
    let granted = 0;
    for (let i = 0; i < 50; i++) if (budget.tryRetry(0)) granted++;
    // 1 per second over a 10 s window.
    expect(granted).toBe(10);
    for (let i = 0; i < 100; i++) budget.recordRequest(100);
    for (let i = 0; i < 50; i++) if (budget.tryRetry(100)) granted++;
    expect(granted).toBe(30);
    expect(budget.snapshot(100)).toEqual({ requests: 100, retries: 30, available: 0 });
  });

  it("refills as old requests and retries slide out of the window", () => {
    const budget = new RetryBudget({ budgetPercent: 10, minPerSecond: 0, windowMs: 1_000 });
    for (let i = 0; i < 100; i++) budget.recordRequest(0);
    let granted = 0;
    while (budget.tryRetry(0)) granted++;
    expect(granted).toBe(10);
    // One window later the old requests are gone too: no traffic, no floor, no retries.
    expect(budget.tryRetry(1_000)).toBe(false);
    for (let i = 0; i < 50; i++) budget.recordRequest(1_000);
    granted = 0;
    while (budget.tryRetry(1_000)) granted++;
    expect(granted).toBe(5);
  });

  it("never grants more than percent × requests + floor, however the calls interleave", () => {
    const budget = new RetryBudget({ budgetPercent: 20, minPerSecond: 1 });
    let retries = 0;
    for (let i = 0; i < 1_000; i++) {
      budget.recordRequest(i);
      for (let k = 0; k < 3; k++) if (budget.tryRetry(i)) retries++;
    }
    expect(retries).toBe(0.2 * 1_000 + 10);
  });
});
