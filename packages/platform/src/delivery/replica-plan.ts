// Pure decisions of the reconciler: which replicas to start and stop so a service runs
// `desired` replicas of `release`. Rolling: a new replica first, the old one once it is ready.
import type { ReplicaState } from "@keelson/protocol";

export interface RunningReplica {
  id: string;
  service: string;
  release: string;
  index: number;
  state: ReplicaState;
}

export interface ServiceTarget {
  service: string;
  release: string;
  replicas: number;
  /** With fixed ports the old replica must stop before the new one can bind its port. */
  fixedPorts: boolean;
}

export interface ReplicaSteps {
  start: Array<{ service: string; release: string; index: number }>;
  stop: string[];
}

/**
 * One reconcile step for all services. Idempotent: applying its output and calling it
 * again with the new state yields no further steps once converged.
 */
export function planReplicaSteps(targets: ServiceTarget[], running: RunningReplica[]): ReplicaSteps {
  const steps: ReplicaSteps = { start: [], stop: [] };
  const wanted = new Map(targets.map((t) => [t.service, t]));
  for (const r of running) {
    if (!wanted.has(r.service) && r.state !== "stopping") steps.stop.push(r.id);
  }
  for (const t of targets) {
    const all = running.filter((r) => r.service === t.service);
    const mine = all.filter((r) => r.state !== "stopping");
    for (const r of mine) if (r.index >= t.replicas) steps.stop.push(r.id);
    for (let index = 0; index < t.replicas; index++) {
      const atIndex = mine.filter((r) => r.index === index);
      const current = atIndex.find((r) => r.release === t.release);
      const old = atIndex.filter((r) => r.release !== t.release);
      if (!current) {
        if (t.fixedPorts) {
          // The port is free only once every other replica at this index has gone.
          if (old.length > 0) steps.stop.push(...old.map((r) => r.id));
          else if (!all.some((r) => r.index === index)) steps.start.push({ service: t.service, release: t.release, index });
        } else {
          steps.start.push({ service: t.service, release: t.release, index });
        }
      } else if (current.state === "ready") {
        steps.stop.push(...old.map((r) => r.id));
      }
    }
  }
  return steps;
}

/** Replica id: service, 6 hex digits of the release, index. */
export function replicaId(service: string, release: string, index: number): string {
  return `${service}-${release.replace(/^r-/, "").slice(0, 6)}-${index}`;
}
