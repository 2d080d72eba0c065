// Rollouts: how a service goes from one release to the next. Rolling replaces replicas a few
// at a time; blue-green starts the whole new set, switches all traffic at once and keeps the
// old set warm for a while; canary walks its steps (set weight, pause, analysis). Every
// rollout is a small state machine kept in the store, advanced on every converge step, so a
// restarted control plane carries on where it was. Failures roll back to the previous release.
import { randomBytes } from "node:crypto";
import { KeelsonError, type EventKind, type TrafficSplit } from "@keelson/protocol";
import type { ServiceSpec } from "../manifest/index.js";
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
  message?: string;
}

/** The replicas the converge step should aim for, from the service and its rollout. */
export interface RolloutTarget {
  release: string;
  replicas: number;
  keep: Array<{ release: string; replicas: number }>;
}

/** Canary analysis hook (the analysis feature fills it): resolve ok or not, with a reason. */
export type AnalysisHook = (input: { service: string; baseline: string; canary: string; interval?: number; metrics?: string[] }) => Promise<{ ok: boolean; message: string }>;

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

const now = () => new Date().toISOString();

function canaryReplicas(total: number, weight: number): number {
  return Math.max(1, Math.min(total, Math.ceil((total * weight) / 100)));
}

export interface RolloutController {
  get(service: string): Promise<RolloutState | undefined>;
  /** Starts a rollout; refuses while another one of the service is in progress. */
  begin(input: { record: ServiceRecord; to: string; actor: string; run?: string; commit?: string }): Promise<RolloutState>;
  /** Which replicas the service should have now. */
  target(record: ServiceRecord): Promise<RolloutTarget>;
  /** Advances the service's rollout; returns the state after. */
  tick(record: ServiceRecord, ctx: RolloutContext): Promise<RolloutState | undefined>;
  /** Ends a manual pause (or skips the rest of the steps with `full`). */
  promote(service: string, actor: string, options?: { full?: boolean }): Promise<RolloutState>;
  /**
   * Goes back to `to` (default: the release before the current one). With the old set still
   * warm, traffic switches at once; otherwise the old release starts again from its artifact.
   */
  rollback(input: { record: ServiceRecord; to: string; actor: string; warm: boolean }): Promise<RolloutState>;
}

export function createRolloutController(options: { store: Store; project: string; analysis?: AnalysisHook; log?: { warn(o: object, m?: string): void } }): RolloutController {
  const { store, project } = options;
  const cache = new Map<string, RolloutState | undefined>();

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
      details: { rollout: s.id, strategy: s.strategy, from: s.from, to: s.to, ...(s.commit ? { commit: s.commit } : {}), ...(s.run ? { run: s.run } : {}), ...details },
    });
  }

  async function split(service: string, weights: Array<{ release: string; weight: number; label: string }> | undefined, actor: string): Promise<void> {
    const current = await readTrafficSplit(store, project, service);
    const next: TrafficSplit | undefined = weights ? { weights: weights.filter((w, i, all) => all.findIndex((x) => x.release === w.release) === i), sticky: false } : undefined;
    if (JSON.stringify(current ?? null) === JSON.stringify(next ?? null)) return;
    await writeTrafficSplit({ store, project, service, split: next, actor });
  }

  function specOf(record: ServiceRecord): ServiceSpec {
    return record.spec as unknown as ServiceSpec;
  }

  async function begin(input: { record: ServiceRecord; to: string; actor: string; run?: string; commit?: string }): Promise<RolloutState> {
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
    const t = now();
    const state: RolloutState = {
      id: `ro-${randomBytes(4).toString("hex")}`,
      service: record.name,
      strategy,
      from,
      to,
      phase: "progressing",
      step: 0,
      weight: strategy === "canary" ? 0 : 100,
      actor,
      startedAt: t,
      updatedAt: t,
      stepStartedAt: t,
      ...(input.run ? { run: input.run } : {}),
      ...(input.commit ? { commit: input.commit } : {}),
    };
    await store.setServiceRelease(project, record.name, to, { project, kind: "service.changed", actor, subject: `service/${record.name}`, details: { release: to, previous: from, rollout: state.id } });
    await save(state);
    await event("rollout.started", state, actor);
    if (strategy === "blueGreen" && from !== undefined) {
      // The new set starts beside the old one and gets no traffic until the switch (preview it with x-keelson-version: preview).
      await split(record.name, [{ release: from, weight: 100, label: "stable" }, { release: to, weight: 0, label: "preview" }], actor);
    }
    if (strategy === "canary" && from !== undefined) {
      await split(record.name, [{ release: from, weight: 100, label: "stable" }, { release: to, weight: 0, label: "canary" }], actor);
    }
    return state;
  }

  async function target(record: ServiceRecord): Promise<RolloutTarget> {
    const n = specOf(record).replicas;
    const s = await get(record.name);
    const release = record.release as string;
    if (s === undefined || s.to !== release || s.from === undefined || s.from === s.to) return { release, replicas: n, keep: [] };
    switch (s.phase) {
      case "progressing":
      case "paused":
        if (s.strategy === "blueGreen") return { release, replicas: n, keep: [{ release: s.from, replicas: n }] };
        if (s.strategy === "canary") return { release, replicas: canaryReplicas(n, s.weight), keep: [{ release: s.from, replicas: n }] };
        return { release, replicas: n, keep: [] };
      case "promoting":
      case "switched":
        return { release, replicas: n, keep: [{ release: s.from, replicas: n }] };
      case "finishing":
      case "succeeded":
      case "failed":
      case "rolled-back":
        return { release, replicas: n, keep: [] };
    }
  }

  async function fail(record: ServiceRecord, s: RolloutState, why: string, ctx: RolloutContext): Promise<RolloutState> {
    const from = s.from;
    s.message = why;
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
      await event("rollout.failed", s, "reconciler", { why, rolledBackTo: from });
    } else {
      s.phase = "failed";
      await save(s);
      await event("rollout.failed", s, "reconciler", { why });
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

  async function tick(record: ServiceRecord, ctx: RolloutContext): Promise<RolloutState | undefined> {
    const s = await get(record.name);
    if (s === undefined) return undefined;
    const spec = specOf(record);
    const n = spec.replicas;
    const mine = ctx.replicas;
    const ofTo = mine.filter((r) => r.spec.release === s.to && r.state !== "stopping");
    const readyTo = ofTo.filter((r) => r.state === "ready").length;
    const others = mine.filter((r) => r.spec.release !== s.to && r.state !== "stopping");

    if (TERMINAL.has(s.phase)) {
      // Clear the split once only the service's release runs.
      if (s.cleanup && !mine.some((r) => r.spec.release !== record.release)) {
        await split(record.name, undefined, "reconciler");
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

    // Failure checks while the new release is not yet serving everything.
    if (ACTIVE.has(s.phase)) {
      const crashed = ofTo.find((r) => !r.everReady && r.exitsSinceReady >= 3);
      const stepAge = Date.now() - Date.parse(s.stepStartedAt);
      const slow = stepAge > spec.startTimeout && ofTo.some((r) => r.state !== "ready") && s.phase !== "paused";
      const timeout = spec.deploy?.timeout ?? 600_000;
      const tooLong = s.phase !== "paused" && Date.now() - Date.parse(s.startedAt) - (s.pausedMs ?? 0) > timeout;
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
        if (readyTo >= n && ofTo.length === n && others.length === 0) await succeed(s);
        return s;
      case "blueGreen":
        if (s.phase === "progressing" && readyTo >= n) {
          if (from !== undefined) await split(record.name, [{ release: s.to, weight: 100, label: "stable" }, { release: from, weight: 0, label: "previous" }], "reconciler");
          s.phase = "switched";
          s.weight = 100;
          s.stepStartedAt = now();
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
        return tickCanary(record, s, spec, { readyTo, others: others.length });
    }
  }

  async function tickCanary(record: ServiceRecord, s: RolloutState, spec: ServiceSpec, counts: { readyTo: number; others: number }): Promise<RolloutState> {
    const n = spec.replicas;
    const steps = spec.deploy?.steps ?? [];
    if (s.phase === "promoting") {
      if (counts.readyTo >= n) {
        if (s.from !== undefined) await split(record.name, [{ release: s.to, weight: 100, label: "stable" }, { release: s.from, weight: 0, label: "previous" }], "reconciler");
        s.phase = "finishing";
        s.weight = 100;
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
        s.phase = "promoting";
        s.stepStartedAt = now();
        await save(s);
        return s;
      }
      const step = steps[s.step] as { setWeight?: number; pause?: number | "manual"; analysis?: { interval?: number; metrics?: string[] } };
      if (step.setWeight !== undefined) {
        const weight = step.setWeight;
        if (s.weight !== weight) {
          s.weight = weight;
          s.stepStartedAt = now();
          await save(s);
        }
        // Traffic moves once enough canary replicas are ready for their share.
        if (counts.readyTo < canaryReplicas(n, weight)) return s;
        if (s.from !== undefined) {
          await split(record.name, [{ release: s.from, weight: 100 - weight, label: "stable" }, { release: s.to, weight, label: "canary" }], "reconciler");
        }
        await event("rollout.step", s, "reconciler", { step: s.step, action: "setWeight", weight });
      } else if (step.pause !== undefined) {
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
      } else if (step.analysis !== undefined) {
        const hook = options.analysis;
        const result = hook
          ? await hook({ service: record.name, baseline: s.from ?? s.to, canary: s.to, ...(step.analysis.interval !== undefined ? { interval: step.analysis.interval } : {}), ...(step.analysis.metrics ? { metrics: step.analysis.metrics } : {}) }).catch((err: unknown) => ({ ok: false, message: `analysis failed: ${err instanceof Error ? err.message : String(err)}` }))
          : { ok: true, message: "no analysis provider is configured; the step passes" };
        await event("rollout.step", s, "reconciler", { step: s.step, action: "analysis", ok: result.ok, message: result.message });
        if (!result.ok) return fail(record, s, `canary analysis: ${result.message}`, { replicas: [] });
      }
      s.step++;
      s.stepStartedAt = now();
      await save(s);
    }
    return s;
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
      if (s.pausedAt !== undefined) {
        s.pausedMs = (s.pausedMs ?? 0) + (Date.now() - Date.parse(s.pausedAt));
        delete s.pausedAt;
      }
      if (opts.full) {
        s.phase = "promoting";
        s.step = Number.MAX_SAFE_INTEGER;
      } else if (s.phase === "paused") {
        s.phase = "progressing";
        s.step++;
      } else if (s.strategy === "canary" && s.pausedUntil !== undefined) {
        delete s.pausedUntil;
        s.step++;
      } else {
        throw new KeelsonError("KEELSON_ERR_CONFLICT", `rollout ${s.id} of ${service} is not paused (${s.phase}); use --full to skip its remaining steps`);
      }
      s.stepStartedAt = now();
      await save(s);
      await event("rollout.promoted", s, actor, { full: opts.full === true });
      return s;
    },
    async rollback(input) {
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
      };
      if (warm) {
        // The old set is ready: all traffic goes to it in one routing table change.
        await split(record.name, [{ release: to, weight: 100, label: "stable" }, ...(current ? [{ release: current, weight: 0, label: "rolled-back" }] : [])], actor);
      }
      await store.setServiceRelease(project, record.name, to, { project, kind: "service.changed", actor, subject: `service/${record.name}`, details: { release: to, previous: current, rollback: state.id } });
      await save(state);
      await event("rollback.started", state, actor, { warm, interrupted: isActive(prev) ? prev?.id : undefined });
      return state;
    },
  };
}
