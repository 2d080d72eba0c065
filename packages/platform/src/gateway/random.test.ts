// Tests for the seeded generator: replayable, in range, and spread evenly.
import { describe, expect, it } from "vitest";
import { createSeededRandom } from "./random.js";

describe("createSeededRandom", () => {
  it("gives the same sequence for the same seed and another for another seed", () => {
    const take = (seed: number) => {
      const r = createSeededRandom(seed);
      return Array.from({ length: 5 }, () => r());
    };
    expect(take(7)).toEqual(take(7));
    expect(take(7)).not.toEqual(take(8));
  });

  it("stays in [0, 1) and fills ten equal bins within 10% of their share", () => {
    const r = createSeededRandom(1);
    const bins = new Array<number>(10).fill(0);
    for (let i = 0; i < 100_000; i++) {
      const x = r();
      expect(x >= 0 && x < 1).toBe(true);
      bins[Math.floor(x * 10)]!++;
    }
    for (const n of bins) expect(Math.abs(n - 10_000)).toBeLessThan(1_000);
  });
});
