// GET /v1/service-map through the real control plane: observed edges with their error ratio and
// marked when the caller does not declare them, declared calls nobody made, every service a node,
// the window parameter (a bad one named in a 400), and 404 without telemetry.
import { GATEWAY_SERVICE_NAME, TRACE_ATTRIBUTES } from "@keelson/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import type { DependencyMap } from "../catalog/index.js";
import { createReconciler } from "../delivery/index.js";
import { parseManifest } from "../manifest/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createMemoryStore } from "../store/index.js";
import { createBuiltinMetricsSource, createGatewayScraper, createIncidentMonitor, createMemoryTraceStore, createMetricStore, createOtlpReceiver, type SpanRecord, type TraceStore } from "../telemetry/index.js";
import { createApiSecurity } from "./api-security.js";
import { createControlPlane, type ControlPlane } from "./control-plane.js";

const yaml = `project: shop
services:
  web: { owner: web, path: web, start: node main.js, replicas: 0, calls: [orders, billing] }
  orders: { owner: commerce, path: orders, start: node main.js, replicas: 0, calls: [{ service: billing, paths: [/charge] }] }
  billing: { owner: commerce, path: billing, start: node main.js, replicas: 0 }
  stock: { owner: commerce, path: stock, start: node main.js, replicas: 0 }
`;

describe("GET /v1/service-map", () => {
  const silent = { info() {}, warn() {}, error() {} };
  let cp: ControlPlane;
  let bare: ControlPlane;
  let url: string;
  let bareUrl: string;
  let viewer: string;
  let traces: TraceStore;
  let cleanup: () => Promise<void>;

  let n = 0;
  /** A call through the gateway `minutesAgo`, as its server span records it. */
  const call = (from: string, to: string, status: number, minutesAgo = 1): SpanRecord => {
    n++;
    return {
      traceId: n.toString(16).padStart(32, "a"),
      spanId: n.toString(16).padStart(16, "b"),
      parentSpanId: undefined,
      name: "GET",
      kind: "server",
      service: GATEWAY_SERVICE_NAME,
      startTimeUs: (Date.now() - minutesAgo * 60_000) * 1000,
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
  const get = async (path: string, base = url) => {
    const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${viewer}` } });
    return { status: res.status, body: (await res.json()) as DependencyMap & { error?: { code: string; message: string } } };
  };

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-cp-service-map-");
    cleanup = tmp.cleanup;
    const store = createMemoryStore();
    const { manifest } = parseManifest(yaml, "/tmp/shop/keelson.yaml", { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: undefined })),
      remove: [],
      events: [],
    });
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    const metricStore = createMetricStore();
    traces = createMemoryTraceStore();
    const telemetry = {
      metricStore,
      scraper: createGatewayScraper({ urls: () => [], store: metricStore }),
      incidents: createIncidentMonitor({ store, project: "shop", source: createBuiltinMetricsSource(metricStore), objectives: () => [] }),
      traces,
      otlpReceiver: createOtlpReceiver({ store: traces }),
    };
    const security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
    viewer = (await security.tokens.create({ name: "look", role: "viewer", actor: "test" })).token;
    const common = { project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security };
    cp = createControlPlane({ ...common, telemetry });
    url = await cp.listen("127.0.0.1", 0);
    bare = createControlPlane(common);
    bareUrl = await bare.listen("127.0.0.1", 0);
    // web → orders fails 1 in 4; orders → stock is not declared; web → billing, declared, never
    // happens; an hour ago orders called billing (outside the default window).
    await traces.write([call("web", "orders", 200), call("web", "orders", 200), call("web", "orders", 404), call("web", "orders", 503), call("orders", "stock", 200), call("(external)", "web", 200), call("orders", "billing", 200, 60)]);
  });
  afterAll(async () => {
    await cp.close();
    await bare.close();
    await traces.close();
    await cleanup();
  });

  it("answers the observed edges with error ratios, the undeclared one marked, and the declared calls nobody made", async () => {
    const { status, body } = await get("/v1/service-map");
    expect(status).toBe(200);
    expect(body.windowSeconds).toBe(900);
    expect(body.edges.map((e) => ({ from: e.from, to: e.to, calls: e.calls, errors: e.errors, errorRatio: e.errorRatio, undeclared: e.undeclared }))).toEqual([
      { from: "(external)", to: "web", calls: 1, errors: 0, errorRatio: 0, undeclared: false },
      { from: "orders", to: "stock", calls: 1, errors: 0, errorRatio: 0, undeclared: true },
      { from: "web", to: "orders", calls: 4, errors: 1, errorRatio: 0.25, undeclared: false },
    ]);
    expect(body.unused).toEqual([
      { from: "orders", to: "billing" },
      { from: "web", to: "billing" },
    ]);
    expect(body.nodes.map((x) => [x.service, x.spans])).toEqual([
      ["billing", 0],
      ["orders", 0],
      ["stock", 0],
      ["web", 0],
    ]);
  });

  it("covers the window asked for", async () => {
    const { body } = await get("/v1/service-map?window=2h");
    expect(body.windowSeconds).toBe(7200);
    expect(body.edges.find((e) => e.from === "orders" && e.to === "billing")).toMatchObject({ calls: 1, undeclared: false });
    expect(body.unused).toEqual([{ from: "web", to: "billing" }]);
  });

  it("names a malformed window in a 400, and answers 404 without telemetry", async () => {
    const bad = await get("/v1/service-map?window=soon");
    expect(bad.status).toBe(400);
    expect(bad.body.error?.message).toMatch(/^window: expected a duration/);
    const none = await get("/v1/service-map", bareUrl);
    expect(none.status).toBe(404);
    expect(none.body.error?.message).toMatch(/without telemetry/);
  });
});
