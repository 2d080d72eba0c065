// The log lines that belong to one trace: the lines of the trace's services that carry its trace
// id (@keelson/sdk's logger writes `traceId` and `spanId` on every line of a traced request), read
// over the trace's time span only, for GET /v1/traces/:id/logs and the dashboard's waterfall.
import { GATEWAY_SERVICE_NAME } from "@keelson/protocol";
import { targetServiceOf, type SpanRecord } from "./trace-span.js";

/** A collected line of a replica (runtime's LogLine). */
export interface CollectedLogLine {
  /** ISO time at which the collector picked the line up. */
  t: string;
  replica: string;
  stream: "stdout" | "stderr";
  line: string;
}

export interface TraceLogLine extends CollectedLogLine {
  service: string;
  /** The span the line was written in, when the line says (a JSON line with `traceId` and `spanId`). */
  spanId?: string;
}

export interface TraceLogs {
  /** The services whose logs were read, sorted. */
  services: string[];
  /** In time order. */
  logs: TraceLogLine[];
  /** More lines matched than `limit`: the earliest `limit` are listed. */
  truncated: boolean;
}

export interface FindTraceLogsOptions {
  /** 32 lowercase hex digits. */
  traceId: string;
  spans: readonly SpanRecord[];
  /** The services whose logs may be read (the project's); others a span names are skipped. */
  known: ReadonlySet<string>;
  /** One service's collected lines from `since` on, in time order. */
  read: (service: string, since: Date) => AsyncIterable<CollectedLogLine>;
  /** Default 1000. */
  limit?: number;
  /** Lines collected this long before the first span started still count (default 5 s): clocks of replicas and the collector may differ. */
  earlyMs?: number;
  /** Lines are stamped when the collector picks them up: this long after the last span ended still counts (default 60 s). */
  lateMs?: number;
  /** The service name gateway spans carry; default GATEWAY_SERVICE_NAME. */
  gatewayService?: string;
}

export const DEFAULT_TRACE_LOG_LIMIT = 1000;

/**
 * The services whose logs can hold a trace's lines: those that sent spans, and those the gateway
 * forwarded to (a service without tracing still logs the trace id it received).
 */
export function traceServices(spans: readonly SpanRecord[], gatewayService = GATEWAY_SERVICE_NAME): string[] {
  const names = new Set<string>();
  for (const s of spans) {
    if (s.service !== gatewayService) names.add(s.service);
    else {
      const target = targetServiceOf(s);
      if (target !== undefined) names.add(target);
    }
  }
  return [...names].sort();
}

/**
 * Whether a log line belongs to the trace: it holds the trace id. The span id comes from a JSON
 * line whose `traceId` is this trace's (the SDK logger's format).
 */
export function matchTraceLine(line: string, traceId: string): { spanId: string | undefined } | undefined {
  if (!line.toLowerCase().includes(traceId)) return undefined;
  if (line.startsWith("{")) {
    try {
      const fields = JSON.parse(line) as { traceId?: unknown; spanId?: unknown };
      if (typeof fields.traceId === "string" && fields.traceId.toLowerCase() === traceId && typeof fields.spanId === "string") return { spanId: fields.spanId.toLowerCase() };
    } catch {
      // Not JSON after all: the id in the text is enough.
    }
  }
  return { spanId: undefined };
}

/**
 * Reads the trace's services' logs over the trace's time span and keeps the lines with its id.
 *
 * @example
 * const found = await findTraceLogs({ traceId, spans, known: new Set(["orders"]), read: (service, since) => readReplicaLogs({ logDir: join(stateDir, "logs", service), since }) });
 * // found.logs: [{ t, service: "orders", replica: "orders-0", stream: "stdout", line: "{…\"msg\":\"charging\"…}", spanId: "…" }]
 */
export async function findTraceLogs(options: FindTraceLogsOptions): Promise<TraceLogs> {
  const { traceId, spans, known, read } = options;
  const limit = options.limit ?? DEFAULT_TRACE_LOG_LIMIT;
  const services = traceServices(spans, options.gatewayService).filter((s) => known.has(s));
  if (spans.length === 0) return { services, logs: [], truncated: false };
  let startUs = Infinity;
  let endUs = -Infinity;
  for (const s of spans) {
    startUs = Math.min(startUs, s.startTimeUs);
    endUs = Math.max(endUs, s.startTimeUs + s.durationUs);
  }
  const since = new Date(Math.floor(startUs / 1000) - (options.earlyMs ?? 5_000));
  const untilMs = Math.ceil(endUs / 1000) + (options.lateMs ?? 60_000);
  const perService = await Promise.all(
    services.map(async (service) => {
      const found: TraceLogLine[] = [];
      for await (const l of read(service, since)) {
        // Lines come in time order: past the window, nothing more can match.
        if (Date.parse(l.t) > untilMs) break;
        const match = matchTraceLine(l.line, traceId);
        if (match === undefined) continue;
        found.push({ t: l.t, service, replica: l.replica, stream: l.stream, line: l.line, ...(match.spanId === undefined ? {} : { spanId: match.spanId }) });
        // One more than the limit tells that there were more.
        if (found.length > limit) break;
      }
      return found;
    }),
  );
  const all = perService.flat().sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.service.localeCompare(b.service)));
  return { services, logs: all.slice(0, limit), truncated: all.length > limit };
}
