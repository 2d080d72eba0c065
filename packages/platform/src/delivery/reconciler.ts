// The reconciler: converges what runs (through a RuntimeDriver) to the desired state in
// the store. `apply` takes a new manifest in (plan, build, store, roll out, wait for ready);
// a background loop keeps converging afterwards (scale, crashed starts, removed services).
import { mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { KeelsonError, REPLICA_ENV, type EventKind } from "@keelson/protocol";
import type { LoadedManifest, ProbeSpec, ServiceSpec } from "../manifest/index.js";
import { lastLogLines, type ReplicaEvent, type ReplicaInfo, type ReplicaSpec, type RuntimeDriver } from "../runtime/index.js";
import type { EventInput, ReleaseRecord, ReplicaRecord, ServiceRecord, Store } from "../store/index.js";
import { runBuild } from "./build.js";
import { computePlan, toPlain, type Plan } from "./plan.js";
import { configHash, releaseConfig, releaseId } from "./release-id.js";
import { planReplicaSteps, replicaId, type ServiceTarget } from "./replica-plan.js";
import { gitCommit, hashServiceSource } from "./source-hash.js";

/** The logging surface the reconciler needs (pino's shape). */
export interface Log {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silent: Log = { info() {}, warn() {}, error() {} };

export type ApplyProgress =
  | { type: "plan"; plan: Plan }
  | { type: "build"; service: string; release: string; status: "started" | "skipped" | "succeeded" | "failed"; durationMs?: number; message?: string }
  | { type: "replica"; service: string; replica: string; status: "starting" | "ready" | "stopped" | "exited"; message?: string }
  | { type: "service"; service: string; status: "ready" | "failed" | "removed" | "rolled-back"; message?: string };

export interface ServiceFailure {
  service: string;
  code: string;
  message: string;
}

export interface ApplyResult {
  plan: Plan;
  failures: ServiceFailure[];
}

export interface ReconcilerOptions {
  store: Store;
  driver: RuntimeDriver;
  project: string;
  /** Absolute path of the project's state folder (.keelson). */
  stateDir: string;
  /** Injected into replicas as KEELSON_GATEWAY_URL. */
  gatewayUrl: string;
  /** Injected into replicas as KEELSON_OTLP_ENDPOINT (where the SDK exports traces). */
  otlpEndpoint?: string;
  log?: Log;
  /** How often the background loop converges; driver events trigger it sooner. */
  convergeIntervalMs?: number;
  buildConcurrency?: number;
  /** Skip builds and source hashing (benchmarks with a fake driver). */
  skipBuilds?: boolean;
}

export interface Reconciler {
  /** Re-adopts replicas recorded in the store (after a control-plane restart). */
  resume(): Promise<{ adopted: string[]; lost: string[] }>;
  /** Computes the plan for a manifest against the stored state, without changing anything. */
  plan(loaded: LoadedManifest): Promise<Plan>;
  apply(loaded: LoadedManifest, options: { actor: string; rebuild?: boolean; onProgress?: (p: ApplyProgress) => void; waitReady?: boolean }): Promise<ApplyResult>;
  /** One converge step now. */
  converge(): Promise<void>;
  scale(service: string, replicas: number, actor: string): Promise<void>;
  restart(service: string, actor: string): Promise<void>;
  /** Stops every replica of the project gracefully; the loop keeps them stopped until the next apply. */
  down(actor: string): Promise<void>;
  /** Starts the background loop. */
  start(): void;
  /** Stops the loop (replicas keep running). */
  stop(): Promise<void>;
  /** Called after every change of what runs (for the routing table). */
  onChange(listener: () => void): () => void;
  /** Whether the background loop runs. */
  readonly running: boolean;
}

const RUNNING_KEY = (project: string) => `project.${project}.running`;

export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { store, driver, project, stateDir, gatewayUrl } = options;
  const log = options.log ?? silent;
  const intervalMs = options.convergeIntervalMs ?? 2000;
  const listeners = new Set<() => void>();
  const reservedPorts = new Set<number>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let queue: Promise<unknown> = Promise.resolve();
  let convergeQueued = false;

  /** Runs `fn` after everything queued before it (one converge or apply at a time). */
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = queue.then(fn, fn);
    queue = next.catch(() => undefined);
    return next;
  }

  function notify(): void {
    for (const l of listeners) {
      try {
        l();
      } catch (err) {
        log.error({ err }, "change listener failed");
      }
    }
  }

  async function event(kind: EventKind, subject: string, details: Record<string, unknown>, actor = "reconciler"): Promise<void> {
    try {
      await store.appendEvent({ project, kind, actor, subject, details });
    } catch (err) {
      log.error({ err, kind, subject }, "could not record event");
    }
  }

  // Persist what the driver reports, and react to it.
  const unsubscribe = driver.onEvent((e: ReplicaEvent) => {
    if (e.replica.spec.project !== project) return;
    void persistReplicaEvent(e).finally(() => {
      notify();
      if (e.type === "ready" || e.type === "stopped") scheduleConverge();
    });
  });

  async function persistReplicaEvent(e: ReplicaEvent): Promise<void> {
    const info = e.replica;
    const kind = ({
      started: "replica.started",
      ready: "replica.ready",
      unready: "replica.unready",
      exited: "replica.exited",
      restarting: "replica.restarting",
      stopped: "replica.stopped",
      failed: "replica.failed",
      adopted: "replica.adopted",
    } as const)[e.type];
    try {
      if (e.type === "stopped") {
        await store.deleteReplica(info.spec.id);
        reservedPorts.delete(info.spec.port);
      } else {
        await store.upsertReplica(toRecord(info));
      }
    } catch (err) {
      log.error({ err, replica: info.spec.id }, "could not persist replica state");
    }
    await event(kind, `replica/${info.spec.id}`, {
      service: info.spec.service,
      release: info.spec.release,
      pid: info.pid,
      port: info.spec.port,
      ...(e.reason ? { reason: e.reason } : {}),
      ...(e.type === "exited" && info.lastExit ? { code: info.lastExit.code, signal: info.lastExit.signal } : {}),
    }, "runtime");
  }

  function toRecord(info: ReplicaInfo): ReplicaRecord {
    return {
      id: info.spec.id,
      project,
      service: info.spec.service,
      release: info.spec.release,
      index: info.spec.index,
      state: info.state,
      pid: info.pid,
      pidStartTime: info.pidStartTime,
      port: info.spec.port,
      restarts: info.restarts,
      startedAt: info.startedAt,
      updatedAt: new Date().toISOString(),
      details: info.details,
    };
  }

  async function manifestDir(): Promise<string> {
    const p = await store.getProject(project);
    if (!p) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `project "${project}" has not been applied yet`);
    return dirname(p.manifestPath);
  }

  function probe(p: ProbeSpec | undefined): ReplicaSpec["readiness"] {
    return p ? { path: p.path, intervalMs: p.interval, timeoutMs: p.timeout, failureThreshold: p.failureThreshold } : undefined;
  }

  /** The replica spec comes from the release (what was built) and the service (how to run it). */
  function replicaSpec(input: { dir: string; spec: ServiceSpec; release: ReleaseRecord; index: number; port: number }): ReplicaSpec {
    const { dir, spec, release, index, port } = input;
    const config = (release.details.config ?? releaseConfig(spec)) as { path: string; start: string; env: Record<string, string> };
    const id = replicaId(release.service, release.id, index);
    return {
      id,
      project,
      service: release.service,
      release: release.id,
      index,
      cwd: resolve(dir, config.path),
      command: config.start,
      env: {
        ...config.env,
        [REPLICA_ENV.SERVICE]: release.service,
        [REPLICA_ENV.REPLICA]: id,
        [REPLICA_ENV.RELEASE]: release.id,
        [REPLICA_ENV.PROJECT]: project,
        [REPLICA_ENV.GATEWAY_URL]: gatewayUrl,
        ...(options.otlpEndpoint ? { [REPLICA_ENV.OTLP_ENDPOINT]: options.otlpEndpoint } : {}),
        [REPLICA_ENV.DATA_DIR]: join(stateDir, "data", release.service),
      },
      port,
      readiness: probe(spec.readiness),
      liveness: probe(spec.liveness),
      stopTimeoutMs: spec.stopTimeout,
      startTimeoutMs: spec.startTimeout,
      logDir: join(stateDir, "logs", release.service),
    };
  }

  async function allocatePort(spec: ServiceSpec, index: number): Promise<number> {
    if (spec.port !== undefined) return spec.port + index;
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = await freePort();
      if (!reservedPorts.has(port)) {
        reservedPorts.add(port);
        return port;
      }
    }
    throw new KeelsonError("KEELSON_ERR_RUNTIME", "could not find a free port on 127.0.0.1");
  }

  async function isRunning(): Promise<boolean> {
    return (await store.getSetting(RUNNING_KEY(project))) !== "false";
  }

  /** One idempotent converge step: start what is missing, stop what is extra or replaced. */
  async function convergeStep(): Promise<void> {
    const services = (await isRunning()) ? await store.listServices(project) : [];
    const targets: ServiceTarget[] = [];
    const specs = new Map<string, { record: ServiceRecord; spec: ServiceSpec }>();
    for (const record of services) {
      if (!record.release) continue;
      const spec = record.spec as unknown as ServiceSpec;
      specs.set(record.name, { record, spec });
      targets.push({ service: record.name, release: record.release, replicas: spec.replicas, fixedPorts: spec.port !== undefined });
    }
    const mine = driver.list().filter((r) => r.spec.project === project);
    const steps = planReplicaSteps(
      targets,
      mine.map((r) => ({ id: r.spec.id, service: r.spec.service, release: r.spec.release, index: r.spec.index, state: r.state })),
    );
    if (steps.start.length === 0 && steps.stop.length === 0) return;
    const dir = steps.start.length > 0 ? await manifestDir() : "";
    await Promise.all([
      ...steps.stop.map(async (id) => {
        try {
          await driver.stop(id);
        } catch (err) {
          log.error({ err, replica: id }, "could not stop replica");
        }
      }),
      ...steps.start.map(async (s) => {
        const entry = specs.get(s.service);
        if (!entry) return;
        const release = await store.getRelease(s.release);
        if (!release) {
          log.error({ service: s.service, release: s.release }, "release not found in store");
          return;
        }
        const port = await allocatePort(entry.spec, s.index);
        const spec = replicaSpec({ dir, spec: entry.spec, release, index: s.index, port });
        try {
          await mkdir(spec.logDir, { recursive: true });
          await mkdir(spec.env[REPLICA_ENV.DATA_DIR] as string, { recursive: true });
          const info = await driver.start(spec);
          await store.upsertReplica(toRecord(info));
        } catch (err) {
          reservedPorts.delete(port);
          failedStarts.set(s.service, err instanceof Error ? err : new Error(String(err)));
          log.error({ err, replica: spec.id }, "could not start replica");
        }
      }),
    ]);
    notify();
  }

  /** Errors from starting replicas, by service, so apply can report them. */
  const failedStarts = new Map<string, Error>();

  function scheduleConverge(): void {
    if (convergeQueued || !running) return;
    convergeQueued = true;
    setImmediate(() => {
      convergeQueued = false;
      void serial(convergeStep).catch((err: unknown) => log.error({ err }, "converge failed"));
    });
  }

  async function ensureRelease(
    loaded: LoadedManifest,
    name: string,
    spec: ServiceSpec,
    current: ServiceRecord | undefined,
    opts: { rebuild: boolean; actor: string; onProgress: (p: ApplyProgress) => void },
  ): Promise<string> {
    const dir = resolve(loaded.dir, spec.path);
    const sourceHash = options.skipBuilds ? "none" : await hashServiceSource(dir);
    const cfgHash = configHash(spec);
    const id = releaseId(sourceHash, cfgHash);
    const existing = await store.getRelease(id);
    if (existing && !opts.rebuild) {
      if (current?.release !== id) opts.onProgress({ type: "build", service: name, release: id, status: "skipped", message: "release already built" });
      return id;
    }
    let details: Record<string, unknown> = { config: releaseConfig(spec) };
    if (spec.build && !options.skipBuilds) {
      opts.onProgress({ type: "build", service: name, release: id, status: "started" });
      await event("build.started", `service/${name}`, { release: id, command: spec.build }, opts.actor);
      try {
        const result = await runBuild({ service: name, command: spec.build, cwd: dir, logFile: join(stateDir, "builds", `${name}-${id}.log`) });
        details = { ...details, buildCommand: spec.build, buildDurationMs: result.durationMs, buildLog: result.logFile };
        opts.onProgress({ type: "build", service: name, release: id, status: "succeeded", durationMs: result.durationMs });
        await event("build.succeeded", `service/${name}`, { release: id, durationMs: result.durationMs }, opts.actor);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        opts.onProgress({ type: "build", service: name, release: id, status: "failed", message });
        await event("build.failed", `service/${name}`, { release: id, message }, opts.actor);
        throw err;
      }
    }
    if (!existing) {
      await store.putRelease({ id, project, service: name, sourceHash, configHash: cfgHash, gitCommit: options.skipBuilds ? undefined : await gitCommit(dir), createdAt: new Date().toISOString(), details });
      await event("release.created", `service/${name}`, { release: id, sourceHash, configHash: cfgHash }, opts.actor);
    }
    return id;
  }

  async function apply(
    loaded: LoadedManifest,
    opts: { actor: string; rebuild?: boolean; onProgress?: (p: ApplyProgress) => void; waitReady?: boolean },
  ): Promise<ApplyResult> {
    const onProgress = opts.onProgress ?? (() => {});
    const { manifest } = loaded;
    if (manifest.project !== project) {
      throw new KeelsonError("KEELSON_ERR_CONFLICT", `this control plane runs project "${project}", the manifest names "${manifest.project}"; run \`keelson down\` first to switch projects`);
    }
    const stored = await store.listServices(project);
    const storedByName = new Map(stored.map((s) => [s.name, s]));
    const failures: ServiceFailure[] = [];

    // Build what changed, two at a time; a failed build keeps the service's current release.
    const names = Object.keys(manifest.services).sort();
    const releases = new Map<string, string | undefined>();
    await pool(names, options.buildConcurrency ?? 2, async (name) => {
      const spec = manifest.services[name] as ServiceSpec;
      try {
        releases.set(name, await ensureRelease(loaded, name, spec, storedByName.get(name), { rebuild: opts.rebuild ?? false, actor: opts.actor, onProgress }));
      } catch (err) {
        releases.set(name, storedByName.get(name)?.release);
        failures.push(failure(name, err));
      }
    });

    const plan = computePlan({ manifest, stored, candidateReleases: new Map([...releases].filter((e): e is [string, string] => e[1] !== undefined)) });
    onProgress({ type: "plan", plan });

    // The whole desired-state change in one transaction.
    const events: EventInput[] = plan.changes.map((c) => ({
      project,
      kind: c.action === "create" ? "service.created" : c.action === "change" ? "service.changed" : "service.removed",
      actor: opts.actor,
      subject: `service/${c.service}`,
      details: { fields: c.fields.map((f) => f.path), ...(c.sourcesChanged ? { release: releases.get(c.service) } : {}) },
    }));
    events.push({ project, kind: "manifest.applied", actor: opts.actor, subject: `project/${project}`, details: { hash: loaded.hash, file: loaded.file, changes: plan.changes.length } });
    await serial(async () => {
      await store.applyDesiredState({
        project: { name: project, manifestPath: loaded.file, manifestHash: loaded.hash, appliedAt: new Date().toISOString() },
        upsert: names.map((name) => ({ project, name, spec: toPlain(manifest.services[name] as ServiceSpec), release: releases.get(name) })),
        remove: plan.changes.filter((c) => c.action === "remove").map((c) => c.service),
        events,
      });
      await store.setSetting(RUNNING_KEY(project), "true");
    });
    for (const c of plan.changes) if (c.action === "remove") onProgress({ type: "service", service: c.service, status: "removed" });

    failedStarts.clear();
    await serial(convergeStep);
    if (opts.waitReady !== false) {
      const pending = names.filter((n) => !failures.some((f) => f.service === n) && releases.get(n) !== undefined);
      failures.push(...(await waitForRollout(pending, storedByName, onProgress)));
    }
    notify();
    return { plan, failures };
  }

  /**
   * Waits until each service runs only its target release with every replica ready.
   * A service whose new replicas crash-loop or miss their start timeout fails; if an
   * older release was serving, the service goes back to it (automatic rollback).
   */
  async function waitForRollout(
    services: string[],
    previous: Map<string, ServiceRecord>,
    onProgress: (p: ApplyProgress) => void,
  ): Promise<ServiceFailure[]> {
    const failures: ServiceFailure[] = [];
    const open = new Set(services);
    const reportedReady = new Set<string>();
    const started = Date.now();
    while (open.size > 0) {
      // One read of the store and the driver per round, whatever the number of services.
      const records = new Map((await store.listServices(project)).map((r) => [r.name, r]));
      const byService = new Map<string, ReplicaInfo[]>();
      for (const r of driver.list()) {
        if (r.spec.project !== project) continue;
        const list = byService.get(r.spec.service);
        if (list) list.push(r);
        else byService.set(r.spec.service, [r]);
      }
      for (const name of [...open]) {
        const record = records.get(name);
        if (!record?.release) {
          open.delete(name);
          continue;
        }
        const spec = record.spec as unknown as ServiceSpec;
        const mine = byService.get(name) ?? [];
        const target = mine.filter((r) => r.spec.release === record.release);
        for (const r of target) {
          if (r.state === "ready" && !reportedReady.has(r.spec.id)) {
            reportedReady.add(r.spec.id);
            onProgress({ type: "replica", service: name, replica: r.spec.id, status: "ready" });
          }
        }
        const startErr = failedStarts.get(name);
        const crashLooping = target.find((r) => !r.everReady && r.exitsSinceReady >= 3);
        const tooSlow = Date.now() - started > spec.startTimeout && target.some((r) => r.state !== "ready");
        if (startErr || crashLooping || tooSlow) {
          open.delete(name);
          const why = startErr
            ? startErr.message
            : crashLooping
              ? `replica ${crashLooping.spec.id} exited ${crashLooping.exitsSinceReady} times before becoming ready (last exit code ${crashLooping.lastExit?.code ?? "?"}${crashLooping.lastExit?.signal ? `, signal ${crashLooping.lastExit.signal}` : ""})`
              : `not ready within ${Math.round(spec.startTimeout / 1000)} s (services.${name}.startTimeout)`;
          const sample = crashLooping ?? target.find((r) => r.state !== "ready");
          const lines = sample ? await lastLogLines(sample.spec.logDir, sample.spec.id, 10).catch(() => []) : [];
          const message = `services.${name}: ${why}${lines.length ? `\n  last log lines of ${sample?.spec.id}:\n${lines.map((l) => `    ${typeof l === "string" ? l : l.line}`).join("\n")}` : ""}`;
          const prev = previous.get(name)?.release;
          if (prev && prev !== record.release && !startErr) {
            await serial(async () => {
              await store.setServiceRelease(project, name, prev, { project, kind: "service.changed", actor: "reconciler", subject: `service/${name}`, details: { rolledBackFrom: record.release, rolledBackTo: prev, reason: why } });
              await convergeStep();
            });
            onProgress({ type: "service", service: name, status: "rolled-back", message: `${message}\n  kept release ${prev}` });
          } else {
            onProgress({ type: "service", service: name, status: "failed", message });
          }
          failures.push({ service: name, code: startErr instanceof KeelsonError ? startErr.code : "KEELSON_ERR_START_FAILED", message });
          continue;
        }
        const converged = target.length === spec.replicas && target.every((r) => r.state === "ready") && mine.length === target.length;
        if (converged) {
          open.delete(name);
          onProgress({ type: "service", service: name, status: "ready" });
        }
      }
      if (open.size > 0) {
        await waitForDriverEvent(250);
        await serial(convergeStep);
      }
    }
    return failures;
  }

  function waitForDriverEvent(maxMs: number): Promise<void> {
    return new Promise((resolveWait) => {
      const done = () => {
        clearTimeout(t);
        off();
        resolveWait();
      };
      const t = setTimeout(done, maxMs);
      const off = driver.onEvent(() => setImmediate(done));
    });
  }

  async function resume(): Promise<{ adopted: string[]; lost: string[] }> {
    const adopted: string[] = [];
    const lost: string[] = [];
    const records = await store.listReplicas(project);
    if (records.length === 0) return { adopted, lost };
    const dir = await manifestDir();
    for (const rec of records) {
      const service = await store.getService(project, rec.service);
      const release = await store.getRelease(rec.release);
      let info: ReplicaInfo | undefined;
      if (service && release && rec.pid !== undefined) {
        const spec = replicaSpec({ dir, spec: service.spec as unknown as ServiceSpec, release, index: rec.index, port: rec.port });
        try {
          info = await driver.adopt(spec, { pid: rec.pid, pidStartTime: rec.pidStartTime, restarts: rec.restarts, startedAt: rec.startedAt });
        } catch (err) {
          log.warn({ err, replica: rec.id }, "could not adopt replica");
        }
      }
      if (info) {
        adopted.push(rec.id);
        if (rec.port) reservedPorts.add(rec.port);
        await store.upsertReplica(toRecord(info));
      } else {
        lost.push(rec.id);
        await store.deleteReplica(rec.id);
        await event("replica.stopped", `replica/${rec.id}`, { service: rec.service, reason: "gone while the control plane was down" });
      }
    }
    notify();
    return { adopted, lost };
  }

  async function requireService(name: string): Promise<ServiceRecord> {
    const s = await store.getService(project, name);
    if (!s) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `service "${name}" does not exist in project "${project}"`);
    return s;
  }

  return {
    get running() {
      return running;
    },
    resume: () => serial(resume),
    async plan(loaded) {
      return planManifest(loaded, await store.listServices(project), { hashSources: !options.skipBuilds });
    },
    apply,
    converge: () => serial(convergeStep),
    async scale(service, replicas, actor) {
      if (!Number.isInteger(replicas) || replicas < 0 || replicas > 100) {
        throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `replicas: expected an integer 0-100, got ${String(replicas)}`);
      }
      const s = await requireService(service);
      const from = (s.spec as { replicas?: number }).replicas;
      await serial(async () => {
        await store.setServiceReplicas(project, service, replicas, { project, kind: "service.scaled", actor, subject: `service/${service}`, details: { from, to: replicas } });
        await convergeStep();
      });
    },
    async restart(service, actor) {
      await requireService(service);
      const ids = driver.list().filter((r) => r.spec.project === project && r.spec.service === service).map((r) => r.spec.id);
      // One at a time, so the service keeps serving while it restarts.
      for (const id of ids) {
        await event("replica.restarting", `replica/${id}`, { service, reason: "restart requested" }, actor);
        await driver.restart(id);
        await waitFor(() => driver.get(id)?.state === "ready", 30_000);
      }
    },
    async down(actor) {
      await serial(async () => {
        await store.setSetting(RUNNING_KEY(project), "false");
        await event("project.stopped", `project/${project}`, { reason: "down" }, actor);
        await Promise.all(driver.list().filter((r) => r.spec.project === project).map((r) => driver.stop(r.spec.id)));
      });
      notify();
    },
    start() {
      if (running) return;
      running = true;
      timer = setInterval(scheduleConverge, intervalMs);
      timer.unref();
    },
    async stop() {
      running = false;
      if (timer) clearInterval(timer);
      unsubscribe();
      await queue;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/**
 * The plan for a manifest against stored services, with each service's candidate
 * release computed from its current sources (so a source change shows as a change).
 */
export async function planManifest(loaded: LoadedManifest, stored: ServiceRecord[], options: { hashSources?: boolean } = {}): Promise<Plan> {
  const candidates = new Map<string, string>();
  if (options.hashSources !== false) {
    await pool(Object.keys(loaded.manifest.services), 4, async (name) => {
      const spec = loaded.manifest.services[name] as ServiceSpec;
      try {
        candidates.set(name, releaseId(await hashServiceSource(resolve(loaded.dir, spec.path)), configHash(spec)));
      } catch {
        // a missing folder is reported by manifest validation
      }
    });
  }
  return computePlan({ manifest: loaded.manifest, stored, candidateReleases: candidates });
}

function failure(service: string, err: unknown): ServiceFailure {
  if (err instanceof KeelsonError) return { service, code: err.code, message: err.message };
  return { service, code: "KEELSON_ERR_INTERNAL", message: err instanceof Error ? err.message : String(err) };
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new KeelsonError("KEELSON_ERR_START_FAILED", `replica not ready within ${timeoutMs / 1000} s after restart`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === "object" ? resolvePort(addr.port) : reject(new Error("no port"))));
    });
  });
}
