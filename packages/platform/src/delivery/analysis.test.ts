import { describe, expect, it } from "vitest";
import { parseManifest } from "../manifest/index.js";
import { analysisSettings, DEFAULT_ANALYSIS, judge, startAnalysis, type AnalysisObservation, type AnalysisRun, type AnalysisSettings } from "./analysis.js";
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
  function feed(at: (k: number) => Omit<AnalysisObservation, "at">, s = settings, looks = 20): AnalysisRun {
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

  describe("request counts that stop moving", () => {
    const s = { ...settings, durationMs: 60_000 };
    const BUILTIN = { source: "the built-in metric store (gateway scrapes)", scrapeIntervalMs: 10_000 };
    /** 100 requests per version a look, on the looks `rising(k)` says; both versions' totals at look k. */
    const counts = (k: number, rising: (j: number) => boolean) => {
      let n = 0;
      for (let j = 1; j <= k; j++) if (rising(j)) n += 100;
      return { canary: { requests: n, errors: 0 }, baseline: { requests: n, errors: 0 } };
    };
    /** Every look's run, until it stops or after `looks`. */
    function runs(at: (k: number) => Omit<AnalysisObservation, "at">, looks = 30, st = s): AnalysisRun[] {
      const out: AnalysisRun[] = [];
      let run = startAnalysis(0);
      for (let k = 1; k <= looks && run.phase === "Running"; k++) out.push((run = judge(run, { at: k * 5000, ...at(k) }, st)));
      return out;
    }

    it("frozen counts while the canary has weight: Running (no pass) for 30 s, then Error naming the source", () => {
      // Six looks of 200 requests, then the gateway is no longer scraped and the totals freeze.
      const all = runs((k) => ({ ...BUILTIN, ...counts(k, (j) => j <= 6) }));
      const run = all.at(-1)!;
      expect(run.phase).toBe("Error");
      // Still from look 6 (30 s) to look 12 (60 s): 30 s is max(3 looks, 30 s, 2.5 x the 10 s scrape interval).
      expect(run.looks).toBe(12);
      // 1000 requests over the 55 s since the first look (18.2/s), 545 of them expected in 30 s.
      expect(run.reason).toBe(
        "the metrics stopped changing: neither version's request count rose in 30 s (6 looks), though at the 18.2/s seen since the first look about 545 requests would have come; the numbers come from the built-in metric store (gateway scrapes): is it stuck, or no longer scraping the gateway?",
      );
      // Before that, Running and saying why, never a pass, also past the duration.
      expect(all.slice(6, -1).map((r) => r.phase)).toEqual(Array(5).fill("Running"));
      expect(all[6]?.reason).toMatch(/^waiting for the metrics to move again: neither version's request count rose in 5 s \(1 look\), .*; an Error if they are still after 30 s/);

      // Frozen from the look the duration ends at: no pass on it, the next looks decide.
      const late = runs((k) => ({ ...BUILTIN, ...counts(k, (j) => j <= 11) }));
      expect(late.map((r) => r.phase).filter((p) => p !== "Running")).toEqual(["Error"]);
      expect(late.at(-1)?.looks).toBe(17);

      // A source that does not say how often it scrapes (Prometheus) is given 2.5 x 30 s.
      const prometheus = runs((k) => ({ source: "Prometheus at http://127.0.0.1:9090", ...counts(k, (j) => j <= 6) }), 40).at(-1)!;
      expect(prometheus.phase).toBe("Error");
      expect(prometheus.looks).toBe(21);
      expect(prometheus.reason).toMatch(/rose in 75 s \(15 looks\), .*; the numbers come from Prometheus at http:\/\/127\.0\.0\.1:9090: is it stuck/);

      // At weight 0 only match rules send requests, and they may stop: the totals judged so far pass.
      const zero = runs((k) => ({ ...BUILTIN, weight: 0, ...counts(k, (j) => j <= 3) }), 12, settings).at(-1)!;
      expect(zero.phase).toBe("Successful");
    });

    it("totals that froze soon after the first look, too few for the stall rule, never pass: Inconclusive at the end", () => {
      // Looks every minute for 10 minutes at about 4 requests/s: the first look reads 120 per
      // version, the source stops 3 s later (6 more each), and nothing moves after that. At the
      // rate seen since the first look the stillness is never implausible (under 12 requests), yet
      // the numbers have not moved for 8 minutes when the duration ends.
      const slow = { ...s, durationMs: 600_000, intervalMs: 60_000 };
      let run = startAnalysis(0);
      const phases: string[] = [];
      for (let k = 1; k <= 12 && run.phase === "Running"; k++) {
        const n = k === 1 ? 120 : 126;
        run = judge(run, { at: k * 60_000, ...BUILTIN, canary: { requests: n, errors: 0 }, baseline: { requests: n, errors: 0 } }, slow);
        phases.push(run.phase);
      }
      expect(phases).not.toContain("Successful");
      expect(run).toMatchObject({ phase: "Inconclusive", looks: 10 });
      expect(run.reason).toBe("no new request of either version in the last 480 s: the traffic stopped, or the built-in metric store (gateway scrapes) did; not passing on numbers that do not move");
    });

    it("a 25 s flat stretch in steady traffic (a late scrape) does not Error; the run passes once the counts move again", () => {
      // Steady for 30 s, still for 25 s (looks 7-11), steady again from look 12 (60 s).
      const all = runs((k) => ({ ...BUILTIN, ...counts(k, (j) => j <= 6 || j >= 12) }));
      expect(all.slice(0, -1).every((r) => r.phase === "Running")).toBe(true);
      // Implausibly still for 5 looks (the rule before waited 3, measuring the rate to the last rise): held, not failed.
      expect(all[10]?.reason).toMatch(/^waiting for the metrics to move again: neither version's request count rose in 25 s \(5 looks\)/);
      expect(all.at(-1)).toMatchObject({ phase: "Successful", looks: 12 });
    });

    it("a 60 s flat stretch is an Error, once still for 2.5 scrape intervals of the source", () => {
      // Prometheus scraping every 15 s: still for 37.5 s is an Error, at the look after (40 s).
      const all = runs((k) => ({ source: "Prometheus at http://prometheus:9090", scrapeIntervalMs: 15_000, ...counts(k, (j) => j <= 6 || j >= 19) }));
      const run = all.at(-1)!;
      expect(run.phase).toBe("Error");
      expect(run.looks).toBe(14);
      expect(run.reason).toMatch(/^the metrics stopped changing: neither version's request count rose in 40 s \(8 looks\), .*Prometheus at http:\/\/prometheus:9090/);
    });

    it("bursty traffic (requests only in some looks) whose lulls the rate since the first look explains never Errors and passes", () => {
      // 1 request each in the first look, then 8 each in every fourth look from the second: 3 still
      // looks in a row after each burst. Measured from the first look to the last rise (the rule
      // before), the first burst made 3.2/s and its lull an Error at look 5; measured to now, at
      // most 12 requests were expected in any lull.
      const adds = (k: number) => (k === 1 ? 1 : k % 4 === 2 ? 8 : 0);
      const all = runs((k) => {
        let n = 0;
        for (let j = 1; j <= k; j++) n += adds(j);
        return { ...BUILTIN, canary: { requests: n, errors: 0 }, baseline: { requests: n, errors: 0 } };
      }, 30, { ...s, minRequests: 20 });
      expect(all.map((r) => r.reason ?? "").filter((r) => r.startsWith("waiting for the metrics"))).toEqual([]);
      expect(all.at(-1)).toMatchObject({ phase: "Successful", looks: 12 });
      expect(all.at(-1)?.evidence?.canary.requests).toBe(25);
    });
  });

  it("a quiet service whose totals rise now and then stays Inconclusive, not Error", () => {
    const s = { ...settings, durationMs: 60_000 };
    // 3 requests per version every 4 looks (0.3/s): 3 still looks in a row are ordinary here.
    const run = feed((k) => ({ canary: { requests: 3 * Math.floor(k / 4), errors: 0 }, baseline: { requests: 3 * Math.floor(k / 4), errors: 0 } }), s);
    expect(run.phase).toBe("Inconclusive");
    expect(run.reason).toMatch(/^too little traffic to judge in 60 s: canary 9, baseline 9 requests/);
  });

  it("fails a canary whose tail alone grew (same median), on the share above the pooled p90 bucket bound", () => {
    // Per look and version: baseline 3% above 100 ms, canary 9%; more fast requests too, so the
    // distributions overlap as much as before (Mann-Whitney sees no slowdown).
    const run = feed((k) => ({
      canary: { requests: 100 * k, errors: 0, buckets: buckets({ 0.025: 24 * k, 0.05: 39 * k, 0.1: 28 * k, 0.25: 9 * k }) },
      baseline: { requests: 100 * k, errors: 0, buckets: buckets({ 0.025: 17 * k, 0.05: 50 * k, 0.1: 30 * k, 0.25: 3 * k }) },
    }));
    expect(run.phase).toBe("Failed");
    expect(run.reason).toMatch(/^latency tail: slower than 100 ms: canary 9\.00% vs baseline 3\.00%; evidence 10\^\d\.\d, fails at 10\^2\.\d$/);
    expect(run.evidence?.checks.find((c) => c.name === "latency")?.status).toBe("watching");
    // It counts from the start: the threshold is fixed at the first look (200 requests together)
    // and that look's requests count too (counting from the look after the threshold took 7 looks).
    expect(run.tailLe).toBe(0.1);
    expect(run.looks).toBe(5);
  });

  it("latency limit from an SLO: a 300 ms limit is checked at 300 ms, interpolated inside the 250-500 ms bucket", () => {
    const s = { ...settings, latencyLimit: { seconds: 0.3, maxSlowRatio: 0.01, source: "SLO fast" } };
    // Both versions alike, so only the limit can fail: 5% in (250, 500] ms is 4% above 300 ms
    // (it used to be counted above 500 ms: nothing, a pass).
    const slow = (k: number) => ({ requests: 100 * k, errors: 0, buckets: buckets({ 0.1: 95 * k, 0.5: 5 * k }) });
    const failed = feed((k) => ({ canary: slow(k), baseline: slow(k) }), s);
    expect(failed.phase).toBe("Failed");
    expect(failed.reason).toMatch(/^latency limit: canary p99 450 ms against a limit of 300 ms \(SLO fast\): 4\.00% of its requests slower, at most 1\.00% allowed; evidence/);
    expect(failed.evidence?.checks.filter((c) => c.status === "fail").map((c) => c.name)).toEqual(["latency limit"]);
    // Just under: 1.2% in the bucket is 0.96% above 300 ms.
    const under = (k: number) => ({ requests: 1000 * k, errors: 0, buckets: buckets({ 0.1: 988 * k, 0.5: 12 * k }) });
    const passed = feed((k) => ({ canary: under(k), baseline: under(k) }), s);
    expect(passed.phase).toBe("Successful");
    expect(passed.evidence?.checks.find((c) => c.name === "latency limit")?.detail).toMatch(/: 0\.96% of its requests slower, at most 1\.00% allowed/);
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
