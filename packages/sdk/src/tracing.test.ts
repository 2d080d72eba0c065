// Tests for SDK tracing with OpenTelemetry's in-memory exporter: server spans under an
// incoming traceparent, client spans under them with traceparent sent on, route names,
// error statuses, trace ids in logs, and an export endpoint that fails without hurting the service.
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, waitFor } from "#test-support";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "./client.js";
import { startGatewayStub } from "./gateway-stub.js";
import { createIdentity } from "./identity.js";
import type { GatewayStub } from "./gateway-stub.js";
import { createLogger } from "./logger.js";
import { HttpError, json } from "./respond.js";
import { createRouter } from "./router.js";
import { serve } from "./serve.js";
import type { ServiceHandle } from "./serve.js";
import { createTracing } from "./tracing.js";

const silent = createLogger({ level: "silent" });
const handles: ServiceHandle[] = [];
const stubs: GatewayStub[] = [];
afterEach(async () => {
  await Promise.all(handles.splice(0).map((h) => h.close()));
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

const PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN = "00f067aa0ba902b7";

function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

describe("tracing: serve() and createClient()", () => {
  it("continues the caller's trace, nests the client span, sends traceparent on and names the route", async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = createTracing({ service: "orders", exporter, logger: silent, batch: { scheduledDelayMs: 20 } });
    const gateway = await startGatewayStub({ payments: (_req, res) => json(res, 201, { charged: true }) });
    stubs.push(gateway);
    const client = createClient({ gatewayUrl: gateway.url, self: "orders", logger: silent, tracing });
    const h = await serve({
      port: 0,
      signals: [],
      logger: silent,
      tracing,
      handler: createRouter().post("/api/orders/:id/pay", async ({ res }) => json(res, 200, await client.json("payments", "/charges?x=1", { json: {} }))).handle,
    });
    handles.push(h);

    const res = await fetch(`${h.url}/api/orders/o-1/pay`, { method: "POST", headers: { traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-01`, "x-keelson-caller": "storefront" } });
    expect(res.status).toBe(200);
    await waitFor(() => exporter.getFinishedSpans().length === 2, { what: "both spans" });
    await tracing.forceFlush();

    const [clientSpan, serverSpan] = exporter.getFinishedSpans() as [ReadableSpan, ReadableSpan];
    expect([serverSpan.name, serverSpan.kind, serverSpan.spanContext().traceId, parentOf(serverSpan)]).toEqual(["POST /api/orders/:id/pay", SpanKind.SERVER, PARENT_TRACE, PARENT_SPAN]);
    expect(serverSpan.attributes).toMatchObject({ "http.route": "/api/orders/:id/pay", "url.path": "/api/orders/o-1/pay", "http.request.method": "POST", "http.response.status_code": 200, "keelson.caller": "storefront" });
    expect(serverSpan.resource.attributes["service.name"]).toBe("orders");

    expect([clientSpan.name, clientSpan.kind, clientSpan.spanContext().traceId, parentOf(clientSpan)]).toEqual(["POST payments", SpanKind.CLIENT, PARENT_TRACE, serverSpan.spanContext().spanId]);
    expect(clientSpan.attributes).toMatchObject({ "keelson.target.service": "payments", "url.path": "/charges", "http.response.status_code": 201 });
    // The gateway got the client span as the parent of whatever happens next.
    expect(gateway.calls[0]?.headers.traceparent).toBe(`00-${PARENT_TRACE}-${clientSpan.spanContext().spanId}-01`);
    // The in-memory exporter confirms a batch on a later tick.
    await waitFor(() => tracing.stats().spansExported === 2, { what: "the export to be confirmed" });
    expect(tracing.stats()).toEqual({ spansEnded: 2, spansExported: 2, spansDropped: 0, exportFailures: 0 });
  });

  it("starts a new trace without a traceparent and marks 5xx answers, thrown errors and failed calls as errors", async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = createTracing({ service: "orders", exporter, logger: silent, batch: { scheduledDelayMs: 20 } });
    const deadGateway = `http://127.0.0.1:${await freePort()}`;
    const client = createClient({ gatewayUrl: deadGateway, logger: silent, tracing });
    const h = await serve({
      port: 0,
      signals: [],
      logger: silent,
      tracing,
      handler: createRouter()
        .get("/boom", () => {
          throw new Error("bug");
        })
        .get("/declined", () => {
          throw new HttpError(402, "DECLINED", "card declined");
        })
        .get("/call", async ({ res }) => {
          await client.call("payments", "/x").catch(() => undefined);
          json(res, 503, { error: { code: "DEPENDENCY", message: "payments is down" } });
        }).handle,
    });
    handles.push(h);
    for (const path of ["/boom", "/declined", "/call"]) await fetch(`${h.url}${path}`);
    await waitFor(() => exporter.getFinishedSpans().length === 4, { what: "four spans" });
    const byName = Object.fromEntries(exporter.getFinishedSpans().map((s) => [s.name, s]));

    const boom = byName["GET /boom"] as ReadableSpan;
    expect(parentOf(boom)).toBeUndefined();
    expect([boom.status.code, boom.status.message, boom.events[0]?.name]).toEqual([SpanStatusCode.ERROR, "bug", "exception"]);
    // A 4xx is the caller's mistake: the server span stays unset.
    const declined = byName["GET /declined"] as ReadableSpan;
    expect([declined.status.code, declined.events, declined.attributes["http.response.status_code"]]).toEqual([SpanStatusCode.UNSET, [], 402]);
    expect((byName["GET /call"] as ReadableSpan).status).toEqual({ code: SpanStatusCode.ERROR, message: "answered 503" });
    const call = byName["GET payments"] as ReadableSpan;
    expect([call.status.code, call.attributes["error.type"], parentOf(call)]).toEqual([SpanStatusCode.ERROR, "TypeError", (byName["GET /call"] as ReadableSpan).spanContext().spanId]);
    // Every request got its own trace.
    expect(new Set([boom, byName["GET /declined"], byName["GET /call"]].map((s) => s?.spanContext().traceId)).size).toBe(3);
  });

  it("puts the trace and span ids on log lines inside a request and on its access log line", async () => {
    const exporter = new InMemorySpanExporter();
    const lines: string[] = [];
    const logger = createLogger({ write: (l) => lines.push(l) });
    const tracing = createTracing({ service: "orders", exporter, logger: silent, batch: { scheduledDelayMs: 20 } });
    const h = await serve({
      port: 0,
      signals: [],
      logger,
      tracing,
      handler: (_req, res) => {
        logger.info("inside");
        json(res, 200, {});
      },
    });
    handles.push(h);
    await fetch(`${h.url}/x`, { headers: { traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-01` } });
    await waitFor(() => lines.some((l) => l.includes('"msg":"request"')));
    await waitFor(() => exporter.getFinishedSpans().length === 1);
    const spanId = exporter.getFinishedSpans()[0]?.spanContext().spanId;
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const inside = parsed.find((l) => l.msg === "inside");
    const access = parsed.find((l) => l.msg === "request");
    expect([inside?.traceId, inside?.spanId]).toEqual([PARENT_TRACE, spanId]);
    expect([access?.traceId, access?.spanId]).toEqual([PARENT_TRACE, spanId]);
    // Outside a request there is no trace to name.
    expect(parsed.find((l) => l.msg === "listening")).not.toHaveProperty("traceId");
  });

  it("makes no spans and sends no traceparent with tracing: false", async () => {
    const gateway = await startGatewayStub({ inventory: (_req, res) => json(res, 200, {}) });
    stubs.push(gateway);
    await createClient({ gatewayUrl: gateway.url, logger: silent, tracing: false }).call("inventory", "/x");
    expect(gateway.calls[0]?.headers.traceparent).toBeUndefined();
  });
});

describe("createTracing: configuration and failures", () => {
  it("takes the service, release and replica from the replica's environment", async () => {
    const saved = { ...process.env };
    try {
      Object.assign(process.env, { KEELSON_SERVICE: "inventory", KEELSON_RELEASE: "r-abc", KEELSON_REPLICA: "inventory-1", KEELSON_PROJECT: "shop" });
      delete process.env.KEELSON_OTLP_ENDPOINT;
      const exporter = new InMemorySpanExporter();
      const tracing = createTracing({ exporter, logger: silent });
      tracing.tracer.startSpan("x").end();
      await tracing.forceFlush();
      expect(exporter.getFinishedSpans()[0]?.resource.attributes).toMatchObject({ "service.name": "inventory", "service.version": "r-abc", "service.instance.id": "inventory-1", "service.namespace": "shop" });
      expect(tracing.service).toBe("inventory");
    } finally {
      for (const k of ["KEELSON_SERVICE", "KEELSON_RELEASE", "KEELSON_REPLICA", "KEELSON_PROJECT"]) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });

  it("exports nothing without an endpoint and warns once about a bad one", () => {
    const lines: string[] = [];
    const logger = createLogger({ write: (l) => lines.push(l) });
    expect(createTracing({ endpoint: "", logger }).exporting).toBe(false);
    expect(createTracing({ endpoint: "ftp://x", logger }).exporting).toBe(false);
    expect(createTracing({ endpoint: "http://127.0.0.1:4318/v1/traces", logger }).exporting).toBe(true);
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['$KEELSON_OTLP_ENDPOINT is not an http(s) URL ("ftp://x"); spans are not exported']);
  });

  it("drops and counts spans when the endpoint is down, logging the failure once, and the service keeps answering", async () => {
    const lines: string[] = [];
    const logger = createLogger({ write: (l) => lines.push(l) });
    const endpoint = `http://127.0.0.1:${await freePort()}/v1/traces`;
    const tracing = createTracing({ service: "orders", endpoint, logger, batch: { exportTimeoutMs: 300 } });
    const h = await serve({ port: 0, signals: [], logger: silent, tracing, handler: (_req, res) => json(res, 200, { ok: true }) });
    handles.push(h);
    for (let round = 0; round < 2; round++) {
      expect((await fetch(`${h.url}/x`)).status).toBe(200);
      await tracing.forceFlush(5000);
      await waitFor(() => tracing.stats().exportFailures === round + 1, { what: `export failure ${round + 1}`, timeoutMs: 15_000 });
    }
    expect(tracing.stats()).toMatchObject({ spansEnded: 2, spansExported: 0, spansDropped: 2, exportFailures: 2 });
    const warnings = lines.map((l) => JSON.parse(l) as { level: string; msg: string; endpoint?: string }).filter((l) => l.level === "warn");
    expect(warnings.map((w) => [w.msg, w.endpoint])).toEqual([["span export failed; dropping spans until the endpoint takes them again", endpoint]]);
    await tracing.shutdown();
  });

  it("drops and counts spans beyond the queue while the exporter is stuck", async () => {
    let calls = 0;
    const stuck: SpanExporter = {
      export: () => {
        calls++; // never answers
      },
      shutdown: async () => {},
    };
    const tracing = createTracing({ service: "orders", exporter: stuck, logger: silent, batch: { maxQueueSize: 4, maxExportBatchSize: 2, scheduledDelayMs: 60_000 } });
    for (let i = 0; i < 20; i++) tracing.tracer.startSpan(`s${i}`).end();
    // One batch of 2 is stuck in the exporter, 4 wait in the queue, the other 14 are dropped.
    expect(calls).toBe(1);
    expect(tracing.stats()).toEqual({ spansEnded: 20, spansExported: 0, spansDropped: 14, exportFailures: 0 });
  });

  it("sends the identity token as a bearer authorization with each export, the rotated one once it changes", async () => {
    const dir = await mkdtemp(join(tmpdir(), "keelson-sdk-tracing-"));
    const received: (string | undefined)[] = [];
    const collector = createServer((req, res) => {
      received.push(req.headers.authorization);
      req.resume();
      req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
    });
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
    try {
      const tokenFile = join(dir, "token.jwt");
      await writeFile(tokenFile, "token-1");
      const identity = createIdentity({ identityFile: tokenFile, tlsDir: "", checkMs: 0, logger: silent });
      const endpoint = `http://127.0.0.1:${(collector.address() as { port: number }).port}/v1/traces`;
      const tracing = createTracing({ service: "orders", endpoint, identity, logger: silent, batch: { scheduledDelayMs: 60_000 } });
      tracing.tracer.startSpan("first").end();
      await tracing.forceFlush(5000);
      await writeFile(join(dir, "next"), "token-2");
      await rename(join(dir, "next"), tokenFile);
      tracing.tracer.startSpan("second").end();
      await tracing.forceFlush(5000);
      expect(received).toEqual(["Bearer token-1", "Bearer token-2"]);
      expect(tracing.stats()).toMatchObject({ spansExported: 2, exportFailures: 0 });
      await tracing.shutdown();
    } finally {
      await new Promise<void>((resolve) => collector.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
