// The statistics of experiments, pure arithmetic on counts so tests and simulations run the very
// code the control plane answers with.
//
// - Lift: an asymptotic confidence sequence for the difference of conversion rates. Unlike a
//   fixed-sample interval it may be looked at after every event and still covers the true
//   difference at all times at once with probability 1 - alpha, so "peeking" until the interval
//   leaves 0 does not inflate false wins.
// - Error ratio (the gateway side): the same confidence sequence for the difference of the
//   variants' shares of failed requests, where lower is better; or, where the counts are not one
//   sample growing from the experiment's start, only each variant's Wilson interval (descriptive).
// - Sample ratio mismatch: a chi-squared goodness-of-fit test of exposed users per variant
//   against the split's weights; p < 0.001 means assignment or exposure logging is broken and
//   no lift can be trusted.
// (`normalQuantile` and `wilson` live here; canary analysis, a layer above, imports them.)

/** Conversion counts of one variant. */
export interface VariantCounts {
  variant: string;
  /** Unique users exposed to the variant. */
  users: number;
  /** Of those, users who converted (each counted once). */
  conversions: number;
}

export interface Interval {
  estimate: number;
  low: number;
  high: number;
}

export type ComparisonVerdict = "treatment wins" | "control wins" | "no difference yet";
export type ExperimentVerdict = ComparisonVerdict | "broken: sample ratio mismatch";

export interface VariantStats extends VariantCounts {
  /** conversions / users; undefined without users. */
  rate: number | undefined;
  /** Wilson score interval of the rate at 1 - alpha (fixed-sample, for display). */
  ci: { low: number; high: number } | undefined;
}

export interface Comparison {
  variant: string;
  control: string;
  /** rate(variant) - rate(control), with the always-valid interval; undefined while an arm has no users. */
  absolute: Interval | undefined;
  /** rate(variant) / rate(control) - 1, always-valid too (delta method on the log ratio); undefined while a rate is 0. */
  relative: Interval | undefined;
  verdict: ComparisonVerdict;
}

export interface SampleRatioCheck {
  /** False when there is too little data (an expected count below 5) or fewer than two variants. */
  checked: boolean;
  chiSquared: number;
  df: number;
  p: number;
  broken: boolean;
  /** The share of users each variant should get, as tested. */
  expected: Record<string, number>;
}

export interface ExperimentAnalysis {
  alpha: number;
  variants: VariantStats[];
  comparisons: Comparison[];
  srm: SampleRatioCheck;
  verdict: ExperimentVerdict;
  /** The winning variant (the best treatment, or the control) when the verdict names one. */
  winner?: string;
}

export interface AnalyzeOptions {
  /** One minus the confidence of every interval (default 0.05); split over the treatments (Bonferroni). */
  alpha?: number;
  /** The sample ratio mismatch threshold (default 0.001). */
  srmAlpha?: number;
  /** Users (both arms) at which the confidence sequence is tightest (default 10,000). */
  optimizeAt?: number;
}

// --- the confidence sequence ---------------------------------------------------------------

/**
 * The mixture precision rho for which the normal-mixture boundary is (nearly) tightest after
 * `optimizeAt` observations: rho^2 = (-2 ln alpha + ln(1 - 2 ln alpha)) / optimizeAt
 * (Waudby-Smith et al. 2024, see `confidenceSequenceRadius`).
 */
export function mixtureRho(alpha: number, optimizeAt: number): number {
  const l = -2 * Math.log(alpha);
  return Math.sqrt((l + Math.log(1 + l)) / optimizeAt);
}

/**
 * Half-width of the two-sided asymptotic confidence sequence for a mean after n observations
 * with standard deviation `sd`:
 *
 *   radius_n = sd * sqrt( 2 (n rho^2 + 1) / (n^2 rho^2) * ln( sqrt(n rho^2 + 1) / alpha ) )
 *
 * This is the Gaussian-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon (2021),
 * "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2),
 * in the normalized form of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas (2024),
 * "Time-uniform central limit theory and asymptotic confidence sequences", Ann. Statist. 52(6)
 * (arXiv:2103.06476): the mixture martingale over N(0, rho^2) crosses 1/alpha exactly at this
 * radius, so by Ville's inequality mean ± radius covers the true mean at every n at once with
 * probability about 1 - alpha (asymptotically, with sd estimated).
 *
 * @example
 * confidenceSequenceRadius(10_000, 1, 0.05, mixtureRho(0.05, 10_000)); // 0.0303 (a fixed-n 95% interval: 0.0196)
 */
export function confidenceSequenceRadius(n: number, sd: number, alpha: number, rho: number): number {
  if (!(n > 0)) return Infinity;
  const r2 = rho * rho;
  const v = n * r2 + 1;
  return sd * Math.sqrt(((2 * v) / (n * n * r2)) * Math.log(Math.sqrt(v) / alpha));
}

/** A rate's variance p(1-p), from (x + 1/2) / (n + 1) so that 0 of n or n of n does not claim certainty. */
function bernoulliVariance(x: number, n: number): number {
  const p = (x + 0.5) / (n + 1);
  return p * (1 - p);
}

/**
 * The always-valid interval for rate(treatment) - rate(control) after n = n_t + n_c users. With
 * random assignment the difference in means is asymptotically linear with per-user variance
 * v_t/pi_t + v_c/pi_c (pi: share of users in the arm), i.e. n (v_t/n_t + v_c/n_c) with the
 * observed shares; the confidence sequence above is applied to it.
 */
export function differenceSequence(treatment: VariantCounts, control: VariantCounts, alpha: number, optimizeAt: number): Interval | undefined {
  const nt = treatment.users;
  const nc = control.users;
  if (!(nt > 0 && nc > 0)) return undefined;
  const n = nt + nc;
  const estimate = treatment.conversions / nt - control.conversions / nc;
  const sd = Math.sqrt(n * (bernoulliVariance(treatment.conversions, nt) / nt + bernoulliVariance(control.conversions, nc) / nc));
  const radius = confidenceSequenceRadius(n, sd, alpha, mixtureRho(alpha, optimizeAt));
  return { estimate, low: estimate - radius, high: estimate + radius };
}

/** The same for the relative lift, via the log of the ratio of rates (delta method). */
function relativeSequence(treatment: VariantCounts, control: VariantCounts, alpha: number, optimizeAt: number): Interval | undefined {
  const { users: nt, conversions: xt } = treatment;
  const { users: nc, conversions: xc } = control;
  if (!(nt > 0 && nc > 0 && xt > 0 && xc > 0)) return undefined;
  const n = nt + nc;
  const pt = (xt + 0.5) / (nt + 1);
  const pc = (xc + 0.5) / (nc + 1);
  const sd = Math.sqrt(n * ((1 - pt) / (nt * pt) + (1 - pc) / (nc * pc)));
  const radius = confidenceSequenceRadius(n, sd, alpha, mixtureRho(alpha, optimizeAt));
  const log = Math.log(xt / nt / (xc / nc));
  return { estimate: Math.exp(log) - 1, low: Math.exp(log - radius) - 1, high: Math.exp(log + radius) - 1 };
}

// --- sample ratio mismatch ----------------------------------------------------------------

/** ln Γ(x) for x > 0: Lanczos' series as in Numerical Recipes' gammln (absolute error below 2e-10). */
export function logGamma(x: number): number {
  const cof = [76.18009172947146, -86.50532032941678, 24.01409824083091, -1.231739572450155, 0.001208650973866179, -5.395239384953e-6];
  let tmp = x + 5.5;
  tmp -= (x + 0.5) * Math.log(tmp);
  let ser = 1.000000000190015;
  for (let j = 0; j < cof.length; j++) ser += (cof[j] as number) / (x + j + 1);
  return -tmp + Math.log((2.5066282746310007 * ser) / x);
}

/**
 * The regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a): the series for
 * P = 1 - Q below x = a + 1, else the continued fraction for Q (modified Lentz), which keeps
 * full relative precision far into the tail (Numerical Recipes, 3rd ed., 6.2).
 */
export function regularizedGammaQ(a: number, x: number): number {
  if (!(a > 0) || Number.isNaN(x)) return NaN;
  if (x <= 0) return 1;
  if (x === Infinity) return 0;
  const front = a * Math.log(x) - x - logGamma(a);
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 10_000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-16) break;
    }
    return Math.max(0, 1 - sum * Math.exp(front));
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(front) * h;
}

/**
 * P(X >= x) for X chi-squared with `df` degrees of freedom.
 *
 * @example
 * chiSquaredSurvival(3.841458820694124, 1); // 0.05
 */
export function chiSquaredSurvival(x: number, df: number): number {
  return regularizedGammaQ(df / 2, x / 2);
}

/**
 * Chi-squared goodness of fit of observed users per variant against expected weights (any
 * positive scale; a variant without weight is left out of the test). `checked` is false while
 * an expected count is below 5, where the chi-squared approximation is poor.
 *
 * @example
 * sampleRatioMismatch({ on: 5500, off: 4500 }, { on: 50, off: 50 }).broken; // true (p ≈ 1.5e-23)
 */
export function sampleRatioMismatch(observed: Record<string, number>, weights: Record<string, number>, threshold = 0.001): SampleRatioCheck {
  const names = Object.keys(weights).filter((v) => (weights[v] ?? 0) > 0);
  const totalWeight = names.reduce((s, v) => s + (weights[v] as number), 0);
  const expected: Record<string, number> = {};
  for (const v of names) expected[v] = (weights[v] as number) / totalWeight;
  const n = names.reduce((s, v) => s + (observed[v] ?? 0), 0);
  const df = names.length - 1;
  if (df < 1 || names.some((v) => n * (expected[v] as number) < 5)) return { checked: false, chiSquared: 0, df: Math.max(0, df), p: 1, broken: false, expected };
  let chiSquared = 0;
  for (const v of names) {
    const e = n * (expected[v] as number);
    const d = (observed[v] ?? 0) - e;
    chiSquared += (d * d) / e;
  }
  const p = chiSquaredSurvival(chiSquared, df);
  return { checked: true, chiSquared, df, p, broken: p < threshold, expected };
}

// --- intervals for display ----------------------------------------------------------------

/**
 * The standard normal quantile, Acklam's rational approximation (relative error below 1.2e-9).
 *
 * @example
 * normalQuantile(0.975); // 1.95996398…
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) return p === 0 ? -Infinity : p === 1 ? Infinity : NaN;
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const tail = (q: number) => (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/**
 * Wilson score interval of a proportion at confidence z.
 *
 * @example
 * wilson(5, 100, 1.96); // { low: 0.0215, high: 0.1118 }
 */
export function wilson(x: number, n: number, z: number): { low: number; high: number } {
  if (!(n > 0)) return { low: 0, high: 1 };
  const p = x / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

// --- the analysis ---------------------------------------------------------------------------

/**
 * Analyzes an experiment: rates per variant, every treatment against the control with
 * always-valid intervals, the sample ratio check and a verdict. Higher conversion is better.
 * With several treatments alpha is divided among them, so the chance of any false win stays
 * at most alpha.
 *
 * @example
 * analyzeExperiment([{ variant: "off", users: 5000, conversions: 400 }, { variant: "on", users: 5000, conversions: 600 }], "off", { on: 1, off: 1 }).verdict; // "treatment wins"
 */
export function analyzeExperiment(variants: VariantCounts[], control: string, weights: Record<string, number>, options: AnalyzeOptions = {}): ExperimentAnalysis {
  const alpha = options.alpha ?? 0.05;
  const optimizeAt = options.optimizeAt ?? 10_000;
  const z = normalQuantile(1 - alpha / 2);
  const stats: VariantStats[] = variants.map((v) => ({
    ...v,
    rate: v.users > 0 ? v.conversions / v.users : undefined,
    ci: v.users > 0 ? wilson(v.conversions, v.users, z) : undefined,
  }));
  const base = variants.find((v) => v.variant === control) ?? { variant: control, users: 0, conversions: 0 };
  const treatments = variants.filter((v) => v.variant !== control);
  const each = alpha / Math.max(1, treatments.length);
  const comparisons: Comparison[] = treatments.map((t) => {
    const absolute = differenceSequence(t, base, each, optimizeAt);
    const verdict: ComparisonVerdict = absolute === undefined ? "no difference yet" : absolute.low > 0 ? "treatment wins" : absolute.high < 0 ? "control wins" : "no difference yet";
    return { variant: t.variant, control, absolute, relative: relativeSequence(t, base, each, optimizeAt), verdict };
  });
  const srm = sampleRatioMismatch(Object.fromEntries(variants.map((v) => [v.variant, v.users])), weights, options.srmAlpha ?? 0.001);
  const out: ExperimentAnalysis = { alpha, variants: stats, comparisons, srm, verdict: "no difference yet" };
  if (srm.broken) {
    out.verdict = "broken: sample ratio mismatch";
    return out;
  }
  const wins = comparisons.filter((c) => c.verdict === "treatment wins").sort((a, b) => (b.absolute?.estimate ?? 0) - (a.absolute?.estimate ?? 0));
  if (wins.length > 0) {
    out.verdict = "treatment wins";
    out.winner = (wins[0] as Comparison).variant;
  } else if (comparisons.length > 0 && comparisons.every((c) => c.verdict === "control wins")) {
    out.verdict = "control wins";
    out.winner = control;
  }
  return out;
}

// --- the gateway side: error ratios --------------------------------------------------------

/** Requests of one variant that the gateway routed by the experiment's flag. */
export interface VariantRequests {
  variant: string;
  /** Requests answered (errors included). */
  requests: number;
  /** Of those, 5xx answers (the service failed, did not answer in time or could not be reached). */
  errors: number;
}

export interface VariantErrorStats extends VariantRequests {
  /** errors / requests; undefined without requests. */
  errorRatio: number | undefined;
  /** Wilson score interval of the error ratio at 1 - alpha (fixed-sample, for display, as a conversion rate's). */
  ci: { low: number; high: number } | undefined;
}

export interface ErrorRatioComparison {
  variant: string;
  control: string;
  /** errorRatio(variant) - errorRatio(control), with the always-valid interval; undefined while an arm has no requests. */
  difference: Interval | undefined;
  /** Fewer errors win: "treatment wins" when the interval is below 0, "control wins" when above. */
  verdict: ComparisonVerdict;
}

export interface ErrorRatioAnalysis {
  alpha: number;
  variants: VariantErrorStats[];
  comparisons: ErrorRatioComparison[];
  verdict: ComparisonVerdict;
  /** The variant with the fewest errors (the best treatment, or the control) when the verdict names one. */
  winner?: string;
}

/**
 * Each variant's error ratio with its Wilson interval at 1 - alpha, and nothing more: what can be
 * said of counts that are not one sample growing from the experiment's start (a window that
 * starts later, or one that mixes splits), where no always-valid difference or verdict holds.
 *
 * @example
 * describeErrorRatios([{ variant: "v1", requests: 200, errors: 2 }])[0]?.errorRatio; // 0.01
 */
export function describeErrorRatios(variants: VariantRequests[], options: { alpha?: number } = {}): VariantErrorStats[] {
  const z = normalQuantile(1 - (options.alpha ?? 0.05) / 2);
  return variants.map((v) => ({
    ...v,
    errorRatio: v.requests > 0 ? v.errors / v.requests : undefined,
    ci: v.requests > 0 ? wilson(v.errors, v.requests, z) : undefined,
  }));
}

/**
 * Compares the variants' error ratios with the control's, as `analyzeExperiment` compares
 * conversion rates (the same always-valid confidence sequence, alpha split over the treatments),
 * but with requests for users and fewer errors better. Requests of one user are not independent,
 * so with a few heavy users the interval is narrower than it should be. Like any confidence
 * sequence it holds only for counts that are one sample growing from the experiment's start
 * (not a sliding window, nor counts restarted midway): otherwise use `describeErrorRatios`.
 *
 * @example
 * analyzeErrorRatios([{ variant: "v1", requests: 2000, errors: 2 }, { variant: "v2", requests: 2000, errors: 200 }], "v1").verdict; // "control wins"
 */
export function analyzeErrorRatios(variants: VariantRequests[], control: string, options: Omit<AnalyzeOptions, "srmAlpha"> = {}): ErrorRatioAnalysis {
  const alpha = options.alpha ?? 0.05;
  const optimizeAt = options.optimizeAt ?? 10_000;
  const counts = (v: VariantRequests): VariantCounts => ({ variant: v.variant, users: v.requests, conversions: v.errors });
  const stats = describeErrorRatios(variants, { alpha });
  const base = variants.find((v) => v.variant === control) ?? { variant: control, requests: 0, errors: 0 };
  const treatments = variants.filter((v) => v.variant !== control);
  const each = alpha / Math.max(1, treatments.length);
  const comparisons: ErrorRatioComparison[] = treatments.map((t) => {
    const difference = differenceSequence(counts(t), counts(base), each, optimizeAt);
    const verdict: ComparisonVerdict = difference === undefined ? "no difference yet" : difference.high < 0 ? "treatment wins" : difference.low > 0 ? "control wins" : "no difference yet";
    return { variant: t.variant, control, difference, verdict };
  });
  const out: ErrorRatioAnalysis = { alpha, variants: stats, comparisons, verdict: "no difference yet" };
  const wins = comparisons.filter((c) => c.verdict === "treatment wins").sort((a, b) => (a.difference?.estimate ?? 0) - (b.difference?.estimate ?? 0));
  if (wins.length > 0) {
    out.verdict = "treatment wins";
    out.winner = (wins[0] as ErrorRatioComparison).variant;
  } else if (comparisons.length > 0 && comparisons.every((c) => c.verdict === "control wins")) {
    out.verdict = "control wins";
    out.winner = control;
  }
  return out;
}
