// Tests for the gateway stand-in: dispatch on x-keelson-service, the record of calls, and
// the gateway-like answers for an unknown service and a failing handler.
import { afterEach, describe, expect, it } from "vitest";
import { startGatewayStub } from "./gateway-stub.js";
import type { GatewayStub } from "./gateway-stub.js";
import { json } from "./respond.js";

let stub: GatewayStub | undefined;
afterEach(async () => {
  await stub?.close();
  stub = undefined;
});

describe("startGatewayStub", () => {
  it("dispatches on the target header and records each call", async () => {
    stub = await startGatewayStub({
      a: (req, res) => json(res, 200, { from: "a", url: req.url }),
      b: (_req, res) => json(res, 201, { from: "b" }),
    });
    expect(stub.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const a = await fetch(`${stub.url}/x?y=1`, { headers: { "x-keelson-service": "a" } });
    const b = await fetch(`${stub.url}/z`, { method: "POST", headers: { "x-keelson-service": "b" }, body: "{}" });
    expect([a.status, await a.json()]).toEqual([200, { from: "a", url: "/x?y=1" }]);
    expect([b.status, await b.json()]).toEqual([201, { from: "b" }]);
    expect(stub.calls.map((c) => [c.service, c.method, c.path])).toEqual([
      ["a", "GET", "/x?y=1"],
      ["b", "POST", "/z"],
    ]);
  });

  it("answers 503 KEELSON_ERR_NO_ENDPOINT for an unknown or missing service", async () => {
    stub = await startGatewayStub({});
    const res = await fetch(`${stub.url}/x`, { headers: { "x-keelson-service": "ghost" } });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: { code: "KEELSON_ERR_NO_ENDPOINT", message: 'service "ghost" has no ready replica' } });
    expect((await fetch(`${stub.url}/x`)).status).toBe(503);
    expect(stub.calls.map((c) => c.service)).toEqual(["ghost", undefined]);
  });

  it("answers 500 when a handler throws", async () => {
    stub = await startGatewayStub({
      a: () => {
        throw new Error("fake broke");
      },
    });
    const res = await fetch(`${stub.url}/x`, { headers: { "x-keelson-service": "a" } });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: { code: "INTERNAL", message: "fake broke" } });
  });
});
