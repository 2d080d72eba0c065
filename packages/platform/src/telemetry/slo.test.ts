// SLOs from the manifest, burn rates over the built-in source fed with simulated gateway
// traffic, the workbook's alert rules, and the budget left over an SLO's window.
import { describe, expect, it } from "vitest";
import { parseManifest } from "../manifest/index.js";
import { createMetricStore, GATEWAY_REQUESTS, GATEWAY_REQUEST_DURATION } from "./metric-store.js";
import type { MetricStore } from "./metric-store.js";
import { createBuiltinMetricsSource } from "./metrics-source.js";
import type { MetricFamily } from "./prometheus-text.js";
import { alertClear, BURN_ALERTS, burnRates, firingAlerts, formatWindow, objectiveKey, objectivesFromManifest, objectivesFromServices, sloStatus } from "./slo.js";
import type { SloObjective } from "./slo.js";

const T0 = Date.UTC(2026, 3, 1, 0, 0, 0);
const STEP = 10_000;
const H = 3_600_000;

/**
 * Feeds the store one gateway's scrapes every 10 s from `from` to `to`: `rps` requests per
 * second for `service`, of which `errorShare` are 5xx and `slowShare` slower than 100 ms.
 */
function feed(store: MetricStore, o: { service: string; from: number; to: number; rps: number; errorShare: number; slowShare?: number; totals?: Record<string, number> }): void {
  const t = o.totals ?? {};
  for (let at = o.from; at <= o.to; at += STEP) {
    const n = o.rps * 10;
    t.ok = (t.ok ?? 0) + n * (1 - o.errorShare);
    t.bad = (t.bad ?? 0) + n * o.errorShare;
    t.fast = (t.fast ?? 0) + n * (1 - (o.slowShare ?? 0));
    t.all = (t.all ?? 0) + n;
    const sample = (name: string, labels: Record<string, string>, value: number) => ({ name, labels: { service: o.service, ...labels }, value, timestampMs: undefined, line: 0 });
    const families: MetricFamily[] = [
      {
        name: GATEWAY_REQUESTS,
        type: "counter",
        help: undefined,
        samples: [sample(GATEWAY_REQUESTS, { code_class: "2xx" }, t.ok), sample(GATEWAY_REQUESTS, { code_class: "5xx" }, t.bad)],
      },
      {
        name: GATEWAY_REQUEST_DURATION,
        type: "histogram",
        help: undefined,
        samples: [
          sample(`${GATEWAY_REQUEST_DURATION}_bucket`, { le: "0.1" }, t.fast),
          sample(`${GATEWAY_REQUEST_DURATION}_bucket`, { le: "1" }, t.all),
          sample(`${GATEWAY_REQUEST_DURATION}_bucket`, { le: "+Inf" }, t.all),
          sample(`${GATEWAY_REQUEST_DURATION}_count`, {}, t.all),
        ],
      },
    ];
    store.ingestFamilies(families, { instance: "gw", at });
  }
}

const availability = (target: number, windowMs = 30 * 24 * H): SloObjective => ({ service: "orders", slo: "ok", objective: "availability", target, windowMs });

describe("objectives", () => {
  it("come from the manifest: one per availability and latency objective, windows and thresholds in ms", () => {
    const { manifest } = parseManifest(
      [
        "project: shop",
        "services:",
        "  orders:",
        "    owner: team-a",
        "    path: services/orders",
        "    start: node main.js",
        "    slos:",
        "      - { name: checkout, availability: 99.9, latency: { threshold: 300ms, percentile: 95 } }",
        "      - { name: weekly, availability: 99, window: 7d }",
        "  users:",
        "    owner: team-a",
        "    path: services/users",
        "    start: node main.js",
      ].join("\n"),
      "/tmp/shop/keelson.yaml",
      { checkPaths: false },
    );
    const objectives = objectivesFromManifest(manifest);
    expect(objectives).toEqual([
      { service: "orders", slo: "checkout", objective: "availability", target: 0.999, windowMs: 30 * 24 * H },
      { service: "orders", slo: "checkout", objective: "latency", target: 0.95, thresholdSeconds: 0.3, windowMs: 30 * 24 * H },
      { service: "orders", slo: "weekly", objective: "availability", target: 0.99, windowMs: 7 * 24 * H },
    ]);
    // The store keeps the same spec as plain data.
    expect(objectivesFromServices([{ name: "orders", spec: JSON.parse(JSON.stringify(manifest.services.orders)) as Record<string, unknown> }])).toEqual(objectives);
    expect(objectives.map(objectiveKey)).toEqual(["orders/checkout/availability", "orders/checkout/latency", "orders/weekly/availability"]);
  });

  it("formats windows in their shortest exact unit", () => {
    expect([300_000, 3_600_000, 6 * H, 30 * 24 * H, 90_000, 1500].map(formatWindow)).toEqual(["5m", "1h", "6h", "30d", "90s", "1500ms"]);
  });
});

describe("burn rates and alerts", () => {
  it("burn at bad ratio / budget, and fire only when both windows of an alert exceed it", async () => {
    const store = createMetricStore({ now: () => T0 + 7 * H });
    const source = createBuiltinMetricsSource(store);
    // 6 h at 1% errors, then the last hour at 10% against a 99% objective.
    const totals: Record<string, number> = {};
    feed(store, { service: "orders", from: T0, to: T0 + 6 * H, rps: 10, errorShare: 0.01, totals });
    feed(store, { service: "orders", from: T0 + 6 * H + STEP, to: T0 + 7 * H, rps: 10, errorShare: 0.1, totals });
    const rates = await burnRates(source, availability(0.99), T0 + 7 * H);
    expect([...rates.keys()]).toEqual([5 * 60_000, 30 * 60_000, H, 6 * H]);
    expect(rates.get(5 * 60_000)).toBeCloseTo(10, 6);
    expect(rates.get(H)).toBeCloseTo(10, 6);
    // 6 h window: 5 h at 1% and 1 h at 10%.
    expect(rates.get(6 * H)).toBeCloseTo((5 * 1 + 10) / 6, 6);
    expect(firingAlerts(rates)).toEqual([]);
    // A 99.5% objective halves the budget: 20× over 1 h and 5 m pages. The ticket's 6 h window
    // burns at 5× (under 6) but its 30 m window at 20×: neither firing nor clear.
    const strict = await burnRates(source, availability(0.995), T0 + 7 * H);
    expect(firingAlerts(strict).map((a) => a.severity)).toEqual(["page"]);
    expect(strict.get(6 * H)).toBeCloseTo(5, 6);
    expect(alertClear(strict, BURN_ALERTS[1]!)).toBe(false);
    expect(alertClear(strict, BURN_ALERTS[0]!)).toBe(false);
    expect(BURN_ALERTS.every((a) => alertClear(rates, a))).toBe(false);
    const calm = await burnRates(source, availability(0.9), T0 + 7 * H);
    expect(BURN_ALERTS.every((a) => alertClear(calm, a))).toBe(true);
  });

  it("burn nothing without traffic", async () => {
    const source = createBuiltinMetricsSource(createMetricStore({ now: () => T0 }));
    const rates = await burnRates(source, availability(0.999), T0);
    expect([...rates.values()]).toEqual([undefined, undefined, undefined, undefined]);
    expect(firingAlerts(rates)).toEqual([]);
    expect(BURN_ALERTS.every((a) => alertClear(rates, a))).toBe(true);
  });
});

describe("sloStatus", () => {
  it("gives the budget left over the window the source keeps, per objective", async () => {
    const now = T0 + 24 * H;
    const store = createMetricStore({ now: () => now });
    // A day at 0.05% errors, 5% of requests slower than 100 ms.
    feed(store, { service: "orders", from: T0, to: now, rps: 20, errorShare: 0.0005, slowShare: 0.05 });
    const objectives: SloObjective[] = [
      availability(0.999),
      { service: "orders", slo: "fast", objective: "latency", target: 0.9, thresholdSeconds: 0.1, windowMs: 7 * 24 * H },
      { service: "idle", slo: "ok", objective: "availability", target: 0.99, windowMs: 24 * H },
    ];
    const [avail, latency, idle] = await sloStatus({ source: createBuiltinMetricsSource(store), objectives, now: () => now });
    expect(avail).toMatchObject({ service: "orders", slo: "ok", objective: "availability", target: 0.999, window: "30d", measuredWindow: "7d", budgetRemaining: 0.5 });
    expect(avail?.sli).toBeCloseTo(0.9995, 9);
    expect(avail?.burnRates["1h"]).toBeCloseTo(0.5, 6);
    expect(latency).toMatchObject({ objective: "latency", thresholdSeconds: 0.1, window: "7d", measuredWindow: "7d", budgetRemaining: 0.5 });
    expect(latency?.badRatio).toBeCloseTo(0.05, 9);
    expect(idle).toMatchObject({ service: "idle", budgetRemaining: undefined, sli: undefined, burnRates: {} });
  });
});
