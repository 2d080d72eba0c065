// The supervision core shared by the drivers that run replicas on a host (process, memory, docker):
// replica states and events, restart with backoff, stop, restart, adopt and detach, usage
// sampling with the memory limit, and the fault hooks (kill, pause, resume).
// A ReplicaHost only launches, watches, samples and signals runs; it reports back through a RunContext.
import { KeelsonError } from "@keelson/protocol";
import type { ReplicaState, ReplicaUsage } from "@keelson/protocol";
import { DEFAULT_RESTART_POLICY, DEFAULT_USAGE_INTERVAL_MS } from "./runtime-driver.js";
import type { ReplicaEvent, ReplicaEventType, ReplicaExit, ReplicaInfo, ReplicaSpec, RestartPolicy, RuntimeDriver } from "./runtime-driver.js";

/** Structured log sink of the runtime (the control plane passes its logger). */
export type RuntimeLog = (level: "info" | "warn" | "error", msg: string, fields?: object) => void;

/** How a run ended, as far as the host can tell. */
export interface RunExit {
  code: number | null;
  signal: string | null;
  /** Said instead of the code when the host cannot know it (an adopted process is not our child). */
  reason?: string;
}

/** How a host reports on one run (one process); reports about a run that is over are ignored. */
export interface RunContext {
  /** Readiness passed (the first time, or again after unready). */
  ready(): void;
  /** Readiness failed its threshold after having passed. */
  unready(reason: string): void;
  /** Liveness failed its threshold: the supervisor restarts the replica. */
  livenessFailed(reason: string): void;
  /** The run's process is gone. Called exactly once per run, also when the supervisor stopped it. */
  exited(exit: RunExit): void;
}

/** The signals of the fault hooks: kill, pause, resume. */
export type FaultSignal = "SIGKILL" | "SIGSTOP" | "SIGCONT";

/** CPU and memory of one run, as a host samples it (the supervisor adds the limit and the time). */
export interface RunUsage {
  cpuPercent: number;
  memoryBytes: number;
}

/** One run of a replica on a host: a process (group), a fake process, a container. */
export interface HostedRun {
  readonly pid: number | undefined;
  readonly pidStartTime: number | undefined;
  /** The run was found paused (SIGSTOPped) when it was attached. */
  readonly paused?: boolean;
  /**
   * Graceful stop: SIGTERM, SIGKILL after timeoutMs. Resolves once everything the run
   * started is gone. Calling it again returns the same promise.
   */
  terminate(timeoutMs: number): Promise<void>;
  /** Stops probes and watchers and leaves the process alone (after exit, or on detach). */
  release(): void;
  /**
   * Sends a fault signal to everything the run started (its process group; a container's
   * processes, which the engine reaches asynchronously). Throws or rejects when it cannot; a
   * SIGKILL's exit arrives through RunContext.exited as any exit does.
   */
  signal(signal: FaultSignal): void | Promise<void>;
}

/** What a driver's recorded facts about a replica look like when a new control plane adopts it. */
export type AdoptRecord = Parameters<RuntimeDriver["adopt"]>[1];

/** Where runs happen. Implemented by the process, memory and docker drivers. */
export interface ReplicaHost {
  /**
   * Starts a run. Rejects with KEELSON_ERR_PORT_IN_USE or KEELSON_ERR_START_FAILED; may
   * report through ctx before it resolves (the supervisor holds reports until it has
   * announced the run).
   */
  launch(spec: ReplicaSpec, ctx: RunContext): Promise<HostedRun>;
  /** Takes over a run recorded by an earlier driver, or undefined when it is gone. */
  attach(spec: ReplicaSpec, recorded: AdoptRecord, ctx: RunContext): Promise<HostedRun | undefined>;
  /** Driver-specific facts for ReplicaInfo.details (log paths, ...). */
  details(spec: ReplicaSpec): Record<string, unknown>;
  /** A replica is no longer supervised here: stopped (final log collection) or detached. */
  release(id: string, why: "stopped" | "detached"): Promise<void>;
  /**
   * Samples the CPU and memory of these runs in one pass, leaving out those it cannot tell
   * about. Optional: without it replicas have no usage and no memory limit is enforced.
   */
  sampleUsage?(runs: HostedRun[]): Promise<Map<HostedRun, RunUsage>>;
}

export interface SupervisorOptions {
  name: string;
  host: ReplicaHost;
  restartPolicy?: RestartPolicy;
  log?: RuntimeLog;
  /** How often running replicas' usage is sampled (and their memory limit checked); default 2 s. */
  usageIntervalMs?: number;
}

/** What the supervisor is doing to a replica's current run; it decides what an exit means. */
type Intent = "run" | "liveness-restart" | "memory-restart" | "restart" | "stop";

/** Why the supervisor stopped a run it then restarts with backoff, as the "exited" reason says it. */
const FAULT_STOPS: Partial<Record<Intent, string>> = {
  "liveness-restart": "stopped for failing liveness",
  "memory-restart": "stopped for going over its memory limit",
};

interface Entry {
  spec: ReplicaSpec;
  state: ReplicaState;
  pid: number | undefined;
  pidStartTime: number | undefined;
  restarts: number;
  startedAt: string | undefined;
  lastExit: ReplicaExit | undefined;
  everReady: boolean;
  exitsSinceReady: number;
  /** pause() holds the current run. */
  paused: boolean;
  /** The current run's last usage sample. */
  usage: ReplicaUsage | undefined;
  intent: Intent;
  run: HostedRun | undefined;
  /** Identity of the run whose reports are current. */
  runToken: symbol | undefined;
  /** When the current run started (ms), to reset the backoff after resetAfterMs of uptime. */
  runStartedMs: number;
  nextDelayMs: number;
  restartTimer: NodeJS.Timeout | undefined;
  exitWaiters: Array<() => void>;
  launching: Promise<unknown> | undefined;
  restarting: Promise<void> | undefined;
  stopping: Promise<void> | undefined;
  stopRequested: boolean;
  /** The spec the next run of a requested restart uses. */
  restartSpec: ReplicaSpec | undefined;
}

/** How long to wait for a host's exit report once it said the process group is gone. */
const EXIT_REPORT_GRACE_MS = 2_000;

const MIB = 1024 * 1024;

/** "memory 312 MiB over its limit 256 MiB": whole MiB, or one decimal where whole MiB would read equal. */
export function describeMemoryOver(memoryBytes: number, limitBytes: number): string {
  const whole = Math.round(memoryBytes / MIB) !== Math.round(limitBytes / MIB);
  const mib = (bytes: number): string => `${whole || Number.isInteger(bytes / MIB) ? Math.round(bytes / MIB) : (bytes / MIB).toFixed(1)} MiB`;
  return `memory ${mib(memoryBytes)} over its limit ${mib(limitBytes)}`;
}

/**
 * Builds a RuntimeDriver from a host. Event order per run: "started" (or "adopted"),
 * "ready" / "unready", then "exited" (state "backoff") and, after the backoff delay,
 * "restarting" and "started" again; a liveness failure announces "restarting" first,
 * then "exited". Every "restarting" event counts one restart. A sample over the memory limit
 * announces "memory-exceeded", then restarts the replica as a liveness failure does.
 */
export function createSupervisor(options: SupervisorOptions): RuntimeDriver {
  const { host } = options;
  const policy = options.restartPolicy ?? DEFAULT_RESTART_POLICY;
  const log: RuntimeLog = options.log ?? (() => undefined);
  const entries = new Map<string, Entry>();
  const listeners = new Set<(event: ReplicaEvent) => void>();
  const usageIntervalMs = options.usageIntervalMs ?? DEFAULT_USAGE_INTERVAL_MS;
  let usageTimer: NodeJS.Timeout | undefined;
  let sampling = false;
  let detached = false;

  const now = (): string => new Date().toISOString();

  function snapshot(entry: Entry): ReplicaInfo {
    return {
      spec: entry.spec,
      state: entry.state,
      pid: entry.pid,
      pidStartTime: entry.pidStartTime,
      restarts: entry.restarts,
      startedAt: entry.startedAt,
      lastExit: entry.lastExit === undefined ? undefined : { ...entry.lastExit },
      everReady: entry.everReady,
      exitsSinceReady: entry.exitsSinceReady,
      details: host.details(entry.spec),
      ...(entry.usage === undefined ? {} : { usage: { ...entry.usage } }),
      paused: entry.paused,
    };
  }

  function emit(entry: Entry, type: ReplicaEventType, reason?: string): void {
    if (detached) return;
    const event: ReplicaEvent = reason === undefined ? { type, replica: snapshot(entry) } : { type, replica: snapshot(entry), reason };
    log(type === "exited" ? "warn" : "info", `replica ${type}`, { replica: entry.spec.id, state: entry.state, pid: entry.pid, reason });
    for (const listener of [...listeners]) {
      try {
        listener(event);
      } catch (err) {
        // One broken subscriber must not stop the others or the supervision.
        log("error", "replica event listener threw", { error: String(err) });
      }
    }
  }

  function isCurrent(entry: Entry): boolean {
    return !detached && entries.get(entry.spec.id) === entry;
  }

  function newEntry(spec: ReplicaSpec): Entry {
    return {
      spec,
      state: "starting",
      pid: undefined,
      pidStartTime: undefined,
      restarts: 0,
      startedAt: undefined,
      lastExit: undefined,
      everReady: false,
      exitsSinceReady: 0,
      paused: false,
      usage: undefined,
      intent: "run",
      run: undefined,
      runToken: undefined,
      runStartedMs: Date.now(),
      nextDelayMs: policy.initialDelayMs,
      restartTimer: undefined,
      exitWaiters: [],
      launching: undefined,
      restarting: undefined,
      stopping: undefined,
      stopRequested: false,
      restartSpec: undefined,
    };
  }

  /** A context for a new run; reports are held until `activate` (after "started"/"adopted"). */
  function beginRun(entry: Entry): RunContext & { activate(): void } {
    const token = Symbol(entry.spec.id);
    entry.runToken = token;
    let active = false;
    const held: Array<() => void> = [];
    const deliver = (fn: () => void): void => {
      if (!isCurrent(entry) || entry.runToken !== token) return;
      if (active) fn();
      else held.push(fn);
    };
    return {
      ready: () => deliver(() => onReady(entry)),
      unready: (reason) => deliver(() => onUnready(entry, reason)),
      livenessFailed: (reason) => deliver(() => onLivenessFailed(entry, reason)),
      exited: (exit) => deliver(() => onExited(entry, exit)),
      activate: () => {
        active = true;
        for (const fn of held.splice(0)) if (isCurrent(entry) && entry.runToken === token) fn();
      },
    };
  }

  function onReady(entry: Entry): void {
    if (entry.intent !== "run" || entry.state === "ready") return;
    entry.state = "ready";
    entry.everReady = true;
    entry.exitsSinceReady = 0;
    emit(entry, "ready");
  }

  function onUnready(entry: Entry, reason: string): void {
    if (entry.intent !== "run" || entry.state !== "ready") return;
    entry.state = "unready";
    emit(entry, "unready", reason);
  }

  function onLivenessFailed(entry: Entry, reason: string): void {
    if (entry.intent !== "run" || entry.run === undefined) return;
    restartAfterFault(entry, "liveness-restart", reason);
  }

  /** Stops the current run and starts the next one after the backoff, counting the restart. */
  function restartAfterFault(entry: Entry, intent: "liveness-restart" | "memory-restart", reason: string): void {
    entry.intent = intent;
    entry.state = "stopping";
    entry.restarts += 1;
    emit(entry, "restarting", reason);
    void terminate(entry);
  }

  function onMemoryExceeded(entry: Entry, run: HostedRun, memoryBytes: number, limitBytes: number): void {
    const reason = describeMemoryOver(memoryBytes, limitBytes);
    emit(entry, "memory-exceeded", reason);
    // A listener may have stopped or restarted it while hearing that.
    if (!isCurrent(entry) || entry.intent !== "run" || entry.run !== run) return;
    restartAfterFault(entry, "memory-restart", reason);
  }

  function describeExit(pid: number | undefined, exit: RunExit): string {
    const what = pid === undefined ? "process" : `pid ${pid}`;
    if (exit.reason !== undefined) return `${what} ${exit.reason}`;
    if (exit.signal !== null) return `${what} was killed by ${exit.signal}`;
    return `${what} exited with code ${exit.code ?? "unknown"}`;
  }

  function onExited(entry: Entry, exit: RunExit): void {
    const run = entry.run;
    const pid = entry.pid;
    entry.run = undefined;
    entry.runToken = undefined;
    run?.release();
    entry.pid = undefined;
    entry.pidStartTime = undefined;
    entry.paused = false;
    entry.usage = undefined;
    entry.lastExit = { code: exit.code, signal: exit.signal, at: now() };
    for (const wake of entry.exitWaiters.splice(0)) wake();
    // A stop or a requested restart is waiting for this exit and carries on from there.
    if (entry.intent === "stop" || entry.intent === "restart") return;
    const faultStop = FAULT_STOPS[entry.intent];
    entry.intent = "run";
    entry.exitsSinceReady += 1;
    entry.state = "backoff";
    const delay = nextBackoff(entry);
    const what = describeExit(pid, exit) + (faultStop === undefined ? "" : ` (${faultStop})`);
    emit(entry, "exited", `${what}; restarting in ${delay} ms`);
    // A liveness or memory restart was announced when it was decided; a crash is announced when the delay is over.
    scheduleRespawn(entry, delay, faultStop === undefined ? `${what}; restarting after ${delay} ms backoff` : undefined);
  }

  function nextBackoff(entry: Entry): number {
    if (Date.now() - entry.runStartedMs >= policy.resetAfterMs) entry.nextDelayMs = policy.initialDelayMs;
    const delay = entry.nextDelayMs;
    entry.nextDelayMs = Math.min(delay * policy.multiplier, policy.maxDelayMs);
    return Math.round(delay);
  }

  function scheduleRespawn(entry: Entry, delay: number, announce: string | undefined): void {
    clearTimeout(entry.restartTimer);
    entry.restartTimer = setTimeout(() => {
      entry.restartTimer = undefined;
      if (!isCurrent(entry) || entry.intent !== "run") return;
      if (announce !== undefined) {
        entry.restarts += 1;
        emit(entry, "restarting", announce);
        // A listener may have stopped it while hearing that.
        if (!isCurrent(entry) || entry.intent !== "run") return;
      }
      // A failure is already turned into an "exited" event and another backoff.
      respawn(entry).catch(() => undefined);
    }, delay);
  }

  async function launchRun(entry: Entry): Promise<void> {
    const ctx = beginRun(entry);
    const token = entry.runToken;
    entry.everReady = false;
    entry.paused = false;
    entry.usage = undefined;
    entry.state = "starting";
    entry.runStartedMs = Date.now();
    let run: HostedRun;
    try {
      run = await host.launch(entry.spec, ctx);
    } catch (err) {
      if (entry.runToken === token) entry.runToken = undefined;
      throw err;
    }
    if (!isCurrent(entry)) {
      run.release();
      if (detached) {
        // Detached while the process was being spawned: it keeps running, but nobody recorded it.
        log("warn", "replica started while the driver detached; it is not supervised", { replica: entry.spec.id, pid: run.pid });
      } else {
        // Stopped and forgotten while it was being spawned: it must not outlive that.
        await run.terminate(entry.spec.stopTimeoutMs).catch(() => undefined);
      }
      return;
    }
    entry.run = run;
    entry.pid = run.pid;
    entry.pidStartTime = run.pidStartTime;
    entry.startedAt = now();
    // A stop that arrived during the spawn kills this run at once; no need to announce it.
    if (!entry.stopRequested) emit(entry, "started");
    ctx.activate();
    startSampling();
  }

  /** Launches the next run; a failed launch counts as an exit at once and backs off again. */
  async function respawn(entry: Entry): Promise<void> {
    const launching = launchRun(entry);
    entry.launching = launching;
    try {
      await launching;
    } catch (err) {
      if (isCurrent(entry) && !entry.stopRequested) {
        entry.lastExit = { code: null, signal: null, at: now() };
        entry.exitsSinceReady += 1;
        entry.state = "backoff";
        const delay = nextBackoff(entry);
        const message = err instanceof Error ? err.message : String(err);
        emit(entry, "exited", `${message}; retrying in ${delay} ms`);
        scheduleRespawn(entry, delay, `retrying the start after ${delay} ms backoff`);
      }
      throw err;
    } finally {
      if (entry.launching === launching) entry.launching = undefined;
    }
  }

  function waitExit(entry: Entry): Promise<void> {
    if (entry.run === undefined) return Promise.resolve();
    return new Promise((resolve) => entry.exitWaiters.push(resolve));
  }

  /** Stops the current run gracefully and waits for its exit report. */
  async function terminate(entry: Entry): Promise<void> {
    const run = entry.run;
    if (run === undefined) return;
    const exited = waitExit(entry);
    try {
      await run.terminate(entry.spec.stopTimeoutMs);
    } catch (err) {
      log("error", "replica could not be stopped", { replica: entry.spec.id, pid: run.pid, error: String(err) });
    }
    // The host says the group is gone; its exit report (a child "exit" event) may trail a little.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, EXIT_REPORT_GRACE_MS)))]);
    clearTimeout(timer);
    if (entry.run === run && isCurrent(entry)) onExited(entry, { code: null, signal: null, reason: "is gone (no exit status reported)" });
  }

  /** Starts the usage sampling loop if it is not going; it ends by itself when no run is left. */
  function startSampling(): void {
    if (host.sampleUsage === undefined || detached || sampling || usageTimer !== undefined) return;
    usageTimer = setTimeout(() => {
      sampleUsage().catch((err: unknown) => {
        log("error", "replica usage sampling failed", { driver: options.name, error: String(err) });
        startSampling();
      });
    }, usageIntervalMs);
    usageTimer.unref();
  }

  /** One sampling pass over every running replica; a sample over the memory limit restarts the replica. */
  async function sampleUsage(): Promise<void> {
    usageTimer = undefined;
    const sampleOf = host.sampleUsage?.bind(host);
    const running = [...entries.values()].flatMap((entry) => (entry.run !== undefined && entry.intent === "run" ? [{ entry, run: entry.run }] : []));
    if (sampleOf === undefined || detached || running.length === 0) return;
    sampling = true;
    let usage: Map<HostedRun, RunUsage>;
    try {
      usage = await sampleOf(running.map((r) => r.run));
    } catch (err) {
      log("warn", "replica usage could not be sampled", { driver: options.name, error: String(err) });
      usage = new Map();
    } finally {
      sampling = false;
    }
    const at = now();
    for (const { entry, run } of running) {
      if (!isCurrent(entry) || entry.run !== run) continue;
      const sample = usage.get(run);
      const limit = entry.spec.memoryLimitBytes;
      entry.usage = sample === undefined ? undefined : { cpuPercent: sample.cpuPercent, memoryBytes: sample.memoryBytes, ...(limit === undefined ? {} : { memoryLimitBytes: limit }), at };
      if (sample !== undefined && limit !== undefined && sample.memoryBytes > limit && entry.intent === "run") onMemoryExceeded(entry, run, sample.memoryBytes, limit);
    }
    startSampling();
  }

  /** Sends a fault signal to a replica's running process group; false when there is none. */
  async function signalRun(id: string, signal: FaultSignal): Promise<boolean> {
    const entry = entries.get(id);
    const run = entry?.run;
    if (detached || entry === undefined || run === undefined || entry.stopRequested) return false;
    // Holding a run that is being stopped would only delay the stop until its SIGKILL.
    if (signal === "SIGSTOP" && entry.intent !== "run") return false;
    try {
      await run.signal(signal);
    } catch (err) {
      log("warn", "replica could not be signalled", { replica: id, pid: run.pid, signal, error: String(err) });
      return false;
    }
    // The run may have ended while an engine carried the signal: then nothing is held.
    if (signal === "SIGSTOP" && entry.run === run) entry.paused = true;
    if (signal === "SIGCONT" && entry.run === run) entry.paused = false;
    log(signal === "SIGCONT" ? "info" : "warn", `replica ${signal === "SIGKILL" ? "killed" : signal === "SIGSTOP" ? "paused" : "resumed"} by a fault hook`, { replica: id, pid: run.pid });
    return true;
  }

  function assertAttached(): void {
    if (detached) throw new KeelsonError("KEELSON_ERR_RUNTIME", `the ${options.name} runtime driver is detached; create a new one`);
  }

  function asStartError(spec: ReplicaSpec, err: unknown): KeelsonError {
    if (err instanceof KeelsonError) return err;
    return new KeelsonError("KEELSON_ERR_START_FAILED", `services.${spec.service}: replica ${spec.id} could not be started: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }

  return {
    name: options.name,

    async start(spec) {
      assertAttached();
      if (entries.has(spec.id)) throw new KeelsonError("KEELSON_ERR_CONFLICT", `replica ${spec.id} is already running`);
      const entry = newEntry(spec);
      entries.set(spec.id, entry);
      const launching = launchRun(entry);
      entry.launching = launching;
      try {
        await launching;
      } catch (err) {
        if (entries.get(spec.id) === entry) entries.delete(spec.id);
        throw asStartError(spec, err);
      } finally {
        if (entry.launching === launching) entry.launching = undefined;
      }
      return snapshot(entry);
    },

    stop(id) {
      const entry = entries.get(id);
      if (entry === undefined) return Promise.resolve();
      entry.stopping ??= (async () => {
        entry.stopRequested = true;
        entry.intent = "stop";
        clearTimeout(entry.restartTimer);
        entry.restartTimer = undefined;
        entry.state = "stopping";
        // A spawn or restart in flight settles first, so that its process is the one we stop.
        await entry.launching?.catch(() => undefined);
        await entry.restarting?.catch(() => undefined);
        entry.intent = "stop";
        entry.state = "stopping";
        await terminate(entry);
        if (entries.get(id) !== entry) return;
        entries.delete(id);
        await host.release(id, "stopped").catch((err: unknown) => log("warn", "replica resources not released", { replica: id, error: String(err) }));
        entry.state = "stopped";
        if (!detached) emit(entry, "stopped");
      })();
      return entry.stopping;
    },

    restart(id, restartOptions) {
      if (detached) return Promise.reject(new KeelsonError("KEELSON_ERR_RUNTIME", `the ${options.name} runtime driver is detached; create a new one`));
      const entry = entries.get(id);
      if (entry === undefined) return Promise.reject(new KeelsonError("KEELSON_ERR_NOT_FOUND", `replica ${id} does not exist`));
      if (entry.stopRequested) return Promise.reject(new KeelsonError("KEELSON_ERR_CONFLICT", `replica ${id} is being stopped`));
      const spec = restartOptions?.spec;
      if (spec !== undefined && spec.id !== id) {
        return Promise.reject(new KeelsonError("KEELSON_ERR_INVALID_INPUT", `restart of replica ${id} was given the spec of replica ${spec.id}`));
      }
      // A restart already under way takes the newest spec too.
      if (spec !== undefined) entry.restartSpec = spec;
      entry.restarting ??= (async () => {
        clearTimeout(entry.restartTimer);
        entry.restartTimer = undefined;
        await entry.launching?.catch(() => undefined);
        if (!isCurrent(entry) || entry.stopRequested) return;
        entry.intent = "restart";
        if (entry.run !== undefined) entry.state = "stopping";
        entry.restarts += 1;
        emit(entry, "restarting", "restart requested");
        await terminate(entry);
        if (!isCurrent(entry) || entry.stopRequested) return;
        if (entry.restartSpec !== undefined) entry.spec = entry.restartSpec;
        entry.restartSpec = undefined;
        entry.intent = "run";
        entry.nextDelayMs = policy.initialDelayMs;
        await respawn(entry);
      })().finally(() => {
        entry.restarting = undefined;
      });
      return entry.restarting;
    },

    async adopt(spec, recorded) {
      assertAttached();
      const existing = entries.get(spec.id);
      if (existing !== undefined) return snapshot(existing);
      const entry = newEntry(spec);
      entry.restarts = recorded.restarts;
      entry.startedAt = recorded.startedAt;
      entries.set(spec.id, entry);
      const ctx = beginRun(entry);
      const attaching = host.attach(spec, recorded, ctx);
      entry.launching = attaching;
      let run: HostedRun | undefined;
      try {
        run = await attaching;
      } catch (err) {
        if (entries.get(spec.id) === entry) entries.delete(spec.id);
        throw err;
      } finally {
        entry.launching = undefined;
      }
      if (run === undefined || !isCurrent(entry)) {
        run?.release();
        if (entries.get(spec.id) === entry) entries.delete(spec.id);
        if (run === undefined) return undefined;
        throw new KeelsonError("KEELSON_ERR_RUNTIME", `the ${options.name} runtime driver was detached while adopting ${spec.id}`);
      }
      entry.run = run;
      entry.pid = run.pid;
      entry.pidStartTime = run.pidStartTime;
      entry.paused = run.paused === true;
      if (recorded.ready === true && !entry.paused) {
        // Trusted until the probes say otherwise, so the routing table never loses it in between.
        entry.state = "ready";
        entry.everReady = true;
      }
      const started = recorded.startedAt === undefined ? Number.NaN : Date.parse(recorded.startedAt);
      entry.runStartedMs = Number.isFinite(started) ? started : Date.now();
      const info = snapshot(entry);
      if (!entry.stopRequested) emit(entry, "adopted");
      ctx.activate();
      startSampling();
      return info;
    },

    get(id) {
      const entry = entries.get(id);
      return entry === undefined ? undefined : snapshot(entry);
    },

    list() {
      return [...entries.values()].map(snapshot);
    },

    onEvent(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },

    async kill(id) {
      return signalRun(id, "SIGKILL");
    },

    async pause(id) {
      return signalRun(id, "SIGSTOP");
    },

    async resume(id) {
      return signalRun(id, "SIGCONT");
    },

    async detach() {
      if (detached) return;
      detached = true;
      clearTimeout(usageTimer);
      usageTimer = undefined;
      const ids = [...entries.keys()];
      for (const entry of entries.values()) {
        clearTimeout(entry.restartTimer);
        entry.restartTimer = undefined;
        entry.run?.release();
        for (const wake of entry.exitWaiters.splice(0)) wake();
      }
      entries.clear();
      listeners.clear();
      await Promise.all(ids.map((id) => host.release(id, "detached").catch((err: unknown) => log("warn", "replica resources not released", { replica: id, error: String(err) }))));
      log("info", "runtime driver detached; replicas keep running", { driver: options.name, replicas: ids.length });
    },
  };
}
