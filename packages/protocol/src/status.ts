// The shape of `keelson status --json` and GET /v1/status: a contract scripts rely on.

export type ReplicaState = "starting" | "ready" | "unready" | "backoff" | "stopping" | "stopped" | "failed";

export interface ReplicaStatus {
  id: string;
  service: string;
  release: string;
  index: number;
  state: ReplicaState;
  pid: number | undefined;
  port: number;
  url: string;
  restarts: number;
  startedAt: string | undefined;
  lastExit: { code: number | null; signal: string | null; at: string } | undefined;
  /** Last sample of what the replica's process group uses (absent where the runtime cannot tell). */
  usage?: ReplicaUsage;
  /** Held by a chaos experiment (`keelson chaos hang`): it accepts connections and answers nothing. */
  paused?: boolean;
}

/** CPU and memory of one replica, sampled by the runtime. */
export interface ReplicaUsage {
  /** Percent of one core over the last sampling interval (200 = two cores busy). */
  cpuPercent: number;
  /** Resident memory of the whole process group, bytes. */
  memoryBytes: number;
  /** The replica's memory limit (resources.memory), bytes. */
  memoryLimitBytes?: number;
  at: string;
}

export interface ServiceStatus {
  name: string;
  owner: string;
  /** The release (content hash) the service is meant to run. */
  release: string | undefined;
  replicas: { desired: number; ready: number };
  /** URL of each ready replica. */
  endpoints: string[];
  routes: string[];
  instances: ReplicaStatus[];
  /** The rollout under way, while it has not succeeded, failed or been rolled back; absent otherwise. */
  rollout?: ActiveRollout;
}

/** A rollout in progress, as GET /v1/status summarizes it (GET /v1/services/:name/rollout has all of it). */
export interface ActiveRollout {
  id: string;
  strategy: "rolling" | "blueGreen" | "canary" | "rollback";
  phase: "progressing" | "paused" | "promoting" | "switched" | "finishing";
  /** The release it replaces; undefined for a service's first release. */
  from: string | undefined;
  to: string;
  /** Percent of traffic on `to`. */
  weight: number;
  /** Canary: the step being worked on (0-based) of `steps`. */
  step: number;
  steps: number;
  startedAt: string;
  /** Why it waits or what it does now, in words (the rollout's own message). */
  message?: string;
}

export interface StatusReport {
  project: string;
  controlPlane: { url: string; pid: number; version: string; startedAt: string };
  gateway: { url: string };
  services: ServiceStatus[];
  /** Several control-plane instances on one PostgreSQL store: who leads, who runs, which gateways follow. */
  cluster?: ClusterStatus;
}

export interface ClusterStatus {
  /** The leader's election number. */
  term: number;
  /** Instances seen in the last 30 s (each records itself every 5 s), the leader marked. */
  instances: Array<{ id: string; url: string; leader: boolean; seenAt: string }>;
  /** Admin URLs of the gateways seen in the last 2 minutes (and the manifest's). */
  gateways: string[];
}
