// Geometry and wording of the experiment's lift intervals: one scale symmetric around zero shared
// by every comparison (so bars compare at a glance), each interval placed on it in percent of the
// track's width, and lifts read as percentage points.
import type { Interval } from "./flags-api.js";

/** The smallest of 1, 2, 2.5, 5 × 10^k at or above x (x > 0). */
export function niceCeil(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) return 1;
  const power = 10 ** Math.floor(Math.log10(x));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= x * (1 - 1e-12)) return step * power;
  return 10 * power;
}

/**
 * Half the width of the scale: the largest distance from zero of any finite end, rounded up to a
 * nice number; 0.01 (one percentage point) when there is nothing to show.
 */
export function intervalScale(intervals: ReadonlyArray<Interval | undefined>): number {
  let max = 0;
  for (const i of intervals) {
    if (i === undefined) continue;
    for (const v of [i.low, i.high, i.estimate]) if (Number.isFinite(v)) max = Math.max(max, Math.abs(v));
  }
  return max > 0 ? niceCeil(max) : 0.01;
}

export interface PlacedInterval {
  /** Percent of the track's width, 0 at its left (-half), 100 at its right (+half). */
  low: number;
  high: number;
  estimate: number;
  zero: number;
  /** An end beyond the scale (only non-finite ends are), drawn open. */
  clippedLow: boolean;
  clippedHigh: boolean;
  /** Where the interval lies relative to zero: wholly above, wholly below, or across it. */
  side: "above" | "below" | "spans";
}

function place(v: number, half: number): number {
  if (v === Infinity) return 100;
  if (v === -Infinity || Number.isNaN(v)) return 0;
  return Math.min(100, Math.max(0, 50 + (50 * v) / half));
}

/**
 * One interval on a scale of ±half.
 *
 * @example
 * placeInterval({ estimate: 0.04, low: 0.01, high: 0.07 }, 0.1); // { low: 55, high: 85, estimate: 70, zero: 50, side: "above", … }
 */
export function placeInterval(interval: Interval, half: number): PlacedInterval {
  return {
    low: place(interval.low, half),
    high: place(interval.high, half),
    estimate: place(interval.estimate, half),
    zero: 50,
    clippedLow: !(interval.low >= -half),
    clippedHigh: !(interval.high <= half),
    side: interval.low > 0 ? "above" : interval.high < 0 ? "below" : "spans",
  };
}

/** A difference of rates in percentage points, signed: "+4.0 pts", "−1.25 pts", "0.0 pts". */
export function formatPoints(diff: number, digits = 1): string {
  if (!Number.isFinite(diff)) return diff > 0 ? "+∞ pts" : "−∞ pts";
  const text = Math.abs(diff * 100).toFixed(digits);
  const zero = Number(text) === 0;
  return `${zero ? "" : diff > 0 ? "+" : "−"}${text} pts`;
}

/** A rate or relative change as a percentage: "12.3%"; `signed` adds "+" or "−". */
export function formatPercent(value: number | undefined, options: { digits?: number; signed?: boolean } = {}): string {
  if (value === undefined || Number.isNaN(value)) return "–";
  const { digits = 1, signed = false } = options;
  if (!Number.isFinite(value)) return value > 0 ? "+∞%" : "−∞%";
  const text = Math.abs(value * 100).toFixed(digits);
  const sign = value < 0 && Number(text) !== 0 ? "−" : signed && value > 0 && Number(text) !== 0 ? "+" : "";
  return `${sign}${text}%`;
}

/** The confidence of the intervals from the API's alpha: "95%". */
export function confidenceOf(alpha: number): string {
  const c = (1 - alpha) * 100;
  return `${Number.isInteger(Math.round(c * 10) / 10) ? Math.round(c) : (Math.round(c * 10) / 10).toFixed(1)}%`;
}
