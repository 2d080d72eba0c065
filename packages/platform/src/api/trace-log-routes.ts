// GET /v1/traces/:id/logs: the log lines that share a trace's id, from the replicas of the
// services in the trace, so the dashboard's waterfall (and any client) shows what each hop logged.
import { join } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import { readReplicaLogs } from "../runtime/index.js";
import type { Store } from "../store/index.js";
import { DEFAULT_TRACE_LOG_LIMIT, findTraceLogs, normalizeTraceId, type TraceStore } from "../telemetry/index.js";
import { sendJson, type Route } from "./http.js";

export interface TraceLogRoutesDeps {
  store: Store;
  project: string;
  /** Replica logs are under <stateDir>/logs/<service>/. */
  stateDir: string;
  /** Undefined when the control plane runs without telemetry: the route answers 404. */
  traces: TraceStore | undefined;
}

const MAX_LIMIT = 5000;

/** Registers GET /v1/traces/:id/logs?limit=1000. */
export function addTraceLogRoutes(route: Route, deps: TraceLogRoutesDeps): void {
  const { store, project, stateDir, traces } = deps;
  route("GET", "/v1/traces/:id/logs", "read", async (_req, res, params, u) => {
    if (traces === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", "this control plane runs without telemetry");
    // 400 unless 32 hex digits: the id is matched as text in log lines, and less would match too much.
    const traceId = normalizeTraceId(params.id ?? "");
    const limitText = u.searchParams.get("limit");
    const limit = limitText === null ? DEFAULT_TRACE_LOG_LIMIT : Number(limitText);
    if (limitText !== null && (!/^\d+$/.test(limitText) || limit < 1 || limit > MAX_LIMIT)) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `limit: expected a whole number 1-${MAX_LIMIT}, got ${JSON.stringify(limitText)}`, { details: { field: "limit" } });
    }
    const spans = await traces.getTrace(traceId);
    if (spans.length === 0) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no trace "${traceId}" is stored`);
    const abort = new AbortController();
    // The response closes early only when the client went away: stop reading then.
    res.once("close", () => abort.abort());
    const known = new Set((await store.listServices(project)).map((s) => s.name));
    const found = await findTraceLogs({
      traceId,
      spans,
      known,
      limit,
      read: (service, since) => readReplicaLogs({ logDir: join(stateDir, "logs", service), since, signal: abort.signal }),
    });
    sendJson(res, 200, { traceId, ...found });
  });
}
