// buildDependencyMap: observed edges marked undeclared when the caller's `calls` misses the callee
// (never for outside callers or services the project does not know), declared calls without
// traffic listed as unused, every service of the project a node; declaredCallees reads both spec shapes.
import { describe, expect, it } from "vitest";
import type { ServiceMap, ServiceMapEdge } from "../telemetry/index.js";
import { buildDependencyMap, declaredCallees } from "./dependency-map.js";

const edge = (from: string, to: string, calls = 10, errors = 0): ServiceMapEdge => ({ from, to, calls, errors, errorRatio: errors / calls, ratePerSecond: calls / 900, retries: 0, p50Ms: 1, p95Ms: 2 });
const node = (service: string, spans = 1) => ({ service, spans, errorSpans: 0 });

describe("buildDependencyMap", () => {
  const observed: ServiceMap = {
    windowSeconds: 900,
    nodes: [node("orders"), node("stock"), node("web")],
    edges: [edge("(external)", "web"), edge("ghost", "orders"), edge("orders", "stock"), edge("web", "orders", 10, 5)],
  };
  const map = buildDependencyMap(observed, [
    { service: "web", calls: ["orders", "billing"] },
    { service: "orders", calls: ["billing"] },
    { service: "billing", calls: [] },
    { service: "stock", calls: [] },
  ]);

  it("marks an observed call its caller does not declare, and only that one", () => {
    expect(map.edges.map((e) => [e.from, e.to, e.undeclared])).toEqual([
      ["(external)", "web", false],
      ["ghost", "orders", false],
      ["orders", "stock", true],
      ["web", "orders", false],
    ]);
    // The traffic figures pass through unchanged.
    expect(map.edges[3]).toMatchObject({ calls: 10, errors: 5, errorRatio: 0.5 });
    expect(map.windowSeconds).toBe(900);
  });

  it("lists declared calls nobody made, sorted", () => {
    expect(map.unused).toEqual([
      { from: "orders", to: "billing" },
      { from: "web", to: "billing" },
    ]);
  });

  it("has every service of the project as a node, with no spans when it had no traffic", () => {
    expect(map.nodes.map((n) => n.service)).toEqual(["billing", "orders", "stock", "web"]);
    expect(map.nodes[0]).toEqual({ service: "billing", spans: 0, errorSpans: 0 });
  });

  it("counts a call declared twice once, and a declared callee outside the project as a node", () => {
    const m = buildDependencyMap({ windowSeconds: 60, nodes: [], edges: [] }, [{ service: "a", calls: ["b", "b"] }]);
    expect(m.unused).toEqual([{ from: "a", to: "b" }]);
    expect(m.nodes.map((n) => n.service)).toEqual(["a", "b"]);
  });
});

describe("declaredCallees", () => {
  it("reads mappings and the plain names of older specs, ignoring anything else", () => {
    expect(declaredCallees({ calls: [{ service: "orders", paths: ["/x"] }, "billing", 7, null, { paths: ["/y"] }] })).toEqual(["orders", "billing"]);
    expect(declaredCallees({})).toEqual([]);
    expect(declaredCallees({ calls: "orders" })).toEqual([]);
  });
});
