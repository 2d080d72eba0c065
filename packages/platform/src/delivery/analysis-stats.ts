// The statistics canary analysis decides with. All of it is pure arithmetic on counts, so the
// live analysis and the simulation benchmark run the very same code.
//
// - Rates (errors, slow requests): a mixture sequential probability ratio test (mSPRT). It may
//   be looked at after every scrape and still keeps its false-alarm rate: under "the canary is
//   no worse" the mixture likelihood ratio is a non-negative martingale with mean 1, so by
//   Ville's inequality it ever reaches 1/alpha with probability at most alpha.
// - Latency: a one-sided Mann-Whitney U test on the two latency histograms (ties within a
//   bucket get mid-ranks), with alpha split evenly over the planned looks (Bonferroni), so
//   looking every few seconds does not inflate false alarms either.

// The normal quantile and the Wilson interval are shared with experiment statistics.
export { normalQuantile, wilson } from "../flags/index.js";

/** Relative increases of the canary's rate the mixture averages over (uniform weights). */
const RATIO_GRID: readonly number[] = [1.5, 2, 3, 5, 10, 20, 50];

/**
 * Two-sample sequential test of "canary rate <= baseline rate" against "canary rate is rho
 * times the baseline rate" for rho on RATIO_GRID, conditional on the failures seen.
 *
 * Per interval, given k failures over both versions and the requests each version served, the
 * canary's share of the failures is Binomial(k, nc/(nc+nb)) when both rates are equal (exactly
 * so for Poisson failures). The log likelihood ratios per rho add up over intervals; their
 * average (in linear space) is the mixture. State is a plain array, so it can be stored as JSON.
 */
export function twoSampleRateUpdate(logLR: readonly number[] | undefined, canary: { n: number; x: number }, baseline: { n: number; x: number }): number[] {
  const out = logLR ? [...logLR] : RATIO_GRID.map(() => 0);
  const { n: nc, x: xc } = canary;
  const { n: nb, x: xb } = baseline;
  if (!(nc > 0 && nb > 0) || !(xc + xb > 0)) return out;
  const pi0 = nc / (nc + nb);
  for (let i = 0; i < RATIO_GRID.length; i++) {
    const rho = RATIO_GRID[i] as number;
    const pi1 = (rho * nc) / (rho * nc + nb);
    out[i] = (out[i] as number) + xc * Math.log(pi1 / pi0) + xb * Math.log((1 - pi1) / (1 - pi0));
  }
  return out;
}

/**
 * One-sample sequential test of "rate <= limit" against rates of limit x RATIO_GRID (below 1):
 * for every alternative above the limit the likelihood ratio is a supermartingale under the
 * null, so the mixture keeps the false-alarm bound. Used by the absolute guards.
 */
export function oneSampleRateUpdate(logLR: readonly number[] | undefined, limit: number, sample: { n: number; x: number }): number[] {
  const out = logLR ? [...logLR] : RATIO_GRID.map(() => 0);
  const { n, x } = sample;
  if (!(n > 0) || !(limit > 0 && limit < 1)) return out;
  for (let i = 0; i < RATIO_GRID.length; i++) {
    const p1 = Math.min(0.999, limit * (RATIO_GRID[i] as number));
    if (p1 <= limit) continue;
    out[i] = (out[i] as number) + x * Math.log(p1 / limit) + (n - x) * Math.log((1 - p1) / (1 - limit));
  }
  return out;
}

/** log of the mixture likelihood ratio: log(mean(exp(logLR))), computed without overflow. */
export function logMixture(logLR: readonly number[] | undefined): number {
  if (!logLR || logLR.length === 0) return 0;
  const max = Math.max(...logLR);
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (const l of logLR) sum += Math.exp(l - max);
  return max + Math.log(sum / logLR.length);
}

/** The mixture crosses 1/alpha: the evidence against "no worse" is enough. */
export function rejects(logLR: readonly number[] | undefined, alpha: number): boolean {
  return logMixture(logLR) >= Math.log(1 / alpha);
}

/** Counts per bucket (not cumulative) from cumulative `{le, count}` buckets sorted by le. */
export function bucketCounts(cumulative: ReadonlyArray<{ le: number; count: number }>): number[] {
  const out: number[] = [];
  let prev = 0;
  for (const b of cumulative) {
    out.push(Math.max(0, b.count - prev));
    prev = Math.max(prev, b.count);
  }
  return out;
}

export interface MannWhitney {
  /** Canary and baseline sample sizes. */
  n1: number;
  n2: number;
  /** U of the canary: pairs where the canary is slower, ties counted half. */
  u: number;
  /** U / (n1 n2): the probability that a canary request is slower than a baseline one. */
  auc: number;
  /** Standardized U against the shifted null `auc <= 0.5 + margin` (tie-corrected variance). */
  z: number;
}

/**
 * One-sided Mann-Whitney U on two histograms over the same bucket bounds (`canary[i]` and
 * `baseline[i]` are the counts in bucket i). `margin` shifts the null so that a statistically
 * clear but negligible slowdown (AUC up to 0.5 + margin) is not a failure.
 *
 * @example
 * mannWhitney([0, 10, 90], [90, 10, 0], 0).auc; // 0.955
 */
export function mannWhitney(canary: readonly number[], baseline: readonly number[], margin = 0): MannWhitney {
  let n1 = 0;
  let n2 = 0;
  for (let i = 0; i < canary.length; i++) {
    n1 += canary[i] ?? 0;
    n2 += baseline[i] ?? 0;
  }
  const n = n1 + n2;
  if (n1 === 0 || n2 === 0) return { n1, n2, u: 0, auc: 0.5, z: 0 };
  let u = 0;
  let below = 0;
  let ties = 0;
  for (let i = 0; i < canary.length; i++) {
    const c = canary[i] ?? 0;
    const b = baseline[i] ?? 0;
    u += c * (below + b / 2);
    below += b;
    const t = c + b;
    ties += t * t * t - t;
  }
  const variance = ((n1 * n2) / 12) * (n + 1 - ties / (n * (n - 1)));
  const auc = u / (n1 * n2);
  const z = variance > 0 ? (u - (0.5 + margin) * n1 * n2) / Math.sqrt(variance) : 0;
  return { n1, n2, u, auc, z };
}
