// Tests for summing workers' rolling traffic windows into one `/stats` snapshot.
import { describe, expect, it } from "vitest";
import { mergeStatsSnapshots } from "./cluster-stats.js";
import { LiveStats } from "./live-stats.js";

/** A worker's window: `latencies` (ms) of finished attempts on one replica, `errors` of them failed. */
function workerSnapshot(replica: string, latencies: number[], errors = 0, inflight = 0) {
  let now = 1_000_000;
  const stats = new LiveStats({ now: () => now });
  const series = stats.series("web", "r1", replica);
  latencies.forEach((ms, i) => {
    series.begin(now);
    series.end(now, ms, i < errors);
  });
  for (let i = 0; i < inflight; i++) series.begin(now);
  now += 10;
  return stats.snapshot(10);
}

describe("mergeStatsSnapshots", () => {
  it("adds the workers' counts per replica and per version and re-estimates the quantiles", () => {
    const a = workerSnapshot("web-1", [2, 2, 2, 2], 1, 1);
    const b = workerSnapshot("web-1", [40, 40, 40, 40], 0, 2);
    const c = workerSnapshot("web-2", [2, 2], 2);
    const merged = mergeStatsSnapshots([a, b, c], 10);

    expect(merged.windowSeconds).toBe(10);
    expect(merged.latencyBoundsMs).toEqual(a.latencyBoundsMs);
    expect(merged.series.map((s) => [s.replica, s.requests, s.errors, s.inflight])).toEqual([
      ["web-1", 8, 1, 3],
      ["web-2", 2, 2, 0],
    ]);
    const web1 = merged.series[0]!;
    expect(web1.rps).toBe(0.8);
    expect(web1.errorRate).toBe(1 / 8);
    expect(web1.latencyMs!.mean).toBe(21);
    expect(web1.histogram).toEqual(a.series[0]!.histogram.map((n, i) => n + b.series[0]!.histogram[i]!));
    // Half of the attempts took 2 ms, half 40 ms: the median sits at the top of the 2.5 ms bucket.
    expect(web1.latencyMs!.p50).toBe(2.5);
    expect(web1.latencyMs!.p99).toBeGreaterThan(25);

    expect(merged.versions).toHaveLength(1);
    expect(merged.versions[0]).toMatchObject({ service: "web", version: "r1", replicas: 2, requests: 10, errors: 3, inflight: 3 });
  });

  it("answers an empty window when no worker has traffic", () => {
    expect(mergeStatsSnapshots([], 60)).toMatchObject({ windowSeconds: 60, series: [], versions: [] });
  });

  it("covers the window as far as its least covered worker, and not at all with a worker missing", () => {
    const full = { ...workerSnapshot("web-1", [2]), coveredSeconds: 10 };
    const restarted = { ...workerSnapshot("web-1", [2]), coveredSeconds: 3.5 };
    // A worker of a version that does not report coverage counts as covering the window.
    const older = workerSnapshot("web-1", [2]);
    delete older.coveredSeconds;
    expect(mergeStatsSnapshots([full, older], 10).coveredSeconds).toBe(10);
    expect(mergeStatsSnapshots([full, restarted], 10).coveredSeconds).toBe(3.5);
    expect(mergeStatsSnapshots([full, full], 10, { missing: 1 }).coveredSeconds).toBe(0);
    // No worker answered: nothing of the window was seen (not an idle service).
    expect(mergeStatsSnapshots([], 10).coveredSeconds).toBe(0);
  });

  it("adds up the workers' held arrivals per service, so requests split over workers reach the activation threshold together", () => {
    const a = { ...workerSnapshot("web-1", []), held: [{ service: "orders", arrivals: 2, windowMs: 90_000 }] };
    const b = { ...workerSnapshot("web-1", []), held: [{ service: "billing", arrivals: 1, windowMs: 10_000 }, { service: "orders", arrivals: 1, windowMs: 60_000 }] };
    const none = workerSnapshot("web-1", []);
    expect(mergeStatsSnapshots([a, none, b], 10).held).toEqual([
      { service: "billing", arrivals: 1, windowMs: 10_000 },
      { service: "orders", arrivals: 3, windowMs: 90_000 },
    ]);
    // The workers' own lists are left as they were.
    expect(a.held).toEqual([{ service: "orders", arrivals: 2, windowMs: 90_000 }]);
    expect(mergeStatsSnapshots([none, none], 10)).not.toHaveProperty("held");
  });
});
