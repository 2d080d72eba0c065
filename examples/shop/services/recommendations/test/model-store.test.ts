// Unit tests for the simulated model store, on vitest's fake timers: each lookup holds a slot
// for the latency, so one replica's throughput is bounded by slots / latency.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createModelStore } from "../src/model-store.js";
import { PAIRINGS } from "../src/pairings.js";
import { PoolFullError } from "../src/slot-pool.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("createModelStore", () => {
  it("answers after the latency with the product's pairings, and undefined for an unknown product", async () => {
    const store = createModelStore({ pairings: PAIRINGS, slots: 4, latencyMs: 20, queueLimit: 10 });
    let answer: unknown = "pending";
    void store.lookup("MUG-ENAMEL").then((a) => (answer = a));
    await vi.advanceTimersByTimeAsync(19);
    expect(answer).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    expect(answer).toEqual(PAIRINGS["MUG-ENAMEL"]);
    const unknown = store.lookup("TEA-GREEN");
    await vi.advanceTimersByTimeAsync(20);
    expect(await unknown).toBeUndefined();
    // Only own keys: nothing inherited from Object.prototype is a product.
    const inherited = store.lookup("constructor");
    await vi.advanceTimersByTimeAsync(20);
    expect(await inherited).toBeUndefined();
  });

  it("completes at most slots / latency lookups per unit of time, in arrival order", async () => {
    const store = createModelStore({ pairings: PAIRINGS, slots: 4, latencyMs: 20, queueLimit: 1000 });
    const done: number[] = [];
    const all = Array.from({ length: 100 }, (_, i) => store.lookup("BEAN-ETH-250").then(() => done.push(i)));
    expect([store.pool.busy, store.pool.queued]).toEqual([4, 96]);
    // 4 slots of 20 ms each: 4 lookups every 20 ms, i.e. 200 per second.
    for (let window = 1; window <= 5; window++) {
      await vi.advanceTimersByTimeAsync(20);
      expect(done.length).toBe(4 * window);
    }
    expect(done.slice(0, 20)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await vi.advanceTimersByTimeAsync(400);
    await Promise.all(all);
    expect(done.length).toBe(100);
    expect(done).toEqual([...done].sort((a, b) => a - b));
    expect([store.pool.busy, store.pool.queued]).toEqual([0, 0]);
  });

  it("one second of a burst larger than a replica can take: 200 answered, the queue full, the rest refused", async () => {
    const store = createModelStore({ pairings: PAIRINGS, slots: 4, latencyMs: 20, queueLimit: 300 });
    let answered = 0;
    let refused = 0;
    const burst = Array.from({ length: 400 }, () =>
      store.lookup("GRINDER-HAND").then(
        () => answered++,
        (err: unknown) => {
          if (err instanceof PoolFullError) refused++;
        },
      ),
    );
    await vi.advanceTimersByTimeAsync(0);
    // 4 running + 300 waiting; the other 96 are turned away at once.
    expect(refused).toBe(96);
    await vi.advanceTimersByTimeAsync(1000);
    expect(answered).toBe(200);
    // 304 taken, 200 answered: 4 running, 100 still waiting.
    expect([store.pool.busy, store.pool.queued]).toEqual([4, 100]);
    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all(burst);
    expect(answered).toBe(304);
  });

  it("with no latency still passes every lookup through the slots", async () => {
    const store = createModelStore({ pairings: PAIRINGS, slots: 1, latencyMs: 0, queueLimit: 5 });
    const answers = Promise.all(["BEAN-ETH-250", "BEAN-COL-250"].map((sku) => store.lookup(sku)));
    expect([store.pool.busy, store.pool.queued]).toEqual([1, 1]);
    await vi.runAllTimersAsync();
    expect((await answers).map((a) => a?.[0]?.sku)).toEqual(["FILTER-V60-100", "FILTER-V60-100"]);
  });
});
