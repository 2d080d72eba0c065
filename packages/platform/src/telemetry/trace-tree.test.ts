// Tests for the trace tree: parent links, offsets and self time, orphans and cycles, and the
// exact text `keelson trace <id>` prints.
import { describe, expect, it } from "vitest";
import { T0_MS, testSpan } from "./trace-store.conformance.js";
import { buildTraceTree, flattenTraceTree, formatDuration, renderTraceTree } from "./trace-tree.js";
import type { TraceNode } from "./trace-tree.js";

const T0_US = T0_MS * 1000;
const at = (ms: number) => T0_US + ms * 1000;

/** storefront GET / (0–10 ms) → orders POST (1–9 ms) → payments (2–8 ms); storefront GET inventory (9.5–10 ms). */
function checkout() {
  const a = testSpan({ n: 1, service: "storefront", name: "GET /", startTimeUs: at(0), durationUs: 10_000 });
  const b = testSpan({ n: 2, service: "orders", name: "POST /api/orders", parentSpanId: a.spanId, startTimeUs: at(1), durationUs: 8000 });
  const c = testSpan({ n: 3, service: "payments", name: "POST /charges", parentSpanId: b.spanId, startTimeUs: at(2), durationUs: 6000, status: "error", statusMessage: "card declined" });
  const d = testSpan({ n: 4, service: "storefront", name: "GET inventory", kind: "client", parentSpanId: a.spanId, startTimeUs: at(9.5), durationUs: 500 });
  return [a, b, c, d];
}

const shape = (n: TraceNode): unknown => [n.span.name, n.depth, n.offsetUs, n.selfUs, n.children.map(shape)];

describe("buildTraceTree", () => {
  it("links children to parents by start time, with offsets, depths and self time", () => {
    const tree = buildTraceTree(checkout().reverse());
    expect(tree).toBeDefined();
    if (!tree) return;
    expect(tree.roots.map(shape)).toEqual([
      [
        "GET /",
        0,
        0,
        1500,
        [
          ["POST /api/orders", 1, 1000, 2000, [["POST /charges", 2, 2000, 6000, []]]],
          ["GET inventory", 1, 9500, 500, []],
        ],
      ],
    ]);
    expect([tree.durationUs, tree.spanCount, tree.errorCount, tree.services]).toEqual([10_000, 4, 1, ["orders", "payments", "storefront"]]);
    expect(buildTraceTree([])).toBeUndefined();
  });

  it("shows a span whose parent never arrived as a root after the real one", () => {
    const [a, b] = checkout();
    const orphan = testSpan({ n: 9, name: "late", parentSpanId: "f".repeat(16), startTimeUs: at(0.5) });
    const tree = buildTraceTree([orphan, b as never, a as never]);
    expect(tree?.roots.map((r) => [r.span.name, r.missingParent])).toEqual([
      ["GET /", false],
      ["late", true],
    ]);
  });

  it("cuts a parent cycle instead of looping", () => {
    const x = testSpan({ n: 1, name: "x", parentSpanId: testSpan({ n: 2 }).spanId, startTimeUs: at(0) });
    const y = testSpan({ n: 2, name: "y", parentSpanId: x.spanId, startTimeUs: at(1) });
    const tree = buildTraceTree([x, y]);
    expect(tree?.roots.map(shape)).toEqual([["x", 0, 0, 500, [["y", 1, 1000, 500, []]]]]);
    expect(tree?.roots[0]?.missingParent).toBe(true);
    expect(flattenTraceTree(tree as never)).toHaveLength(2);
  });
});

describe("renderTraceTree", () => {
  it("prints the indented tree with service, name, duration, status, a bar and the error", () => {
    const tree = buildTraceTree(checkout());
    const retry = testSpan({ n: 5, service: "keelson-gateway", name: "GET orders", kind: "client", parentSpanId: testSpan({ n: 4 }).spanId, startTimeUs: at(9.6), durationUs: 300, attributes: { "keelson.attempt": 1, "keelson.target.replica": "orders-1" } });
    const withRetry = buildTraceTree([...checkout(), retry]);
    expect(renderTraceTree(tree as never, { barWidth: 10 })).toBe(
      [
        "trace aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1 · 10.0 ms · 4 spans · 3 services · 1 error",
        "storefront  GET /              10.0 ms  ok     │██████████│",
        "├─ orders  POST /api/orders     8.0 ms  ok     │ ████████ │",
        "│  └─ payments  POST /charges   6.0 ms  ERROR  │  ██████  │  card declined",
        "└─ storefront  GET inventory    500 µs  ok     │         █│",
      ].join("\n"),
    );
    expect(renderTraceTree(withRetry as never, { barWidth: 10 }).split("\n")[5]).toBe("   └─ keelson-gateway  GET orders  (retry 1, → orders-1)   300 µs  ok     │         █│");
  });

  it("cuts long labels to the label width", () => {
    const long = testSpan({ n: 1, name: "x".repeat(100) });
    const line = renderTraceTree(buildTraceTree([long]) as never, { labelWidth: 20, barWidth: 4 }).split("\n")[1];
    expect(line).toBe("orders  xxxxxxxxxxx…  500 µs  ok     │████│");
  });
});

describe("formatDuration", () => {
  it("picks µs, ms or s", () => {
    expect([formatDuration(420), formatDuration(12_345), formatDuration(1_250_000), formatDuration(0)]).toEqual(["420 µs", "12.3 ms", "1.25 s", "0 µs"]);
  });
});
