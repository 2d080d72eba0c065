// The TraceStore conformance suite: every implementation (memory, SQLite, later
// PostgreSQL) runs these same tests, through the interface only.
import { describe, expect, it } from "vitest";
import type { TraceRetention, TraceStore } from "./trace-store.js";
import type { SpanRecord } from "./trace-span.js";

export interface TraceStoreFactoryOptions {
  retention?: TraceRetention;
  now?: () => number;
}

/** A fixed "now" for the suite: 2026-01-01T00:00:00Z. */
export const T0_MS = Date.UTC(2026, 0, 1);
const T0_US = T0_MS * 1000;

/** A span with plausible defaults; ids are derived from `n` so tests stay readable. */
export function testSpan(over: Partial<SpanRecord> & { n?: number; trace?: number } = {}): SpanRecord {
  const { n = 1, trace = 1, ...rest } = over;
  return {
    traceId: trace.toString(16).padStart(32, "a"),
    spanId: n.toString(16).padStart(16, "b"),
    parentSpanId: undefined,
    name: `span ${n}`,
    kind: "server",
    service: "orders",
    startTimeUs: T0_US + n * 1000,
    durationUs: 500,
    status: "unset",
    statusMessage: undefined,
    attributes: { "http.response.status_code": 200 },
    resource: { "service.name": rest.service ?? "orders" },
    scope: "@keelson/sdk",
    events: [],
    links: [],
    ...rest,
  };
}

export function traceStoreConformance(name: string, make: (options?: TraceStoreFactoryOptions) => Promise<TraceStore>): void {
  describe(`TraceStore conformance: ${name}`, () => {
    it("hands a trace back whole, by start time, with every field as written", async () => {
      const store = await make();
      const root = testSpan({ n: 1, name: "GET /api/orders", durationUs: 9000, attributes: { big: "123456789012345678901", list: [1, "a", true], map: { k: { deep: 2 } } } });
      const child = testSpan({
        n: 2,
        parentSpanId: root.spanId,
        kind: "client",
        service: "storefront",
        status: "error",
        statusMessage: "boom",
        events: [{ name: "exception", timeUs: T0_US + 2500, attributes: { "exception.message": "boom" } }],
        links: [{ traceId: "c".repeat(32), spanId: "d".repeat(16), attributes: {} }],
        scope: undefined,
      });
      await store.write([child, root]);
      expect(await store.getTrace(root.traceId)).toEqual([root, child]);
      expect(await store.getTrace(root.traceId.toUpperCase())).toHaveLength(2);
      expect(await store.getTrace("f".repeat(32))).toEqual([]);
      await expect(store.getTrace("nope")).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT" });
      await store.close();
    });

    it("skips a span it already has, so a retried request does not duplicate spans", async () => {
      const store = await make();
      const span = testSpan({ n: 1, name: "first" });
      await store.write([span]);
      await store.write([{ ...span, name: "second" }, testSpan({ n: 2 })]);
      expect(await store.count()).toBe(2);
      expect((await store.getTrace(span.traceId)).map((s) => s.name)).toEqual(["first", "span 2"]);
      await store.close();
    });

    it("keeps what was written even when the caller changes its objects afterwards", async () => {
      const store = await make();
      const span = testSpan({ n: 1 });
      await store.write([span]);
      span.name = "changed";
      (span.attributes as Record<string, unknown>).x = 1;
      const [stored] = await store.getTrace(span.traceId);
      expect(stored?.name).toBe("span 1");
      expect(stored?.attributes).toEqual({ "http.response.status_code": 200 });
      if (stored) stored.name = "changed again";
      expect((await store.getTrace(span.traceId))[0]?.name).toBe("span 1");
      await store.close();
    });

    it("searches by service, called service, status, duration and time, newest first", async () => {
      const store = await make();
      await store.write([
        // trace 1: storefront → orders, fast, fine
        testSpan({ trace: 1, n: 1, service: "storefront", name: "GET /", durationUs: 3000 }),
        testSpan({ trace: 1, n: 2, service: "storefront", kind: "client", parentSpanId: testSpan({ n: 1 }).spanId, attributes: { "keelson.target.service": "orders" } }),
        // trace 2: orders alone, slow, failed
        testSpan({ trace: 2, n: 10, service: "orders", status: "error", durationUs: 250_000 }),
        // trace 3: payments, later than the others
        testSpan({ trace: 3, n: 20, service: "payments", durationUs: 1000 }),
      ]);
      const ids = async (q: Parameters<TraceStore["search"]>[0]) => (await store.search(q)).map((s) => s.traceId.slice(-1));
      expect(await ids({})).toEqual(["3", "2", "1"]);
      expect(await ids({ service: "orders" })).toEqual(["2", "1"]);
      expect(await ids({ service: "storefront" })).toEqual(["1"]);
      expect(await ids({ status: "error" })).toEqual(["2"]);
      expect(await ids({ minDurationMs: 2 })).toEqual(["2", "1"]);
      expect(await ids({ minDurationMs: 250 })).toEqual(["2"]);
      expect(await ids({ fromMs: T0_MS + 5, toMs: T0_MS + 15 })).toEqual(["2"]);
      expect(await ids({ limit: 2 })).toEqual(["3", "2"]);
      expect(await ids({ service: "nobody" })).toEqual([]);
      await expect(store.search({ limit: 0 })).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT" });
      await expect(store.search({ minDurationMs: -1 })).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT" });
      await store.close();
    });

    it("summarizes a trace: root, whole duration, span and error counts, services", async () => {
      const store = await make();
      const root = testSpan({ n: 1, service: "storefront", name: "GET /checkout", durationUs: 10_000 });
      await store.write([
        root,
        testSpan({ n: 2, parentSpanId: root.spanId, service: "orders", status: "error", durationUs: 2000 }),
        // Ends after the root: the trace lasts until the last span ends.
        testSpan({ n: 9, parentSpanId: root.spanId, service: "notifications", durationUs: 5000 }),
      ]);
      const [summary] = await store.search({ service: "orders" });
      expect(summary).toEqual({
        traceId: root.traceId,
        rootService: "storefront",
        rootName: "GET /checkout",
        startTimeUs: root.startTimeUs,
        durationUs: 8000 + 5000,
        spanCount: 3,
        errorCount: 1,
        services: ["notifications", "orders", "storefront"],
      });
      await store.close();
    });

    it("drops the oldest-received spans beyond maxSpans", async () => {
      const store = await make({ retention: { maxSpans: 5 } });
      await store.write([1, 2, 3, 4].map((n) => testSpan({ n, trace: n })));
      await store.write([5, 6, 7].map((n) => testSpan({ n, trace: n })));
      expect(await store.count()).toBe(5);
      expect(await store.getTrace(testSpan({ trace: 2 }).traceId)).toEqual([]);
      expect(await store.getTrace(testSpan({ trace: 3 }).traceId)).toHaveLength(1);
      expect(await store.prune()).toBe(0);
      await store.close();
    });

    it("drops spans older than maxAgeMs, on prune() and on a write once the interval has passed", async () => {
      let now = T0_MS;
      const store = await make({ retention: { maxAgeMs: 60_000 }, now: () => now });
      await store.write([testSpan({ n: 1, trace: 1, startTimeUs: T0_US - 120_000_000 }), testSpan({ n: 2, trace: 2, startTimeUs: T0_US - 30_000_000 })]);
      // The first write prunes: the 2-minute-old span is gone at once.
      expect(await store.count()).toBe(1);
      now += 45_000;
      expect(await store.prune()).toBe(1);
      expect(await store.count()).toBe(0);
      await store.write([testSpan({ n: 3, trace: 3, startTimeUs: T0_US })]);
      now += 50_000; // 95 s after T0, past the span's 60 s age, but the last age prune was only 50 s ago
      await store.write([testSpan({ n: 4, trace: 4, startTimeUs: now * 1000 })]);
      expect(await store.count()).toBe(2);
      now += 20_000;
      await store.write([testSpan({ n: 5, trace: 5, startTimeUs: now * 1000 })]);
      expect(await store.count()).toBe(2);
      expect(await store.getTrace(testSpan({ trace: 3 }).traceId)).toEqual([]);
      await store.close();
    });

    it("lists spans in a time range, newest first, up to a limit", async () => {
      const store = await make();
      await store.write([1, 2, 3, 4, 5].map((n) => testSpan({ n, trace: n })));
      const names = async (q: Parameters<TraceStore["listSpans"]>[0]) => (await store.listSpans(q)).map((s) => s.name);
      expect(await names({})).toEqual(["span 5", "span 4", "span 3", "span 2", "span 1"]);
      expect(await names({ fromMs: T0_MS + 2, toMs: T0_MS + 4 })).toEqual(["span 4", "span 3", "span 2"]);
      expect(await names({ limit: 2 })).toEqual(["span 5", "span 4"]);
      await store.close();
    });
  });
}
