// The stock the shop opens with, written to the stock file on the first change.
import type { StockItem } from "./stock-store.js";

/** Prices are integer euro cents. */
export const SEED_STOCK: readonly StockItem[] = [
  { sku: "BEAN-ETH-250", price: 1450, stock: 25 },
  { sku: "BEAN-COL-250", price: 1200, stock: 30 },
  { sku: "BEAN-DEC-250", price: 1300, stock: 8 },
  { sku: "FILTER-V60-100", price: 650, stock: 40 },
  { sku: "MUG-ENAMEL", price: 900, stock: 12 },
  { sku: "GRINDER-HAND", price: 5900, stock: 3 },
];
