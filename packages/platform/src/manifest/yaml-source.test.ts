import { describe, expect, it } from "vitest";
import { parseYamlSource } from "./yaml-source.js";

const TEXT = `# comment
project: shop
services:
  orders:
    port: 80
    routes:
      - /a
      - { path: /b }
    start:
  payments: { port: 81 }
`;

describe("parseYamlSource", () => {
  const src = parseYamlSource(TEXT);

  it("returns the data", () => {
    expect(src.fatal).toBe(false);
    expect(src.empty).toBe(false);
    expect(src.issues).toEqual([]);
    expect(src.data).toEqual({
      project: "shop",
      services: { orders: { port: 80, routes: ["/a", { path: "/b" }], start: null }, payments: { port: 81 } },
    });
  });

  it("locates values, keys and list items", () => {
    expect(src.locate(["services", "orders", "port"])).toEqual({ line: 5, column: 11 });
    expect(src.locate(["services", "orders", "port"], "key")).toEqual({ line: 5, column: 5 });
    expect(src.locate(["services", "orders", "routes", 1])).toEqual({ line: 8, column: 9 });
    expect(src.locate(["services", "orders", "routes", 1, "path"])).toEqual({ line: 8, column: 17 });
    expect(src.locate(["services", "payments", "port"])).toEqual({ line: 10, column: 21 });
  });

  it("locates an empty value at its key", () => {
    expect(src.locate(["services", "orders", "start"])).toEqual({ line: 9, column: 5 });
  });

  it("locates a missing key at the mapping it belongs in", () => {
    expect(src.locate(["services", "orders", "owner"])).toEqual({ line: 5, column: 5 });
    expect(src.locate(["services", "payments", "owner"])).toEqual({ line: 10, column: 13 });
    expect(src.locate(["teams"])).toEqual({ line: 2, column: 1 });
    expect(src.locate([])).toEqual({ line: 2, column: 1 });
  });

  it("follows aliases to where the value is defined", () => {
    const aliased = parseYamlSource("base: &b\n  port: 80\nsvc: *b\n");
    expect(aliased.locate(["svc", "port"])).toEqual({ line: 2, column: 9 });
  });

  it("reports duplicate keys at every depth without failing the document", () => {
    const dup = parseYamlSource("a: 1\nb:\n  - x: 1\n    x: 2\na: 3\n");
    expect(dup.fatal).toBe(false);
    expect(dup.data).toEqual({ a: 3, b: [{ x: 2 }] });
    expect(dup.issues).toEqual([
      { line: 4, column: 5, path: "b[0].x", message: 'duplicate key "x", first defined at line 3' },
      { line: 5, column: 1, path: "a", message: 'duplicate key "a", first defined at line 1' },
    ]);
  });

  it("treats keys written differently but equal as duplicates", () => {
    expect(parseYamlSource('x: 1\n"x": 2\n').issues.map((i) => i.message)).toEqual(['duplicate key "x", first defined at line 1']);
  });

  it("rejects keys that are collections", () => {
    const src2 = parseYamlSource("? [a, b]\n: 1\n");
    expect(src2.fatal).toBe(true);
    expect(src2.issues).toEqual([{ line: 1, column: 3, path: "", message: "keys must be plain names, not lists, mappings or empty" }]);
  });

  it("fails on syntax errors, one per line", () => {
    const bad = parseYamlSource("a: 1\n  b: 2\nc: [1\n");
    expect(bad.fatal).toBe(true);
    expect(bad.data).toBeUndefined();
    expect(bad.issues.map((i) => i.line)).toEqual([...new Set(bad.issues.map((i) => i.line))]);
    expect(bad.issues[0]).toEqual({ line: 1, column: 4, path: "", message: "Nested mappings are not allowed in compact mappings" });
  });

  it("reports YAML warnings such as unknown tags", () => {
    const tagged = parseYamlSource("port: !!integer 80\n");
    expect(tagged.fatal).toBe(false);
    expect(tagged.issues).toEqual([{ line: 1, column: 7, path: "", message: "Unresolved tag: tag:yaml.org,2002:integer" }]);
  });

  it("says when the document is empty", () => {
    expect(parseYamlSource("# only a comment\n")).toMatchObject({ empty: true, fatal: false, data: null, issues: [] });
  });
});

describe("parseYamlSource with merge keys", () => {
  it("locates merged-in values where the anchor defines them", () => {
    const src = parseYamlSource("base: &b\n  port: 80\nsvc:\n  <<: *b\n  start: x\n");
    expect(src.data).toEqual({ base: { port: 80 }, svc: { port: 80, start: "x" } });
    expect(src.locate(["svc", "port"])).toEqual({ line: 2, column: 9 });
    expect(src.locate(["svc", "start"])).toEqual({ line: 5, column: 10 });
    expect(src.issues).toEqual([]);
  });
});
