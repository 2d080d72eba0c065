// The TraceStore interface: where received spans live until retention drops them. A memory
// implementation (tests, benchmarks) and a SQLite one (.keelson/traces.db) share one
// conformance suite; it is kept apart from the Store so PostgreSQL need not carry spans.
import { KeelsonError } from "@keelson/protocol";
import { targetServiceOf } from "./trace-span.js";
import type { SpanRecord, SpanStatus } from "./trace-span.js";

/** Find traces having at least one span that matches every given filter. */
export interface TraceSearch {
  /** The span's own service, or the service a client/gateway span called. */
  service?: string;
  status?: SpanStatus;
  /** The matching span lasted at least this long. */
  minDurationMs?: number;
  /** The matching span started at or after this time (epoch ms). */
  fromMs?: number;
  /** The matching span started at or before this time (epoch ms). */
  toMs?: number;
  /** At most this many traces, newest first; default 20, at most 1000. */
  limit?: number;
}

/** Spans in a time range, newest first (for the service map). */
export interface SpanScan {
  fromMs?: number;
  toMs?: number;
  /** Default 10 000, at most 100 000. */
  limit?: number;
}

export interface TraceSummary {
  traceId: string;
  /** The root span's service and name (the earliest span when the root has not arrived). */
  rootService: string;
  rootName: string;
  startTimeUs: number;
  /** From the earliest start to the latest end of the trace's spans. */
  durationUs: number;
  spanCount: number;
  errorCount: number;
  /** Sorted. */
  services: string[];
}

export interface TraceRetention {
  /** Spans that started longer ago than this are dropped; default 24 h. */
  maxAgeMs?: number;
  /** The oldest-received spans beyond this count are dropped. */
  maxSpans?: number;
}

export interface TraceStore {
  /** "memory" or "sqlite". */
  readonly kind: string;
  /**
   * Stores spans. A span whose trace id and span id are already stored is skipped (spans
   * do not change once ended), so a sender retrying a request does not duplicate them.
   * Applies retention.
   */
  write(spans: readonly SpanRecord[]): Promise<void>;
  search(query?: TraceSearch): Promise<TraceSummary[]>;
  /** All stored spans of a trace, by start time; empty when none is stored. */
  getTrace(traceId: string): Promise<SpanRecord[]>;
  listSpans(query?: SpanScan): Promise<SpanRecord[]>;
  /** Applies retention now; returns how many spans were dropped. */
  prune(): Promise<number>;
  /** How many spans are stored. */
  count(): Promise<number>;
  close(): Promise<void>;
}

export const DEFAULT_TRACE_MAX_AGE_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_SEARCH_LIMIT = 20;
export const MAX_SEARCH_LIMIT = 1000;
export const DEFAULT_SCAN_LIMIT = 10_000;
export const MAX_SCAN_LIMIT = 100_000;
/** Age-based pruning runs on write at most this often, since it scans. */
export const AGE_PRUNE_INTERVAL_MS = 60_000;

/** A search with every filter checked and converted to microseconds. */
export interface NormalizedSearch {
  service: string | undefined;
  status: SpanStatus | undefined;
  minDurationUs: number | undefined;
  fromUs: number | undefined;
  toUs: number | undefined;
  limit: number;
}

/** Checks a search; throws KEELSON_ERR_INVALID_INPUT naming the bad field. */
export function normalizeSearch(query: TraceSearch = {}): NormalizedSearch {
  if (query.service !== undefined && (typeof query.service !== "string" || query.service === "")) invalid("service", "a service name", query.service);
  if (query.status !== undefined && !["unset", "ok", "error"].includes(query.status)) invalid("status", '"error", "ok" or "unset"', query.status);
  return {
    service: query.service,
    status: query.status,
    minDurationUs: optionalMs(query.minDurationMs, "minDurationMs"),
    fromUs: optionalMs(query.fromMs, "fromMs"),
    toUs: optionalMs(query.toMs, "toMs"),
    limit: limitOf(query.limit, "limit", DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT),
  };
}

export function normalizeScan(query: SpanScan = {}): { fromUs: number | undefined; toUs: number | undefined; limit: number } {
  return { fromUs: optionalMs(query.fromMs, "fromMs"), toUs: optionalMs(query.toMs, "toMs"), limit: limitOf(query.limit, "limit", DEFAULT_SCAN_LIMIT, MAX_SCAN_LIMIT) };
}

/** A trace id as stored (32 lowercase hex digits); throws KEELSON_ERR_INVALID_INPUT otherwise. */
export function normalizeTraceId(traceId: string): string {
  if (typeof traceId !== "string" || !/^[0-9a-fA-F]{32}$/.test(traceId)) invalid("traceId", "32 hex digits", traceId);
  return traceId.toLowerCase();
}

/** Whether a span passes a search's filters (the memory store; SQLite says the same in SQL). */
export function spanMatches(span: SpanRecord, q: NormalizedSearch): boolean {
  if (q.service !== undefined && span.service !== q.service && targetServiceOf(span) !== q.service) return false;
  if (q.status !== undefined && span.status !== q.status) return false;
  if (q.minDurationUs !== undefined && span.durationUs < q.minDurationUs) return false;
  if (q.fromUs !== undefined && span.startTimeUs < q.fromUs) return false;
  if (q.toUs !== undefined && span.startTimeUs > q.toUs) return false;
  return true;
}

/** The summary of a trace's spans (any order); undefined for no spans. */
export function summarizeTrace(spans: readonly SpanRecord[]): TraceSummary | undefined {
  const first = spans[0];
  if (first === undefined) return undefined;
  const ids = new Set(spans.map((s) => s.spanId));
  let start = Infinity;
  let end = -Infinity;
  let errors = 0;
  let root: SpanRecord | undefined;
  let orphan: SpanRecord | undefined;
  let earliest = first;
  const services = new Set<string>();
  for (const s of spans) {
    start = Math.min(start, s.startTimeUs);
    end = Math.max(end, s.startTimeUs + s.durationUs);
    if (s.status === "error") errors++;
    services.add(s.service);
    if (s.startTimeUs < earliest.startTimeUs) earliest = s;
    // A broken sender can leave several parentless spans; the earliest one heads the trace.
    if (s.parentSpanId === undefined) {
      if (root === undefined || s.startTimeUs < root.startTimeUs) root = s;
    } else if (!ids.has(s.parentSpanId) && (orphan === undefined || s.startTimeUs < orphan.startTimeUs)) {
      orphan = s;
    }
  }
  const head = root ?? orphan ?? earliest;
  return {
    traceId: first.traceId,
    rootService: head.service,
    rootName: head.name,
    startTimeUs: start,
    durationUs: end - start,
    spanCount: spans.length,
    errorCount: errors,
    services: [...services].sort(),
  };
}

/** Sorts spans by start time, then span id, so every store hands a trace out in one order. */
export function bySpanStart(a: SpanRecord, b: SpanRecord): number {
  return a.startTimeUs - b.startTimeUs || (a.spanId < b.spanId ? -1 : a.spanId > b.spanId ? 1 : 0);
}

function optionalMs(value: number | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) invalid(field, "a number of milliseconds ≥ 0", value);
  return Math.round(value * 1000);
}

function limitOf(value: number | undefined, field: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) invalid(field, `a whole number from 1 to ${max}`, value);
  return Math.min(value, max);
}

function invalid(field: string, expected: string, got: unknown): never {
  throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${field}: expected ${expected}, got ${JSON.stringify(got) ?? String(got)}`, { details: { field } });
}
