// Seeded pseudo-random numbers for the gateway's random choices (p2c picks, weighted splits,
// backoff jitter), so a test can replay them exactly. Not for anything secret.

/** A source of numbers in [0, 1), like `Math.random`. */
export type Random = () => number;

/**
 * A seeded generator (sfc32: small, fast and good enough for load balancing).
 *
 * @example
 * const random = createSeededRandom(42);
 * random(); // the same sequence for the same seed, every run
 */
export function createSeededRandom(seed: number): Random {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next: Random = () => {
    d = (d + 1) | 0;
    const t = (((a + b) | 0) + d) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  // The first outputs of sfc32 still echo the seed; skip them.
  for (let i = 0; i < 15; i++) next();
  return next;
}
