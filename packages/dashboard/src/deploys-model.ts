// What the Deploys view shows, worked out from the API's answers: each run's stages with their
// state (the ones not run yet included), rollout steps in words, which rollouts may be promoted
// or aborted, durations, and the log text kept in memory. Pure functions, tested without a browser.
import type { PipelineRun, RolloutDetail, RolloutState, DeployStep } from "./deploys-api.js";

export type StageState = "queued" | "running" | "passed" | "failed" | "skipped" | "interrupted";

export interface StageRow {
  name: string;
  state: StageState;
  /** Finished stages: how long they took. */
  durationMs: number | undefined;
  /** A running stage: when it started (the view counts from it). */
  startedAt: string | undefined;
  cached: boolean;
  why: string | undefined;
}

/**
 * The run's stages in order: those that started, then the rest of its plan, queued while the run
 * runs and skipped once it has failed. A stage left running by a run that did not finish was cut short.
 */
export function stageRows(run: PipelineRun): StageRow[] {
  const rows: StageRow[] = run.stages.map((s) => ({
    name: s.name,
    state: s.status === "succeeded" ? "passed" : s.status === "failed" ? "failed" : run.status === "running" ? "running" : "interrupted",
    durationMs: s.durationMs,
    startedAt: s.startedAt,
    cached: s.cached === true,
    why: s.why,
  }));
  const rest = (run.planned ?? []).slice(run.stages.length);
  for (const name of rest) rows.push({ name, state: run.status === "running" ? "queued" : "skipped", durationMs: undefined, startedAt: undefined, cached: false, why: undefined });
  return rows;
}

/** A run's outcome as the view words it (a succeeded pipeline "passed", like its stages). */
export function runStateLabel(status: PipelineRun["status"]): string {
  return status === "succeeded" ? "passed" : status;
}

/** "850 ms", "12.3 s", "2 min 5 s", "1 h 3 min". */
export function formatMs(ms: number): string {
  const v = Math.max(0, Math.round(ms));
  if (v < 1000) return `${v} ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(1)} s`;
  const s = Math.round(v / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** Commits, releases and runs are long ids; the first characters tell them apart. */
export function shortId(id: string, length = 12): string {
  return id.length > length ? id.slice(0, length) : id;
}

/** One canary step in words. */
export function describeStep(step: DeployStep | undefined): string {
  if (step === undefined) return "the new release takes all traffic";
  if ("setWeight" in step) return `send ${step.setWeight}% of traffic to the new release`;
  if ("pause" in step) return step.pause === "manual" ? "pause until promoted" : `pause for ${formatMs(step.pause)}`;
  if ("analysis" in step) return "compare the new release with the baseline (analysis)";
  return "send matching requests to the new release";
}

const ACTIVE = new Set<RolloutState["phase"]>(["progressing", "paused", "promoting"]);

/** A rollout the API may still abort (and a deploy of the service would be refused). */
export function isAbortable(rollout: RolloutState | null | undefined): rollout is RolloutState {
  return rollout != null && ACTIVE.has(rollout.phase);
}

/**
 * The API promotes a canary waiting at a pause (manual or timed) or during an analysis, without
 * `full`; anything else it refuses, so the view offers Promote only then.
 */
export function isPromotable(rollout: RolloutState | null | undefined): boolean {
  if (!isAbortable(rollout) || rollout.strategy !== "canary") return false;
  return rollout.phase === "paused" || rollout.pausedUntil !== undefined || (rollout.analysis !== undefined && rollout.phase === "progressing");
}

/** Where a canary is, in words: "step 2 of 3: pause until promoted". Undefined for other strategies. */
export function canaryPosition(detail: RolloutDetail): string | undefined {
  const r = detail.rollout;
  if (r == null || r.strategy !== "canary" || detail.steps.length === 0) return undefined;
  if (r.step >= detail.steps.length) return `after the last of ${detail.steps.length} steps: the new release takes all traffic`;
  return `step ${r.step + 1} of ${detail.steps.length}: ${describeStep(detail.steps[r.step])}`;
}

/** The most log text kept per run: beyond it the oldest lines go (a browser tab is not a log store). */
export const LOG_LIMIT = 200_000;

/** `text` cut to its last `limit` characters at a line start, with how many characters went. */
export function capLog(text: string, limit = LOG_LIMIT): { text: string; omitted: number } {
  if (text.length <= limit) return { text, omitted: 0 };
  let start = text.length - limit;
  const newline = text.indexOf("\n", start);
  if (newline >= 0 && newline < text.length - 1) start = newline + 1;
  return { text: text.slice(start), omitted: start };
}

/**
 * The first line of an error message: a failed stage's message goes on with its last log lines,
 * which the run's log shows in full.
 */
export function firstLine(message: string): string {
  return (message.split("\n")[0] ?? "").replace(/;\s*last log lines:\s*$/, "");
}

/** Splits streamed NDJSON text into its complete lines and the unfinished rest. */
export function splitLines(buffer: string): { lines: string[]; rest: string } {
  const parts = buffer.split("\n");
  const rest = parts.pop() ?? "";
  return { lines: parts.filter((l) => l.trim() !== ""), rest };
}
