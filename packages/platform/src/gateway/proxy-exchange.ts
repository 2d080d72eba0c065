// The gateway's hot path: one ProxyExchange per client request. It matches the route, applies
// the route's rate and body limits and the service's breaker and bulkhead, picks a service (the
// route's, or its flag's variant's) and a release (pin, flag version, match rules, sticky cookie,
// affinity, weights) and a replica (balancer, ejection), injects the faults of chaos experiments,
// and forwards over the replica's undici Pool within a deadline, retrying inside the retry
// budget. A request for a service scaled to zero waits for a replica. Bodies stream both ways
// with backpressure; nothing is buffered.
import type { IncomingMessage, ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import type { Dispatcher } from "undici";
import type { ErrorCode } from "@keelson/protocol";
import { CALLER_SERVICE_HEADER, DEADLINE_HEADER, FALLBACK_HEADER, KeelsonError } from "@keelson/protocol";
import { backoffDelay } from "./backoff.js";
import { BodyLimit, BodyTooLargeError } from "./body-limit.js";
import type { Bulkhead, BulkheadWaiter, QueueTicket } from "./bulkhead.js";
import type { Admission, CircuitBreaker } from "./circuit-breaker.js";
import { REJECTED } from "./circuit-breaker.js";
import type { FlagVariantCell, GatewayMetrics, RequestCell, ServiceMetrics } from "./gateway-metrics.js";
import { NONE_LABEL } from "./gateway-metrics.js";
import type { CompiledFault, FaultHit } from "./fault-injection.js";
import { FAULT_HEADER, drawFaults } from "./fault-injection.js";
import type { GatewaySpan, SpanRecorder } from "./gateway-tracing.js";
import type { HeldRequest, HeldRequests } from "./held-requests.js";
import type { GatewayLogger } from "./logger.js";
import type { Random } from "./random.js";
import type { RouteAuthCheck } from "./route-auth.js";
import type { RouteFlagEvaluator } from "./route-flag.js";
import type { RouteMatcher } from "./routing-table.js";
import { forwardPath } from "./routing-table.js";
import type { EndpointState, ReleaseGroup, ServiceTarget } from "./service-target.js";
import type { TokenBucket } from "./token-bucket.js";

/** A route's fallback answer, encoded once per table. */
export interface PreparedFallback {
  readonly status: number;
  readonly contentType: string;
  readonly body: Buffer;
}

/** Per-route state the hot path needs, indexed by `CompiledRoute.index`. */
export interface RouteRuntime {
  /** Metrics route label id. */
  readonly routeId: number;
  readonly limiter: TokenBucket | undefined;
  readonly maxBodyBytes: number;
  readonly fallback: PreparedFallback | undefined;
  /** The route's flag, when it has one the table's flags can serve. */
  readonly flag: RouteFlagEvaluator | undefined;
  /** The credential an external route requires; undefined: public. */
  readonly auth?: RouteAuthCheck | undefined;
}

/** A compiled routing table. */
export interface ProxyState {
  readonly matcher: RouteMatcher;
  readonly routes: readonly RouteRuntime[];
  /** What calls routed by the x-keelson-service header get (no rate limit, the default body limit). */
  readonly internal: RouteRuntime;
  readonly services: ReadonlyMap<string, ServiceTarget>;
}

/** What an exchange needs from the gateway that owns it. */
export interface ProxyContext {
  readonly state: ProxyState | undefined;
  /** While draining, every response closes its connection. */
  readonly draining: boolean;
  /** Longest silence inside a response body (server-sent events exempt) before it is cut. */
  readonly bodyIdleTimeoutMs: number;
  readonly metrics: GatewayMetrics;
  readonly log: GatewayLogger;
  /** Monotonic clock, ms. */
  readonly now: () => number;
  /** Random source of balancing, splits, jitter and fault draws. */
  readonly random: Random;
  /** Wall clock, epoch ms: faults end at a wall-clock time. */
  readonly wallNow: () => number;
  /** Requests waiting for a replica of a service scaled to zero. */
  readonly holds: HeldRequests;
  /** Records server and try spans; undefined when tracing is off (an incoming traceparent then passes through untouched). */
  readonly tracing: SpanRecorder | undefined;
  requestStarted(): void;
  requestFinished(): void;
}

/**
 * Handles one request. Never throws. `meshCaller` is the verified identity of the calling service
 * on the mesh listener; undefined on the public listener, which refuses x-keelson-service calls.
 */
export function handleProxyRequest(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse, meshCaller?: string): void {
  const exchange = new ProxyExchange(ctx, req, res, meshCaller);
  try {
    exchange.begin();
  } catch (err) {
    exchange.internalError(err);
  }
}

const kExchange = Symbol("keelson.gateway.exchange");
type ExchangeResponse = ServerResponse & { [kExchange]?: ProxyExchange };

// Module-level listeners and timer callbacks (the exchange hangs off the response or rides as
// the timer argument) instead of closures per request.
function onResponseClose(this: ExchangeResponse): void {
  this[kExchange]?.responseClosed();
}
function uncorkResponse(res: ServerResponse): void {
  res.uncork();
}
function onResponseDrain(this: ExchangeResponse): void {
  this[kExchange]?.drained();
}
function onExchangeTimer(exchange: ProxyExchange): void {
  guarded(exchange, exchange.timerFired);
}
function retryExchange(exchange: ProxyExchange): void {
  guarded(exchange, exchange.retryNow);
}
function proceedExchange(exchange: ProxyExchange): void {
  guarded(exchange, exchange.proceedAfterQueue);
}
function resumeExchange(exchange: ProxyExchange): void {
  guarded(exchange, exchange.resumeHeld);
}
/** Runs a step that starts outside node's request handler (a timer, a tick) so a bug there cannot take the process down. */
function guarded(exchange: ProxyExchange, step: (this: ProxyExchange) => void): void {
  try {
    step.call(exchange);
  } catch (err) {
    exchange.internalError(err);
  }
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
const MAX_REQUEST_ID_LENGTH = 200;
/** A retry needs at least this much of the deadline left to be worth sending. */
const MIN_ATTEMPT_MS = 2;

/** Where the exchange is; decides what its one timer means when it fires. */
const QUEUED = 0;
const TRYING = 1;
const STREAMING = 2;
const BACKOFF = 3;
/** Waiting for a replica of a service scaled to zero. */
const HELD = 4;
/** In the delay a fault injects before the request goes upstream. */
const DELAYED = 5;

/** Why the gateway gave up on an attempt itself. */
class AttemptTimeoutError extends Error {
  readonly code = "KEELSON_ATTEMPT_TIMEOUT";
}
const ATTEMPT_TIMEOUT = new AttemptTimeoutError("the attempt timed out");

/**
 * One try of an exchange against one endpoint: the undici dispatch handler. An exchange that
 * moves on (timeout, retry, client gone) marks it stale, so late callbacks of the abandoned
 * request are ignored. It uses undici's classic callbacks, which hand over raw header buffers
 * without the per-request wrapper the controller API builds (the path undici 7's own
 * `Pool.stream` takes). Revisit when moving to undici 8.
 */
class Attempt implements Dispatcher.DispatchHandler {
  abort: ((err?: Error) => void) | undefined = undefined;
  connected = false;
  status = 0;
  /** A retryable answer (502-504) being read and dropped before the retry. */
  discard = false;
  stale = false;
  /** The try's client span, when the request is traced; ends when the answer's head arrives or the try fails. */
  span: GatewaySpan | undefined = undefined;
  private settled = false;

  constructor(
    readonly exchange: ProxyExchange,
    readonly endpoint: EndpointState,
    readonly started: number,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    if (this.stale) {
      abort();
      return;
    }
    this.abort = abort;
    this.connected = true;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (this.stale) return false;
    return this.exchange.attemptHeaders(this, statusCode, rawHeaders, resume);
  }

  onData(chunk: Buffer): boolean {
    if (this.stale) return false;
    return this.exchange.attemptData(this, chunk);
  }

  onComplete(): void {
    if (this.stale) return;
    try {
      this.exchange.attemptComplete(this);
    } catch (err) {
      this.exchange.internalError(err);
    }
  }

  onError(err: Error): void {
    if (this.stale) return;
    try {
      this.exchange.attemptError(this, err);
    } catch (e) {
      this.exchange.internalError(e);
    }
  }

  /** Ends this attempt's share of the endpoint's in-flight count and live stats, once. */
  settle(now: number, error: boolean): void {
    if (this.settled) return;
    this.settled = true;
    this.endpoint.inflight--;
    this.endpoint.series.end(now, now - this.started, error);
  }

  /** Abandons it; an upstream request in progress is aborted (one not connected yet is aborted on connect). */
  cancel(err?: Error): void {
    this.stale = true;
    this.span?.end(0, err === undefined ? undefined : err.message);
    this.abort?.(err);
  }
}

/** One request on its way through the gateway. */
class ProxyExchange implements BulkheadWaiter, HeldRequest {
  done = false;
  private readonly started: number;
  private readonly method: string;
  private target = "/";
  private readonly headers: string[] = [];
  /** Index in `headers` of the deadline header's value, rewritten per attempt. */
  private deadlineSlot = -1;
  private body: NodeJS.ReadableStream | null = null;
  private hasBody = false;
  private requestId = "";
  private versionPin: string | undefined = undefined;
  /** Version the route's flag pinned the request to (after an explicit x-keelson-version). */
  private flagPin: string | undefined = undefined;
  /**
   * Where the request's outcome is counted under the variant its route's flag gave it: set once
   * the gateway has accepted the request (a 429 or 413 of its own is counted as `rejected`).
   */
  private flagMeasure: FlagVariantCell | undefined = undefined;
  private cookies: string | undefined = undefined;
  private route: RouteRuntime | undefined = undefined;
  private service: ServiceTarget | undefined = undefined;
  /** Counters of the service (known even when it has no entry in the table). */
  private serviceMetrics: ServiceMetrics | undefined = undefined;
  private group: ReleaseGroup | undefined = undefined;
  private setCookie: string | undefined = undefined;
  private deadlineAt = 0;
  private timeoutMs = 0;
  /** The client's own deadline is shorter than the policy's: running out of it is nobody else's fault. */
  private clientBound = false;
  private breaker: CircuitBreaker | undefined = undefined;
  private admission: Admission = REJECTED;
  private bulkhead: Bulkhead | undefined = undefined;
  private ticket: QueueTicket | undefined = undefined;
  private slotHeld = false;
  private attempt: Attempt | undefined = undefined;
  /** The endpoint of the latest attempt: the replica label of the request. */
  private endpoint: EndpointState | undefined = undefined;
  private attempts = 0;
  private retryDelay = 0;
  private phase = QUEUED;
  private timer: NodeJS.Timeout | undefined = undefined;
  private responded = false;
  private sse = false;
  private paused = false;
  private lastProgressAt = 0;
  private resumeUpstream: (() => void) | undefined = undefined;
  /** The request's server span, when it is traced. */
  private span: GatewaySpan | undefined = undefined;
  /** Index in `headers` of the traceparent value, rewritten per attempt with the try's span. */
  private traceSlot = -1;
  /** The faults that hit this request; undefined: none did. */
  private faultHit: FaultHit | undefined = undefined;
  /** Release the request was bound for when the faults were drawn. */
  private faultRelease = "";
  /** Id of the fault whose error is the answer (the x-keelson-fault header). */
  private faultAnswer: string | undefined = undefined;
  /** Where a delayed request goes once its delay is over. */
  private delayedTo: EndpointState | undefined = undefined;
  /** When the injected delay began: the first attempt's latency counts from there. */
  private delayedAt = 0;
  /** The service this request is held for (waiting for a replica to start). */
  private heldFor: string | undefined = undefined;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly req: IncomingMessage,
    private readonly res: ExchangeResponse,
    private readonly meshCaller: string | undefined,
  ) {
    this.started = ctx.now();
    this.method = req.method ?? "GET";
    ctx.requestStarted();
    res[kExchange] = this;
    res.on("close", onResponseClose);
  }

  begin(): void {
    const req = this.req;
    let target = req.url ?? "/";
    const raw = req.rawHeaders;
    const out = this.headers;
    let host: string | undefined;
    let serviceName: string | undefined;
    let requestId: string | undefined;
    let forwardedFor: string | undefined;
    let connection: string | undefined;
    let contentLength: string | undefined;
    let chunked = false;
    let clientTimeout: number | undefined;
    let traceparent: string | undefined;
    let caller: string | undefined;
    const tracing = this.ctx.tracing;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      const lower = name.toLowerCase();
      switch (lower) {
        case "host":
          host = value;
          continue;
        case "connection":
          connection = connection === undefined ? value : `${connection},${value}`;
          continue;
        case "transfer-encoding":
          // The body is re-framed on the upstream connection; undici picks the framing.
          chunked = true;
          continue;
        case "content-length":
          contentLength = value;
          break;
        // Hop-by-hop; Expect: Node's server has already answered any 100-continue and undici
        // refuses to send it; x-forwarded-proto/host: set below from what this gateway saw.
        case "keep-alive":
        case "te":
        case "trailer":
        case "upgrade":
        case "expect":
        case "x-forwarded-proto":
        case "x-forwarded-host":
          continue;
        case "x-forwarded-for":
          forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
          continue;
        case "x-request-id":
          requestId ??= value;
          continue;
        case "x-keelson-service":
          serviceName = value;
          break;
        case "x-keelson-version":
          this.versionPin = value;
          break;
        case "x-keelson-timeout-ms":
          // Replaced by what is left of the deadline on every attempt.
          clientTimeout = parseTimeoutMs(value);
          continue;
        case "cookie":
          this.cookies = this.cookies === undefined ? value : `${this.cookies}; ${value}`;
          break;
        case "traceparent":
          // Replaced by the try's own span when traced; passed on as it is otherwise.
          if (tracing === undefined) break;
          traceparent ??= value;
          continue;
        // Identity is never taken from a header: the caller is what the mesh listener verified,
        // and the identity token stays here (the callee could otherwise replay it).
        case "x-keelson-caller":
        case "x-keelson-identity":
          continue;
        default:
          if (lower.charCodeAt(0) === 112 /* p */ && lower.startsWith("proxy-")) continue;
      }
      out.push(name, value);
    }
    if (this.meshCaller !== undefined) {
      caller = this.meshCaller;
      out.push(CALLER_SERVICE_HEADER, caller);
    }
    if (connection !== undefined) removeNominated(out, connection);
    if (tracing !== undefined) {
      const span = tracing.startServer(traceparent, this.method);
      if (span !== undefined) {
        this.span = span;
        span.caller = caller;
        out.push("traceparent", "");
        this.traceSlot = out.length - 1;
      } else if (traceparent !== undefined) {
        out.push("traceparent", traceparent);
      }
    }

    if (target.charCodeAt(0) !== 47 /* / */) {
      // Absolute form (`GET http://host/path`): its authority replaces the Host header (RFC 9112 §3.2.2).
      const parsed = parseAbsoluteTarget(target);
      if (parsed === undefined) {
        this.fail(400, "KEELSON_ERR_INVALID_INPUT", `cannot route request target ${JSON.stringify(target.slice(0, 200))}`, undefined);
        return;
      }
      host = parsed.host;
      target = parsed.target;
    }

    if (host === undefined && req.httpVersion === "1.1") {
      this.fail(400, "KEELSON_ERR_INVALID_INPUT", "an HTTP/1.1 request must carry a Host header", undefined);
      return;
    }
    if (requestId === undefined || requestId.length === 0 || requestId.length > MAX_REQUEST_ID_LENGTH) requestId = randomUUID();
    this.requestId = requestId;
    const remote = req.socket.remoteAddress;
    out.push("x-forwarded-for", forwardedFor === undefined ? (remote ?? "unknown") : `${forwardedFor}, ${remote ?? "unknown"}`);
    out.push("x-forwarded-proto", "http");
    if (host !== undefined) out.push("x-forwarded-host", host);
    out.push("x-request-id", requestId, DEADLINE_HEADER, "");
    this.deadlineSlot = out.length - 1;
    this.hasBody = chunked || (contentLength !== undefined && contentLength !== "0");

    const state = this.ctx.state;
    if (state === undefined) {
      this.fail(503, "KEELSON_ERR_NO_ENDPOINT", "the gateway has no routing table yet", undefined);
      return;
    }
    let service: ServiceTarget | undefined;
    let route: RouteRuntime;
    let name: string;
    let flagMeasure: FlagVariantCell | undefined;
    if (serviceName !== undefined) {
      const meshCaller = this.meshCaller;
      if (meshCaller === undefined) {
        this.ctx.metrics.rejections.inc({ service: "", reason: "not_mesh" });
        this.fail(403, "KEELSON_ERR_FORBIDDEN", "calls naming a service in x-keelson-service are accepted only on the gateway's mesh listener, with the caller's identity", undefined);
        return;
      }
      service = state.services.get(serviceName);
      if (service === undefined) {
        this.fail(404, "KEELSON_ERR_NO_ROUTE", `no service named ${JSON.stringify(serviceName)} (from the x-keelson-service header)`, { service: serviceName });
        return;
      }
      if (!service.callPolicy.allows(meshCaller, this.method, target)) {
        const q = target.indexOf("?");
        const path = q === -1 ? target : target.slice(0, q);
        this.ctx.metrics.rejections.inc({ service: serviceName, reason: "policy_denied" });
        // The span names the service the caller tried: the service map shows the denied call as
        // a used-but-undeclared edge (a 403, not an error of the callee).
        if (this.span !== undefined) {
          this.span.service = serviceName;
          this.span.path = path;
        }
        this.ctx.log.warn({ caller: meshCaller, service: serviceName, method: this.method, path }, "call denied by the call policy");
        this.fail(403, "KEELSON_ERR_FORBIDDEN", `service "${meshCaller}" may not call ${this.method} ${path} on "${serviceName}"; list it in services.${meshCaller}.calls`, { caller: meshCaller, service: serviceName });
        return;
      }
      route = state.internal;
      name = serviceName;
    } else if (this.meshCaller !== undefined) {
      this.fail(400, "KEELSON_ERR_INVALID_INPUT", "the mesh listener routes by the x-keelson-service header; external routes are on the public listener", undefined);
      return;
    } else {
      const compiled = state.matcher.match(host, target);
      if (compiled === undefined) {
        const q = target.indexOf("?");
        const path = q === -1 ? target : target.slice(0, q);
        this.fail(404, "KEELSON_ERR_NO_ROUTE", `no route for ${host ?? "(no host)"}${path}`, { host, path });
        return;
      }
      route = state.routes[compiled.index]!;
      if (route.auth !== undefined) {
        const verdict = route.auth.check(req.headers) ?? { ok: false, message: "the credential was not verified; send the request again" };
        if (!verdict.ok) {
          this.ctx.metrics.rejections.inc({ service: compiled.service, reason: "unauthenticated" });
          this.fail(401, "KEELSON_ERR_UNAUTHENTICATED", verdict.message, undefined);
          return;
        }
      }
      target = forwardPath(compiled, target);
      service = state.services.get(compiled.service);
      name = compiled.service;
      const flag = route.flag;
      if (flag !== undefined) {
        // Counted by the flag whatever comes of it (see RouteFlagEvaluator.decide).
        const choice = flag.decide(state.services, service, raw, this.cookies);
        if (choice !== undefined) {
          flagMeasure = choice.measure;
          if (choice.listed) {
            service = flag.serviceOf(choice, state.services, service)!;
            name = service.name;
            this.flagPin = choice.version;
            if (this.span !== undefined) {
              this.span.flagKey = flag.key;
              this.span.flagVariant = choice.variant;
            }
          }
        }
      }
    }
    this.route = route;
    this.target = target;
    if (this.span !== undefined) {
      this.span.service = name;
      const q = target.indexOf("?");
      this.span.path = q === -1 ? target : target.slice(0, q);
    }
    const metrics = this.ctx.metrics;
    const sm = service?.metrics ?? metrics.service(name);
    this.serviceMetrics = sm;
    sm.inflight++;
    const now = this.started;

    if (route.limiter !== undefined && !route.limiter.take(now)) {
      if (flagMeasure !== undefined) flagMeasure.rejected++;
      metrics.rejections.inc({ service: name, reason: "rate_limited" });
      const wait = Math.max(1, Math.ceil(route.limiter.retryAfterMs(now) / 1000));
      this.fail(429, "KEELSON_ERR_RATE_LIMITED", `too many requests for this route of "${name}"; retry in ${wait} s`, { service: name }, wait);
      return;
    }
    if (this.hasBody) {
      const limit = route.maxBodyBytes;
      if (contentLength !== undefined) {
        if (Number(contentLength) > limit) {
          if (flagMeasure !== undefined) flagMeasure.rejected++;
          metrics.rejections.inc({ service: name, reason: "body_too_large" });
          this.fail(413, "KEELSON_ERR_PAYLOAD_TOO_LARGE", `the request body (${contentLength} bytes) is larger than the ${limit} bytes this route accepts`, { limit });
          return;
        }
        this.body = req;
      } else {
        this.body = req.pipe(new BodyLimit(limit));
      }
    }
    // Accepted: from here the outcome says how the variant did (a no-endpoint 503 is its error).
    this.flagMeasure = flagMeasure;

    // A service that may scale to zero holds the request below, once its deadline is known.
    if (service === undefined || (service.endpoints.length === 0 && service.activation === undefined)) {
      this.noEndpoint(name);
      return;
    }
    this.service = service;
    const policy = service.policy;
    let timeoutMs = policy.timeoutMs;
    if (clientTimeout !== undefined && clientTimeout < timeoutMs) {
      timeoutMs = clientTimeout;
      this.clientBound = true;
    }
    this.timeoutMs = timeoutMs;
    this.deadlineAt = now + timeoutMs;
    if (timeoutMs <= 0) {
      this.fail(504, "KEELSON_ERR_UPSTREAM_TIMEOUT", `the request's deadline (${DEADLINE_HEADER}: 0) had passed when it arrived`, { service: name });
      return;
    }
    if (service.endpoints.length === 0) {
      this.hold(now);
      return;
    }
    this.enter(now);
  }

  /** The service's retry budget, breaker and bulkhead see the request; then it proceeds (or waits for a slot). */
  private enter(now: number): void {
    const service = this.service!;
    const metrics = this.ctx.metrics;
    service.budget.recordRequest(now);

    const breaker = service.breaker;
    if (breaker !== undefined) {
      const admission = breaker.admit(now);
      if (admission === REJECTED) {
        this.circuitOpen(service, breaker, now);
        return;
      }
      this.breaker = breaker;
      this.admission = admission;
    }

    const bulkhead = service.bulkhead;
    if (bulkhead !== undefined) {
      this.bulkhead = bulkhead;
      if (bulkhead.tryEnter()) {
        this.slotHeld = true;
      } else {
        this.ticket = bulkhead.enqueue(this, Math.min(bulkhead.config.queueTimeoutMs, this.deadlineAt - now));
        if (this.ticket === undefined) {
          metrics.rejections.inc({ service: service.name, reason: "overloaded" });
          this.fail(503, "KEELSON_ERR_OVERLOADED", `service "${service.name}" has ${bulkhead.active} requests in flight and ${bulkhead.queued} waiting, its limit`, { service: service.name }, 1);
        }
        return;
      }
    }
    this.proceed(now);
  }

  /** Chooses the release and the endpoint of the first attempt and sends it. */
  private proceed(now: number): void {
    const service = this.service!;
    service.maybeReturn(now);
    // Match rules and affinity read the raw headers themselves: only the services that have them pay.
    const raw = this.req.rawHeaders;
    let group = service.named(this.versionPin, this.cookies, raw, this.flagPin);
    if (group === undefined) {
      group = service.weighted(this.ctx.random, raw, this.cookies);
      if (service.sticky && group !== service.all) this.setCookie = group.cookie;
    }
    this.group = group;
    const endpoint = service.choose(group, undefined, now);
    if (endpoint === undefined) {
      this.noEndpoint(service.name);
      return;
    }
    // Faults are drawn once the version is known (the endpoint's release), once per request.
    const faults = service.faults;
    if (faults !== undefined) {
      const hit = drawFaults(faults, endpoint.release, this.ctx.wallNow(), this.ctx.random);
      if (hit !== undefined) {
        this.injectFault(hit, endpoint, now);
        return;
      }
    }
    this.dispatch(endpoint, now);
  }

  /** `started`: when the first attempt's latency counts from (the start of an injected delay). */
  private dispatch(endpoint: EndpointState, now: number, started: number = now): void {
    const remaining = this.deadlineAt - now;
    if (remaining < 1) {
      this.deadlinePassed();
      return;
    }
    const attempt = new Attempt(this, endpoint, started);
    this.attempt = attempt;
    this.endpoint = endpoint;
    this.attempts++;
    this.phase = TRYING;
    endpoint.inflight++;
    endpoint.series.begin(now);
    this.headers[this.deadlineSlot] = String(Math.floor(remaining));
    if (this.span !== undefined) {
      const span = this.ctx.tracing!.startClient(this.span, this.attempts - 1);
      span.version = endpoint.release;
      span.replica = endpoint.replicaId;
      span.serverAddress = endpoint.hostname;
      span.serverPort = endpoint.port;
      attempt.span = span;
      this.headers[this.traceSlot] = span.traceparent();
    }
    const perTry = this.service!.policy.perTryTimeoutMs;
    this.arm(perTry < remaining ? perTry : remaining);
    endpoint.pool.dispatch(
      {
        path: endpoint.basePath.length === 0 ? this.target : endpoint.basePath + this.target,
        method: this.method,
        headers: this.headers,
        body: this.body as Dispatcher.DispatchOptions["body"],
      },
      attempt,
    );
  }

  // --- upstream side (called by the current Attempt) ---

  attemptHeaders(attempt: Attempt, status: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx interim answers (103 Early Hints) are not passed on.
    if (status < 200) return true;
    attempt.span?.end(status);
    if (this.done) return false;
    const now = this.ctx.now();
    const endpoint = attempt.endpoint;
    attempt.status = status;
    endpoint.ewma.observe(now - attempt.started, now);
    if (status >= 500) this.endpointFailed(endpoint, now);
    else endpoint.consecutiveFailures = 0;
    if (status >= 502 && status <= 504 && this.mayRetry(true) && this.takeRetry(now)) {
      // Read and drop this answer (keeping the connection), then retry.
      attempt.discard = true;
      return true;
    }
    this.resumeUpstream = resume;
    const headers = this.responseHeaders(rawHeaders);
    try {
      this.res.writeHead(status, headers);
      // Head and first chunk (usually the whole body) leave in one write: over TLS, one record.
      this.res.cork();
      process.nextTick(uncorkResponse, this.res);
    } catch (err) {
      // A header Node refuses to send (bad characters): answered as an invalid upstream response.
      attempt.abort?.(err as Error);
      return false;
    }
    this.responded = true;
    if (this.sse) {
      // Server-sent events may stay silent for as long as they like.
      this.disarm();
    } else {
      // The attempt's timer stays armed and checks for silence when it fires.
      this.phase = STREAMING;
      this.lastProgressAt = now;
    }
    return true;
  }

  attemptData(attempt: Attempt, chunk: Buffer): boolean {
    if (attempt.discard) return true;
    const res = this.res;
    if (res.destroyed) return false;
    if (!this.sse) this.lastProgressAt = this.ctx.now();
    if (res.write(chunk)) return true;
    // Backpressure: the upstream parser stays paused until the client has taken this chunk.
    this.paused = true;
    res.once("drain", onResponseDrain);
    return false;
  }

  drained(): void {
    if (this.done) return;
    this.paused = false;
    if (!this.sse) this.lastProgressAt = this.ctx.now();
    this.resumeUpstream?.();
  }

  attemptComplete(attempt: Attempt): void {
    const now = this.ctx.now();
    attempt.settle(now, attempt.status >= 500);
    if (this.done) return;
    if (attempt.discard) {
      this.startRetry();
      return;
    }
    this.res.end();
    this.finish(this.res.statusCode, now);
  }

  attemptError(attempt: Attempt, err: Error): void {
    attempt.span?.end(0, errorText(err));
    const now = this.ctx.now();
    if (this.done) {
      attempt.settle(now, false);
      return;
    }
    const service = this.service!.name;
    const endpoint = attempt.endpoint;
    if (this.responded) {
      // Mid-body failure: the status line is gone, so the client must see a broken response
      // rather than a short one that looks complete. Counted as 5xx: the request failed.
      attempt.settle(now, true);
      this.endpointFailed(endpoint, now);
      this.ctx.log.warn({ service, replica: endpoint.replicaId, err: errorText(err), requestId: this.requestId }, "upstream failed mid-response");
      this.finish(502, now);
      this.res.destroy();
      return;
    }
    if (attempt.discard) {
      // Failed while dropping a retryable answer: the retry is already paid for.
      attempt.settle(now, true);
      this.startRetry();
      return;
    }
    if (err instanceof BodyTooLargeError) {
      attempt.settle(now, false);
      // The gateway's refusal, as when the length was declared: not the variant's outcome.
      if (this.flagMeasure !== undefined) {
        this.flagMeasure.rejected++;
        this.flagMeasure = undefined;
      }
      this.ctx.metrics.rejections.inc({ service, reason: "body_too_large" });
      this.fail(413, "KEELSON_ERR_PAYLOAD_TOO_LARGE", `the request body is larger than the ${err.limit} bytes this route accepts`, { limit: err.limit });
      return;
    }
    if (this.body !== null && this.req.destroyed && !this.req.complete) {
      // The client went away in the middle of its upload: not the replica's failure.
      attempt.settle(now, false);
      this.finish(499, now);
      return;
    }
    const code = (err as { code?: unknown }).code;
    if (code === "UND_ERR_INVALID_ARG" || code === "UND_ERR_NOT_SUPPORTED") {
      attempt.settle(now, false);
      this.fail(400, "KEELSON_ERR_INVALID_INPUT", `the request cannot be forwarded: ${err.message}`, { service });
      return;
    }
    attempt.settle(now, true);
    this.endpointFailed(endpoint, now);
    const reason = typeof code === "string" ? code : err.name;
    const details = { service, replica: endpoint.replicaId, reason };
    if (code === "UND_ERR_CONNECT_TIMEOUT") {
      this.retryOrFail(now, false, 504, "KEELSON_ERR_UPSTREAM_TIMEOUT", `service "${service}" did not accept a connection in time`, details);
      return;
    }
    this.retryOrFail(now, attempt.connected, 502, "KEELSON_ERR_UPSTREAM", `service "${service}" failed: ${describeFailure(reason)}`, details, err);
  }

  // --- timers ---

  timerFired(): void {
    this.timer = undefined;
    if (this.done) return;
    const now = this.ctx.now();
    switch (this.phase) {
      case BACKOFF:
        this.retryNow();
        return;
      case HELD:
        this.holdOver(now);
        return;
      case DELAYED:
        this.delayOver(now);
        return;
      case STREAMING: {
        const idle = now - this.lastProgressAt;
        const limit = this.ctx.bodyIdleTimeoutMs;
        if (idle + 1 < limit) {
          this.arm(limit - idle);
          return;
        }
        const attempt = this.attempt!;
        attempt.settle(now, !this.paused);
        attempt.cancel(ATTEMPT_TIMEOUT);
        // A client that stops reading is not the replica's fault.
        if (!this.paused) this.endpointFailed(attempt.endpoint, now);
        this.ctx.log.warn(
          { service: this.service!.name, replica: attempt.endpoint.replicaId, idleMs: Math.round(idle), requestId: this.requestId },
          this.paused ? "client stopped reading the response; cutting it" : "upstream went silent mid-response; cutting it",
        );
        this.finish(this.paused ? 499 : 504, now);
        this.res.destroy();
        return;
      }
      case TRYING: {
        const attempt = this.attempt!;
        const endpoint = attempt.endpoint;
        const overall = now >= this.deadlineAt - 1;
        if (!overall && !attempt.discard) {
          // Per-try timeout. An attempt still connecting may yet start reading the body, and a
          // body goes out once at most: such a request counts as having reached the replica.
          const reached = attempt.connected || this.body !== null;
          if (!(this.mayRetry(reached) && this.takeRetry(now))) {
            // No retry possible (none left, no budget, no time): this attempt may still answer
            // within the deadline, so it keeps the rest of it rather than being given up early.
            this.arm(this.deadlineAt - now);
            return;
          }
        }
        attempt.settle(now, true);
        attempt.cancel(ATTEMPT_TIMEOUT);
        // Running out of a deadline the client shortened itself says nothing about the replica.
        if (!(overall && this.clientBound)) {
          endpoint.ewma.observe(now - attempt.started, now);
          this.endpointFailed(endpoint, now);
        }
        if (overall) {
          const service = this.service!.name;
          this.fail(504, "KEELSON_ERR_UPSTREAM_TIMEOUT", `service "${service}" did not answer within ${this.timeoutMs} ms`, {
            service,
            replica: endpoint.replicaId,
            reason: "deadline",
          });
          return;
        }
        this.startRetry();
        return;
      }
      default:
        return;
    }
  }

  private arm(ms: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(onExchangeTimer, ms, this);
  }

  private disarm(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  // --- retries ---

  /**
   * Whether another attempt is allowed: attempts left and, once the request reached a replica,
   * only for an idempotent request without a body (a body cannot be sent twice). A request that
   * never reached one is safe to send again whatever its method: its body is untouched.
   */
  private mayRetry(reached: boolean): boolean {
    if (this.attempts > this.service!.policy.retries.attempts) return false;
    return !reached || (this.body === null && IDEMPOTENT.has(this.method));
  }

  /** Takes a retry from the budget if there is time for one; counts the outcome. */
  private takeRetry(now: number): boolean {
    const service = this.service!;
    const r = service.policy.retries;
    const labels = service.metrics.retry;
    const delay = r.backoffBaseMs > 0 ? backoffDelay(this.attempts, r.backoffBaseMs, r.backoffMaxMs, this.ctx.random) : 0;
    if (now + delay + MIN_ATTEMPT_MS >= this.deadlineAt) {
      this.ctx.metrics.retries.inc(labels.noTime);
      return false;
    }
    if (!service.budget.tryRetry(now)) {
      this.ctx.metrics.retries.inc(labels.budgetExhausted);
      return false;
    }
    this.ctx.metrics.retries.inc(labels.retried);
    this.retryDelay = delay;
    return true;
  }

  private retryOrFail(now: number, reached: boolean, status: number, code: ErrorCode, message: string, details: unknown, err?: Error): void {
    if (this.mayRetry(reached) && this.takeRetry(now)) {
      this.startRetry();
      return;
    }
    if (err !== undefined) this.ctx.log.warn({ details, err: errorText(err), requestId: this.requestId }, "upstream request failed");
    this.fail(status, code, message, details);
  }

  private startRetry(): void {
    this.attempt = undefined;
    this.phase = BACKOFF;
    this.disarm();
    if (this.retryDelay < 1) process.nextTick(retryExchange, this);
    else this.arm(this.retryDelay);
  }

  /** Sends the next attempt to another endpoint if there is one, as the newest table has it. */
  retryNow(): void {
    if (this.done) return;
    const now = this.ctx.now();
    const service = this.newestTarget();
    service.maybeReturn(now);
    const endpoint = service.choose(this.group!, this.endpoint, now);
    if (endpoint === undefined) {
      this.noEndpoint(service.name);
      return;
    }
    this.dispatch(endpoint, now);
  }

  /** The service as the newest table has it (its endpoints, same release if it still has any). */
  private newestTarget(): ServiceTarget {
    const service = this.service!;
    const newest = this.ctx.state?.services.get(service.name);
    if (newest === undefined || newest === service) return service;
    this.group = this.group === service.all ? newest.all : (newest.groups.get(this.group!.release) ?? newest.served);
    return (this.service = newest);
  }

  // --- injected faults ---

  private injectFault(hit: FaultHit, endpoint: EndpointState, now: number): void {
    this.faultHit = hit;
    this.faultRelease = endpoint.release;
    if (hit.delayMs > 0) {
      // The deadline still applies: the delay ends early, in a 504, when the deadline is nearer.
      this.delayedTo = endpoint;
      this.delayedAt = now;
      this.phase = DELAYED;
      const remaining = this.deadlineAt - now;
      this.arm(hit.delayMs < remaining ? hit.delayMs : remaining);
      return;
    }
    this.answerFault(hit.abort!);
  }

  private delayOver(now: number): void {
    if (now >= this.deadlineAt - 1) {
      this.deadlinePassed();
      return;
    }
    const hit = this.faultHit!;
    if (hit.abort !== undefined) {
      this.answerFault(hit.abort);
      return;
    }
    let endpoint = this.delayedTo!;
    this.delayedTo = undefined;
    if (endpoint.removed) {
      // Its replica left the routing table during the delay: another, as for a retry.
      const service = this.newestTarget();
      service.maybeReturn(now);
      const other = service.choose(this.group!, undefined, now);
      if (other === undefined) {
        this.noEndpoint(service.name);
        return;
      }
      endpoint = other;
    }
    this.dispatch(endpoint, now, this.delayedAt);
  }

  /** The fault's error, as the service's answer: never retried, counted as the service's (see `finish`). */
  private answerFault(fault: CompiledFault): void {
    const service = this.service!.name;
    const status = fault.abortStatus!;
    this.faultAnswer = fault.id;
    if (this.span !== undefined) {
      this.span.version = this.faultRelease;
      this.span.replica = fault.replica;
    }
    this.fail(status, "KEELSON_ERR_FAULT_INJECTED", `fault "${fault.id}" of a chaos experiment answered ${status} for service "${service}" (version ${this.faultRelease})`, {
      service,
      version: this.faultRelease,
      fault: fault.id,
    });
  }

  // --- scale from zero ---

  /** Waits for a replica of a service scaled to zero, up to its hold timeout and never past the deadline. */
  private hold(now: number): void {
    const service = this.service!;
    const name = service.name;
    if (this.ctx.draining) {
      this.noEndpoint(name, `service "${name}" has no ready replica, and the gateway is shutting down`);
      return;
    }
    if (!this.ctx.holds.hold(name, this)) {
      this.noEndpoint(name, `service "${name}" has no ready replica, and ${this.ctx.holds.count(name)} requests already wait for one to start`, { service: name, held: this.ctx.holds.count(name) });
      return;
    }
    this.heldFor = name;
    this.phase = HELD;
    const remaining = this.deadlineAt - now;
    const wait = service.activation!.holdTimeoutMs;
    this.arm(wait < remaining ? wait : remaining);
  }

  /** The held request may go on (an endpoint arrived, or holding no longer applies): next tick. */
  wake(): void {
    this.heldFor = undefined;
    if (this.done) return;
    this.disarm();
    process.nextTick(resumeExchange, this);
  }

  resumeHeld(): void {
    if (this.done) return;
    const now = this.ctx.now();
    const name = this.service!.name;
    const newest = this.ctx.state?.services.get(name);
    if (newest === undefined || newest.endpoints.length === 0) {
      this.holdOver(now);
      return;
    }
    if (now >= this.deadlineAt - 1) {
      this.deadlinePassed();
      return;
    }
    this.service = newest;
    this.phase = QUEUED;
    this.enter(now);
  }

  private holdOver(now: number): void {
    const name = this.service!.name;
    const waited = Math.round(now - this.started);
    this.noEndpoint(name, `service "${name}" has no ready replica; waited ${waited} ms for one to start`, { service: name, waitedMs: waited });
  }

  // --- bulkhead queue ---

  admit(): void {
    this.ticket = undefined;
    this.slotHeld = true;
    // Deferred: this runs inside the finish() of the request that freed the slot.
    process.nextTick(proceedExchange, this);
  }

  proceedAfterQueue(): void {
    if (this.done) return;
    this.proceed(this.ctx.now());
  }

  expire(): void {
    this.ticket = undefined;
    if (this.done) return;
    const now = this.ctx.now();
    if (now >= this.deadlineAt - 1) {
      this.deadlinePassed();
      return;
    }
    const service = this.service!;
    this.ctx.metrics.rejections.inc({ service: service.name, reason: "overloaded" });
    this.fail(503, "KEELSON_ERR_OVERLOADED", `service "${service.name}" is at its concurrency limit; waited ${Math.round(now - this.started)} ms for a slot`, { service: service.name }, 1);
  }

  // --- client side ---

  /** The client connection closed; before the response finished, that means the client left. */
  responseClosed(): void {
    if (this.done) return;
    const now = this.ctx.now();
    if (this.ticket !== undefined) {
      this.bulkhead!.cancel(this.ticket);
      this.ticket = undefined;
    }
    const attempt = this.attempt;
    if (attempt !== undefined) {
      attempt.settle(now, false);
      attempt.cancel();
    }
    // 499 as nginx logs it: the client closed the request.
    this.finish(499, now);
  }

  internalError(err: unknown): void {
    this.ctx.log.error({ err, requestId: this.requestId }, "gateway bug while handling a request");
    if (this.done) return;
    const attempt = this.attempt;
    if (attempt !== undefined) {
      attempt.settle(this.ctx.now(), false);
      attempt.cancel();
    }
    if (this.res.headersSent) {
      this.finish(500, this.ctx.now());
      this.res.destroy();
      return;
    }
    this.fail(500, "KEELSON_ERR_INTERNAL", "the gateway failed to handle the request", undefined);
  }

  // --- answers ---

  private endpointFailed(endpoint: EndpointState, now: number): void {
    // The newest table's target, so its pick lists are the ones rebuilt after an ejection.
    const target = this.ctx.state?.services.get(endpoint.service) ?? this.service!;
    if (target.failure(endpoint, now)) {
      this.ctx.metrics.ejections.inc(target.metrics.service);
      this.ctx.log.warn({ service: endpoint.service, replica: endpoint.replicaId, until: Math.round(endpoint.ejectedUntil - now), times: endpoint.timesEjected }, "replica ejected");
    }
  }

  private deadlinePassed(): void {
    const service = this.service!.name;
    this.fail(504, "KEELSON_ERR_UPSTREAM_TIMEOUT", `service "${service}" did not answer within ${this.timeoutMs} ms`, { service, reason: "deadline" });
  }

  private circuitOpen(service: ServiceTarget, breaker: CircuitBreaker, now: number): void {
    const fallback = this.route?.fallback;
    if (fallback !== undefined) {
      this.ctx.metrics.fallbacks.inc({ service: service.name, reason: "circuit_open" });
      this.answerFallback(fallback, "circuit-open");
      return;
    }
    this.ctx.metrics.rejections.inc({ service: service.name, reason: "circuit_open" });
    const wait = Math.ceil(breaker.retryAfterMs(now) / 1000);
    this.fail(503, "KEELSON_ERR_CIRCUIT_OPEN", `service "${service.name}" is failing; its circuit is open`, { service: service.name, state: breaker.state(now) }, wait);
  }

  private noEndpoint(service: string, message = `service "${service}" has no ready replica`, details: unknown = { service }): void {
    const fallback = this.route?.fallback;
    if (fallback !== undefined) {
      this.ctx.metrics.fallbacks.inc({ service, reason: "no_endpoint" });
      this.answerFallback(fallback, "no-endpoint");
      return;
    }
    this.ctx.metrics.rejections.inc({ service, reason: "no_endpoint" });
    this.fail(503, "KEELSON_ERR_NO_ENDPOINT", message, details);
  }

  private answerFallback(fallback: PreparedFallback, reason: string): void {
    const res = this.res;
    const headers: string[] = [
      "content-type",
      fallback.contentType,
      "content-length",
      String(fallback.body.length),
      "x-request-id",
      this.requestId || randomUUID(),
      FALLBACK_HEADER,
      reason,
    ];
    if (this.mustClose()) headers.push("connection", "close");
    this.finish(fallback.status, this.ctx.now());
    res.writeHead(fallback.status, headers);
    res.end(this.method === "HEAD" ? undefined : fallback.body);
  }

  private fail(status: number, code: ErrorCode, message: string, details: unknown, retryAfterSeconds?: number): void {
    const res = this.res;
    if (this.done) return;
    const now = this.ctx.now();
    if (res.headersSent) {
      this.finish(status, now);
      res.destroy();
      return;
    }
    const body = JSON.stringify(new KeelsonError(code, message, { details }).toBody());
    // Drop anything a failed writeHead of the upstream answer may have left behind.
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    const headers: string[] = [
      "content-type",
      "application/json; charset=utf-8",
      "content-length",
      String(Buffer.byteLength(body)),
      "x-request-id",
      this.requestId || randomUUID(),
    ];
    if (retryAfterSeconds !== undefined) headers.push("retry-after", String(retryAfterSeconds));
    if (this.faultAnswer !== undefined) headers.push(FAULT_HEADER, this.faultAnswer);
    if (status === 401) headers.push("www-authenticate", 'Bearer realm="keelson"');
    if (this.mustClose()) headers.push("connection", "close");
    this.finish(status, now);
    res.writeHead(status, headers);
    res.end(this.method === "HEAD" ? undefined : body);
  }

  /**
   * While draining; or when the request body was not read to the end (a refused upload): the
   * connection cannot carry another request without reading the rest, so it closes instead.
   */
  private mustClose(): boolean {
    return this.ctx.draining || (this.hasBody && !this.req.complete);
  }

  private finish(status: number, now: number): void {
    if (this.done) return;
    this.done = true;
    this.disarm();
    this.span?.end(status);
    if (this.heldFor !== undefined) {
      this.ctx.holds.leave(this.heldFor, this);
      this.heldFor = undefined;
    }
    if (this.slotHeld) {
      this.slotHeld = false;
      this.bulkhead!.leave();
    }
    // A fault answered in the service's stead: its abort, or the deadline running out in its delay.
    const fault = this.attempts === 0 ? this.faultHit?.cause : undefined;
    if (this.admission !== REJECTED) {
      // No verdict from a request that never reached the service (unless a fault answered for
      // it), a client that left, or one that ran out of a deadline it shortened itself.
      if ((this.attempts === 0 && fault === undefined) || status === 499 || (this.clientBound && status === 504)) this.breaker!.abandon(this.admission);
      else this.breaker!.record(this.admission, status < 500, now);
    }
    if (fault !== undefined && status !== 499) fault.seriesOf(this.faultRelease).end(now, now - this.started, status >= 500);
    const metrics = this.ctx.metrics;
    const sm = this.serviceMetrics;
    let cell: RequestCell;
    if (sm === undefined) {
      cell = metrics.unrouted;
    } else {
      sm.inflight--;
      const routeId = this.route!.routeId;
      const e = this.endpoint;
      if (e !== undefined) cell = e.cells[routeId] ??= metrics.cell(e.service, e.release, routeId, e.replicaId);
      else if (fault !== undefined) cell = fault.cellOf(this.faultRelease, routeId);
      else cell = sm.noneCells[routeId] ??= metrics.cell(sm.name, NONE_LABEL, routeId, NONE_LABEL);
    }
    const seconds = (now - this.started) / 1000;
    metrics.record(cell, status, seconds, now);
    if (this.flagMeasure !== undefined) metrics.recordFlag(this.flagMeasure, status, seconds);
    this.ctx.requestFinished();
  }

  /** Response headers to pass on: hop-by-hop ones dropped, our request id and sticky cookie set. */
  private responseHeaders(raw: Buffer[]): string[] {
    const out: string[] = [];
    let connection: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString("latin1");
      const lower = name.toLowerCase();
      if (lower === "connection") {
        const value = raw[i + 1]!.toString("latin1");
        connection = connection === undefined ? value : `${connection},${value}`;
        continue;
      }
      if (isHopByHop(lower) || lower === "x-request-id") continue;
      const value = raw[i + 1]!.toString("latin1");
      if (lower === "content-type" && isEventStream(value)) this.sse = true;
      out.push(name, value);
    }
    if (connection !== undefined) removeNominated(out, connection);
    out.push("x-request-id", this.requestId);
    if (this.setCookie !== undefined) out.push("set-cookie", this.setCookie);
    if (this.ctx.draining) out.push("connection", "close");
    return out;
  }
}

function isEventStream(contentType: string): boolean {
  return contentType.length >= 17 && contentType.slice(0, 17).toLowerCase() === "text/event-stream";
}

/** The client's remaining time in ms (digits only, at most 9 of them), or undefined to ignore a malformed value. */
export function parseTimeoutMs(value: string): number | undefined {
  const n = value.length;
  if (n === 0 || n > 9) return undefined;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  return Number(value);
}

export function isHopByHop(lower: string): boolean {
  switch (lower) {
    case "keep-alive":
    case "te":
    case "trailer":
    case "transfer-encoding":
    case "upgrade":
      return true;
    default:
      return lower.charCodeAt(0) === 112 /* p */ && lower.startsWith("proxy-");
  }
}

/** Removes from a flat [name, value, …] list every header the Connection header names. */
export function removeNominated(headers: string[], connection: string): void {
  // The usual values name no header; skip the split for them.
  if (connection.length <= 10) {
    const v = connection.toLowerCase();
    if (v === "keep-alive" || v === "close") return;
  }
  const named = new Set<string>();
  for (const token of connection.split(",")) {
    const t = token.trim().toLowerCase();
    if (t.length > 0 && t !== "close" && t !== "keep-alive") named.add(t);
  }
  if (named.size === 0) return;
  let w = 0;
  for (let r = 0; r < headers.length; r += 2) {
    if (named.has(headers[r]!.toLowerCase())) continue;
    headers[w++] = headers[r]!;
    headers[w++] = headers[r + 1]!;
  }
  headers.length = w;
}

export function parseAbsoluteTarget(target: string): { host: string; target: string } | undefined {
  if (!target.startsWith("http://") && !target.startsWith("https://")) return undefined;
  try {
    const url = new URL(target);
    return { host: url.host, target: `${url.pathname}${url.search}` };
  } catch {
    return undefined;
  }
}

function describeFailure(reason: string): string {
  switch (reason) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
    case "EPIPE":
    case "UND_ERR_SOCKET":
      return "connection closed before a complete answer";
    default:
      return reason.startsWith("HPE_") ? `invalid HTTP response (${reason})` : reason;
  }
}

function errorText(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" ? `${code}: ${err.message}` : err.message;
}
