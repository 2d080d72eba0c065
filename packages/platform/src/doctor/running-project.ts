// What of a project runs right now, as the CLI finds it from the state folder: the doctor's
// checks of ports and readiness take it as input rather than looking for processes themselves.
import type { StatusReport } from "@keelson/protocol";

export interface RunningProject {
  controlPlane?: { pid: number; url: string };
  gateway?: { pid: number; url: string; adminUrl?: string };
  /** The control plane's `/v1/status`, when it answered. */
  status?: StatusReport;
  /** Why the status is missing although a control plane runs. */
  statusError?: string;
}

/** Every pid of the project's own processes: control plane, gateway and replicas. */
export function projectPids(running: RunningProject | undefined): Set<number> {
  const pids = new Set<number>();
  if (running?.controlPlane) pids.add(running.controlPlane.pid);
  if (running?.gateway) pids.add(running.gateway.pid);
  for (const s of running?.status?.services ?? []) for (const i of s.instances) if (i.pid !== undefined) pids.add(i.pid);
  return pids;
}
