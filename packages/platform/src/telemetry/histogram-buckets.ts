// Arithmetic on cumulative histogram buckets, shared by the built-in store and the Prometheus
// source so both answer alike: PromQL's histogram_quantile and the share above a threshold.

/** One cumulative bucket: how many observations were <= `le`. */
export interface Bucket {
  le: number;
  count: number;
}

/**
 * The q-quantile of cumulative buckets, exactly as PromQL's `histogram_quantile` computes it:
 * linear interpolation inside the bucket holding the rank, the lowest bucket starting at 0, and
 * the highest finite bound when the rank falls into the +Inf bucket. NaN without observations,
 * without a +Inf bucket or with fewer than two buckets.
 *
 * @example
 * bucketQuantile(0.5, [{ le: 0.1, count: 2 }, { le: 0.2, count: 6 }, { le: Infinity, count: 6 }]); // 0.15
 */
export function bucketQuantile(q: number, buckets: readonly Bucket[]): number {
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const b = normalize(buckets);
  if (b === undefined) return NaN;
  const observations = (b[b.length - 1] as Bucket).count;
  if (observations === 0) return NaN;
  let rank = q * observations;
  let i = 0;
  // The first bucket whose count reaches the rank, never the +Inf bucket itself.
  while (i < b.length - 1 && (b[i] as Bucket).count < rank) i++;
  if (i === b.length - 1) return (b[b.length - 2] as Bucket).le;
  const bucket = b[i] as Bucket;
  if (i === 0 && bucket.le <= 0) return bucket.le;
  let start = 0;
  let count = bucket.count;
  if (i > 0) {
    const prev = b[i - 1] as Bucket;
    start = prev.le;
    count -= prev.count;
    rank -= prev.count;
  }
  return start + (bucket.le - start) * (rank / count);
}

/**
 * The share of observations above `threshold` (0..1), interpolating linearly inside the bucket
 * that holds the threshold, the way `bucketQuantile` interpolates. Observations in the +Inf
 * bucket count as above a threshold beyond the highest finite bound (they may be anything).
 * NaN without observations or without a +Inf bucket.
 *
 * @example
 * fractionAbove(0.15, [{ le: 0.1, count: 2 }, { le: 0.2, count: 6 }, { le: Infinity, count: 6 }]); // 2/6
 */
export function fractionAbove(threshold: number, buckets: readonly Bucket[]): number {
  const b = normalize(buckets);
  if (b === undefined || Number.isNaN(threshold)) return NaN;
  const total = (b[b.length - 1] as Bucket).count;
  if (total === 0) return NaN;
  let i = 0;
  while ((b[i] as Bucket).le < threshold) i++;
  const bucket = b[i] as Bucket;
  const prevLe = i > 0 ? (b[i - 1] as Bucket).le : Math.min(0, bucket.le);
  const prevCount = i > 0 ? (b[i - 1] as Bucket).count : 0;
  let atOrBelow: number;
  if (bucket.le === Infinity) atOrBelow = prevCount;
  else if (bucket.le === prevLe) atOrBelow = bucket.count;
  else atOrBelow = prevCount + (bucket.count - prevCount) * Math.max(0, Math.min(1, (threshold - prevLe) / (bucket.le - prevLe)));
  return Math.max(0, Math.min(1, 1 - atOrBelow / total));
}

/**
 * Sorted, one bucket per bound, counts made monotonic (as Prometheus does for buckets scraped at
 * slightly different moments); undefined when there is no +Inf bucket or fewer than two.
 */
function normalize(buckets: readonly Bucket[]): Bucket[] | undefined {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const merged: Bucket[] = [];
  for (const x of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && last.le === x.le) last.count += x.count;
    else merged.push({ le: x.le, count: x.count });
  }
  if (merged.length < 2 || (merged[merged.length - 1] as Bucket).le !== Infinity) return undefined;
  let max = -Infinity;
  for (const x of merged) {
    if (x.count < max) x.count = max;
    else max = x.count;
  }
  return merged;
}
