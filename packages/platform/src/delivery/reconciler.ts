// The reconciler: converges what runs (through a RuntimeDriver) to the desired state in
// the store. `apply` takes a new manifest in (plan, build, store, roll out, wait for ready);
// a background loop keeps converging afterwards (scale, crashed starts, removed services).
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { KeelsonError, REPLICA_ENV, type EventKind } from "@keelson/protocol";
import { saveTeams } from "../catalog/index.js";
import { readFlagState, type DeclaredFlagsResult, type FlagState } from "../flags/index.js";
import type { LoadedManifest, ProbeSpec, ServiceSpec } from "../manifest/index.js";
import { lastLogLines, type LogLine, type ReplicaEvent, type ReplicaInfo, type ReplicaSpec, type RuntimeDriver } from "../runtime/index.js";
import type { EventInput, ReleaseRecord, ReplicaRecord, ServiceRecord, Store } from "../store/index.js";
import { computePlan, toPlain, withOwnedReplicas, type Plan } from "./plan.js";
import { createPipelineRunner, type PipelineOutcome, type PipelineProgress, type PipelineRunner, type PipelineSource, type ScanHook } from "./pipeline.js";
import { configHash, releaseConfig, releaseId } from "./release-id.js";
import { candidateRelease } from "./workspace.js";
import { planReplicaSteps, replicaId, rollingLimits, type ServiceTarget } from "./replica-plan.js";
import type { AnalysisEvidence } from "./analysis.js";
import { createRolloutController, isActive, waitsForGroup, type AnalysisProvider, type RolloutController, type RolloutState } from "./rollout.js";

/** The logging surface the reconciler needs (pino's shape). */
export interface Log {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silent: Log = { info() {}, warn() {}, error() {} };

export type ApplyProgress =
  | { type: "plan"; plan: Plan }
  | PipelineProgress
  | { type: "replica"; service: string; replica: string; status: "starting" | "ready" | "stopped" | "exited"; message?: string }
  | { type: "rollout"; service: string; rollout: string; strategy: string; phase: string; from?: string; to: string; weight: number; ready: number; replicas: number; message?: string }
  | { type: "service"; service: string; status: "ready" | "failed" | "removed" | "rolled-back"; message?: string }
  /** The manifest's flags were set (sent by the control plane's apply after the services). */
  | ({ type: "flags" } & DeclaredFlagsResult);

export interface DeployOptions {
  actor: string;
  /** Build from this commit (default: the working tree). */
  commit?: string;
  rebuild?: boolean;
  trigger?: string;
  onProgress?: (p: ApplyProgress) => void;
  /** Wait until traffic is on the new release (or the rollout failed). Default true. */
  wait?: boolean;
}

export interface ReleaseView {
  id: string;
  /** live: serving; previous: where a rollback goes; warm: replicas still running; failed: its rollout failed. */
  status: "live" | "previous" | "warm" | "failed" | "available";
  createdAt: string;
  commit: string | undefined;
  commitTime: string | undefined;
  pipelineRun: string | undefined;
  deployedBy: string | undefined;
  deployedAt: string | undefined;
  replicas: number;
  artifact: { hash: string; files: number; bytes: number; dependencies: string } | undefined;
}

export interface DeployResult {
  service: string;
  release: string;
  previous: string | undefined;
  run: string | undefined;
  /** "unchanged" when the service already runs that release. */
  outcome: "deployed" | "unchanged" | "started" | "rolled-back" | "failed";
  rollout?: RolloutState;
  message?: string;
}

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
  /** Injected into replicas as KEELSON_FLAGS_URL (where the SDK's flag provider reads flags). */
  flagsUrl?: string;
  log?: Log;
  /** How often the background loop converges; driver events trigger it sooner. */
  convergeIntervalMs?: number;
  buildConcurrency?: number;
  /** Skip pipelines and source hashing (benchmarks with a fake driver). */
  skipBuilds?: boolean;
  /** The security scanners' hook into every pipeline. */
  scan?: ScanHook;
  /**
   * A digest of the service's secrets (throws when a secret the service declares is not set):
   * baked into each release's config as KEELSON_SECRETS_VERSION, so changing a secret makes a new
   * release that rolls out like code.
   */
  secretsVersion?: (service: string, declared: readonly string[]) => Promise<string | undefined>;
  /** Environment each replica gets at start besides its release's config: secret values, identity files. */
  replicaEnv?: (service: string) => Promise<Record<string, string>>;
  /**
   * The control plane's own certificate (cert.pem, key.pem, ca.pem in `dir`): probes of replicas
   * of a `tls: true` service present it. Without it, or when replicaEnv gives no
   * KEELSON_TLS_DIR (mTLS off), such replicas are started serving plain HTTP, with a warning.
   */
  probeTls?: { dir: string };
  /** Canary analysis. */
  analysis?: AnalysisProvider;
}

export interface Reconciler {
  /** Re-adopts replicas recorded in the store (after a control-plane restart). */
  resume(): Promise<{ adopted: string[]; lost: string[] }>;
  /** Computes the plan for a manifest against the stored state, without changing anything. */
  plan(loaded: LoadedManifest): Promise<Plan>;
  apply(loaded: LoadedManifest, options: { actor: string; rebuild?: boolean; onProgress?: (p: ApplyProgress) => void; waitReady?: boolean }): Promise<ApplyResult>;
  /** One converge step now. */
  converge(): Promise<void>;
  /** Sets a replica count. Refused for an autoscaled service unless the autoscaler asks (`autoscaler: true`). */
  scale(service: string, replicas: number, actor: string, options?: { autoscaler?: boolean }): Promise<void>;
  /** Runs one service's pipeline and rolls the release out with the service's strategy. */
  deploy(service: string, options: DeployOptions): Promise<DeployResult>;
  /** Deploys several services as one release group: built first, live together, rolled back together. */
  deployTogether(services: string[], options: DeployOptions): Promise<DeployResult[]>;
  /** Goes back to the previous release (or `to`); instant when the old set is still warm. */
  rollback(service: string, options: { actor: string; to?: string; wait?: boolean; onProgress?: (p: ApplyProgress) => void }): Promise<DeployResult>;
  /** Ends a manual canary pause, or with `full` skips the remaining steps. */
  promote(service: string, actor: string, options?: { full?: boolean }): Promise<RolloutState>;
  /** Stops the service's rollout under way and rolls back to the release before it. */
  abort(service: string, actor: string): Promise<RolloutState>;
  rolloutOf(service: string): Promise<RolloutState | undefined>;
  /** The service's releases, newest first, with what each is now and who deployed it. */
  releases(service: string): Promise<ReleaseView[]>;
  /** Replicas taken out of the routing table before they stop. */
  isDraining(replicaId: string): boolean;
  readonly pipelines: PipelineRunner;
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
  const pipelines = createPipelineRunner({ store, project, stateDir, concurrency: options.buildConcurrency ?? 2, ...(options.scan ? { scan: options.scan } : {}) });
  const rollouts: RolloutController = createRolloutController({ store, project, ...(options.analysis ? { analysis: options.analysis } : {}), wake: () => scheduleConverge(), log });
  /** Replicas out of the routing table, waiting for requests in flight before they stop. */
  const draining = new Set<string>();
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
      if (e.type === "ready" || e.type === "stopped" || e.type === "exited") scheduleConverge();
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
      "memory-exceeded": "replica.memory-exceeded",
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
      ...(e.type === "memory-exceeded" && info.usage ? { memoryBytes: info.usage.memoryBytes, limitBytes: info.usage.memoryLimitBytes } : {}),
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

  /**
   * The replica spec comes from the release (what was built, and the config it runs with)
   * and the service (how to run it): its folder is the release's artifact when it has one.
   */
  async function replicaSpec(input: { dir: string; spec: ServiceSpec; release: ReleaseRecord; index: number; port: number }): Promise<ReplicaSpec> {
    const { dir, spec, release, index, port } = input;
    const config = (release.details.config ?? releaseConfig(spec)) as { path: string; start: string; env: Record<string, string>; tls?: boolean };
    const artifact = await pipelines.artifactOf(release);
    const id = replicaId(release.service, release.id, index);
    const injected = (await options.replicaEnv?.(release.service)) ?? {};
    // TLS is part of the release (toggling it rolls out a new one), and needs both the replica's
    // certificate and the control plane's own for the probes.
    const serveTls = config.tls === true && injected[REPLICA_ENV.TLS_DIR] !== undefined && options.probeTls !== undefined;
    if (config.tls === true && !serveTls) {
      log.warn({ service: release.service, replica: id }, "tls: true but no certificates to serve with (security.mtls is off); the replica serves plain HTTP");
    }
    return {
      id,
      project,
      service: release.service,
      release: release.id,
      index,
      cwd: artifact?.cwd ?? resolve(dir, config.path),
      command: config.start,
      env: {
        ...config.env,
        ...injected,
        [REPLICA_ENV.SERVICE]: release.service,
        [REPLICA_ENV.REPLICA]: id,
        [REPLICA_ENV.RELEASE]: release.id,
        [REPLICA_ENV.PROJECT]: project,
        [REPLICA_ENV.GATEWAY_URL]: gatewayUrl,
        ...(options.otlpEndpoint ? { [REPLICA_ENV.OTLP_ENDPOINT]: options.otlpEndpoint } : {}),
        ...(options.flagsUrl ? { [REPLICA_ENV.FLAGS_URL]: options.flagsUrl } : {}),
        [REPLICA_ENV.DATA_DIR]: join(stateDir, "data", release.service),
        ...(serveTls ? { [REPLICA_ENV.TLS_SERVE]: "1" } : {}),
      },
      port,
      readiness: probe(spec.readiness),
      liveness: probe(spec.liveness),
      ...(serveTls && options.probeTls !== undefined ? { tls: { clientDir: options.probeTls.dir } } : {}),
      stopTimeoutMs: spec.stopTimeout,
      startTimeoutMs: spec.startTimeout,
      logDir: join(stateDir, "logs", release.service),
      memoryLimitBytes: spec.resources?.memory,
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

  /** Takes a replica out of the routing table, waits for requests in flight, then stops it. */
  function drainAndStop(id: string, drainMs: number): void {
    if (draining.has(id)) return;
    draining.add(id);
    notify();
    const stopNow = async () => {
      try {
        await driver.stop(id);
      } catch (err) {
        log.error({ err, replica: id }, "could not stop replica");
      } finally {
        draining.delete(id);
        scheduleConverge();
      }
    };
    if (drainMs <= 0) void stopNow();
    else setTimeout(() => void stopNow(), drainMs);
  }

  /** One idempotent converge step: advance rollouts, start what is missing, drain and stop what is extra or replaced. */
  async function convergeStep(): Promise<void> {
    const up = await isRunning();
    let services = up ? await store.listServices(project) : [];
    const mine = driver.list().filter((r) => r.spec.project === project);
    let rolloutMoved = false;
    if (services.some((s) => s.release !== undefined)) {
      // Rollouts go first: they decide which releases each service runs (and may roll one back).
      for (const record of services) {
        if (!record.release) continue;
        try {
          const startError = failedStarts.get(record.name);
          const before = (await rollouts.get(record.name))?.updatedAt;
          const state = await rollouts.tick(record, { replicas: mine.filter((r) => r.spec.service === record.name), ...(startError ? { startError } : {}) });
          if (startError && state && !isActive(state)) failedStarts.delete(record.name);
          // A rollout step may have moved traffic: the routing table follows at once.
          if (state && state.updatedAt !== before) rolloutMoved = true;
        } catch (err) {
          log.error({ err, service: record.name }, "rollout step failed");
        }
      }
      // A rollout step may have pointed a service at another release.
      if (rolloutMoved) services = await store.listServices(project);
    }
    const targets: ServiceTarget[] = [];
    const specs = new Map<string, { record: ServiceRecord; spec: ServiceSpec }>();
    for (const record of services) {
      if (!record.release) continue;
      const spec = record.spec as unknown as ServiceSpec;
      specs.set(record.name, { record, spec });
      const t = await rollouts.target(record);
      const fixedPorts = spec.port !== undefined;
      const limits = rollingLimits(spec.replicas, spec.deploy?.maxSurge, spec.deploy?.maxUnavailable);
      targets.push({
        service: record.name,
        release: t.release,
        replicas: t.replicas,
        fixedPorts,
        ...(fixedPorts ? { maxSurge: 0, maxUnavailable: Math.max(1, limits.maxUnavailable) } : limits),
        keep: t.keep,
      });
    }
    const steps = planReplicaSteps(
      targets,
      mine.map((r) => ({ id: r.spec.id, service: r.spec.service, release: r.spec.release, index: r.spec.index, state: draining.has(r.spec.id) ? "stopping" : r.state })),
    );
    if (steps.start.length === 0 && steps.stop.length === 0) {
      if (rolloutMoved) notify();
      return;
    }
    const dir = steps.start.length > 0 ? await manifestDir() : "";
    for (const id of steps.stop) {
      const info = driver.get(id);
      const spec = info ? specs.get(info.spec.service)?.spec : undefined;
      // Ready replicas drain first; one that never served (or a stopped project) stops at once.
      drainAndStop(id, up && info?.state === "ready" ? (spec?.deploy?.drain ?? 1000) : 0);
    }
    await Promise.all(
      steps.start.map(async (s) => {
        const entry = specs.get(s.service);
        if (!entry) return;
        const release = await store.getRelease(s.release);
        if (!release) {
          log.error({ service: s.service, release: s.release }, "release not found in store");
          return;
        }
        let port: number | undefined;
        try {
          await pipelines.verify(release);
          port = await allocatePort(entry.spec, s.index);
          const spec = await replicaSpec({ dir, spec: entry.spec, release, index: s.index, port });
          await mkdir(spec.logDir, { recursive: true });
          await mkdir(spec.env[REPLICA_ENV.DATA_DIR] as string, { recursive: true });
          const info = await driver.start(spec);
          await store.upsertReplica(toRecord(info));
        } catch (err) {
          if (port !== undefined) reservedPorts.delete(port);
          failedStarts.set(s.service, err instanceof Error ? err : new Error(String(err)));
          log.error({ err, service: s.service, release: s.release }, "could not start replica");
        }
      }),
    );
    notify();
  }

  /** Errors from starting replicas, by service, so rollouts and apply can report them. */
  const failedStarts = new Map<string, Error>();

  function scheduleConverge(): void {
    if (convergeQueued || !running) return;
    convergeQueued = true;
    setImmediate(() => {
      convergeQueued = false;
      void serial(convergeStep).catch((err: unknown) => log.error({ err }, "converge failed"));
    });
  }

  /** The spec a release is built from: with the digest of the service's secrets in its env. */
  async function withSecretsVersion(name: string, spec: ServiceSpec): Promise<ServiceSpec> {
    const version = await options.secretsVersion?.(name, spec.secrets ?? []);
    return version === undefined ? spec : { ...spec, env: { ...spec.env, KEELSON_SECRETS_VERSION: version } };
  }

  /** The release for a service's current sources: its pipeline runs when it is new. */
  async function ensureRelease(
    loaded: LoadedManifest,
    name: string,
    spec: ServiceSpec,
    opts: { rebuild: boolean; actor: string; onProgress: (p: ApplyProgress) => void },
  ): Promise<string> {
    spec = await withSecretsVersion(name, spec);
    if (options.skipBuilds) {
      const id = releaseId("none", configHash(spec));
      if (!(await store.getRelease(id))) {
        await store.putRelease({ id, project, service: name, sourceHash: "none", configHash: configHash(spec), gitCommit: undefined, createdAt: new Date().toISOString(), details: { config: releaseConfig(spec) } });
        await event("release.created", `service/${name}`, { release: id, pipeline: "skipped" }, opts.actor);
      }
      return id;
    }
    const outcome = await pipelines.ensureRelease({ service: name, spec, manifestDir: loaded.dir, source: { kind: "worktree" }, actor: opts.actor, trigger: "up", rebuild: opts.rebuild, onProgress: opts.onProgress });
    return outcome.release.id;
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

    // Pipelines of what changed, two at a time; a failed one keeps the service's current release.
    const names = Object.keys(manifest.services).sort();
    const releases = new Map<string, string | undefined>();
    const busy = new Set<string>();
    await pool(names, options.buildConcurrency ?? 2, async (name) => {
      const spec = manifest.services[name] as ServiceSpec;
      try {
        const current = await rollouts.get(name);
        if (isActive(current) && storedByName.has(name)) {
          busy.add(name);
          throw new KeelsonError("KEELSON_ERR_CONFLICT", `${name} is being deployed (rollout ${current?.id}, ${current?.phase}); its release is left as it is`);
        }
        releases.set(name, await ensureRelease(loaded, name, spec, { rebuild: opts.rebuild ?? false, actor: opts.actor, onProgress }));
      } catch (err) {
        releases.set(name, storedByName.get(name)?.release);
        failures.push(failure(name, err));
      }
    });

    const plan = computePlan({ manifest, stored, candidateReleases: new Map([...releases].filter((e): e is [string, string] => e[1] !== undefined)) });
    onProgress({ type: "plan", plan });

    // The whole desired-state change in one transaction; new releases roll out right after.
    const events: EventInput[] = plan.changes.map((c) => ({
      project,
      kind: c.action === "create" ? "service.created" : c.action === "change" ? "service.changed" : "service.removed",
      actor: opts.actor,
      subject: `service/${c.service}`,
      details: { fields: c.fields.map((f) => f.path), ...(c.sourcesChanged ? { release: releases.get(c.service) } : {}) },
    }));
    events.push({ project, kind: "manifest.applied", actor: opts.actor, subject: `project/${project}`, details: { hash: loaded.hash, file: loaded.file, changes: plan.changes.length } });
    const rolloutIds = new Map<string, string>();
    await serial(async () => {
      // Read again: the autoscaler may have changed a replica count while pipelines ran.
      const latest = new Map((await store.listServices(project)).map((s) => [s.name, s]));
      await store.applyDesiredState({
        project: { name: project, manifestPath: loaded.file, manifestHash: loaded.hash, appliedAt: new Date().toISOString() },
        upsert: names.map((name) => ({ project, name, spec: toPlain(withOwnedReplicas(manifest.services[name] as ServiceSpec, latest.get(name))), release: storedByName.get(name)?.release ?? undefined })),
        remove: plan.changes.filter((c) => c.action === "remove").map((c) => c.service),
        events,
      });
      await store.setSetting(RUNNING_KEY(project), "true");
      await saveTeams(store, project, manifest, new Date().toISOString());
      for (const name of names) {
        const to = releases.get(name);
        const record = await store.getService(project, name);
        if (!record || to === undefined || busy.has(name) || record.release === to) continue;
        const state = await rollouts.begin({ record, to, actor: opts.actor });
        rolloutIds.set(name, state.id);
      }
    });
    for (const c of plan.changes) if (c.action === "remove") onProgress({ type: "service", service: c.service, status: "removed" });

    failedStarts.clear();
    await serial(convergeStep);
    if (opts.waitReady !== false) {
      const pending = names.filter((n) => !failures.some((f) => f.service === n) && releases.get(n) !== undefined);
      failures.push(...(await waitForServices(pending, rolloutIds, onProgress)));
      for (const name of rolloutIds.keys()) await collectReleases(name, opts.actor);
    }
    notify();
    return { plan, failures };
  }

  /** Deletes releases beyond the service's retention, never the live, previous or running ones. */
  async function collectReleases(service: string, actor: string): Promise<void> {
    try {
      const record = await store.getService(project, service);
      if (!record) return;
      const spec = record.spec as unknown as ServiceSpec;
      const keep = new Set<string>();
      if (record.release) keep.add(record.release);
      const prev = await previousRelease(service, record.release);
      if (prev) keep.add(prev);
      const state = await rollouts.get(service);
      if (state?.from) keep.add(state.from);
      for (const r of driver.list()) if (r.spec.project === project && r.spec.service === service) keep.add(r.spec.release);
      await pipelines.collect(service, spec.pipeline?.retainReleases ?? 10, keep, actor);
    } catch (err) {
      log.warn({ err, service }, "could not collect old releases");
    }
  }

  /**
   * The release a rollback goes to: where the current rollout came from, else the last
   * release that served before the current one.
   */
  async function previousRelease(service: string, current: string | undefined): Promise<string | undefined> {
    const state = await rollouts.get(service);
    if (state && state.to === current && state.from && state.from !== current && (await store.getRelease(state.from))) return state.from;
    const done = await store.listEvents({ project, subject: `service/${service}`, kinds: ["rollout.succeeded", "rollback.succeeded"], descending: true, limit: 100 });
    for (const e of done) {
      for (const candidate of [e.details.to, e.details.from]) {
        if (typeof candidate === "string" && candidate !== current && (await store.getRelease(candidate))) return candidate;
      }
    }
    return undefined;
  }

  /**
   * Waits until each service serves its target release: a service with a rollout until the
   * rollout puts all traffic on the new release (or fails and rolls back); any other until
   * every replica is ready. A paused canary ends the wait with a note.
   */
  async function waitForServices(services: string[], rolloutIds: Map<string, string>, onProgress: (p: ApplyProgress) => void): Promise<ServiceFailure[]> {
    const failures: ServiceFailure[] = [];
    const open = new Set(services);
    const reportedReady = new Set<string>();
    const lastReport = new Map<string, string>();
    const started = Date.now();
    while (open.size > 0) {
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
        const rolloutId = rolloutIds.get(name);
        const state = rolloutId ? await rollouts.get(name) : undefined;
        if (state && state.id === rolloutId) {
          const ready = mine.filter((r) => r.spec.release === state.to && r.state === "ready").length;
          // Each look of a canary analysis is progress too: the numbers so far.
          const looking = state.analysis?.run.evidence;
          const report = `${state.phase}/${state.weight}/${ready}/${state.analysis?.step ?? "-"}/${looking?.looks ?? 0}`;
          if (lastReport.get(name) !== report) {
            lastReport.set(name, report);
            const message = looking && state.analysis ? analysisProgress(state.analysis.step, looking) : state.message;
            onProgress({ type: "rollout", service: name, rollout: state.id, strategy: state.strategy, phase: state.phase, ...(state.from ? { from: state.from } : {}), to: state.to, weight: state.weight, ready, replicas: spec.replicas, ...(message ? { message } : {}) });
          }
          const serving = state.phase === "succeeded" || state.phase === "switched" || (state.phase === "finishing" && (state.strategy === "canary" || state.strategy === "rollback"));
          // At its release group's gate (or, with a fixed port, before it: such a member starts only
          // once the others are at theirs), behind a member that waits for a person.
          const behind = state.phase === "progressing" && waitsForGroup(state) ? await pausedMember(state) : undefined;
          if (serving) {
            open.delete(name);
            onProgress({ type: "service", service: name, status: "ready" });
          } else if (state.phase === "paused") {
            open.delete(name);
            onProgress({ type: "service", service: name, status: "ready", message: `rollout ${state.id} is paused at step ${state.step + 1}; \`keelson promote ${name}\` goes on` });
          } else if (behind !== undefined) {
            // Waiting for its release group behind a member that waits for a person: as long a wait as that pause.
            open.delete(name);
            const paused = behind;
            const where = state.hold === "start" ? `waits for its release group before it starts ${state.to} (a fixed port runs one release at a time), behind ${paused}, which is paused` : `is ready and waits at its release group's gate for ${paused}, which is paused`;
            onProgress({ type: "service", service: name, status: "ready", message: `rollout ${state.id} ${where}; \`keelson promote ${paused}\` goes on` });
          } else if (state.phase === "rolled-back" || state.phase === "failed") {
            open.delete(name);
            const message = await failureMessage(name, state.message ?? "rollout failed", mine.filter((r) => r.spec.release === state.to), { id: state.to, count: spec.replicas });
            const code = /artifact/.test(state.message ?? "") ? "KEELSON_ERR_ARTIFACT_INVALID" : "KEELSON_ERR_ROLLOUT_FAILED";
            if (state.phase === "rolled-back") onProgress({ type: "service", service: name, status: "rolled-back", message: `${message}\n  kept release ${state.from}` });
            else onProgress({ type: "service", service: name, status: "failed", message });
            failures.push({ service: name, code, message });
          }
          continue;
        }
        // No rollout: a scale or config-free change, or a service that was already there.
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
          const message = await failureMessage(name, why, target);
          onProgress({ type: "service", service: name, status: "failed", message });
          failures.push({ service: name, code: startErr instanceof KeelsonError ? startErr.code : "KEELSON_ERR_START_FAILED", message });
          continue;
        }
        // A blue-green set kept warm for rollback is expected beside the live one.
        const warm = (await rollouts.get(name))?.phase === "switched";
        const converged = target.length === spec.replicas && target.every((r) => r.state === "ready") && (warm || mine.filter((r) => !draining.has(r.spec.id) && r.state !== "stopping").length === target.length);
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

  /** A member of the rollout's release group that waits for a person (paused), if any. */
  async function pausedMember(state: RolloutState): Promise<string | undefined> {
    for (const m of state.group?.members ?? []) {
      if (m === state.service) continue;
      const other = await rollouts.get(m);
      if (other?.group?.id === state.group?.id && other?.phase === "paused") return m;
    }
    return undefined;
  }

  function analysisProgress(step: number, e: AnalysisEvidence): string {
    const pct = (x: number | undefined) => (x === undefined ? "-" : `${(x * 100).toFixed(2)}%`);
    const p99 = (x: number | undefined) => (x === undefined ? "-" : `${Math.round(x * 1000)} ms`);
    return `analysis at step ${step + 1}, ${Math.round(e.elapsedMs / 1000)} s: canary ${pct(e.canary.errorRatio)} errors, p99 ${p99(e.canary.p99)} over ${Math.round(e.canary.requests)} requests; baseline ${pct(e.baseline.errorRatio)}, p99 ${p99(e.baseline.p99)} over ${Math.round(e.baseline.requests)}`;
  }

  /**
   * The failure with the last log lines of the replica that crashed most. Log files outlive their
   * replicas: when a rollback has already stopped them (they are gone from the driver), the lines
   * are read from the release's replica ids.
   */
  async function failureMessage(name: string, why: string, replicas: ReplicaInfo[], release?: { id: string; count: number }): Promise<string> {
    const live = [...replicas].sort((a, b) => Number(a.everReady) - Number(b.everReady) || b.exitsSinceReady - a.exitsSinceReady || Number(a.state === "ready") - Number(b.state === "ready"));
    const ids = [...new Set([...live.map((r) => r.spec.id), ...Array.from({ length: release?.count ?? 0 }, (_, i) => replicaId(name, release!.id, i))])];
    const logDir = live[0]?.spec.logDir ?? join(stateDir, "logs", name);
    let sample: string | undefined;
    let lines: LogLine[] = [];
    for (const id of ids) {
      lines = await lastLogLines(logDir, id, 10).catch(() => []);
      if (lines.length > 0) {
        sample = id;
        break;
      }
    }
    const prefix = why.startsWith(`services.${name}`) ? why : `services.${name}: ${why}`;
    return `${prefix}${lines.length ? `\n  last log lines of ${sample}:\n${lines.map((l) => `    ${l.line}`).join("\n")}` : ""}`;
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

  /**
   * Stops replica processes of this project that nothing supervises after adoption: a control
   * plane killed between starting a replica and recording it leaves one running, unknown to the
   * store, holding its port and writing to the service's data.
   */
  async function reapStrays(): Promise<void> {
    if (driver.reapStrays === undefined) return;
    try {
      const reaped = await driver.reapStrays({ env: REPLICA_ENV.DATA_DIR, prefix: `${join(stateDir, "data")}/` });
      for (const r of reaped) {
        await event("replica.stopped", `replica/${r.replica ?? `pid-${r.pid}`}`, { pid: r.pid, reason: "a replica process no control plane recorded (started just before the last control plane died)" });
      }
    } catch (err) {
      log.warn({ err }, "could not look for unrecorded replica processes");
    }
  }

  async function resume(): Promise<{ adopted: string[]; lost: string[] }> {
    const adopted: string[] = [];
    const lost: string[] = [];
    const records = await store.listReplicas(project);
    if (records.length === 0) {
      await reapStrays();
      return { adopted, lost };
    }
    const dir = await manifestDir();
    for (const rec of records) {
      const service = await store.getService(project, rec.service);
      const release = await store.getRelease(rec.release);
      let info: ReplicaInfo | undefined;
      if (service && release && rec.pid !== undefined) {
        const spec = await replicaSpec({ dir, spec: service.spec as unknown as ServiceSpec, release, index: rec.index, port: rec.port });
        try {
          info = await driver.adopt(spec, { pid: rec.pid, pidStartTime: rec.pidStartTime, restarts: rec.restarts, startedAt: rec.startedAt, ready: rec.state === "ready" });
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
    await reapStrays();
    notify();
    return { adopted, lost };
  }

  async function requireService(name: string): Promise<ServiceRecord> {
    const s = await store.getService(project, name);
    if (!s) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `service "${name}" does not exist in project "${project}"`);
    return s;
  }

  async function deploy(service: string, opts: DeployOptions): Promise<DeployResult> {
    return (await deployTogether([service], opts))[0] as DeployResult;
  }

  /**
   * Runs the services' pipelines, then rolls all the new releases out at once. With several
   * services they form a release group: nothing starts unless every pipeline made a release,
   * they go live together (canaries wait for each other after their steps, blue-green and
   * rolling sets start beside the old ones and switch together; a rolling update with a fixed
   * port starts once the others are at their gate) and they roll back together if any fails.
   */
  async function deployTogether(names: string[], opts: DeployOptions): Promise<DeployResult[]> {
    const onProgress = opts.onProgress ?? (() => {});
    const services = [...new Set(names)];
    const records = await Promise.all(services.map((name) => requireService(name)));
    for (const record of records) {
      const current = await rollouts.get(record.name);
      if (!isActive(current)) continue;
      await event("deploy.refused", `service/${record.name}`, { busy: current?.id, phase: current?.phase, commit: opts.commit }, opts.actor);
      throw new KeelsonError(
        "KEELSON_ERR_CONFLICT",
        `${record.name} is being deployed: rollout ${current?.id} (${current?.strategy} ${current?.from ?? "-"} → ${current?.to}, ${current?.phase}) started by ${current?.actor} at ${current?.startedAt}; wait for it, \`keelson promote ${record.name}\` or \`keelson rollback ${record.name}\``,
      );
    }
    const dir = await manifestDir();
    const built = await Promise.allSettled(
      records.map(async (record) =>
        pipelines.ensureRelease({
          service: record.name,
          spec: await withSecretsVersion(record.name, record.spec as unknown as ServiceSpec),
          manifestDir: dir,
          source: opts.commit ? ({ kind: "commit", commit: opts.commit } satisfies PipelineSource) : { kind: "worktree" },
          actor: opts.actor,
          trigger: opts.trigger ?? "deploy",
          rebuild: opts.rebuild ?? false,
          onProgress,
        }),
      ),
    );
    const broken = built.flatMap((b, i) => (b.status === "rejected" ? [{ service: services[i] as string, err: b.reason as unknown }] : []));
    if (broken.length > 0) {
      const first = broken[0] as { service: string; err: unknown };
      if (services.length === 1) throw first.err;
      const why = broken.map((b) => `${b.service}: ${b.err instanceof Error ? b.err.message : String(b.err)}`).join("; ");
      throw new KeelsonError("KEELSON_ERR_PIPELINE_FAILED", `none of ${services.join(", ")} was deployed: ${why}`);
    }
    const outcomes = built.map((b) => (b as PromiseFulfilledResult<PipelineOutcome>).value);
    const results = new Map<string, DeployResult>();
    const moving: string[] = [];
    records.forEach((record, i) => {
      const outcome = outcomes[i] as PipelineOutcome;
      const to = outcome.release.id;
      if (to === record.release) {
        onProgress({ type: "service", service: record.name, status: "ready", message: `already runs ${to}` });
        results.set(record.name, { service: record.name, release: to, previous: record.release, run: outcome.run, outcome: "unchanged" });
      } else moving.push(record.name);
    });
    const group = moving.length > 1 ? { id: `grp-${randomBytes(4).toString("hex")}`, members: moving } : undefined;
    const states = await serial(async () => {
      const begun = new Map<string, RolloutState>();
      for (const name of moving) {
        const outcome = outcomes[services.indexOf(name)] as PipelineOutcome;
        const fresh = await requireService(name);
        const s = await rollouts.begin({ record: fresh, to: outcome.release.id, actor: opts.actor, ...(outcome.run ? { run: outcome.run } : {}), ...(outcome.release.gitCommit ? { commit: outcome.release.gitCommit } : {}), ...(group ? { group } : {}) });
        failedStarts.delete(name);
        begun.set(name, s);
      }
      await convergeStep();
      return begun;
    });
    notify();
    const previous = new Map(records.map((r) => [r.name, r.release]));
    const runOf = new Map(records.map((r, i) => [r.name, (outcomes[i] as PipelineOutcome).run]));
    if (opts.wait === false) {
      for (const [name, state] of states) results.set(name, { service: name, release: state.to, previous: previous.get(name), run: runOf.get(name), outcome: "started", rollout: state });
    } else if (moving.length > 0) {
      const failures = await waitForServices(moving, new Map([...states].map(([name, st]) => [name, st.id])), onProgress);
      for (const name of moving) {
        await collectReleases(name, opts.actor);
        const final = await rollouts.get(name);
        const failure = failures.find((f) => f.service === name);
        const to = (states.get(name) as RolloutState).to;
        const result: DeployResult = { service: name, release: to, previous: previous.get(name), run: runOf.get(name), outcome: !failure ? "deployed" : final?.phase === "rolled-back" ? "rolled-back" : "failed", ...(final ? { rollout: final } : {}) };
        if (failure) result.message = failure.message;
        results.set(name, result);
      }
    }
    return services.map((name) => results.get(name) as DeployResult);
  }

  async function rollback(service: string, opts: { actor: string; to?: string; wait?: boolean; onProgress?: (p: ApplyProgress) => void }): Promise<DeployResult> {
    const onProgress = opts.onProgress ?? (() => {});
    const record = await requireService(service);
    const spec = record.spec as unknown as ServiceSpec;
    const current = record.release;
    const to = opts.to ?? (await previousRelease(service, current));
    if (to === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `${service} has no previous release to roll back to; \`keelson releases ${service}\` lists them`);
    const release = await store.getRelease(to);
    if (!release || release.service !== service) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `service "${service}" has no release "${to}"; \`keelson releases ${service}\` lists them`);
    if (to === current) throw new KeelsonError("KEELSON_ERR_CONFLICT", `${service} already runs ${to}`);
    await pipelines.verify(release, { force: true });
    const state = await serial(async () => {
      const fresh = await requireService(service);
      const ready = driver.list().filter((r) => r.spec.project === project && r.spec.service === service && r.spec.release === to && r.state === "ready" && !draining.has(r.spec.id)).length;
      const s = await rollouts.rollback({ record: fresh, to, actor: opts.actor, warm: ready >= Math.max(1, spec.replicas) });
      failedStarts.delete(service);
      await convergeStep();
      return s;
    });
    notify();
    if (opts.wait === false) return { service, release: to, previous: current, run: undefined, outcome: "started", rollout: state };
    const failures = await waitForServices([service], new Map([[service, state.id]]), onProgress);
    const final = await rollouts.get(service);
    const result: DeployResult = { service, release: to, previous: current, run: undefined, outcome: failures.length === 0 ? "deployed" : "failed", ...(final ? { rollout: final } : {}) };
    if (failures[0]) result.message = failures[0].message;
    return result;
  }

  return {
    get running() {
      return running;
    },
    pipelines,
    resume: () => serial(resume),
    plan: (loaded) => planFromStore(loaded, store, { hashSources: !options.skipBuilds, releaseSpec: withSecretsVersion }),
    apply,
    deploy,
    deployTogether,
    rollback,
    async promote(service, actor, promoteOptions) {
      await requireService(service);
      const state = await serial(async () => {
        const s = await rollouts.promote(service, actor, promoteOptions);
        // A release group is promoted together: its other paused members go on too.
        for (const m of s.group?.members ?? []) {
          if (m === service) continue;
          const other = await rollouts.get(m);
          if (other?.group?.id === s.group?.id && other?.phase === "paused") await rollouts.promote(m, actor, promoteOptions);
        }
        await convergeStep();
        return s;
      });
      notify();
      return state;
    },
    async abort(service, actor) {
      const record = await requireService(service);
      const state = await serial(async () => {
        const s = await rollouts.abort(record, actor);
        await convergeStep();
        return s;
      });
      notify();
      return state;
    },
    rolloutOf: (service) => rollouts.get(service),
    async releases(service) {
      const record = await requireService(service);
      // A canary's baseline is the old release under another id, not a release of its own.
      const list = (await store.listReleases(project, service)).filter((r) => r.details.baselineOf === undefined);
      const prev = await previousRelease(service, record.release);
      const events = await store.listEvents({ project, subject: `service/${service}`, kinds: ["rollout.started", "rollback.started", "rollout.failed"], descending: true, limit: 1000 });
      const running = driver.list().filter((r) => r.spec.project === project && r.spec.service === service);
      return Promise.all(
        list.map(async (r): Promise<ReleaseView> => {
          const deployed = events.find((e) => e.kind !== "rollout.failed" && e.details.to === r.id);
          const failedAt = events.find((e) => e.kind === "rollout.failed" && e.details.to === r.id);
          const replicas = running.filter((x) => x.spec.release === r.id && x.state === "ready").length;
          const status = r.id === record.release ? "live" : r.id === prev ? "previous" : replicas > 0 ? "warm" : failedAt && (!deployed || failedAt.seq > deployed.seq) ? "failed" : "available";
          const artifact = await pipelines.artifactOf(r);
          const d = r.details;
          return {
            id: r.id,
            status,
            createdAt: r.createdAt,
            commit: r.gitCommit,
            commitTime: typeof d.commitTime === "string" ? d.commitTime : undefined,
            pipelineRun: typeof d.pipelineRun === "string" ? d.pipelineRun : undefined,
            deployedBy: deployed?.actor,
            deployedAt: deployed?.at,
            replicas,
            artifact: artifact ? { hash: artifact.record.hash, files: artifact.record.files, bytes: artifact.record.bytes, dependencies: artifact.record.dependencies.mode } : undefined,
          };
        }),
      );
    },
    isDraining: (id) => draining.has(id),
    converge: () => serial(convergeStep),
    async scale(service, replicas, actor, scaleOptions = {}) {
      const most = scaleOptions.autoscaler ? 1000 : 100;
      if (!Number.isInteger(replicas) || replicas < 0 || replicas > most) {
        throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `replicas: expected an integer 0-${most}, got ${String(replicas)}`);
      }
      const s = await requireService(service);
      const from = (s.spec as { replicas?: number }).replicas;
      const autoscale = (s.spec as unknown as ServiceSpec).autoscale;
      if (autoscale !== undefined && !scaleOptions.autoscaler) {
        throw new KeelsonError(
          "KEELSON_ERR_CONFLICT",
          `${service} is autoscaled (autoscale.min ${autoscale.min}, max ${autoscale.max}), so its replica count belongs to the autoscaler; change the bounds in keelson.yaml and run \`keelson up\`, or remove autoscale to scale by hand`,
        );
      }
      await serial(async () => {
        await store.setServiceReplicas(project, service, replicas, { project, kind: "service.scaled", actor, subject: `service/${service}`, details: { from, to: replicas } });
        await convergeStep();
      });
    },
    async restart(service, actor) {
      const s = await requireService(service);
      // Resources are not part of the release: a restart is how a changed memory limit reaches running replicas.
      const memoryLimitBytes = (s.spec as unknown as ServiceSpec).resources?.memory;
      const ids = driver.list().filter((r) => r.spec.project === project && r.spec.service === service).map((r) => r.spec.id);
      // One at a time, so the service keeps serving while it restarts.
      for (const id of ids) {
        await event("replica.restarting", `replica/${id}`, { service, reason: "restart requested" }, actor);
        const current = driver.get(id)?.spec;
        await driver.restart(id, current === undefined ? undefined : { spec: { ...current, memoryLimitBytes } });
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
export async function planManifest(
  loaded: LoadedManifest,
  stored: ServiceRecord[],
  options: { hashSources?: boolean; flags?: FlagState; releaseSpec?: (name: string, spec: ServiceSpec) => Promise<ServiceSpec> } = {},
): Promise<Plan> {
  const candidates = new Map<string, string>();
  if (options.hashSources !== false) {
    await pool(Object.keys(loaded.manifest.services), 4, async (name) => {
      const spec = loaded.manifest.services[name] as ServiceSpec;
      // undefined: a missing folder, which manifest validation reports
      const id = await candidateRelease(name, options.releaseSpec ? await options.releaseSpec(name, spec).catch(() => spec) : spec, loaded.dir);
      if (id !== undefined) candidates.set(name, id);
    });
  }
  return computePlan({ manifest: loaded.manifest, stored, candidateReleases: candidates, ...(options.flags ? { flags: options.flags } : {}) });
}

/**
 * The plan for a manifest against what `store` holds: the project's services and its flags
 * (the store is only read, so a read-only one will do; no control plane is needed).
 *
 * @example
 * const plan = await planFromStore(loaded, await createSqliteStore({ path, readonly: true }));
 */
export async function planFromStore(
  loaded: LoadedManifest,
  store: Store,
  options: { hashSources?: boolean; releaseSpec?: (name: string, spec: ServiceSpec) => Promise<ServiceSpec> } = {},
): Promise<Plan> {
  const project = loaded.manifest.project;
  const [stored, flags] = await Promise.all([store.listServices(project), readFlagState({ store, project })]);
  return planManifest(loaded, stored, { ...options, flags });
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
