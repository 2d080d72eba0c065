// The RED table behind `keelson metrics`: per group (service by default) the request rate,
// the share of 5xx and latency percentiles over a window, from the built-in store.
import { GATEWAY_REQUESTS } from "./metric-store.js";
import type { MetricQuery, MetricWindow, VectorSample } from "./metric-store.js";

export interface RedRow {
  /** The group's labels, e.g. `{ service: "orders", version: "r-3f9a" }`. */
  labels: Record<string, string>;
  /** Requests per second. */
  requestRate: number;
  /** Share of 5xx; undefined without requests in the window. */
  errorRatio: number | undefined;
  /** Latency percentiles in seconds; undefined without timed requests. */
  p50: number | undefined;
  p90: number | undefined;
  p99: number | undefined;
}

export interface RedSummaryOptions {
  window: MetricWindow;
  /** Labels to group by (default `["service"]`); the latency histogram has no `replica`. */
  by?: readonly string[];
  /** Only these requests (exact label matches). */
  where?: { service?: string; version?: string; route?: string; replica?: string };
  at?: number;
}

/**
 * One row per group that saw requests in the window, busiest first.
 *
 * @example
 * summarizeRed(store, { window: "5m", by: ["service", "version"], where: { service: "orders" } });
 */
export function summarizeRed(query: MetricQuery, options: RedSummaryOptions): RedRow[] {
  const by = options.by ?? ["service"];
  const where = Object.fromEntries(Object.entries(options.where ?? {}).filter(([, v]) => v !== undefined)) as Record<string, string>;
  const common = { window: options.window, ...(options.at === undefined ? {} : { at: options.at }) };
  const key = (labels: Record<string, string>) => by.map((l) => labels[l] ?? "").join("\u0000");
  const index = (v: VectorSample[]) => new Map(v.map((s) => [key(s.labels), s.value]));

  const rates = query.rate(GATEWAY_REQUESTS, { ...common, by, where });
  const errors = index(query.errorRatio({ ...common, ...where, by }));
  // Latency is kept per service, version and route: grouping or filtering by replica has none.
  const timed = !by.includes("replica") && where.replica === undefined;
  const latency = (q: number) => (timed ? index(query.latencyQuantile({ ...common, ...where, by, q })) : new Map<string, number>());
  const [p50, p90, p99] = [latency(0.5), latency(0.9), latency(0.99)];
  return rates
    .map((r) => {
      const k = key(r.labels);
      return { labels: r.labels, requestRate: r.value, errorRatio: errors.get(k), p50: p50.get(k), p90: p90.get(k), p99: p99.get(k) };
    })
    .sort((a, b) => b.requestRate - a.requestRate || key(a.labels).localeCompare(key(b.labels)));
}
