// The service-to-service client: every call goes to the gateway with the target service in
// a header, so routing, retries, policy and traces apply to each hop; the current request's
// id and trace context (a client span's traceparent) travel along, so one user action can be
// followed across services in the logs and in the traces. Each call carries the service's
// identity: its token in a header, and over an https: gateway URL its client certificate.
import { CALLER_SERVICE_HEADER, IDENTITY_HEADER, REPLICA_ENV, REQUEST_ID_HEADER, TARGET_SERVICE_HEADER } from "@keelson/protocol";
import { defaultIdentity } from "./identity.js";
import type { Identity } from "./identity.js";
import { createLogger } from "./logger.js";
import type { Logger } from "./logger.js";
import { currentRequest } from "./request-context.js";
import { defaultTracing, endClientSpan, startClientSpan } from "./tracing.js";
import type { Tracing } from "./tracing.js";
import type * as Undici from "undici";

export interface ClientOptions {
  /** Defaults to $KEELSON_GATEWAY_URL, then (with a warning) http://127.0.0.1:8080. */
  gatewayUrl?: string;
  /** This service's name, sent as the caller; defaults to $KEELSON_SERVICE. */
  self?: string;
  /** Per-call timeout for the whole exchange, body included; defaults to 5000 ms. */
  timeoutMs?: number;
  logger?: Logger;
  /**
   * Injectable for tests; defaults to the global fetch, or undici's fetch with the identity's
   * client certificate for an https: gateway URL (a fetch given here gets no certificate).
   */
  fetch?: typeof fetch;
  /** Whose identity calls carry; defaults to defaultIdentity(). `false` sends none. */
  identity?: Identity | false;
  /** Where call spans go; defaults to defaultTracing(). `false` makes no spans and sends no traceparent. */
  tracing?: Tracing | false;
}

export interface CallInit extends RequestInit {
  /** Overrides the client's timeout for this call. */
  timeoutMs?: number;
  /** A value to send as a JSON body (sets content-type); takes the place of `body`. */
  json?: unknown;
}

export interface ServiceClient {
  /** Calls `service` at `path` (which must start with "/") and returns the answer whatever its status. */
  call(service: string, path: string, init?: CallInit): Promise<Response>;
  /** Calls and parses the JSON answer; a non-2xx answer rejects with a ServiceCallError. */
  json<T = unknown>(service: string, path: string, init?: CallInit): Promise<T>;
}

/** A call that failed: no answer (network error, timeout) or, from json(), a non-2xx answer. */
export class ServiceCallError extends Error {
  readonly service: string;
  readonly method: string;
  readonly path: string;
  /** The answer's status; undefined when there was no answer. */
  readonly status: number | undefined;
  /** The answer's body: parsed JSON when it was JSON, else the text. */
  readonly body: unknown;
  /** The `error.code` of a `{ error: { code } }` body, when there is one. */
  readonly code: string | undefined;
  readonly timedOut: boolean;

  constructor(init: {
    service: string;
    method: string;
    path: string;
    status?: number | undefined;
    body?: unknown;
    timedOut?: boolean;
    message: string;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "ServiceCallError";
    this.service = init.service;
    this.method = init.method;
    this.path = init.path;
    this.status = init.status;
    this.body = init.body;
    this.code = errorField(init.body, "code");
    this.timedOut = init.timedOut ?? false;
  }
}

const DEFAULT_TIMEOUT_MS = 5000;
const FALLBACK_GATEWAY = "http://127.0.0.1:8080";

/**
 * Creates a client for calling other services through the gateway.
 *
 * @example
 * const client = createClient();
 * const stock = await client.json<{ items: Item[] }>("inventory", "/api/inventory");
 * await client.json("payments", "/charges", { method: "POST", json: { orderId, amount, card } });
 */
export function createClient(options: ClientOptions = {}): ServiceClient {
  const log = options.logger ?? createLogger();
  const gateway = resolveGateway(options.gatewayUrl ?? process.env[REPLICA_ENV.GATEWAY_URL], log);
  const self = options.self ?? process.env[REPLICA_ENV.SERVICE];
  const defaultTimeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const identity = options.identity === false ? undefined : (options.identity ?? defaultIdentity());
  const doFetch = options.fetch ?? (gateway.startsWith("https:") && identity?.tls ? mtlsFetch(identity) : (input, init) => fetch(input, init));
  const tracing = options.tracing === false ? undefined : (options.tracing ?? defaultTracing());

  const call = async (service: string, path: string, init: CallInit = {}): Promise<Response> => {
    if (!path.startsWith("/")) throw new TypeError(`call(${JSON.stringify(service)}, ${JSON.stringify(path)}): path must start with "/"`);
    const { timeoutMs = defaultTimeout, json: jsonBody, signal, ...rest } = init;
    const method = (rest.method ?? (jsonBody === undefined ? "GET" : "POST")).toUpperCase();
    const headers = new Headers(rest.headers);
    headers.set(TARGET_SERVICE_HEADER, service);
    // Only the service's own identity goes out, never one the app copied from elsewhere.
    headers.delete(IDENTITY_HEADER);
    for (const [name, value] of Object.entries(identity?.identityHeaders() ?? {})) headers.set(name, value);
    if (self !== undefined && self !== "" && !headers.has(CALLER_SERVICE_HEADER)) headers.set(CALLER_SERVICE_HEADER, self);
    const requestId = currentRequest()?.requestId;
    if (requestId !== undefined && !headers.has(REQUEST_ID_HEADER)) headers.set(REQUEST_ID_HEADER, requestId);
    let body = rest.body;
    if (jsonBody !== undefined) {
      body = JSON.stringify(jsonBody);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
    }
    const span = tracing ? startClientSpan(tracing, { service, method, path: path.split("?")[0] as string, headers }) : undefined;
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      const res = await doFetch(gateway + path, {
        ...rest,
        method,
        headers,
        body,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      // Ends when the answer's head arrives: the caller may read the body much later, or never.
      if (span) endClientSpan(span, { status: res.status });
      return res;
    } catch (err) {
      const timedOut = timeout.aborted;
      if (span) endClientSpan(span, { error: err, timedOut });
      throw new ServiceCallError({
        service,
        method,
        path,
        timedOut,
        message: timedOut
          ? `${service} ${method} ${path}: no answer within ${timeoutMs} ms`
          : `${service} ${method} ${path}: ${describe(err)}`,
        cause: err,
      });
    }
  };

  const json = async <T>(service: string, path: string, init: CallInit = {}): Promise<T> => {
    const headers = new Headers(init.headers);
    if (!headers.has("accept")) headers.set("accept", "application/json");
    const res = await call(service, path, { ...init, headers });
    const method = (init.method ?? (init.json === undefined ? "GET" : "POST")).toUpperCase();
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new ServiceCallError({ service, method, path, status: res.status, message: `${service} ${method} ${path}: reading the answer failed: ${describe(err)}`, cause: err, timedOut: isTimeout(err) });
    }
    const parsed = parseJson(text);
    if (!res.ok) {
      const body = parsed.ok ? parsed.value : text;
      const code = errorField(body, "code");
      const message = errorField(body, "message") ?? (text.slice(0, 200) || res.statusText);
      throw new ServiceCallError({ service, method, path, status: res.status, body, message: `${service} ${method} ${path} answered ${res.status}${code ? ` ${code}` : ""}: ${message}` });
    }
    if (text === "") return undefined as T;
    if (!parsed.ok) {
      throw new ServiceCallError({ service, method, path, status: res.status, body: text, message: `${service} ${method} ${path} answered ${res.status} with a body that is not JSON` });
    }
    return parsed.value as T;
  };

  return { call, json };
}

/** undici's fetch with the identity's client certificate (global fetch with a userland Agent is fragile). */
function mtlsFetch(identity: Identity): typeof fetch {
  let undici: Promise<typeof Undici> | undefined;
  return async (input, init) => {
    const [{ fetch: undiciFetch }, dispatcher] = await Promise.all([(undici ??= import("undici")), identity.dispatcher()]);
    const res = await undiciFetch(input as Parameters<typeof undiciFetch>[0], { ...(init as Parameters<typeof undiciFetch>[1]), ...(dispatcher === undefined ? {} : { dispatcher }) });
    // Same shape as the global Response (both are undici's), only another class.
    return res as unknown as Response;
  };
}

function resolveGateway(value: string | undefined, log: Logger): string {
  if (value === undefined || value === "") {
    log.warn(`$${REPLICA_ENV.GATEWAY_URL} is not set; calling the gateway at ${FALLBACK_GATEWAY}`);
    return FALLBACK_GATEWAY;
  }
  try {
    const url = new URL(value);
    // Keep a base path if there is one; calls append their own path to it.
    return url.href.replace(/\/+$/, "");
  } catch {
    log.warn(`$${REPLICA_ENV.GATEWAY_URL} is not a URL (${JSON.stringify(value)}); calling the gateway at ${FALLBACK_GATEWAY}`);
    return FALLBACK_GATEWAY;
  }
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

function errorField(body: unknown, field: "code" | "message"): string | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const error = (body as { error?: unknown }).error;
  if (typeof error !== "object" || error === null) return undefined;
  const value = (error as Record<string, unknown>)[field];
  return typeof value === "string" ? value : undefined;
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && err.name === "TimeoutError";
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // fetch hides the useful part ("ECONNREFUSED 127.0.0.1:8080") in the cause.
  const cause = err.cause instanceof Error ? `: ${(err.cause as Error & { code?: string }).code ?? err.cause.message}` : "";
  return `${err.message}${cause}`;
}
