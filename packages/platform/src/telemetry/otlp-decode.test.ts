// Tests for OTLP decoding: the OTLP/JSON mapping (hex ids, int64 as strings or numbers,
// AnyValue kinds), per-span rejection versus whole-request refusal, and protobuf decoding
// of the same request encoded with the embedded descriptor.
import { describe, expect, it } from "vitest";
import { OtlpDecodeError, decodeOtlpJson, decodeOtlpProtobuf, nanosToMicros } from "./otlp-decode.js";
import { ExportTraceServiceRequest } from "./otlp-proto.js";

const TRACE = "5B8EFFF798038103D269B633813FC60C";
const SPAN = "EEE19B7EC3C1B174";
const PARENT = "eee19b7ec3c1b173";

/** The request as OTLP/JSON text, with the end time written as a bare JSON number. */
function jsonText(request: unknown): string {
  return JSON.stringify(request).replaceAll('"END_AS_NUMBER"', "1767225600125456789");
}

function jsonRequest(spans: unknown[], resourceAttributes: unknown[] = [{ key: "service.name", value: { stringValue: "orders" } }]) {
  return { resourceSpans: [{ resource: { attributes: resourceAttributes }, scopeSpans: [{ scope: { name: "@keelson/sdk", version: "0.1.0" }, spans }] }] };
}

const goodSpan = {
  traceId: TRACE,
  spanId: SPAN,
  parentSpanId: PARENT,
  name: "POST /api/orders",
  kind: 2,
  startTimeUnixNano: "1767225600123456789",
  // Sent as a JSON number (see jsonText): a double cannot hold it exactly.
  endTimeUnixNano: "END_AS_NUMBER",
  attributes: [
    { key: "http.response.status_code", value: { intValue: "201" } },
    { key: "big", value: { intValue: "9007199254740993" } },
    { key: "ratio", value: { doubleValue: 0.5 } },
    { key: "ok", value: { boolValue: true } },
    { key: "tags", value: { arrayValue: { values: [{ stringValue: "a" }, { intValue: 2 }] } } },
    { key: "map", value: { kvlistValue: { values: [{ key: "k", value: { stringValue: "v" } }] } } },
    { key: "raw", value: { bytesValue: "AQI=" } },
    { key: "empty", value: {} },
  ],
  events: [{ timeUnixNano: "1767225600124000000", name: "exception", attributes: [{ key: "exception.message", value: { stringValue: "boom" } }] }],
  links: [{ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", attributes: [] }],
  status: { code: 2, message: "card declined" },
};

describe("decodeOtlpJson", () => {
  it("maps a span to a SpanRecord: lowercased ids, microseconds, kinds, status and every AnyValue kind", () => {
    const { spans, rejected } = decodeOtlpJson(jsonText(jsonRequest([goodSpan])));
    expect(rejected).toBe(0);
    expect(spans).toEqual([
      {
        traceId: TRACE.toLowerCase(),
        spanId: SPAN.toLowerCase(),
        parentSpanId: PARENT,
        name: "POST /api/orders",
        kind: "server",
        service: "orders",
        startTimeUs: 1767225600123456,
        // endTimeUnixNano came as a JSON number, which rounds to 1767225600125456896 ns.
        durationUs: 2000,
        status: "error",
        statusMessage: "card declined",
        attributes: { "http.response.status_code": 201, big: "9007199254740993", ratio: 0.5, ok: true, tags: ["a", 2], map: { k: "v" }, raw: "AQI=" },
        resource: { "service.name": "orders" },
        scope: "@keelson/sdk",
        events: [{ name: "exception", timeUs: 1767225600124000, attributes: { "exception.message": "boom" } }],
        links: [{ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", attributes: {} }],
      },
    ]);
  });

  it("drops an attribute named __proto__ instead of letting it replace the object's prototype", () => {
    const evil = { key: "__proto__", value: { kvlistValue: { values: [{ key: "polluted", value: { boolValue: true } }] } } };
    const { spans } = decodeOtlpJson(jsonText(jsonRequest([{ ...goodSpan, attributes: [evil, { key: "ok", value: { boolValue: true } }] }], [evil])));
    const attributes = spans[0]?.attributes as Record<string, unknown>;
    expect(Object.getPrototypeOf(attributes)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(spans[0]?.resource)).toBe(Object.prototype);
    expect([attributes.polluted, attributes.ok]).toEqual([undefined, true]);
  });

  it("takes enum names too, treats an empty parentSpanId as a root and names an unnamed service", () => {
    const { spans } = decodeOtlpJson(jsonText(jsonRequest([{ ...goodSpan, parentSpanId: "", kind: "SPAN_KIND_CLIENT", status: { code: "STATUS_CODE_OK" } }], [])));
    expect(spans[0]).toMatchObject({ parentSpanId: undefined, kind: "client", status: "ok", statusMessage: undefined, service: "unknown_service" });
  });

  it("rejects only the spans with bad ids or times and says where", () => {
    const bad = [
      { ...goodSpan, traceId: "xyz" },
      { ...goodSpan, spanId: "0000000000000000" },
      { ...goodSpan, startTimeUnixNano: undefined },
      { ...goodSpan, endTimeUnixNano: "1767225600000000000" },
      { ...goodSpan, parentSpanId: "abc" },
      { ...goodSpan, name: 42 },
    ];
    const { spans, rejected, reasons } = decodeOtlpJson(jsonText(jsonRequest([goodSpan, ...bad])));
    expect(spans).toHaveLength(1);
    expect(rejected).toBe(6);
    // Only the first five reasons are kept.
    expect(reasons).toEqual([
      'resourceSpans[0].scopeSpans[0].spans[1].traceId: expected 32 hex digits, got "xyz"',
      "resourceSpans[0].scopeSpans[0].spans[2].spanId: an all-zero id is invalid",
      "resourceSpans[0].scopeSpans[0].spans[3].startTimeUnixNano: expected nanoseconds since the epoch",
      "resourceSpans[0].scopeSpans[0].spans[4]: endTimeUnixNano is before startTimeUnixNano",
      'resourceSpans[0].scopeSpans[0].spans[5].parentSpanId: expected 16 hex digits, got "abc"',
    ]);
  });

  it("refuses a request whose structure is wrong, naming the place", () => {
    const refused = (body: string) => {
      try {
        decodeOtlpJson(body);
      } catch (err) {
        expect(err).toBeInstanceOf(OtlpDecodeError);
        return (err as Error).message;
      }
      return "accepted";
    };
    expect(refused("{nope")).toMatch(/^body is not valid JSON/);
    expect(refused("[]")).toBe("body must be a JSON object (ExportTraceServiceRequest)");
    expect(refused(JSON.stringify({ resourceSpans: {} }))).toBe("resourceSpans: expected an array");
    expect(refused(JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [1] }] }] }))).toBe("resourceSpans[0].scopeSpans[0].spans[0]: expected an object");
    expect(refused(JSON.stringify({ resourceSpans: [{ resource: { attributes: "x" } }] }))).toBe("resourceSpans[0].resource.attributes: expected an array");
    // An empty request is valid and carries nothing.
    expect(decodeOtlpJson("{}")).toEqual({ spans: [], rejected: 0, reasons: [] });
  });
});

describe("decodeOtlpProtobuf", () => {
  it("decodes the same span from protobuf, with exact fixed64 times", () => {
    const message = ExportTraceServiceRequest.fromObject({
      resourceSpans: [
        {
          resource: { attributes: [{ key: "service.name", value: { stringValue: "orders" } }] },
          scopeSpans: [
            {
              scope: { name: "@keelson/sdk" },
              spans: [
                {
                  traceId: Buffer.from(TRACE, "hex"),
                  spanId: Buffer.from(SPAN, "hex"),
                  parentSpanId: Buffer.from(PARENT, "hex"),
                  name: "POST /api/orders",
                  kind: 3,
                  startTimeUnixNano: "1767225600123456789",
                  endTimeUnixNano: "1767225600125456999",
                  attributes: [
                    { key: "http.response.status_code", value: { intValue: 503 } },
                    { key: "big", value: { intValue: "9007199254740993" } },
                    { key: "neg", value: { intValue: -5 } },
                    { key: "tags", value: { arrayValue: { values: [{ stringValue: "a" }, { boolValue: false }] } } },
                    { key: "raw", value: { bytesValue: Buffer.from([1, 2]) } },
                    { key: "d", value: { doubleValue: 1.25 } },
                  ],
                  status: { code: 2, message: "upstream 503" },
                },
                // A span without a trace id is rejected alone.
                { spanId: Buffer.from(SPAN, "hex"), name: "bad", startTimeUnixNano: 1, endTimeUnixNano: 2 },
              ],
            },
          ],
        },
      ],
    });
    const { spans, rejected, reasons } = decodeOtlpProtobuf(ExportTraceServiceRequest.encode(message).finish());
    expect(rejected).toBe(1);
    expect(reasons).toEqual(["resourceSpans[0].scopeSpans[0].spans[1].traceId: expected 16 bytes, got 0"]);
    expect(spans).toEqual([
      {
        traceId: TRACE.toLowerCase(),
        spanId: SPAN.toLowerCase(),
        parentSpanId: PARENT,
        name: "POST /api/orders",
        kind: "client",
        service: "orders",
        startTimeUs: 1767225600123456,
        durationUs: 2000,
        status: "error",
        statusMessage: "upstream 503",
        attributes: { "http.response.status_code": 503, big: "9007199254740993", neg: -5, tags: ["a", false], raw: "AQI=", d: 1.25 },
        resource: { "service.name": "orders" },
        scope: "@keelson/sdk",
        events: [],
        links: [],
      },
    ]);
  });

  it("refuses bytes that are not a request", () => {
    expect(() => decodeOtlpProtobuf(Buffer.from("this is not protobuf at all"))).toThrow(OtlpDecodeError);
  });
});

describe("nanosToMicros", () => {
  it("converts strings, numbers and 64-bit longs exactly, and refuses junk", () => {
    expect(nanosToMicros("1767225600123456789")).toBe(1767225600123456);
    expect(nanosToMicros("999")).toBe(0);
    expect(nanosToMicros(5_000)).toBe(5);
    expect(nanosToMicros(1767225600125456896)).toBe(1767225600125456);
    // 64-bit values as a protobufjs Long carries them, in high and low words (low may read negative).
    const exact = (high: number, low: number) => Number(((BigInt(high) << 32n) + BigInt(low >>> 0)) / 1000n);
    expect(nanosToMicros({ high: 411_443_893, low: 1_316_846_357 })).toBe(exact(411_443_893, 1_316_846_357));
    expect(nanosToMicros({ high: 411_443_893, low: -1 })).toBe(exact(411_443_893, -1));
    expect(nanosToMicros({ high: 411_443_893, low: -1 })).toBe(1767138068868890);
    expect(nanosToMicros("12a")).toBeUndefined();
    expect(nanosToMicros(-1)).toBeUndefined();
    expect(nanosToMicros(undefined)).toBeUndefined();
  });
});
