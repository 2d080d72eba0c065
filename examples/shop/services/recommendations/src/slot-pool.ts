// A fixed number of slots for concurrent work, with a bounded first-in-first-out queue for
// the rest: what caps one replica's throughput at slots / latency and makes load pile up
// as in-flight requests (the measure the autoscaler watches) instead of as CPU.

export interface SlotPoolOptions {
  /** Work that may run at once. */
  slots: number;
  /** Callers that may wait for a slot; one more is refused with a PoolFullError. */
  queueLimit: number;
}

export interface RunOptions {
  /** Aborting while still queued gives up the place in the queue (rejects with the signal's reason). */
  signal?: AbortSignal;
}

export interface SlotPool {
  /**
   * Runs `work` in a free slot, after everyone who asked before (FIFO). Rejects with a
   * PoolFullError, without running it, when `queueLimit` callers are already waiting.
   *
   * @example
   * const pool = createSlotPool({ slots: 4, queueLimit: 1000 });
   * const answer = await pool.run(() => fetchFromModelStore(sku));
   */
  run<T>(work: () => Promise<T>, options?: RunOptions): Promise<T>;
  /** Slots in use now. */
  readonly busy: number;
  /** Callers waiting for a slot now. */
  readonly queued: number;
}

/** The queue is full: the caller should come back later (or go to another replica). */
export class PoolFullError extends Error {
  readonly queueLimit: number;

  constructor(queueLimit: number) {
    super(`all slots are busy and ${queueLimit} callers are already waiting`);
    this.name = "PoolFullError";
    this.queueLimit = queueLimit;
  }
}

interface Waiter {
  /** Hands the waiter a slot; false when it gave up (aborted) in the meantime. */
  take(): boolean;
}

export function createSlotPool(options: SlotPoolOptions): SlotPool {
  const { slots, queueLimit } = options;
  if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`slots must be a whole number >= 1, got ${slots}`);
  if (!Number.isInteger(queueLimit) || queueLimit < 0) throw new RangeError(`queueLimit must be a whole number >= 0, got ${queueLimit}`);
  let busy = 0;
  let queued = 0;
  // An array with a moving head: shift() on a long queue would copy it on every release.
  let waiters: (Waiter | undefined)[] = [];
  let head = 0;

  /** A finished run passes its slot straight to the next live waiter, so nobody can jump the queue. */
  const release = () => {
    while (head < waiters.length) {
      const next = waiters[head];
      waiters[head++] = undefined;
      if (next?.take()) {
        // Drop the spent front now and then, so a queue that never empties does not grow forever.
        if (head >= 1024 && head * 2 >= waiters.length) {
          waiters = waiters.slice(head);
          head = 0;
        }
        return;
      }
    }
    waiters = [];
    head = 0;
    busy--;
  };

  const acquire = (signal: AbortSignal | undefined): Promise<void> => {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    if (busy < slots) {
      busy++;
      return Promise.resolve();
    }
    if (queued >= queueLimit) return Promise.reject(new PoolFullError(queueLimit));
    queued++;
    return new Promise<void>((resolve, reject) => {
      let waiting = true;
      const onAbort = () => {
        if (!waiting) return;
        waiting = false;
        queued--;
        reject(signal?.reason as Error);
      };
      waiters.push({
        take: () => {
          if (!waiting) return false;
          waiting = false;
          queued--;
          signal?.removeEventListener("abort", onAbort);
          resolve();
          return true;
        },
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  };

  return {
    async run(work, runOptions = {}) {
      await acquire(runOptions.signal);
      try {
        return await work();
      } finally {
        release();
      }
    },
    get busy() {
      return busy;
    },
    get queued() {
      return queued;
    },
  };
}
