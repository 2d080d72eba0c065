// The flag list's rows (stale marker, evaluations, kill marks) and its filter box.
import { describe, expect, it } from "vitest";
import { filterFlags, flagRows } from "./flag-list.js";

const set = {
  revision: 3,
  updatedAt: null,
  flags: {
    "new-checkout": { state: "ENABLED" as const, type: "release" as const, owner: "web", variants: { on: true, off: false }, defaultVariant: "off", description: "The one-page checkout" },
    banner: { state: "DISABLED" as const, variants: { a: "Hi" }, defaultVariant: "a", metadata: { killedAt: "2025-01-01T00:00:00.000Z", killedBy: "user:ana" } },
    "pay-v2": { state: "ENABLED" as const, type: "experiment" as const, owner: "payments", variants: { on: true, off: false }, defaultVariant: "off" },
  },
};
const stale = { days: 30, unchangedDays: 90, countingSince: "2025-01-01T00:00:00.000Z", flags: [{ flag: "banner", reasons: ["not-evaluated" as const], why: ["never evaluated in 40 days"], evaluations: 0 }] };
const usage = { since: "2025-01-01T00:00:00.000Z", flags: { "new-checkout": { evaluations: 12, lastEvaluatedAt: "2025-02-01T00:00:00.000Z" } } };

describe("flagRows", () => {
  it("lists every flag by key with its stale finding, evaluations and kill marks", () => {
    const rows = flagRows(set, stale, usage);
    expect(rows.map((r) => [r.key, r.stale?.why[0], r.usage?.evaluations, r.killed])).toEqual([
      ["banner", "never evaluated in 40 days", 0, true],
      ["new-checkout", undefined, 12, false],
      ["pay-v2", undefined, 0, false],
    ]);
    // Without the usage (its read failed), evaluations are unknown rather than 0.
    expect(flagRows(set, undefined, undefined)[1]?.usage).toBeUndefined();
  });
});

describe("filterFlags", () => {
  const rows = flagRows(set, stale, usage);
  const keys = (text: string) => filterFlags(rows, text).map((r) => r.key);
  it("matches every word against key, owner, type, state and description, ignoring case", () => {
    expect(keys("")).toEqual(["banner", "new-checkout", "pay-v2"]);
    expect(keys("CHECKOUT")).toEqual(["new-checkout"]);
    expect(keys("one-page")).toEqual(["new-checkout"]);
    expect(keys("experiment payments")).toEqual(["pay-v2"]);
    expect(keys("experiment web")).toEqual([]);
    expect(keys("disabled")).toEqual(["banner"]);
  });
  it("finds stale and killed flags by those words", () => {
    expect(keys("stale")).toEqual(["banner"]);
    expect(keys("killed")).toEqual(["banner"]);
  });
});
