// The span as Keelson keeps it: one flat, JSON-friendly record per span, decoded from
// OTLP (JSON or protobuf) by the receiver and read by the trace store, the tree and the map.
import { TRACE_ATTRIBUTES } from "@keelson/protocol";

export type SpanKind = "unspecified" | "internal" | "server" | "client" | "producer" | "consumer";
/** OTLP's status codes; "unset" is the common case for a span that went well. */
export type SpanStatus = "unset" | "ok" | "error";

/** An OTLP AnyValue as plain data: int64 beyond 2^53 stays a decimal string, bytes become base64. */
export type AttributeValue = string | number | boolean | AttributeValue[] | { [key: string]: AttributeValue };
export type Attributes = Record<string, AttributeValue>;

export interface SpanEvent {
  name: string;
  /** Microseconds since the Unix epoch. */
  timeUs: number;
  attributes: Attributes;
}

export interface SpanLink {
  traceId: string;
  spanId: string;
  attributes: Attributes;
}

export interface SpanRecord {
  /** 32 lowercase hex digits. */
  traceId: string;
  /** 16 lowercase hex digits. */
  spanId: string;
  /** Undefined for a root span. */
  parentSpanId: string | undefined;
  name: string;
  kind: SpanKind;
  /** The resource's `service.name` ("unknown_service" when the sender set none). */
  service: string;
  /** Microseconds since the Unix epoch. OTLP carries nanoseconds; microseconds fit a double exactly. */
  startTimeUs: number;
  durationUs: number;
  status: SpanStatus;
  statusMessage: string | undefined;
  attributes: Attributes;
  /** Resource attributes (service.version, service.instance.id, ...). */
  resource: Attributes;
  /** The instrumentation scope's name, if the sender gave one. */
  scope: string | undefined;
  events: SpanEvent[];
  links: SpanLink[];
}

export const UNKNOWN_SERVICE = "unknown_service";
/** The HTTP status attribute of the OpenTelemetry semantic conventions. */
export const HTTP_STATUS_ATTRIBUTE = "http.response.status_code";

/**
 * The service a client span or a gateway span calls, when it names one: Keelson's
 * `keelson.target.service`, else the conventional `peer.service`.
 */
export function targetServiceOf(span: SpanRecord): string | undefined {
  const target = span.attributes[TRACE_ATTRIBUTES.TARGET_SERVICE] ?? span.attributes["peer.service"];
  return typeof target === "string" && target !== "" ? target : undefined;
}

/** The release a span ran on: the gateway's try attribute, else the resource's service.version. */
export function versionOf(span: SpanRecord): string | undefined {
  const v = span.attributes[TRACE_ATTRIBUTES.TARGET_VERSION] ?? span.resource["service.version"];
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** The replica a span ran on: the gateway's try attribute, else the resource's service.instance.id. */
export function replicaOf(span: SpanRecord): string | undefined {
  const r = span.attributes[TRACE_ATTRIBUTES.TARGET_REPLICA] ?? span.resource["service.instance.id"];
  return typeof r === "string" && r !== "" ? r : undefined;
}

/** The HTTP status a span recorded, if any. */
export function httpStatusOf(span: SpanRecord): number | undefined {
  const s = span.attributes[HTTP_STATUS_ATTRIBUTE];
  const n = typeof s === "string" ? Number(s) : s;
  return typeof n === "number" && Number.isInteger(n) ? n : undefined;
}

/**
 * Whether a call failed from the platform's point of view: a 5xx answer, or no answer at
 * all (an error status without an HTTP status). A 4xx is the caller's mistake, not an
 * outage, although client spans mark it as an error by convention.
 */
export function isFailedCall(span: SpanRecord): boolean {
  const status = httpStatusOf(span);
  if (status !== undefined) return status >= 500;
  return span.status === "error";
}
