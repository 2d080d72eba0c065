// The process runtime driver (the default): each replica is a detached process group
// on this machine writing to log files, so it outlives the control plane and a later
// control plane re-adopts it by pid + start time. See docs/adr/0004-process-model.md.
// Usage is sampled from /proc for the whole process group (usage-sampler.ts).
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { createServer } from "node:net";
import { KeelsonError, REPLICA_ENV } from "@keelson/protocol";
import { isProcessRunning, processGroupMembers, readProcStat } from "./proc-stat.js";
import { createLogCollector, replicaLogPaths } from "./replica-logs.js";
import type { LogCollector } from "./replica-logs.js";
import { startProbeLoops } from "./replica-probes.js";
import { findStrayGroups, stopGroups } from "./stray-processes.js";
import { createSupervisor } from "./replica-supervisor.js";
import type { AdoptRecord, FaultSignal, HostedRun, ReplicaHost, RunContext, RunExit, RunUsage, RuntimeLog } from "./replica-supervisor.js";
import type { ReplicaSpec, RestartPolicy, RuntimeDriver } from "./runtime-driver.js";
import { createUsageSampler } from "./usage-sampler.js";

export interface ProcessDriverOptions {
  /** Restart backoff; default DEFAULT_RESTART_POLICY (100 ms, x1.5, cap 15 s, reset after 30 s up). */
  restartPolicy?: RestartPolicy;
  log?: RuntimeLog;
  /** How often an adopted replica (not our child, so no exit event) is checked for exit; default 500 ms. */
  exitPollIntervalMs?: number;
  /**
   * How often each replica's process group is sampled for CPU and memory (one pass over /proc for
   * all replicas) and its memory limit checked; default 2 s. Without /proc there is no usage.
   */
  usageIntervalMs?: number;
  logs?: {
    /** Size at which <id>.log rotates; default 10 MiB. */
    maxBytes?: number;
    /** Rotated files kept; default 3. */
    keep?: number;
    /** How often raw output is collected; default 200 ms. */
    pollIntervalMs?: number;
    /** Raw capture files are truncated once collected and past this size; default 1 MiB. */
    rawMaxBytes?: number;
  };
}

/** How often a stop checks whether the process group is gone. */
const GROUP_POLL_MS = 50;
/** How long to wait for a SIGKILLed group to disappear before giving up with a warning. */
const KILL_GRACE_MS = 5_000;

/**
 * Creates the process driver.
 *
 * @example
 * const driver = createProcessDriver({ log: (level, msg, fields) => logger[level](fields, msg) });
 * driver.onEvent((e) => store.upsertReplica(toRecord(e.replica)));
 * await driver.start(spec); // resolves once spawned; "ready" follows as an event
 */
export function createProcessDriver(options: ProcessDriverOptions = {}): RuntimeDriver {
  const log: RuntimeLog = options.log ?? (() => undefined);
  const exitPollMs = options.exitPollIntervalMs ?? 500;
  const collectors = new Map<string, LogCollector>();
  const sampler = createUsageSampler();

  function collectorFor(spec: ReplicaSpec): LogCollector {
    let collector = collectors.get(spec.id);
    if (collector === undefined) {
      collector = createLogCollector({
        logDir: spec.logDir,
        replicaId: spec.id,
        maxBytes: options.logs?.maxBytes,
        keep: options.logs?.keep,
        pollIntervalMs: options.logs?.pollIntervalMs,
        rawMaxBytes: options.logs?.rawMaxBytes,
        log,
      });
      collectors.set(spec.id, collector);
    }
    return collector;
  }

  const host: ReplicaHost = {
    async launch(spec, ctx) {
      const where = `services.${spec.service}`;
      if (!(await isPortFree(spec.port))) {
        throw new KeelsonError("KEELSON_ERR_PORT_IN_USE", `${where}: port ${spec.port} is already in use by another process`, { details: { replica: spec.id, port: spec.port } });
      }
      // Checked here because spawn reports a missing cwd as "spawn /bin/sh ENOENT", which misleads.
      const cwdStat = await stat(spec.cwd).catch(() => undefined);
      if (cwdStat?.isDirectory() !== true) {
        throw new KeelsonError("KEELSON_ERR_START_FAILED", `${where}: cannot start replica ${spec.id}: working directory ${spec.cwd} does not exist`, { details: { replica: spec.id, cwd: spec.cwd } });
      }
      const paths = replicaLogPaths(spec.logDir, spec.id);
      let out: number | undefined;
      let err: number | undefined;
      try {
        await mkdir(spec.logDir, { recursive: true });
        // O_APPEND files, not pipes: a pipe breaks (SIGPIPE, blocked writes) when the control plane dies.
        out = openSync(paths.stdout, "a");
        err = openSync(paths.stderr, "a");
        const child = spawn(spec.command, {
          shell: true,
          // Its own process group (and session): signals reach the whole group, and the
          // control plane's terminal or death does not reach the replica.
          detached: true,
          cwd: spec.cwd,
          env: {
            ...process.env,
            ...spec.env,
            [REPLICA_ENV.SERVICE]: spec.service,
            [REPLICA_ENV.REPLICA]: spec.id,
            [REPLICA_ENV.RELEASE]: spec.release,
            [REPLICA_ENV.PROJECT]: spec.project,
            [REPLICA_ENV.PORT]: String(spec.port),
          },
          stdio: ["ignore", out, err],
        });
        if (child.pid === undefined) {
          const error = await new Promise<Error>((resolve) => child.once("error", resolve));
          throw error;
        }
        child.unref();
        const pid = child.pid;
        const run = createProcessRun({ spec, ctx, pid, pidStartTime: readProcStat(pid)?.startTime, collector: collectorFor(spec), log, exitPollMs });
        child.once("exit", (code, signal) => run.leaderExited({ code, signal }));
        return run;
      } catch (cause) {
        if (cause instanceof KeelsonError) throw cause;
        throw new KeelsonError("KEELSON_ERR_START_FAILED", `${where}: cannot start replica ${spec.id}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause, details: { replica: spec.id, command: spec.command } });
      } finally {
        // The child has its own copies of the descriptors.
        if (out !== undefined) closeSync(out);
        if (err !== undefined) closeSync(err);
      }
    },

    async attach(spec, recorded: AdoptRecord, ctx: RunContext) {
      const stat = readProcStat(recorded.pid);
      if (stat === undefined) {
        // Without /proc (not Linux) a live pid is all there is to go on, and only when no start time was recorded.
        if (recorded.pidStartTime !== undefined || !isProcessRunning(recorded.pid, undefined)) return undefined;
      } else if (stat.state === "Z" || (recorded.pidStartTime !== undefined && stat.startTime !== recorded.pidStartTime)) {
        return undefined;
      }
      const pidStartTime = stat?.startTime ?? recorded.pidStartTime;
      // Not our child: no exit event, so poll for its end. "T": an earlier control plane paused it.
      const paused = stat?.state === "T";
      return createProcessRun({ spec, ctx, pid: recorded.pid, pidStartTime, collector: collectorFor(spec), log, exitPollMs, pollExit: true, paused, ready: recorded.ready === true && !paused });
    },

    details(spec) {
      const paths = replicaLogPaths(spec.logDir, spec.id);
      return { logFile: paths.log, stdoutFile: paths.stdout, stderrFile: paths.stderr };
    },

    async release(id, why) {
      const collector = collectors.get(id);
      collectors.delete(id);
      // After a stop nothing will complete a partial line; on detach the next driver will.
      await collector?.close({ final: why === "stopped" });
    },

    async sampleUsage(runs) {
      const usage = new Map<HostedRun, RunUsage>();
      const groups = runs.flatMap((run) => (run.pid === undefined ? [] : [{ run, pgid: run.pid, startTime: run.pidStartTime }]));
      const sampled = await sampler.sample(groups);
      if (sampled === undefined) return usage;
      for (const { run, pgid } of groups) {
        const group = sampled.get(pgid);
        if (group !== undefined) usage.set(run, { cpuPercent: group.cpuPercent, memoryBytes: group.memoryBytes });
      }
      return usage;
    },
  };

  const supervisor = createSupervisor({ name: "process", host, restartPolicy: options.restartPolicy, log, usageIntervalMs: options.usageIntervalMs });
  return {
    ...supervisor,
    async reapStrays(match, timeoutMs = 5_000) {
      // A replica's process group is led by the shell it was spawned with: its pid is the group id.
      const keep = new Set(supervisor.list().flatMap((r) => (r.pid === undefined ? [] : [r.pid])));
      const strays = await findStrayGroups({ name: match.env, prefix: match.prefix }, keep);
      if (strays.length === 0) return [];
      for (const s of strays) log("warn", "stopping a replica process no control plane supervises", { pgid: s.pgid, replica: s.replica });
      await stopGroups(strays.map((s) => s.pgid), timeoutMs);
      return strays.map((s) => ({ pid: s.pgid, replica: s.replica }));
    },
  };
}

interface ProcessRunOptions {
  spec: ReplicaSpec;
  ctx: RunContext;
  pid: number;
  pidStartTime: number | undefined;
  collector: LogCollector;
  log: RuntimeLog;
  exitPollMs: number;
  /** Watch for exit by polling (adopted processes are not our children). */
  pollExit?: boolean;
  /** Found stopped by SIGSTOP (adopted while paused). */
  paused?: boolean;
  /** Adopted ready: the probes start from ready (see RuntimeDriver.adopt). */
  ready?: boolean;
}

type ProcessRun = HostedRun & { leaderExited(exit: RunExit): void };

function createProcessRun(o: ProcessRunOptions): ProcessRun {
  const { spec, ctx, pid, pidStartTime } = o;
  let gone = false;
  let released = false;
  let terminating: Promise<void> | undefined;
  let pollTimer: NodeJS.Timeout | undefined;

  const stopProbes = startProbeLoops({
    spec,
    initiallyReady: o.ready === true,
    onReady: () => ctx.ready(),
    onUnready: (reason) => ctx.unready(reason),
    onLivenessFailed: (reason) => ctx.livenessFailed(reason),
  });

  if (o.pollExit === true) {
    const poll = (): void => {
      pollTimer = undefined;
      if (released || gone) return;
      if (!isProcessRunning(pid, pidStartTime)) {
        leaderExited({ code: null, signal: null, reason: "exited (exit status unknown: adopted, not our child)" });
        return;
      }
      pollTimer = setTimeout(poll, o.exitPollMs);
      pollTimer.unref();
    };
    pollTimer = setTimeout(poll, o.exitPollMs);
    pollTimer.unref();
  }

  function signalGroup(signal: NodeJS.Signals): void {
    try {
      process.kill(-pid, signal);
    } catch (err) {
      // ESRCH: the group is gone. Fall back to the pid in case it left its group.
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
      if (isProcessRunning(pid, pidStartTime)) process.kill(pid, signal);
    }
  }

  async function groupGone(): Promise<boolean> {
    return !isProcessRunning(pid, pidStartTime) && (await processGroupMembers(pid)).length === 0;
  }

  async function waitGroupGone(deadline: number): Promise<boolean> {
    for (;;) {
      if (await groupGone()) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, GROUP_POLL_MS));
    }
  }

  function leaderExited(exit: RunExit): void {
    if (gone) return;
    gone = true;
    stopProbes();
    clearTimeout(pollTimer);
    if (released) return;
    if (terminating === undefined) {
      // The replica is its process group: whatever it left behind would hold the port
      // or keep running unsupervised, so it goes with it.
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // Nothing left in the group.
      }
    }
    // Collect the last lines before reporting, so "exited" listeners can show them.
    void o.collector
      .collect({ final: true })
      .catch(() => undefined)
      .then(() => ctx.exited(exit));
  }

  return {
    pid,
    pidStartTime,
    paused: o.paused === true,
    leaderExited,
    signal(signal: FaultSignal) {
      if (gone) throw new Error(`pid ${pid} has exited`);
      signalGroup(signal);
    },
    terminate(timeoutMs) {
      terminating ??= (async () => {
        stopProbes();
        try {
          signalGroup("SIGTERM");
          // A paused (SIGSTOPped) group holds the SIGTERM until it is continued; a running one ignores SIGCONT.
          signalGroup("SIGCONT");
        } catch (err) {
          o.log("warn", "could not signal replica", { replica: spec.id, pid, error: String(err) });
        }
        if (await waitGroupGone(Date.now() + timeoutMs)) return;
        o.log("warn", "replica did not stop in time; killing its process group", { replica: spec.id, pid, stopTimeoutMs: timeoutMs });
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // Gone in the meantime.
        }
        if (!(await waitGroupGone(Date.now() + KILL_GRACE_MS))) {
          o.log("error", "replica process group still there after SIGKILL", { replica: spec.id, pid, members: await processGroupMembers(pid) });
        }
      })();
      return terminating;
    },
    release() {
      released = true;
      stopProbes();
      clearTimeout(pollTimer);
    },
  };
}

/** Whether nothing listens on 127.0.0.1:<port> (a bind test; EADDRINUSE means taken). */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") resolve(false);
      else reject(err);
    });
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => server.close(() => resolve(true)));
  });
}
