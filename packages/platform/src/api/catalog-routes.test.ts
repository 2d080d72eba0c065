// The catalog endpoints through the real control plane: services with drift between `calls` and
// the trace-derived map, a service's detail with scorecard and deploys, teams, scorecards (a
// service without an SLO is flagged, a team's stale flag counts against its services), filters,
// 400 for malformed queries naming the parameter, 404 for unknown names.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GATEWAY_SERVICE_NAME, TRACE_ATTRIBUTES } from "@keelson/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, waitFor } from "#test-support";
import { saveTeams, type CatalogListing, type ScorecardReport, type ServiceDetail, type TeamView } from "../catalog/index.js";
import { createReconciler, type Reconciler } from "../delivery/index.js";
import { createFlagService } from "../flags/index.js";
import { parseManifest } from "../manifest/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import {
  createBuiltinMetricsSource,
  createGatewayScraper,
  createIncidentMonitor,
  createMemoryTraceStore,
  createMetricStore,
  createOtlpReceiver,
  type SpanRecord,
  type TraceStore,
} from "../telemetry/index.js";
import { createApiSecurity } from "./api-security.js";
import { createControlPlane, type ControlPlane } from "./control-plane.js";

const yaml = `project: shop
teams:
  web: { members: [ana], contact: "#shop-web" }
  commerce: { members: [chidi], contact: "#shop-commerce" }
services:
  storefront:
    owner: web
    description: The shop's web front.
    lifecycle: production
    tags: [frontend]
    links: { repo: "https://git.example/shop" }
    path: services/storefront
    start: node main.js
    readiness: /ready
    slos: [{ name: availability, availability: 99.9 }]
    calls: [orders, inventory]
  orders:
    owner: commerce
    tags: [pci]
    path: services/orders
    start: node main.js
    readiness: /ready
  inventory:
    owner: commerce
    path: services/inventory
    start: node main.js
    readiness: /ready
    slos: [{ name: availability, availability: 99 }]
  payments:
    owner: commerce
    tags: [pci]
    path: services/payments
    start: node main.js
    readiness: /ready
    slos: [{ name: availability, availability: 99.95 }]
`;

const DAY = 86_400_000;
/** The release id each service runs. */
const rel = (name: string) => `r-${name.padEnd(12, "0").slice(0, 12)}`;

describe("catalog endpoints", () => {
  let cp: ControlPlane;
  let url: string;
  let store: Store;
  let reconciler: Reconciler;
  let traces: TraceStore;
  let dir: string;
  let cleanup: () => Promise<void>;
  let viewer: string;
  // The flag is created 100 days ago; "now" then moves to the present.
  let t = Date.now() - 100 * DAY;
  const silent = { info() {}, warn() {}, error() {} };

  const get = async <T>(path: string, token = viewer): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as T };
  };

  /** A call through the gateway, as its server span records it. */
  let n = 0;
  const call = (from: string, to: string, status = 200): SpanRecord => {
    n++;
    return {
      traceId: n.toString(16).padStart(32, "a"),
      spanId: n.toString(16).padStart(16, "b"),
      parentSpanId: undefined,
      name: "GET",
      kind: "server",
      service: GATEWAY_SERVICE_NAME,
      startTimeUs: (Date.now() - 60_000) * 1000,
      durationUs: 2000,
      status: status >= 500 ? "error" : "unset",
      statusMessage: undefined,
      attributes: { [TRACE_ATTRIBUTES.TARGET_SERVICE]: to, [TRACE_ATTRIBUTES.CALLER]: from, "http.response.status_code": status },
      resource: { "service.name": GATEWAY_SERVICE_NAME },
      scope: undefined,
      events: [],
      links: [],
    };
  };

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-cp-catalog-");
    cleanup = tmp.cleanup;
    dir = tmp.dir;
    await mkdir(join(dir, "services", "orders"), { recursive: true });
    await writeFile(join(dir, "services", "orders", "openapi.yaml"), "openapi: 3.1.0\ninfo: { title: orders, version: '1' }\npaths: {}\n");
    store = createMemoryStore({ now: () => t });
    const { manifest } = parseManifest(yaml, join(dir, "keelson.yaml"), { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: join(dir, "keelson.yaml"), manifestHash: "h", appliedAt: new Date(t).toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: rel(name) })),
      remove: [],
      events: [],
    });
    await saveTeams(store, "shop", manifest, new Date(t).toISOString());
    for (const name of Object.keys(manifest.services)) {
      const critical = name === "payments" ? 1 : 0;
      await store.putRelease({
        id: rel(name),
        project: "shop",
        service: name,
        sourceHash: "s",
        configHash: "c",
        gitCommit: undefined,
        createdAt: new Date(t).toISOString(),
        details: { securityFindings: { total: critical, blocking: 0, byKind: {}, bySeverity: critical ? { critical } : {} } },
      });
    }
    const driver = createMemoryDriver();
    reconciler = createReconciler({ store, driver, project: "shop", stateDir: dir, gatewayUrl: "http://127.0.0.1:1", log: silent, convergeIntervalMs: 100 });
    reconciler.start();
    await reconciler.converge();
    await waitFor(() => (driver.list().filter((r) => r.state === "ready").length === 4 ? true : undefined), { what: "four ready replicas" });

    const flags = createFlagService({ store, project: "shop", now: () => new Date(t) });
    await flags.put("old-banner", { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", owner: "commerce" }, "test");
    const metricStore = createMetricStore();
    traces = createMemoryTraceStore();
    const telemetry = {
      metricStore,
      scraper: createGatewayScraper({ urls: () => [], store: metricStore }),
      incidents: createIncidentMonitor({ store, project: "shop", source: createBuiltinMetricsSource(metricStore), objectives: () => [] }),
      traces,
      otlpReceiver: createOtlpReceiver({ store: traces }),
    };
    const security = await createApiSecurity({ store, project: "shop", stateDir: dir });
    viewer = (await security.tokens.create({ name: "look", role: "viewer", actor: "test" })).token;
    cp = createControlPlane({ project: "shop", dir, stateDir: dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security, flags, telemetry, now: () => new Date(t) });
    url = await cp.listen("127.0.0.1", 0);

    // The present: storefront and payments were deployed a day ago, the others never.
    t = Date.now() - DAY;
    for (const name of ["storefront", "payments"]) {
      await store.appendEvent({ project: "shop", kind: "rollout.succeeded", actor: "user:ana", subject: `service/${name}`, details: { rollout: `ro-${name}`, strategy: "rolling", to: rel(name) } });
    }
    t = Date.now();
    // storefront calls orders (declared) and payments (not declared), never inventory (declared).
    await traces.write([call("storefront", "orders"), call("storefront", "orders", 503), call("storefront", "payments"), call("(external)", "storefront")]);
  });
  afterAll(async () => {
    await cp.close();
    await reconciler.stop();
    await traces.close();
    await cleanup();
  });

  it("lists services with owner, release, ready replicas, score and drift both ways", async () => {
    const { status, body } = await get<CatalogListing>("/v1/catalog");
    expect(status).toBe(200);
    expect(body.observedWindowSeconds).toBe(900);
    expect(body.services.map((e) => e.name)).toEqual(["inventory", "orders", "payments", "storefront"]);
    const storefront = body.services.find((e) => e.name === "storefront");
    expect(storefront).toMatchObject({
      owner: { team: "web", declared: true, contact: "#shop-web" },
      lifecycle: "production",
      release: rel("storefront"),
      replicas: { desired: 1, ready: 1 },
      links: [{ name: "repo", kind: "url", href: "https://git.example/shop" }],
      dependencies: { undeclared: ["payments"], unused: ["inventory"] },
      dependents: { declared: [], observed: [{ service: "(external)", calls: 1 }] },
    });
    expect(storefront?.dependencies.observed).toEqual([
      { service: "orders", calls: 2, callsPerMinute: 0.13, errorRatio: 0.5 },
      { service: "payments", calls: 1, callsPerMinute: 0.07, errorRatio: 0 },
    ]);
    expect(body.services.find((e) => e.name === "orders")?.api).toEqual({ file: join(dir, "services", "orders", "openapi.yaml"), declared: false, exists: true });
  });

  it("filters by team and tag; 400 names a malformed parameter; 404 for a team nobody has", async () => {
    expect((await get<CatalogListing>("/v1/catalog?team=commerce")).body.services.map((e) => e.name)).toEqual(["inventory", "orders", "payments"]);
    expect((await get<CatalogListing>("/v1/catalog?tag=pci")).body.services.map((e) => e.name)).toEqual(["orders", "payments"]);
    expect((await get<CatalogListing>("/v1/catalog?team=web&tag=pci")).body.services).toEqual([]);
    for (const [query, param] of [["team=Commerce!", "team"], ["tag=PCI", "tag"], ["team=web&team=commerce", "team"], ["tag=", "tag"]] as const) {
      const res = await get<{ error: { code: string; message: string } }>(`/v1/catalog?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code).toBe("KEELSON_ERR_INVALID_INPUT");
      expect(res.body.error.message.startsWith(`${param}: expected`)).toBe(true);
    }
    const unknown = await get<{ error: { code: string; message: string } }>("/v1/catalog?team=nobody");
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toMatch(/team "nobody"/);
    expect((await get("/v1/scorecards?team=x_y")).status).toBe(400);
    expect((await get("/v1/scorecards?team=nobody")).status).toBe(404);
  });

  it("shows one service whole: scorecard with reasons and recent deploys; 404 for an unknown one", async () => {
    const { status, body } = await get<ServiceDetail>("/v1/catalog/services/payments");
    expect(status).toBe(200);
    expect(body.dependents.declared).toEqual([]);
    expect(body.dependents.observed).toEqual([{ service: "storefront", calls: 1, callsPerMinute: 0.07, errorRatio: 0 }]);
    expect(body.deploys).toMatchObject([{ kind: "rollout.succeeded", release: rel("payments"), strategy: "rolling", actor: "user:ana" }]);
    expect(body.scorecardResults.filter((r) => r.status !== "pass").map((r) => [r.rule, r.status, r.reason])).toEqual([
      ["tests", "unknown", "no pipeline run recorded yet, and the stages come from package.json"],
      ["vulnerabilities", "fail", `1 critical vulnerability in ${rel("payments")}`],
      ["flags", "fail", expect.stringMatching(/^stale: old-banner \(never evaluated in 100 days.*no change for 100 days/)],
    ]);
    const missing = await get<{ error: { code: string } }>("/v1/catalog/services/nope");
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("KEELSON_ERR_NOT_FOUND");
  });

  it("scores every service and team; a service without an SLO is flagged", async () => {
    const { status, body } = await get<ScorecardReport>("/v1/scorecards");
    expect(status).toBe(200);
    expect(body.rules.map((r) => r.id)).toEqual(["owner-team", "slo", "readiness", "tests", "vulnerabilities", "flags", "deployed-recently"]);
    const orders = body.services.find((c) => c.service === "orders");
    expect(orders?.results.find((r) => r.rule === "slo")).toEqual({ rule: "slo", title: "Has an SLO", status: "fail", reason: "no SLO declared under slos:" });
    expect(body.services.filter((c) => c.results.some((r) => r.rule === "slo" && r.status === "fail")).map((c) => c.service)).toEqual(["orders"]);
    // storefront: everything known passes (tests unknown). web's score is storefront's.
    expect(body.services.find((c) => c.service === "storefront")).toMatchObject({ score: 100, passed: 6, unknown: 1 });
    expect(body.teams).toEqual([
      { name: "commerce", score: expect.any(Number), services: 3 },
      { name: "web", score: 100, services: 1 },
    ]);
    const commerce = (await get<ScorecardReport>("/v1/scorecards?team=commerce")).body;
    expect(commerce.services.map((c) => c.service)).toEqual(["inventory", "orders", "payments"]);
    const mean = Math.round(commerce.services.reduce((s, c) => s + (c.score ?? 0), 0) / 3);
    expect(commerce.teams).toEqual([{ name: "commerce", score: mean, services: 3 }]);
  });

  it("lists teams with members, contact, services and score; 404 for an unknown team", async () => {
    const { body } = await get<{ teams: TeamView[] }>("/v1/teams");
    expect(body.teams.map((tm) => [tm.name, tm.members, tm.contact, tm.services])).toEqual([
      ["commerce", ["chidi"], "#shop-commerce", ["inventory", "orders", "payments"]],
      ["web", ["ana"], "#shop-web", ["storefront"]],
    ]);
    expect((await get<TeamView>("/v1/teams/web")).body).toMatchObject({ name: "web", declared: true, score: 100, webhooks: 0 });
    expect((await get("/v1/teams/nobody")).status).toBe(404);
  });
});
