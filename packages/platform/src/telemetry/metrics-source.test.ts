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
