// A stand-in for a remote model store: each lookup holds one of the replica's connection
// slots for a fixed latency, so a replica serves about slots / latency lookups per second and
// anything beyond that waits in line. Timers, not CPU: the work is waiting on the network.
import type { Pairing } from "./pairings.js";
import { createSlotPool } from "./slot-pool.js";
import type { SlotPool } from "./slot-pool.js";

export interface ModelStoreOptions {
  /** Product → products often bought with it, highest score first. */
  pairings: Readonly<Record<string, readonly Pairing[]>>;
  /** Concurrent lookups per replica (connections to the store). */
  slots: number;
  /** How long each lookup takes once it has a slot. */
  latencyMs: number;
  /** Lookups that may wait for a slot; more are refused with a PoolFullError. */
  queueLimit: number;
  /** Waits `ms`; defaults to setTimeout (vitest's fake timers replace it in tests). */
  delay?: (ms: number) => Promise<void>;
}

export interface ModelStore {
  /**
   * The products often bought with `sku`, highest score first; undefined for a product the
   * store does not know. Rejects with a PoolFullError when the queue is full, and with the
   * signal's reason when aborted while still waiting for a slot.
   */
  lookup(sku: string, options?: { signal?: AbortSignal }): Promise<readonly Pairing[] | undefined>;
  /** The slots and the queue in front of them. */
  readonly pool: Pick<SlotPool, "busy" | "queued">;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createModelStore(options: ModelStoreOptions): ModelStore {
  const { pairings, latencyMs } = options;
  const delay = options.delay ?? sleep;
  const pool = createSlotPool({ slots: options.slots, queueLimit: options.queueLimit });
  return {
    lookup: (sku, lookupOptions = {}) =>
      pool.run(async () => {
        await delay(latencyMs);
        return Object.hasOwn(pairings, sku) ? pairings[sku] : undefined;
      }, lookupOptions),
    pool,
  };
}
