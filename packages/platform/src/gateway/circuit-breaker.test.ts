// Tests for the breaker's state machine with a hand-driven clock.
import { describe, expect, it } from "vitest";
import { ADMITTED, CircuitBreaker, PROBE, REJECTED } from "./circuit-breaker.js";

const config = { failureRatio: 0.5, minRequests: 10, windowMs: 10_000, openMs: 1_000, halfOpenProbes: 2 };

function tripped(now = 0): CircuitBreaker {
  const b = new CircuitBreaker(config);
  for (let i = 0; i < 10; i++) b.record(b.admit(now), false, now);
  return b;
}

describe("CircuitBreaker", () => {
  it("stays closed below the minimum request count, however many fail", () => {
    const b = new CircuitBreaker(config);
    for (let i = 0; i < 9; i++) b.record(b.admit(0), false, 0);
    expect(b.state(0)).toBe("closed");
    expect(b.admit(0)).toBe(ADMITTED);
  });

  it("opens when the failure ratio in the window is reached, not before", () => {
    const b = new CircuitBreaker(config);
    for (let i = 0; i < 6; i++) b.record(b.admit(0), true, 0);
    for (let i = 0; i < 5; i++) b.record(b.admit(0), false, 0);
    // 5 of 11 failed: below one half.
    expect(b.state(0)).toBe("closed");
    b.record(b.admit(0), false, 0);
    expect(b.state(0)).toBe("open");
    expect(b.admit(10)).toBe(REJECTED);
    expect(b.retryAfterMs(10)).toBe(1_000);
    expect(b.snapshot(500)).toMatchObject({ state: "open", opened: 1, retryAfterMs: 500 });
  });

  it("forgets failures that slid out of the window", () => {
    const b = new CircuitBreaker(config);
    for (let i = 0; i < 9; i++) b.record(b.admit(0), false, 0);
    for (let i = 0; i < 9; i++) b.record(b.admit(11_000), true, 11_000);
    b.record(b.admit(11_000), false, 11_000);
    expect(b.state(11_000)).toBe("closed");
  });

  it("half-opens after openMs, lets one probe through at a time, and closes after enough successes", () => {
    const b = tripped();
    expect(b.state(999)).toBe("open");
    expect(b.state(1_000)).toBe("half-open");
    expect(b.admit(1_000)).toBe(PROBE);
    expect(b.admit(1_001)).toBe(REJECTED);
    b.record(PROBE, true, 1_010);
    expect(b.state(1_010)).toBe("half-open");
    expect(b.admit(1_010)).toBe(PROBE);
    b.record(PROBE, true, 1_020);
    expect(b.state(1_020)).toBe("closed");
    expect(b.admit(1_020)).toBe(ADMITTED);
    // The old failures are gone: one new failure does not reopen it.
    b.record(ADMITTED, false, 1_030);
    expect(b.state(1_030)).toBe("closed");
  });

  it("reopens on a failed probe, and a probe that ended without a verdict frees the slot", () => {
    const b = tripped();
    expect(b.admit(1_000)).toBe(PROBE);
    b.abandon(PROBE);
    expect(b.admit(1_000)).toBe(PROBE);
    b.record(PROBE, false, 1_100);
    expect(b.state(1_100)).toBe("open");
    expect(b.admit(1_500)).toBe(REJECTED);
    expect(b.admit(2_100)).toBe(PROBE);
    expect(b.opened).toBe(2);
  });

  it("ignores late answers of requests admitted before it opened", () => {
    const b = tripped();
    b.record(ADMITTED, true, 10);
    b.record(ADMITTED, false, 10);
    expect(b.snapshot(10)).toMatchObject({ state: "open", requests: 0, failures: 0 });
  });
});
