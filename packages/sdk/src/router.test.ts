// Tests for the router over real HTTP: matching and params, 404/405, JSON bodies with
// their limits, and how route errors are answered.
import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";
import { HttpError, json } from "./respond.js";
import { createRouter } from "./router.js";
import type { Router } from "./router.js";
import { serve } from "./serve.js";
import type { ServiceHandle } from "./serve.js";

const handles: ServiceHandle[] = [];
afterEach(async () => {
  await Promise.all(handles.splice(0).map((h) => h.close()));
});

async function start(router: Router): Promise<string> {
  const handle = await serve({ handler: router.handle, port: 0, signals: [], logger: createLogger({ level: "silent" }) });
  handles.push(handle);
  return handle.url;
}

/** Sends a body in chunks without a content-length (chunked encoding). */
function postChunked(url: string, chunks: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe("createRouter: matching", () => {
  it("matches methods and patterns and passes decoded params and the query", async () => {
    const url = await start(
      createRouter()
        .get("/api/orders", ({ res, query }) => json(res, 200, { list: true, limit: query.get("limit") }))
        .get("/api/orders/:id", ({ res, params }) => json(res, 200, { id: params.id }))
        .get("/api/orders/:id/lines/:line", ({ res, params }) => json(res, 200, { id: params.id, line: params.line }))
        .delete("/api/orders/:id", ({ res, params }) => json(res, 200, { deleted: params.id })),
    );
    expect(await (await fetch(`${url}/api/orders?limit=5`)).json()).toEqual({ list: true, limit: "5" });
    expect(await (await fetch(`${url}/api/orders/`)).json()).toEqual({ list: true, limit: null });
    expect(await (await fetch(`${url}/api/orders/a%20b`)).json()).toEqual({ id: "a b" });
    expect(await (await fetch(`${url}/api/orders/o1/lines/3`)).json()).toEqual({ id: "o1", line: "3" });
    expect(await (await fetch(`${url}/api/orders/o1`, { method: "DELETE" })).json()).toEqual({ deleted: "o1" });
  });

  it("prefers the pattern with more literal segments, whatever the order", async () => {
    const url = await start(
      createRouter()
        .get("/api/orders/:id", ({ res }) => json(res, 200, { route: "param" }))
        .get("/api/orders/recent", ({ res }) => json(res, 200, { route: "literal" })),
    );
    expect(await (await fetch(`${url}/api/orders/recent`)).json()).toEqual({ route: "literal" });
    expect(await (await fetch(`${url}/api/orders/o9`)).json()).toEqual({ route: "param" });
  });

  it("answers 404 and 405 as JSON, with an allow header, and serves HEAD from GET", async () => {
    const url = await start(
      createRouter()
        .get("/things", ({ res }) => json(res, 200, { n: 1 }))
        .post("/things", ({ res }) => json(res, 201, {})),
    );
    const missing = await fetch(`${url}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: { code: "NOT_FOUND", message: "no route for GET /nope" } });

    const wrong = await fetch(`${url}/things`, { method: "PUT" });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("GET, HEAD, POST");
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe("METHOD_NOT_ALLOWED");

    const head = await fetch(`${url}/things`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");

    const options = await fetch(`${url}/things`, { method: "OPTIONS" });
    expect(options.status).toBe(204);
    expect(options.headers.get("allow")).toBe("GET, HEAD, POST");
  });

  it("keeps a path that starts with // a path instead of a host", async () => {
    const url = await start(createRouter().get("/x", ({ res }) => json(res, 200, {})));
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${url}/`, { path: "//evil.example/x" }, (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(404);
    expect(body).toContain("//evil.example/x");
  });

  it("answers 400 for a parameter that is not valid percent-encoding", async () => {
    const url = await start(createRouter().get("/o/:id", ({ res, params }) => json(res, 200, params)));
    const res = await fetch(`${url}/o/%E0%A4%A`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("INVALID_PATH");
  });
});

describe("createRouter: bodies", () => {
  const echo = () =>
    createRouter({ bodyLimitBytes: 64 }).post("/echo", async ({ res, body }) => {
      const first = await body();
      // A second read returns the same value instead of waiting for a stream that has ended.
      json(res, 200, { body: first, same: (await body()) === first });
    });

  it("parses a JSON body", async () => {
    const url = await start(echo());
    const res = await fetch(`${url}/echo`, { method: "POST", body: JSON.stringify({ a: [1, 2] }) });
    expect(await res.json()).toEqual({ body: { a: [1, 2] }, same: true });
  });

  it("answers 400 for bad or missing JSON", async () => {
    const url = await start(echo());
    const bad = await fetch(`${url}/echo`, { method: "POST", body: "{nope" });
    expect(bad.status).toBe(400);
    const badBody = (await bad.json()) as { error: { code: string; message: string } };
    expect(badBody.error.code).toBe("INVALID_JSON");
    expect(badBody.error.message).toMatch(/^request body is not valid JSON/);
    const empty = await fetch(`${url}/echo`, { method: "POST" });
    expect(empty.status).toBe(400);
    expect(((await empty.json()) as { error: { message: string } }).error.message).toBe("request body is empty; expected JSON");
  });

  it("answers 413 above the limit, by content-length and by counting a chunked body", async () => {
    const url = await start(echo());
    const big = JSON.stringify({ text: "x".repeat(100) });
    const declared = await fetch(`${url}/echo`, { method: "POST", body: big });
    expect(declared.status).toBe(413);
    expect(await declared.json()).toEqual({ error: { code: "PAYLOAD_TOO_LARGE", message: "request body is larger than 64 bytes", details: { limitBytes: 64 } } });

    const chunked = await postChunked(`${url}/echo`, [big.slice(0, 50), big.slice(50)]);
    expect(chunked.status).toBe(413);
    // Exactly at the limit is fine.
    const atLimit = JSON.stringify({ t: "y".repeat(56) });
    expect(Buffer.byteLength(atLimit)).toBe(64);
    expect((await postChunked(`${url}/echo`, [atLimit])).status).toBe(200);
  });
});

describe("createRouter: errors", () => {
  it("answers an HttpError thrown by a route and leaves other errors to serve()", async () => {
    const url = await start(
      createRouter()
        .post("/v", () => {
          throw new HttpError(400, "VALIDATION", "email is required", { field: "email" });
        })
        .get("/boom", () => {
          throw new Error("bug");
        }),
    );
    const v = await fetch(`${url}/v`, { method: "POST" });
    expect(v.status).toBe(400);
    expect(await v.json()).toEqual({ error: { code: "VALIDATION", message: "email is required", details: { field: "email" } } });
    const boom = await fetch(`${url}/boom`);
    expect(boom.status).toBe(500);
    expect(((await boom.json()) as { error: { code: string } }).error.code).toBe("INTERNAL");
  });

  it("rejects a pattern that does not start with /", () => {
    expect(() => createRouter().get("api", () => {})).toThrow('route pattern must start with "/": api');
  });
});
