// The service map's layout: dagre's input (a box per service sized to its name, a label box per
// labelled link), callers left of callees, everything inside the drawing, cycles and lone services.
import { describe, expect, it } from "vitest";
import type { MapEdge, ServiceMapData } from "./map-api.js";
import { layoutInput, layoutMap, MAP_SIZES } from "./map-layout.js";
import { mapLinks } from "./service-map.js";

const edge = (from: string, to: string, calls: number, errors: number, undeclared = false): MapEdge => ({ from, to, calls, errors, errorRatio: errors / calls, ratePerSecond: calls / 900, retries: 0, p50Ms: 2, p95Ms: 12.3, undeclared });
const node = (service: string) => ({ service, spans: 1, errorSpans: 0 });

const map: ServiceMapData = {
  windowSeconds: 900,
  nodes: ["billing", "orders", "stock", "web"].map(node),
  edges: [edge("(external)", "web", 20, 0), edge("orders", "billing", 10, 5), edge("orders", "stock", 4, 0, true), edge("web", "orders", 200, 3)],
  unused: [{ from: "web", to: "billing" }],
};

describe("layoutInput", () => {
  it("sizes a box per service, callers and callees included, and a label box per labelled link", () => {
    const input = layoutInput({ ...map, nodes: [] }, mapLinks(map));
    expect(input.nodes.map((n) => n.id)).toEqual(["(external)", "billing", "orders", "stock", "web"]);
    expect(input.nodes.every((n) => n.width >= MAP_SIZES.nodeMinWidth && n.height === MAP_SIZES.nodeHeight)).toBe(true);
    const long = layoutInput({ ...map, nodes: [node("a-service-with-a-long-name")], edges: [], unused: [] }, []);
    expect(long.nodes[0]?.width).toBeGreaterThan(26 * MAP_SIZES.charWidth);
    const edges = new Map(input.edges.map((e) => [`${e.from}->${e.to}`, e]));
    expect(edges.get("(external)->web")).toMatchObject({ width: 0, height: 0 });
    expect(edges.get("orders->stock")?.width).toBeGreaterThan(0);
  });
});

describe("layoutMap", () => {
  const layout = layoutMap(map, mapLinks(map));
  const box = (s: string) => layout.boxes.find((b) => b.service === s)!;

  it("places callers left of their callees, inside the drawing", () => {
    expect(box("(external)").x).toBeLessThan(box("web").x);
    expect(box("web").x).toBeLessThan(box("orders").x);
    expect(box("orders").x).toBeLessThan(box("billing").x);
    expect(box("orders").x).toBeLessThan(box("stock").x);
    expect(box("(external)").external).toBe(true);
    for (const b of layout.boxes) {
      expect(b.x - b.width / 2).toBeGreaterThanOrEqual(0);
      expect(b.x + b.width / 2).toBeLessThanOrEqual(layout.width);
      expect(b.y + b.height / 2).toBeLessThanOrEqual(layout.height);
    }
  });

  it("routes every link from its caller's box to its callee's, with a label place where it has a label", () => {
    expect(layout.routes).toHaveLength(5);
    for (const r of layout.routes) {
      expect(r.points.length).toBeGreaterThanOrEqual(2);
      const first = r.points[0]!;
      const last = r.points[r.points.length - 1]!;
      expect(Math.abs(first.x - box(r.link.from).x)).toBeLessThan(Math.abs(last.x - box(r.link.from).x));
      expect(r.labelAt === undefined).toBe(r.link.label === undefined);
    }
  });

  it("lays out a cycle and a map without edges", () => {
    const cycle = layoutMap({ windowSeconds: 60, nodes: [], edges: [edge("a", "b", 1, 0), edge("b", "a", 1, 0)], unused: [] }, mapLinks({ windowSeconds: 60, nodes: [], edges: [edge("a", "b", 1, 0), edge("b", "a", 1, 0)], unused: [] }));
    expect(cycle.routes.every((r) => r.points.length >= 2)).toBe(true);
    const lone = layoutMap({ windowSeconds: 60, nodes: [node("solo")], edges: [], unused: [] }, []);
    expect(lone.boxes).toHaveLength(1);
    expect(lone.width).toBeGreaterThan(MAP_SIZES.nodeMinWidth);
  });
});
