// The rollout panel's logic: steps, traffic shares, actions and the analysis charts' series,
// from rollouts shaped like GET /v1/services/:name/rollout answers.
import { describe, expect, it } from "vitest";
import { analysisCharts, describeStep, isActive, millis, percent, releaseRoles, rolloutActions, stepMarks, trafficShares } from "./rollout-summary.js";
import type { AnalysisSample, Rollout } from "./service-api.js";

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

function rollout(extra: Partial<Rollout> = {}): Rollout {
  return {
    id: "ro-1",
    service: "api",
    strategy: "canary",
    from: "r-aaaaaaaaaaaa",
    to: "r-bbbbbbbbbbbb",
    phase: "progressing",
    step: 0,
    weight: 20,
    actor: "user:admin",
    startedAt: new Date(T0).toISOString(),
    updatedAt: new Date(T0).toISOString(),
    stepStartedAt: new Date(T0).toISOString(),
    ...extra,
  };
}

const sample = (s: number, canaryErrors: number, p99: number): AnalysisSample => ({
  at: T0 + s * 1000,
  canary: { requests: 100, errors: canaryErrors, errorRatio: canaryErrors / 100, p50: p99 / 2, p99 },
  baseline: { requests: 100, errors: 0, errorRatio: 0, p50: 0.01, p99: 0.02 },
});

describe("steps", () => {
  it("says each step in words", () => {
    expect([{ setWeight: 20 }, { pause: 300_000 }, { pause: 1500 }, { pause: "manual" as const }, { analysis: {} }, { match: { headers: { "x-tester": { exact: "1" } } } }].map(describeStep)).toEqual([
      "Set weight 20%",
      "Pause 5 min",
      "Pause 1500 ms",
      "Pause until promoted",
      "Analysis",
      "Match header x-tester",
    ]);
  });

  it("marks the steps passed, the one under way, the one a rollback stopped at, and those to come", () => {
    expect(stepMarks(4, rollout({ step: 1 }))).toEqual(["done", "current", "pending", "pending"]);
    expect(stepMarks(4, rollout({ step: 2, phase: "rolled-back" }))).toEqual(["done", "done", "stopped", "pending"]);
    expect(stepMarks(3, rollout({ step: 3, phase: "succeeded" }))).toEqual(["done", "done", "done"]);
    // Promote --full jumps past every step.
    expect(stepMarks(2, rollout({ step: Number.MAX_SAFE_INTEGER, phase: "promoting" }))).toEqual(["done", "done"]);
  });
});

describe("traffic", () => {
  it("takes the split the gateway applies when there is one", () => {
    const split = { weights: [{ release: "r-b", weight: 0, label: "failed" }, { release: "r-a", weight: 100, label: "stable" }], sticky: false };
    expect(trafficShares(rollout({ phase: "rolled-back" }), split, "r-a")).toEqual([
      { label: "failed", release: "r-b", weight: 0 },
      { label: "stable", release: "r-a", weight: 100 },
    ]);
  });

  it("without a split, a canary under way gives its weight, the baseline the same share, the rest to stable", () => {
    expect(trafficShares(rollout({ weight: 20, baseline: "b-1" }), null, "r-bbbbbbbbbbbb")).toEqual([
      { label: "canary", release: "r-bbbbbbbbbbbb", weight: 20 },
      { label: "baseline", release: "b-1", weight: 20 },
      { label: "stable", release: "r-aaaaaaaaaaaa", weight: 60 },
    ]);
    // Past half, the baseline gets what is left.
    expect(trafficShares(rollout({ weight: 70, baseline: "b-1" }), null, "r-b").map((s) => s.weight)).toEqual([70, 30, 0]);
    expect(trafficShares(rollout({ weight: 20 }), null, "r-b").map((s) => [s.label, s.weight])).toEqual([
      ["canary", 20],
      ["stable", 80],
    ]);
  });

  it("otherwise everything is on the release the service runs", () => {
    expect(trafficShares(rollout({ phase: "succeeded", weight: 100 }), null, "r-b")).toEqual([{ label: "stable", release: "r-b", weight: 100 }]);
    expect(trafficShares(null, null, undefined)).toEqual([]);
  });

  it("names the role of each release's replicas only while a canary runs", () => {
    expect([...releaseRoles(rollout({ baseline: "b-1" }))]).toEqual([
      ["r-bbbbbbbbbbbb", "canary"],
      ["b-1", "baseline"],
      ["r-aaaaaaaaaaaa", "stable"],
    ]);
    expect(releaseRoles(rollout({ phase: "rolled-back" })).size).toBe(0);
    expect(releaseRoles(rollout({ strategy: "rolling" })).size).toBe(0);
  });
});

describe("actions", () => {
  it("offers Promote only where the API accepts it (a pause, an analysis under way), Promote fully and Abort while a canary runs", () => {
    expect(rolloutActions(rollout())).toEqual({ promote: false, promoteFully: true, abort: true });
    expect(rolloutActions(rollout({ phase: "paused" }))).toEqual({ promote: true, promoteFully: true, abort: true });
    expect(rolloutActions(rollout({ pausedUntil: new Date(T0 + 60_000).toISOString() })).promote).toBe(true);
    expect(rolloutActions(rollout({ analysis: { step: 1, run: { startedAt: T0, looks: 1, phase: "Running" }, nextLookAt: new Date(T0).toISOString(), dryRun: false } })).promote).toBe(true);
    expect(rolloutActions(rollout({ phase: "promoting" }))).toEqual({ promote: false, promoteFully: false, abort: true });
    expect(rolloutActions(rollout({ strategy: "rolling", weight: 100 }))).toEqual({ promote: false, promoteFully: false, abort: true });
    for (const phase of ["succeeded", "failed", "rolled-back", "finishing", "switched"] as const) {
      expect(rolloutActions(rollout({ phase })), phase).toEqual({ promote: false, promoteFully: false, abort: false });
      expect(isActive(rollout({ phase }))).toBe(false);
    }
    expect(rolloutActions(null).abort).toBe(false);
  });
});

describe("analysisCharts", () => {
  it("is undefined before the first look", () => {
    expect(analysisCharts(rollout())).toBeUndefined();
    expect(analysisCharts(rollout({ analyses: [{ step: 1, phase: "Inconclusive", reason: "promoted", dryRun: false, startedAt: "", endedAt: "" }] }))).toBeUndefined();
  });

  it("gives each version's error ratio and latency (ms) per look, from the analysis' start, labelled by version and release", () => {
    const charts = analysisCharts(rollout({ analysis: { step: 1, run: { startedAt: T0, looks: 2, phase: "Running" }, nextLookAt: "", dryRun: false, samples: [sample(2, 50, 0.2), sample(4, 60, 0.4)] } }));
    expect(charts?.times).toEqual([T0 / 1000, T0 / 1000 + 2, T0 / 1000 + 4]);
    expect(charts?.errors.map((s) => [s.label, s.values])).toEqual([
      ["canary r-bbbbbbbbbb", [null, 0.5, 0.6]],
      ["baseline r-aaaaaaaaaa", [null, 0, 0]],
    ]);
    expect(charts?.latency.map((s) => s.label)).toEqual(["canary r-bbbbbbbbbb p99", "baseline r-aaaaaaaaaa p99", "canary r-bbbbbbbbbb p50", "baseline r-aaaaaaaaaa p50"]);
    expect(charts?.latency[0]?.values).toEqual([null, 200, 400]);
    expect(charts?.latency[1]?.values).toEqual([null, 20, 20]);
  });

  it("joins the finished analyses and the one under way, each from its own start, leaving out a look out of order", () => {
    const charts = analysisCharts(
      rollout({
        analyses: [
          { step: 1, phase: "Successful", reason: "ok", dryRun: false, startedAt: new Date(T0).toISOString(), endedAt: "", samples: [sample(2, 0, 0.1), sample(4, 0, 0.1)] },
          { step: 2, phase: "Inconclusive", reason: "promoted", dryRun: false, startedAt: new Date(T0 + 5000).toISOString(), endedAt: "" },
        ],
        analysis: { step: 3, run: { startedAt: T0 + 8000, looks: 2, phase: "Running" }, nextLookAt: "", dryRun: false, samples: [sample(10, 5, 0.1), sample(9, 5, 0.1), sample(12, 7, 0.1)] },
      }),
    );
    expect(charts?.times).toEqual([0, 2, 4, 8, 10, 12].map((s) => T0 / 1000 + s));
    expect(charts?.errors[0]?.values).toEqual([null, 0, 0, null, 0.05, 0.07]);
    expect(charts?.latency[0]?.values[3]).toBeNull();
  });

  it("a version without a ratio or a histogram yet has no point", () => {
    const quiet: AnalysisSample = { at: T0 + 1000, canary: { requests: 0, errors: 0 }, baseline: { requests: 3, errors: 0, errorRatio: 0 } };
    const charts = analysisCharts(rollout({ analysis: { step: 1, run: { startedAt: T0, looks: 1, phase: "Running" }, nextLookAt: "", dryRun: false, samples: [quiet] } }));
    expect(charts?.errors.map((s) => s.values)).toEqual([
      [null, null],
      [null, 0],
    ]);
    expect(charts?.latency.every((s) => s.values.every((v) => v === null))).toBe(true);
  });
});

describe("formats", () => {
  it("reads ratios as percent and seconds as milliseconds, a dash without a value", () => {
    expect([percent(0.1234), percent(0), percent(undefined)]).toEqual(["12.34%", "0.00%", "–"]);
    expect([millis(0.2404), millis(undefined)]).toEqual(["240 ms", "–"]);
  });
});
