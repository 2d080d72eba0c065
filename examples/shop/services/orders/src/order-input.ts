// Validation of a new order as the customer sends it; every problem names its field.
import { HttpError } from "@keelson/sdk";

export interface OrderInput {
  items: { sku: string; qty: number }[];
  /** Digits only. */
  card: string;
  email: string;
}

const SKU = /^[A-Za-z0-9-]{1,40}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Checks and normalizes a POST /api/orders body, or throws a 400 VALIDATION naming the field. */
export function parseOrderInput(body: unknown, maxLines: number): OrderInput {
  const fail = (field: string, problem: string) => new HttpError(400, "VALIDATION", `${field} ${problem}`, { field });
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw fail("body", "must be a JSON object { items, card, email }");
  const { items, card, email } = body as Record<string, unknown>;

  if (!Array.isArray(items) || items.length === 0) throw fail("items", "must be a non-empty list of { sku, qty }");
  if (items.length > maxLines) throw fail("items", `must have at most ${maxLines} lines`);
  const seen = new Map<string, number>();
  const lines = items.map((line: unknown, i) => {
    if (typeof line !== "object" || line === null || Array.isArray(line)) throw fail(`items[${i}]`, "must be an object { sku, qty }");
    const { sku, qty } = line as Record<string, unknown>;
    if (typeof sku !== "string" || !SKU.test(sku)) throw fail(`items[${i}].sku`, "must be a product code (letters, digits, '-')");
    const first = seen.get(sku);
    if (first !== undefined) throw fail(`items[${i}].sku`, `repeats items[${first}].sku; put the whole quantity on one line`);
    seen.set(sku, i);
    if (typeof qty !== "number" || !Number.isInteger(qty) || qty < 1 || qty > 99) throw fail(`items[${i}].qty`, "must be a whole number from 1 to 99");
    return { sku, qty };
  });

  const digits = typeof card === "string" ? card.replace(/[\s-]/g, "") : "";
  if (!/^\d{12,19}$/.test(digits)) throw fail("card", "must be a card number of 12 to 19 digits");
  if (typeof email !== "string" || email.length > 254 || !EMAIL.test(email)) throw fail("email", "must be an email address");
  return { items: lines, card: digits, email };
}
