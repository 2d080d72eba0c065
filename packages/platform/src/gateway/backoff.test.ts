// Tests for the full-jitter backoff: the ceiling doubles per retry up to the cap.
import { describe, expect, it } from "vitest";
import { backoffDelay } from "./backoff.js";
import { createSeededRandom } from "./random.js";

describe("backoffDelay", () => {
  it("uses the whole range up to base × 2^(retry-1), capped at max", () => {
    expect(backoffDelay(1, 25, 250, () => 0.999)).toBeCloseTo(24.975);
    expect(backoffDelay(3, 25, 250, () => 0.5)).toBe(50);
    expect(backoffDelay(10, 25, 250, () => 0.5)).toBe(125);
    expect(backoffDelay(2, 25, 250, () => 0)).toBe(0);
  });

  it("spreads delays over the range instead of bunching them", () => {
    const random = createSeededRandom(3);
    const delays = Array.from({ length: 1_000 }, () => backoffDelay(4, 10, 1_000, random));
    expect(Math.max(...delays)).toBeLessThan(80);
    expect(Math.max(...delays)).toBeGreaterThan(70);
    expect(delays.filter((d) => d < 40).length).toBeGreaterThan(400);
    expect(delays.filter((d) => d < 40).length).toBeLessThan(600);
  });
});
