// Tests for the live stats window: per-replica counts, version sums, quantiles, expiry.
import { describe, expect, it } from "vitest";
import { LiveStats, histogramQuantile } from "./live-stats.js";

function clock(start = 0) {
  let t = start;
  return { now: () => t, set: (v: number) => (t = v) };
}

describe("LiveStats", () => {
  it("counts attempts, errors and latency per replica and sums them per version", () => {
    const c = clock(1_000);
    const stats = new LiveStats({ now: c.now });
    const a = stats.series("web", "r1", "web-1");
    const b = stats.series("web", "r1", "web-2");
    const canary = stats.series("web", "r2", "web-3");
    expect(stats.series("web", "r1", "web-1")).toBe(a);
    for (let i = 0; i < 10; i++) {
      a.begin(1_000);
      a.end(1_000, 4, false);
    }
    b.begin(1_500);
    b.begin(1_500);
    b.end(1_600, 200, true);
    canary.begin(2_000);
    canary.end(2_000, 30, true);

    c.set(2_500);
    const snap = stats.snapshot(60);
    expect(snap.series.map((s) => [s.replica, s.requests, s.errors, s.inflight, s.peakInflight])).toEqual([
      ["web-1", 10, 0, 0, 1],
      ["web-2", 1, 1, 1, 2],
      ["web-3", 1, 1, 0, 1],
    ]);
    const r1 = snap.versions.find((v) => v.version === "r1")!;
    expect(r1).toMatchObject({ service: "web", replicas: 2, requests: 11, errors: 1, inflight: 1 });
    expect(r1.errorRate).toBeCloseTo(1 / 11);
    expect(r1.rps).toBeCloseTo(11 / 60);
    // Ten answers in the (2.5, 5] ms bucket and one in (100, 250].
    expect(r1.latencyMs!.p50).toBeGreaterThan(2.5);
    expect(r1.latencyMs!.p50).toBeLessThanOrEqual(5);
    expect(r1.latencyMs!.p99).toBeGreaterThan(100);
    expect(r1.latencyMs!.mean).toBeCloseTo(240 / 11);
    expect(snap.versions.find((v) => v.version === "r2")).toMatchObject({ requests: 1, errors: 1, errorRate: 1 });
  });

  it("looks only at the last N seconds and forgets a retired replica after a quiet window", () => {
    const c = clock(0);
    const stats = new LiveStats({ now: c.now });
    const s = stats.series("api", "r1", "api-1");
    s.begin(0);
    s.end(0, 1, false);
    s.begin(30_000);
    s.end(30_000, 1, false);
    c.set(30_500);
    expect(stats.snapshot(10).series[0]!.requests).toBe(1);
    expect(stats.snapshot().series[0]!.requests).toBe(2);
    c.set(61_000);
    expect(stats.snapshot().series[0]!.requests).toBe(1);
    stats.retire(new Set());
    c.set(91_000);
    expect(stats.snapshot().series).toHaveLength(0);
  });

  it("drops retired, idle series on the next table too, without anybody reading the stats", () => {
    const c = clock(0);
    const stats = new LiveStats({ now: c.now });
    const kept = stats.series("api", "r2", "api-2");
    const old = stats.series("api", "r1", "api-1");
    old.begin(0);
    old.end(0, 1, false);
    stats.retire(new Set([kept]));
    c.set(61_000);
    stats.retire(new Set([kept]));
    c.set(61_500);
    expect(stats.snapshot().series.map((s) => s.replica)).toEqual(["api-2"]);
    // Asking for it again (the replica came back) starts a fresh series.
    expect(stats.series("api", "r1", "api-1")).not.toBe(old);
  });

  it("says how much of the window it covers, so a restarted gateway's short window is not read as low load", () => {
    const c = clock(500_000);
    const stats = new LiveStats({ now: c.now });
    expect(stats.snapshot(10).coveredSeconds).toBe(0);
    c.set(503_250);
    expect(stats.snapshot(10).coveredSeconds).toBe(3.25);
    expect(stats.snapshot(2).coveredSeconds).toBe(2);
    c.set(600_000);
    expect(stats.snapshot(10).coveredSeconds).toBe(10);
    expect(stats.snapshot().coveredSeconds).toBe(60);
  });

  it("reports the held arrivals of services at zero beside the series, and nothing when there are none", () => {
    const c = clock(0);
    let held = [{ service: "orders", arrivals: 2, windowMs: 90_000 }];
    const stats = new LiveStats({ now: c.now, heldArrivals: () => held });
    expect(stats.snapshot(10)).toMatchObject({ series: [], held: [{ service: "orders", arrivals: 2, windowMs: 90_000 }] });
    held = [];
    expect(stats.snapshot(10)).not.toHaveProperty("held");
  });
});

describe("histogramQuantile", () => {
  it("interpolates inside the bucket that holds the rank", () => {
    // 100 answers in (10, 25] ms.
    const counts = new Array<number>(14).fill(0);
    counts[4] = 100;
    expect(histogramQuantile(0.5, counts)).toBeCloseTo(17.5);
    expect(histogramQuantile(0.9, counts)).toBeCloseTo(23.5);
    counts[13] = 100;
    expect(histogramQuantile(0.99, counts)).toBe(10_000);
    expect(histogramQuantile(0.5, new Array<number>(14).fill(0))).toBe(0);
  });
});
