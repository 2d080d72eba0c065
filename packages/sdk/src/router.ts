// A small router for service handlers: method + path patterns with `:params`, JSON bodies
// with a size limit, and JSON 404/405 answers, so a service's app.ts stays declarative.
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError, sendHttpError } from "./respond.js";
import type { Handler } from "./serve.js";
import { nameServerSpan } from "./tracing.js";

/** Parameter names in a pattern: "/api/orders/:id" → { id: string }. */
export type RouteParams<P extends string> = P extends `${string}:${infer Name}/${infer Rest}`
  ? { [K in Name]: string } & RouteParams<Rest>
  : P extends `${string}:${infer Name}`
    ? { [K in Name]: string }
    : Record<never, never>;

export interface RouteContext<Params = Record<string, string>> {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  /** The matched path (percent-encoded, as sent). */
  readonly path: string;
  /** Path parameters, percent-decoded. */
  readonly params: Readonly<Params>;
  readonly query: URLSearchParams;
  /**
   * The request body parsed as JSON. Rejects with an HttpError that the router answers:
   * 413 above the size limit, 400 when empty or not JSON. The result is cached.
   */
  body(): Promise<unknown>;
}

export type RouteHandler<Params = Record<string, string>> = (ctx: RouteContext<Params>) => void | Promise<void>;

export interface RouterOptions {
  /** Largest accepted request body; defaults to 1 MiB. */
  bodyLimitBytes?: number;
}

export interface Router {
  get<P extends string>(pattern: P, handler: RouteHandler<RouteParams<P>>): Router;
  post<P extends string>(pattern: P, handler: RouteHandler<RouteParams<P>>): Router;
  put<P extends string>(pattern: P, handler: RouteHandler<RouteParams<P>>): Router;
  patch<P extends string>(pattern: P, handler: RouteHandler<RouteParams<P>>): Router;
  delete<P extends string>(pattern: P, handler: RouteHandler<RouteParams<P>>): Router;
  route<P extends string>(method: string, pattern: P, handler: RouteHandler<RouteParams<P>>): Router;
  /** The handler to pass to serve(); bound, so it can be passed around on its own. */
  readonly handle: Handler;
}

interface Route {
  method: string;
  pattern: string;
  /** A literal segment, or a parameter name prefixed by ":". */
  segments: string[];
  staticCount: number;
  handler: RouteHandler;
}

const DEFAULT_BODY_LIMIT = 1024 * 1024;

/**
 * Creates a router. When several patterns match a path, the one with the most literal
 * segments wins ("/api/orders/recent" beats "/api/orders/:id"), then the first registered.
 *
 * @example
 * const router = createRouter()
 *   .get("/api/orders/:id", async ({ params, res }) => json(res, 200, await orders.get(params.id)))
 *   .post("/api/orders", async ({ body, res }) => json(res, 201, await place(await body())));
 * await serve({ handler: router.handle });
 */
export function createRouter(options: RouterOptions = {}): Router {
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
  const routes: Route[] = [];

  const handle: Handler = async (req, res) => {
    const method = (req.method ?? "GET").toUpperCase();
    try {
      const url = parseTarget(req.url ?? "/");
      const path = url.pathname.length > 1 && url.pathname.endsWith("/") ? url.pathname.slice(0, -1) : url.pathname;
      const parts = path.split("/");
      let best: { route: Route; params: Record<string, string> } | undefined;
      const allowed = new Set<string>();
      for (const route of routes) {
        const params = matchSegments(route.segments, parts);
        if (params === undefined) continue;
        allowed.add(route.method);
        const methodFits = route.method === method || (method === "HEAD" && route.method === "GET");
        if (methodFits && (best === undefined || route.staticCount > best.route.staticCount)) best = { route, params };
      }
      if (best === undefined) {
        if (allowed.size === 0) throw new HttpError(404, "NOT_FOUND", `no route for ${method} ${path}`);
        if (allowed.has("GET")) allowed.add("HEAD");
        const allow = [...allowed].sort().join(", ");
        if (method === "OPTIONS") {
          res.statusCode = 204;
          res.setHeader("allow", allow);
          res.end();
          return;
        }
        throw new HttpError(405, "METHOD_NOT_ALLOWED", `${method} is not allowed on ${path}; allowed: ${allow}`, undefined, { allow });
      }

      nameServerSpan(method, best.route.pattern);
      let body: Promise<unknown> | undefined;
      await best.route.handler({
        req,
        res,
        method,
        path,
        params: best.params,
        query: url.searchParams,
        body: () => (body ??= readJsonBody(req, bodyLimit)),
      });
    } catch (err) {
      // The route's own 4xx/5xx answers; anything else is serve()'s to report as a 500.
      if (err instanceof HttpError && !res.headersSent) return sendHttpError(res, err);
      throw err;
    }
  };

  const router: Router = {
    get: (pattern, handler) => router.route("GET", pattern, handler),
    post: (pattern, handler) => router.route("POST", pattern, handler),
    put: (pattern, handler) => router.route("PUT", pattern, handler),
    patch: (pattern, handler) => router.route("PATCH", pattern, handler),
    delete: (pattern, handler) => router.route("DELETE", pattern, handler),
    route: (method, pattern, handler) => {
      if (!pattern.startsWith("/")) throw new Error(`route pattern must start with "/": ${pattern}`);
      const normalized = pattern.length > 1 && pattern.endsWith("/") ? pattern.slice(0, -1) : pattern;
      const segments = normalized.split("/");
      routes.push({
        method: method.toUpperCase(),
        pattern,
        segments,
        staticCount: segments.filter((s) => !s.startsWith(":")).length,
        handler: handler as RouteHandler,
      });
      return router;
    },
    handle,
  };
  return router;
}

function parseTarget(target: string): URL {
  try {
    // Prefixing keeps a target such as "//host/x" a path instead of letting URL read it as a host.
    return new URL(target.startsWith("/") ? `http://localhost${target}` : target);
  } catch {
    throw new HttpError(400, "INVALID_PATH", `request target ${JSON.stringify(target.slice(0, 200))} is not a valid path`);
  }
}

function matchSegments(pattern: string[], parts: string[]): Record<string, string> | undefined {
  if (pattern.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const want = pattern[i] as string;
    const got = parts[i] as string;
    if (want.startsWith(":")) {
      if (got === "") return undefined;
      try {
        params[want.slice(1)] = decodeURIComponent(got);
      } catch {
        throw new HttpError(400, "INVALID_PATH", `path segment ${JSON.stringify(got)} is not valid percent-encoding`);
      }
    } else if (want !== got) {
      return undefined;
    }
  }
  return params;
}

function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const tooLarge = () =>
    // Closing the connection spares us reading (and the client sending) the rest of the body.
    new HttpError(413, "PAYLOAD_TOO_LARGE", `request body is larger than ${limit} bytes`, { limitBytes: limit }, { connection: "close" });
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());

  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        // Keep the stream flowing with nobody listening, so the rest is discarded, not buffered.
        req.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new HttpError(400, "BODY_ABORTED", `request body could not be read: ${err.message}`));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  }).then((buffer) => {
    const text = buffer.toString("utf8");
    if (text.trim() === "") throw new HttpError(400, "INVALID_JSON", "request body is empty; expected JSON");
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new HttpError(400, "INVALID_JSON", `request body is not valid JSON: ${(err as Error).message}`);
    }
  });
}
