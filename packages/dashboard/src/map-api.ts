// The service map's call to the control-plane API (GET /v1/service-map) and its answer's shape
// (the catalog's DependencyMap: the trace-derived map held against the manifest's `calls`).
import { query, type Api } from "./api.js";

/** The caller of requests from outside (a browser, curl), or from a caller that sent no spans. */
export const EXTERNAL_CALLER = "(external)";

export interface MapNode {
  service: string;
  /** Spans the service sent over the window; 0 for a service without traffic or without tracing. */
  spans: number;
  errorSpans: number;
}

/** Calls from one service to another over the window, as the gateway and the services traced them. */
export interface MapEdge {
  from: string;
  to: string;
  calls: number;
  /** Calls answered 5xx or not at all. */
  errors: number;
  errorRatio: number;
  ratePerSecond: number;
  retries: number;
  p50Ms: number;
  p95Ms: number;
  /** The caller's `calls` in the manifest does not name the callee. */
  undeclared: boolean;
}

/** A call the manifest declares that nobody made over the window. */
export interface UnusedCall {
  from: string;
  to: string;
}

export interface ServiceMapData {
  windowSeconds: number;
  nodes: MapNode[];
  edges: MapEdge[];
  unused: UnusedCall[];
}

/** GET /v1/service-map over a window the API reads ("15m", "1h"). */
export function fetchServiceMap(api: Api, window: string, signal?: AbortSignal): Promise<ServiceMapData> {
  return api.get<ServiceMapData>(`/v1/service-map${query({ window })}`, signal);
}
