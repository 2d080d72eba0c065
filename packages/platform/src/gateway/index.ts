// The gateway domain: the data-plane process (`keelson gateway`) and the routing table the
// control plane builds and publishes for it. The control plane uses `createRoutingPublisher`
// (built on `buildRoutingTable`); the CLI's `keelson gateway` uses `runGateway`.
export { buildRoutingTable, compileRoutes, forwardPath, normalizeHost } from "./routing-table.js";
export type { CompiledRoute, RouteMatcher, RoutingTableInput } from "./routing-table.js";
export { createGateway } from "./gateway-server.js";
export type { Gateway, GatewayOptions } from "./gateway-server.js";
export { UNROUTED_SERVICE } from "./gateway-metrics.js";
export type { GatewayMetrics } from "./gateway-metrics.js";
export type { GatewayLogger } from "./logger.js";
export { silentLogger } from "./logger.js";
export { ROUTING_FILE, createRoutingWatch, loadRoutingTable, parseRoutingTable, saveRoutingTable } from "./routing-watch.js";
export type { RoutingWatch, RoutingWatchOptions } from "./routing-watch.js";
export { GATEWAY_PID_FILE, runGateway } from "./run-gateway.js";
export type { GatewayPidFile, RunGatewayOptions, RunningGateway, SignalSource } from "./run-gateway.js";
export { createRoutingPublisher } from "./routing-publisher.js";
export type { RoutingPublisher } from "./routing-publisher.js";
export { readTrafficSplit, writeTrafficSplit } from "./traffic-splits.js";
export { routeExtras, servicePolicy } from "./service-policy.js";
