// Bucket arithmetic against values worked out by hand the way PromQL's histogram_quantile does.
import { describe, expect, it } from "vitest";
import { bucketQuantile, fractionAbove } from "./histogram-buckets.js";
import type { Bucket } from "./histogram-buckets.js";

// 100 observations: 50 <= 50 ms, 30 in (50, 100] ms, 15 in (100, 250] ms, 5 in (250, 500] ms.
const LATENCY: Bucket[] = [
  { le: 0.05, count: 50 },
  { le: 0.1, count: 80 },
  { le: 0.25, count: 95 },
  { le: 0.5, count: 100 },
  { le: Infinity, count: 100 },
];

describe("bucketQuantile", () => {
  it("interpolates linearly inside the bucket that holds the rank", () => {
    expect(bucketQuantile(0.5, LATENCY)).toBeCloseTo(0.05, 12);
    expect(bucketQuantile(0.25, LATENCY)).toBeCloseTo(0.025, 12);
    expect(bucketQuantile(0.9, LATENCY)).toBeCloseTo(0.1 + 0.15 * (10 / 15), 12);
    expect(bucketQuantile(0.99, LATENCY)).toBeCloseTo(0.25 + 0.25 * (4 / 5), 12);
    expect(bucketQuantile(1, LATENCY)).toBeCloseTo(0.5, 12);
  });

  it("answers the highest finite bound when the rank lies in the +Inf bucket", () => {
    expect(bucketQuantile(0.9, [{ le: 0.1, count: 5 }, { le: Infinity, count: 10 }])).toBe(0.1);
  });

  it("sorts, merges and repairs non-monotonic buckets like Prometheus", () => {
    const scrambled: Bucket[] = [
      { le: Infinity, count: 100 },
      { le: 0.1, count: 40 },
      { le: 0.1, count: 40 },
      { le: 0.25, count: 70 },
      { le: 0.05, count: 50 },
    ];
    // Merged: 0.05→50, 0.1→80, 0.25→70 (repaired to 80), +Inf→100.
    expect(bucketQuantile(0.8, scrambled)).toBeCloseTo(0.1, 12);
    expect(bucketQuantile(0.5, scrambled)).toBeCloseTo(0.05, 12);
  });

  it("is NaN without observations, without +Inf or with one bucket, and ±Inf outside 0..1", () => {
    expect(bucketQuantile(0.5, LATENCY.map((b) => ({ ...b, count: 0 })))).toBeNaN();
    expect(bucketQuantile(0.5, LATENCY.slice(0, 4))).toBeNaN();
    expect(bucketQuantile(0.5, [{ le: Infinity, count: 3 }])).toBeNaN();
    expect(bucketQuantile(-0.1, LATENCY)).toBe(-Infinity);
    expect(bucketQuantile(1.1, LATENCY)).toBe(Infinity);
  });
});

describe("fractionAbove", () => {
  it("counts whole buckets above a bound that is a bucket boundary", () => {
    expect(fractionAbove(0.1, LATENCY)).toBeCloseTo(0.2, 12);
    expect(fractionAbove(0.25, LATENCY)).toBeCloseTo(0.05, 12);
    expect(fractionAbove(0.5, LATENCY)).toBe(0);
  });

  it("interpolates inside the bucket holding the threshold, consistently with bucketQuantile", () => {
    // 175 ms is halfway through (100, 250]: half of its 15 observations are above.
    expect(fractionAbove(0.175, LATENCY)).toBeCloseTo((7.5 + 5) / 100, 12);
    // The quantile and the share above it agree: p90 has 10% above it.
    expect(fractionAbove(bucketQuantile(0.9, LATENCY), LATENCY)).toBeCloseTo(0.1, 12);
    expect(fractionAbove(0.02, LATENCY)).toBeCloseTo(1 - 0.4 * 0.5, 12);
  });

  it("counts the +Inf bucket as above a threshold beyond the highest finite bound", () => {
    expect(fractionAbove(2, [{ le: 1, count: 8 }, { le: Infinity, count: 10 }])).toBeCloseTo(0.2, 12);
  });

  it("is NaN without observations or without a +Inf bucket", () => {
    expect(fractionAbove(0.1, LATENCY.map((b) => ({ ...b, count: 0 })))).toBeNaN();
    expect(fractionAbove(0.1, LATENCY.slice(0, 4))).toBeNaN();
  });
});
