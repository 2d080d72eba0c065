// flagd's v2 `fractional` bucket mapping: the unsigned 32-bit murmur3 hash is scaled onto
// [0, totalWeight) with integer arithmetic, bucket = (hash * totalWeight) >> 32, and the first
// variant whose cumulative weight exceeds the bucket wins.

/** The largest total weight flagd allows (2^31 - 1), so hash * total fits a signed 64-bit integer. */
export const MAX_TOTAL_WEIGHT = 2147483647;

/**
 * floor(hash * total / 2^32), exactly, without BigInt: hash is split into 16-bit halves so every
 * intermediate product stays below 2^53.
 */
export function scaleHash(hash: number, total: number): number {
  const hi = hash >>> 16;
  const lo = hash & 0xffff;
  return Math.floor((hi * total + Math.floor((lo * total) / 65536)) / 65536);
}

/** Index of the bucket `hash` falls in, given cumulative weights (last = total > 0). */
export function pickBucket(hash: number, cumulative: ArrayLike<number>, total: number): number {
  const point = scaleHash(hash, total);
  const n = cumulative.length;
  for (let i = 0; i < n; i++) if (point < (cumulative[i] as number)) return i;
  return n - 1; // unreachable while the last cumulative weight equals total
}
