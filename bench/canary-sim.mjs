// Benchmark: canary analysis on simulated traffic (seeded, no wall-clock waiting). Each run
// generates the requests a canary and its baseline receive at 200 req/s total with the canary
// at 10% (so 20 req/s each, Poisson arrivals, Bernoulli errors, log-normal latencies recorded
// in the gateway's histogram buckets), hands the analysis what a metrics source would hold at
// every scrape, and records when it decides. Scenarios: (a) canary errors 5.5% vs 0.5%,
// (b) canary latency x1.5 (p99 +50%), (c) identical versions (A/A), (d) the canary's tail alone
// slower (same median, log-normal sigma 0.5 -> 0.674: p99 +50%). The same traffic is judged
// by a Flagger-default loop (every 60 s: success rate >= 99% and p99 <= 500 ms; 5 failed
// checks roll back) as the reference.
// Usage: node bench/canary-sim.mjs [--runs 1000] [--json]   (after `npm run build`)
import { performance } from "node:perf_hooks";
import { DEFAULT_ANALYSIS, judge, startAnalysis } from "../packages/platform/dist/delivery/index.js";
import { DURATION_BUCKETS_S } from "../packages/platform/dist/gateway/gateway-metrics.js";
import { rng } from "./seeded-random.mjs";

const BOUNDS = [...DURATION_BUCKETS_S, Infinity];

function gaussian(random) {
  let u = 0;
  while (u === 0) u = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Traffic of one version: requests arrive at `rate`/s, fail with `errorRatio`, take lognormal(median, sigma) s. */
function version(random, { rate, errorRatio, median, sigma }) {
  const buckets = new Float64Array(BOUNDS.length);
  const v = { requests: 0, errors: 0, buckets, next: 0 };
  v.next = -Math.log(1 - random()) / rate;
  v.until = (t) => {
    while (v.next <= t) {
      v.requests++;
      if (random() < errorRatio) v.errors++;
      const latency = median * Math.exp(sigma * gaussian(random));
      let i = 0;
      while (latency > BOUNDS[i]) i++;
      buckets[i]++;
      v.next += -Math.log(1 - random()) / rate;
    }
  };
  return v;
}

function cumulative(v) {
  let sum = 0;
  return BOUNDS.map((le, i) => ({ le, count: (sum += v.buckets[i]) }));
}

function snapshot(v) {
  return { requests: v.requests, errors: v.errors, buckets: cumulative(v) };
}

function p99(bucketCounts) {
  const total = bucketCounts.reduce((a, b) => a + b, 0);
  if (total === 0) return undefined;
  let below = 0;
  let prevLe = 0;
  for (let i = 0; i < BOUNDS.length; i++) {
    const c = bucketCounts[i];
    if (below + c >= 0.99 * total) return BOUNDS[i] === Infinity ? prevLe : prevLe + (BOUNDS[i] - prevLe) * ((0.99 * total - below) / c);
    below += c;
    prevLe = BOUNDS[i];
  }
  return prevLe;
}

export const TRAFFIC = { totalRate: 200, canaryWeight: 0.1, baselineErrorRatio: 0.005, median: 0.04, sigma: 0.5 };
export const SCENARIOS = {
  errors: { label: "(a) canary errors 5.5% vs 0.5%", canary: { errorRatio: 0.055 }, targetS: 30, targetShare: 0.95 },
  latency: { label: "(b) canary latency x1.5 (p99 +50%)", canary: { medianFactor: 1.5 }, targetS: 60, targetShare: 0.9 },
  aa: { label: "(c) identical versions (A/A)", canary: {}, maxFalseAlarms: 0.01 },
  // Same median, wider spread: sigma 0.5 -> 0.5 + ln(1.5) / z(0.99) moves only the tail (p99 128 -> 192 ms).
  tail: { label: "(d) canary latency tail only (same median, p99 +50%)", canary: { sigma: 0.5 + Math.log(1.5) / 2.3263479 }, targetS: 60, targetShare: 0.9 },
};

/** The settings the simulation judges with: the defaults, the shop's SLO guards, 5 min of analysis. */
export const SIM_SETTINGS = { ...DEFAULT_ANALYSIS, durationMs: 300_000, maxErrorRatio: 0.01, latencyLimit: { seconds: 0.5, maxSlowRatio: 0.01, source: "SLO p99 <= 500ms" } };

/**
 * One run: returns Keelson's decision time (s) and outcome, and the Flagger loop's.
 * Keelson looks every `settings.intervalMs` (after a scrape); Flagger every 60 s.
 */
export function simulateRun(scenario, seed, settings = SIM_SETTINGS, horizonS = 300) {
  const random = rng(seed);
  const rate = TRAFFIC.totalRate * TRAFFIC.canaryWeight;
  const base = { rate, errorRatio: TRAFFIC.baselineErrorRatio, median: TRAFFIC.median, sigma: TRAFFIC.sigma };
  const canary = version(random, { ...base, errorRatio: scenario.canary.errorRatio ?? base.errorRatio, median: base.median * (scenario.canary.medianFactor ?? 1), sigma: scenario.canary.sigma ?? base.sigma });
  const baseline = version(random, base);
  let run = startAnalysis(0);
  let keelson;
  let flagger;
  let failedChecks = 0;
  let lastFlagger = { requests: 0, errors: 0, buckets: new Float64Array(BOUNDS.length) };
  const step = settings.intervalMs / 1000;
  for (let t = step; t <= horizonS + 1e-9; t += step) {
    canary.until(t);
    baseline.until(t);
    if (keelson === undefined) {
      run = judge(run, { at: t * 1000, canary: snapshot(canary), baseline: snapshot(baseline) }, settings);
      if (run.phase !== "Running") keelson = { phase: run.phase, atS: t, reason: run.reason };
    }
    if (flagger === undefined && Math.abs(t / 60 - Math.round(t / 60)) < 1e-9) {
      const n = canary.requests - lastFlagger.requests;
      const x = canary.errors - lastFlagger.errors;
      const counts = Array.from(canary.buckets, (c, i) => c - lastFlagger.buckets[i]);
      const successRate = n > 0 ? 1 - x / n : 1;
      const latency = p99(counts);
      if (successRate < 0.99 || (latency !== undefined && latency > 0.5)) failedChecks++;
      if (failedChecks >= 5) flagger = { phase: "Failed", atS: t };
      lastFlagger = { requests: canary.requests, errors: canary.errors, buckets: Float64Array.from(canary.buckets) };
    }
    if (keelson !== undefined && flagger !== undefined) break;
  }
  return { keelson: keelson ?? { phase: run.phase, atS: undefined }, flagger: flagger ?? { phase: "Successful", atS: undefined } };
}

function quantile(xs, q) {
  if (xs.length === 0) return NaN;
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.floor(q * v.length))];
}

/** All runs of one scenario, summarized for Keelson and for the Flagger loop. */
export function simulateScenario(name, runs, seed0 = 1) {
  const scenario = SCENARIOS[name];
  const out = { keelson: { times: [], outcomes: {} }, flagger: { times: [], outcomes: {} } };
  for (let i = 0; i < runs; i++) {
    const r = simulateRun(scenario, seed0 + i * 7919);
    for (const who of ["keelson", "flagger"]) {
      const d = r[who];
      out[who].outcomes[d.phase] = (out[who].outcomes[d.phase] ?? 0) + 1;
      if (d.phase === "Failed") out[who].times.push(d.atS);
    }
  }
  const summarize = (x) => ({
    runs,
    outcomes: x.outcomes,
    failedShare: x.times.length / runs,
    withinTarget: scenario.targetS === undefined ? undefined : x.times.filter((t) => t <= scenario.targetS).length / runs,
    p50: quantile(x.times, 0.5),
    p90: quantile(x.times, 0.9),
    p95: quantile(x.times, 0.95),
    max: x.times.length ? Math.max(...x.times) : NaN,
  });
  return { name, label: scenario.label, targetS: scenario.targetS, targetShare: scenario.targetShare, maxFalseAlarms: scenario.maxFalseAlarms, keelson: summarize(out.keelson), flagger: summarize(out.flagger) };
}

function report(results) {
  const s = (x) => (Number.isFinite(x) ? `${x} s` : "-");
  const p = (x) => (x === undefined ? "-" : `${(x * 100).toFixed(1)}%`);
  const lines = [];
  for (const r of results) {
    lines.push(r.label);
    for (const who of ["keelson", "flagger"]) {
      const x = r[who];
      const target =
        r.targetS !== undefined
          ? `rolled back within ${r.targetS} s: ${p(x.withinTarget)} (target >= ${p(r.targetShare)})`
          : `falsely rolled back: ${p(x.failedShare)} (target <= ${p(r.maxFalseAlarms)})`;
      lines.push(`  ${who.padEnd(8)} ${target}; detection p50 ${s(x.p50)}, p90 ${s(x.p90)}, p95 ${s(x.p95)}, max ${s(x.max)}; outcomes ${JSON.stringify(x.outcomes)}`);
    }
  }
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf("--runs");
  const runs = i > 0 ? Number(process.argv[i + 1]) : 1000;
  const started = performance.now();
  const results = Object.keys(SCENARIOS).map((name) => simulateScenario(name, runs));
  if (process.argv.includes("--json")) console.log(JSON.stringify(results, null, 2));
  else console.log(`${report(results)}\n(${runs} runs per scenario in ${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
