// DORA metrics from made-up event logs written the way the rollout controller, the incident
// monitor and the chaos controller write them: exact numbers for every rule in the definitions
// (what counts as a deployment, a failure, a change, a recovery) and the edges (empty windows,
// clock skew, chaos, blocked rollouts, week boundaries).
import type { EventKind, KeelsonEvent } from "@keelson/protocol";
import { beforeEach, describe, expect, it } from "vitest";
import { doraCsv } from "./dora-csv.js";
import { changeFailureBucket, frequencyBucket, leadTimeBucket, median, recoveryBucket } from "./dora-buckets.js";
import { computeDora, foldDoraHistory, isoWeek, type DoraChangeSet, type DoraOptions, type DoraReport } from "./dora.js";

const H = 3_600_000;
const D = 24 * H;
const SHA = (c: string) => c.repeat(40);

let seq = 0;
let events: KeelsonEvent[] = [];

function ev(at: string, kind: EventKind, subject: string, details: Record<string, unknown>, actor = "reconciler"): void {
  events.push({ seq: ++seq, at, project: "shop", kind, actor, subject, details });
}

/** A release built from a commit, as the pipeline records it. */
function release(service: string, id: string, at: string, commit?: { sha: string; time: string }): void {
  ev(at, "release.created", `service/${service}`, { release: id, run: "run-1", source: commit ? "commit" : "worktree", ...(commit ? { commit: commit.sha, commitTime: commit.time } : {}) }, "cli");
}

interface RolloutScript {
  id: string;
  service: string;
  from?: string;
  to: string;
  strategy?: "rolling" | "canary" | "blueGreen";
  started: string;
  /** Canary: traffic steps (weight at a time). */
  weights?: Array<[string, number]>;
  /** Blue-green: the switch. */
  switchAt?: string;
  /** Rolling: when the first new replica served (on the terminal event). */
  servedAt?: string;
  end: [string, "succeeded" | "failed" | "aborted"];
  why?: string;
}

function rollout(r: RolloutScript): void {
  const base = { rollout: r.id, strategy: r.strategy ?? "rolling", from: r.from, to: r.to };
  ev(r.started, "rollout.started", `service/${r.service}`, base, "user:ana");
  for (const [at, weight] of r.weights ?? []) ev(at, "rollout.step", `service/${r.service}`, { ...base, action: "setWeight", weight });
  if (r.switchAt) ev(r.switchAt, "rollout.step", `service/${r.service}`, { ...base, action: "switch", weight: 100 });
  const served = r.servedAt ? { servedAt: r.servedAt } : {};
  const [at, how] = r.end;
  if (how === "succeeded") ev(at, "rollout.succeeded", `service/${r.service}`, { ...base, ...served, durationMs: 1 });
  else {
    if (how === "aborted") ev(at, "rollout.aborted", `service/${r.service}`, base, "user:ana");
    ev(at, "rollout.failed", `service/${r.service}`, { ...base, ...served, why: r.why ?? "canary analysis failed", ...(r.from ? { rolledBackTo: r.from } : {}) });
  }
}

function incident(service: string, opened: string, resolved?: string): void {
  const id = seq + 1;
  ev(opened, "incident.opened", `service/${service}`, { key: `${service}/avail/availability`, service, slo: "avail", objective: "availability", severity: "page" }, "telemetry");
  if (resolved) ev(resolved, "incident.resolved", `service/${service}`, { key: `${service}/avail/availability`, incident: id, service, openedAt: opened }, "telemetry");
}

const SERVICES: DoraOptions["services"] = [
  { name: "orders", team: "commerce" },
  { name: "search", team: "web" },
];
const NOW = Date.parse("2026-03-01T00:00:00Z"); // a Sunday

function report(options: Partial<DoraOptions> = {}, changes: DoraChangeSet[] = []): DoraReport {
  return computeDora(foldDoraHistory({ events, changes }), { project: "shop", services: SERVICES, now: NOW, windowMs: 28 * D, ...options });
}

beforeEach(() => {
  seq = 0;
  events = [];
});

describe("DORA: deployments and lead time", () => {
  it("counts successful rollouts, measures lead time from the head commit's author time to 100% of traffic", async () => {
    release("orders", "r-1", "2026-02-02T08:00:00Z", { sha: SHA("a"), time: "2026-02-01T10:00:00Z" });
    rollout({ id: "ro-1", service: "orders", to: "r-1", started: "2026-02-02T09:00:00Z", servedAt: "2026-02-02T09:00:30Z", end: ["2026-02-02T10:00:00Z", "succeeded"] });
    release("orders", "r-2", "2026-02-09T08:00:00Z", { sha: SHA("b"), time: "2026-02-09T06:00:00Z" });
    rollout({ id: "ro-2", service: "orders", from: "r-1", to: "r-2", started: "2026-02-09T09:00:00Z", servedAt: "2026-02-09T09:01:00Z", end: ["2026-02-09T10:00:00Z", "succeeded"] });
    const r = report();
    expect(r.counts).toMatchObject({ deployments: 2, successful: 2, failed: 0, blocked: 0 });
    // 24 h and 4 h: median 14 h.
    expect(r.summary.leadTime).toEqual({ medianMs: 14 * H, bucket: "elite", changes: 2, skewed: 0, withoutCommit: 0 });
    expect(r.summary.changeFailureRate).toEqual({ value: 0, bucket: "elite", failed: 0, deployments: 2 });
    expect(r.summary.recoveryTime).toMatchObject({ medianMs: null, bucket: null, reason: "no failed deployments in the window" });
    // Data starts with the first event (Feb 2, 08:00): 26 2/3 days; two deployments.
    expect(r.window.from).toBe("2026-02-02T08:00:00.000Z");
    expect(r.summary.deploymentFrequency).toMatchObject({ deployments: 2, perDay: Math.round((2 / (26 + 2 / 3)) * 1e4) / 1e4, bucket: "medium" });
    expect(r.deployments.map((d) => [d.id, d.previousCommit, d.leadTimeMs, d.changeSource])).toEqual([
      ["ro-1", undefined, 24 * H, "head"],
      ["ro-2", SHA("a"), 4 * H, "head"],
    ]);
  });

  it("takes the commit and its time from the rollout events when they carry them (no release.created needed)", () => {
    ev("2026-02-10T09:00:00Z", "rollout.started", "service/orders", { rollout: "ro-9", strategy: "rolling", to: "r-9", commit: SHA("c"), commitTime: "2026-02-10T07:00:00Z" });
    ev("2026-02-10T09:30:00Z", "rollout.succeeded", "service/orders", { rollout: "ro-9", strategy: "rolling", to: "r-9", commit: SHA("c"), commitTime: "2026-02-10T07:00:00Z", servedAt: "2026-02-10T09:10:00Z" });
    expect(report().deployments[0]).toMatchObject({ commit: SHA("c"), leadTimeMs: 2.5 * H, servedAt: "2026-02-10T09:10:00.000Z", completedAt: "2026-02-10T09:30:00.000Z" });
  });

  it("ends lead time at the blue-green switch and the canary's promotion to all traffic, not at the end of the warm window", () => {
    release("orders", "r-1", "2026-02-02T00:00:00Z", { sha: SHA("a"), time: "2026-02-01T00:00:00Z" });
    rollout({ id: "ro-1", service: "orders", from: "r-0", to: "r-1", strategy: "blueGreen", started: "2026-02-02T00:00:00Z", switchAt: "2026-02-02T01:00:00Z", end: ["2026-02-02T01:10:00Z", "succeeded"] });
    release("search", "s-1", "2026-02-03T00:00:00Z", { sha: SHA("b"), time: "2026-02-02T00:00:00Z" });
    ev("2026-02-03T00:00:00Z", "rollout.started", "service/search", { rollout: "ro-2", strategy: "canary", from: "s-0", to: "s-1" });
    ev("2026-02-03T00:05:00Z", "rollout.step", "service/search", { rollout: "ro-2", action: "setWeight", weight: 0 });
    ev("2026-02-03T00:10:00Z", "rollout.step", "service/search", { rollout: "ro-2", action: "setWeight", weight: 20 });
    ev("2026-02-03T02:00:00Z", "rollout.step", "service/search", { rollout: "ro-2", action: "promoted to all traffic", weight: 100 });
    ev("2026-02-03T02:01:00Z", "rollout.succeeded", "service/search", { rollout: "ro-2", strategy: "canary", from: "s-0", to: "s-1" });
    const [bg, canary] = report().deployments;
    expect(bg).toMatchObject({ servedAt: "2026-02-02T01:00:00.000Z", completedAt: "2026-02-02T01:00:00.000Z", endedAt: "2026-02-02T01:10:00.000Z", leadTimeMs: 25 * H });
    expect(canary).toMatchObject({ servedAt: "2026-02-03T00:10:00.000Z", completedAt: "2026-02-03T02:00:00.000Z", leadTimeMs: 26 * H });
  });

  it("uses the imported change set instead of the head commit; ignores and counts commits authored after the deployment", () => {
    release("orders", "r-1", "2026-02-02T00:00:00Z", { sha: SHA("a"), time: "2026-02-01T00:00:00Z" });
    rollout({ id: "ro-1", service: "orders", to: "r-1", started: "2026-02-02T00:00:00Z", servedAt: "2026-02-02T00:00:00Z", end: ["2026-02-02T12:00:00Z", "succeeded"] });
    const changes: DoraChangeSet[] = [
      {
        deployment: "ro-1",
        service: "orders",
        commits: [
          { sha: SHA("1"), authorTime: "2026-01-30T12:00:00Z" }, // 3 days
          { sha: SHA("2"), authorTime: "2026-02-02T06:00:00Z" }, // 6 h
          { sha: SHA("3"), authorTime: "2026-02-02T11:00:00Z" }, // 1 h
          { sha: SHA("4"), authorTime: "2026-02-02T13:00:00Z" }, // after the deployment: skew
        ],
      },
    ];
    const r = report({}, changes);
    expect(r.summary.leadTime).toEqual({ medianMs: 6 * H, bucket: "elite", changes: 3, skewed: 1, withoutCommit: 0 });
    expect(r.deployments[0]).toMatchObject({ changes: 3, skewed: 1, changeSource: "imported", leadTimeMs: 6 * H });
  });

  it("a deployment from a working tree outside git has no lead time and is counted", () => {
    release("orders", "r-1", "2026-02-02T00:00:00Z");
    rollout({ id: "ro-1", service: "orders", to: "r-1", started: "2026-02-02T00:00:00Z", servedAt: "2026-02-02T00:00:00Z", end: ["2026-02-02T00:01:00Z", "succeeded"] });
    const r = report();
    expect(r.summary.leadTime).toEqual({ medianMs: null, bucket: null, changes: 0, skewed: 0, withoutCommit: 1, reason: "no deployed change has a known commit time" });
    expect(r.summary.deploymentFrequency.deployments).toBe(1);
  });
});

describe("DORA: failures and recovery", () => {
  beforeEach(() => {
    release("orders", "r-1", "2026-02-02T00:00:00Z", { sha: SHA("a"), time: "2026-02-01T00:00:00Z" });
    rollout({ id: "ro-1", service: "orders", to: "r-1", started: "2026-02-02T00:00:00Z", servedAt: "2026-02-02T00:00:00Z", end: ["2026-02-02T00:10:00Z", "succeeded"] });
  });

  it("a canary rolled back after it took traffic is a failed deployment; recovery runs from its first weight to the rollback", () => {
    rollout({ id: "ro-2", service: "orders", from: "r-1", to: "r-2", strategy: "canary", started: "2026-02-03T10:00:00Z", weights: [["2026-02-03T10:02:00Z", 20]], end: ["2026-02-03T10:05:30Z", "failed"], why: "canary analysis failed: error ratio" });
    const r = report();
    expect(r.counts).toMatchObject({ deployments: 2, successful: 1, failed: 1, blocked: 0 });
    expect(r.summary.changeFailureRate).toEqual({ value: 0.5, bucket: "low", failed: 1, deployments: 2 });
    expect(r.summary.recoveryTime).toEqual({ medianMs: 210_000, bucket: "elite", recovered: 1, unrecovered: 0 });
    expect(r.deployments[1]).toMatchObject({ id: "ro-2", rollout: "failed", failed: true, causes: ["rollout"], reason: "canary analysis failed: error ratio", recovery: { from: "2026-02-03T10:02:00.000Z", to: "2026-02-03T10:05:30.000Z", ms: 210_000 } });
    // A failed deployment brings no change: lead time is the successful one's only.
    expect(r.summary.leadTime.changes).toBe(1);
  });

  it("a rollout that failed before its release took traffic is blocked, not a deployment (a canary at weight 0, a rolling set never ready)", () => {
    rollout({ id: "ro-2", service: "orders", from: "r-1", to: "r-2", strategy: "canary", started: "2026-02-03T10:00:00Z", weights: [["2026-02-03T10:01:00Z", 0]], end: ["2026-02-03T10:05:00Z", "failed"], why: "not ready within 30 s" });
    rollout({ id: "ro-3", service: "orders", from: "r-1", to: "r-3", started: "2026-02-04T10:00:00Z", end: ["2026-02-04T10:05:00Z", "failed"], why: "replica exited 3 times before becoming ready" });
    const r = report();
    expect(r.counts).toMatchObject({ deployments: 1, failed: 0, blocked: 2 });
    expect(r.summary.changeFailureRate.value).toBe(0);
  });

  it("an aborted canary that served counts as failed (aborted); a rolling rollout failing after a replica served counts too", () => {
    rollout({ id: "ro-2", service: "orders", from: "r-1", to: "r-2", strategy: "canary", started: "2026-02-03T10:00:00Z", weights: [["2026-02-03T10:01:00Z", 10]], end: ["2026-02-03T10:11:00Z", "aborted"], why: "aborted by user:ana" });
    rollout({ id: "ro-3", service: "orders", from: "r-1", to: "r-3", started: "2026-02-04T10:00:00Z", servedAt: "2026-02-04T10:00:20Z", end: ["2026-02-04T10:00:50Z", "failed"], why: "replica orders-3 exited 3 times" });
    const r = report();
    expect(r.deployments.slice(1).map((d) => [d.id, d.rollout, d.causes, d.recovery?.ms])).toEqual([
      ["ro-2", "aborted", ["aborted"], 10 * 60_000],
      ["ro-3", "failed", ["rollout"], 30_000],
    ]);
    expect(r.summary.recoveryTime.medianMs).toBe(315_000);
  });

  it("an incident is put down to the deployment current when it opened; recovery runs from opening to resolution", () => {
    rollout({ id: "ro-2", service: "orders", from: "r-1", to: "r-2", started: "2026-02-05T10:00:00Z", servedAt: "2026-02-05T10:00:00Z", end: ["2026-02-05T10:01:00Z", "succeeded"] });
    incident("orders", "2026-02-05T12:00:00Z", "2026-02-05T15:30:00Z");
    // An incident of a service never deployed through Keelson has no deployment to blame.
    incident("search", "2026-02-06T00:00:00Z", "2026-02-06T01:00:00Z");
    const r = report();
    expect(r.deployments.map((d) => [d.id, d.failed, d.causes])).toEqual([
      ["ro-1", false, []],
      ["ro-2", true, ["incident"]],
    ]);
    expect(r.deployments[1]?.recovery).toEqual({ from: "2026-02-05T12:00:00.000Z", to: "2026-02-05T15:30:00.000Z", ms: 3.5 * H });
    expect(r.summary.recoveryTime).toMatchObject({ medianMs: 3.5 * H, bucket: "high" });
    expect(r.counts).toMatchObject({ incidents: 2, excludedChaos: 0, unattributedIncidents: 1 });
  });

  it("incidents that overlap are one outage, restored when the last of them resolves", () => {
    incident("orders", "2026-02-05T12:00:00Z", "2026-02-05T13:00:00Z");
    incident("orders", "2026-02-05T12:30:00Z", "2026-02-05T14:00:00Z");
    incident("orders", "2026-02-05T14:00:00Z", "2026-02-05T14:30:00Z"); // opens as the last one resolves: the same outage
    incident("orders", "2026-02-06T00:00:00Z", "2026-02-06T05:00:00Z"); // later: not part of it
    expect(report().deployments[0]?.recovery).toEqual({ from: "2026-02-05T12:00:00.000Z", to: "2026-02-05T14:30:00.000Z", ms: 2.5 * H });
  });

  it("an unresolved incident leaves its deployment failed and unrecovered", () => {
    incident("orders", "2026-02-05T12:00:00Z");
    const r = report();
    expect(r.summary.changeFailureRate).toMatchObject({ value: 1, failed: 1 });
    expect(r.summary.recoveryTime).toEqual({ medianMs: null, bucket: null, recovered: 0, unrecovered: 1, reason: "no failed deployment has recovered yet" });
  });

  it("a manual rollback of the current release fails it; recovery runs from the linked incident's opening to the rollback's completion", () => {
    rollout({ id: "ro-2", service: "orders", from: "r-1", to: "r-2", started: "2026-02-05T10:00:00Z", servedAt: "2026-02-05T10:00:00Z", end: ["2026-02-05T10:01:00Z", "succeeded"] });
    incident("orders", "2026-02-05T11:00:00Z", "2026-02-05T13:00:00Z");
    ev("2026-02-05T11:20:00Z", "rollback.started", "service/orders", { rollout: "rb-1", strategy: "rollback", from: "r-2", to: "r-1", warm: false }, "user:ana");
    ev("2026-02-05T11:25:00Z", "rollback.succeeded", "service/orders", { rollout: "rb-1", strategy: "rollback", from: "r-2", to: "r-1" });
    // After the rollback, r-1's deployment is current again: a later incident is put down to it.
    incident("orders", "2026-02-06T11:00:00Z", "2026-02-06T11:30:00Z");
    const r = report();
    expect(r.deployments.map((d) => [d.id, d.causes, d.recovery?.ms])).toEqual([
      ["ro-1", ["incident"], 30 * 60_000],
      ["ro-2", ["incident", "rollback"], 25 * 60_000],
    ]);
    expect(r.deployments[1]?.recovery).toEqual({ from: "2026-02-05T11:00:00.000Z", to: "2026-02-05T11:25:00.000Z", ms: 25 * 60_000 });
  });

  it("a manual rollback without an incident runs from the request; one during a blue-green warm window ends that rollout as rolled back", () => {
    rollout({ id: "ro-2", service: "orders", from: "r-1", to: "r-2", started: "2026-02-05T10:00:00Z", servedAt: "2026-02-05T10:00:00Z", end: ["2026-02-05T10:01:00Z", "succeeded"] });
    ev("2026-02-05T12:00:00Z", "rollback.started", "service/orders", { rollout: "rb-1", strategy: "rollback", from: "r-2", to: "r-1", warm: false }, "user:ana");
    ev("2026-02-05T12:02:00Z", "rollback.succeeded", "service/orders", { rollout: "rb-1", strategy: "rollback", from: "r-2", to: "r-1" });
    ev("2026-02-06T10:00:00Z", "rollout.started", "service/orders", { rollout: "ro-3", strategy: "blueGreen", from: "r-1", to: "r-3" });
    ev("2026-02-06T10:02:00Z", "rollout.step", "service/orders", { rollout: "ro-3", action: "switch", weight: 100 });
    ev("2026-02-06T10:04:00Z", "rollback.started", "service/orders", { rollout: "rb-2", strategy: "rollback", from: "r-3", to: "r-1", warm: true, replaced: "ro-3", why: "checkout is broken" }, "user:ana");
    ev("2026-02-06T10:04:00Z", "rollback.succeeded", "service/orders", { rollout: "rb-2", strategy: "rollback", from: "r-3", to: "r-1" });
    const r = report();
    expect(r.deployments.map((d) => [d.id, d.rollout, d.causes, d.reason, d.recovery?.ms])).toEqual([
      ["ro-1", "succeeded", [], undefined, undefined],
      ["ro-2", "succeeded", ["rollback"], "rolled back by user:ana", 2 * 60_000],
      ["ro-3", "rolled-back", ["rollback"], "checkout is broken", 0],
    ]);
    // A rolled-back blue-green counts as a deployment (it served) but not as a successful one.
    expect(r.counts).toMatchObject({ deployments: 3, successful: 2, failed: 2 });
  });

  it("a rollback of a rollout that never took traffic leaves it blocked", () => {
    ev("2026-02-06T10:00:00Z", "rollout.started", "service/orders", { rollout: "ro-3", strategy: "canary", from: "r-1", to: "r-3" });
    ev("2026-02-06T10:04:00Z", "rollback.started", "service/orders", { rollout: "rb-2", strategy: "rollback", from: "r-3", to: "r-1", warm: true, replaced: "ro-3", interrupted: "ro-3" }, "user:ana");
    const r = report();
    expect(r.counts).toMatchObject({ deployments: 1, failed: 0, blocked: 1 });
  });

  it("leaves out incidents opened while a chaos experiment targeted the service (or every service) and counts them", () => {
    ev("2026-02-05T10:00:00Z", "chaos.started", "service/orders", { experiment: "chaos-1", kind: "error", service: "orders", durationMs: H });
    incident("orders", "2026-02-05T10:30:00Z", "2026-02-05T11:30:00Z"); // during: excluded
    ev("2026-02-05T10:40:00Z", "chaos.stopped", "service/orders", { experiment: "chaos-1", kind: "error", state: "stopped" });
    incident("orders", "2026-02-05T10:50:00Z", "2026-02-05T11:00:00Z"); // stopped early: counted
    ev("2026-02-06T10:00:00Z", "chaos.started", "services/*", { experiment: "chaos-2", kind: "kill", durationMs: H });
    incident("orders", "2026-02-06T10:59:00Z", "2026-02-06T11:30:00Z"); // every service: excluded
    incident("orders", "2026-02-06T11:00:00Z", "2026-02-06T11:20:00Z"); // its duration is over: counted
    ev("2026-02-06T12:00:00Z", "chaos.started", "service/search", { experiment: "chaos-3", kind: "error", service: "search", durationMs: H });
    incident("orders", "2026-02-06T12:30:00Z", "2026-02-06T12:40:00Z"); // another service's chaos: counted
    const r = report();
    expect(r.counts).toMatchObject({ incidents: 5, excludedChaos: 2, unattributedIncidents: 0 });
    expect(r.deployments[0]?.incidents).toHaveLength(3);
    // Several incidents: the first outage counts, from its opening until service was restored.
    expect(r.deployments[0]?.recovery).toEqual({ from: "2026-02-05T10:50:00.000Z", to: "2026-02-05T11:00:00.000Z", ms: 10 * 60_000 });
  });
});

describe("DORA: windows, scopes and weeks", () => {
  it("a window without deployments gives no data with a reason, never 0", () => {
    release("orders", "r-1", "2025-12-01T00:00:00Z", { sha: SHA("a"), time: "2025-12-01T00:00:00Z" });
    rollout({ id: "ro-1", service: "orders", to: "r-1", started: "2025-12-01T00:00:00Z", servedAt: "2025-12-01T00:00:00Z", end: ["2025-12-01T00:01:00Z", "succeeded"] });
    const r = report();
    expect(r.summary).toEqual({
      deploymentFrequency: { perDay: null, perWeek: null, deployments: 0, bucket: null, reason: "no deployments in the window" },
      leadTime: { medianMs: null, bucket: null, changes: 0, skewed: 0, withoutCommit: 0, reason: "no successful deployments in the window" },
      changeFailureRate: { value: null, bucket: null, failed: 0, deployments: 0, reason: "no deployments in the window" },
      recoveryTime: { medianMs: null, bucket: null, recovered: 0, unrecovered: 0, reason: "no deployments in the window" },
    });
    expect(r.weeks.every((w) => w.deployments === 0 && w.changeFailureRate === null && w.medianLeadTimeMs === null && w.reason === "no deployments")).toBe(true);
    expect(r.deployments).toEqual([]);
    // Nothing at all is no data too.
    events = [];
    expect(report().summary.changeFailureRate.value).toBeNull();
  });

  it("puts a deployment in the ISO week (UTC) it ended in: Sunday 23:59:59 in one week, Monday 00:00 in the next", () => {
    for (const [id, at] of [
      ["ro-1", "2026-02-15T23:59:59Z"],
      ["ro-2", "2026-02-16T00:00:00Z"],
      ["ro-3", "2026-02-16T12:00:00Z"],
    ] as const) {
      ev(at, "rollout.started", "service/orders", { rollout: id, strategy: "rolling", to: `r-${id}`, commit: SHA("a"), commitTime: "2026-02-15T20:00:00Z" });
      ev(at, "rollout.succeeded", "service/orders", { rollout: id, strategy: "rolling", to: `r-${id}`, commit: SHA("a"), commitTime: "2026-02-15T20:00:00Z" });
    }
    const r = report({ dataSince: NOW - 28 * D });
    const byWeek = Object.fromEntries(r.weeks.map((w) => [w.week, [w.start, w.deployments, w.medianLeadTimeMs]]));
    expect(byWeek).toEqual({
      "2026-W05": ["2026-01-26", 0, null],
      "2026-W06": ["2026-02-02", 0, null],
      "2026-W07": ["2026-02-09", 1, 4 * H - 1000],
      "2026-W08": ["2026-02-16", 2, 10 * H],
      "2026-W09": ["2026-02-23", 0, null],
    });
    expect(report({ dataSince: NOW - 28 * D, now: Date.parse("2026-02-16T00:00:00Z") }).weeks.at(-1)).toMatchObject({ week: "2026-W08", deployments: 1 });
  });

  it("numbers ISO weeks across a year boundary", () => {
    expect(isoWeek(Date.parse("2024-12-30T00:00:00Z"))).toEqual({ week: "2025-W01", monday: Date.parse("2024-12-30T00:00:00Z") });
    expect(isoWeek(Date.parse("2027-01-03T23:00:00Z")).week).toBe("2026-W53");
    expect(isoWeek(Date.parse("2026-01-01T00:00:00Z")).week).toBe("2026-W01");
    expect(isoWeek(Date.parse("2021-01-03T00:00:00Z")).week).toBe("2020-W53");
  });

  it("scopes to a team (the services it owns) or a service, with a breakdown per service", () => {
    release("orders", "r-1", "2026-02-02T00:00:00Z", { sha: SHA("a"), time: "2026-02-01T00:00:00Z" });
    rollout({ id: "ro-1", service: "orders", to: "r-1", started: "2026-02-02T00:00:00Z", servedAt: "2026-02-02T00:00:00Z", end: ["2026-02-02T00:00:00Z", "succeeded"] });
    release("search", "s-1", "2026-02-03T00:00:00Z", { sha: SHA("b"), time: "2026-02-02T00:00:00Z" });
    rollout({ id: "ro-2", service: "search", to: "s-1", started: "2026-02-03T00:00:00Z", servedAt: "2026-02-03T00:00:00Z", end: ["2026-02-03T00:00:00Z", "succeeded"] });
    rollout({ id: "ro-3", service: "search", from: "s-1", to: "s-2", strategy: "canary", started: "2026-02-04T00:00:00Z", weights: [["2026-02-04T00:00:00Z", 50]], end: ["2026-02-04T00:30:00Z", "failed"] });
    const web = report({ team: "web" });
    expect(web.scope).toEqual({ project: "shop", team: "web", services: ["search"] });
    expect(web.deployments.map((d) => [d.id, d.team])).toEqual([
      ["ro-2", "web"],
      ["ro-3", "web"],
    ]);
    expect(web.summary.changeFailureRate).toMatchObject({ value: 0.5, failed: 1, deployments: 2 });
    expect(report({ service: "orders" }).deployments.map((d) => d.id)).toEqual(["ro-1"]);
    expect(report().services).toEqual([
      { service: "orders", team: "commerce", deployments: 1, successful: 1, failed: 0, changeFailureRate: 0, medianLeadTimeMs: D, medianRecoveryMs: null },
      { service: "search", team: "web", deployments: 2, successful: 1, failed: 1, changeFailureRate: 0.5, medianLeadTimeMs: D, medianRecoveryMs: 30 * 60_000 },
    ]);
  });

  it("buckets deployment frequency as Four Keys does from the weeks of the window", () => {
    // Deploys on three days of every week: daily (elite).
    const at = (day: number) => new Date(Date.parse("2026-02-02T12:00:00Z") + day * D).toISOString();
    const deployOn = (days: number[]) => {
      for (const [i, day] of days.entries()) {
        ev(at(day), "rollout.started", "service/orders", { rollout: `ro-${day}-${i}`, strategy: "rolling", to: `r-${day}` });
        ev(at(day), "rollout.succeeded", "service/orders", { rollout: `ro-${day}-${i}`, strategy: "rolling", to: `r-${day}` });
      }
    };
    deployOn([0, 1, 2, 7, 8, 9, 14, 15, 16, 21, 22, 23]);
    expect(report({ dataSince: Date.parse("2026-02-02T00:00:00Z") }).summary.deploymentFrequency).toMatchObject({ deployments: 12, bucket: "elite", perWeek: 3.1111 });
    events = [];
    deployOn([0, 0, 0, 0, 7, 14]); // four a day once, but only three weeks of four: weekly (high)
    expect(report({ dataSince: Date.parse("2026-02-02T00:00:00Z") }).summary.deploymentFrequency.bucket).toBe("high");
  });
});

describe("DORA buckets", () => {
  it("cuts lead time at 1 day, 1 week and 730 hours", () => {
    expect([leadTimeBucket(D - 1), leadTimeBucket(D), leadTimeBucket(7 * D - 1), leadTimeBucket(7 * D), leadTimeBucket(730 * H - 1), leadTimeBucket(730 * H)]).toEqual(["elite", "high", "high", "medium", "medium", "low"]);
  });
  it("cuts recovery time at 1 hour, 1 day and 1 week", () => {
    expect([recoveryBucket(H - 1), recoveryBucket(H), recoveryBucket(D), recoveryBucket(7 * D - 1), recoveryBucket(7 * D)]).toEqual(["elite", "high", "medium", "medium", "low"]);
  });
  it("cuts change failure rate at 5%, 10% and 15% (inclusive)", () => {
    expect([0, 0.05, 0.0501, 0.1, 0.15, 0.1501, 1].map(changeFailureBucket)).toEqual(["elite", "elite", "high", "high", "medium", "low", "low"]);
  });
  it("follows Four Keys for frequency: daily, weekly, monthly, yearly", () => {
    const weeks = (days: number[], month = (i: number) => (i < 4 ? "2026-01" : i < 8 ? "2026-02" : "2026-03")) => days.map((daysDeployed, i) => ({ month: month(i), daysDeployed }));
    expect(frequencyBucket(weeks([3, 3, 3, 0, 5]))).toBe("elite");
    expect(frequencyBucket(weeks([3, 2, 3, 0]))).toBe("high"); // median 2.5 days: not daily; 3 of 4 weeks deployed
    expect(frequencyBucket(weeks([1, 1, 0, 0]))).toBe("medium"); // half the weeks: not weekly (median 0.5)
    expect(frequencyBucket(weeks([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBe("low"); // one month in three
    expect(frequencyBucket(weeks([1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]))).toBe("medium"); // two months in three
    expect(frequencyBucket([])).toBe("low");
  });
  it("takes the median of an even count as the mean of the middle two", () => {
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([5])).toBe(5);
    expect(median([])).toBeUndefined();
  });
  it("selects the same median as a full sort for large arrays with repeated values (quickselect)", () => {
    let seed = 7;
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const n of [65, 66, 1000, 1001, 4096]) {
      const values = Array.from({ length: n }, () => (next() < 0.4 ? Math.floor(next() * 4) : next() * 1e6));
      const sorted = [...values].sort((a, b) => a - b);
      const expected = n % 2 === 1 ? sorted[n >> 1] : ((sorted[(n >> 1) - 1] as number) + (sorted[n >> 1] as number)) / 2;
      expect(median(values), `n = ${n}`).toBe(expected);
    }
  });
});

describe("DORA CSV", () => {
  it("writes one row per deployment, quoting cells with commas and quotes", () => {
    release("orders", "r-1", "2026-02-02T00:00:00Z", { sha: SHA("a"), time: "2026-02-01T00:00:00Z" });
    rollout({ id: "ro-1", service: "orders", to: "r-1", started: "2026-02-02T00:00:00Z", servedAt: "2026-02-02T00:00:00Z", end: ["2026-02-02T00:00:00Z", "succeeded"] });
    rollout({ id: "ro-2", service: "orders", from: "r-1", to: "r-2", strategy: "canary", started: "2026-02-03T00:00:00Z", weights: [["2026-02-03T00:00:00Z", 10]], end: ["2026-02-03T00:01:00Z", "failed"], why: 'error ratio: canary 12%, "bad"' });
    const lines = doraCsv(report()).split("\r\n");
    expect(lines[0]).toBe(
      "deployment,service,team,strategy,release,previous_release,commit,commit_time,started_at,served_at,completed_at,ended_at,rollout,changes,change_source,skewed_changes,lead_time_seconds,failed,cause,reason,recovery_from,recovery_to,recovery_seconds",
    );
    expect(lines[1]).toBe(`ro-1,orders,commerce,rolling,r-1,,${SHA("a")},2026-02-01T00:00:00Z,2026-02-02T00:00:00.000Z,2026-02-02T00:00:00.000Z,2026-02-02T00:00:00.000Z,2026-02-02T00:00:00.000Z,succeeded,1,head,0,86400,false,,,,,`);
    expect(lines[2]).toBe(`ro-2,orders,commerce,canary,r-2,r-1,,,2026-02-03T00:00:00.000Z,2026-02-03T00:00:00.000Z,,2026-02-03T00:01:00.000Z,failed,0,none,0,,true,rollout,"error ratio: canary 12%, ""bad""",2026-02-03T00:00:00.000Z,2026-02-03T00:01:00.000Z,60`);
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe("");
  });
});
