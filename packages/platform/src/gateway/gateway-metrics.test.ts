// Tests for the gateway's metrics: request cells exported as Prometheus counters and histograms
// (valid for promtool), expiry of idle series, and the cluster-friendly JSON shape.
import { execFileSync, spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { requireComponent } from "#test-support";
import { NONE_LABEL, createGatewayMetrics } from "./gateway-metrics.js";

function clock(start = 0) {
  let t = start;
  return { now: () => t, set: (v: number) => (t = v) };
}

describe("createGatewayMetrics", () => {
  it("exports RED per service, version, route and replica, and durations without the replica", async () => {
    const c = clock();
    const m = createGatewayMetrics({ defaultMetrics: false, now: c.now });
    const route = m.routeId("/api");
    const a = m.cell("web", "r1", route, "web-1");
    const b = m.cell("web", "r1", route, "web-2");
    expect(m.cell("web", "r1", route, "web-1")).toBe(a);
    m.record(a, 200, 0.004, 0);
    m.record(a, 204, 0.02, 0);
    m.record(b, 503, 2, 0);
    m.record(b, 999, 0.001, 0);
    const text = await m.registry.metrics();
    expect(text).toContain('keelson_gateway_requests_total{service="web",version="r1",route="/api",replica="web-1",code_class="2xx"} 2');
    expect(text).toContain('keelson_gateway_requests_total{service="web",version="r1",route="/api",replica="web-2",code_class="5xx"} 2');
    expect(text).toContain('keelson_gateway_request_duration_seconds_bucket{service="web",version="r1",route="/api",le="0.005"} 2');
    expect(text).toContain('keelson_gateway_request_duration_seconds_bucket{service="web",version="r1",route="/api",le="2.5"} 4');
    expect(text).toContain('keelson_gateway_request_duration_seconds_bucket{service="web",version="r1",route="/api",le="+Inf"} 4');
    expect(text).toContain('keelson_gateway_request_duration_seconds_count{service="web",version="r1",route="/api"} 4');
    expect(text).toMatch(/keelson_gateway_request_duration_seconds_sum\{service="web",version="r1",route="\/api"\} 2\.025/);
    expect(text).not.toMatch(/request_duration_seconds_bucket\{[^}]*replica=/);
  });

  it("drops series idle longer than the TTL and brings one back when it is used again", async () => {
    const c = clock();
    const m = createGatewayMetrics({ defaultMetrics: false, now: c.now, idleSeriesTtlMs: 1_000 });
    const gone = m.cell("web", "r1", m.routeId("/"), "web-1");
    m.record(gone, 200, 0.01, 0);
    c.set(5_000);
    expect(await m.registry.metrics()).not.toContain('replica="web-1"');
    m.record(gone, 200, 0.01, 5_000);
    const text = await m.registry.metrics();
    expect(text).toContain('keelson_gateway_requests_total{service="web",version="r1",route="/",replica="web-1",code_class="2xx"} 2');
    expect(text).toContain('keelson_gateway_request_duration_seconds_count{service="web",version="r1",route="/"} 2');
  });

  it("gives getMetricsAsJSON the shape prom-client's cluster aggregation sums", async () => {
    const m = createGatewayMetrics({ defaultMetrics: false });
    m.record(m.cell("web", NONE_LABEL, m.routeId("internal"), NONE_LABEL), 503, 0.1, 0);
    const json = await m.registry.getMetricsAsJSON();
    const requests = json.find((x) => x.name === "keelson_gateway_requests_total")!;
    expect(String(requests.type)).toBe("counter");
    expect(requests.aggregator).toBe("sum");
    expect(requests.values).toEqual([{ labels: { service: "web", version: "none", route: "internal", replica: "none", code_class: "5xx" }, value: 1 }]);
    const duration = json.find((x) => x.name === "keelson_gateway_request_duration_seconds")!;
    expect(String(duration.type)).toBe("histogram");
    expect(duration.values).toContainEqual({ labels: { service: "web", version: "none", route: "internal" }, value: 1, metricName: "keelson_gateway_request_duration_seconds_count" });
  });

  it("reads the circuit and ejection gauges from the state source at scrape time", async () => {
    const m = createGatewayMetrics({ defaultMetrics: false });
    m.setStateSource(() => [
      { service: "web", circuit: 1, ejected: 2, endpoints: [{ version: "r1", replica: "web-1", inflight: 2 }] },
      { service: "api", circuit: undefined, ejected: 0, endpoints: [] },
    ]);
    // Three requests of web in the gateway, two of them at a replica: one waits.
    m.service("web").inflight = 3;
    const text = await m.registry.metrics();
    expect(text).toContain('keelson_gateway_circuit_state{service="web"} 1');
    expect(text).not.toContain('keelson_gateway_circuit_state{service="api"}');
    expect(text).toContain('keelson_gateway_ejected_endpoints{service="web"} 2');
    expect(text).toContain('keelson_gateway_requests_in_flight{service="web",version="r1",replica="web-1"} 2');
    expect(text).toContain('keelson_gateway_requests_in_flight{service="web",version="none",replica="none"} 1');
  });

  const hasPromtool = spawnSync("promtool", ["--version"]).status === 0;
  it.runIf(requireComponent("promtool", hasPromtool, "promtool is not installed (apt-get install prometheus)"))("passes promtool check metrics", async () => {
    // Ours only: prom-client's default nodejs_active_*_total gauges draw promtool lint findings of their own.
    const m = createGatewayMetrics({ defaultMetrics: false });
    m.record(m.cell("web", "r-3f9a", m.routeId("/api"), "web-1"), 200, 0.01, 0);
    m.record(m.unrouted, 404, 0.001, 0);
    m.retries.inc(m.service("web").retry.budgetExhausted);
    m.rejections.inc({ service: "web", reason: "circuit_open" });
    m.setStateSource(() => [{ service: "web", circuit: 0, ejected: 0, endpoints: [{ version: "r-3f9a", replica: "web-1", inflight: 1 }] }]);
    const text = await m.registry.metrics();
    expect(text).toContain("keelson_gateway_requests_total{");
    // promtool prints lint findings and exits non-zero on any; execFileSync throws then.
    const out = execFileSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    expect(out).toBe("");
  });
});
