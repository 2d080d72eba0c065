import { describe, expect, it } from "vitest";
import { planReplicaSteps, replicaId, type RunningReplica } from "./replica-plan.js";

const r = (service: string, release: string, index: number, state: RunningReplica["state"] = "ready"): RunningReplica => ({
  id: replicaId(service, release, index),
  service,
  release,
  index,
  state,
});

describe("planReplicaSteps", () => {
  it("starts every missing replica of a new service", () => {
    const steps = planReplicaSteps([{ service: "orders", release: "r-aaaaaa111111", replicas: 2, fixedPorts: false }], []);
    expect(steps.start).toEqual([
      { service: "orders", release: "r-aaaaaa111111", index: 0 },
      { service: "orders", release: "r-aaaaaa111111", index: 1 },
    ]);
    expect(steps.stop).toEqual([]);
  });

  it("does nothing once converged", () => {
    const running = [r("orders", "r-a", 0), r("orders", "r-a", 1)];
    expect(planReplicaSteps([{ service: "orders", release: "r-a", replicas: 2, fixedPorts: false }], running)).toEqual({ start: [], stop: [] });
  });

  it("rolls: starts the new release beside the old, stops the old only once the new is ready", () => {
    const target = [{ service: "orders", release: "r-new", replicas: 1, fixedPorts: false }];
    const first = planReplicaSteps(target, [r("orders", "r-old", 0)]);
    expect(first).toEqual({ start: [{ service: "orders", release: "r-new", index: 0 }], stop: [] });
    const starting = planReplicaSteps(target, [r("orders", "r-old", 0), r("orders", "r-new", 0, "starting")]);
    expect(starting).toEqual({ start: [], stop: [] });
    const ready = planReplicaSteps(target, [r("orders", "r-old", 0), r("orders", "r-new", 0)]);
    expect(ready).toEqual({ start: [], stop: [replicaId("orders", "r-old", 0)] });
  });

  it("with fixed ports stops the old replica first and starts the new one only after it is gone", () => {
    const target = [{ service: "orders", release: "r-new", replicas: 1, fixedPorts: true }];
    expect(planReplicaSteps(target, [r("orders", "r-old", 0)])).toEqual({ start: [], stop: [replicaId("orders", "r-old", 0)] });
    expect(planReplicaSteps(target, [r("orders", "r-old", 0, "stopping")])).toEqual({ start: [], stop: [] });
    expect(planReplicaSteps(target, [])).toEqual({ start: [{ service: "orders", release: "r-new", index: 0 }], stop: [] });
  });

  it("scales down from the highest index and stops services no longer wanted", () => {
    const running = [r("orders", "r-a", 0), r("orders", "r-a", 1), r("orders", "r-a", 2), r("legacy", "r-b", 0)];
    const steps = planReplicaSteps([{ service: "orders", release: "r-a", replicas: 1, fixedPorts: false }], running);
    expect(steps.start).toEqual([]);
    expect(steps.stop.sort()).toEqual([replicaId("legacy", "r-b", 0), replicaId("orders", "r-a", 1), replicaId("orders", "r-a", 2)].sort());
  });

  it("does not stop a replica twice", () => {
    const steps = planReplicaSteps([], [r("orders", "r-a", 0, "stopping")]);
    expect(steps.stop).toEqual([]);
  });
});
