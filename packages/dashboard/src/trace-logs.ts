// The log lines that share a trace's id (GET /v1/traces/:id/logs), and how the waterfall shows
// them: the SDK logger's JSON lines read as time, level, message and fields; each line matched
// against the selected span (its own lines, its service's lines, or others).
import type { Api, SpanRecord } from "./api.js";

/** One collected line of a replica that carries the trace's id. */
export interface TraceLogLine {
  /** ISO time at which the collector picked the line up. */
  t: string;
  service: string;
  replica: string;
  stream: "stdout" | "stderr";
  line: string;
  /** The span the line was written in, when the line says (@keelson/sdk's logger does). */
  spanId?: string;
}

export interface TraceLogs {
  traceId: string;
  /** The services whose logs were searched. */
  services: string[];
  logs: TraceLogLine[];
  truncated: boolean;
}

export function fetchTraceLogs(api: Api, traceId: string, signal?: AbortSignal): Promise<TraceLogs> {
  return api.get<TraceLogs>(`/v1/traces/${encodeURIComponent(traceId)}/logs`, signal);
}

export interface LogEntry {
  /** Milliseconds since the Unix epoch: the line's own `time` when it has one, else when it was collected. */
  atMs: number;
  level: string | undefined;
  message: string;
  /** The line's other fields, `key=value`, for a JSON line. */
  fields: string;
}

/** Fields every SDK line carries that the row shows elsewhere (or that say nothing here). */
const SHOWN = new Set(["time", "level", "msg", "service", "replica", "traceId", "spanId", "requestId"]);

/** Reads a line: an SDK JSON line as its parts, anything else as the message. */
export function logEntry(log: TraceLogLine): LogEntry {
  const collected = Date.parse(log.t);
  if (log.line.startsWith("{")) {
    try {
      const v = JSON.parse(log.line) as Record<string, unknown>;
      if (v !== null && typeof v === "object" && !Array.isArray(v)) {
        const time = typeof v.time === "string" ? Date.parse(v.time) : Number.NaN;
        const fields = Object.entries(v)
          .filter(([k]) => !SHOWN.has(k))
          .map(([k, value]) => `${k}=${typeof value === "string" ? value : JSON.stringify(value)}`)
          .join(" ");
        return {
          atMs: Number.isFinite(time) ? time : collected,
          level: typeof v.level === "string" ? v.level : undefined,
          message: typeof v.msg === "string" ? v.msg : typeof v.message === "string" ? v.message : "",
          fields,
        };
      }
    } catch {
      // Not JSON after all: shown as it is.
    }
  }
  return { atMs: collected, level: undefined, message: log.line, fields: "" };
}

/** How a line relates to the selected span: written in it, by its service, or neither (or nothing selected). */
export type LogRelation = "span" | "service" | "other";

export function logRelation(log: TraceLogLine, selected: SpanRecord | undefined): LogRelation {
  if (selected === undefined) return "other";
  if (log.spanId !== undefined && log.spanId === selected.spanId) return "span";
  return log.service === selected.service ? "service" : "other";
}

export interface LogRow {
  /** Place in the API's answer: a stable key. */
  index: number;
  log: TraceLogLine;
  entry: LogEntry;
  relation: LogRelation;
}

/**
 * The rows the waterfall lists, by the time each line gives itself (the API orders them by when
 * they were collected, which can lag a little and differently per replica).
 */
export function logRows(logs: readonly TraceLogLine[], selected: SpanRecord | undefined): LogRow[] {
  return logs.map((log, index) => ({ index, log, entry: logEntry(log), relation: logRelation(log, selected) })).sort((a, b) => a.entry.atMs - b.entry.atMs || a.index - b.index);
}
