// The gateway process's server: the public listener that proxies by the routing table (HTTP and
// WebSocket upgrades, with edge limits on slow, oversized and malformed input), the admin
// listener (/healthz, /readyz, /metrics, /routes, /state, /stats), one keep-alive Pool per
// endpoint, and the routing watch that keeps the table current.
import { mkdir, readFile, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { TLSSocket } from "node:tls";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Pool } from "undici";
import type { Endpoint, RoutingTable, ServicePolicy } from "@keelson/protocol";
import { DEFAULT_SERVICE_POLICY } from "@keelson/protocol";
import { handleClientError, writeRawError } from "./client-errors.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import { INTERNAL_ROUTE, createGatewayMetrics } from "./gateway-metrics.js";
import type { StatsSnapshot } from "./live-stats.js";
import { LiveStats } from "./live-stats.js";
import type { GatewayTracing, GatewayTracingConfig } from "./gateway-tracing.js";
import { createGatewayTracing } from "./gateway-tracing.js";
import { HeldRequests } from "./held-requests.js";
import type { GatewayLogger } from "./logger.js";
import { silentLogger } from "./logger.js";
import type { ProxyContext, ProxyState, RouteRuntime } from "./proxy-exchange.js";
import { handleProxyRequest } from "./proxy-exchange.js";
import type { Random } from "./random.js";
import type { TableFlags } from "./route-flag.js";
import { RouteFlagEvaluator, compileTableFlags } from "./route-flag.js";
import { compileRoutes } from "./routing-table.js";
import type { RoutingWatch } from "./routing-watch.js";
import { createRoutingWatch, loadRoutingTable } from "./routing-watch.js";
import type { LiveSeries } from "./live-stats.js";
import type { ServiceState, ServiceTarget } from "./service-target.js";
import { EndpointState, buildServiceTargets } from "./service-target.js";
import { TokenBucket } from "./token-bucket.js";
import type { TunnelContext } from "./websocket-tunnel.js";
import { handleUpgrade } from "./websocket-tunnel.js";
import { closeServer, listen, sendError, sendJson } from "./admin-http.js";
import { IDENTITY_HEADER } from "@keelson/protocol";
import { createIdentityVerifier, serviceOfCertificate, type IdentityVerifier } from "../security/index.js";
import { compileRouteAuth, type RouteAuthCheck } from "./route-auth.js";
import { createUpstreamTls, type UpstreamTls } from "./upstream-tls.js";
import { createActivateCall, createServiceActivator, type ServiceActivator } from "./service-activator.js";

export interface GatewayOptions {
  /** Public listener (manifest `gateway.host`, `gateway.port`); port 0 picks a free one. */
  host: string;
  port: number;
  /**
   * Mesh listener (manifest `gateway.meshPort`): service-to-service calls by x-keelson-service, each
   * with the caller's verified identity (client certificate with `meshTls`, else identity token).
   * Undefined: no mesh listener.
   */
  meshPort?: number;
  /** Defaults to `host`. */
  meshHost?: string;
  /**
   * Serve the mesh listener over mutual TLS with cert.pem, key.pem and ca.pem from this folder (re-read when they change).
   * The same certificate is presented to replicas of `tls: true` services (https endpoints), which are skipped without it.
   */
  meshTls?: { dir: string; reloadIntervalMs?: number; /** How long start() waits for the files to appear (default 20 s). */ waitMs?: number };
  /** Admin listener; kept apart from app routes. Defaults to 127.0.0.1. */
  adminHost?: string;
  adminPort: number;
  /** Folder for `routing.json` (the last table) and the pid file. */
  stateDir: string;
  /** Without it the gateway serves the saved table (or nothing) and never reconnects. */
  controlPlaneUrl?: string;
  /** File holding the gateway's identity token for the control plane (written and renewed by it). */
  credentialFile?: string;
  /** Policy of a service the routing table gives none (default DEFAULT_SERVICE_POLICY). */
  defaultPolicy?: ServicePolicy;
  /** Longest silence inside a response body before it is cut; server-sent events are exempt (default 30 s). */
  bodyIdleTimeoutMs?: number;
  /** Body limit of routes that set none and of x-keelson-service calls (default 10 MiB). */
  maxBodyBytes?: number;
  /** How long a client may take to send its request headers (node's `headersTimeout`, default 60 s): slowloris. */
  headersTimeoutMs?: number;
  /** How long a client may take to send its whole request, body included (node's `requestTimeout`, default 300 s). */
  requestTimeoutMs?: number;
  /** Largest request head in bytes (node's `maxHeaderSize`, default 16 KiB); 431 beyond. */
  maxHeaderBytes?: number;
  /** An idle keep-alive client connection closes after this (default 5 s). */
  keepAliveTimeoutMs?: number;
  /** How often node checks the header and request timeouts (default 1 s; node's own is 30 s). */
  connectionsCheckingIntervalMs?: number;
  log?: GatewayLogger;
  /** Reconnect tuning of the routing watch (defaults: 250 ms doubling to 10 s, 45 s idle). */
  watch?: { initialBackoffMs?: number; maxBackoffMs?: number; idleTimeoutMs?: number };
  /** Collect node's default process metrics (default true). */
  processMetrics?: boolean;
  /** Monotonic clock in ms for breakers, budgets, ejections and stats (default performance.now). */
  clock?: () => number;
  /** Random source of balancing, splits, backoff jitter and fault draws (default Math.random; seed it in tests). */
  random?: Random;
  /** Wall clock in epoch ms, against which faults' end times are checked (default Date.now). */
  wallClock?: () => number;
  /**
   * Where hold episodes of services scaled to zero are reported. Default: with `controlPlaneUrl`,
   * `POST {controlPlaneUrl}/v1/services/{name}/activate` with the `credentialFile` token, once per
   * episode (a multi-worker gateway's workers pass the primary's, over IPC); without, nobody is asked.
   */
  activator?: ServiceActivator;
  /** Least time between two activate calls of one episode after a failure (default 1 s). */
  activateRetryMs?: number;
  /** Requests held per service scaled to zero, at most; more are refused at once (503, default 1000). */
  maxHeldRequests?: number;
  /**
   * Spans per request and per upstream try, exported as OTLP/JSON to `endpoint` (default off;
   * `runGateway` points it at the control plane's `/v1/traces`).
   */
  tracing?: GatewayTracingConfig | false;
}

/** Admin `GET /state`: what the gateway does with each service now. */
export interface GatewayState {
  /** Version of the routing table served; absent before the first. */
  version?: number;
  at: string;
  draining: boolean;
  connections: { clients: number; tunnels: number };
  services: ServiceState[];
}

/** What every form of the gateway (one process, or a primary with workers) can do. */
export interface GatewayLifecycle {
  /** Loads the saved table, binds the listeners and starts following the control plane. */
  start(): Promise<void>;
  /** Stops accepting and lets in-flight requests finish for up to `drainMs` (default 10 s). */
  stop(opts?: { drainMs?: number }): Promise<void>;
  /** Base URL of the public listener (its real port once started). */
  readonly url: string;
  readonly adminUrl: string;
  /** Base URL of the mesh listener (https with mTLS); undefined without one. */
  readonly meshUrl?: string | undefined;
  /** Serves this table from the next request on. */
  setTable(table: RoutingTable): void;
  table(): RoutingTable | undefined;
}

export interface Gateway extends GatewayLifecycle {
  /**
   * Stops accepting, lets in-flight requests finish for up to `drainMs` (default 10 s), then
   * cuts what is left (WebSocket tunnels included) and closes every pool.
   */
  stop(opts?: { drainMs?: number }): Promise<void>;
  /**
   * Serves this table from the next request on. Endpoint state (pools, latency estimates,
   * ejections) and each service's breaker, bulkhead and retry budget carry over; requests in
   * flight finish where they were sent.
   */
  setTable(table: RoutingTable): void;
  /** Endpoints, ejections, breakers, bulkheads and splits per service (admin `GET /state`). */
  state(): GatewayState;
  /** The rolling window of the last `windowSeconds` (1-60) per service/version/replica (admin `GET /stats`). */
  stats(windowSeconds?: number): StatsSnapshot;
  /** The gateway's metrics registry and instruments. */
  readonly metrics: GatewayMetrics;
}

const DEFAULT_BODY_IDLE_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;
const UPSTREAM_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_HELD_REQUESTS = 1_000;

/**
 * Creates the gateway. Nothing listens until `start()`.
 *
 * @example
 * const gw = createGateway({ host: "127.0.0.1", port: 8080, adminPort: 8081, stateDir: ".keelson/gateway",
 *   controlPlaneUrl: "http://127.0.0.1:7070" });
 * await gw.start();
 */
export function createGateway(options: GatewayOptions): Gateway {
  const log = options.log ?? silentLogger;
  const clock = options.clock ?? (() => performance.now());
  const random = options.random ?? Math.random;
  const defaultPolicy = options.defaultPolicy ?? DEFAULT_SERVICE_POLICY;
  const defaultMaxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const headersTimeoutMs = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const adminHost = options.adminHost ?? "127.0.0.1";
  const metrics = createGatewayMetrics({ defaultMetrics: options.processMetrics ?? true, now: clock });
  // Held arrivals go out with the traffic window: the autoscaler wakes a service at zero on them.
  const liveStats = new LiveStats({ now: clock, heldArrivals: () => holds.arrivals() });
  const tracing: GatewayTracing | undefined = options.tracing ? createGatewayTracing({ ...options.tracing, log, registry: metrics.registry }) : undefined;
  const wallClock = options.wallClock ?? Date.now;
  // Scale from zero: this process asks the control plane itself unless told whom to tell.
  const activateCall =
    options.activator === undefined && options.controlPlaneUrl !== undefined
      ? createActivateCall({ controlPlaneUrl: options.controlPlaneUrl, ...(options.credentialFile === undefined ? {} : { credentialFile: options.credentialFile }) })
      : undefined;
  const ownActivator =
    activateCall === undefined ? undefined : createServiceActivator({ activate: activateCall.call, ...(options.activateRetryMs === undefined ? {} : { retryMs: options.activateRetryMs }), log });
  const holds = new HeldRequests(options.maxHeldRequests ?? DEFAULT_MAX_HELD_REQUESTS, options.activator ?? ownActivator, { now: clock });

  let current: RoutingTable | undefined;
  let endpoints = new Map<string, EndpointState>();
  let limiters = new Map<string, TokenBucket>();
  let tableFlags: TableFlags | undefined;
  let routeAuths = new Map<string, RouteAuthCheck>();
  /** Whether any route needs a JWT (only then do requests wait for a verification before their exchange). */
  let jwtRoutes = false;
  let identity: { verifier: IdentityVerifier; trustDomain: string; key: string } | undefined;
  const closingPools = new Set<Pool>();
  /** The gateway as a TLS client of replicas that serve https: with the mesh listener's certificate. */
  const upstreamTls: UpstreamTls | undefined =
    options.meshTls === undefined ? undefined : createUpstreamTls({ dir: options.meshTls.dir, reloadIntervalMs: options.meshTls.reloadIntervalMs ?? 30_000, now: clock });
  const tunnels = new Set<Duplex>();
  let clientConnections = 0;
  let watch: RoutingWatch | undefined;
  let phase: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  let stopping: Promise<void> | undefined;
  let inflight = 0;
  let onIdle: (() => void) | undefined;

  const ctx: ProxyContext & TunnelContext & { state: ProxyState | undefined; draining: boolean } = {
    state: undefined,
    draining: false,
    bodyIdleTimeoutMs: options.bodyIdleTimeoutMs ?? DEFAULT_BODY_IDLE_TIMEOUT_MS,
    metrics,
    log,
    now: clock,
    random,
    wallNow: wallClock,
    holds,
    tracing,
    tunnels,
    requestStarted() {
      inflight++;
    },
    requestFinished() {
      inflight--;
      if (inflight === 0 && onIdle !== undefined) onIdle();
    },
  };

  metrics.setStateSource(function* () {
    const services = ctx.state?.services;
    if (services === undefined) return;
    const now = clock();
    for (const s of services.values()) {
      const circuit = s.breaker?.state(now);
      yield {
        service: s.name,
        circuit: circuit === undefined ? undefined : circuit === "closed" ? 0 : circuit === "open" ? 1 : 2,
        ejected: s.outliers.ejected,
        endpoints: s.endpoints.map((e) => ({ version: e.release, replica: e.replicaId, inflight: e.inflight })),
      };
    }
  });

  const createEndpoint = (service: string, e: Endpoint, now: number, trustDomain: string): EndpointState | undefined => {
    let parsed: URL;
    try {
      parsed = new URL(e.url);
    } catch {
      log.warn({ replicaId: e.replicaId, url: e.url }, "skipping an endpoint whose URL is not valid");
      return undefined;
    }
    const https = parsed.protocol === "https:";
    if (https && upstreamTls === undefined) {
      log.warn({ replicaId: e.replicaId, url: e.url }, "skipping an https endpoint: this gateway has no certificate (meshTls) to present to it");
      return undefined;
    }
    if (!https && parsed.protocol !== "http:") {
      log.warn({ replicaId: e.replicaId, url: e.url }, "skipping an endpoint that is neither http nor https");
      return undefined;
    }
    // Over https the replica must prove it is this service (its certificate's SPIFFE id), and the
    // gateway presents its own certificate, re-read when renewed (see upstream-tls.ts).
    const tls = https ? upstreamTls?.optionsFor(service, trustDomain) : undefined;
    const pool = new Pool(parsed.origin, {
      ...(https && upstreamTls !== undefined ? { connect: upstreamTls.connectorFor(service, trustDomain, UPSTREAM_CONNECT_TIMEOUT_MS) } : {}),
      pipelining: 1,
      // Idle upstream sockets live 4 s unless the replica's Keep-Alive hint says otherwise
      // (minus 1 s, so the gateway gives a socket up before the replica closes it).
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      keepAliveTimeoutThreshold: 1_000,
      connectTimeout: UPSTREAM_CONNECT_TIMEOUT_MS,
      // Deadlines, per-try timeouts and body silence are the exchange's own (one timer per
      // request), so undici's are off.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    pool.on("connectionError", (_origin, _targets, err) => log.debug({ replicaId: e.replicaId, url: e.url, err: err.message }, "cannot connect to replica"));
    const hostname = parsed.hostname.startsWith("[") ? parsed.hostname.slice(1, -1) : parsed.hostname;
    return new EndpointState(
      `${e.replicaId} ${e.url}`,
      service,
      e.replicaId,
      e.url,
      e.release,
      pool,
      parsed.pathname.replace(/\/+$/, ""),
      hostname,
      Number(parsed.port || (https ? 443 : 80)),
      liveStats.series(service, e.release, e.replicaId),
      now,
      tls,
    );
  };

  const closePool = (pool: Pool, replicaId: string) => {
    closingPools.add(pool);
    // close() lets requests already on the pool finish; only new ones are refused.
    pool
      .close()
      .catch((err: unknown) => log.warn({ replicaId, err }, "closing a replica's pool failed"))
      .finally(() => closingPools.delete(pool));
  };

  const setTable = (table: RoutingTable) => {
    if (phase === "stopping" || phase === "stopped") return;
    const now = clock();
    const next = new Map<string, EndpointState>();
    const services = buildServiceTargets({
      table,
      previous: ctx.state?.services,
      defaultPolicy,
      random,
      metrics,
      stats: liveStats,
      now,
      log,
      wallNow: wallClock(),
      endpoint(service, e) {
        const key = `${e.replicaId} ${e.url}`;
        let state = next.get(key) ?? endpoints.get(key);
        if (state !== undefined && (state.service !== service || state.release !== e.release)) state = undefined;
        state ??= createEndpoint(service, e, now, table.identity?.trustDomain ?? table.project);
        if (state !== undefined) next.set(key, state);
        return state;
      },
    });

    const nextFlags = compileTableFlags(table, tableFlags, log);
    const nextLimiters = new Map<string, TokenBucket>();
    const nextAuths = new Map<string, RouteAuthCheck>();
    const routes: RouteRuntime[] = table.routes.map((r) => {
      const auth = compileRouteAuth(r.auth, routeAuths);
      if (auth !== undefined) nextAuths.set(auth.key, auth);
      let limiter: TokenBucket | undefined;
      if (r.rateLimit !== undefined) {
        // A table that leaves a route's limit as it was keeps the bucket's tokens.
        const key = `${r.host ?? "*"} ${r.pathPrefix} ${r.rateLimit.rps} ${r.rateLimit.burst}`;
        limiter = limiters.get(key) ?? new TokenBucket(r.rateLimit.rps, r.rateLimit.burst, now);
        nextLimiters.set(key, limiter);
      }
      return {
        routeId: metrics.routeId(r.pathPrefix),
        limiter,
        maxBodyBytes: r.maxBodyBytes ?? defaultMaxBody,
        fallback: r.fallback === undefined ? undefined : { status: r.fallback.status, contentType: r.fallback.contentType, body: Buffer.from(r.fallback.body) },
        flag: RouteFlagEvaluator.compile({ route: r.pathPrefix, flag: r.flag, flags: nextFlags.compiled, metrics }),
        auth,
      };
    });
    routeAuths = nextAuths;
    jwtRoutes = table.routes.some((r) => r.auth !== undefined && r.auth !== "public" && "jwt" in r.auth);
    const trust = table.identity;
    const trustKey = trust === undefined ? "" : JSON.stringify([trust.trustDomain, trust.jwks]);
    if (trust === undefined) identity = undefined;
    else if (identity?.key !== trustKey) identity = { verifier: createIdentityVerifier({ jwks: trust.jwks as never, trustDomain: trust.trustDomain }), trustDomain: trust.trustDomain, key: trustKey };
    const matcher = compileRoutes(table);
    for (const [key, e] of endpoints) {
      if (next.get(key) === e) continue;
      e.removed = true;
      closePool(e.pool, e.replicaId);
    }
    const series = new Set<LiveSeries>();
    for (const e of next.values()) series.add(e.series);
    liveStats.retire(series);
    metrics.prune();
    endpoints = next;
    limiters = nextLimiters;
    tableFlags = nextFlags;
    current = table;
    ctx.state = {
      matcher,
      routes,
      internal: { routeId: metrics.routeId(INTERNAL_ROUTE), limiter: undefined, maxBodyBytes: defaultMaxBody, fallback: undefined, flag: undefined },
      services,
    };
    metrics.tableVersion.set(table.version);
    // Requests held for a service that now has an endpoint go on.
    holds.tableChanged(services);
  };

  // The edge limits of both client-facing listeners (public and mesh).
  const serverOptions = {
    headersTimeout: headersTimeoutMs,
    requestTimeout: Math.max(options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, headersTimeoutMs),
    maxHeaderSize: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
    connectionsCheckingInterval: options.connectionsCheckingIntervalMs ?? 1_000,
    // Checked by the exchange, which answers in JSON (node would send a bare 400).
    requireHostHeader: false,
  };
  const server: Server = createServer(
    serverOptions,
    (req, res) => {
      const waiting = jwtRoutes ? prepareRouteAuth(req) : undefined;
      if (waiting === undefined) handleProxyRequest(ctx, req, res);
      else void waiting.then(() => handleProxyRequest(ctx, req, res));
    },
  );
  server.on("clientError", (err: Error & { code?: string }, socket: Duplex) => handleClientError(err, socket, metrics));
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => handleUpgrade(ctx, req, socket, head));
  server.on("connect", (_req: IncomingMessage, socket: Duplex) => {
    socket.on("error", () => socket.destroy());
    writeRawError(socket, 405, "KEELSON_ERR_INVALID_INPUT", "CONNECT is not supported: the gateway is a reverse proxy");
  });
  server.on("connection", (socket: Socket) => {
    clientConnections++;
    socket.once("close", () => clientConnections--);
  });

  /** Verifies the JWT of a request for a JWT route before its exchange, so the exchange's check is a cache hit. */
  const prepareRouteAuth = (req: IncomingMessage): Promise<void> | undefined => {
    const state = ctx.state;
    if (state === undefined) return undefined;
    const compiled = state.matcher.match(req.headers.host, req.url ?? "/");
    const auth = compiled === undefined ? undefined : state.routes[compiled.index]?.auth;
    return auth?.prepare(req.headers)?.catch(() => undefined);
  };

  /** A mesh call goes on only with a verified caller: the client certificate's SPIFFE id, or a valid identity token. */
  const handleMesh = (req: IncomingMessage, res: ServerResponse) => {
    const trust = identity;
    const deny = (why: string) => {
      metrics.rejections.inc({ service: "", reason: "unauthenticated" });
      log.warn({ remote: req.socket.remoteAddress, why }, "mesh call without a valid identity");
      res.setHeader("www-authenticate", 'Bearer realm="keelson-mesh"');
      sendError(res, 401, "KEELSON_ERR_UNAUTHENTICATED", `the mesh listener needs the calling service's identity: ${why}`);
    };
    if (trust === undefined) return deny("this gateway has no identity trust from the control plane yet");
    if (options.meshTls !== undefined) {
      // A connection's certificate does not change: read its SPIFFE id once per connection.
      const socket = req.socket as TLSSocket;
      let caller = peerServices.get(socket);
      if (caller === undefined || caller.trustDomain !== trust.trustDomain) {
        caller = { trustDomain: trust.trustDomain, service: socket.authorized ? serviceOfCertificate(socket.getPeerCertificate(), trust.trustDomain) : undefined };
        peerServices.set(socket, caller);
      }
      if (caller.service === undefined) return deny(`the client certificate names no service of spiffe://${trust.trustDomain}`);
      return handleProxyRequest(ctx, req, res, caller.service);
    }
    const header = req.headers[IDENTITY_HEADER];
    const token = Array.isArray(header) ? header[0] : header;
    if (token === undefined || token === "") return deny(`no ${IDENTITY_HEADER} header`);
    const known = trust.verifier.cached(token);
    const go = (verdict: Awaited<ReturnType<IdentityVerifier["verify"]>>) => {
      if (!verdict.ok) return deny(`the identity token was refused (${verdict.reason})`);
      handleProxyRequest(ctx, req, res, verdict.service);
    };
    if (known !== undefined) return go(known);
    void trust.verifier.verify(token).then(go);
  };
  const peerServices = new WeakMap<TLSSocket, { trustDomain: string; service: string | undefined }>();
  let meshTlsFiles: { cert: string; key: string; ca: string; stamp: string } | undefined;
  const readMeshTls = async (dir: string) => {
    const names = ["cert.pem", "key.pem", "ca.pem"] as const;
    const stamp = (await Promise.all(names.map(async (n) => (await stat(`${dir}/${n}`)).mtimeMs))).join(",");
    if (meshTlsFiles?.stamp === stamp) return undefined;
    const [cert, key, ca] = await Promise.all(names.map((n) => readFile(`${dir}/${n}`, "utf8")));
    meshTlsFiles = { cert: cert as string, key: key as string, ca: ca as string, stamp };
    return meshTlsFiles;
  };
  const waitForMeshTls = async (dir: string, waitMs: number) => {
    const deadline = Date.now() + waitMs;
    for (;;) {
      try {
        return (await readMeshTls(dir)) ?? meshTlsFiles!;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT" || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  let mesh: Server | undefined;
  let meshReload: NodeJS.Timeout | undefined;

  const admin: Server = createServer((req, res) => {
    handleAdmin(req, res).catch((err: unknown) => {
      log.error({ err }, "admin request failed");
      if (!res.headersSent) sendError(res, 500, "KEELSON_ERR_INTERNAL", "admin request failed");
      else res.destroy();
    });
  });

  const state = (): GatewayState => {
    const now = clock();
    const wallNow = wallClock();
    const services: ServiceState[] = [];
    for (const s of ctx.state?.services.values() ?? ([] as ServiceTarget[])) {
      s.maybeReturn(now);
      const described = s.describe(now, wallNow);
      if (described.activation !== undefined) described.activation.held = holds.count(s.name);
      services.push(described);
    }
    return {
      ...(current === undefined ? {} : { version: current.version }),
      at: new Date(wallNow).toISOString(),
      draining: ctx.draining,
      connections: { clients: clientConnections, tunnels: tunnels.size / 2 },
      services,
    };
  };

  const handleAdmin = async (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      sendError(res, 405, "KEELSON_ERR_INVALID_INPUT", `${req.method ?? "?"} is not allowed; use GET`);
      return;
    }
    switch (path) {
      case "/healthz":
        sendJson(res, 200, { status: "ok" });
        return;
      case "/readyz": {
        const body = {
          status: current !== undefined && !ctx.draining ? "ready" : "not ready",
          version: current?.version,
          draining: ctx.draining,
          controlPlane: watch === undefined ? "none" : watch.connected ? "connected" : "disconnected",
        };
        sendJson(res, body.status === "ready" ? 200 : 503, body);
        return;
      }
      case "/metrics": {
        const text = await metrics.registry.metrics();
        res.writeHead(200, { "content-type": metrics.registry.contentType, "content-length": Buffer.byteLength(text) });
        res.end(req.method === "HEAD" ? undefined : text);
        return;
      }
      case "/routes":
        if (current === undefined) sendError(res, 404, "KEELSON_ERR_NOT_FOUND", "no routing table loaded yet");
        else sendJson(res, 200, current);
        return;
      case "/state":
        sendJson(res, 200, state());
        return;
      case "/stats": {
        const raw = new URLSearchParams(q === -1 ? "" : url.slice(q + 1)).get("window");
        const seconds = raw === null ? 60 : Number(raw);
        if (!Number.isInteger(seconds) || seconds < 1 || seconds > 60) {
          sendError(res, 400, "KEELSON_ERR_INVALID_INPUT", `window: expected whole seconds 1-60, got ${JSON.stringify(raw)}`);
          return;
        }
        sendJson(res, 200, liveStats.snapshot(seconds));
        return;
      }
      default:
        sendError(res, 404, "KEELSON_ERR_NOT_FOUND", `no admin endpoint ${path}; try /healthz, /readyz, /metrics, /routes, /state or /stats`);
    }
  };

  const address = (srv: Server, host: string, fallbackPort: number) => {
    const a = srv.address();
    const port = a !== null && typeof a === "object" ? a.port : fallbackPort;
    return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  };

  const stop = async (drainMs: number) => {
    ctx.draining = true;
    await watch?.stop();
    // No table comes any more: held requests get their answer now, not at the drain's end.
    holds.wakeAll();
    await ownActivator?.stop();
    await activateCall?.close();
    const serverClosed = closeServer(server);
    const meshClosed = mesh === undefined ? Promise.resolve() : closeServer(mesh);
    if (meshReload !== undefined) clearInterval(meshReload);
    // Node closes idle keep-alive connections on close(); busy ones finish their request.
    server.closeIdleConnections();
    mesh?.closeIdleConnections();
    const drained = await waitForIdle(drainMs);
    if (!drained) log.warn({ inflight, drainMs }, "drain time is up; cutting the requests still in flight");
    server.closeAllConnections();
    mesh?.closeAllConnections();
    await meshClosed;
    // Upgraded connections are no longer the server's: close them here.
    for (const socket of tunnels) socket.destroy();
    tunnels.clear();
    await serverClosed;
    const all = [...endpoints.values()].map((e) => e.pool);
    endpoints = new Map();
    await Promise.allSettled([...all.map((p) => (drained ? p.close() : p.destroy())), ...[...closingPools].map((p) => p.destroy())]);
    const adminClosed = closeServer(admin);
    admin.closeAllConnections();
    await adminClosed;
    // The drained requests' last spans go out, for two seconds at most.
    await tracing?.close();
    phase = "stopped";
    log.info({ drained }, "gateway stopped");
  };

  const waitForIdle = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (inflight === 0) return resolve(true);
      const timer = setTimeout(() => {
        onIdle = undefined;
        resolve(false);
      }, ms);
      onIdle = () => {
        clearTimeout(timer);
        onIdle = undefined;
        resolve(true);
      };
    });

  return {
    async start() {
      if (phase !== "new") throw new Error(`gateway.start() called while ${phase}`);
      phase = "starting";
      await mkdir(options.stateDir, { recursive: true });
      if (current === undefined) {
        const saved = await loadRoutingTable(options.stateDir, log);
        if (saved !== undefined) {
          setTable(saved);
          log.info({ version: saved.version }, "serving the saved routing table until the control plane answers");
        }
      }
      await listen(server, options.host, options.port, "gateway.port");
      try {
        await listen(admin, adminHost, options.adminPort, "gateway.adminPort");
      } catch (err) {
        await closeServer(server);
        phase = "stopped";
        throw err;
      }
      if (options.meshPort !== undefined) {
        try {
          if (options.meshTls !== undefined) {
            const dir = options.meshTls.dir;
            // `keelson up` starts the control plane and the gateway together: the control plane
            // writes the gateway's certificate, so it may not be there yet.
            const files = await waitForMeshTls(dir, options.meshTls.waitMs ?? 20_000);
            const tlsServer = createHttpsServer({ ...serverOptions, cert: files.cert, key: files.key, ca: files.ca, requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2" }, handleMesh);
            mesh = tlsServer;
            // Certificates are renewed in place: the next handshakes use the new ones, no restart.
            meshReload = setInterval(() => {
              readMeshTls(dir)
                .then((next) => {
                  if (next !== undefined) {
                    tlsServer.setSecureContext({ cert: next.cert, key: next.key, ca: next.ca });
                    log.info({ dir }, "mesh certificate reloaded");
                  }
                })
                .catch((err: unknown) => log.warn({ err, dir }, "reading the mesh certificate failed; keeping the current one"));
            }, options.meshTls.reloadIntervalMs ?? 30_000);
            meshReload.unref();
          } else {
            mesh = createServer(serverOptions, handleMesh);
          }
          mesh.on("clientError", (err: Error & { code?: string }, socket: Duplex) => handleClientError(err, socket, metrics));
          await listen(mesh, options.meshHost ?? options.host, options.meshPort, "gateway.meshPort");
        } catch (err) {
          await closeServer(server);
          await closeServer(admin);
          phase = "stopped";
          throw err;
        }
        mesh.on("error", (err) => log.error({ err }, "mesh listener error"));
      }
      server.on("error", (err) => log.error({ err }, "gateway listener error"));
      admin.on("error", (err) => log.error({ err }, "admin listener error"));
      if (options.controlPlaneUrl !== undefined) {
        watch = createRoutingWatch({
          controlPlaneUrl: options.controlPlaneUrl,
          stateDir: options.stateDir,
          ...(options.credentialFile === undefined ? {} : { credentialFile: options.credentialFile }),
          onTable: setTable,
          adminUrl: address(admin, adminHost, options.adminPort),
          onConnection: (connected) => metrics.controlPlaneConnected.set(connected ? 1 : 0),
          log,
          ...options.watch,
        });
        watch.start();
      }
      phase = "running";
      log.info({ url: address(server, options.host, options.port), adminUrl: address(admin, adminHost, options.adminPort) }, "gateway listening");
    },
    stop(opts = {}) {
      if (phase === "new" || phase === "stopped") {
        if (phase === "new") {
          void tracing?.close();
          void ownActivator?.stop();
          void activateCall?.close();
        }
        phase = "stopped";
        return stopping ?? Promise.resolve();
      }
      if (stopping === undefined) {
        phase = "stopping";
        stopping = stop(opts.drainMs ?? 10_000);
      }
      return stopping;
    },
    get url() {
      return address(server, options.host, options.port);
    },
    get adminUrl() {
      return address(admin, adminHost, options.adminPort);
    },
    get meshUrl() {
      if (mesh === undefined) return undefined;
      const url = address(mesh, options.meshHost ?? options.host, options.meshPort ?? 0);
      return options.meshTls === undefined ? url : url.replace(/^http:/, "https:");
    },
    setTable,
    table: () => current,
    state,
    stats: (windowSeconds) => liveStats.snapshot(windowSeconds),
    metrics,
  };
}

