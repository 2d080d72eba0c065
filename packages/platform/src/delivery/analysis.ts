// Canary analysis: compares the canary with a baseline (the previous release, started afresh and
// given the same share of traffic at the same time) every few seconds, and decides as soon as
// the evidence is enough. `judge` is pure (observations in, verdict out), so the simulation
// benchmark runs exactly what the control plane runs; `observe` reads the numbers from a
// MetricsSource (the built-in store or Prometheus).
//
// Outcomes, as in Argo Rollouts' AnalysisRuns: Successful, Failed, Inconclusive (too little
// traffic, or a metric without data: never passes or fails silently) and Error (the metrics
// source is broken, or its numbers stopped moving). Every verdict carries its evidence: the
// numbers per version and each check's statistic against its threshold.
import { KeelsonError } from "@keelson/protocol";
import type { AnalysisSpecOut, ServiceSpec } from "../manifest/index.js";
import { fractionAbove } from "../telemetry/index.js";
import type { MetricsSource, ScrapeTarget } from "../telemetry/index.js";
import { bucketCounts, logMixture, mannWhitney, normalQuantile, oneSampleRateUpdate, rejects, twoSampleRateUpdate } from "./analysis-stats.js";

export type AnalysisPhase = "Running" | "Successful" | "Failed" | "Inconclusive" | "Error";

/** A PromQL metric of the canary that must stay within bounds. */
export interface CustomMetric {
  name: string;
  /** PromQL; `{{service}}`, `{{canary}}` and `{{baseline}}` are replaced by the service and release ids. */
  query: string;
  max?: number;
  min?: number;
  /** Consecutive looks out of bounds that fail the analysis. */
  failureLimit: number;
}

/** Everything an analysis run needs to know, resolved from the manifest (see `analysisSettings`). */
export interface AnalysisSettings {
  intervalMs: number;
  durationMs: number;
  /** 1 - the false-alarm rate of the whole run, shared out over its checks. */
  confidence: number;
  /** Requests each version must serve before the run may pass. */
  minRequests: number;
  /** Compare error ratios (canary vs baseline). */
  errors: boolean;
  /** Compare latency distributions and tails (canary vs baseline). */
  latency: boolean;
  /** A canary slower than the baseline by at most this much AUC (0.5 = equal) is not a failure. */
  latencyMargin: number;
  custom: CustomMetric[];
  /** Absolute guard: the canary's error ratio must not be above this. */
  maxErrorRatio?: number;
  /** Absolute guard: at most `maxSlowRatio` of the canary's requests may take longer than `seconds`. */
  latencyLimit?: { seconds: number; maxSlowRatio: number; source: string };
  /** Report what the run would decide, never act on it. */
  dryRun: boolean;
  /** Consecutive failed looks at the metrics source that make the run an Error. */
  errorLimit: number;
}

export const DEFAULT_ANALYSIS: AnalysisSettings = Object.freeze({
  intervalMs: 5_000,
  durationMs: 60_000,
  confidence: 0.99,
  minRequests: 50,
  errors: true,
  latency: true,
  latencyMargin: 0.05,
  custom: [],
  dryRun: false,
  errorLimit: 3,
}) as AnalysisSettings;

/**
 * The settings of one analysis step: the defaults, then `deploy.analysis`, then the step's own.
 * The absolute guards come from the service's SLOs unless the analysis sets them.
 */
export function analysisSettings(spec: ServiceSpec, step: AnalysisSpecOut | undefined): AnalysisSettings {
  const layers = [spec.deploy?.analysis, step].filter((x): x is AnalysisSpecOut => x !== undefined);
  const pick = <K extends keyof AnalysisSpecOut>(key: K): AnalysisSpecOut[K] | undefined => {
    let v: AnalysisSpecOut[K] | undefined;
    for (const l of layers) if (l[key] !== undefined) v = l[key];
    return v;
  };
  const metrics = pick("metrics") ?? ["errors", "latency"];
  const out: AnalysisSettings = {
    ...DEFAULT_ANALYSIS,
    intervalMs: pick("interval") ?? DEFAULT_ANALYSIS.intervalMs,
    durationMs: pick("duration") ?? DEFAULT_ANALYSIS.durationMs,
    confidence: pick("confidence") ?? DEFAULT_ANALYSIS.confidence,
    minRequests: pick("minRequests") ?? DEFAULT_ANALYSIS.minRequests,
    dryRun: pick("dryRun") ?? false,
    errors: metrics.includes("errors"),
    latency: metrics.includes("latency"),
    custom: metrics.flatMap((m) => (typeof m === "object" ? [{ name: m.name, query: m.query, failureLimit: m.failureLimit, ...(m.max !== undefined ? { max: m.max } : {}), ...(m.min !== undefined ? { min: m.min } : {}) }] : [])),
  };
  const slos = spec.slos ?? [];
  const availability = slos.map((o) => o.availability).filter((a): a is number => a !== undefined);
  const maxErrorRatio = pick("maxErrorRatio") ?? (availability.length > 0 ? 1 - Math.max(...availability) / 100 : undefined);
  if (maxErrorRatio !== undefined) out.maxErrorRatio = maxErrorRatio;
  const maxP99 = pick("maxP99");
  const latencySlo = slos.find((o) => o.latency !== undefined);
  if (maxP99 !== undefined) out.latencyLimit = { seconds: maxP99 / 1000, maxSlowRatio: 0.01, source: "analysis.maxP99" };
  else if (latencySlo?.latency) {
    out.latencyLimit = { seconds: latencySlo.latency.threshold / 1000, maxSlowRatio: 1 - latencySlo.latency.percentile / 100, source: `SLO ${latencySlo.name}` };
  }
  return out;
}

/** One version's totals since the run began: cumulative, as a metrics source answers. */
export interface VersionTotals {
  requests: number;
  errors: number;
  /** Cumulative latency buckets `{le (seconds), count}`, ascending, ending with le = Infinity. */
  buckets?: Array<{ le: number; count: number }>;
}

export interface AnalysisObservation {
  /** When the numbers were read (ms since the epoch, or simulated time). */
  at: number;
  canary?: VersionTotals;
  baseline?: VersionTotals;
  custom?: Record<string, number | undefined>;
  /** The metrics source failed; the message says how. */
  error?: string;
  /** The failure is the analysis' own (a PromQL query Prometheus rejects): retrying will not help. */
  fatal?: boolean;
  /**
   * The canary's traffic weight (%) when the numbers were read. At 0 (only `match` rules send it
   * requests) traffic may stop for good reasons, so numbers that stop moving are not an Error
   * there; undefined is taken as above 0.
   */
  weight?: number;
  /** Where the numbers came from, named in messages (MetricsSource.description). */
  source?: string;
  /** How often the source takes its numbers (its scrape interval), when known: see judge on still numbers. */
  scrapeIntervalMs?: number;
}

export interface CheckResult {
  name: string;
  status: "pass" | "fail" | "watching" | "no-data";
  /** The numbers behind it, in words. */
  detail: string;
}

export interface VersionSummary {
  requests: number;
  errors: number;
  errorRatio: number | undefined;
  /** Seconds, interpolated in histogram buckets. */
  p50?: number;
  p99?: number;
}

export interface AnalysisEvidence {
  at: number;
  elapsedMs: number;
  looks: number;
  canary: VersionSummary;
  baseline: VersionSummary;
  checks: CheckResult[];
}

/** The state of one run between looks (JSON, kept in the rollout's state). */
export interface AnalysisRun {
  startedAt: number;
  looks: number;
  phase: AnalysisPhase;
  reason?: string;
  prev?: { canary: HighWater; baseline: HighWater };
  errorsLLR?: number[];
  tailLLR?: number[];
  /** Bucket bound the tail check counts slow requests above, fixed once both versions together have enough requests. */
  tailLe?: number;
  guardErrorsLLR?: number[];
  guardLatencyLLR?: number[];
  customBreaches: Record<string, number>;
  customSeen: string[];
  consecutiveErrors: number;
  /** Whether the request totals still move (see STALL_LOOKS); from the first look with requests on. */
  flow?: RequestFlow;
  evidence?: AnalysisEvidence;
}

/** Both versions' request totals over the looks: when they first showed requests and last rose. */
export interface RequestFlow {
  firstAt: number;
  /** Requests of both versions at `firstAt`. */
  first: number;
  movedAt: number;
  /** Requests of both versions when they last rose. */
  moved: number;
  /** Each version's requests at the last look: [canary, baseline]. */
  last: [number, number];
  /** Looks in a row since, in which neither version's total rose. */
  stillLooks: number;
}

export function startAnalysis(at: number): AnalysisRun {
  return { startedAt: at, looks: 0, phase: "Running", customBreaches: {}, customSeen: [], consecutiveErrors: 0 };
}

/** Requests of both versions together needed before the tail threshold is chosen from their histogram. */
const TAIL_MIN_REQUESTS = 200;
/**
 * The tail check counts requests slower than the lowest bucket bound that at most this share of
 * both versions' requests together exceed (their p90 bucket bound). Not higher: the gateway's
 * buckets are coarse (…, 50, 100, 250, 500 ms), and at a baseline p99 of 128 ms the next bound,
 * 250 ms, sees a few requests a minute at 20 requests/s, too few to decide within a minute.
 */
const TAIL_SHARE = 0.1;
/**
 * Requests the rate seen so far would have brought meanwhile before still totals count as
 * stalled: for steady Poisson traffic, 20 expected and none seen has a chance of e^-20 (2e-9), so
 * a quiet service stays Inconclusive rather than Error.
 */
const STALL_EXPECTED = 20;
/**
 * A stall becomes an Error only once it has lasted this many looks, this long, and this many of
 * the source's scrape intervals (or of ASSUMED_SCRAPE_INTERVAL_MS when it does not say): Prometheus'
 * increase() stands still until its next sample, so one late or missed scrape at a 30 s interval
 * leaves the totals flat for 30-60 s; traffic that comes in bursts or pauses does the same.
 */
const STALL_LOOKS = 3;
const STALL_MIN_MS = 30_000;
const STALL_SCRAPES = 2.5;
/** A scrape interval common with Prometheus, assumed when the source does not know its own. */
const ASSUMED_SCRAPE_INTERVAL_MS = 30_000;

/** The checks a run performs (each gets an equal share of the false-alarm budget). */
function activeChecks(s: AnalysisSettings): string[] {
  const checks: string[] = [];
  if (s.errors) checks.push("errors");
  if (s.latency) checks.push("latency", "tail");
  if (s.maxErrorRatio !== undefined) checks.push("error guard");
  if (s.latencyLimit !== undefined) checks.push("latency guard");
  return checks;
}

const pct = (x: number | undefined, digits = 2) => (x === undefined || Number.isNaN(x) ? "-" : `${(x * 100).toFixed(digits)}%`);
const ms = (s: number | undefined) => (s === undefined || Number.isNaN(s) ? "-" : `${Math.round(s * 1000)} ms`);
const pow10 = (logE: number) => `10^${(logE / Math.LN10).toFixed(1)}`;

/** The highest totals a run has seen of one version: what later looks are counted from. */
export interface HighWater {
  requests: number;
  errors: number;
  /** Per bucket (not cumulative). */
  counts?: number[];
}

/**
 * What a look adds over the last ones: totals above the high-water marks. Both sources answer
 * with increase() since the run began, which already handles counter resets; Prometheus
 * extrapolates to the window's edges, so its totals may also dip when traffic slows. A dip
 * adds nothing, and the next rise counts only past the earlier high.
 */
function added(now: VersionTotals | undefined, seen: HighWater | undefined): { n: number; x: number; buckets: number[] | undefined; mark: HighWater } {
  const n1 = now?.requests ?? 0;
  const x1 = now?.errors ?? 0;
  const n0 = seen?.requests ?? 0;
  const x0 = seen?.errors ?? 0;
  const counts = now?.buckets ? bucketCounts(now.buckets) : undefined;
  const prior = seen?.counts;
  const mark: HighWater = { requests: Math.max(n0, n1), errors: Math.max(x0, x1) };
  if (counts || prior) mark.counts = (counts ?? prior ?? []).map((c, i) => Math.max(c, prior?.[i] ?? 0));
  return {
    n: Math.max(0, n1 - n0),
    x: Math.max(0, x1 - x0),
    buckets: counts?.map((c, i) => Math.max(0, c - (prior?.[i] ?? 0))),
    mark,
  };
}

/** Requests at or below `le` in cumulative buckets. */
function atOrBelow(buckets: Array<{ le: number; count: number }> | undefined, le: number): number {
  let best = 0;
  for (const b of buckets ?? []) if (b.le <= le) best = Math.max(best, b.count);
  return best;
}

function quantile(buckets: Array<{ le: number; count: number }> | undefined, q: number): number | undefined {
  if (!buckets || buckets.length < 2) return undefined;
  const total = buckets[buckets.length - 1]!.count;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe;
      const inBucket = b.count - prevCount;
      return inBucket > 0 ? prevLe + (b.le - prevLe) * ((rank - prevCount) / inBucket) : b.le;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

function summary(t: VersionTotals | undefined): VersionSummary {
  const requests = t?.requests ?? 0;
  const errors = t?.errors ?? 0;
  const out: VersionSummary = { requests, errors, errorRatio: requests > 0 ? errors / requests : undefined };
  const p50 = quantile(t?.buckets, 0.5);
  const p99 = quantile(t?.buckets, 0.99);
  if (p50 !== undefined) out.p50 = p50;
  if (p99 !== undefined) out.p99 = p99;
  return out;
}

/**
 * One look: folds the observation into the run and returns the run after it. A terminal run
 * (anything but Running) is returned unchanged.
 *
 * @example
 * let run = startAnalysis(t0);
 * run = judge(run, { at: t0 + 5000, canary: { requests: 100, errors: 9 }, baseline: { requests: 100, errors: 0 } }, settings);
 * run.phase; // "Running" until the evidence is enough, then "Failed" with run.reason saying why
 */
export function judge(prevRun: AnalysisRun, obs: AnalysisObservation, s: AnalysisSettings): AnalysisRun {
  if (prevRun.phase !== "Running") return prevRun;
  const run: AnalysisRun = structuredClone(prevRun);
  run.looks++;
  if (obs.error !== undefined) {
    run.consecutiveErrors++;
    if (obs.fatal) {
      run.phase = "Error";
      run.reason = `the analysis cannot be evaluated: ${obs.error}`;
    } else if (run.consecutiveErrors >= s.errorLimit) {
      run.phase = "Error";
      run.reason = `the metrics source failed ${run.consecutiveErrors} times in a row: ${obs.error}`;
    } else {
      run.reason = `the metrics source failed (${run.consecutiveErrors} of ${s.errorLimit} allowed in a row): ${obs.error}`;
    }
    return run;
  }
  run.consecutiveErrors = 0;
  delete run.reason;

  const checks = activeChecks(s);
  const alpha = (1 - s.confidence) / Math.max(1, checks.length + s.custom.length);
  const needed = Math.log(1 / alpha);
  const plannedLooks = Math.ceil(s.durationMs / s.intervalMs) + 2;
  const zCrit = normalQuantile(1 - alpha / plannedLooks);

  const dc = added(obs.canary, run.prev?.canary);
  const db = added(obs.baseline, run.prev?.baseline);
  const canary = summary(obs.canary);
  const baseline = summary(obs.baseline);
  const results: CheckResult[] = [];
  const failures: string[] = [];

  if (s.errors) {
    run.errorsLLR = twoSampleRateUpdate(run.errorsLLR, dc, db);
    const lr = logMixture(run.errorsLLR);
    const fail = rejects(run.errorsLLR, alpha) && canary.errorRatio !== undefined && canary.errorRatio > (baseline.errorRatio ?? 0);
    const detail = `canary ${pct(canary.errorRatio)} (${canary.errors}/${canary.requests}) vs baseline ${pct(baseline.errorRatio)} (${baseline.errors}/${baseline.requests}); evidence ${pow10(lr)}, fails at ${pow10(needed)}`;
    results.push({ name: "error ratio", status: fail ? "fail" : canary.requests > 0 && baseline.requests > 0 ? "watching" : "no-data", detail });
    if (fail) failures.push(`error ratio: ${detail}`);
  }

  if (s.latency) {
    const cb = obs.canary?.buckets;
    const bb = obs.baseline?.buckets;
    if (cb && bb && cb.length === bb.length) {
      const mw = mannWhitney(bucketCounts(cb), bucketCounts(bb), s.latencyMargin);
      const fail = mw.z > zCrit;
      const detail = `p50 ${ms(canary.p50)} vs ${ms(baseline.p50)}, p99 ${ms(canary.p99)} vs ${ms(baseline.p99)}; Mann-Whitney U=${Math.round(mw.u)}, P(canary slower)=${mw.auc.toFixed(3)}, z=${mw.z.toFixed(2)}, fails above ${zCrit.toFixed(2)}`;
      results.push({ name: "latency", status: fail ? "fail" : "watching", detail });
      if (fail) failures.push(`latency: ${detail}`);
      // Tail: the share of requests slower than a bucket bound, canary against baseline, by the
      // same mSPRT as errors. The bound is the p90 bucket bound of both versions' requests
      // together: under "no worse" which version served a request says nothing about its
      // latency, so a bound read off the pooled histogram leaves the test valid, and the requests
      // that chose it count too (the test starts with everything since the run began).
      if (run.tailLe !== undefined && dc.buckets && db.buckets) {
        const le = run.tailLe;
        const slowC = { n: dc.n, x: Math.max(0, dc.n - sumUpTo(dc.buckets, cb, le)) };
        const slowB = { n: db.n, x: Math.max(0, db.n - sumUpTo(db.buckets, bb, le)) };
        run.tailLLR = twoSampleRateUpdate(run.tailLLR, slowC, slowB);
      }
      if (run.tailLe === undefined && canary.requests + baseline.requests >= TAIL_MIN_REQUESTS) {
        const pooled = cb.map((b, i) => ({ le: b.le, count: b.count + (bb[i]?.count ?? 0) }));
        const total = pooled[pooled.length - 1]!.count;
        const bound = pooled.find((b) => b.le !== Infinity && total - b.count <= TAIL_SHARE * total);
        if (bound) {
          run.tailLe = bound.le;
          run.tailLLR = twoSampleRateUpdate(run.tailLLR, slowSoFar(dc.mark, cb, bound.le), slowSoFar(db.mark, bb, bound.le));
        }
      }
      if (run.tailLe !== undefined) {
        const le = run.tailLe;
        const shareC = canary.requests > 0 ? 1 - atOrBelow(cb, le) / canary.requests : undefined;
        const shareB = baseline.requests > 0 ? 1 - atOrBelow(bb, le) / baseline.requests : undefined;
        const lr = logMixture(run.tailLLR);
        const tailFail = rejects(run.tailLLR, alpha) && (shareC ?? 0) > (shareB ?? 0);
        const tdetail = `slower than ${ms(le)}: canary ${pct(shareC)} vs baseline ${pct(shareB)}; evidence ${pow10(lr)}, fails at ${pow10(needed)}`;
        results.push({ name: "latency tail", status: tailFail ? "fail" : "watching", detail: tdetail });
        if (tailFail) failures.push(`latency tail: ${tdetail}`);
      } else {
        results.push({ name: "latency tail", status: "no-data", detail: `waits for ${TAIL_MIN_REQUESTS} requests of both versions together to fix its threshold (has ${canary.requests + baseline.requests})` });
      }
    } else {
      results.push({ name: "latency", status: "no-data", detail: "no latency histogram for both versions yet" });
    }
  }

  if (s.maxErrorRatio !== undefined) {
    run.guardErrorsLLR = oneSampleRateUpdate(run.guardErrorsLLR, s.maxErrorRatio, dc);
    const lr = logMixture(run.guardErrorsLLR);
    const fail = rejects(run.guardErrorsLLR, alpha);
    const detail = `canary ${pct(canary.errorRatio)} against a limit of ${pct(s.maxErrorRatio)}; evidence ${pow10(lr)}, fails at ${pow10(needed)}`;
    results.push({ name: "error ratio limit", status: fail ? "fail" : "watching", detail });
    if (fail) failures.push(`error ratio limit: ${detail}`);
  }

  if (s.latencyLimit !== undefined) {
    const { seconds, maxSlowRatio, source } = s.latencyLimit;
    const cb = obs.canary?.buckets;
    if (cb && cb.length >= 2 && dc.buckets) {
      // Requests slower than the limit itself, the ones in the bucket holding it counted by linear
      // interpolation (as histogram_quantile assumes, and as the SLO's own burn rate counts them):
      // "at most 1% slower than 300 ms" is then "the interpolated p99 is at most 300 ms".
      const slowShare = fractionAbove(seconds, cumulative(dc.buckets, cb));
      const slow = { n: dc.n, x: Number.isNaN(slowShare) ? 0 : Math.min(dc.n, slowShare * dc.n) };
      run.guardLatencyLLR = oneSampleRateUpdate(run.guardLatencyLLR, maxSlowRatio, slow);
      const above = fractionAbove(seconds, cb);
      const share = Number.isNaN(above) ? undefined : above;
      const q = 1 - maxSlowRatio;
      const lr = logMixture(run.guardLatencyLLR);
      const fail = rejects(run.guardLatencyLLR, alpha);
      const detail = `canary p${+(q * 100).toFixed(2)} ${ms(quantile(cb, q))} against a limit of ${ms(seconds)} (${source}): ${pct(share)} of its requests slower, at most ${pct(maxSlowRatio)} allowed; evidence ${pow10(lr)}, fails at ${pow10(needed)}`;
      results.push({ name: "latency limit", status: fail ? "fail" : "watching", detail });
      if (fail) failures.push(`latency limit: ${detail}`);
    } else {
      results.push({ name: "latency limit", status: "no-data", detail: "no latency histogram of the canary yet" });
    }
  }

  for (const m of s.custom) {
    const value = obs.custom?.[m.name];
    if (value === undefined || Number.isNaN(value)) {
      results.push({ name: m.name, status: "no-data", detail: `${m.query} returned no data` });
      continue;
    }
    if (!run.customSeen.includes(m.name)) run.customSeen.push(m.name);
    const out = (m.max !== undefined && value > m.max) || (m.min !== undefined && value < m.min);
    run.customBreaches[m.name] = out ? (run.customBreaches[m.name] ?? 0) + 1 : 0;
    const breaches = run.customBreaches[m.name] ?? 0;
    const fail = breaches >= m.failureLimit;
    const bounds = [m.min !== undefined ? `>= ${m.min}` : "", m.max !== undefined ? `<= ${m.max}` : ""].filter(Boolean).join(" and ");
    const detail = `${value} (must be ${bounds}; out of bounds ${breaches} of ${m.failureLimit} looks in a row)`;
    results.push({ name: m.name, status: fail ? "fail" : "watching", detail });
    if (fail) failures.push(`${m.name}: ${detail}`);
  }

  const elapsedMs = obs.at - run.startedAt;
  run.prev = { canary: dc.mark, baseline: db.mark };
  run.evidence = { at: obs.at, elapsedMs, looks: run.looks, canary, baseline, checks: results };
  run.flow = follow(run.flow, obs.at, canary.requests, baseline.requests);

  if (failures.length > 0) {
    run.phase = "Failed";
    run.reason = failures.join("; ");
    return run;
  }
  // Numbers that stop moving while the canary has weight may be a source that stopped (a gateway
  // no longer scraped, Prometheus no longer scraping it), not a quiet canary. While their stillness
  // is implausible at the rate seen, the run never passes; once it has lasted longer than a late
  // scrape or a lull in traffic explains, it is an Error (and the rollout pauses).
  // Weight 0 (only `match` rules send requests, which may stop for good reasons) is exempt. Manifests
  // refuse an analysis with no weighted step before it, but the exemption is still reachable: a
  // service spec stored before that rule is what `keelson deploy` rolls out (it does not check the
  // manifest again), and a rollout may have begun under an older control plane.
  const stall = obs.weight === 0 ? undefined : stalled(run.flow, obs.at);
  const boundMs = Math.max(STALL_LOOKS * s.intervalMs, STALL_MIN_MS, STALL_SCRAPES * (obs.scrapeIntervalMs ?? ASSUMED_SCRAPE_INTERVAL_MS));
  const from = obs.source ?? "the metrics source";
  if (stall !== undefined && run.flow !== undefined) {
    const stillMs = obs.at - run.flow.movedAt;
    const still = `neither version's request count rose in ${Math.round(stillMs / 1000)} s (${run.flow.stillLooks} look${run.flow.stillLooks === 1 ? "" : "s"}), though at the ${stall.perSecond.toFixed(1)}/s seen since the first look about ${Math.round(stall.expected)} requests would have come`;
    if (run.flow.stillLooks >= STALL_LOOKS && stillMs >= boundMs) {
      run.phase = "Error";
      run.reason = `the metrics stopped changing: ${still}; the numbers come from ${from}: is it stuck, or no longer scraping the gateway?`;
      return run;
    }
    run.reason = `waiting for the metrics to move again: ${still}; an Error if they are still after ${Math.round(boundMs / 1000)} s (numbers from ${from})`;
  }
  if (elapsedMs >= s.durationMs && stall === undefined) {
    const short = [canary.requests < s.minRequests ? `canary ${canary.requests}` : "", baseline.requests < s.minRequests ? `baseline ${baseline.requests}` : ""].filter(Boolean);
    const silent = s.custom.filter((m) => !run.customSeen.includes(m.name)).map((m) => m.name);
    // Never a pass on numbers that have not moved for longer than a late scrape explains while the
    // canary has weight: too little traffic to call it a stalled source (see stalled), but the
    // source may as well have stopped. The rollout pauses and says so.
    const stillMs = run.flow !== undefined && run.flow.stillLooks > 0 ? obs.at - run.flow.movedAt : 0;
    if (obs.weight !== 0 && stillMs >= boundMs) {
      run.phase = "Inconclusive";
      run.reason = `no new request of either version in the last ${Math.round(stillMs / 1000)} s: the traffic stopped, or ${from} did; not passing on numbers that do not move`;
    } else if (short.length > 0) {
      run.phase = "Inconclusive";
      run.reason = `too little traffic to judge in ${Math.round(elapsedMs / 1000)} s: ${short.join(", ")} requests (each version needs ${s.minRequests})`;
    } else if (silent.length > 0) {
      run.phase = "Inconclusive";
      run.reason = `no data in ${Math.round(elapsedMs / 1000)} s for ${silent.join(", ")}`;
    } else {
      run.phase = "Successful";
      run.reason = `no check failed in ${Math.round(elapsedMs / 1000)} s: canary ${pct(canary.errorRatio)} errors, p99 ${ms(canary.p99)} over ${canary.requests} requests; baseline ${pct(baseline.errorRatio)}, p99 ${ms(baseline.p99)} over ${baseline.requests}`;
    }
  }
  return run;
}

/** The flow after a look that read `canary` and `baseline` requests (totals since the run began). */
function follow(flow: RequestFlow | undefined, at: number, canary: number, baseline: number): RequestFlow | undefined {
  const total = canary + baseline;
  if (flow === undefined) return total > 0 ? { firstAt: at, first: total, movedAt: at, moved: total, last: [canary, baseline], stillLooks: 0 } : undefined;
  // A total that dips (Prometheus extrapolates) and comes back rises against the look before.
  const rose = canary > flow.last[0] || baseline > flow.last[1];
  return rose ? { ...flow, movedAt: at, moved: total, last: [canary, baseline], stillLooks: 0 } : { ...flow, last: [canary, baseline], stillLooks: flow.stillLooks + 1 };
}

/**
 * Whether the totals have been still for longer than the rate seen makes likely: the rate over the
 * time from the first look with requests to now (the first look may hold requests from before the
 * run, so it counts from there; measured to the last rise instead, a burst right after the first
 * look would make any lull after it look implausible), and at least STALL_EXPECTED requests it
 * would have brought since the last rise. Undefined: not stalled.
 */
function stalled(flow: RequestFlow | undefined, at: number): { perSecond: number; expected: number } | undefined {
  if (flow === undefined || flow.stillLooks === 0 || !(flow.movedAt > flow.firstAt) || !(at > flow.movedAt)) return undefined;
  const perMs = (flow.moved - flow.first) / (at - flow.firstAt);
  const expected = perMs * (at - flow.movedAt);
  return expected >= STALL_EXPECTED ? { perSecond: perMs * 1000, expected } : undefined;
}

/** Slow requests (above bound `le`) since the run began, from a version's high-water marks. */
function slowSoFar(mark: HighWater, bounds: Array<{ le: number }>, le: number): { n: number; x: number } {
  if (mark.counts === undefined) return { n: 0, x: 0 };
  return { n: mark.requests, x: Math.max(0, mark.requests - sumUpTo(mark.counts, bounds, le)) };
}

/** An interval's per-bucket counts (not cumulative) as cumulative buckets with the bounds of `bounds`. */
function cumulative(perBucket: number[], bounds: Array<{ le: number }>): Array<{ le: number; count: number }> {
  let sum = 0;
  return perBucket.map((c, i) => ({ le: bounds[i]?.le ?? Infinity, count: (sum += c) }));
}

/**
 * Requests of an interval at or below bound `le`: the interval's per-bucket counts (not
 * cumulative) summed over the buckets whose bound (read from `bounds`) is at most `le`.
 */
function sumUpTo(perBucket: number[], bounds: Array<{ le: number }>, le: number): number {
  let sum = 0;
  for (let i = 0; i < perBucket.length; i++) if ((bounds[i]?.le ?? Infinity) <= le) sum += perBucket[i] ?? 0;
  return sum;
}

/** Where to read a run's numbers. */
export interface AnalysisTarget {
  service: string;
  canary: string;
  baseline: string;
}

/**
 * Reads both versions' totals since `since` (and the custom metrics) from a metrics source.
 * Never rejects: a failing source becomes `error`, which `judge` counts towards Error.
 */
export async function observe(source: MetricsSource, target: AnalysisTarget, settings: AnalysisSettings, since: number, at = Date.now()): Promise<AnalysisObservation> {
  const window = Math.max(1000, at - since);
  try {
    const read = async (version: string): Promise<VersionTotals | undefined> => {
      const [counts, buckets] = await Promise.all([
        settings.errors || settings.latency || settings.maxErrorRatio !== undefined || settings.latencyLimit !== undefined ? source.counts({ service: target.service, version, window, at }) : undefined,
        settings.latency || settings.latencyLimit !== undefined ? source.latencyBuckets({ service: target.service, version, window, at }) : undefined,
      ]);
      if (counts === undefined) return undefined;
      return { ...counts, ...(buckets ? { buckets } : {}) };
    };
    const [canary, baseline] = await Promise.all([read(target.canary), read(target.baseline)]);
    const custom: Record<string, number | undefined> = {};
    for (const m of settings.custom) {
      const query = m.query.replaceAll("{{service}}", target.service).replaceAll("{{canary}}", target.canary).replaceAll("{{baseline}}", target.baseline);
      custom[m.name] = await source.query(query, { at });
    }
    const scrape = source.scrapeIntervalMs;
    return { at, ...(canary ? { canary } : {}), ...(baseline ? { baseline } : {}), custom, source: source.description, ...(scrape !== undefined ? { scrapeIntervalMs: scrape } : {}) };
  } catch (err) {
    const fatal = err instanceof KeelsonError && err.code === "KEELSON_ERR_INVALID_INPUT";
    return { at, error: err instanceof Error ? err.message : String(err), ...(fatal ? { fatal } : {}) };
  }
}

/** What the built-in analysis provider needs of the gateway scraper. */
export interface ScrapeRounds {
  /** One round over every gateway now (joining one in flight); never rejects. */
  scrapeOnce(): Promise<ScrapeTarget[]>;
  /** Time between its own rounds, the store's scrape interval (see judge on still numbers). */
  readonly intervalMs?: number;
}

/**
 * Where analysis reads its numbers with the built-in metric store: it scrapes every gateway into
 * the store right before each look, then reads. The store keeps answering from what it holds when
 * a scrape fails, so counts would freeze and a canary pass on stale numbers: a look after a failed
 * scrape, or with a gateway whose last good scrape is older than `maxAgeMs` before the look, is a
 * failed read instead (an Error after `errorLimit` of them in a row). That holds for a gateway
 * scraped successfully since the analysis began (it carried, or could have carried, the run's
 * traffic, and has gone mid-run); one failing since before then (a gateway gone but still listed
 * for the registry's TTL, an address never reachable) is left out and logged once, unless no
 * gateway at all was scraped for the look.
 *
 * @example
 * const analysis = createBuiltinAnalysisProvider({ scraper, source: createBuiltinMetricsSource(metricStore) });
 * await analysis.observe({ service: "orders", canary: "r-2", baseline: "b-1" }, settings, since);
 */
export function createBuiltinAnalysisProvider(options: {
  scraper: ScrapeRounds;
  source: MetricsSource;
  /**
   * Oldest good scrape a look accepts, before the look began (default: the analysis interval plus
   * 5 s, the scraper's longest wait: a look may join a round that began before it).
   */
  maxAgeMs?: number;
  now?: () => number;
  /** Told once when a gateway is left out (failing since before the analysis began). */
  log?: { warn(o: object, m?: string): void };
}): { observe(target: AnalysisTarget, settings: AnalysisSettings, since: number): Promise<AnalysisObservation> } {
  const now = options.now ?? Date.now;
  /** Gateways left out and logged, until they answer again. */
  const leftOut = new Set<string>();
  return {
    async observe(target, settings, since) {
      const lookAt = now();
      const scraped = await options.scraper.scrapeOnce();
      const { problem, ignored } = scrapeProblems(scraped, { fresh: lookAt - (options.maxAgeMs ?? settings.intervalMs + 5_000), runStart: since, lookAt });
      for (const url of leftOut) if (!ignored.some((i) => i.url === url)) leftOut.delete(url);
      for (const i of ignored) {
        if (leftOut.has(i.url)) continue;
        leftOut.add(i.url);
        options.log?.warn({ gateway: i.url, service: target.service, problem: i.why }, "canary analysis leaves out a gateway not scraped successfully since the analysis began (it carried none of its traffic)");
      }
      if (problem !== undefined) return { at: now(), error: problem };
      const obs = await observe(options.source, target, settings, since, now());
      const interval = options.scraper.intervalMs;
      return interval === undefined ? obs : { ...obs, scrapeIntervalMs: interval };
    },
  };
}

/**
 * Why a scrape round's numbers are not good enough for a look, if they are not (good scrapes must
 * begin at `fresh` or later), and the gateways left out: failing, but not scraped successfully
 * since `runStart`, so none of the run's counts are missing with them.
 */
function scrapeProblems(targets: readonly ScrapeTarget[], o: { fresh: number; runStart: number; lookAt: number }): { problem?: string; ignored: Array<{ url: string; why: string }> } {
  if (targets.length === 0) return { problem: "no gateway to scrape metrics from", ignored: [] };
  const counted: string[] = [];
  const ignored: Array<{ url: string; why: string }> = [];
  for (const t of targets) {
    const why =
      t.lastError !== undefined
        ? `the scrape failed: ${t.lastError}`
        : t.lastSuccessAt === undefined
          ? "never scraped successfully"
          : t.lastSuccessAt < o.fresh
            ? `last scraped successfully ${Math.round((o.lookAt - t.lastSuccessAt) / 1000)} s before this look`
            : undefined;
    if (why === undefined) continue;
    if (t.lastSuccessAt !== undefined && t.lastSuccessAt >= o.runStart) counted.push(`gateway metrics at ${t.url}: ${why}`);
    else ignored.push({ url: t.url, why });
  }
  if (counted.length > 0) return { problem: counted.join("; "), ignored };
  // Every gateway left out: no numbers of this run at all, a failed read rather than a quiet one.
  if (ignored.length === targets.length) return { problem: `no gateway scraped successfully since the analysis began: ${ignored.map((i) => `gateway metrics at ${i.url}: ${i.why}`).join("; ")}`, ignored };
  return { ignored };
}
