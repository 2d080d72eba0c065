// GET /v1/traces/:id/logs through the real control plane: the collected lines of the trace's
// services that carry its id, with span ids, from every replica, in time order; the limit; 400
// for a malformed id or limit, 404 for an unknown trace and without telemetry, 401 without a token.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GATEWAY_SERVICE_NAME, TRACE_ATTRIBUTES } from "@keelson/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { createReconciler } from "../delivery/index.js";
import { parseManifest } from "../manifest/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createMemoryStore } from "../store/index.js";
import {
  createBuiltinMetricsSource,
  createGatewayScraper,
  createIncidentMonitor,
  createMemoryTraceStore,
  createMetricStore,
  createOtlpReceiver,
  type SpanRecord,
  type TraceLogs,
  type TraceStore,
} from "../telemetry/index.js";
import { createApiSecurity } from "./api-security.js";
import { createControlPlane, type ControlPlane } from "./control-plane.js";

const yaml = `project: shop
services:
  web: { owner: web, path: web, start: node main.js, replicas: 0, calls: [orders] }
  orders: { owner: commerce, path: orders, start: node main.js, replicas: 0 }
`;

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTHER = "00f067aa0ba902b700f067aa0ba902b7";

describe("GET /v1/traces/:id/logs", () => {
  const silent = { info() {}, warn() {}, error() {} };
  let cp: ControlPlane;
  let bare: ControlPlane;
  let url: string;
  let bareUrl: string;
  let viewer: string;
  let traces: TraceStore;
  let cleanup: () => Promise<void>;
  const start = Date.now() - 10_000;
  const at = (ms: number) => new Date(start + ms).toISOString();

  function span(service: string, spanId: string, offsetMs: number, attributes: SpanRecord["attributes"] = {}): SpanRecord {
    return {
      traceId: TRACE,
      spanId,
      parentSpanId: undefined,
      name: "GET /",
      kind: "server",
      service,
      startTimeUs: (start + offsetMs) * 1000,
      durationUs: 50_000,
      status: "unset",
      statusMessage: undefined,
      attributes,
      resource: {},
      scope: undefined,
      events: [],
      links: [],
    };
  }
  const sdk = (traceId: string, spanId: string, msg: string) => JSON.stringify({ time: at(0), level: "info", service: "x", traceId, spanId, msg });
  const collected = (ms: number, replica: string, line: string) => JSON.stringify({ t: at(ms), replica, stream: "stdout", line });
  const get = async (path: string, base = url) => {
    const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${viewer}` } });
    return { status: res.status, body: (await res.json()) as TraceLogs & { traceId: string; error?: { code: string; message: string } } };
  };

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-cp-trace-logs-");
    cleanup = tmp.cleanup;
    const store = createMemoryStore();
    const { manifest } = parseManifest(yaml, "/tmp/shop/keelson.yaml", { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: undefined })),
      remove: [],
      events: [],
    });
    // Collected logs, as the process driver's collector writes them.
    for (const [service, replica, lines] of [
      ["web", "web-0", [collected(10, "web-0", sdk(TRACE, "bbbbbbbbbbbbbbb1", "handling")), collected(11, "web-0", sdk(OTHER, "cccccccccccccccc", "another request"))]],
      ["web", "web-1", [collected(30, "web-1", `plain text mentioning ${TRACE}`)]],
      ["orders", "orders-0", ["not json", collected(20, "orders-0", sdk(TRACE, "bbbbbbbbbbbbbbb2", "charging"))]],
    ] as const) {
      await mkdir(join(tmp.dir, "logs", service), { recursive: true });
      await writeFile(join(tmp.dir, "logs", service, `${replica}.log`), lines.join("\n") + "\n");
    }
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
    // The gateway forwarded to web (which sent a span too); web called orders, which sent none.
    await traces.write([span(GATEWAY_SERVICE_NAME, "aaaaaaaaaaaaaaa1", 0, { [TRACE_ATTRIBUTES.TARGET_SERVICE]: "web" }), span("web", "bbbbbbbbbbbbbbb1", 2), span(GATEWAY_SERVICE_NAME, "aaaaaaaaaaaaaaa2", 5, { [TRACE_ATTRIBUTES.TARGET_SERVICE]: "orders" })]);
  });
  afterAll(async () => {
    await cp.close();
    await bare.close();
    await traces.close();
    await cleanup();
  });

  it("lists the lines of the trace's services that carry its id, in time order, with span ids", async () => {
    const { status, body } = await get(`/v1/traces/${TRACE.toUpperCase()}/logs`);
    expect(status).toBe(200);
    expect(body.traceId).toBe(TRACE);
    expect(body.services).toEqual(["orders", "web"]);
    expect(body.truncated).toBe(false);
    expect(body.logs.map((l) => [l.t, l.service, l.replica, l.spanId])).toEqual([
      [at(10), "web", "web-0", "bbbbbbbbbbbbbbb1"],
      [at(20), "orders", "orders-0", "bbbbbbbbbbbbbbb2"],
      [at(30), "web", "web-1", undefined],
    ]);
    expect(JSON.parse(body.logs[1]?.line ?? "{}")).toMatchObject({ msg: "charging" });
  });

  it("stops at the limit and says so", async () => {
    const { body } = await get(`/v1/traces/${TRACE}/logs?limit=1`);
    expect(body.logs.map((l) => l.replica)).toEqual(["web-0"]);
    expect(body.truncated).toBe(true);
  });

  it("answers 400 for a malformed id or limit, 404 for an unknown trace and without telemetry, 401 without a token", async () => {
    const shortId = await get("/v1/traces/4bf92f/logs");
    expect(shortId.status).toBe(400);
    expect(shortId.body.error?.message).toMatch(/^traceId: expected 32 hex digits/);
    const limit = await get(`/v1/traces/${TRACE}/logs?limit=0`);
    expect(limit.status).toBe(400);
    expect(limit.body.error?.message).toMatch(/^limit: expected a whole number 1-5000/);
    expect((await get(`/v1/traces/${OTHER}/logs`)).status).toBe(404);
    expect((await get(`/v1/traces/${TRACE}/logs`, bareUrl)).body.error?.message).toMatch(/without telemetry/);
    expect((await fetch(`${url}/v1/traces/${TRACE}/logs`)).status).toBe(401);
  });
});
