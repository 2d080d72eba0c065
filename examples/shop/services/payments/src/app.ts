// The payments service's HTTP API (internal only, reached through the gateway): charges
// that are idempotent by order id, so orders can retry a charge without charging twice.
import { randomUUID } from "node:crypto";
import { createRouter, HttpError, json } from "@keelson/sdk";
import type { Handler } from "@keelson/sdk";
import { ORDER_ID } from "./charge-store.js";
import type { Charge, ChargeStore } from "./charge-store.js";

export interface PaymentsAppOptions {
  store: ChargeStore;
  declinedCardSuffix: string;
  now?: () => Date;
}

const MAX_AMOUNT = 10_000_000;

/**
 * POST /charges { orderId, amount, card } → 201 charge (200 when repeated), 402 CARD_DECLINED,
 *                                           409 IDEMPOTENCY_CONFLICT for the same order with other terms
 * GET /charges/:orderId                    → 200 charge, 404 when there is none
 */
export function createApp(options: PaymentsAppOptions): Handler {
  const { store, declinedCardSuffix } = options;
  const now = options.now ?? (() => new Date());

  return createRouter({ bodyLimitBytes: 16 * 1024 })
    .post("/charges", async ({ res, body }) => {
      const { orderId, amount, card } = parseCharge(await body());
      const attempt: Charge = {
        id: `ch_${randomUUID()}`,
        orderId,
        amount,
        last4: card.slice(-4),
        status: card.endsWith(declinedCardSuffix) ? "declined" : "approved",
        createdAt: now().toISOString(),
      };
      const { charge, created } = await store.createOnce(attempt);
      if (!created && (charge.amount !== attempt.amount || charge.last4 !== attempt.last4)) {
        throw new HttpError(409, "IDEMPOTENCY_CONFLICT", `order ${orderId} was already charged with a different amount or card`, {
          charge,
        });
      }
      // A repeated request gets the first answer again, decline included.
      if (charge.status === "declined") {
        throw new HttpError(402, "CARD_DECLINED", `the card ending ${charge.last4} was declined`, { charge });
      }
      json(res, created ? 201 : 200, charge);
    })
    .get("/charges/:orderId", async ({ res, params }) => {
      const charge = ORDER_ID.test(params.orderId) ? await store.get(params.orderId) : undefined;
      if (!charge) throw new HttpError(404, "CHARGE_NOT_FOUND", `no charge for order ${params.orderId}`);
      json(res, 200, charge);
    }).handle;
}

function parseCharge(body: unknown): { orderId: string; amount: number; card: string } {
  const fail = (field: string, problem: string) => new HttpError(400, "VALIDATION", `${field} ${problem}`, { field });
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw fail("body", "must be a JSON object");
  const { orderId, amount, card } = body as Record<string, unknown>;
  if (typeof orderId !== "string" || !ORDER_ID.test(orderId)) throw fail("orderId", "must be 1-64 letters, digits, '_' or '-'");
  if (typeof amount !== "number" || !Number.isInteger(amount) || amount < 1 || amount > MAX_AMOUNT) {
    throw fail("amount", `must be a whole number of cents from 1 to ${MAX_AMOUNT}`);
  }
  const digits = typeof card === "string" ? card.replace(/[\s-]/g, "") : "";
  if (!/^\d{12,19}$/.test(digits)) throw fail("card", "must be a card number of 12 to 19 digits");
  return { orderId, amount, card: digits };
}
