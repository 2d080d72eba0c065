// The flag editor's draft: JSON checked in the browser with line and column, and the definition
// sent keeps what the editor does not show.
import type { FlagDefinition } from "@keelson/protocol";
import { describe, expect, it } from "vitest";
import { definitionFromDraft, draftOf, jsonSyntaxError, lineColumn, parseJsonField, sameJson, variantNames } from "./flag-draft.js";

const flag: FlagDefinition = {
  state: "ENABLED",
  type: "release",
  owner: "web",
  variants: { on: true, off: false },
  defaultVariant: "off",
  targeting: { if: [{ ends_with: [{ var: "email" }, "@shop.test"] }, "on", "off"] },
  safeVariant: "off",
  metadata: { ticket: "WEB-1" },
};

describe("parseJsonField", () => {
  it("reads JSON, and empty text as no value", () => {
    expect(parseJsonField(' {"a": [1, 2]} ')).toEqual({ ok: true, value: { a: [1, 2] } });
    expect(parseJsonField("  \n")).toEqual({ ok: true, value: undefined });
  });

  it("says where a syntax error is, as line and column", () => {
    const text = '{\n  "if": [\n    {"var": "email"},\n  ]\n}';
    const parsed = parseJsonField(text);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.message).toBe("not valid JSON at line 4, column 3: a trailing comma before ]");
    expect(parseJsonField('{if: 1}')).toEqual({ ok: false, message: 'not valid JSON at line 1, column 2: expected a "quoted" property name, found "i"' });
    expect(parseJsonField('{"a": "b}')).toEqual({ ok: false, message: "not valid JSON at line 1, column 7: unterminated string" });
    expect(parseJsonField('{"a": 1} x')).toEqual({ ok: false, message: 'not valid JSON at line 1, column 10: unexpected "x" after the value' });
    expect(parseJsonField('[1, tru]')).toEqual({ ok: false, message: 'not valid JSON at line 1, column 5: expected a value, found "t"' });
    expect(parseJsonField('{"a": 01}')).toEqual({ ok: false, message: 'not valid JSON at line 1, column 8: expected "," or "}", found "1"' });
  });

  it("finds no error in what JSON.parse reads", () => {
    for (const text of ['{"if": [{"in": ["@shop.test", {"var": "email"}]}, "on", null]}', "[]", "{}", '"\\u00e9\\n"', "-1.5e+3", " true ", '{"a": {"b": [false, 0, -0.25]}}']) {
      expect(() => JSON.parse(text), text).not.toThrow();
      expect(jsonSyntaxError(text), text).toBeUndefined();
    }
  });

  it("counts lines and columns from 1", () => {
    expect(lineColumn("ab\ncd", 0)).toEqual({ line: 1, column: 1 });
    expect(lineColumn("ab\ncd", 4)).toEqual({ line: 2, column: 2 });
    expect(lineColumn("ab", 99)).toEqual({ line: 1, column: 3 });
  });
});

describe("definitionFromDraft", () => {
  it("gives back the same definition for an untouched draft", () => {
    const built = definitionFromDraft(flag, draftOf(flag));
    expect(built.ok && sameJson(built.definition, flag)).toBe(true);
  });

  it("applies the edited fields and keeps type, owner, safe variant and metadata", () => {
    const draft = { ...draftOf(flag), state: "DISABLED" as const, defaultVariant: "on", targeting: "", description: "New checkout" };
    const built = definitionFromDraft(flag, draft);
    expect(built).toEqual({
      ok: true,
      definition: { state: "DISABLED", type: "release", owner: "web", variants: { on: true, off: false }, defaultVariant: "on", safeVariant: "off", metadata: { ticket: "WEB-1" }, description: "New checkout" },
    });
  });

  it("keeps a stored empty targeting ({}) when the field is left empty, so saving is no change", () => {
    const plain: FlagDefinition = { state: "ENABLED", variants: { a: 1 }, defaultVariant: "a", targeting: {} };
    const built = definitionFromDraft(plain, draftOf(plain));
    expect(built.ok && built.definition.targeting).toEqual({});
  });

  it("reports bad JSON and variants that are not an object at their fields, without sending anything", () => {
    expect(definitionFromDraft(flag, { ...draftOf(flag), targeting: '{"if": [' })).toMatchObject({ ok: false, issues: [{ field: "targeting", path: "targeting", message: expect.stringMatching(/^not valid JSON/) }] });
    expect(definitionFromDraft(flag, { ...draftOf(flag), variants: "[true, false]" })).toMatchObject({ ok: false, issues: [{ field: "variants", message: expect.stringMatching(/JSON object of variant name/) }] });
  });

  it("clears the kill switch's marks, which would otherwise say the flag is still killed", () => {
    const killed: FlagDefinition = { ...flag, targeting: undefined, metadata: { ticket: "WEB-1", killedAt: "2025-01-01T00:00:00.000Z", killedBy: "user:ana" } };
    delete killed.targeting;
    const built = definitionFromDraft(killed, draftOf(killed));
    expect(built.ok && built.definition.metadata).toEqual({ ticket: "WEB-1" });
    const bare = definitionFromDraft({ ...killed, metadata: { killedAt: "x", killedBy: "y" } }, draftOf(killed));
    expect(bare.ok && "metadata" in bare.definition).toBe(false);
  });
});

describe("variantNames", () => {
  it("offers the draft's variants while their JSON reads, else the stored ones, and always the chosen default", () => {
    expect(variantNames({ ...draftOf(flag), variants: '{"a": 1, "b": 2}', defaultVariant: "a" }, flag)).toEqual(["a", "b"]);
    expect(variantNames({ ...draftOf(flag), variants: '{"a": 1,' }, flag)).toEqual(["on", "off"]);
    expect(variantNames({ ...draftOf(flag), variants: '{"a": 1}', defaultVariant: "off" }, flag)).toEqual(["a", "off"]);
  });
});
