// What the DORA view shows, as pure functions of GET /v1/dora and GET /v1/teams (tested in
// dora-format.test.ts): the scope selector's values, each key's figure and bucket in words, the
// weekly series the charts draw, and per-team totals.
import type { DoraBucket, DoraReport, DoraScope, DoraServiceSummary, DoraWeek, Team } from "./dora-api.js";

/** The scope as a <select> value: "all", "team:<name>", "service:<name>". */
export function scopeValue(scope: DoraScope): string {
  return scope.kind === "all" ? "all" : `${scope.kind}:${scope.name}`;
}

/** A <select> value back to a scope; anything unknown is the whole project. */
export function parseScope(value: string): DoraScope {
  const m = /^(team|service):(.+)$/.exec(value);
  if (m?.[1] === "team") return { kind: "team", name: m[2] as string };
  if (m?.[1] === "service") return { kind: "service", name: m[2] as string };
  return { kind: "all" };
}

/** "the whole project", "team core", "service api". */
export function describeScope(scope: DoraScope): string {
  return scope.kind === "all" ? "the whole project" : `${scope.kind} ${scope.name}`;
}

/** The scope a report covers, as the API echoes it. */
export function scopeOf(report: Pick<DoraReport, "scope">): DoraScope {
  const { team, service } = report.scope;
  return service !== undefined ? { kind: "service", name: service } : team !== undefined ? { kind: "team", name: team } : { kind: "all" };
}

/** Whether a report is the one asked for (the old one stays on screen, marked, while the new one loads). */
export function reportMatches(report: Pick<DoraReport, "scope">, scope: DoraScope): boolean {
  return scopeValue(scopeOf(report)) === scopeValue(scope);
}

/** The scopes to choose from: teams (declared or owning a service) and services, each sorted. */
export function scopeOptions(teams: readonly Team[], report: DoraReport | undefined): { teams: string[]; services: string[] } {
  const services = new Set<string>();
  for (const t of teams) for (const s of t.services) services.add(s);
  // Services no team lists (the report's own scope when it is one service) stay selectable.
  for (const s of report?.scope.services ?? []) services.add(s);
  const sort = (xs: Iterable<string>) => [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { teams: sort(teams.map((t) => t.name)), services: sort(services) };
}

/** Milliseconds as "1.5 s", "45 s", "12 min", "5.5 h", "3.2 days". */
export function formatDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 10) return `${trim(s.toFixed(1))} s`;
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${trim((s / 3600).toFixed(1))} h`;
  return `${trim((s / 86_400).toFixed(1))} days`;
}

/** A ratio 0..1 as "0%", "12.5%", "100%" (one decimal: the buckets cut at 5, 10 and 15 %). */
export function formatRate(ratio: number): string {
  return `${trim((ratio * 100).toFixed(1))}%`;
}

function trim(fixed: string): string {
  return fixed.includes(".") ? fixed.replace(/\.?0+$/, "") : fixed;
}

const BUCKET_WORDS: Record<DoraBucket, string> = { elite: "Elite", high: "High", medium: "Medium", low: "Low" };

export function bucketLabel(bucket: DoraBucket | null): string {
  return bucket === null ? "No bucket" : BUCKET_WORDS[bucket];
}

/** One of the four keys as a card shows it: the figure, its bucket, what it counts, or why there is none. */
export interface KeyFigure {
  key: "deploymentFrequency" | "leadTime" | "changeFailureRate" | "recoveryTime";
  title: string;
  value: string | undefined;
  bucket: DoraBucket | null;
  detail: string;
}

/** "1 change", "3 changes". */
export const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The four keys of a report in DORA's order, with the API's buckets (the view never computes its own). */
export function keyFigures(report: DoraReport): KeyFigure[] {
  const { deploymentFrequency: f, leadTime: l, changeFailureRate: c, recoveryTime: r } = report.summary;
  const frequency = f.perDay === null || f.perWeek === null ? undefined : f.perDay >= 1 ? `${trim(f.perDay.toFixed(1))} per day` : `${trim(f.perWeek.toFixed(1))} per week`;
  const leadNotes = [l.withoutCommit > 0 ? `${plural(l.withoutCommit, "deployment")} without a known commit` : "", l.skewed > 0 ? `${plural(l.skewed, "change")} ignored (commit time after the deployment)` : ""].filter((x) => x !== "");
  return [
    { key: "deploymentFrequency", title: "Deployment frequency", value: frequency, bucket: f.bucket, detail: f.reason ?? `${plural(f.deployments, "successful deployment")} in ${plural(Number(trim(reportDays(report).toFixed(1))), "day")}` },
    {
      key: "leadTime",
      title: "Lead time for changes",
      value: l.medianMs === null ? undefined : formatDuration(l.medianMs),
      bucket: l.bucket,
      detail: l.reason ?? [`median of ${plural(l.changes, "change")}`, ...leadNotes].join("; "),
    },
    { key: "changeFailureRate", title: "Change failure rate", value: c.value === null ? undefined : formatRate(c.value), bucket: c.bucket, detail: c.reason ?? `${c.failed} of ${plural(c.deployments, "deployment")} failed` },
    {
      key: "recoveryTime",
      title: "Time to restore",
      value: r.medianMs === null ? undefined : formatDuration(r.medianMs),
      bucket: r.bucket,
      detail: r.reason ?? `median of ${plural(r.recovered, "recovered failure")}${r.unrecovered > 0 ? `; ${r.unrecovered} not restored yet` : ""}`,
    },
  ];
}

/** The weekly trend as chart data: each week's Monday (seconds) and one series per key; null where a week has no figure. */
export interface WeeklySeries {
  times: number[];
  successful: Array<number | null>;
  failed: Array<number | null>;
  leadTimeMs: Array<number | null>;
  changeFailureRate: Array<number | null>;
  recoveryMs: Array<number | null>;
}

const WEEK_S = 7 * 86_400;

/**
 * The weeks as chart series. A single week (the data began this week) gets the week before it as
 * a gap, so the time axis spans weeks rather than the years a chart picks around one point.
 */
export function weeklySeries(weeks: readonly DoraWeek[]): WeeklySeries {
  const times = weeks.map((w) => Date.parse(`${w.start}T00:00:00Z`) / 1000);
  const pad = weeks.length === 1 ? 1 : 0;
  const gap = <T,>(values: T[]): Array<T | null> => (pad === 1 ? [null, ...values] : values);
  return {
    times: pad === 1 ? [(times[0] as number) - WEEK_S, ...times] : times,
    successful: gap(weeks.map((w) => w.successful)),
    failed: gap(weeks.map((w) => w.failed)),
    leadTimeMs: gap(weeks.map((w) => w.medianLeadTimeMs)),
    changeFailureRate: gap(weeks.map((w) => w.changeFailureRate)),
    recoveryMs: gap(weeks.map((w) => w.medianRecoveryMs)),
  };
}

/** Days the report's rates are over: from where the window (or the data) starts to its end, at least one, as the API counts them. */
export function reportDays(report: Pick<DoraReport, "window">): number {
  return Math.max(1, (Date.parse(report.window.to) - Date.parse(report.window.from)) / 86_400_000);
}

/** One team's deployments over the window, summed from its services (counts add up; medians do not, so none are given). */
export interface TeamTotals {
  team: string;
  services: number;
  members: number;
  deployments: number;
  failed: number;
  /** failed / deployments, as the API defines the change failure rate; null without deployments. */
  changeFailureRate: number | null;
}

export function teamTotals(teams: readonly Team[], services: readonly DoraServiceSummary[]): TeamTotals[] {
  return teams.map((t) => {
    const mine = services.filter((s) => s.team === t.name);
    const deployments = mine.reduce((n, s) => n + s.deployments, 0);
    const failed = mine.reduce((n, s) => n + s.failed, 0);
    return { team: t.name, services: t.services.length, members: t.members.length, deployments, failed, changeFailureRate: deployments === 0 ? null : failed / deployments };
  });
}
