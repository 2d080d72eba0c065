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
  GATEWAY_METRICS,
  GATEWAY_REQUESTS,
  GATEWAY_REQUESTS_IN_FLIGHT,
  GATEWAY_REQUEST_DURATION,
} from "./metric-store.js";
export type {
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
} from "./metric-store.js";
export { createBuiltinMetricsSource, createPrometheusMetricsSource, promql } from "./metrics-source.js";
export type { LatencyMetricsSelector, MetricsSelector, MetricsSource, PrometheusMetricsSourceOptions } from "./metrics-source.js";
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
