// What the overview shows of each service's traffic, SLOs and rollout, as text with a tone: pure
// functions of the API's answers (tested in overview-metrics.test.ts). "No traffic" is never 0 %.
import type { ActiveRollout } from "@keelson/protocol";
import type { OpenIncident, RedRow, SloRow } from "./overview-api.js";

/** How a figure reads: `none` for no data, the others for how good it is. */
export type Tone = "ok" | "warn" | "bad" | "none";

export interface Cell {
  text: string;
  tone: Tone;
  /** More detail (the objectives behind a budget), for a tooltip and the accessible description. */
  detail?: string;
}

export const NO_TRAFFIC = "no traffic";

/** Requests per second: "<0.01/s", "0.25/s", "12.5/s", "340/s". */
export function formatRate(perSecond: number): string {
  if (perSecond <= 0) return "0/s";
  if (perSecond < 0.01) return "<0.01/s";
  if (perSecond < 10) return `${trim(perSecond.toFixed(2))}/s`;
  if (perSecond < 100) return `${trim(perSecond.toFixed(1))}/s`;
  return `${Math.round(perSecond)}/s`;
}

/** A ratio 0..1 as a percentage: "0%", "<0.1%", "2.5%", "37%"; negative ratios keep their sign. */
export function formatPercent(ratio: number): string {
  const sign = ratio < 0 ? "−" : "";
  const pct = Math.abs(ratio) * 100;
  if (pct === 0) return "0%";
  if (pct < 0.1) return `${sign}<0.1%`;
  if (pct < 10) return `${sign}${trim(pct.toFixed(1))}%`;
  return `${sign}${Math.round(pct)}%`;
}

/** Seconds as "<1 ms", "240 ms", "1.25 s", "12.5 s". */
export function formatLatency(seconds: number): string {
  if (seconds < 0.001) return "<1 ms";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 10) return `${trim(seconds.toFixed(2))} s`;
  return `${trim(seconds.toFixed(1))} s`;
}

/** "1.50" → "1.5", "2.00" → "2". */
function trim(fixed: string): string {
  return fixed.includes(".") ? fixed.replace(/\.?0+$/, "") : fixed;
}

export interface RedCells {
  rate: Cell;
  errors: Cell;
  p99: Cell;
}

/** The RED row of each service, by name (the API groups by service). */
export function redByService(rows: readonly RedRow[]): Map<string, RedRow> {
  const out = new Map<string, RedRow>();
  for (const row of rows) {
    const name = row.labels.service;
    if (name !== undefined && name !== "") out.set(name, row);
  }
  return out;
}

/**
 * The request rate, error ratio and p99 cells of one service. A service without a row, or whose
 * row counted no request in the window, has no traffic: every cell says so, none says 0 %.
 */
export function redCells(row: RedRow | undefined): RedCells {
  if (row === undefined || !(row.requestRate > 0)) {
    const none: Cell = { text: NO_TRAFFIC, tone: "none" };
    return { rate: none, errors: none, p99: none };
  }
  const ratio = row.errorRatio;
  return {
    rate: { text: formatRate(row.requestRate), tone: "ok" },
    errors: ratio === undefined ? { text: "–", tone: "none", detail: "no error ratio for the window" } : { text: formatPercent(ratio), tone: ratio >= 0.05 ? "bad" : ratio > 0 ? "warn" : "ok" },
    p99: row.p99 === undefined ? { text: "–", tone: "none", detail: "no timed requests in the window" } : { text: formatLatency(row.p99), tone: "ok" },
  };
}

/** "availability 99.9% over 30d", "latency 95% under 300 ms over 7d". */
export function describeObjective(s: Pick<SloRow, "slo" | "objective" | "target" | "thresholdSeconds" | "window">): string {
  const target = `${trim((s.target * 100).toFixed(3))}%`;
  const what = s.objective === "latency" && s.thresholdSeconds !== undefined ? `latency ${target} under ${formatLatency(s.thresholdSeconds)}` : `${s.objective} ${target}`;
  return `${s.slo}: ${what} over ${s.window}`;
}

/**
 * One service's error budget: the least left over its objectives (the one closest to breach).
 * "no SLO" without objectives; "no traffic" when none has requests to judge by.
 */
export function errorBudget(slos: readonly SloRow[], service: string): Cell {
  const mine = slos.filter((s) => s.service === service);
  if (mine.length === 0) return { text: "no SLO", tone: "none" };
  const detail = mine.map((s) => `${describeObjective(s)}: ${s.budgetRemaining === undefined ? NO_TRAFFIC : `${formatPercent(s.budgetRemaining)} of the budget left`}`).join("; ");
  const measured = mine.flatMap((s) => (s.budgetRemaining === undefined ? [] : [s.budgetRemaining]));
  if (measured.length === 0) return { text: NO_TRAFFIC, tone: "none", detail };
  const worst = Math.min(...measured);
  // Overspent: how many budgets' worth went (1 − remaining), "20× spent" reads better than "−1900%".
  if (worst <= 0) return { text: worst < 0 ? `exhausted (${trim((1 - worst).toFixed(1))}× spent)` : "exhausted", tone: "bad", detail };
  return { text: `${formatPercent(worst)} left`, tone: worst < 0.25 ? "warn" : "ok", detail };
}

/** The open incidents among the SLOs' statuses, newest first (each objective has at most one). */
export function openIncidents(slos: readonly SloRow[]): OpenIncident[] {
  const byId = new Map<number, OpenIncident>();
  for (const s of slos) if (s.incident !== undefined) byId.set(s.incident.id, s.incident);
  return [...byId.values()].sort((a, b) => (a.openedAt < b.openedAt ? 1 : a.openedAt > b.openedAt ? -1 : b.id - a.id));
}

const STRATEGY: Record<ActiveRollout["strategy"], string> = { rolling: "Rolling", blueGreen: "Blue-green", canary: "Canary", rollback: "Rollback" };

/** "Canary paused at step 2 of 3, 20% of traffic on the new release", "Blue-green switched, warm until it ends". */
export function describeRollout(r: ActiveRollout): string {
  const phase = {
    progressing: "in progress",
    paused: r.strategy === "canary" && r.steps > 0 ? `paused at step ${Math.min(r.step + 1, r.steps)} of ${r.steps}` : "paused",
    promoting: "promoting",
    switched: "switched, previous release kept warm",
    finishing: "finishing",
  }[r.phase];
  const step = r.phase !== "paused" && r.strategy === "canary" && r.steps > 0 ? `, step ${Math.min(r.step + 1, r.steps)} of ${r.steps}` : "";
  return `${STRATEGY[r.strategy]} ${phase}${step}, ${r.weight}% of traffic on the new release`;
}
