// The compiled evaluator: a reason and error code for every outcome, prerequisites, kill switches,
// and no exception whatever the context holds.
import { describe, expect, it } from "vitest";
import { compileFlagSet } from "./compile-flag-set.js";
import type { EvaluationContext, FlagDefinition, FlagSet } from "./flag-set.js";

const onOff = (extra: Partial<FlagDefinition> = {}): FlagDefinition => ({ state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", ...extra });

const set: FlagSet = {
  flags: {
    static: onOff(),
    targeted: onOff({ targeting: { if: [{ "==": [{ var: "plan" }, "pro"] }, "on", null] } }),
    booleanResult: onOff({ variants: { true: "yes", false: "no" }, defaultVariant: "false", targeting: { in: [{ var: "country" }, ["de", "fr"]] } }),
    numberResult: { state: "ENABLED", variants: { "1": "one", "2": "two" }, defaultVariant: "1", targeting: { "+": [{ var: "n" }, 1] } },
    unknownResult: onOff({ targeting: { var: "pick" } }),
    split: { state: "ENABLED", variants: { a: "A", b: "B" }, defaultVariant: "a", targeting: { fractional: [["a", 1], ["b", 1]] } },
    killed: { state: "DISABLED", variants: { fancy: "F", plain: "P", safe: "S" }, defaultVariant: "fancy", safeVariant: "safe" },
    off: { state: "DISABLED", variants: { fancy: "F", plain: "P" }, defaultVariant: "plain" },
    withMeta: onOff({ metadata: { team: "checkout" } }),
    object: { state: "ENABLED", variants: { v1: { limit: 10, tags: ["a"] } }, defaultVariant: "v1" },
    clock: { state: "ENABLED", variants: { before: "b", after: "a" }, defaultVariant: "before", targeting: { if: [{ ">=": [{ var: "$flagd.timestamp" }, 1_800_000_000] }, "after", "before"] } },
    loops: onOff({ targeting: { if: [{ some: [{ var: "items" }, { "==": [{ var: "" }, "hit"] }] }, "on", "off"] } }),
    strings: onOff({ targeting: { if: [{ "==": [{ cat: [{ var: "a" }, { var: "b" }] }, "xy"] }, "on", "off"] } }),
  },
  metadata: { flagSetId: "shop", team: "platform" },
};

describe("compileFlagSet: reasons and error codes", () => {
  const flags = compileFlagSet(set, { now: () => 1_700_000_000_000 });

  it("STATIC without targeting", () => {
    expect(flags.evaluate("static", {})).toEqual({ key: "static", value: false, variant: "off", reason: "STATIC", metadata: { flagSetId: "shop", team: "platform" } });
  });

  it("TARGETING_MATCH for a variant name; DEFAULT (with defaultVariant) for null", () => {
    expect(flags.evaluate("targeted", { plan: "pro" })).toMatchObject({ value: true, variant: "on", reason: "TARGETING_MATCH" });
    expect(flags.evaluate("targeted", { plan: "free" })).toMatchObject({ value: false, variant: "off", reason: "DEFAULT" });
  });

  it("maps boolean results to the variants \"true\"/\"false\" and numbers to their text, as flagd does", () => {
    expect(flags.evaluate("booleanResult", { country: "de" })).toMatchObject({ value: "yes", variant: "true", reason: "TARGETING_MATCH" });
    expect(flags.evaluate("booleanResult", { country: "us" })).toMatchObject({ value: "no", variant: "false", reason: "TARGETING_MATCH" });
    expect(flags.evaluate("numberResult", { n: 1 })).toMatchObject({ value: "two", variant: "2" });
  });

  it("ERROR/GENERAL when targeting names an unknown variant or returns a non-name; value undefined", () => {
    expect(flags.evaluate("unknownResult", { pick: "maybe" })).toEqual({
      key: "unknownResult",
      value: undefined,
      reason: "ERROR",
      errorCode: "GENERAL",
      errorMessage: 'targeting returned unknown variant "maybe" for flag "unknownResult"',
      metadata: { flagSetId: "shop", team: "platform" },
    });
    expect(flags.evaluate("unknownResult", { pick: { on: 1 } })).toMatchObject({ reason: "ERROR", errorCode: "GENERAL", errorMessage: 'targeting returned unknown variant a object for flag "unknownResult"' });
    expect(flags.evaluate("unknownResult", { pick: "constructor" })).toMatchObject({ reason: "ERROR", errorCode: "GENERAL" });
    expect(flags.evaluate("unknownResult", { pick: "on" })).toMatchObject({ reason: "TARGETING_MATCH", value: true });
  });

  it("SPLIT when the variant came from fractional", () => {
    expect(flags.evaluate("split", { targetingKey: "user-1" })).toMatchObject({ reason: "SPLIT" });
  });

  it("DISABLED serves safeVariant when set, else defaultVariant", () => {
    expect(flags.evaluate("killed", { anything: 1 })).toMatchObject({ value: "S", variant: "safe", reason: "DISABLED" });
    expect(flags.evaluate("off", {})).toMatchObject({ value: "P", variant: "plain", reason: "DISABLED" });
  });

  it("FLAG_NOT_FOUND for unknown keys, prototype names included", () => {
    for (const key of ["nope", "constructor", "__proto__", "toString"]) {
      expect(flags.evaluate(key, {})).toMatchObject({ key, value: undefined, reason: "ERROR", errorCode: "FLAG_NOT_FOUND" });
    }
  });

  it("TYPE_MISMATCH when the asked type differs (also for disabled flags); matches pass", () => {
    expect(flags.evaluate("static", {}, "string")).toMatchObject({ reason: "ERROR", errorCode: "TYPE_MISMATCH", value: undefined, errorMessage: 'flag "static" is a boolean flag, asked for string' });
    expect(flags.evaluate("killed", {}, "number")).toMatchObject({ reason: "ERROR", errorCode: "TYPE_MISMATCH" });
    expect(flags.evaluate("object", {}, "boolean")).toMatchObject({ errorCode: "TYPE_MISMATCH" });
    expect(flags.evaluate("object", {}, "object")).toMatchObject({ reason: "STATIC", value: { limit: 10, tags: ["a"] } });
    expect(flags.evaluate("numberResult", {}, "number")).toMatchObject({ errorCode: "TYPE_MISMATCH" }); // its values are strings
    expect(flags.evaluate("static", {}, "bool" as never)).toMatchObject({ errorCode: "TYPE_MISMATCH", errorMessage: 'flag "static" is a boolean flag, asked for an unknown type (bool)' });
  });

  it("merges flag metadata over flag-set metadata", () => {
    expect(flags.evaluate("withMeta", {}).metadata).toEqual({ flagSetId: "shop", team: "checkout" });
  });

  it("reads $flagd.timestamp from the injected clock, in seconds", () => {
    expect(flags.evaluate("clock", {}).value).toBe("b");
    const later = compileFlagSet(set, { now: () => 1_800_000_000_000 });
    expect(later.evaluate("clock", {}).value).toBe("a");
  });

  it("keys() and evaluateAll() cover every flag in order", () => {
    expect(flags.keys()).toEqual(Object.keys(set.flags));
    const all = flags.evaluateAll({ plan: "pro", targetingKey: "u" });
    expect(all.map((r) => [r.key, r.reason])).toEqual([
      ["static", "STATIC"],
      ["targeted", "TARGETING_MATCH"],
      ["booleanResult", "TARGETING_MATCH"],
      ["numberResult", "TARGETING_MATCH"], // n missing: Number(null) + 1 = 1 → variant "1"
      ["unknownResult", "DEFAULT"],
      ["split", "SPLIT"],
      ["killed", "DISABLED"],
      ["off", "DISABLED"],
      ["withMeta", "STATIC"],
      ["object", "STATIC"],
      ["clock", "TARGETING_MATCH"],
      ["loops", "TARGETING_MATCH"],
      ["strings", "TARGETING_MATCH"],
    ]);
  });

  it("returns frozen results and values; the compiled set ignores later changes to its input", () => {
    const input: FlagSet = { flags: { o: { state: "ENABLED", variants: { v: { n: 1 } }, defaultVariant: "v" } } };
    const compiled = compileFlagSet(input);
    (input.flags.o as FlagDefinition).variants.v = { n: 2 };
    const r = compiled.evaluate("o", {});
    expect(r.value).toEqual({ n: 1 });
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.value)).toBe(true);
  });
});

describe("compileFlagSet: prerequisites", () => {
  const flags = compileFlagSet({
    flags: {
      base: onOff({ targeting: { if: [{ "==": [{ var: "region" }, "eu"] }, "on", "off"] } }),
      disabledBase: onOff({ state: "DISABLED", defaultVariant: "on" }),
      brokenBase: onOff({ targeting: { var: "pick" } }),
      feature: { state: "ENABLED", variants: { new: "N", old: "O" }, defaultVariant: "old", targeting: { if: [{ var: "beta" }, "new", null] }, prerequisites: [{ flag: "base", variant: "on" }] },
      chained: onOff({ defaultVariant: "on", prerequisites: [{ flag: "feature", variant: "new" }] }),
      needsDisabled: onOff({ defaultVariant: "on", prerequisites: [{ flag: "disabledBase", variant: "on" }] }),
      needsBroken: onOff({ defaultVariant: "on", prerequisites: [{ flag: "brokenBase", variant: "on" }] }),
    },
  });

  it("evaluates normally when every prerequisite holds", () => {
    expect(flags.evaluate("feature", { region: "eu", beta: true })).toMatchObject({ value: "N", reason: "TARGETING_MATCH" });
    expect(flags.evaluate("feature", { region: "eu", beta: true }).prerequisite).toBeUndefined();
  });

  it("serves defaultVariant with reason DEFAULT and names the prerequisite that failed", () => {
    expect(flags.evaluate("feature", { region: "us", beta: true })).toEqual({ key: "feature", value: "O", variant: "old", reason: "DEFAULT", prerequisite: "base" });
  });

  it("chains: a prerequisite's own prerequisite failing fails it", () => {
    expect(flags.evaluate("chained", { region: "eu", beta: true })).toMatchObject({ reason: "STATIC", value: true });
    expect(flags.evaluate("chained", { region: "us", beta: true })).toMatchObject({ reason: "DEFAULT", prerequisite: "feature" });
  });

  it("a disabled or erroring prerequisite does not hold, even if its served variant matches", () => {
    expect(flags.evaluate("needsDisabled", {})).toMatchObject({ reason: "DEFAULT", prerequisite: "disabledBase" });
    expect(flags.evaluate("needsBroken", { pick: "nope" })).toMatchObject({ reason: "DEFAULT", prerequisite: "brokenBase" });
    expect(flags.evaluate("needsBroken", { pick: "on" })).toMatchObject({ reason: "STATIC" });
  });
});

describe("compileFlagSet: hostile contexts never throw", () => {
  const flags = compileFlagSet(set, { maxIterations: 1000 });
  const targetingFlags = ["targeted", "booleanResult", "unknownResult", "split", "loops", "strings", "clock"];

  it("INVALID_CONTEXT for a context that is not an object; a static flag still answers", () => {
    for (const context of ["user", 42, true, [1, 2], () => 1]) {
      expect(flags.evaluate("targeted", context as unknown as EvaluationContext)).toMatchObject({ reason: "ERROR", errorCode: "INVALID_CONTEXT", value: undefined });
      expect(flags.evaluate("static", context as unknown as EvaluationContext)).toMatchObject({ reason: "STATIC" });
    }
  });

  it("treats a null or undefined context as empty", () => {
    expect(flags.evaluate("targeted", null as unknown as EvaluationContext)).toMatchObject({ reason: "DEFAULT" });
    expect(flags.evaluate("targeted", undefined as unknown as EvaluationContext)).toMatchObject({ reason: "DEFAULT" });
  });

  it("objects where strings are expected, symbols, throwing getters and proxies end as results", () => {
    const throwing = Object.defineProperty({}, "plan", {
      enumerable: true,
      get() {
        throw new Error("getter boom");
      },
    });
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const contexts: unknown[] = [
      { plan: { toString: "not a function" }, country: { length: 1 }, pick: ["on"], targetingKey: { id: 1 }, a: Symbol("s"), b: 1n },
      throwing,
      revoked.proxy,
      Object.create(null) as object,
      JSON.parse('{"__proto__": {"plan": "pro"}, "constructor": "x", "pick": "__proto__"}') as object,
      { a: { valueOf: () => { throw new Error("valueOf boom"); } } },
    ];
    for (const context of contexts) {
      for (const key of targetingFlags) {
        const r = flags.evaluate(key, context as EvaluationContext);
        expect(["DEFAULT", "TARGETING_MATCH", "SPLIT", "ERROR"], `${key}`).toContain(r.reason);
        if (r.reason === "ERROR") expect(r.value).toBeUndefined();
      }
    }
    expect(flags.evaluate("targeted", throwing as EvaluationContext)).toMatchObject({ reason: "ERROR", errorCode: "GENERAL", errorMessage: "targeting failed on this context: getter boom" });
    expect(flags.evaluate("strings", { a: Symbol("s"), b: "y" })).toMatchObject({ reason: "TARGETING_MATCH", value: false });
    expect(flags.evaluate("strings", { a: Object.create(null) as object, b: "y" })).toMatchObject({ reason: "ERROR", errorCode: "GENERAL", errorMessage: "targeting failed on this context: Cannot convert object to primitive value" });
    expect(flags.evaluate("split", { targetingKey: { id: 1 } } as unknown as EvaluationContext)).toMatchObject({ reason: "DEFAULT" });
    expect(flags.evaluate("targeted", JSON.parse('{"__proto__": {"plan": "pro"}}') as EvaluationContext)).toMatchObject({ reason: "DEFAULT" });
  });

  it("bounds huge arrays with maxIterations: ERROR/GENERAL instead of a long stall", () => {
    const items = Array.from({ length: 5000 }, () => "miss");
    expect(flags.evaluate("loops", { items: items.slice(0, 999).concat("hit") })).toMatchObject({ reason: "TARGETING_MATCH", value: true });
    expect(flags.evaluate("loops", { items })).toMatchObject({
      reason: "ERROR",
      errorCode: "GENERAL",
      errorMessage: "targeting visited more array elements than allowed (maxIterations)",
    });
    // The budget is per evaluation: the next one starts afresh.
    expect(flags.evaluate("loops", { items: ["hit"] })).toMatchObject({ reason: "TARGETING_MATCH" });
  });

  it("a context getter that evaluates a flag re-entrantly gets its own state", () => {
    const context = {
      get plan(): string {
        return flags.evaluate("booleanResult", { country: "fr" }).variant === "true" ? "pro" : "free";
      },
    };
    expect(flags.evaluate("targeted", context)).toMatchObject({ reason: "TARGETING_MATCH", value: true });
    expect(flags.evaluate("split", { targetingKey: "user-1" })).toMatchObject({ reason: "SPLIT" });
  });
});
