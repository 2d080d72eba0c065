// Tests for the bucketed sliding window: sums over a span, buckets expiring as time moves on.
import { describe, expect, it } from "vitest";
import { RollingWindow } from "./rolling-window.js";

describe("RollingWindow", () => {
  it("sums what was added in the last buckets and forgets what slid out", () => {
    const w = new RollingWindow({ buckets: 10, bucketMs: 1000, fields: 2 });
    w.add(0, 1, 0);
    w.add(0, 2, 500);
    w.add(1, 5, 1_500);
    w.add(0, 4, 9_999);
    expect(w.sum(0, 9_999)).toBe(7);
    expect(w.sum(1, 9_999)).toBe(5);
    expect(w.sum(0, 9_999, 1)).toBe(4);
    // At 10 s the first bucket (0-999 ms) has left the window.
    expect(w.sum(0, 10_000)).toBe(4);
    expect(w.sum(1, 10_000)).toBe(5);
    expect(w.sum(0, 10_000, 1)).toBe(0);
  });

  it("clears everything after a gap longer than the window, and survives a clock going back", () => {
    const w = new RollingWindow({ buckets: 3, bucketMs: 100, fields: 1 });
    for (let t = 0; t < 300; t += 10) w.add(0, 1, t);
    expect(w.sum(0, 299)).toBe(30);
    expect(w.sum(0, 10_000)).toBe(0);
    w.add(0, 2, 10_000);
    w.add(0, 3, 9_000);
    expect(w.sum(0, 10_000)).toBe(5);
  });

  it("visits the newest buckets first with their age", () => {
    const w = new RollingWindow({ buckets: 4, bucketMs: 10, fields: 1 });
    w.add(0, 1, 0);
    w.add(0, 2, 10);
    w.add(0, 3, 20);
    const seen: Array<[number, number]> = [];
    w.forEach(25, 3, (o, age) => seen.push([age, w.data[o]!]));
    expect(seen).toEqual([
      [0, 3],
      [1, 2],
      [2, 1],
    ]);
  });
});
