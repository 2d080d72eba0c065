// The routing table the control plane streams to every gateway: routes and ready endpoints.
import { z } from "zod";

/** One externally reachable route: requests whose host and path match go to `service`. */
export const RouteSchema = z.strictObject({
  service: z.string(),
  /** Path prefix, always starting with "/"; "/" matches everything. */
  pathPrefix: z.string().startsWith("/"),
  /** Exact host to match (without port); undefined matches any host. */
  host: z.string().optional(),
  /** Remove the prefix before forwarding. */
  stripPrefix: z.boolean().default(false),
});
export type Route = z.infer<typeof RouteSchema>;

/** A ready replica that may take traffic. */
export const EndpointSchema = z.strictObject({
  replicaId: z.string(),
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: z.string().url(),
  release: z.string(),
});
export type Endpoint = z.infer<typeof EndpointSchema>;

export const RoutingServiceSchema = z.strictObject({
  name: z.string(),
  endpoints: z.array(EndpointSchema),
});
export type RoutingService = z.infer<typeof RoutingServiceSchema>;

/**
 * The whole table. `version` increases with every change, so a gateway can tell a
 * newer table from an older one (and ignore a stale one after reconnecting).
 */
export const RoutingTableSchema = z.strictObject({
  version: z.number().int().nonnegative(),
  project: z.string(),
  generatedAt: z.string(),
  routes: z.array(RouteSchema),
  services: z.array(RoutingServiceSchema),
});
export type RoutingTable = z.infer<typeof RoutingTableSchema>;

/** Header a caller sets to reach a service through the gateway without a public route. */
export const TARGET_SERVICE_HEADER = "x-keelson-service";
/** Header naming the calling service (identity is verified by mTLS in a later version). */
export const CALLER_SERVICE_HEADER = "x-keelson-caller";
/** Request id header, set by the gateway when absent and propagated by the SDK. */
export const REQUEST_ID_HEADER = "x-request-id";
