// The gateway's spans without the OpenTelemetry SDK on the hot path: a span per request and per
// upstream try as a plain object, W3C traceparent in and out, and a bounded batch exporter that
// posts OTLP/JSON to the control plane. A tracing failure never reaches a request.
import { credentialHeader } from "./credential-file.js";
import { randomBytes } from "node:crypto";
import { request } from "undici";
import { Counter } from "prom-client";
import type { Registry } from "prom-client";
import { GATEWAY_SERVICE_NAME, KeelsonError, TRACE_ATTRIBUTES } from "@keelson/protocol";
import type { GatewayLogger } from "./logger.js";
import { silentLogger } from "./logger.js";

/** `GatewayOptions.tracing`: where spans go and how many requests start a trace. */
export interface GatewayTracingConfig {
  /** OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:7070/v1/traces`. */
  endpoint: string;
  /** Share (0-1) of requests without a sampled incoming traceparent that are traced (default 1). */
  sampleRatio?: number;
  /** Export interval in ms (default 1000); a full batch goes out at once. */
  flushIntervalMs?: number;
  /** File holding the gateway's identity token, sent as its bearer credential. */
  credentialFile?: string;
}

export interface GatewayTracingOptions extends GatewayTracingConfig {
  log?: GatewayLogger;
  /** When given, `keelson_gateway_spans_*` counters are registered in it. */
  registry?: Registry;
  /** Wall clock in ms since the epoch, fractional (default performance.timeOrigin + performance.now()). */
  wallClockMs?: () => number;
  /** Random source of the sampling decision (default Math.random). */
  random?: () => number;
  /** Spans per export request (default 512). */
  maxBatchSize?: number;
  /** Finished spans waiting for export; beyond it new spans are dropped and counted (default 4096). */
  maxQueueSize?: number;
}

export interface GatewayTracingStats {
  exportedSpans: number;
  droppedSpans: number;
  failedExports: number;
}

const SERVER = 2;
const CLIENT = 3;

/** A span the gateway records: fields instead of an attribute map, turned into OTLP only when exported. */
export class GatewaySpan {
  endUs = 0;
  /** HTTP status of the answer, 0 for none. */
  status = 0;
  /** Set when the span failed without (or besides) an HTTP status. */
  error: string | undefined = undefined;
  service: string | undefined = undefined;
  caller: string | undefined = undefined;
  path: string | undefined = undefined;
  version: string | undefined = undefined;
  /** The flag that chose the request's service or version, and its variant (server spans). */
  flagKey: string | undefined = undefined;
  flagVariant: string | undefined = undefined;
  replica: string | undefined = undefined;
  serverAddress: string | undefined = undefined;
  serverPort = 0;
  /** Which try (0 for the first); -1 on server spans. */
  attempt = -1;
  private ended = false;

  constructor(
    private readonly recorder: SpanRecorder,
    readonly kind: typeof SERVER | typeof CLIENT,
    readonly traceId: string,
    readonly spanId: string,
    readonly parentSpanId: string | undefined,
    readonly method: string,
    readonly startUs: number,
  ) {}

  /** The W3C traceparent naming this span as the parent (always sampled: unsampled requests get no span). */
  traceparent(): string {
    return `00-${this.traceId}-${this.spanId}-01`;
  }

  /** Ends the span (once) with an HTTP status, or 0 and an error for a try that got no answer. */
  end(status: number, error?: string): void {
    if (this.ended) return;
    this.ended = true;
    this.status = status;
    if (error !== undefined) this.error = error;
    this.recorder.finish(this);
  }
}

/** What the gateway's exchanges use. */
export interface SpanRecorder {
  /**
   * Starts a request's server span, continuing `traceparent` when it is valid. Undefined when the
   * request is not traced (an unsampled incoming trace, or not picked by `sampleRatio`).
   */
  startServer(traceparent: string | undefined, method: string): GatewaySpan | undefined;
  /** Starts the span of one upstream try under a server span. */
  startClient(parent: GatewaySpan, attempt: number): GatewaySpan;
  /** Queues an ended span for export (called by `GatewaySpan.end`). */
  finish(span: GatewaySpan): void;
}

export interface GatewayTracing extends SpanRecorder {
  stats(): GatewayTracingStats;
  /** Sends what is queued now; resolves when those exports are done (or failed). */
  flush(): Promise<void>;
  /** Stops the timer and flushes for at most `timeoutMs` (default 2 s). */
  close(timeoutMs?: number): Promise<void>;
}

/** A parsed W3C traceparent. */
export interface TraceParent {
  traceId: string;
  spanId: string;
  sampled: boolean;
}

/** Parses a W3C `traceparent` (version 00, or a later one read as 00); undefined when invalid. */
export function parseTraceparent(value: string): TraceParent | undefined {
  const v = value.trim();
  if (v.length < 55 || v.charCodeAt(2) !== 45 || v.charCodeAt(35) !== 45 || v.charCodeAt(52) !== 45) return undefined;
  if (!isLowerHex(v, 0, 2) || !isLowerHex(v, 3, 35) || !isLowerHex(v, 36, 52) || !isLowerHex(v, 53, 55)) return undefined;
  const version = v.slice(0, 2);
  if (version === "ff" || (version === "00" && v.length !== 55) || (v.length > 55 && v.charCodeAt(55) !== 45)) return undefined;
  const traceId = v.slice(3, 35);
  const spanId = v.slice(36, 52);
  if (traceId === "00000000000000000000000000000000" || spanId === "0000000000000000") return undefined;
  return { traceId, spanId, sampled: (parseInt(v.slice(53, 55), 16) & 1) === 1 };
}

function isLowerHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

const ID_POOL_BYTES = 4096;

/** Random span and trace ids, cut from a pooled buffer refilled 4 KiB at a time. */
class IdSource {
  private pool = randomBytes(ID_POOL_BYTES);
  private offset = 0;

  hex(bytes: number): string {
    for (;;) {
      if (this.offset + bytes > ID_POOL_BYTES) {
        this.pool = randomBytes(ID_POOL_BYTES);
        this.offset = 0;
      }
      const start = this.offset;
      this.offset += bytes;
      // An all-zero id is invalid; bounded in practice (2^-64 per draw).
      for (let i = start; i < start + bytes; i++) if (this.pool[i] !== 0) return this.pool.toString("hex", start, start + bytes);
    }
  }
}

/**
 * Creates the gateway's span recorder and exporter. Exports run every `flushIntervalMs` or as
 * soon as `maxBatchSize` spans wait, at most two at a time; a failed export is dropped, counted
 * and logged once per streak of failures.
 *
 * @example
 * const tracing = createGatewayTracing({ endpoint: "http://127.0.0.1:7070/v1/traces", log });
 * const span = tracing.startServer(req.headers.traceparent, "GET");
 */
export function createGatewayTracing(options: GatewayTracingOptions): GatewayTracing {
  let endpoint: URL;
  try {
    endpoint = new URL(options.endpoint);
  } catch {
    endpoint = new URL("invalid:");
  }
  if (endpoint.protocol !== "http:" && endpoint.protocol !== "https:") {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `tracing.endpoint: expected an http(s) URL, got ${JSON.stringify(options.endpoint)}`);
  }
  const sampleRatio = options.sampleRatio ?? 1;
  if (!(sampleRatio >= 0 && sampleRatio <= 1)) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `tracing.sampleRatio: expected a number from 0 to 1, got ${String(sampleRatio)}`);
  }
  const log = options.log ?? silentLogger;
  const wallClockMs = options.wallClockMs ?? (() => performance.timeOrigin + performance.now());
  const nowUs = () => Math.round(wallClockMs() * 1000);
  const random = options.random ?? Math.random;
  const maxBatch = options.maxBatchSize ?? 512;
  const maxQueue = options.maxQueueSize ?? 4096;
  const interval = options.flushIntervalMs ?? 1000;
  const ids = new IdSource();
  const resource = `{"attributes":[${attr("service.name", GATEWAY_SERVICE_NAME)},${attr("service.instance.id", `${GATEWAY_SERVICE_NAME}-${process.pid}`)}]}`;

  let queue: GatewaySpan[] = [];
  /** Spans before it in `queue` are already on their way: batches are cut without shifting the array. */
  let head = 0;
  let inflight = 0;
  const pending = new Set<Promise<void>>();
  let flushScheduled = false;
  let closed = false;
  let failing = false;
  const counts: GatewayTracingStats = { exportedSpans: 0, droppedSpans: 0, failedExports: 0 };
  const exportedCounter = options.registry
    ? new Counter({ name: "keelson_gateway_spans_exported_total", help: "Spans the gateway exported over OTLP.", registers: [options.registry] })
    : undefined;
  const droppedCounter = options.registry
    ? new Counter({
        name: "keelson_gateway_spans_dropped_total",
        help: "Spans the gateway dropped, by reason: queue_full (the export queue was full), export_failed (the endpoint failed or did not answer), shutdown (not sent within the flush time at stop).",
        labelNames: ["reason"] as const,
        registers: [options.registry],
      })
    : undefined;

  const drop = (n: number, reason: "queue_full" | "export_failed" | "shutdown") => {
    counts.droppedSpans += n;
    droppedCounter?.inc({ reason }, n);
  };

  const sendBatch = async (batch: GatewaySpan[]): Promise<void> => {
    try {
      const authorization = await credentialHeader(options.credentialFile);
      const body = `{"resourceSpans":[{"resource":${resource},"scopeSpans":[{"scope":{"name":"${GATEWAY_SERVICE_NAME}"},"spans":[${batch.map(spanJson).join(",")}]}]}]}`;
      const res = await request(endpoint, {
        method: "POST",
        headers: { "content-type": "application/json", ...(authorization === undefined ? {} : { authorization }) },
        body,
        headersTimeout: 5_000,
        bodyTimeout: 5_000,
      });
      await res.body.dump();
      if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
      counts.exportedSpans += batch.length;
      exportedCounter?.inc(batch.length);
      if (failing) log.info({ endpoint: endpoint.href }, "span export works again");
      failing = false;
    } catch (err) {
      counts.failedExports++;
      drop(batch.length, "export_failed");
      if (!failing) log.warn({ endpoint: endpoint.href, err: err instanceof Error ? err.message : String(err) }, "span export failed; dropping spans until it works again");
      failing = true;
    }
  };

  /** Starts exports while spans wait and fewer than two are in flight. */
  const pump = () => {
    flushScheduled = false;
    while (queue.length > head && inflight < 2) {
      let batch: GatewaySpan[];
      if (head === 0 && queue.length <= maxBatch) {
        batch = queue;
        queue = [];
      } else {
        batch = queue.slice(head, head + maxBatch);
        head += batch.length;
        if (head === queue.length) {
          queue = [];
          head = 0;
        } else if (head >= maxBatch * 4) {
          // Under steady load the queue may never empty: let go of what was sent, now and then.
          queue = queue.slice(head);
          head = 0;
        }
      }
      inflight++;
      const p = sendBatch(batch).finally(() => {
        inflight--;
        pending.delete(p);
        const waiting = queue.length - head;
        if (waiting >= maxBatch || (closed && waiting > 0)) pump();
      });
      pending.add(p);
    }
  };

  const timer = setInterval(pump, interval);
  timer.unref();

  const tracing: GatewayTracing = {
    startServer(traceparent, method) {
      const parent = traceparent === undefined ? undefined : parseTraceparent(traceparent);
      if (parent !== undefined ? !parent.sampled : sampleRatio < 1 && random() >= sampleRatio) return undefined;
      return new GatewaySpan(tracing, SERVER, parent?.traceId ?? ids.hex(16), ids.hex(8), parent?.spanId, method, nowUs());
    },
    startClient(parent, attempt) {
      const span = new GatewaySpan(tracing, CLIENT, parent.traceId, ids.hex(8), parent.spanId, parent.method, nowUs());
      span.attempt = attempt;
      span.service = parent.service;
      return span;
    },
    finish(span) {
      span.endUs = nowUs();
      if (closed || queue.length - head >= maxQueue) {
        drop(1, "queue_full");
        return;
      }
      queue.push(span);
      if (queue.length - head >= maxBatch && !flushScheduled) {
        // Off the request's own stack: serializing a batch is not the request's cost.
        flushScheduled = true;
        setImmediate(pump);
      }
    },
    stats: () => ({ ...counts }),
    async flush() {
      pump();
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    async close(timeoutMs = 2_000) {
      if (closed) return;
      clearInterval(timer);
      let timeout: NodeJS.Timeout | undefined;
      const flushed = tracing.flush();
      closed = true;
      await Promise.race([flushed, new Promise<void>((r) => (timeout = setTimeout(r, timeoutMs)))]);
      clearTimeout(timeout);
      if (queue.length > head) {
        drop(queue.length - head, "shutdown");
        queue = [];
        head = 0;
      }
    },
  };
  return tracing;
}

function attr(key: string, value: string): string {
  return `{"key":"${key}","value":{"stringValue":${JSON.stringify(value)}}}`;
}

function intAttr(key: string, value: number): string {
  return `{"key":"${key}","value":{"intValue":${value}}}`;
}

/** One span as OTLP/JSON, written by hand: a JSON.stringify of an object tree costs several times more. */
function spanJson(s: GatewaySpan): string {
  const server = s.kind === SERVER;
  let attributes = attr("http.request.method", s.method);
  if (s.service !== undefined) attributes += `,${attr(TRACE_ATTRIBUTES.TARGET_SERVICE, s.service)}`;
  if (server) {
    if (s.path !== undefined) attributes += `,${attr("url.path", s.path)}`;
    if (s.caller !== undefined) attributes += `,${attr(TRACE_ATTRIBUTES.CALLER, s.caller)}`;
    // OpenTelemetry's feature-flag conventions.
    if (s.flagKey !== undefined) attributes += `,${attr("feature_flag.key", s.flagKey)},${attr("feature_flag.result.variant", s.flagVariant ?? "")}`;
  } else {
    attributes += `,${intAttr(TRACE_ATTRIBUTES.ATTEMPT, s.attempt)}`;
    if (s.version !== undefined) attributes += `,${attr(TRACE_ATTRIBUTES.TARGET_VERSION, s.version)}`;
    if (s.replica !== undefined) attributes += `,${attr(TRACE_ATTRIBUTES.TARGET_REPLICA, s.replica)}`;
    if (s.serverAddress !== undefined) attributes += `,${attr("server.address", s.serverAddress)},${intAttr("server.port", s.serverPort)}`;
  }
  if (s.status > 0) attributes += `,${intAttr("http.response.status_code", s.status)}`;
  // OpenTelemetry's HTTP conventions: a server span fails on 5xx, a client span on 4xx and 5xx.
  const failed = s.error !== undefined || s.status >= (server ? 500 : 400);
  const status = !failed ? `{"code":0}` : s.error === undefined ? `{"code":2}` : `{"code":2,"message":${JSON.stringify(s.error)}}`;
  const parent = s.parentSpanId === undefined ? "" : `"parentSpanId":"${s.parentSpanId}",`;
  const name = JSON.stringify(s.service === undefined ? s.method : `${s.method} ${s.service}`);
  return `{"traceId":"${s.traceId}","spanId":"${s.spanId}",${parent}"name":${name},"kind":${s.kind},"startTimeUnixNano":"${s.startUs}000","endTimeUnixNano":"${Math.max(s.endUs, s.startUs)}000","attributes":[${attributes}],"status":${status}}`;
}
