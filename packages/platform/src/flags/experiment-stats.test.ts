// The experiment statistics: the chi-squared tail against reference values, the confidence
// sequence's coverage under continuous peeking (seeded simulation), sample ratio mismatch on a
// skewed and on fair splits, and the verdicts.
import { describe, expect, it } from "vitest";
import {
  analyzeErrorRatios,
  analyzeExperiment,
  chiSquaredSurvival,
  confidenceSequenceRadius,
  describeErrorRatios,
  differenceSequence,
  logGamma,
  mixtureRho,
  normalQuantile,
  regularizedGammaQ,
  sampleRatioMismatch,
  wilson,
} from "./experiment-stats.js";

/** mulberry32: a small seeded generator, uniform on [0, 1). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("chi-squared survival function", () => {
  it("matches reference values (scipy.stats.chi2.sf) from the centre far into the tail", () => {
    const cases: Array<[number, number, number]> = [
      [1, 1, 0.31731050786291115],
      [3.841458820694124, 1, 0.05],
      [10.827566170662733, 1, 0.001],
      [0.001, 1, 0.9747728793699604],
      [0.1, 1, 0.7518296340458492],
      [100, 1, 1.5239706048320995e-23],
      [5.991464547107979, 2, 0.05],
      [0.5, 3, 0.9188914116546758],
      [7.814727903251178, 3, 0.05],
      [100, 4, 9.83662422461598e-21],
      [11.070497693516351, 5, 0.05],
      [3, 6, 0.8088468305380581],
      [2.5, 7, 0.9270970650134738],
      [30, 7, 9.495972508134177e-5],
      [20, 10, 0.029252688076961075],
      [500, 30, 1.2079559936814051e-86],
    ];
    for (const [x, df, p] of cases) expect(Math.abs(chiSquaredSurvival(x, df) - p) / p, `chi2.sf(${x}, ${df})`).toBeLessThan(1e-9);
    expect(chiSquaredSurvival(0, 3)).toBe(1);
    expect(chiSquaredSurvival(Infinity, 3)).toBe(0);
  });

  it("rests on a correct log-gamma and incomplete gamma", () => {
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(1)).toBeCloseTo(0, 12);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
    expect(logGamma(101)).toBeCloseTo(363.73937555556347, 9);
    // Q(1, x) = e^-x on both sides of the series/continued-fraction switch.
    for (const x of [0.3, 1.9, 2.1, 40]) expect(regularizedGammaQ(1, x) / Math.exp(-x)).toBeCloseTo(1, 12);
  });
});

describe("confidence sequence", () => {
  it("is about 1.5 times a fixed-sample interval where it is tightest, and shrinks as users come", () => {
    const rho = mixtureRho(0.05, 10_000);
    const r = confidenceSequenceRadius(10_000, 1, 0.05, rho);
    expect(r).toBeCloseTo(0.03035, 4);
    expect(r / (normalQuantile(0.975) / 100)).toBeGreaterThan(1.4);
    expect(r / (normalQuantile(0.975) / 100)).toBeLessThan(1.7);
    expect(confidenceSequenceRadius(40_000, 1, 0.05, rho)).toBeLessThan(r);
    expect(confidenceSequenceRadius(0, 1, 0.05, rho)).toBe(Infinity);
  });

  /**
   * 500 seeded experiments, each looked at after every 100 users up to 20,000 (200 looks), with
   * 50/50 random assignment. A run misses when at any look the interval excludes the true
   * difference. Returns the share of runs that missed, for the sequence and for a fixed-sample
   * 95% interval peeked at the same way.
   */
  function peekingMisses(rateA: number, rateB: number, seed: number): { sequence: number; fixed: number } {
    const runs = 500;
    const random = rng(seed);
    const truth = rateB - rateA;
    const z = normalQuantile(0.975);
    let sequence = 0;
    let fixed = 0;
    for (let run = 0; run < runs; run++) {
      const a = { variant: "a", users: 0, conversions: 0 };
      const b = { variant: "b", users: 0, conversions: 0 };
      let missed = false;
      let fixedMissed = false;
      for (let user = 1; user <= 20_000; user++) {
        const arm = random() < 0.5 ? a : b;
        arm.users++;
        if (random() < (arm === a ? rateA : rateB)) arm.conversions++;
        if (user % 100 !== 0) continue;
        const cs = differenceSequence(b, a, 0.05, 10_000);
        if (cs && (cs.low > truth || cs.high < truth)) missed = true;
        if (a.users > 0 && b.users > 0) {
          const pa = a.conversions / a.users;
          const pb = b.conversions / b.users;
          const se = Math.sqrt((pa * (1 - pa)) / a.users + (pb * (1 - pb)) / b.users);
          if (Math.abs(pb - pa - truth) > z * se) fixedMissed = true;
        }
      }
      if (missed) sequence++;
      if (fixedMissed) fixed++;
    }
    return { sequence: sequence / runs, fixed: fixed / runs };
  }

  it("covers the true difference at every look in at least 95% of A/A runs peeked at 200 times", () => {
    const misses = peekingMisses(0.1, 0.1, 7);
    console.log(`[experiments] A/A 10%, 500 runs x 200 looks: confidence sequence missed 0 in ${(misses.sequence * 100).toFixed(1)}% of runs, a fixed-sample 95% interval in ${(misses.fixed * 100).toFixed(1)}%`);
    expect(misses.sequence).toBeLessThanOrEqual(0.05);
    // What the sequence protects against: peeking at a fixed-sample interval finds false wins often.
    expect(misses.fixed).toBeGreaterThan(0.2);
  });

  it("covers a real difference too (10% vs 11%)", () => {
    const misses = peekingMisses(0.1, 0.11, 11);
    console.log(`[experiments] A/B 10% vs 11%, 500 runs x 200 looks: confidence sequence missed the true lift in ${(misses.sequence * 100).toFixed(1)}% of runs`);
    expect(misses.sequence).toBeLessThanOrEqual(0.05);
  });
});

describe("sample ratio mismatch", () => {
  it("flags a 50/50 flag where 55% of 10,000 users landed on one side", () => {
    const srm = sampleRatioMismatch({ on: 5500, off: 4500 }, { on: 50, off: 50 });
    expect(srm).toMatchObject({ checked: true, df: 1, broken: true });
    expect(srm.chiSquared).toBeCloseTo(100, 9);
    expect(srm.p).toBeLessThan(1e-20);
  });

  // The threshold p < 0.001 makes 0.1% of fair splits look broken by design; over 10,000 seeded
  // splits the count is Poisson-like around 10, so the bound allows for that noise (≤ 0.2%).
  it("leaves fair 50/50 splits of 10,000 users alone: 10,000 seeded splits, false alarms near the nominal 0.1%", () => {
    const random = rng(2024);
    const runs = 10_000;
    let broken = 0;
    for (let run = 0; run < runs; run++) {
      let on = 0;
      // 10,000 fair coin flips, 32 at a time.
      for (let word = 0; word < 313; word++) {
        let bits = Math.floor(random() * 4294967296) >>> 0;
        const take = word === 312 ? 10_000 - 312 * 32 : 32;
        for (let i = 0; i < take; i++, bits >>>= 1) on += bits & 1;
      }
      if (sampleRatioMismatch({ on, off: 10_000 - on }, { on: 1, off: 1 }).broken) broken++;
    }
    console.log(`[experiments] fair 50/50 splits of 10,000 users: ${broken} of ${runs} flagged (nominal 0.1%)`);
    expect(broken / runs).toBeLessThanOrEqual(0.002);
  });

  it("uses uneven weights and leaves out variants without weight", () => {
    expect(sampleRatioMismatch({ a: 2000, b: 8000, c: 0 }, { a: 20, b: 80, c: 0 })).toMatchObject({ checked: true, broken: false, df: 1, expected: { a: 0.2, b: 0.8 } });
    expect(sampleRatioMismatch({ a: 5000, b: 5000 }, { a: 20, b: 80 }).broken).toBe(true);
  });

  it("does not judge while an expected count is below 5", () => {
    expect(sampleRatioMismatch({ on: 6, off: 0 }, { on: 1, off: 1 })).toMatchObject({ checked: false, broken: false });
  });
});

describe("analyzeExperiment", () => {
  it("declares a treatment that converts 12% against 8% the winner, with rates, Wilson intervals and lifts", () => {
    const r = analyzeExperiment(
      [
        { variant: "off", users: 2000, conversions: 160 },
        { variant: "on", users: 2000, conversions: 240 },
      ],
      "off",
      { on: 1, off: 1 },
    );
    expect(r.verdict).toBe("treatment wins");
    expect(r.winner).toBe("on");
    expect(r.variants[1]).toMatchObject({ variant: "on", rate: 0.12 });
    const ci = r.variants[1]?.ci;
    expect(ci?.low).toBeLessThan(0.12);
    expect(ci?.high).toBeGreaterThan(0.12);
    const c = r.comparisons[0];
    expect(c?.absolute?.estimate).toBeCloseTo(0.04, 12);
    expect(c?.absolute?.low).toBeGreaterThan(0);
    expect(c?.relative?.estimate).toBeCloseTo(0.5, 12);
    expect(c?.relative?.low).toBeGreaterThan(0);
    expect(r.srm).toMatchObject({ checked: true, broken: false });
  });

  it("says no difference yet while the interval holds 0, and control wins when every treatment is worse", () => {
    const even = analyzeExperiment([{ variant: "off", users: 1000, conversions: 100 }, { variant: "on", users: 1000, conversions: 110 }], "off", { on: 1, off: 1 });
    expect(even.verdict).toBe("no difference yet");
    expect(even.winner).toBeUndefined();
    const worse = analyzeExperiment([{ variant: "off", users: 5000, conversions: 600 }, { variant: "on", users: 5000, conversions: 400 }], "off", { on: 1, off: 1 });
    expect(worse).toMatchObject({ verdict: "control wins", winner: "off" });
  });

  it("splits alpha over several treatments and picks the best winner", () => {
    const two = analyzeExperiment(
      [
        { variant: "a", users: 4000, conversions: 320 },
        { variant: "b", users: 4000, conversions: 480 },
        { variant: "c", users: 4000, conversions: 520 },
      ],
      "a",
      { a: 1, b: 1, c: 1 },
    );
    expect(two).toMatchObject({ verdict: "treatment wins", winner: "c" });
    const single = differenceSequence({ variant: "b", users: 4000, conversions: 480 }, { variant: "a", users: 4000, conversions: 320 }, 0.05, 10_000);
    const b = two.comparisons.find((x) => x.variant === "b")?.absolute;
    // alpha / 2 per comparison: wider than alone.
    expect((b?.high ?? 0) - (b?.low ?? 0)).toBeGreaterThan((single?.high ?? 0) - (single?.low ?? 0));
  });

  it("calls an experiment with a sample ratio mismatch broken, whatever the lift", () => {
    const r = analyzeExperiment([{ variant: "off", users: 4500, conversions: 360 }, { variant: "on", users: 5500, conversions: 660 }], "off", { on: 50, off: 50 });
    expect(r.comparisons[0]?.verdict).toBe("treatment wins");
    expect(r.verdict).toBe("broken: sample ratio mismatch");
    expect(r.winner).toBeUndefined();
  });

  it("answers without users or conversions instead of failing", () => {
    const r = analyzeExperiment([{ variant: "off", users: 0, conversions: 0 }, { variant: "on", users: 3, conversions: 0 }], "off", { on: 1, off: 1 });
    expect(r.verdict).toBe("no difference yet");
    expect(r.variants[0]).toMatchObject({ rate: undefined, ci: undefined });
    expect(r.comparisons[0]).toMatchObject({ absolute: undefined, relative: undefined });
  });

  it("computes Wilson intervals as published", () => {
    const w = wilson(5, 100, 1.96);
    expect(w.low).toBeCloseTo(0.0215, 4);
    expect(w.high).toBeCloseTo(0.1118, 4);
  });
});

describe("analyzeErrorRatios", () => {
  it("calls a variant with more errors worse than the control once the always-valid interval of the difference leaves 0", () => {
    const a = analyzeErrorRatios(
      [
        { variant: "v1", requests: 2_000, errors: 2 },
        { variant: "v2", requests: 2_000, errors: 200 },
      ],
      "v1",
    );
    expect(a.variants.map((v) => [v.variant, v.errorRatio])).toEqual([
      ["v1", 0.001],
      ["v2", 0.1],
    ]);
    // Wilson at 95% for the display interval, as for conversion rates.
    expect(a.variants[1]?.ci).toEqual(wilson(200, 2_000, normalQuantile(0.975)));
    const [c] = a.comparisons;
    expect(c?.difference?.estimate).toBeCloseTo(0.099, 6);
    expect(c?.difference?.low).toBeGreaterThan(0);
    // The same sequence as the conversion lift, with requests for users.
    expect(c?.difference).toEqual(differenceSequence({ variant: "v2", users: 2_000, conversions: 200 }, { variant: "v1", users: 2_000, conversions: 2 }, 0.05, 10_000));
    expect(a).toMatchObject({ verdict: "control wins", winner: "v1" });
  });

  it("calls a treatment with fewer errors the winner, and waits while the interval spans 0", () => {
    const better = analyzeErrorRatios(
      [
        { variant: "old", requests: 3_000, errors: 300 },
        { variant: "fix", requests: 3_000, errors: 30 },
        { variant: "same", requests: 3_000, errors: 290 },
      ],
      "old",
    );
    expect(better.comparisons.map((c) => [c.variant, c.verdict])).toEqual([
      ["fix", "treatment wins"],
      ["same", "no difference yet"],
    ]);
    expect(better).toMatchObject({ verdict: "treatment wins", winner: "fix" });
    const early = analyzeErrorRatios(
      [
        { variant: "old", requests: 50, errors: 1 },
        { variant: "new", requests: 50, errors: 4 },
      ],
      "old",
    );
    expect(early.verdict).toBe("no difference yet");
    expect(analyzeErrorRatios([{ variant: "old", requests: 10, errors: 0 }, { variant: "new", requests: 0, errors: 0 }], "old").comparisons[0]).toMatchObject({ difference: undefined, verdict: "no difference yet" });
  });
});

describe("describeErrorRatios", () => {
  it("gives each variant's error ratio and Wilson interval at 1 - alpha, the same as the sequential analysis shows, and nothing to compare", () => {
    const requests = [
      { variant: "v1", requests: 2_000, errors: 2 },
      { variant: "v2", requests: 2_000, errors: 200 },
      { variant: "v3", requests: 0, errors: 0 },
    ];
    const described = describeErrorRatios(requests, { alpha: 0.1 });
    expect(described.map((v) => [v.variant, v.errorRatio])).toEqual([
      ["v1", 0.001],
      ["v2", 0.1],
      ["v3", undefined],
    ]);
    expect(described[1]?.ci).toEqual(wilson(200, 2_000, normalQuantile(0.95)));
    expect(described[2]?.ci).toBeUndefined();
    expect(analyzeErrorRatios(requests, "v1", { alpha: 0.1 }).variants).toEqual(described);
    // 95% by default.
    expect(describeErrorRatios(requests)[1]?.ci).toEqual(wilson(200, 2_000, normalQuantile(0.975)));
  });
});
