// MetricsSource: the questions canary analysis, the autoscaler and SLOs ask about a service's
// traffic, answered by the control plane's own metric store or by a Prometheus server (PromQL over
// its HTTP API) with the same meaning. Both run metrics-source.conformance.ts.
import { KeelsonError } from "@keelson/protocol";
import { fractionAbove } from "./histogram-buckets.js";
import { durationMs, GATEWAY_REQUESTS, GATEWAY_REQUESTS_IN_FLIGHT, GATEWAY_REQUEST_DURATION } from "./metric-store.js";
import type { MetricWindow, MetricStore, VectorSample } from "./metric-store.js";
import { parseValue } from "./prometheus-text.js";

/** Which requests: one service, optionally one version (release) and one replica, over a window. */
export interface MetricsSelector {
  service: string;
  version?: string;
  replica?: string;
  /** How far back the question looks, e.g. "5m" or 300000. */
  window: MetricWindow;
  /** Evaluation time in ms since the epoch (default now). */
  at?: number;
}

/** The latency histogram is kept per service, version and route, not per replica. */
export type LatencyMetricsSelector = Omit<MetricsSelector, "replica">;

/**
 * What the platform asks about traffic. Every answer is undefined when the source has no data
 * for the selection (no requests in the window, or the metric is not exposed).
 */
export interface MetricsSource {
  /** "builtin" or "prometheus". */
  readonly kind: string;
  /** The longest window the source holds data for; undefined when it cannot tell. */
  readonly retentionMs: number | undefined;
  /** Share of requests answered 5xx (0..1). */
  errorRatio(selector: MetricsSelector): Promise<number | undefined>;
  /** Requests per second. */
  requestRate(selector: MetricsSelector): Promise<number | undefined>;
  /** The q-quantile (0..1) of request duration, in seconds (interpolated inside histogram buckets). */
  latencyQuantile(selector: LatencyMetricsSelector & { q: number }): Promise<number | undefined>;
  /** Share of requests slower than `thresholdSeconds` (0..1): the bad events of a latency SLO. */
  slowRatio(selector: LatencyMetricsSelector & { thresholdSeconds: number }): Promise<number | undefined>;
  /** Requests in flight, averaged over the window and summed over replicas. */
  inflight(selector: MetricsSelector): Promise<number | undefined>;
}

/** Checks a selector the same way for every source, so bad input fails alike everywhere. */
function checkSelector(s: MetricsSelector): number {
  if (typeof s.service !== "string" || s.service === "") {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `service: expected a service name, got ${JSON.stringify(s.service)}`);
  }
  for (const field of ["version", "replica"] as const) {
    const v = s[field];
    if (v !== undefined && (typeof v !== "string" || v === "")) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${field}: expected a non-empty string, got ${JSON.stringify(v)}`);
  }
  if (s.at !== undefined && !Number.isFinite(s.at)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `at: expected a time in ms, got ${JSON.stringify(s.at)}`);
  return durationMs(s.window, "window");
}

function checkQuantile(q: unknown): number {
  if (typeof q !== "number" || !(q >= 0 && q <= 1)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `q: expected a quantile between 0 and 1, got ${JSON.stringify(q)}`);
  return q;
}

function checkThreshold(t: unknown): number {
  if (typeof t !== "number" || !(t > 0) || !Number.isFinite(t)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `thresholdSeconds: expected a positive number, got ${JSON.stringify(t)}`);
  return t;
}

function single(v: VectorSample[]): number | undefined {
  const x = v[0]?.value;
  return x === undefined || Number.isNaN(x) ? undefined : x;
}

/**
 * A MetricsSource over the control plane's own metric store (fed by the gateway scraper).
 *
 * @example
 * const source = createBuiltinMetricsSource(store);
 * await source.errorRatio({ service: "orders", version: "r-3f9a", window: "5m" }); // 0.012
 */
export function createBuiltinMetricsSource(store: MetricStore): MetricsSource {
  const where = (s: MetricsSelector) => ({
    service: s.service,
    ...(s.version === undefined ? {} : { version: s.version }),
    ...(s.replica === undefined ? {} : { replica: s.replica }),
  });
  const hasInflight = store.metricNames().includes(GATEWAY_REQUESTS_IN_FLIGHT);
  return {
    kind: "builtin",
    retentionMs: store.retentionMs,
    async errorRatio(s) {
      checkSelector(s);
      return single(store.errorRatio({ ...where(s), window: s.window, ...(s.at === undefined ? {} : { at: s.at }) }));
    },
    async requestRate(s) {
      checkSelector(s);
      return single(store.rate(GATEWAY_REQUESTS, { window: s.window, where: where(s), ...(s.at === undefined ? {} : { at: s.at }) }));
    },
    async latencyQuantile(s) {
      checkSelector(s);
      const q = checkQuantile(s.q);
      return single(store.latencyQuantile({ ...where(s), q, window: s.window, ...(s.at === undefined ? {} : { at: s.at }) }));
    },
    async slowRatio(s) {
      checkSelector(s);
      const thresholdSeconds = checkThreshold(s.thresholdSeconds);
      return single(store.slowRatio({ ...where(s), thresholdSeconds, window: s.window, ...(s.at === undefined ? {} : { at: s.at }) }));
    },
    async inflight(s) {
      checkSelector(s);
      if (!hasInflight) return undefined;
      return single(store.avgOverTime(GATEWAY_REQUESTS_IN_FLIGHT, { window: s.window, where: where(s), ...(s.at === undefined ? {} : { at: s.at }) }));
    },
  };
}

export interface PrometheusMetricsSourceOptions {
  /** Base URL of the Prometheus server, e.g. "http://127.0.0.1:9090". */
  url: string;
  /** Longest wait for one query (default 5 s). */
  timeoutMs?: number;
  fetch?: typeof globalThis.fetch;
}

/** The PromQL a Prometheus source sends; exported so docs and tests show the same text. */
export const promql = {
  selector(s: MetricsSelector, extra: Record<string, string> = {}): string {
    const labels: Record<string, string> = { service: s.service };
    if (s.version !== undefined) labels.version = s.version;
    if (s.replica !== undefined) labels.replica = s.replica;
    Object.assign(labels, extra);
    return `{${Object.entries(labels)
      .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
      .join(",")}}`;
  },
  range(ms: number): string {
    return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
  },
  errorRatio(s: MetricsSelector, ms: number): string {
    const w = promql.range(ms);
    // Without any 5xx series the numerator would be empty (and the ratio missing) instead of 0.
    return `(sum(rate(${GATEWAY_REQUESTS}${promql.selector(s, { code_class: "5xx" })}[${w}])) or vector(0)) / sum(rate(${GATEWAY_REQUESTS}${promql.selector(s)}[${w}]))`;
  },
  requestRate(s: MetricsSelector, ms: number): string {
    return `sum(rate(${GATEWAY_REQUESTS}${promql.selector(s)}[${promql.range(ms)}]))`;
  },
  buckets(s: LatencyMetricsSelector, ms: number): string {
    return `sum by (le) (rate(${GATEWAY_REQUEST_DURATION}_bucket${promql.selector(s)}[${promql.range(ms)}]))`;
  },
  latencyQuantile(s: LatencyMetricsSelector, q: number, ms: number): string {
    return `histogram_quantile(${q}, ${promql.buckets(s, ms)})`;
  },
  inflight(s: MetricsSelector, ms: number): string {
    return `sum(avg_over_time(${GATEWAY_REQUESTS_IN_FLIGHT}${promql.selector(s)}[${promql.range(ms)}]))`;
  },
};

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

interface PromVectorResponse {
  status?: string;
  errorType?: string;
  error?: string;
  data?: { resultType?: string; result?: unknown };
}

/**
 * A MetricsSource that runs PromQL over a Prometheus server's HTTP API (`/api/v1/query`), for
 * teams that already scrape the gateway with Prometheus. Unreachable or failing queries reject
 * with `KEELSON_ERR_METRICS_UNAVAILABLE`.
 *
 * @example
 * const source = createPrometheusMetricsSource({ url: "http://127.0.0.1:9090" });
 * await source.latencyQuantile({ service: "orders", q: 0.99, window: "5m" }); // 0.231
 */
export function createPrometheusMetricsSource(options: PrometheusMetricsSourceOptions): MetricsSource {
  const base = options.url.replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? 5_000;
  const doFetch = options.fetch ?? globalThis.fetch;

  async function query(text: string, at: number | undefined): Promise<VectorSample[]> {
    const params = new URLSearchParams({ query: text });
    if (at !== undefined) params.set("time", (at / 1000).toFixed(3));
    const url = `${base}/api/v1/query`;
    const unavailable = (why: string, cause?: unknown) =>
      new KeelsonError("KEELSON_ERR_METRICS_UNAVAILABLE", `Prometheus at ${base}: ${why}`, { details: { url, query: text }, ...(cause === undefined ? {} : { cause }) });
    let res: Response;
    try {
      res = await doFetch(url, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body: params.toString(),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const e = err as Error;
      throw unavailable(e.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : `cannot connect (${errorText(e)})`, err);
    }
    let body: PromVectorResponse;
    try {
      body = (await res.json()) as PromVectorResponse;
    } catch {
      throw unavailable(`answered ${res.status} without a JSON body`);
    }
    if (body.status !== "success") throw unavailable(`${body.errorType ?? `HTTP ${res.status}`}: ${body.error ?? "query failed"}`);
    const data = body.data;
    if (data?.resultType === "scalar" && Array.isArray(data.result)) return [{ labels: {}, value: sampleValue(data.result) }];
    if (data?.resultType !== "vector" || !Array.isArray(data.result)) throw unavailable(`expected a vector result, got ${data?.resultType ?? "none"}`);
    return (data.result as Array<{ metric?: Record<string, string>; value?: unknown }>).map((r) => ({ labels: r.metric ?? {}, value: sampleValue(r.value) }));
  }

  return {
    kind: "prometheus",
    retentionMs: undefined,
    async errorRatio(s) {
      const ms = checkSelector(s);
      return single(await query(promql.errorRatio(s, ms), s.at));
    },
    async requestRate(s) {
      const ms = checkSelector(s);
      return single(await query(promql.requestRate(s, ms), s.at));
    },
    async latencyQuantile(s) {
      const ms = checkSelector(s);
      const q = checkQuantile(s.q);
      return single(await query(promql.latencyQuantile(s, q, ms), s.at));
    },
    async slowRatio(s) {
      const ms = checkSelector(s);
      const threshold = checkThreshold(s.thresholdSeconds);
      const buckets = (await query(promql.buckets(s, ms), s.at)).map((v) => ({ le: parseValue(v.labels.le ?? "") ?? NaN, count: v.value }));
      const x = fractionAbove(threshold, buckets.filter((b) => !Number.isNaN(b.le) && !Number.isNaN(b.count)));
      return Number.isNaN(x) ? undefined : x;
    },
    async inflight(s) {
      const ms = checkSelector(s);
      return single(await query(promql.inflight(s, ms), s.at));
    },
  };
}

/** A Prometheus sample `[time, "value"]`. */
function sampleValue(v: unknown): number {
  const text = Array.isArray(v) ? v[1] : undefined;
  return typeof text === "string" ? (parseValue(text) ?? NaN) : NaN;
}

function errorText(e: Error): string {
  const cause = (e as Error & { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? e.message;
}
