// Tests for the inventory API over real HTTP with a temporary data folder: listing,
// all-or-nothing reservations, releases, validation and concurrent reservations.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger, serve } from "@keelson/sdk";
import type { ServiceHandle } from "@keelson/sdk";
import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { SEED_STOCK } from "../src/seed.js";
import { createStockStore } from "../src/stock-store.js";

let dir: string;
let handle: ServiceHandle;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "shop-inventory-"));
  handle = await startReplica();
});
afterEach(async () => {
  await handle.close();
  await rm(dir, { recursive: true, force: true });
});

/** One replica on the shared data folder; tests may start a second to act as another process. */
function startReplica(): Promise<ServiceHandle> {
  const store = createStockStore({ dataDir: dir, seed: SEED_STOCK, now: () => new Date("2025-03-01T10:00:00.000Z") });
  return serve({ handler: createApp({ store, lowStockThreshold: 3 }), port: 0, signals: [], logger: createLogger({ level: "silent" }) });
}

async function stockOf(sku: string, url = handle.url): Promise<number | undefined> {
  const body = (await (await fetch(`${url}/api/inventory`)).json()) as { items: { sku: string; stock: number }[] };
  return body.items.find((i) => i.sku === sku)?.stock;
}

function reserve(orderId: string, items: unknown, url = handle.url): Promise<Response> {
  return fetch(`${url}/reservations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ orderId, items }) });
}

describe("GET /api/inventory", () => {
  it("lists the seed stock sorted by sku and flags low stock", async () => {
    const res = await fetch(`${handle.url}/api/inventory`);
    expect(res.status).toBe(200);
    const { items } = (await res.json()) as { items: { sku: string; price: number; stock: number; low: boolean }[] };
    expect(items.map((i) => i.sku)).toEqual(["BEAN-COL-250", "BEAN-DEC-250", "BEAN-ETH-250", "FILTER-V60-100", "GRINDER-HAND", "MUG-ENAMEL"]);
    expect(items.find((i) => i.sku === "GRINDER-HAND")).toEqual({ sku: "GRINDER-HAND", price: 5900, stock: 3, low: true });
    expect(items.find((i) => i.sku === "MUG-ENAMEL")?.low).toBe(false);
  });
});

describe("POST /reservations", () => {
  it("takes the units, prices the lines and persists the change", async () => {
    const res = await reserve("ord_1", [
      { sku: "BEAN-ETH-250", qty: 2 },
      { sku: "MUG-ENAMEL", qty: 1 },
    ]);
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({
      orderId: "ord_1",
      items: [
        { sku: "BEAN-ETH-250", qty: 2, price: 1450 },
        { sku: "MUG-ENAMEL", qty: 1, price: 900 },
      ],
      total: 3800,
      createdAt: "2025-03-01T10:00:00.000Z",
    });
    expect(await stockOf("BEAN-ETH-250")).toBe(23);
    const file = JSON.parse(await readFile(join(dir, "stock.json"), "utf8")) as { items: Record<string, { stock: number }>; reservations: Record<string, unknown> };
    expect(file.items["MUG-ENAMEL"]?.stock).toBe(11);
    expect(Object.keys(file.reservations)).toEqual(["ord_1"]);
  });

  it("answers a repeated request with the first reservation and takes nothing twice", async () => {
    expect((await reserve("ord_2", [{ sku: "MUG-ENAMEL", qty: 2 }])).status).toBe(201);
    const again = await reserve("ord_2", [{ sku: "MUG-ENAMEL", qty: 2 }]);
    expect(again.status).toBe(200);
    expect(((await again.json()) as { total: number }).total).toBe(1800);
    expect(await stockOf("MUG-ENAMEL")).toBe(10);
    const different = await reserve("ord_2", [{ sku: "MUG-ENAMEL", qty: 3 }]);
    expect(different.status).toBe(409);
    expect(((await different.json()) as { error: { code: string } }).error.code).toBe("RESERVATION_CONFLICT");
  });

  it("answers 409 OUT_OF_STOCK and leaves every line untouched", async () => {
    const res = await reserve("ord_3", [
      { sku: "BEAN-COL-250", qty: 5 },
      { sku: "GRINDER-HAND", qty: 4 },
    ]);
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({
      error: {
        code: "OUT_OF_STOCK",
        message: "GRINDER-HAND: 4 requested, 3 available",
        details: { field: "items[1].qty", sku: "GRINDER-HAND", requested: 4, available: 3 },
      },
    });
    expect(await stockOf("BEAN-COL-250")).toBe(30);
    expect(await stockOf("GRINDER-HAND")).toBe(3);
  });

  it("counts a sku listed twice in one order against the same stock", async () => {
    const res = await reserve("ord_4", [
      { sku: "GRINDER-HAND", qty: 2 },
      { sku: "GRINDER-HAND", qty: 2 },
    ]);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { details: { available: number } } }).error.details.available).toBe(1);
  });

  it("answers 400 naming the field for an unknown sku or a bad line", async () => {
    const unknown = await reserve("ord_5", [{ sku: "NOPE", qty: 1 }]);
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toEqual({
      error: { code: "UNKNOWN_SKU", message: 'items[0].sku: no product "NOPE"', details: { field: "items[0].sku", sku: "NOPE" } },
    });
    const cases: [unknown, string][] = [
      [[{ sku: "MUG-ENAMEL", qty: 0 }], "items[0].qty"],
      [[{ sku: "MUG-ENAMEL", qty: 1.5 }], "items[0].qty"],
      [[{ qty: 1 }], "items[0].sku"],
      [[], "items"],
    ];
    for (const [items, field] of cases) {
      const res = await reserve("ord_6", items);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { details: { field: string } } }).error.details.field).toBe(field);
    }
    const badId = await reserve("../../etc", [{ sku: "MUG-ENAMEL", qty: 1 }]);
    expect(((await badId.json()) as { error: { details: { field: string } } }).error.details.field).toBe("orderId");
  });

  it("never sells more than there is when replicas reserve at the same time", async () => {
    // A second replica on the same folder stands in for an overlapping process during a deploy.
    const other = await startReplica();
    try {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => reserve(`ord_c${i}`, [{ sku: "GRINDER-HAND", qty: 1 }], i % 2 === 0 ? handle.url : other.url)),
      );
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([201, 201, 201, 409, 409, 409, 409, 409, 409, 409]);
      expect(await stockOf("GRINDER-HAND")).toBe(0);
    } finally {
      await other.close();
    }
  });
});

describe("DELETE /reservations/:orderId", () => {
  it("puts the units back once and answers 404 after that", async () => {
    await reserve("ord_7", [{ sku: "BEAN-DEC-250", qty: 8 }]);
    expect(await stockOf("BEAN-DEC-250")).toBe(0);
    const res = await fetch(`${handle.url}/reservations/ord_7`, { method: "DELETE" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { released: { total: number } }).released.total).toBe(10400);
    expect(await stockOf("BEAN-DEC-250")).toBe(8);
    const again = await fetch(`${handle.url}/reservations/ord_7`, { method: "DELETE" });
    expect(again.status).toBe(404);
    expect(await stockOf("BEAN-DEC-250")).toBe(8);
  });
});

describe("loadConfig", () => {
  it("requires the data folder and a sane threshold", () => {
    expect(loadConfig({ KEELSON_DATA_DIR: "/d" })).toEqual({ dataDir: "/d", lowStockThreshold: 3 });
    expect(loadConfig({ KEELSON_DATA_DIR: "/d", LOW_STOCK_THRESHOLD: "0" }).lowStockThreshold).toBe(0);
    expect(() => loadConfig({})).toThrow(/KEELSON_DATA_DIR/);
    expect(() => loadConfig({ KEELSON_DATA_DIR: "/d", LOW_STOCK_THRESHOLD: "few" })).toThrow('LOW_STOCK_THRESHOLD must be a whole number >= 0, got "few"');
  });
});
