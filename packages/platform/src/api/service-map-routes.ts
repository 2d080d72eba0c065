// GET /v1/service-map: the trace-derived dependency map over a window, held against the manifest's
// `calls` (undeclared calls marked, declared calls nobody made listed), for `keelson` and the dashboard.
import { KeelsonError } from "@keelson/protocol";
import { buildDependencyMap, declaredCallees } from "../catalog/index.js";
import type { Store } from "../store/index.js";
import { buildServiceMap, parseDurationMs, type TraceStore } from "../telemetry/index.js";
import { sendJson, type Route } from "./http.js";

export interface ServiceMapRoutesDeps {
  store: Store;
  project: string;
  /** Undefined when the control plane runs without telemetry: the map answers 404. */
  traces: TraceStore | undefined;
  now?: () => number;
}

/** Registers GET /v1/service-map?window=15m. */
export function addServiceMapRoutes(route: Route, deps: ServiceMapRoutesDeps): void {
  const { store, project, traces } = deps;
  const now = deps.now ?? Date.now;
  route("GET", "/v1/service-map", "read", async (_req, res, _p, u) => {
    if (traces === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", "this control plane runs without telemetry");
    const windowMs = parseDurationMs("window", u.searchParams.get("window") ?? "15m");
    const [spans, services] = await Promise.all([traces.listSpans({ fromMs: now() - windowMs }), store.listServices(project)]);
    const declared = services.map((s) => ({ service: s.name, calls: declaredCallees(s.spec) }));
    sendJson(res, 200, buildDependencyMap(buildServiceMap(spans, { windowMs }), declared));
  });
}
