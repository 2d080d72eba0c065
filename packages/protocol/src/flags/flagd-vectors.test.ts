// flagd's published vectors: the flagd-testbed evaluator suite (evaluator/flags/testkit-flags.json
// with the gherkin tables of evaluator/gherkin/*.feature, @fractional-v2) and the cases of flagd's
// core/pkg/evaluator/fractional_test.go. Flag definitions are copied as data; expectations verbatim.
import { describe, expect, it } from "vitest";
import { compileFlagSet } from "./compile-flag-set.js";
import type { FlagSet } from "./flag-set.js";

const suits = { clubs: "clubs", diamonds: "diamonds", hearts: "hearts", spades: "spades", wild: "wild" };
const fourSuits = [["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]];
const isBallmer = { "==": ["ballmer@macrosoft.com", { var: ["email"] }] };

/** A subset of flagd-testbed's testkit-flags.json (those Keelson accepts; see check-flag-set.test.ts for the rest). */
const testkit: FlagSet = {
  flags: {
    "boolean-flag": { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" },
    "string-flag": { state: "ENABLED", variants: { greeting: "hi", parting: "bye" }, defaultVariant: "greeting" },
    "integer-flag": { state: "ENABLED", variants: { one: 1, ten: 10 }, defaultVariant: "ten" },
    "float-flag": { state: "ENABLED", variants: { tenth: 0.1, half: 0.5 }, defaultVariant: "half" },
    "object-flag": { state: "ENABLED", variants: { empty: {}, template: { showImages: true, title: "Check out these pics!", imagesPerPage: 100 } }, defaultVariant: "template" },
    "wrong-flag": { state: "ENABLED", variants: { one: "uno", two: "dos" }, defaultVariant: "one" },
    "boolean-zero-flag": { state: "ENABLED", variants: { zero: false, "non-zero": true }, defaultVariant: "zero" },
    "string-zero-flag": { state: "ENABLED", variants: { zero: "", "non-zero": "str" }, defaultVariant: "zero" },
    "integer-targeted-zero-flag": { state: "ENABLED", variants: { zero: 0, "non-zero": 1 }, targeting: { if: [{ $ref: "is_ballmer" }, "zero"] }, defaultVariant: "zero" },
    "metadata-flag": { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on", metadata: { string: "1.0.2", integer: 2, boolean: true, float: 0.1 } },
    "some-email-targeted-flag": { state: "ENABLED", variants: { hi: "hi", bye: "bye", none: "none" }, defaultVariant: "none", targeting: { if: [{ $ref: "is_ballmer" }, "hi", "bye"] } },
    "some-other-email-targeted-flag": { state: "ENABLED", variants: { yes: "yes", no: "no", none: "none" }, defaultVariant: "none", targeting: { if: [{ $ref: "is_ballmer" }, "yes", "no"] } },
    "fractional-flag": { state: "ENABLED", variants: suits, defaultVariant: "wild", targeting: { fractional: [{ cat: [{ var: "$flagd.flagKey" }, { var: "user.name" }] }, ...fourSuits] } },
    "fractional-flag-shorthand": { state: "ENABLED", variants: { heads: "heads", tails: "tails", draw: "draw" }, defaultVariant: "draw", targeting: { fractional: [["heads"], ["tails", 1]] } },
    "fractional-flag-A-shared-seed": { state: "ENABLED", variants: suits, defaultVariant: "wild", targeting: { fractional: [{ cat: ["shared-seed", { var: "user.name" }] }, ...fourSuits] } },
    "fractional-flag-B-shared-seed": {
      state: "ENABLED",
      variants: { clubs: "ace-of-clubs", diamonds: "ace-of-diamonds", hearts: "ace-of-hearts", spades: "ace-of-spades", wild: "wild" },
      defaultVariant: "wild",
      targeting: { fractional: [{ cat: ["shared-seed", { var: "user.name" }] }, ...fourSuits] },
    },
    "fractional-hash-edge-flag": { state: "ENABLED", variants: { lower: "lower", upper: "upper" }, defaultVariant: "lower", targeting: { fractional: [{ var: "targetingKey" }, ["lower", 50], ["upper", 50]] } },
    "fractional-single-entry-flag": { state: "ENABLED", variants: { single: "single", fallback: "fallback" }, defaultVariant: "fallback", targeting: { fractional: [["single", 1]] } },
    "fractional-nested-if-flag": {
      state: "ENABLED",
      variants: { premium: "premium", standard: "standard", fallback: "fallback" },
      defaultVariant: "fallback",
      targeting: { fractional: [{ var: "targetingKey" }, [{ if: [{ "==": [{ var: "tier" }, "premium"] }, "premium", "standard"] }, 50], ["standard", 50]] },
    },
    "fractional-nested-var-flag": {
      state: "ENABLED",
      variants: { red: "red", green: "green", blue: "blue", fallback: "fallback" },
      defaultVariant: "fallback",
      targeting: { fractional: [{ var: "targetingKey" }, [{ var: "color" }, 50], ["blue", 50]] },
    },
    "fractional-nested-weight-flag": {
      state: "ENABLED",
      variants: { red: "red", blue: "blue", fallback: "fallback" },
      defaultVariant: "fallback",
      targeting: { fractional: [{ var: "targetingKey" }, ["red", { if: [{ "==": [{ var: "tier" }, "premium"] }, 100, 0] }], ["blue", 10]] },
    },
    "fractional-as-condition-flag": { state: "ENABLED", variants: { big: "hundreds", small: "ones", fallback: "zero" }, defaultVariant: "fallback", targeting: { if: [{ fractional: [[false, 0], [true, 100]] }, "big", "small"] } },
    "fractional-as-condition-false-flag": { state: "ENABLED", variants: { big: "hundreds", small: "ones", fallback: "zero" }, defaultVariant: "fallback", targeting: { if: [{ fractional: [[false, 100], [true, 0]] }, "big", "small"] } },
    "fractional-null-bucket-key-flag": { state: "ENABLED", variants: { one: "one", two: "two", fallback: "fallback" }, defaultVariant: "fallback", targeting: { fractional: [{ var: "missing_key" }, ["one", 50], ["two", 50]] } },
    "fractional-zero-weights-flag": { state: "ENABLED", variants: { one: "one", two: "two", fallback: "fallback" }, defaultVariant: "fallback", targeting: { fractional: [{ var: "targetingKey" }, ["one", 0], ["two", 0]] } },
    // testbed writes ["one", -50], which flagd's schema (and Keelson) reject as a literal; a computed negative weight is what flagd clamps.
    "fractional-negative-weight-flag": { state: "ENABLED", variants: { one: "one", two: "two", fallback: "fallback" }, defaultVariant: "fallback", targeting: { fractional: [{ var: "targetingKey" }, ["one", { "-": [0, 50] }], ["two", 100]] } },
    "starts-ends-flag": {
      state: "ENABLED",
      variants: { prefix: "prefix", postfix: "postfix", none: "none" },
      defaultVariant: "none",
      targeting: { if: [{ starts_with: [{ var: "id" }, "abc"] }, "prefix", { if: [{ ends_with: [{ var: "id" }, "xyz"] }, "postfix", "none"] }] },
    },
    "starts-with-non-string-flag": { state: "ENABLED", variants: { true: "true", false: "false", fallback: "fallback" }, defaultVariant: "fallback", targeting: { starts_with: [{ var: "num" }, "abc"] } },
    "ends-with-non-string-flag": { state: "ENABLED", variants: { true: "true", false: "false", fallback: "fallback" }, defaultVariant: "fallback", targeting: { ends_with: [{ var: "num" }, "xyz"] } },
    "equal-greater-lesser-version-flag": {
      state: "ENABLED",
      variants: { equal: "equal", greater: "greater", lesser: "lesser", none: "none" },
      defaultVariant: "none",
      targeting: {
        if: [{ sem_ver: [{ var: "version" }, "=", "2.0.0"] }, "equal", { if: [{ sem_ver: [{ var: "version" }, ">", "2.0.0"] }, "greater", { if: [{ sem_ver: [{ var: "version" }, "<", "2.0.0"] }, "lesser", "none"] }] }],
      },
    },
    "major-minor-version-flag": {
      state: "ENABLED",
      variants: { minor: "minor", major: "major", none: "none" },
      defaultVariant: "none",
      targeting: { if: [{ sem_ver: [{ var: "version" }, "~", "3.0.0"] }, "minor", { if: [{ sem_ver: [{ var: "version" }, "^", "3.0.0"] }, "major", "none"] }] },
    },
    "semver-invalid-version-flag": { state: "ENABLED", variants: { true: "true", false: "false", fallback: "fallback" }, defaultVariant: "fallback", targeting: { sem_ver: [{ var: "version" }, "=", "1.0.0"] } },
    "semver-v-prefix-flag": { state: "ENABLED", variants: { match: "match", "no-match": "no-match" }, defaultVariant: "no-match", targeting: { if: [{ sem_ver: [{ var: "version" }, "=", "v1.0.0"] }, "match", "no-match"] } },
    "semver-partial-version-flag": { state: "ENABLED", variants: { match: "match", "no-match": "no-match" }, defaultVariant: "no-match", targeting: { if: [{ sem_ver: [{ var: "version" }, "^", "1"] }, "match", "no-match"] } },
    "semver-build-metadata-flag": { state: "ENABLED", variants: { match: "match", "no-match": "no-match" }, defaultVariant: "no-match", targeting: { if: [{ sem_ver: [{ var: "version" }, "=", "1.0.0+build"] }, "match", "no-match"] } },
    "semver-numeric-context-flag": { state: "ENABLED", variants: { match: "match", "no-match": "no-match" }, defaultVariant: "no-match", targeting: { if: [{ sem_ver: [{ var: "version" }, ">", "1.1"] }, "match", "no-match"] } },
    "targeting-key-flag": {
      state: "ENABLED",
      variants: { miss: "miss", hit: "hit" },
      defaultVariant: "miss",
      targeting: { if: [{ "==": [{ var: "targetingKey" }, "5c3d8535-f81a-4478-a6d3-afaa4d51199e"] }, "hit", null] },
    },
    "ref-whitespace-compact-flag": { state: "ENABLED", variants: { hi: "hi", bye: "bye", fallback: "fallback" }, defaultVariant: "fallback", targeting: { if: [{ $ref: "is_ballmer" }, "hi", "bye"] } },
    "disabled-string-flag": { state: "DISABLED", variants: { greeting: "hi", parting: "bye" }, defaultVariant: "greeting" },
  },
  $evaluators: { is_ballmer: isBallmer },
};

const flags = compileFlagSet(testkit);
const value = (key: string, context: Record<string, unknown> = {}): unknown => flags.evaluate(key, context).value;

describe("flagd-testbed: fractional (@fractional-v2)", () => {
  it.each([
    ["jack", "hearts"],
    ["queen", "spades"],
    ["ten", "clubs"],
    ["nine", "diamonds"],
    ["3", "clubs"],
  ])("fractional-flag, user.name %s → %s (reason SPLIT)", (name, expected) => {
    const r = flags.evaluate("fractional-flag", { user: { name } });
    expect(r).toMatchObject({ value: expected, variant: expected, reason: "SPLIT" });
  });

  it.each([
    ["jack", "hearts"],
    ["queen", "spades"],
    ["ten", "clubs"],
    ["nine", "diamonds"],
    ["3", "clubs"],
  ])("the same bucketing value comes from flagKey + targetingKey when no expression is given: %s → %s", (targetingKey, expected) => {
    const byKey = compileFlagSet({ flags: { "fractional-flag": { state: "ENABLED", variants: suits, defaultVariant: "wild", targeting: { fractional: fourSuits } } } });
    expect(byKey.evaluate("fractional-flag", { targetingKey }).value).toBe(expected);
  });

  it.each([
    ["jon@company.com", "heads"],
    ["jane@company.com", "tails"],
  ])("shorthand (weights default to 1): %s → %s", (targetingKey, expected) => {
    expect(value("fractional-flag-shorthand", { targetingKey })).toBe(expected);
  });

  it.each([
    ["seven", "hearts", "ace-of-hearts"],
    ["eight", "diamonds", "ace-of-diamonds"],
    ["nine", "clubs", "ace-of-clubs"],
    ["two", "spades", "ace-of-spades"],
  ])("shared seed: %s → %s / %s", (name, a, b) => {
    expect(value("fractional-flag-A-shared-seed", { user: { name } })).toBe(a);
    expect(value("fractional-flag-B-shared-seed", { user: { name } })).toBe(b);
  });

  it.each([
    ["ejOoVL", "lower"], // hash 0x00000000
    ["bY9fO-", "lower"], // 0x00000001
    ["SI7p-", "lower"], // 0x7fffffff
    ["6LvT0", "upper"], // 0x80000000
    ["ceQdGm", "upper"], // 0xffffffff
  ])("hash edge %s → %s", (targetingKey, expected) => {
    expect(value("fractional-hash-edge-flag", { targetingKey })).toBe(expected);
  });

  it("a single bucket always wins", () => {
    expect(value("fractional-single-entry-flag", { targetingKey: "some-targeting-key" })).toBe("single");
  });

  it.each([
    ["jon@company.com", "premium", "premium"],
    ["jon@company.com", "basic", "standard"],
    ["user1", "premium", "standard"],
    ["user1", "basic", "standard"],
  ])("nested if as variant: %s/%s → %s", (targetingKey, tier, expected) => {
    expect(value("fractional-nested-if-flag", { targetingKey, tier })).toBe(expected);
  });

  it.each([
    ["jon@company.com", "red", "red", "SPLIT"],
    ["jon@company.com", "green", "green", "SPLIT"],
    ["user1", "red", "blue", "SPLIT"],
  ])("nested var as variant: %s/%s → %s", (targetingKey, color, expected, reason) => {
    expect(flags.evaluate("fractional-nested-var-flag", { targetingKey, color })).toMatchObject({ value: expected, reason });
  });

  it.each(["yellow", ""])("nested var naming no variant (%j) is an error, as in flagd (the testbed sees its code default)", (color) => {
    expect(flags.evaluate("fractional-nested-var-flag", { targetingKey: "jon@company.com", color })).toMatchObject({ value: undefined, reason: "ERROR", errorCode: "GENERAL" });
  });

  it("nested var that is absent makes the bucket null: the default variant, reason DEFAULT", () => {
    expect(flags.evaluate("fractional-nested-var-flag", { targetingKey: "jon@company.com" })).toMatchObject({ value: "fallback", reason: "DEFAULT" });
  });

  it.each([
    ["jon@company.com", "premium", "red"],
    ["jon@company.com", "basic", "blue"],
    ["user1", "premium", "red"],
    ["user1", "basic", "blue"],
  ])("nested if as weight: %s/%s → %s", (targetingKey, tier, expected) => {
    expect(value("fractional-nested-weight-flag", { targetingKey, tier })).toBe(expected);
  });

  it("fractional as a condition selects the if branch (reason TARGETING_MATCH, not SPLIT)", () => {
    expect(flags.evaluate("fractional-as-condition-flag", { targetingKey: "some-targeting-key" })).toMatchObject({ value: "hundreds", reason: "TARGETING_MATCH" });
    expect(flags.evaluate("fractional-as-condition-false-flag", { targetingKey: "some-targeting-key" })).toMatchObject({ value: "ones", reason: "TARGETING_MATCH" });
  });

  it("no bucketing value, all-zero weights → DEFAULT; a computed negative weight is clamped to 0", () => {
    expect(flags.evaluate("fractional-null-bucket-key-flag", {})).toMatchObject({ value: "fallback", reason: "DEFAULT" });
    expect(flags.evaluate("fractional-zero-weights-flag", { targetingKey: "any-user" })).toMatchObject({ value: "fallback", reason: "DEFAULT" });
    expect(value("fractional-negative-weight-flag", { targetingKey: "any-user" })).toBe("two");
  });
});

describe("flagd-testbed: sem_ver, starts_with/ends_with, targeting key, $ref", () => {
  it.each([
    ["2.0.0", "equal"],
    ["2.1.0", "greater"],
    ["1.9.0", "lesser"],
    ["2.0.0-alpha", "lesser"],
    ["2.0.0.0", "none"],
  ])("equal-greater-lesser %s → %s", (version, expected) => {
    expect(value("equal-greater-lesser-version-flag", { version })).toBe(expected);
  });

  it.each([
    ["3.0.1", "minor"],
    ["3.1.0", "major"],
    ["4.0.0", "none"],
  ])("major-minor %s → %s", (version, expected) => {
    expect(value("major-minor-version-flag", { version })).toBe(expected);
  });

  it("an invalid version answers null, so the default variant is served with reason DEFAULT", () => {
    expect(flags.evaluate("semver-invalid-version-flag", { version: "not-a-version" })).toMatchObject({ value: "fallback", reason: "DEFAULT" });
  });

  it.each([
    ["1.0.0", "match"],
    ["v1.0.0", "match"],
    ["V1.0.0", "match"],
    ["2.0.0", "no-match"],
  ])("v prefix %s → %s", (version, expected) => {
    expect(value("semver-v-prefix-flag", { version })).toBe(expected);
  });

  it.each([
    ["1.5.0", "match"],
    ["1.0.0", "match"],
    ["1.0", "match"],
    ["1", "match"],
    [1, "match"],
    [1.2, "match"],
    ["2.0.0", "no-match"],
  ])("partial version %s → %s", (version, expected) => {
    expect(value("semver-partial-version-flag", { version })).toBe(expected);
  });

  it.each([
    [1.2, "match"],
    [1.1, "no-match"],
    [2, "match"],
    [1, "no-match"],
    ["1.2", "match"],
  ])("numeric context %s → %s", (version, expected) => {
    expect(value("semver-numeric-context-flag", { version })).toBe(expected);
  });

  it.each([
    ["1.0.0", "match"],
    ["1.0.0+other", "match"],
    ["2.0.0", "no-match"],
  ])("build metadata ignored: %s → %s", (version, expected) => {
    expect(value("semver-build-metadata-flag", { version })).toBe(expected);
  });

  it.each([
    ["abcdef", "prefix"],
    ["uvwxyz", "postfix"],
    ["abcxyz", "prefix"],
    ["lmnopq", "none"],
  ])("starts_with/ends_with %s → %s", (id, expected) => {
    expect(value("starts-ends-flag", { id })).toBe(expected);
  });

  it("starts_with/ends_with on a non-string answer null: DEFAULT, not the 'false' variant", () => {
    expect(flags.evaluate("starts-with-non-string-flag", { num: 123 })).toMatchObject({ value: "fallback", reason: "DEFAULT" });
    expect(flags.evaluate("ends-with-non-string-flag", { num: 123 })).toMatchObject({ value: "fallback", reason: "DEFAULT" });
  });

  it("targeting by targeting key: TARGETING_MATCH or DEFAULT", () => {
    expect(flags.evaluate("targeting-key-flag", { targetingKey: "5c3d8535-f81a-4478-a6d3-afaa4d51199e" })).toMatchObject({ value: "hit", reason: "TARGETING_MATCH" });
    expect(flags.evaluate("targeting-key-flag", { targetingKey: "f20bd32d-703b-48b6-bc8e-79d53c85134a" })).toMatchObject({ value: "miss", reason: "DEFAULT" });
  });

  it("$ref shares an evaluator between flags", () => {
    const email = "ballmer@macrosoft.com";
    expect(value("some-email-targeted-flag", { email })).toBe("hi");
    expect(value("some-other-email-targeted-flag", { email })).toBe("yes");
    expect(flags.evaluate("ref-whitespace-compact-flag", { email })).toMatchObject({ value: "hi", reason: "TARGETING_MATCH" });
    expect(flags.evaluate("ref-whitespace-compact-flag", { email: "user@example.com" })).toMatchObject({ value: "bye", reason: "TARGETING_MATCH" });
  });
});

describe("flagd-testbed: evaluation, zero values, errors, metadata, disabled", () => {
  it("resolves static values of every type with reason STATIC", () => {
    expect(flags.evaluate("boolean-flag", {}, "boolean")).toMatchObject({ value: true, variant: "on", reason: "STATIC" });
    expect(flags.evaluate("string-flag", {}, "string")).toMatchObject({ value: "hi", reason: "STATIC" });
    expect(flags.evaluate("integer-flag", {}, "number")).toMatchObject({ value: 10, reason: "STATIC" });
    expect(flags.evaluate("float-flag", {}, "number")).toMatchObject({ value: 0.5, reason: "STATIC" });
    expect(flags.evaluate("object-flag", {}, "object").value).toEqual({ showImages: true, title: "Check out these pics!", imagesPerPage: 100 });
  });

  it("zero values are values: false, \"\" and 0 (static, targeted and default)", () => {
    expect(flags.evaluate("boolean-zero-flag", {})).toMatchObject({ value: false, reason: "STATIC" });
    expect(flags.evaluate("string-zero-flag", {})).toMatchObject({ value: "", reason: "STATIC" });
    expect(flags.evaluate("integer-targeted-zero-flag", { email: "ballmer@macrosoft.com" })).toMatchObject({ value: 0, reason: "TARGETING_MATCH" });
    expect(flags.evaluate("integer-targeted-zero-flag", { email: "ballmer@none.com" })).toMatchObject({ value: 0, reason: "DEFAULT" });
  });

  it("FLAG_NOT_FOUND and TYPE_MISMATCH", () => {
    expect(flags.evaluate("missing-flag", {})).toMatchObject({ reason: "ERROR", errorCode: "FLAG_NOT_FOUND", value: undefined });
    expect(flags.evaluate("wrong-flag", {}, "number")).toMatchObject({ reason: "ERROR", errorCode: "TYPE_MISMATCH", value: undefined });
  });

  it("returns flag metadata, and none for flags without", () => {
    expect(flags.evaluate("metadata-flag", {}).metadata).toEqual({ string: "1.0.2", integer: 2, boolean: true, float: 0.1 });
    expect(flags.evaluate("boolean-flag", {}).metadata).toBeUndefined();
  });

  it("a disabled flag answers reason DISABLED (Keelson: with the default variant's value)", () => {
    expect(flags.evaluate("disabled-string-flag", {})).toMatchObject({ value: "hi", variant: "greeting", reason: "DISABLED" });
  });
});

describe("flagd core/pkg/evaluator/fractional_test.go", () => {
  const colors = { red: "#FF0000", blue: "#0000FF", green: "#00FF00", yellow: "#FFFF00" };
  const buckets = [["red", 25], ["blue", 25], ["green", 25], ["yellow", 25]];
  const onFaas = (fractional: unknown): unknown => ({ if: [{ in: ["@faas.com", { var: ["email"] }] }, { fractional }, null] });
  const go = compileFlagSet({
    flags: {
      headerColor: { state: "ENABLED", variants: colors, defaultVariant: "red", targeting: onFaas([{ cat: [{ var: "$flagd.flagKey" }, { var: "email" }] }, ...buckets]) },
      customSeededHeaderColor: { state: "ENABLED", variants: colors, defaultVariant: "red", targeting: onFaas([{ cat: ["my-seed", { var: "email" }] }, ...buckets]) },
      footerColor: { state: "ENABLED", variants: colors, defaultVariant: "red", targeting: onFaas([{ var: "email" }, ...buckets]) },
    },
  });
  const byKey = (targeting: unknown) => compileFlagSet({ flags: { headerColor: { state: "ENABLED", variants: colors, defaultVariant: "red", targeting } } });

  it.each([
    ["rachel@faas.com", "blue", "green"],
    ["monica@faas.com", "yellow", "red"],
    ["joey@faas.com", "red", "blue"],
    ["ross@faas.com", "blue", "green"],
  ])("%s → %s (flag-key seed), %s (custom seed)", (email, a, b) => {
    expect(go.evaluate("headerColor", { email }).variant).toBe(a);
    expect(go.evaluate("customSeededHeaderColor", { email }).variant).toBe(b);
  });

  it("ross@faas.com with a different flag key → red", () => {
    expect(go.evaluate("footerColor", { email: "ross@faas.com" }).variant).toBe("red");
  });

  it("weights that are not percentages, and absent weights → blue for foo@foo.com", () => {
    expect(byKey({ fractional: [{ var: "email" }, ["red", 25], ["blue", 25]] }).evaluate("headerColor", { email: "foo@foo.com" }).variant).toBe("blue");
    expect(byKey({ fractional: [{ var: "email" }, ["red"], ["blue"]] }).evaluate("headerColor", { email: "foo@foo.com" }).variant).toBe("blue");
  });

  it("targetingKey is the default bucketing value, also when the bucketing expression is null", () => {
    expect(byKey({ fractional: [["blue", 50], ["green", 50]] }).evaluate("headerColor", { targetingKey: "foo@foo.com" }).variant).toBe("green");
    expect(byKey({ fractional: [{ var: "email" }, ["red", 50], ["blue", 50]] }).evaluate("headerColor", { targetingKey: "foo@foo.com" }).variant).toBe("blue");
  });

  it("a null, missing or empty targetingKey serves the default variant with reason DEFAULT (flagd: no error)", () => {
    const f = byKey({ fractional: [["blue", 50], ["green", 50]] });
    for (const context of [{ targetingKey: null }, {}, { targetingKey: "" }]) {
      expect(f.evaluate("headerColor", context as Record<string, unknown>)).toMatchObject({ variant: "red", reason: "DEFAULT" });
    }
  });

  it("negative weights from a computation clamp to 0: red -1000, green 1 → green", () => {
    expect(byKey({ fractional: [["red", { "-": [0, 1000] }], ["green", 1]] }).evaluate("headerColor", { targetingKey: "some-targeting-key" }).variant).toBe("green");
  });

  it("weights computed from context variables", () => {
    const f = byKey({ fractional: [{ var: "email" }, ["red", { var: "redWeight" }], ["blue", { var: "blueWeight" }], ["green", { var: "greenWeight" }]] });
    const at = (r: number, b: number, g: number): unknown => f.evaluate("headerColor", { email: "x@y.z", redWeight: r, blueWeight: b, greenWeight: g }).variant;
    expect(at(0, 1, 0)).toBe("blue");
    expect(at(1, 0, 0)).toBe("red");
    expect(at(0, 0, 1)).toBe("green");
  });
});
