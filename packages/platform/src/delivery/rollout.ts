// Rollouts: how a service goes from one release to the next. Rolling replaces replicas a few
// at a time; blue-green starts the whole new set, switches all traffic at once and keeps the
// old set warm for a while; canary walks its steps (set weight, pause, analysis). Every
// rollout is a small state machine kept in the store, advanced on every converge step, so a
// restarted control plane carries on where it was. Failures roll back to the previous release.
import { randomBytes } from "node:crypto";
import { KeelsonError, type EventKind, type TrafficSplit } from "@keelson/protocol";
import type { DeployStepOut, ServiceSpec } from "../manifest/index.js";
import { analysisSettings, judge, startAnalysis, type AnalysisEvidence, type AnalysisObservation, type AnalysisPhase, type AnalysisRun, type AnalysisSettings, type AnalysisTarget, type VersionSummary } from "./analysis.js";
import type { ReplicaInfo } from "../runtime/index.js";
import type { ServiceRecord, Store } from "../store/index.js";
import { readTrafficSplit, writeTrafficSplit } from "../gateway/index.js";

export type RolloutStrategy = "rolling" | "blueGreen" | "canary" | "rollback";

/**
 * progressing → (paused) → promoting → switched → finishing → succeeded, or failed/rolled-back.
 * Not every strategy passes every phase: rolling goes progressing → succeeded.
 */
export type RolloutPhase = "progressing" | "paused" | "promoting" | "switched" | "finishing" | "succeeded" | "failed" | "rolled-back";

export interface RolloutState {
  id: string;
  service: string;
  strategy: RolloutStrategy;
  from: string | undefined;
  to: string;
  phase: RolloutPhase;
  /** Canary: index of the step being worked on. */
  step: number;
  /** Percent of traffic on `to`. */
  weight: number;
  actor: string;
  startedAt: string;
  updatedAt: string;
  /** When the current step (or phase) began. */
  stepStartedAt: string;
  /** A pause with a duration ends here. */
  pausedUntil?: string;
  /** Blue-green: the previous set is kept running until then. */
  warmUntil?: string;
  /** Time spent waiting for approval (not counted against deploy.timeout), and when the current wait began. */
  pausedMs?: number;
  pausedAt?: string;
  /** A terminal rollout still has a traffic split to clear once only one release runs. */
  cleanup?: boolean;
  run?: string;
  commit?: string;
  /** The commit's author time (from its release), so the events of the rollout carry it for DORA lead time. */
  commitTime?: string;
  /** When the new release first took production traffic (a ready rolling replica, a canary weight, the blue-green switch). */
  servedAt?: string;
  message?: string;
  /** Canary with analysis: the release id the baseline replicas (the old release, started afresh) run under. */
  baseline?: string;
  /** Canary: the analysis step under way. */
  analysis?: { step: number; run: AnalysisRun; nextLookAt: string; dryRun: boolean; wouldHave?: { phase: AnalysisPhase; reason: string }; samples?: AnalysisSample[] };
  /** Canary: finished analyses, oldest first, with their verdicts and evidence. */
  analyses?: AnalysisRecord[];
  /** Released together with other services (`keelson deploy a b c`): they go live together and roll back together. */
  group?: { id: string; members: string[] };
  /** In a group: this rollout is ready to go live and waits for the others. */
  gate?: boolean;
  /** In a group: this rollout went live, then a member failed, so it was rolled back too. */
  undone?: boolean;
  /** In a group: rolled back because of this member's own failure (what every other member then names). */
  groupCause?: { service: string; message: string };
  /**
   * A rolling update in a group waits for the group: `switch`, its whole new set starts beside
   * the old one without traffic and takes it all when the group goes live (as blue-green does);
   * `start` (a fixed port, so two releases cannot run side by side), it starts replacing
   * replicas only once every other member is at its gate, and the group goes live then.
   */
  hold?: "switch" | "start";
  /** Canary: request match rules (A/B, testers) in force, from match steps passed. */
  match?: Array<Extract<DeployStepOut, { match: unknown }>["match"]>;
}

/** One finished analysis of a canary rollout: what it decided and why. */
export interface AnalysisRecord {
  step: number;
  phase: AnalysisPhase;
  reason: string;
  dryRun: boolean;
  /** In a dry run: what the analysis would have decided. */
  wouldHave?: { phase: AnalysisPhase; reason: string };
  startedAt: string;
  endedAt: string;
  evidence?: AnalysisEvidence;
  /** Each look's numbers, oldest first (what the dashboard charts). */
  samples?: AnalysisSample[];
}

/** One look of a canary analysis: both versions' numbers since the analysis began. */
export interface AnalysisSample {
  /** When the numbers were read, ms since the epoch. */
  at: number;
  canary: VersionSummary;
  baseline: VersionSummary;
}

/** Looks kept per analysis (a 1 h analysis looking every 5 s has 720). */
export const ANALYSIS_SAMPLES_KEPT = 240;

/**
 * The samples with `sample` added. Past `max`, every other older sample goes, so that what is
 * kept still spans the whole analysis (more coarsely) and the rollout's stored state stays small.
 */
export function appendSample(samples: readonly AnalysisSample[] | undefined, sample: AnalysisSample, max = ANALYSIS_SAMPLES_KEPT): AnalysisSample[] {
  const out = [...(samples ?? []), sample];
  if (out.length <= max) return out;
  return [...out.slice(0, -1).filter((_, i) => i % 2 === 0), sample];
}

/** The replicas the converge step should aim for, from the service and its rollout. */
export interface RolloutTarget {
  release: string;
  replicas: number;
  keep: Array<{ release: string; replicas: number }>;
}

/** Where canary analysis reads its numbers: both versions' totals since `since` (never rejects). */
export interface AnalysisProvider {
  observe(target: AnalysisTarget, settings: AnalysisSettings, since: number): Promise<AnalysisObservation>;
}

export interface RolloutContext {
  /** The service's replicas as the driver has them now. */
  replicas: ReplicaInfo[];
  /** A start error of the service in the last converge step, if any. */
  startError?: Error;
}

const KEY = (project: string, service: string) => `rollout.${project}.${service}`;
const ACTIVE: ReadonlySet<RolloutPhase> = new Set(["progressing", "paused", "promoting"]);
const TERMINAL: ReadonlySet<RolloutPhase> = new Set(["succeeded", "failed", "rolled-back"]);

export const isActive = (s: RolloutState | undefined): boolean => s !== undefined && ACTIVE.has(s.phase);
export const isTerminal = (s: RolloutState | undefined): boolean => s === undefined || TERMINAL.has(s.phase);

/**
 * Whether a rollout of a release group waits for the rest of its group rather than working on its
 * own: at its gate, ready to go live; or, for a fixed-port rolling member (`hold: start`), before
 * its gate, since it starts only once the others are at theirs and then rolls on its own.
 */
export function waitsForGroup(s: Pick<RolloutState, "group" | "hold" | "gate">): boolean {
  if (s.group === undefined) return false;
  return s.hold === "start" ? s.gate !== true : s.gate === true;
}

const now = () => new Date().toISOString();

function canaryReplicas(total: number, weight: number): number {
  return Math.max(1, Math.min(total, Math.ceil((total * weight) / 100)));
}

/** The baseline's share at a canary weight: the same as the canary's, as far as the rest allows. */
function baselineWeight(weight: number): number {
  return Math.min(weight, 100 - weight);
}

/**
 * When a replica's time to become ready began: its latest start or exit (a replica in backoff
 * after an exit waits to start again), but not before `since`. Either may be missing (not started yet).
 */
function replicaClock(r: ReplicaInfo, since: number): number {
  const started = r.startedAt === undefined ? Number.NaN : Date.parse(r.startedAt);
  const exited = r.lastExit === undefined ? Number.NaN : Date.parse(r.lastExit.at);
  return Math.max(since, Number.isNaN(started) ? since : started, Number.isNaN(exited) ? since : exited);
}

function hasAnalysis(spec: ServiceSpec): boolean {
  return (spec.deploy?.steps ?? []).some((st) => "analysis" in st);
}

export interface RolloutController {
  get(service: string): Promise<RolloutState | undefined>;
  /** Starts a rollout; refuses while another one of the service is in progress. */
  begin(input: { record: ServiceRecord; to: string; actor: string; run?: string; commit?: string; group?: { id: string; members: string[] } }): Promise<RolloutState>;
  /** Which replicas the service should have now. */
  target(record: ServiceRecord): Promise<RolloutTarget>;
  /** Advances the service's rollout; returns the state after. */
  tick(record: ServiceRecord, ctx: RolloutContext): Promise<RolloutState | undefined>;
  /** Ends a manual pause (or skips the rest of the steps with `full`). */
  promote(service: string, actor: string, options?: { full?: boolean }): Promise<RolloutState>;
  /** Stops the rollout under way and goes back to the release before it, as a failure would. */
  abort(record: ServiceRecord, actor: string): Promise<RolloutState>;
  /**
   * Goes back to `to` (default: the release before the current one). With the old set still
   * warm, traffic switches at once; otherwise the old release starts again from its artifact.
   */
  rollback(input: { record: ServiceRecord; to: string; actor: string; warm: boolean; why?: string }): Promise<RolloutState>;
}

export interface RolloutControllerOptions {
  store: Store;
  project: string;
  /** Canary analysis reads its numbers here; without it, analysis steps pause the rollout (Error). */
  analysis?: AnalysisProvider;
  /** Asks for a converge step soon (an analysis look has its numbers). */
  wake?: () => void;
  log?: { warn(o: object, m?: string): void };
}

export function createRolloutController(options: RolloutControllerOptions): RolloutController {
  const { store, project } = options;
  const cache = new Map<string, RolloutState | undefined>();
  /** Analysis looks under way, by service: what the metrics source answered, once it has. */
  const looks = new Map<string, { key: string; observation?: AnalysisObservation }>();

  async function get(service: string): Promise<RolloutState | undefined> {
    if (cache.has(service)) return cache.get(service);
    const text = await store.getSetting(KEY(project, service));
    const state = text ? (JSON.parse(text) as RolloutState) : undefined;
    cache.set(service, state);
    return state;
  }

  async function save(state: RolloutState): Promise<RolloutState> {
    state.updatedAt = now();
    cache.set(state.service, state);
    await store.setSetting(KEY(project, state.service), JSON.stringify(state));
    return state;
  }

  async function event(kind: EventKind, s: RolloutState, actor: string, details: Record<string, unknown> = {}): Promise<void> {
    await store.appendEvent({
      project,
      kind,
      actor,
      subject: `service/${s.service}`,
      details: {
        rollout: s.id,
        strategy: s.strategy,
        from: s.from,
        to: s.to,
        ...(s.commit ? { commit: s.commit } : {}),
        ...(s.commitTime ? { commitTime: s.commitTime } : {}),
        ...(s.run ? { run: s.run } : {}),
        ...(s.servedAt ? { servedAt: s.servedAt } : {}),
        ...details,
      },
    });
  }

  /**
   * Sets the service's split. For canaries the new version's match rules (A/B, testers) and the
   * service's affinity come along, and the canary is listed first so that users an affinity hash
   * put on the canary stay there as its weight grows.
   */
  async function split(service: string, weights: Array<{ release: string; weight: number; label: string }> | undefined, actor: string, extra: { rollout?: RolloutState; spec?: ServiceSpec } = {}): Promise<void> {
    const current = await readTrafficSplit(store, project, service);
    let next: TrafficSplit | undefined;
    if (weights) {
      next = { weights: weights.filter((w, i, all) => all.findIndex((x) => x.release === w.release) === i), sticky: false };
      const r = extra.rollout;
      if (r?.match?.length) {
        next.match = r.match.map((m) => ({
          release: r.to,
          ...(m.headers ? { headers: Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [k.toLowerCase(), v])) } : {}),
          ...(m.cookies ? { cookies: m.cookies } : {}),
        }));
      }
      const affinity = extra.spec?.deploy?.affinity;
      if (affinity) next.affinity = affinity;
    }
    if (JSON.stringify(current ?? null) === JSON.stringify(next ?? null)) return;
    await writeTrafficSplit({ store, project, service, split: next, actor });
  }

  /** The canary's split at `weight`: canary first, then the baseline with the same share, then the rest on stable. */
  async function canarySplit(record: ServiceRecord, s: RolloutState, weight: number, actor: string): Promise<void> {
    if (s.from === undefined) return;
    const b = s.baseline !== undefined ? baselineWeight(weight) : 0;
    await split(
      record.name,
      [
        { release: s.to, weight, label: "canary" },
        ...(s.baseline !== undefined ? [{ release: s.baseline, weight: b, label: "baseline" }] : []),
        { release: s.from, weight: 100 - weight - b, label: "stable" },
      ],
      actor,
      { rollout: s, spec: specOf(record) },
    );
  }

  /**
   * The baseline: the old release under its own id (same artifact, same config), so that its
   * replicas start afresh beside the canary's, get their own share of traffic and their own
   * metrics. Removed with the rollout.
   */
  async function createBaseline(from: string, rolloutId: string): Promise<string | undefined> {
    const old = await store.getRelease(from);
    if (!old) return undefined;
    const id = `b-${randomBytes(6).toString("hex")}`;
    await store.putRelease({ ...old, id, createdAt: now(), details: { ...old.details, baselineOf: from, rollout: rolloutId } });
    return id;
  }

  async function dropBaseline(s: RolloutState): Promise<void> {
    if (s.baseline === undefined) return;
    await store.deleteRelease(s.baseline);
  }

  function specOf(record: ServiceRecord): ServiceSpec {
    return record.spec as unknown as ServiceSpec;
  }

  async function begin(input: { record: ServiceRecord; to: string; actor: string; run?: string; commit?: string; group?: { id: string; members: string[] } }): Promise<RolloutState> {
    const { record, to, actor } = input;
    const current = await get(record.name);
    if (isActive(current)) {
      const c = current as RolloutState;
      await store.appendEvent({ project, kind: "deploy.refused", actor, subject: `service/${record.name}`, details: { to, busy: c.id, phase: c.phase } });
      throw new KeelsonError(
        "KEELSON_ERR_CONFLICT",
        `${record.name} is being deployed: rollout ${c.id} (${c.strategy} ${c.from ?? "-"} → ${c.to}, ${c.phase}) started by ${c.actor} at ${c.startedAt}; wait for it, \`keelson promote ${record.name}\` or \`keelson rollback ${record.name}\``,
      );
    }
    const spec = specOf(record);
    // A deploy during a blue-green warm window ends that window: its old set is not kept.
    const from = record.release;
    const strategy: RolloutStrategy = from === undefined ? "rolling" : (spec.deploy?.strategy ?? "rolling");
    // A rolling member of a group must not go live before the group does.
    const hold = strategy === "rolling" && input.group !== undefined && from !== undefined && from !== to ? (spec.port === undefined ? "switch" : "start") : undefined;
    // The commit and its author time come along on every event of the rollout (DORA lead time),
    // also for a rollout `keelson up` started without naming a commit.
    const built = await store.getRelease(to);
    const commit = input.commit ?? built?.gitCommit;
    const commitTime = built !== undefined && built.gitCommit === commit && typeof built.details.commitTime === "string" ? built.details.commitTime : undefined;
    const t = now();
    const state: RolloutState = {
      id: `ro-${randomBytes(4).toString("hex")}`,
      service: record.name,
      strategy,
      from,
      to,
      phase: "progressing",
      step: 0,
      // A canary, a blue-green set and a held rolling one get no traffic until their steps or switch.
      weight: strategy === "rolling" && hold === undefined ? 100 : 0,
      actor,
      startedAt: t,
      updatedAt: t,
      stepStartedAt: t,
      ...(input.run ? { run: input.run } : {}),
      ...(commit ? { commit } : {}),
      ...(commitTime ? { commitTime } : {}),
      ...(input.group ? { group: input.group } : {}),
      ...(hold ? { hold } : {}),
    };
    await store.setServiceRelease(project, record.name, to, { project, kind: "service.changed", actor, subject: `service/${record.name}`, details: { release: to, previous: from, rollout: state.id } });
    await save(state);
    await event("rollout.started", state, actor);
    if ((strategy === "blueGreen" || hold === "switch") && from !== undefined) {
      // The new set starts beside the old one and gets no traffic until the switch (preview it with x-keelson-version: preview).
      await split(record.name, [{ release: from, weight: 100, label: "stable" }, { release: to, weight: 0, label: "preview" }], actor);
    }
    if (strategy === "canary" && from !== undefined) {
      if (hasAnalysis(spec)) {
        const baseline = await createBaseline(from, state.id);
        if (baseline !== undefined) {
          state.baseline = baseline;
          await save(state);
        }
      }
      await canarySplit(record, state, 0, actor);
    }
    return state;
  }

  /** Baseline replicas: as many as the canary has at the baseline's share, none before it gets traffic. */
  function baselineKeep(s: RolloutState, n: number): Array<{ release: string; replicas: number }> {
    if (s.baseline === undefined) return [];
    const b = baselineWeight(s.weight);
    return b > 0 ? [{ release: s.baseline, replicas: canaryReplicas(n, b) }] : [];
  }

  async function target(record: ServiceRecord): Promise<RolloutTarget> {
    const n = specOf(record).replicas;
    const s = await get(record.name);
    const release = record.release as string;
    if (s === undefined || s.to !== release || s.from === undefined || s.from === s.to) return { release, replicas: n, keep: [] };
    switch (s.phase) {
      case "progressing":
      case "paused":
        if (s.strategy === "blueGreen" || s.hold === "switch") return { release, replicas: n, keep: [{ release: s.from, replicas: n }] };
        // Not started yet: the old replicas keep their ports until the group is at its gate.
        if (s.hold === "start" && !s.gate) return { release: s.from, replicas: n, keep: [] };
        if (s.strategy === "canary") return { release, replicas: canaryReplicas(n, s.weight), keep: [{ release: s.from, replicas: n }, ...baselineKeep(s, n)] };
        return { release, replicas: n, keep: [] };
      case "promoting":
        return { release, replicas: n, keep: [{ release: s.from, replicas: n }, ...baselineKeep(s, n)] };
      case "switched":
        return { release, replicas: n, keep: [{ release: s.from, replicas: n }] };
      case "finishing":
      case "succeeded":
      case "failed":
      case "rolled-back":
        return { release, replicas: n, keep: [] };
    }
  }

  async function fail(record: ServiceRecord, s: RolloutState, why: string, ctx: RolloutContext, evidence: Record<string, unknown> = {}): Promise<RolloutState> {
    const from = s.from;
    s.message = why;
    delete s.analysis;
    if (from !== undefined && from !== s.to) {
      // Traffic back to the old release at once if it still serves, then the new set goes.
      // (A canary or blue-green split must stop sending anything to the failed release too.)
      const warm = ctx.replicas.some((r) => r.spec.release === from && r.state === "ready");
      if (warm || (await readTrafficSplit(store, project, record.name)) !== undefined) await split(record.name, [{ release: from, weight: 100, label: "stable" }, { release: s.to, weight: 0, label: "failed" }], "reconciler");
      await store.setServiceRelease(project, record.name, from, {
        project,
        kind: "service.changed",
        actor: "reconciler",
        subject: `service/${record.name}`,
        details: { rolledBackFrom: s.to, rolledBackTo: from, reason: why, rollout: s.id },
      });
      s.phase = "rolled-back";
      s.cleanup = true;
      s.weight = 0;
      await save(s);
      await event("rollout.failed", s, "reconciler", { why, rolledBackTo: from, ...evidence });
    } else {
      s.phase = "failed";
      await save(s);
      await event("rollout.failed", s, "reconciler", { why, ...evidence });
    }
    return s;
  }

  async function succeed(s: RolloutState, actor = "reconciler"): Promise<void> {
    s.phase = "succeeded";
    s.weight = 100;
    s.cleanup = true;
    await save(s);
    await event(s.strategy === "rollback" ? "rollback.succeeded" : "rollout.succeeded", s, actor, { durationMs: Date.now() - Date.parse(s.startedAt) });
  }

  /**
   * Why the rollout's group failed, if it did: the member that failed on its own and its reason,
   * also when the member seen first was only rolled back with the group.
   */
  async function failedMember(s: RolloutState): Promise<{ service: string; message: string } | undefined> {
    let found: { service: string; message: string } | undefined;
    for (const m of s.group?.members ?? []) {
      if (m === s.service) continue;
      const other = await get(m);
      if (other === undefined || other.group?.id !== s.group?.id) continue;
      if (other.phase !== "failed" && other.phase !== "rolled-back" && !other.undone) continue;
      if (other.groupCause === undefined) return { service: other.service, message: other.message ?? other.phase };
      found ??= other.groupCause;
    }
    return found;
  }

  /**
   * Whether every other member of the group is at its gate (ready to go live: a canary through its
   * steps, a blue-green or held rolling set ready, a fixed-port rolling update replacing replicas)
   * or past it. With `exceptStarting`, members that start only at the gate (`hold: start`) are not waited for.
   */
  async function othersAtGate(s: RolloutState, options: { exceptStarting: boolean }): Promise<boolean> {
    for (const m of s.group?.members ?? []) {
      if (m === s.service) continue;
      const other = await get(m);
      if (other === undefined || other.group?.id !== s.group?.id) continue;
      // A rolling rollout begun before rolling members held (no `hold`) goes live on its own.
      const free = other.strategy === "rollback" || (other.strategy === "rolling" && other.hold === undefined);
      if (free || other.gate || !ACTIVE.has(other.phase) || other.phase === "promoting") continue;
      if (options.exceptStarting && other.hold === "start") continue;
      return false;
    }
    return true;
  }

  /** A grouped rollout may go live once every other member is at its gate or past it. Until then this one waits at its gate. */
  async function groupReady(s: RolloutState): Promise<boolean> {
    if (s.group === undefined) return true;
    if (!s.gate) {
      s.gate = true;
      await save(s);
      await event("rollout.step", s, "reconciler", { action: "waiting for its release group", group: s.group.id });
    }
    return othersAtGate(s, { exceptStarting: false });
  }

  async function tick(record: ServiceRecord, ctx: RolloutContext): Promise<RolloutState | undefined> {
    const s = await get(record.name);
    if (s === undefined) return undefined;
    const spec = specOf(record);
    const n = spec.replicas;
    const mine = ctx.replicas;
    const ofTo = mine.filter((r) => r.spec.release === s.to && r.state !== "stopping");
    const readyTo = ofTo.filter((r) => r.state === "ready").length;
    const others = mine.filter((r) => r.spec.release !== s.to && r.state !== "stopping");
    const readyBaseline = s.baseline === undefined ? 0 : mine.filter((r) => r.spec.release === s.baseline && r.state === "ready").length;

    if (s.group !== undefined && !s.undone && (s.phase === "switched" || s.phase === "finishing" || s.phase === "succeeded") && s.from !== undefined && s.from !== s.to) {
      // Live already, but a member of its group failed: it goes back too.
      const failed = await failedMember(s);
      if (failed !== undefined) {
        s.undone = true;
        s.groupCause = failed;
        await save(s);
        const warm = mine.filter((r) => r.spec.release === s.from && r.state === "ready").length >= Math.max(1, n);
        return startRollback({ record, to: s.from, actor: "reconciler", warm, why: `its release group ${s.group.id} failed: ${failed.service}: ${failed.message}` });
      }
    }
    if (TERMINAL.has(s.phase)) {
      // Clear the split once only the service's release runs.
      if (s.cleanup && !mine.some((r) => r.spec.release !== record.release)) {
        await split(record.name, undefined, "reconciler");
        await dropBaseline(s);
        s.cleanup = false;
        await save(s);
      }
      return s;
    }
    if (record.release !== s.to) {
      // The service was pointed elsewhere (another apply): this rollout is over.
      s.phase = "failed";
      s.message = `superseded: the service now runs ${record.release ?? "nothing"}`;
      s.cleanup = true;
      await save(s);
      return s;
    }

    if (s.group !== undefined && ACTIVE.has(s.phase)) {
      const failed = await failedMember(s);
      if (failed !== undefined) {
        s.groupCause = failed;
        return fail(record, s, `rolled back with its release group ${s.group.id}: ${failed.service} failed (${failed.message})`, ctx);
      }
    }

    // A rolling rollout serves users from its first ready replica on (it is in the routing table):
    // a failure after that reached users, one before did not (DORA tells them apart). One that
    // holds its switch for its group serves from the switch.
    if (s.strategy === "rolling" && s.hold !== "switch" && ACTIVE.has(s.phase) && s.servedAt === undefined && readyTo > 0) {
      s.servedAt = now();
      await save(s);
    }

    // Failure checks while the new release is not yet serving everything.
    if (ACTIVE.has(s.phase)) {
      // Three exits in a row without becoming ready: a crash loop, also of a replica that was ready
      // once (everReady is per run; its readiness clock starts over at each exit, so `slow` would never see it).
      const crashed = ofTo.find((r) => !r.everReady && r.exitsSinceReady >= 3);
      // Each new replica gets startTimeout from its own (re)start or exit, or from the step's start
      // if later: one that restarts (or is added) while the rollout waits at its gate, in a pause
      // or through a long analysis is not late because the rollout is old.
      const stepStart = Date.parse(s.stepStartedAt);
      const slow = s.phase !== "paused" && ofTo.some((r) => r.state !== "ready" && Date.now() - replicaClock(r, stepStart) > spec.startTimeout);
      const timeout = spec.deploy?.timeout ?? 600_000;
      // Waiting for a person (a manual pause, or at a release group's gate for another member) does not count.
      const waiting = s.phase === "paused" || waitsForGroup(s);
      const tooLong = !waiting && Date.now() - Date.parse(s.startedAt) - (s.pausedMs ?? 0) > timeout;
      if (ctx.startError || crashed || slow || tooLong) {
        const why = ctx.startError
          ? ctx.startError.message
          : crashed
            ? `replica ${crashed.spec.id} exited ${crashed.exitsSinceReady} times before becoming ready (last exit code ${crashed.lastExit?.code ?? "?"}${crashed.lastExit?.signal ? `, signal ${crashed.lastExit.signal}` : ""})`
            : slow
              ? `not ready within ${Math.round(spec.startTimeout / 1000)} s (services.${record.name}.startTimeout)`
              : `the rollout took longer than ${Math.round(timeout / 1000)} s (services.${record.name}.deploy.timeout)`;
        return fail(record, s, why, ctx);
      }
    }

    const from = s.from;
    switch (s.strategy) {
      case "rolling":
      case "rollback":
        if (s.phase === "finishing") {
          if (others.length === 0) await succeed(s);
          return s;
        }
        if (s.hold === "switch" && from !== undefined) {
          // The new set is ready beside the old one; all traffic moves once the group goes live.
          if (readyTo < n || !(await groupReady(s))) return s;
          await split(record.name, [{ release: s.to, weight: 100, label: "stable" }, { release: from, weight: 0, label: "previous" }], "reconciler");
          s.phase = "finishing";
          s.weight = 100;
          s.stepStartedAt = now();
          s.servedAt ??= s.stepStartedAt;
          await save(s);
          await event("rollout.step", s, "reconciler", { action: "switch", weight: 100, group: s.group?.id });
          return s;
        }
        if (s.hold === "start" && !s.gate) {
          if (!(await othersAtGate(s, { exceptStarting: true }))) return s;
          // The time spent waiting for the group is not the rollout's own: its timeouts start now.
          const t = now();
          s.gate = true;
          s.weight = 100;
          s.pausedMs = (s.pausedMs ?? 0) + (Date.parse(t) - Date.parse(s.startedAt));
          s.stepStartedAt = t;
          await save(s);
          await event("rollout.step", s, "reconciler", { action: "rolling: its release group is at its gate", group: s.group?.id });
          return s;
        }
        if (readyTo >= n && ofTo.length === n && others.length === 0) await succeed(s);
        return s;
      case "blueGreen":
        if (s.phase === "progressing" && readyTo >= n) {
          if (!(await groupReady(s))) return s;
          if (from !== undefined) await split(record.name, [{ release: s.to, weight: 100, label: "stable" }, { release: from, weight: 0, label: "previous" }], "reconciler");
          s.phase = "switched";
          s.weight = 100;
          s.stepStartedAt = now();
          s.servedAt ??= s.stepStartedAt;
          s.warmUntil = new Date(Date.now() + (spec.deploy?.rollbackWindow ?? 600_000)).toISOString();
          await save(s);
          await event("rollout.step", s, "reconciler", { action: "switch", weight: 100, warmUntil: s.warmUntil });
        } else if (s.phase === "switched" && Date.now() >= Date.parse(s.warmUntil ?? s.updatedAt)) {
          s.phase = "finishing";
          await save(s);
        } else if (s.phase === "finishing" && others.length === 0) {
          await succeed(s);
        }
        return s;
      case "canary":
        return tickCanary(record, s, spec, { readyTo, readyBaseline, others: others.length });
    }
  }

  async function tickCanary(record: ServiceRecord, s: RolloutState, spec: ServiceSpec, counts: { readyTo: number; readyBaseline: number; others: number }): Promise<RolloutState> {
    const n = spec.replicas;
    const steps = spec.deploy?.steps ?? [];
    if (s.phase === "promoting") {
      if (counts.readyTo >= n) {
        if (s.from !== undefined) await split(record.name, [{ release: s.to, weight: 100, label: "stable" }, { release: s.from, weight: 0, label: "previous" }], "reconciler");
        s.phase = "finishing";
        s.weight = 100;
        s.servedAt ??= now();
        await save(s);
        await event("rollout.step", s, "reconciler", { action: "promoted to all traffic", weight: 100 });
      }
      return s;
    }
    if (s.phase === "finishing") {
      if (counts.others === 0) await succeed(s);
      return s;
    }
    if (s.phase === "paused") return s;
    // Walk as many steps as can complete now.
    for (let guard = 0; guard < 100; guard++) {
      if (s.step >= steps.length) {
        if (!(await groupReady(s))) return s;
        s.phase = "promoting";
        s.stepStartedAt = now();
        await save(s);
        return s;
      }
      const step = steps[s.step] as DeployStepOut;
      if ("setWeight" in step) {
        const weight = step.setWeight;
        if (s.weight !== weight) {
          s.weight = weight;
          s.stepStartedAt = now();
          await save(s);
        }
        // Traffic moves once enough canary (and baseline) replicas are ready for their share.
        if (counts.readyTo < canaryReplicas(n, weight)) return s;
        if (s.baseline !== undefined && baselineWeight(weight) > 0 && counts.readyBaseline < canaryReplicas(n, baselineWeight(weight))) return s;
        await canarySplit(record, s, weight, "reconciler");
        if (weight > 0) s.servedAt ??= now();
        await event("rollout.step", s, "reconciler", { step: s.step, action: "setWeight", weight, ...(s.baseline !== undefined ? { baselineWeight: baselineWeight(weight) } : {}) });
      } else if ("match" in step) {
        if (counts.readyTo < 1) return s;
        s.match = [...(s.match ?? []), step.match];
        await canarySplit(record, s, s.weight, "reconciler");
        s.servedAt ??= now();
        await event("rollout.step", s, "reconciler", { step: s.step, action: "match", match: step.match });
      } else if ("pause" in step) {
        if (step.pause === "manual") {
          s.phase = "paused";
          s.pausedAt = now();
          await save(s);
          await event("rollout.paused", s, "reconciler", { step: s.step, until: "promoted" });
          return s;
        }
        if (s.pausedUntil === undefined) {
          s.pausedUntil = new Date(Date.now() + step.pause).toISOString();
          await save(s);
          await event("rollout.paused", s, "reconciler", { step: s.step, until: s.pausedUntil });
          return s;
        }
        if (Date.now() < Date.parse(s.pausedUntil)) return s;
        delete s.pausedUntil;
      } else {
        const done = await analyze(record, s, spec, analysisSettings(spec, step.analysis));
        if (done !== "passed") return s;
      }
      s.step++;
      s.stepStartedAt = now();
      await save(s);
    }
    return s;
  }

  /**
   * The analysis step: one look every interval (the converge loop calls often; looks that are not
   * due return at once). Failed rolls back at once; Inconclusive and Error pause the rollout until
   * someone promotes or aborts it; a dry run only reports what it would have decided.
   */
  async function analyze(record: ServiceRecord, s: RolloutState, spec: ServiceSpec, settings: AnalysisSettings): Promise<"passed" | "waiting" | "stopped"> {
    const t = Date.now();
    if (s.analysis === undefined || s.analysis.step !== s.step) {
      s.analysis = { step: s.step, run: startAnalysis(t), nextLookAt: new Date(t + settings.intervalMs).toISOString(), dryRun: settings.dryRun };
      await save(s);
      await event("rollout.step", s, "reconciler", {
        step: s.step,
        action: "analysis started",
        baseline: s.baseline,
        settings: { interval: settings.intervalMs, duration: settings.durationMs, confidence: settings.confidence, minRequests: settings.minRequests, dryRun: settings.dryRun },
      });
      return "waiting";
    }
    const a = s.analysis;
    if (t < Date.parse(a.nextLookAt)) return "waiting";
    // The look reads the metrics source beside the converge loop, never inside it: a slow
    // Prometheus must not hold replica management. The next converge step takes the answer.
    const lookKey = `${s.id}/${a.step}/${a.nextLookAt}`;
    let look = looks.get(s.service);
    if (look?.key !== lookKey) {
      const target: AnalysisTarget = { service: record.name, canary: s.to, baseline: s.baseline ?? s.from ?? s.to };
      const entry: { key: string; observation?: AnalysisObservation } = { key: lookKey };
      looks.set(s.service, entry);
      const reading = options.analysis ? options.analysis.observe(target, settings, a.run.startedAt) : Promise.resolve<AnalysisObservation>({ at: t, error: "no metrics source is configured for canary analysis" });
      void reading
        .catch((err: unknown): AnalysisObservation => ({ at: Date.now(), error: err instanceof Error ? err.message : String(err) }))
        .then((observation) => {
          entry.observation = observation;
          options.wake?.();
        });
      look = entry;
    }
    if (look.observation === undefined) return "waiting";
    const observation = look.observation;
    looks.delete(s.service);
    // The weight tells judge whether numbers that stop moving mean a stalled source (see judge).
    a.run = judge(a.run, { ...observation, weight: s.weight }, settings);
    // A look that read numbers is a point on the dashboard's charts of this analysis.
    const looked = a.run.evidence;
    if (observation.error === undefined && looked?.at === observation.at) a.samples = appendSample(a.samples, { at: looked.at, canary: looked.canary, baseline: looked.baseline });
    a.nextLookAt = new Date(Date.now() + settings.intervalMs).toISOString();
    const verdict = a.run.phase;
    if (verdict === "Running") {
      await save(s);
      return "waiting";
    }
    const reason = a.run.reason ?? verdict;
    const evidence = a.run.evidence;
    if (a.dryRun) {
      // Report the first verdict; the step still runs its whole duration, then passes.
      if (a.wouldHave === undefined) {
        a.wouldHave = { phase: verdict, reason };
        await event("rollout.analysis", s, "reconciler", { step: s.step, phase: verdict, dryRun: true, reason, evidence });
      }
      if (t - a.run.startedAt < settings.durationMs) {
        a.run = { ...a.run, phase: "Running" };
        await save(s);
        return "waiting";
      }
      record_(s, { phase: "Successful", reason: `dry run: the analysis would have ended ${a.wouldHave.phase}: ${a.wouldHave.reason}`, wouldHave: a.wouldHave });
      await save(s);
      return "passed";
    }
    await event("rollout.analysis", s, "reconciler", { step: s.step, phase: verdict, reason, evidence });
    record_(s, { phase: verdict, reason });
    if (verdict === "Successful") {
      await save(s);
      return "passed";
    }
    if (verdict === "Failed") {
      await fail(record, s, `canary analysis failed: ${reason}`, { replicas: [] }, { analysis: { step: s.step, phase: verdict, reason, evidence } });
      return "stopped";
    }
    // Inconclusive or Error: wait for a person; promote accepts, abort rolls back.
    s.phase = "paused";
    s.pausedAt = now();
    s.message = `analysis ${verdict}: ${reason}; \`keelson promote ${record.name}\` to go on, \`keelson abort ${record.name}\` to roll back`;
    await save(s);
    await event("rollout.paused", s, "reconciler", { step: s.step, until: "promoted", analysis: verdict, reason });
    return "stopped";
  }

  /** Moves the analysis under way into the rollout's history. */
  function record_(s: RolloutState, verdict: { phase: AnalysisPhase; reason: string; wouldHave?: { phase: AnalysisPhase; reason: string } }): void {
    const a = s.analysis;
    if (a === undefined) return;
    s.analyses = [
      ...(s.analyses ?? []),
      {
        step: a.step,
        phase: verdict.phase,
        reason: verdict.reason,
        dryRun: a.dryRun,
        ...(verdict.wouldHave ? { wouldHave: verdict.wouldHave } : {}),
        startedAt: new Date(a.run.startedAt).toISOString(),
        endedAt: now(),
        ...(a.run.evidence ? { evidence: a.run.evidence } : {}),
        ...(a.samples ? { samples: a.samples } : {}),
      },
    ];
    delete s.analysis;
  }

  async function startRollback(input: { record: ServiceRecord; to: string; actor: string; warm: boolean; why?: string }): Promise<RolloutState> {
    const { record, to, actor, warm } = input;
    const current = record.release;
    const prev = await get(record.name);
    const t = now();
    const state: RolloutState = {
      id: `rb-${randomBytes(4).toString("hex")}`,
      service: record.name,
      strategy: "rollback",
      from: current,
      to,
      phase: warm ? "finishing" : "progressing",
      step: 0,
      weight: 100,
      actor,
      startedAt: t,
      updatedAt: t,
      stepStartedAt: t,
      ...(input.why ? { message: input.why } : {}),
    };
    if (warm) {
      // The old set is ready: all traffic goes to it in one routing table change.
      await split(record.name, [{ release: to, weight: 100, label: "stable" }, ...(current ? [{ release: current, weight: 0, label: "rolled-back" }] : [])], actor);
    }
    await store.setServiceRelease(project, record.name, to, { project, kind: "service.changed", actor, subject: `service/${record.name}`, details: { release: to, previous: current, rollback: state.id } });
    await save(state);
    // A rollout that had not ended (under way, or switched and warm) ends here: say which, and
    // whether its release had taken traffic, so DORA counts it as failed or blocked.
    const replaced = prev !== undefined && !isTerminal(prev) && prev.strategy !== "rollback" ? prev : undefined;
    await event("rollback.started", state, actor, {
      warm,
      interrupted: isActive(prev) ? prev?.id : undefined,
      ...(replaced ? { replaced: replaced.id, ...(replaced.servedAt ? { replacedServedAt: replaced.servedAt } : {}) } : {}),
      ...(input.why ? { why: input.why } : {}),
    });
    return state;
  }

  return {
    get,
    begin,
    target,
    tick,
    async promote(service, actor, opts = {}) {
      const s = await get(service);
      if (s === undefined || !isActive(s)) throw new KeelsonError("KEELSON_ERR_CONFLICT", `${service} has no rollout in progress to promote`);
      if (s.strategy !== "canary") throw new KeelsonError("KEELSON_ERR_CONFLICT", `rollout ${s.id} of ${service} is ${s.strategy}; only canary rollouts have steps to promote`);
      // An analysis under way is a step that may be promoted past, like a pause.
      const analysing = s.analysis !== undefined && s.phase === "progressing";
      if (!opts.full && s.phase !== "paused" && s.pausedUntil === undefined && !analysing) {
        throw new KeelsonError("KEELSON_ERR_CONFLICT", `rollout ${s.id} of ${service} is not paused (${s.phase}); use --full to skip its remaining steps`);
      }
      if (s.pausedAt !== undefined) {
        s.pausedMs = (s.pausedMs ?? 0) + (Date.now() - Date.parse(s.pausedAt));
        delete s.pausedAt;
      }
      if (s.analysis !== undefined) {
        // Promoting during an analysis accepts the canary without its verdict: say so in the history.
        record_(s, { phase: "Inconclusive", reason: `promoted by ${actor} before the analysis decided` });
      }
      if (opts.full) {
        s.phase = "promoting";
        s.step = Number.MAX_SAFE_INTEGER;
      } else {
        s.phase = "progressing";
        delete s.pausedUntil;
        s.step++;
      }
      s.stepStartedAt = now();
      await save(s);
      await event("rollout.promoted", s, actor, { full: opts.full === true });
      return s;
    },
    async abort(record, actor) {
      const s = await get(record.name);
      if (s === undefined || !isActive(s)) throw new KeelsonError("KEELSON_ERR_CONFLICT", `${record.name} has no rollout in progress to abort`);
      await event("rollout.aborted", s, actor);
      return fail(record, s, `aborted by ${actor}`, { replicas: [] });
    },
    rollback: (input) => startRollback(input),
  };
}
