// How the waterfall reads log lines: SDK JSON lines as time, level, message and the other fields,
// anything else as it is; how a line relates to the selected span; rows in the lines' own time order.
import { describe, expect, it } from "vitest";
import type { SpanRecord } from "./api.js";
import { logEntry, logRelation, logRows, type TraceLogLine } from "./trace-logs.js";

const T = "2025-05-01T10:00:00.500Z";
const line = (text: string, more: Partial<TraceLogLine> = {}): TraceLogLine => ({ t: T, service: "orders", replica: "orders-0", stream: "stdout", line: text, ...more });
const span = (service: string, spanId: string): SpanRecord => ({
  traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
  spanId,
  parentSpanId: undefined,
  name: "GET /",
  kind: "server",
  service,
  startTimeUs: 0,
  durationUs: 1,
  status: "unset",
  statusMessage: undefined,
  attributes: {},
  resource: {},
});

describe("logEntry", () => {
  it("reads an SDK line: its own time, level, message, and the fields the row does not show elsewhere", () => {
    const sdk = JSON.stringify({ time: "2025-05-01T10:00:00.123Z", level: "warn", service: "orders", replica: "orders-0", requestId: "r1", traceId: "t", spanId: "s", msg: "charge failed", orderId: "o-7", attempt: 2, err: { code: "E" } });
    expect(logEntry(line(sdk))).toEqual({ atMs: Date.parse("2025-05-01T10:00:00.123Z"), level: "warn", message: "charge failed", fields: 'orderId=o-7 attempt=2 err={"code":"E"}' });
  });
  it("falls back to the collection time and shows other lines as they are", () => {
    expect(logEntry(line(JSON.stringify({ msg: "no time" })))).toMatchObject({ atMs: Date.parse(T), message: "no time", level: undefined });
    expect(logEntry(line("listening on 8080"))).toEqual({ atMs: Date.parse(T), level: undefined, message: "listening on 8080", fields: "" });
    expect(logEntry(line("{not json"))).toMatchObject({ message: "{not json" });
    expect(logEntry(line("[1,2]"))).toMatchObject({ message: "[1,2]" });
  });
});

describe("logRelation", () => {
  it("tells the selected span's own lines from its service's and the others", () => {
    const selected = span("orders", "00f067aa0ba902b7");
    expect(logRelation(line("x", { spanId: "00f067aa0ba902b7" }), selected)).toBe("span");
    expect(logRelation(line("x", { spanId: "1111111111111111" }), selected)).toBe("service");
    expect(logRelation(line("x"), selected)).toBe("service");
    expect(logRelation(line("x", { service: "web" }), selected)).toBe("other");
    expect(logRelation(line("x", { spanId: "00f067aa0ba902b7" }), undefined)).toBe("other");
  });
});

describe("logRows", () => {
  it("orders lines by their own time, collection order breaking ties, and keeps their place in the answer", () => {
    const sdk = (time: string, msg: string) => JSON.stringify({ time, level: "info", msg });
    const logs = [
      line(sdk("2025-05-01T10:00:00.300Z", "billing answered"), { service: "billing", t: "2025-05-01T10:00:00.310Z" }),
      line(sdk("2025-05-01T10:00:00.100Z", "placing order"), { t: "2025-05-01T10:00:00.400Z", spanId: "00f067aa0ba902b7" }),
      line("plain, collected at T"),
      line(sdk("2025-05-01T10:00:00.100Z", "same time, later in the answer")),
    ];
    const rows = logRows(logs, span("orders", "00f067aa0ba902b7"));
    expect(rows.map((r) => [r.index, r.entry.message, r.relation])).toEqual([
      [1, "placing order", "span"],
      [3, "same time, later in the answer", "service"],
      [0, "billing answered", "other"],
      [2, "plain, collected at T", "service"],
    ]);
  });
});
