// The gateway process's server: the public listener that proxies by the routing table, the
// admin listener (/healthz, /readyz, /metrics, /routes), one keep-alive Pool per endpoint, and
// the routing watch that keeps the table current.
import { mkdir } from "node:fs/promises";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { Pool } from "undici";
import type { RoutingTable } from "@keelson/protocol";
import { KeelsonError } from "@keelson/protocol";
import type { ErrorCode } from "@keelson/protocol";
import type { GatewayMetrics } from "./gateway-metrics.js";
import { createGatewayMetrics } from "./gateway-metrics.js";
import type { GatewayLogger } from "./logger.js";
import { silentLogger } from "./logger.js";
import type { ProxyContext, ProxyState, ServiceTarget, Upstream } from "./proxy-exchange.js";
import { handleProxyRequest } from "./proxy-exchange.js";
import { compileRoutes } from "./routing-table.js";
import type { RoutingWatch } from "./routing-watch.js";
import { createRoutingWatch, loadRoutingTable } from "./routing-watch.js";

export interface GatewayOptions {
  /** Public listener (manifest `gateway.host`, `gateway.port`); port 0 picks a free one. */
  host: string;
  port: number;
  /** Admin listener; kept apart from app routes. Defaults to 127.0.0.1. */
  adminHost?: string;
  adminPort: number;
  /** Folder for `routing.json` (the last table) and the pid file. */
  stateDir: string;
  /** Without it the gateway serves the saved table (or nothing) and never reconnects. */
  controlPlaneUrl?: string;
  /** Longest wait for an upstream's response headers, and longest silence inside its body (default 30 s). */
  upstreamTimeoutMs?: number;
  /** How long a client may take to send its request headers (node's `server.headersTimeout`, default 60 s). */
  headersTimeoutMs?: number;
  log?: GatewayLogger;
  /** Reconnect tuning of the routing watch (defaults: 250 ms doubling to 10 s, 45 s idle). */
  watch?: { initialBackoffMs?: number; maxBackoffMs?: number; idleTimeoutMs?: number };
  /** Collect node's default process metrics (default true). */
  processMetrics?: boolean;
}

export interface Gateway {
  /** Loads the saved table, binds both listeners and starts following the control plane. */
  start(): Promise<void>;
  /**
   * Stops accepting, lets in-flight requests finish for up to `drainMs` (default 10 s), then
   * cuts what is left and closes every pool.
   */
  stop(opts?: { drainMs?: number }): Promise<void>;
  /** Base URL of the public listener (its real port once started). */
  readonly url: string;
  readonly adminUrl: string;
  /** Serves this table from the next request on. Pools of unchanged endpoints are kept. */
  setTable(table: RoutingTable): void;
  table(): RoutingTable | undefined;
  /** The gateway's metrics registry and instruments. */
  readonly metrics: GatewayMetrics;
}

const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;
const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;
/** Node's default `requestTimeout` (whole request received); raised only if headersTimeout needs it. */
const NODE_REQUEST_TIMEOUT_MS = 300_000;

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
  const upstreamTimeoutMs = options.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  const headersTimeoutMs = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const adminHost = options.adminHost ?? "127.0.0.1";
  const metrics = createGatewayMetrics({ defaultMetrics: options.processMetrics ?? true });

  let current: RoutingTable | undefined;
  let pools = new Map<string, Upstream>();
  const closingPools = new Set<Pool>();
  let watch: RoutingWatch | undefined;
  let phase: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  let stopping: Promise<void> | undefined;
  let inflight = 0;
  let onIdle: (() => void) | undefined;

  const ctx: ProxyContext & { state: ProxyState | undefined; draining: boolean } = {
    state: undefined,
    draining: false,
    upstreamTimeoutMs,
    metrics,
    log,
    requestStarted() {
      inflight++;
    },
    requestFinished() {
      inflight--;
      if (inflight === 0 && onIdle !== undefined) onIdle();
    },
  };

  const poolFor = (replicaId: string, url: string): Upstream | undefined => {
    const key = `${replicaId} ${url}`;
    const existing = pools.get(key);
    if (existing !== undefined) return existing;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      log.warn({ replicaId, url }, "skipping an endpoint whose URL is not valid");
      return undefined;
    }
    const pool = new Pool(parsed.origin, {
      pipelining: 1,
      // Idle upstream sockets live 4 s unless the replica's Keep-Alive hint says otherwise
      // (minus 1 s, so the gateway gives a socket up before the replica closes it).
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      keepAliveTimeoutThreshold: 1_000,
      connectTimeout: Math.min(upstreamTimeoutMs, 10_000),
      headersTimeout: upstreamTimeoutMs,
      bodyTimeout: upstreamTimeoutMs,
    });
    pool.on("connectionError", (_origin, _targets, err) => log.debug({ replicaId, url, err: err.message }, "cannot connect to replica"));
    const path = parsed.pathname.replace(/\/+$/, "");
    return { key, replicaId, pool, basePath: path };
  };

  const closePool = (upstream: Upstream) => {
    closingPools.add(upstream.pool);
    // close() lets requests already on the pool finish; only new ones are refused.
    upstream.pool
      .close()
      .catch((err: unknown) => log.warn({ replicaId: upstream.replicaId, err }, "closing a replica's pool failed"))
      .finally(() => closingPools.delete(upstream.pool));
  };

  const setTable = (table: RoutingTable) => {
    if (phase === "stopping" || phase === "stopped") return;
    const next = new Map<string, Upstream>();
    const services = new Map<string, ServiceTarget>();
    for (const s of table.services) {
      const upstreams: Upstream[] = [];
      for (const e of s.endpoints) {
        const upstream = next.get(`${e.replicaId} ${e.url}`) ?? poolFor(e.replicaId, e.url);
        if (upstream === undefined) continue;
        next.set(upstream.key, upstream);
        upstreams.push(upstream);
      }
      const previous = ctx.state?.services.get(s.name);
      services.set(s.name, { name: s.name, upstreams, cursor: previous?.cursor ?? 0, stats: metrics.statsFor(s.name) });
    }
    const matcher = compileRoutes(table);
    for (const [key, upstream] of pools) if (!next.has(key)) closePool(upstream);
    pools = next;
    current = table;
    ctx.state = { matcher, services };
    metrics.tableVersion.set(table.version);
  };

  const server: Server = createServer(
    {
      headersTimeout: headersTimeoutMs,
      requestTimeout: Math.max(NODE_REQUEST_TIMEOUT_MS, headersTimeoutMs),
    },
    (req, res) => handleProxyRequest(ctx, req, res),
  );
  const admin: Server = createServer((req, res) => {
    handleAdmin(req, res).catch((err: unknown) => {
      log.error({ err }, "admin request failed");
      if (!res.headersSent) sendError(res, 500, "KEELSON_ERR_INTERNAL", "admin request failed");
      else res.destroy();
    });
  });

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
      default:
        sendError(res, 404, "KEELSON_ERR_NOT_FOUND", `no admin endpoint ${path}; try /healthz, /readyz, /metrics or /routes`);
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
    const serverClosed = closeServer(server);
    // Node closes idle keep-alive connections on close(); busy ones finish their request.
    server.closeIdleConnections();
    const drained = await waitForIdle(drainMs);
    if (!drained) log.warn({ inflight, drainMs }, "drain time is up; cutting the requests still in flight");
    server.closeAllConnections();
    await serverClosed;
    const all = [...pools.values()].map((u) => u.pool);
    pools = new Map();
    await Promise.allSettled([...all.map((p) => (drained ? p.close() : p.destroy())), ...[...closingPools].map((p) => p.destroy())]);
    const adminClosed = closeServer(admin);
    admin.closeAllConnections();
    await adminClosed;
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
      server.on("error", (err) => log.error({ err }, "gateway listener error"));
      admin.on("error", (err) => log.error({ err }, "admin listener error"));
      if (options.controlPlaneUrl !== undefined) {
        watch = createRoutingWatch({
          controlPlaneUrl: options.controlPlaneUrl,
          stateDir: options.stateDir,
          onTable: setTable,
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
    setTable,
    table: () => current,
    metrics,
  };
}

function listen(server: Server, host: string, port: number, field: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      if (err.code === "EADDRINUSE") {
        reject(new KeelsonError("KEELSON_ERR_PORT_IN_USE", `${field}: ${host}:${port} is already in use`, { details: { host, port }, cause: err }));
      } else if (err.code === "EACCES" || err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND") {
        reject(new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${field}: cannot listen on ${host}:${port} (${err.code})`, { details: { host, port }, cause: err }));
      } else {
        reject(err);
      }
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(port, host);
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(res.req.method === "HEAD" ? undefined : text);
}

function sendError(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  sendJson(res, status, new KeelsonError(code, message).toBody());
}
