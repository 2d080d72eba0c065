// Calls to the control-plane API from the browser, with the bearer token the user logged in with.
import type { KeelsonEvent, StatusReport } from "@keelson/protocol";

const TOKEN_KEY = "keelson.token";

/** The API refused the token (401): the app goes back to the login screen. */
export class UnauthorizedError extends Error {
  override readonly name = "UnauthorizedError";
}

/** Any other failed call, with the API's error code, message and details when it sent them. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | undefined,
    /** The error's `details` (e.g. a flag's validation issues, each with its path). */
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** The token kept for this browser tab only (sessionStorage: gone when the tab closes). */
export const tokenStore = {
  get(): string | undefined {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** Who the token belongs to (GET /v1/whoami); the dashboard hides what the role may not do. */
export type Principal = { kind: "user"; name: string; role: "viewer" | "deployer" | "admin"; teams: string[] } | { kind: "service" | "gateway" };

/** A scorecard rule's outcome for one service. */
export interface RuleOutcome {
  rule: string;
  title: string;
  status: "pass" | "fail" | "unknown" | "n/a";
  reason: string;
}

/** A deploy, rollback or failed rollout, newest first. */
export interface DeployRecord {
  at: string;
  kind: "rollout.succeeded" | "rollout.failed" | "rollback.succeeded";
  release: string | undefined;
  from: string | undefined;
  strategy: string | undefined;
  actor: string;
  why: string | undefined;
}

/** GET /v1/catalog/services/:name, the fields the service view shows. */
export interface CatalogService {
  name: string;
  description: string | undefined;
  lifecycle: "experimental" | "production" | "deprecated" | undefined;
  tags: string[];
  owner: { team: string; declared: boolean; contact: string | undefined };
  links: Array<{ name: string; target: string; kind: "url" | "file"; href: string }>;
  release: string | undefined;
  scorecard: { score: number | undefined; passed: number; failed: number; unknown: number };
  scorecardResults: RuleOutcome[];
  deploys: DeployRecord[];
}

/** What a rollback request ended with: the release it rolls back to, or the API's error. */
export type RollbackOutcome = { ok: true; release: string; outcome: string } | { ok: false; message: string };

/** GET /v1/traces: one trace in a search's answer (telemetry's TraceSummary). */
export interface TraceSummary {
  traceId: string;
  rootService: string;
  rootName: string;
  /** Microseconds since the Unix epoch. */
  startTimeUs: number;
  durationUs: number;
  spanCount: number;
  errorCount: number;
  services: string[];
}

/** GET /v1/traces/:id: one span (telemetry's SpanRecord, the fields the waterfall shows). */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: string;
  service: string;
  startTimeUs: number;
  durationUs: number;
  status: "unset" | "ok" | "error";
  statusMessage: string | undefined;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
}

/** The search GET /v1/traces takes; durations as the API reads them ("250ms", "15m"). */
export interface TraceSearch {
  service?: string;
  minDuration?: string;
  errorsOnly?: boolean;
  since?: string;
  limit?: number;
}

/** GET /v1/audit: one audited request. */
export interface AuditRecord {
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  from: string;
  result: "ok" | "denied" | "error";
  status?: number;
  error?: string;
}

/** The filters GET /v1/audit applies (exact matches). */
export interface AuditFilter {
  actor?: string;
  action?: string;
  target?: string;
  limit?: number;
}

/** The API as the dashboard uses it, bound to one token. */
export interface Api {
  readonly token: string;
  /** GET a JSON document from the API (views with their own typed calls build on it, e.g. flags-api.ts). */
  get<T>(path: string, signal?: AbortSignal): Promise<T>;
  /** A mutation with a JSON body (or none); the JSON answer, or undefined for an empty one. ApiError carries the API's code and message. */
  send<T>(method: "POST" | "PUT" | "PATCH" | "DELETE", path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
  /** The raw response of a request the API accepted (for streaming answers such as NDJSON or logs). */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  status(signal?: AbortSignal): Promise<StatusReport>;
  /** The newest events first. */
  latestEvents(limit: number, signal?: AbortSignal): Promise<KeelsonEvent[]>;
  whoami(signal?: AbortSignal): Promise<Principal>;
  catalogService(name: string, signal?: AbortSignal): Promise<CatalogService>;
  /** Starts a rollback to the previous release (the API streams progress; the dashboard follows events instead). */
  rollback(name: string): Promise<RollbackOutcome>;
  searchTraces(search: TraceSearch, signal?: AbortSignal): Promise<TraceSummary[]>;
  trace(traceId: string, signal?: AbortSignal): Promise<SpanRecord[]>;
  /** Admins only (the API answers 403 to other roles). Newest first. */
  audit(filter: AuditFilter, signal?: AbortSignal): Promise<AuditRecord[]>;
}

/** Query parameters from the set values only (empty strings are no filter). */
export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  const text = q.toString();
  return text === "" ? "" : `?${text}`;
}

export function createApi(token: string): Api {
  async function call(path: string, init: RequestInit = {}): Promise<Response> {
    // The caller's headers (If-Match, say) with the token, and JSON unless the caller says otherwise.
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${token}`);
    if (!headers.has("accept")) headers.set("accept", "application/json");
    if (init.body !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json");
    const res = await fetch(path, { ...init, headers });
    if (res.status === 401) throw new UnauthorizedError("the control plane refused the token");
    if (!res.ok) {
      const body = (await res.json().catch(() => undefined)) as { error?: { code?: string; message?: string; details?: unknown } } | undefined;
      throw new ApiError(body?.error?.message ?? `${path} answered ${res.status}`, res.status, body?.error?.code, body?.error?.details);
    }
    return res;
  }
  async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return (await (await call(path, signal ? { signal } : {})).json()) as T;
  }
  async function send<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const res = await call(path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await res.text();
    return (text.trim() === "" ? undefined : JSON.parse(text)) as T;
  }
  return {
    token,
    get,
    send,
    fetch: call,
    status: (signal) => get<StatusReport>("/v1/status", signal),
    latestEvents: async (limit, signal) => (await get<{ events: KeelsonEvent[] }>(`/v1/events?order=desc&limit=${limit}`, signal)).events,
    whoami: async (signal) => (await get<{ principal: Principal }>("/v1/whoami", signal)).principal,
    catalogService: (name, signal) => get<CatalogService>(`/v1/catalog/services/${encodeURIComponent(name)}`, signal),
    searchTraces: async (s, signal) =>
      (
        await get<{ traces: TraceSummary[] }>(
          `/v1/traces${query({ service: s.service?.trim(), minDuration: s.minDuration?.trim(), status: s.errorsOnly ? "error" : undefined, since: s.since, limit: s.limit })}`,
          signal,
        )
      ).traces,
    trace: async (id, signal) => (await get<{ spans: SpanRecord[] }>(`/v1/traces/${encodeURIComponent(id)}`, signal)).spans,
    audit: async (f, signal) => (await get<{ records: AuditRecord[] }>(`/v1/audit${query({ actor: f.actor?.trim(), action: f.action?.trim(), target: f.target?.trim(), limit: f.limit })}`, signal)).records,
    async rollback(name) {
      const res = await call(`/v1/services/${encodeURIComponent(name)}/rollback`, { method: "POST", body: JSON.stringify({ wait: false }) });
      // NDJSON progress, then one `done` (with the result) or `error` line.
      const lines = (await res.text()).split("\n").filter((l) => l.trim() !== "");
      for (const line of lines.reverse()) {
        const item = JSON.parse(line) as { type?: string; result?: { release: string; outcome: string }; error?: { message: string } };
        if (item.type === "done" && item.result) return { ok: true, release: item.result.release, outcome: item.result.outcome };
        if (item.type === "error") return { ok: false, message: item.error?.message ?? "the rollback failed" };
      }
      return { ok: false, message: "the control plane ended the rollback without a result" };
    },
  };
}
