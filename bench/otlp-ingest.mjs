// Benchmark: spans per second the OTLP/HTTP trace receiver ingests (JSON and protobuf,
// batches of 512 spans, into the memory and the SQLite trace store), beside a reference
// measured in the same run: JSON.parse of the same JSON payloads.
// A worker thread sends (4 requests in flight, keep-alive) so the receiver has the main
// thread to itself. Usage: node bench/otlp-ingest.mjs [--batches 200] [--runs 3]
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";

const SPANS_PER_BATCH = 512;
const SERVICES = ["storefront", "orders", "payments", "inventory", "notifications"];

/** Batch `b` as an OTLP request object: 512 spans of 64 traces of 8, realistic attributes. */
function request(b) {
  const now = BigInt(Date.now()) * 1_000_000n;
  const service = SERVICES[b % SERVICES.length];
  const spans = [];
  for (let i = 0; i < SPANS_PER_BATCH; i++) {
    const trace = (b * 64 + Math.floor(i / 8) + 1).toString(16).padStart(32, "0");
    const id = (b * SPANS_PER_BATCH + i + 1).toString(16).padStart(16, "0");
    const parent = i % 8 === 0 ? "" : (b * SPANS_PER_BATCH + i).toString(16).padStart(16, "0");
    const start = now + BigInt(i) * 1000n;
    spans.push({
      traceId: trace,
      spanId: id,
      parentSpanId: parent,
      name: i % 2 ? "GET /api/orders/:id" : "POST payments",
      kind: i % 2 ? 2 : 3,
      startTimeUnixNano: String(start),
      endTimeUnixNano: String(start + 1_250_000n),
      attributes: [
        { key: "http.request.method", value: { stringValue: i % 2 ? "GET" : "POST" } },
        { key: "url.path", value: { stringValue: `/api/orders/o-${b}-${i}` } },
        { key: "http.route", value: { stringValue: "/api/orders/:id" } },
        { key: "http.response.status_code", value: { intValue: i % 50 === 0 ? "503" : "200" } },
        { key: "server.port", value: { intValue: "8080" } },
        { key: "keelson.caller", value: { stringValue: "storefront" } },
        { key: "keelson.target.service", value: { stringValue: "payments" } },
        { key: "user_agent.original", value: { stringValue: "node" } },
      ],
      status: { code: i % 50 === 0 ? 2 : 0 },
    });
  }
  const resource = {
    attributes: [
      { key: "service.name", value: { stringValue: service } },
      { key: "service.version", value: { stringValue: "r-3f9a1c2b7d4e" } },
      { key: "service.instance.id", value: { stringValue: `${service}-0` } },
      { key: "service.namespace", value: { stringValue: "shop" } },
      { key: "telemetry.sdk.language", value: { stringValue: "nodejs" } },
      { key: "telemetry.sdk.name", value: { stringValue: "opentelemetry" } },
    ],
  };
  return { resourceSpans: [{ resource, scopeSpans: [{ scope: { name: "@keelson/sdk" }, spans }] }] };
}

/** The same request for protobufjs: ids as bytes, an empty parent as no parent. */
function protoObject(req) {
  const rs = req.resourceSpans[0];
  const spans = rs.scopeSpans[0].spans.map((s) => ({
    ...s,
    traceId: Buffer.from(s.traceId, "hex"),
    spanId: Buffer.from(s.spanId, "hex"),
    parentSpanId: s.parentSpanId ? Buffer.from(s.parentSpanId, "hex") : undefined,
    attributes: s.attributes.map((a) => (a.value.intValue ? { key: a.key, value: { intValue: Number(a.value.intValue) } } : a)),
  }));
  return { resourceSpans: [{ resource: rs.resource, scopeSpans: [{ scope: rs.scopeSpans[0].scope, spans }] }] };
}

if (!isMainThread) {
  // The sender: builds the payloads, then posts them, 4 in flight, and reports the time.
  const { url, format, batches } = workerData;
  const { ExportTraceServiceRequest } = await import("../packages/platform/dist/telemetry/otlp-proto.js");
  const bodies = [];
  for (let b = 0; b < batches; b++) {
    const req = request(b);
    bodies.push(format === "json" ? Buffer.from(JSON.stringify(req)) : ExportTraceServiceRequest.encode(ExportTraceServiceRequest.fromObject(protoObject(req))).finish());
  }
  const type = format === "json" ? "application/json" : "application/x-protobuf";
  // Warm the connection and the receiver's code paths before timing.
  await fetch(url, { method: "POST", headers: { "content-type": type }, body: bodies[0] }).then((r) => r.arrayBuffer());
  parentPort.postMessage({ ready: true, bytes: bodies.reduce((n, b) => n + b.byteLength, 0) });
  await new Promise((r) => parentPort.once("message", r));
  let next = 1;
  let failures = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++];
        const res = await fetch(url, { method: "POST", headers: { "content-type": type }, body });
        await res.arrayBuffer();
        if (res.status !== 200) failures++;
      }
    }),
  );
  parentPort.postMessage({ ms: performance.now() - t0, failures });
} else {
  const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
  const BATCHES = Number(args.batches ?? 200);
  const RUNS = Number(args.runs ?? 3);
  const { createOtlpReceiver } = await import("../packages/platform/dist/telemetry/otlp-receiver.js");
  const { createMemoryTraceStore } = await import("../packages/platform/dist/telemetry/trace-store-memory.js");
  const { createSqliteTraceStore } = await import("../packages/platform/dist/telemetry/trace-store-sqlite.js");
  const { decodeOtlpJson, decodeOtlpProtobuf } = await import("../packages/platform/dist/telemetry/otlp-decode.js");
  const { ExportTraceServiceRequest } = await import("../packages/platform/dist/telemetry/otlp-proto.js");
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const timedSpans = (BATCHES - 1) * SPANS_PER_BATCH;

  // In-process figures over the same payloads: the reference (JSON.parse) and decode alone.
  const jsonBodies = [];
  const protoBodies = [];
  for (let b = 0; b < BATCHES; b++) {
    const req = request(b);
    jsonBodies.push(Buffer.from(JSON.stringify(req)));
    protoBodies.push(ExportTraceServiceRequest.encode(ExportTraceServiceRequest.fromObject(protoObject(req))).finish());
  }
  const rate = (fn, bodies) => {
    fn(bodies[0]);
    const t0 = performance.now();
    for (let b = 1; b < bodies.length; b++) fn(bodies[b]);
    return timedSpans / ((performance.now() - t0) / 1000);
  };

  async function overHttp(format, storeKind) {
    const dir = mkdtempSync(join(tmpdir(), "keelson-bench-traces-"));
    const store = storeKind === "sqlite" ? createSqliteTraceStore({ path: join(dir, "traces.db") }) : createMemoryTraceStore();
    const receiver = createOtlpReceiver({ store });
    const server = createServer((req, res) => void receiver.handle(req, res));
    server.keepAliveTimeout = 10_000;
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${server.address().port}/v1/traces`;
    const worker = new Worker(new URL(import.meta.url), { workerData: { url, format, batches: BATCHES } });
    const messages = [];
    let wake;
    worker.on("message", (m) => {
      messages.push(m);
      wake?.();
    });
    const nextMessage = () => new Promise((r) => (messages.length ? r() : (wake = r))).then(() => messages.shift());
    const ready = await nextMessage();
    const elu0 = performance.eventLoopUtilization();
    worker.postMessage("go");
    const done = await nextMessage();
    // How busy the receiver's thread was: spans per busy second is its capacity on one core.
    const busy = performance.eventLoopUtilization(elu0).utilization;
    await worker.terminate();
    const stored = await store.count();
    await new Promise((r) => {
      server.close(r);
      server.closeAllConnections();
    });
    await receiver.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    if (done.failures) throw new Error(`${done.failures} requests failed`);
    const accepted = receiver.stats().acceptedSpans;
    if (accepted !== BATCHES * SPANS_PER_BATCH) throw new Error(`accepted ${accepted} spans, expected ${BATCHES * SPANS_PER_BATCH}`);
    return { spansPerSec: timedSpans / (done.ms / 1000), perBusySec: timedSpans / ((done.ms / 1000) * busy), busy, mbPerSec: ready.bytes / (done.ms / 1000) / 2 ** 20, stored };
  }

  const rows = [];
  const cases = [
    ["jsonMemory", "json", "memory"],
    ["protoMemory", "protobuf", "memory"],
    ["jsonSqlite", "json", "sqlite"],
    ["protoSqlite", "protobuf", "sqlite"],
  ];
  for (let run = 0; run < RUNS; run++) {
    const row = {
      reference: rate((b) => JSON.parse(b.toString("utf8")), jsonBodies),
      decodeJson: rate(decodeOtlpJson, jsonBodies),
      decodeProto: rate(decodeOtlpProtobuf, protoBodies),
    };
    for (const [key, format, store] of cases) {
      const r = await overHttp(format, store);
      row[key] = r.spansPerSec;
      row[`${key}PerBusySec`] = r.perBusySec;
    }
    rows.push(row);
  }
  const med = Object.fromEntries(Object.keys(rows[0]).map((k) => [k, median(rows.map((r) => r[k]))]));
  const k = (n) => `${(n / 1000).toFixed(1)}k`;
  console.log(`OTLP ingest benchmark: ${BATCHES} batches of ${SPANS_PER_BATCH} spans, ${RUNS} runs, medians (node ${process.version})`);
  console.log(`  reference: JSON.parse of the JSON payloads      ${k(med.reference)} spans/s`);
  console.log(`  decode only, OTLP/JSON                          ${k(med.decodeJson)} spans/s  (${(med.decodeJson / med.reference).toFixed(2)}x reference)`);
  console.log(`  decode only, protobuf                           ${k(med.decodeProto)} spans/s  (${(med.decodeProto / med.reference).toFixed(2)}x reference)`);
  for (const [key, label] of [
    ["jsonMemory", "HTTP ingest, JSON     → memory store"],
    ["protoMemory", "HTTP ingest, protobuf → memory store"],
    ["jsonSqlite", "HTTP ingest, JSON     → SQLite store"],
    ["protoSqlite", "HTTP ingest, protobuf → SQLite store"],
  ]) {
    console.log(
      `  ${label}           ${k(med[key])} spans/s  (${(med[key] / med.reference).toFixed(2)}x reference, target 20k ${med[key] >= 20_000 ? "✓" : "✗"}); per busy receiver second ${k(med[`${key}PerBusySec`])}`,
    );
  }
  console.log(JSON.stringify({ bench: "otlp-ingest", batches: BATCHES, spansPerBatch: SPANS_PER_BATCH, runs: RUNS, medianSpansPerSec: med }));
}
