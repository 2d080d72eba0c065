import { describe, expect, it } from "vitest";
import { planReplicaSteps, replicaId, rollingLimits, type RunningReplica, type ServiceTarget } from "./replica-plan.js";

const r = (service: string, release: string, index: number, state: RunningReplica["state"] = "ready"): RunningReplica => ({
  id: replicaId(service, release, index),
  service,
  release,
  index,
  state,
});

/** A target for "orders" with the default limits of a small service: surge 1, unavailable 0. */
const target = (release: string, replicas: number, extra: Partial<ServiceTarget> = {}): ServiceTarget => ({
  service: "orders",
  release,
  replicas,
  fixedPorts: false,
  maxSurge: 1,
  maxUnavailable: 0,
  ...extra,
});

const readyOld = (n: number, release = "r-old"): RunningReplica[] => Array.from({ length: n }, (_, i) => r("orders", release, i));

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Simulation {
  targets: ServiceTarget[];
  initial: RunningReplica[];
  seed: number;
  /** Replicas that never become ready once started. */
  stuck?: (r: RunningReplica) => boolean;
  /** Called with every state the replicas pass through. */
  check?: (replicas: RunningReplica[]) => void;
}

/**
 * Drives the planner like the reconciler does: apply a step (stopped replicas turn "stopping",
 * started ones begin "starting"), then one event (a stopping replica disappears or a starting
 * one becomes ready, picked pseudo-randomly), and plan again until nothing is left to do.
 */
function simulate(sim: Simulation): { replicas: RunningReplica[]; stopped: string[]; iterations: number } {
  const random = seeded(sim.seed);
  const stopped: string[] = [];
  let replicas = sim.initial.map((x) => ({ ...x }));
  sim.check?.(replicas);
  for (let iteration = 0; iteration < 500; iteration++) {
    const steps = planReplicaSteps(sim.targets, replicas);
    stopped.push(...steps.stop);
    replicas = replicas.map((x) => (steps.stop.includes(x.id) ? { ...x, state: "stopping" } : x));
    replicas.push(...steps.start.map((s) => r(s.service, s.release, s.index, "starting")));
    sim.check?.(replicas);
    const pending = replicas.filter((x) => x.state === "stopping" || (x.state === "starting" && !sim.stuck?.(x)));
    if (steps.start.length === 0 && steps.stop.length === 0 && pending.length === 0) return { replicas, stopped, iterations: iteration };
    if (pending.length === 0) continue;
    const event = pending[Math.floor(random() * pending.length)]!;
    replicas = event.state === "stopping" ? replicas.filter((x) => x !== event) : replicas.map((x) => (x === event ? { ...x, state: "ready" } : x));
    sim.check?.(replicas);
  }
  throw new Error("did not converge within 500 iterations");
}

const live = (replicas: RunningReplica[]): RunningReplica[] => replicas.filter((x) => x.state !== "stopping");
const ready = (replicas: RunningReplica[]): RunningReplica[] => replicas.filter((x) => x.state === "ready");

/** Exactly `n` ready replicas of `release` at indexes 0..n-1, nothing else. */
function expectConverged(replicas: RunningReplica[], release: string, n: number): void {
  expect(replicas.map((x) => [x.release, x.index, x.state]).sort()).toEqual(
    Array.from({ length: n }, (_, i) => [release, i, "ready"]).sort(),
  );
}

describe("planReplicaSteps", () => {
  it("starts every missing replica of a new service", () => {
    const steps = planReplicaSteps([target("r-aaaaaa111111", 2)], []);
    expect(steps.start).toEqual([
      { service: "orders", release: "r-aaaaaa111111", index: 0 },
      { service: "orders", release: "r-aaaaaa111111", index: 1 },
    ]);
    expect(steps.stop).toEqual([]);
  });

  it("does nothing once converged", () => {
    const running = [r("orders", "r-a", 0), r("orders", "r-a", 1)];
    expect(planReplicaSteps([target("r-a", 2)], running)).toEqual({ start: [], stop: [] });
  });

  it("rolls: starts the new release beside the old, stops the old only once the new is ready", () => {
    const targets = [target("r-new", 1)];
    const first = planReplicaSteps(targets, [r("orders", "r-old", 0)]);
    expect(first).toEqual({ start: [{ service: "orders", release: "r-new", index: 0 }], stop: [] });
    const starting = planReplicaSteps(targets, [r("orders", "r-old", 0), r("orders", "r-new", 0, "starting")]);
    expect(starting).toEqual({ start: [], stop: [] });
    const ready = planReplicaSteps(targets, [r("orders", "r-old", 0), r("orders", "r-new", 0)]);
    expect(ready).toEqual({ start: [], stop: [replicaId("orders", "r-old", 0)] });
  });

  it("with fixed ports stops the old replica first and starts the new one only after it is gone", () => {
    const targets = [target("r-new", 1, { fixedPorts: true, maxSurge: 0, maxUnavailable: 1 })];
    expect(planReplicaSteps(targets, [r("orders", "r-old", 0)])).toEqual({ start: [], stop: [replicaId("orders", "r-old", 0)] });
    expect(planReplicaSteps(targets, [r("orders", "r-old", 0, "stopping")])).toEqual({ start: [], stop: [] });
    expect(planReplicaSteps(targets, [r("orders", "r-old", 0, "stopped")])).toEqual({
      start: [{ service: "orders", release: "r-new", index: 0 }],
      stop: [],
    });
    expect(planReplicaSteps(targets, [])).toEqual({ start: [{ service: "orders", release: "r-new", index: 0 }], stop: [] });
  });

  it("with fixed ports still rolls when given no unavailable budget", () => {
    const steps = planReplicaSteps([target("r-new", 2, { fixedPorts: true })], readyOld(2));
    expect(steps).toEqual({ start: [], stop: [replicaId("orders", "r-old", 1)] });
  });

  it("scales down from the highest index and stops services no longer wanted", () => {
    const running = [r("orders", "r-a", 0), r("orders", "r-a", 1), r("orders", "r-a", 2), r("legacy", "r-b", 0)];
    const steps = planReplicaSteps([target("r-a", 1)], running);
    expect(steps.start).toEqual([]);
    expect(steps.stop.sort()).toEqual([replicaId("legacy", "r-b", 0), replicaId("orders", "r-a", 1), replicaId("orders", "r-a", 2)].sort());
  });

  it("does not stop a replica twice", () => {
    expect(planReplicaSteps([], [r("orders", "r-a", 0, "stopping"), r("orders", "r-a", 1, "stopped")]).stop).toEqual([]);
    expect(planReplicaSteps([target("r-new", 1)], [r("orders", "r-old", 0, "stopping")]).stop).toEqual([]);
  });

  it("scales up at once when nothing is old", () => {
    const steps = planReplicaSteps([target("r-a", 10)], readyOld(2, "r-a"));
    expect(steps.stop).toEqual([]);
    expect(steps.start.map((s) => s.index)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("starts a target replica again once its predecessor has stopped", () => {
    const steps = planReplicaSteps([target("r-a", 2)], [r("orders", "r-a", 0), r("orders", "r-a", 1, "stopped")]);
    expect(steps).toEqual({ start: [{ service: "orders", release: "r-a", index: 1 }], stop: [] });
  });

  it("stops a duplicate of a slot, keeping the ready one", () => {
    const dup = { ...r("orders", "r-a", 0, "starting"), id: "orders-a-0-copy" };
    expect(planReplicaSteps([target("r-a", 1)], [dup, r("orders", "r-a", 0)])).toEqual({ start: [], stop: ["orders-a-0-copy"] });
    expect(planReplicaSteps([target("r-a", 1)], [r("orders", "r-a", 0), dup])).toEqual({ start: [], stop: ["orders-a-0-copy"] });
  });

  it("stops old replicas that are not ready at once, without waiting for the new ones", () => {
    const running = [r("orders", "r-old", 0), r("orders", "r-old", 1, "unready"), r("orders", "r-old", 2, "failed")];
    const steps = planReplicaSteps([target("r-new", 3)], running);
    expect(steps.stop.sort()).toEqual([replicaId("orders", "r-old", 1), replicaId("orders", "r-old", 2)].sort());
    // Target + old after the stops: 1, so up to 3 new may start within replicas + surge = 4.
    expect(steps.start.map((s) => s.index)).toEqual([0, 1, 2]);
  });

  it("stops first the old replicas a ready target replica already covers, then the highest index", () => {
    const running = [...readyOld(4), r("orders", "r-new", 1), r("orders", "r-new", 0, "starting")];
    const steps = planReplicaSteps([target("r-new", 4, { maxSurge: 2, maxUnavailable: 1 })], running);
    // Ready: 5 of 4 (unavailable 1) so two old may stop: index 1 (covered) then index 3.
    expect(steps.stop).toEqual([replicaId("orders", "r-old", 1), replicaId("orders", "r-old", 3)]);
    // Target + old after the stops: 4, so two more new within 4 + 2.
    expect(steps.start.map((s) => s.index)).toEqual([2, 3]);
  });

  it("treats maxSurge 0 with maxUnavailable 0 as surge 1", () => {
    const steps = planReplicaSteps([target("r-new", 2, { maxSurge: 0, maxUnavailable: 0 })], readyOld(2));
    expect(steps).toEqual({ start: [{ service: "orders", release: "r-new", index: 0 }], stop: [] });
  });

  describe("rolling simulation", () => {
    const seeds = Array.from({ length: 20 }, (_, i) => i + 1);

    const cases: Array<{ name: string; n: number; maxSurge: number; maxUnavailable: number }> = [
      { name: "N=4 surge 1 unavailable 0", n: 4, maxSurge: 1, maxUnavailable: 0 },
      { name: "N=4 surge 0 unavailable 1", n: 4, maxSurge: 0, maxUnavailable: 1 },
      { name: "N=5 surge 2 unavailable 1", n: 5, maxSurge: 2, maxUnavailable: 1 },
      { name: "N=1 default limits", n: 1, ...rollingLimits(1, undefined, undefined) },
      { name: "N=10 default limits", n: 10, ...rollingLimits(10, undefined, undefined) },
    ];

    for (const c of cases) {
      it(`${c.name}: stays within the limits and converges`, () => {
        for (const seed of seeds) {
          const result = simulate({
            targets: [target("r-new", c.n, { maxSurge: c.maxSurge, maxUnavailable: c.maxUnavailable })],
            initial: readyOld(c.n),
            seed,
            check: (replicas) => {
              expect(live(replicas).length).toBeLessThanOrEqual(c.n + c.maxSurge);
              expect(ready(replicas).length).toBeGreaterThanOrEqual(c.n - c.maxUnavailable);
            },
          });
          expectConverged(result.replicas, "r-new", c.n);
        }
      });
    }

    it("N=4 surge 1 unavailable 0: never more than 5 replicas, never fewer than 4 ready", () => {
      const result = simulate({
        targets: [target("r-new", 4)],
        initial: readyOld(4),
        seed: 42,
        check: (replicas) => {
          expect(live(replicas).length).toBeLessThanOrEqual(5);
          expect(ready(replicas).length).toBeGreaterThanOrEqual(4);
        },
      });
      expectConverged(result.replicas, "r-new", 4);
      expect(result.stopped.sort()).toEqual(readyOld(4).map((x) => x.id).sort());
    });

    it("fixed ports (surge 0, unavailable 1): never two replicas on one index, stopping included", () => {
      for (const seed of seeds) {
        const result = simulate({
          targets: [target("r-new", 4, { fixedPorts: true, maxSurge: 0, maxUnavailable: 1 })],
          initial: readyOld(4),
          seed,
          check: (replicas) => {
            const indexes = replicas.map((x) => x.index);
            expect(new Set(indexes).size).toBe(indexes.length);
            expect(live(replicas).length).toBeLessThanOrEqual(4);
            expect(ready(replicas).length).toBeGreaterThanOrEqual(3);
          },
        });
        expectConverged(result.replicas, "r-new", 4);
      }
    });

    it("rolls and scales down at once: 6 old to 3 new", () => {
      for (const seed of seeds) {
        const result = simulate({
          targets: [target("r-new", 3)],
          initial: readyOld(6),
          seed,
          check: (replicas) => expect(ready(replicas).length).toBeGreaterThanOrEqual(3),
        });
        expectConverged(result.replicas, "r-new", 3);
      }
    });

    it("keeps availability while a new replica never becomes ready", () => {
      const result = simulate({
        targets: [target("r-new", 4)],
        initial: readyOld(4),
        seed: 7,
        stuck: (x) => x.release === "r-new",
        check: (replicas) => {
          expect(live(replicas).length).toBeLessThanOrEqual(5);
          expect(ready(replicas).length).toBeGreaterThanOrEqual(4);
        },
      });
      expect(result.stopped).toEqual([]);
      expect(result.replicas).toEqual([...readyOld(4), r("orders", "r-new", 0, "starting")]);
    });
  });

  describe("kept releases", () => {
    it("starts the new release beside a kept one and stops nothing; without keep the old one rolls away", () => {
      const keeping = [target("r-new", 2, { keep: [{ release: "r-old", replicas: 2 }] })];
      const first = planReplicaSteps(keeping, readyOld(2));
      expect(first).toEqual({
        start: [
          { service: "orders", release: "r-new", index: 0 },
          { service: "orders", release: "r-new", index: 1 },
        ],
        stop: [],
      });
      const both = [...readyOld(2), r("orders", "r-new", 0), r("orders", "r-new", 1)];
      expect(planReplicaSteps(keeping, both)).toEqual({ start: [], stop: [] });

      const dropped = planReplicaSteps([target("r-new", 2)], both);
      expect(dropped.start).toEqual([]);
      expect(dropped.stop.sort()).toEqual(readyOld(2).map((x) => x.id).sort());
    });

    it("converges to the target plus the kept set, then to the target alone", () => {
      const keeping = [target("r-new", 3, { keep: [{ release: "r-old", replicas: 3 }] })];
      const warm = simulate({ targets: keeping, initial: readyOld(3), seed: 3 });
      expect(warm.stopped).toEqual([]);
      expect(ready(warm.replicas)).toHaveLength(6);
      const done = simulate({
        targets: [target("r-new", 3)],
        initial: warm.replicas,
        seed: 3,
        check: (replicas) => expect(ready(replicas).length).toBeGreaterThanOrEqual(3),
      });
      expectConverged(done.replicas, "r-new", 3);
    });

    it("starts missing kept replicas, stops kept ones above their count, and never counts them against the surge", () => {
      const keeping = [target("r-new", 2, { keep: [{ release: "r-canary", replicas: 1 }] })];
      const running = [r("orders", "r-canary", 0), r("orders", "r-canary", 1), r("orders", "r-new", 0)];
      expect(planReplicaSteps(keeping, running)).toEqual({
        start: [{ service: "orders", release: "r-new", index: 1 }],
        stop: [replicaId("orders", "r-canary", 1)],
      });
      expect(planReplicaSteps(keeping, [r("orders", "r-new", 0), r("orders", "r-new", 1)])).toEqual({
        start: [{ service: "orders", release: "r-canary", index: 0 }],
        stop: [],
      });
    });

    it("ignores keep with fixed ports", () => {
      const targets = [target("r-new", 1, { fixedPorts: true, maxSurge: 0, maxUnavailable: 1, keep: [{ release: "r-old", replicas: 1 }] })];
      expect(planReplicaSteps(targets, readyOld(1))).toEqual({ start: [], stop: [replicaId("orders", "r-old", 0)] });
    });
  });
});

describe("rollingLimits", () => {
  it.each([
    [0, undefined, undefined, 1, 0],
    [1, undefined, undefined, 1, 0],
    [4, undefined, undefined, 1, 0],
    [10, undefined, undefined, 3, 0],
    [4, 50, 25, 2, 1],
    [3, 0, 0, 1, 0],
    [10, 0, 30, 0, 3],
    [3, 10, 50, 1, 1],
    [0, 50, 50, 1, 0],
  ])("replicas %i, surge %s%%, unavailable %s%% -> surge %i, unavailable %i", (replicas, surge, unavailable, maxSurge, maxUnavailable) => {
    expect(rollingLimits(replicas, surge, unavailable)).toEqual({ maxSurge, maxUnavailable });
  });
});
