// The storefront's HTTP handler: the shop page, order receipts, the catalog API and checkout.
// It reads inventory, orders and recommendations through the gateway; the page's order form
// posts to /checkout, which places the order with the orders service (the web front's backend).
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import { createRouter, HttpError, json, ServiceCallError } from "@keelson/sdk";
import type { Handler, Logger, ServiceClient } from "@keelson/sdk";
import type { Client as FlagClient } from "@openfeature/server-sdk";
import { loadCatalog } from "./catalog.js";
import type { CatalogProduct } from "./catalog.js";
import { messagePage, orderPage, shopPage } from "./pages.js";
import type { OrderView } from "./pages.js";
import { PRODUCTS } from "./products.js";
import { boughtTogether, loadPairings } from "./recommendations.js";

export interface StorefrontAppOptions {
  client: ServiceClient;
  logger: Logger;
  shopName: string;
  /** Feature flags (OpenFeature); `express-checkout` picks the checkout form, purchases are tracked against it. */
  flags: FlagClient;
  /** How long the shop page waits for recommendations before it renders without them; defaults to 300 ms. */
  recommendationsTimeoutMs?: number;
}

const ORDER_ID = /^ord_[a-z0-9]{8,40}$/;
/** The product the shop page shows "Often bought together" for: the first one it lists. */
const FEATURED_SKU = Object.keys(PRODUCTS)[0] as string;
/** A visitor's id (a random token in a cookie): what flags split on and experiments count. */
const VISITOR_COOKIE = "shop-visitor";
const VISITOR = /^[A-Za-z0-9_-]{16,64}$/;

/** The visitor id from the request's cookie, or a new one (and the Set-Cookie that keeps it). */
function visitorOf(req: { headers: { cookie?: string | undefined } }): { id: string; setCookie?: string } {
  const found = /(?:^|;\s*)shop-visitor=([^;]+)/.exec(req.headers.cookie ?? "")?.[1];
  if (found !== undefined && VISITOR.test(found)) return { id: found };
  const id = randomBytes(16).toString("base64url");
  return { id, setCookie: `${VISITOR_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000` };
}

/**
 * GET /             → the shop page (200 even when inventory is down: it says so; "Often bought
 *                     together" only when recommendations answers within its short timeout)
 * GET /orders/:id   → the order receipt page, 404 page for an unknown order
 * GET /api/catalog  → 200 { products: [{ sku, name, description, price, stock, inStock }] }, 502 when inventory is down
 * POST /checkout    → places the order with the orders service and relays its answer (201, 400, 402, 409…),
 *                     502 when orders cannot be reached
 */
export function createApp(options: StorefrontAppOptions): Handler {
  const { client, logger, shopName, flags } = options;
  const recommendationsTimeoutMs = options.recommendationsTimeoutMs ?? 300;

  return createRouter()
    .get("/", async ({ req, res }) => {
      const visitor = visitorOf(req);
      if (visitor.setCookie) res.setHeader("set-cookie", visitor.setCookie);
      // Both calls at once, so the page waits for the slower one, not for their sum.
      const catalog = loadCatalog(client).catch((err: unknown): CatalogProduct[] | undefined => {
        // The page still renders: a shop window with a notice beats an error page.
        logger.warn("catalog unavailable; rendering the page without stock", { err });
        return undefined;
      });
      const pairings = loadPairings(client, FEATURED_SKU, { timeoutMs: recommendationsTimeoutMs }).catch((err: unknown) => {
        // Nice to have: when recommendations is slow or down, the page goes without them.
        logger.warn("recommendations unavailable; rendering the page without them", { err });
        return undefined;
      });
      // The experiment: the classic form, or the express one (one button, the quantity preset).
      // Evaluation never throws: without flags every visitor gets "classic".
      const checkout = (await flags.getStringValue("express-checkout", "classic", { targetingKey: visitor.id })) === "express" ? "express" : "classic";
      const products = await catalog;
      const paired = await pairings;
      const together = paired === undefined ? undefined : boughtTogether(FEATURED_SKU, paired, products);
      sendPage(res, 200, (nonce) => shopPage({ shopName, nonce, products, checkout, together }));
    })
    .get("/orders/:id", async ({ res, params }) => {
      const notFound = (nonce: string) => messagePage({ shopName, nonce, title: "Order not found", message: `There is no order ${params.id}.` });
      if (!ORDER_ID.test(params.id)) return sendPage(res, 404, notFound);
      try {
        const order = await client.json<OrderView>("orders", `/api/orders/${params.id}`);
        sendPage(res, 200, (nonce) => orderPage({ shopName, nonce, order }));
      } catch (err) {
        if (err instanceof ServiceCallError && err.status === 404) return sendPage(res, 404, notFound);
        logger.warn("order lookup failed", { orderId: params.id, err });
        sendPage(res, 502, (nonce) =>
          messagePage({ shopName, nonce, title: "Orders are unavailable", message: "Your order is safe; please look again in a moment." }),
        );
      }
    })
    .post("/checkout", async ({ req, res, body }) => {
      const order = await body();
      let answer: Response;
      try {
        answer = await client.call("orders", "/api/orders", { method: "POST", json: order });
      } catch (err) {
        logger.warn("checkout: orders unavailable", { err });
        throw new HttpError(502, "ORDERS_UNAVAILABLE", "orders cannot be placed right now; nothing was charged");
      }
      // A placed order is the experiment's conversion for this visitor.
      if (answer.status === 201) {
        const visitor = visitorOf(req);
        if (!visitor.setCookie) flags.track("purchase", { targetingKey: visitor.id });
      }
      // The orders service's answer is the shopper's answer, status and body alike.
      const text = await answer.text();
      res.statusCode = answer.status;
      res.setHeader("content-type", answer.headers.get("content-type") ?? "application/json; charset=utf-8");
      res.setHeader("cache-control", "no-store");
      res.end(text);
    })
    .get("/api/catalog", async ({ res }) => {
      try {
        json(res, 200, { products: await loadCatalog(client) });
      } catch (err) {
        if (!(err instanceof ServiceCallError)) throw err;
        logger.warn("catalog unavailable", { err });
        throw new HttpError(502, "INVENTORY_UNAVAILABLE", "prices and stock are unavailable right now");
      }
    }).handle;
}

/** Sends a page with a fresh CSP nonce: only our own inline style and script may run. */
function sendPage(res: ServerResponse, status: number, render: (nonce: string) => string): void {
  const nonce = randomBytes(16).toString("base64");
  const body = render(nonce);
  res.statusCode = status;
  res.setHeader("content-type", "text/html; charset=utf-8");
  res.setHeader(
    "content-security-policy",
    `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
  );
  res.setHeader("x-content-type-options", "nosniff");
  res.setHeader("cache-control", "no-store");
  res.setHeader("content-length", Buffer.byteLength(body));
  res.end(body);
}
