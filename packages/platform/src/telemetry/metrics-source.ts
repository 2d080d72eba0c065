// MetricsSource: the questions canary analysis, the autoscaler and SLOs ask about a service's
// traffic, answered by the control plane's own metric store or by a Prometheus server (PromQL over
// its HTTP API) with the same meaning. Both run metrics-source.conformance.ts.
import { KeelsonError } from "@keelson/protocol";
import { fractionAbove } from "./histogram-buckets.js";
import type { Bucket } from "./histogram-buckets.js";
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

/** Requests finished over a window, and the 5xx among them. */
export interface RequestCounts {
  requests: number;
  errors: number;
}

/**
 * What the platform asks about traffic. Every answer is undefined when the source has no data
 * for the selection (no requests in the window, or the metric is not exposed).
 */
export interface MetricsSource {
  /** "builtin" or "prometheus". */
  readonly kind: string;
  /** Where its numbers come from, for messages: "Prometheus at http://…", "the built-in metric store (gateway scrapes)". */
  readonly description: string;
  /**
   * How often the numbers behind it are taken (the scrape interval), when the source knows it:
   * counts stand still between two samples, so a quiet stretch that short means nothing.
   */
  readonly scrapeIntervalMs: number | undefined;
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
  /**
   * Requests finished and the 5xx (`code_class="5xx"`) among them: the increase over the window
   * ending at `at`, summed over the selection's replicas and routes. Raw counts rather than a
   * ratio, for sequential tests such as canary analysis. `errors` is 0 when requests came but no
   * 5xx series exists; undefined when no series of the selection existed in the window.
   *
   * Built-in: exact integers over whole 10 s steps, from the step holding the window's start
   * through the one holding `at` (so up to one step before the start counts), every scrape taken
   * up to `at` included; a series that first appears on a gateway already scraped counts in full.
   * Take `at` after the scrape that should count (e.g. after `scraper.scrapeOnce()`).
   * Prometheus: `increase()`, extrapolated to the window's edges, so not always whole numbers;
   * it needs two samples inside the window (undefined for a window shorter than the scrape
   * interval), and a series' first sample counts as its start, not as new requests.
   *
   * @example
   * await source.counts({ service: "orders", version: "r-3f9a", window: 95_000, at: Date.now() });
   * // { requests: 1840, errors: 3 }
   */
  counts(selector: MetricsSelector): Promise<RequestCounts | undefined>;
  /**
   * The request-duration histogram's cumulative buckets (seconds), each bound's increase over the
   * window, summed over routes: ascending by `le`, +Inf last. Windows behave as in `counts`
   * (built-in: whole steps covering the window; Prometheus: extrapolated, so fractional);
   * undefined when no histogram series of the selection existed in the window.
   *
   * @example
   * await source.latencyBuckets({ service: "orders", version: "r-3f9a", window: "2m" });
   * // [{ le: 0.05, count: 410 }, { le: 0.1, count: 702 }, …, { le: Infinity, count: 731 }]
   */
  latencyBuckets(selector: LatencyMetricsSelector): Promise<Bucket[] | undefined>;
  /**
   * An instant PromQL query that must come to one number: a scalar or a vector of one sample
   * (undefined for an empty vector or NaN). Several samples, a range vector or a query Prometheus
   * rejects as malformed reject with `KEELSON_ERR_INVALID_INPUT` (the message names the query and
   * carries Prometheus's error); an unreachable Prometheus, or one that fails to run the query
   * (timeout, too many samples), with `KEELSON_ERR_METRICS_UNAVAILABLE` and its error text.
   * The built-in store speaks no PromQL: it always rejects with `KEELSON_ERR_INVALID_INPUT`.
   *
   * @example
   * await source.query('sum(rate(orders_placed_total{version="r-3f9a"}[5m]))', { at: Date.now() }); // 3.2
   */
  query(promql: string, options?: { at?: number }): Promise<number | undefined>;
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

function checkQuery(text: unknown, options: { at?: number } | undefined): void {
  if (typeof text !== "string" || text.trim() === "") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `query: expected a PromQL expression, got ${JSON.stringify(text)}`);
  const at = options?.at;
  if (at !== undefined && !Number.isFinite(at)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `at: expected a time in ms, got ${JSON.stringify(at)}`);
}

/** Requests and 5xx from increases grouped by code_class; undefined without any group. */
function sumCounts(byClass: VectorSample[]): RequestCounts | undefined {
  if (byClass.length === 0) return undefined;
  let requests = 0;
  let errors = 0;
  for (const g of byClass) {
    if (Number.isNaN(g.value)) continue;
    requests += g.value;
    if (g.labels.code_class === "5xx") errors += g.value;
  }
  return { requests, errors };
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
    description: "the built-in metric store (gateway scrapes)",
    // The scraper that feeds the store knows its interval; the store does not.
    scrapeIntervalMs: undefined,
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
    async counts(s) {
      checkSelector(s);
      // One query by code_class, so requests and errors come from the same steps.
      const byClass = store.increase(GATEWAY_REQUESTS, { window: s.window, where: where(s), by: ["code_class"], steps: "cover", ...(s.at === undefined ? {} : { at: s.at }) });
      return sumCounts(byClass);
    },
    async latencyBuckets(s) {
      checkSelector(s);
      const groups = store.latencyBuckets({ ...where(s), window: s.window, steps: "cover", ...(s.at === undefined ? {} : { at: s.at }) });
      return groups[0]?.buckets;
    },
    async query(text, options) {
      checkQuery(text, options);
      throw new KeelsonError(
        "KEELSON_ERR_INVALID_INPUT",
        "custom PromQL metrics need Prometheus: set telemetry.prometheus.url in keelson.yaml (the built-in store answers only the gateway's request, error and latency metrics)",
        { details: { query: text } },
      );
    },
  };
}

export interface PrometheusMetricsSourceOptions {
  /** Base URL of the Prometheus server, e.g. "http://127.0.0.1:9090". */
  url: string;
  /** Longest wait for one query (default 5 s). */
  timeoutMs?: number;
  /** How often Prometheus scrapes the gateway, if known (canary analysis waits longer for still numbers without it). */
  scrapeIntervalMs?: number;
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
  // By code_class in one query rather than two (`… or vector(0)` for errors): one round trip, and
  // requests and errors evaluated over the same samples.
  counts(s: MetricsSelector, ms: number): string {
    return `sum by (code_class) (increase(${GATEWAY_REQUESTS}${promql.selector(s)}[${promql.range(ms)}]))`;
  },
  latencyBuckets(s: LatencyMetricsSelector, ms: number): string {
    return `sum by (le) (increase(${GATEWAY_REQUEST_DURATION}_bucket${promql.selector(s)}[${promql.range(ms)}]))`;
  },
};

/** `{a="b",…}` as PromQL prints a series' labels. */
function labelText(labels: Record<string, string>): string {
  return `{${Object.entries(labels)
    .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
    .join(",")}}`;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

interface PromQueryResponse {
  status?: string;
  errorType?: string;
  error?: string;
  data?: { resultType?: string; result?: unknown };
}

interface PromVectorSample {
  metric?: Record<string, string>;
  value?: unknown;
}

/**
 * A MetricsSource that runs PromQL over a Prometheus server's HTTP API (`/api/v1/query`), for
 * teams that already scrape the gateway with Prometheus. Unreachable or failing queries reject
 * with `KEELSON_ERR_METRICS_UNAVAILABLE`; a custom `query()` Prometheus finds malformed rejects
 * with `KEELSON_ERR_INVALID_INPUT`.
 *
 * @example
 * const source = createPrometheusMetricsSource({ url: "http://127.0.0.1:9090" });
 * await source.latencyQuantile({ service: "orders", q: 0.99, window: "5m" }); // 0.231
 */
export function createPrometheusMetricsSource(options: PrometheusMetricsSourceOptions): MetricsSource {
  const base = options.url.replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? 5_000;
  const doFetch = options.fetch ?? globalThis.fetch;

  /** The query's `data`; `custom` marks the caller's own PromQL, whose syntax errors are bad input. */
  async function run(text: string, at: number | undefined, custom: boolean): Promise<{ resultType: string | undefined; result: unknown }> {
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
    let body: PromQueryResponse;
    try {
      body = (await res.json()) as PromQueryResponse;
    } catch {
      throw unavailable(`answered ${res.status} without a JSON body`);
    }
    if (body.status !== "success") {
      const why = `${body.errorType ?? `HTTP ${res.status}`}: ${body.error ?? "query failed"}`;
      if (custom && body.errorType === "bad_data") {
        throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `query ${JSON.stringify(text)}: Prometheus at ${base} rejected it: ${why}`, { details: { url, query: text } });
      }
      throw unavailable(why);
    }
    return { resultType: body.data?.resultType, result: body.data?.result };
  }

  async function query(text: string, at: number | undefined): Promise<VectorSample[]> {
    const data = await run(text, at, false);
    if (data.resultType === "scalar" && Array.isArray(data.result)) return [{ labels: {}, value: sampleValue(data.result) }];
    if (data.resultType !== "vector" || !Array.isArray(data.result)) {
      throw new KeelsonError("KEELSON_ERR_METRICS_UNAVAILABLE", `Prometheus at ${base}: expected a vector result, got ${data.resultType ?? "none"}`, {
        details: { url: `${base}/api/v1/query`, query: text },
      });
    }
    return (data.result as PromVectorSample[]).map((r) => ({ labels: r.metric ?? {}, value: sampleValue(r.value) }));
  }

  return {
    kind: "prometheus",
    description: `Prometheus at ${base}`,
    scrapeIntervalMs: options.scrapeIntervalMs,
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
    async counts(s) {
      const ms = checkSelector(s);
      return sumCounts(await query(promql.counts(s, ms), s.at));
    },
    async latencyBuckets(s) {
      const ms = checkSelector(s);
      const buckets = (await query(promql.latencyBuckets(s, ms), s.at))
        .map((v) => ({ le: parseValue(v.labels.le ?? "") ?? NaN, count: v.value }))
        .filter((b) => !Number.isNaN(b.le) && !Number.isNaN(b.count))
        .sort((a, b) => a.le - b.le);
      return buckets.length === 0 ? undefined : buckets;
    },
    async query(text, options) {
      checkQuery(text, options);
      const data = await run(text, options?.at, true);
      const wrong = (why: string, details: Record<string, unknown> = {}) =>
        new KeelsonError("KEELSON_ERR_INVALID_INPUT", `query ${JSON.stringify(text)}: ${why}`, { details: { query: text, ...details } });
      let value: number;
      if (data.resultType === "scalar" && Array.isArray(data.result)) value = sampleValue(data.result);
      else if (data.resultType === "vector" && Array.isArray(data.result)) {
        const samples = data.result as PromVectorSample[];
        if (samples.length === 0) return undefined;
        if (samples.length > 1) {
          const shown = samples.slice(0, 3).map((r) => labelText(r.metric ?? {}));
          throw wrong(`expected one number, got ${samples.length} series (${shown.join(", ")}${samples.length > 3 ? ", …" : ""}): aggregate them, e.g. with sum()`, { series: samples.length });
        }
        value = sampleValue(samples[0]?.value);
      } else {
        throw wrong(`expected one number, got ${data.resultType === "matrix" ? "a range vector" : `a ${data.resultType ?? "missing"} result`}`);
      }
      return Number.isNaN(value) ? undefined : value;
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
