// Tracing for services: OpenTelemetry spans for each request serve() handles and each call
// the client makes, W3C traceparent in and out, batched OTLP/HTTP export to the control plane.
// It never breaks the service: no endpoint means no export; export failures are logged once.
// Exports carry the service's identity token (read per export, so a rotated token is used).
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, defaultTextMapGetter, propagation, trace } from "@opentelemetry/api";
import type { Attributes, Context, Span, Tracer } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { ExportResultCode, W3CTraceContextPropagator } from "@opentelemetry/core";
import type { ExportResult } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler } from "@opentelemetry/sdk-trace-base";
import type { ReadableSpan, SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { REPLICA_ENV, TRACE_ATTRIBUTES } from "@keelson/protocol";
import { defaultIdentity } from "./identity.js";
import type { Identity } from "./identity.js";
import { createLogger } from "./logger.js";
import type { Logger } from "./logger.js";
import { activeSpan } from "./request-context.js";

export interface TracingOptions {
  /** `service.name` of the spans; defaults to $KEELSON_SERVICE, then "unknown_service:node". */
  service?: string;
  /**
   * The OTLP/HTTP traces URL (the control plane's /v1/traces); defaults to
   * $KEELSON_OTLP_ENDPOINT. Unset or empty: spans are made and propagated, not exported.
   */
  endpoint?: string;
  /** Sends spans here instead of over OTLP/HTTP (tests use InMemorySpanExporter). */
  exporter?: SpanExporter;
  /** More resource attributes; service.version, service.instance.id and service.namespace come from the replica's environment. */
  resource?: Record<string, string>;
  batch?: {
    /** How long a span may wait before it is sent; default 1000 ms. */
    scheduledDelayMs?: number;
    /** Ended spans waiting to be sent; beyond it new ones are dropped (and counted); default 2048. */
    maxQueueSize?: number;
    /** Default 512. */
    maxExportBatchSize?: number;
    /** Per export request; default 5000 ms. */
    exportTimeoutMs?: number;
  };
  /**
   * Also register as OpenTelemetry's global tracer provider, context manager and
   * propagator (each only if none is registered yet), so spans the service makes itself
   * with `trace.getTracer()` join the same traces. defaultTracing() does; default false.
   */
  registerGlobal?: boolean;
  logger?: Logger;
  /** Whose token OTLP/HTTP exports carry (`authorization: Bearer …`); defaults to defaultIdentity(). `false` sends none. */
  identity?: Identity | false;
}

export interface TracingStats {
  /** Spans ended and meant for export. */
  spansEnded: number;
  spansExported: number;
  /** Spans lost: the export failed, or the queue was full. */
  spansDropped: number;
  exportFailures: number;
}

export interface Tracing {
  readonly service: string;
  /** Whether spans leave the process (an endpoint or an exporter is set). */
  readonly exporting: boolean;
  readonly tracer: Tracer;
  stats(): TracingStats;
  /** Sends what is queued; resolves (never rejects) when done or after `timeoutMs` (default 2000). */
  forceFlush(timeoutMs?: number): Promise<void>;
  /** Flushes and stops; resolves (never rejects). */
  shutdown(): Promise<void>;
}

const PROPAGATOR = new W3CTraceContextPropagator();
const SCOPE = "@keelson/sdk";
const FALLBACK_SERVICE = "unknown_service:node";
const DEFAULT_FLUSH_TIMEOUT_MS = 2000;

/**
 * Creates a tracing setup. Most services need none of their own: serve() and createClient()
 * use defaultTracing(), configured from the replica's environment.
 *
 * @example
 * // Tests: three services in one process, spans kept in memory.
 * const exporter = new InMemorySpanExporter();
 * const tracing = createTracing({ service: "orders", exporter });
 * await serve({ handler, tracing });
 */
export function createTracing(options: TracingOptions = {}): Tracing {
  const log = options.logger ?? createLogger();
  const service = nonEmpty(options.service) ?? nonEmpty(process.env[REPLICA_ENV.SERVICE]) ?? FALLBACK_SERVICE;
  const endpoint = resolveEndpoint(options.endpoint ?? process.env[REPLICA_ENV.OTLP_ENDPOINT], log);
  const stats: TracingStats = { spansEnded: 0, spansExported: 0, spansDropped: 0, exportFailures: 0 };

  const identity = options.identity === false ? undefined : (options.identity ?? defaultIdentity());
  const inner =
    options.exporter ??
    (endpoint === undefined
      ? undefined
      : new OTLPTraceExporter({
          url: endpoint,
          timeoutMillis: options.batch?.exportTimeoutMs ?? 5000,
          // Called before each export; it must not throw.
          headers: async (): Promise<Record<string, string>> => {
            try {
              const authorization = identity?.authorization();
              return authorization === undefined ? {} : { authorization };
            } catch {
              return {};
            }
          },
        }));
  const processors: SpanProcessor[] = [];
  if (inner !== undefined) {
    const maxQueueSize = options.batch?.maxQueueSize ?? 2048;
    const exporter = new GuardedExporter(inner, stats, log, endpoint ?? "the configured exporter");
    const batch = new BatchSpanProcessor(exporter, {
      maxQueueSize,
      maxExportBatchSize: Math.min(options.batch?.maxExportBatchSize ?? 512, maxQueueSize),
      scheduledDelayMillis: options.batch?.scheduledDelayMs ?? 1000,
      exportTimeoutMillis: options.batch?.exportTimeoutMs ?? 5000,
    });
    processors.push(new CountingProcessor(batch, exporter, stats, maxQueueSize));
  }

  const env = process.env;
  const attributes: Record<string, string> = { "service.name": service, ...options.resource };
  for (const [key, value] of [
    ["service.version", env[REPLICA_ENV.RELEASE]],
    ["service.instance.id", env[REPLICA_ENV.REPLICA]],
    ["service.namespace", env[REPLICA_ENV.PROJECT]],
  ] as const) {
    if (value !== undefined && value !== "" && attributes[key] === undefined) attributes[key] = value;
  }
  const provider = new BasicTracerProvider({
    resource: defaultResource().merge(resourceFromAttributes(attributes)),
    // Follows the caller's sampling decision, so one trace is kept or dropped whole.
    sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
    spanProcessors: processors,
  });
  const tracer = provider.getTracer(SCOPE);

  if (options.registerGlobal) {
    // Each returns false (and changes nothing) when the service registered its own already.
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(provider);
    propagation.setGlobalPropagator(PROPAGATOR);
  }

  let stopped: Promise<void> | undefined;
  return {
    service,
    exporting: inner !== undefined,
    tracer,
    stats: () => ({ ...stats }),
    forceFlush: (timeoutMs = DEFAULT_FLUSH_TIMEOUT_MS) => bounded(provider.forceFlush(), timeoutMs),
    shutdown: () => (stopped ??= bounded(provider.shutdown(), DEFAULT_FLUSH_TIMEOUT_MS * 2)),
  };
}

let processTracing: Tracing | undefined;

/**
 * The process's tracing, made on first use from the environment Keelson gives a replica
 * ($KEELSON_SERVICE, $KEELSON_OTLP_ENDPOINT, $KEELSON_RELEASE, $KEELSON_REPLICA) and
 * registered globally, so `trace.getTracer("my-lib")` spans join the same traces.
 */
export function defaultTracing(): Tracing {
  processTracing ??= createTracing({ registerGlobal: true });
  return processTracing;
}

/** Starts the server span of an incoming request, under the caller's traceparent if it sent one. */
export function startServerSpan(tracing: Tracing, init: { method: string; path: string; headers: Record<string, string | string[] | undefined>; caller: string | undefined; port: number }): { span: Span; context: Context } {
  const parent = PROPAGATOR.extract(ROOT_CONTEXT, init.headers, defaultTextMapGetter);
  const attributes: Attributes = { "http.request.method": init.method, "url.path": init.path, "url.scheme": "http", "server.port": init.port };
  if (init.caller !== undefined) attributes[TRACE_ATTRIBUTES.CALLER] = init.caller;
  // The route template is not known yet; the router renames the span when it matches one.
  const span = tracing.tracer.startSpan(init.method, { kind: SpanKind.SERVER, attributes }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** Ends a server span with the answer's status; a 5xx marks it as an error. */
export function endServerSpan(span: Span, status: number | undefined, error?: unknown): void {
  if (error !== undefined) span.recordException(error instanceof Error ? error : String(error));
  if (status === undefined) {
    // The client went away before the answer was complete: not the service's fault, but worth seeing.
    span.setAttribute("keelson.aborted", true);
  } else {
    span.setAttribute("http.response.status_code", status);
    if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : `answered ${status}` });
  }
  span.end();
}

/** Names the request's server span after the matched route template ("GET /api/orders/:id"). */
export function nameServerSpan(method: string, route: string): void {
  const span = activeSpan();
  if (span === undefined) return;
  span.updateName(`${method} ${route}`);
  span.setAttribute("http.route", route);
}

/** Starts a client span for a call through the gateway and writes its traceparent into `headers`. */
export function startClientSpan(tracing: Tracing, init: { service: string; method: string; path: string; headers: Headers }): Span {
  const parent = activeSpan();
  const parentContext = parent === undefined ? ROOT_CONTEXT : trace.setSpan(ROOT_CONTEXT, parent);
  const span = tracing.tracer.startSpan(
    `${init.method} ${init.service}`,
    { kind: SpanKind.CLIENT, attributes: { "http.request.method": init.method, "url.path": init.path, [TRACE_ATTRIBUTES.TARGET_SERVICE]: init.service, "peer.service": init.service } },
    parentContext,
  );
  PROPAGATOR.inject(trace.setSpan(parentContext, span), init.headers, { set: (carrier: Headers, key, value) => carrier.set(key, value) });
  return span;
}

/** Ends a client span: with the answer's status (4xx and 5xx are errors for a client), or the failure. */
export function endClientSpan(span: Span, outcome: { status: number } | { error: unknown; timedOut: boolean }): void {
  if ("status" in outcome) {
    span.setAttribute("http.response.status_code", outcome.status);
    if (outcome.status >= 400) span.setStatus({ code: SpanStatusCode.ERROR, message: `answered ${outcome.status}` });
  } else {
    const err = outcome.error;
    span.recordException(err instanceof Error ? err : String(err));
    span.setAttribute("error.type", outcome.timedOut ? "timeout" : err instanceof Error ? err.name : "error");
    span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.timedOut ? "no answer in time" : err instanceof Error ? err.message : String(err) });
  }
  span.end();
}

/**
 * Wraps the real exporter: counts what it sends and drops, and logs a failing endpoint once
 * per streak of failures instead of once per batch (a down control plane must not flood logs).
 */
class GuardedExporter implements SpanExporter {
  /** Spans handed to export so far (the batch processor's queue shrinks by this much). */
  handed = 0;
  private failing = false;

  constructor(
    private readonly inner: SpanExporter,
    private readonly stats: TracingStats,
    private readonly log: Logger,
    private readonly target: string,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.handed += spans.length;
    const settle = (result: ExportResult) => {
      if (result.code === ExportResultCode.SUCCESS) {
        this.stats.spansExported += spans.length;
        if (this.failing) this.log.info("span export works again", { endpoint: this.target });
        this.failing = false;
      } else {
        this.stats.spansDropped += spans.length;
        this.stats.exportFailures++;
        if (!this.failing) {
          this.log.warn("span export failed; dropping spans until the endpoint takes them again", { endpoint: this.target, spans: spans.length, err: result.error });
        }
        this.failing = true;
      }
      done(result);
    };
    try {
      this.inner.export(spans, settle);
    } catch (err) {
      settle({ code: ExportResultCode.FAILED, error: err instanceof Error ? err : new Error(String(err)) });
    }
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * Counts ended spans and drops (and counts) those that would overflow the batch queue, which
 * the batch processor would otherwise drop silently.
 */
class CountingProcessor implements SpanProcessor {
  private passed = 0;

  constructor(
    private readonly inner: SpanProcessor,
    private readonly exporter: GuardedExporter,
    private readonly stats: TracingStats,
    private readonly maxQueueSize: number,
  ) {}

  onStart(span: Parameters<SpanProcessor["onStart"]>[0], parentContext: Context): void {
    this.inner.onStart(span, parentContext);
  }

  onEnd(span: ReadableSpan): void {
    // Unsampled spans are never exported (the batch processor skips them too).
    if ((span.spanContext().traceFlags & 1) === 0) return;
    this.stats.spansEnded++;
    if (this.passed - this.exporter.handed >= this.maxQueueSize) {
      this.stats.spansDropped++;
      return;
    }
    this.passed++;
    this.inner.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}

function resolveEndpoint(value: string | undefined, log: Logger): string | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  try {
    const url = new URL(value);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("not http(s)");
    return url.href;
  } catch {
    log.warn(`$${REPLICA_ENV.OTLP_ENDPOINT} is not an http(s) URL (${JSON.stringify(value)}); spans are not exported`);
    return undefined;
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

/** Waits for `work` at most `ms`, and never rejects: tracing must not fail a shutdown. */
function bounded(work: Promise<void>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    work.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}
