// The catalog: the storefront's product copy joined with inventory's prices and stock.
import type { ServiceClient } from "@keelson/sdk";
import { PRODUCTS } from "./products.js";

export interface CatalogProduct {
  sku: string;
  name: string;
  description: string;
  /** Euro cents. */
  price: number;
  stock: number;
  inStock: boolean;
}

interface InventoryListing {
  items: { sku: string; price: number; stock: number }[];
}

/** Asks inventory for prices and stock; rejects (with a ServiceCallError) when it cannot answer. */
export async function loadCatalog(client: ServiceClient): Promise<CatalogProduct[]> {
  const { items } = await client.json<InventoryListing>("inventory", "/api/inventory");
  const bySku = new Map(items.map((i) => [i.sku, i]));
  return Object.entries(PRODUCTS).flatMap(([sku, copy]) => {
    const item = bySku.get(sku);
    return item ? [{ sku, ...copy, price: item.price, stock: item.stock, inStock: item.stock > 0 }] : [];
  });
}

export function formatEuro(cents: number): string {
  return `€${(cents / 100).toFixed(2)}`;
}
