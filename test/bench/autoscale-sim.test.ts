// The autoscaler simulation (bench/autoscale-sim.mjs) against its targets, in CI: the real
// createAutoscaler on an injected clock, simulated replicas and load, 10 seeded runs per
// scenario, each beside a reference run under Kubernetes HPA defaults. Decisions, not timings.
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain ES module benchmark without types
import { SCALE_DOWN_WINDOW_S, measureFlapping, simulateRun, simulateScenario } from "../../bench/autoscale-sim.mjs";

interface Step {
  reaction: { p50: number; max: number; missed: number };
  full: { p50: number; max: number };
  peak: { p50: number; max: number };
}
interface Flaps {
  total: number;
  runs: number;
  minGapS: number | undefined;
}
interface Noise {
  changes: { p50: number; max: number };
  perWindow: { mean: number; max: number };
  /** A scale-up undone by a scale-down, and the other way round. */
  upDown: Flaps;
  downUp: Flaps;
}
interface RunFlapping {
  maxPerWindow: number;
  upDown: { count: number; minGapS: number | undefined };
  downUp: { count: number; minGapS: number | undefined };
}
const simulate = simulateScenario as <T>(name: string, runs: number) => Promise<{ runs: number; keelson: T; hpa: T }>;
const simulateOne = simulateRun as (name: string, controller: string, seed: number, autoscale?: Record<string, unknown>) => Promise<RunFlapping & { changes: number }>;
const flapping = measureFlapping as (changes: Array<{ atMs: number; from: number; to: number }>, windowMs: number) => RunFlapping;
const WINDOW_S = SCALE_DOWN_WINDOW_S as number;

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

  it("(2) under steady load with ±20% noise for 30 minutes, at most 1 replica-count change in any scale-down window", async () => {
    const r = await simulate<Noise>("noise", 10);
    expect(r.runs).toBe(10);
    expect(r.keelson.perWindow.max).toBeLessThanOrEqual(1);
    expect(r.hpa.perWindow.max).toBeLessThanOrEqual(1);
    for (const x of [r.keelson, r.hpa]) expect(x.upDown.minGapS ?? Infinity).toBeGreaterThanOrEqual(WINDOW_S);
  }, 120_000);

  it("(3) with noise at the tolerance edge, no scale-up is undone within the scale-down window (and the check catches it when the window is off)", async () => {
    const r = await simulate<Noise>("edge", 10);
    // The scenario does move the count both ways: there are flaps to measure.
    expect(r.keelson.upDown.total).toBeGreaterThan(0);
    expect(r.keelson.upDown.minGapS).toBeGreaterThanOrEqual(WINDOW_S);
    expect(r.hpa.upDown.minGapS ?? Infinity).toBeGreaterThanOrEqual(WINDOW_S);
    // A scale-down undone is bounded by the load alone (no scale-up stabilization, as HPA's
    // default): reported in docs/benchmarks.md, not a target.
    // Without scale-down stabilization the same load flaps within seconds.
    const unstable = await simulateOne("edge", "keelson", 1, { scaleDown: { stabilization: 0 } });
    expect(unstable.upDown.minGapS).toBeLessThan(WINDOW_S);
    expect(unstable.maxPerWindow).toBeGreaterThan(3);
  }, 120_000);
});

describe("measureFlapping", () => {
  it("counts changes in any window, not in fixed rounds, and tells the two kinds of flap apart", () => {
    // 299 s and 301 s fall in two fixed 300 s rounds (one change each) but in one sliding window.
    const close = [
      { atMs: 299_000, from: 8, to: 9 },
      { atMs: 301_000, from: 9, to: 8 },
    ];
    expect(flapping(close, 300_000)).toEqual({ maxPerWindow: 2, upDown: { count: 1, minGapS: 2 }, downUp: { count: 0, minGapS: undefined } });
    const trail = [
      { atMs: 0, from: 10, to: 12 },
      { atMs: 400_000, from: 12, to: 11 },
      { atMs: 404_000, from: 11, to: 10 },
      { atMs: 600_000, from: 10, to: 12 },
      { atMs: 1_000_000, from: 12, to: 11 },
    ];
    expect(flapping(trail, 300_000)).toEqual({ maxPerWindow: 3, upDown: { count: 2, minGapS: 400 }, downUp: { count: 1, minGapS: 196 } });
    expect(flapping([], 300_000)).toEqual({ maxPerWindow: 0, upDown: { count: 0, minGapS: undefined }, downUp: { count: 0, minGapS: undefined } });
  });
});
