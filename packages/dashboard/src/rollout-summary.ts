// What the rollout panel shows, worked out from the API's answers: the steps with where the
// rollout is, the traffic shares, what may be promoted or aborted, and the per-version series
// of the canary analysis for the charts. Pure functions, tested without a browser.
import type { TrafficSplit } from "@keelson/protocol";
import type { ChartSeries } from "./chart.js";
import type { AnalysisSample, DeployStep, Rollout, RolloutPhase } from "./service-api.js";

const ACTIVE: ReadonlySet<RolloutPhase> = new Set(["progressing", "paused", "promoting"]);

/** A rollout that is still moving traffic (promote and abort apply to it). */
export function isActive(rollout: Rollout | null | undefined): rollout is Rollout {
  return rollout !== null && rollout !== undefined && ACTIVE.has(rollout.phase);
}

export const PHASE_WORDS: Record<RolloutPhase, string> = {
  progressing: "In progress",
  paused: "Paused",
  promoting: "Promoting",
  switched: "Switched, old set warm",
  finishing: "Finishing",
  succeeded: "Succeeded",
  failed: "Failed",
  "rolled-back": "Rolled back",
};

/** Release ids are content hashes; the first 12 characters tell them apart. */
export function short(release: string): string {
  return release.length > 12 ? release.slice(0, 12) : release;
}

/** "12.50%"; "–" without a value. */
export function percent(ratio: number | undefined): string {
  return ratio === undefined || Number.isNaN(ratio) ? "–" : `${(ratio * 100).toFixed(2)}%`;
}

/** Seconds as "240 ms"; "–" without a value. */
export function millis(seconds: number | undefined): string {
  return seconds === undefined || Number.isNaN(seconds) ? "–" : `${Math.round(seconds * 1000)} ms`;
}

/** Counts from Prometheus' increase() are extrapolated, so not always whole. */
export function count(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function duration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}

/** A canary step in words: "Set weight 20%", "Pause 5 min", "Pause until promoted", "Analysis", "Match header x-tester". */
export function describeStep(step: DeployStep): string {
  if ("setWeight" in step) return `Set weight ${step.setWeight}%`;
  if ("pause" in step) return step.pause === "manual" ? "Pause until promoted" : `Pause ${duration(step.pause)}`;
  if ("match" in step) {
    const parts = [...Object.keys(step.match.headers ?? {}).map((h) => `header ${h}`), ...Object.keys(step.match.cookies ?? {}).map((c) => `cookie ${c}`)];
    return `Match ${parts.join(", ")}`;
  }
  return "Analysis";
}

export type StepMark = "done" | "current" | "stopped" | "pending";

/** Where each step stands: passed, under way, where the rollout stopped (failed or rolled back), or still to come. */
export function stepMarks(stepCount: number, rollout: Rollout): StepMark[] {
  const over = rollout.phase === "succeeded" || rollout.phase === "finishing" || rollout.phase === "promoting";
  return Array.from({ length: stepCount }, (_, i): StepMark => {
    if (i < rollout.step || over) return "done";
    if (i === rollout.step && (rollout.phase === "progressing" || rollout.phase === "paused")) return "current";
    if (i === rollout.step && (rollout.phase === "failed" || rollout.phase === "rolled-back")) return "stopped";
    return "pending";
  });
}

export interface TrafficShare {
  /** canary, baseline, stable, preview, previous, failed… */
  label: string;
  release: string;
  weight: number;
}

/**
 * Who gets the traffic: the split the gateway applies when there is one; otherwise, for a canary
 * under way, its weights as the rollout means them (the split follows once replicas are ready);
 * otherwise everything on the release the service runs.
 */
export function trafficShares(rollout: Rollout | null, split: TrafficSplit | null, release: string | undefined): TrafficShare[] {
  if (split !== null) return split.weights.map((w) => ({ label: w.label ?? "release", release: w.release, weight: w.weight }));
  if (isActive(rollout) && rollout.strategy === "canary" && rollout.from !== undefined) {
    const baseline = rollout.baseline === undefined ? 0 : Math.min(rollout.weight, 100 - rollout.weight);
    return [
      { label: "canary", release: rollout.to, weight: rollout.weight },
      ...(rollout.baseline === undefined ? [] : [{ label: "baseline", release: rollout.baseline, weight: baseline }]),
      { label: "stable", release: rollout.from, weight: 100 - rollout.weight - baseline },
    ];
  }
  return release === undefined ? [] : [{ label: "stable", release, weight: 100 }];
}

/** The role of each release's replicas while a rollout runs (canary, baseline, stable), for the replica table. */
export function releaseRoles(rollout: Rollout | null): Map<string, string> {
  const roles = new Map<string, string>();
  if (!isActive(rollout) || rollout.strategy !== "canary") return roles;
  roles.set(rollout.to, "canary");
  if (rollout.baseline !== undefined) roles.set(rollout.baseline, "baseline");
  if (rollout.from !== undefined) roles.set(rollout.from, "stable");
  return roles;
}

/** What a token that may deploy can do to the rollout now (the API refuses the rest anyway). */
export function rolloutActions(rollout: Rollout | null): { promote: boolean; promoteFully: boolean; abort: boolean } {
  if (!isActive(rollout)) return { promote: false, promoteFully: false, abort: false };
  const canary = rollout.strategy === "canary" && rollout.phase !== "promoting";
  const waiting = rollout.phase === "paused" || rollout.pausedUntil !== undefined || (rollout.analysis !== undefined && rollout.phase === "progressing");
  return { promote: canary && waiting, promoteFully: canary, abort: true };
}

/** The canary and the baseline have the same colors in the charts and the traffic bar (service-view.css). */
export const CANARY_COLOR = "#ea580c";
export const BASELINE_COLOR = "#2563eb";

export interface AnalysisCharts {
  /** Seconds since the Unix epoch, ascending (uPlot's x). */
  times: number[];
  /** Error ratio (0-1) of canary and baseline. */
  errors: ChartSeries[];
  /** p99 and p50 of each version, in milliseconds. */
  latency: ChartSeries[];
}

/**
 * The canary analysis' looks over the whole rollout, per version: every finished analysis, then
 * the one under way. Each analysis starts with an empty point at its start (nothing counted yet),
 * which also keeps a line from joining one analysis' numbers to the next one's (each counts from
 * its own start). Undefined before the first look.
 */
export function analysisCharts(rollout: Rollout): AnalysisCharts | undefined {
  const runs = [
    ...(rollout.analyses ?? []).map((a) => ({ start: Date.parse(a.startedAt), samples: a.samples ?? [] })),
    ...(rollout.analysis === undefined ? [] : [{ start: rollout.analysis.run.startedAt, samples: rollout.analysis.samples ?? [] }]),
  ].filter((run) => run.samples.length > 0);
  if (runs.length === 0) return undefined;
  const rows: Array<AnalysisSample | undefined> = [];
  const times: number[] = [];
  // uPlot needs x ascending: a point out of order (a clock step) is left out.
  const add = (at: number, row: AnalysisSample | undefined) => {
    if (!Number.isFinite(at) || (times.length > 0 && at / 1000 <= (times.at(-1) as number))) return;
    rows.push(row);
    times.push(at / 1000);
  };
  for (const run of runs) {
    add(run.start, undefined);
    for (const sample of run.samples) add(sample.at, sample);
  }
  const canary = `canary ${short(rollout.to)}`;
  const baseline = `baseline ${short(rollout.from ?? "")}`.trim();
  const ms = (s: number | undefined) => (s === undefined ? null : s * 1000);
  return {
    times,
    errors: [
      { label: canary, color: CANARY_COLOR, values: rows.map((r) => r?.canary.errorRatio ?? null) },
      { label: baseline, color: BASELINE_COLOR, values: rows.map((r) => r?.baseline.errorRatio ?? null) },
    ],
    latency: [
      { label: `${canary} p99`, color: CANARY_COLOR, values: rows.map((r) => ms(r?.canary.p99)) },
      { label: `${baseline} p99`, color: BASELINE_COLOR, values: rows.map((r) => ms(r?.baseline.p99)) },
      { label: `${canary} p50`, color: "#f59e0b", values: rows.map((r) => ms(r?.canary.p50)) },
      { label: `${baseline} p50`, color: "#60a5fa", values: rows.map((r) => ms(r?.baseline.p50)) },
    ],
  };
}
