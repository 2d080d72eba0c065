// The memory runtime driver: a first-class fake with the process driver's event
// semantics (the same supervision core) and no processes, for unit tests and benchmarks.
// Fake processes live on a MemoryHost, so a second driver on the same host can adopt them.
// Their CPU and memory are what tests set (setUsage), so the memory limit is tested without processes.
import { KeelsonError } from "@keelson/protocol";
import { createSupervisor } from "./replica-supervisor.js";
import type { AdoptRecord, FaultSignal, HostedRun, ReplicaHost, RunContext, RunExit, RunUsage, RuntimeLog } from "./replica-supervisor.js";
import type { ReplicaSpec, RestartPolicy, RuntimeDriver } from "./runtime-driver.js";

/** How a fake replica behaves; returned per start by MemoryDriverOptions.behavior. */
export interface MemoryReplicaBehavior {
  /** Time from start until readiness passes; default the driver's readyDelayMs. */
  readyDelayMs?: number;
  /** Readiness never passes (a start that times out). */
  neverReady?: boolean;
  /** The process exits by itself this long after starting (0: at once, a crash loop). */
  exitAfterMs?: number;
  /** Exit code for exitAfterMs; default 1. */
  exitCode?: number;
  /** SIGTERM is ignored, so a stop waits stopTimeoutMs and then kills. */
  ignoreSigterm?: boolean;
  /** The command cannot be spawned: start rejects with KEELSON_ERR_START_FAILED. */
  failToSpawn?: boolean;
  /** What the process uses from its start (default: nothing reported, so no usage). */
  usage?: { cpuPercent?: number; memoryBytes: number };
}

/** A fake machine: its processes and ports outlive the drivers that started them. */
export interface MemoryHost {
  /** Makes a port look taken by another program; returns a function that frees it. */
  occupyPort(port: number): () => void;
  /** Whether a fake process with this pid is running. */
  isRunning(pid: number): boolean;
  /** Ends a fake process as if it exited by itself (also while no driver supervises it). */
  exit(pid: number, exit?: { code?: number | null; signal?: string | null }): void;
  /** Pids of the running fake processes. */
  pids(): number[];
  /** Whether a fake process is held by SIGSTOP. */
  isPaused(pid: number): boolean;
}

export interface MemoryDriverOptions {
  /** Time from start until a replica passes readiness (default 0: on the next turn of the event loop). */
  readyDelayMs?: number;
  /** Default DEFAULT_RESTART_POLICY. */
  restartPolicy?: RestartPolicy;
  /** The fake machine; share one between drivers to test detach and adopt. */
  host?: MemoryHost;
  /** Per-start behaviour; `attempt` counts this replica's launches on this driver, from 1. */
  behavior?: (spec: ReplicaSpec, attempt: number) => MemoryReplicaBehavior | undefined;
  log?: RuntimeLog;
  /** How often usage is sampled and the memory limit checked; default 2 s (tests use a few ms). */
  usageIntervalMs?: number;
}

/** The memory driver with the hooks tests need to make things happen. */
export interface MemoryDriver extends RuntimeDriver {
  readonly host: MemoryHost;
  /** The replica's process dies (default: killed by SIGKILL), as a crash would. */
  crash(id: string, exit?: { code?: number | null; signal?: string | null }): void;
  /**
   * Forces the readiness result of a replica (across its restarts) as if its probe passed
   * or failed its threshold: false makes a ready replica "unready" and keeps a starting one
   * from becoming ready; true makes it ready. undefined goes back to the normal behaviour.
   */
  setReadiness(id: string, passing: boolean | undefined): void;
  /** Liveness fails its threshold: the replica is restarted. */
  failLiveness(id: string, reason?: string): void;
  /**
   * What the replica's current process uses from now on, as the next sample reports it (a new
   * run starts with its behaviour's usage); undefined: nothing reported. Over the spec's
   * memoryLimitBytes, the replica is restarted.
   */
  setUsage(id: string, usage: { cpuPercent?: number; memoryBytes: number } | undefined): void;
}

interface FakeProcess {
  pid: number;
  startTime: number;
  port: number;
  alive: boolean;
  warm: boolean;
  ignoreSigterm: boolean;
  /**
   * Held by SIGSTOP: a SIGTERM waits until it goes on. Its timers (readiness, exitAfterMs) keep
   * running, since no probe watches a fake: tests play what probes would see (failLiveness).
   */
  paused: boolean;
  pendingSigterm: boolean;
  usage: RunUsage | undefined;
  timers: Set<NodeJS.Timeout>;
  exitListeners: Set<(exit: RunExit) => void>;
  /** Called when the process turns ready by itself (its readyDelayMs passed). */
  warmListeners: Set<() => void>;
}

interface MemoryHostInternals extends MemoryHost {
  spawn(port: number, behavior: MemoryReplicaBehavior, readyDelayMs: number): FakeProcess;
  get(pid: number): FakeProcess | undefined;
  portTaken(port: number): boolean;
  signal(pid: number, signal: "SIGTERM" | FaultSignal): void;
}

/** A fresh fake machine. */
export function createMemoryHost(): MemoryHost {
  const processes = new Map<number, FakeProcess>();
  const occupied = new Map<number, number>();
  let nextPid = 10_000;
  let clockTicks = 1;

  const later = (p: FakeProcess, ms: number, fn: () => void): void => {
    const timer = setTimeout(() => {
      p.timers.delete(timer);
      fn();
    }, ms);
    p.timers.add(timer);
  };

  const host: MemoryHostInternals = {
    occupyPort(port) {
      occupied.set(port, (occupied.get(port) ?? 0) + 1);
      let freed = false;
      return () => {
        if (freed) return;
        freed = true;
        const n = (occupied.get(port) ?? 1) - 1;
        if (n <= 0) occupied.delete(port);
        else occupied.set(port, n);
      };
    },
    isRunning: (pid) => processes.get(pid)?.alive === true,
    exit(pid, exit = {}) {
      const p = processes.get(pid);
      if (p === undefined || !p.alive) return;
      p.alive = false;
      processes.delete(pid);
      for (const timer of p.timers) clearTimeout(timer);
      p.timers.clear();
      const status: RunExit = { code: exit.code ?? null, signal: exit.signal ?? (exit.code === undefined ? "SIGKILL" : null) };
      for (const listener of [...p.exitListeners]) listener(status);
      p.exitListeners.clear();
    },
    pids: () => [...processes.keys()],
    isPaused: (pid) => processes.get(pid)?.paused === true,
    spawn(port, behavior, readyDelayMs) {
      const p: FakeProcess = {
        pid: nextPid++,
        startTime: clockTicks++,
        port,
        alive: true,
        warm: false,
        ignoreSigterm: behavior.ignoreSigterm === true,
        paused: false,
        pendingSigterm: false,
        usage: behavior.usage === undefined ? undefined : { cpuPercent: behavior.usage.cpuPercent ?? 0, memoryBytes: behavior.usage.memoryBytes },
        timers: new Set(),
        exitListeners: new Set(),
        warmListeners: new Set(),
      };
      processes.set(p.pid, p);
      // Scheduled first, so that a process exiting as early as it would turn ready never does.
      if (behavior.exitAfterMs !== undefined) later(p, behavior.exitAfterMs, () => host.exit(p.pid, { code: behavior.exitCode ?? 1 }));
      if (behavior.neverReady !== true) {
        later(p, behavior.readyDelayMs ?? readyDelayMs, () => {
          p.warm = true;
          for (const listener of [...p.warmListeners]) listener();
        });
      }
      return p;
    },
    get: (pid) => processes.get(pid),
    portTaken: (port) => occupied.has(port) || [...processes.values()].some((p) => p.alive && p.port === port),
    signal(pid, signal) {
      const p = processes.get(pid);
      if (p === undefined) return;
      switch (signal) {
        case "SIGSTOP":
          p.paused = true;
          return;
        case "SIGCONT":
          p.paused = false;
          if (!p.pendingSigterm) return;
          p.pendingSigterm = false;
          return host.signal(pid, "SIGTERM");
        case "SIGTERM":
          // As with a real process, a stopped one only acts on it once continued.
          if (p.paused) p.pendingSigterm = true;
          if (p.paused || p.ignoreSigterm) return;
          break;
        case "SIGKILL":
          break;
      }
      // A real process takes a moment to die; so does this one.
      setImmediate(() => host.exit(pid, { signal }));
    },
  };
  return host;
}

/** Creates the memory driver (see MemoryDriver for the test hooks). */
export function createMemoryDriver(options: MemoryDriverOptions = {}): MemoryDriver {
  const host = (options.host ?? createMemoryHost()) as MemoryHostInternals;
  const readyDelayMs = options.readyDelayMs ?? 0;
  const attempts = new Map<string, number>();
  const readiness = new Map<string, boolean>();
  /** The current run of each supervised replica, for the test hooks. */
  const runs = new Map<string, { process: FakeProcess; ctx: RunContext; ready: boolean; report(): void }>();
  /** The fake process of each hosted run, for usage samples. */
  const processOf = new WeakMap<HostedRun, FakeProcess>();

  function supervise(spec: ReplicaSpec, p: FakeProcess, ctx: RunContext): HostedRun {
    let terminating: Promise<void> | undefined;
    const run = {
      process: p,
      ctx,
      ready: false,
      // Tells the supervisor about readiness when the fake's state or the override changes.
      report() {
        const passing = readiness.get(spec.id) ?? p.warm;
        if (!p.alive || passing === run.ready) return;
        run.ready = passing;
        if (passing) ctx.ready();
        else ctx.unready("readiness failed (memory driver)");
      },
    };
    runs.set(spec.id, run);
    const onExit = (exit: RunExit): void => {
      if (runs.get(spec.id) === run) runs.delete(spec.id);
      ctx.exited(exit);
    };
    p.exitListeners.add(onExit);
    p.warmListeners.add(run.report);
    const hosted: HostedRun = {
      pid: p.pid,
      pidStartTime: p.startTime,
      paused: p.paused,
      terminate(timeoutMs) {
        terminating ??= new Promise<void>((resolve) => {
          if (!p.alive) return resolve();
          p.exitListeners.add(() => {
            clearTimeout(killTimer);
            resolve();
          });
          // SIGCONT as the process driver sends it: a paused process acts on the SIGTERM only then.
          host.signal(p.pid, "SIGTERM");
          host.signal(p.pid, "SIGCONT");
          const killTimer = setTimeout(() => host.signal(p.pid, "SIGKILL"), timeoutMs);
        });
        return terminating;
      },
      release() {
        p.exitListeners.delete(onExit);
        p.warmListeners.delete(run.report);
        if (runs.get(spec.id) === run) runs.delete(spec.id);
      },
      signal(signal: FaultSignal) {
        if (!p.alive) throw new Error(`fake process ${p.pid} has exited`);
        host.signal(p.pid, signal);
      },
    };
    processOf.set(hosted, p);
    return hosted;
  }

  const memoryHost: ReplicaHost = {
    async launch(spec, ctx) {
      // Spawning takes a moment, as a real one does, so races with stop and restart show up here too.
      await new Promise((resolve) => setImmediate(resolve));
      if (host.portTaken(spec.port)) {
        throw new KeelsonError("KEELSON_ERR_PORT_IN_USE", `services.${spec.service}: port ${spec.port} is already in use by another process`, { details: { replica: spec.id, port: spec.port } });
      }
      const attempt = (attempts.get(spec.id) ?? 0) + 1;
      attempts.set(spec.id, attempt);
      const behavior = options.behavior?.(spec, attempt) ?? {};
      if (behavior.failToSpawn === true) {
        throw new KeelsonError("KEELSON_ERR_START_FAILED", `services.${spec.service}: cannot start replica ${spec.id}: spawn failed (memory driver)`, { details: { replica: spec.id } });
      }
      return supervise(spec, host.spawn(spec.port, behavior, readyDelayMs), ctx);
    },

    async attach(spec, recorded: AdoptRecord, ctx) {
      const p = host.get(recorded.pid);
      if (p === undefined || !p.alive || (recorded.pidStartTime !== undefined && recorded.pidStartTime !== p.startTime)) return undefined;
      const run = supervise(spec, p, ctx);
      // Adopted ready (see RuntimeDriver.adopt): only a change from there is reported.
      const current = runs.get(spec.id);
      if (current?.process === p) current.ready = recorded.ready === true && !p.paused;
      // A live replica passes its readiness check at once, as with the process driver.
      setImmediate(() => {
        if (runs.get(spec.id)?.process === p) runs.get(spec.id)?.report();
      });
      return run;
    },

    details: () => ({}),
    release: async () => undefined,

    async sampleUsage(hostedRuns) {
      const usage = new Map<HostedRun, RunUsage>();
      for (const hosted of hostedRuns) {
        const p = processOf.get(hosted);
        if (p?.alive === true && p.usage !== undefined) usage.set(hosted, { ...p.usage });
      }
      return usage;
    },
  };

  const driver = createSupervisor({ name: "memory", host: memoryHost, restartPolicy: options.restartPolicy, log: options.log, usageIntervalMs: options.usageIntervalMs });

  function runOf(id: string): { process: FakeProcess; ctx: RunContext; ready: boolean; report(): void } {
    const run = runs.get(id);
    if (run === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `replica ${id} has no running process in the memory driver`);
    return run;
  }

  return {
    ...driver,
    host,
    crash(id, exit = {}) {
      host.exit(runOf(id).process.pid, exit);
    },
    setReadiness(id, passing) {
      if (passing === undefined) readiness.delete(id);
      else readiness.set(id, passing);
      runs.get(id)?.report();
    },
    failLiveness(id, reason = "liveness failed (memory driver)") {
      runOf(id).ctx.livenessFailed(reason);
    },
    setUsage(id, usage) {
      runOf(id).process.usage = usage === undefined ? undefined : { cpuPercent: usage.cpuPercent ?? 0, memoryBytes: usage.memoryBytes };
    },
  };
}
