// The service map held against the manifest: each observed edge marked when its caller's `calls`
// does not name the callee, the declared calls nobody made over the window, and every service of
// the project as a node (with traffic or not), for GET /v1/service-map and the dashboard's map.
import { EXTERNAL_CALLER, type ServiceMap, type ServiceMapEdge, type ServiceMapNode } from "../telemetry/index.js";

/** A service of the project and the services its `calls` names. */
export interface DeclaredCalls {
  service: string;
  calls: readonly string[];
}

export interface DependencyEdge extends ServiceMapEdge {
  /**
   * The caller is a service of the project whose `calls` does not name the callee. The mesh
   * denies such calls, so one that shows up went around it (a public route, say).
   */
  undeclared: boolean;
}

/** A call the manifest declares that no trace showed over the window. */
export interface UnusedCall {
  from: string;
  to: string;
}

export interface DependencyMap {
  windowSeconds: number;
  /** Every service of the project and every other service seen in traces, sorted by name; the gateway is not a node. */
  nodes: ServiceMapNode[];
  /** Observed calls, sorted by caller, then callee. */
  edges: DependencyEdge[];
  /** Declared but not observed, sorted by caller, then callee. */
  unused: UnusedCall[];
}

/**
 * Compares the observed map with the declared calls.
 *
 * @example
 * const map = buildDependencyMap(buildServiceMap(spans, { windowMs }), [{ service: "storefront", calls: ["orders", "inventory"] }]);
 * map.edges.filter((e) => e.undeclared); // calls nobody declared
 * map.unused; // [{ from: "storefront", to: "inventory" }] when storefront never called inventory
 */
export function buildDependencyMap(observed: ServiceMap, declared: readonly DeclaredCalls[]): DependencyMap {
  const callsOf = new Map(declared.map((d) => [d.service, new Set(d.calls)]));
  const seen = new Set(observed.edges.map((e) => `${e.from}\u0000${e.to}`));
  const edges = observed.edges.map((e) => {
    const calls = e.from === EXTERNAL_CALLER ? undefined : callsOf.get(e.from);
    return { ...e, undeclared: calls !== undefined && !calls.has(e.to) };
  });
  const unused: UnusedCall[] = [];
  for (const d of declared) {
    for (const to of new Set(d.calls)) if (!seen.has(`${d.service}\u0000${to}`)) unused.push({ from: d.service, to });
  }
  unused.sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));
  const nodes = new Map(observed.nodes.map((n) => [n.service, n]));
  for (const name of [...declared.map((d) => d.service), ...unused.map((u) => u.to)]) {
    if (!nodes.has(name)) nodes.set(name, { service: name, spans: 0, errorSpans: 0 });
  }
  return { windowSeconds: observed.windowSeconds, nodes: [...nodes.values()].sort((a, b) => a.service.localeCompare(b.service)), edges, unused };
}

/**
 * The callees a stored service spec's `calls` names: mappings (`{ service, paths, methods }`) and,
 * in specs stored before `calls` took mappings, plain names.
 */
export function declaredCallees(spec: { calls?: unknown }): string[] {
  if (!Array.isArray(spec.calls)) return [];
  return spec.calls.flatMap((c: unknown) => {
    if (typeof c === "string") return [c];
    const service = (c as { service?: unknown } | null)?.service;
    return typeof service === "string" ? [service] : [];
  });
}
