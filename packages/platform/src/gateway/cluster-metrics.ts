// Metrics of a multi-worker gateway as one exposition: the workers' registries summed (prom-client's
// AggregatorRegistry.aggregate), the primary's own metrics, and the last counts of workers that have
// exited, so that a counter never goes backwards when a worker dies or is replaced.
import { AggregatorRegistry } from "prom-client";
import type { Aggregator, Registry } from "prom-client";
import type { MetricsJson } from "./cluster-messages.js";

/** Gauges only the primary knows (workers have no control-plane link); workers' copies are dropped. */
const PRIMARY_ONLY = new Set(["keelson_gateway_control_plane_connected"]);

/** Workers' gauges that summing would misstate. The table version served is the lowest one. */
const WORKER_AGGREGATORS: Readonly<Record<string, Aggregator>> = {
  keelson_gateway_routing_table_version: "min",
};

/**
 * State each worker holds on its own (its breakers, its outlier detector): one series per worker,
 * told apart by a `worker` label (the slot, which a restarted worker keeps).
 */
const PER_WORKER = new Set(["keelson_gateway_circuit_state", "keelson_gateway_ejected_endpoints"]);

/**
 * One registry for `/metrics` from `primary` (the primary's own metrics), `workers` (each live
 * worker's latest `getMetricsAsJSON()`, by slot) and `retired` (see `retireCounts`). Counters and
 * histograms add up; gauges use their metric's aggregator (prom-client's default metrics set one;
 * sum otherwise, right for in-flight requests and open tunnels).
 */
export function aggregateClusterMetrics(primary: MetricsJson, workers: ReadonlyArray<{ slot: number; metrics: MetricsJson }>, retired: MetricsJson): Registry {
  const fromWorkers = workers.map(({ slot, metrics }) =>
    metrics
      .filter((m) => !PRIMARY_ONLY.has(m.name))
      .map((m) => {
        if (PER_WORKER.has(m.name)) return { ...m, values: m.values.map((v) => ({ ...v, labels: { ...v.labels, worker: String(slot) } })) };
        const aggregator = WORKER_AGGREGATORS[m.name];
        return aggregator === undefined ? m : { ...m, aggregator };
      }),
  );
  return AggregatorRegistry.aggregate([primary, retired, ...fromWorkers]);
}

/**
 * `retired` plus an exited worker's last counts. Only counters and histograms are kept: they are
 * totals over the gateway's life, whereas a dead worker's gauges (memory, lag) mean nothing now.
 * Synchronous, so that an exit is accounted for before any scrape can run.
 */
export function retireCounts(retired: MetricsJson, last: MetricsJson): MetricsJson {
  const byName = new Map<string, MetricsJson[number]>();
  for (const m of retired) byName.set(m.name, { ...m, values: m.values.map((v) => ({ ...v })) });
  for (const m of last) {
    if (!isTotal(m.type)) continue;
    const into = byName.get(m.name);
    if (into === undefined) {
      byName.set(m.name, { ...m, values: m.values.map((v) => ({ ...v })) });
      continue;
    }
    const index = new Map(into.values.map((v) => [seriesKey(v), v]));
    for (const v of m.values) {
      const same = index.get(seriesKey(v));
      if (same !== undefined) same.value += v.value;
      else into.values.push({ ...v });
    }
  }
  return [...byName.values()];
}

function isTotal(type: unknown): boolean {
  // prom-client's typings call `type` an enum; at run time it is the exposition's type name.
  const t = String(type);
  return t === "counter" || t === "histogram";
}

/** A histogram's values are `_bucket`/`_sum`/`_count` series told apart by `metricName`. */
function seriesKey(v: { labels: object; metricName?: string }): string {
  const labels = Object.entries(v.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${v.metricName ?? ""}${JSON.stringify(labels)}`;
}
