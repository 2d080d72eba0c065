// The autoscaler simulation (bench/autoscale-sim.mjs) against its targets, in CI: the real
// createAutoscaler on an injected clock, simulated replicas and load, 10 seeded runs per
// scenario, each beside a reference run under Kubernetes HPA defaults. Decisions, not timings.
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain ES module benchmark without types
import { simulateScenario } from "../../bench/autoscale-sim.mjs";

interface Step {
  reaction: { p50: number; max: number; missed: number };
  full: { p50: number; max: number };
  peak: { p50: number; max: number };
}
interface Noise {
  changes: { p50: number; max: number };
  perWindow: { mean: number; max: number };
}
const simulate = simulateScenario as <T>(name: string, runs: number) => Promise<{ runs: number; keelson: T; hpa: T }>;

describe("autoscaler on a simulated service (replicas of 20 concurrent requests, 100 ms each, starting in 0.8 s)", () => {
  it("(1) after a step to 5x load, extra replicas serve within 10 s, far sooner than under HPA defaults", async () => {
    const r = await simulate<Step>("step", 10);
    expect(r.keelson.reaction.missed).toBe(0);
    expect(r.keelson.reaction.max).toBeLessThan(10);
    expect(r.hpa.reaction.missed).toBe(0);
    // The reference needs its 30 s metric delay before it sees the step at all.
    expect(r.hpa.reaction.p50).toBeGreaterThan(30);
    expect(r.keelson.reaction.p50 / r.hpa.reaction.p50).toBeLessThan(0.25);
    // Everything needed (10 replicas) serves sooner too, without running away to max.
    expect(r.keelson.full.max).toBeLessThan(r.hpa.full.p50);
    expect(r.keelson.peak.max).toBeLessThanOrEqual(15);
  }, 120_000);

  it("(2) under steady load with ±20% noise for 30 minutes, at most 1 replica-count change per scale-down window", async () => {
    const r = await simulate<Noise>("noise", 10);
    expect(r.runs).toBe(10);
    expect(r.keelson.perWindow.max).toBeLessThanOrEqual(1);
    expect(r.hpa.perWindow.max).toBeLessThanOrEqual(1);
  }, 120_000);
});
