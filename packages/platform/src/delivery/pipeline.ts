// Per-service pipelines: each run gets a clean workspace (the service's files from the
// working tree or a git commit), runs its stages with timeouts and a stored log, caches
// dependency installs by lockfile hash, and packages the result as an immutable artifact.
// A release = that artifact + the runtime config; a config-only change re-uses the artifact.
import { randomBytes } from "node:crypto";
import { appendFile, mkdir, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { dirname, join, posix, relative } from "node:path";
import { KeelsonError, type EventKind } from "@keelson/protocol";
import type { ServiceSpec } from "../manifest/index.js";
import type { ReleaseRecord, Store } from "../store/index.js";
import { hashTree, removeTree, sealTree, verifyArtifact } from "./artifact.js";
import { canonicalJson, sha256 } from "./canonical-json.js";
import { commitInfo, exportTree, hasUncommittedChanges, resolveCommit } from "./git.js";
import { resolveStages, type ResolvedStage } from "./pipeline-stages.js";
import { configHash, releaseConfig, releaseId } from "./release-id.js";
import { runStage } from "./stage-runner.js";
import { copyFolder, exportWorkingTree, findLockfile, hashLayoutSources, installCacheKey, linkDependencies, sourceLayout } from "./workspace.js";

export type PipelineProgress =
  | { type: "pipeline"; service: string; release: string; run?: string; status: "started" | "skipped" | "reused" | "succeeded" | "failed"; durationMs?: number; message?: string }
  | { type: "stage"; service: string; run: string; stage: string; status: "started" | "succeeded" | "failed" | "cached"; durationMs?: number; message?: string }
  | { type: "log"; service: string; run: string; stage: string; line: string };

export type PipelineSource = { kind: "worktree" } | { kind: "commit"; commit: string };

export interface PipelineRequest {
  service: string;
  spec: ServiceSpec;
  /** Folder of the manifest (service paths are relative to it). */
  manifestDir: string;
  source: PipelineSource;
  actor: string;
  /** What started it: "up", "deploy", "watch". */
  trigger: string;
  /** Run the pipeline even when the release exists. */
  rebuild?: boolean;
  onProgress?: (p: PipelineProgress) => void;
}

export interface PipelineOutcome {
  release: ReleaseRecord;
  /** The run that built it; undefined when the release or its artifact already existed. */
  run: string | undefined;
  /** "built": a pipeline ran; "reused": the artifact existed, the config is new; "existing": nothing to do. */
  how: "built" | "reused" | "existing";
}

/** A stored artifact: where it is and what its content hashes to. */
export interface ArtifactRecord {
  key: string;
  /** Relative to the state folder. */
  dir: string;
  /** The service folder inside the artifact ("/"-separated). */
  servicePath: string;
  hash: string;
  files: number;
  bytes: number;
  run: string;
  createdAt: string;
  dependencies: { mode: "installed" | "linked" | "none"; links?: string[]; cacheHit?: boolean };
  /** What the scan stage left for the releases of this artifact (a release that re-uses it gets a copy of the SBOM). */
  scan?: ScanRecord;
}

/** What the scan stage is given. */
export interface ScanInput {
  service: string;
  run: string;
  workspace: string;
  /** The service's folder inside the workspace. */
  serviceDir: string;
  log: (line: string) => void;
  /** The release the run builds. */
  release: string;
  /** The service folder relative to the manifest ("/"-separated). */
  path: string;
  /** Where the sources come from when they are in git: the repository, the service folder in it, the commit. */
  git?: { repoDir: string; servicePath: string; commit?: string };
}

/**
 * Lets the security scanners run as the "scan" stage does (security/createSecurityGate is the
 * built-in one). It may return an SBOM, stored with the release, and findings that did not
 * block; a KEELSON_ERR_SECURITY_GATE error stops the run with no release.
 */
export type ScanHook = (input: ScanInput) => Promise<void | { sbom?: unknown; findings?: unknown[] }>;

/** The findings of a scan counted, as the release details and the security.scanned event keep them. */
export interface ScanSummary {
  total: number;
  blocking: number;
  byKind: Record<string, number>;
  bySeverity: Record<string, number>;
}

/** What a scan leaves on a release: its SBOM (relative to the state folder) and the findings counted. */
export interface ScanRecord {
  sbom?: string;
  findings?: ScanSummary;
}

/** The most findings a security.blocked event carries (the error details have them all). */
const MAX_EVENT_FINDINGS = 100;

/** Counts findings by their `kind` and `severity` fields, whatever scanner made them. */
export function summarizeFindings(findings: readonly unknown[]): ScanSummary {
  const summary: ScanSummary = { total: findings.length, blocking: 0, byKind: {}, bySeverity: {} };
  for (const f of findings) {
    const o = typeof f === "object" && f !== null ? (f as Record<string, unknown>) : {};
    const kind = typeof o.kind === "string" ? o.kind : "other";
    summary.byKind[kind] = (summary.byKind[kind] ?? 0) + 1;
    if (typeof o.severity === "string") summary.bySeverity[o.severity] = (summary.bySeverity[o.severity] ?? 0) + 1;
    if (o.blocking === true) summary.blocking++;
  }
  return summary;
}

export interface PipelineRunnerOptions {
  store: Store;
  project: string;
  stateDir: string;
  /** Runs at once across services (one per service at most). Default 2. */
  concurrency?: number;
  scan?: ScanHook;
}

export interface PipelineRunner {
  /** The release for the service's current sources and config, running the pipeline when needed. */
  ensureRelease(request: PipelineRequest): Promise<PipelineOutcome>;
  /** The run in progress for a service. */
  active(service: string): { run: string; startedAt: string; trigger: string } | undefined;
  /** Where a release's service folder is, when it has an artifact. */
  artifactOf(release: ReleaseRecord): Promise<{ cwd: string; record: ArtifactRecord } | undefined>;
  /** Checks a release's artifact against its hash (once per process unless `force`). */
  verify(release: ReleaseRecord, options?: { force?: boolean }): Promise<void>;
  /** Deletes releases beyond `retain` (never those in `keep`) and artifacts no release uses. */
  collect(service: string, retain: number, keep: ReadonlySet<string>, actor: string): Promise<string[]>;
}

const ARTIFACT_KEY = (project: string, service: string, key: string) => `artifact.${project}.${service}.${key}`;

/** The parts of a spec that decide what a pipeline builds (not how it runs). */
function buildKey(sourceHash: string, spec: ServiceSpec): string {
  return sha256(`${sourceHash}\n${canonicalJson({ path: spec.path, build: spec.build, test: spec.test, stages: spec.pipeline?.stages ?? null, include: spec.pipeline?.include ?? [] })}`).slice(0, 24);
}

function findingsOf(details: unknown): unknown[] {
  const f = typeof details === "object" && details !== null ? (details as { findings?: unknown }).findings : undefined;
  return Array.isArray(f) ? f : [];
}

/** A manifest path as "/"-separated, without "./" or a trailing "/". */
function posixPath(p: string): string {
  const n = posix.normalize(p.replace(/\\/g, "/")).replace(/\/$/, "");
  return n === "" ? "." : n;
}

export function newRunId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `run-${t}-${randomBytes(3).toString("hex")}`;
}

export function createPipelineRunner(options: PipelineRunnerOptions): PipelineRunner {
  const { store, project, stateDir } = options;
  const active = new Map<string, { run: string; startedAt: string; trigger: string }>();
  const verified = new Set<string>();
  let slots = options.concurrency ?? 2;
  const waiting: Array<() => void> = [];

  async function acquire(): Promise<void> {
    if (slots > 0) {
      slots--;
      return;
    }
    await new Promise<void>((r) => waiting.push(r));
  }
  function release(): void {
    const next = waiting.shift();
    if (next) next();
    else slots++;
  }

  async function event(kind: EventKind, service: string, actor: string, details: Record<string, unknown>): Promise<void> {
    await store.appendEvent({ project, kind, actor, subject: `service/${service}`, details });
  }

  async function readArtifact(service: string, key: string): Promise<ArtifactRecord | undefined> {
    const text = await store.getSetting(ARTIFACT_KEY(project, service, key));
    return text ? (JSON.parse(text) as ArtifactRecord) : undefined;
  }

  async function artifactValid(service: string, key: string): Promise<ArtifactRecord | undefined> {
    const a = await readArtifact(service, key);
    if (!a) return undefined;
    try {
      await verifyArtifact({ release: key, service, dir: join(stateDir, a.dir), hash: a.hash });
      return a;
    } catch {
      return undefined;
    }
  }

  async function ensureRelease(req: PipelineRequest): Promise<PipelineOutcome> {
    const { service, spec, actor } = req;
    const progress = req.onProgress ?? (() => {});
    const current = active.get(service);
    if (current) {
      throw new KeelsonError("KEELSON_ERR_CONFLICT", `a pipeline of ${service} is already running (${current.run}, started ${current.startedAt} by ${current.trigger}); wait for it to finish`);
    }
    const runId = newRunId();
    active.set(service, { run: runId, startedAt: new Date().toISOString(), trigger: req.trigger });
    const workspace = join(stateDir, "work", runId);
    try {
      const layout = await sourceLayout({ manifestDir: req.manifestDir, service, path: spec.path, include: spec.pipeline?.include ?? [] });
      // The source: the commit's files exported now, or the working tree hashed in place.
      let sourceHash: string;
      let commit: string | undefined;
      let dirty = false;
      let exported = false;
      if (req.source.kind === "commit") {
        if (!layout.git) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `--commit needs the service in a git repository; ${join(layout.root, layout.servicePath)} is not in one`);
        commit = await resolveCommit(layout.root, req.source.commit);
        await mkdir(workspace, { recursive: true });
        await exportTree(layout.root, commit, [layout.servicePath || ".", ...layout.includes.map((i) => i.path)], workspace);
        exported = true;
        sourceHash = await hashLayoutSources(layout, workspace, { exported: true });
      } else {
        sourceHash = await hashLayoutSources(layout, layout.root);
      }
      const id = releaseId(sourceHash, configHash(spec));
      const key = buildKey(sourceHash, spec);
      const existing = await store.getRelease(id);
      // An existing release with a sound artifact needs nothing (checked once per process);
      // a broken one is built again below.
      if (existing && !req.rebuild && (await verify(existing).then(() => true, () => false))) {
        progress({ type: "pipeline", service, release: id, status: "skipped", message: "release already built" });
        return { release: existing, run: undefined, how: "existing" };
      }
      const artifact = req.rebuild ? undefined : await artifactValid(service, key);
      if (req.source.kind === "worktree" && layout.git) {
        // A release from the working tree records the commit it is on, and whether it differs from it.
        commit = await resolveCommit(layout.root, "HEAD").catch(() => undefined);
        dirty = await hasUncommittedChanges(layout.root, [layout.servicePath || ".", ...layout.includes.map((i) => i.path)]).catch(() => false);
      }
      const info = commit ? await commitInfo(layout.root, commit).catch(() => undefined) : undefined;
      const source = { source: req.source.kind, commit, ...(info ? { commitTime: info.authorTime, commitAuthor: info.author, commitSubject: info.subject } : {}), ...(dirty ? { dirty } : {}) };
      if (artifact) {
        // Same sources and build: only the runtime config changed. No pipeline, a new release.
        const scan = await copyScan(service, id, artifact.scan);
        const record = await putRelease({ id, service, spec, sourceHash, key, artifact, source, run: artifact.run, actor, reused: true, ...(scan ? { scan } : {}) });
        progress({ type: "pipeline", service, release: id, status: "reused", message: `config changed; re-uses the artifact built by ${artifact.run}` });
        return { release: record, run: undefined, how: "reused" };
      }

      await acquire();
      const started = Date.now();
      const logFile = join(stateDir, "pipelines", service, `${runId}.log`);
      try {
        progress({ type: "pipeline", service, release: id, run: runId, status: "started" });
        await event("pipeline.started", service, actor, { run: runId, release: id, trigger: req.trigger, log: relative(stateDir, logFile), ...source });
        if (!exported) {
          await mkdir(workspace, { recursive: true });
          await exportWorkingTree(layout, workspace);
        }
        const serviceDir = join(workspace, layout.servicePath);
        const lockfile = await findLockfile(serviceDir);
        const links = lockfile === undefined ? await linkDependencies(layout, workspace) : [];
        const stages = await resolveStages(spec, serviceDir);
        // Every stage the run will go through, in order: stage events carry it, so a run's view can
        // show the stages still queued (or skipped after a failure).
        const plan = [...stages.map((s) => s.name), ...(options.scan ? ["scan"] : [])];
        const env = { KEELSON_SERVICE: service, KEELSON_PIPELINE_RUN: runId, ...(commit ? { KEELSON_COMMIT: commit } : {}) };
        const stageResults: Array<{ name: string; durationMs: number; cached?: boolean }> = [];
        let cacheHit = false;
        let scan: ScanRecord | undefined;
        for (const stage of stages) {
          const result = await runOneStage({ service, runId, stage, serviceDir, lockfile, env, logFile, actor, progress, plan });
          stageResults.push(result);
          if (result.cached) cacheHit = true;
        }
        // The built-in scanners always run, also after a stage of the service's own named "scan":
        // a pipeline cannot opt out of the project's security policy.
        if (options.scan) {
          const git = layout.git ? { repoDir: layout.root, servicePath: layout.servicePath, ...(commit ? { commit } : {}) } : undefined;
          scan = await runScanHook({ service, runId, release: id, path: posixPath(spec.path), git, workspace, serviceDir, logFile, actor, progress, plan });
        }
        // Package: seal the workspace, hash it, move it to the artifact store.
        await sealTree(workspace);
        const tree = await hashTree(workspace);
        const artifactDir = join("artifacts", service, key);
        await removeTree(join(stateDir, artifactDir));
        await mkdir(join(stateDir, "artifacts", service), { recursive: true });
        await rename(workspace, join(stateDir, artifactDir));
        const record: ArtifactRecord = {
          key,
          dir: artifactDir,
          servicePath: layout.servicePath,
          hash: tree.hash,
          files: tree.files,
          bytes: tree.bytes,
          run: runId,
          createdAt: new Date().toISOString(),
          dependencies: lockfile !== undefined ? { mode: "installed", cacheHit } : links.length > 0 ? { mode: "linked", links } : { mode: "none" },
          ...(scan ? { scan } : {}),
        };
        await store.setSetting(ARTIFACT_KEY(project, service, key), JSON.stringify(record));
        verified.add(id);
        const durationMs = Date.now() - started;
        const releaseRecord = existing ?? (await putRelease({ id, service, spec, sourceHash, key, artifact: record, source, run: runId, actor, stages: stageResults, durationMs, ...(scan ? { scan } : {}) }));
        await event("pipeline.succeeded", service, actor, { run: runId, release: id, durationMs, stages: stageResults, artifactHash: tree.hash, ...source });
        progress({ type: "pipeline", service, release: id, run: runId, status: "succeeded", durationMs });
        return { release: releaseRecord, run: runId, how: "built" };
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        await event("pipeline.failed", service, actor, { run: runId, release: id, durationMs: Date.now() - started, message, ...source }).catch(() => undefined);
        progress({ type: "pipeline", service, release: id, run: runId, status: "failed", message });
        throw err;
      } finally {
        release();
      }
    } finally {
      active.delete(service);
      await removeTree(workspace).catch(() => undefined);
    }
  }

  async function runOneStage(input: {
    service: string;
    runId: string;
    stage: ResolvedStage;
    serviceDir: string;
    lockfile: string | undefined;
    env: Record<string, string>;
    logFile: string;
    actor: string;
    progress: (p: PipelineProgress) => void;
    plan: string[];
  }): Promise<{ name: string; durationMs: number; cached?: boolean }> {
    const { service, runId, stage, serviceDir, lockfile, logFile, actor, progress, plan } = input;
    // The install stage is cached by lockfile: a hit copies node_modules instead of installing.
    const cacheDir = stage.name === "install" && lockfile !== undefined ? join(stateDir, "cache", "deps", await installCacheKey(serviceDir, lockfile, stage.run)) : undefined;
    if (cacheDir !== undefined && (await stat(join(cacheDir, "node_modules")).then(() => true, () => false))) {
      const t = Date.now();
      await copyFolder(join(cacheDir, "node_modules"), join(serviceDir, "node_modules"));
      const durationMs = Date.now() - t;
      progress({ type: "stage", service, run: runId, stage: stage.name, status: "cached", durationMs, message: `dependencies from the cache (${lockfile} unchanged)` });
      await event("stage.succeeded", service, actor, { run: runId, stage: stage.name, durationMs, cached: true, plan });
      return { name: stage.name, durationMs, cached: true };
    }
    progress({ type: "stage", service, run: runId, stage: stage.name, status: "started", message: stage.run });
    await event("stage.started", service, actor, { run: runId, stage: stage.name, command: stage.run, plan });
    await mkdir(dirname(logFile), { recursive: true });
    await appendFile(logFile, `\n==> stage ${stage.name}: ${stage.run}\n`);
    const outcome = await runStage(
      { command: stage.run, cwd: serviceDir, timeoutMs: stage.timeoutMs, env: input.env, onLine: (line) => progress({ type: "log", service, run: runId, stage: stage.name, line }) },
      logFile,
    );
    if (!outcome.ok) {
      await event("stage.failed", service, actor, { run: runId, stage: stage.name, durationMs: outcome.durationMs, why: outcome.why, tail: outcome.tail.slice(-10) });
      progress({ type: "stage", service, run: runId, stage: stage.name, status: "failed", durationMs: outcome.durationMs, message: outcome.why });
      const tail = outcome.tail.slice(-15).map((l) => `  | ${l}`).join("\n");
      throw new KeelsonError(
        "KEELSON_ERR_PIPELINE_FAILED",
        `services.${service}: stage "${stage.name}" (\`${stage.run}\`) ${outcome.why}; no release was made${tail ? `; last log lines:\n${tail}` : ""}`,
        { details: { service, run: runId, stage: stage.name, log: logFile } },
      );
    }
    await event("stage.succeeded", service, actor, { run: runId, stage: stage.name, durationMs: outcome.durationMs });
    progress({ type: "stage", service, run: runId, stage: stage.name, status: "succeeded", durationMs: outcome.durationMs });
    if (cacheDir !== undefined && (await stat(join(serviceDir, "node_modules")).then(() => true, () => false))) {
      const tmp = `${cacheDir}.tmp-${runId}`;
      await copyFolder(join(serviceDir, "node_modules"), join(tmp, "node_modules"));
      await rename(tmp, cacheDir).catch(() => removeTree(tmp)); // another run may have filled it first
    }
    return { name: stage.name, durationMs: outcome.durationMs };
  }

  async function runScanHook(input: {
    service: string;
    runId: string;
    release: string;
    path: string;
    git: ScanInput["git"];
    workspace: string;
    serviceDir: string;
    logFile: string;
    actor: string;
    progress: (p: PipelineProgress) => void;
    plan: string[];
  }): Promise<ScanRecord | undefined> {
    const { service, runId, release: releaseId, actor, progress } = input;
    const t = Date.now();
    const lines: string[] = [];
    const flushLog = async () => {
      await mkdir(dirname(input.logFile), { recursive: true });
      await appendFile(input.logFile, `\n==> stage scan: built-in scanners\n${lines.map((l) => `${l}\n`).join("")}`);
    };
    progress({ type: "stage", service, run: runId, stage: "scan", status: "started" });
    await event("stage.started", service, actor, { run: runId, stage: "scan", command: "built-in scanners", plan: input.plan });
    let result: Awaited<ReturnType<ScanHook>>;
    try {
      result = await options.scan?.({
        service,
        run: runId,
        release: releaseId,
        path: input.path,
        ...(input.git ? { git: input.git } : {}),
        workspace: input.workspace,
        serviceDir: input.serviceDir,
        log: (line) => {
          lines.push(line);
          progress({ type: "log", service, run: runId, stage: "scan", line });
        },
      });
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      await flushLog().catch(() => undefined);
      if (err instanceof KeelsonError && err.code === "KEELSON_ERR_SECURITY_GATE") {
        const all = findingsOf(err.details);
        await event("security.blocked", service, actor, {
          run: runId,
          release: releaseId,
          message: err.message,
          ...summarizeFindings(all),
          findings: all.slice(0, MAX_EVENT_FINDINGS),
          ...(all.length > MAX_EVENT_FINDINGS ? { findingsOmitted: all.length - MAX_EVENT_FINDINGS } : {}),
        });
      }
      await event("stage.failed", service, actor, { run: runId, stage: "scan", durationMs: Date.now() - t, why });
      progress({ type: "stage", service, run: runId, stage: "scan", status: "failed", message: why });
      throw err instanceof KeelsonError ? err : new KeelsonError("KEELSON_ERR_PIPELINE_FAILED", `services.${service}: stage "scan" failed: ${why}; no release was made`);
    }
    await flushLog();
    const record: ScanRecord = {};
    if (result && result.sbom !== undefined) record.sbom = await writeSbom(service, releaseId, result.sbom);
    if (result && Array.isArray(result.findings)) record.findings = summarizeFindings(result.findings);
    await event("security.scanned", service, actor, { run: runId, release: releaseId, ...(record.sbom ? { sbom: record.sbom } : {}), ...(record.findings ?? summarizeFindings([])) });
    await event("stage.succeeded", service, actor, { run: runId, stage: "scan", durationMs: Date.now() - t });
    progress({ type: "stage", service, run: runId, stage: "scan", status: "succeeded", durationMs: Date.now() - t });
    return record.sbom !== undefined || record.findings !== undefined ? record : undefined;
  }

  /** Stores a release's SBOM where the API serves it from; returns its path relative to the state folder. */
  async function writeSbom(service: string, releaseId: string, sbom: unknown): Promise<string> {
    const rel = posix.join("sboms", service, `${releaseId}.cdx.json`);
    const file = join(stateDir, ...rel.split("/"));
    await mkdir(dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${randomBytes(4).toString("hex")}`;
    await writeFile(tmp, `${JSON.stringify(sbom, null, 2)}\n`);
    await rename(tmp, file);
    return rel;
  }

  /**
   * A release that re-uses an artifact gets a copy of the artifact's SBOM under its own id
   * (the same components; the BOM's subject renamed to the new release).
   */
  async function copyScan(service: string, releaseId: string, scan: ScanRecord | undefined): Promise<ScanRecord | undefined> {
    if (!scan) return undefined;
    if (scan.sbom === undefined) return scan;
    const text = await readFile(join(stateDir, ...scan.sbom.split("/")), "utf8").catch(() => undefined);
    if (text === undefined) return scan.findings ? { findings: scan.findings } : undefined;
    let sbom: unknown = text;
    try {
      const parsed = JSON.parse(text) as { metadata?: { component?: { version?: unknown } } };
      if (parsed.metadata?.component && typeof parsed.metadata.component.version === "string") parsed.metadata.component.version = releaseId;
      sbom = parsed;
    } catch {
      return scan.findings ? { findings: scan.findings } : undefined;
    }
    return { ...scan, sbom: await writeSbom(service, releaseId, sbom) };
  }

  async function putRelease(input: {
    id: string;
    service: string;
    spec: ServiceSpec;
    sourceHash: string;
    key: string;
    artifact: ArtifactRecord;
    source: Record<string, unknown>;
    run: string;
    actor: string;
    reused?: boolean;
    stages?: unknown;
    durationMs?: number;
    scan?: ScanRecord;
  }): Promise<ReleaseRecord> {
    const record: ReleaseRecord = {
      id: input.id,
      project,
      service: input.service,
      sourceHash: input.sourceHash,
      configHash: configHash(input.spec),
      gitCommit: typeof input.source.commit === "string" ? input.source.commit : undefined,
      createdAt: new Date().toISOString(),
      details: {
        config: releaseConfig(input.spec),
        artifact: input.key,
        pipelineRun: input.run,
        ...input.source,
        ...(input.reused ? { reusedArtifact: true } : {}),
        ...(input.stages ? { stages: input.stages } : {}),
        ...(input.durationMs !== undefined ? { pipelineDurationMs: input.durationMs } : {}),
        ...(input.scan?.sbom !== undefined ? { sbom: input.scan.sbom } : {}),
        ...(input.scan?.findings !== undefined ? { securityFindings: input.scan.findings } : {}),
        createdBy: input.actor,
      },
    };
    await store.putRelease(record);
    await event("release.created", input.service, input.actor, { release: input.id, run: input.run, artifact: input.key, artifactHash: input.artifact.hash, ...input.source });
    return (await store.getRelease(input.id)) ?? record;
  }

  async function artifactOf(rel: ReleaseRecord): Promise<{ cwd: string; record: ArtifactRecord } | undefined> {
    const key = rel.details.artifact;
    if (typeof key !== "string") return undefined;
    const record = await readArtifact(rel.service, key);
    if (!record) return undefined;
    return { cwd: join(stateDir, record.dir, record.servicePath), record };
  }

  async function verify(rel: ReleaseRecord, opts: { force?: boolean } = {}): Promise<void> {
    if (verified.has(rel.id) && !opts.force) return;
    const key = rel.details.artifact;
    if (typeof key !== "string") return; // built in place before artifacts existed, or without a pipeline
    const record = await readArtifact(rel.service, key);
    if (!record) throw new KeelsonError("KEELSON_ERR_ARTIFACT_INVALID", `release ${rel.id} of ${rel.service}: no artifact is recorded for it; rebuild it with \`keelson deploy ${rel.service} --rebuild\``);
    await verifyArtifact({ release: rel.id, service: rel.service, dir: join(stateDir, record.dir), hash: record.hash });
    verified.add(rel.id);
  }

  async function collect(service: string, retain: number, keep: ReadonlySet<string>, actor: string): Promise<string[]> {
    const releases = await store.listReleases(project, service);
    const deleted: string[] = [];
    const kept = new Set<string>();
    for (const [i, r] of releases.entries()) {
      if (i < retain || keep.has(r.id)) {
        kept.add(r.id);
        continue;
      }
      await store.deleteRelease(r.id);
      verified.delete(r.id);
      deleted.push(r.id);
      await event("release.deleted", service, actor, { release: r.id, reason: `beyond the ${retain} releases kept` });
    }
    // Artifacts no kept release refers to go too.
    const used = new Set(releases.filter((r) => kept.has(r.id)).map((r) => r.details.artifact));
    const dir = join(stateDir, "artifacts", service);
    const present = await readdir(dir).catch(() => [] as string[]);
    for (const key of present) {
      if (used.has(key) || key.includes(".tmp")) continue;
      await removeTree(join(dir, key));
      await store.setSetting(ARTIFACT_KEY(project, service, key), "");
    }
    return deleted;
  }

  return {
    ensureRelease,
    active: (service) => active.get(service),
    artifactOf,
    verify,
    collect,
  };
}


/** A pipeline run as its events tell it. */
export interface PipelineRunView {
  run: string;
  service: string;
  status: "running" | "succeeded" | "failed" | "interrupted";
  trigger: string | undefined;
  actor: string;
  release: string | undefined;
  commit: string | undefined;
  /** The commit's subject line and author, when the sources were in git. */
  commitSubject?: string;
  commitAuthor?: string;
  startedAt: string;
  finishedAt: string | undefined;
  durationMs: number | undefined;
  /** The stages that started, in order. */
  stages: Array<{ name: string; status: "running" | "succeeded" | "failed"; startedAt?: string; durationMs?: number; cached?: boolean; why?: string }>;
  /**
   * Every stage the run goes through, in order, once its first stage has started (runs recorded
   * before stage events carried it have none): the names after `stages` are still to run, or
   * were skipped when the run failed.
   */
  planned?: string[];
  message: string | undefined;
  /** The run's log, relative to the state folder. */
  log: string | undefined;
}

const RUN_EVENTS: EventKind[] = ["pipeline.started", "pipeline.succeeded", "pipeline.failed", "stage.started", "stage.succeeded", "stage.failed"];

/**
 * Pipeline runs, newest first, folded from the event log: one service's, or every service's
 * when `service` is left out. A run that never finished and is not running now (not in
 * `activeRun`/`activeRuns`) was cut short (the control plane stopped during it).
 *
 * @example
 * const runs = await listPipelineRuns({ store, project: "shop", limit: 20, activeRuns: ["run-20261126-221500-ab12cd"] });
 */
export async function listPipelineRuns(input: { store: Store; project: string; service?: string; limit?: number; activeRun?: string; activeRuns?: Iterable<string> }): Promise<PipelineRunView[]> {
  const { store, project, service } = input;
  const events = await store.listEvents({
    project,
    ...(service === undefined ? { subjectPrefix: "service/" } : { subject: `service/${service}` }),
    kinds: RUN_EVENTS,
    descending: true,
    limit: service === undefined ? 5000 : 2000,
  });
  const runs = new Map<string, PipelineRunView>();
  for (const e of [...events].reverse()) {
    const d = e.details as Record<string, unknown>;
    const id = typeof d.run === "string" ? d.run : undefined;
    if (!id) continue;
    let view = runs.get(id);
    if (e.kind === "pipeline.started") {
      view = {
        run: id,
        service: service ?? e.subject.slice("service/".length),
        status: "running",
        trigger: typeof d.trigger === "string" ? d.trigger : undefined,
        actor: e.actor,
        release: typeof d.release === "string" ? d.release : undefined,
        commit: typeof d.commit === "string" ? d.commit : undefined,
        ...(typeof d.commitSubject === "string" ? { commitSubject: d.commitSubject } : {}),
        ...(typeof d.commitAuthor === "string" ? { commitAuthor: d.commitAuthor } : {}),
        startedAt: e.at,
        finishedAt: undefined,
        durationMs: undefined,
        stages: [],
        message: undefined,
        log: typeof d.log === "string" ? d.log : undefined,
      };
      runs.set(id, view);
      continue;
    }
    if (!view) continue;
    if (view.planned === undefined && Array.isArray(d.plan)) view.planned = d.plan.filter((x): x is string => typeof x === "string");
    const stageName = typeof d.stage === "string" ? d.stage : undefined;
    if (e.kind === "stage.started" && stageName) view.stages.push({ name: stageName, status: "running", startedAt: e.at });
    else if ((e.kind === "stage.succeeded" || e.kind === "stage.failed") && stageName) {
      let stage = view.stages.findLast((s) => s.name === stageName);
      if (!stage) view.stages.push((stage = { name: stageName, status: "running" }));
      stage.status = e.kind === "stage.succeeded" ? "succeeded" : "failed";
      if (typeof d.durationMs === "number") stage.durationMs = d.durationMs;
      if (d.cached === true) stage.cached = true;
      if (typeof d.why === "string") stage.why = d.why;
    } else if (e.kind === "pipeline.succeeded" || e.kind === "pipeline.failed") {
      view.status = e.kind === "pipeline.succeeded" ? "succeeded" : "failed";
      view.finishedAt = e.at;
      view.durationMs = typeof d.durationMs === "number" ? d.durationMs : Date.parse(e.at) - Date.parse(view.startedAt);
      if (typeof d.message === "string") view.message = d.message;
    }
  }
  const active = new Set(input.activeRuns ?? []);
  if (input.activeRun !== undefined) active.add(input.activeRun);
  const out = [...runs.values()].reverse();
  for (const r of out) if (r.status === "running" && !active.has(r.run)) r.status = "interrupted";
  return out.slice(0, input.limit ?? 50);
}
