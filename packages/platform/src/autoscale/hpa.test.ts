import { describe, expect, it } from "vitest";
import { ServiceSpecSchema } from "../manifest/index.js";
import {
  AUTOSCALE_DEFAULTS,
  applyLimits,
  decide,
  emptyMemory,
  proposeReplicas,
  recordScale,
  replicaMeasureProposal,
  resolveAutoscale,
  scaleDownLimit,
  scaleUpLimit,
  serviceMeasureProposal,
  stabilize,
  type AutoscaleConfig,
  type AutoscaleMemory,
  type ReplicaLoad,
  type ScalingRules,
  type ServiceLoad,
} from "./hpa.js";

/** The manifest's autoscale parsed exactly as `keelson apply` does (durations to ms). */
function config(autoscale: Record<string, unknown>): AutoscaleConfig {
  const spec = ServiceSpecSchema.parse({ owner: "team", path: ".", start: "node x.js", autoscale });
  return resolveAutoscale(spec.autoscale!);
}

const ready = (...values: Array<number | undefined>) => values.map((value) => ({ ready: true, value }));
const notReady = (n: number) => Array.from({ length: n }, () => ({ ready: false, value: undefined }));

function inflight(current: number, replicas: Array<{ ready: boolean; value: number | undefined; startedAtMs?: number }>, tolerance = 0.1) {
  return replicaMeasureProposal({ measure: "inflight", target: 10, tolerance, current, replicas, atMs: 0, initializationMs: 30_000 });
}

function load(replicas: Array<Partial<ReplicaLoad>>, extra: Partial<ServiceLoad> = {}): ServiceLoad {
  return {
    service: "orders",
    atMs: 0,
    windowMs: 10_000,
    requests: 100,
    replicas: replicas.map((r, i) => ({ replica: `orders-${i}`, ready: true, ...r })),
    ...extra,
  };
}

const loadAt = (n: number, perReplica: number, extra: Partial<ServiceLoad> = {}) => load(Array.from({ length: n }, () => ({ inflight: perReplica })), extra);

describe("resolveAutoscale: the defaults", () => {
  it("fills every default from one constant", () => {
    const c = config({ min: 1, max: 10 });
    expect(c).toEqual({
      min: 1,
      max: 10,
      target: { inflight: 10 },
      tolerance: 0.1,
      windowMs: 10_000,
      intervalMs: 2_000,
      scaleUp: {
        stabilizationMs: 0,
        policies: [
          { type: "percent", value: 100, periodMs: 15_000 },
          { type: "pods", value: 4, periodMs: 15_000 },
        ],
        select: "max",
      },
      scaleDown: { stabilizationMs: 300_000, policies: [{ type: "percent", value: 100, periodMs: 15_000 }], select: "max" },
      scaleToZero: undefined,
      cpuInitializationMs: AUTOSCALE_DEFAULTS.cpuInitializationMs,
    });
    expect(Object.isFrozen(AUTOSCALE_DEFAULTS.scaleUp.policies[0])).toBe(true);
  });

  it("scale to zero gets its defaults only with min 0; given fields win and the rest keep their defaults", () => {
    expect(config({ min: 0, max: 3 }).scaleToZero).toEqual({ idleMs: 300_000, holdTimeoutMs: 30_000, activation: 1 });
    const c = config({ min: 0, max: 3, target: { rps: 50, p95: "250ms" }, window: "30s", scaleDown: { stabilization: "1m" }, scaleToZero: { idle: "10m" } });
    expect(c.target).toEqual({ rps: 50, p95: 250 });
    expect(c.windowMs).toBe(30_000);
    expect(c.scaleDown).toEqual({ stabilizationMs: 60_000, policies: [{ type: "percent", value: 100, periodMs: 15_000 }], select: "max" });
    expect(c.scaleToZero).toEqual({ idleMs: 600_000, holdTimeoutMs: 30_000, activation: 1 });
    expect(config({ min: 0, max: 3, scaleToZero: { activation: 5 } }).scaleToZero).toEqual({ idleMs: 300_000, holdTimeoutMs: 30_000, activation: 5 });
  });
});

describe("replica proposals: desired = ceil(ready × average / target)", () => {
  it("scales by the ratio of the average to the target", () => {
    // 3 replicas at 20 in flight, target 10: ratio 2, ceil(3 × 2) = 6
    expect(inflight(3, ready(20, 20, 20))).toMatchObject({ current: 20, ratio: 2, proposal: 6, replicas: { ready: 3, notReady: 0, missing: 0 } });
    // 4 replicas at 5: ratio 0.5, ceil(4 × 0.5) = 2
    expect(inflight(4, ready(5, 5, 5, 5)).proposal).toBe(2);
    // 3 replicas at 11.5: ratio 1.15, ceil(3.45) = 4
    expect(inflight(3, ready(11.5, 11.5, 11.5)).proposal).toBe(4);
  });

  it("keeps the count within tolerance (|ratio - 1| <= 0.1)", () => {
    expect(inflight(3, ready(10.9, 10.9, 10.9))).toMatchObject({ proposal: 3, note: "within tolerance" });
    expect(inflight(3, ready(9.1, 9.1, 9.1)).proposal).toBe(3);
    expect(inflight(3, ready(12, 12, 12), 0.25).proposal).toBe(3);
  });

  it("does not add a replica for floating-point noise (5 × 2.2 = 11, not 11.000000000000002)", () => {
    expect(inflight(5, ready(22, 22, 22, 22, 22)).proposal).toBe(11);
  });

  it("scale-up with not-ready replicas: they count as 0 and the recomputed ratio must still point up", () => {
    // 2 ready at 15 (ratio 1.5) and 2 not ready: (15 + 15 + 0 + 0) / 4 = 7.5, ratio 0.75 points down: keep 4
    expect(inflight(4, [...ready(15, 15), ...notReady(2)])).toMatchObject({ ratio: 1.5, adjustedRatio: 0.75, proposal: 4, replicas: { ready: 2, notReady: 2, missing: 0 } });
    // 3 ready at 12 (1.2), 1 not ready: 36 / 4 = 9, ratio 0.9 is within tolerance: keep 4
    expect(inflight(4, [...ready(12, 12, 12), ...notReady(1)])).toMatchObject({ adjustedRatio: 0.9, proposal: 4 });
    // 2 ready at 40 (4.0), 2 not ready: 80 / 4 = 20, ratio 2: ceil(4 × 2) = 8
    expect(inflight(4, [...ready(40, 40), ...notReady(2)])).toMatchObject({ adjustedRatio: 2, proposal: 8 });
  });

  it("scale-down with not-ready replicas: they are left out", () => {
    // 2 ready at 2 (ratio 0.2), 2 not ready: ceil(2 × 0.2) = 1; not-ready replicas weigh nothing
    expect(inflight(4, [...ready(2, 2), ...notReady(2)])).toMatchObject({ ratio: 0.2, proposal: 1 });
  });

  it("scale-down with missing metrics: a missing replica counts as exactly on target", () => {
    // 2 ready at 2, 2 missing: (2 + 2 + 10 + 10) / 4 = 6, ratio 0.6: ceil(4 × 0.6) = 3 (not 1)
    expect(inflight(4, ready(2, 2, undefined, undefined))).toMatchObject({ ratio: 0.2, adjustedRatio: 0.6, proposal: 3, replicas: { ready: 2, missing: 2 } });
    // 1 ready at 8, 4 missing: (8 + 40) / 5 = 9.6, ratio 0.96 within tolerance: keep 5
    expect(inflight(5, ready(8, undefined, undefined, undefined, undefined))).toMatchObject({ adjustedRatio: 0.96, proposal: 5 });
  });

  it("scale-up with missing metrics: a missing replica counts as 0", () => {
    // 2 ready at 30, 2 missing: 60 / 4 = 15, ratio 1.5: ceil(4 × 1.5) = 6
    expect(inflight(4, ready(30, 30, undefined, undefined))).toMatchObject({ ratio: 3, adjustedRatio: 1.5, proposal: 6 });
    // 1 ready at 12 (1.2), 3 missing: 12 / 4 = 3, ratio 0.3 reverses the direction: keep 4
    expect(inflight(4, ready(12, undefined, undefined, undefined))).toMatchObject({ adjustedRatio: 0.3, proposal: 4 });
  });

  it("keeps the count when the replicas counted would move it against the ratio (more replicas running than desired)", () => {
    // current 2 but 3 ready at 5 and 1 missing (a rollout's surge): (15 + 10) / 4 = 6.25, ratio 0.625,
    // ceil(4 × 0.625) = 3 would be a scale-up on a ratio below 1: keep 2
    expect(inflight(2, ready(5, 5, 5, undefined))).toMatchObject({ adjustedRatio: 0.625, proposal: 2 });
  });

  it("cpu: replicas started within the initialization period are set aside like not-ready ones", () => {
    const cpu = (replicas: Array<{ ready: boolean; value: number | undefined; startedAtMs?: number }>) =>
      replicaMeasureProposal({ measure: "cpu", target: 50, tolerance: 0.1, current: 3, replicas, atMs: 100_000, initializationMs: 30_000 });
    // The young replica's 95% is start-up work, not load: two old at 100% (ratio 2), young counts 0:
    // 200 / 3 = 66.7, ratio 1.33: ceil(200 / 50) = 4
    expect(cpu([...ready(100, 100), { ready: true, value: 95, startedAtMs: 90_000 }])).toMatchObject({ ratio: 2, proposal: 4, replicas: { ready: 2, notReady: 1 } });
    // Old enough (started 40 s ago): counted. (100 + 100 + 95) / 3 = 98.3, ratio 1.97: ceil(295 / 50) = 6
    expect(cpu([...ready(100, 100), { ready: true, value: 95, startedAtMs: 60_000 }])).toMatchObject({ proposal: 6, replicas: { ready: 3 } });
    // Only inflight/rps ignore the start time.
    expect(replicaMeasureProposal({ measure: "inflight", target: 10, tolerance: 0.1, current: 1, replicas: [{ ready: true, value: 30, startedAtMs: 99_000 }], atMs: 100_000, initializationMs: 30_000 }).proposal).toBe(3);
  });

  it("without a ready replica reporting, the measure has no proposal", () => {
    const none = inflight(2, notReady(2));
    expect(none.invalid).toBe("no ready replica reported inflight (2 not ready)");
    expect(none.proposal).toBeUndefined();
    expect(inflight(2, ready(undefined, undefined)).proposal).toBeUndefined();
  });

  it("a NaN or negative value counts as missing", () => {
    // 1 ready at 30 (ratio 3), NaN and -5 are missing (0 on a scale-up): 30 / 3 = 10, ratio 1.0: keep 3
    expect(inflight(3, ready(30, Number.NaN, -5))).toMatchObject({ replicas: { ready: 1, missing: 2 }, adjustedRatio: 1, proposal: 3 });
  });
});

describe("service proposals (p95): ratio applied to the current count", () => {
  it("scales the current count by p95 / target", () => {
    expect(serviceMeasureProposal({ measure: "p95", target: 200, tolerance: 0.1, current: 4, value: 300 })).toMatchObject({ ratio: 1.5, proposal: 6 });
    expect(serviceMeasureProposal({ measure: "p95", target: 200, tolerance: 0.1, current: 4, value: 100 }).proposal).toBe(2);
    expect(serviceMeasureProposal({ measure: "p95", target: 200, tolerance: 0.1, current: 4, value: 215 })).toMatchObject({ proposal: 4, note: "within tolerance" });
    // At zero, as HPA's object metrics: ceil(ratio)
    expect(serviceMeasureProposal({ measure: "p95", target: 200, tolerance: 0.1, current: 0, value: 300 }).proposal).toBe(2);
  });

  it("has no proposal without a usable value", () => {
    expect(serviceMeasureProposal({ measure: "p95", target: 200, tolerance: 0.1, current: 4, value: undefined }).invalid).toBe("no p95 value");
    expect(serviceMeasureProposal({ measure: "p95", target: 200, tolerance: 0.1, current: 4, value: Number.NaN }).proposal).toBeUndefined();
  });
});

describe("several measures: the largest proposal wins", () => {
  it("takes the largest proposal and names its measure", () => {
    const c = config({ min: 1, max: 20, target: { inflight: 10, rps: 100, p95: "200ms" } });
    // inflight 15 → ceil(2 × 1.5) = 3; rps 250 → ceil(2 × 2.5) = 5; p95 240 → ceil(2 × 1.2) = 3
    const p = proposeReplicas(c, 2, load([{ inflight: 15, rps: 250 }, { inflight: 15, rps: 250 }], { p95Ms: 240 }));
    expect(p.measures.map((m) => [m.measure, m.proposal])).toEqual([
      ["inflight", 3],
      ["rps", 5],
      ["p95", 3],
    ]);
    expect(p).toMatchObject({ desired: 5, measure: "rps" });
  });

  it("p95 without requests asks for nothing; with requests but no p95 it cannot be computed", () => {
    const c = config({ min: 1, max: 20, target: { p95: "200ms" } });
    expect(proposeReplicas(c, 3, load([{}, {}, {}], { requests: 0 }))).toMatchObject({ desired: 0 });
    expect(proposeReplicas(c, 3, load([{}, {}, {}], { requests: 10 })).invalid).toMatch(/^p95: no p95 value/);
  });

  it("as HPA: an unreadable measure blocks a scale-down but not a scale-up", () => {
    const c = config({ min: 1, max: 20, target: { inflight: 10, cpu: 50 } });
    // cpu missing everywhere; inflight asks for 6: scale up on what can be read
    expect(proposeReplicas(c, 3, loadAt(3, 20))).toMatchObject({ desired: 6, measure: "inflight" });
    // inflight asks for 1: a scale-down waits until cpu can be read too
    const down = proposeReplicas(c, 3, loadAt(3, 2));
    expect(down.desired).toBeUndefined();
    expect(down.invalid).toMatch(/cpu: no ready replica reported cpu.*would scale down/);
    // Nothing readable at all: no decision
    expect(proposeReplicas(c, 3, load([{ ready: false }, { ready: false }])).invalid).toMatch(/^inflight: no ready replica/);
  });
});

describe("stabilization", () => {
  it("scale-down takes the highest recommendation within the window", () => {
    const history = [
      { atMs: 0, replicas: 5 },
      { atMs: 60_000, replicas: 3 },
    ];
    // At 2 minutes: 5 is in the window, current 5: no scale-down
    expect(stabilize({ history, desired: 2, current: 5, nowMs: 120_000, upWindowMs: 0, downWindowMs: 300_000 })).toMatchObject({ replicas: 5, highestDown: 5 });
    // At 5 min 30 s the 5 has left the window; the 3 of minute 1 has not: 5 → 3
    const later = stabilize({ history, desired: 2, current: 5, nowMs: 330_000, upWindowMs: 0, downWindowMs: 300_000 });
    expect(later).toMatchObject({ replicas: 3, highestDown: 3 });
    expect(later.history).toEqual([
      { atMs: 60_000, replicas: 3 },
      { atMs: 330_000, replicas: 2 },
    ]);
    // A recommendation exactly at the window's edge is out (HPA: After(cutoff))
    expect(stabilize({ history: [{ atMs: 0, replicas: 9 }], desired: 2, current: 5, nowMs: 300_000, upWindowMs: 0, downWindowMs: 300_000 }).replicas).toBe(2);
  });

  it("scale-up takes the lowest recommendation within its window", () => {
    // Up window 60 s: 3 was recommended 30 s ago, now 8, current 4: the lowest (3) is below current, so stay at 4
    expect(stabilize({ history: [{ atMs: 0, replicas: 3 }], desired: 8, current: 4, nowMs: 30_000, upWindowMs: 60_000, downWindowMs: 0 }).replicas).toBe(4);
    // Recommendations 6 and 7 within the window, now 8: up to 6
    expect(stabilize({ history: [{ atMs: 0, replicas: 7 }, { atMs: 10_000, replicas: 6 }], desired: 8, current: 4, nowMs: 30_000, upWindowMs: 60_000, downWindowMs: 0 }).replicas).toBe(6);
    // No up window (the default): straight to 8
    expect(stabilize({ history: [{ atMs: 0, replicas: 3 }], desired: 8, current: 4, nowMs: 30_000, upWindowMs: 0, downWindowMs: 300_000 }).replicas).toBe(8);
  });
});

describe("scaling policies", () => {
  const none = { ups: [], downs: [] };
  const rules = (policies: ScalingRules["policies"], select: ScalingRules["select"] = "max"): ScalingRules => ({ stabilizationMs: 0, policies, select });

  it("scale-up defaults: double or 4 more per 15 s, whichever is more", () => {
    // From 2: max(ceil(2 × 2), 2 + 4) = 6; from 10: max(20, 14) = 20
    expect(scaleUpLimit({ current: 2, ...none, rules: AUTOSCALE_DEFAULTS.scaleUp, nowMs: 0 })).toBe(6);
    expect(scaleUpLimit({ current: 10, ...none, rules: AUTOSCALE_DEFAULTS.scaleUp, nowMs: 0 })).toBe(20);
    // select min: the smaller allowance, min(4, 6) = 4; disabled: no change
    expect(scaleUpLimit({ current: 2, ...none, rules: { ...AUTOSCALE_DEFAULTS.scaleUp, select: "min" }, nowMs: 0 })).toBe(4);
    expect(scaleUpLimit({ current: 2, ...none, rules: { ...AUTOSCALE_DEFAULTS.scaleUp, select: "disabled" }, nowMs: 0 })).toBe(2);
  });

  it("counts the changes the autoscaler made within each policy's period", () => {
    // 6 now after +4 five seconds ago: the period started at 2, so max(4, 6) = 6 (no more for now)
    expect(scaleUpLimit({ current: 6, ups: [{ atMs: 0, change: 4 }], downs: [], rules: AUTOSCALE_DEFAULTS.scaleUp, nowMs: 5_000 })).toBe(6);
    // 15 s later the change is out of the period: from 6, max(12, 10) = 12
    expect(scaleUpLimit({ current: 6, ups: [{ atMs: 0, change: 4 }], downs: [], rules: AUTOSCALE_DEFAULTS.scaleUp, nowMs: 15_000 })).toBe(12);
    // A scale-down within the period raises the period's start: 10 now after -3: from 13, pods 4 → 17
    expect(scaleUpLimit({ current: 10, ups: [], downs: [{ atMs: 0, change: 3 }], rules: rules([{ type: "pods", value: 4, periodMs: 60_000 }]), nowMs: 5_000 })).toBe(17);
  });

  it("scale-down: percent rounds toward the count, max picks the biggest change", () => {
    const both = [
      { type: "percent" as const, value: 50, periodMs: 60_000 },
      { type: "pods" as const, value: 3, periodMs: 60_000 },
    ];
    // From 10: percent 50 → 5, pods 3 → 7; max (biggest change) → 5, min → 7
    expect(scaleDownLimit({ current: 10, ...none, rules: rules(both), nowMs: 0 })).toBe(5);
    expect(scaleDownLimit({ current: 10, ...none, rules: rules(both, "min"), nowMs: 0 })).toBe(7);
    expect(scaleDownLimit({ current: 10, ...none, rules: rules(both, "disabled"), nowMs: 0 })).toBe(10);
    // 90% of 10 leaves 1 (10 × 0.1 is 0.9999999999999998 in floating point)
    expect(scaleDownLimit({ current: 10, ...none, rules: rules([{ type: "percent", value: 90, periodMs: 15_000 }]), nowMs: 0 })).toBe(1);
    // 3 removed 5 s ago with "pods 4 per 60 s": the period started at 13, so 9
    expect(scaleDownLimit({ current: 10, ups: [], downs: [{ atMs: 0, change: 3 }], rules: rules([{ type: "pods", value: 4, periodMs: 60_000 }]), nowMs: 5_000 })).toBe(9);
  });

  it("applyLimits bounds by the policies and by min/max, and says which one cut", () => {
    const base = { min: 1, max: 20, scaleUp: AUTOSCALE_DEFAULTS.scaleUp, scaleDown: AUTOSCALE_DEFAULTS.scaleDown, ...none, nowMs: 0 };
    expect(applyLimits({ ...base, current: 2, desired: 12 })).toEqual({ replicas: 6, limitedBy: "scale-up-limit", scaleUpLimit: 6 });
    expect(applyLimits({ ...base, current: 8, desired: 12, max: 10 })).toEqual({ replicas: 10, limitedBy: "max", scaleUpLimit: 16 });
    expect(applyLimits({ ...base, current: 10, desired: 1, min: 3 })).toEqual({ replicas: 3, limitedBy: "min", scaleDownLimit: 0 });
    expect(applyLimits({ ...base, current: 10, desired: 1, scaleDown: rules([{ type: "pods", value: 2, periodMs: 60_000 }]) })).toEqual({ replicas: 8, limitedBy: "scale-down-limit", scaleDownLimit: 8 });
    expect(applyLimits({ ...base, current: 4, desired: 7 })).toEqual({ replicas: 7, scaleUpLimit: 8 });
    // Scale-ups already used the period: the limit never goes below the current count
    expect(applyLimits({ ...base, current: 10, desired: 12, ups: [{ atMs: 0, change: 8 }] })).toMatchObject({ replicas: 10, limitedBy: "scale-up-limit" });
  });

  it("recordScale keeps changes for the longest policy period of their direction", () => {
    const c = config({ min: 1, max: 10 });
    let m: AutoscaleMemory = emptyMemory();
    m = recordScale(m, c, 2, 6, 0);
    m = recordScale(m, c, 6, 4, 1_000);
    m = recordScale(m, c, 4, 8, 20_000);
    expect(m.scaleUps).toEqual([{ atMs: 20_000, change: 4 }]);
    expect(m.scaleDowns).toEqual([{ atMs: 1_000, change: 2 }]);
    expect(recordScale(m, c, 8, 8, 30_000)).toBe(m);
  });
});

describe("decide: one look, as HPA's reconcile", () => {
  const at = (memory: AutoscaleMemory, c: AutoscaleConfig, current: number, l: ServiceLoad | undefined, nowMs: number) => decide({ config: c, current, load: l, nowMs, memory });

  it("scales up at once (no scale-up stabilization by default)", () => {
    const d = at(emptyMemory(), config({ min: 1, max: 10 }), 2, loadAt(2, 30), 0);
    // ratio 3: ceil(2 × 3) = 6, within the default policies (max 6 from 2)
    expect(d).toMatchObject({ outcome: "scale", reason: "scale-up", from: 2, to: 6, recommendation: 6 });
    expect(d.message).toBe("inflight 30/10 (ratio 3): 2 → 6");
  });

  it("holds a scale-down for the stabilization window, counting the first look's current count (HPA's initial recommendation)", () => {
    const c = config({ min: 1, max: 10 });
    let d = at(emptyMemory(), c, 4, loadAt(4, 5), 0);
    expect(d).toMatchObject({ outcome: "hold", reason: "stabilization", to: 4, recommendation: 2 });
    expect(d.message).toMatch(/asks for 2, but 4 was recommended within the last 5m/);
    for (let t = 2_000; t < 300_000; t += 2_000) {
      d = at(d.memory, c, 4, loadAt(4, 5), t);
      expect(d.outcome).toBe("hold");
    }
    d = at(d.memory, c, 4, loadAt(4, 5), 300_000);
    expect(d).toMatchObject({ outcome: "scale", reason: "scale-down", to: 2 });
  });

  it("applies the scale-up policy over its period, then allows more", () => {
    const c = config({ min: 1, max: 20 });
    let d = at(emptyMemory(), c, 2, loadAt(2, 60), 0);
    // ratio 6 asks for 12; from 2 the policies allow max(4, 6) = 6
    expect(d).toMatchObject({ outcome: "scale", to: 6, limits: { limitedBy: "scale-up-limit", scaleUpLimit: 6 } });
    let memory = recordScale(d.memory, c, 2, 6, 0);
    // 2 s later: the period started at 2, so 6 is all that is allowed
    d = at(memory, c, 6, loadAt(6, 20), 2_000);
    expect(d).toMatchObject({ outcome: "hold", reason: "scale-up-limit", recommendation: 12 });
    expect(d.message).toMatch(/the scale-up policies allow 6 now/);
    memory = d.memory;
    // After 15 s: from 6, max(12, 10) = 12
    d = at(memory, c, 6, loadAt(6, 20), 16_000);
    expect(d).toMatchObject({ outcome: "scale", to: 12 });
  });

  it("holds at max and at min with the reason", () => {
    expect(at(emptyMemory(), config({ min: 1, max: 4 }), 4, loadAt(4, 30), 0)).toMatchObject({ outcome: "hold", reason: "max", message: expect.stringMatching(/max is 4/) });
    const c = config({ min: 2, max: 4, scaleDown: { stabilization: 0 } });
    expect(at(emptyMemory(), c, 2, loadAt(2, 1), 0)).toMatchObject({ outcome: "hold", reason: "min", message: expect.stringMatching(/min is 2/) });
    expect(at(emptyMemory(), c, 3, loadAt(3, 1), 0)).toMatchObject({ outcome: "scale", to: 2, limits: { limitedBy: "min" } });
  });

  it("moves a count outside min..max in at once, without metrics", () => {
    expect(at(emptyMemory(), config({ min: 2, max: 4 }), 7, undefined, 0)).toMatchObject({ outcome: "scale", reason: "above-max", to: 4 });
    expect(at(emptyMemory(), config({ min: 2, max: 4 }), 1, undefined, 0)).toMatchObject({ outcome: "scale", reason: "below-min", to: 2 });
  });

  it("holds the count when the metrics source gave nothing, never falling to min", () => {
    const d = decide({ config: config({ min: 1, max: 10 }), current: 5, load: undefined, unavailable: "gateway unreachable", nowMs: 0, memory: emptyMemory() });
    expect(d).toMatchObject({ outcome: "hold", reason: "metrics-unavailable", to: 5, message: "gateway unreachable" });
    // No recommendation is recorded for a look without load (only the first look's current count).
    expect(d.memory.recommendations).toEqual([{ atMs: 0, replicas: 5 }]);
    expect(at(emptyMemory(), config({ min: 1, max: 10 }), 3, load([{ ready: false }, { ready: false }, { ready: false }]), 0)).toMatchObject({ outcome: "hold", reason: "metrics-invalid" });
  });

  it("is steady when the count fits", () => {
    expect(at(emptyMemory(), config({ min: 1, max: 10 }), 3, loadAt(3, 10.5), 0)).toMatchObject({ outcome: "steady", reason: "at-target", to: 3 });
  });

  it("keeps a target of 0 or a ratio that is not finite out of the decision and out of the history (regression)", () => {
    // The manifest refuses p95: 0; a stored spec or another caller may still hold one. It used to
    // scale to max on any traffic (ratio Infinity) and record NaN when idle (0 / 0).
    const zeroP95: AutoscaleConfig = { ...config({ min: 1, max: 10, scaleDown: { stabilization: 0 } }), target: { p95: 0 } };
    for (const l of [loadAt(4, 5, { p95Ms: 120 }), loadAt(4, 0, { requests: 0 })]) {
      const d = at(emptyMemory(), zeroP95, 4, l, 0);
      expect(d).toMatchObject({ outcome: "hold", reason: "metrics-invalid", to: 4, message: expect.stringMatching(/target 0 for p95 is not a positive number/) });
      expect(d.memory.recommendations).toEqual([{ atMs: 0, replicas: 4 }]);
    }
    const zeroInflight: AutoscaleConfig = { ...zeroP95, target: { inflight: 0 } };
    expect(at(emptyMemory(), zeroInflight, 4, loadAt(4, 5), 0)).toMatchObject({ outcome: "hold", reason: "metrics-invalid", to: 4 });
    expect(inflight(3, ready(5, 5, 5)).proposal).toBe(2);
    expect(replicaMeasureProposal({ measure: "rps", target: Number.NaN, tolerance: 0.1, current: 3, replicas: ready(5, 5, 5), atMs: 0, initializationMs: 0 })).toMatchObject({ invalid: expect.stringMatching(/not a positive number/) });
    // A finite measure over a tiny target overflows to Infinity: no proposal either.
    expect(serviceMeasureProposal({ measure: "p95", target: 1e-300, tolerance: 0.1, current: 2, value: 1e300 })).toMatchObject({ invalid: expect.stringMatching(/no finite ratio/) });
    // With a usable measure beside it, the usable one still scales up (and only up).
    const both: AutoscaleConfig = { ...zeroP95, target: { p95: 0, inflight: 10 } };
    expect(at(emptyMemory(), both, 2, loadAt(2, 20, { p95Ms: 120 }), 0)).toMatchObject({ outcome: "scale", to: 4 });
    const down = at(emptyMemory(), both, 4, loadAt(4, 1, { p95Ms: 120 }), 0);
    expect(down).toMatchObject({ outcome: "hold", reason: "metrics-invalid", to: 4 });
    expect(down.memory.recommendations.every((r) => Number.isInteger(r.replicas))).toBe(true);
  });

  it("does not scale down on a window the gateways saw only part of (a restart), but scales up on it", () => {
    const c = config({ min: 1, max: 10, scaleDown: { stabilization: 0 } });
    // 4 replicas, near-zero load over the 3 s a restarted gateway saw of the 10 s window.
    const restarted = loadAt(4, 0.2, { coveredMs: 3_000 });
    const d = at(emptyMemory(), c, 4, restarted, 0);
    expect(d).toMatchObject({ outcome: "hold", reason: "metrics-partial", to: 4, recommendation: 1 });
    expect(d.message).toMatch(/saw only 3s of the 10s window .*no scale-down until the window is full/);
    // Recorded as on target: what the scale-down window remembers is the current count.
    expect(d.memory.recommendations.at(-1)).toEqual({ atMs: 0, replicas: 4 });
    // The same load over a whole window scales down (nothing else held it).
    expect(at(emptyMemory(), c, 4, loadAt(4, 0.2), 0)).toMatchObject({ outcome: "scale", reason: "scale-down", to: 1 });
    expect(at(emptyMemory(), c, 4, loadAt(4, 0.2, { coveredMs: 10_000 }), 0)).toMatchObject({ outcome: "scale", to: 1 });
    // What was seen already asks for more: scale up.
    expect(at(emptyMemory(), c, 2, loadAt(2, 20, { coveredMs: 5_000 }), 0)).toMatchObject({ outcome: "scale", reason: "scale-up", to: 4 });
  });

  it("acts on a window seen only in part once that has lasted more than 2 windows in a row (regression: a missing worker blocked scale-down for good)", () => {
    const c = config({ min: 1, max: 10, scaleDown: { stabilization: 0 } });
    // A worker of the gateway stays missing: every look sees none of the 10 s window.
    const missing = loadAt(4, 0.2, { coveredMs: 0 });
    let memory = emptyMemory();
    for (const t of [0, 2_000, 10_000, 20_000]) {
      const d = at(memory, c, 4, missing, t);
      expect(d).toMatchObject({ outcome: "hold", reason: "metrics-partial", to: 4, partial: { coveredMs: 0, windowMs: 10_000, forMs: t, expired: false } });
      expect(d.message).toMatch(/no scale-down until the window is full, or it has been partial for more than 20s in a row/);
      memory = d.memory;
    }
    const d = at(memory, c, 4, missing, 20_001);
    expect(d).toMatchObject({ outcome: "scale", reason: "metrics-partial-expired", to: 1, partial: { forMs: 20_001, expired: true } });
    expect(d.message).toMatch(/^inflight 0\.2\/10 .*: 4 → 1, on a partly seen window: the gateways saw only 0s of the 10s window .* for 20s, more than 2 windows in a row/);
    // A scale-up on a partial window is no news: its reason stays.
    expect(at(d.memory, c, 4, loadAt(4, 30, { coveredMs: 0 }), 22_000)).toMatchObject({ outcome: "scale", reason: "scale-up" });

    // A look at a whole window, or without load, ends the run: the next partial look holds again.
    for (const between of [loadAt(4, 10), undefined]) {
      let m = at(emptyMemory(), c, 4, missing, 0).memory;
      m = at(m, c, 4, missing, 19_000).memory;
      m = at(m, c, 4, between, 20_000).memory;
      expect(m.partialSinceMs).toBeUndefined();
      expect(at(m, c, 4, missing, 22_000)).toMatchObject({ outcome: "hold", reason: "metrics-partial", partial: { forMs: 0 } });
    }
  });

  it("keeps the idle clock running through partial looks that saw no request, and scales to zero on them only once they expired", () => {
    const z = config({ min: 0, max: 4, scaleDown: { stabilization: 0 }, scaleToZero: { idle: "1m" } });
    const quiet = (extra: Partial<ServiceLoad> = {}) => loadAt(1, 0, { requests: 0, ...extra });
    let memory = at(emptyMemory(), z, 1, quiet(), 0).memory;
    // Partial looks with no request (regression: each one restarted the idle clock).
    memory = at(memory, z, 1, quiet({ coveredMs: 2_000 }), 50_000).memory;
    expect(at(memory, z, 1, quiet(), 70_000)).toMatchObject({ outcome: "scale", reason: "scale-to-zero", to: 0, idleForMs: 70_000 });
    // Idle long enough, but the window is still partial: held, not scaled to zero...
    const held = at(memory, z, 1, quiet({ coveredMs: 2_000 }), 65_000);
    expect(held).toMatchObject({ outcome: "hold", reason: "metrics-partial", to: 1, idleForMs: 65_000 });
    expect(held.message).toMatch(/^no requests for 65s, but the gateways saw only 2s of the 10s window .*: no scale-down until the window is full/);
    // ...until it has been partial for more than 2 windows.
    expect(at(held.memory, z, 1, quiet({ coveredMs: 2_000 }), 70_001)).toMatchObject({ outcome: "scale", reason: "metrics-partial-expired", to: 0, message: expect.stringMatching(/^no requests for 70s: scaling to zero, on a partly seen window/) });
    // A request seen by a gateway that answered still restarts it.
    memory = at(memory, z, 1, quiet({ coveredMs: 2_000, requests: 1 }), 60_000).memory;
    expect(at(memory, z, 1, quiet(), 70_000)).toMatchObject({ outcome: "hold", reason: "waiting-for-idle", idleForMs: 10_000 });
  });

  it("wakes from zero only once scaleToZero.activation requests were seen in the window", () => {
    const z = config({ min: 0, max: 4, scaleToZero: { activation: 5 } });
    expect(at(emptyMemory(), z, 0, load([], { requests: 4 }), 0)).toMatchObject({ outcome: "steady", reason: "below-activation", to: 0, message: expect.stringMatching(/4 requests in the window, fewer than the 5 that wake it/) });
    expect(at(emptyMemory(), z, 0, load([], { requests: 5 }), 0)).toMatchObject({ outcome: "scale", reason: "activated", to: 1 });
    expect(at(emptyMemory(), config({ min: 0, max: 4 }), 0, load([], { requests: 1 }), 0)).toMatchObject({ outcome: "scale", reason: "activated", to: 1 });
  });

  it("wakes from zero on the requests the gateways held, which never reach a replica's series (regression: they were never counted)", () => {
    const z = config({ min: 0, max: 4, scaleToZero: { activation: 3 } });
    expect(at(emptyMemory(), z, 0, load([], { requests: 0, heldArrivals: 2 }), 0)).toMatchObject({
      outcome: "steady",
      reason: "below-activation",
      message: "at zero, 2 held by the gateways, fewer than the 3 that wake it (scaleToZero.activation)",
    });
    expect(at(emptyMemory(), z, 0, load([], { requests: 0, heldArrivals: 3 }), 0)).toMatchObject({ outcome: "scale", reason: "activated", to: 1, message: "3 requests arrived while at zero (3 held by the gateways): starting 1" });
    expect(at(emptyMemory(), z, 0, load([], { requests: 1, heldArrivals: 2 }), 0)).toMatchObject({ outcome: "scale", reason: "activated", message: expect.stringMatching(/\(1 requests in the window and 2 held by the gateways\)/) });
    // Requests held while the replica is not ready yet keep the service from counting as idle.
    const idle = config({ min: 0, max: 4, scaleDown: { stabilization: 0 }, scaleToZero: { idle: "1m" } });
    let memory = at(emptyMemory(), idle, 1, loadAt(1, 0, { requests: 0 }), 0).memory;
    memory = at(memory, idle, 1, loadAt(1, 0, { requests: 0, heldArrivals: 1 }), 50_000).memory;
    expect(at(memory, idle, 1, loadAt(1, 0, { requests: 0 }), 70_000)).toMatchObject({ outcome: "hold", reason: "waiting-for-idle", idleForMs: 20_000 });
  });

  it("pauses at zero when min > 0 (as HPA), and at min 0 activates on requests", () => {
    expect(at(emptyMemory(), config({ min: 2, max: 4 }), 0, loadAt(0, 0), 0)).toMatchObject({ outcome: "hold", reason: "disabled" });
    const z = config({ min: 0, max: 4 });
    expect(at(emptyMemory(), z, 0, load([], { requests: 3 }), 0)).toMatchObject({ outcome: "scale", reason: "activated", to: 1 });
    expect(at(emptyMemory(), z, 0, load([], { requests: 0 }), 0)).toMatchObject({ outcome: "steady", reason: "idle-at-zero", to: 0 });
    expect(at(emptyMemory(), z, 0, undefined, 0)).toMatchObject({ outcome: "hold", reason: "metrics-unavailable", to: 0 });
  });

  it("scales to zero only after scaleToZero.idle without requests", () => {
    const c = config({ min: 0, max: 4, scaleDown: { stabilization: 0 }, scaleToZero: { idle: "1m" } });
    const idle = (n: number) => loadAt(n, 0, { requests: 0 });
    let d = at(emptyMemory(), c, 2, idle(2), 0);
    // ratio 0 asks for 0; until idle for 1 minute the floor is 1
    expect(d).toMatchObject({ outcome: "scale", reason: "scale-down", to: 1, idleForMs: 0 });
    let memory = recordScale(d.memory, c, 2, 1, 0);
    d = at(memory, c, 1, idle(1), 30_000);
    expect(d).toMatchObject({ outcome: "hold", reason: "waiting-for-idle", idleForMs: 30_000 });
    expect(d.message).toMatch(/scale to zero after 1m without requests \(idle for 30s\)/);
    // A request at 40 s restarts the idle clock
    memory = at(d.memory, c, 1, loadAt(1, 0.01, { requests: 1 }), 40_000).memory;
    expect(at(memory, c, 1, idle(1), 90_000)).toMatchObject({ outcome: "hold", reason: "waiting-for-idle", idleForMs: 50_000 });
    d = at(memory, c, 1, idle(1), 100_000);
    expect(d).toMatchObject({ outcome: "scale", reason: "scale-to-zero", to: 0 });
    // A look without load (a metrics outage) is not idleness: the idle minute starts again after it.
    const outage = at(memory, c, 1, undefined, 90_000);
    expect(outage).toMatchObject({ outcome: "hold", reason: "metrics-unavailable" });
    expect(at(outage.memory, c, 1, idle(1), 100_000)).toMatchObject({ outcome: "hold", reason: "waiting-for-idle", idleForMs: 10_000 });
  });
});
