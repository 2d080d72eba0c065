// Gateway tracing end to end: a gateway exporting to a real OTLP receiver and memory trace store on
// 127.0.0.1, checked span by span (parents, attempts, the traceparent the upstream got), plus the
// traceparent parser and an exporter whose endpoint is dead.
import { once } from "node:events";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import type { RoutingTable, ServicePolicy } from "@keelson/protocol";
import { DEFAULT_SERVICE_POLICY, GATEWAY_SERVICE_NAME, TRACE_ATTRIBUTES } from "@keelson/protocol";
import { makeTempDir, waitFor } from "#test-support";
import { createMemoryTraceStore, createOtlpReceiver } from "../telemetry/index.js";
import type { SpanRecord, TraceStore } from "../telemetry/index.js";
import type { Gateway, GatewayOptions } from "./gateway-server.js";
import { createGateway } from "./gateway-server.js";
import { parseTraceparent } from "./gateway-tracing.js";
import { createSeededRandom } from "./random.js";
import { buildRoutingTable } from "./routing-table.js";
import { createMeshIdentity } from "./fixtures/mesh-identity.js";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let stateDir = "";

beforeEach(async () => {
  const tmp = await makeTempDir("keelson-gw-tracing-");
  stateDir = tmp.dir;
  cleanups.push(tmp.cleanup);
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server: Server = createServer(handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** A control plane's trace intake: the real receiver on a memory store. */
async function startCollector(): Promise<{ endpoint: string; store: TraceStore }> {
  const store = createMemoryTraceStore();
  const receiver = createOtlpReceiver({ store });
  const url = await listen((req, res) => void receiver.handle(req, res));
  cleanups.push(() => receiver.close());
  return { endpoint: `${url}/v1/traces`, store };
}

/** An upstream that answers the statuses given in turn (then 200), recording each traceparent. */
async function startUpstream(statuses: number[] = []): Promise<{ url: string; traceparents: Array<string | undefined> }> {
  const traceparents: Array<string | undefined> = [];
  const url = await listen((req, res) => {
    traceparents.push(req.headers["traceparent"] as string | undefined);
    req.resume();
    const status = statuses.shift() ?? 200;
    res.writeHead(status, { "content-type": "text/plain" });
    res.end(`status ${status}`);
  });
  return { url, traceparents };
}

let version = 0;
function table(url: string, policy?: ServicePolicy): RoutingTable {
  return buildRoutingTable({
    project: "test",
    version: ++version,
    services: [{ name: "orders", routes: [{ path: "/", stripPrefix: false }], ...(policy === undefined ? {} : { policy }) }],
    endpoints: [{ service: "orders", replicaId: "orders-1", url, release: "r1" }],
  });
}

async function startGateway(options: Partial<GatewayOptions>): Promise<Gateway> {
  const gw = createGateway({ host: "127.0.0.1", port: 0, adminPort: 0, stateDir, processMetrics: false, random: createSeededRandom(7), ...options });
  await gw.start();
  cleanups.push(() => gw.stop({ drainMs: 100 }));
  return gw;
}

const client = new Agent({ keepAliveTimeout: 10_000 });

async function get(url: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await request(url, { dispatcher: client, headers });
  await res.body.text();
  return res.statusCode;
}

async function spansOf(store: TraceStore, traceId: string, count: number): Promise<SpanRecord[]> {
  return waitFor(
    async () => {
      const spans = await store.getTrace(traceId);
      return spans.length >= count ? spans : undefined;
    },
    { what: `${count} spans of trace ${traceId}` },
  );
}

const INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const INCOMING_SPAN = "00f067aa0ba902b7";

describe("gateway tracing", () => {
  it("continues an incoming traceparent: server span under the caller's span, a try span under it, sent upstream", async () => {
    const collector = await startCollector();
    const upstream = await startUpstream();
    const gw = await startGateway({ tracing: { endpoint: collector.endpoint, flushIntervalMs: 20 } });
    gw.setTable(table(upstream.url));

    // A caller named by a header on the public listener is not believed (only the mesh listener knows callers).
    const status = await get(`${gw.url}/api/orders/7?x=1`, { traceparent: `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01`, "x-keelson-caller": "storefront" });
    expect(status).toBe(200);

    const spans = await spansOf(collector.store, INCOMING_TRACE, 2);
    expect(spans).toHaveLength(2);
    const server = spans.find((s) => s.kind === "server")!;
    const tryspan = spans.find((s) => s.kind === "client")!;
    expect(server.attributes[TRACE_ATTRIBUTES.CALLER]).toBeUndefined();
    expect(server).toMatchObject({
      service: GATEWAY_SERVICE_NAME,
      parentSpanId: INCOMING_SPAN,
      name: "GET orders",
      status: "unset",
      attributes: {
        [TRACE_ATTRIBUTES.TARGET_SERVICE]: "orders",
        "http.response.status_code": 200,
        "url.path": "/api/orders/7",
      },
    });
    expect(tryspan).toMatchObject({
      service: GATEWAY_SERVICE_NAME,
      parentSpanId: server.spanId,
      attributes: {
        [TRACE_ATTRIBUTES.TARGET_SERVICE]: "orders",
        [TRACE_ATTRIBUTES.TARGET_VERSION]: "r1",
        [TRACE_ATTRIBUTES.TARGET_REPLICA]: "orders-1",
        [TRACE_ATTRIBUTES.ATTEMPT]: 0,
        "http.response.status_code": 200,
      },
    });
    expect(tryspan.startTimeUs).toBeGreaterThanOrEqual(server.startTimeUs);
    expect(tryspan.startTimeUs + tryspan.durationUs).toBeLessThanOrEqual(server.startTimeUs + server.durationUs);
    // The upstream got the try span as its parent, not the caller's span.
    expect(upstream.traceparents).toEqual([`00-${INCOMING_TRACE}-${tryspan.spanId}-01`]);
  });

  it("shows a retried request as two try spans, attempts 0 and 1, each sent as the upstream's parent", async () => {
    const collector = await startCollector();
    const upstream = await startUpstream([503]);
    const policy: ServicePolicy = { ...DEFAULT_SERVICE_POLICY, retries: { attempts: 2, budgetPercent: 100, minPerSecond: 10, backoffBaseMs: 0, backoffMaxMs: 0 } };
    const gw = await startGateway({ tracing: { endpoint: collector.endpoint, flushIntervalMs: 20 } });
    gw.setTable(table(upstream.url, policy));

    expect(await get(`${gw.url}/retry`, { traceparent: `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01` })).toBe(200);

    const spans = await spansOf(collector.store, INCOMING_TRACE, 3);
    const server = spans.find((s) => s.kind === "server")!;
    const tries = spans.filter((s) => s.kind === "client").sort((a, b) => Number(a.attributes[TRACE_ATTRIBUTES.ATTEMPT]) - Number(b.attributes[TRACE_ATTRIBUTES.ATTEMPT]));
    expect(tries.map((s) => [s.parentSpanId, s.attributes[TRACE_ATTRIBUTES.ATTEMPT], s.attributes["http.response.status_code"], s.status])).toEqual([
      [server.spanId, 0, 503, "error"],
      [server.spanId, 1, 200, "unset"],
    ]);
    expect(server.attributes["http.response.status_code"]).toBe(200);
    expect(upstream.traceparents).toEqual(tries.map((s) => `00-${INCOMING_TRACE}-${s.spanId}-01`));
  });

  it("starts a new trace for a request without traceparent and marks a 5xx answer as an error", async () => {
    const collector = await startCollector();
    const upstream = await startUpstream([500]);
    const gw = await startGateway({ tracing: { endpoint: collector.endpoint, flushIntervalMs: 20 } });
    gw.setTable(table(upstream.url));

    expect(await get(`${gw.url}/fresh`)).toBe(500);

    const sent = parseTraceparent(upstream.traceparents[0] ?? "");
    expect(sent).toBeDefined();
    expect(sent!.sampled).toBe(true);
    const spans = await spansOf(collector.store, sent!.traceId, 2);
    const server = spans.find((s) => s.kind === "server")!;
    const tryspan = spans.find((s) => s.kind === "client")!;
    expect(server.parentSpanId).toBeUndefined();
    expect(server.status).toBe("error");
    expect(server.attributes["http.response.status_code"]).toBe(500);
    expect(tryspan.spanId).toBe(sent!.spanId);
    expect(tryspan.parentSpanId).toBe(server.spanId);
  });

  it("records a mesh call the call policy denies with its caller and the service it tried (the map's undeclared edge)", async () => {
    const collector = await startCollector();
    const upstream = await startUpstream();
    const mesh = await createMeshIdentity("test");
    cleanups.push(() => mesh.cleanup());
    const gw = await startGateway({ meshPort: 0, tracing: { endpoint: collector.endpoint, flushIntervalMs: 20 } });
    gw.setTable(
      buildRoutingTable({
        project: "test",
        version: ++version,
        identity: mesh.trust,
        services: [{ name: "orders", routes: [], callers: [{ service: "web" }] }],
        endpoints: [{ service: "orders", replicaId: "orders-1", url: upstream.url, release: "r1" }],
      }),
    );
    const traceparent = `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01`;
    expect(await get(`${gw.meshUrl!}/refunds/7?all=1`, { "x-keelson-service": "orders", "x-keelson-identity": await mesh.tokenFor("billing"), traceparent })).toBe(403);
    expect(upstream.traceparents).toEqual([]);
    const [server] = await spansOf(collector.store, INCOMING_TRACE, 1);
    expect(server!.kind).toBe("server");
    expect(server!.attributes[TRACE_ATTRIBUTES.CALLER]).toBe("billing");
    expect(server!.attributes[TRACE_ATTRIBUTES.TARGET_SERVICE]).toBe("orders");
    expect(server!.attributes["http.response.status_code"]).toBe(403);
    expect(server!.status).not.toBe("error");
  });

  it("passes an unsampled incoming traceparent through untouched and records nothing", async () => {
    const collector = await startCollector();
    const upstream = await startUpstream();
    const gw = await startGateway({ tracing: { endpoint: collector.endpoint, flushIntervalMs: 20 } });
    gw.setTable(table(upstream.url));
    const incoming = `00-${INCOMING_TRACE}-${INCOMING_SPAN}-00`;

    expect(await get(`${gw.url}/quiet`, { traceparent: incoming })).toBe(200);
    // A traced request after it, so there is something the exporter certainly sent.
    expect(await get(`${gw.url}/loud`)).toBe(200);
    await spansOf(collector.store, parseTraceparent(upstream.traceparents[1] ?? "")!.traceId, 2);

    expect(upstream.traceparents[0]).toBe(incoming);
    expect(await collector.store.getTrace(INCOMING_TRACE)).toEqual([]);
  });

  it("keeps answering when the span endpoint is dead, counting the dropped spans", async () => {
    // A port that was free a moment ago: connections are refused.
    const deadUrl = await listen(() => undefined);
    await cleanups.pop()!();
    const upstream = await startUpstream();
    const gw = await startGateway({ tracing: { endpoint: `${deadUrl}/v1/traces`, flushIntervalMs: 10 } });
    gw.setTable(table(upstream.url));

    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push(await get(`${gw.url}/n/${i}`));
    expect(statuses).toEqual(Array.from({ length: 20 }, () => 200));

    const dropped = await waitFor(
      async () => {
        const metric = await gw.metrics.registry.getSingleMetric("keelson_gateway_spans_dropped_total")!.get();
        const value = metric.values.find((v) => v.labels.reason === "export_failed")?.value ?? 0;
        return value >= 40 ? value : undefined;
      },
      { what: "40 dropped spans" },
    );
    expect(dropped).toBe(40);
    expect(upstream.traceparents.every((t) => parseTraceparent(t ?? "") !== undefined)).toBe(true);
  });

  it("leaves traceparent alone when tracing is off", async () => {
    const upstream = await startUpstream();
    const gw = await startGateway({});
    gw.setTable(table(upstream.url));
    const incoming = `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01`;
    expect(await get(`${gw.url}/off`, { traceparent: incoming })).toBe(200);
    expect(upstream.traceparents).toEqual([incoming]);
  });
});

describe("parseTraceparent", () => {
  it("reads valid headers and refuses malformed, all-zero and version ff ones", () => {
    expect(parseTraceparent(`00-${INCOMING_TRACE}-${INCOMING_SPAN}-01`)).toEqual({ traceId: INCOMING_TRACE, spanId: INCOMING_SPAN, sampled: true });
    expect(parseTraceparent(`00-${INCOMING_TRACE}-${INCOMING_SPAN}-00`)?.sampled).toBe(false);
    expect(parseTraceparent(`01-${INCOMING_TRACE}-${INCOMING_SPAN}-03-future`)?.sampled).toBe(true);
    expect(parseTraceparent(`00-${INCOMING_TRACE}-${INCOMING_SPAN}-01-extra`)).toBeUndefined();
    expect(parseTraceparent(`ff-${INCOMING_TRACE}-${INCOMING_SPAN}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${"0".repeat(32)}-${INCOMING_SPAN}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${INCOMING_TRACE}-${"0".repeat(16)}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${INCOMING_TRACE.toUpperCase()}-${INCOMING_SPAN}-01`)).toBeUndefined();
    expect(parseTraceparent("garbage")).toBeUndefined();
  });
});
