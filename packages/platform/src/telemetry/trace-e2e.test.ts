// End to end: three services built with @keelson/sdk call each other through a stand-in
// gateway and export their spans over real OTLP/HTTP to the receiver; one request must come
// out as one trace web → orders → payments with exact parent links, and as the map's edges.
import { createServer, request } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createClient, createLogger, createRouter, createTracing, json, serve, startGatewayStub } from "@keelson/sdk";
import type { GatewayStub, ServiceHandle, Tracing } from "@keelson/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "#test-support";
import { createOtlpReceiver } from "./otlp-receiver.js";
import type { OtlpReceiver } from "./otlp-receiver.js";
import { EXTERNAL_CALLER, buildServiceMap } from "./service-map.js";
import { createMemoryTraceStore } from "./trace-store-memory.js";
import { buildTraceTree, flattenTraceTree, renderTraceTree } from "./trace-tree.js";

const silent = createLogger({ level: "silent" });
const store = createMemoryTraceStore();
let receiver: OtlpReceiver;
let receiverServer: Server;
let gateway: GatewayStub;
const services: ServiceHandle[] = [];
const tracings: Tracing[] = [];
/** Where the gateway sends each service's calls; filled in as the services start. */
const upstreams = new Map<string, string>();

/** The gateway stand-in forwards to the service's real serve() server, headers and all. */
function proxyTo(service: string) {
  return (req: IncomingMessage, res: ServerResponse) =>
    new Promise<void>((resolve, reject) => {
      const upstream = request(`${upstreams.get(service)}${req.url ?? "/"}`, { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        up.on("end", resolve);
      });
      upstream.on("error", reject);
      req.pipe(upstream);
    });
}

beforeAll(async () => {
  receiver = createOtlpReceiver({ store });
  receiverServer = createServer((req, res) => void receiver.handle(req, res));
  await new Promise<void>((resolve) => receiverServer.listen(0, "127.0.0.1", resolve));
  const address = receiverServer.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  const endpoint = `http://127.0.0.1:${address.port}/v1/traces`;

  gateway = await startGatewayStub({ web: proxyTo("web"), orders: proxyTo("orders"), payments: proxyTo("payments") });

  const start = async (name: string, route: string, next: string | undefined) => {
    // Short delay so spans leave promptly; the exporter is OpenTelemetry's OTLP/HTTP one.
    const tracing = createTracing({ service: name, endpoint, logger: silent, batch: { scheduledDelayMs: 20 } });
    tracings.push(tracing);
    const client = createClient({ gatewayUrl: gateway.url, self: name, logger: silent, tracing });
    const handle = await serve({
      port: 0,
      signals: [],
      logger: silent,
      tracing,
      handler: createRouter().get(route, async ({ res }) => json(res, 200, { [name]: true, ...(next ? await client.json<object>(next, `/api/${next}`) : {}) })).handle,
    });
    services.push(handle);
    upstreams.set(name, handle.url);
  };
  await start("payments", "/api/payments", undefined);
  await start("orders", "/api/orders", "payments");
  await start("web", "/api/web", "orders");
});

afterAll(async () => {
  await Promise.all(services.map((s) => s.close()));
  await Promise.all(tracings.map((t) => t.shutdown()));
  await gateway?.close();
  await receiver?.close();
  await new Promise<void>((resolve) => {
    receiverServer?.close(() => resolve());
    receiverServer?.closeAllConnections();
  });
});

describe("tracing end to end", () => {
  it("one request through the gateway is one trace web → orders → payments with the map's edges", async () => {
    const res = await fetch(`${gateway.url}/api/web`, { headers: { "x-keelson-service": "web" } });
    expect(await res.json()).toEqual({ web: true, orders: true, payments: true });

    // Five spans: a server span per service and a client span per call.
    await Promise.all(tracings.map((t) => t.forceFlush(5000)));
    const [summary] = await waitFor(async () => {
      const found = await store.search({});
      return found.length === 1 && found[0]?.spanCount === 5 ? found : undefined;
    }, { what: "five spans of one trace at the receiver" });
    expect(summary).toMatchObject({ rootService: "web", rootName: "GET /api/web", spanCount: 5, errorCount: 0, services: ["orders", "payments", "web"] });

    const spans = await store.getTrace(summary?.traceId ?? "");
    const tree = buildTraceTree(spans);
    expect(tree?.roots).toHaveLength(1);
    const rows = flattenTraceTree(tree as never).map(({ node }) => [node.depth, node.span.service, node.span.kind, node.span.name]);
    expect(rows).toEqual([
      [0, "web", "server", "GET /api/web"],
      [1, "web", "client", "GET orders"],
      [2, "orders", "server", "GET /api/orders"],
      [3, "orders", "client", "GET payments"],
      [4, "payments", "server", "GET /api/payments"],
    ]);
    // Every parent link is exact: each span's parent is the row above it.
    const ordered = flattenTraceTree(tree as never).map(({ node }) => node.span);
    for (let i = 1; i < ordered.length; i++) expect(ordered[i]?.parentSpanId).toBe(ordered[i - 1]?.spanId);
    // Server spans know who called them (x-keelson-caller), client spans whom they called.
    expect(ordered[2]?.attributes["keelson.caller"]).toBe("web");
    expect(ordered[3]?.attributes["keelson.target.service"]).toBe("payments");
    expect(renderTraceTree(tree as never).split("\n")).toHaveLength(6);

    const map = buildServiceMap(spans);
    expect(map.edges.map((e) => [e.from, e.to, e.calls, e.errors])).toEqual([
      [EXTERNAL_CALLER, "web", 1, 0],
      ["orders", "payments", 1, 0],
      ["web", "orders", 1, 0],
    ]);
    expect(receiver.stats()).toMatchObject({ acceptedSpans: 5, rejectedSpans: 0 });
    expect(tracings.map((t) => t.stats().spansDropped)).toEqual([0, 0, 0]);
  });
});
