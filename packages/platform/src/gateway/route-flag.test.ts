// Tests for routing by flag inside the gateway: compiling a table's flags (leaving out the ones
// it cannot use, reusing an unchanged set), evaluating a route's flag on headers and cookies, and
// counting every request a route's flag decides, whatever comes of it.
import { describe, expect, it } from "vitest";
import type { FlagDefinition, RouteFlag, RoutingTable } from "@keelson/protocol";
import { createGatewayMetrics } from "./gateway-metrics.js";
import type { GatewayLogger } from "./logger.js";
import { RouteFlagEvaluator, compileTableFlags } from "./route-flag.js";

function recordingLog(): GatewayLogger & { warnings: Array<{ obj: object; msg?: string }> } {
  const warnings: Array<{ obj: object; msg?: string }> = [];
  const noop = () => undefined;
  return { warnings, debug: noop, info: noop, error: noop, warn: (obj, msg) => warnings.push({ obj, msg }) };
}

const experiment: FlagDefinition = {
  state: "ENABLED",
  variants: { control: false, treatment: true },
  defaultVariant: "control",
  targeting: { if: [{ "==": [{ var: "plan" }, "pro"] }, "treatment", { if: [{ "==": [{ var: "targetingKey" }, "u-1"] }, "treatment", "control"] }] },
};

function tableFlags(flags: Record<string, unknown>, extra: object = {}): Pick<RoutingTable, "flags"> {
  return { flags: { revision: 3, set: { flags, ...extra } } };
}

const routeFlag: RouteFlag = {
  key: "experiment",
  context: { targetingKey: { header: "x-user-id" }, plan: { cookie: "plan" } },
  variants: { treatment: { service: "web-v2", version: "canary" } },
};

function evaluator(flags: Record<string, unknown>, flag: RouteFlag = routeFlag, metrics = createGatewayMetrics({ defaultMetrics: false })) {
  const compiled = compileTableFlags(tableFlags(flags), undefined, recordingLog()).compiled;
  return RouteFlagEvaluator.compile({ route: "/", flag, flags: compiled, metrics });
}

describe("compileTableFlags", () => {
  it("leaves out a flag that is not valid, with one warning, and keeps the others", () => {
    const log = recordingLog();
    const compiled = compileTableFlags(tableFlags({ experiment, broken: { state: "ENABLED", variants: { a: 1 }, defaultVariant: "b" } }), undefined, log).compiled;
    expect(compiled?.keys()).toEqual(["experiment"]);
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]?.obj).toMatchObject({ dropped: [{ flag: "broken", problem: expect.stringMatching(/^flags\.broken\.defaultVariant/) }] });
  });

  it("also leaves out a flag whose prerequisite was left out", () => {
    const dependent = { ...experiment, prerequisites: [{ flag: "broken", variant: "a" }] };
    const compiled = compileTableFlags(tableFlags({ experiment, dependent, broken: { state: "MAYBE" } }), undefined, recordingLog()).compiled;
    expect(compiled?.keys()).toEqual(["experiment"]);
  });

  it("uses no flag when the set as a whole is not valid, and none when the table has no flags", () => {
    const log = recordingLog();
    expect(compileTableFlags(tableFlags({ experiment }, { $evaluators: { loop: { $ref: "loop" } } }), undefined, log).compiled).toBeUndefined();
    expect(log.warnings.map((w) => w.msg)).toEqual(["the routing table's flag set is not valid; flagged routes route as without a flag"]);
    expect(compileTableFlags({}, undefined, log)).toEqual({ source: undefined, compiled: undefined });
  });

  it("reuses the previous table's compiled flags when the set did not change, without warning again", () => {
    const log = recordingLog();
    const table = tableFlags({ experiment, broken: { state: "MAYBE" } });
    const first = compileTableFlags(table, undefined, log);
    expect(compileTableFlags(structuredClone(table), first, log)).toBe(first);
    expect(log.warnings).toHaveLength(1);
    expect(compileTableFlags(tableFlags({ experiment }), first, log)).not.toBe(first);
  });
});

describe("RouteFlagEvaluator", () => {
  it("builds the context from the named header (any case) and cookie, and answers the listed variant's target", () => {
    const flag = evaluator({ experiment })!;
    expect(flag.choose(["X-User-Id", "u-1"], undefined)).toMatchObject({ variant: "treatment", service: "web-v2", version: "canary" });
    expect(flag.choose(["x-user-id", "u-2"], "a=1; plan=pro")).toMatchObject({ variant: "treatment" });
    // The first of repeated headers counts.
    expect(flag.choose(["x-user-id", "u-1", "x-user-id", "u-2"], undefined)?.variant).toBe("treatment");
  });

  it("answers undefined (the plain route) for a variant the route does not list", () => {
    expect(evaluator({ experiment })!.choose(["x-user-id", "u-2"], undefined)).toBeUndefined();
  });

  it("answers undefined for a disabled flag, even when its safe variant is listed", () => {
    const disabled = { ...experiment, state: "DISABLED" as const, safeVariant: "treatment" };
    expect(evaluator({ experiment: disabled })!.choose(["x-user-id", "u-1"], undefined)).toBeUndefined();
  });

  it("answers undefined when evaluation fails on the request's context", () => {
    // The targeting returns the cookie's value as the variant: a value that is no variant is an error.
    const fromCookie = { ...experiment, targeting: { var: "plan" } };
    const flag = evaluator({ experiment: fromCookie })!;
    expect(flag.choose([], "plan=treatment")?.variant).toBe("treatment");
    const engine = compileTableFlags(tableFlags({ experiment: fromCookie }), undefined, recordingLog()).compiled!;
    expect(engine.evaluate("experiment", { plan: "bogus" })).toMatchObject({ reason: "ERROR", errorCode: "GENERAL" });
    expect(flag.choose([], "plan=bogus")).toBeUndefined();
  });

  it("is undefined for a flag whose targeting names a variant it does not have (refused when the table is compiled)", () => {
    const failing = { ...experiment, targeting: { if: [{ "==": [{ var: "plan" }, "pro"] }, "nowhere", "control"] } };
    expect(evaluator({ experiment: failing })).toBeUndefined();
  });

  it("is undefined for a route whose flag the table does not carry", () => {
    expect(evaluator({ other: experiment })).toBeUndefined();
  });
});

describe("RouteFlagEvaluator.decide", () => {
  const services = new Map([
    ["web", { name: "web", endpoints: [1] }],
    ["web-v2", { name: "web-v2", endpoints: [1] }],
  ]);
  const user = (id: string) => ["x-user-id", id];
  /** The flag's requests by variant and outcome, as /metrics exports them. */
  async function exported(metrics: ReturnType<typeof createGatewayMetrics>): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const v of (await metrics.registry.getSingleMetric("keelson_gateway_flag_requests_total")!.get()).values) out[`${v.labels.variant} ${v.labels.outcome}`] = v.value;
    return out;
  }

  it("routes a listed variant to its target and measures an unlisted one on the plain route, each in its own cell", () => {
    const flag = evaluator({ experiment })!;
    const treated = flag.decide(services, services.get("web"), user("u-1"), undefined)!;
    expect(treated).toMatchObject({ variant: "treatment", listed: true, version: "canary", measure: { labels: { route: "/", flag: "experiment", variant: "treatment" } } });
    expect(flag.serviceOf(treated, services, services.get("web"))?.name).toBe("web-v2");
    expect(treated.cell.count).toBe(1);
    const control = flag.decide(services, services.get("web"), user("u-2"), undefined)!;
    expect(control).toMatchObject({ variant: "control", listed: false, measure: { labels: { variant: "control" } } });
    expect(control.cell.count).toBe(0);
  });

  it("allocates no decision per request: the same choice object for every request of a variant", () => {
    const flag = evaluator({ experiment })!;
    const own = services.get("web");
    expect(flag.decide(services, own, user("u-1"), undefined)).toBe(flag.decide(services, own, [], "plan=pro"));
    expect(flag.decide(services, own, user("u-2"), undefined)).toBe(flag.decide(services, own, user("u-3"), undefined));
  });

  it("counts every request it decides once: a disabled flag's and a failed evaluation's as unassigned, a listed variant whose service cannot take it as that variant's error", async () => {
    const own = services.get("web");
    // Disabled (a kill switch left off): the plain route, counted under the variant "none".
    const offMetrics = createGatewayMetrics({ defaultMetrics: false });
    const off = evaluator({ experiment: { ...experiment, state: "DISABLED" } }, routeFlag, offMetrics)!;
    expect(off.decide(services, own, user("u-1"), undefined)).toBeUndefined();
    expect(off.decide(services, own, user("u-2"), undefined)).toBeUndefined();
    expect(await exported(offMetrics)).toEqual({ "none unassigned": 2 });

    // An evaluation that fails on the request's context: the same.
    const failingMetrics = createGatewayMetrics({ defaultMetrics: false });
    const failing = evaluator({ experiment: { ...experiment, targeting: { var: "plan" } } }, routeFlag, failingMetrics)!;
    expect(failing.decide(services, own, [], "plan=bogus")).toBeUndefined();
    expect(failing.decide(services, own, [], "plan=treatment")?.variant).toBe("treatment");
    expect(await exported(failingMetrics)).toEqual({ "none unassigned": 1 });

    // The treatment's service has no ready endpoint, then is not in the table at all: an error of
    // the treatment each time (the plain route serves the request, unmeasured), never routed there.
    const downMetrics = createGatewayMetrics({ defaultMetrics: false });
    const flag = evaluator({ experiment }, routeFlag, downMetrics)!;
    const down = new Map([...services, ["web-v2", { name: "web-v2", endpoints: [] }]]);
    expect(flag.decide(down, down.get("web"), user("u-1"), undefined)).toBeUndefined();
    const gone = new Map([["web", { name: "web", endpoints: [1] }]]);
    expect(flag.decide(gone, gone.get("web"), user("u-1"), undefined)).toBeUndefined();
    // The control (unlisted) is decided as usual; its outcome is the caller's to record.
    const control = flag.decide(down, down.get("web"), user("u-2"), undefined)!;
    downMetrics.recordFlag(control.measure, 200, 0.01);
    expect(await exported(downMetrics)).toEqual({ "treatment error": 2, "control ok": 1 });
    expect(flag.choose(user("u-1"), undefined)?.cell.count).toBe(0);
  });
});

describe("GatewayMetrics.recordFlag", () => {
  it("counts 5xx as errors and 499 as abandoned, and bins durations in the request histogram's buckets", () => {
    const metrics = createGatewayMetrics({ defaultMetrics: false });
    const cell = metrics.flagVariant("/", "experiment", "treatment");
    expect(metrics.flagVariant("/", "experiment", "treatment")).toBe(cell);
    for (const [status, seconds] of [[200, 0.003], [404, 0.02], [500, 0.2], [504, 31], [499, 1]] as const) metrics.recordFlag(cell, status, seconds);
    expect({ ok: cell.ok, error: cell.error, abandoned: cell.abandoned, count: cell.count }).toEqual({ ok: 2, error: 2, abandoned: 1 , count: 5 });
    expect(cell.sum).toBeCloseTo(32.223, 6);
    // 0.003 s in (0.0025, 0.005], 0.02 in (0.01, 0.025], 0.2 in (0.1, 0.25], 1 in (0.5, 1], 31 past 30 s.
    expect([...cell.buckets].map((n, i) => (n > 0 ? i : -1)).filter((i) => i >= 0)).toEqual([2, 4, 7, 9, 14]);
  });

  it("exports rejected and unassigned requests as outcomes of their own, untimed", async () => {
    const metrics = createGatewayMetrics({ defaultMetrics: false });
    const cell = metrics.flagVariant("/", "experiment", "treatment");
    cell.rejected += 2;
    metrics.flagVariant("/", "experiment", "none").unassigned += 3;
    const text = await metrics.registry.metrics();
    expect(text).toContain('keelson_gateway_flag_requests_total{route="/",flag="experiment",variant="treatment",outcome="rejected"} 2');
    expect(text).toContain('keelson_gateway_flag_requests_total{route="/",flag="experiment",variant="none",outcome="unassigned"} 3');
    expect(text).not.toContain("keelson_gateway_flag_request_duration_seconds_count");
  });
});
