// Orders as one JSON file each in the data folder, written atomically (write + rename), so
// every replica of the service sees every order and nobody reads half a file.
import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, readFile, readdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

export type OrderStatus = "pending" | "confirmed" | "rejected" | "failed";

export interface OrderLine {
  sku: string;
  qty: number;
  /** Unit price in euro cents, known once inventory has reserved the line. */
  price?: number;
}

export interface Order {
  id: string;
  status: OrderStatus;
  items: OrderLine[];
  /** Euro cents, known once inventory has reserved the lines. */
  total?: number;
  email: string;
  cardLast4: string;
  chargeId?: string;
  /** Why the order was rejected or failed. */
  reason?: string;
  /** Whether the confirmation message was queued. */
  notified?: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface OrderStore {
  save(order: Order): Promise<void>;
  get(id: string): Promise<Order | undefined>;
  /** The newest orders first. */
  list(limit: number): Promise<Order[]>;
}

/** Order ids start with the creation time in base 36, so their names sort by age. */
export const ORDER_ID = /^ord_[a-z0-9]{8,40}$/;

export function newOrderId(now: Date): string {
  return `ord_${now.getTime().toString(36).padStart(9, "0")}${randomBytes(5).toString("hex")}`;
}

export function createOrderStore(options: { dataDir: string }): OrderStore {
  const dir = join(options.dataDir, "orders");
  const get = async (id: string): Promise<Order | undefined> => {
    if (!ORDER_ID.test(id)) return undefined;
    try {
      return JSON.parse(await readFile(join(dir, `${id}.json`), "utf8")) as Order;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  };
  return {
    async save(order) {
      if (!ORDER_ID.test(order.id)) throw new Error(`not an order id: ${JSON.stringify(order.id)}`);
      await mkdir(dir, { recursive: true });
      const file = join(dir, `${order.id}.json`);
      const tmp = `${file}.${randomUUID()}.tmp`;
      await writeFile(tmp, JSON.stringify(order, undefined, 2));
      await rename(tmp, file);
    },
    get,
    async list(limit) {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw err;
      }
      const ids = names
        .filter((n) => n.endsWith(".json"))
        .map((n) => n.slice(0, -".json".length))
        .filter((id) => ORDER_ID.test(id))
        .sort()
        .reverse()
        .slice(0, limit);
      const orders = await Promise.all(ids.map(get));
      return orders.filter((o): o is Order => o !== undefined);
    },
  };
}
