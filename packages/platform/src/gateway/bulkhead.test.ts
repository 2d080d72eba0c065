// Tests for the bulkhead: slots, the FIFO queue, timeouts and cancellation, with fake timers.
import { describe, expect, it } from "vitest";
import type { BulkheadTimers, BulkheadWaiter, QueueTicket } from "./bulkhead.js";
import { Bulkhead } from "./bulkhead.js";

function fakeTimers() {
  const pending = new Map<number, { at: number; fire: () => void }>();
  let id = 0;
  let now = 0;
  const timers: BulkheadTimers = {
    setTimeout(callback, ms, ticket) {
      pending.set(++id, { at: now + ms, fire: () => callback(ticket) });
      return id;
    },
    clearTimeout(handle) {
      pending.delete(handle as number);
    },
  };
  const advance = (ms: number) => {
    now += ms;
    for (const [key, t] of [...pending].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at > now) continue;
      pending.delete(key);
      t.fire();
    }
  };
  return { timers, advance, pending };
}

function waiter(name: string, log: string[]): BulkheadWaiter {
  return { admit: () => log.push(`${name} admitted`), expire: () => log.push(`${name} expired`) };
}

describe("Bulkhead", () => {
  it("hands out maxConcurrent slots, queues up to maxQueue, refuses the rest", () => {
    const { timers } = fakeTimers();
    const b = new Bulkhead({ maxConcurrent: 2, maxQueue: 1, queueTimeoutMs: 100 }, timers);
    const log: string[] = [];
    expect(b.tryEnter()).toBe(true);
    expect(b.tryEnter()).toBe(true);
    expect(b.tryEnter()).toBe(false);
    expect(b.enqueue(waiter("w1", log))).toBeDefined();
    expect(b.enqueue(waiter("w2", log))).toBeUndefined();
    expect({ active: b.active, queued: b.queued }).toEqual({ active: 2, queued: 1 });
    b.leave();
    expect(log).toEqual(["w1 admitted"]);
    expect({ active: b.active, queued: b.queued }).toEqual({ active: 2, queued: 0 });
    b.leave();
    b.leave();
    expect(b.active).toBe(0);
  });

  it("admits waiters in arrival order and expires one that waited too long", () => {
    const { timers, advance, pending } = fakeTimers();
    const b = new Bulkhead({ maxConcurrent: 1, maxQueue: 3, queueTimeoutMs: 100 }, timers);
    const log: string[] = [];
    b.tryEnter();
    b.enqueue(waiter("a", log));
    advance(50);
    b.enqueue(waiter("b", log));
    advance(60);
    expect(log).toEqual(["a expired"]);
    b.leave();
    expect(log).toEqual(["a expired", "b admitted"]);
    expect(pending.size).toBe(0);
    expect(b.active).toBe(1);
  });

  it("forgets a cancelled waiter: no call, no slot, its timer cleared", () => {
    const { timers, advance, pending } = fakeTimers();
    const b = new Bulkhead({ maxConcurrent: 1, maxQueue: 2, queueTimeoutMs: 100 }, timers);
    const log: string[] = [];
    b.tryEnter();
    const t: QueueTicket = b.enqueue(waiter("gone", log))!;
    b.enqueue(waiter("next", log));
    b.cancel(t);
    expect(pending.size).toBe(1);
    b.leave();
    expect(log).toEqual(["next admitted"]);
    advance(1_000);
    expect(log).toEqual(["next admitted"]);
    expect(b.queued).toBe(0);
  });
});
