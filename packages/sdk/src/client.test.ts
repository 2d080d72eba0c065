// Tests for the service client against the gateway stub: routing headers, request id
// propagation, JSON helpers, ServiceCallError on bad answers, timeouts and fallbacks.
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, makeTempDir } from "#test-support";
import { createClient, ServiceCallError } from "./client.js";
import { createIdentity } from "./identity.js";
import { startGatewayStub } from "./gateway-stub.js";
import type { GatewayStub } from "./gateway-stub.js";
import { createLogger } from "./logger.js";
import { runWithRequestContext } from "./request-context.js";
import { json } from "./respond.js";
import { createRouter } from "./router.js";

const silent = createLogger({ level: "silent" });
const stubs: GatewayStub[] = [];
afterEach(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

async function gateway(): Promise<GatewayStub> {
  const received: unknown[] = [];
  const stub = await startGatewayStub({
    inventory: createRouter()
      .get("/api/inventory", ({ res, req }) => json(res, 200, { items: [{ sku: "A", stock: 3 }], gotAccept: req.headers.accept }))
      .post("/reservations", async ({ res, body }) => {
        const b = await body();
        received.push(b);
        json(res, 201, { echoed: b });
      })
      .post("/full", ({ res }) => json(res, 409, { error: { code: "OUT_OF_STOCK", message: "sku A has 0 left", details: { sku: "A" } } }))
      .get("/text-error", ({ res }) => {
        res.statusCode = 502;
        res.end("upstream went away");
      })
      .get("/not-json", ({ res }) => {
        res.setHeader("content-type", "text/html");
        res.end("<p>hi</p>");
      })
      .delete("/empty", ({ res }) => json(res, 204, undefined))
      .get("/slow", () => new Promise<void>(() => {})).handle,
  });
  stubs.push(stub);
  return stub;
}

describe("createClient", () => {
  it("sends the target, the caller and the current request id to the gateway", async () => {
    const stub = await gateway();
    const client = createClient({ gatewayUrl: stub.url, self: "storefront", logger: silent });
    const res = await runWithRequestContext({ requestId: "req-7", caller: undefined }, () => client.call("inventory", "/api/inventory?x=1"));
    expect(res.status).toBe(200);
    const call = stub.calls[0];
    expect(call?.service).toBe("inventory");
    expect(call?.path).toBe("/api/inventory?x=1");
    expect(call?.headers["x-keelson-caller"]).toBe("storefront");
    expect(call?.headers["x-request-id"]).toBe("req-7");
  });

  it("sends no request id outside a request and keeps one the caller set", async () => {
    const stub = await gateway();
    const client = createClient({ gatewayUrl: stub.url, self: "orders", logger: silent });
    await client.call("inventory", "/api/inventory");
    await runWithRequestContext({ requestId: "ctx", caller: undefined }, () =>
      client.call("inventory", "/api/inventory", { headers: { "x-request-id": "explicit" } }),
    );
    expect(stub.calls.map((c) => c.headers["x-request-id"])).toEqual([undefined, "explicit"]);
  });

  it("defaults the gateway and the caller to the replica environment, keeping a base path", async () => {
    const stub = await gateway();
    const prefixed = await startGatewayStub({
      inventory: (req, res) => json(res, 200, { path: req.url }),
    });
    stubs.push(prefixed);
    const env = { gw: process.env.KEELSON_GATEWAY_URL, svc: process.env.KEELSON_SERVICE };
    try {
      process.env.KEELSON_GATEWAY_URL = stub.url;
      process.env.KEELSON_SERVICE = "orders";
      await createClient({ logger: silent }).call("inventory", "/api/inventory");
      expect(stub.calls[0]?.headers["x-keelson-caller"]).toBe("orders");
    } finally {
      restoreEnv("KEELSON_GATEWAY_URL", env.gw);
      restoreEnv("KEELSON_SERVICE", env.svc);
    }
    const based = createClient({ gatewayUrl: `${prefixed.url}/gw/`, logger: silent });
    expect(await based.json("inventory", "/api/inventory")).toEqual({ path: "/gw/api/inventory" });
  });

  it("json() parses the answer, asks for JSON and sends a json body as JSON", async () => {
    const stub = await gateway();
    const client = createClient({ gatewayUrl: stub.url, logger: silent });
    expect(await client.json("inventory", "/api/inventory")).toEqual({ items: [{ sku: "A", stock: 3 }], gotAccept: "application/json" });
    const created = await client.json<{ echoed: unknown }>("inventory", "/reservations", { json: { orderId: "o1", items: [] } });
    expect(created.echoed).toEqual({ orderId: "o1", items: [] });
    expect(stub.calls[1]?.method).toBe("POST");
    expect(stub.calls[1]?.headers["content-type"]).toBe("application/json");
    expect(await client.json("inventory", "/empty", { method: "DELETE" })).toBeUndefined();
  });

  it("json() rejects a non-2xx answer with a ServiceCallError carrying status, service and body", async () => {
    const stub = await gateway();
    const client = createClient({ gatewayUrl: stub.url, logger: silent });
    const err = await client.json("inventory", "/full", { method: "POST", json: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceCallError);
    const e = err as ServiceCallError;
    expect([e.service, e.method, e.path, e.status, e.code, e.timedOut]).toEqual(["inventory", "POST", "/full", 409, "OUT_OF_STOCK", false]);
    expect(e.body).toEqual({ error: { code: "OUT_OF_STOCK", message: "sku A has 0 left", details: { sku: "A" } } });
    expect(e.message).toBe("inventory POST /full answered 409 OUT_OF_STOCK: sku A has 0 left");

    const text = (await client.json("inventory", "/text-error").catch((x: unknown) => x)) as ServiceCallError;
    expect([text.status, text.body, text.code]).toEqual([502, "upstream went away", undefined]);

    const notJson = (await client.json("inventory", "/not-json").catch((x: unknown) => x)) as ServiceCallError;
    expect([notJson.status, notJson.body]).toEqual([200, "<p>hi</p>"]);
    expect(notJson.message).toContain("not JSON");
  });

  it("passes the gateway's own error for a service without replicas through", async () => {
    const stub = await gateway();
    const err = (await createClient({ gatewayUrl: stub.url, logger: silent }).json("payments", "/charges").catch((e: unknown) => e)) as ServiceCallError;
    expect([err.status, err.code, err.service]).toEqual([503, "KEELSON_ERR_NO_ENDPOINT", "payments"]);
  });

  it("gives up after the timeout with a ServiceCallError marked timedOut", async () => {
    const stub = await gateway();
    const client = createClient({ gatewayUrl: stub.url, timeoutMs: 5000, logger: silent });
    const started = Date.now();
    const err = (await client.json("inventory", "/slow", { timeoutMs: 100 }).catch((e: unknown) => e)) as ServiceCallError;
    expect(err).toBeInstanceOf(ServiceCallError);
    expect([err.timedOut, err.status]).toEqual([true, undefined]);
    expect(err.message).toBe("inventory GET /slow: no answer within 100 ms");
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("reports an unreachable gateway as a ServiceCallError without a status", async () => {
    const port = await freePort();
    const err = (await createClient({ gatewayUrl: `http://127.0.0.1:${port}`, logger: silent }).call("inventory", "/x").catch((e: unknown) => e)) as ServiceCallError;
    expect(err).toBeInstanceOf(ServiceCallError);
    expect([err.status, err.timedOut]).toEqual([undefined, false]);
    expect(err.message).toContain("ECONNREFUSED");
  });

  it("warns and falls back to the default gateway when none is configured", () => {
    const lines: string[] = [];
    const saved = process.env.KEELSON_GATEWAY_URL;
    try {
      delete process.env.KEELSON_GATEWAY_URL;
      createClient({ logger: createLogger({ write: (l) => lines.push(l) }) });
      createClient({ gatewayUrl: "not a url", logger: createLogger({ write: (l) => lines.push(l) }) });
    } finally {
      restoreEnv("KEELSON_GATEWAY_URL", saved);
    }
    const msgs = lines.map((l) => (JSON.parse(l) as { level: string; msg: string }));
    expect(msgs.map((m) => m.level)).toEqual(["warn", "warn"]);
    expect(msgs[0]?.msg).toBe("$KEELSON_GATEWAY_URL is not set; calling the gateway at http://127.0.0.1:8080");
    expect(msgs[1]?.msg).toContain('"not a url"');
  });

  it("rejects a path without a leading slash", async () => {
    const client = createClient({ gatewayUrl: "http://127.0.0.1:1", logger: silent });
    await expect(client.call("inventory", "api")).rejects.toThrow(TypeError);
  });
});

describe("createClient: identity", () => {
  it("sends the identity token from the file on every call, the rotated one once it changes", async () => {
    const stub = await gateway();
    const tmp = await makeTempDir("keelson-sdk-client-");
    try {
      const tokenFile = join(tmp.dir, "token.jwt");
      await writeFile(tokenFile, "token-1");
      let now = 0;
      const identity = createIdentity({ identityFile: tokenFile, tlsDir: "", checkMs: 5000, now: () => now, logger: silent });
      const client = createClient({ gatewayUrl: stub.url, self: "orders", identity, logger: silent });
      await client.call("inventory", "/api/inventory", { headers: { "x-keelson-identity": "copied-from-a-request" } });
      await writeFile(join(tmp.dir, "next"), "token-2");
      await rename(join(tmp.dir, "next"), tokenFile);
      now += 5000;
      await client.call("inventory", "/api/inventory");
      expect(stub.calls.map((c) => c.headers["x-keelson-identity"])).toEqual(["token-1", "token-2"]);
    } finally {
      await tmp.cleanup();
    }
  });
});

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
