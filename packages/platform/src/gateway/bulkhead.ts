// The bulkhead of a service: at most `maxConcurrent` requests in flight; up to `maxQueue` more
// wait (first come, first served) for at most their timeout, and anything beyond is refused at
// once, so one slow service cannot tie up every connection and socket of the gateway.

/** A request waiting for a slot. Exactly one of the two is called, once. */
export interface BulkheadWaiter {
  /** A slot is now held for the waiter; it must `leave()` when done. */
  admit(): void;
  /** It waited for its whole timeout; no slot is held. */
  expire(): void;
}

/** Timers the queue uses; node's by default, a hand-driven fake in tests. */
export interface BulkheadTimers {
  setTimeout(callback: (ticket: QueueTicket) => void, ms: number, ticket: QueueTicket): unknown;
  clearTimeout(handle: unknown): void;
}

/** A place in the queue; pass it to `cancel` when the waiter gives up (the client left). */
export interface QueueTicket {
  readonly waiter: BulkheadWaiter;
}

interface Entry extends QueueTicket {
  readonly bulkhead: Bulkhead;
  settled: boolean;
  timer: unknown;
}

const nodeTimers: BulkheadTimers = {
  setTimeout: (callback, ms, ticket) => setTimeout(callback, ms, ticket),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

function expireEntry(ticket: QueueTicket): void {
  const entry = ticket as Entry;
  entry.bulkhead.expire(entry);
}

export interface BulkheadConfig {
  maxConcurrent: number;
  maxQueue: number;
  queueTimeoutMs: number;
}

export class Bulkhead {
  /** Slots held now. */
  active = 0;
  /** Waiters in the queue now. */
  queued = 0;
  private queue: Array<Entry | undefined> = [];
  private head = 0;

  constructor(
    readonly config: BulkheadConfig,
    private readonly timers: BulkheadTimers = nodeTimers,
  ) {}

  /** Takes a slot if one is free. */
  tryEnter(): boolean {
    if (this.active >= this.config.maxConcurrent) return false;
    this.active++;
    return true;
  }

  /**
   * Queues a waiter for at most `timeoutMs` (default `queueTimeoutMs`); undefined when the
   * queue is full (the caller refuses the request).
   */
  enqueue(waiter: BulkheadWaiter, timeoutMs = this.config.queueTimeoutMs): QueueTicket | undefined {
    if (this.queued >= this.config.maxQueue) return undefined;
    const entry: Entry = { waiter, bulkhead: this, settled: false, timer: undefined };
    entry.timer = this.timers.setTimeout(expireEntry, timeoutMs, entry);
    this.queue.push(entry);
    this.queued++;
    return entry;
  }

  /** Removes a waiter that gave up; nothing is called on it. */
  cancel(ticket: QueueTicket): void {
    const entry = ticket as Entry;
    if (entry.settled) return;
    this.settle(entry);
  }

  /** Frees a slot: the oldest waiter gets it, else it becomes free. */
  leave(): void {
    while (this.head < this.queue.length) {
      const entry = this.queue[this.head];
      this.queue[this.head++] = undefined;
      if (entry === undefined || entry.settled) continue;
      this.settle(entry);
      this.compact();
      // The slot passes straight to the waiter: `active` stays as it is.
      entry.waiter.admit();
      return;
    }
    this.compact();
    if (this.active > 0) this.active--;
  }

  /** @internal Called by the queue timer. */
  expire(entry: Entry): void {
    if (entry.settled) return;
    entry.timer = undefined;
    this.settle(entry);
    entry.waiter.expire();
  }

  private settle(entry: Entry): void {
    entry.settled = true;
    this.queued--;
    if (entry.timer !== undefined) this.timers.clearTimeout(entry.timer);
    entry.timer = undefined;
  }

  private compact(): void {
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
