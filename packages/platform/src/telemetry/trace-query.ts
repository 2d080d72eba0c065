// Reads a trace search from URL query parameters (what `keelson traces` sends to
// GET /v1/traces), with human durations ("250ms", "1.5s", "15m"), so the API stays a
// thin composition root and the CLI can pass its flags through unchanged.
import { KeelsonError } from "@keelson/protocol";
import type { TraceSearch } from "./trace-store.js";
import type { SpanStatus } from "./trace-span.js";

const DURATION = /^(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { us: 0.001, µs: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const KNOWN = new Set(["service", "status", "minDuration", "since", "from", "to", "limit"]);

/**
 * Parses `service`, `status` (error|ok|unset), `minDuration` ("200ms"; a bare number is
 * milliseconds), `since` ("15m": from that long before `now`), `from`/`to` (ISO time or
 * epoch ms) and `limit`. Throws KEELSON_ERR_INVALID_INPUT naming the parameter.
 *
 * @example
 * const search = parseTraceSearchParams(url.searchParams); // ?service=orders&status=error&minDuration=250ms&since=1h
 * sendJson(res, 200, { traces: await traces.search(search) });
 */
export function parseTraceSearchParams(params: URLSearchParams, now: () => number = Date.now): TraceSearch {
  for (const key of params.keys()) {
    if (!KNOWN.has(key)) bad(key, `a known parameter (${[...KNOWN].join(", ")})`, key);
  }
  const search: TraceSearch = {};
  const service = params.get("service");
  if (service !== null) search.service = service;
  const status = params.get("status");
  if (status !== null) {
    if (status !== "error" && status !== "ok" && status !== "unset") bad("status", '"error", "ok" or "unset"', status);
    search.status = status as SpanStatus;
  }
  const minDuration = params.get("minDuration");
  if (minDuration !== null) search.minDurationMs = parseDurationMs("minDuration", minDuration);
  const since = params.get("since");
  if (since !== null) search.fromMs = now() - parseDurationMs("since", since);
  const from = params.get("from");
  if (from !== null) search.fromMs = timeMs("from", from);
  const to = params.get("to");
  if (to !== null) search.toMs = timeMs("to", to);
  const limit = params.get("limit");
  if (limit !== null) {
    const n = Number(limit);
    if (!/^\d+$/.test(limit) || n < 1) bad("limit", "a whole number ≥ 1", limit);
    search.limit = n;
  }
  return search;
}

/** "250ms", "1.5s", "15m", "2h", "300us"; a bare number is milliseconds. */
export function parseDurationMs(field: string, text: string): number {
  const m = DURATION.exec(text.trim());
  if (!m) return bad(field, 'a duration such as "250ms", "1.5s" or "15m"', text);
  return Number(m[1]) * (UNIT_MS[m[2] ?? "ms"] as number);
}

function timeMs(field: string, text: string): number {
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(ms)) bad(field, "an ISO time or epoch milliseconds", text);
  return ms;
}

function bad(field: string, expected: string, got: string): never {
  throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${field}: expected ${expected}, got ${JSON.stringify(got)}`, { details: { field } });
}
