// flagd files in and out: a lossless round trip (extensions through keelson.* metadata), only
// flagd's fields on export, the array form, and issues that name places in the file.
import { describe, expect, it } from "vitest";
import { KeelsonError } from "../errors.js";
import { compileFlagSet } from "./compile-flag-set.js";
import type { FlagSet } from "./flag-set.js";
import { exportFlagd, FLAGD_SCHEMA_URL, importFlagd } from "./flagd-file.js";

/** flagd's documented example (docs/reference/custom-operations/fractional-operation.md) plus an evaluator and metadata. */
const flagdFile = `{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "metadata": { "flagSetId": "colors", "version": "3" },
  "flags": {
    "headerColor": {
      "variants": { "red": "#FF0000", "blue": "#0000FF", "green": "#00FF00" },
      "defaultVariant": "red",
      "state": "ENABLED",
      "targeting": {
        "fractional": [
          { "cat": [{ "var": "$flagd.flagKey" }, { "var": "email" }] },
          ["red", 50], ["blue", 20], ["green", 30]
        ]
      }
    },
    "welcome": {
      "state": "ENABLED",
      "variants": { "on": true, "off": false },
      "defaultVariant": "off",
      "targeting": { "if": [{ "$ref": "staff" }, "on", null] },
      "metadata": { "ticket": 12 },
      "somethingFlagdIgnores": 1
    }
  },
  "$evaluators": { "staff": { "ends_with": [{ "var": "email" }, "@example.com"] } }
}`;

function imported(text: string): FlagSet {
  const r = importFlagd(text);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.set;
}

describe("importFlagd", () => {
  it("reads flagd's fields, drops unknown ones, and evaluates as flagd documents", () => {
    const set = imported(flagdFile);
    expect(set.metadata).toEqual({ flagSetId: "colors", version: "3" });
    expect(set.flags.welcome).toEqual({ state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", targeting: { if: [{ $ref: "staff" }, "on", null] }, metadata: { ticket: 12 } });
    const flags = compileFlagSet(set);
    // The documentation's sample answers (blue, green) match neither the v1 nor the v2 bucket mapping;
    // these are v2's: murmur3("headerColorfoo@bar.com") scales to bucket 98 of 100, "...foo@test.com" to 19.
    expect(flags.evaluate("headerColor", { email: "foo@bar.com" })).toMatchObject({ value: "#00FF00", variant: "green", reason: "SPLIT" });
    expect(flags.evaluate("headerColor", { email: "foo@test.com" })).toMatchObject({ value: "#FF0000", variant: "red", reason: "SPLIT" });
    expect(flags.evaluate("welcome", { email: "ann@example.com" })).toMatchObject({ value: true, metadata: { flagSetId: "colors", version: "3", ticket: 12 } });
  });

  it("accepts flagd's array form of flags, and names array places in issues", () => {
    const set = imported(JSON.stringify({ flags: [{ key: "a", state: "ENABLED", variants: { x: 1 }, defaultVariant: "x" }] }));
    expect(Object.keys(set.flags)).toEqual(["a"]);
    const r = importFlagd(JSON.stringify({ flags: [{ key: "a", state: "ENABLED", variants: { x: 1 }, defaultVariant: "x" }, { key: "a", state: "ENABLED", variants: { x: 1 }, defaultVariant: "y" }, { key: "b", state: "ENABLED", variants: { x: 1 }, defaultVariant: "y" }] }));
    expect(r).toEqual({
      ok: false,
      issues: [
        { path: ["flags", 1, "key"], message: 'duplicate flag key "a"' },
        { path: ["flags", 2, "defaultVariant"], message: '"y" is not a variant (variants: x)' },
      ],
    });
  });

  it("rejects flagd's code-default mode (defaultVariant null or absent)", () => {
    const r = importFlagd(JSON.stringify({ flags: { "null-default-flag": { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: null } } }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]).toEqual({ path: ["flags", "null-default-flag", "defaultVariant"], message: "Keelson needs a defaultVariant; flagd's code-default mode (null or absent) is not supported" });
  });

  it("reports text that is not JSON, or not a flag file", () => {
    expect(importFlagd("{ nope")).toMatchObject({ ok: false, issues: [{ path: [], message: expect.stringMatching(/^not valid JSON: /) as unknown }] });
    expect(importFlagd("[]")).toEqual({ ok: false, issues: [{ path: [], message: 'a flagd file is a JSON object with "flags"' }] });
    expect(importFlagd('{"flags": 3}')).toEqual({ ok: false, issues: [{ path: ["flags"], message: "flags is an object of flags (or an array of flags with keys)" }] });
    expect(importFlagd('{"flags": {"__proto__": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}}}')).toEqual({
      ok: false,
      issues: [{ path: ["flags", "__proto__"], message: '"__proto__" is not allowed as a flag key' }],
    });
  });

  it("reads Keelson extensions back from keelson.* metadata, with issues at the metadata key", () => {
    const file = (metadata: Record<string, unknown>): string =>
      JSON.stringify({ flags: { f: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", metadata }, g: { state: "ENABLED", variants: { on: true }, defaultVariant: "on" } } });
    expect(imported(file({ "keelson.type": "release", "keelson.owner": "ann", "keelson.prerequisites": '[{"flag":"g","variant":"on"}]', team: "a" })).flags.f).toEqual({
      state: "ENABLED",
      variants: { on: true, off: false },
      defaultVariant: "off",
      metadata: { team: "a" },
      type: "release",
      owner: "ann",
      prerequisites: [{ flag: "g", variant: "on" }],
    });
    const r = importFlagd(file({ "keelson.type": "temporary", "keelson.prerequisites": "[oops", "keelson.colour": "red" }));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.issues.map((i) => i.path.join("."))).toEqual(["flags.f.metadata.keelson.prerequisites", "flags.f.metadata.keelson.colour", "flags.f.metadata.keelson.type"]);
    }
  });
});

describe("exportFlagd", () => {
  const set: FlagSet = {
    flags: {
      checkout: {
        state: "ENABLED",
        variants: { new: "N", old: "O" },
        defaultVariant: "old",
        targeting: { if: [{ sem_ver: [{ var: "appVersion" }, ">=", "2.1.0"] }, "new", null] },
        metadata: { ticket: 7 },
        type: "release",
        owner: "team-checkout",
        description: "New checkout flow",
        prerequisites: [{ flag: "payments", variant: "on" }],
        safeVariant: "old",
      },
      payments: { state: "DISABLED", variants: { on: true, off: false }, defaultVariant: "on" },
    },
    $evaluators: { unused: { "==": [1, 1] } },
    metadata: { flagSetId: "shop" },
  };

  it("writes only fields flagd knows, extensions as keelson.* metadata (primitives only)", () => {
    const file = JSON.parse(exportFlagd(set)) as Record<string, unknown>;
    expect(Object.keys(file)).toEqual(["$schema", "metadata", "flags", "$evaluators"]);
    expect(file.$schema).toBe(FLAGD_SCHEMA_URL);
    expect((file.flags as Record<string, unknown>).checkout).toEqual({
      state: "ENABLED",
      variants: { new: "N", old: "O" },
      defaultVariant: "old",
      targeting: { if: [{ sem_ver: [{ var: "appVersion" }, ">=", "2.1.0"] }, "new", null] },
      metadata: {
        ticket: 7,
        "keelson.type": "release",
        "keelson.owner": "team-checkout",
        "keelson.description": "New checkout flow",
        "keelson.prerequisites": '[{"flag":"payments","variant":"on"}]',
        "keelson.safeVariant": "old",
      },
    });
    expect((file.flags as Record<string, unknown>).payments).toEqual({ state: "DISABLED", variants: { on: true, off: false }, defaultVariant: "on" });
  });

  it("round-trips: import(export(set)) equals the set, and export is stable", () => {
    const text = exportFlagd(set);
    expect(imported(text)).toEqual(set);
    expect(exportFlagd(imported(text))).toBe(text);
    const documented = imported(flagdFile);
    expect(imported(exportFlagd(documented))).toEqual(documented);
  });

  it("refuses an invalid set with KEELSON_ERR_INVALID_INPUT", () => {
    expect(() => exportFlagd({ flags: { f: { state: "ENABLED", variants: { a: 1 }, defaultVariant: "b" } } })).toThrow(KeelsonError);
  });
});
