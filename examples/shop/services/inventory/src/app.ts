// The inventory service's HTTP API: the public stock listing and the internal reservation
// endpoints the orders service calls through the gateway.
import { createRouter, HttpError, json } from "@keelson/sdk";
import type { Handler } from "@keelson/sdk";
import type { StockStore } from "./stock-store.js";

export interface InventoryAppOptions {
  store: StockStore;
  lowStockThreshold: number;
}

const ORDER_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_LINES = 100;

/**
 * GET /api/inventory                 → 200 { items: [{ sku, price, stock, low }] }
 * POST /reservations {orderId, items} → 201 reservation (200 when repeated), 409 OUT_OF_STOCK
 * DELETE /reservations/:orderId       → 200 { released }, 404 when there is none
 */
export function createApp(options: InventoryAppOptions): Handler {
  const { store, lowStockThreshold } = options;
  return createRouter({ bodyLimitBytes: 64 * 1024 })
    .get("/api/inventory", async ({ res }) => {
      const items = await store.list();
      json(res, 200, { items: items.map((i) => ({ ...i, low: i.stock <= lowStockThreshold })) });
    })
    .post("/reservations", async ({ res, body }) => {
      const { orderId, items } = parseReservation(await body());
      const result = await store.reserve(orderId, items);
      if (result.ok) return json(res, result.created ? 201 : 200, result.reservation);
      switch (result.reason) {
        case "unknown_sku":
          throw new HttpError(400, "UNKNOWN_SKU", `items[${result.index}].sku: no product ${JSON.stringify(result.sku)}`, {
            field: `items[${result.index}].sku`,
            sku: result.sku,
          });
        case "out_of_stock":
          throw new HttpError(409, "OUT_OF_STOCK", `${result.sku}: ${result.requested} requested, ${result.available} available`, {
            field: `items[${result.index}].qty`,
            sku: result.sku,
            requested: result.requested,
            available: result.available,
          });
        case "conflict":
          throw new HttpError(409, "RESERVATION_CONFLICT", `order ${orderId} already holds a different reservation`, { existing: result.existing });
      }
    })
    .delete("/reservations/:orderId", async ({ res, params }) => {
      const released = await store.release(params.orderId);
      if (!released) throw new HttpError(404, "RESERVATION_NOT_FOUND", `no reservation for order ${params.orderId}`);
      json(res, 200, { released });
    }).handle;
}

function parseReservation(body: unknown): { orderId: string; items: { sku: string; qty: number }[] } {
  const fail = (field: string, problem: string) => new HttpError(400, "VALIDATION", `${field} ${problem}`, { field });
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw fail("body", "must be a JSON object");
  const { orderId, items } = body as Record<string, unknown>;
  if (typeof orderId !== "string" || !ORDER_ID.test(orderId)) throw fail("orderId", "must be 1-64 letters, digits, '_' or '-'");
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_LINES) throw fail("items", `must be a list of 1 to ${MAX_LINES} lines`);
  const lines = items.map((line: unknown, i) => {
    if (typeof line !== "object" || line === null) throw fail(`items[${i}]`, "must be an object { sku, qty }");
    const { sku, qty } = line as Record<string, unknown>;
    if (typeof sku !== "string" || sku === "") throw fail(`items[${i}].sku`, "must be a non-empty string");
    if (typeof qty !== "number" || !Number.isInteger(qty) || qty < 1 || qty > 1000) throw fail(`items[${i}].qty`, "must be a whole number from 1 to 1000");
    return { sku, qty };
  });
  return { orderId, items: lines };
}
