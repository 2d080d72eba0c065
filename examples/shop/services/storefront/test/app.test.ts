// Tests for the storefront over real HTTP with stand-in inventory, orders and recommendations
// behind a gateway stub: the shop page, the catalog join, receipts, escaping and degraded modes.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createClient, createLogger, createRouter, HttpError, json, serve, startGatewayStub } from "@keelson/sdk";
import type { GatewayStub, ServiceHandle } from "@keelson/sdk";
import { OpenFeature, TypedInMemoryProvider } from "@openfeature/server-sdk";
import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { html } from "../src/html.js";

const logger = createLogger({ level: "silent" });
let inventoryItems: { sku: string; price: number; stock: number }[];
let orders: Record<string, unknown>;
let ordersDown = false;
/** What the stand-in recommendations answers; "slow" waits until the test opens `recommendationsGate`. */
let recommendationsMode: "ok" | "error" | "slow";
let openRecommendations: () => void;
let recommendationsGate: Promise<void>;
let gateway: GatewayStub;
let storefront: ServiceHandle;
// The experiment flag, as OpenFeature's own in-memory provider: one known visitor gets express.
// (A rule on a prefix would also catch the random ids new visitors get, now and then.)
const EXPRESS_VISITOR = "express-visitor-0000";
const flags = OpenFeature.getClient("storefront-test");

beforeEach(async () => {
  inventoryItems = [
    { sku: "BEAN-ETH-250", price: 1450, stock: 25 },
    { sku: "GRINDER-HAND", price: 5900, stock: 0 },
    // Inventory knows it, the storefront has no words for it: not shown.
    { sku: "SECRET-PROTOTYPE", price: 100, stock: 1 },
  ];
  orders = {};
  ordersDown = false;
  recommendationsMode = "ok";
  recommendationsGate = new Promise((resolve) => (openRecommendations = resolve));
  gateway = await startGatewayStub({
    inventory: createRouter().get("/api/inventory", ({ res }) => json(res, 200, { items: inventoryItems })).handle,
    orders: createRouter()
      .get("/api/orders/:id", ({ res, params }) => {
        const order = orders[params.id];
        if (!order) throw new HttpError(404, "ORDER_NOT_FOUND", "no such order");
        json(res, 200, order);
      })
      .post("/api/orders", async ({ res, body }) => {
        if (ordersDown) return void res.socket?.destroy();
        const input = (await body()) as { card?: string };
        if (input.card?.endsWith("0000")) throw new HttpError(402, "PAYMENT_DECLINED", "the card ending 0000 was declined");
        json(res, 201, { id: "ord_0000000009", status: "confirmed", placed: input });
      }).handle,
    recommendations: createRouter().get("/api/recommendations", async ({ res, query }) => {
      if (recommendationsMode === "error") throw new HttpError(503, "OVERLOADED", "too many recommendations are waiting for the model store");
      if (recommendationsMode === "slow") await recommendationsGate;
      json(res, 200, {
        sku: query.get("sku"),
        items: [
          { sku: "FILTER-V60-100", score: 0.62 },
          // Sold out in this inventory: left out.
          { sku: "GRINDER-HAND", score: 0.41 },
          // No words for it in the storefront: left out.
          { sku: "SECRET-PROTOTYPE", score: 0.3 },
          { sku: "MUG-ENAMEL", score: 0.27 },
          { sku: "BEAN-COL-250", score: 0.22 },
        ],
      });
    }).handle,
  });
  const client = createClient({ gatewayUrl: gateway.url, self: "storefront", timeoutMs: 2000, logger });
  await OpenFeature.setProviderAndWait(
    "storefront-test",
    new TypedInMemoryProvider({
      "express-checkout": { variants: { classic: "classic", express: "express" }, defaultVariant: "classic", disabled: false, contextEvaluator: (ctx) => (ctx.targetingKey === EXPRESS_VISITOR ? "express" : "classic") },
    }),
  );
  storefront = await serve({ handler: createApp({ client, logger, shopName: "Bean & Burr", flags, recommendationsTimeoutMs: 10_000 }), port: 0, signals: [], logger });
});
afterEach(async () => {
  // A test may leave a recommendation waiting; the stub's close must not wait for it.
  openRecommendations();
  await storefront.close();
  await gateway.close();
});

describe("GET /api/catalog", () => {
  it("joins the product copy with inventory's prices and stock", async () => {
    const res = await fetch(`${storefront.url}/api/catalog`, { headers: { "x-request-id": "req-cat" } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      products: [
        { sku: "BEAN-ETH-250", name: "Ethiopia Yirgacheffe, 250 g", description: "Washed, light roast: jasmine, lemon, black tea.", price: 1450, stock: 25, inStock: true },
        { sku: "GRINDER-HAND", name: "Hand grinder", description: "Steel conical burrs, 40 steps of adjustment.", price: 5900, stock: 0, inStock: false },
      ],
    });
    expect(gateway.calls.map((c) => [c.service, c.path, c.headers["x-keelson-caller"], c.headers["x-request-id"]])).toEqual([
      ["inventory", "/api/inventory", "storefront", "req-cat"],
    ]);
  });

  it("answers 502 when inventory cannot answer", async () => {
    // A gateway with no inventory replica behind it.
    const stub = await startGatewayStub({});
    const client = createClient({ gatewayUrl: stub.url, self: "storefront", logger });
    const lonely = await serve({ handler: createApp({ client, logger, shopName: "x", flags }), port: 0, signals: [], logger });
    try {
      const res = await fetch(`${lonely.url}/api/catalog`);
      expect(res.status).toBe(502);
      expect(await res.json()).toEqual({ error: { code: "INVENTORY_UNAVAILABLE", message: "prices and stock are unavailable right now" } });
    } finally {
      await lonely.close();
      await stub.close();
    }
  });
});

describe("GET /", () => {
  it("renders products with price and stock, the order form and a CSP nonce on the script", async () => {
    const res = await fetch(`${storefront.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const page = await res.text();
    expect(page).toContain("<title>Bean &amp; Burr</title>");
    expect(page).toContain("<strong>Ethiopia Yirgacheffe, 250 g</strong>");
    expect(page).toContain("€14.50");
    expect(page).toContain('data-stock="BEAN-ETH-250">25 left</td>');
    expect(page).toMatch(/data-stock="GRINDER-HAND">Sold out<\/td>/);
    expect(page).toMatch(/data-sku="GRINDER-HAND" min="0" max="0" value="0" disabled/);
    expect(page).not.toContain("SECRET-PROTOTYPE");
    expect(page).toContain('fetch("/checkout"');
    const nonce = /script-src 'nonce-([^']+)'/.exec(res.headers.get("content-security-policy") ?? "")?.[1];
    expect(nonce).toBeDefined();
    expect(page).toContain(`<script nonce="${nonce}">`);
    // A fresh nonce per page.
    const again = await fetch(`${storefront.url}/`);
    expect(again.headers.get("content-security-policy")).not.toContain(String(nonce));
  });

  it("still renders, with a notice and no order form, when inventory is down", async () => {
    const stub = await startGatewayStub({});
    const client = createClient({ gatewayUrl: stub.url, self: "storefront", logger });
    const lonely = await serve({ handler: createApp({ client, logger, shopName: "x", flags }), port: 0, signals: [], logger });
    try {
      const res = await fetch(`${lonely.url}/`);
      expect(res.status).toBe(200);
      const page = await res.text();
      expect(page).toContain("Prices and stock are unavailable right now");
      expect(page).toContain("<li>Hand grinder</li>");
      expect(page).not.toContain('<form id="order">');
      expect(page).not.toContain("<script");
    } finally {
      await lonely.close();
      await stub.close();
    }
  });
});

describe("GET / and recommendations", () => {
  /** The "Often bought together" section of a page, or undefined. */
  const togetherOf = (page: string) => /<section class="together"[\s\S]*?<\/section>/.exec(page)?.[0];

  it("shows what is often bought with the first product, only what is for sale and in stock", async () => {
    inventoryItems.push({ sku: "FILTER-V60-100", price: 650, stock: 40 }, { sku: "MUG-ENAMEL", price: 900, stock: 12 }, { sku: "BEAN-COL-250", price: 1200, stock: 30 });
    const res = await fetch(`${storefront.url}/`, { headers: { "x-request-id": "req-page" } });
    expect(res.status).toBe(200);
    const together = togetherOf(await res.text());
    expect(together).toBeDefined();
    expect(together).toContain('data-together="BEAN-ETH-250"');
    expect(together).toContain("<h2>Often bought together</h2>");
    expect(together).toContain("With Ethiopia Yirgacheffe, 250 g:");
    // The three best of what is left: the grinder is sold out, the prototype has no words.
    expect([...(together ?? "").matchAll(/data-recommended="([^"]+)"/g)].map((m) => m[1])).toEqual(["FILTER-V60-100", "MUG-ENAMEL", "BEAN-COL-250"]);
    expect(together).toContain('<li data-recommended="FILTER-V60-100">V60 paper filters, 100 <span class="hint">(in 62% of its orders)</span></li>');
    const call = gateway.calls.find((c) => c.service === "recommendations");
    expect([call?.path, call?.headers["x-keelson-caller"], call?.headers["x-request-id"]]).toEqual([
      "/api/recommendations?sku=BEAN-ETH-250&limit=5",
      "storefront",
      "req-page",
    ]);
  });

  it("leaves the block out, and the rest of the page as it was, when recommendations fails", async () => {
    recommendationsMode = "error";
    const lines: string[] = [];
    const client = createClient({ gatewayUrl: gateway.url, self: "storefront", logger });
    const watched = await serve({
      handler: createApp({ client, logger: createLogger({ level: "warn", write: (line) => lines.push(line) }), shopName: "x", flags }),
      port: 0,
      signals: [],
      logger,
    });
    try {
      const res = await fetch(`${watched.url}/`);
      expect(res.status).toBe(200);
      const page = await res.text();
      expect(togetherOf(page)).toBeUndefined();
      expect(page).not.toContain("Often bought together");
      expect(page).toContain('<form id="order">');
      expect(page).toContain('data-stock="BEAN-ETH-250">25 left</td>');
      expect(lines.map((l) => (JSON.parse(l) as { level: string; msg: string }))).toEqual([
        expect.objectContaining({ level: "warn", msg: "recommendations unavailable; rendering the page without them" }),
      ]);
    } finally {
      await watched.close();
    }
  });

  it("does not wait past its timeout for a slow recommendations: the page comes first, without the block", async () => {
    recommendationsMode = "slow";
    const client = createClient({ gatewayUrl: gateway.url, self: "storefront", logger });
    const impatient = await serve({ handler: createApp({ client, logger, shopName: "x", flags, recommendationsTimeoutMs: 50 }), port: 0, signals: [], logger });
    try {
      const res = await fetch(`${impatient.url}/`);
      // Recommendations is still holding its answer (the gate stays shut until the test ends).
      expect(res.status).toBe(200);
      const page = await res.text();
      expect(togetherOf(page)).toBeUndefined();
      expect(page).toContain('<form id="order">');
      expect(gateway.calls.filter((c) => c.service === "recommendations")).toHaveLength(1);
    } finally {
      await impatient.close();
    }
  });

  it("leaves the block out when nothing paired is for sale", async () => {
    // Only the grinder (sold out) and the prototype (no words) would be left.
    const res = await fetch(`${storefront.url}/`);
    expect(togetherOf(await res.text())).toBeUndefined();
    expect(gateway.calls.some((c) => c.service === "recommendations")).toBe(true);
  });
});

describe("POST /checkout", () => {
  const checkout = (body: unknown) =>
    fetch(`${storefront.url}/checkout`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  it("places the order with the orders service and relays its answer", async () => {
    const res = await checkout({ items: [{ sku: "BEAN-ETH-250", qty: 1 }], card: "4242424242424242", email: "a@example.com" });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ id: "ord_0000000009", status: "confirmed", placed: { items: [{ sku: "BEAN-ETH-250", qty: 1 }], card: "4242424242424242", email: "a@example.com" } });
    expect(gateway.calls.filter((c) => c.service === "orders" && c.method === "POST").length).toBe(1);
  });

  it("relays a refusal with its status and body", async () => {
    const res = await checkout({ items: [], card: "4000000000000000", email: "a@example.com" });
    expect(res.status).toBe(402);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("PAYMENT_DECLINED");
  });

  it("answers 502 when orders cannot be reached", async () => {
    ordersDown = true;
    const res = await checkout({ items: [] });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("ORDERS_UNAVAILABLE");
  });
});

describe("GET /orders/:id", () => {
  it("renders the receipt with product names, prices and total", async () => {
    orders.ord_0000000001 = {
      id: "ord_0000000001",
      status: "confirmed",
      items: [{ sku: "BEAN-ETH-250", qty: 2, price: 1450 }],
      total: 2900,
      cardLast4: "4242",
      createdAt: "2025-03-01T10:00:00.000Z",
    };
    const res = await fetch(`${storefront.url}/orders/ord_0000000001`);
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain("<h2>Order ord_0000000001</h2>");
    expect(page).toContain('<strong class="status-confirmed">confirmed</strong>');
    expect(page).toContain("<td>Ethiopia Yirgacheffe, 250 g</td><td class=\"num\">2</td><td class=\"num\">€14.50</td>");
    expect(page).toContain('<th class="num">€29.00</th>');
    expect(page).toContain("card ending 4242");
  });

  it("escapes what the orders service says", async () => {
    orders.ord_0000000002 = {
      id: "ord_0000000002",
      status: "rejected",
      reason: '<script>alert("x")</script>',
      items: [{ sku: "<img src=x onerror=alert(1)>", qty: 1 }],
      createdAt: "2025-03-01T10:00:00.000Z",
    };
    const page = await (await fetch(`${storefront.url}/orders/ord_0000000002`)).text();
    expect(page).toContain("(&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;)");
    expect(page).toContain("<td>&lt;img src=x onerror=alert(1)&gt;</td>");
    expect(page).not.toContain("<img");
  });

  it("answers a 404 page for an unknown order, and for an impossible id without asking orders", async () => {
    const unknown = await fetch(`${storefront.url}/orders/ord_0000000404`);
    expect(unknown.status).toBe(404);
    expect(await unknown.text()).toContain("There is no order ord_0000000404.");
    const impossible = await fetch(`${storefront.url}/orders/..%2Fadmin`);
    expect(impossible.status).toBe(404);
    expect(gateway.calls.map((c) => c.path)).toEqual(["/api/orders/ord_0000000404"]);
  });
});

describe("html and loadConfig", () => {
  it("escapes interpolations but not nested html", () => {
    const name = `O'Brien & <Co>`;
    expect(html`<p title="${name}">${html`<b>${name}</b>`}${[1, 2]}${undefined}${false}</p>`.value).toBe(
      `<p title="O&#39;Brien &amp; &lt;Co&gt;"><b>O&#39;Brien &amp; &lt;Co&gt;</b>12</p>`,
    );
  });

  it("defaults the shop name and rejects a bad timeout", () => {
    expect(loadConfig({})).toEqual({ shopName: "Keelson Coffee", callTimeoutMs: 2000, recommendationsTimeoutMs: 300 });
    expect(loadConfig({ RECOMMENDATIONS_TIMEOUT_MS: "150" }).recommendationsTimeoutMs).toBe(150);
    expect(() => loadConfig({ CALL_TIMEOUT_MS: "-1" })).toThrow(/CALL_TIMEOUT_MS/);
    expect(() => loadConfig({ RECOMMENDATIONS_TIMEOUT_MS: "soon" })).toThrow('RECOMMENDATIONS_TIMEOUT_MS must be a whole number from 1 to 60000, got "soon"');
  });
});

describe("the express-checkout experiment", () => {
  it("gives a new visitor a cookie and the flag's variant of the checkout form, and keeps it on the next visit", async () => {
    const first = await fetch(`${storefront.url}/`);
    const cookie = first.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^shop-visitor=[A-Za-z0-9_-]{16,64}; Path=\/; HttpOnly; SameSite=Lax/);
    expect(await first.text()).toContain('data-checkout="classic"');
    const again = await fetch(`${storefront.url}/`, { headers: { cookie: cookie.split(";")[0] as string } });
    expect(again.headers.get("set-cookie")).toBeNull();

    const express = await fetch(`${storefront.url}/`, { headers: { cookie: `shop-visitor=${EXPRESS_VISITOR}` } });
    const page = await express.text();
    expect(page).toContain('data-checkout="express"');
    expect(page).toContain(">Buy now</button>");
    // Express presets one unit of the first product in stock.
    expect(page).toMatch(/data-sku="BEAN-ETH-250" min="0" max="25" value="1"/);
  });

  it("a broken or missing flag leaves the classic form", async () => {
    const noFlags = OpenFeature.getClient("no-provider-here");
    const client = createClient({ gatewayUrl: gateway.url, self: "storefront", timeoutMs: 2000, logger });
    const bare = await serve({ handler: createApp({ client, logger, shopName: "x", flags: noFlags }), port: 0, signals: [], logger });
    try {
      expect(await (await fetch(`${bare.url}/`, { headers: { cookie: `shop-visitor=${EXPRESS_VISITOR}` } })).text()).toContain('data-checkout="classic"');
    } finally {
      await bare.close();
    }
  });
});
