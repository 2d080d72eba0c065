// Tests for the OTLP/HTTP receiver over real HTTP: payloads from OpenTelemetry's own JSON
// and protobuf serializers, gzip, the error answers (400/405/413/415/503) in the request's
// format, partial success, counters, and forwarding that never holds ingest up.
import { createServer, request } from "node:http";
import type { Server } from "node:http";
import { gzipSync } from "node:zlib";
import { SpanKind, SpanStatusCode, context, trace } from "@opentelemetry/api";
import { JsonTraceSerializer, ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, waitFor } from "#test-support";
import { ExportTraceServiceResponse, RpcStatus } from "./otlp-proto.js";
import { createOtlpReceiver } from "./otlp-receiver.js";
import type { OtlpReceiver, OtlpReceiverOptions } from "./otlp-receiver.js";
import type { TelemetryLog } from "./telemetry-log.js";
import { createMemoryTraceStore } from "./trace-store-memory.js";
import type { TraceStore } from "./trace-store.js";

const servers: Server[] = [];
const receivers: OtlpReceiver[] = [];
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeAllConnections();
        }),
    ),
  );
});

async function start(options: Partial<OtlpReceiverOptions> = {}): Promise<{ url: string; store: TraceStore; receiver: OtlpReceiver }> {
  const store = options.store ?? createMemoryTraceStore();
  const receiver = createOtlpReceiver({ ...options, store });
  receivers.push(receiver);
  const server = createServer((req, res) => void receiver.handle(req, res));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  return { url: `http://127.0.0.1:${address.port}/v1/traces`, store, receiver };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** POSTs with node:http, which (unlike fetch) still reads an answer sent before the body was taken. */
function post(url: string, body: Uint8Array | string | string[], headers: Record<string, string>, method = "POST"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    // The server may close while the body is still going out; the answer is what counts.
    req.on("error", (err) => (/EPIPE|ECONNRESET/.test(String(err)) ? undefined : reject(err)));
    for (const part of Array.isArray(body) ? body : [body]) req.write(part);
    req.end();
  });
}

/** Two spans (a server span and its client child) made by the real OpenTelemetry SDK. */
function sdkSpans(): ReadableSpan[] {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "storefront", "service.version": "r-1" }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer("@keelson/sdk", "0.1.0");
  const server = tracer.startSpan("GET /", { kind: SpanKind.SERVER, attributes: { "http.request.method": "GET" } });
  const client = tracer.startSpan("GET inventory", { kind: SpanKind.CLIENT, attributes: { "keelson.target.service": "inventory", "http.response.status_code": 503 } }, trace.setSpan(context.active(), server));
  client.setStatus({ code: SpanStatusCode.ERROR, message: "503" });
  client.end();
  server.end();
  return exporter.getFinishedSpans();
}

function jsonBody(spans: unknown[]): string {
  return JSON.stringify({ resourceSpans: [{ resource: { attributes: [{ key: "service.name", value: { stringValue: "orders" } }] }, scopeSpans: [{ spans }] }] });
}

// Recent times: the store's default retention drops spans older than a day.
const NOW_NS = BigInt(Date.now()) * 1_000_000n;
const validSpan = (n: number) => ({
  traceId: "0af7651916cd43dd8448eb211c80319c",
  spanId: n.toString(16).padStart(16, "0"),
  name: `op ${n}`,
  kind: 2,
  startTimeUnixNano: String(NOW_NS),
  endTimeUnixNano: String(NOW_NS + 1_000_000n),
});

const JSON_HEADERS = { "content-type": "application/json" };
const PROTO_HEADERS = { "content-type": "application/x-protobuf" };

describe("createOtlpReceiver: accepting", () => {
  it("takes protobuf from OpenTelemetry's own serializer and answers in protobuf", async () => {
    const { url, store, receiver } = await start();
    const spans = sdkSpans();
    const body = ProtobufTraceSerializer.serializeRequest(spans) as Uint8Array;
    const res = await post(url, body, PROTO_HEADERS);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/x-protobuf");
    expect(ExportTraceServiceResponse.toObject(ExportTraceServiceResponse.decode(res.body))).toEqual({});

    const server = spans.find((s) => s.kind === SpanKind.SERVER) as ReadableSpan;
    const stored = await store.getTrace(server.spanContext().traceId);
    // Both may start in the same microsecond, so compare in name order.
    const byName = [...stored].sort((a, b) => a.name.localeCompare(b.name));
    expect(byName.map((s) => [s.name, s.kind, s.service, s.status, s.parentSpanId ?? "root"])).toEqual([
      ["GET /", "server", "storefront", "unset", "root"],
      ["GET inventory", "client", "storefront", "error", server.spanContext().spanId],
    ]);
    expect(byName[1]?.attributes).toEqual({ "keelson.target.service": "inventory", "http.response.status_code": 503 });
    expect(byName[0]?.resource).toMatchObject({ "service.name": "storefront", "service.version": "r-1" });
    expect(byName[0]?.scope).toBe("@keelson/sdk");
    // Microseconds agree with the SDK's own hrtime start.
    expect(byName[0]?.startTimeUs).toBe(server.startTime[0] * 1_000_000 + Math.floor(server.startTime[1] / 1000));
    expect(receiver.stats()).toMatchObject({ acceptedSpans: 2, rejectedSpans: 0, bytes: body.byteLength, requests: { accepted: 1 } });
  });

  it("takes OTLP/JSON from OpenTelemetry's own serializer, and gzip", async () => {
    const { url, store } = await start();
    const spans = sdkSpans();
    const body = Buffer.from(JsonTraceSerializer.serializeRequest(spans) as Uint8Array);
    const plain = await post(url, body, { "content-type": "application/json; charset=utf-8" });
    expect([plain.status, plain.headers["content-type"], plain.body.toString()]).toEqual([200, "application/json", "{}"]);
    expect(await store.count()).toBe(2);

    const other = sdkSpans();
    const zipped = await post(url, gzipSync(Buffer.from(JsonTraceSerializer.serializeRequest(other) as Uint8Array)), { ...JSON_HEADERS, "content-encoding": "gzip" });
    expect(zipped.status).toBe(200);
    expect(await store.count()).toBe(4);
    expect((await store.getTrace((other[0] as ReadableSpan).spanContext().traceId)).length).toBe(2);
  });

  it("reports rejected spans as a partial success, in JSON and in protobuf", async () => {
    const { url, store, receiver } = await start();
    const json = await post(url, jsonBody([validSpan(1), { ...validSpan(2), traceId: "nope" }]), JSON_HEADERS);
    expect(json.status).toBe(200);
    expect(JSON.parse(json.body.toString())).toEqual({
      partialSuccess: { rejectedSpans: "1", errorMessage: '1 span(s) rejected: resourceSpans[0].scopeSpans[0].spans[1].traceId: expected 32 hex digits, got "nope"' },
    });
    expect(await store.count()).toBe(1);

    const proto = await post(url, Buffer.from(ProtobufTraceSerializer.serializeRequest(sdkSpans()) as Uint8Array), PROTO_HEADERS);
    expect(proto.status).toBe(200);
    const { ExportTraceServiceRequest } = await import("./otlp-proto.js");
    const bad = ExportTraceServiceRequest.encode(
      ExportTraceServiceRequest.fromObject({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(3, 1), startTimeUnixNano: 5, endTimeUnixNano: 6 }] }] }] }),
    ).finish();
    const partial = await post(url, bad, PROTO_HEADERS);
    expect(partial.status).toBe(200);
    const decoded = ExportTraceServiceResponse.toObject(ExportTraceServiceResponse.decode(partial.body), { longs: Number });
    expect(decoded).toEqual({ partialSuccess: { rejectedSpans: 1, errorMessage: "1 span(s) rejected: resourceSpans[0].scopeSpans[0].spans[0].spanId: expected 8 bytes, got 3" } });
    expect(receiver.stats()).toMatchObject({ acceptedSpans: 3, rejectedSpans: 2, requests: { accepted: 1, partial: 2 } });
  });
});

describe("createOtlpReceiver: refusing", () => {
  it("answers 400 with a google.rpc.Status in the request's format and counts it", async () => {
    const registry = new Registry();
    const { url, receiver } = await start({ registry });
    const json = await post(url, "{not json", JSON_HEADERS);
    expect(json.status).toBe(400);
    expect(JSON.parse(json.body.toString())).toMatchObject({ code: 3, message: expect.stringMatching(/^body is not valid JSON/) });

    const proto = await post(url, Buffer.from([0x0a, 0xff, 0xff, 0xff]), PROTO_HEADERS);
    expect(proto.status).toBe(400);
    expect(proto.headers["content-type"]).toBe("application/x-protobuf");
    expect(RpcStatus.toObject(RpcStatus.decode(proto.body))).toMatchObject({ code: 3, message: expect.stringContaining("not a protobuf ExportTraceServiceRequest") });

    const badGzip = await post(url, "plain text", { ...JSON_HEADERS, "content-encoding": "gzip" });
    expect(badGzip.status).toBe(400);
    expect(receiver.stats().requests.malformed).toBe(3);
    expect(await registry.getSingleMetricAsString("keelson_traces_requests_total")).toContain('keelson_traces_requests_total{outcome="malformed"} 3');
  });

  it("answers 413 above the limit: declared, counted while reading, and inflated from gzip", async () => {
    const { url, receiver } = await start({ maxBodyBytes: 1024 });
    const declared = await post(url, "x".repeat(2000), JSON_HEADERS);
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body.toString())).toEqual({ code: 8, message: "the body is larger than 1024 bytes; send smaller batches" });
    expect(declared.headers.connection).toBe("close");

    // No content-length: the limit is found while reading the chunks.
    const chunked = await post(url, ["x".repeat(600), "x".repeat(600)], { ...JSON_HEADERS, "transfer-encoding": "chunked" });
    expect(chunked.status).toBe(413);

    // 200 KB of spaces gzip to a few hundred bytes: small on the wire, too large inflated.
    const bomb = gzipSync(Buffer.from(`{${" ".repeat(200_000)}}`));
    expect(bomb.byteLength).toBeLessThan(1024);
    const inflated = await post(url, bomb, { ...JSON_HEADERS, "content-encoding": "gzip" });
    expect(inflated.status).toBe(413);
    expect(JSON.parse(inflated.body.toString()).message).toBe("the body inflates to more than 1024 bytes; send smaller batches");

    // A body exactly at the limit is taken.
    const exact = JSON.stringify({ resourceSpans: [] }).padEnd(1024, " ");
    expect((await post(url, exact, JSON_HEADERS)).status).toBe(200);
    expect(receiver.stats().requests).toMatchObject({ too_large: 3, accepted: 1 });
  });

  it("answers 415 for other media types or encodings and 405 for other methods", async () => {
    const { url } = await start();
    const text = await post(url, "hi", { "content-type": "text/plain" });
    expect([text.status, JSON.parse(text.body.toString()).message]).toEqual([415, 'content-type must be application/json or application/x-protobuf, got "text/plain"']);
    const br = await post(url, "{}", { ...JSON_HEADERS, "content-encoding": "br" });
    expect([br.status, JSON.parse(br.body.toString()).message]).toEqual([415, 'content-encoding must be gzip or identity, got "br"']);
    const get = await post(url, "", {}, "GET");
    expect([get.status, get.headers.allow]).toEqual([405, "POST"]);
  });

  it("answers 503 with retry-after while the store fails, logging the streak once", async () => {
    const failing = createMemoryTraceStore();
    failing.write = async () => {
      throw new Error("disk full");
    };
    const warnings: string[] = [];
    const log: TelemetryLog = { info() {}, warn: (_o, msg) => warnings.push(msg ?? ""), error() {} };
    const { url, receiver } = await start({ store: failing, log });
    for (let i = 0; i < 2; i++) {
      const res = await post(url, jsonBody([validSpan(i + 1)]), JSON_HEADERS);
      expect([res.status, res.headers["retry-after"], JSON.parse(res.body.toString()).code]).toEqual([503, "1", 14]);
    }
    expect(warnings).toEqual(["storing spans failed; answering 503 so senders retry"]);
    expect(receiver.stats()).toMatchObject({ acceptedSpans: 0, requests: { unavailable: 2 } });
  });
});

describe("createOtlpReceiver: forwarding", () => {
  it("passes accepted payloads on, byte for byte with their encoding, to another OTLP receiver", async () => {
    const backend = await start();
    const { url, receiver } = await start({ forward: { url: backend.url } });
    const body = gzipSync(Buffer.from(JsonTraceSerializer.serializeRequest(sdkSpans()) as Uint8Array));
    expect((await post(url, body, { ...JSON_HEADERS, "content-encoding": "gzip" })).status).toBe(200);
    // A malformed payload is not forwarded.
    expect((await post(url, "{bad", JSON_HEADERS)).status).toBe(400);
    await waitFor(() => receiver.stats().forward?.forwarded === 1, { what: "the forward" });
    expect(await backend.store.count()).toBe(2);
    expect(backend.receiver.stats()).toMatchObject({ bytes: body.byteLength, requests: { accepted: 1, malformed: 0 } });
  });

  it("answers at once while the backend is down, and drops after the retries", async () => {
    const deadPort = await freePort();
    const { url, receiver, store } = await start({ forward: { url: `http://127.0.0.1:${deadPort}/v1/traces`, retryBaseMs: 100, maxRetries: 2 } });
    const started = Date.now();
    const res = await post(url, jsonBody([validSpan(1)]), JSON_HEADERS);
    expect(res.status).toBe(200);
    expect(await store.count()).toBe(1);
    // The answer did not wait for three failing tries with backoff.
    expect(receiver.stats().forward?.dropped).toBe(0);
    await waitFor(() => receiver.stats().forward?.dropped === 1, { what: "the forward to give up" });
    expect(receiver.stats().forward).toMatchObject({ forwarded: 0, retries: 2, droppedSpans: 1 });
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
