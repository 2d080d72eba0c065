import { describe, expect, it } from "vitest";
import { formatFoundValue, formatIssuePath, formatManifestIssue } from "./manifest-issue.js";

describe("formatIssuePath", () => {
  it("joins keys with dots and puts list indexes in brackets", () => {
    expect(formatIssuePath(["services", "orders", "port"])).toBe("services.orders.port");
    expect(formatIssuePath(["services", "orders", "routes", 0, "path"])).toBe("services.orders.routes[0].path");
    expect(formatIssuePath([])).toBe("");
  });

  it("quotes keys that are not plain names", () => {
    expect(formatIssuePath(["services", "my service", "port"])).toBe('services["my service"].port');
    expect(formatIssuePath(["services", "orders", "env", "1A"])).toBe('services.orders.env["1A"]');
  });
});

describe("formatManifestIssue", () => {
  it("writes place, path and message on one line", () => {
    const line = formatManifestIssue({
      file: "keelson.yaml",
      line: 14,
      column: 7,
      path: "services.orders.port",
      message: 'expected integer 1-65535, got "80a"',
    });
    expect(line).toBe('keelson.yaml:14:7 services.orders.port: expected integer 1-65535, got "80a"');
  });

  it("appends the hint and leaves out an empty path", () => {
    expect(formatManifestIssue({ file: "k.yaml", line: 3, column: 5, path: "services.orders.readines", message: "unknown key", hint: "did you mean `readiness`?" })).toBe(
      "k.yaml:3:5 services.orders.readines: unknown key; did you mean `readiness`?",
    );
    expect(formatManifestIssue({ file: "k.yaml", line: 1, column: 1, path: "", message: "the file is empty" })).toBe("k.yaml:1:1 the file is empty");
  });
});

describe("formatFoundValue", () => {
  it("shows scalars as written and collections by kind", () => {
    expect(formatFoundValue("80a")).toBe('"80a"');
    expect(formatFoundValue(80)).toBe("80");
    expect(formatFoundValue(true)).toBe("true");
    expect(formatFoundValue(null)).toBe("null");
    expect(formatFoundValue(undefined)).toBe("nothing");
    expect(formatFoundValue([1])).toBe("a list");
    expect(formatFoundValue({ a: 1 })).toBe("a mapping");
  });

  it("shortens long strings", () => {
    expect(formatFoundValue("x".repeat(100))).toBe(`"${"x".repeat(60)}…"`);
  });
});
