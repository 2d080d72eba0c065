// Calls to the control-plane API from the browser, with the bearer token the user logged in with.
import type { KeelsonEvent, StatusReport } from "@keelson/protocol";

const TOKEN_KEY = "keelson.token";

/** The API refused the token (401): the app goes back to the login screen. */
export class UnauthorizedError extends Error {
  override readonly name = "UnauthorizedError";
}

/** Any other failed call, with the API's error code and message when it sent them. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | undefined,
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

/** The API as the dashboard uses it, bound to one token. */
export interface Api {
  status(signal?: AbortSignal): Promise<StatusReport>;
  /** The newest events first. */
  latestEvents(limit: number, signal?: AbortSignal): Promise<KeelsonEvent[]>;
}

export function createApi(token: string): Api {
  async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
    const res = await fetch(path, { headers: { authorization: `Bearer ${token}`, accept: "application/json" }, ...(signal ? { signal } : {}) });
    if (res.status === 401) throw new UnauthorizedError("the control plane refused the token");
    if (!res.ok) {
      const body = (await res.json().catch(() => undefined)) as { error?: { code?: string; message?: string } } | undefined;
      throw new ApiError(body?.error?.message ?? `${path} answered ${res.status}`, res.status, body?.error?.code);
    }
    return (await res.json()) as T;
  }
  return {
    status: (signal) => get<StatusReport>("/v1/status", signal),
    latestEvents: async (limit, signal) => (await get<{ events: KeelsonEvent[] }>(`/v1/events?order=desc&limit=${limit}`, signal)).events,
  };
}
