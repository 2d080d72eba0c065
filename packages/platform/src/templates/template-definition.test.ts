import { Document } from "yaml";
import { describe, expect, it } from "vitest";
import { renderPlaceholders } from "./placeholders.js";
import { parseTemplateDefinition, renderManifestEntry, valueProblem } from "./template-definition.js";

const GOOD = `description: An API
variables:
  route:
    description: Path prefix
    default: /{{name}}
    pattern: /[a-z0-9/-]+
  replicas:
    description: How many
    type: integer
    default: 2
  tier:
    description: Which tier
    enum: [gold, silver]
    default: silver
  token:
    description: Needed, no default
requires: ["@keelson/sdk"]
manifest:
  description: "The {{tier}} API"   # kept comment
  start: node server.mjs
  replicas: "{{replicas}}"
  routes: [{ path: "{{route}}", stripPrefix: true }]
next: ["curl {{gateway}}{{route}}"]
`;

function issuesOf(text: string): string[] {
  return parseTemplateDefinition(text, "t/template.yaml").issues.map((i) => `${i.file}:${i.line}:${i.column} ${i.path === "" ? "" : `${i.path}: `}${i.message}${i.hint ? `; ${i.hint}` : ""}`);
}

describe("template definitions", () => {
  it("reads variables in order, with types, defaults and which are required", () => {
    const { definition, issues } = parseTemplateDefinition(GOOD, "template.yaml");
    expect(issues).toEqual([]);
    expect(definition?.variables.map((v) => [v.name, v.type, v.default, v.required])).toEqual([
      ["route", "string", "/{{name}}", false],
      ["replicas", "integer", 2, false],
      ["tier", "string", "silver", false],
      ["token", "string", undefined, true],
    ]);
    expect(definition?.requires).toEqual(["@keelson/sdk"]);
  });

  it("renders the manifest entry: placeholders replaced, typed values typed, comments kept, needless quotes dropped", () => {
    const { definition } = parseTemplateDefinition(GOOD, "template.yaml");
    const values = { name: "api", route: "/api", replicas: 3, tier: "gold", token: "t", owner: "x", project: "p", path: "services/api", gateway: "http://g" };
    const entry = renderManifestEntry(definition!, values, (t) => renderPlaceholders(t, values));
    const doc = new Document();
    doc.contents = entry;
    expect(doc.toString()).toBe('description: The gold API # kept comment\nstart: node server.mjs\nreplicas: 3\nroutes: [ { path: /api, stripPrefix: true } ]\n');
  });

  it("names the file, line and column of every bad variable definition", () => {
    const text = [
      "description: x", // 1
      "variables:", // 2
      "  name:", // 3
      "    description: taken", // 4
      "  a:", // 5
      "    description: bad regex", // 6
      "    pattern: '([a-z'", // 7
      "  b:", // 8
      "    description: required with a default", // 9
      "    default: x", // 10
      "    required: true", // 11
      "  c:", // 12
      "    description: integer default", // 13
      "    type: integer", // 14
      "    default: many", // 15
      "  d:", // 16
      "    description: uses a later variable", // 17
      "    default: '{{e}}-x'", // 18
      "  e:", // 19
      "    description: enum and pattern", // 20
      "    enum: [a, b]", // 21
      "    pattern: '[a-z]'", // 22
      "manifest: { start: x }", // 23
    ].join("\n");
    expect(issuesOf(text)).toEqual([
      't/template.yaml:3:3 variables.name: "name" is a built-in variable (name, owner, project, path, gateway); choose another name',
      "t/template.yaml:7:14 variables.a.pattern: not a valid regular expression: Invalid regular expression: /^(?:([a-z)$/u: Unterminated character class",
      "t/template.yaml:11:15 variables.b.required: a variable with a default is never missing; remove required or the default",
      't/template.yaml:15:14 variables.c.default: default: expected an integer, got "many"',
      't/template.yaml:18:14 variables.d.default: {{e}} refers to "e", declared after "d"; a default may use built-ins and variables declared before it',
      "t/template.yaml:21:11 variables.e.enum: give either pattern or enum, not both",
    ]);
  });

  it("reports schema problems first, with their place and a hint", () => {
    const text = ["description: x", "variables:", "  Bad-Name: { description: dash }", "  a: { description: y, colour: red }", "manifest: {}", ""].join("\n");
    expect(issuesOf(text)).toEqual([
      't/template.yaml:3:3 variables.Bad-Name: expected string matching /^[A-Za-z][A-Za-z0-9_]*$/, got "Bad-Name"',
      "t/template.yaml:4:24 variables.a.colour: unknown key; allowed keys: description, type, default, required, pattern, enum",
    ]);
    expect(issuesOf("descripton: x\nmanifest: {}\n")).toEqual([
      "t/template.yaml:1:1 description: missing required field, expected non-empty string",
      "t/template.yaml:1:1 descripton: unknown key; did you mean `description`?",
    ]);
  });

  it("reports YAML syntax errors at their line", () => {
    const issues = issuesOf("description: x\nvariables:\n  a:\n    description: [unclosed\nmanifest: {}\n");
    expect(issues[0]).toMatch(/^t\/template\.yaml:\d+:\d+ /);
    expect(issues.length).toBeGreaterThan(0);
  });

  it("refuses owner and path in the manifest entry, misspelt service fields, and unknown placeholders, at their place", () => {
    const text = ["description: x", "manifest:", "  owner: me", "  start: node s.js", "  readines: /ready", '  env: { A: "{{ nope }}" }', "next: ['{{ gateway }}{{ rout }}']", ""].join("\n");
    expect(issuesOf(text)).toEqual([
      "t/template.yaml:3:3 manifest.owner: owner is written by `keelson new` (--owner, --path); remove it from the template",
      "t/template.yaml:5:3 manifest.readines: unknown key; did you mean `readiness`?",
      't/template.yaml:6:14 manifest: unknown variable "nope" in {{ nope }}; variables: name, owner, project, path, gateway',
      't/template.yaml:7:22 next[0]: unknown variable "rout" in {{ rout }}; variables: name, owner, project, path, gateway',
    ]);
  });

  it("checks values against type, enum and pattern", () => {
    expect(valueProblem({ name: "a", description: "", type: "string", required: true, pattern: "/[a-z]+" }, "/ok")).toBeUndefined();
    expect(valueProblem({ name: "a", description: "", type: "string", required: true, pattern: "/[a-z]+" }, "/OK")).toBe('expected a value matching //[a-z]+/, got "/OK"');
    expect(valueProblem({ name: "a", description: "", type: "string", required: true, enum: ["x"] }, "y")).toBe('expected one of "x", got "y"');
    expect(valueProblem({ name: "a", description: "", type: "integer", required: true }, 1.5)).toBe("expected an integer, got 1.5");
    expect(valueProblem({ name: "a", description: "", type: "string", required: true }, "two\nlines")).toBe('expected one line of text without control characters, got "two\\nlines"');
  });
});
