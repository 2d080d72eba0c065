// Tests for the recommendations API over real HTTP: answers from the pairings table, input
// validation naming the parameter, 503 OVERLOADED when the lookup queue is full, a caller
// that gives up leaving the queue, probes, and the settings.
import { request } from "node:http";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createLogger, serve } from "@keelson/sdk";
import type { ServiceHandle } from "@keelson/sdk";
import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { createModelStore } from "../src/model-store.js";
import type { ModelStore } from "../src/model-store.js";
import { PAIRINGS } from "../src/pairings.js";

let handle: ServiceHandle | undefined;
afterEach(async () => {
  await handle?.close();
  handle = undefined;
});

async function start(store: ModelStore): Promise<string> {
  handle = await serve({ handler: createApp({ store }), port: 0, signals: [], logger: createLogger({ level: "silent" }) });
  return handle.url;
}

/** A model store whose lookups wait until the test opens the gate; counts lookups that got a slot. */
function gatedStore(options: { slots: number; queueLimit: number }) {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let lookups = 0;
  const store = createModelStore({
    pairings: PAIRINGS,
    latencyMs: 20,
    ...options,
    delay: () => {
      lookups++;
      return gate;
    },
  });
  return { store, open: () => open(), lookups: () => lookups };
}

const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string; details?: { field?: string } } }).error;

describe("GET /api/recommendations", () => {
  it("answers the products often bought together, highest score first, 3 by default", async () => {
    const url = await start(createModelStore({ pairings: PAIRINGS, slots: 4, latencyMs: 1, queueLimit: 10 }));
    const res = await fetch(`${url}/api/recommendations?sku=BEAN-ETH-250`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      sku: "BEAN-ETH-250",
      items: [
        { sku: "FILTER-V60-100", score: 0.62 },
        { sku: "MUG-ENAMEL", score: 0.41 },
        { sku: "GRINDER-HAND", score: 0.27 },
      ],
    });
    const one = (await (await fetch(`${url}/api/recommendations?sku=GRINDER-HAND&limit=1`)).json()) as { items: unknown[] };
    expect(one.items).toEqual([{ sku: "BEAN-ETH-250", score: 0.71 }]);
    // A limit above what the table holds gives all of it.
    const all = (await (await fetch(`${url}/api/recommendations?sku=MUG-ENAMEL&limit=10`)).json()) as { items: { sku: string }[] };
    expect(all.items.map((i) => i.sku)).toEqual(["BEAN-COL-250", "BEAN-ETH-250", "FILTER-V60-100"]);
  });

  it("answers 400 naming the bad parameter, without a lookup", async () => {
    const { store, lookups } = gatedStore({ slots: 1, queueLimit: 0 });
    const url = await start(store);
    const cases: [string, string][] = [
      ["", "sku"],
      ["?sku=", "sku"],
      ["?sku=bean-eth-250", "sku"],
      ["?sku=BEAN-ETH-250&sku=MUG-ENAMEL", "sku"],
      ["?sku=BEAN-ETH-250&limit=0", "limit"],
      ["?sku=BEAN-ETH-250&limit=11", "limit"],
      ["?sku=BEAN-ETH-250&limit=1.5", "limit"],
      ["?sku=BEAN-ETH-250&limit=three", "limit"],
      ["?sku=BEAN-ETH-250&limit=", "limit"],
      ["?sku=BEAN-ETH-250&limit=2&limit=3", "limit"],
    ];
    for (const [query, field] of cases) {
      const res = await fetch(`${url}/api/recommendations${query}`);
      expect(res.status, query).toBe(400);
      const error = await errorOf(res);
      expect(error.code, query).toBe("VALIDATION");
      expect(error.details?.field, query).toBe(field);
      expect(error.message.startsWith(`${field} `), query).toBe(true);
    }
    expect(lookups()).toBe(0);
  });

  it("answers 400 UNKNOWN_SKU for a product the model does not know", async () => {
    const url = await start(createModelStore({ pairings: PAIRINGS, slots: 1, latencyMs: 0, queueLimit: 1 }));
    const res = await fetch(`${url}/api/recommendations?sku=TEA-GREEN`);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { code: "UNKNOWN_SKU", message: 'sku: no product "TEA-GREEN"', details: { field: "sku", sku: "TEA-GREEN" } } });
  });

  it("answers 503 OVERLOADED with retry-after once the queue is full, and serves the queued ones", async () => {
    const { store, open, lookups } = gatedStore({ slots: 1, queueLimit: 1 });
    const url = await start(store);
    const ask = () => fetch(`${url}/api/recommendations?sku=BEAN-COL-250&limit=1`);
    const running = ask();
    await vi.waitFor(() => expect(store.pool.busy).toBe(1));
    const waiting = ask();
    await vi.waitFor(() => expect(store.pool.queued).toBe(1));

    const refused = await ask();
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(await errorOf(refused)).toEqual({
      code: "OVERLOADED",
      message: "too many recommendations are waiting for the model store; try again shortly",
      details: { queueLimit: 1 },
    });

    open();
    for (const res of await Promise.all([running, waiting])) {
      expect(res.status).toBe(200);
      expect(((await res.json()) as { items: unknown[] }).items).toEqual([{ sku: "FILTER-V60-100", score: 0.58 }]);
    }
    expect(lookups()).toBe(2);
  });

  it("drops a request from the queue when its caller gives up, so it never takes a slot", async () => {
    const { store, open, lookups } = gatedStore({ slots: 1, queueLimit: 5 });
    const url = await start(store);
    const running = fetch(`${url}/api/recommendations?sku=BEAN-DEC-250`);
    await vi.waitFor(() => expect(store.pool.busy).toBe(1));
    // node:http rather than fetch: after an abort, fetch's pool opens a spare connection that
    // holds the server's close() until its headers timeout.
    const abandoned = request(`${url}/api/recommendations?sku=BEAN-DEC-250`, { agent: false });
    abandoned.on("error", () => {});
    abandoned.end();
    await vi.waitFor(() => expect(store.pool.queued).toBe(1));
    abandoned.destroy();
    await vi.waitFor(() => expect(store.pool.queued).toBe(0));

    open();
    expect((await running).status).toBe(200);
    expect(lookups()).toBe(1);
    expect([store.pool.busy, store.pool.queued]).toEqual([0, 0]);
  });

  it("answers the readiness and liveness probes", async () => {
    const url = await start(createModelStore({ pairings: PAIRINGS, slots: 1, latencyMs: 0, queueLimit: 0 }));
    expect(await (await fetch(`${url}/ready`)).json()).toEqual({ status: "ready" });
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: "alive" });
  });
});

describe("loadConfig", () => {
  it("defaults to 4 slots of 20 ms and a queue of 1000", () => {
    expect(loadConfig({})).toEqual({ modelSlots: 4, modelLatencyMs: 20, modelQueueLimit: 1000 });
    expect(loadConfig({ MODEL_SLOTS: "8", MODEL_LATENCY_MS: "0", MODEL_QUEUE_LIMIT: "0" })).toEqual({ modelSlots: 8, modelLatencyMs: 0, modelQueueLimit: 0 });
  });

  it("stops the start naming a malformed variable", () => {
    expect(() => loadConfig({ MODEL_SLOTS: "0" })).toThrow('MODEL_SLOTS must be a whole number from 1 to 1000, got "0"');
    expect(() => loadConfig({ MODEL_LATENCY_MS: "fast" })).toThrow(/^MODEL_LATENCY_MS /);
    expect(() => loadConfig({ MODEL_LATENCY_MS: "" })).toThrow(/^MODEL_LATENCY_MS /);
    expect(() => loadConfig({ MODEL_QUEUE_LIMIT: "-1" })).toThrow(/^MODEL_QUEUE_LIMIT /);
  });
});
