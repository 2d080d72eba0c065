// Which events are worth telling people about, and how to say it: maps an event of the log to a
// notification kind (deploy.started, canary.rolled-back, ...) with a one-line summary in plain
// words. Pure: the notifier reads the events, this decides what they mean.
import type { EventKind, KeelsonEvent } from "@keelson/protocol";
import type { NotificationKind } from "../manifest/index.js";

/** The event kinds the notifier reads (everything else in the log is never notified). */
export const NOTIFIED_EVENT_KINDS = [
  "rollout.started",
  "rollout.succeeded",
  "rollout.failed",
  "rollback.started",
  "rollback.succeeded",
  "pipeline.failed",
  "security.blocked",
  "incident.opened",
  "incident.resolved",
] as const satisfies readonly EventKind[];
export type NotifiedEventKind = (typeof NOTIFIED_EVENT_KINDS)[number];

const isNotified = (kind: EventKind): kind is NotifiedEventKind => (NOTIFIED_EVENT_KINDS as readonly EventKind[]).includes(kind);

/** What one event is worth telling: its kind, service and summary, and the facts behind it. */
export interface Notification {
  kind: NotificationKind;
  /**
   * The kind a webhook that does not take `kind` gets instead: a rolled-back canary and a release
   * stopped by the security gate are failed deploys too, so a webhook that asked only for
   * deploy.failed still hears of them (once: a webhook that takes both gets `kind`).
   */
  fallback?: NotificationKind;
  service: string | undefined;
  /** One line in plain words, e.g. "orders: canary r-3f9a1c2b7d4e rolled back: error ratio 5.1% vs 0.2% (SPRT)". */
  summary: string;
  /** The release the notification is about (deployed, rolled back, blocked). */
  release: string | undefined;
  commit: string | undefined;
  /** Who caused it, as the event names them (`user:ana`, `reconciler`, `telemetry`). */
  actor: string;
}

/** What the mapping needs to know beyond the event itself. */
export interface NotificationContext {
  /** pipeline.failed only: the security gate stopped this run (and told about it as security.blocked). */
  securityBlocked?: boolean;
}

/**
 * The notification an event is worth, or undefined for one nobody is told about.
 *
 * @example
 * notificationOf(event)?.summary; // "orders: r-3f9a1c2b7d4e deployed (canary from r-77aa01bc23de, 2 min 3 s)"
 */
export function notificationOf(event: KeelsonEvent, context: NotificationContext = {}): Notification | undefined {
  const d = event.details;
  const service = serviceOf(event);
  const who = service ?? event.subject;
  const commit = str(d.commit);
  const base = { service, commit, actor: event.actor };
  const kind = event.kind;
  if (!isNotified(kind)) return undefined;
  switch (kind) {
    case "rollout.started": {
      const to = str(d.to);
      const how = str(d.strategy) ?? "rolling";
      const from = str(d.from);
      return { ...base, kind: "deploy.started", release: to, summary: `${who}: deploying ${to ?? "a new release"} (${from ? `${how} from ${from}` : "first release"}) by ${event.actor}` };
    }
    case "rollback.started": {
      const to = str(d.to);
      const why = str(d.why);
      return { ...base, kind: "deploy.started", release: to, summary: `${who}: rolling back to ${to ?? "the previous release"}${str(d.from) ? ` from ${str(d.from)}` : ""} by ${event.actor}${why ? `: ${firstLine(why)}` : ""}` };
    }
    case "rollout.succeeded":
    case "rollback.succeeded": {
      const to = str(d.to);
      const took = typeof d.durationMs === "number" ? `, ${humanDuration(d.durationMs)}` : "";
      if (kind === "rollback.succeeded") return { ...base, kind: "deploy.succeeded", release: to, summary: `${who}: rolled back to ${to ?? "the previous release"}${took ? ` (${took.slice(2)})` : ""}` };
      const from = str(d.from);
      return { ...base, kind: "deploy.succeeded", release: to, summary: `${who}: ${to ?? "the new release"} deployed (${from ? `${str(d.strategy) ?? "rolling"} from ${from}` : "first release"}${took})` };
    }
    case "rollout.failed": {
      const to = str(d.to);
      const why = firstLine(str(d.why) ?? "no reason recorded");
      const back = str(d.rolledBackTo);
      if (d.strategy === "canary" && back !== undefined) {
        return { ...base, kind: "canary.rolled-back", fallback: "deploy.failed", release: to, summary: `${who}: canary${to ? ` ${to}` : ""} rolled back to ${back}: ${canaryReason(d) ?? why}` };
      }
      if (d.strategy === "rollback") return { ...base, kind: "deploy.failed", release: to, summary: `${who}: rollback to ${to ?? "the previous release"} failed: ${why}` };
      return {
        ...base,
        kind: "deploy.failed",
        release: to,
        summary: back !== undefined ? `${who}: deploy of ${to ?? "a new release"} failed, rolled back to ${back}: ${why}` : `${who}: deploy of ${to ?? "a new release"} failed: ${why}`,
      };
    }
    case "pipeline.failed": {
      // The security gate's block is told as security.blocked (or deploy.failed to webhooks that take only that).
      if (context.securityBlocked) return undefined;
      const message = firstLine(str(d.message) ?? "the pipeline failed");
      return { ...base, kind: "deploy.failed", release: str(d.release), summary: `${who}: pipeline${str(d.run) ? ` ${str(d.run)}` : ""} failed, no release was made: ${message}` };
    }
    case "security.blocked": {
      const blocking = typeof d.blocking === "number" ? d.blocking : undefined;
      const kinds = d.byKind !== null && typeof d.byKind === "object" ? Object.entries(d.byKind as Record<string, unknown>).map(([k, n]) => `${String(n)} ${n === 1 ? k : plural(k)}`) : [];
      const found = blocking !== undefined ? `${blocking} blocking finding${blocking === 1 ? "" : "s"}${kinds.length > 0 ? ` (${kinds.join(", ")})` : ""}` : firstLine(str(d.message) ?? "findings the policy blocks");
      return { ...base, kind: "security.blocked", fallback: "deploy.failed", release: str(d.release), summary: `${who}: security gate blocked ${str(d.release) ?? "the release"}: ${found}` };
    }
    case "incident.opened": {
      const alerts = Array.isArray(d.alerts) ? (d.alerts as Array<Record<string, unknown>>) : [];
      const top = alerts.find((a) => a.severity === d.severity) ?? alerts[0];
      const burn = top && typeof top.longBurnRate === "number" ? `, burning its error budget ${round1(top.longBurnRate)}× too fast over ${String(top.longWindow ?? "the long window")}` : "";
      const target = typeof d.target === "number" ? ` ${round3(d.target * 100)}%${d.sloWindow ? ` over ${String(d.sloWindow)}` : ""}` : "";
      return { ...base, kind: "incident.opened", release: undefined, summary: `${who}: incident opened (${str(d.severity) ?? "ticket"}): SLO ${str(d.slo) ?? "?"} (${str(d.objective) ?? "availability"}${target})${burn}` };
    }
    case "incident.resolved": {
      const took = typeof d.durationMs === "number" ? ` after ${humanDuration(d.durationMs)}` : "";
      const reason = str(d.reason);
      return { ...base, kind: "incident.resolved", release: undefined, summary: `${who}: incident resolved${took}: SLO ${str(d.slo) ?? "?"}${reason ? ` (${reason})` : " is back within its burn-rate thresholds"}` };
    }
  }
}

/** The service an event is about: its subject `service/<name>`, else `details.service`. */
export function serviceOf(event: KeelsonEvent): string | undefined {
  const m = /^service\/(.+)$/.exec(event.subject);
  if (m) return m[1];
  return str(event.details.service);
}

/**
 * The chaos experiment that explains an event, if any: one running on its service (or on every
 * service) at the event's time, or that ended less than `graceMs` before it. `chaos` are
 * chaos.started and chaos.stopped events, in any order.
 */
export function chaosExperimentAt(chaos: readonly KeelsonEvent[], service: string, at: number, graceMs: number): string | undefined {
  const stopped = new Map<string, number>();
  for (const e of chaos) if (e.kind === "chaos.stopped" && typeof e.details.experiment === "string") stopped.set(e.details.experiment, Date.parse(e.at));
  for (const e of chaos) {
    if (e.kind !== "chaos.started") continue;
    const id = str(e.details.experiment);
    const target = str(e.details.service);
    if (id === undefined || (target !== undefined && target !== service)) continue;
    const start = Date.parse(e.at);
    const planned = typeof e.details.durationMs === "number" ? start + e.details.durationMs : start;
    const end = Math.min(planned, stopped.get(id) ?? Infinity);
    if (at >= start && at < end + graceMs) return id;
  }
  return undefined;
}

/** "error ratio 5.1% vs 0.2% (SPRT)" from the failed checks of a canary analysis' evidence. */
function canaryReason(d: Record<string, unknown>): string | undefined {
  const analysis = d.analysis as { evidence?: { canary?: { errorRatio?: number; p99?: number }; baseline?: { errorRatio?: number; p99?: number }; checks?: Array<{ name?: string; status?: string; detail?: string }> } } | undefined;
  const e = analysis?.evidence;
  const failed = (e?.checks ?? []).filter((c) => c.status === "fail");
  if (e === undefined || failed.length === 0) return undefined;
  return failed
    .map((c) => {
      if (c.name === "error ratio") return `error ratio ${pct(e.canary?.errorRatio)} vs ${pct(e.baseline?.errorRatio)} (SPRT)`;
      if (c.name === "latency") return `p99 latency ${seconds(e.canary?.p99)} vs ${seconds(e.baseline?.p99)} (Mann-Whitney)`;
      const detail = (c.detail ?? "").split("; evidence")[0] ?? "";
      return `${c.name ?? "check"} ${detail}${c.name === "latency tail" ? " (SPRT)" : ""}`.trim();
    })
    .join("; ");
}

/** "850 ms", "12 s", "3 min 4 s", "2 h 5 min". */
export function humanDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 === 0 ? `${m} min` : `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  return m % 60 === 0 ? `${h} h` : `${h} h ${m % 60} min`;
}

const plural = (word: string): string => (word.endsWith("y") ? `${word.slice(0, -1)}ies` : `${word}s`);
const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const firstLine = (text: string): string => {
  const line = text.split("\n")[0] ?? "";
  return line.length > 300 ? `${line.slice(0, 299)}…` : line;
};
const pct = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? "-" : `${(x * 100).toFixed(1)}%`);
const seconds = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? "-" : `${Math.round(x * 1000)} ms`);
const round1 = (x: number): string => (Math.round(x * 10) / 10).toString();
const round3 = (x: number): string => (Math.round(x * 1000) / 1000).toString();
