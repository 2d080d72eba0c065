// The process metrics every Keelson process exposes: prom-client's defaults minus the three
// `nodejs_active_*_total` gauges, whose counter-style names fail `promtool check metrics`.
import { collectDefaultMetrics, type Registry } from "prom-client";

const LINT_FAILING = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

/** Registers the default process and Node.js metrics (with an optional name prefix) on `registry`. */
export function collectProcessMetrics(registry: Registry, prefix = ""): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of LINT_FAILING) registry.removeSingleMetric(`${prefix}${name}`);
}
