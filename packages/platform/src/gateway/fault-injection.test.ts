// Tests for compiling and drawing injected faults: shares (seeded), version matching by release
// id and split label, end times, added delays, and where the faults' own requests are counted.
import { describe, expect, it } from "vitest";
import type { Fault, TrafficSplit } from "@keelson/protocol";
import { compileFaults, drawFaults } from "./fault-injection.js";
import { createGatewayMetrics } from "./gateway-metrics.js";
import { LiveStats } from "./live-stats.js";
import type { GatewayLogger } from "./logger.js";
import { silentLogger } from "./logger.js";
import { createSeededRandom } from "./random.js";

const T0 = Date.parse("2030-01-01T00:00:00Z");
const later = (ms: number) => new Date(T0 + ms).toISOString();
const split: TrafficSplit = {
  sticky: false,
  weights: [
    { release: "r1", weight: 90, label: "stable" },
    { release: "r2", weight: 10, label: "canary" },
  ],
};

function compile(faults: Fault[], options: { wallNow?: number; log?: GatewayLogger } = {}) {
  return compileFaults({
    service: "web",
    faults,
    split,
    stats: new LiveStats({ now: () => 0 }),
    metrics: createGatewayMetrics({ defaultMetrics: false, now: () => 0 }),
    wallNow: options.wallNow ?? T0,
    log: options.log ?? silentLogger,
  });
}

describe("drawFaults", () => {
  it("hits about `share` of the requests (10,000 seeded draws at 0.3)", () => {
    const faults = compile([{ id: "e1", share: 0.3, abortStatus: 503, until: later(60_000) }])!;
    const random = createSeededRandom(1);
    let hits = 0;
    for (let i = 0; i < 10_000; i++) if (drawFaults(faults, "r1", T0, random) !== undefined) hits++;
    // Binomial(10,000, 0.3): sd ≈ 46; ±200 is more than 4 sd.
    expect(hits).toBeGreaterThan(2_800);
    expect(hits).toBeLessThan(3_200);
  });

  it("matches a version by split label or by release id, and every version without one", () => {
    const always = () => 0;
    const faults = compile([
      { id: "by-label", version: "canary", share: 1, abortStatus: 500, until: later(60_000) },
      { id: "by-id", version: "r1", share: 1, delayMs: 50, until: later(60_000) },
    ])!;
    expect(faults.map((f) => f.release)).toEqual(["r2", "r1"]);
    expect(drawFaults(faults, "r2", T0, always)).toMatchObject({ delayMs: 0, abort: { id: "by-label" }, cause: { id: "by-label" } });
    expect(drawFaults(faults, "r1", T0, always)).toMatchObject({ delayMs: 50, abort: undefined, cause: { id: "by-id" } });
    expect(drawFaults(faults, "r3", T0, always)).toBeUndefined();
    const anyVersion = compile([{ id: "all", share: 1, abortStatus: 502, until: later(60_000) }])!;
    for (const release of ["r1", "r2", "r3"]) expect(drawFaults(anyVersion, release, T0, always)?.abort?.id).toBe("all");
  });

  it("adds the delays of every fault that hits and answers with the first abort, which the request is attributed to", () => {
    const faults = compile([
      { id: "slow-1", share: 0.5, delayMs: 30, until: later(60_000) },
      { id: "fail-1", share: 0.5, delayMs: 20, abortStatus: 503, until: later(60_000) },
      { id: "fail-2", share: 0.5, abortStatus: 500, until: later(60_000) },
    ])!;
    expect(drawFaults(faults, "r1", T0, () => 0)).toMatchObject({ delayMs: 50, abort: { id: "fail-1" }, cause: { id: "fail-1" } });
    // Each fault draws on its own: with the second one missing, the third one aborts.
    const draws = [0, 0.99, 0];
    expect(drawFaults(faults, "r1", T0, () => draws.shift()!)).toMatchObject({ delayMs: 30, abort: { id: "fail-2" } });
  });

  it("stops applying a fault at its end time, with no new table", () => {
    const faults = compile([{ id: "e1", share: 1, abortStatus: 503, until: later(1_000) }])!;
    expect(drawFaults(faults, "r1", T0 + 999, () => 0)).toBeDefined();
    expect(drawFaults(faults, "r1", T0 + 1_000, () => 0)).toBeUndefined();
  });
});

describe("compileFaults", () => {
  it("drops faults already over and those whose end is not a time (with a warning)", () => {
    const warnings: string[] = [];
    const log = { ...silentLogger, warn: (_o: object, msg?: string) => void warnings.push(msg ?? "") };
    expect(compile([{ id: "old", share: 1, abortStatus: 503, until: later(-1) }])).toBeUndefined();
    expect(compile([{ id: "bad", share: 1, abortStatus: 503, until: "soon" }], { log })).toBeUndefined();
    expect(warnings).toEqual(["ignoring a fault whose end time is not a time"]);
    expect(compile([])).toBeUndefined();
  });

  it("counts what a fault answers under replica fault:<id> of the version, revived after a table retired it", () => {
    let now = 0;
    const stats = new LiveStats({ now: () => now });
    const metrics = createGatewayMetrics({ defaultMetrics: false, now: () => now });
    const [fault] = compileFaults({ service: "web", faults: [{ id: "e1", share: 1, abortStatus: 503, until: later(60_000) }], split, stats, metrics, wallNow: T0, log: silentLogger })!;
    const series = fault!.seriesOf("r2");
    expect(fault!.seriesOf("r2")).toBe(series);
    series.end(now, 1, true);
    expect(fault!.cellOf("r2", 0)).toBe(fault!.cellOf("r2", 0));
    expect(fault!.cellOf("r2", 0).labels).toMatchObject({ service: "web", version: "r2", replica: "fault:e1" });
    // A new table retires the series (no endpoint owns it); the fault brings it back.
    stats.retire(new Set());
    now = 120_000;
    stats.retire(new Set());
    const again = fault!.seriesOf("r2");
    again.end(now, 1, true);
    const snap = stats.snapshot(60);
    expect(snap.series).toEqual([expect.objectContaining({ service: "web", version: "r2", replica: "fault:e1", requests: 1, errors: 1 })]);
    // The version sums count the fault's errors but not the fault as a replica.
    expect(snap.versions).toEqual([expect.objectContaining({ version: "r2", replicas: 0, requests: 1, errors: 1, errorRate: 1 })]);
  });
});
