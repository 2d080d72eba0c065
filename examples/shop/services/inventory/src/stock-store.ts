// Stock levels and reservations kept in one JSON file in the data folder. Every change
// re-reads the file under a lock and replaces it atomically (write + rename), so readers
// never see half a file and a reservation across several items is all or nothing.
import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { withFileLock } from "./file-lock.js";

export interface StockItem {
  sku: string;
  /** Unit price in euro cents. */
  price: number;
  /** Units available to reserve. */
  stock: number;
}

export interface ReservationLine {
  sku: string;
  qty: number;
  /** Unit price in euro cents at the time of the reservation. */
  price: number;
}

export interface Reservation {
  orderId: string;
  items: ReservationLine[];
  /** Sum of qty × price, in euro cents. */
  total: number;
  createdAt: string;
}

export type ReserveResult =
  | { ok: true; reservation: Reservation; created: boolean }
  | { ok: false; reason: "unknown_sku"; index: number; sku: string }
  | { ok: false; reason: "out_of_stock"; index: number; sku: string; requested: number; available: number }
  | { ok: false; reason: "conflict"; existing: Reservation };

export interface StockStore {
  list(): Promise<StockItem[]>;
  /** Takes every line or none; asking again for the same order returns the first reservation. */
  reserve(orderId: string, items: readonly { sku: string; qty: number }[]): Promise<ReserveResult>;
  /** Puts a reservation's units back; undefined when there is none for the order. */
  release(orderId: string): Promise<Reservation | undefined>;
}

interface StockFile {
  version: 1;
  items: Record<string, StockItem>;
  reservations: Record<string, Reservation>;
}

export function createStockStore(options: { dataDir: string; seed: readonly StockItem[]; now?: () => Date }): StockStore {
  const file = join(options.dataDir, "stock.json");
  const lockFile = join(options.dataDir, "stock.lock");
  const now = options.now ?? (() => new Date());
  // Changes from this process queue here instead of spinning on the lock file.
  let queue: Promise<unknown> = Promise.resolve();

  const load = async (): Promise<StockFile> => {
    try {
      return JSON.parse(await readFile(file, "utf8")) as StockFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      return { version: 1, items: Object.fromEntries(options.seed.map((i) => [i.sku, { ...i }])), reservations: {} };
    }
  };

  const save = async (data: StockFile): Promise<void> => {
    const tmp = `${file}.${randomUUID()}.tmp`;
    await writeFile(tmp, JSON.stringify(data, undefined, 2));
    await rename(tmp, file);
  };

  const change = <T>(fn: (data: StockFile) => { result: T; write: boolean }): Promise<T> => {
    const run = queue.then(async () => {
      await mkdir(options.dataDir, { recursive: true });
      return withFileLock(lockFile, async () => {
        const data = await load();
        const { result, write } = fn(data);
        if (write) await save(data);
        return result;
      });
    });
    queue = run.catch(() => {});
    return run;
  };

  return {
    async list() {
      const data = await load();
      return Object.values(data.items).sort((a, b) => a.sku.localeCompare(b.sku));
    },

    reserve(orderId, items) {
      return change<ReserveResult>((data) => {
        const existing = data.reservations[orderId];
        if (existing) {
          const same =
            existing.items.length === items.length && existing.items.every((line, i) => line.sku === items[i]?.sku && line.qty === items[i]?.qty);
          return { result: same ? { ok: true, reservation: existing, created: false } : { ok: false, reason: "conflict", existing }, write: false };
        }
        // Check every line before touching any, so a failure leaves the stock as it was.
        const lines: ReservationLine[] = [];
        for (const [index, { sku, qty }] of items.entries()) {
          const item = data.items[sku];
          if (!item) return { result: { ok: false, reason: "unknown_sku", index, sku }, write: false };
          const alreadyInOrder = lines.filter((l) => l.sku === sku).reduce((n, l) => n + l.qty, 0);
          if (item.stock - alreadyInOrder < qty) {
            return { result: { ok: false, reason: "out_of_stock", index, sku, requested: qty, available: item.stock - alreadyInOrder }, write: false };
          }
          lines.push({ sku, qty, price: item.price });
        }
        for (const line of lines) (data.items[line.sku] as StockItem).stock -= line.qty;
        const reservation: Reservation = {
          orderId,
          items: lines,
          total: lines.reduce((sum, l) => sum + l.qty * l.price, 0),
          createdAt: now().toISOString(),
        };
        data.reservations[orderId] = reservation;
        return { result: { ok: true, reservation, created: true }, write: true };
      });
    },

    release(orderId) {
      return change((data) => {
        const reservation = data.reservations[orderId];
        if (!reservation) return { result: undefined, write: false };
        for (const line of reservation.items) {
          const item = data.items[line.sku];
          if (item) item.stock += line.qty;
        }
        delete data.reservations[orderId];
        return { result: reservation, write: true };
      });
    },
  };
}
