// Tests for reading a trace search from query parameters: durations, times, limits and
// errors that name the parameter.
import { describe, expect, it } from "vitest";
import { parseDurationMs, parseTraceSearchParams } from "./trace-query.js";

const NOW = Date.UTC(2026, 10, 26, 12);
const parse = (q: string) => parseTraceSearchParams(new URLSearchParams(q), () => NOW);

describe("parseTraceSearchParams", () => {
  it("reads every filter, with human durations and times", () => {
    expect(parse("service=orders&status=error&minDuration=250ms&since=15m&limit=5")).toEqual({
      service: "orders",
      status: "error",
      minDurationMs: 250,
      fromMs: NOW - 15 * 60_000,
      limit: 5,
    });
    expect(parse("from=2026-11-26T11:00:00Z&to=1795690800000")).toEqual({ fromMs: Date.UTC(2026, 10, 26, 11), toMs: 1795690800000 });
    expect(parse("")).toEqual({});
  });

  it("refuses bad values and unknown parameters, naming them", () => {
    const message = (q: string) => {
      try {
        parse(q);
        return "accepted";
      } catch (err) {
        expect((err as { code: string }).code).toBe("KEELSON_ERR_INVALID_INPUT");
        return (err as Error).message;
      }
    };
    expect(message("status=failed")).toBe('status: expected "error", "ok" or "unset", got "failed"');
    expect(message("minDuration=fast")).toBe('minDuration: expected a duration such as "250ms", "1.5s" or "15m", got "fast"');
    expect(message("limit=0")).toBe('limit: expected a whole number ≥ 1, got "0"');
    expect(message("from=yesterday")).toBe('from: expected an ISO time or epoch milliseconds, got "yesterday"');
    expect(message("min-duration=1s")).toMatch(/^min-duration: expected a known parameter/);
  });
});

describe("parseDurationMs", () => {
  it("takes µs, ms, s, m and h, and bare milliseconds", () => {
    expect(["300us", "250ms", "1.5s", "2m", "1h", "40"].map((t) => parseDurationMs("d", t))).toEqual([0.3, 250, 1500, 120_000, 3_600_000, 40]);
  });
});
