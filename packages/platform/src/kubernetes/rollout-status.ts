// What a Deployment's status says about its rollout, read the way `kubectl rollout status` reads
// it (kubectl's DeploymentStatusViewer), as a pure function of the object.

/** The parts of a Deployment the rollout status is read from. */
export interface DeploymentView {
  metadata?: { name?: string; generation?: number };
  spec?: { replicas?: number; paused?: boolean };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    conditions?: Array<{ type: string; status?: string; reason?: string; message?: string }>;
  };
}

export interface RolloutStatus {
  /** progressing: keep waiting; complete: every replica is updated and available; failed: it will not finish by itself. */
  state: "progressing" | "complete" | "failed";
  /** One line for people, as kubectl words it. */
  message: string;
  desired: number;
  updated: number;
  available: number;
}

/**
 * The rollout status of a Deployment.
 *
 * @example
 * deploymentRolloutStatus(await api.read(deployment)).state; // "progressing"
 */
export function deploymentRolloutStatus(d: DeploymentView): RolloutStatus {
  const name = d.metadata?.name ?? "?";
  const s = d.status ?? {};
  // spec.replicas is defaulted to 1 by the API server; absent only in objects that never reached it.
  const desired = d.spec?.replicas ?? 1;
  const updated = s.updatedReplicas ?? 0;
  const available = s.availableReplicas ?? 0;
  const total = s.replicas ?? 0;
  const of = (state: RolloutStatus["state"], message: string): RolloutStatus => ({ state, message, desired, updated, available });

  // Until the controller has seen the latest spec, the status describes an older one.
  if ((d.metadata?.generation ?? 0) > (s.observedGeneration ?? 0)) return of("progressing", `waiting for deployment "${name}" spec update to be observed`);
  const progressing = s.conditions?.find((c) => c.type === "Progressing");
  if (progressing?.reason === "ProgressDeadlineExceeded") {
    return of("failed", `deployment "${name}" exceeded its progress deadline${progressing.message ? `: ${progressing.message}` : ""}`);
  }
  if (d.spec?.paused === true) return of("failed", `deployment "${name}" is paused; resume it with kubectl rollout resume`);
  if (updated < desired) return of("progressing", `waiting for deployment "${name}" rollout to finish: ${updated} of ${desired} new replicas have been updated`);
  if (total > updated) return of("progressing", `waiting for deployment "${name}" rollout to finish: ${total - updated} old replicas are pending termination`);
  if (available < updated) return of("progressing", `waiting for deployment "${name}" rollout to finish: ${available} of ${updated} updated replicas are available`);
  return of("complete", `deployment "${name}" successfully rolled out`);
}
