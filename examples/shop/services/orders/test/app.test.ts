// Tests for the orders API over real HTTP: the checkout across stand-in inventory, payments
// and notifications behind a gateway stub, the compensations on failure, and the reads.
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createClient, createLogger, serve, startGatewayStub } from "@keelson/sdk";
import type { GatewayStub, ServiceHandle } from "@keelson/sdk";
import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { createOrderStore } from "../src/order-store.js";
import type { Order } from "../src/order-store.js";
import { createFakeShop } from "./fake-services.js";
import type { FakeShop } from "./fake-services.js";

const logger = createLogger({ level: "silent" });
let dir: string;
let shop: FakeShop;
let gateway: GatewayStub;
let orders: ServiceHandle;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "shop-orders-"));
  shop = createFakeShop();
  gateway = await startGatewayStub(shop.services);
  orders = await startReplica();
});
afterEach(async () => {
  await orders.close();
  await gateway.close();
  await rm(dir, { recursive: true, force: true });
});

function startReplica(): Promise<ServiceHandle> {
  // A clock that moves a second per reading keeps order ids (time first) in placing order.
  let tick = 0;
  const app = createApp({
    now: () => new Date(Date.UTC(2025, 2, 1, 10, 0, 0) + 1000 * tick++),
    store: createOrderStore({ dataDir: dir }),
    client: createClient({ gatewayUrl: gateway.url, self: "orders", timeoutMs: 2000, logger }),
    logger,
    maxLines: 5,
  });
  return serve({ handler: app, port: 0, signals: [], logger });
}

interface ErrorAnswer {
  error: { code: string; message: string; details: { field?: string; order?: Order } };
}

function place(body: unknown, headers: Record<string, string> = {}, url = orders.url): Promise<Response> {
  return fetch(`${url}/api/orders`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
}

const good = { items: [{ sku: "BEAN-ETH-250", qty: 2 }, { sku: "MUG-ENAMEL", qty: 1 }], card: "4242 4242 4242 4242", email: "alice@example.com" };

async function storedOrders(): Promise<Order[]> {
  const files = await readdir(join(dir, "orders"));
  return Promise.all(files.map(async (f) => JSON.parse(await readFile(join(dir, "orders", f), "utf8")) as Order));
}

describe("POST /api/orders", () => {
  it("reserves, charges the total with the order id as key, confirms, notifies and answers 201", async () => {
    const res = await place(good, { "x-request-id": "req-checkout-1" });
    expect(res.status).toBe(201);
    const order = (await res.json()) as Order;
    expect(order).toMatchObject({
      status: "confirmed",
      items: [
        { sku: "BEAN-ETH-250", qty: 2, price: 1450 },
        { sku: "MUG-ENAMEL", qty: 1, price: 900 },
      ],
      total: 3800,
      email: "alice@example.com",
      cardLast4: "4242",
      chargeId: "ch_1",
      notified: true,
    });
    expect(order.id).toMatch(/^ord_[a-z0-9]+$/);
    expect(shop.charges).toEqual([{ orderId: order.id, amount: 3800, card: "4242424242424242" }]);
    expect(shop.stock.get("BEAN-ETH-250")?.stock).toBe(23);
    expect(shop.notifications).toHaveLength(1);
    expect(shop.notifications[0]?.to).toBe("alice@example.com");
    expect(shop.notifications[0]?.subject).toBe(`Order ${order.id} confirmed`);
    expect(shop.notifications[0]?.body).toContain("Total: €38.00, charged to the card ending 4242.");

    // Every hop went through the gateway as "orders", carrying the customer's request id.
    expect(gateway.calls.map((c) => `${c.service} ${c.method} ${c.path}`)).toEqual([
      "inventory POST /reservations",
      "payments POST /charges",
      "notifications POST /notifications",
    ]);
    expect(new Set(gateway.calls.map((c) => c.headers["x-request-id"]))).toEqual(new Set(["req-checkout-1"]));
    expect(new Set(gateway.calls.map((c) => c.headers["x-keelson-caller"]))).toEqual(new Set(["orders"]));

    // Stored as a file, without the card number.
    const [stored] = await storedOrders();
    expect(stored).toEqual(order);
    expect(JSON.stringify(stored)).not.toContain("4242424242424242");
  });

  it("rejects with 402 on a declined card, releases the reservation and sends nothing", async () => {
    const res = await place({ ...good, card: "4000 0000 0000 0000" });
    expect(res.status).toBe(402);
    const body = (await res.json()) as ErrorAnswer;
    expect(body.error.code).toBe("PAYMENT_DECLINED");
    expect(body.error.message).toBe("the card ending 0000 was declined");
    expect(body.error.details.order).toMatchObject({ status: "rejected", reason: "card declined", total: 3800 });
    const orderId = body.error.details.order?.id ?? "";
    expect(gateway.calls.map((c) => `${c.method} ${c.path}`)).toContain(`DELETE /reservations/${orderId}`);
    expect(shop.stock.get("BEAN-ETH-250")?.stock).toBe(25);
    expect(shop.notifications).toEqual([]);
    expect((await storedOrders()).map((o) => o.status)).toEqual(["rejected"]);
  });

  it("rejects with 409 when stock is short and charges nothing", async () => {
    const res = await place({ ...good, items: [{ sku: "GRINDER-HAND", qty: 4 }] });
    expect(res.status).toBe(409);
    const body = (await res.json()) as ErrorAnswer;
    expect(body.error.code).toBe("OUT_OF_STOCK");
    expect(body.error.message).toBe("GRINDER-HAND: 4 requested, 3 available");
    expect(body.error.details).toMatchObject({ sku: "GRINDER-HAND", available: 3, order: { status: "rejected" } });
    expect(shop.charges).toEqual([]);
  });

  it("answers 400 naming the field, before any call, for a malformed order", async () => {
    const cases: [unknown, string][] = [
      [{ ...good, items: [] }, "items"],
      [{ ...good, items: [{ sku: "MUG-ENAMEL", qty: 0 }] }, "items[0].qty"],
      [{ ...good, items: [{ sku: "MUG-ENAMEL", qty: 1 }, { sku: "bad sku!", qty: 1 }] }, "items[1].sku"],
      [{ ...good, items: [{ sku: "MUG-ENAMEL", qty: 1 }, { sku: "MUG-ENAMEL", qty: 1 }] }, "items[1].sku"],
      [{ ...good, items: Array.from({ length: 6 }, (_, i) => ({ sku: `S${i}`, qty: 1 })) }, "items"],
      [{ ...good, card: "1234" }, "card"],
      [{ ...good, email: "alice" }, "email"],
      [{ items: good.items, card: good.card }, "email"],
      ["just text", "body"],
    ];
    for (const [body, field] of cases) {
      const res = await place(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const answer = (await res.json()) as ErrorAnswer;
      expect(answer.error.code).toBe("VALIDATION");
      expect(answer.error.details.field).toBe(field);
      expect(answer.error.message.startsWith(`${field} `)).toBe(true);
    }
    expect(gateway.calls).toEqual([]);
  });

  it("answers 400 naming the line when inventory does not know a product", async () => {
    const res = await place({ ...good, items: [{ sku: "MUG-ENAMEL", qty: 1 }, { sku: "TEAPOT", qty: 1 }] });
    expect(res.status).toBe(400);
    const body = (await res.json()) as ErrorAnswer;
    expect(body.error.details.field).toBe("items[1].sku");
    expect(body.error.details.order?.status).toBe("rejected");
  });

  it("retries a failed charge once with the same order id", async () => {
    shop.failCharges = 1;
    const res = await place(good);
    expect(res.status).toBe(201);
    const order = (await res.json()) as Order;
    expect(shop.charges.map((c) => c.orderId)).toEqual([order.id, order.id]);
    expect(order.status).toBe("confirmed");
  });

  it("fails with 502 when payments keeps failing, and releases the stock", async () => {
    shop.failCharges = 2;
    const res = await place(good);
    expect(res.status).toBe(502);
    const body = (await res.json()) as ErrorAnswer;
    expect(body.error.code).toBe("PAYMENT_FAILED");
    expect(body.error.details.order).toMatchObject({ status: "failed", reason: "payment failed" });
    expect(shop.charges).toHaveLength(2);
    expect(shop.reservations.size).toBe(0);
    expect(shop.stock.get("MUG-ENAMEL")?.stock).toBe(12);
  });

  it("answers 503 when inventory has no ready replica", async () => {
    delete shop.services.inventory;
    const res = await place(good);
    expect(res.status).toBe(503);
    const body = (await res.json()) as ErrorAnswer;
    expect(body.error.code).toBe("INVENTORY_UNAVAILABLE");
    expect(body.error.details.order?.status).toBe("failed");
    expect(shop.charges).toEqual([]);
  });

  it("still confirms the order when the confirmation cannot be queued", async () => {
    shop.notificationsDown = true;
    const res = await place(good);
    expect(res.status).toBe(201);
    expect(((await res.json()) as Order)).toMatchObject({ status: "confirmed", notified: false });
  });
});

describe("GET /api/orders", () => {
  it("reads an order placed through another replica of the service", async () => {
    const other = await startReplica();
    try {
      const placed = (await (await place(good, {}, other.url)).json()) as Order;
      const res = await fetch(`${orders.url}/api/orders/${placed.id}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual(placed);
    } finally {
      await other.close();
    }
  });

  it("answers 404 for an unknown or impossible id", async () => {
    for (const id of ["ord_doesnotexist00", "..%2F..%2Fetc%2Fpasswd", "x"]) {
      const res = await fetch(`${orders.url}/api/orders/${id}`);
      expect(res.status, id).toBe(404);
      expect(((await res.json()) as ErrorAnswer).error.code).toBe("ORDER_NOT_FOUND");
    }
  });

  it("lists summaries newest first, without email or card", async () => {
    const ids: string[] = [];
    for (const qty of [1, 2, 3]) {
      const order = (await (await place({ ...good, items: [{ sku: "MUG-ENAMEL", qty }] })).json()) as Order;
      ids.push(order.id);
    }
    const res = await fetch(`${orders.url}/api/orders?limit=2`);
    const { orders: list } = (await res.json()) as { orders: Record<string, unknown>[] };
    expect(list.map((o) => o.id)).toEqual([ids[2], ids[1]]);
    expect(list[0]).toEqual({ id: ids[2], status: "confirmed", total: 2700, lines: 1, createdAt: expect.any(String) as unknown });
    expect(JSON.stringify(list)).not.toContain("alice");
    expect((await fetch(`${orders.url}/api/orders?limit=0`)).status).toBe(400);
  });
});

describe("loadConfig", () => {
  it("defaults the timeouts and limits and names a bad variable", () => {
    expect(loadConfig({ KEELSON_DATA_DIR: "/d" })).toEqual({ dataDir: "/d", callTimeoutMs: 3000, maxLines: 20 });
    expect(() => loadConfig({ KEELSON_DATA_DIR: "/d", CALL_TIMEOUT_MS: "soon" })).toThrow('CALL_TIMEOUT_MS must be a whole number from 1 to 60000, got "soon"');
    expect(() => loadConfig({})).toThrow(/KEELSON_DATA_DIR/);
  });
});
