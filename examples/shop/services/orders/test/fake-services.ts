// Small in-memory stand-ins for inventory, payments and notifications that answer like the
// real services, record what they were asked and can be told to fail.
import { createRouter, HttpError, json } from "@keelson/sdk";
import type { Handler } from "@keelson/sdk";

interface Line {
  sku: string;
  qty: number;
}

export interface FakeShop {
  stock: Map<string, { price: number; stock: number }>;
  reservations: Map<string, Line[]>;
  charges: { orderId: string; amount: number; card: string }[];
  notifications: { to: string; subject: string; body: string }[];
  /** The next this-many charge calls answer 500. */
  failCharges: number;
  notificationsDown: boolean;
  services: Record<string, Handler>;
}

export function createFakeShop(): FakeShop {
  const shop: FakeShop = {
    stock: new Map([
      ["BEAN-ETH-250", { price: 1450, stock: 25 }],
      ["MUG-ENAMEL", { price: 900, stock: 12 }],
      ["GRINDER-HAND", { price: 5900, stock: 3 }],
    ]),
    reservations: new Map(),
    charges: [],
    notifications: [],
    failCharges: 0,
    notificationsDown: false,
    services: {},
  };

  const inventory = createRouter()
    .post("/reservations", async ({ res, body }) => {
      const { orderId, items } = (await body()) as { orderId: string; items: Line[] };
      for (const [i, { sku, qty }] of items.entries()) {
        const item = shop.stock.get(sku);
        if (!item) throw new HttpError(400, "UNKNOWN_SKU", `items[${i}].sku: no product "${sku}"`, { field: `items[${i}].sku`, sku });
        if (item.stock < qty) {
          throw new HttpError(409, "OUT_OF_STOCK", `${sku}: ${qty} requested, ${item.stock} available`, { field: `items[${i}].qty`, sku, requested: qty, available: item.stock });
        }
      }
      const lines = items.map(({ sku, qty }) => {
        const item = shop.stock.get(sku) as { price: number; stock: number };
        item.stock -= qty;
        return { sku, qty, price: item.price };
      });
      shop.reservations.set(orderId, items);
      json(res, 201, { orderId, items: lines, total: lines.reduce((n, l) => n + l.qty * l.price, 0), createdAt: new Date().toISOString() });
    })
    .delete("/reservations/:orderId", ({ res, params }) => {
      const lines = shop.reservations.get(params.orderId);
      if (!lines) throw new HttpError(404, "RESERVATION_NOT_FOUND", "none");
      for (const l of lines) (shop.stock.get(l.sku) as { stock: number }).stock += l.qty;
      shop.reservations.delete(params.orderId);
      json(res, 200, { released: { orderId: params.orderId } });
    });

  const charged = new Map<string, { id: string; status: string }>();
  const payments = createRouter().post("/charges", async ({ res, body }) => {
    const request = (await body()) as { orderId: string; amount: number; card: string };
    shop.charges.push(request);
    if (shop.failCharges > 0) {
      shop.failCharges--;
      throw new HttpError(500, "INTERNAL", "processor hiccup");
    }
    if (request.card.endsWith("0000")) throw new HttpError(402, "CARD_DECLINED", "the card ending 0000 was declined");
    const existing = charged.get(request.orderId);
    if (existing) return json(res, 200, existing);
    const charge = { id: `ch_${charged.size + 1}`, status: "approved", orderId: request.orderId, amount: request.amount };
    charged.set(request.orderId, charge);
    json(res, 201, charge);
  });

  const notifications = createRouter().post("/notifications", async ({ res, body }) => {
    if (shop.notificationsDown) throw new HttpError(500, "INTERNAL", "outbox disk full");
    const message = (await body()) as { to: string; subject: string; body: string };
    shop.notifications.push(message);
    json(res, 202, { id: `msg_${shop.notifications.length}`, ...message });
  });

  shop.services = { inventory: inventory.handle, payments: payments.handle, notifications: notifications.handle };
  return shop;
}
