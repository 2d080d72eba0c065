// The overview's figures: rates, percentages and latencies as they read, "no traffic" kept apart
// from 0 %, the error budget of a service's tightest objective, open incidents and rollouts in words.
import { describe, expect, it } from "vitest";
import type { SloRow } from "./overview-api.js";
import { describeRollout, errorBudget, formatLatency, formatPercent, formatRate, NO_TRAFFIC, openIncidents, redByService, redCells } from "./overview-metrics.js";

const slo = (over: Partial<SloRow>): SloRow => ({
  service: "api",
  slo: "avail",
  objective: "availability",
  target: 0.999,
  window: "30d",
  measuredWindow: "7d",
  burnRates: {},
  ...over,
});

const incident = (id: number, service: string, openedAt: string) => ({ id, key: `${service}/x`, service, slo: "avail", objective: "availability" as const, severity: "page" as const, alerts: ["page" as const], openedAt });

describe("formatting", () => {
  it("reads request rates at a sensible precision", () => {
    expect([0.004, 0.25, 1.5, 12.345, 340.4].map(formatRate)).toEqual(["<0.01/s", "0.25/s", "1.5/s", "12.3/s", "340/s"]);
  });

  it("reads ratios as percentages, with 0% exactly zero and tiny ones not rounded to it", () => {
    expect([0, 0.0004, 0.025, 0.5, 1].map(formatPercent)).toEqual(["0%", "<0.1%", "2.5%", "50%", "100%"]);
    expect(formatPercent(-0.4)).toBe("−40%");
  });

  it("reads latencies in ms below a second and in seconds above", () => {
    expect([0.0004, 0.012, 0.2404, 1.25, 12.34].map(formatLatency)).toEqual(["<1 ms", "12 ms", "240 ms", "1.25 s", "12.3 s"]);
  });
});

describe("redCells", () => {
  it("says no traffic in every cell for a service without a row or without requests, never 0%", () => {
    for (const row of [undefined, { labels: { service: "api" }, requestRate: 0 }]) {
      const cells = redCells(row);
      expect([cells.rate.text, cells.errors.text, cells.p99.text]).toEqual([NO_TRAFFIC, NO_TRAFFIC, NO_TRAFFIC]);
      expect(cells.errors.tone).toBe("none");
    }
  });

  it("shows 0% errors for traffic without errors, and warns from the first error, badly from 5%", () => {
    expect(redCells({ labels: { service: "api" }, requestRate: 2, errorRatio: 0, p99: 0.05 })).toEqual({
      rate: { text: "2/s", tone: "ok" },
      errors: { text: "0%", tone: "ok" },
      p99: { text: "50 ms", tone: "ok" },
    });
    expect(redCells({ labels: {}, requestRate: 2, errorRatio: 0.01 }).errors).toEqual({ text: "1%", tone: "warn" });
    expect(redCells({ labels: {}, requestRate: 2, errorRatio: 0.25 }).errors).toEqual({ text: "25%", tone: "bad" });
  });

  it("marks a missing p99 (no timed requests) apart from a measured one", () => {
    expect(redCells({ labels: {}, requestRate: 1, errorRatio: 0 }).p99).toMatchObject({ text: "–", tone: "none" });
  });

  it("indexes rows by their service label, skipping rows without one", () => {
    const rows = redByService([
      { labels: { service: "api" }, requestRate: 1 },
      { labels: { service: "" }, requestRate: 5 },
      { labels: {}, requestRate: 7 },
    ]);
    expect([...rows.keys()]).toEqual(["api"]);
  });
});

describe("errorBudget", () => {
  it("says no SLO for a service without objectives, and no traffic when none has requests", () => {
    expect(errorBudget([slo({ service: "other", budgetRemaining: 0.5 })], "api")).toEqual({ text: "no SLO", tone: "none" });
    expect(errorBudget([slo({})], "api")).toMatchObject({ text: NO_TRAFFIC, tone: "none" });
  });

  it("shows the tightest objective's budget, with every objective in the detail", () => {
    const cell = errorBudget([slo({ budgetRemaining: 0.9 }), slo({ slo: "fast", objective: "latency", target: 0.95, thresholdSeconds: 0.3, budgetRemaining: 0.2 })], "api");
    expect(cell.text).toBe("20% left");
    expect(cell.tone).toBe("warn");
    expect(cell.detail).toBe("avail: availability 99.9% over 30d: 90% of the budget left; fast: latency 95% under 300 ms over 30d: 20% of the budget left");
  });

  it("says exhausted, with how many budgets went, at or below zero", () => {
    expect(errorBudget([slo({ budgetRemaining: -19 })], "api")).toMatchObject({ text: "exhausted (20× spent)", tone: "bad" });
    expect(errorBudget([slo({ budgetRemaining: -0.25 })], "api")).toMatchObject({ text: "exhausted (1.3× spent)", tone: "bad" });
    expect(errorBudget([slo({ budgetRemaining: 0 })], "api")).toMatchObject({ text: "exhausted", tone: "bad" });
    expect(errorBudget([slo({ budgetRemaining: 0.75 })], "api")).toMatchObject({ text: "75% left", tone: "ok" });
  });
});

describe("openIncidents", () => {
  it("lists each open incident once, newest first", () => {
    const a = incident(7, "api", "2026-03-01T10:00:00.000Z");
    const b = incident(9, "web", "2026-03-01T11:00:00.000Z");
    expect(openIncidents([slo({ incident: a }), slo({ slo: "fast", incident: a }), slo({ service: "web", incident: b }), slo({ service: "web", slo: "x" })]).map((i) => i.id)).toEqual([9, 7]);
  });
});

describe("describeRollout", () => {
  const base = { id: "ro-1", from: "r-a", to: "r-b", startedAt: "2026-03-01T10:00:00.000Z" };
  it("says where a canary stands in its steps and how much traffic the new release has", () => {
    expect(describeRollout({ ...base, strategy: "canary", phase: "paused", weight: 20, step: 1, steps: 3 })).toBe("Canary paused at step 2 of 3, 20% of traffic on the new release");
    expect(describeRollout({ ...base, strategy: "canary", phase: "progressing", weight: 50, step: 2, steps: 3 })).toBe("Canary in progress, step 3 of 3, 50% of traffic on the new release");
  });

  it("describes other strategies without steps", () => {
    expect(describeRollout({ ...base, strategy: "blueGreen", phase: "switched", weight: 100, step: 0, steps: 0 })).toBe("Blue-green switched, previous release kept warm, 100% of traffic on the new release");
    expect(describeRollout({ ...base, strategy: "rolling", phase: "progressing", weight: 100, step: 0, steps: 0 })).toBe("Rolling in progress, 100% of traffic on the new release");
  });
});
