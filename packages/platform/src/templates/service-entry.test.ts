import { readFileSync } from "node:fs";
import { join } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import { parse, parseDocument, type YAMLMap } from "yaml";
import { describe, expect, it } from "vitest";
import { manifestTemplate, parseManifest } from "../manifest/index.js";
import { addServiceEntry } from "./service-entry.js";

/** A rendered entry, as a template gives it: comments and a flow mapping included. */
function entry(text = "owner: web\npath: services/hello\n# how it starts\nstart: node server.mjs\nroutes: [{ path: /hello, stripPrefix: true }]\n"): YAMLMap {
  return parseDocument(text).contents as YAMLMap;
}

/** What the edit inserted: the new text minus the old one's common prefix and suffix. */
function inserted(before: string, after: string): { at: number; text: string } {
  let start = 0;
  while (start < before.length && before[start] === after[start]) start++;
  let end = 0;
  while (end < before.length - start && before[before.length - 1 - end] === after[after.length - 1 - end]) end++;
  expect(before.length, "nothing of the old text was removed").toBe(start + end);
  return { at: start, text: after.slice(start, after.length - end) };
}

const SHOP = readFileSync(join(import.meta.dirname, "../../../../examples/shop/keelson.yaml"), "utf8");

describe("adding a service to keelson.yaml", () => {
  it("keeps every byte of the shop's manifest and puts the service after the last one, before the flags and their comment", () => {
    const next = addServiceEntry({ text: SHOP, service: "hello", entry: entry() });
    const last = "      MODEL_LATENCY_MS: 20\n";
    expect(SHOP.split(last)).toHaveLength(2);
    const block = "\n  hello:\n    owner: web\n    path: services/hello\n    # how it starts\n    start: node server.mjs\n    routes: [ { path: /hello, stripPrefix: true } ]\n";
    expect(next).toBe(SHOP.replace(last, `${last}${block}`));
    expect(next.indexOf("  hello:")).toBeLessThan(next.indexOf("# Feature flags, as desired state"));
    const data = parse(next) as { services: Record<string, unknown>; flags: Record<string, unknown> };
    expect(Object.keys(data.services).at(-1)).toBe("hello");
    expect(Object.keys(data.flags)).toEqual(["express-checkout"]);
  });

  it("keeps keelson init's commented starter file, and the result is a valid manifest", () => {
    const before = manifestTemplate("demo");
    const next = addServiceEntry({ text: before, service: "hello", entry: entry() });
    inserted(before, next);
    const { manifest } = parseManifest(next.replace("owner: web", "owner: demo-team"), "keelson.yaml", { checkPaths: false });
    expect(Object.keys(manifest.services)).toEqual(["web", "hello"]);
    // The starter's commented lines under web stay with web, above the new service.
    expect(next.indexOf("# resources: { memory: 256mb }")).toBeLessThan(next.indexOf("  hello:"));
  });

  it("turns `services: {}` into a block, keeping the comment on its line", () => {
    const before = "version: 1\nproject: p\nteams:\n    web: {}\nservices: {}   # none yet\n\n# the end\n";
    const next = addServiceEntry({ text: before, service: "hello", entry: entry("owner: web\nstart: x\n") });
    expect(next).toBe("version: 1\nproject: p\nteams:\n    web: {}\nservices: # none yet\n    hello:\n        owner: web\n        start: x\n\n# the end\n");
  });

  it("follows the file's indentation and its blank lines between services", () => {
    const before = "project: p\nservices:\n    a:\n        start: a\n    b:\n        start: b\n";
    const next = addServiceEntry({ text: before, service: "c", entry: entry("start: c\nenv:\n  A: 1\n") });
    expect(next).toBe("project: p\nservices:\n    a:\n        start: a\n    b:\n        start: b\n    c:\n        start: c\n        env:\n            A: 1\n");
    const spaced = "services:\n  a:\n    start: a\n\n  b:\n    start: b\n";
    expect(addServiceEntry({ text: spaced, service: "c", entry: entry("start: c\n") })).toBe(`${spaced}\n  c:\n    start: c\n`);
  });

  it("keeps comments that belong to the last service with it, and top-level comments after the new one", () => {
    const before = "services:\n  a:\n    start: a\n    # about a's env\n  # about what follows\n\n# flags\nflags: {}\n";
    const next = addServiceEntry({ text: before, service: "b", entry: entry("start: b\n") });
    expect(next).toBe("services:\n  a:\n    start: a\n    # about a's env\n\n  b:\n    start: b\n  # about what follows\n\n# flags\nflags: {}\n");
  });

  it("handles a file without a final newline", () => {
    expect(addServiceEntry({ text: "services:\n  a:\n    start: a", service: "b", entry: entry("start: b\n") })).toBe("services:\n  a:\n    start: a\n\n  b:\n    start: b\n");
  });

  it("works beside anchors and merge keys, which keep their meaning", () => {
    const before = "x-base: &base\n  start: node s.js\nservices:\n  a:\n    <<: *base\n    path: a\n";
    const next = addServiceEntry({ text: before, service: "b", entry: entry("start: b\n") });
    expect(parseDocument(next, { merge: true }).toJS()).toEqual({ "x-base": { start: "node s.js" }, services: { a: { start: "node s.js", path: "a" }, b: { start: "b" } } });
  });

  it("writes a flow mapping of services with the Document API, keeping its data", () => {
    const next = addServiceEntry({ text: "services: { a: { start: a } }  # compact\n", service: "b", entry: entry("start: b\n") });
    expect(parse(next)).toEqual({ services: { a: { start: "a" }, b: { start: "b" } } });
    expect(next).toContain("# compact");
  });

  it("refuses a service that exists", () => {
    expect(() => addServiceEntry({ text: "services:\n  a:\n    start: a\n", service: "a", entry: entry() })).toThrow(KeelsonError);
    try {
      addServiceEntry({ text: "services:\n  a:\n    start: a\n", service: "a", entry: entry() });
    } catch (err) {
      expect((err as KeelsonError).code).toBe("KEELSON_ERR_CONFLICT");
    }
  });
});
