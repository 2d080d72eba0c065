import type { EventKind, KeelsonEvent } from "@keelson/protocol";
import { describe, expect, it } from "vitest";
import { chaosExperimentAt, humanDuration, notificationOf } from "./notification-events.js";

let seq = 0;
const event = (kind: EventKind, details: Record<string, unknown>, extra: Partial<KeelsonEvent> = {}): KeelsonEvent => ({
  seq: ++seq,
  at: "2026-11-27T10:00:00.000Z",
  project: "shop",
  kind,
  actor: "reconciler",
  subject: "service/orders",
  details,
  ...extra,
});

/** The failed canary analysis as delivery/rollout.ts records it in rollout.failed. */
const canaryFailure = {
  rollout: "ro-1a2b3c4d",
  strategy: "canary",
  from: "r-000000000001",
  to: "r-000000000002",
  commit: "0123456789abcdef0123",
  why: "canary analysis failed: error ratio: canary 5.10% (51/1000) vs baseline 0.20% (2/1000); evidence 10^3.1, fails at 10^2.6",
  rolledBackTo: "r-000000000001",
  analysis: {
    step: 1,
    phase: "Failed",
    reason: "error ratio: canary 5.10% (51/1000) vs baseline 0.20% (2/1000); evidence 10^3.1, fails at 10^2.6",
    evidence: {
      at: 0,
      elapsedMs: 60_000,
      looks: 6,
      canary: { requests: 1000, errors: 51, errorRatio: 0.051, p50: 0.01, p99: 0.2 },
      baseline: { requests: 1000, errors: 2, errorRatio: 0.002, p50: 0.01, p99: 0.19 },
      checks: [
        { name: "error ratio", status: "fail", detail: "canary 5.10% (51/1000) vs baseline 0.20% (2/1000); evidence 10^3.1, fails at 10^2.6" },
        { name: "latency", status: "watching", detail: "p50 10 ms vs 10 ms" },
      ],
    },
  },
};

describe("notificationOf", () => {
  it("tells deploys started and succeeded, by whom, from what, and how long they took", () => {
    expect(notificationOf(event("rollout.started", { rollout: "ro-1", strategy: "canary", from: "r-000000000001", to: "r-000000000002", commit: "abc" }, { actor: "user:ana" }))).toEqual({
      kind: "deploy.started",
      service: "orders",
      release: "r-000000000002",
      commit: "abc",
      actor: "user:ana",
      summary: "orders: deploying r-000000000002 (canary from r-000000000001) by user:ana",
    });
    expect(notificationOf(event("rollout.started", { strategy: "rolling", to: "r-000000000001" }, { actor: "user:ana" }))?.summary).toBe("orders: deploying r-000000000001 (first release) by user:ana");
    expect(notificationOf(event("rollout.succeeded", { strategy: "blueGreen", from: "r-000000000001", to: "r-000000000002", durationMs: 123_000 }))).toMatchObject({
      kind: "deploy.succeeded",
      summary: "orders: r-000000000002 deployed (blueGreen from r-000000000001, 2 min 3 s)",
    });
    expect(notificationOf(event("rollback.started", { strategy: "rollback", from: "r-000000000002", to: "r-000000000001", warm: true }, { actor: "user:bo" }))?.summary).toBe(
      "orders: rolling back to r-000000000001 from r-000000000002 by user:bo",
    );
    expect(notificationOf(event("rollback.succeeded", { strategy: "rollback", to: "r-000000000001", durationMs: 900 }))).toMatchObject({ kind: "deploy.succeeded", summary: "orders: rolled back to r-000000000001 (900 ms)" });
  });

  it("tells a canary rolled back by its analysis with the evidence in a few words, and falls back to deploy.failed", () => {
    expect(notificationOf(event("rollout.failed", canaryFailure))).toEqual({
      kind: "canary.rolled-back",
      fallback: "deploy.failed",
      service: "orders",
      release: "r-000000000002",
      commit: "0123456789abcdef0123",
      actor: "reconciler",
      summary: "orders: canary r-000000000002 rolled back to r-000000000001: error ratio 5.1% vs 0.2% (SPRT)",
    });
    // A canary that crashed (no analysis) is a rolled-back canary too, with the reason.
    const crashed = notificationOf(event("rollout.failed", { strategy: "canary", to: "r-2", rolledBackTo: "r-1", why: "replica orders-r-2-0 exited 3 times before becoming ready (last exit code 1)\nlast log lines…" }));
    expect(crashed).toMatchObject({ kind: "canary.rolled-back", summary: "orders: canary r-2 rolled back to r-1: replica orders-r-2-0 exited 3 times before becoming ready (last exit code 1)" });
  });

  it("tells failed deploys: rolled back, without anything to go back to, a failed rollback, a failed pipeline", () => {
    expect(notificationOf(event("rollout.failed", { strategy: "rolling", from: "r-1", to: "r-2", why: "not ready within 5 s (services.orders.startTimeout)", rolledBackTo: "r-1" }))?.summary).toBe(
      "orders: deploy of r-2 failed, rolled back to r-1: not ready within 5 s (services.orders.startTimeout)",
    );
    expect(notificationOf(event("rollout.failed", { strategy: "rolling", to: "r-1", why: "exited" }))).toMatchObject({ kind: "deploy.failed", summary: "orders: deploy of r-1 failed: exited" });
    expect(notificationOf(event("rollout.failed", { strategy: "rollback", to: "r-1", why: "exited" }))?.summary).toBe("orders: rollback to r-1 failed: exited");
    const pipeline = event("pipeline.failed", { run: "run-20261127-100000-abcdef", release: "r-3", message: 'services.orders: stage "test" failed (exit code 1)\n  at …', commit: "feedbeef" }, { actor: "user:ana" });
    expect(notificationOf(pipeline)).toEqual({
      kind: "deploy.failed",
      service: "orders",
      release: "r-3",
      commit: "feedbeef",
      actor: "user:ana",
      summary: 'orders: pipeline run-20261127-100000-abcdef failed, no release was made: services.orders: stage "test" failed (exit code 1)',
    });
    // Stopped by the security gate: told once, as security.blocked.
    expect(notificationOf(pipeline, { securityBlocked: true })).toBeUndefined();
  });

  it("tells a release blocked by the security gate with its blocking findings counted", () => {
    const blocked = notificationOf(event("security.blocked", { run: "run-1", release: "r-4", message: "…", total: 3, blocking: 2, byKind: { secret: 1, vulnerability: 2 }, findings: [] }));
    expect(blocked).toMatchObject({ kind: "security.blocked", fallback: "deploy.failed", release: "r-4", summary: "orders: security gate blocked r-4: 2 blocking findings (1 secret, 2 vulnerabilities)" });
  });

  it("tells incidents opened and resolved with the SLO and its burn rate", () => {
    const opened = event(
      "incident.opened",
      {
        key: "orders/availability",
        service: "orders",
        slo: "availability",
        objective: "availability",
        target: 0.999,
        sloWindow: "30d",
        severity: "page",
        alerts: [{ severity: "page", burnRateThreshold: 14.4, longWindow: "1h", shortWindow: "5m", longBurnRate: 15.23, shortBurnRate: 20 }],
      },
      { actor: "telemetry" },
    );
    expect(notificationOf(opened)).toMatchObject({ kind: "incident.opened", service: "orders", summary: "orders: incident opened (page): SLO availability (availability 99.9% over 30d), burning its error budget 15.2× too fast over 1h" });
    expect(notificationOf(event("incident.resolved", { incident: opened.seq, service: "orders", slo: "availability", durationMs: 720_000 }))?.summary).toBe(
      "orders: incident resolved after 12 min: SLO availability is back within its burn-rate thresholds",
    );
  });

  it("tells nothing of the rest of the log", () => {
    for (const kind of ["rollout.aborted", "rollout.step", "replica.exited", "chaos.injected", "pipeline.succeeded", "security.scanned", "deploy.refused"] as const) {
      expect(notificationOf(event(kind, {})), kind).toBeUndefined();
    }
  });
});

describe("chaosExperimentAt", () => {
  const t = (s: number) => new Date(Date.parse("2026-11-27T10:00:00.000Z") + s * 1000).toISOString();
  const chaos = [
    event("chaos.started", { experiment: "chaos-1", kind: "error", service: "orders", durationMs: 60_000 }, { at: t(0), subject: "service/orders" }),
    event("chaos.started", { experiment: "chaos-2", kind: "kill", durationMs: 600_000 }, { at: t(100), subject: "services/*" }),
    event("chaos.stopped", { experiment: "chaos-2" }, { at: t(130), subject: "services/*" }),
  ];

  it("names the experiment running on the service (or on every service) at that time", () => {
    expect(chaosExperimentAt(chaos, "orders", Date.parse(t(30)), 0)).toBe("chaos-1");
    expect(chaosExperimentAt(chaos, "search", Date.parse(t(30)), 0)).toBeUndefined();
    expect(chaosExperimentAt(chaos, "orders", Date.parse(t(70)), 0)).toBeUndefined();
    expect(chaosExperimentAt(chaos, "orders", Date.parse(t(70)), 30_000)).toBe("chaos-1");
    expect(chaosExperimentAt(chaos, "search", Date.parse(t(120)), 0)).toBe("chaos-2");
    // Stopped early: over at its stop, not at its planned end.
    expect(chaosExperimentAt(chaos, "search", Date.parse(t(140)), 0)).toBeUndefined();
  });
});

describe("humanDuration", () => {
  it("says durations the way people do", () => {
    expect([850, 12_000, 60_000, 184_000, 3_600_000, 7_500_000].map(humanDuration)).toEqual(["850 ms", "12 s", "1 min", "3 min 4 s", "1 h", "2 h 5 min"]);
  });
});
