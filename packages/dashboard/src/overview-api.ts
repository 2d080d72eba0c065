// The overview's telemetry calls: RED metrics of every service (GET /v1/metrics) and every SLO
// with its error budget and open incident (GET /v1/slo), two requests whatever the project's size.
import { ApiError, UnauthorizedError, type Api } from "./api.js";

/** The window the overview's request rate, error ratio and p99 cover. */
export const METRICS_WINDOW = "5m";

/** GET /v1/metrics: one service's RED figures over the window (telemetry's RedRow as JSON). */
export interface RedRow {
  labels: Record<string, string>;
  /** Requests per second. */
  requestRate: number;
  /** Share of 5xx, 0..1; absent without requests in the window. */
  errorRatio?: number;
  /** Latency percentiles in seconds; absent without timed requests. */
  p50?: number;
  p90?: number;
  p99?: number;
}

/** An incident that is open (telemetry's OpenIncident). */
export interface OpenIncident {
  /** Sequence number of its `incident.opened` event. */
  id: number;
  key: string;
  service: string;
  slo: string;
  objective: "availability" | "latency";
  severity: "page" | "ticket";
  alerts: Array<"page" | "ticket">;
  openedAt: string;
}

/** GET /v1/slo: one objective of one service, with the budget left and its open incident. */
export interface SloRow {
  service: string;
  slo: string;
  objective: "availability" | "latency";
  /** Share of good requests required, 0..1. */
  target: number;
  thresholdSeconds?: number;
  window: string;
  measuredWindow: string;
  badRatio?: number;
  sli?: number;
  /** 1 untouched, 0 spent, below 0 overspent; absent without requests. */
  budgetRemaining?: number;
  burnRates: Record<string, number>;
  incident?: OpenIncident;
}

/** A part of the overview that could not be loaded, and why (the rest still shows). */
export interface Unavailable {
  unavailable: string;
}

export interface OverviewTelemetry {
  metrics: RedRow[] | Unavailable;
  slos: SloRow[] | Unavailable;
}

/** A refused token still logs out; any other failure only leaves that part out. */
async function orUnavailable<T>(call: Promise<T>): Promise<T | Unavailable> {
  try {
    return await call;
  } catch (err) {
    if (err instanceof UnauthorizedError || (err as Error).name === "AbortError") throw err;
    if (err instanceof ApiError && err.status === 404) return { unavailable: "this control plane runs without telemetry" };
    return { unavailable: (err as Error).message };
  }
}

export function isUnavailable(value: unknown): value is Unavailable {
  return typeof value === "object" && value !== null && "unavailable" in value;
}

/** RED metrics grouped by service, and every SLO's status; each may be unavailable on its own. */
export async function loadOverviewTelemetry(api: Api, signal: AbortSignal): Promise<OverviewTelemetry> {
  const [metrics, slos] = await Promise.all([
    orUnavailable(api.get<{ rows: RedRow[] }>(`/v1/metrics?window=${METRICS_WINDOW}&by=service`, signal).then((r) => r.rows)),
    orUnavailable(api.get<{ slos: SloRow[] }>("/v1/slo", signal).then((r) => r.slos)),
  ]);
  return { metrics, slos };
}
