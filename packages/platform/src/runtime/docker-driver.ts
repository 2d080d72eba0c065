// The docker runtime driver: each replica is a container of its release's image (docker-image.ts)
// in the host's network namespace, under docker-init, with a memory backstop, its output copied
// from the engine into the replica's log files and probed from the host as process replicas are.
// Containers outlive the control plane; a later one adopts them by label, pid and start time.
// See docs/adr/0018-docker-runtime.md.
import { constants } from "node:os";
import { KeelsonError, REPLICA_ENV } from "@keelson/protocol";
import type Docker from "dockerode";
import { baseImagePath, ensureBaseImage } from "./docker-base-image.js";
import { connectEngine, engineMessage, engineStatus } from "./docker-engine.js";
import { LABELS, createReleaseImageBuilder, envHostPaths, releaseImageTag } from "./docker-image.js";
import type { ReleaseImageBuilder } from "./docker-image.js";
import { followContainerLogs } from "./docker-log-follower.js";
import type { LogFollower } from "./docker-log-follower.js";
import { readProcStat } from "./proc-stat.js";
import { isPortFree } from "./process-driver.js";
import { createLogCollector, replicaLogPaths } from "./replica-logs.js";
import type { LogCollector } from "./replica-logs.js";
import { startProbeLoops } from "./replica-probes.js";
import { createSupervisor } from "./replica-supervisor.js";
import type { AdoptRecord, FaultSignal, HostedRun, ReplicaHost, RunContext, RunExit, RunUsage, RuntimeLog } from "./replica-supervisor.js";
import type { ReplicaSpec, RestartPolicy, RuntimeDriver } from "./runtime-driver.js";

export interface DockerDriverOptions {
  /** The engine's unix socket; default DOCKER_HOST (unix://...) or /var/run/docker.sock. */
  socketPath?: string;
  /** Tag of the base image generated Dockerfiles start FROM; made by ensureBaseImage when missing. Default keelson/base:node-<version>. */
  baseImage?: string;
  log?: RuntimeLog;
  /** Restart backoff; default DEFAULT_RESTART_POLICY. */
  restartPolicy?: RestartPolicy;
  /** How often the engine is asked for each container's CPU and memory (and the memory limit checked); default 2 s. */
  usageIntervalMs?: number;
  /** Rotation and pace of the replicas' <id>.log files, as for the process driver. */
  logs?: { maxBytes?: number; keep?: number; pollIntervalMs?: number; rawMaxBytes?: number };
}

/** How long to wait for a SIGKILLed container to be reported gone before giving up with a warning. */
const KILL_GRACE_MS = 5_000;
/** How long an exit waits for the engine to finish sending the container's last output. */
const LOG_DRAIN_MS = 2_000;
/** The engine's copy of a container's output is capped; ours is in the replica's log files. */
const ENGINE_LOG_CONFIG = { Type: "json-file", Config: { "max-size": "10m", "max-file": "2" } };
const MIB = 1024 * 1024;

/**
 * The engine's hard memory limit for a replica limited to `limit`: twice the limit, at least
 * 256 MiB above it. The replica's own limit is enforced by the supervisor from usage samples (a
 * restart with a "memory-exceeded" event, as with the process driver); the engine's limit is the
 * backstop for a replica that grows faster than it is sampled (then the kernel kills it: OOM).
 */
export function engineMemoryLimit(limit: number): number {
  return Math.max(limit * 2, limit + 256 * MIB);
}

/** A container name for a replica: keelson-<project>-<replica id>, in docker's name grammar. */
export function containerName(spec: Pick<ReplicaSpec, "project" | "id">): string {
  return `keelson-${spec.project}-${spec.id}`.replace(/[^a-zA-Z0-9_.-]+/g, "-");
}

/** The signal an exit status of 128+n stands for (docker reports a signalled init that way). */
function exitOf(code: number, oomKilled: boolean): RunExit {
  if (oomKilled) return { code: null, signal: "SIGKILL", reason: "was killed by the kernel for going over the engine's memory limit (OOM)" };
  const signal = code > 128 && code < 160 ? Object.entries(constants.signals).find(([, n]) => n === code - 128)?.[0] : undefined;
  return signal === undefined ? { code, signal: null } : { code: null, signal };
}

type DockerRun = HostedRun & {
  containerId: string;
  sample(): Promise<RunUsage | undefined>;
};

/**
 * Creates the docker driver.
 *
 * @example
 * const driver = createDockerDriver({ socketPath: "/var/run/docker.sock", log });
 * driver.onEvent((e) => store.upsertReplica(toRecord(e.replica)));
 * await driver.start(spec); // builds the release's image the first time; "ready" follows as an event
 */
export function createDockerDriver(options: DockerDriverOptions = {}): RuntimeDriver {
  const log: RuntimeLog = options.log ?? (() => undefined);
  const docker = connectEngine(options.socketPath);
  let base: Promise<string> | undefined;
  const images: ReleaseImageBuilder = createReleaseImageBuilder({
    docker,
    log,
    baseImage: () => {
      base ??= ensureBaseImage(docker, { tag: options.baseImage, log }).catch((err: unknown) => {
        base = undefined;
        throw err;
      });
      return base;
    },
  });
  const collectors = new Map<string, LogCollector>();
  const containers = new Map<string, string>();
  /** The current run's copier of each replica's output from the engine. */
  const followers = new Map<string, LogFollower>();
  /** Removals of exited containers under way, per replica: a new run of it waits for its name. */
  const removals = new Map<string, Promise<void>>();

  function collectorFor(spec: ReplicaSpec): LogCollector {
    let collector = collectors.get(spec.id);
    if (collector === undefined) {
      collector = createLogCollector({ logDir: spec.logDir, replicaId: spec.id, ...options.logs, log });
      collectors.set(spec.id, collector);
    }
    return collector;
  }

  /** Removes a container (by id or name) and waits until the engine says it is gone. */
  async function removeContainer(ref: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await docker.getContainer(ref).remove({ force: true });
        return;
      } catch (err) {
        const status = engineStatus(err);
        if (status === 404) return;
        // 409: a removal is already under way; wait for it to finish.
        if (status !== 409 || Date.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  function removeLater(id: string, ref: string): void {
    const removal = removeContainer(ref)
      .catch((err: unknown) => log("warn", "exited replica container could not be removed", { replica: id, container: ref, error: engineMessage(err) }))
      .finally(() => {
        if (removals.get(id) === removal) removals.delete(id);
      });
    removals.set(id, removal);
  }

  function runOf(spec: ReplicaSpec, ctx: RunContext, container: Docker.Container, info: Docker.ContainerInspectInfo, o: { resumeLogs: boolean; ready: boolean }): DockerRun {
    const pid = info.State.Pid;
    const pidStartTime = readProcStat(pid)?.startTime;
    containers.set(spec.id, info.Id);
    const follower = followContainerLogs({ container, logDir: spec.logDir, replicaId: spec.id, resume: o.resumeLogs, log });
    followers.set(spec.id, follower);
    return createDockerRun({
      spec,
      ctx,
      container,
      containerId: info.Id,
      pid,
      pidStartTime,
      startedMs: Date.parse(info.State.StartedAt),
      paused: info.State.Paused,
      ready: o.ready && !info.State.Paused,
      collector: collectorFor(spec),
      follower,
      log,
      onGone: () => removeLater(spec.id, info.Id),
    });
  }

  const host: ReplicaHost = {
    async launch(spec, ctx) {
      const where = `services.${spec.service}`;
      if (!(await isPortFree(spec.port))) {
        throw new KeelsonError("KEELSON_ERR_PORT_IN_USE", `${where}: port ${spec.port} is already in use by another process`, { details: { replica: spec.id, port: spec.port } });
      }
      const image = await images.ensure(spec);
      const name = containerName(spec);
      const fail = (why: string, cause?: unknown): KeelsonError =>
        new KeelsonError("KEELSON_ERR_START_FAILED", `${where}: cannot start replica ${spec.id} (container ${name}): ${why}`, { cause, details: { replica: spec.id, container: name, image: image.tag } });
      // The previous run's container (or one an earlier control plane left) holds the name.
      await removals.get(spec.id);
      try {
        await removeContainer(name);
      } catch (err) {
        throw fail(`the old container could not be removed: ${engineMessage(err)}`, err);
      }
      const fromEnv = await envHostPaths(spec.env, spec.cwd);
      const binds = [
        ...image.mounts.filter((p) => !fromEnv.some((m) => m.path === p)).map((p) => `${p}:${p}:ro`),
        ...fromEnv.map((m) => `${m.path}:${m.path}:${m.writable ? "rw" : "ro"}`),
      ];
      const env: Record<string, string> = {
        PATH: baseImagePath(),
        ...spec.env,
        [REPLICA_ENV.SERVICE]: spec.service,
        [REPLICA_ENV.REPLICA]: spec.id,
        [REPLICA_ENV.RELEASE]: spec.release,
        [REPLICA_ENV.PROJECT]: spec.project,
        [REPLICA_ENV.PORT]: String(spec.port),
        // docker-init (tini) passes SIGTERM to the whole process group: the shell and the command it runs.
        TINI_KILL_PROCESS_GROUP: "1",
      };
      let container: Docker.Container;
      try {
        container = await docker.createContainer({
          name,
          Image: image.tag,
          // The shell defers its own SIGTERM until the command it waits for has exited, so a
          // graceful stop is not cut short by the container's end (dash does not exec the last command).
          Entrypoint: ["/bin/sh", "-c"],
          Cmd: [`trap : TERM\n${spec.command}`],
          ...(image.workdir === undefined ? {} : { WorkingDir: image.workdir }),
          Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
          Labels: { [LABELS.project]: spec.project, [LABELS.service]: spec.service, [LABELS.release]: spec.release, [LABELS.replica]: spec.id },
          StopSignal: "SIGTERM",
          HostConfig: {
            // The host's network: the replica's port is 127.0.0.1:<port> for the gateway and the
            // probes, and the control plane's 127.0.0.1 URLs in its env reach the host unchanged.
            NetworkMode: "host",
            Init: true,
            Binds: binds,
            LogConfig: ENGINE_LOG_CONFIG,
            RestartPolicy: { Name: "no" },
            ...(spec.memoryLimitBytes === undefined ? {} : { Memory: engineMemoryLimit(spec.memoryLimitBytes) }),
          },
        });
        await container.start();
      } catch (err) {
        await removeContainer(name).catch(() => undefined);
        throw fail(engineMessage(err), err);
      }
      const info = await container.inspect().catch((err: unknown) => {
        throw fail(`the engine could not say how it runs: ${engineMessage(err)}`, err);
      });
      return runOf(spec, ctx, container, info, { resumeLogs: false, ready: false });
    },

    async attach(spec, recorded: AdoptRecord, ctx) {
      let found: Docker.ContainerInfo[];
      try {
        found = await docker.listContainers({ all: true, filters: { label: [`${LABELS.replica}=${spec.id}`] } });
      } catch (err) {
        throw new KeelsonError("KEELSON_ERR_RUNTIME", `services.${spec.service}: cannot look for replica ${spec.id}'s container: ${engineMessage(err)}`, { cause: err });
      }
      const candidate = found.find((c) => (c.State === "running" || c.State === "paused") && c.Labels[LABELS.release] === spec.release);
      if (candidate === undefined) return undefined;
      const container = docker.getContainer(candidate.Id);
      const info = await container.inspect().catch(() => undefined);
      if (info === undefined || !info.State.Running || info.State.Pid !== recorded.pid) return undefined;
      // The recorded pid must still be that container's init, not a re-used pid.
      if (recorded.pidStartTime !== undefined && readProcStat(info.State.Pid)?.startTime !== recorded.pidStartTime) return undefined;
      return runOf(spec, ctx, container, info, { resumeLogs: true, ready: recorded.ready === true });
    },

    details(spec) {
      const paths = replicaLogPaths(spec.logDir, spec.id);
      const container = containers.get(spec.id);
      return { logFile: paths.log, stdoutFile: paths.stdout, stderrFile: paths.stderr, image: releaseImageTag(spec), ...(container === undefined ? {} : { container }) };
    },

    async release(id, why) {
      const collector = collectors.get(id);
      collectors.delete(id);
      containers.delete(id);
      // A driver that adopts the container next carries on from what the follower recorded: let it finish.
      const follower = followers.get(id);
      followers.delete(id);
      await follower?.stop();
      if (why === "stopped") await removals.get(id);
      await collector?.close({ final: why === "stopped" });
    },

    async sampleUsage(runs) {
      const usage = new Map<HostedRun, RunUsage>();
      await Promise.all(
        runs.map(async (run) => {
          const sample = await (run as DockerRun).sample();
          if (sample !== undefined) usage.set(run, sample);
        }),
      );
      return usage;
    },
  };

  const supervisor = createSupervisor({ name: "docker", host, restartPolicy: options.restartPolicy, log, usageIntervalMs: options.usageIntervalMs });
  return {
    ...supervisor,
    async reapStrays(match, timeoutMs = 5_000) {
      // Containers of replicas nobody supervises (a control plane killed between starting and recording one).
      const keep = new Set(supervisor.list().map((r) => r.spec.id));
      const listed = await docker.listContainers({ filters: { label: [LABELS.replica] } });
      const reaped: Array<{ pid: number; replica: string | undefined }> = [];
      for (const c of listed) {
        const replica = c.Labels[LABELS.replica];
        if (replica !== undefined && keep.has(replica)) continue;
        const container = docker.getContainer(c.Id);
        const info = await container.inspect().catch(() => undefined);
        if (info?.Config.Env?.some((e) => e.startsWith(`${match.env}=${match.prefix}`)) !== true) continue;
        log("warn", "stopping a replica container no control plane supervises", { container: c.Id, replica });
        await container.stop({ t: Math.max(1, Math.ceil(timeoutMs / 1000)) }).catch(() => undefined);
        await removeContainer(c.Id).catch((err: unknown) => log("warn", "stray replica container could not be removed", { container: c.Id, error: engineMessage(err) }));
        reaped.push({ pid: info.State.Pid, replica });
      }
      return reaped;
    },
  };
}

interface DockerRunOptions {
  spec: ReplicaSpec;
  ctx: RunContext;
  container: Docker.Container;
  containerId: string;
  pid: number;
  pidStartTime: number | undefined;
  startedMs: number;
  paused: boolean;
  /** Adopted ready: the probes start from ready (see RuntimeDriver.adopt). */
  ready: boolean;
  collector: LogCollector;
  follower: LogFollower;
  log: RuntimeLog;
  /** The container has exited and its output is collected: remove it. */
  onGone: () => void;
}

function createDockerRun(o: DockerRunOptions): DockerRun {
  const { spec, ctx, container } = o;
  let gone = false;
  let released = false;
  let paused = o.paused;
  let terminating: Promise<void> | undefined;
  /** Pause, unpause and kill go to the engine one after the other, in the order asked. */
  let ops: Promise<unknown> = Promise.resolve();
  let previousCpu: { totalNs: number; atMs: number } | undefined;
  const waitAbort = new AbortController();
  let exited: () => void = () => undefined;
  const exitSeen = new Promise<void>((resolve) => (exited = resolve));

  const stopProbes = startProbeLoops({
    spec,
    initiallyReady: o.ready,
    onReady: () => ctx.ready(),
    onUnready: (reason) => ctx.unready(reason),
    onLivenessFailed: (reason) => ctx.livenessFailed(reason),
  });

  async function onExit(statusCode: number): Promise<void> {
    if (gone) return;
    gone = true;
    exited();
    stopProbes();
    const oomKilled = (await container.inspect().catch(() => undefined))?.State.OOMKilled === true;
    // Copy the last output before reporting, so "exited" listeners can show it.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([o.follower.done, new Promise((resolve) => (timer = setTimeout(resolve, LOG_DRAIN_MS)))]);
    clearTimeout(timer);
    await o.follower.stop();
    await o.collector.collect({ final: true }).catch(() => undefined);
    o.onGone();
    ctx.exited(exitOf(statusCode, oomKilled));
  }

  /** Waits for the container's end: the engine answers when it stops. */
  async function watch(): Promise<void> {
    for (;;) {
      try {
        const result = (await container.wait({ abortSignal: waitAbort.signal })) as { StatusCode?: number };
        if (!released) await onExit(result.StatusCode ?? -1);
        return;
      } catch (err) {
        if (released) return;
        if (engineStatus(err) === 404) {
          // Removed by someone else: it is gone, with no status to tell.
          await onExit(-1);
          return;
        }
        o.log("warn", "lost the engine's wait on a replica container; asking again", { replica: spec.id, container: o.containerId, error: engineMessage(err) });
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  }
  void watch();

  function engineOp(what: () => Promise<unknown>): Promise<void> {
    const next = ops.then(what);
    ops = next.catch(() => undefined);
    return next.then(() => undefined);
  }

  async function waitGone(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([exitSeen.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
    clearTimeout(timer);
    return done;
  }

  const ignoreNotRunning = (err: unknown): void => {
    // 409: not running (or not paused); 404: gone. Either way nothing is left to signal.
    const status = engineStatus(err);
    if (status !== 409 && status !== 404 && status !== 304) throw err;
  };

  return {
    pid: o.pid,
    pidStartTime: o.pidStartTime,
    paused: o.paused,
    containerId: o.containerId,

    async signal(signal: FaultSignal) {
      if (gone) throw new Error(`container ${o.containerId.slice(0, 12)} has exited`);
      await engineOp(async () => {
        // Pause and resume freeze and thaw the container's cgroup: every process in it, as SIGSTOP/SIGCONT to a group.
        if (signal === "SIGKILL") await container.kill({ signal: "SIGKILL" });
        else if (signal === "SIGSTOP") await container.pause();
        else await container.unpause();
        if (signal !== "SIGKILL") paused = signal === "SIGSTOP";
      });
    },

    terminate(timeoutMs) {
      terminating ??= (async () => {
        stopProbes();
        try {
          // A paused (frozen) container gets no signal until it is thawed.
          await engineOp(async () => {
            if (paused) await container.unpause().catch(ignoreNotRunning);
            paused = false;
          });
          await engineOp(() => container.kill({ signal: "SIGTERM" }).catch(ignoreNotRunning));
        } catch (err) {
          o.log("warn", "could not signal replica container", { replica: spec.id, container: o.containerId, error: engineMessage(err) });
        }
        if (await waitGone(timeoutMs)) return;
        o.log("warn", "replica did not stop in time; killing its container", { replica: spec.id, container: o.containerId, stopTimeoutMs: timeoutMs });
        await engineOp(() => container.kill({ signal: "SIGKILL" }).catch(ignoreNotRunning)).catch(() => undefined);
        if (!(await waitGone(KILL_GRACE_MS))) o.log("error", "replica container still there after SIGKILL", { replica: spec.id, container: o.containerId });
      })();
      return terminating;
    },

    release() {
      released = true;
      stopProbes();
      waitAbort.abort();
      if (!gone) void o.follower.stop();
    },

    async sample() {
      if (gone) return undefined;
      let stats: Docker.ContainerStats;
      try {
        stats = await container.stats({ stream: false, "one-shot": true });
      } catch {
        return undefined;
      }
      const totalNs = stats.cpu_stats?.cpu_usage?.total_usage;
      const usageBytes = stats.memory_stats?.usage;
      if (typeof totalNs !== "number" || typeof usageBytes !== "number") return undefined;
      // What the kernel may drop (inactive page cache) is not the replica's: `docker stats` leaves it out too.
      const memStats = (stats.memory_stats.stats ?? {}) as Record<string, number | undefined>;
      const memoryBytes = Math.max(0, usageBytes - (memStats.total_inactive_file ?? memStats.inactive_file ?? 0));
      const atMs = Date.now();
      const since = previousCpu ?? { totalNs: 0, atMs: Number.isFinite(o.startedMs) ? o.startedMs : atMs };
      previousCpu = { totalNs, atMs };
      const wallNs = (atMs - since.atMs) * 1e6;
      const cpuPercent = wallNs > 0 ? Math.max(0, ((totalNs - since.totalNs) / wallNs) * 100) : 0;
      return { cpuPercent: Math.round(cpuPercent * 10) / 10, memoryBytes };
    },
  };
}
