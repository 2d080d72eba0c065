// checkFlagSet: a valid set passes unchanged; each kind of problem is reported at its path.
import { describe, expect, it } from "vitest";
import { KeelsonError } from "../errors.js";
import { checkFlagSet } from "./check-flag-set.js";
import { compileFlagSet } from "./compile-flag-set.js";
import type { FlagDefinition, FlagSet } from "./flag-set.js";

const onOff = (extra: Partial<FlagDefinition> = {}): FlagDefinition => ({ state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", ...extra });

/** The issues of a rejected set as "path: message". */
function problems(input: unknown): string[] {
  const checked = checkFlagSet(input);
  if (checked.ok) throw new Error("expected a rejection");
  return checked.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

describe("checkFlagSet", () => {
  it("accepts a valid set with every feature and returns it unchanged", () => {
    const set: FlagSet = {
      flags: {
        base: onOff({ type: "release", owner: "team-a", description: "new base", metadata: { ticket: 7 } }),
        checkout: {
          state: "ENABLED",
          variants: { a: "A", b: "B", safe: "S" },
          defaultVariant: "a",
          safeVariant: "safe",
          type: "kill-switch",
          prerequisites: [{ flag: "base", variant: "on" }],
          targeting: { if: [{ $ref: "beta" }, { fractional: [["a", 1], ["b", 1]] }, null] },
        },
        empty: onOff({ targeting: {} }),
      },
      $evaluators: { beta: { in: [{ var: "plan" }, ["pro", "team"]] } },
      metadata: { flagSetId: "shop" },
    };
    const checked = checkFlagSet(set);
    expect(checked).toEqual({ ok: true, set });
  });

  it("reports the structure with paths: bad state, missing fields, wrong types, unknown fields with a hint", () => {
    expect(problems({ flags: { f: { ...onOff(), state: "ON" } } })).toEqual(['flags.f.state: Invalid option: expected one of "ENABLED"|"DISABLED"']);
    expect(problems({ flags: { f: { state: "ENABLED", variants: { on: true } } } })).toEqual(["flags.f.defaultVariant: Invalid input: expected string, received undefined"]);
    expect(problems({ flags: { f: { ...onOff(), colour: "red" } } })).toEqual([
      "flags.f.colour: unknown field; a flag has: state, variants, defaultVariant, targeting, metadata, type, owner, description, prerequisites, safeVariant",
    ]);
    expect(problems({ flags: { f: onOff({ type: "temporary" as never }) } })[0]).toMatch(/^flags\.f\.type: Invalid option/);
    expect(problems({ flags: {}, $schema: "x" })).toEqual(["$schema: unknown field; a flag set (a flagd file goes through importFlagd) has: flags, $evaluators, metadata"]);
    expect(problems({ flags: { f: onOff({ metadata: { invalid: { key: "value" } as never } }) } })[0]).toMatch(/^flags\.f\.metadata\.invalid: Invalid input/);
    expect(problems(null)).toEqual([": Invalid input: expected object, received null"]);
  });

  it("reports variant problems: none, mixed types, null, non-JSON, __proto__", () => {
    expect(problems({ flags: { f: { state: "ENABLED", variants: {}, defaultVariant: "x" } } })).toEqual(["flags.f.variants: a flag needs at least one variant", 'flags.f.defaultVariant: "x" is not a variant (variants: )']);
    expect(problems({ flags: { f: { state: "ENABLED", variants: { on: true, off: "false" }, defaultVariant: "on" } } })).toEqual([
      'flags.f.variants.off: variant "off" is a string but "on" is a boolean; all variants of a flag have one type',
    ]);
    expect(problems({ flags: { f: { state: "ENABLED", variants: { on: true, off: null }, defaultVariant: "on" } } })).toEqual(["flags.f.variants.off: a variant is a boolean, string, number or object (null is not a value)"]);
    expect(problems({ flags: { f: { state: "ENABLED", variants: { a: { fn: () => 1 } }, defaultVariant: "a" } } })).toEqual(["flags.f.variants.a.fn: function is not a JSON value"]);
    expect(problems({ flags: { f: { state: "ENABLED", variants: { a: new Date(0) }, defaultVariant: "a" } } })).toEqual(["flags.f.variants.a: must be plain JSON (an object literal), not a class instance"]);
    expect(problems(JSON.parse('{"flags": {"f": {"state": "ENABLED", "defaultVariant": "a", "variants": {"a": 1, "__proto__": 2}}}}'))).toEqual(['flags.f.variants.__proto__: "__proto__" is not allowed as a key']);
    expect(problems(JSON.parse('{"flags": {"__proto__": {"state": "ENABLED", "defaultVariant": "a", "variants": {"a": 1}}}}'))).toEqual(['flags.__proto__: "__proto__" is not allowed as a key']);
  });

  it("reports defaultVariant and safeVariant that name no variant, and reserved keelson.* metadata", () => {
    expect(problems({ flags: { f: onOff({ defaultVariant: "maybe" }) } })).toEqual(['flags.f.defaultVariant: "maybe" is not a variant (variants: on, off)']);
    expect(problems({ flags: { f: onOff({ safeVariant: "constructor" }) } })).toEqual(['flags.f.safeVariant: "constructor" is not a variant (variants: on, off)']);
    expect(problems({ flags: { f: onOff({ metadata: { "keelson.owner": "x" } }) } })).toEqual([
      'flags.f.metadata.keelson.owner: metadata keys starting with "keelson." are reserved for the Keelson fields written on export',
    ]);
  });

  it("reports targeting problems at their full path", () => {
    expect(problems({ flags: { f: onOff({ targeting: { if: [{ bogus: [1] }, "on", "off"] } }) } })).toEqual(['flags.f.targeting.if.0.bogus: unknown operator "bogus"']);
    expect(problems({ flags: { f: onOff({ targeting: { if: [{ "==": [{ var: "x" }] }, "on", "off"] } }) } })).toEqual(["flags.f.targeting.if.0.==: == takes 2 arguments, got 1"]);
    expect(problems({ flags: { f: onOff({ targeting: { if: [{ var: "beta" }, "on", "of"] } }) } })).toEqual(['flags.f.targeting.if.2: targeting can return "of", which is not a variant (variants: on, off)']);
    expect(problems({ flags: { f: onOff({ targeting: { "not-a-real-rule": [1, 2] } }) } })).toEqual(['flags.f.targeting.not-a-real-rule: unknown operator "not-a-real-rule"']);
  });

  it("reports $ref problems: missing where used, cycles and bad rules at $evaluators.<name>, each once", () => {
    expect(problems({ flags: { f: onOff({ targeting: { if: [{ $ref: "nope" }, "on", "off"] } }) } })).toEqual(['flags.f.targeting.if.0.$ref: $ref "nope" names no entry of $evaluators']);
    expect(
      problems({
        flags: { f: onOff({ targeting: { if: [{ $ref: "a" }, "on", "off"] } }), g: onOff({ targeting: { if: [{ $ref: "a" }, "on", "off"] } }) },
        $evaluators: { a: { or: [{ $ref: "b" }, { var: "x" }] }, b: { and: [{ $ref: "a" }] }, broken: { nope: [] } },
      }),
    ).toEqual(['$evaluators.broken.nope: unknown operator "nope"', "$evaluators.a: $ref cycle: a → b → a"]);
  });

  it("reports prerequisites: missing flag, missing variant, itself, cycles", () => {
    expect(problems({ flags: { f: onOff({ prerequisites: [{ flag: "ghost", variant: "on" }] }) } })).toEqual(['flags.f.prerequisites.0.flag: no flag "ghost" in this set']);
    expect(problems({ flags: { f: onOff({ prerequisites: [{ flag: "g", variant: "yes" }] }), g: onOff() } })).toEqual(['flags.f.prerequisites.0.variant: flag "g" has no variant "yes" (variants: on, off)']);
    expect(problems({ flags: { f: onOff({ prerequisites: [{ flag: "f", variant: "on" }] }) } })).toEqual(["flags.f.prerequisites.0.flag: a flag cannot be its own prerequisite"]);
    expect(
      problems({
        flags: { a: onOff({ prerequisites: [{ flag: "b", variant: "on" }] }), b: onOff({ prerequisites: [{ flag: "c", variant: "on" }] }), c: onOff({ prerequisites: [{ flag: "a", variant: "on" }] }) },
      }),
    ).toEqual(["flags.a.prerequisites: prerequisite cycle: a → b → c → a"]);
  });

  it("rejects at write time the flagd-testbed flags that flagd only defaults at run time", () => {
    const testbed = {
      "semver-invalid-operator-flag": { sem_ver: [{ var: "version" }, "===", "1.0.0"] },
      "semver-wrong-args-flag": { sem_ver: [{ var: "version" }, "="] },
      "starts-with-wrong-args-flag": { starts_with: ["abc"] },
      "ends-with-wrong-args-flag": { ends_with: ["xyz"] },
      "fractional-negative-weight-flag": { fractional: [{ var: "targetingKey" }, ["one", -50], ["two", 100]] },
    };
    const flags = Object.fromEntries(Object.entries(testbed).map(([k, targeting]) => [k, { state: "ENABLED", variants: { one: "one", two: "two", true: "true", false: "false", fallback: "fallback" }, defaultVariant: "fallback", targeting }]));
    expect(problems({ flags })).toEqual([
      'flags.semver-invalid-operator-flag.targeting.sem_ver.1: "===" is not a sem_ver operator (=, !=, <, <=, >, >=, ^, ~)',
      "flags.semver-wrong-args-flag.targeting.sem_ver: sem_ver takes 3 arguments, got 2",
      "flags.starts-with-wrong-args-flag.targeting.starts_with: starts_with takes 2 arguments, got 1",
      "flags.ends-with-wrong-args-flag.targeting.ends_with: ends_with takes 2 arguments, got 1",
      "flags.fractional-negative-weight-flag.targeting.fractional.1.1: a weight is an integer from 0 to 2147483647, got -50",
    ]);
  });

  it("answers a hostile input (a throwing getter) with an issue instead of throwing", () => {
    const hostile = {
      get flags(): never {
        throw new Error("boom");
      },
    };
    expect(problems(hostile)).toEqual([": the flag set could not be read: boom"]);
  });
});

describe("compileFlagSet on an invalid set", () => {
  it("throws KEELSON_ERR_INVALID_INPUT with every issue in details", () => {
    let caught: unknown;
    try {
      compileFlagSet({ flags: { f: onOff({ defaultVariant: "maybe", safeVariant: "nah" }) } });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(KeelsonError);
    const e = caught as KeelsonError;
    expect(e.code).toBe("KEELSON_ERR_INVALID_INPUT");
    expect(e.message).toBe('invalid flag set: flags.f.defaultVariant: "maybe" is not a variant (variants: on, off); flags.f.safeVariant: "nah" is not a variant (variants: on, off)');
    expect((e.details as { issues: unknown[] }).issues).toHaveLength(2);
  });
});
