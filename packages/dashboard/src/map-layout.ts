// The service map's layout: dagre's layered graph layout, left to right (callers before callees),
// a box per service sized to its name and room for each edge's label. Its own module so the view
// loads dagre (about 50 kB) only when the map is opened.
import dagre, { type EdgeLabel, type GraphLabel, type NodeLabel } from "@dagrejs/dagre";
import { EXTERNAL_CALLER, type ServiceMapData } from "./map-api.js";
import type { MapLink } from "./service-map.js";

export interface MapBox {
  service: string;
  external: boolean;
  /** Centre, as dagre places it. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface MapRoute {
  link: MapLink;
  points: Array<{ x: number; y: number }>;
  /** Where the label goes, when the link has one. */
  labelAt: { x: number; y: number } | undefined;
}

export interface MapLayout {
  width: number;
  height: number;
  boxes: MapBox[];
  routes: MapRoute[];
}

/** Sizes in SVG user units: 14 px text, about 8 units per character. */
export const MAP_SIZES = { charWidth: 8, nodePadding: 28, nodeMinWidth: 96, nodeHeight: 40, labelCharWidth: 6.5, labelHeight: 16, margin: 16 } as const;

export interface LayoutInput {
  nodes: Array<{ id: string; width: number; height: number }>;
  edges: Array<{ from: string; to: string; width: number; height: number }>;
}

/** What dagre is given: a box per service sized to its name, a label box per labelled link. */
export function layoutInput(map: ServiceMapData, links: readonly MapLink[]): LayoutInput {
  const names = new Set(map.nodes.map((n) => n.service));
  for (const l of links) names.add(l.from).add(l.to);
  const s = MAP_SIZES;
  return {
    nodes: [...names].sort().map((id) => ({ id, width: Math.max(s.nodeMinWidth, Math.ceil(id.length * s.charWidth + s.nodePadding)), height: s.nodeHeight })),
    edges: links.map((l) => ({ from: l.from, to: l.to, width: l.label === undefined ? 0 : Math.ceil(l.label.length * s.labelCharWidth + 8), height: l.label === undefined ? 0 : s.labelHeight })),
  };
}

/** Lays the map out left to right, callers before callees (dagre; cycles are broken by it). */
export function layoutMap(map: ServiceMapData, links: readonly MapLink[]): MapLayout {
  const input = layoutInput(map, links);
  const g = new dagre.graphlib.Graph<GraphLabel, NodeLabel, EdgeLabel>();
  g.setGraph({ rankdir: "LR", nodesep: 28, ranksep: 72, edgesep: 16, marginx: MAP_SIZES.margin, marginy: MAP_SIZES.margin });
  for (const n of input.nodes) g.setNode(n.id, { width: n.width, height: n.height });
  for (const e of input.edges) g.setEdge(e.from, e.to, { width: e.width, height: e.height, labelpos: "c" });
  dagre.layout(g);
  const graph = g.graph();
  return {
    width: Math.ceil(graph.width ?? 0),
    height: Math.ceil(graph.height ?? 0),
    boxes: input.nodes.map((n) => {
      const placed = g.node(n.id);
      return { service: n.id, external: n.id === EXTERNAL_CALLER, x: placed.x ?? 0, y: placed.y ?? 0, width: n.width, height: n.height };
    }),
    routes: links.map((link) => {
      const placed = g.edge(link.from, link.to);
      const labelAt = link.label !== undefined && placed.x !== undefined && placed.y !== undefined ? { x: placed.x, y: placed.y } : undefined;
      return { link, points: placed.points ?? [], labelAt };
    }),
  };
}
