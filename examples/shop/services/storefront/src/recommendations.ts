// "Often bought together" on the shop page: the recommendations service's pairings for a
// product, kept to products the storefront has words for (and, when the stock is known, has in stock).
import type { ServiceClient } from "@keelson/sdk";
import type { CatalogProduct } from "./catalog.js";
import { PRODUCTS } from "./products.js";

export interface Pairing {
  sku: string;
  /** Share of orders with the product that also had this one, 0 to 1. */
  score: number;
}

export interface BoughtTogether {
  /** The product the pairings are for. */
  sku: string;
  name: string;
  items: { sku: string; name: string; score: number }[];
}

/** How many the page shows; it asks for a few more, as some may be sold out. */
const SHOWN = 3;
const ASKED = 5;

/** Asks recommendations for `sku`'s pairings; rejects (a ServiceCallError) on any failure or past `timeoutMs`. */
export async function loadPairings(client: ServiceClient, sku: string, options: { timeoutMs: number }): Promise<Pairing[]> {
  const answer = await client.json<{ items?: unknown }>("recommendations", `/api/recommendations?sku=${encodeURIComponent(sku)}&limit=${ASKED}`, {
    timeoutMs: options.timeoutMs,
  });
  if (!Array.isArray(answer?.items)) throw new TypeError("recommendations answered without an items list");
  return answer.items.filter((i): i is Pairing => typeof i === "object" && i !== null && typeof i.sku === "string" && typeof i.score === "number");
}

/**
 * What the page shows for `sku`: pairings of products we sell (in stock, when `products` is
 * known), at most 3; undefined when none is left to show.
 */
export function boughtTogether(sku: string, pairings: readonly Pairing[], products: readonly CatalogProduct[] | undefined): BoughtTogether | undefined {
  const name = PRODUCTS[sku]?.name;
  if (name === undefined) return undefined;
  const inStock = products === undefined ? undefined : new Set(products.filter((p) => p.inStock).map((p) => p.sku));
  const items = pairings
    .filter((p) => p.sku !== sku && Object.hasOwn(PRODUCTS, p.sku) && (inStock === undefined || inStock.has(p.sku)))
    .slice(0, SHOWN)
    .map((p) => ({ sku: p.sku, name: (PRODUCTS[p.sku] as { name: string }).name, score: p.score }));
  return items.length === 0 ? undefined : { sku, name, items };
}
