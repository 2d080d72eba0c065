// The flag API over a real HTTP control plane (memory store and driver): CRUD, kill switch,
// history and rollback, the change stream, and OFREP as the official OpenFeature OFREP
// provider uses it.
import { OFREPProvider } from "@openfeature/ofrep-provider";
import { OpenFeature } from "@openfeature/server-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, waitFor } from "#test-support";
import { createReconciler } from "../delivery/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createMemoryStore } from "../store/index.js";
import { createControlPlane, type ControlPlane } from "./control-plane.js";

const checkout = {
  state: "ENABLED",
  variants: { on: true, off: false },
  defaultVariant: "off",
  targeting: { fractional: [["on", 50], ["off", 50]] },
};

describe("flag API", () => {
  let cp: ControlPlane;
  let url: string;
  let cleanup: () => Promise<void>;
  const silent = { info() {}, warn() {}, error() {} };

  async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(`${url}${path}`, { method, headers: { "content-type": "application/json", "x-keelson-actor": "ana", ...headers }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  }

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-flag-api-");
    cleanup = tmp.cleanup;
    const store = createMemoryStore();
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent });
    url = await cp.listen("127.0.0.1", 0);
  });
  afterAll(async () => {
    await OpenFeature.close();
    await cp.close();
    await cleanup();
  });

  it("creates a flag, refuses bad ones with the path named, and keeps history with diffs", async () => {
    expect((await call("PUT", "/v1/flags/new-checkout", checkout)).status).toBe(200);
    const bad = await call("PUT", "/v1/flags/broken", { state: "ENABLED", variants: { a: 1 }, defaultVariant: "b" });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toMatch(/flags\.broken\.defaultVariant/);
    expect((await call("PUT", "/v1/flags/new-checkout", { ...checkout, defaultVariant: "on" })).status).toBe(200);
    const history = await call("GET", "/v1/flags/new-checkout/history");
    const changes = history.body?.changes as Array<{ seq: number; kind: string; actor: string; diff: Array<{ path: string }> }>;
    expect(changes.map((c) => [c.kind, c.actor])).toEqual([
      ["flag.changed", "ana"],
      ["flag.created", "ana"],
    ]);
    expect(changes[0]?.diff.map((d) => d.path)).toEqual(["defaultVariant"]);
    const back = await call("POST", "/v1/flags/new-checkout/rollback", { to: changes[1]?.seq });
    expect((back.body?.flag as { defaultVariant: string }).defaultVariant).toBe("off");
    expect((await call("POST", "/v1/flags/new-checkout/rollback", { to: "yesterday" })).status).toBe(400);
  });

  it("answers OFREP single and bulk evaluation, with 404 for a missing flag and 304 for an unchanged set", async () => {
    const one = await call("POST", "/ofrep/v1/evaluate/flags/new-checkout", { context: { targetingKey: "user-1" } });
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ key: "new-checkout", reason: "SPLIT", value: expect.any(Boolean) });
    const missing = await call("POST", "/ofrep/v1/evaluate/flags/nope", { context: {} });
    expect(missing).toMatchObject({ status: 404, body: { key: "nope", errorCode: "FLAG_NOT_FOUND" } });
    const badContext = await call("POST", "/ofrep/v1/evaluate/flags/new-checkout", { context: { targetingKey: 42 } });
    expect(badContext).toMatchObject({ status: 400, body: { errorCode: "INVALID_CONTEXT" } });

    const bulk = await call("POST", "/ofrep/v1/evaluate/flags", { context: { targetingKey: "user-1" } });
    expect(bulk.status).toBe(200);
    const etag = bulk.headers.get("etag") as string;
    expect(etag).toMatch(/^"[0-9a-f]{24}"$/);
    expect(bulk.body?.flags).toEqual([expect.objectContaining({ key: "new-checkout" })]);
    expect((await call("POST", "/ofrep/v1/evaluate/flags", { context: { targetingKey: "user-1" } }, { "if-none-match": etag })).status).toBe(304);
    // Another context or a changed set is a new answer.
    expect((await call("POST", "/ofrep/v1/evaluate/flags", { context: { targetingKey: "user-2" } }, { "if-none-match": etag })).status).toBe(200);
  });

  it("works with the official OpenFeature OFREP provider, and the kill switch reaches it at once", async () => {
    await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl: url }));
    const client = OpenFeature.getClient();
    const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
    const before = await Promise.all(users.map((u) => client.getBooleanDetails("new-checkout", false, { targetingKey: u })));
    const on = before.filter((d) => d.value).length;
    // A 50/50 split: each user always gets the same answer, and roughly half get "on".
    expect(on).toBeGreaterThan(70);
    expect(on).toBeLessThan(130);
    expect(before.every((d) => d.reason === "SPLIT" && d.errorCode === undefined)).toBe(true);
    const again = await client.getBooleanDetails("new-checkout", false, { targetingKey: users[0] as string });
    expect(again.value).toBe(before[0]?.value);

    expect((await call("POST", "/v1/flags/new-checkout/kill")).status).toBe(200);
    const after = await Promise.all(users.slice(0, 20).map((u) => client.getBooleanDetails("new-checkout", true, { targetingKey: u })));
    expect(after.every((d) => d.value === false && d.reason === "STATIC")).toBe(true);
    const missing = await client.getBooleanDetails("nope", true, { targetingKey: "u" });
    expect(missing).toMatchObject({ value: true, errorCode: "FLAG_NOT_FOUND" });
  });

  it("streams every new revision to SSE subscribers", async () => {
    const ac = new AbortController();
    const res = await fetch(`${url}/v1/flags/stream`, { signal: ac.signal });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    const revisions = () => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    const pump = (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        text += decoder.decode(value, { stream: true });
      }
    })();
    await waitFor(() => revisions().length === 1, { what: "the first snapshot" });
    const first = revisions()[0] as number;
    await call("PUT", "/v1/flags/banner", { state: "ENABLED", variants: { a: "Welcome", b: "Hello" }, defaultVariant: "a" });
    await waitFor(() => revisions().includes(first + 1), { what: "the change on the stream" });
    expect(text).toContain('"banner"');
    ac.abort();
    await pump;
  });
});
