// The built-in MetricsSource runs the conformance suite; the Prometheus one is checked here for
// the PromQL it sends and how it reads answers and failures (a local stand-in server), and runs
// the conformance suite against a real Prometheus in test/integration/prometheus.test.ts.
import { once } from "node:events";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import { freePort } from "#test-support";
import { createMetricStore } from "./metric-store.js";
import { describeMetricsSourceConformance } from "./metrics-source.conformance.js";
import { createBuiltinMetricsSource, createPrometheusMetricsSource, promql } from "./metrics-source.js";

const START = Date.UTC(2026, 2, 1, 9, 0, 0);

describeMetricsSourceConformance(
  "builtin",
  {
    async load(scrapes) {
      const store = createMetricStore({ now: () => START + 3_600_000 });
      for (const s of scrapes) store.ingest(s.text, { instance: s.instance, at: s.at });
      return { source: createBuiltinMetricsSource(store), cleanup: async () => {} };
    },
  },
  { start: START },
);

describe("createBuiltinMetricsSource", () => {
  it("has no in-flight answer when the store does not keep the gauge, and tells its retention", async () => {
    const store = createMetricStore({ metrics: [{ name: "keelson_gateway_requests_total", type: "counter", labels: ["service", "code_class"] }] });
    const source = createBuiltinMetricsSource(store);
    expect(source.retentionMs).toBe(7 * 24 * 3_600_000);
    expect(await source.inflight({ service: "orders", window: "1m" })).toBeUndefined();
  });

  it("counts from the freshest scrape back to the step holding the window's start, whatever the window", async () => {
    // A canary analysis 7 s old, asked right after a scrape on demand at :27.5 (interval rounds at :03, :13, :23).
    const T = Date.UTC(2026, 2, 1, 9, 0, 0);
    const store = createMetricStore({ now: () => T + 28_000 });
    const text = (ok: number, bad: number) =>
      `# TYPE keelson_gateway_requests_total counter\nkeelson_gateway_requests_total{service="orders",version="r-2",code_class="2xx"} ${ok}\nkeelson_gateway_requests_total{service="orders",version="r-2",code_class="5xx"} ${bad}\n`;
    store.ingest(text(0, 0), { instance: "gw", at: T + 3_000 });
    store.ingest(text(10, 0), { instance: "gw", at: T + 13_000 });
    store.ingest(text(25, 1), { instance: "gw", at: T + 23_000 });
    store.ingest(text(31, 2), { instance: "gw", at: T + 27_500 });
    const source = createBuiltinMetricsSource(store);
    // Since :21: the step :20-:30 holds the scrapes at :23 and :27.5, 23 requests (2 of them 5xx); with `at` omitted too.
    expect(await source.counts({ service: "orders", window: 7_000, at: T + 28_000 })).toEqual({ requests: 23, errors: 2 });
    expect(await source.counts({ service: "orders", window: 7_000 })).toEqual({ requests: 23, errors: 2 });
    // Since :19, one step more: :10-:20 holds the scrape at :13 (10 requests).
    expect(await source.counts({ service: "orders", window: 9_000, at: T + 28_000 })).toEqual({ requests: 33, errors: 2 });
    // The nearest whole number of steps (what rates use) is one, which would miss it.
    expect(store.increase("keelson_gateway_requests_total", { window: 9_000, at: T + 28_000 })).toEqual([{ labels: {}, value: 23 }]);
  });

  it("refuses custom PromQL, naming the setting that enables it", async () => {
    const source = createBuiltinMetricsSource(createMetricStore());
    const err = await source.query("sum(up)").then(
      () => undefined,
      (e: unknown) => e as KeelsonError,
    );
    expect(err).toBeInstanceOf(KeelsonError);
    expect(err?.code).toBe("KEELSON_ERR_INVALID_INPUT");
    expect(err?.message).toBe(
      "custom PromQL metrics need Prometheus: set telemetry.prometheus.url in keelson.yaml (the built-in store answers only the gateway's request, error and latency metrics)",
    );
    expect(err?.details).toEqual({ query: "sum(up)" });
  });
});

describe("createPrometheusMetricsSource", () => {
  interface Seen {
    path: string;
    query: string;
    time: string | null;
  }
  const servers: Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await new Promise((r) => (s.closeAllConnections(), s.close(r)));
  });

  /** A stand-in answering every query with `answer(query)`; records what it was asked. */
  async function fakePrometheus(answer: (query: string, res: ServerResponse) => void): Promise<{ url: string; seen: Seen[] }> {
    const seen: Seen[] = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        const params = new URLSearchParams(body);
        const query = params.get("query") ?? "";
        seen.push({ path: req.url ?? "", query, time: params.get("time") });
        answer(query, res);
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    servers.push(server);
    const addr = server.address();
    return { url: `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}/`, seen };
  }

  const vector = (res: ServerResponse, result: Array<{ metric: Record<string, string>; value: string }>) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ status: "success", data: { resultType: "vector", result: result.map((r) => ({ metric: r.metric, value: [1700000000, r.value] })) } }));
  };

  it("sends the PromQL of each question with the evaluation time and reads the answers", async () => {
    const answers: Record<string, Array<{ metric: Record<string, string>; value: string }>> = {
      [promql.errorRatio({ service: "orders", version: "r-1", window: "" }, 300_000)]: [{ metric: {}, value: "0.25" }],
      [promql.requestRate({ service: "orders", window: "" }, 60_000)]: [{ metric: {}, value: "12.5" }],
      [promql.latencyQuantile({ service: "orders", window: "" }, 0.99, 60_000)]: [{ metric: {}, value: "NaN" }],
      [promql.buckets({ service: "orders", window: "" }, 60_000)]: [
        { metric: { le: "0.1" }, value: "8" },
        { metric: { le: "0.2" }, value: "10" },
        { metric: { le: "+Inf" }, value: "10" },
      ],
      [promql.inflight({ service: "orders", replica: "orders-1", window: "" }, 1500)]: [],
    };
    const prom = await fakePrometheus((q, res) => vector(res, answers[q] ?? [{ metric: {}, value: "-1" }]));
    const source = createPrometheusMetricsSource({ url: prom.url });
    const at = Date.UTC(2026, 0, 1, 0, 0, 0);
    expect(await source.errorRatio({ service: "orders", version: "r-1", window: "5m", at })).toBe(0.25);
    expect(await source.requestRate({ service: "orders", window: 60_000 })).toBe(12.5);
    expect(await source.latencyQuantile({ service: "orders", q: 0.99, window: "1m" })).toBeUndefined();
    expect(await source.slowRatio({ service: "orders", thresholdSeconds: 0.15, window: "1m" })).toBeCloseTo(0.1, 12);
    expect(await source.inflight({ service: "orders", replica: "orders-1", window: 1500 })).toBeUndefined();
    expect(prom.seen.map((s) => s.path)).toEqual(Array(5).fill("/api/v1/query"));
    expect(prom.seen[0]).toEqual({
      path: "/api/v1/query",
      query:
        '(sum(rate(keelson_gateway_requests_total{service="orders",version="r-1",code_class="5xx"}[300s])) or vector(0)) / sum(rate(keelson_gateway_requests_total{service="orders",version="r-1"}[300s]))',
      time: "1767225600.000",
    });
    expect(prom.seen[1]?.time).toBeNull();
    expect(prom.seen[2]?.query).toBe('histogram_quantile(0.99, sum by (le) (rate(keelson_gateway_request_duration_seconds_bucket{service="orders"}[60s])))');
    expect(prom.seen[4]?.query).toBe('sum(avg_over_time(keelson_gateway_requests_in_flight{service="orders",replica="orders-1"}[1500ms]))');
  });

  it("counts requests and 5xx in one query by code_class and reads histogram buckets, keeping fractions", async () => {
    const counts = promql.counts({ service: "orders", version: "r-2", window: "" }, 7_000);
    const buckets = promql.latencyBuckets({ service: "orders", version: "r-2", window: "" }, 7_500);
    const answers: Record<string, Array<{ metric: Record<string, string>; value: string }>> = {
      [counts]: [
        { metric: { code_class: "2xx" }, value: "40.5" },
        { metric: { code_class: "5xx" }, value: "2.25" },
        { metric: {}, value: "1" },
      ],
      [buckets]: [
        { metric: { le: "+Inf" }, value: "10.5" },
        { metric: { le: "0.1" }, value: "8" },
        { metric: { le: "0.25" }, value: "10.5" },
      ],
      [promql.counts({ service: "payments", window: "" }, 7_000)]: [{ metric: { code_class: "2xx" }, value: "12" }],
    };
    const prom = await fakePrometheus((q, res) => vector(res, answers[q] ?? []));
    const source = createPrometheusMetricsSource({ url: prom.url });
    expect(await source.counts({ service: "orders", version: "r-2", window: 7_000 })).toEqual({ requests: 43.75, errors: 2.25 });
    expect(await source.counts({ service: "payments", window: "7s" })).toEqual({ requests: 12, errors: 0 });
    expect(await source.counts({ service: "nobody", window: "7s" })).toBeUndefined();
    expect(await source.latencyBuckets({ service: "orders", version: "r-2", window: 7_500 })).toEqual([
      { le: 0.1, count: 8 },
      { le: 0.25, count: 10.5 },
      { le: Infinity, count: 10.5 },
    ]);
    expect(await source.latencyBuckets({ service: "nobody", window: 7_500 })).toBeUndefined();
    expect(counts).toBe('sum by (code_class) (increase(keelson_gateway_requests_total{service="orders",version="r-2"}[7s]))');
    expect(buckets).toBe('sum by (le) (increase(keelson_gateway_request_duration_seconds_bucket{service="orders",version="r-2"}[7500ms]))');
  });

  it("answers a custom query with its one number and rejects answers that are not one number", async () => {
    const prom = await fakePrometheus((q, res) => {
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      if (q === "scalar") return json(200, { status: "success", data: { resultType: "scalar", result: [1700000000, "0.75"] } });
      if (q === "nan") return json(200, { status: "success", data: { resultType: "scalar", result: [1700000000, "NaN"] } });
      if (q === "one") return vector(res, [{ metric: { service: "orders" }, value: "3" }]);
      if (q === "none") return vector(res, []);
      if (q === "many") return vector(res, ["a", "b", "c", "d"].map((job) => ({ metric: { job }, value: "1" })));
      if (q === "range") return json(200, { status: "success", data: { resultType: "matrix", result: [] } });
      if (q === "slow") return json(422, { status: "error", errorType: "execution", error: "query processing would load too many samples into memory" });
      json(400, { status: "error", errorType: "bad_data", error: '1:10: parse error: unclosed left parenthesis' });
    });
    const source = createPrometheusMetricsSource({ url: prom.url });
    const at = Date.UTC(2026, 0, 1, 0, 0, 0);
    expect(await source.query("scalar", { at })).toBe(0.75);
    expect(prom.seen[0]).toEqual({ path: "/api/v1/query", query: "scalar", time: "1767225600.000" });
    expect(await source.query("nan")).toBeUndefined();
    expect(await source.query("one")).toBe(3);
    expect(await source.query("none")).toBeUndefined();

    const invalid = async (p: Promise<unknown>) => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e as KeelsonError,
      );
      expect(err).toBeInstanceOf(KeelsonError);
      expect(err?.code).toBe("KEELSON_ERR_INVALID_INPUT");
      return err as KeelsonError;
    };
    const many = await invalid(source.query("many"));
    expect(many.message).toBe('query "many": expected one number, got 4 series ({job="a"}, {job="b"}, {job="c"}, …): aggregate them, e.g. with sum()');
    expect(many.details).toEqual({ query: "many", series: 4 });
    expect((await invalid(source.query("range"))).message).toBe('query "range": expected one number, got a range vector');
    const bad = await invalid(source.query("sum(rate("));
    expect(bad.message).toBe(`query "sum(rate(": Prometheus at ${prom.url.replace(/\/$/, "")} rejected it: bad_data: 1:10: parse error: unclosed left parenthesis`);
    expect((await invalid(source.query("", { at }))).message).toBe('query: expected a PromQL expression, got ""');
    expect((await invalid(source.query("one", { at: NaN }))).message).toBe("at: expected a time in ms, got null");

    // A query Prometheus could not run is the source failing, not bad input.
    const slow = await unavailable(source.query("slow"));
    expect(slow.message).toMatch(/: execution: query processing would load too many samples into memory$/);
    const closed = createPrometheusMetricsSource({ url: `http://127.0.0.1:${await freePort()}` });
    expect((await unavailable(closed.query("one"))).message).toMatch(/: cannot connect \(ECONNREFUSED\)$/);
  });

  it("escapes label values so a name cannot change the query", () => {
    expect(promql.selector({ service: 'a"b\\c\nd', window: "1m" })).toBe('{service="a\\"b\\\\c\\nd"}');
  });

  async function unavailable(p: Promise<unknown>): Promise<KeelsonError> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KeelsonError);
    expect((err as KeelsonError).code).toBe("KEELSON_ERR_METRICS_UNAVAILABLE");
    return err as KeelsonError;
  }

  it("rejects with KEELSON_ERR_METRICS_UNAVAILABLE naming Prometheus's error, a bad answer or no answer", async () => {
    const prom = await fakePrometheus((q, res) => {
      if (q.includes("avg_over_time")) {
        res.writeHead(200);
        res.end("<html>proxy</html>");
        return;
      }
      if (q.includes("histogram_quantile")) return; // never answers
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: "error", errorType: "bad_data", error: "parse error at char 12" }));
    });
    const source = createPrometheusMetricsSource({ url: prom.url, timeoutMs: 200 });
    const bad = await unavailable(source.errorRatio({ service: "orders", window: "5m" }));
    expect(bad.message).toBe(`Prometheus at ${prom.url.replace(/\/$/, "")}: bad_data: parse error at char 12`);
    expect(bad.details).toMatchObject({ query: expect.stringContaining("code_class=\"5xx\"") });
    expect((await unavailable(source.inflight({ service: "orders", window: "5m" }))).message).toMatch(/: answered 200 without a JSON body$/);
    expect((await unavailable(source.latencyQuantile({ service: "orders", q: 0.5, window: "5m" }))).message).toMatch(/: no answer within 200 ms$/);

    const closed = createPrometheusMetricsSource({ url: `http://127.0.0.1:${await freePort()}` });
    expect((await unavailable(closed.requestRate({ service: "orders", window: "5m" }))).message).toMatch(/: cannot connect \(ECONNREFUSED\)$/);
  });
});
