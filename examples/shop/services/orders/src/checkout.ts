// Placing an order across services: reserve stock at inventory, charge at payments (the
// order id is the idempotency key), confirm, then ask notifications to send a confirmation.
// A failure after the reservation releases it again, so stock is not lost to dead orders.
import { HttpError, ServiceCallError } from "@keelson/sdk";
import type { Logger, ServiceClient } from "@keelson/sdk";
import type { OrderInput } from "./order-input.js";
import { newOrderId } from "./order-store.js";
import type { Order, OrderStore } from "./order-store.js";

export interface Checkout {
  /** Resolves with the confirmed order, or throws an HttpError whose details carry the order. */
  place(input: OrderInput): Promise<Order>;
}

interface Reservation {
  items: { sku: string; qty: number; price: number }[];
  total: number;
}

interface Charge {
  id: string;
  status: string;
}

export function createCheckout(deps: { store: OrderStore; client: ServiceClient; logger: Logger; now?: () => Date }): Checkout {
  const { store, client, logger } = deps;
  const now = deps.now ?? (() => new Date());

  const update = async (order: Order, change: Partial<Order>): Promise<Order> => {
    const next: Order = { ...order, ...change, updatedAt: now().toISOString() };
    await store.save(next);
    return next;
  };

  const release = async (order: Order) => {
    try {
      await client.json("inventory", `/reservations/${encodeURIComponent(order.id)}`, { method: "DELETE" });
    } catch (err) {
      // 404: nothing was held. Anything else leaves units reserved that someone must put back.
      if (err instanceof ServiceCallError && err.status === 404) return;
      logger.error("could not release the reservation; stock stays reserved", { orderId: order.id, err });
    }
  };

  const charge = async (order: Order, card: string): Promise<Charge> => {
    const request = () => client.json<Charge>("payments", "/charges", { json: { orderId: order.id, amount: order.total, card } });
    try {
      return await request();
    } catch (err) {
      // No answer or a 5xx leaves the outcome open; asking again with the same order id is
      // safe because payments answers a repeated charge with the first result.
      if (!(err instanceof ServiceCallError) || (err.status !== undefined && err.status < 500)) throw err;
      logger.warn("charge failed; retrying once with the same order id", { orderId: order.id, err });
      return request();
    }
  };

  return {
    async place(input) {
      const createdAt = now();
      let order: Order = {
        id: newOrderId(createdAt),
        status: "pending",
        items: input.items.map((i) => ({ ...i })),
        email: input.email,
        cardLast4: input.card.slice(-4),
        createdAt: createdAt.toISOString(),
        updatedAt: createdAt.toISOString(),
      };
      await store.save(order);

      let reservation: Reservation;
      try {
        reservation = await client.json<Reservation>("inventory", "/reservations", { json: { orderId: order.id, items: input.items } });
      } catch (err) {
        const e = err instanceof ServiceCallError ? err : undefined;
        const details = errorDetails(e?.body);
        if (e?.code === "OUT_OF_STOCK") {
          order = await update(order, { status: "rejected", reason: `out of stock: ${String(details.sku)}` });
          throw new HttpError(409, "OUT_OF_STOCK", errorMessage(e.body) ?? "not enough stock", { ...details, order });
        }
        if (e?.code === "UNKNOWN_SKU") {
          const field = typeof details.field === "string" ? details.field : "items";
          order = await update(order, { status: "rejected", reason: `unknown product ${String(details.sku)}` });
          throw new HttpError(400, "VALIDATION", `${field} is not a product we sell`, { field, order });
        }
        order = await update(order, { status: "failed", reason: "inventory unavailable" });
        logger.error("reservation failed", { orderId: order.id, err });
        throw new HttpError(503, "INVENTORY_UNAVAILABLE", "stock could not be reserved right now; please try again", { order });
      }
      order = await update(order, { items: reservation.items.map(({ sku, qty, price }) => ({ sku, qty, price })), total: reservation.total });

      let paid: Charge;
      try {
        paid = await charge(order, input.card);
      } catch (err) {
        await release(order);
        if (err instanceof ServiceCallError && err.status === 402) {
          order = await update(order, { status: "rejected", reason: "card declined" });
          throw new HttpError(402, "PAYMENT_DECLINED", `the card ending ${order.cardLast4} was declined`, { order });
        }
        // Two attempts failed without an answer; a charge that went through unseen would
        // need reconciling against payments' GET /charges/:orderId.
        order = await update(order, { status: "failed", reason: "payment failed" });
        logger.error("payment failed", { orderId: order.id, err });
        throw new HttpError(502, "PAYMENT_FAILED", "the payment could not be completed; you have not been charged", { order });
      }

      order = await update(order, { status: "confirmed", chargeId: paid.id });
      let notified = false;
      try {
        await client.json("notifications", "/notifications", {
          json: { to: order.email, subject: `Order ${order.id} confirmed`, body: confirmationText(order) },
        });
        notified = true;
      } catch (err) {
        // The order stands without the email; a missing confirmation is not worth a refund.
        logger.warn("confirmation could not be queued", { orderId: order.id, err });
      }
      return update(order, { notified });
    },
  };
}

function errorMessage(body: unknown): string | undefined {
  const message = (body as { error?: { message?: unknown } } | undefined)?.error?.message;
  return typeof message === "string" ? message : undefined;
}

function errorDetails(body: unknown): Record<string, unknown> {
  const details = (body as { error?: { details?: unknown } } | undefined)?.error?.details;
  return typeof details === "object" && details !== null ? (details as Record<string, unknown>) : {};
}

export function formatEuro(cents: number): string {
  return `€${(cents / 100).toFixed(2)}`;
}

function confirmationText(order: Order): string {
  const lines = order.items.map((l) => `  ${l.qty} × ${l.sku} at ${formatEuro(l.price ?? 0)}`);
  return [
    `Thank you for your order ${order.id}.`,
    "",
    ...lines,
    "",
    `Total: ${formatEuro(order.total ?? 0)}, charged to the card ending ${order.cardLast4}.`,
  ].join("\n");
}
