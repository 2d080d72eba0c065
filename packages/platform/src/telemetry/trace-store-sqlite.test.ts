// Runs the TraceStore conformance suite against SQLite, plus what only a file can show:
// spans survive a reopen, a read-only view refuses writes, a newer schema is refused.
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { createSqliteTraceStore } from "./trace-store-sqlite.js";
import { T0_MS, testSpan, traceStoreConformance } from "./trace-store.conformance.js";

let tmp: { dir: string; cleanup: () => Promise<void> };
let n = 0;
beforeAll(async () => {
  tmp = await makeTempDir("keelson-traces-");
});
afterAll(async () => {
  await tmp.cleanup();
});
const freshPath = () => join(tmp.dir, `traces-${++n}.db`);

traceStoreConformance("sqlite", async (options = {}) => createSqliteTraceStore({ path: freshPath(), ...options, now: options.now ?? (() => T0_MS) }));

describe("createSqliteTraceStore: the file", () => {
  it("keeps spans across a reopen and lets a read-only view search them but not write", async () => {
    const path = freshPath();
    const writer = createSqliteTraceStore({ path, now: () => T0_MS });
    await writer.write([testSpan({ n: 1 }), testSpan({ n: 2, status: "error" })]);
    await writer.close();

    const reader = createSqliteTraceStore({ path, readonly: true, now: () => T0_MS });
    expect(await reader.count()).toBe(2);
    expect((await reader.search({ status: "error" })).map((s) => s.errorCount)).toEqual([1]);
    await expect(reader.write([testSpan({ n: 3 })])).rejects.toMatchObject({ code: "KEELSON_ERR_STORE", message: expect.stringContaining("read-only") });
    await reader.close();

    const again = createSqliteTraceStore({ path, now: () => T0_MS });
    await again.write([testSpan({ n: 3 })]);
    expect(await again.count()).toBe(3);
    await again.close();
  });

  it("stores each resource once and forgets resources whose spans retention dropped", async () => {
    const path = freshPath();
    let now = T0_MS;
    const store = createSqliteTraceStore({ path, now: () => now, retention: { maxAgeMs: 60_000 } });
    const orders = { "service.name": "orders", "service.instance.id": "orders-0" };
    const payments = { "service.name": "payments", "service.instance.id": "payments-0" };
    await store.write([1, 2, 3].map((n) => testSpan({ n, trace: n, resource: orders })));
    await store.write([testSpan({ n: 4, trace: 4, resource: payments, startTimeUs: (T0_MS + 90_000) * 1000 })]);
    const raw = new Database(path, { readonly: true });
    const resources = () => raw.prepare("SELECT json FROM resources ORDER BY id").pluck().all();
    expect(resources()).toEqual([JSON.stringify(orders), JSON.stringify(payments)]);
    expect((await store.getTrace(testSpan({ trace: 4 }).traceId))[0]?.resource).toEqual(payments);
    now += 100_000;
    expect(await store.prune()).toBe(3);
    expect(resources()).toEqual([JSON.stringify(payments)]);
    // A resource seen again after its row was dropped gets a row again.
    await store.write([testSpan({ n: 5, trace: 5, resource: orders, startTimeUs: now * 1000 })]);
    expect((await store.getTrace(testSpan({ trace: 5 }).traceId))[0]?.resource).toEqual(orders);
    raw.close();
    await store.close();
  });

  it("refuses a file whose trace schema is newer than this code, and a missing file read-only", () => {
    const path = freshPath();
    const raw = new Database(path);
    raw.pragma("user_version = 7");
    raw.close();
    expect(() => createSqliteTraceStore({ path })).toThrow(expect.objectContaining({ code: "KEELSON_ERR_STORE_MIGRATION", message: expect.stringContaining("version 7") }));
    expect(() => createSqliteTraceStore({ path: join(tmp.dir, "missing.db"), readonly: true })).toThrow(expect.objectContaining({ code: "KEELSON_ERR_STORE" }));
  });
});
