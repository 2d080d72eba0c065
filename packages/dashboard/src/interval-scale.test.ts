// The interval bars' geometry (a scale symmetric around zero, positions in percent) and wording.
import { describe, expect, it } from "vitest";
import { confidenceOf, formatPercent, formatPoints, intervalScale, niceCeil, placeInterval } from "./interval-scale.js";

describe("intervalScale", () => {
  it("rounds the largest distance from zero up to 1, 2, 2.5 or 5 times a power of ten", () => {
    expect(niceCeil(0.07)).toBeCloseTo(0.1);
    expect(niceCeil(0.021)).toBeCloseTo(0.025);
    expect(niceCeil(0.02)).toBeCloseTo(0.02);
    expect(niceCeil(3.2)).toBe(5);
    expect(intervalScale([{ estimate: 0.04, low: 0.012, high: 0.068 }, { estimate: -0.01, low: -0.09, high: 0.02 }, undefined])).toBeCloseTo(0.1);
  });

  it("falls back to one percentage point with nothing to show, and ignores infinite ends", () => {
    expect(intervalScale([])).toBe(0.01);
    expect(intervalScale([undefined])).toBe(0.01);
    expect(intervalScale([{ estimate: 0.1, low: -Infinity, high: 0.3 }])).toBeCloseTo(0.5);
  });
});

describe("placeInterval", () => {
  it("puts zero in the middle and each end in proportion", () => {
    const p = placeInterval({ estimate: 0.04, low: 0.01, high: 0.07 }, 0.1);
    expect(p).toMatchObject({ zero: 50, side: "above", clippedLow: false, clippedHigh: false });
    expect(p.low).toBeCloseTo(55);
    expect(p.high).toBeCloseTo(85);
    expect(p.estimate).toBeCloseTo(70);
  });

  it("says whether the interval is above, below or across zero", () => {
    expect(placeInterval({ estimate: -0.05, low: -0.08, high: -0.02 }, 0.1).side).toBe("below");
    expect(placeInterval({ estimate: 0.01, low: -0.02, high: 0.04 }, 0.1).side).toBe("spans");
  });

  it("clamps an end beyond the scale to the track and marks it open", () => {
    const p = placeInterval({ estimate: 0, low: -Infinity, high: 0.5 }, 0.25);
    expect(p).toMatchObject({ low: 0, high: 100, estimate: 50, clippedLow: true, clippedHigh: true });
  });
});

describe("wording", () => {
  it("reads differences of rates as signed percentage points", () => {
    expect(formatPoints(0.04)).toBe("+4.0 pts");
    expect(formatPoints(-0.0125, 2)).toBe("−1.25 pts");
    expect(formatPoints(0.00001)).toBe("0.0 pts");
  });

  it("reads rates and relative changes as percentages, and alpha as the confidence", () => {
    expect(formatPercent(0.1234)).toBe("12.3%");
    expect(formatPercent(0.5, { signed: true })).toBe("+50.0%");
    expect(formatPercent(-0.2, { signed: true })).toBe("−20.0%");
    expect(formatPercent(undefined)).toBe("–");
    expect(confidenceOf(0.05)).toBe("95%");
    expect(confidenceOf(0.005)).toBe("99.5%");
  });
});
