// Delay before a retry: exponential backoff with full jitter (AWS Architecture Blog, "Exponential
// Backoff And Jitter"): uniformly random up to base × 2^(retry-1), capped, so retries of many
// requests that failed together spread out instead of arriving together again.
import type { Random } from "./random.js";

/**
 * Milliseconds to wait before retry number `retry` (1 for the first retry).
 *
 * @example
 * backoffDelay(3, 25, 250, Math.random); // somewhere in [0, 100)
 */
export function backoffDelay(retry: number, baseMs: number, maxMs: number, random: Random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(retry - 1, 30));
  return random() * ceiling;
}
