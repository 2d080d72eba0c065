// The gateway domain: the data-plane process (`keelson gateway`) and the routing table the
// control plane builds and publishes for it. The control plane uses `createRoutingPublisher`
// (built on `buildRoutingTable`); the CLI's `keelson gateway` uses `runGateway`.
export { buildRoutingTable, compileRoutes, forwardPath, normalizeHost } from "./routing-table.js";
export type { CompiledRoute, RouteMatcher, RoutingTableInput } from "./routing-table.js";
export type { RouteInput } from "./routing-table.js";
export { createGateway } from "./gateway-server.js";
export type { Gateway, GatewayLifecycle, GatewayOptions, GatewayState } from "./gateway-server.js";
export type { ServiceState } from "./service-target.js";
export { createGatewayMetrics, INTERNAL_ROUTE, NONE_LABEL, UNROUTED_SERVICE } from "./gateway-metrics.js";
export type { FlagVariantCell, GatewayMetrics } from "./gateway-metrics.js";
export { LATENCY_BOUNDS_MS, histogramQuantile } from "./live-stats.js";
export { FAULT_HEADER, FAULT_REPLICA_PREFIX } from "./fault-injection.js";
export type { ActivateAnswer, ServiceActivator } from "./service-activator.js";
export type { SeriesStats, StatsSnapshot, TrafficStats } from "./live-stats.js";
export { createSeededRandom } from "./random.js";
export type { Random } from "./random.js";
export type { GatewayLogger } from "./logger.js";
export { silentLogger } from "./logger.js";
export { GATEWAY_ADMIN_HEADER, ROUTING_FILE, createRoutingWatch, loadRoutingTable, parseRoutingTable, saveRoutingTable } from "./routing-watch.js";
export type { RoutingWatch, RoutingWatchOptions } from "./routing-watch.js";
export { DEFAULT_GATEWAY_WORKERS, GATEWAY_PID_FILE, resolveGatewayWorkers, runGateway } from "./run-gateway.js";
export type { GatewayPidFile, RunGatewayOptions, RunningGateway, SignalSource } from "./run-gateway.js";
export { createGatewayCluster } from "./gateway-cluster.js";
export type { GatewayCluster, GatewayClusterOptions, WorkerStatus } from "./gateway-cluster.js";
export { createRoutingPublisher } from "./routing-publisher.js";
export type { RoutingPublisher } from "./routing-publisher.js";
export { readTrafficSplit, writeTrafficSplit } from "./traffic-splits.js";
export { routeExtras, servicePolicy } from "./service-policy.js";
