// The v2 bucket mapping without BigInt: exact against BigInt arithmetic, including the extremes.
import { describe, expect, it } from "vitest";
import { MAX_TOTAL_WEIGHT, pickBucket, scaleHash } from "./fractional.js";

const exact = (hash: number, total: number): number => Number((BigInt(hash) * BigInt(total)) >> 32n);

describe("scaleHash", () => {
  it("equals (hash * total) >> 32 computed with BigInt, at the extremes", () => {
    for (const hash of [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x12345678]) {
      for (const total of [1, 2, 3, 100, 1_000_001, MAX_TOTAL_WEIGHT - 1, MAX_TOTAL_WEIGHT]) {
        expect(scaleHash(hash, total), `${hash} × ${total}`).toBe(exact(hash, total));
      }
    }
  });

  it("equals the BigInt mapping on 20,000 pseudo-random hash/total pairs", () => {
    let x = 7;
    const rnd = (): number => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
    for (let i = 0; i < 20_000; i++) {
      const hash = rnd();
      const total = 1 + (rnd() % MAX_TOTAL_WEIGHT);
      expect(scaleHash(hash, total)).toBe(exact(hash, total));
    }
  });
});

describe("pickBucket", () => {
  it("picks the first bucket whose cumulative weight exceeds the scaled hash", () => {
    const cumulative = [25, 50, 75, 100];
    expect(pickBucket(0, cumulative, 100)).toBe(0);
    expect(pickBucket(0x3fffffff, cumulative, 100)).toBe(0); // scales to 24
    expect(pickBucket(0x40000000, cumulative, 100)).toBe(1); // scales to 25
    expect(pickBucket(0x7fffffff, cumulative, 100)).toBe(1); // 49
    expect(pickBucket(0x80000000, cumulative, 100)).toBe(2); // 50
    expect(pickBucket(0xffffffff, cumulative, 100)).toBe(3); // 99
  });

  it("never picks a zero-weight bucket and always gives a weight of 1 in 2^31-1 its share", () => {
    expect(pickBucket(0xffffffff, [0, 10], 10)).toBe(1);
    expect(pickBucket(0, [0, 10], 10)).toBe(1);
    expect(pickBucket(0, [1, MAX_TOTAL_WEIGHT], MAX_TOTAL_WEIGHT)).toBe(0);
    expect(pickBucket(2, [1, MAX_TOTAL_WEIGHT], MAX_TOTAL_WEIGHT)).toBe(0); // 2 * (2^31-1) >> 32 = 0
    expect(pickBucket(3, [1, MAX_TOTAL_WEIGHT], MAX_TOTAL_WEIGHT)).toBe(1);
  });
});
