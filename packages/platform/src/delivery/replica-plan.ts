// Pure decisions of the reconciler: which replicas to start and stop so a service runs
// `replicas` replicas of `release`. Rolling within surge/unavailable limits (like a
// Deployment's maxSurge/maxUnavailable), and keeping other releases warm when asked.
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
  /** The release the service should run. */
  release: string;
  /** How many replicas of `release`. */
  replicas: number;
  /**
   * With fixed ports (port + index) any replica at index i must be gone before a new one
   * at i starts. Implies maxUnavailable >= 1 (else nothing could roll); `keep` is ignored.
   */
  fixedPorts: boolean;
  /** Replicas (target and old releases, not stopping) allowed above `replicas` while rolling. */
  maxSurge: number;
  /** How far the number of ready replicas (target and old releases) may drop below `replicas`. */
  maxUnavailable: number;
  /** Other releases to keep running at these counts (indexes 0..n-1); not counted against the surge. */
  keep?: Array<{ release: string; replicas: number }>;
}

export interface ReplicaSteps {
  start: Array<{ service: string; release: string; index: number }>;
  stop: string[];
}

/** States of a replica that is already on its way out: neither counted nor stopped again. */
const GONE: ReadonlySet<ReplicaState> = new Set<ReplicaState>(["stopping", "stopped"]);

/**
 * One reconcile step for all services. Idempotent: applying its output and calling it
 * again with the new state yields no further steps once converged.
 */
export function planReplicaSteps(targets: ServiceTarget[], running: RunningReplica[]): ReplicaSteps {
  const steps: ReplicaSteps = { start: [], stop: [] };
  const wanted = new Set(targets.map((t) => t.service));
  for (const r of running) {
    if (!wanted.has(r.service) && !GONE.has(r.state)) steps.stop.push(r.id);
  }
  for (const t of targets) {
    planService(
      t,
      running.filter((r) => r.service === t.service),
      steps,
    );
  }
  return steps;
}

function planService(t: ServiceTarget, all: RunningReplica[], steps: ReplicaSteps): void {
  const { surge, unavailable } = effectiveLimits(t);
  const keep = new Map<string, number>();
  if (!t.fixedPorts) {
    for (const k of t.keep ?? []) {
      if (k.release !== t.release) keep.set(k.release, Math.max(keep.get(k.release) ?? 0, count(k.replicas)));
    }
  }

  // One live replica per slot (release + index); extra copies stop, a ready one is kept.
  const slots = new Map<string, RunningReplica>();
  for (const r of all) {
    if (GONE.has(r.state)) continue;
    const key = `${r.release}\u0000${r.index}`;
    const seen = slots.get(key);
    if (!seen) {
      slots.set(key, r);
    } else if (seen.id === r.id) {
      continue; // the same replica listed twice: stopping it by id would stop both
    } else if (r.state === "ready" && seen.state !== "ready") {
      steps.stop.push(seen.id);
      slots.set(key, r);
    } else {
      steps.stop.push(r.id);
    }
  }

  const current = new Map<number, RunningReplica>();
  const kept = new Map<string, Set<number>>();
  const old: RunningReplica[] = [];
  for (const r of slots.values()) {
    const keepCount = keep.get(r.release);
    if (r.release === t.release) {
      if (r.index < t.replicas) current.set(r.index, r);
      else steps.stop.push(r.id);
    } else if (keepCount !== undefined) {
      if (r.index < keepCount) kept.set(r.release, (kept.get(r.release) ?? new Set()).add(r.index));
      else steps.stop.push(r.id);
    } else {
      old.push(r);
    }
  }

  // Old replicas: unready ones go at once; ready ones only within the unavailable budget,
  // those already replaced by a ready target replica first, then the highest index.
  const isReady = (r: RunningReplica): boolean => r.state === "ready";
  const covered = (r: RunningReplica): number => (current.get(r.index)?.state === "ready" ? 1 : 0);
  let ready = [...current.values()].filter(isReady).length + old.filter(isReady).length;
  const retire = old.filter((r) => !isReady(r));
  const readyOld = old.filter(isReady).sort((a, b) => covered(b) - covered(a) || b.index - a.index || a.id.localeCompare(b.id));
  for (const r of readyOld) {
    if (ready - 1 < t.replicas - unavailable) break;
    retire.push(r);
    ready--;
  }
  steps.stop.push(...retire.map((r) => r.id));

  // Missing target indexes, lowest first, while target + old stay within replicas + surge.
  // With fixed ports an index is free only once nothing (stopping included) holds it.
  const held = new Set(all.filter((r) => r.state !== "stopped").map((r) => r.index));
  let live = current.size + old.length - retire.length;
  for (let index = 0; index < t.replicas && live < t.replicas + surge; index++) {
    if (current.has(index) || (t.fixedPorts && held.has(index))) continue;
    steps.start.push({ service: t.service, release: t.release, index });
    live++;
  }

  // Kept releases: a separate warm set, started in full and never rolled.
  for (const [release, n] of keep) {
    for (let index = 0; index < n; index++) {
      if (!kept.get(release)?.has(index)) steps.start.push({ service: t.service, release, index });
    }
  }
}

/** Limits as counts that always allow progress: with neither surge nor unavailable, surge 1. */
function effectiveLimits(t: ServiceTarget): { surge: number; unavailable: number } {
  let surge = count(t.maxSurge);
  let unavailable = count(t.maxUnavailable);
  if (t.fixedPorts) unavailable = Math.max(unavailable, 1);
  if (surge === 0 && unavailable === 0) surge = 1;
  return { surge, unavailable };
}

function count(n: number | undefined): number {
  return n !== undefined && Number.isFinite(n) ? Math.max(0, Math.floor(n)) : 0;
}

/**
 * Rolling limits as counts from percentages of `replicas`: surge rounds up (default 25%),
 * unavailable rounds down (default 0%); if both come out 0, surge is 1 so a roll can progress.
 */
export function rollingLimits(
  replicas: number,
  surgePercent: number | undefined,
  unavailablePercent: number | undefined,
): { maxSurge: number; maxUnavailable: number } {
  const n = count(replicas);
  const maxSurge = Math.ceil((n * Math.max(0, surgePercent ?? 25)) / 100);
  const maxUnavailable = Math.floor((n * Math.max(0, unavailablePercent ?? 0)) / 100);
  return maxSurge === 0 && maxUnavailable === 0 ? { maxSurge: 1, maxUnavailable } : { maxSurge, maxUnavailable };
}

/** Replica id: service, 6 hex digits of the release, index. */
export function replicaId(service: string, release: string, index: number): string {
  return `${service}-${release.replace(/^r-/, "").slice(0, 6)}-${index}`;
}
