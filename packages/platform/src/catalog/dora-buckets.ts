// The DORA performance buckets (elite, high, medium, low) of each of the four keys, and the
// medians they are taken of. Pure: numbers in, a bucket out.
//
// Sources: Google's Four Keys project (github.com/dora-team/fourkeys, METRICS.md and the
// dashboard queries: deployment frequency Daily/Weekly/Monthly/Yearly, lead time and time to
// restore cut at one day, one week and one month), which buckets "per the 2019 State of DevOps
// Report". Where that report gives several clusters the same range (time to restore: high and
// medium both "less than one day"; change failure rate: elite, high and medium all "0-15%"), the
// 2023 Accelerate State of DevOps report's clusters split them: recovery elite < 1 hour, high
// < 1 day, medium < 1 week; change failure rate elite 5%, high 10%, medium 15%, low above.

export type DoraBucket = "elite" | "high" | "medium" | "low";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** An upper bound (exclusive for times, inclusive for rates) and the bucket below it; anything above the last is low. */
interface Threshold {
  bucket: Exclude<DoraBucket, "low">;
  limit: number;
}

/** Median lead time for changes: Four Keys' cuts at 24 h, 168 h and 730 h (about a month). */
export const LEAD_TIME_THRESHOLDS: readonly Threshold[] = Object.freeze([
  { bucket: "elite", limit: DAY },
  { bucket: "high", limit: 7 * DAY },
  { bucket: "medium", limit: 730 * HOUR },
]);

/** Median failed-deployment recovery time: < 1 hour elite, < 1 day high, < 1 week medium. */
export const RECOVERY_THRESHOLDS: readonly Threshold[] = Object.freeze([
  { bucket: "elite", limit: HOUR },
  { bucket: "high", limit: DAY },
  { bucket: "medium", limit: 7 * DAY },
]);

/** Change failure rate (0..1): at most 5% elite, 10% high, 15% medium. */
export const CHANGE_FAILURE_THRESHOLDS: readonly Threshold[] = Object.freeze([
  { bucket: "elite", limit: 0.05 },
  { bucket: "high", limit: 0.1 },
  { bucket: "medium", limit: 0.15 },
]);

/** The bucket of a median lead time (ms). */
export function leadTimeBucket(ms: number): DoraBucket {
  return LEAD_TIME_THRESHOLDS.find((t) => ms < t.limit)?.bucket ?? "low";
}

/** The bucket of a median recovery time (ms). */
export function recoveryBucket(ms: number): DoraBucket {
  return RECOVERY_THRESHOLDS.find((t) => ms < t.limit)?.bucket ?? "low";
}

/** The bucket of a change failure rate (0..1). */
export function changeFailureBucket(rate: number): DoraBucket {
  return CHANGE_FAILURE_THRESHOLDS.find((t) => rate <= t.limit)?.bucket ?? "low";
}

/** One calendar week of the window, as Four Keys' frequency query sees it. */
export interface FrequencyWeek {
  /** The month the week starts in (e.g. "2026-03"); Four Keys groups weeks by it. */
  month: string;
  /** Days of the week with at least one successful deployment. */
  daysDeployed: number;
}

/**
 * Deployment frequency the way Four Keys buckets it, over the weeks of the window:
 * elite ("Daily") when the median week has deployments on 3 days or more; high ("Weekly") when
 * the median week has one; medium ("Monthly") when the median week's month has a week with one;
 * low ("Yearly") otherwise. Medians interpolate, like BigQuery's PERCENTILE_CONT.
 *
 * @example
 * frequencyBucket([{ month: "2026-03", daysDeployed: 4 }, { month: "2026-03", daysDeployed: 3 }]); // "elite"
 */
export function frequencyBucket(weeks: readonly FrequencyWeek[]): DoraBucket {
  if (weeks.length === 0) return "low";
  if ((median(weeks.map((w) => w.daysDeployed)) ?? 0) >= 3) return "elite";
  if ((median(weeks.map((w) => (w.daysDeployed > 0 ? 1 : 0))) ?? 0) >= 1) return "high";
  const weeksDeployedByMonth = new Map<string, number>();
  for (const w of weeks) weeksDeployedByMonth.set(w.month, (weeksDeployedByMonth.get(w.month) ?? 0) + (w.daysDeployed > 0 ? 1 : 0));
  if ((median(weeks.map((w) => weeksDeployedByMonth.get(w.month) ?? 0)) ?? 0) >= 1) return "medium";
  return "low";
}

/** The median (the mean of the two middle values for an even count); undefined for none. */
export function median(values: readonly number[]): number | undefined {
  const n = values.length;
  if (n === 0) return undefined;
  if (n === 1) return values[0];
  if (n === 2) return ((values[0] as number) + (values[1] as number)) / 2;
  const mid = n >> 1;
  if (n <= 64) {
    // Most deployments bring a few changes: sorting a copy is cheapest for those.
    const sorted = values.slice().sort((a, b) => a - b);
    return n % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  }
  return medianInPlace(Float64Array.from(values));
}

/**
 * The median of a typed array, reordering it: the middle is selected (Hoare's quickselect), not
 * sorted for, so a year of changes costs one pass or two. Undefined for an empty array.
 */
export function medianInPlace(a: Float64Array): number | undefined {
  const n = a.length;
  if (n === 0) return undefined;
  const mid = n >> 1;
  const upper = select(a, mid);
  if (n % 2 === 1) return upper;
  let lower = -Infinity;
  for (let i = 0; i < mid; i++) if ((a[i] as number) > lower) lower = a[i] as number;
  return (lower + upper) / 2;
}

/** Puts the k-th smallest value at a[k], smaller ones before it, and returns it. */
function select(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1] as number;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        const t = a[i] as number;
        a[i] = a[j] as number;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return a[k] as number;
}
