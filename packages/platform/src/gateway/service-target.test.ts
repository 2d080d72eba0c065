// Tests for the per-service runtime state: release groups and pins, fail-over of a retry,
// ejection rebuilding the pick lists, and resilience state carried across routing tables.
import { describe, expect, it } from "vitest";
import type { Pool } from "undici";
import type { RoutingTable, ServicePolicy, TrafficSplit } from "@keelson/protocol";
import { DEFAULT_SERVICE_POLICY } from "@keelson/protocol";
import { createGatewayMetrics } from "./gateway-metrics.js";
import type { GatewayLogger } from "./logger.js";
import { silentLogger } from "./logger.js";
import { LiveStats } from "./live-stats.js";
import { createSeededRandom } from "./random.js";
import type { ServiceTarget } from "./service-target.js";
import { EndpointState, buildServiceTargets } from "./service-target.js";

const metrics = createGatewayMetrics({ defaultMetrics: false });
const stats = new LiveStats({ now: () => 0 });

function build(options: {
  endpoints: Array<[replica: string, release: string]>;
  policy?: ServicePolicy;
  split?: TrafficSplit;
  previous?: Map<string, ServiceTarget>;
  reuse?: Map<string, EndpointState>;
  log?: GatewayLogger;
}): { target: ServiceTarget; targets: Map<string, ServiceTarget>; states: Map<string, EndpointState> } {
  const table: RoutingTable = {
    version: 1,
    project: "p",
    generatedAt: "2026-01-01T00:00:00.000Z",
    routes: [],
    services: [
      {
        name: "web",
        endpoints: options.endpoints.map(([replicaId, release], i) => ({ replicaId, url: `http://127.0.0.1:${1000 + i}`, release })),
        ...(options.policy ? { policy: options.policy } : {}),
        ...(options.split ? { split: options.split } : {}),
      },
    ],
  };
  const states = new Map<string, EndpointState>();
  const targets = buildServiceTargets({
    table,
    previous: options.previous,
    defaultPolicy: DEFAULT_SERVICE_POLICY,
    random: createSeededRandom(5),
    metrics,
    stats,
    now: 0,
    ...(options.log ? { log: options.log } : {}),
    endpoint(service, e) {
      const reused = options.reuse?.get(e.replicaId);
      const state = reused ?? new EndpointState(`${e.replicaId} ${e.url}`, service, e.replicaId, e.url, e.release, {} as Pool, "", "127.0.0.1", 1, stats.series(service, e.release, e.replicaId), 0);
      states.set(e.replicaId, state);
      return state;
    },
  });
  return { target: targets.get("web")!, targets, states };
}

const roundRobin: ServicePolicy = { ...DEFAULT_SERVICE_POLICY, loadBalancer: "round-robin" };

describe("ServiceTarget", () => {
  it("groups endpoints by release and resolves pins by label or release id", () => {
    const { target } = build({
      endpoints: [
        ["a", "r1"],
        ["b", "r1"],
        ["c", "r2"],
      ],
      split: { sticky: true, weights: [{ release: "r1", weight: 100, label: "stable" }, { release: "r2", weight: 0, label: "canary" }] },
    });
    expect([...target.groups.keys()].sort()).toEqual(["r1", "r2"]);
    expect(target.groupFor("canary", undefined, Math.random).release).toBe("r2");
    expect(target.groupFor(undefined, "keelson-v-web=r2", Math.random).release).toBe("r2");
    // Weight 0 gets nothing by weight; the served set (where retries fail over) leaves it out.
    for (let i = 0; i < 20; i++) expect(target.weighted(Math.random).release).toBe("r1");
    expect(target.served.endpoints.map((e) => e.replicaId)).toEqual(["a", "b"]);
    expect(target.groups.get("r1")!.cookie).toBe("keelson-v-web=r1; Path=/; HttpOnly; SameSite=Lax");
  });

  it("gives a retry another endpoint of the release, else one of another served release", () => {
    const { target, states } = build({
      policy: roundRobin,
      endpoints: [
        ["a", "r1"],
        ["b", "r1"],
        ["c", "r2"],
      ],
      split: { sticky: false, weights: [{ release: "r1", weight: 50 }, { release: "r2", weight: 50 }] },
    });
    const r1 = target.groups.get("r1")!;
    const r2 = target.groups.get("r2")!;
    for (let i = 0; i < 4; i++) expect(target.choose(r1, states.get("a"), 0)!.replicaId).toBe("b");
    // The canary's only replica failed: the retry goes to a stable one.
    expect(["a", "b"]).toContain(target.choose(r2, states.get("c"), 0)!.replicaId);
  });

  it("takes an ejected endpoint out of every pick list and puts it back when its time is up", () => {
    const policy: ServicePolicy = { ...roundRobin, outlierEjection: { consecutiveFailures: 2, baseEjectionMs: 1_000, maxEjectionMs: 10_000, maxEjectedPercent: 50 } };
    const { target, states } = build({
      policy,
      endpoints: [
        ["a", "r1"],
        ["b", "r1"],
      ],
    });
    const a = states.get("a")!;
    expect(target.failure(a, 0)).toBe(false);
    expect(target.failure(a, 0)).toBe(true);
    expect(target.all.available.items.map((e) => e.replicaId)).toEqual(["b"]);
    expect(target.groups.get("r1")!.available.items.map((e) => e.replicaId)).toEqual(["b"]);
    for (let i = 0; i < 3; i++) expect(target.choose(target.all, undefined, 500)!.replicaId).toBe("b");
    target.maybeReturn(999);
    expect(target.all.available.items).toHaveLength(1);
    target.maybeReturn(1_000);
    expect(target.all.available.items.map((e) => e.replicaId)).toEqual(["a", "b"]);
    expect(target.describe(1_000, Date.parse("2026-01-01T00:00:00Z")).endpoints.map((e) => [e.replicaId, e.ejected, e.timesEjected])).toEqual([
      ["a", false, 1],
      ["b", false, 0],
    ]);
  });

  it("under a split, never ejects the last available endpoint of a release, so a failing canary keeps its share", () => {
    const policy: ServicePolicy = { ...roundRobin, outlierEjection: { consecutiveFailures: 2, baseEjectionMs: 1_000, maxEjectedPercent: 50, maxEjectionMs: 10_000 } };
    const split: TrafficSplit = { sticky: false, weights: [{ release: "r1", weight: 90, label: "stable" }, { release: "r2", weight: 10, label: "canary" }] };
    const { target, states } = build({ policy, split, endpoints: [["a", "r1"], ["b", "r1"], ["c", "r1"], ["canary", "r2"]] });
    const canary = states.get("canary")!;
    for (let i = 0; i < 10; i++) expect(target.failure(canary, 0)).toBe(false);
    expect(target.groups.get("r2")!.available.items.map((e) => e.replicaId)).toEqual(["canary"]);
    // A release with another endpoint left still loses the failing one.
    const a = states.get("a")!;
    target.failure(a, 0);
    expect(target.failure(a, 0)).toBe(true);
    expect(target.groups.get("r1")!.available.items.map((e) => e.replicaId)).toEqual(["b", "c"]);
    // Without a split, the usual rule: the lone failing endpoint of a release is ejected.
    const plain = build({ policy, endpoints: [["a", "r1"], ["b", "r1"], ["c", "r1"], ["canary", "r2"]] });
    const lone = plain.states.get("canary")!;
    plain.target.failure(lone, 0);
    expect(plain.target.failure(lone, 0)).toBe(true);
  });

  it("keeps an open breaker, the retry budget and ejections across a new table with the same policy", () => {
    const policy: ServicePolicy = { ...DEFAULT_SERVICE_POLICY, circuitBreaker: { failureRatio: 0.5, minRequests: 2, windowMs: 10_000, openMs: 5_000, halfOpenProbes: 1 } };
    const first = build({ policy, endpoints: [["a", "r1"]] });
    const breaker = first.target.breaker!;
    breaker.record(breaker.admit(0), false, 0);
    breaker.record(breaker.admit(0), false, 0);
    expect(breaker.state(0)).toBe("open");
    first.target.budget.recordRequest(0);

    const second = build({ policy, endpoints: [["a", "r1"], ["b", "r1"]], previous: first.targets, reuse: first.states });
    expect(second.target.breaker).toBe(breaker);
    expect(second.target.budget).toBe(first.target.budget);
    expect(second.states.get("a")).toBe(first.states.get("a"));

    const changed = build({ policy: { ...policy, circuitBreaker: { ...policy.circuitBreaker!, openMs: 1_000 } }, endpoints: [["a", "r1"]], previous: second.targets });
    expect(changed.target.breaker).not.toBe(breaker);
    expect(changed.target.breaker!.state(0)).toBe("closed");
    expect(changed.target.budget).toBe(first.target.budget);
  });

  it("serves every endpoint when no weighted release has one, rather than refusing", () => {
    const { target } = build({
      endpoints: [["x", "r-old"]],
      split: { sticky: false, weights: [{ release: "r-new", weight: 100 }] },
    });
    expect(target.weighted(Math.random)).toBe(target.all);
    expect(target.choose(target.weighted(Math.random), undefined, 0)!.replicaId).toBe("x");
  });

  it("chooses by pin, then match rule, then sticky cookie, then affinity hash, then at random", () => {
    const { target } = build({
      endpoints: [
        ["c", "r-canary"],
        ["s", "r-stable"],
        ["p", "r-preview"],
      ],
      split: {
        sticky: true,
        weights: [
          { release: "r-canary", weight: 50, label: "canary" },
          { release: "r-stable", weight: 50, label: "stable" },
          { release: "r-preview", weight: 0, label: "preview" },
        ],
        match: [{ release: "r-preview", headers: { "x-group": { exact: "beta" } } }],
        affinity: { header: "x-user-id" },
      },
    });
    const zero = () => 0;
    // A user the hash puts on the stable release (the random source would say canary).
    let user = 0;
    while (target.weighted(zero, ["x-user-id", `u${user}`], undefined).release !== "r-stable") user++;
    const onStable = ["x-user-id", `u${user}`];
    const beta = ["x-group", "beta"];
    const cookie = "keelson-v-web=r-canary";
    const release = (pin: string | undefined, cookies: string | undefined, raw: string[]) => target.groupFor(pin, cookies, zero, raw).release;
    expect(release("stable", cookie, [...beta, ...onStable])).toBe("r-stable");
    expect(release(undefined, cookie, [...beta, ...onStable])).toBe("r-preview");
    expect(release(undefined, cookie, onStable)).toBe("r-canary");
    expect(release(undefined, undefined, onStable)).toBe("r-stable");
    expect(release(undefined, undefined, [])).toBe("r-canary");
    expect(target.groupFor(undefined, undefined, () => 0.99, []).release).toBe("r-stable");
    // A rule whose release has no available endpoint falls through to the next step.
    target.groups.get("r-preview")!.available.items = [];
    expect(release(undefined, cookie, [...beta, ...onStable])).toBe("r-canary");
    expect(target.named(undefined, undefined, beta)).toBeUndefined();
  });

  it("compiles nothing for a split without match rules or affinity", () => {
    const { target } = build({ endpoints: [["a", "r1"]], split: { sticky: false, weights: [{ release: "r1", weight: 100 }] } });
    expect(target.rules).toBeUndefined();
    expect(target.affinity).toBeUndefined();
    expect(target.groupFor(undefined, undefined, Math.random, ["x-user-id", "u1"]).release).toBe("r1");
  });

  it("ignores a match rule whose regex does not compile, warning once however many tables carry it", () => {
    const warnings: object[] = [];
    const log: GatewayLogger = { ...silentLogger, warn: (obj) => void warnings.push(obj) };
    const split: TrafficSplit = {
      sticky: false,
      weights: [{ release: "r1", weight: 100 }],
      match: [
        { release: "r2", headers: { "x-g": { regex: "[beta" } } },
        { release: "r2", cookies: { canary: { exact: "always" } } },
      ],
    };
    const endpoints: Array<[string, string]> = [
      ["a", "r1"],
      ["b", "r2"],
    ];
    let previous: Map<string, ServiceTarget> | undefined;
    for (let table = 0; table < 3; table++) {
      const { target, targets } = build({ endpoints, split, previous, log });
      expect(target.groupFor(undefined, undefined, Math.random, ["x-g", "[beta"]).release).toBe("r1");
      expect(target.groupFor(undefined, "canary=always", Math.random, []).release).toBe("r2");
      previous = targets;
    }
    expect(warnings).toEqual([expect.objectContaining({ service: "web", rule: 0, header: "x-g", regex: "[beta" })]);
  });
});
