// The Kubernetes HPA algorithm as pure arithmetic: replica proposals per measure (with HPA's
// handling of not-ready replicas and missing metrics), stabilization windows, scaling policies,
// min/max and Keelson's scale to zero. No I/O and no clock of its own: the autoscaler loop and
// the simulation benchmark (bench/autoscale-sim.mjs) run the very same code.
import type { AutoscaleSpecOut, ScalingRulesSpecOut } from "../manifest/index.js";

/** What a service can be scaled on: per-replica averages (inflight, rps, cpu) and the service's p95 latency. */
export type Measure = "inflight" | "rps" | "cpu" | "p95";

/** The order measures are evaluated and reported in. */
export const MEASURES: readonly Measure[] = ["inflight", "rps", "cpu", "p95"];

/** Load of one replica over the window, as a LoadReader reports it. */
export interface ReplicaLoad {
  replica: string;
  ready: boolean;
  /** Start time (ms since the epoch, the reader's clock): CPU samples of young replicas are set aside. */
  startedAtMs?: number;
  /** Mean concurrency over the window. */
  inflight?: number;
  rps?: number;
  /** Percent of one core. */
  cpuPercent?: number;
}

/** Load of one service over the window. */
export interface ServiceLoad {
  service: string;
  /** When the load was read (the reader's clock, the same as `startedAtMs`). */
  atMs: number;
  windowMs: number;
  replicas: ReplicaLoad[];
  /** 95th percentile latency of the whole service over the window (absent without requests). */
  p95Ms?: number;
  /** Requests to the service in the window (all replicas). */
  requests: number;
  /**
   * How much of the window the source saw, when less than `windowMs` (a gateway started within
   * the window, or a worker of one is missing). Such a load reads low: it may scale up, but not
   * down until it has lasted more than PARTIAL_WINDOWS_HELD windows (see `decide`).
   */
  coveredMs?: number;
  /**
   * Requests the gateways held (or refused at their cap) for the service while it had no
   * replica, summed over gateways and their workers, each counted over the service's activation
   * window. They reached no replica, so `requests` does not count them.
   */
  heldArrivals?: number;
}

export interface ScalingPolicy {
  type: "pods" | "percent";
  value: number;
  periodMs: number;
}

export interface ScalingRules {
  stabilizationMs: number;
  policies: readonly ScalingPolicy[];
  select: "max" | "min" | "disabled";
}

/** A service's `autoscale` with every default filled in. */
export interface AutoscaleConfig {
  min: number;
  max: number;
  /** The measures to aim for; at least one. p95 in ms, cpu in percent of one core. */
  target: Partial<Record<Measure, number>>;
  tolerance: number;
  windowMs: number;
  intervalMs: number;
  scaleUp: ScalingRules;
  scaleDown: ScalingRules;
  /** Present only with min 0. `activation`: requests in the window, or held by the gateways within the activation window, that wake the service from zero. */
  scaleToZero: { idleMs: number; holdTimeoutMs: number; activation: number } | undefined;
  /** CPU samples of replicas started less than this ago are set aside (HPA's CPU initialization period). */
  cpuInitializationMs: number;
}

/**
 * Every default of `autoscale`, in one place. The scaling rules are Kubernetes HPA's defaults
 * (scale up: no stabilization, at most double or 4 more per 15 s, whichever is more; scale
 * down: 5 minutes of stabilization, anything per 15 s). The CPU initialization period is
 * shorter than HPA's 5 minutes because Keelson's replicas are local processes that start in
 * seconds, and it is not a manifest field.
 */
export const AUTOSCALE_DEFAULTS: {
  readonly target: { readonly inflight: number };
  readonly tolerance: number;
  readonly windowMs: number;
  readonly intervalMs: number;
  readonly scaleUp: Readonly<ScalingRules>;
  readonly scaleDown: Readonly<ScalingRules>;
  readonly scaleToZero: { readonly idleMs: number; readonly holdTimeoutMs: number; readonly activation: number };
  readonly cpuInitializationMs: number;
} = deepFreeze({
  target: { inflight: 10 },
  tolerance: 0.1,
  windowMs: 10_000,
  intervalMs: 2_000,
  scaleUp: {
    stabilizationMs: 0,
    policies: [
      { type: "percent", value: 100, periodMs: 15_000 },
      { type: "pods", value: 4, periodMs: 15_000 },
    ],
    select: "max",
  },
  scaleDown: { stabilizationMs: 300_000, policies: [{ type: "percent", value: 100, periodMs: 15_000 }], select: "max" },
  scaleToZero: { idleMs: 300_000, holdTimeoutMs: 30_000, activation: 1 },
  cpuInitializationMs: 30_000,
});

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * The manifest's `autoscale` with the defaults filled in.
 *
 * @example
 * resolveAutoscale({ min: 1, max: 10 }).target; // { inflight: 10 }
 */
export function resolveAutoscale(spec: AutoscaleSpecOut): AutoscaleConfig {
  const D = AUTOSCALE_DEFAULTS;
  const target: Partial<Record<Measure, number>> = {};
  if (spec.target === undefined) target.inflight = D.target.inflight;
  else for (const m of MEASURES) if (spec.target[m] !== undefined) target[m] = spec.target[m];
  return {
    min: spec.min,
    max: spec.max,
    target,
    tolerance: spec.tolerance ?? D.tolerance,
    windowMs: spec.window ?? D.windowMs,
    intervalMs: spec.interval ?? D.intervalMs,
    scaleUp: rules(spec.scaleUp, D.scaleUp),
    scaleDown: rules(spec.scaleDown, D.scaleDown),
    scaleToZero:
      spec.min === 0
        ? {
            idleMs: spec.scaleToZero?.idle ?? D.scaleToZero.idleMs,
            holdTimeoutMs: spec.scaleToZero?.holdTimeout ?? D.scaleToZero.holdTimeoutMs,
            activation: spec.scaleToZero?.activation ?? D.scaleToZero.activation,
          }
        : undefined,
    cpuInitializationMs: D.cpuInitializationMs,
  };
}

function rules(spec: ScalingRulesSpecOut | undefined, defaults: Readonly<ScalingRules>): ScalingRules {
  return {
    stabilizationMs: spec?.stabilization ?? defaults.stabilizationMs,
    policies: spec?.policies?.map((p) => ({ type: p.type, value: p.value, periodMs: p.period })) ?? defaults.policies.map((p) => ({ ...p })),
    select: spec?.select ?? defaults.select,
  };
}

// ---------------------------------------------------------------------------------------------
// Proposals per measure (HPA's replica calculator)

/** How the replicas of one per-replica measure were counted. */
export interface ReplicaCounts {
  /** Ready and reporting the measure: the replicas the average is taken over. */
  ready: number;
  /** Not ready, or (cpu) started within the initialization period: set aside. */
  notReady: number;
  /** Ready but without a value for the measure. */
  missing: number;
}

/** One measure's view: its value, the target, the ratio and the replica count it proposes. */
export interface MeasureProposal {
  measure: Measure;
  target: number;
  /** Average over the ready replicas that reported it, or the service's value (p95). */
  current?: number;
  /** current / target. */
  ratio?: number;
  /** The ratio once missing and not-ready replicas were filled in (HPA's second pass). */
  adjustedRatio?: number;
  /** Replicas this measure asks for; absent when the measure could not be computed. */
  proposal?: number;
  replicas?: ReplicaCounts;
  /** Why there is no proposal. */
  invalid?: string;
  /** Why the proposal is the current count although the ratio is off 1. */
  note?: string;
}

// ceil(ratio × n) in floating point can land just above an integer (2.2 × 5 = 11.000000000000002)
// and add a replica nobody asked for; HPA shares the flaw. A margin far below any real load
// difference removes it.
const EPSILON = 1e-9;
const ceilCount = (x: number): number => Math.ceil(x - EPSILON) + 0;
const floorCount = (x: number): number => Math.floor(x + EPSILON) + 0;

/** A finite, non-negative number, or undefined. */
export function measureValue(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/**
 * The replica count one per-replica measure proposes (HPA's `calcPlainMetricReplicas`).
 *
 * Replicas not ready, and for cpu those started less than `initializationMs` before `atMs`,
 * are set aside; ready replicas without a value are missing. The ratio is the average over the
 * rest divided by the target; within tolerance the count stays. With missing or not-ready
 * replicas the ratio is computed again: on a scale-up missing and not-ready replicas count as
 * 0, on a scale-down missing ones count as exactly the target and not-ready ones stay out; if
 * that second ratio is within tolerance or points the other way, the count stays.
 *
 * @example
 * // 3 ready replicas at 20 in flight each, target 10: ceil(3 × 2) = 6
 * replicaMeasureProposal({ measure: "inflight", target: 10, tolerance: 0.1, current: 3, atMs: 0, initializationMs: 0,
 *   replicas: [20, 20, 20].map((v) => ({ ready: true, value: v })) }).proposal; // 6
 */
export function replicaMeasureProposal(input: {
  measure: Exclude<Measure, "p95">;
  target: number;
  tolerance: number;
  current: number;
  replicas: ReadonlyArray<{ ready: boolean; startedAtMs?: number; value: number | undefined }>;
  atMs: number;
  initializationMs: number;
}): MeasureProposal {
  const { measure, target, tolerance, current } = input;
  const badTarget = targetProblem(measure, target);
  if (badTarget !== undefined) return { measure, target, invalid: badTarget };
  const counts: ReplicaCounts = { ready: 0, notReady: 0, missing: 0 };
  let sum = 0;
  for (const r of input.replicas) {
    const initializing = measure === "cpu" && r.startedAtMs !== undefined && input.atMs - r.startedAtMs < input.initializationMs;
    if (!r.ready || initializing) {
      counts.notReady++;
      continue;
    }
    const v = measureValue(r.value);
    if (v === undefined) {
      counts.missing++;
      continue;
    }
    sum += v;
    counts.ready++;
  }
  if (counts.ready === 0) {
    return { measure, target, replicas: counts, invalid: `no ready replica reported ${measure}${counts.notReady > 0 ? ` (${counts.notReady} not ready)` : ""}` };
  }
  const average = sum / counts.ready;
  const ratio = average / target;
  if (!Number.isFinite(ratio)) return { measure, target, replicas: counts, invalid: `${measure} ${average} against target ${target} gives no finite ratio` };
  const base: MeasureProposal = { measure, target, current: average, ratio, replicas: counts };
  const rebalanceNotReady = counts.notReady > 0 && ratio > 1;
  if (!rebalanceNotReady && counts.missing === 0) {
    if (Math.abs(1 - ratio) <= tolerance) return { ...base, proposal: current, note: "within tolerance" };
    // ratio × ready = sum / target, computed without the extra rounding step.
    return { ...base, proposal: ceilCount(sum / target) };
  }
  let adjustedSum = sum;
  let counted = counts.ready;
  if (counts.missing > 0) {
    // Scale-down: a missing replica might be busy, so it counts as exactly on target; scale-up: it might be idle.
    if (ratio < 1) adjustedSum += counts.missing * target;
    counted += counts.missing;
  }
  if (rebalanceNotReady) counted += counts.notReady;
  const adjustedRatio = adjustedSum / counted / target;
  const adjusted = { ...base, adjustedRatio };
  if (Math.abs(1 - adjustedRatio) <= tolerance) return { ...adjusted, proposal: current, note: "within tolerance once missing and not-ready replicas are counted" };
  if ((ratio < 1 && adjustedRatio > 1) || (ratio > 1 && adjustedRatio < 1)) {
    return { ...adjusted, proposal: current, note: "counting missing and not-ready replicas reverses the direction" };
  }
  const proposal = ceilCount(adjustedSum / target);
  if ((adjustedRatio < 1 && proposal > current) || (adjustedRatio > 1 && proposal < current)) {
    return { ...adjusted, proposal: current, note: "the replicas counted would move the count the other way" };
  }
  return { ...adjusted, proposal };
}

/**
 * The replica count a service-wide measure (p95) proposes: ratio = value / target applied to
 * the current count, like HPA's Object and External metrics. (HPA multiplies by the ready pods;
 * the current count is used here so that replicas still starting do not turn high latency into
 * a scale-down.)
 *
 * @example
 * serviceMeasureProposal({ measure: "p95", target: 200, tolerance: 0.1, current: 4, value: 300 }).proposal; // 6
 */
export function serviceMeasureProposal(input: { measure: "p95"; target: number; tolerance: number; current: number; value: number | undefined }): MeasureProposal {
  const { measure, target, tolerance, current } = input;
  const badTarget = targetProblem(measure, target);
  if (badTarget !== undefined) return { measure, target, invalid: badTarget };
  const value = measureValue(input.value);
  if (value === undefined) return { measure, target, invalid: `no ${measure} value` };
  const ratio = value / target;
  if (!Number.isFinite(ratio)) return { measure, target, invalid: `${measure} ${value} against target ${target} gives no finite ratio` };
  const base: MeasureProposal = { measure, target, current: value, ratio };
  if (current === 0) return { ...base, proposal: ceilCount(ratio) };
  if (Math.abs(1 - ratio) <= tolerance) return { ...base, proposal: current, note: "within tolerance" };
  return { ...base, proposal: ceilCount(ratio * current) };
}

/**
 * Why a target cannot be aimed at: 0 (the manifest refuses it, but a stored spec or a caller
 * may still hold one) would turn any load into an infinite ratio and no load into NaN.
 */
function targetProblem(measure: Measure, target: number): string | undefined {
  return typeof target === "number" && Number.isFinite(target) && target > 0 ? undefined : `target ${String(target)} for ${measure} is not a positive number`;
}

/** Every target measure's proposal, and the replica count they ask for together. */
export interface Proposals {
  measures: MeasureProposal[];
  /** The largest proposal (HPA's desired replicas before stabilization); absent when no decision can be made. */
  desired?: number;
  /** The measure that gave `desired`. */
  measure?: Measure;
  /** Why no decision can be made. */
  invalid?: string;
}

/**
 * All target measures of a service; the largest proposal wins. As HPA: when every measure is
 * invalid there is no decision, and when some are invalid the others may scale up but not down.
 */
export function proposeReplicas(config: AutoscaleConfig, current: number, load: ServiceLoad): Proposals {
  const measures: MeasureProposal[] = [];
  for (const m of MEASURES) {
    const target = config.target[m];
    if (target === undefined) continue;
    if (m === "p95") {
      // No requests, no latency: the service is idle, which asks for no replicas on this measure.
      const value = load.p95Ms ?? (load.requests === 0 ? 0 : undefined);
      measures.push(serviceMeasureProposal({ measure: m, target, tolerance: config.tolerance, current, value }));
      continue;
    }
    const field = m === "cpu" ? "cpuPercent" : m;
    measures.push(
      replicaMeasureProposal({
        measure: m,
        target,
        tolerance: config.tolerance,
        current,
        atMs: load.atMs,
        initializationMs: config.cpuInitializationMs,
        replicas: load.replicas.map((r) => ({ ready: r.ready, ...(r.startedAtMs === undefined ? {} : { startedAtMs: r.startedAtMs }), value: r[field] })),
      }),
    );
  }
  let desired: number | undefined;
  let measure: Measure | undefined;
  const invalid = measures.filter((p) => p.proposal === undefined);
  for (const p of measures) {
    if (p.proposal !== undefined && (desired === undefined || p.proposal > desired)) {
      desired = p.proposal;
      measure = p.measure;
    }
  }
  const first = invalid[0];
  if (first !== undefined && (desired === undefined || desired < current)) {
    const more = desired === undefined ? "" : `; ${measure} alone would scale down, which waits until every measure can be read`;
    return { measures, invalid: `${first.measure}: ${first.invalid ?? "invalid"}${more}` };
  }
  return { measures, ...(desired === undefined ? {} : { desired }), ...(measure === undefined ? {} : { measure }) };
}

// ---------------------------------------------------------------------------------------------
// Stabilization and scaling policies (HPA's behavior)

/** A replica count recommended at a time (unstabilized, as HPA stores them). */
export interface Recommendation {
  atMs: number;
  replicas: number;
}

export interface StabilizeResult {
  replicas: number;
  /** The lowest recommendation within the scale-up window (the current one included). */
  lowestUp: number;
  /** The highest recommendation within the scale-down window (the current one included). */
  highestDown: number;
  /** The history with this recommendation added and entries older than both windows dropped. */
  history: Recommendation[];
}

/**
 * HPA's stabilization: a scale-up goes at most to the lowest recommendation within the
 * scale-up window, a scale-down at most to the highest within the scale-down window.
 *
 * @example
 * // 5 recommended 2 minutes ago, 2 now, current 5: held at 5 by the 300 s scale-down window
 * stabilize({ history: [{ atMs: 0, replicas: 5 }], desired: 2, current: 5, nowMs: 120_000, upWindowMs: 0, downWindowMs: 300_000 }).replicas; // 5
 */
export function stabilize(input: { history: readonly Recommendation[]; desired: number; current: number; nowMs: number; upWindowMs: number; downWindowMs: number }): StabilizeResult {
  const { desired, current, nowMs } = input;
  const upCutoff = nowMs - input.upWindowMs;
  const downCutoff = nowMs - input.downWindowMs;
  let lowestUp = desired;
  let highestDown = desired;
  const history: Recommendation[] = [];
  for (const rec of input.history) {
    if (rec.atMs > upCutoff) lowestUp = Math.min(lowestUp, rec.replicas);
    if (rec.atMs > downCutoff) highestDown = Math.max(highestDown, rec.replicas);
    if (rec.atMs > upCutoff || rec.atMs > downCutoff) history.push(rec);
  }
  history.push({ atMs: nowMs, replicas: desired });
  let replicas = current;
  if (replicas < lowestUp) replicas = lowestUp;
  if (replicas > highestDown) replicas = highestDown;
  return { replicas, lowestUp, highestDown, history };
}

/** A change of replica count the autoscaler made (magnitude, always positive). */
export interface ScaleChange {
  atMs: number;
  change: number;
}

function changedWithin(events: readonly ScaleChange[], periodMs: number, nowMs: number): number {
  let sum = 0;
  for (const e of events) if (e.atMs > nowMs - periodMs) sum += e.change;
  return sum;
}

/**
 * The most replicas the scale-up policies allow now. Each policy looks back its period: the
 * count at the period's start is the current count minus what the autoscaler added and plus
 * what it removed within it; `pods` adds `value` to that, `percent` multiplies it by
 * 1 + value/100 (rounded up). `select` takes the largest (max) or smallest (min) allowance;
 * `disabled` allows no change.
 *
 * @example
 * // 2 replicas, defaults (100% or 4 pods per 15 s, max): max(4, 6) = 6
 * scaleUpLimit({ current: 2, ups: [], downs: [], rules: AUTOSCALE_DEFAULTS.scaleUp, nowMs: 0 }); // 6
 */
export function scaleUpLimit(input: { current: number; ups: readonly ScaleChange[]; downs: readonly ScaleChange[]; rules: ScalingRules; nowMs: number }): number {
  const { current, rules: r, nowMs } = input;
  if (r.select === "disabled") return current;
  let result = r.select === "min" ? Infinity : -Infinity;
  for (const p of r.policies) {
    const periodStart = current - changedWithin(input.ups, p.periodMs, nowMs) + changedWithin(input.downs, p.periodMs, nowMs);
    const proposed = p.type === "pods" ? periodStart + p.value : ceilCount(periodStart * (1 + p.value / 100));
    result = r.select === "min" ? Math.min(result, proposed) : Math.max(result, proposed);
  }
  return Number.isFinite(result) ? result : current;
}

/**
 * The fewest replicas the scale-down policies allow now (as `scaleUpLimit`; `percent` removes
 * value percent of the period's starting count, rounded toward it; `max` picks the policy that
 * allows the biggest change, which is the lowest count).
 *
 * @example
 * // 10 replicas, 3 removed 5 s ago, "pods 4 per 60 s": (10 + 3) - 4 = 9
 * scaleDownLimit({ current: 10, ups: [], downs: [{ atMs: 0, change: 3 }], rules: { stabilizationMs: 0, select: "max",
 *   policies: [{ type: "pods", value: 4, periodMs: 60_000 }] }, nowMs: 5_000 }); // 9
 */
export function scaleDownLimit(input: { current: number; ups: readonly ScaleChange[]; downs: readonly ScaleChange[]; rules: ScalingRules; nowMs: number }): number {
  const { current, rules: r, nowMs } = input;
  if (r.select === "disabled") return current;
  let result = r.select === "min" ? -Infinity : Infinity;
  for (const p of r.policies) {
    const periodStart = current - changedWithin(input.ups, p.periodMs, nowMs) + changedWithin(input.downs, p.periodMs, nowMs);
    const remaining = periodStart * (1 - p.value / 100);
    // HPA truncates toward zero; below zero (value over 100) any count is allowed anyway.
    const proposed = p.type === "pods" ? periodStart - p.value : remaining >= 0 ? floorCount(remaining) : Math.trunc(remaining);
    result = r.select === "min" ? Math.max(result, proposed) : Math.min(result, proposed);
  }
  return Number.isFinite(result) ? result : current;
}

export type LimitedBy = "scale-up-limit" | "max" | "scale-down-limit" | "min";

export interface LimitResult {
  replicas: number;
  /** What cut the change short (absent when the stabilized count went through). */
  limitedBy?: LimitedBy;
  /** The policy bound in the direction of the change. */
  scaleUpLimit?: number;
  scaleDownLimit?: number;
}

/**
 * HPA's `convertDesiredReplicasWithBehaviorRate`: the stabilized count bounded by the scaling
 * policies and by min/max.
 */
export function applyLimits(input: { current: number; desired: number; min: number; max: number; scaleUp: ScalingRules; scaleDown: ScalingRules; ups: readonly ScaleChange[]; downs: readonly ScaleChange[]; nowMs: number }): LimitResult {
  const { current, desired, min, max, ups, downs, nowMs } = input;
  if (desired > current) {
    const up = Math.max(current, scaleUpLimit({ current, ups, downs, rules: input.scaleUp, nowMs }));
    const allowed = Math.min(max, up);
    if (desired > allowed) return { replicas: allowed, limitedBy: max > up ? "scale-up-limit" : "max", scaleUpLimit: up };
    return { replicas: desired, scaleUpLimit: up };
  }
  if (desired < current) {
    const down = Math.min(current, scaleDownLimit({ current, ups, downs, rules: input.scaleDown, nowMs }));
    const allowed = Math.max(min, down);
    if (desired < allowed) return { replicas: allowed, limitedBy: min < down ? "scale-down-limit" : "min", scaleDownLimit: down };
    return { replicas: desired, scaleDownLimit: down };
  }
  return { replicas: desired };
}

// ---------------------------------------------------------------------------------------------
// One decision

/** What the autoscaler remembers about a service between looks (plain data). */
export interface AutoscaleMemory {
  /** Unstabilized recommendations, oldest first (only those inside a stabilization window). */
  recommendations: Recommendation[];
  /** Scale changes the autoscaler made, kept for the longest policy period. */
  scaleUps: ScaleChange[];
  scaleDowns: ScaleChange[];
  /** When requests were last seen; the first look and looks without load count as seen (idleness is observed, never assumed). */
  lastRequestAtMs: number | undefined;
  /** Whether the first look happened (it records the current count as a recommendation, as HPA does). */
  initialized: boolean;
  /** The first of the looks in a row, up to the last one, at a window seen only in part (`coveredMs`). */
  partialSinceMs?: number | undefined;
}

export function emptyMemory(): AutoscaleMemory {
  return { recommendations: [], scaleUps: [], scaleDowns: [], lastRequestAtMs: undefined, initialized: false, partialSinceMs: undefined };
}

/**
 * How many windows in a row a partly seen window may hold scale-downs. A restarted gateway
 * fills its window within one; a worker that stays missing (crash-looping, or too slow to
 * answer) would otherwise block scale-down and scale to zero for good.
 */
export const PARTIAL_WINDOWS_HELD = 2;

/** Why a decision came out as it did; the first group scales, the second keeps the count, the third holds it. */
export type DecisionReason =
  | "scale-up"
  | "scale-down"
  | "scale-to-zero"
  | "above-max"
  | "below-min"
  | "activated"
  | "at-target"
  | "idle-at-zero"
  | "below-activation"
  | "metrics-unavailable"
  | "metrics-invalid"
  | "metrics-partial"
  | "metrics-partial-expired"
  | "stabilization"
  | "scale-up-limit"
  | "scale-down-limit"
  | "max"
  | "min"
  | "waiting-for-idle"
  | "disabled"
  | "scale-failed";

export interface Decision {
  /** scale: change to `to`; steady: nothing asks for a change; hold: a change was asked for but does not happen. */
  outcome: "scale" | "steady" | "hold";
  reason: DecisionReason;
  message: string;
  from: number;
  to: number;
  measures: MeasureProposal[];
  /** HPA's desired replicas before stabilization (the largest proposal). */
  recommendation?: number;
  stabilization?: { replicas: number; lowestUp: number; highestDown: number; upWindowMs: number; downWindowMs: number };
  limits?: LimitResult & { min: number; max: number };
  /** How long no request was seen (services with min 0). */
  idleForMs?: number;
  /**
   * Set when the load saw only part of its window: how much, for how long in a row, and whether
   * that has lasted more than PARTIAL_WINDOWS_HELD windows (then a scale-down goes ahead, with
   * the reason `metrics-partial-expired`).
   */
  partial?: { coveredMs: number; windowMs: number; forMs: number; expired: boolean };
  /** The memory after this decision (the caller adds the scale change once it is made). */
  memory: AutoscaleMemory;
}

function seconds(ms: number): string {
  return ms % 60_000 === 0 && ms >= 60_000 ? `${ms / 60_000}m` : `${Math.round(ms / 100) / 10}s`;
}

/**
 * One look at a service, as HPA's reconcile: the current count outside min..max is moved in at
 * once; otherwise the measures propose, stabilization and policies bound, and min/max clamp.
 * Without load (`load` undefined: the source gave nothing) the count is held. A load that saw
 * only part of its window (`coveredMs`, a gateway restarted or a worker of one is missing) may
 * scale up but not down: the unseen part counts as on target, as HPA counts a pod without
 * metrics when scaling down. Once looks in a row have been partial for more than
 * PARTIAL_WINDOWS_HELD windows, the autoscaler acts on what is seen (`metrics-partial-expired`).
 * With min 0 the last replica stops only after `scaleToZero.idle` without requests, and a
 * service at zero with `scaleToZero.activation` requests in the window, or held by the gateways
 * within the activation window (`heldArrivals`), is activated to max(1, min) at once.
 */
export function decide(input: { config: AutoscaleConfig; current: number; load: ServiceLoad | undefined; unavailable?: string; nowMs: number; memory: AutoscaleMemory }): Decision {
  const { config, current, load, nowMs } = input;
  const memory: AutoscaleMemory = { ...input.memory, recommendations: [...input.memory.recommendations], lastRequestAtMs: input.memory.lastRequestAtMs ?? nowMs };
  if (!memory.initialized) {
    memory.initialized = true;
    memory.recommendations.push({ atMs: nowMs, replicas: current });
  }
  // A partly seen window holds scale-downs for PARTIAL_WINDOWS_HELD windows of looks in a row;
  // any look at a whole window, or without load, ends the run.
  const partial = load !== undefined && load.coveredMs !== undefined && load.coveredMs < load.windowMs;
  if (!partial) memory.partialSinceMs = undefined;
  else memory.partialSinceMs ??= nowMs;
  const partialForMs = partial ? nowMs - memory.partialSinceMs! : 0;
  const partialExpired = partial && partialForMs > PARTIAL_WINDOWS_HELD * config.windowMs;
  const holdPartial = partial && !partialExpired;
  // Idleness is observed, never assumed: a look without load restarts the idle clock, as does any
  // request or held arrival. A partly seen window in which every gateway that answered saw none
  // does not: the part unseen holds the scale to zero itself (below) while it may, and a worker
  // that stays missing must not keep the service from ever being idle.
  const arrivals = load === undefined ? 0 : load.requests + (load.heldArrivals ?? 0);
  if (load === undefined || arrivals > 0) memory.lastRequestAtMs = nowMs;
  const idleForMs = nowMs - memory.lastRequestAtMs!;
  const base = {
    from: current,
    measures: [] as MeasureProposal[],
    memory,
    ...(config.min === 0 ? { idleForMs } : {}),
    ...(partial ? { partial: { coveredMs: load.coveredMs!, windowMs: load.windowMs, forMs: partialForMs, expired: partialExpired } } : {}),
  };
  const unseen = partial ? `the gateways saw only ${seconds(load.coveredMs!)} of the ${seconds(load.windowMs)} window (one started within it, or a worker of one is missing)` : "";
  const heldUntil = `no scale-down until the window is full, or it has been partial for more than ${seconds(PARTIAL_WINDOWS_HELD * config.windowMs)} in a row`;
  const actingOnPartial = `, on a partly seen window: ${unseen} for ${seconds(partialForMs)}, more than ${PARTIAL_WINDOWS_HELD} windows in a row, so the autoscaler acts on what they saw`;
  const hold = (reason: DecisionReason, message: string, extra: Partial<Decision> = {}): Decision => ({ ...base, outcome: "hold", reason, message, to: current, ...extra });

  if (current === 0) {
    if (config.min > 0) return hold("disabled", `the service was scaled to 0 while min is ${config.min}: autoscaling is paused until it runs again (as HPA)`);
    if (load === undefined) return hold("metrics-unavailable", `at zero, and ${input.unavailable ?? "the metrics source gave nothing"}`);
    const activation = config.scaleToZero?.activation ?? AUTOSCALE_DEFAULTS.scaleToZero.activation;
    const held = load.heldArrivals ?? 0;
    const seen = held === 0 ? `${load.requests} requests in the window` : `${load.requests === 0 ? "" : `${load.requests} requests in the window and `}${held} held by the gateways`;
    if (arrivals > 0 && arrivals >= activation) {
      const to = Math.max(1, config.min);
      return { ...base, outcome: "scale", reason: "activated", message: `${arrivals} requests arrived while at zero (${seen}): starting ${to}`, to };
    }
    if (arrivals > 0) {
      return { ...base, outcome: "steady", reason: "below-activation", message: `at zero, ${seen}, fewer than the ${activation} that wake it (scaleToZero.activation)`, to: 0 };
    }
    return { ...base, outcome: "steady", reason: "idle-at-zero", message: "at zero, no requests", to: 0 };
  }
  if (current > config.max) return { ...base, outcome: "scale", reason: "above-max", message: `${current} replicas is above max ${config.max}`, to: config.max };
  if (current < config.min) return { ...base, outcome: "scale", reason: "below-min", message: `${current} replicas is below min ${config.min}`, to: config.min };
  if (load === undefined) return hold("metrics-unavailable", input.unavailable ?? "the metrics source gave nothing: holding the current count");

  // Idle for `scaleToZero.idle`: the last replicas go at once (KEDA's cooldown). The idle time is
  // this step's stabilization; HPA's window, meant for counts that still serve load, would keep
  // the service at one replica for another five minutes.
  const zeroAfterMs = config.scaleToZero?.idleMs ?? AUTOSCALE_DEFAULTS.scaleToZero.idleMs;
  if (config.min === 0 && current > 0 && arrivals === 0 && idleForMs >= zeroAfterMs) {
    if (holdPartial) return hold("metrics-partial", `no requests for ${seconds(idleForMs)}, but ${unseen}: ${heldUntil}`);
    memory.recommendations = [];
    const message = `no requests for ${seconds(idleForMs)}: scaling to zero${partialExpired ? actingOnPartial : ""}`;
    return { ...base, outcome: "scale", reason: partialExpired ? "metrics-partial-expired" : "scale-to-zero", message, to: 0 };
  }

  const proposals = proposeReplicas(config, current, load);
  if (proposals.desired === undefined || proposals.invalid !== undefined) return hold("metrics-invalid", proposals.invalid ?? "no measure could be computed", { measures: proposals.measures });
  const recommendation = proposals.desired;
  // Whatever a caller passed, nothing but a count enters the stabilization history.
  if (!Number.isInteger(recommendation) || recommendation < 0) return hold("metrics-invalid", `the measures gave ${recommendation} replicas, not a count`, { measures: proposals.measures });
  const why = `${proposals.measure} ${describe(proposals.measures.find((m) => m.measure === proposals.measure))}`;
  if (holdPartial && recommendation < current) {
    // Recorded as a recommendation of the current count (on target), which the scale-down window then remembers.
    memory.recommendations = stabilize({ history: memory.recommendations, desired: current, current, nowMs, upWindowMs: config.scaleUp.stabilizationMs, downWindowMs: config.scaleDown.stabilizationMs }).history;
    return hold("metrics-partial", `${why} asks for ${recommendation}, but ${unseen}: ${heldUntil}`, { measures: proposals.measures, recommendation });
  }

  const stabilized = stabilize({ history: memory.recommendations, desired: recommendation, current, nowMs, upWindowMs: config.scaleUp.stabilizationMs, downWindowMs: config.scaleDown.stabilizationMs });
  memory.recommendations = stabilized.history;
  // With min 0 the count may reach zero only once the service has been idle long enough.
  const idleMs = config.scaleToZero?.idleMs ?? AUTOSCALE_DEFAULTS.scaleToZero.idleMs;
  const min = config.min > 0 ? config.min : idleForMs >= idleMs ? 0 : 1;
  const limits = applyLimits({ current, desired: stabilized.replicas, min, max: config.max, scaleUp: config.scaleUp, scaleDown: config.scaleDown, ups: memory.scaleUps, downs: memory.scaleDowns, nowMs });
  const detail = {
    measures: proposals.measures,
    recommendation,
    stabilization: { replicas: stabilized.replicas, lowestUp: stabilized.lowestUp, highestDown: stabilized.highestDown, upWindowMs: config.scaleUp.stabilizationMs, downWindowMs: config.scaleDown.stabilizationMs },
    limits: { ...limits, min, max: config.max },
  };
  const to = limits.replicas;
  if (to !== current) {
    const cut = limits.limitedBy === undefined ? "" : ` (${limitText(limits.limitedBy, limits, min, config)})`;
    const stab = stabilized.replicas !== recommendation ? ` (stabilized from ${recommendation})` : "";
    const reason: DecisionReason = to > current ? "scale-up" : to === 0 ? "scale-to-zero" : "scale-down";
    const message = reason === "scale-to-zero" ? `no requests for ${seconds(idleForMs)}: scaling to zero` : `${why}: ${current} → ${to}${stab}${cut}`;
    // A scale-down that a partial window would have held says so, in its reason too.
    if (partialExpired && to < current) return { ...base, ...detail, outcome: "scale", reason: "metrics-partial-expired", message: `${message}${actingOnPartial}`, to };
    return { ...base, ...detail, outcome: "scale", reason, message, to };
  }
  if (recommendation === current) {
    return { ...base, ...detail, outcome: "steady", reason: "at-target", message: `${why}: ${current} replicas fit`, to: current };
  }
  if (stabilized.replicas === current) {
    const message =
      recommendation < current
        ? `${why} asks for ${recommendation}, but ${stabilized.highestDown} was recommended within the last ${seconds(config.scaleDown.stabilizationMs)} (scale-down stabilization)`
        : `${why} asks for ${recommendation}, but ${stabilized.lowestUp} was recommended within the last ${seconds(config.scaleUp.stabilizationMs)} (scale-up stabilization)`;
    return hold("stabilization", message, detail);
  }
  const limitedBy = limits.limitedBy ?? (stabilized.replicas > current ? "scale-up-limit" : "scale-down-limit");
  const reason: DecisionReason = limitedBy === "min" && config.min === 0 && min === 1 ? "waiting-for-idle" : limitedBy;
  return hold(reason, `${why} asks for ${stabilized.replicas}, held at ${current}: ${limitText(limitedBy, limits, min, config, idleForMs)}`, detail);
}

function describe(m: MeasureProposal | undefined): string {
  if (m === undefined || m.current === undefined || m.ratio === undefined) return "";
  const r = (x: number) => Math.round(x * 100) / 100;
  return `${r(m.current)}/${r(m.target)} (ratio ${r(m.adjustedRatio ?? m.ratio)})`;
}

function limitText(limitedBy: LimitedBy, limits: LimitResult, min: number, config: AutoscaleConfig, idleForMs?: number): string {
  switch (limitedBy) {
    case "scale-up-limit":
      return config.scaleUp.select === "disabled" ? "scaling up is disabled" : `the scale-up policies allow ${limits.scaleUpLimit} now`;
    case "scale-down-limit":
      return config.scaleDown.select === "disabled" ? "scaling down is disabled" : `the scale-down policies allow ${limits.scaleDownLimit} now`;
    case "max":
      return `max is ${config.max}`;
    case "min":
      if (config.min === 0 && min === 1) {
        const idle = config.scaleToZero?.idleMs ?? AUTOSCALE_DEFAULTS.scaleToZero.idleMs;
        return `scale to zero after ${seconds(idle)} without requests${idleForMs === undefined ? "" : ` (idle for ${seconds(idleForMs)})`}`;
      }
      return `min is ${min}`;
  }
}

/**
 * The memory after the autoscaler changed the count from `from` to `to`: the change counts
 * against the scaling policies of its direction for their longest period.
 */
export function recordScale(memory: AutoscaleMemory, config: AutoscaleConfig, from: number, to: number, nowMs: number): AutoscaleMemory {
  if (to === from) return memory;
  const keep = (rules: ScalingRules, events: readonly ScaleChange[]) => {
    const longest = Math.max(0, ...rules.policies.map((p) => p.periodMs));
    return events.filter((e) => e.atMs > nowMs - longest);
  };
  if (to > from) return { ...memory, scaleUps: [...keep(config.scaleUp, memory.scaleUps), { atMs: nowMs, change: to - from }] };
  return { ...memory, scaleDowns: [...keep(config.scaleDown, memory.scaleDowns), { atMs: nowMs, change: from - to }] };
}
