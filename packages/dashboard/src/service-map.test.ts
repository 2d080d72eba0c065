// The service map's logic: color buckets at the thresholds, ratios and latencies as words,
// observed and unused calls as one list with their declaration and description, and the SVG path
// through a layout's points.
import { describe, expect, it } from "vitest";
import type { MapEdge, ServiceMapData } from "./map-api.js";
import { errorBucket, formatMs, formatRatio, mapLinks, pathThrough } from "./service-map.js";

const edge = (from: string, to: string, calls: number, errors: number, undeclared = false): MapEdge => ({ from, to, calls, errors, errorRatio: errors / calls, ratePerSecond: calls / 900, retries: 0, p50Ms: 2, p95Ms: 12.3, undeclared });
const node = (service: string) => ({ service, spans: 1, errorSpans: 0 });

const map: ServiceMapData = {
  windowSeconds: 900,
  nodes: ["billing", "orders", "stock", "web"].map(node),
  edges: [edge("(external)", "web", 20, 0), edge("orders", "billing", 10, 5), edge("orders", "stock", 4, 0, true), edge("web", "orders", 200, 3)],
  unused: [{ from: "web", to: "billing" }],
};

describe("errorBucket", () => {
  it("is grey without traffic, then green below 1 %, amber below 5 %, red from 5 %", () => {
    expect(errorBucket(0, 0)).toBe("none");
    expect(errorBucket(100, 0)).toBe("ok");
    expect(errorBucket(1000, 0.0099)).toBe("ok");
    expect(errorBucket(100, 0.01)).toBe("warn");
    expect(errorBucket(100, 0.0499)).toBe("warn");
    expect(errorBucket(100, 0.05)).toBe("bad");
    expect(errorBucket(2, 1)).toBe("bad");
  });
});

describe("formatRatio and formatMs", () => {
  it("read as people write them", () => {
    expect([0, 0.004, 0.025, 0.0999, 0.5, 1].map(formatRatio)).toEqual(["0 %", "0.4 %", "2.5 %", "10 %", "50 %", "100 %"]);
    expect([0.84, 9.96, 12.3, 999.6, 1520].map(formatMs)).toEqual(["0.8 ms", "10 ms", "12 ms", "1.0 s", "1.5 s"]);
  });
});

describe("mapLinks", () => {
  const links = mapLinks(map);
  it("lists observed and unused calls together, sorted, with how each stands against the manifest", () => {
    expect(links.map((l) => [l.id, l.declaration, l.bucket, l.label])).toEqual([
      ["(external)->web", "external", "ok", undefined],
      ["orders->billing", "declared", "bad", "50 % errors"],
      ["orders->stock", "undeclared", "ok", "not declared"],
      ["web->billing", "unused", "none", "unused"],
      ["web->orders", "declared", "warn", "1.5 % errors"],
    ]);
  });
  it("describes each link in a sentence", () => {
    expect(links.find((l) => l.id === "orders->billing")?.description).toBe("orders calls billing: 10 calls, 5 failed (50 % errors), p95 12 ms; declared in the manifest.");
    expect(links.find((l) => l.id === "orders->stock")?.description).toMatch(/not declared in the caller's calls\.$/);
    expect(links.find((l) => l.id === "web->billing")?.description).toBe("web may call billing: no calls in this window; declared in the manifest but not called in this window.");
  });
  it("labels a failing undeclared call with both", () => {
    expect(mapLinks({ ...map, edges: [edge("a", "b", 10, 1, true)], unused: [] })[0]?.label).toBe("not declared · 10 % errors");
  });
});

describe("pathThrough", () => {
  it("goes straight between two points and curves through more", () => {
    expect(pathThrough([])).toBe("");
    expect(pathThrough([{ x: 0, y: 0 }, { x: 10.04, y: 5 }])).toBe("M0,0 L10,5");
    expect(pathThrough([{ x: 0, y: 0 }, { x: 10, y: 10 }, { x: 20, y: 0 }])).toBe("M0,0 Q10,10 15,5 L20,0");
  });
});
