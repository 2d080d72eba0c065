// The gateway's Prometheus metrics (RED per service, table version, control-plane link) on
// its own registry, plus per-service label objects cached so the hot path allocates none.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Label objects for one service, built once and reused by every request. */
export interface ServiceStats {
  /** Indexed by status class: [unused, 1xx, 2xx, 3xx, 4xx, 5xx]. */
  readonly byClass: ReadonlyArray<{ service: string; code_class: string }>;
  readonly service: { service: string };
}

export interface GatewayMetrics {
  readonly registry: Registry;
  readonly requests: Counter<"service" | "code_class">;
  readonly duration: Histogram<"service">;
  readonly tableVersion: Gauge;
  readonly controlPlaneConnected: Gauge;
  /** Labels of requests that matched no known service (client-chosen names never become labels). */
  readonly unrouted: ServiceStats;
  /** Cached labels for a service named by the routing table. */
  statsFor(service: string): ServiceStats;
  /** Counts one finished request. */
  record(stats: ServiceStats, status: number, seconds: number): void;
}

/** Service label of requests that reached no known service; not a valid service name. */
export const UNROUTED_SERVICE = "_unrouted";

export function createGatewayMetrics(options: { registry?: Registry; defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = options.registry ?? new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: "keelson_gateway_requests_total",
    help: "Requests the gateway finished, by target service and status class (4xx includes clients that left; 5xx includes responses cut off by an upstream failure).",
    labelNames: ["service", "code_class"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "keelson_gateway_request_duration_seconds",
    help: "Time from receiving a request to finishing its response, by target service.",
    labelNames: ["service"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const tableVersion = new Gauge({
    name: "keelson_gateway_routing_table_version",
    help: "Version of the routing table the gateway serves (0 before the first table).",
    registers: [registry],
  });
  const controlPlaneConnected = new Gauge({
    name: "keelson_gateway_control_plane_connected",
    help: "1 while the gateway follows the control plane's routing stream, else 0.",
    registers: [registry],
  });
  const cache = new Map<string, ServiceStats>();
  const make = (service: string): ServiceStats => ({
    byClass: ["", "1xx", "2xx", "3xx", "4xx", "5xx"].map((code_class) => ({ service, code_class })),
    service: { service },
  });
  const unrouted = make(UNROUTED_SERVICE);
  return {
    registry,
    requests,
    duration,
    tableVersion,
    controlPlaneConnected,
    unrouted,
    statsFor(service) {
      let stats = cache.get(service);
      if (stats === undefined) cache.set(service, (stats = make(service)));
      return stats;
    },
    record(stats, status, seconds) {
      const cls = (status / 100) | 0;
      requests.inc(stats.byClass[cls >= 1 && cls <= 5 ? cls : 5]!, 1);
      duration.observe(stats.service, seconds);
    },
  };
}
