// Turns an OTLP/HTTP traces request (OTLP/JSON or protobuf) into SpanRecords. A request
// whose structure is wrong is refused whole (OtlpDecodeError → 400); a span with bad ids or
// times is rejected alone and counted, so the sender gets OTLP's partial success.
import { ExportTraceServiceRequest } from "./otlp-proto.js";
import { UNKNOWN_SERVICE } from "./trace-span.js";
import type { AttributeValue, Attributes, SpanEvent, SpanKind, SpanLink, SpanRecord, SpanStatus } from "./trace-span.js";

export interface DecodedTraces {
  spans: SpanRecord[];
  /** Spans left out because they were invalid (bad ids, missing or reversed times). */
  rejected: number;
  /** Why, for the first few rejected spans: "resourceSpans[0].scopeSpans[0].spans[2].traceId: …". */
  reasons: string[];
}

/** The request as a whole is malformed; nothing in it was taken. */
export class OtlpDecodeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "OtlpDecodeError";
  }
}

/** One span is invalid; the others in the request are still taken. */
class SpanRejection extends Error {}

const MAX_REASONS = 5;
const KINDS: readonly SpanKind[] = ["unspecified", "internal", "server", "client", "producer", "consumer"];
const KIND_NAMES: Record<string, SpanKind> = {
  SPAN_KIND_UNSPECIFIED: "unspecified",
  SPAN_KIND_INTERNAL: "internal",
  SPAN_KIND_SERVER: "server",
  SPAN_KIND_CLIENT: "client",
  SPAN_KIND_PRODUCER: "producer",
  SPAN_KIND_CONSUMER: "consumer",
};
const STATUSES: readonly SpanStatus[] = ["unset", "ok", "error"];
const STATUS_NAMES: Record<string, SpanStatus> = { STATUS_CODE_UNSET: "unset", STATUS_CODE_OK: "ok", STATUS_CODE_ERROR: "error" };
const HEX32 = /^[0-9a-fA-F]{32}$/;
const HEX16 = /^[0-9a-fA-F]{16}$/;
const ZEROS32 = "0".repeat(32);
const ZEROS16 = "0".repeat(16);
const DIGITS = /^\d{1,20}$/;
/** Assigning this key would replace an object's prototype instead of adding an attribute. */
const PROTO_KEY = "__proto__";

/**
 * Decodes an OTLP/JSON ExportTraceServiceRequest (hex ids, int64 as strings or numbers).
 *
 * @example
 * const { spans, rejected } = decodeOtlpJson(body); // throws OtlpDecodeError when malformed
 */
export function decodeOtlpJson(body: Uint8Array | string): DecodedTraces {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof body === "string" ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch (err) {
    throw new OtlpDecodeError(`body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isObject(doc)) throw new OtlpDecodeError("body must be a JSON object (ExportTraceServiceRequest)");
  const out: DecodedTraces = { spans: [], rejected: 0, reasons: [] };
  const resourceSpans = jsonList(doc.resourceSpans, "resourceSpans");
  for (let r = 0; r < resourceSpans.length; r++) {
    const rs = resourceSpans[r];
    const rPath = `resourceSpans[${r}]`;
    if (!isObject(rs)) throw new OtlpDecodeError(`${rPath}: expected an object`);
    const resourceObj = rs.resource;
    if (resourceObj !== undefined && resourceObj !== null && !isObject(resourceObj)) throw new OtlpDecodeError(`${rPath}.resource: expected an object`);
    const resource = jsonAttributes(isObject(resourceObj) ? resourceObj.attributes : undefined, `${rPath}.resource.attributes`);
    const service = serviceName(resource);
    const scopeSpans = jsonList(rs.scopeSpans, `${rPath}.scopeSpans`);
    for (let s = 0; s < scopeSpans.length; s++) {
      const ss = scopeSpans[s];
      const sPath = `${rPath}.scopeSpans[${s}]`;
      if (!isObject(ss)) throw new OtlpDecodeError(`${sPath}: expected an object`);
      const scopeName = isObject(ss.scope) && typeof ss.scope.name === "string" && ss.scope.name !== "" ? ss.scope.name : undefined;
      const spans = jsonList(ss.spans, `${sPath}.spans`);
      for (let i = 0; i < spans.length; i++) {
        const span = spans[i];
        const path = `${sPath}.spans[${i}]`;
        if (!isObject(span)) throw new OtlpDecodeError(`${path}: expected an object`);
        try {
          out.spans.push(jsonSpan(span, path, service, resource, scopeName));
        } catch (err) {
          if (!(err instanceof SpanRejection)) throw err;
          reject(out, err.message);
        }
      }
    }
  }
  return out;
}

/**
 * Decodes a protobuf ExportTraceServiceRequest.
 *
 * @example
 * const { spans } = decodeOtlpProtobuf(body); // throws OtlpDecodeError when the bytes are not one
 */
export function decodeOtlpProtobuf(body: Uint8Array): DecodedTraces {
  let msg: ProtoRequest;
  try {
    msg = ExportTraceServiceRequest.decode(body) as unknown as ProtoRequest;
  } catch (err) {
    throw new OtlpDecodeError(`body is not a protobuf ExportTraceServiceRequest: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const out: DecodedTraces = { spans: [], rejected: 0, reasons: [] };
  const resourceSpans = msg.resourceSpans ?? [];
  for (let r = 0; r < resourceSpans.length; r++) {
    const rs = resourceSpans[r] as ProtoResourceSpans;
    const resource = protoAttributes(rs.resource?.attributes);
    const service = serviceName(resource);
    const scopeSpans = rs.scopeSpans ?? [];
    for (let s = 0; s < scopeSpans.length; s++) {
      const ss = scopeSpans[s] as ProtoScopeSpans;
      const scopeName = ss.scope?.name ? ss.scope.name : undefined;
      const spans = ss.spans ?? [];
      for (let i = 0; i < spans.length; i++) {
        try {
          out.spans.push(protoSpan(spans[i] as ProtoSpan, `resourceSpans[${r}].scopeSpans[${s}].spans[${i}]`, service, resource, scopeName));
        } catch (err) {
          if (!(err instanceof SpanRejection)) throw err;
          reject(out, err.message);
        }
      }
    }
  }
  return out;
}

function reject(out: DecodedTraces, reason: string): void {
  out.rejected++;
  if (out.reasons.length < MAX_REASONS) out.reasons.push(reason);
}

function serviceName(resource: Attributes): string {
  const name = resource["service.name"];
  return typeof name === "string" && name !== "" ? name : UNKNOWN_SERVICE;
}

// ---- OTLP/JSON ----

function jsonSpan(span: Record<string, unknown>, path: string, service: string, resource: Attributes, scope: string | undefined): SpanRecord {
  const traceId = hexId(span.traceId, HEX32, ZEROS32, `${path}.traceId`, "32");
  const spanId = hexId(span.spanId, HEX16, ZEROS16, `${path}.spanId`, "16");
  const parent = span.parentSpanId;
  const parentSpanId = parent === undefined || parent === null || parent === "" ? undefined : hexId(parent, HEX16, ZEROS16, `${path}.parentSpanId`, "16");
  if (span.name !== undefined && typeof span.name !== "string") throw new SpanRejection(`${path}.name: expected a string`);
  const status = isObject(span.status) ? span.status : undefined;
  const events: SpanEvent[] = [];
  for (const e of Array.isArray(span.events) ? span.events : []) {
    if (!isObject(e)) continue;
    const timeUs = nanosToMicros(e.timeUnixNano);
    if (timeUs === undefined) continue;
    events.push({ name: typeof e.name === "string" ? e.name : "", timeUs, attributes: jsonAttributes(e.attributes, undefined) });
  }
  const links: SpanLink[] = [];
  for (const l of Array.isArray(span.links) ? span.links : []) {
    if (!isObject(l) || typeof l.traceId !== "string" || typeof l.spanId !== "string" || !HEX32.test(l.traceId) || !HEX16.test(l.spanId)) continue;
    links.push({ traceId: l.traceId.toLowerCase(), spanId: l.spanId.toLowerCase(), attributes: jsonAttributes(l.attributes, undefined) });
  }
  return finish({
    path,
    traceId,
    spanId,
    parentSpanId,
    name: (span.name as string | undefined) ?? "",
    kind: enumValue(span.kind, KINDS, KIND_NAMES, "unspecified"),
    service,
    start: nanosToMicros(span.startTimeUnixNano),
    end: nanosToMicros(span.endTimeUnixNano),
    status: enumValue(status?.code, STATUSES, STATUS_NAMES, "unset"),
    statusMessage: typeof status?.message === "string" && status.message !== "" ? status.message : undefined,
    attributes: jsonAttributes(span.attributes, undefined),
    resource,
    scope,
    events,
    links,
  });
}

function hexId(value: unknown, pattern: RegExp, zeros: string, path: string, digits: string): string {
  if (typeof value !== "string" || !pattern.test(value)) {
    throw new SpanRejection(`${path}: expected ${digits} hex digits, got ${value === undefined ? "nothing" : JSON.stringify(value).slice(0, 40)}`);
  }
  const id = value.toLowerCase();
  if (id === zeros) throw new SpanRejection(`${path}: an all-zero id is invalid`);
  return id;
}

/** A list field: absent or null is empty; anything but an array is a malformed request. */
function jsonList(value: unknown, path: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new OtlpDecodeError(`${path}: expected an array`);
  return value;
}

/** Attributes from a KeyValue list; entries that are not KeyValues are skipped, not fatal. */
function jsonAttributes(list: unknown, path: string | undefined): Attributes {
  const out: Attributes = {};
  if (list === undefined || list === null) return out;
  if (!Array.isArray(list)) {
    if (path !== undefined) throw new OtlpDecodeError(`${path}: expected an array`);
    return out;
  }
  for (const kv of list) {
    if (!isObject(kv) || typeof kv.key !== "string" || kv.key === PROTO_KEY) continue;
    const value = jsonAnyValue(kv.value, 0);
    if (value !== undefined) out[kv.key] = value;
  }
  return out;
}

function jsonAnyValue(v: unknown, depth: number): AttributeValue | undefined {
  if (!isObject(v) || depth > 8) return undefined;
  if (typeof v.stringValue === "string") return v.stringValue;
  if (typeof v.boolValue === "boolean") return v.boolValue;
  if (v.intValue !== undefined) return int64Value(v.intValue);
  if (v.doubleValue !== undefined) {
    const n = typeof v.doubleValue === "string" ? Number(v.doubleValue) : v.doubleValue;
    return typeof n === "number" && Number.isFinite(n) ? n : undefined;
  }
  if (isObject(v.arrayValue)) {
    const values = Array.isArray(v.arrayValue.values) ? v.arrayValue.values : [];
    return values.map((x) => jsonAnyValue(x, depth + 1)).filter((x): x is AttributeValue => x !== undefined);
  }
  if (isObject(v.kvlistValue)) {
    const out: Record<string, AttributeValue> = {};
    for (const kv of Array.isArray(v.kvlistValue.values) ? v.kvlistValue.values : []) {
      if (!isObject(kv) || typeof kv.key !== "string" || kv.key === PROTO_KEY) continue;
      const x = jsonAnyValue(kv.value, depth + 1);
      if (x !== undefined) out[kv.key] = x;
    }
    return out;
  }
  if (typeof v.bytesValue === "string") return v.bytesValue;
  return undefined;
}

function int64Value(v: unknown): AttributeValue | undefined {
  if (typeof v === "number") return Number.isInteger(v) ? v : undefined;
  if (typeof v !== "string" || !/^-?\d{1,20}$/.test(v)) return undefined;
  const n = Number(v);
  // Beyond 2^53 a double would silently change the value; keep the digits instead.
  return Number.isSafeInteger(n) ? n : v;
}

function enumValue<T extends string>(v: unknown, byNumber: readonly T[], byName: Record<string, T>, fallback: T): T {
  if (typeof v === "number") return byNumber[v] ?? fallback;
  if (typeof v === "string") return byName[v] ?? fallback;
  return fallback;
}

// ---- protobuf ----

interface ProtoLong {
  low: number;
  high: number;
  unsigned?: boolean;
  toString(): string;
}
type ProtoInt = number | ProtoLong;
interface ProtoAnyValue {
  value?: string;
  stringValue?: string;
  boolValue?: boolean;
  intValue?: ProtoInt;
  doubleValue?: number;
  arrayValue?: { values?: ProtoAnyValue[] } | null;
  kvlistValue?: { values?: ProtoKeyValue[] } | null;
  bytesValue?: Uint8Array;
}
interface ProtoKeyValue {
  key?: string;
  value?: ProtoAnyValue | null;
}
interface ProtoSpan {
  traceId?: Uint8Array;
  spanId?: Uint8Array;
  parentSpanId?: Uint8Array;
  name?: string;
  kind?: number;
  startTimeUnixNano?: ProtoInt;
  endTimeUnixNano?: ProtoInt;
  attributes?: ProtoKeyValue[];
  events?: Array<{ timeUnixNano?: ProtoInt; name?: string; attributes?: ProtoKeyValue[] }>;
  links?: Array<{ traceId?: Uint8Array; spanId?: Uint8Array; attributes?: ProtoKeyValue[] }>;
  status?: { code?: number; message?: string } | null;
}
interface ProtoScopeSpans {
  scope?: { name?: string } | null;
  spans?: ProtoSpan[];
}
interface ProtoResourceSpans {
  resource?: { attributes?: ProtoKeyValue[] } | null;
  scopeSpans?: ProtoScopeSpans[];
}
interface ProtoRequest {
  resourceSpans?: ProtoResourceSpans[];
}

function protoSpan(span: ProtoSpan, path: string, service: string, resource: Attributes, scope: string | undefined): SpanRecord {
  const traceId = bytesId(span.traceId, 16, ZEROS32, `${path}.traceId`);
  const spanId = bytesId(span.spanId, 8, ZEROS16, `${path}.spanId`);
  const parentSpanId = span.parentSpanId && span.parentSpanId.length > 0 ? bytesId(span.parentSpanId, 8, ZEROS16, `${path}.parentSpanId`) : undefined;
  const events: SpanEvent[] = [];
  for (const e of span.events ?? []) {
    const timeUs = nanosToMicros(e.timeUnixNano);
    if (timeUs !== undefined) events.push({ name: e.name ?? "", timeUs, attributes: protoAttributes(e.attributes) });
  }
  const links: SpanLink[] = [];
  for (const l of span.links ?? []) {
    if (l.traceId?.length !== 16 || l.spanId?.length !== 8) continue;
    links.push({ traceId: hex(l.traceId), spanId: hex(l.spanId), attributes: protoAttributes(l.attributes) });
  }
  return finish({
    path,
    traceId,
    spanId,
    parentSpanId,
    name: span.name ?? "",
    kind: KINDS[span.kind ?? 0] ?? "unspecified",
    service,
    start: nanosToMicros(span.startTimeUnixNano),
    end: nanosToMicros(span.endTimeUnixNano),
    status: STATUSES[span.status?.code ?? 0] ?? "unset",
    statusMessage: span.status?.message ? span.status.message : undefined,
    attributes: protoAttributes(span.attributes),
    resource,
    scope,
    events,
    links,
  });
}

function bytesId(bytes: Uint8Array | undefined, length: number, zeros: string, path: string): string {
  if (!bytes || bytes.length !== length) throw new SpanRejection(`${path}: expected ${length} bytes, got ${bytes?.length ?? 0}`);
  const id = hex(bytes);
  if (id === zeros) throw new SpanRejection(`${path}: an all-zero id is invalid`);
  return id;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

function protoAttributes(list: ProtoKeyValue[] | undefined): Attributes {
  const out: Attributes = {};
  if (!list) return out;
  for (const kv of list) {
    if (!kv.key || kv.key === PROTO_KEY) continue;
    const v = protoAnyValue(kv.value, 0);
    if (v !== undefined) out[kv.key] = v;
  }
  return out;
}

function protoAnyValue(v: ProtoAnyValue | null | undefined, depth: number): AttributeValue | undefined {
  if (!v || depth > 8) return undefined;
  // protobufjs names the member of the oneof that was set; the others read as defaults.
  switch (v.value) {
    case "stringValue":
      return v.stringValue ?? "";
    case "boolValue":
      return v.boolValue ?? false;
    case "intValue":
      return protoInt(v.intValue);
    case "doubleValue":
      return Number.isFinite(v.doubleValue) ? v.doubleValue : undefined;
    case "arrayValue":
      return (v.arrayValue?.values ?? []).map((x) => protoAnyValue(x, depth + 1)).filter((x): x is AttributeValue => x !== undefined);
    case "kvlistValue": {
      const out: Record<string, AttributeValue> = {};
      for (const kv of v.kvlistValue?.values ?? []) {
        const x = kv.key && kv.key !== PROTO_KEY ? protoAnyValue(kv.value, depth + 1) : undefined;
        if (x !== undefined && kv.key) out[kv.key] = x;
      }
      return out;
    }
    case "bytesValue":
      return v.bytesValue ? Buffer.from(v.bytesValue).toString("base64") : "";
    case undefined:
    default:
      return undefined;
  }
}

function protoInt(v: ProtoInt | undefined): AttributeValue | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "number") return v;
  const n = v.high * 4294967296 + (v.low >>> 0);
  return Number.isSafeInteger(n) ? n : v.toString();
}

// ---- shared ----

/**
 * Nanoseconds since the epoch (a decimal string, a number or a protobufjs Long for fixed64)
 * to whole microseconds, exactly: the string path drops the last three digits, the Long path
 * splits the division so no intermediate value passes 2^53.
 */
export function nanosToMicros(v: unknown): number | undefined {
  if (typeof v === "string") {
    if (!DIGITS.test(v)) return undefined;
    return v.length <= 3 ? 0 : Number(v.slice(0, -3));
  }
  if (typeof v === "number") {
    if (!Number.isFinite(v) || v < 0) return undefined;
    // Past 2^53 the division itself would round; BigInt divides the double's exact value.
    return Number.isSafeInteger(v) ? Math.floor(v / 1000) : Number(BigInt(Math.floor(v)) / 1000n);
  }
  if (typeof v === "object" && v !== null && typeof (v as ProtoLong).low === "number" && typeof (v as ProtoLong).high === "number") {
    const hi = (v as ProtoLong).high >>> 0;
    const lo = (v as ProtoLong).low >>> 0;
    // 2^32 = 4294967 * 1000 + 296
    return hi * 4294967 + Math.floor((hi * 296 + lo) / 1000);
  }
  return undefined;
}

interface SpanParts extends Omit<SpanRecord, "startTimeUs" | "durationUs"> {
  path: string;
  start: number | undefined;
  end: number | undefined;
}

function finish(p: SpanParts): SpanRecord {
  if (p.start === undefined || p.start === 0) throw new SpanRejection(`${p.path}.startTimeUnixNano: expected nanoseconds since the epoch`);
  if (p.end === undefined || p.end === 0) throw new SpanRejection(`${p.path}.endTimeUnixNano: expected nanoseconds since the epoch`);
  if (p.end < p.start) throw new SpanRejection(`${p.path}: endTimeUnixNano is before startTimeUnixNano`);
  return {
    traceId: p.traceId,
    spanId: p.spanId,
    parentSpanId: p.parentSpanId,
    name: p.name,
    kind: p.kind,
    service: p.service,
    startTimeUs: p.start,
    durationUs: p.end - p.start,
    status: p.status,
    statusMessage: p.statusMessage,
    attributes: p.attributes,
    resource: p.resource,
    scope: p.scope,
    events: p.events,
    links: p.links,
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
