// Tests for outlier ejection: the run of failures, the doubling ejection time, the cap.
import { describe, expect, it } from "vitest";
import type { Ejectable } from "./outlier-detector.js";
import { OutlierDetector } from "./outlier-detector.js";

const config = { consecutiveFailures: 3, baseEjectionMs: 1_000, maxEjectionMs: 5_000, maxEjectedPercent: 50 };
const endpoint = (): Ejectable => ({ consecutiveFailures: 0, ejectedUntil: 0, timesEjected: 0, returnedAt: 0 });

describe("OutlierDetector", () => {
  it("ejects after N failures in a row; a success in between starts the count over", () => {
    const d = new OutlierDetector(config);
    const e = endpoint();
    expect(d.failure(e, 4, 0)).toBe(false);
    expect(d.failure(e, 4, 0)).toBe(false);
    d.success(e);
    expect(d.failure(e, 4, 0)).toBe(false);
    expect(d.failure(e, 4, 0)).toBe(false);
    expect(d.failure(e, 4, 10)).toBe(true);
    expect(e.ejectedUntil).toBe(1_010);
    expect(d.ejected).toBe(1);
    expect(d.nextReturnAt).toBe(1_010);
    // Late answers of requests already sent do not extend it.
    expect(d.failure(e, 4, 20)).toBe(false);
    expect(e.ejectedUntil).toBe(1_010);
  });

  it("doubles the ejection time each time, up to the maximum, and brings the endpoint back", () => {
    const d = new OutlierDetector(config);
    const e = endpoint();
    let now = 0;
    const times: number[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 3; i++) d.failure(e, 2, now);
      times.push(e.ejectedUntil - now);
      expect(d.release([e], e.ejectedUntil - 1)).toBe(false);
      now = e.ejectedUntil;
      expect(d.release([e], now)).toBe(true);
      expect(e.ejectedUntil).toBe(0);
      expect(d.ejected).toBe(0);
    }
    expect(times).toEqual([1_000, 2_000, 4_000, 5_000, 5_000]);
    // Healthy for a whole maximum ejection time: back to the base.
    now += 5_000;
    for (let i = 0; i < 3; i++) d.failure(e, 2, now);
    expect(e.ejectedUntil - now).toBe(1_000);
  });

  it("never ejects more than the share allowed, and always leaves one endpoint", () => {
    const d = new OutlierDetector(config);
    const four = [endpoint(), endpoint(), endpoint(), endpoint()];
    for (const e of four) for (let i = 0; i < 3; i++) d.failure(e, 4, 0);
    expect(four.filter((e) => e.ejectedUntil > 0)).toHaveLength(2);

    const all = new OutlierDetector({ ...config, maxEjectedPercent: 100 });
    const two = [endpoint(), endpoint()];
    for (const e of two) for (let i = 0; i < 3; i++) all.failure(e, 2, 0);
    expect(two.filter((e) => e.ejectedUntil > 0)).toHaveLength(1);

    const single = endpoint();
    for (let i = 0; i < 10; i++) expect(all.failure(single, 1, 0)).toBe(false);
  });
});
