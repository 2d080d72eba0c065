// The RuntimeDriver interface: how replicas are started, watched and stopped.
// Implementations: process (default), memory (fake for tests and benchmarks); docker
// and kubernetes later. Every implementation runs runtime.conformance.ts.
import type { ReplicaState, ReplicaUsage } from "@keelson/protocol";

export interface ProbeConfig {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  failureThreshold: number;
}

/** Everything a driver needs to run one replica. */
export interface ReplicaSpec {
  id: string;
  project: string;
  service: string;
  release: string;
  index: number;
  /** Working directory (absolute). */
  cwd: string;
  /** Shell command line. */
  command: string;
  /** Extra environment; PORT is set by the driver. */
  env: Record<string, string>;
  port: number;
  /** Without a readiness probe a replica is ready once its port accepts connections. */
  readiness: ProbeConfig | undefined;
  liveness: ProbeConfig | undefined;
  /**
   * The replica serves HTTPS requiring client certificates: probes use https with the
   * cert.pem and key.pem in `clientDir` (the control plane's identity) and trust its ca.pem.
   * The TCP port probe (no readiness probe) is unchanged.
   */
  tls?: { clientDir: string };
  /** Time allowed between SIGTERM and SIGKILL. */
  stopTimeoutMs: number;
  /** Time allowed to become ready before the start counts as failed. */
  startTimeoutMs: number;
  /** Folder for this replica's log files (absolute). */
  logDir: string;
  /** Memory limit of the replica's whole process group (resources.memory): over it, the replica is restarted. */
  memoryLimitBytes?: number;
}

export interface ReplicaExit {
  code: number | null;
  signal: string | null;
  at: string;
}

/** What a driver knows about a replica right now. */
export interface ReplicaInfo {
  spec: ReplicaSpec;
  state: ReplicaState;
  pid: number | undefined;
  pidStartTime: number | undefined;
  restarts: number;
  startedAt: string | undefined;
  lastExit: ReplicaExit | undefined;
  /** Whether this replica has been ready at least once since it was (re)started by the driver. */
  everReady: boolean;
  /** Exits since the replica was last ready (a crash loop at start shows here). */
  exitsSinceReady: number;
  /** Driver-specific facts to persist (log paths, container id). */
  details: Record<string, unknown>;
  /** Last CPU and memory sample of the replica (absent until the first sample, or where the driver cannot tell). */
  usage?: ReplicaUsage;
  /** Its processes are held by pause() (SIGSTOP) until resume(), a restart or an exit. */
  paused?: boolean;
}

export type ReplicaEventType = "started" | "ready" | "unready" | "exited" | "restarting" | "stopped" | "failed" | "adopted" | "memory-exceeded";

export interface ReplicaEvent {
  type: ReplicaEventType;
  replica: ReplicaInfo;
  /** Human-readable reason ("liveness failed 3 times", "exit code 1", "memory 312 MiB over its limit 256 MiB"). */
  reason?: string;
}

export interface RestartPolicy {
  initialDelayMs: number;
  multiplier: number;
  maxDelayMs: number;
  /** Uptime after which the backoff resets. */
  resetAfterMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { initialDelayMs: 100, multiplier: 1.5, maxDelayMs: 15_000, resetAfterMs: 30_000 };

/** How often drivers sample each replica's CPU and memory (usageIntervalMs) by default. */
export const DEFAULT_USAGE_INTERVAL_MS = 2_000;

export interface RuntimeDriver {
  readonly name: string;

  /**
   * Starts a replica and supervises it (readiness, liveness, restart with backoff).
   * Resolves once the process is started (not ready); readiness arrives as an event.
   * Rejects with KEELSON_ERR_PORT_IN_USE if the port is taken, KEELSON_ERR_START_FAILED
   * if the command cannot be spawned.
   */
  start(spec: ReplicaSpec): Promise<ReplicaInfo>;

  /**
   * Stops a replica gracefully (SIGTERM to its process group, SIGKILL after
   * stopTimeoutMs) and forgets it. Stopping an unknown replica is a no-op.
   */
  stop(id: string): Promise<void>;

  /**
   * Restarts a replica now (keelson restart), resetting its backoff. With `options.spec` (same id),
   * the new run uses that spec: settings that are not part of the release, such as the memory
   * limit, take effect. Rejects with KEELSON_ERR_NOT_FOUND for an unknown replica.
   */
  restart(id: string, options?: { spec?: ReplicaSpec }): Promise<void>;

  /**
   * Takes over a replica started by an earlier control plane, if its process is
   * still the one recorded (pid and start time match). Returns undefined when it is
   * gone, in which case the caller starts a new one.
   *
   * `ready`: the replica was ready when last recorded. It is then adopted ready (and stays
   * published) until its probes say otherwise, as a restarted kubelet keeps a pod's Ready
   * condition; otherwise it is "starting" until its readiness check passes. A replica found
   * paused is never adopted ready.
   */
  adopt(spec: ReplicaSpec, recorded: { pid: number; pidStartTime: number | undefined; restarts: number; startedAt: string | undefined; ready?: boolean }): Promise<ReplicaInfo | undefined>;

  get(id: string): ReplicaInfo | undefined;
  list(): ReplicaInfo[];

  /** Subscribes to replica events; returns an unsubscribe function. */
  onEvent(listener: (event: ReplicaEvent) => void): () => void;

  /**
   * Stops supervising without stopping replicas (the control plane is exiting and
   * a later one will adopt them).
   */
  detach(): Promise<void>;

  /**
   * Stops replica processes this driver does not supervise whose environment has `env` starting
   * with `prefix` (a control plane killed between starting a replica and recording it leaves
   * one behind). Call after adopting. Returns what it stopped. Drivers whose engine keeps its
   * own records (containers) may not need it.
   */
  reapStrays?(match: { env: string; prefix: string }, timeoutMs?: number): Promise<Array<{ pid: number; replica: string | undefined }>>;

  // Fault hooks for chaos experiments. Each resolves false when the replica is unknown or has no
  // running process (backoff, stopping), true once the signal is sent.

  /**
   * Kills the replica's process group (SIGKILL) as a crash would: the supervisor sees the exit
   * and restarts it after its backoff. Not a stop.
   */
  kill(id: string): Promise<boolean>;

  /**
   * Holds the replica's process group (SIGSTOP): it keeps its port and answers nothing, so its
   * liveness probe fails and the supervisor restarts it. `paused` shows in ReplicaInfo. A stop or
   * restart of a paused replica continues it (SIGCONT) so that it can stop gracefully.
   */
  pause(id: string): Promise<boolean>;

  /** Lets a paused replica's process group go on (SIGCONT). */
  resume(id: string): Promise<boolean>;
}
