// The canary-analysis simulation (bench/canary-sim.mjs) against the targets of issue #6, in CI:
// seeded traffic, simulated time, 1,000 runs per scenario. Decisions, not timings, are asserted.
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain ES module benchmark without types
import { simulateScenario } from "../../bench/canary-sim.mjs";

interface Summary {
  runs: number;
  failedShare: number;
  withinTarget: number | undefined;
  p95: number;
}
type Result = { keelson: Summary; flagger: Summary };
const simulate = simulateScenario as (name: string, runs: number) => Result;

describe("canary analysis on simulated traffic (200 req/s, canary at 10%, baseline errors 0.5%)", () => {
  it("(a) a canary at 5.5% errors is rolled back within 30 s in at least 95% of 1,000 runs", () => {
    const r = simulate("errors", 1000);
    expect(r.keelson.withinTarget).toBeGreaterThanOrEqual(0.95);
    // The Flagger-default loop on the same traffic needs its 5 failed 60 s checks.
    expect(r.flagger.p95).toBeGreaterThanOrEqual(300);
  }, 60_000);

  it("(b) a canary with p99 latency +50% is rolled back within 60 s in at least 90% of 1,000 runs", () => {
    expect(simulate("latency", 1000).keelson.withinTarget).toBeGreaterThanOrEqual(0.9);
  }, 60_000);

  it("(c) identical versions are falsely rolled back in at most 1% of 1,000 runs", () => {
    const r = simulate("aa", 1000);
    expect(r.keelson.runs).toBe(1000);
    expect(r.keelson.failedShare).toBeLessThanOrEqual(0.01);
  }, 60_000);

  it("(d) a canary whose tail alone grew (same median, p99 +50%) is rolled back within 60 s in at least 90% of 1,000 runs", () => {
    const r = simulate("tail", 1000);
    expect(r.keelson.withinTarget).toBeGreaterThanOrEqual(0.9);
    // An absolute p99 limit of 500 ms never sees a p99 of 192 ms.
    expect(r.flagger.failedShare).toBe(0);
  }, 60_000);
});
