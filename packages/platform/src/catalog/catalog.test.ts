// Building the catalog from its inputs: drift between declared and observed dependencies in
// both directions, dependents, links and OpenAPI files resolved against the manifest, ready
// replicas of the current release, scorecards, and teams with their scores.
import { describe, expect, it } from "vitest";
import { parseManifest } from "../manifest/index.js";
import type { ServiceMap, ServiceMapEdge } from "../telemetry/index.js";
import { buildCatalog, filesToCheck, type CatalogInput, type CatalogServiceInput } from "./catalog.js";
import type { ServiceHistory } from "./service-history.js";

const yaml = `project: shop
teams:
  web: { members: [ana], contact: "#web" }
  commerce: { members: [chidi], contact: "#commerce", notifications: ["http://127.0.0.1:9/hook"] }
services:
  storefront:
    owner: web
    description: The shop's web front.
    lifecycle: production
    tags: [frontend]
    links: { repo: "https://git.example/shop", runbook: "docs/runbook.md#storefront" }
    path: services/storefront
    start: node main.js
    replicas: 2
    readiness: /ready
    slos: [{ name: availability, availability: 99.9 }]
    calls: [orders, { service: inventory, paths: [/stock], methods: [GET] }]
  orders:
    owner: commerce
    tags: [pci, core]
    openapi: api/orders.yaml
    path: services/orders
    start: node main.js
    calls: [payments]
  payments:
    owner: commerce
    lifecycle: deprecated
    path: /srv/payments
    start: node main.js
  inventory:
    owner: commerce
    path: services/inventory
    start: node main.js
`;

const { manifest } = parseManifest(yaml, "/repo/shop/keelson.yaml", { checkPaths: false });
const services: CatalogServiceInput[] = Object.entries(manifest.services).map(([name, spec]) => ({ name, spec, release: name === "payments" ? undefined : `r-${name}` }));
const edge = (from: string, to: string, calls: number, errors = 0): ServiceMapEdge => ({ from, to, calls, errors, errorRatio: errors / calls, ratePerSecond: calls / 900, retries: 0, p50Ms: 1, p95Ms: 2 });
// storefront calls orders (declared) and search (not declared), not inventory (declared);
// orders calls payments (declared); the outside world calls storefront.
const observed: ServiceMap = {
  windowSeconds: 900,
  nodes: [],
  edges: [edge("(external)", "storefront", 900), edge("orders", "payments", 90, 9), edge("storefront", "orders", 450, 3), edge("storefront", "search", 45)],
};
const NOW = new Date("2026-06-30T12:00:00.000Z");
const history = new Map<string, ServiceHistory>([
  ["storefront", { lastDeploy: { at: "2026-06-29T00:00:00.000Z", release: "r-storefront" }, lastPipeline: { at: "2026-06-29T00:00:00.000Z", run: "run-1", stages: ["build", "test"] } }],
]);
const existing = new Set(["/repo/shop/docs/runbook.md", "/repo/shop/services/inventory/openapi.json"]);

const input = (over: Partial<CatalogInput> = {}): CatalogInput => ({
  manifestDir: "/repo/shop",
  services,
  teams: [
    { name: "commerce", members: ["chidi"], contact: "#commerce", notifications: [{ url: "http://127.0.0.1:9/hook", format: "json", events: undefined }] },
    { name: "web", members: ["ana"], contact: "#web", notifications: [] },
  ],
  replicas: [
    { service: "storefront", release: "r-storefront", state: "ready" },
    { service: "storefront", release: "r-old", state: "ready" },
    { service: "storefront", release: "r-storefront", state: "starting" },
    { service: "orders", release: "r-orders", state: "ready" },
  ],
  observed,
  history,
  findings: new Map<string, Record<string, number>>([["r-orders", { critical: 1 }], ["r-storefront", {}]]),
  staleFlags: [{ flag: "old-checkout", owner: "commerce", why: ["no evaluation for 40 days"] }],
  fileExists: (p) => existing.has(p),
  now: NOW,
  ...over,
});

describe("buildCatalog", () => {
  it("shows drift both ways: called but not declared, declared but not called", () => {
    const { entries } = buildCatalog(input());
    const storefront = entries.find((e) => e.name === "storefront");
    expect(storefront?.dependencies).toEqual({
      declared: [{ service: "orders" }, { service: "inventory", paths: ["/stock"], methods: ["GET"] }],
      observed: [
        { service: "orders", calls: 450, callsPerMinute: 30, errorRatio: 0.0067 },
        { service: "search", calls: 45, callsPerMinute: 3, errorRatio: 0 },
      ],
      undeclared: ["search"],
      unused: ["inventory"],
    });
    const orders = entries.find((e) => e.name === "orders");
    expect(orders?.dependencies).toMatchObject({ undeclared: [], unused: [], observed: [{ service: "payments", calls: 90, callsPerMinute: 6, errorRatio: 0.1 }] });
  });

  it("reads a spec stored before calls took mappings (plain names) without throwing", () => {
    const legacy = services.map((s) => (s.name === "orders" ? { ...s, spec: { ...s.spec, calls: ["payments"] as unknown as typeof s.spec.calls } } : s));
    const { entries } = buildCatalog(input({ services: legacy }));
    expect(entries.find((e) => e.name === "orders")?.dependencies).toMatchObject({ declared: [{ service: "payments" }], undeclared: [], unused: [] });
    expect(entries.find((e) => e.name === "payments")?.dependents.declared).toEqual(["orders"]);
  });

  it("lists who calls a service, declared and observed (requests from outside too)", () => {
    const { entries } = buildCatalog(input());
    expect(entries.find((e) => e.name === "orders")?.dependents).toEqual({ declared: ["storefront"], observed: [{ service: "storefront", calls: 450, callsPerMinute: 30, errorRatio: 0.0067 }] });
    expect(entries.find((e) => e.name === "storefront")?.dependents.observed).toEqual([{ service: "(external)", calls: 900, callsPerMinute: 60, errorRatio: 0 }]);
    expect(entries.find((e) => e.name === "inventory")?.dependents).toEqual({ declared: ["storefront"], observed: [] });
  });

  it("claims no unused dependency without trace data", () => {
    const { entries, observedWindowSeconds } = buildCatalog(input({ observed: undefined }));
    expect(observedWindowSeconds).toBeUndefined();
    expect(entries.find((e) => e.name === "storefront")?.dependencies).toMatchObject({ observed: undefined, undeclared: [], unused: [] });
    expect(entries.find((e) => e.name === "orders")?.dependents).toEqual({ declared: ["storefront"], observed: undefined });
  });

  it("resolves link paths and OpenAPI files against the manifest and the service's folder", () => {
    const { entries } = buildCatalog(input());
    const byName = new Map(entries.map((e) => [e.name, e]));
    expect(byName.get("storefront")?.links).toEqual([
      { name: "repo", target: "https://git.example/shop", kind: "url", href: "https://git.example/shop" },
      { name: "runbook", target: "docs/runbook.md#storefront", kind: "file", href: "/repo/shop/docs/runbook.md#storefront", exists: true },
    ]);
    // Declared but missing; found under a default name; neither.
    expect(byName.get("orders")?.api).toEqual({ file: "/repo/shop/services/orders/api/orders.yaml", declared: true, exists: false });
    expect(byName.get("inventory")?.api).toEqual({ file: "/repo/shop/services/inventory/openapi.json", declared: false, exists: true });
    expect(byName.get("payments")?.api).toBeUndefined();
    expect(filesToCheck("/repo/shop", services)).toEqual(
      expect.arrayContaining(["/repo/shop/docs/runbook.md", "/repo/shop/services/orders/api/orders.yaml", "/srv/payments/openapi.yaml", "/repo/shop/services/inventory/openapi.json"]),
    );
    expect(filesToCheck("/repo/shop", services)).not.toContain("https://git.example/shop");
  });

  it("carries owner, contact, lifecycle, tags, release and the ready replicas of the current release only", () => {
    const storefront = buildCatalog(input()).entries.find((e) => e.name === "storefront");
    expect(storefront).toMatchObject({
      description: "The shop's web front.",
      lifecycle: "production",
      tags: ["frontend"],
      owner: { team: "web", declared: true, contact: "#web" },
      release: "r-storefront",
      replicas: { desired: 2, ready: 1 },
    });
  });

  it("scores each service from its facts and names the failing rules", () => {
    const { entries, scorecards } = buildCatalog(input());
    const byName = new Map(entries.map((e) => [e.name, e.scorecard]));
    expect(byName.get("storefront")).toEqual({ score: 100, passed: 7, failed: 0, unknown: 0, failing: [] });
    // orders: no SLO, no readiness, a critical finding, its team's stale flag, never deployed; no tests known.
    expect(byName.get("orders")).toEqual({ score: 17, passed: 1, failed: 5, unknown: 1, failing: ["slo", "readiness", "vulnerabilities", "flags", "deployed-recently"] });
    // payments is deprecated: not deploying it is fine; no release, so no scan.
    expect(scorecards.get("payments")?.results.find((r) => r.rule === "deployed-recently")?.status).toBe("n/a");
    expect(scorecards.get("payments")?.results.find((r) => r.rule === "vulnerabilities")?.status).toBe("unknown");
  });

  it("lists declared teams and owners that are not, with services and the mean score", () => {
    const lone = { name: "search", spec: { ...manifest.services.inventory!, owner: "gia" }, release: undefined };
    const { teams } = buildCatalog(input({ services: [...services, lone] }));
    expect(teams.map((t) => [t.name, t.declared, t.services, t.webhooks])).toEqual([
      ["commerce", true, ["inventory", "orders", "payments"], 1],
      ["gia", false, ["search"], 0],
      ["web", true, ["storefront"], 0],
    ]);
    expect(teams.find((t) => t.name === "web")).toMatchObject({ members: ["ana"], contact: "#web", score: 100 });
    const commerce = buildCatalog(input()).scorecards;
    const mean = Math.round(((commerce.get("inventory")?.score ?? 0) + (commerce.get("orders")?.score ?? 0) + (commerce.get("payments")?.score ?? 0)) / 3);
    expect(teams.find((t) => t.name === "commerce")?.score).toBe(mean);
    expect(buildCatalog(input({ services: [...services, lone] })).scorecards.get("search")?.results[0]).toMatchObject({ rule: "owner-team", status: "fail" });
  });
});
