// WebSocket (HTTP/1.1 Upgrade) pass-through: the upgrade request is routed like any other, sent
// to a replica over a connection of its own, and once the replica answers 101 the two sockets
// are piped both ways until either side closes. Any other answer is passed back and the
// connection closed, so a refused upgrade never becomes an unrouted tunnel.
import type { IncomingMessage } from "node:http";
import { randomUUID } from "node:crypto";
import { connect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { REJECTED } from "./circuit-breaker.js";
import type { Admission } from "./circuit-breaker.js";
import { writeRawError } from "./client-errors.js";
import type { FlagVariantCell, GatewayMetrics } from "./gateway-metrics.js";
import type { GatewayLogger } from "./logger.js";
import type { ProxyState } from "./proxy-exchange.js";
import { isHopByHop, parseAbsoluteTarget, removeNominated } from "./proxy-exchange.js";
import type { Random } from "./random.js";
import { forwardPath } from "./routing-table.js";
import type { EndpointState, ServiceTarget } from "./service-target.js";

export interface TunnelContext {
  readonly state: ProxyState | undefined;
  readonly draining: boolean;
  readonly metrics: GatewayMetrics;
  readonly log: GatewayLogger;
  readonly now: () => number;
  readonly random: Random;
  /** Every socket of an open tunnel (both sides), so a stopping gateway can close them. */
  readonly tunnels: Set<Duplex>;
}

/** Largest response head a replica may send before the tunnel opens. */
const MAX_HEAD_BYTES = 64 * 1024;
const HEAD_END = Buffer.from("\r\n\r\n");

/** Handles the public listener's `upgrade` event. Never throws. */
export function handleUpgrade(ctx: TunnelContext, req: IncomingMessage, client: Duplex, head: Buffer): void {
  client.on("error", destroySelf);
  try {
    startTunnel(ctx, req, client, head);
  } catch (err) {
    ctx.log.error({ err }, "gateway bug while handling an upgrade");
    writeRawError(client, 500, "KEELSON_ERR_INTERNAL", "the gateway failed to handle the upgrade");
  }
}

function destroySelf(this: Duplex): void {
  this.destroy();
}

function startTunnel(ctx: TunnelContext, req: IncomingMessage, client: Duplex, head: Buffer): void {
  const state = ctx.state;
  if (ctx.draining || state === undefined) {
    writeRawError(client, 503, "KEELSON_ERR_NO_ENDPOINT", ctx.draining ? "the gateway is shutting down" : "the gateway has no routing table yet");
    return;
  }
  const raw = req.rawHeaders;
  const headers: string[] = [];
  let host: string | undefined;
  let serviceName: string | undefined;
  let requestId: string | undefined;
  let forwardedFor: string | undefined;
  let connection: string | undefined;
  let upgrade = "websocket";
  let pin: string | undefined;
  let cookies: string | undefined;
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
      case "upgrade":
        upgrade = value;
        continue;
      case "x-forwarded-proto":
      case "x-forwarded-host":
      case "x-keelson-timeout-ms":
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
        pin = value;
        break;
      case "cookie":
        cookies = cookies === undefined ? value : `${cookies}; ${value}`;
        break;
      default:
        if (isHopByHop(lower)) continue;
    }
    headers.push(name, value);
  }
  if (connection !== undefined) removeNominated(headers, connection);

  let target = req.url ?? "/";
  if (target.charCodeAt(0) !== 47 /* / */) {
    const parsed = parseAbsoluteTarget(target);
    if (parsed === undefined) {
      writeRawError(client, 400, "KEELSON_ERR_INVALID_INPUT", "cannot route the upgrade's request target");
      return;
    }
    host = parsed.host;
    target = parsed.target;
  }

  let service: ServiceTarget | undefined;
  let routeName: string;
  let flagPin: string | undefined;
  /** The upgrade's outcome under the variant its route's flag gave it (counted, not timed: a tunnel's life is no latency). */
  let flagMeasure: FlagVariantCell | undefined;
  if (serviceName !== undefined) {
    service = state.services.get(serviceName);
    routeName = serviceName;
    if (service === undefined) {
      ctx.metrics.upgrades.inc({ service: "_unrouted", outcome: "rejected" });
      writeRawError(client, 404, "KEELSON_ERR_NO_ROUTE", `no service named ${JSON.stringify(serviceName)} (from the x-keelson-service header)`);
      return;
    }
  } else {
    const route = state.matcher.match(host, target);
    if (route === undefined) {
      ctx.metrics.upgrades.inc({ service: "_unrouted", outcome: "rejected" });
      writeRawError(client, 404, "KEELSON_ERR_NO_ROUTE", `no route for ${host ?? "(no host)"}${target.split("?")[0] ?? ""}`);
      return;
    }
    target = forwardPath(route, target);
    routeName = route.service;
    service = state.services.get(route.service);
    const runtime = state.routes[route.index];
    // The route's flag chooses the service and version of an upgrade as of any request, and
    // counts it the same way (see RouteFlagEvaluator.decide).
    const flag = runtime?.flag;
    if (flag !== undefined) {
      const choice = flag.decide(state.services, service, raw, cookies);
      if (choice !== undefined) {
        flagMeasure = choice.measure;
        if (choice.listed) {
          service = flag.serviceOf(choice, state.services, service)!;
          routeName = service.name;
          flagPin = choice.version;
        }
      }
    }
    const limiter = runtime?.limiter;
    const now = ctx.now();
    if (limiter !== undefined && !limiter.take(now)) {
      if (flagMeasure !== undefined) flagMeasure.rejected++;
      ctx.metrics.upgrades.inc({ service: route.service, outcome: "rejected" });
      const wait = String(Math.max(1, Math.ceil(limiter.retryAfterMs(now) / 1000)));
      writeRawError(client, 429, "KEELSON_ERR_RATE_LIMITED", `too many requests for this route of "${route.service}"`, { "retry-after": wait });
      return;
    }
  }
  if (service === undefined || service.endpoints.length === 0) {
    if (flagMeasure !== undefined) flagMeasure.error++;
    ctx.metrics.upgrades.inc({ service: routeName, outcome: "rejected" });
    writeRawError(client, 503, "KEELSON_ERR_NO_ENDPOINT", `service "${routeName}" has no ready replica`);
    return;
  }
  const now = ctx.now();
  let admission: Admission = REJECTED;
  if (service.breaker !== undefined) {
    admission = service.breaker.admit(now);
    if (admission === REJECTED) {
      if (flagMeasure !== undefined) flagMeasure.error++;
      ctx.metrics.upgrades.inc({ service: service.name, outcome: "rejected" });
      const wait = String(Math.ceil(service.breaker.retryAfterMs(now) / 1000));
      writeRawError(client, 503, "KEELSON_ERR_CIRCUIT_OPEN", `service "${service.name}" is failing; its circuit is open`, { "retry-after": wait });
      return;
    }
  }

  if (requestId === undefined || requestId.length === 0 || requestId.length > 200) requestId = randomUUID();
  const remote = (client as Socket).remoteAddress;
  headers.push("x-forwarded-for", forwardedFor === undefined ? (remote ?? "unknown") : `${forwardedFor}, ${remote ?? "unknown"}`);
  headers.push("x-forwarded-proto", "http");
  if (host !== undefined) headers.push("x-forwarded-host", host);
  headers.push("x-request-id", requestId, "connection", "Upgrade", "upgrade", upgrade);

  new Tunnel(ctx, service, admission, client, req.method ?? "GET", target, headers, head, requestId, flagMeasure).open(service.groupFor(pin, cookies, ctx.random, raw, flagPin), undefined, now);
}

/** One upgraded connection through the gateway. */
class Tunnel {
  private upstream: Socket | undefined;
  private endpoint: EndpointState | undefined;
  private attempts = 0;
  private headChunks: Buffer[] = [];
  private headBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private settled = false;
  private upgraded = false;

  constructor(
    private readonly ctx: TunnelContext,
    private readonly service: ServiceTarget,
    private readonly admission: Admission,
    private readonly client: Duplex,
    private readonly method: string,
    private readonly target: string,
    private readonly headers: string[],
    private readonly head: Buffer,
    private readonly requestId: string,
    private readonly flagMeasure: FlagVariantCell | undefined,
  ) {
    client.once("close", () => {
      if (!this.upgraded) this.abandon();
    });
  }

  open(group: ReturnType<ServiceTarget["groupFor"]>, avoid: EndpointState | undefined, now: number): void {
    if (this.client.destroyed) return;
    this.service.maybeReturn(now);
    const endpoint = this.service.choose(group, avoid, now);
    if (endpoint === undefined) {
      this.refuse(503, "KEELSON_ERR_NO_ENDPOINT", `service "${this.service.name}" has no ready replica`);
      return;
    }
    this.endpoint = endpoint;
    this.attempts++;
    let upstream: Socket;
    try {
      upstream = endpoint.tls === undefined ? connect({ host: endpoint.hostname, port: endpoint.port }) : tlsConnect({ host: endpoint.hostname, port: endpoint.port, ...endpoint.tls() });
    } catch (err) {
      // The gateway's own certificate files could not be read.
      this.refuse(502, "KEELSON_ERR_UPSTREAM", `service "${this.service.name}": cannot connect over TLS: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    this.upstream = upstream;
    const connectTimeout = Math.min(this.service.policy.perTryTimeoutMs, 10_000);
    this.timer = setTimeout(() => upstream.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" })), connectTimeout);
    // Over TLS the request may go only once the replica's certificate has been checked.
    upstream.once(endpoint.tls === undefined ? "connect" : "secureConnect", () => {
      clearTimeout(this.timer);
      let text = `${this.method} ${endpoint.basePath}${this.target} HTTP/1.1\r\nhost: ${endpoint.hostname}:${endpoint.port}\r\n`;
      for (let i = 0; i < this.headers.length; i += 2) text += `${this.headers[i]}: ${this.headers[i + 1]}\r\n`;
      upstream.write(`${text}\r\n`);
      if (this.head.length > 0) upstream.write(this.head);
      // The replica's answer head first; the rest flows once we know what it said.
      upstream.on("data", (chunk: Buffer) => this.onHeadData(chunk));
    });
    upstream.on("error", (err: NodeJS.ErrnoException) => this.onUpstreamError(err, group));
    upstream.on("close", () => {
      if (!this.upgraded && !this.settled) this.refuse(502, "KEELSON_ERR_UPSTREAM", `service "${this.service.name}" closed the connection before answering the upgrade`);
    });
  }

  private onUpstreamError(err: NodeJS.ErrnoException, group: ReturnType<ServiceTarget["groupFor"]>): void {
    clearTimeout(this.timer);
    if (this.settled || this.upgraded) return;
    const now = this.ctx.now();
    const endpoint = this.endpoint!;
    this.failed(endpoint, now);
    const neverReached = this.headBytes === 0 && (err.code === "ECONNREFUSED" || err.code === "ETIMEDOUT" || err.code === "EHOSTUNREACH");
    this.upstream?.removeAllListeners("close");
    if (neverReached && this.attempts <= this.service.policy.retries.attempts && this.service.budget.tryRetry(now)) {
      this.ctx.metrics.retries.inc(this.service.metrics.retry.retried);
      this.open(group, endpoint, now);
      return;
    }
    this.refuse(502, "KEELSON_ERR_UPSTREAM", `service "${this.service.name}" failed: ${err.code ?? err.message}`);
  }

  private onHeadData(chunk: Buffer): void {
    if (this.upgraded || this.settled) return;
    this.headChunks.push(chunk);
    this.headBytes += chunk.length;
    const buffered = this.headChunks.length === 1 ? chunk : Buffer.concat(this.headChunks);
    const end = buffered.indexOf(HEAD_END);
    if (end === -1) {
      if (this.headBytes > MAX_HEAD_BYTES) this.refuse(502, "KEELSON_ERR_UPSTREAM", `service "${this.service.name}" sent an oversized answer to the upgrade`);
      else this.headChunks = [buffered];
      return;
    }
    const statusLine = buffered.toString("latin1", 0, Math.min(buffered.indexOf(13), 64));
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1];
    const upstream = this.upstream!;
    const client = this.client;
    const endpoint = this.endpoint!;
    const now = this.ctx.now();
    upstream.removeAllListeners("data");
    upstream.removeAllListeners("close");
    if (status === undefined) {
      this.failed(endpoint, now);
      this.refuse(502, "KEELSON_ERR_UPSTREAM", `service "${this.service.name}" answered the upgrade with something that is not HTTP`);
      return;
    }
    const code = Number(status);
    if (code >= 500) this.failed(endpoint, now);
    else endpoint.consecutiveFailures = 0;
    this.verdict(code < 500);
    if (this.flagMeasure !== undefined) {
      if (code >= 500) this.flagMeasure.error++;
      else this.flagMeasure.ok++;
    }
    if (code !== 101) {
      // Pass the refusal on, then close: the client's next bytes must not reach the replica unrouted.
      this.settled = true;
      this.ctx.metrics.upgrades.inc({ service: this.service.name, outcome: "refused" });
      client.write(buffered);
      // Whatever else the client sends is dropped; left unread it would keep the socket open forever.
      client.resume();
      upstream.end();
      upstream.pipe(client, { end: false });
      upstream.once("close", () => client.end(() => client.destroy()));
      upstream.on("error", () => client.destroy());
      return;
    }
    this.upgraded = true;
    const metrics = this.service.metrics;
    metrics.tunnels++;
    this.ctx.metrics.upgrades.inc({ service: this.service.name, outcome: "upgraded" });
    const tunnels = this.ctx.tunnels;
    tunnels.add(client);
    tunnels.add(upstream);
    client.write(buffered);
    upstream.pipe(client);
    client.pipe(upstream);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      metrics.tunnels--;
      tunnels.delete(client);
      tunnels.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", close);
    upstream.on("close", close);
    upstream.on("error", close);
    // Both sides live for as long as the application wants; TCP keepalive notices dead peers.
    (client as Socket).setKeepAlive?.(true, 60_000);
    upstream.setKeepAlive(true, 60_000);
  }

  private failed(endpoint: EndpointState, now: number): void {
    const target = this.ctx.state?.services.get(this.service.name) ?? this.service;
    if (target.failure(endpoint, now)) this.ctx.metrics.ejections.inc(target.metrics.service);
  }

  private verdict(success: boolean): void {
    if (this.admission !== REJECTED) this.service.breaker?.record(this.admission, success, this.ctx.now());
  }

  private refuse(status: number, code: "KEELSON_ERR_UPSTREAM" | "KEELSON_ERR_NO_ENDPOINT", message: string): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.verdict(false);
    if (this.flagMeasure !== undefined) this.flagMeasure.error++;
    this.ctx.metrics.upgrades.inc({ service: this.service.name, outcome: "failed" });
    this.upstream?.destroy();
    this.ctx.log.warn({ service: this.service.name, replica: this.endpoint?.replicaId, requestId: this.requestId, message }, "upgrade failed");
    writeRawError(this.client, status, code, message);
  }

  /** The client left before the tunnel opened. */
  private abandon(): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    if (this.flagMeasure !== undefined) this.flagMeasure.abandoned++;
    if (this.admission !== REJECTED) this.service.breaker?.abandon(this.admission);
    this.upstream?.destroy();
  }
}
