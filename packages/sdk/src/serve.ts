// serve(): runs a service's HTTP handler the way Keelson expects a replica to behave:
// listens on $PORT, answers readiness and liveness probes, gives every request a context
// with its request id and a server span, answers errors as JSON, and drains gracefully
// on SIGTERM/SIGINT. For a service with `tls: true` it serves HTTPS with the replica's
// certificate and lets in only the gateway and the control plane.
import { X509Certificate, randomUUID } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { context } from "@opentelemetry/api";
import { CALLER_SERVICE_HEADER, CONTROL_PLANE_SERVICE_NAME, GATEWAY_SERVICE_NAME, KeelsonError, REPLICA_ENV, REQUEST_ID_HEADER } from "@keelson/protocol";
import { createLogger } from "./logger.js";
import type { Logger } from "./logger.js";
import { runWithRequestContext } from "./request-context.js";
import { HttpError, json, sendHttpError } from "./respond.js";
import { defaultTracing, endServerSpan, startServerSpan } from "./tracing.js";
import type { Tracing } from "./tracing.js";

/** A request handler; a thrown or rejected error becomes a JSON error answer. */
export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface ServeOptions {
  handler: Handler;
  /** Defaults to $PORT; 0 picks a free port. */
  port?: number;
  /** Defaults to 127.0.0.1. */
  host?: string;
  /** Defaults to "/ready". */
  readinessPath?: string;
  /** Defaults to "/healthz". */
  livenessPath?: string;
  /** Whether the service can take traffic; the readiness probe answers 503 while it says no. */
  ready?: () => boolean | Promise<boolean>;
  /** Runs after the last request has finished (close databases, flush buffers). */
  onShutdown?: () => Promise<void>;
  /** How long to wait for in-flight requests when shutting down; defaults to 5000 ms. */
  shutdownTimeoutMs?: number;
  logger?: Logger;
  /** Log one line per request (method, path, status, duration), probes left out; defaults to true. */
  accessLog?: boolean;
  /** Signals that start a graceful shutdown and then exit; defaults to SIGTERM and SIGINT, [] for none. */
  signals?: readonly NodeJS.Signals[];
  /** Called with the exit code after a signal-initiated shutdown; defaults to process.exit. */
  exit?: (code: number) => void;
  /**
   * Where request spans go; defaults to defaultTracing() (from $KEELSON_OTLP_ENDPOINT).
   * `false` makes no spans and ignores an incoming traceparent. Probes are never traced.
   */
  tracing?: Tracing | false;
  /**
   * Serve HTTPS with cert.pem, key.pem and ca.pem from `dir`, requiring a client certificate of
   * the project's CA that is the gateway's or the control plane's; the files are checked for
   * changes every `checkMs` (default 5000) and new connections use renewed ones. Defaults to
   * `{ dir: $KEELSON_TLS_DIR }` when $KEELSON_TLS_SERVE is "1" (a service with `tls: true`), else
   * plain HTTP; `false` forces plain HTTP.
   */
  tls?: ServeTls | false;
}

export interface ServeTls {
  dir: string;
  checkMs?: number;
}

export interface ServiceHandle {
  /** Base URL, e.g. http://127.0.0.1:41234 (https: when serving TLS) */
  readonly url: string;
  readonly port: number;
  /**
   * Shuts down gracefully (readiness 503, stop accepting, drain, onShutdown) without exiting
   * the process. Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5000;
/** Request ids we take from the caller: visible ASCII, bounded, so they are safe to log and echo. */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * Starts the service's HTTP server.
 *
 * @example
 * const router = createRouter().get("/api/hello", ({ res }) => json(res, 200, { hello: "world" }));
 * await serve({ handler: router.handle, onShutdown: () => db.close() });
 */
export async function serve(options: ServeOptions): Promise<ServiceHandle> {
  const log = options.logger ?? createLogger();
  const port = resolvePort(options.port);
  const host = options.host ?? "127.0.0.1";
  const readinessPath = options.readinessPath ?? "/ready";
  const livenessPath = options.livenessPath ?? "/healthz";
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const signals = options.signals ?? ["SIGTERM", "SIGINT"];
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const accessLog = options.accessLog ?? true;
  const tracing = options.tracing === false ? undefined : (options.tracing ?? defaultTracing());

  let started = false;
  let draining = false;
  /** Requests for the handler, which shutdown waits for. */
  const inFlight = new Set<ServerResponse>();
  /** Every unfinished response, probes included. */
  const openResponses = new Set<ServerResponse>();
  let onIdle: (() => void) | undefined;
  let readyFailureLogged = false;

  const answerReadiness = async (res: ServerResponse) => {
    res.setHeader("cache-control", "no-store");
    if (draining) return json(res, 503, { status: "draining" });
    if (!started) return json(res, 503, { status: "starting" });
    let ok = true;
    if (options.ready) {
      try {
        ok = await options.ready();
        readyFailureLogged = false;
      } catch (err) {
        ok = false;
        // Probes come every half second; one line per failure streak is enough.
        if (!readyFailureLogged) log.warn("ready() threw; answering 503", { err });
        readyFailureLogged = true;
      }
    }
    // Shutdown may have started while ready() was running.
    if (draining) return json(res, 503, { status: "draining" });
    json(res, ok ? 200 : 503, { status: ok ? "ready" : "unready" });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    // Tell keep-alive clients not to reuse this connection once we are on our way out.
    if (draining) res.setHeader("connection", "close");
    openResponses.add(res);
    res.once("close", () => {
      openResponses.delete(res);
      // The connection becomes idle only after this event; close it once it has, so it
      // cannot hold the shutdown until its keep-alive timeout.
      if (draining) setImmediate(() => server.closeIdleConnections());
    });
    const path = pathOf(req.url);
    if (path === readinessPath) return answerReadiness(res);
    if (path === livenessPath) {
      // Alive while draining too: a liveness failure would get the replica killed mid-drain.
      res.setHeader("cache-control", "no-store");
      return json(res, 200, { status: "alive" });
    }

    const requestId = pickRequestId(req.headers[REQUEST_ID_HEADER]);
    const callerHeader = req.headers[CALLER_SERVICE_HEADER];
    const caller = typeof callerHeader === "string" && callerHeader !== "" ? callerHeader : undefined;
    res.setHeader(REQUEST_ID_HEADER, requestId);

    const startedAt = performance.now();
    const method = (req.method ?? "GET").toUpperCase();
    const traced = tracing ? startServerSpan(tracing, { method, path, headers: req.headers, caller, port: req.socket.localPort ?? 0 }) : undefined;
    const spanContext = traced?.span.spanContext();
    let failure: unknown;
    inFlight.add(res);
    res.once("close", () => {
      inFlight.delete(res);
      if (traced) endServerSpan(traced.span, res.writableFinished ? res.statusCode : undefined, failure);
      if (accessLog) {
        // Runs outside the request's async context, so the request and trace ids are passed along explicitly.
        log.info("request", {
          requestId,
          traceId: spanContext?.traceId,
          spanId: spanContext?.spanId,
          caller,
          method: req.method,
          path,
          status: res.writableFinished ? res.statusCode : undefined,
          aborted: res.writableFinished ? undefined : true,
          durationMs: Math.round((performance.now() - startedAt) * 10) / 10,
        });
      }
      if (draining && inFlight.size === 0) onIdle?.();
    });

    const run = () =>
      runWithRequestContext(
        { requestId, caller },
        async () => {
          try {
            await options.handler(req, res);
          } catch (err) {
            // A 4xx HttpError is an answer, not a failure worth an exception on the span.
            if (!(err instanceof HttpError && err.status < 500)) failure = err;
            answerError(req, res, err, requestId, log);
          }
        },
        traced?.span,
      );
    // The OpenTelemetry context too, so spans the handler starts itself nest under this one.
    await (traced ? context.with(traced.context, run) : run());
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      // Only reached if answering itself failed; the process must keep serving others.
      log.error("request handling failed", { err });
      res.destroy();
    });
  };
  const tlsConfig = resolveTls(options.tls);
  const tls = tlsConfig === undefined ? undefined : watchTlsFiles(tlsConfig, log);
  const server: Server | HttpsServer =
    tls === undefined
      ? createServer(onRequest)
      : createHttpsServer({ ...tls.files(), requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2" }, onRequest);
  if (tls !== undefined) {
    const https = server as HttpsServer;
    tls.start(https);
    // The CA vouches for every service; only the gateway and the control plane may call a replica.
    https.on("secureConnection", (socket: TLSSocket) => {
      const peer = peerSpiffeId(socket);
      if (peer !== undefined && tls.allowed(peer)) return;
      log.warn("refused a TLS client that is neither the gateway nor the control plane", { peer: peer ?? "(no SPIFFE id)", remote: socket.remoteAddress });
      socket.destroy();
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  }).catch((err: unknown) => {
    tls?.stop();
    if ((err as { code?: unknown }).code === "EADDRINUSE") {
      throw new KeelsonError("KEELSON_ERR_PORT_IN_USE", `port ${port} on ${host} is already in use`, { cause: err });
    }
    throw err;
  });
  server.on("error", (err) => log.error("server error", { err }));

  const address = server.address();
  const boundPort = typeof address === "object" && address !== null ? address.port : port;
  const url = `${tls === undefined ? "http" : "https"}://${urlHost(host)}:${boundPort}`;
  started = true;
  log.info("listening", { url });

  const waitForIdle = (ms: number): Promise<boolean> => {
    if (inFlight.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
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
  };

  const drain = async () => {
    draining = true;
    const deadline = Date.now() + shutdownTimeoutMs;
    log.info("shutting down", { inFlight: inFlight.size, timeoutMs: shutdownTimeoutMs });
    for (const res of openResponses) if (!res.headersSent) res.setHeader("connection", "close");
    tls?.stop();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    if (!(await waitForIdle(shutdownTimeoutMs))) {
      log.warn("shutdown timeout reached; closing unfinished requests", { inFlight: inFlight.size });
      server.closeAllConnections();
    }
    // A connection that went idle without us noticing must not hold the exit until its keep-alive timeout.
    const leftover = setTimeout(() => server.closeAllConnections(), Math.max(0, deadline - Date.now()));
    await closed;
    clearTimeout(leftover);
    if (options.onShutdown) await options.onShutdown();
    // Flushed, not shut down: the tracing may be shared with a client or another server.
    if (tracing) await tracing.forceFlush();
    log.info("shut down");
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= drain().finally(() => {
      for (const signal of signals) process.off(signal, onSignal);
    });
    return closing;
  };

  function onSignal(signal: NodeJS.Signals): void {
    if (closing) {
      // A second Ctrl-C means "now".
      log.warn("second signal during shutdown; exiting at once", { signal });
      exit(1);
      return;
    }
    log.info("signal received", { signal });
    close().then(
      () => exit(0),
      (err: unknown) => {
        log.error("shutdown failed", { err });
        exit(1);
      },
    );
  }
  for (const signal of signals) process.on(signal, onSignal);

  return { url, port: boundPort, close };
}

function answerError(req: IncomingMessage, res: ServerResponse, err: unknown, requestId: string, log: Logger): void {
  if (err instanceof HttpError && err.status < 500) {
    log.info("request rejected", { method: req.method, path: pathOf(req.url), status: err.status, code: err.code });
  } else {
    log.error("request failed", { method: req.method, path: pathOf(req.url), err });
  }
  if (res.headersSent) {
    // Part of the answer is out; cutting the connection is the only honest signal left.
    if (!res.writableEnded) res.destroy();
    return;
  }
  if (err instanceof HttpError) return sendHttpError(res, err);
  // The error's own message may carry internals; the request id lets an operator find it in the logs.
  json(res, 500, { error: { code: "INTERNAL", message: `internal error (request id ${requestId})` } });
}

/** The TLS folder to serve with: the option, else $KEELSON_TLS_DIR when $KEELSON_TLS_SERVE is "1". */
function resolveTls(option: ServeTls | false | undefined): ServeTls | undefined {
  if (option === false) return undefined;
  if (option !== undefined) return option;
  const dir = process.env[REPLICA_ENV.TLS_DIR];
  return process.env[REPLICA_ENV.TLS_SERVE] === "1" && dir !== undefined && dir.trim() !== "" ? { dir } : undefined;
}

const TLS_FILES = ["cert.pem", "key.pem", "ca.pem"] as const;
const DEFAULT_TLS_CHECK_MS = 5000;

interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/**
 * The replica's certificate files: read now (a server fails fast when it cannot serve what it was
 * asked to), then checked every `checkMs` and handed to `setSecureContext` when they changed.
 */
function watchTlsFiles(config: ServeTls, log: Logger) {
  const stampOf = () => TLS_FILES.map((name) => statSync(join(config.dir, name)).mtimeMs).join(",");
  const read = (): TlsFiles & { trustDomain: string | undefined } => {
    const [cert, key, ca] = TLS_FILES.map((name) => readFileSync(join(config.dir, name), "utf8")) as [string, string, string];
    return { cert, key, ca, trustDomain: trustDomainOf(cert) };
  };
  let stamp: string;
  let current: ReturnType<typeof read>;
  try {
    stamp = stampOf();
    current = read();
  } catch (err) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `serve(): cannot read the TLS files (cert.pem, key.pem, ca.pem) in ${config.dir}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  let timer: NodeJS.Timeout | undefined;
  let failing = false;
  return {
    files: (): TlsFiles => ({ cert: current.cert, key: current.key, ca: current.ca }),
    /** Whether a client with this SPIFFE id may call: the gateway or the control plane of our trust domain. */
    allowed(id: string): boolean {
      const td = current.trustDomain;
      return td !== undefined && (id === `spiffe://${td}/${GATEWAY_SERVICE_NAME}` || id === `spiffe://${td}/${CONTROL_PLANE_SERVICE_NAME}`);
    },
    start(server: HttpsServer): void {
      timer = setInterval(() => {
        try {
          const next = stampOf();
          if (next === stamp) return;
          const files = read();
          server.setSecureContext({ cert: files.cert, key: files.key, ca: files.ca });
          stamp = next;
          current = files;
          failing = false;
          log.info("TLS certificate reloaded", { dir: config.dir });
        } catch (err) {
          // Mid-renewal or briefly unreadable: keep serving with the current certificate.
          if (!failing) log.warn("reading the TLS files failed; keeping the current certificate", { dir: config.dir, err });
          failing = true;
        }
      }, config.checkMs ?? DEFAULT_TLS_CHECK_MS);
      timer.unref();
    },
    stop(): void {
      clearInterval(timer);
    },
  };
}

/** The trust domain of our own certificate's SPIFFE id (spiffe://<trustDomain>/<service>). */
function trustDomainOf(certPem: string): string | undefined {
  const id = spiffeIdOf(new X509Certificate(certPem).subjectAltName);
  return id === undefined ? undefined : /^spiffe:\/\/([^/]+)\//.exec(id)?.[1];
}

function peerSpiffeId(socket: TLSSocket): string | undefined {
  return spiffeIdOf(socket.getPeerCertificate().subjectaltname);
}

/** The one spiffe:// URI SAN of a certificate (node's "URI:spiffe://a/b, DNS:localhost" form). */
function spiffeIdOf(san: string | undefined): string | undefined {
  if (typeof san !== "string") return undefined;
  const ids = san
    .split(", ")
    .filter((entry) => entry.startsWith("URI:spiffe://"))
    .map((entry) => entry.slice(4));
  return ids.length === 1 ? ids[0] : undefined;
}

function resolvePort(port: number | undefined): number {
  const fromEnv = process.env[REPLICA_ENV.PORT];
  const value = port ?? (fromEnv === undefined || fromEnv.trim() === "" ? Number.NaN : Number(fromEnv));
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    throw new KeelsonError(
      "KEELSON_ERR_INVALID_INPUT",
      port === undefined
        ? `serve(): $${REPLICA_ENV.PORT} must be a port number 0-65535 (${fromEnv === undefined ? "it is not set" : `got ${JSON.stringify(fromEnv)}`}); set it or pass options.port`
        : `serve(): options.port must be a port number 0-65535, got ${String(port)}`,
    );
  }
  return value;
}

function pickRequestId(header: string | string[] | undefined): string {
  return typeof header === "string" && REQUEST_ID.test(header) ? header : randomUUID();
}

/** The path of a request target without its query string. */
function pathOf(url: string | undefined): string {
  const target = url ?? "/";
  const q = target.indexOf("?");
  return q === -1 ? target : target.slice(0, q);
}

function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}
