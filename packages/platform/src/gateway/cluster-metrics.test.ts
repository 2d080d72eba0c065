// Tests for combining a multi-worker gateway's metrics: sums across workers, the gauges that must
// not be summed, and counts of exited workers that keep counters from going backwards.
import { describe, expect, it } from "vitest";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { MetricsJson } from "./cluster-messages.js";
import { aggregateClusterMetrics, retireCounts } from "./cluster-metrics.js";

/** A worker's registry (the gateway's metric names) after `n` 2xx requests, serving table `version`. */
async function workerJson(n: number, version: number, circuit?: number): Promise<MetricsJson> {
  const registry = new Registry();
  const requests = new Counter({ name: "keelson_gateway_requests_total", help: "requests", labelNames: ["service", "code_class"], registers: [registry] });
  const duration = new Histogram({ name: "keelson_gateway_request_duration_seconds", help: "duration", labelNames: ["service"], buckets: [0.001, 0.01], registers: [registry] });
  for (let i = 0; i < n; i++) {
    requests.inc({ service: "web", code_class: "2xx" });
    duration.observe({ service: "web" }, 0.002);
  }
  new Gauge({ name: "keelson_gateway_routing_table_version", help: "version", registers: [registry] }).set(version);
  new Gauge({ name: "keelson_gateway_control_plane_connected", help: "link", registers: [registry] }).set(0);
  new Gauge({ name: "keelson_gateway_requests_in_flight", help: "in flight", labelNames: ["service"], registers: [registry] }).set({ service: "web" }, 1);
  const breaker = new Gauge({ name: "keelson_gateway_circuit_state", help: "breaker", labelNames: ["service"], registers: [registry] });
  if (circuit !== undefined) breaker.set({ service: "web" }, circuit);
  return (await registry.getMetricsAsJSON()) as MetricsJson;
}

async function primaryJson(connected: boolean): Promise<MetricsJson> {
  const registry = new Registry();
  new Gauge({ name: "keelson_gateway_control_plane_connected", help: "link", registers: [registry] }).set(connected ? 1 : 0);
  new Counter({ name: "keelson_gateway_worker_restarts_total", help: "restarts", registers: [registry] }).inc(2);
  return (await registry.getMetricsAsJSON()) as MetricsJson;
}

function valueOf(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("aggregateClusterMetrics", () => {
  it("sums counters, histograms and in-flight gauges over workers and takes the lowest table version", async () => {
    const workers = [
      { slot: 0, metrics: await workerJson(3, 7) },
      { slot: 1, metrics: await workerJson(4, 6) },
    ];
    const text = await aggregateClusterMetrics(await primaryJson(true), workers, []).metrics();
    expect(valueOf(text, 'keelson_gateway_requests_total{service="web",code_class="2xx"}')).toBe(7);
    expect(valueOf(text, 'keelson_gateway_request_duration_seconds_count{service="web"}')).toBe(7);
    expect(valueOf(text, 'keelson_gateway_request_duration_seconds_bucket{le="0.01",service="web"}')).toBe(7);
    expect(valueOf(text, 'keelson_gateway_requests_in_flight{service="web"}')).toBe(2);
    expect(valueOf(text, "keelson_gateway_routing_table_version")).toBe(6);
    expect(valueOf(text, "keelson_gateway_worker_restarts_total")).toBe(2);
  });

  it("reports the control-plane link from the primary, never the workers' zeros", async () => {
    const workers = [
      { slot: 0, metrics: await workerJson(1, 1) },
      { slot: 1, metrics: await workerJson(1, 1) },
    ];
    const text = await aggregateClusterMetrics(await primaryJson(true), workers, []).metrics();
    expect(valueOf(text, "keelson_gateway_control_plane_connected")).toBe(1);
    expect(text.match(/^keelson_gateway_control_plane_connected /gm)).toHaveLength(1);
  });

  it("keeps each worker's breaker state apart under a worker label", async () => {
    const workers = [
      { slot: 0, metrics: await workerJson(1, 1, 1) },
      { slot: 1, metrics: await workerJson(1, 1, 0) },
    ];
    const text = await aggregateClusterMetrics(await primaryJson(true), workers, []).metrics();
    expect(valueOf(text, 'keelson_gateway_circuit_state{service="web",worker="0"}')).toBe(1);
    expect(valueOf(text, 'keelson_gateway_circuit_state{service="web",worker="1"}')).toBe(0);
  });

  it("adds the retired counts, so a counter does not drop when a worker is gone", async () => {
    const retired = retireCounts([], await workerJson(5, 3));
    const text = await aggregateClusterMetrics(await primaryJson(false), [{ slot: 1, metrics: await workerJson(2, 3) }], retired).metrics();
    expect(valueOf(text, 'keelson_gateway_requests_total{service="web",code_class="2xx"}')).toBe(7);
    expect(valueOf(text, 'keelson_gateway_request_duration_seconds_bucket{le="+Inf",service="web"}')).toBe(7);
    // A dead worker's gauges are not kept.
    expect(valueOf(text, "keelson_gateway_routing_table_version")).toBe(3);
    expect(valueOf(text, 'keelson_gateway_requests_in_flight{service="web"}')).toBe(1);
  });
});

describe("retireCounts", () => {
  it("keeps only counters and histograms and adds series by name and labels", async () => {
    const once = retireCounts([], await workerJson(2, 9));
    const twice = retireCounts(once, await workerJson(3, 9));
    expect(twice.map((m) => m.name).sort()).toEqual(["keelson_gateway_request_duration_seconds", "keelson_gateway_requests_total"]);
    const requests = twice.find((m) => m.name === "keelson_gateway_requests_total")!;
    expect(requests.values.map((v) => [v.labels, v.value])).toEqual([[{ service: "web", code_class: "2xx" }, 5]]);
    // The input is not changed in place.
    expect(once.find((m) => m.name === "keelson_gateway_requests_total")!.values[0]!.value).toBe(2);
  });
});
