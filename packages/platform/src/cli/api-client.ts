// A small client for the control-plane API, used by the CLI. Its credential: $KEELSON_TOKEN, else
// the admin token `keelson up` stored in the project's state folder.
import { join } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import { TOKEN_FILE } from "../api/index.js";
import { readTokenFile } from "../security/index.js";

export interface ApiClient {
  /** GET a plain-text answer (a pipeline log). */
  text(path: string): Promise<string>;
  readonly url: string;
  get<T>(path: string, options?: { signal?: AbortSignal }): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  request<T>(method: "PUT" | "DELETE" | "POST" | "GET", path: string, body?: unknown): Promise<T>;
  /** POST or GET whose answer is NDJSON; yields each parsed line. */
  stream<T>(path: string, options?: { method?: "GET" | "POST"; body?: unknown; signal?: AbortSignal }): AsyncIterable<T>;
}

/** The CLI's token: $KEELSON_TOKEN, else the state folder's token file (refused when others may read it). */
export async function cliToken(stateDir: string): Promise<string> {
  const fromEnv = process.env.KEELSON_TOKEN;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  return readTokenFile(join(stateDir, TOKEN_FILE));
}

export function createApiClient(url: string, credentials: { stateDir: string } | { token: string }): ApiClient {
  let token: Promise<string> | undefined;
  const bearer = () => (token ??= "token" in credentials ? Promise.resolve(credentials.token) : cliToken(credentials.stateDir));

  async function request(path: string, init: RequestInit): Promise<Response> {
    let res: Response;
    const headers = { "content-type": "application/json", authorization: `Bearer ${await bearer()}` };
    try {
      res = await fetch(new URL(path, url), { ...init, headers });
    } catch (err) {
      throw new KeelsonError("KEELSON_ERR_CONTROL_PLANE_UNREACHABLE", `the control plane at ${url} did not answer: ${(err as Error).cause ?? (err as Error).message}`);
    }
    if (!res.ok) {
      const body: unknown = await res.json().catch(() => undefined);
      throw KeelsonError.fromBody(body) ?? new KeelsonError("KEELSON_ERR_INTERNAL", `${init.method ?? "GET"} ${path} answered ${res.status}`);
    }
    return res;
  }

  return {
    url,
    async get<T>(path: string, options: { signal?: AbortSignal } = {}) {
      return (await (await request(path, { method: "GET", ...(options.signal ? { signal: options.signal } : {}) })).json()) as T;
    },
    async text(path: string) {
      return (await request(path, { method: "GET" })).text();
    },
    async post<T>(path: string, body?: unknown) {
      return (await (await request(path, { method: "POST", body: JSON.stringify(body ?? {}) })).json()) as T;
    },
    async request<T>(method: "PUT" | "DELETE" | "POST" | "GET", path: string, body?: unknown) {
      const init: RequestInit = { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) };
      return (await (await request(path, init)).json()) as T;
    },
    async *stream<T>(path: string, options: { method?: "GET" | "POST"; body?: unknown; signal?: AbortSignal } = {}) {
      const method = options.method ?? "GET";
      const res = await request(path, {
        method,
        ...(method === "POST" ? { body: JSON.stringify(options.body ?? {}) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (!res.body) return;
      const decoder = new TextDecoder();
      let buffer = "";
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let nl: number;
          while ((nl = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, nl).trim();
            buffer = buffer.slice(nl + 1);
            if (line) yield JSON.parse(line) as T;
          }
        }
      } catch (err) {
        if (options.signal?.aborted) return;
        throw err;
      }
      if (buffer.trim()) yield JSON.parse(buffer) as T;
    },
  };
}
