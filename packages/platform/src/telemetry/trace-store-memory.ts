// The in-memory TraceStore: the first-class fake for tests and benchmarks, with the same
// semantics as SQLite (checked by the shared conformance suite). Spans are copied in and
// out so callers cannot change what is stored.
import { AGE_PRUNE_INTERVAL_MS, DEFAULT_TRACE_MAX_AGE_MS, bySpanStart, normalizeScan, normalizeSearch, normalizeTraceId, spanMatches, summarizeTrace } from "./trace-store.js";
import type { TraceRetention, TraceStore, TraceSummary } from "./trace-store.js";
import type { AttributeValue, Attributes, SpanRecord } from "./trace-span.js";

export interface MemoryTraceStoreOptions {
  /** Defaults: 24 h, 50 000 spans. */
  retention?: TraceRetention;
  /** Clock (epoch ms) for age-based retention. */
  now?: () => number;
}

export const DEFAULT_MEMORY_MAX_SPANS = 50_000;

/**
 * Creates a TraceStore that keeps spans in this process.
 *
 * @example
 * const traces = createMemoryTraceStore({ retention: { maxSpans: 10_000 } });
 */
export function createMemoryTraceStore(options: MemoryTraceStoreOptions = {}): TraceStore {
  const maxAgeUs = (options.retention?.maxAgeMs ?? DEFAULT_TRACE_MAX_AGE_MS) * 1000;
  const maxSpans = options.retention?.maxSpans ?? DEFAULT_MEMORY_MAX_SPANS;
  const now = options.now ?? Date.now;
  /** Every span by "traceId:spanId". */
  const spans = new Map<string, SpanRecord>();
  const traces = new Map<string, Map<string, SpanRecord>>();
  /**
   * Keys oldest received first, from `head` on. An array rather than the Map's own order:
   * deleting from the front of a Map leaves holes that every later walk has to step over.
   */
  let order: string[] = [];
  let head = 0;
  let lastAgePrune = -Infinity;

  const remove = (key: string) => {
    const span = spans.get(key);
    if (span === undefined) return false;
    spans.delete(key);
    const trace = traces.get(span.traceId);
    trace?.delete(span.spanId);
    if (trace?.size === 0) traces.delete(span.traceId);
    return true;
  };

  const compact = () => {
    if (head > 1024 && head * 2 > order.length) {
      order = order.slice(head);
      head = 0;
    }
  };

  const pruneAge = (): number => {
    lastAgePrune = now();
    const cutoff = lastAgePrune * 1000 - maxAgeUs;
    let dropped = 0;
    for (const [key, span] of spans) if (span.startTimeUs < cutoff && remove(key)) dropped++;
    if (dropped > 0) {
      order = order.slice(head).filter((k) => spans.has(k));
      head = 0;
    }
    return dropped;
  };

  const pruneSize = (): number => {
    let dropped = 0;
    while (spans.size > maxSpans && head < order.length) if (remove(order[head++] as string)) dropped++;
    compact();
    return dropped;
  };

  return {
    kind: "memory",
    async write(batch) {
      // Spans of one request share a resource; stored spans may share one copy of it, since
      // nothing stored is ever handed out without copying.
      const resources = new Map<Attributes, Attributes>();
      for (const span of batch) {
        const key = `${span.traceId}:${span.spanId}`;
        if (spans.has(key)) continue;
        let resource = resources.get(span.resource);
        if (resource === undefined) resources.set(span.resource, (resource = copyAttributes(span.resource)));
        const copy = copySpan(span, resource);
        spans.set(key, copy);
        order.push(key);
        let trace = traces.get(span.traceId);
        if (trace === undefined) traces.set(span.traceId, (trace = new Map()));
        trace.set(span.spanId, copy);
      }
      if (now() - lastAgePrune >= AGE_PRUNE_INTERVAL_MS) pruneAge();
      pruneSize();
    },
    async search(query) {
      const q = normalizeSearch(query);
      /** Latest start of a matching span, per trace. */
      const latest = new Map<string, number>();
      for (const span of spans.values()) {
        if (!spanMatches(span, q)) continue;
        const seen = latest.get(span.traceId);
        if (seen === undefined || span.startTimeUs > seen) latest.set(span.traceId, span.startTimeUs);
      }
      const ids = [...latest].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, q.limit);
      return ids.map(([id]) => summarizeTrace([...(traces.get(id)?.values() ?? [])])).filter((s): s is TraceSummary => s !== undefined);
    },
    async getTrace(traceId) {
      const trace = traces.get(normalizeTraceId(traceId));
      return trace ? [...trace.values()].sort(bySpanStart).map((s) => copySpan(s)) : [];
    },
    async listSpans(query) {
      const q = normalizeScan(query);
      const out: SpanRecord[] = [];
      for (const s of spans.values()) {
        if ((q.fromUs === undefined || s.startTimeUs >= q.fromUs) && (q.toUs === undefined || s.startTimeUs <= q.toUs)) out.push(s);
      }
      return out
        .sort((a, b) => bySpanStart(b, a))
        .slice(0, q.limit)
        .map((s) => copySpan(s));
    },
    async prune() {
      return pruneAge() + pruneSize();
    },
    async count() {
      return spans.size;
    },
    async close() {
      spans.clear();
      traces.clear();
      order = [];
      head = 0;
    },
  };
}

/** A deep copy; faster than structuredClone for this plain, JSON-shaped data. */
function copySpan(s: SpanRecord, resource: Attributes = copyAttributes(s.resource)): SpanRecord {
  return {
    traceId: s.traceId,
    spanId: s.spanId,
    parentSpanId: s.parentSpanId,
    name: s.name,
    kind: s.kind,
    service: s.service,
    startTimeUs: s.startTimeUs,
    durationUs: s.durationUs,
    status: s.status,
    statusMessage: s.statusMessage,
    attributes: copyAttributes(s.attributes),
    resource,
    scope: s.scope,
    events: s.events.map((e) => ({ name: e.name, timeUs: e.timeUs, attributes: copyAttributes(e.attributes) })),
    links: s.links.map((l) => ({ traceId: l.traceId, spanId: l.spanId, attributes: copyAttributes(l.attributes) })),
  };
}

function copyAttributes(a: Attributes): Attributes {
  const out: Attributes = {};
  for (const key in a) out[key] = copyValue(a[key] as AttributeValue);
  return out;
}

function copyValue(v: AttributeValue): AttributeValue {
  if (typeof v !== "object") return v;
  return Array.isArray(v) ? v.map(copyValue) : copyAttributes(v);
}
