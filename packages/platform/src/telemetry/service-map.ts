// The dependency map derived from spans: who calls whom, how often, how often it fails and
// how long it takes. The gateway is a hop, not a service: a call A → gateway → B counts once,
// as A → B, whether A, the gateway, B or only some of them sent spans.
import { GATEWAY_SERVICE_NAME, TRACE_ATTRIBUTES } from "@keelson/protocol";
import { isFailedCall, targetServiceOf } from "./trace-span.js";
import type { SpanRecord } from "./trace-span.js";

/** The caller of a request that came from outside (a browser, curl), or from a caller that sent no spans. */
export const EXTERNAL_CALLER = "(external)";

export interface ServiceMapEdge {
  from: string;
  to: string;
  calls: number;
  /** Calls answered 5xx or not answered at all (a 4xx is the caller's mistake, not a failure). */
  errors: number;
  errorRatio: number;
  /** Calls per second over the map's window. */
  ratePerSecond: number;
  /** Upstream tries beyond the first, as the gateway reported them. */
  retries: number;
  /** As the caller saw it (the client or gateway span when there is one). */
  p50Ms: number;
  p95Ms: number;
}

export interface ServiceMapNode {
  service: string;
  /** Spans this service sent; 0 for a service known only as a callee. */
  spans: number;
  errorSpans: number;
}

export interface ServiceMap {
  windowSeconds: number;
  /** Sorted by name; the gateway is not a node. */
  nodes: ServiceMapNode[];
  /** Sorted by caller, then callee. */
  edges: ServiceMapEdge[];
}

export interface ServiceMapOptions {
  /** The period the spans cover, for rates; default the time from the first span's start to the last one's end (at least 1 s). */
  windowMs?: number;
  /** The service name gateway spans carry; default GATEWAY_SERVICE_NAME. */
  gatewayService?: string;
}

interface Call {
  from: string;
  to: string;
  failed: boolean;
  durationUs: number;
  retries: number;
}

/**
 * Derives the service map from spans (from any number of traces).
 *
 * @example
 * const map = buildServiceMap(await traces.listSpans({ fromMs: Date.now() - 15 * 60_000 }), { windowMs: 15 * 60_000 });
 * // map.edges: [{ from: "storefront", to: "orders", calls: 120, errors: 3, errorRatio: 0.025, ... }]
 */
export function buildServiceMap(spans: readonly SpanRecord[], options: ServiceMapOptions = {}): ServiceMap {
  const gateway = options.gatewayService ?? GATEWAY_SERVICE_NAME;
  const key = (traceId: string, spanId: string) => `${traceId}:${spanId}`;
  const byId = new Map<string, SpanRecord>();
  const childrenOf = new Map<string, SpanRecord[]>();
  for (const s of spans) {
    byId.set(key(s.traceId, s.spanId), s);
    if (s.parentSpanId === undefined) continue;
    const k = key(s.traceId, s.parentSpanId);
    const list = childrenOf.get(k);
    if (list) list.push(s);
    else childrenOf.set(k, [s]);
  }
  const parentOf = (s: SpanRecord) => (s.parentSpanId === undefined ? undefined : byId.get(key(s.traceId, s.parentSpanId)));
  const callerAttribute = (s: SpanRecord) => {
    const c = s.attributes[TRACE_ATTRIBUTES.CALLER];
    return typeof c === "string" && c !== "" ? c : undefined;
  };
  /** The nearest ancestor that is not the gateway, bounded in case parents loop. */
  const callerAbove = (s: SpanRecord): string | undefined => {
    let p = parentOf(s);
    for (let i = 0; p !== undefined && i < 64; i++, p = parentOf(p)) if (p.service !== gateway) return p.service;
    return undefined;
  };

  const calls: Call[] = [];
  for (const s of spans) {
    if (s.service === gateway) {
      // One gateway server span per request; its try spans are children with the attempt number.
      if (s.kind !== "server") continue;
      const to = targetServiceOf(s);
      if (to === undefined) continue;
      let retries = 0;
      for (const child of childrenOf.get(key(s.traceId, s.spanId)) ?? []) {
        const attempt = child.attributes[TRACE_ATTRIBUTES.ATTEMPT];
        if (typeof attempt === "number" && attempt > 0) retries++;
      }
      calls.push({ from: callerAttribute(s) ?? callerAbove(s) ?? EXTERNAL_CALLER, to, failed: isFailedCall(s), durationUs: s.durationUs, retries });
    } else if (s.kind === "server") {
      const parent = parentOf(s);
      // Through the gateway: its server span counted the call already.
      if (parent?.service === gateway) continue;
      // Nested inside the same service without a client hop: not a call between services.
      if (parent !== undefined && parent.service === s.service && parent.kind !== "client") continue;
      const viaClient = parent?.kind === "client" ? parent : undefined;
      calls.push({
        from: parent?.service ?? callerAttribute(s) ?? EXTERNAL_CALLER,
        to: s.service,
        failed: isFailedCall(s) || (viaClient !== undefined && isFailedCall(viaClient)),
        durationUs: viaClient?.durationUs ?? s.durationUs,
        retries: 0,
      });
    } else if (s.kind === "client" && !childrenOf.has(key(s.traceId, s.spanId))) {
      // Nobody downstream sent a span (the callee is not instrumented, or the call never got there).
      const to = targetServiceOf(s);
      if (to !== undefined) calls.push({ from: s.service, to, failed: isFailedCall(s), durationUs: s.durationUs, retries: 0 });
    }
  }

  let windowUs = (options.windowMs ?? 0) * 1000;
  if (options.windowMs === undefined && spans.length > 0) {
    let start = Infinity;
    let end = -Infinity;
    for (const s of spans) {
      start = Math.min(start, s.startTimeUs);
      end = Math.max(end, s.startTimeUs + s.durationUs);
    }
    windowUs = end - start;
  }
  const windowSeconds = Math.max(1, windowUs / 1_000_000);

  const grouped = new Map<string, Call[]>();
  for (const c of calls) {
    const k = `${c.from}\u0000${c.to}`;
    const list = grouped.get(k);
    if (list) list.push(c);
    else grouped.set(k, [c]);
  }
  const edges: ServiceMapEdge[] = [...grouped.values()].map((list) => {
    const first = list[0] as Call;
    const errors = list.filter((c) => c.failed).length;
    const durations = list.map((c) => c.durationUs).sort((a, b) => a - b);
    return {
      from: first.from,
      to: first.to,
      calls: list.length,
      errors,
      errorRatio: errors / list.length,
      ratePerSecond: list.length / windowSeconds,
      retries: list.reduce((n, c) => n + c.retries, 0),
      p50Ms: percentile(durations, 0.5) / 1000,
      p95Ms: percentile(durations, 0.95) / 1000,
    };
  });
  edges.sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));

  const nodes = new Map<string, ServiceMapNode>();
  const node = (service: string) => {
    let n = nodes.get(service);
    if (n === undefined) nodes.set(service, (n = { service, spans: 0, errorSpans: 0 }));
    return n;
  };
  for (const s of spans) {
    if (s.service === gateway) continue;
    const n = node(s.service);
    n.spans++;
    if (s.status === "error") n.errorSpans++;
  }
  for (const e of edges) {
    if (e.from !== EXTERNAL_CALLER) node(e.from);
    node(e.to);
  }
  return { windowSeconds, nodes: [...nodes.values()].sort((a, b) => a.service.localeCompare(b.service)), edges };
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}
