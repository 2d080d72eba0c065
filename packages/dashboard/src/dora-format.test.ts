// The DORA view's derivations: the scope selector round trip, each key's figure with the API's own
// bucket (or the reason there is none), the weekly chart series with gaps, and per-team totals.
import { describe, expect, it } from "vitest";
import type { DoraReport, Team } from "./dora-api.js";
import { bucketLabel, formatDuration, formatRate, keyFigures, parseScope, plural, reportDays, reportMatches, scopeOf, scopeOptions, scopeValue, teamTotals, weeklySeries } from "./dora-format.js";

const H = 3_600_000;

function report(over: Partial<DoraReport> = {}): DoraReport {
  return {
    scope: { project: "shop", services: ["orders", "search"] },
    window: { days: 28, from: "2026-02-02T10:00:00.000Z", to: "2026-03-01T00:00:00.000Z" },
    summary: {
      deploymentFrequency: { perDay: 0.25, perWeek: 1.75, deployments: 7, bucket: "high" },
      leadTime: { medianMs: 26 * H, bucket: "high", changes: 9, skewed: 1, withoutCommit: 0 },
      changeFailureRate: { value: 0.125, bucket: "low", failed: 1, deployments: 8 },
      recoveryTime: { medianMs: 0.75 * H, bucket: "elite", recovered: 1, unrecovered: 0 },
    },
    counts: { deployments: 8, successful: 7, failed: 1, blocked: 1, incidents: 2, excludedChaos: 1, unattributedIncidents: 0 },
    weeks: [
      { week: "2026-W06", start: "2026-02-02", deployments: 2, successful: 2, failed: 0, medianLeadTimeMs: 2 * H, changeFailureRate: 0, medianRecoveryMs: null },
      { week: "2026-W07", start: "2026-02-09", deployments: 0, successful: 0, failed: 0, medianLeadTimeMs: null, changeFailureRate: null, medianRecoveryMs: null, reason: "no deployments" },
    ],
    services: [
      { service: "orders", team: "commerce", deployments: 5, successful: 4, failed: 1, changeFailureRate: 0.2, medianLeadTimeMs: H, medianRecoveryMs: 300_000 },
      { service: "search", team: "web", deployments: 3, successful: 3, failed: 0, changeFailureRate: 0, medianLeadTimeMs: 2 * H, medianRecoveryMs: null },
    ],
    ...over,
  };
}

const team = (name: string, services: string[], members: string[] = []): Team => ({ name, declared: true, members, webhooks: 0, services });

describe("the scope selector", () => {
  it("round-trips all, a team and a service through the select's value, names with colons included", () => {
    for (const scope of [{ kind: "all" } as const, { kind: "team", name: "core" } as const, { kind: "service", name: "a:b" } as const]) expect(parseScope(scopeValue(scope))).toEqual(scope);
    expect(parseScope("nonsense")).toEqual({ kind: "all" });
  });

  it("offers every team and every service, sorted, including a service no team lists", () => {
    const options = scopeOptions([team("web", ["search"]), team("commerce", ["orders", "cart"])], report({ scope: { project: "shop", service: "legacy", services: ["legacy"] } }));
    expect(options).toEqual({ teams: ["commerce", "web"], services: ["cart", "legacy", "orders", "search"] });
  });

  it("tells a report of the scope asked for from the previous one", () => {
    expect(reportMatches(report(), { kind: "all" })).toBe(true);
    expect(reportMatches(report(), { kind: "team", name: "web" })).toBe(false);
    expect(reportMatches(report({ scope: { project: "shop", team: "web", services: ["search"] } }), { kind: "team", name: "web" })).toBe(true);
    expect(reportMatches(report({ scope: { project: "shop", team: "web", services: ["search"] } }), { kind: "all" })).toBe(false);
    expect(reportMatches(report({ scope: { project: "shop", service: "search", services: ["search"] } }), { kind: "service", name: "search" })).toBe(true);
    expect(reportMatches(report({ scope: { project: "shop", service: "search", services: ["search"] } }), { kind: "team", name: "search" })).toBe(false);
    expect(scopeOf(report({ scope: { project: "shop", team: "web", services: ["search"] } }))).toEqual({ kind: "team", name: "web" });
  });
});

describe("formatting", () => {
  it("reads durations in the unit that fits", () => {
    expect([0, 1500, 45_000, 12 * 60_000, 5.5 * H, 26 * H, 80 * H].map(formatDuration)).toEqual(["0 s", "1.5 s", "45 s", "12 min", "5.5 h", "26 h", "3.3 days"]);
  });

  it("reads rates as percentages", () => {
    expect([0, 0.125, 0.5, 1].map(formatRate)).toEqual(["0%", "12.5%", "50%", "100%"]);
  });
});

describe("keyFigures", () => {
  it("gives the four keys in DORA's order with the API's buckets and what each counts", () => {
    expect(keyFigures(report())).toEqual([
      { key: "deploymentFrequency", title: "Deployment frequency", value: "1.8 per week", bucket: "high", detail: "7 successful deployments in 26.6 days" },
      { key: "leadTime", title: "Lead time for changes", value: "26 h", bucket: "high", detail: "median of 9 changes; 1 change ignored (commit time after the deployment)" },
      { key: "changeFailureRate", title: "Change failure rate", value: "12.5%", bucket: "low", detail: "1 of 8 deployments failed" },
      { key: "recoveryTime", title: "Time to restore", value: "45 min", bucket: "elite", detail: "median of 1 recovered failure" },
    ]);
  });

  it("reads frequency per day from one a day up", () => {
    const r = report();
    r.summary.deploymentFrequency = { perDay: 3.5, perWeek: 24.5, deployments: 98, bucket: "elite" };
    expect(keyFigures(r)[0]?.value).toBe("3.5 per day");
  });

  it("shows no value and no bucket, with the API's reason, where a key has no data", () => {
    const r = report();
    r.summary.recoveryTime = { medianMs: null, bucket: null, recovered: 0, unrecovered: 2, reason: "no failed deployment has recovered yet" };
    r.summary.leadTime = { medianMs: null, bucket: null, changes: 0, skewed: 0, withoutCommit: 3, reason: "no deployed change has a known commit time" };
    const [, lead, , recovery] = keyFigures(r);
    expect(recovery).toMatchObject({ value: undefined, bucket: null, detail: "no failed deployment has recovered yet" });
    expect(lead).toMatchObject({ value: undefined, bucket: null, detail: "no deployed change has a known commit time" });
    expect(bucketLabel(null)).toBe("No bucket");
    expect(bucketLabel("elite")).toBe("Elite");
  });
});

describe("weeklySeries", () => {
  it("puts each week at its Monday (UTC seconds) and keeps weeks without a figure as gaps", () => {
    const s = weeklySeries(report().weeks);
    expect(s.times).toEqual([Date.UTC(2026, 1, 2) / 1000, Date.UTC(2026, 1, 9) / 1000]);
    expect(s.successful).toEqual([2, 0]);
    expect(s.failed).toEqual([0, 0]);
    expect(s.leadTimeMs).toEqual([2 * H, null]);
    expect(s.changeFailureRate).toEqual([0, null]);
    expect(s.recoveryMs).toEqual([null, null]);
  });

  it("gives a single week the week before as a gap, so the time axis spans weeks", () => {
    const [only] = report().weeks;
    const s = weeklySeries([only!]);
    expect(s.times).toEqual([Date.UTC(2026, 0, 26) / 1000, Date.UTC(2026, 1, 2) / 1000]);
    expect(s.successful).toEqual([null, 2]);
    expect(s.leadTimeMs).toEqual([null, 2 * H]);
    expect(weeklySeries([]).times).toEqual([]);
  });
});

describe("reportDays", () => {
  it("counts the days the rates are over from where the data starts, one at least", () => {
    expect(reportDays(report())).toBeCloseTo(26.583, 3);
    expect(reportDays({ window: { days: 90, from: "2026-03-01T00:00:00.000Z", to: "2026-03-01T01:00:00.000Z" } })).toBe(1);
    expect(keyFigures(report({ window: { days: 90, from: "2026-03-01T00:00:00.000Z", to: "2026-03-01T01:00:00.000Z" } }))[0]?.detail).toBe("7 successful deployments in 1 day");
    expect([plural(1, "incident"), plural(0, "incident")]).toEqual(["1 incident", "0 incidents"]);
  });
});

describe("teamTotals", () => {
  it("sums each team's services' deployments and failures, and gives no rate without deployments", () => {
    const r = report();
    expect(teamTotals([team("commerce", ["orders"], ["ana", "bo"]), team("web", ["search"]), team("data", [])], r.services)).toEqual([
      { team: "commerce", services: 1, members: 2, deployments: 5, failed: 1, changeFailureRate: 0.2 },
      { team: "web", services: 1, members: 0, deployments: 3, failed: 0, changeFailureRate: 0 },
      { team: "data", services: 0, members: 0, deployments: 0, failed: 0, changeFailureRate: null },
    ]);
  });
});
