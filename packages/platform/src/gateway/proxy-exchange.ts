// The gateway's hot path: one ProxyExchange per client request picks the service and replica,
// forwards the request over the replica's undici Pool and streams the answer back, both bodies
// flowing with backpressure and nothing buffered.
import type { IncomingMessage, ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import type { Dispatcher, Pool } from "undici";
import type { ErrorCode } from "@keelson/protocol";
import { KeelsonError } from "@keelson/protocol";
import type { GatewayMetrics, ServiceStats } from "./gateway-metrics.js";
import type { GatewayLogger } from "./logger.js";
import type { RouteMatcher } from "./routing-table.js";
import { forwardPath } from "./routing-table.js";

/** One replica the gateway may send traffic to. */
export interface Upstream {
  /** `${replicaId} ${url}`: a replica restarted on the same port gets a fresh pool. */
  readonly key: string;
  readonly replicaId: string;
  readonly pool: Pool;
  /** Path of the endpoint URL without trailing "/" ("" for a bare origin), put before every forwarded path. */
  readonly basePath: string;
}

/** A service and its ready replicas, as the hot path sees them. */
export interface ServiceTarget {
  readonly name: string;
  readonly upstreams: readonly Upstream[];
  /** Round-robin position. */
  cursor: number;
  readonly stats: ServiceStats;
}

/** A compiled routing table. */
export interface ProxyState {
  readonly matcher: RouteMatcher;
  readonly services: ReadonlyMap<string, ServiceTarget>;
}

/** What an exchange needs from the gateway that owns it. */
export interface ProxyContext {
  readonly state: ProxyState | undefined;
  /** While draining, every response closes its connection. */
  readonly draining: boolean;
  readonly upstreamTimeoutMs: number;
  readonly metrics: GatewayMetrics;
  readonly log: GatewayLogger;
  requestStarted(): void;
  requestFinished(): void;
}

/** Handles one request on the public listener. Never throws. */
export function handleProxyRequest(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse): void {
  const exchange = new ProxyExchange(ctx, req, res);
  try {
    exchange.begin();
  } catch (err) {
    exchange.internalError(err);
  }
}

const kExchange = Symbol("keelson.gateway.exchange");
type ExchangeResponse = ServerResponse & { [kExchange]?: ProxyExchange };

// A module-level listener (the exchange hangs off the response) instead of a closure per request.
function onResponseClose(this: ExchangeResponse): void {
  this[kExchange]?.responseClosed();
}

function retryExchange(exchange: ProxyExchange): void {
  exchange.retry();
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
const MAX_REQUEST_ID_LENGTH = 200;

/**
 * One request on its way through the gateway. It is its own undici dispatch handler: the
 * classic callbacks (onConnect/onHeaders/onData/onComplete/onError) hand over raw header
 * buffers without the per-request wrapper and header object that the controller API builds
 * (the same path undici 7's own `Pool.stream` takes). Revisit when moving to undici 8.
 */
class ProxyExchange implements Dispatcher.DispatchHandler {
  done = false;
  private readonly started = performance.now();
  private method: string;
  private target = "/";
  private headers: string[] = [];
  private body: IncomingMessage | null = null;
  private requestId = "";
  private service: ServiceTarget | undefined = undefined;
  private stats: ServiceStats;
  private upstream: Upstream | undefined = undefined;
  private index = 0;
  private retried = false;
  private connected = false;
  private responded = false;
  private abortUpstream: ((err?: Error) => void) | undefined = undefined;
  private resumeUpstream: (() => void) | undefined = undefined;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly req: IncomingMessage,
    private readonly res: ExchangeResponse,
  ) {
    this.method = req.method ?? "GET";
    this.stats = ctx.metrics.unrouted;
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
    let hasBody = false;
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
          hasBody = true;
          continue;
        case "content-length":
          if (value !== "0") hasBody = true;
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
        default:
          if (lower.charCodeAt(0) === 112 /* p */ && lower.startsWith("proxy-")) continue;
      }
      out.push(name, value);
    }
    if (connection !== undefined) removeNominated(out, connection);

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

    if (requestId === undefined || requestId.length === 0 || requestId.length > MAX_REQUEST_ID_LENGTH) requestId = randomUUID();
    this.requestId = requestId;
    const remote = req.socket.remoteAddress;
    out.push("x-forwarded-for", forwardedFor === undefined ? (remote ?? "unknown") : `${forwardedFor}, ${remote ?? "unknown"}`);
    out.push("x-forwarded-proto", "http");
    if (host !== undefined) out.push("x-forwarded-host", host);
    out.push("x-request-id", requestId);
    if (hasBody) this.body = req;

    const state = this.ctx.state;
    if (state === undefined) {
      this.fail(503, "KEELSON_ERR_NO_ENDPOINT", "the gateway has no routing table yet", undefined);
      return;
    }
    let service: ServiceTarget | undefined;
    if (serviceName !== undefined) {
      service = state.services.get(serviceName);
      if (service === undefined) {
        this.fail(404, "KEELSON_ERR_NO_ROUTE", `no service named ${JSON.stringify(serviceName)} (from the x-keelson-service header)`, { service: serviceName });
        return;
      }
    } else {
      const route = state.matcher.match(host, target);
      if (route === undefined) {
        const q = target.indexOf("?");
        const path = q === -1 ? target : target.slice(0, q);
        this.fail(404, "KEELSON_ERR_NO_ROUTE", `no route for ${host ?? "(no host)"}${path}`, { host, path });
        return;
      }
      target = forwardPath(route, target);
      service = state.services.get(route.service);
      if (service === undefined) {
        this.stats = this.ctx.metrics.statsFor(route.service);
        this.fail(503, "KEELSON_ERR_NO_ENDPOINT", `service "${route.service}" has no ready replica`, { service: route.service });
        return;
      }
    }
    this.service = service;
    this.stats = service.stats;
    this.target = target;
    const n = service.upstreams.length;
    if (n === 0) {
      this.fail(503, "KEELSON_ERR_NO_ENDPOINT", `service "${service.name}" has no ready replica`, { service: service.name });
      return;
    }
    let i = service.cursor;
    if (i >= n) i = 0;
    service.cursor = i + 1;
    this.index = i;
    this.upstream = service.upstreams[i];
    this.dispatch();
  }

  private dispatch(): void {
    const upstream = this.upstream!;
    this.connected = false;
    this.abortUpstream = undefined;
    upstream.pool.dispatch(
      {
        path: upstream.basePath.length === 0 ? this.target : upstream.basePath + this.target,
        method: this.method,
        headers: this.headers,
        body: this.body,
      },
      this,
    );
  }

  /** Second and last attempt, on the service's next replica as of now. */
  retry(): void {
    if (this.done) return;
    const service = this.ctx.state?.services.get(this.service!.name);
    if (service === undefined || service.upstreams.length === 0) {
      this.fail(503, "KEELSON_ERR_NO_ENDPOINT", `service "${this.service!.name}" has no ready replica`, { service: this.service!.name });
      return;
    }
    const n = service.upstreams.length;
    let i = service === this.service ? this.index + 1 : service.cursor;
    if (i >= n) i = 0;
    // The failed replica only gets the retry when it is the only one left.
    if (n > 1 && service.upstreams[i] === this.upstream) i = (i + 1) % n;
    this.service = service;
    this.index = i;
    this.upstream = service.upstreams[i];
    this.dispatch();
  }

  // --- undici dispatch handler ---

  onConnect(abort: (err?: Error) => void): void {
    this.connected = true;
    this.abortUpstream = abort;
    // The client left while this request waited for a connection.
    if (this.done) abort();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx interim answers (103 Early Hints) are not passed on in v1.
    if (statusCode < 200) return true;
    if (this.done) return false;
    this.resumeUpstream = resume;
    const headers = responseHeaders(rawHeaders, this.requestId, this.ctx.draining);
    try {
      this.res.writeHead(statusCode, headers);
    } catch (err) {
      // A header Node refuses to send (bad characters); answered as an invalid upstream response.
      this.abortUpstream?.(err as Error);
      return false;
    }
    this.responded = true;
    return true;
  }

  onData(chunk: Buffer): boolean {
    const res = this.res;
    if (res.destroyed) return false;
    if (res.write(chunk)) return true;
    // Backpressure: the upstream parser stays paused until the client has taken this chunk.
    res.once("drain", this.resumeUpstream!);
    return false;
  }

  onComplete(): void {
    if (this.done) return;
    this.res.end();
    this.finish(this.res.statusCode);
  }

  onError(err: Error): void {
    if (this.done) return;
    const service = this.service?.name ?? "";
    if (this.responded) {
      // Mid-body failure: the status line is gone, so the client must see a broken response
      // rather than a short one that looks complete. Counted as 5xx: the request failed.
      this.ctx.log.warn({ service, replica: this.upstream?.replicaId, err: errorText(err), requestId: this.requestId }, "upstream failed mid-response");
      this.finish(502);
      this.res.destroy();
      return;
    }
    if (!this.retried && this.canRetry(err)) {
      this.retried = true;
      // Deferred: undici is still unwinding this attempt's failure.
      process.nextTick(retryExchange, this);
      return;
    }
    const code = (err as { code?: unknown }).code;
    const reason = typeof code === "string" ? code : err.name;
    const details = { service, replica: this.upstream?.replicaId, reason };
    switch (code) {
      case "UND_ERR_HEADERS_TIMEOUT":
      case "UND_ERR_BODY_TIMEOUT":
      case "UND_ERR_CONNECT_TIMEOUT":
        this.fail(504, "KEELSON_ERR_UPSTREAM_TIMEOUT", `service "${service}" did not answer within ${this.ctx.upstreamTimeoutMs} ms`, details);
        return;
      case "UND_ERR_INVALID_ARG":
      case "UND_ERR_NOT_SUPPORTED":
        this.fail(400, "KEELSON_ERR_INVALID_INPUT", `the request cannot be forwarded: ${err.message}`, { service });
        return;
      default:
        this.ctx.log.warn({ ...details, err: errorText(err), requestId: this.requestId }, "upstream request failed");
        this.fail(502, "KEELSON_ERR_UPSTREAM", `service "${service}" failed: ${describeFailure(reason)}`, details);
    }
  }

  /**
   * A request that never reached a socket is safe to send again whatever its method (its
   * body is untouched). Once written, only a bodiless idempotent request is, and only when
   * the connection dropped before any answer: the stale keep-alive race.
   */
  private canRetry(err: Error): boolean {
    const code = (err as { code?: unknown }).code;
    if (code === "UND_ERR_INVALID_ARG" || code === "UND_ERR_NOT_SUPPORTED" || code === "UND_ERR_ABORTED") return false;
    if (!this.connected) return true;
    return this.body === null && IDEMPOTENT.has(this.method) && (code === "ECONNRESET" || code === "EPIPE" || code === "UND_ERR_SOCKET");
  }

  // --- client side ---

  /** The client connection closed; before the response finished, that means the client left. */
  responseClosed(): void {
    if (this.done) return;
    // 499 as nginx logs it: the client closed the request.
    this.finish(499);
    this.abortUpstream?.();
  }

  internalError(err: unknown): void {
    this.ctx.log.error({ err, requestId: this.requestId }, "gateway bug while handling a request");
    if (this.done) return;
    if (this.res.headersSent) {
      this.finish(500);
      this.res.destroy();
      return;
    }
    this.fail(500, "KEELSON_ERR_INTERNAL", "the gateway failed to handle the request", undefined);
  }

  private fail(status: number, code: ErrorCode, message: string, details: unknown): void {
    const res = this.res;
    if (this.done) return;
    if (res.headersSent) {
      this.finish(status);
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
    if (this.ctx.draining) headers.push("connection", "close");
    this.finish(status);
    res.writeHead(status, headers);
    res.end(this.method === "HEAD" ? undefined : body);
  }

  private finish(status: number): void {
    if (this.done) return;
    this.done = true;
    this.ctx.metrics.record(this.stats, status, (performance.now() - this.started) / 1000);
    this.ctx.requestFinished();
  }
}

/** Response headers to pass on: hop-by-hop ones dropped, our request id set. */
function responseHeaders(raw: Buffer[], requestId: string, close: boolean): string[] {
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
    out.push(name, raw[i + 1]!.toString("latin1"));
  }
  if (connection !== undefined) removeNominated(out, connection);
  out.push("x-request-id", requestId);
  if (close) out.push("connection", "close");
  return out;
}

function isHopByHop(lower: string): boolean {
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
function removeNominated(headers: string[], connection: string): void {
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

function parseAbsoluteTarget(target: string): { host: string; target: string } | undefined {
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
