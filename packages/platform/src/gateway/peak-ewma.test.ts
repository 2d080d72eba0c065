// Tests for the peak-EWMA estimate: peaks jump up, lows pull down with time, idle decays.
import { describe, expect, it } from "vitest";
import { PeakEwma } from "./peak-ewma.js";

describe("PeakEwma", () => {
  it("starts at 30 ms and jumps to a slower response at once", () => {
    const e = new PeakEwma(0);
    expect(e.value(0)).toBe(30);
    e.observe(200, 0);
    expect(e.value(0)).toBe(200);
  });

  it("moves toward faster responses by how much time passed (time constant 10 s)", () => {
    const e = new PeakEwma(0);
    e.observe(100, 0);
    e.observe(10, 10);
    // 10 ms of a 10 s time constant barely moves it.
    expect(e.value(10)).toBeGreaterThan(99.8);
    const f = new PeakEwma(0);
    f.observe(100, 0);
    f.observe(10, 10_000);
    // One time constant: 100·e^-1 + 10·(1 − e^-1).
    expect(f.value(10_000)).toBeCloseTo(100 * Math.exp(-1) + 10 * (1 - Math.exp(-1)), 6);
  });

  it("decays toward zero while no response arrives", () => {
    const e = new PeakEwma(0);
    e.observe(1_000, 0);
    expect(e.value(10_000)).toBeCloseTo(1_000 * Math.exp(-1), 6);
    expect(e.value(50_000)).toBeLessThan(10);
  });
});
