// Tests for the service map: edges from SDK client/server spans, from gateway spans (a call
// through the gateway counts once, retries counted), uninstrumented callers and callees,
// error ratios (5xx and no answer, not 4xx), rates and latency percentiles.
import { describe, expect, it } from "vitest";
import { EXTERNAL_CALLER, buildServiceMap } from "./service-map.js";
import { T0_MS, testSpan } from "./trace-store.conformance.js";
import type { SpanRecord } from "./trace-span.js";

const T0_US = T0_MS * 1000;
const edgeList = (spans: SpanRecord[]) => buildServiceMap(spans).edges.map((e) => [e.from, e.to, e.calls, e.errors, e.retries]);

describe("buildServiceMap", () => {
  it("derives edges from SDK spans: server under client, client spans nobody answered", () => {
    const root = testSpan({ n: 1, service: "storefront", kind: "server" });
    const toOrders = testSpan({ n: 2, service: "storefront", kind: "client", parentSpanId: root.spanId, attributes: { "keelson.target.service": "orders", "http.response.status_code": 201 } });
    const orders = testSpan({ n: 3, service: "orders", kind: "server", parentSpanId: toOrders.spanId });
    const internal = testSpan({ n: 4, service: "orders", kind: "internal", parentSpanId: orders.spanId });
    // payments sends no spans and did not answer; inventory sends none and answered 409.
    const toPayments = testSpan({ n: 5, service: "orders", kind: "client", parentSpanId: internal.spanId, status: "error", attributes: { "keelson.target.service": "payments" } });
    const toInventory = testSpan({ n: 6, service: "orders", kind: "client", parentSpanId: orders.spanId, status: "error", attributes: { "keelson.target.service": "inventory", "http.response.status_code": 409 } });
    const map = buildServiceMap([root, toOrders, orders, internal, toPayments, toInventory]);
    expect(map.edges.map((e) => [e.from, e.to, e.calls, e.errors, e.errorRatio])).toEqual([
      [EXTERNAL_CALLER, "storefront", 1, 0, 0],
      ["orders", "inventory", 1, 0, 0],
      ["orders", "payments", 1, 1, 1],
      ["storefront", "orders", 1, 0, 0],
    ]);
    expect(map.nodes).toEqual([
      { service: "inventory", spans: 0, errorSpans: 0 },
      { service: "orders", spans: 4, errorSpans: 2 },
      { service: "payments", spans: 0, errorSpans: 0 },
      { service: "storefront", spans: 2, errorSpans: 0 },
    ]);
  });

  it("counts a call through the gateway once, with its retries, and takes the caller from the header", () => {
    const root = testSpan({ n: 1, service: "storefront", kind: "server" });
    const client = testSpan({ n: 2, service: "storefront", kind: "client", parentSpanId: root.spanId, attributes: { "keelson.target.service": "orders" } });
    const gw = testSpan({ n: 3, service: "keelson-gateway", kind: "server", parentSpanId: client.spanId, attributes: { "keelson.target.service": "orders", "keelson.caller": "storefront", "http.response.status_code": 200 } });
    const try0 = testSpan({ n: 4, service: "keelson-gateway", kind: "client", parentSpanId: gw.spanId, status: "error", attributes: { "keelson.target.service": "orders", "keelson.attempt": 0, "http.response.status_code": 503 } });
    const try1 = testSpan({ n: 5, service: "keelson-gateway", kind: "client", parentSpanId: gw.spanId, attributes: { "keelson.target.service": "orders", "keelson.attempt": 1, "http.response.status_code": 200 } });
    const orders = testSpan({ n: 6, service: "orders", kind: "server", parentSpanId: try1.spanId });
    // A service without the SDK, calling through the gateway: only the gateway saw it.
    const legacy = testSpan({ n: 7, trace: 2, service: "keelson-gateway", kind: "server", status: "error", attributes: { "keelson.target.service": "orders", "keelson.caller": "legacy", "http.response.status_code": 504 } });
    // A browser request: the gateway's span is the root.
    const browser = testSpan({ n: 8, trace: 3, service: "keelson-gateway", kind: "server", attributes: { "keelson.target.service": "storefront", "http.response.status_code": 200 } });
    expect(edgeList([root, client, gw, try0, try1, orders, legacy, browser])).toEqual([
      [EXTERNAL_CALLER, "storefront", 2, 0, 0],
      ["legacy", "orders", 1, 1, 0],
      ["storefront", "orders", 1, 0, 1],
    ]);
    expect(buildServiceMap([gw, try0, try1, orders]).nodes.map((n) => n.service)).toEqual(["orders", "storefront"]);
  });

  it("gives rates over the window and caller-side latency percentiles", () => {
    const spans: SpanRecord[] = [];
    for (let i = 0; i < 10; i++) {
      const client = testSpan({ n: 100 + i, trace: i + 1, service: "a", kind: "client", startTimeUs: T0_US + i * 100_000, durationUs: (i + 1) * 1000, attributes: { "keelson.target.service": "b" } });
      spans.push(client, testSpan({ n: 200 + i, trace: i + 1, service: "b", kind: "server", parentSpanId: client.spanId, startTimeUs: client.startTimeUs + 100, durationUs: 100, status: i < 3 ? "error" : "unset", attributes: { "http.response.status_code": i < 3 ? 500 : 200 } }));
    }
    const [edge] = buildServiceMap(spans, { windowMs: 5000 }).edges;
    expect(edge).toEqual({ from: "a", to: "b", calls: 10, errors: 3, errorRatio: 0.3, ratePerSecond: 2, retries: 0, p50Ms: 5, p95Ms: 10 });
    // Without a window, the spans' own span of time (0.9 s + 10 ms) is stretched to at least 1 s.
    expect(buildServiceMap(spans).windowSeconds).toBe(1);
    expect(buildServiceMap([])).toEqual({ windowSeconds: 1, nodes: [], edges: [] });
  });
});
