// The change history's wording: diff entries as lines (added, removed, changed) and change titles.
import { describe, expect, it } from "vitest";
import { changeTitle, diffLines, formatValue } from "./flag-diff.js";

describe("diffLines", () => {
  it("reads each entry as changed, added or removed, values as compact JSON", () => {
    expect(
      diffLines([
        { path: "defaultVariant", before: "off", after: "on" },
        { path: "targeting", before: { if: [{ var: "beta" }, "on", "off"] } },
        { path: "metadata.killedAt", after: "2025-01-01T00:00:00.000Z" },
      ]),
    ).toEqual([
      { path: "defaultVariant", kind: "changed", before: '"off"', after: '"on"' },
      { path: "targeting", kind: "removed", before: '{"if":[{"var":"beta"},"on","off"]}', after: undefined },
      { path: "metadata.killedAt", kind: "added", before: undefined, after: '"2025-01-01T00:00:00.000Z"' },
    ]);
  });

  it("names a whole flag created or deleted 'definition', and keeps false and 0 as values", () => {
    // The API sends null for the side where the flag did not exist.
    expect(diffLines([{ path: "(whole)", before: null, after: { state: "ENABLED" } }])).toEqual([{ path: "definition", kind: "added", before: undefined, after: '{"state":"ENABLED"}' }]);
    expect(diffLines([{ path: "(whole)", before: { state: "ENABLED" }, after: null }])).toEqual([{ path: "definition", kind: "removed", before: '{"state":"ENABLED"}', after: undefined }]);
    // Inside a flag, null is a value like any other.
    expect(diffLines([{ path: "targeting", before: null, after: {} }])).toEqual([{ path: "targeting", kind: "changed", before: "null", after: "{}" }]);
    expect(diffLines([{ path: "variants.off", before: false, after: 0 }])).toEqual([{ path: "variants.off", kind: "changed", before: "false", after: "0" }]);
    expect(formatValue(undefined)).toBe("(none)");
  });
});

describe("changeTitle", () => {
  it("says what made the change", () => {
    expect(changeTitle({ kind: "flag.changed" })).toBe("Changed");
    expect(changeTitle({ kind: "flag.killed" })).toBe("Killed");
    expect(changeTitle({ kind: "flag.changed", rollbackTo: 12 })).toBe("Rolled back to change 12");
    expect(changeTitle({ kind: "flag.created", source: "manifest" })).toBe("Created by keelson up (keelson.yaml)");
    expect(changeTitle({ kind: "flag.changed", scheduled: "sch-3" })).toBe("Changed by scheduled change sch-3");
  });
});
