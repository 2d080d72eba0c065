// The orders service's HTTP API: place an order (the checkout runs across inventory,
// payments and notifications), read one, list the latest.
import { createRouter, HttpError, json } from "@keelson/sdk";
import type { Handler, Logger, ServiceClient } from "@keelson/sdk";
import { createCheckout } from "./checkout.js";
import { parseOrderInput } from "./order-input.js";
import type { OrderStore } from "./order-store.js";

export interface OrdersAppOptions {
  store: OrderStore;
  client: ServiceClient;
  logger: Logger;
  maxLines: number;
  now?: () => Date;
}

const LIST_LIMIT = 100;

/**
 * POST /api/orders { items: [{ sku, qty }], card, email } → 201 order; 400, 402, 409, 502, 503 with the order in details
 * GET /api/orders/:id                                     → 200 order, 404
 * GET /api/orders?limit=N                                 → 200 { orders: [summary] }, newest first
 */
export function createApp(options: OrdersAppOptions): Handler {
  const { store, maxLines } = options;
  const checkout = createCheckout(options);
  return createRouter({ bodyLimitBytes: 64 * 1024 })
    .post("/api/orders", async ({ res, body }) => {
      const input = parseOrderInput(await body(), maxLines);
      json(res, 201, await checkout.place(input));
    })
    .get("/api/orders/:id", async ({ res, params }) => {
      const order = await store.get(params.id);
      if (!order) throw new HttpError(404, "ORDER_NOT_FOUND", `no order ${params.id}`);
      json(res, 200, order);
    })
    .get("/api/orders", async ({ res, query }) => {
      const asked = query.get("limit");
      const limit = asked === null ? 20 : Number(asked);
      if (!Number.isInteger(limit) || limit < 1 || limit > LIST_LIMIT) {
        throw new HttpError(400, "VALIDATION", `limit must be a whole number from 1 to ${LIST_LIMIT}`, { field: "limit" });
      }
      const orders = await store.list(limit);
      // The list is public, so it carries no email or card digits; the order page has those.
      json(res, 200, {
        orders: orders.map((o) => ({ id: o.id, status: o.status, total: o.total, lines: o.items.length, createdAt: o.createdAt })),
      });
    }).handle;
}
