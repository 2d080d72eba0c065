// The scorecard rules: each can fail on its own, a service without an SLO is flagged, unknown
// and n/a outcomes stay out of the score, and a team's score is the mean of its services'.
import { describe, expect, it } from "vitest";
import { SCORECARD_RULES, scoreService, staleFlagsOf, teamScore, type ServiceFacts } from "./scorecard.js";

const NOW = new Date("2026-06-30T12:00:00.000Z");

/** A service that passes every rule. */
const good = (over: Partial<ServiceFacts> = {}): ServiceFacts => ({
  service: "orders",
  owner: "commerce",
  ownerIsTeam: true,
  lifecycle: "production",
  slos: ["availability"],
  readiness: "/ready",
  declaredTests: ["test"],
  lastPipeline: { at: "2026-06-20T10:00:00.000Z", run: "run-1", stages: ["install", "build", "test"] },
  vulnerabilities: { release: "r-aaaaaaaaaaaa", bySeverity: { high: 2, low: 1 } },
  staleFlags: [],
  lastDeploy: { at: "2026-06-20T10:05:00.000Z", release: "r-aaaaaaaaaaaa" },
  now: NOW,
  ...over,
});

const statusOf = (facts: ServiceFacts, rule: string) => scoreService(facts).results.find((r) => r.rule === rule);

describe("scorecard rules", () => {
  it("has the seven rules of the issue, each with a title and a why", () => {
    expect(SCORECARD_RULES.map((r) => r.id)).toEqual(["owner-team", "slo", "readiness", "tests", "vulnerabilities", "flags", "deployed-recently"]);
    for (const r of SCORECARD_RULES) {
      expect(r.title.length).toBeGreaterThan(5);
      expect(r.why.length).toBeGreaterThan(20);
    }
  });

  it("scores a service that passes every rule 100", () => {
    const card = scoreService(good());
    expect(card.results.map((r) => r.status)).toEqual(Array(7).fill("pass"));
    expect(card).toMatchObject({ service: "orders", owner: "commerce", score: 100, passed: 7, failed: 0, unknown: 0 });
  });

  it("flags a service without an SLO", () => {
    const card = scoreService(good({ slos: [] }));
    expect(card.results.find((r) => r.rule === "slo")).toEqual({ rule: "slo", title: "Has an SLO", status: "fail", reason: "no SLO declared under slos:" });
    expect(card.score).toBe(86);
    expect(card.failed).toBe(1);
  });

  const failures: Array<[string, Partial<ServiceFacts>, RegExp]> = [
    ["owner-team", { ownerIsTeam: false, owner: "ana" }, /owner "ana" is not a team/],
    ["slo", { slos: [] }, /no SLO declared/],
    ["readiness", { readiness: undefined }, /no readiness probe/],
    ["tests", { lastPipeline: { at: "2026-06-20T10:00:00.000Z", run: "run-2", stages: ["install", "build"] } }, /run-2.*no test stage \(stages: install, build\)/],
    ["vulnerabilities", { vulnerabilities: { release: "r-bbbbbbbbbbbb", bySeverity: { critical: 2, high: 1 } } }, /2 critical vulnerabilities in r-bbbbbbbbbbbb/],
    ["flags", { staleFlags: [{ flag: "old-banner", why: ["no evaluation for 45 days (last 2026-05-16)"] }] }, /old-banner \(no evaluation for 45 days/],
    ["deployed-recently", { lastDeploy: { at: "2026-05-01T00:00:00.000Z", release: "r-cccccccccccc" } }, /last deployed 2026-05-01 \(r-cccccccccccc\), 60 days ago/],
  ];
  it.each(failures)("rule %s can fail on its own", (rule, over, reason) => {
    const card = scoreService(good(over));
    const failed = card.results.filter((r) => r.status === "fail");
    expect(failed.map((r) => r.rule)).toEqual([rule]);
    expect(failed[0]?.reason).toMatch(reason);
    expect(card.score).toBe(86);
  });

  it("fails a service never deployed, and passes one deployed exactly 30 days ago", () => {
    expect(statusOf(good({ lastDeploy: undefined }), "deployed-recently")).toMatchObject({ status: "fail", reason: "no successful rollout recorded" });
    expect(statusOf(good({ lastDeploy: { at: "2026-05-31T12:00:00.000Z", release: undefined } }), "deployed-recently")?.status).toBe("pass");
    expect(statusOf(good({ lastDeploy: { at: "2026-05-30T11:00:00.000Z", release: undefined } }), "deployed-recently")?.status).toBe("fail");
  });

  it("does not ask a deprecated service to be deployed, and leaves that rule out of the score", () => {
    const card = scoreService(good({ lifecycle: "deprecated", lastDeploy: undefined, slos: [] }));
    expect(statusOf(good({ lifecycle: "deprecated", lastDeploy: undefined }), "deployed-recently")?.status).toBe("n/a");
    // 5 passed of 6 known: the n/a rule counts neither way.
    expect(card.score).toBe(83);
  });

  it("reads tests from the last pipeline run first, then from what the manifest declares, else unknown", () => {
    expect(statusOf(good({ lastPipeline: { at: "x", run: undefined, stages: ["unit-tests"] } }), "tests")?.status).toBe("pass");
    expect(statusOf(good({ lastPipeline: { at: "x", run: undefined, stages: ["e2e"] } }), "tests")?.status).toBe("pass");
    expect(statusOf(good({ lastPipeline: { at: "x", run: undefined, stages: ["latest-build"] } }), "tests")?.status).toBe("fail");
    expect(statusOf(good({ lastPipeline: undefined }), "tests")).toMatchObject({ status: "pass", reason: "declared (test); no pipeline run recorded yet" });
    expect(statusOf(good({ lastPipeline: undefined, declaredTests: [] }), "tests")?.status).toBe("fail");
    expect(statusOf(good({ lastPipeline: undefined, declaredTests: undefined }), "tests")?.status).toBe("unknown");
  });

  it("counts unknown outcomes neither way and says how many there were", () => {
    const card = scoreService(good({ vulnerabilities: undefined, staleFlags: undefined, slos: [] }));
    expect(card.results.filter((r) => r.status === "unknown").map((r) => r.rule)).toEqual(["vulnerabilities", "flags"]);
    expect(card).toMatchObject({ passed: 4, failed: 1, unknown: 2, score: 80 });
    // Only unknowns: no score at all rather than 0 or 100.
    const nothing = scoreService(good(), [{ id: "x", title: "X", why: "because", check: () => ({ status: "unknown", reason: "no data" }) }]);
    expect(nothing.score).toBeUndefined();
  });

  it("treats critical findings only as failing: high ones pass", () => {
    expect(statusOf(good({ vulnerabilities: { release: "r-1", bySeverity: { high: 9 } } }), "vulnerabilities")?.status).toBe("pass");
    expect(statusOf(good({ vulnerabilities: { release: "r-1", bySeverity: { critical: 1 } } }), "vulnerabilities")?.reason).toBe("1 critical vulnerability in r-1");
  });
});

describe("team scores and the stale flags of a service", () => {
  it("averages the services' scores, leaving out services without one", () => {
    expect(teamScore([{ score: 100 }, { score: 71 }, { score: undefined }])).toBe(86);
    expect(teamScore([{ score: undefined }])).toBeUndefined();
    expect(teamScore([])).toBeUndefined();
  });

  it("counts a stale flag against the services of its owner team, of a team member, of the service itself, or whose routes name it", () => {
    const stale = [
      { flag: "team-flag", owner: "commerce", why: ["a"] },
      { flag: "member-flag", owner: "chidi", why: ["b"] },
      { flag: "service-flag", owner: "orders", why: ["c"] },
      { flag: "route-flag", owner: "web", why: ["d"] },
      { flag: "others", owner: "web", why: ["e"] },
      { flag: "nobodys", why: ["f"] },
    ];
    const mine = staleFlagsOf({ name: "orders", owner: "commerce", routeFlags: ["route-flag"] }, ["chidi", "dana"], stale);
    expect(mine.map((f) => f.flag)).toEqual(["team-flag", "member-flag", "service-flag", "route-flag"]);
    expect(staleFlagsOf({ name: "search", owner: "discovery", routeFlags: [] }, [], stale)).toEqual([]);
  });
});
