// A JSON-lines logger for services: one object per line on stdout with time, level, service,
// replica, the current request id and trace/span ids, so the platform can collect and join logs.
import { REPLICA_ENV } from "@keelson/protocol";
import { activeSpanContext, currentRequest } from "./request-context.js";

export type LogLevel = "debug" | "info" | "warn" | "error";
/** Levels a logger can be set to; "silent" drops everything (tests). */
export type LogThreshold = LogLevel | "silent";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  /** Defaults to $KEELSON_SERVICE. */
  service?: string;
  /** Defaults to $KEELSON_REPLICA. */
  replica?: string;
  /** Lowest level written; defaults to "info". */
  level?: LogThreshold;
  /** Where a finished line (with its trailing newline) goes; defaults to process.stdout. */
  write?: (line: string) => void;
  /** Clock for the `time` field; injectable for tests. */
  now?: () => Date;
}

const RANK: Record<LogThreshold, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };
/** Keys the logger owns; a field with one of these names is kept under `field.<name>` instead. */
const RESERVED = new Set(["time", "level", "msg"]);

/**
 * Creates a logger.
 *
 * @example
 * const log = createLogger();
 * log.info("order placed", { orderId });
 * // {"time":"…","level":"info","service":"orders","replica":"orders-0","requestId":"…","msg":"order placed","orderId":"…"}
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const base: LogFields = {
    service: options.service ?? process.env[REPLICA_ENV.SERVICE],
    replica: options.replica ?? process.env[REPLICA_ENV.REPLICA],
  };
  const sink = options.write ?? ((line: string) => void process.stdout.write(line));
  const now = options.now ?? (() => new Date());
  const threshold = RANK[options.level ?? "info"] ?? RANK.info;
  // Logging must never take the service down: a failing sink or an unserializable field is
  // reported once on stderr and the line is dropped or simplified.
  let reportedFailure = false;
  const reportOnce = (err: unknown) => {
    if (reportedFailure) return;
    reportedFailure = true;
    try {
      process.stderr.write(`@keelson/sdk logger: a log line could not be written: ${String(err)}\n`);
    } catch {
      // Nowhere left to report to.
    }
  };

  const make = (bound: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields: LogFields | undefined) => {
      if (RANK[level] < threshold) return;
      try {
        sink(formatLine({ time: now().toISOString(), level, bound, msg, fields }) + "\n");
      } catch (err) {
        reportOnce(err);
      }
    };
    return {
      debug: (msg, fields) => emit("debug", msg, fields),
      info: (msg, fields) => emit("info", msg, fields),
      warn: (msg, fields) => emit("warn", msg, fields),
      error: (msg, fields) => emit("error", msg, fields),
      child: (fields) => make({ ...bound, ...fields }),
    };
  };
  return make(base);
}

function formatLine(parts: { time: string; level: LogLevel; bound: LogFields; msg: string; fields: LogFields | undefined }): string {
  const { service, replica, ...restBound } = parts.bound;
  const span = activeSpanContext();
  const line: LogFields = {
    time: parts.time,
    level: parts.level,
    service,
    replica,
    requestId: currentRequest()?.requestId,
    // Joins a log line to its trace: `keelson trace <traceId>` shows the request it belongs to.
    traceId: span?.traceId,
    spanId: span?.spanId,
    msg: String(parts.msg),
  };
  for (const source of [restBound, parts.fields ?? {}]) {
    for (const [key, value] of Object.entries(source)) {
      line[RESERVED.has(key) ? `field.${key}` : key] = value instanceof Error ? serializeError(value) : value;
    }
  }
  try {
    return JSON.stringify(line, jsonReplacer());
  } catch {
    // A getter that throws, say: keep the line itself rather than lose it.
    return JSON.stringify({ time: line.time, level: line.level, service, replica, requestId: line.requestId, traceId: line.traceId, spanId: line.spanId, msg: line.msg, logError: "fields could not be serialized" });
  }
}

function serializeError(err: Error, depth = 0): LogFields {
  const out: LogFields = { name: err.name, message: err.message, stack: err.stack };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  // Depth-limited because a cause chain can loop back on itself.
  if (err.cause !== undefined && depth < 5) out.cause = err.cause instanceof Error ? serializeError(err.cause, depth + 1) : err.cause;
  return out;
}

/** Makes BigInts, nested Errors and cycles printable instead of letting JSON.stringify throw. */
function jsonReplacer(): (key: string, value: unknown) => unknown {
  const seen = new WeakSet<object>();
  return (_key, value) => {
    if (typeof value === "bigint") return value.toString();
    if (value instanceof Error) return serializeError(value);
    if (typeof value === "object" && value !== null) {
      if (seen.has(value)) return "[Circular]";
      seen.add(value);
    }
    return value;
  };
}
