// The DORA export as CSV (RFC 4180): one row per deployment in the report, for spreadsheets.
import type { DoraReport } from "./dora.js";

export const DORA_CSV_COLUMNS = [
  "deployment",
  "service",
  "team",
  "strategy",
  "release",
  "previous_release",
  "commit",
  "commit_time",
  "started_at",
  "served_at",
  "completed_at",
  "ended_at",
  "rollout",
  "changes",
  "change_source",
  "skewed_changes",
  "lead_time_seconds",
  "failed",
  "cause",
  "reason",
  "recovery_from",
  "recovery_to",
  "recovery_seconds",
] as const;

function cell(value: string | number | boolean | undefined): string {
  if (value === undefined) return "";
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const seconds = (ms: number | undefined) => (ms === undefined ? undefined : Math.round(ms / 1000));

/**
 * The report's deployments as CSV with a header row; lines end in CRLF as RFC 4180 says.
 *
 * @example
 * res.end(doraCsv(report)); // "deployment,service,team,...\r\nro-1a2b3c4d,orders,commerce,...\r\n"
 */
export function doraCsv(report: Pick<DoraReport, "deployments">): string {
  const rows = report.deployments.map((d) =>
    [
      d.id,
      d.service,
      d.team,
      d.strategy,
      d.release,
      d.previousRelease,
      d.commit,
      d.commitTime,
      d.startedAt,
      d.servedAt,
      d.completedAt,
      d.endedAt,
      d.rollout,
      d.changes,
      d.changeSource,
      d.skewed,
      seconds(d.leadTimeMs),
      d.failed,
      d.causes.join("+") || undefined,
      d.reason,
      d.recovery?.from,
      d.recovery?.to,
      seconds(d.recovery?.ms),
    ]
      .map(cell)
      .join(","),
  );
  return [DORA_CSV_COLUMNS.join(","), ...rows].map((line) => `${line}\r\n`).join("");
}
