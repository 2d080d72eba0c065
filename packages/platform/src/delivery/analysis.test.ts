import { describe, expect, it } from "vitest";
import { parseManifest } from "../manifest/index.js";
import { analysisSettings, DEFAULT_ANALYSIS, judge, startAnalysis, type AnalysisRun, type AnalysisSettings, type VersionTotals } from "./analysis.js";
import { logMixture, mannWhitney, normalQuantile, oneSampleRateUpdate, rejects, twoSampleRateUpdate, wilson } from "./analysis-stats.js";

const BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, Infinity];

/** Cumulative buckets with `n` requests all in the bucket bounded by `le`. */
function buckets(counts: Record<number, number>): Array<{ le: number; count: number }> {
  let sum = 0;
  return BOUNDS.map((le) => ({ le, count: (sum += counts[le] ?? 0) }));
}

describe("analysis statistics", () => {
  it("normalQuantile matches known values", () => {
    expect(normalQuantile(0.5)).toBeCloseTo(0, 9);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 5);
    expect(normalQuantile(0.999)).toBeCloseTo(3.090232, 5);
    expect(normalQuantile(0.001)).toBeCloseTo(-3.090232, 5);
    expect(normalQuantile(0)).toBe(-Infinity);
  });

  it("the two-sample mixture grows with canary-only failures and shrinks when failures are shared evenly", () => {
    let lr = twoSampleRateUpdate(undefined, { n: 100, x: 10 }, { n: 100, x: 0 });
    expect(logMixture(lr)).toBeGreaterThan(Math.log(10));
    lr = twoSampleRateUpdate(undefined, { n: 100, x: 5 }, { n: 100, x: 5 });
    expect(logMixture(lr)).toBeLessThan(0);
    // No failures at all: no evidence either way.
    expect(logMixture(twoSampleRateUpdate(undefined, { n: 100, x: 0 }, { n: 100, x: 0 }))).toBe(0);
    // Twice the canary's traffic explains twice its failures.
    const fair = twoSampleRateUpdate(undefined, { n: 200, x: 8 }, { n: 100, x: 4 });
    expect(rejects(fair, 0.01)).toBe(false);
  });

  it("the one-sample guard fires only when the rate is clearly above the limit", () => {
    expect(rejects(oneSampleRateUpdate(undefined, 0.01, { n: 1000, x: 60 }), 0.01)).toBe(true);
    expect(rejects(oneSampleRateUpdate(undefined, 0.01, { n: 1000, x: 12 }), 0.01)).toBe(false);
    expect(rejects(oneSampleRateUpdate(undefined, 0.01, { n: 20, x: 1 }), 0.01)).toBe(false);
  });

  it("Mann-Whitney: AUC and a tie-corrected z over histograms", () => {
    const slower = mannWhitney([0, 10, 90], [90, 10, 0]);
    expect(slower.auc).toBeCloseTo((10 * 90 + 0.5 * 100 + 90 * 100 + 0.5 * 0) / 10_000, 6);
    expect(slower.z).toBeGreaterThan(10);
    const same = mannWhitney([30, 40, 30], [30, 40, 30]);
    expect(same.auc).toBeCloseTo(0.5, 9);
    expect(same.z).toBeCloseTo(0, 9);
    // The margin shifts the null: an AUC of 0.5 sits below 0.55.
    expect(mannWhitney([30, 40, 30], [30, 40, 30], 0.05).z).toBeLessThan(0);
    expect(mannWhitney([], [1]).z).toBe(0);
  });

  it("Wilson interval brackets the proportion", () => {
    const w = wilson(5, 100, 1.96);
    expect(w.low).toBeCloseTo(0.0215, 3);
    expect(w.high).toBeCloseTo(0.1118, 3);
  });
});

describe("judge", () => {
  const settings: AnalysisSettings = { ...DEFAULT_ANALYSIS, durationMs: 30_000, intervalMs: 5_000 };
  /** Feeds looks every 5 s with totals from `at(k)`; returns the run when it stops or after `looks`. */
  function feed(at: (k: number) => { canary?: VersionTotals; baseline?: VersionTotals; error?: string; custom?: Record<string, number | undefined> }, s = settings, looks = 20): AnalysisRun {
    let run = startAnalysis(0);
    for (let k = 1; k <= looks && run.phase === "Running"; k++) run = judge(run, { at: k * 5000, ...at(k) }, s);
    return run;
  }

  it("fails a canary with many more errors than its baseline, with the evidence", () => {
    const run = feed((k) => ({ canary: { requests: 100 * k, errors: 6 * k }, baseline: { requests: 100 * k, errors: Math.floor(k / 2) } }));
    expect(run.phase).toBe("Failed");
    expect(run.reason).toMatch(/^error ratio: canary 6\.00% \(\d+\/\d+\) vs baseline/);
    expect(run.evidence?.checks.find((c) => c.name === "error ratio")?.status).toBe("fail");
    expect(run.looks).toBeLessThanOrEqual(3);
  });

  it("passes identical versions once the duration is over, and says it judged", () => {
    const b = (k: number) => buckets({ 0.025: 40 * k, 0.05: 50 * k, 0.1: 10 * k });
    const run = feed((k) => ({ canary: { requests: 100 * k, errors: k % 2, buckets: b(k) }, baseline: { requests: 100 * k, errors: k % 2, buckets: b(k) } }));
    expect(run.phase).toBe("Successful");
    expect(run.evidence?.elapsedMs).toBe(30_000);
    expect(run.reason).toMatch(/no check failed in 30 s/);
  });

  it("fails a canary whose latency moved up a bucket", () => {
    const run = feed((k) => ({
      canary: { requests: 100 * k, errors: 0, buckets: buckets({ 0.05: 50 * k, 0.1: 40 * k, 0.25: 10 * k }) },
      baseline: { requests: 100 * k, errors: 0, buckets: buckets({ 0.025: 40 * k, 0.05: 50 * k, 0.1: 10 * k }) },
    }));
    expect(run.phase).toBe("Failed");
    expect(run.reason).toMatch(/latency: .*Mann-Whitney U=\d+, P\(canary slower\)=0\.\d+, z=\d+\.\d+, fails above \d\.\d+/);
  });

  it("is Inconclusive with too little traffic, and Error after three failed reads in a row", () => {
    const quiet = feed(() => ({ canary: { requests: 10, errors: 0 }, baseline: { requests: 12, errors: 0 } }));
    expect(quiet.phase).toBe("Inconclusive");
    expect(quiet.reason).toMatch(/too little traffic to judge in 30 s: canary 10, baseline 12 requests \(each version needs 50\)/);
    const flaky = feed((k) => (k % 2 === 0 ? { error: "cannot connect" } : { canary: { requests: 100 * k, errors: 0 }, baseline: { requests: 100 * k, errors: 0 } }));
    expect(flaky.phase).toBe("Successful");
    const broken = feed((k) => (k >= 2 ? { error: "cannot connect (ECONNREFUSED)" } : { canary: { requests: 100, errors: 0 }, baseline: { requests: 100, errors: 0 } }));
    expect(broken.phase).toBe("Error");
    expect(broken.looks).toBe(4);
    expect(broken.reason).toBe("the metrics source failed 3 times in a row: cannot connect (ECONNREFUSED)");
  });

  it("guards: an absolute error limit fails even a canary no worse than its baseline", () => {
    const s = { ...settings, maxErrorRatio: 0.01 };
    const run = feed((k) => ({ canary: { requests: 200 * k, errors: 10 * k }, baseline: { requests: 200 * k, errors: 10 * k } }), s);
    expect(run.phase).toBe("Failed");
    expect(run.reason).toMatch(/^error ratio limit: canary 5\.00% against a limit of 1\.00%/);
  });

  it("custom metrics fail after failureLimit looks out of bounds, and no data is never a pass", () => {
    const s = { ...settings, errors: false, latency: false, custom: [{ name: "queue", query: "q", max: 10, failureLimit: 2 }] };
    const bad = feed((k) => ({ canary: { requests: 100 * k, errors: 0 }, baseline: { requests: 100 * k, errors: 0 }, custom: { queue: k === 1 ? 50 : k === 2 ? 5 : 50 } }), s);
    expect(bad.phase).toBe("Failed");
    expect(bad.looks).toBe(4);
    expect(bad.reason).toMatch(/queue: 50 \(must be <= 10; out of bounds 2 of 2 looks in a row\)/);
    const silent = feed((k) => ({ canary: { requests: 100 * k, errors: 0 }, baseline: { requests: 100 * k, errors: 0 }, custom: { queue: undefined } }), s);
    expect(silent.phase).toBe("Inconclusive");
    expect(silent.reason).toMatch(/no data in 30 s for queue/);
  });

  it("totals that dip (Prometheus extrapolates increase()) add nothing, and a later rise counts only past the earlier high", () => {
    let run = startAnalysis(0);
    run = judge(run, { at: 5000, canary: { requests: 70, errors: 7 }, baseline: { requests: 70, errors: 0 } }, settings);
    expect(run.phase).toBe("Running");
    // No new traffic: the extrapolated totals fall, then come back to where they were.
    for (const [k, n] of [[2, 60.5], [3, 47.4], [4, 60], [5, 70]] as const) {
      run = judge(run, { at: k * 5000, canary: { requests: n, errors: n / 10 }, baseline: { requests: n, errors: 0 } }, settings);
    }
    expect(run.phase).toBe("Running");
    expect(run.prev?.canary).toEqual({ requests: 70, errors: 7 });
  });

  it("a query Prometheus rejects is an Error at once, not after three looks", () => {
    const run = judge(startAnalysis(0), { at: 5000, error: "Prometheus rejected it: bad_data: parse error", fatal: true }, settings);
    expect(run.phase).toBe("Error");
    expect(run.reason).toBe("the analysis cannot be evaluated: Prometheus rejected it: bad_data: parse error");
  });

  it("takes its settings from the SLOs, deploy.analysis and the step, in that order", () => {
    const { manifest } = parseManifest(
      [
        "project: p",
        "services:",
        "  s:",
        "    owner: t",
        "    path: s",
        "    start: node x.js",
        "    slos: [{ name: a, availability: 99.5 }, { name: l, latency: { threshold: 300ms, percentile: 95 } }]",
        "    deploy: { strategy: canary, analysis: { interval: 2s, duration: 40s, metrics: [errors] }, steps: [{ setWeight: 10 }, { analysis: { duration: 10s } }] }",
        "",
      ].join("\n"),
      "/tmp/p/keelson.yaml",
      { checkPaths: false },
    );
    const spec = manifest.services.s!;
    const step = (spec.deploy?.steps?.[1] as { analysis: Parameters<typeof analysisSettings>[1] }).analysis;
    const s = analysisSettings(spec, step);
    expect(s).toMatchObject({ intervalMs: 2000, durationMs: 10_000, errors: true, latency: false, confidence: 0.99, minRequests: 50, dryRun: false });
    expect(s.maxErrorRatio).toBeCloseTo(0.005, 9);
    expect(s.latencyLimit).toEqual({ seconds: 0.3, maxSlowRatio: expect.closeTo(0.05, 9), source: "SLO l" });
  });
});
