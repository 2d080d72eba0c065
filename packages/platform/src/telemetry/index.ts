// The telemetry domain: what the platform knows about traffic, and what it does about it.

// --- Metrics and SLOs: the gateway's RED metrics scraped into a built-in store (or read from
// Prometheus), SLO burn-rate alerting and incidents.
export { parsePrometheusText, parseValue } from "./prometheus-text.js";
export type { MetricFamily, MetricType, ParseOptions, Sample } from "./prometheus-text.js";
export { bucketQuantile, fractionAbove } from "./histogram-buckets.js";
export type { Bucket } from "./histogram-buckets.js";
export {
  createMetricStore,
  DEFAULT_MAX_SERIES,
  DEFAULT_RETENTION,
  GATEWAY_FLAG_REQUEST_DURATION,
  GATEWAY_FLAG_REQUESTS,
  GATEWAY_METRICS,
  GATEWAY_REQUESTS,
  GATEWAY_REQUESTS_IN_FLIGHT,
  GATEWAY_REQUEST_DURATION,
} from "./metric-store.js";
export type {
  HistogramSample,
  IngestOptions,
  IngestResult,
  LatencySelector,
  MetricDefinition,
  MetricQuery,
  MetricStore,
  MetricStoreOptions,
  MetricStoreStats,
  MetricWindow,
  RedSelector,
  RetentionTier,
  SelectOptions,
  VectorSample,
  WindowSteps,
} from "./metric-store.js";
export { createBuiltinMetricsSource, createPrometheusMetricsSource, promql } from "./metrics-source.js";
export type { LatencyMetricsSelector, MetricsSelector, MetricsSource, PrometheusMetricsSourceOptions, RequestCounts } from "./metrics-source.js";
export { summarizeRed } from "./red-summary.js";
export type { RedRow, RedSummaryOptions } from "./red-summary.js";
export { createGatewayScraper } from "./gateway-scraper.js";
export type { GatewayScraper, GatewayScraperOptions, ScrapeTarget } from "./gateway-scraper.js";
export { BURN_ALERTS, alertClear, burnRates, firingAlerts, formatWindow, objectiveKey, objectivesFromManifest, objectivesFromServices, objectivesOf, sloStatus } from "./slo.js";
export type { BurnAlert, BurnRates, SloObjective, SloStatus } from "./slo.js";
export { createIncidentMonitor } from "./incidents.js";
export type { IncidentMonitor, IncidentMonitorOptions, IncidentWebhooks, OpenIncident } from "./incidents.js";
export { silentTelemetryLog } from "./telemetry-log.js";
export type { TelemetryLog } from "./telemetry-log.js";

// --- Traces: the OTLP/HTTP receiver (with optional forwarding), the TraceStore (memory and
// SQLite), trace trees for `keelson trace` and the service map.
export { createOtlpReceiver, DEFAULT_OTLP_MAX_BODY_BYTES } from "./otlp-receiver.js";
export type { OtlpOutcome, OtlpReceiver, OtlpReceiverOptions, OtlpReceiverStats } from "./otlp-receiver.js";
export { createOtlpForwarder } from "./otlp-forwarder.js";
export type { ForwardPayload, OtlpForwarder, OtlpForwarderOptions, OtlpForwarderStats } from "./otlp-forwarder.js";
export { decodeOtlpJson, decodeOtlpProtobuf, OtlpDecodeError } from "./otlp-decode.js";
export type { DecodedTraces } from "./otlp-decode.js";
export { HTTP_STATUS_ATTRIBUTE, UNKNOWN_SERVICE, httpStatusOf, isFailedCall, replicaOf, targetServiceOf, versionOf } from "./trace-span.js";
export type { AttributeValue, Attributes, SpanEvent, SpanKind, SpanLink, SpanRecord, SpanStatus } from "./trace-span.js";
export { DEFAULT_TRACE_MAX_AGE_MS, normalizeTraceId, summarizeTrace } from "./trace-store.js";
export type { SpanScan, TraceRetention, TraceSearch, TraceStore, TraceSummary } from "./trace-store.js";
export { createMemoryTraceStore, DEFAULT_MEMORY_MAX_SPANS } from "./trace-store-memory.js";
export type { MemoryTraceStoreOptions } from "./trace-store-memory.js";
export { createSqliteTraceStore, DEFAULT_SQLITE_MAX_SPANS } from "./trace-store-sqlite.js";
export type { SqliteTraceStoreOptions } from "./trace-store-sqlite.js";
export { parseDurationMs, parseTraceSearchParams } from "./trace-query.js";
export { buildTraceTree, flattenTraceTree, formatDuration, renderTraceTree } from "./trace-tree.js";
export type { RenderTraceOptions, TraceNode, TraceTree } from "./trace-tree.js";
export { buildServiceMap, EXTERNAL_CALLER } from "./service-map.js";
export type { ServiceMap, ServiceMapEdge, ServiceMapNode, ServiceMapOptions } from "./service-map.js";
export { DEFAULT_TRACE_LOG_LIMIT, findTraceLogs, matchTraceLine, traceServices } from "./trace-logs.js";
export type { CollectedLogLine, FindTraceLogsOptions, TraceLogLine, TraceLogs } from "./trace-logs.js";
export { collectProcessMetrics } from "./process-metrics.js";
export { deliverWebhook } from "./webhook.js";
export type { WebhookDelivery } from "./webhook.js";
