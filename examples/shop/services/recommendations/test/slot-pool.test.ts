// Unit tests for the slot pool: at most `slots` at once, waiters served first come first
// served, the queue bounded, abandoned waiters dropped, and a failure still frees its slot.
import { describe, expect, it } from "vitest";
import { createSlotPool, PoolFullError } from "../src/slot-pool.js";

/** A piece of work that runs until the test finishes it. */
function task(name: string, started: string[]) {
  let finish!: () => void;
  let fail!: (err: Error) => void;
  const done = new Promise<string>((resolve, reject) => {
    finish = () => resolve(name);
    fail = reject;
  });
  return {
    work: () => {
      started.push(name);
      return done;
    },
    finish: () => finish(),
    fail: (err: Error) => fail(err),
  };
}

/** Lets promise callbacks run (no timers involved). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("createSlotPool", () => {
  it("runs at most `slots` at once and hands freed slots to waiters in arrival order", async () => {
    const pool = createSlotPool({ slots: 2, queueLimit: 10 });
    const started: string[] = [];
    const tasks = ["a", "b", "c", "d", "e"].map((n) => task(n, started));
    const results = tasks.map((t) => pool.run(t.work));
    await settle();
    expect(started).toEqual(["a", "b"]);
    expect([pool.busy, pool.queued]).toEqual([2, 3]);

    // Whichever slot frees up, the longest waiter gets it.
    tasks[1]?.finish();
    await settle();
    expect(started).toEqual(["a", "b", "c"]);
    tasks[0]?.finish();
    tasks[2]?.finish();
    await settle();
    expect(started).toEqual(["a", "b", "c", "d", "e"]);
    expect([pool.busy, pool.queued]).toEqual([2, 0]);
    tasks[3]?.finish();
    tasks[4]?.finish();
    expect(await Promise.all(results)).toEqual(["a", "b", "c", "d", "e"]);
    expect([pool.busy, pool.queued]).toEqual([0, 0]);
  });

  it("refuses a caller beyond the queue limit without running its work, and takes callers again once the queue drains", async () => {
    const pool = createSlotPool({ slots: 1, queueLimit: 2 });
    const started: string[] = [];
    const tasks = ["a", "b", "c", "d"].map((n) => task(n, started));
    const results = tasks.map((t) => pool.run(t.work));
    await expect(results[3]).rejects.toThrow(PoolFullError);
    await expect(results[3]).rejects.toMatchObject({ queueLimit: 2 });
    await settle();
    expect(started).toEqual(["a"]);
    expect(pool.queued).toBe(2);

    tasks[0]?.finish();
    await settle();
    const e = task("e", started);
    const late = pool.run(e.work);
    expect(pool.queued).toBe(2);
    tasks[1]?.finish();
    tasks[2]?.finish();
    await settle();
    e.finish();
    expect(await late).toBe("e");
    expect(started).toEqual(["a", "b", "c", "e"]);
  });

  it("with queueLimit 0 only the slots take work", async () => {
    const pool = createSlotPool({ slots: 1, queueLimit: 0 });
    const started: string[] = [];
    const a = task("a", started);
    const first = pool.run(a.work);
    await expect(pool.run(task("b", started).work)).rejects.toBeInstanceOf(PoolFullError);
    a.finish();
    expect(await first).toBe("a");
    expect(started).toEqual(["a"]);
  });

  it("drops a waiter that gives up, and the others keep their order", async () => {
    const pool = createSlotPool({ slots: 1, queueLimit: 3 });
    const started: string[] = [];
    const [a, b, c, d] = ["a", "b", "c", "d"].map((n) => task(n, started)) as [ReturnType<typeof task>, ReturnType<typeof task>, ReturnType<typeof task>, ReturnType<typeof task>];
    const cancel = new AbortController();
    const runs = [pool.run(a.work), pool.run(b.work), pool.run(c.work, { signal: cancel.signal }), pool.run(d.work)];
    await settle();
    expect(pool.queued).toBe(3);
    cancel.abort(new Error("caller went away"));
    await expect(runs[2]).rejects.toThrow("caller went away");
    expect(pool.queued).toBe(2);
    // Its place is free for someone else.
    const e = task("e", started);
    runs.push(pool.run(e.work));
    expect(pool.queued).toBe(3);

    for (const t of [a, b, d, e]) {
      t.finish();
      await settle();
    }
    expect(started).toEqual(["a", "b", "d", "e"]);
    expect([pool.busy, pool.queued]).toEqual([0, 0]);
  });

  it("refuses an already aborted signal without queueing", async () => {
    const pool = createSlotPool({ slots: 1, queueLimit: 1 });
    const started: string[] = [];
    await expect(pool.run(task("a", started).work, { signal: AbortSignal.abort(new Error("too late")) })).rejects.toThrow("too late");
    expect(started).toEqual([]);
    expect([pool.busy, pool.queued]).toEqual([0, 0]);
  });

  it("frees the slot of work that fails", async () => {
    const pool = createSlotPool({ slots: 1, queueLimit: 1 });
    const started: string[] = [];
    const a = task("a", started);
    const b = task("b", started);
    const first = pool.run(a.work);
    const second = pool.run(b.work);
    a.fail(new Error("store unreachable"));
    await expect(first).rejects.toThrow("store unreachable");
    await settle();
    expect(started).toEqual(["a", "b"]);
    b.finish();
    expect(await second).toBe("b");
    expect(pool.busy).toBe(0);
  });

  it("keeps serving in order through a long queue that never empties", async () => {
    // More than the 1024 spent entries after which the queue compacts itself.
    const pool = createSlotPool({ slots: 1, queueLimit: 10 });
    const order: number[] = [];
    let next = 0;
    const finishers: (() => void)[] = [];
    const submit = () => {
      const n = next++;
      return pool.run(
        () =>
          new Promise<void>((resolve) => {
            finishers.push(() => {
              order.push(n);
              resolve();
            });
          }),
      );
    };
    const runs = Array.from({ length: 10 }, submit);
    for (let i = 0; i < 3000; i++) {
      await settle();
      finishers.shift()?.();
      runs.push(submit());
    }
    while (finishers.length > 0 || pool.busy > 0) {
      await settle();
      finishers.shift()?.();
    }
    await Promise.all(runs);
    expect(order).toEqual(Array.from({ length: 3010 }, (_, i) => i));
  });

  it("rejects impossible sizes", () => {
    expect(() => createSlotPool({ slots: 0, queueLimit: 1 })).toThrow(/slots/);
    expect(() => createSlotPool({ slots: 1, queueLimit: -1 })).toThrow(/queueLimit/);
  });
});
