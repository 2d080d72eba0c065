// Charge records, one JSON file per order in the data folder. A record is created with
// link(2), which fails when the name exists: two replicas racing on the same order id
// cannot both charge, and nobody ever reads a half-written record.
import { randomUUID } from "node:crypto";
import { link, mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

export type ChargeStatus = "approved" | "declined";

export interface Charge {
  id: string;
  orderId: string;
  /** Euro cents. */
  amount: number;
  /** Only the last four digits are kept; the card number is never stored. */
  last4: string;
  status: ChargeStatus;
  createdAt: string;
}

export interface ChargeStore {
  get(orderId: string): Promise<Charge | undefined>;
  /** Stores `charge` unless one exists for its order; returns whichever is stored. */
  createOnce(charge: Charge): Promise<{ charge: Charge; created: boolean }>;
}

/** Order ids become file names, so callers must have checked them against this. */
export const ORDER_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function createChargeStore(options: { dataDir: string }): ChargeStore {
  const dir = join(options.dataDir, "charges");
  const pathOf = (orderId: string) => {
    if (!ORDER_ID.test(orderId)) throw new Error(`not an order id: ${JSON.stringify(orderId)}`);
    return join(dir, `${orderId}.json`);
  };
  const get = async (orderId: string): Promise<Charge | undefined> => {
    try {
      return JSON.parse(await readFile(pathOf(orderId), "utf8")) as Charge;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  };
  return {
    get,
    async createOnce(charge) {
      await mkdir(dir, { recursive: true });
      const final = pathOf(charge.orderId);
      // Unique per attempt: two attempts for one order must not share (and clobber) a temp file.
      const tmp = `${final}.${randomUUID()}.tmp`;
      await writeFile(tmp, JSON.stringify(charge, undefined, 2));
      try {
        await link(tmp, final);
        return { charge, created: true };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        const existing = await get(charge.orderId);
        if (!existing) throw new Error(`charge for ${charge.orderId} exists but could not be read`);
        return { charge: existing, created: false };
      } finally {
        await unlink(tmp).catch(() => {});
      }
    },
  };
}
