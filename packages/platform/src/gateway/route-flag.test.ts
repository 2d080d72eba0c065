// Tests for routing by flag inside the gateway: compiling a table's flags (leaving out the ones
// it cannot use, reusing an unchanged set) and evaluating a route's flag on headers and cookies.
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

function evaluator(flags: Record<string, unknown>, flag: RouteFlag = routeFlag) {
  const metrics = createGatewayMetrics({ defaultMetrics: false });
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
