// The one error type of Keelson: a stable code from a single table that also gives
// the HTTP status and a message template. docs/errors.md is kept in sync by a test.

/** Every error Keelson reports, with its HTTP status and what it means. */
export const ERRORS = {
  KEELSON_ERR_MANIFEST_NOT_FOUND: { status: 404, summary: "No keelson.yaml was found where one was expected." },
  KEELSON_ERR_MANIFEST_INVALID: { status: 422, summary: "The manifest is not valid YAML or does not match the schema; every problem is listed with its place." },
  KEELSON_ERR_TEMPLATE_INVALID: { status: 422, summary: "A service template (its template.yaml or one of its files) is malformed: a bad variable definition, an unknown or unclosed placeholder; every problem is listed with its file and line, and nothing was written." },
  KEELSON_ERR_INVALID_INPUT: { status: 400, summary: "A request or command argument is malformed." },
  KEELSON_ERR_NOT_FOUND: { status: 404, summary: "The named object (service, release, replica, route) does not exist." },
  KEELSON_ERR_CONFLICT: { status: 409, summary: "The change conflicts with the current state (for example another apply is running)." },
  KEELSON_ERR_PORT_IN_USE: { status: 409, summary: "A port Keelson needs is already taken by another process." },
  KEELSON_ERR_STORE: { status: 500, summary: "The state store failed to read or write; nothing was half-written." },
  KEELSON_ERR_STORE_MIGRATION: { status: 500, summary: "The state store's schema is newer than this Keelson, or a migration failed." },
  KEELSON_ERR_PIPELINE_FAILED: { status: 422, summary: "A stage of a service's pipeline failed or hit its timeout; no release was made. The stage's last log lines are attached." },
  KEELSON_ERR_ARTIFACT_INVALID: { status: 422, summary: "A release's artifact folder is missing or its content no longer matches the hash recorded when it was built; it is not started." },
  KEELSON_ERR_ROLLOUT_FAILED: { status: 422, summary: "A rollout did not complete (replicas never became ready, or it timed out or was aborted); the previous release kept or took back the traffic." },
  KEELSON_ERR_START_FAILED: { status: 422, summary: "A replica could not be started, exited at once, or never became ready." },
  KEELSON_ERR_RUNTIME: { status: 500, summary: "The runtime driver failed to start, stop or inspect a replica." },
  KEELSON_ERR_CONTROL_PLANE_UNREACHABLE: { status: 503, summary: "The control plane did not answer." },
  KEELSON_ERR_NO_LEADER: { status: 503, summary: "No control-plane instance leads right now (an election is under way, or the store is unreachable), so the request cannot be carried out; retry after the time in the retry-after header." },
  KEELSON_ERR_NO_ROUTE: { status: 404, summary: "The gateway has no route for the request's host and path." },
  KEELSON_ERR_NO_ENDPOINT: { status: 503, summary: "The service has no ready replica to take the request." },
  KEELSON_ERR_FAULT_INJECTED: { status: 503, summary: "The gateway answered with an error injected on purpose by a chaos experiment (`keelson chaos error`); `keelson chaos list` shows what runs." },
  KEELSON_ERR_UPSTREAM: { status: 502, summary: "The upstream replica failed: connection refused or reset, or an invalid response." },
  KEELSON_ERR_UPSTREAM_TIMEOUT: { status: 504, summary: "The upstream replica did not answer in time." },
  KEELSON_ERR_METRICS_UNAVAILABLE: { status: 503, summary: "The metrics source (the control plane's own store or Prometheus) did not answer or rejected the query." },
  KEELSON_ERR_CIRCUIT_OPEN: { status: 503, summary: "The service's circuit breaker is open after too many failures; retry after the time in the retry-after header." },
  KEELSON_ERR_OVERLOADED: { status: 503, summary: "The service already has as many requests in flight and waiting as its bulkhead allows; retry after the time in the retry-after header." },
  KEELSON_ERR_RATE_LIMITED: { status: 429, summary: "The route's rate limit is used up; retry after the time in the retry-after header." },
  KEELSON_ERR_PAYLOAD_TOO_LARGE: { status: 413, summary: "The request body is larger than the route allows (maxBodySize)." },
  KEELSON_ERR_HEADERS_TOO_LARGE: { status: 431, summary: "The request headers are larger than the gateway accepts." },
  KEELSON_ERR_REQUEST_TIMEOUT: { status: 408, summary: "The client took too long to send its request headers or body." },
  KEELSON_ERR_UNAUTHENTICATED: { status: 401, summary: "The request carries no valid credential: no bearer token, or one that is unknown, expired, revoked or malformed." },
  KEELSON_ERR_FORBIDDEN: { status: 403, summary: "The caller is known but may not do this: its role, its teams or the target service's call policy do not allow it." },
  KEELSON_ERR_SECURITY_GATE: { status: 422, summary: "The pipeline's security stage found what the project's security policy blocks (a secret in the code, a vulnerable dependency, a disallowed license); no release was made. The findings are attached." },
  KEELSON_ERR_VAULT: { status: 500, summary: "The secrets vault could not decrypt or encrypt: the master key is missing, wrong or has unsafe permissions." },
  KEELSON_ERR_INTERNAL: { status: 500, summary: "An unexpected error; please report it with the logs." },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** The JSON shape of every API error answer: `{ error: { code, message, details } }`. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

/**
 * A Keelson error with a stable code.
 *
 * @example
 * throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `service "orders" does not exist`);
 */
export class KeelsonError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KeelsonError";
    this.code = code;
    this.details = options.details;
  }

  /** The HTTP status this error answers with. */
  get status(): number {
    return ERRORS[this.code].status;
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) } };
  }

  /** Rebuilds an error from an API answer body, or undefined when the body is not one. */
  static fromBody(body: unknown): KeelsonError | undefined {
    if (typeof body !== "object" || body === null || !("error" in body)) return undefined;
    const e = (body as { error: unknown }).error;
    if (typeof e !== "object" || e === null) return undefined;
    const { code, message, details } = e as { code?: unknown; message?: unknown; details?: unknown };
    if (typeof code !== "string" || !(code in ERRORS) || typeof message !== "string") return undefined;
    return new KeelsonError(code as ErrorCode, message, { details });
  }
}

export function isKeelsonError(e: unknown): e is KeelsonError {
  return e instanceof KeelsonError;
}
