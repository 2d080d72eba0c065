// findTraceLogs: the lines of a trace's services that carry its id, within the trace's time span,
// with the span id of SDK lines, merged in time order and cut at the limit; services outside the
// project are never read; traceServices and matchTraceLine on their own.
import { GATEWAY_SERVICE_NAME, TRACE_ATTRIBUTES } from "@keelson/protocol";
import { describe, expect, it } from "vitest";
import { findTraceLogs, matchTraceLine, traceServices, type CollectedLogLine } from "./trace-logs.js";
import type { SpanRecord } from "./trace-span.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTHER = "00f067aa0ba902b700f067aa0ba902b7";
const T0 = Date.parse("2025-05-01T10:00:00.000Z");

function span(service: string, spanId: string, startMs: number, durationMs: number, attributes: SpanRecord["attributes"] = {}): SpanRecord {
  return {
    traceId: TRACE,
    spanId,
    parentSpanId: undefined,
    name: "GET /",
    kind: "server",
    service,
    startTimeUs: startMs * 1000,
    durationUs: durationMs * 1000,
    status: "unset",
    statusMessage: undefined,
    attributes,
    resource: {},
    scope: undefined,
    events: [],
    links: [],
  };
}

const sdkLine = (traceId: string, spanId: string, msg: string) => JSON.stringify({ time: "2025-05-01T10:00:00.010Z", level: "info", service: "orders", traceId, spanId, msg });
const at = (ms: number) => new Date(T0 + ms).toISOString();
const line = (ms: number, replica: string, text: string): CollectedLogLine => ({ t: at(ms), replica, stream: "stdout", line: text });

describe("traceServices", () => {
  it("names the services that sent spans and those the gateway forwarded to, not the gateway", () => {
    const spans = [span(GATEWAY_SERVICE_NAME, "a1", 0, 10, { [TRACE_ATTRIBUTES.TARGET_SERVICE]: "web" }), span("orders", "b1", 1, 5), span(GATEWAY_SERVICE_NAME, "a2", 1, 5)];
    expect(traceServices(spans)).toEqual(["orders", "web"]);
  });
});

describe("matchTraceLine", () => {
  it("takes the span id from an SDK line of this trace", () => {
    expect(matchTraceLine(sdkLine(TRACE, "00f067aa0ba902b7", "charging"), TRACE)).toEqual({ spanId: "00f067aa0ba902b7" });
  });
  it("keeps a plain line that mentions the id, without a span", () => {
    expect(matchTraceLine(`retrying trace ${TRACE}`, TRACE)).toEqual({ spanId: undefined });
    expect(matchTraceLine(`{"torn": "${TRACE}`, TRACE)).toEqual({ spanId: undefined });
  });
  it("ignores lines of other traces and lines without an id", () => {
    expect(matchTraceLine(sdkLine(OTHER, "00f067aa0ba902b7", "x"), TRACE)).toBeUndefined();
    expect(matchTraceLine("listening on 8080", TRACE)).toBeUndefined();
  });
});

describe("findTraceLogs", () => {
  const spans = [span(GATEWAY_SERVICE_NAME, "a1", T0, 100, { [TRACE_ATTRIBUTES.TARGET_SERVICE]: "web" }), span("web", "b1", T0 + 5, 90), span("orders", "c1", T0 + 10, 50), span("intruder/../..", "d1", T0 + 10, 5)];
  const logs: Record<string, CollectedLogLine[]> = {
    web: [line(-60_000, "web-0", `too early ${TRACE}`), line(50, "web-0", sdkLine(TRACE, "b1", "handling")), line(60, "web-0", sdkLine(OTHER, "zz", "someone else")), line(90, "web-1", `plain ${TRACE}`)],
    orders: [line(40, "orders-0", sdkLine(TRACE, "c1", "charging")), line(120_000, "orders-0", `much later ${TRACE}`)],
  };
  const reads: Array<{ service: string; since: string }> = [];
  const read = async function* (service: string, since: Date) {
    reads.push({ service, since: since.toISOString() });
    for (const l of logs[service] ?? []) if (Date.parse(l.t) >= since.getTime()) yield l;
  };

  it("lists the matching lines of the project's services in time order, with span ids", async () => {
    reads.length = 0;
    const found = await findTraceLogs({ traceId: TRACE, spans, known: new Set(["web", "orders", "billing"]), read });
    expect(found.services).toEqual(["orders", "web"]);
    expect(found.truncated).toBe(false);
    expect(found.logs.map((l) => [l.service, l.replica, l.spanId])).toEqual([
      ["orders", "orders-0", "c1"],
      ["web", "web-0", "b1"],
      ["web", "web-1", undefined],
    ]);
    expect(found.logs[0]).toMatchObject({ t: at(40), stream: "stdout" });
    // Read from 5 s before the trace; the path-like name from a span was never read.
    expect(reads.map((r) => r.service).sort()).toEqual(["orders", "web"]);
    expect(reads[0]?.since).toBe(at(-5_000));
  });

  it("cuts at the limit, earliest first, and says so", async () => {
    const found = await findTraceLogs({ traceId: TRACE, spans, known: new Set(["web", "orders"]), read, limit: 2 });
    expect(found.logs.map((l) => l.t)).toEqual([at(40), at(50)]);
    expect(found.truncated).toBe(true);
  });

  it("widens the window when asked, and finds nothing without spans", async () => {
    const late = await findTraceLogs({ traceId: TRACE, spans, known: new Set(["orders"]), read, lateMs: 300_000 });
    expect(late.logs.map((l) => l.t)).toEqual([at(40), at(120_000)]);
    expect(await findTraceLogs({ traceId: TRACE, spans: [], known: new Set(["orders"]), read })).toEqual({ services: [], logs: [], truncated: false });
  });
});
