// The exposition parser against hand-written text and against what prom-client writes.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import { parsePrometheusText, parseValue } from "./prometheus-text.js";

function parseError(text: string, source?: string): KeelsonError {
  try {
    parsePrometheusText(text, source === undefined ? {} : { source });
  } catch (err) {
    expect(err).toBeInstanceOf(KeelsonError);
    expect((err as KeelsonError).code).toBe("KEELSON_ERR_INVALID_INPUT");
    return err as KeelsonError;
  }
  throw new Error("expected a parse error");
}

describe("parsePrometheusText", () => {
  it("reads counters, gauges and histograms with their help, labels and optional timestamps", () => {
    const families = parsePrometheusText(
      [
        "# HELP keelson_gateway_requests_total Requests by class.",
        "# TYPE keelson_gateway_requests_total counter",
        'keelson_gateway_requests_total{service="orders",code_class="2xx"} 1027 1700000000000',
        'keelson_gateway_requests_total{service="orders",code_class="5xx"} 3',
        "",
        "# a free comment",
        "# TYPE inflight gauge",
        "inflight 2.5",
        "# TYPE latency_seconds histogram",
        'latency_seconds_bucket{le="0.1"} 4',
        'latency_seconds_bucket{le="+Inf"} 5',
        "latency_seconds_sum 0.75",
        "latency_seconds_count 5",
      ].join("\n"),
    );
    expect(families.map((f) => [f.name, f.type, f.samples.length])).toEqual([
      ["keelson_gateway_requests_total", "counter", 2],
      ["inflight", "gauge", 1],
      ["latency_seconds", "histogram", 4],
    ]);
    const [requests, inflight, latency] = families;
    expect(requests?.help).toBe("Requests by class.");
    expect(requests?.samples[0]).toEqual({ name: "keelson_gateway_requests_total", labels: { service: "orders", code_class: "2xx" }, value: 1027, timestampMs: 1_700_000_000_000, line: 3 });
    expect(requests?.samples[1]?.timestampMs).toBeUndefined();
    expect(inflight?.samples[0]?.value).toBe(2.5);
    expect(latency?.samples.map((s) => [s.name, s.labels.le, s.value])).toEqual([
      ["latency_seconds_bucket", "0.1", 4],
      ["latency_seconds_bucket", "+Inf", 5],
      ["latency_seconds_sum", undefined, 0.75],
      ["latency_seconds_count", undefined, 5],
    ]);
  });

  it("unescapes label values and help text, and keeps spaces, braces and commas inside quotes", () => {
    const [f] = parsePrometheusText(
      ['# HELP m A \\\\ backslash\\nand a newline', 'm{path="/a b,{c}",quote="say \\"hi\\"",nl="x\\ny",bs="C:\\\\dir",} 1'].join("\n"),
    );
    expect(f?.help).toBe("A \\ backslash\nand a newline");
    expect(f?.samples[0]?.labels).toEqual({ path: "/a b,{c}", quote: 'say "hi"', nl: "x\ny", bs: "C:\\dir" });
  });

  it("reads special values, exponents, tabs, CRLF line ends and an empty label set", () => {
    const families = parsePrometheusText("a NaN\r\nb +Inf\r\nc -Inf\nd 1.5e3\ne{} \t-0.25\t-5\n");
    const values = Object.fromEntries(families.map((f) => [f.name, f.samples[0]?.value]));
    expect(values.a).toBeNaN();
    expect(values).toMatchObject({ b: Infinity, c: -Infinity, d: 1500, e: -0.25 });
    expect(families.find((f) => f.name === "e")?.samples[0]?.timestampMs).toBe(-5);
    expect(families.every((f) => f.type === "untyped")).toBe(true);
  });

  it("groups a summary's quantiles, sum and count under the summary", () => {
    const [s] = parsePrometheusText(['# TYPE rpc summary', 'rpc{quantile="0.5"} 0.2', "rpc_sum 10", "rpc_count 40"].join("\n"));
    expect(s?.type).toBe("summary");
    expect(s?.samples.map((x) => x.name)).toEqual(["rpc", "rpc_sum", "rpc_count"]);
  });

  it("reads what prom-client writes, label values with quotes and newlines included", async () => {
    const registry = new Registry();
    const c = new Counter({ name: "hits_total", help: 'Hits, "quoted"\\ and\nmultiline.', labelNames: ["path"], registers: [registry] });
    c.inc({ path: 'a"b\\c\nd' }, 3);
    new Gauge({ name: "temp", help: "t", registers: [registry] }).set(-1.5);
    new Histogram({ name: "lat_seconds", help: "l", buckets: [0.1, 1], registers: [registry] }).observe(0.5);
    const families = parsePrometheusText(await registry.metrics());
    const hits = families.find((f) => f.name === "hits_total");
    expect(hits?.help).toBe('Hits, "quoted"\\ and\nmultiline.');
    expect(hits?.samples[0]?.labels.path).toBe('a"b\\c\nd');
    expect(hits?.samples[0]?.value).toBe(3);
    expect(families.find((f) => f.name === "temp")?.samples[0]?.value).toBe(-1.5);
    const lat = families.find((f) => f.name === "lat_seconds");
    expect(lat?.type).toBe("histogram");
    expect(lat?.samples.filter((s) => s.name === "lat_seconds_bucket").map((s) => [s.labels.le, s.value])).toEqual([
      ["0.1", 0],
      ["1", 1],
      ["+Inf", 1],
    ]);
  });

  it.each([
    ["m{a=\"1\" 2", 'metrics:1:9: expected "," or "}" after the value of label "a", got "2"'],
    ['m{a="1} 2', 'metrics:1:10: unterminated value of label "a": expected a closing quote'],
    ["m{a=1} 2", 'metrics:1:5: expected a quoted value for label "a", got "1"'],
    ['m{a="1",a="2"} 2', 'metrics:1:9: label "a" appears twice in m'],
    ['m{1a="x"} 2', 'metrics:1:3: "1a" is not a valid label name'],
    ['m{a="\\t"} 2', 'metrics:1:6: invalid escape "\\t" in the value of label "a" (use \\\\, \\" or \\n)'],
    ["m twelve", 'metrics:1:3: value of m: "twelve" is not a number'],
    ["m", "metrics:1:2: missing value of m"],
    ["m 1 12.5", 'metrics:1:5: timestamp of m: "12.5" is not an integer of milliseconds'],
    ["m 1 12 extra", 'metrics:1:8: unexpected "extra" after the timestamp of m'],
    ["9m 1", 'metrics:1:1: "9m" is not a valid metric name'],
    ["# TYPE m countr", 'metrics:1:1: TYPE line for m: unknown type "countr" (expected counter, gauge, histogram, summary or untyped)'],
  ])("rejects %j naming the line and column", (text, message) => {
    expect(parseError(text).message).toBe(message);
  });

  it("names the source and the right line of a long text", () => {
    const text = ["# TYPE a counter", "a 1", "b 2", 'c{x="y} 3'].join("\n");
    const err = parseError(text, "http://127.0.0.1:9/metrics");
    expect(err.message).toMatch(/^http:\/\/127\.0\.0\.1:9\/metrics:4:10: unterminated value of label "x"/);
    expect(err.details).toMatchObject({ line: 4, column: 10, text: 'c{x="y} 3' });
  });

  it("rejects a second TYPE, a TYPE after samples, and histogram buckets without a numeric le", () => {
    expect(parseError("# TYPE a counter\n# TYPE a gauge").message).toBe("metrics:2:1: second TYPE line for a");
    expect(parseError("a 1\n# TYPE a counter").message).toBe("metrics:2:1: TYPE line for a comes after its samples");
    expect(parseError("# TYPE h histogram\nh_bucket 1").message).toBe('metrics:2:1: histogram bucket h_bucket has no "le" label');
    expect(parseError('# TYPE h histogram\nh_bucket{le="big"} 1').message).toBe('metrics:2:1: histogram bucket h_bucket: le="big" is not a number');
  });
});

describe("parseValue", () => {
  it("reads the spellings Prometheus accepts and nothing else", () => {
    expect(parseValue("+Inf")).toBe(Infinity);
    expect(parseValue("-inf")).toBe(-Infinity);
    expect(parseValue(".5")).toBe(0.5);
    expect(parseValue("1E-3")).toBe(0.001);
    expect(parseValue("0x10")).toBeUndefined();
    expect(parseValue("")).toBeUndefined();
    expect(parseValue("1,5")).toBeUndefined();
  });
});
