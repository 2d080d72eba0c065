import { mkdir, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir, rejection } from "#test-support";
import { globRegExp, loadTemplate, renderTemplateFiles } from "./service-template.js";

async function writeFiles(dir: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
}

const DEFINITION = "description: test\nvariables:\n  greeting: { description: hi, default: Hello }\nverbatim: ['assets/**']\nmanifest: { start: node main.mjs }\n";
const VALUES = { name: "order-history", owner: "web", project: "shop", path: "services/order-history", gateway: "http://g", greeting: "Hi" };

describe("service templates on disk", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir("keelson-template-")));
  afterEach(() => cleanup());

  it("renders names and texts, writes gitignore as .gitignore and copies verbatim and binary files as they are", async () => {
    await writeFiles(dir, {
      "template.yaml": DEFINITION,
      "gitignore": "dist/\n",
      "src/{{name | camel}}.mjs": "export const greeting = {{ greeting | json }}; // {{name}} of {{owner}}\n",
      "assets/raw.txt": "{{ not a placeholder }}\n",
      "logo.bin": Buffer.from([0x89, 0x50, 0x00, 0x7b, 0x7b]),
    });
    const template = await loadTemplate(dir, { name: "t", origin: "folder" });
    expect(template.files.map((f) => [f.path, f.substitute])).toEqual([
      ["assets/raw.txt", false],
      ["gitignore", true],
      ["logo.bin", false],
      ["src/{{name | camel}}.mjs", true],
    ]);
    const out = Object.fromEntries(renderTemplateFiles(template, VALUES).map((f) => [f.path, f.content]));
    expect(Object.keys(out).sort()).toEqual([".gitignore", "assets/raw.txt", "logo.bin", "src/orderHistory.mjs"]);
    expect(out["src/orderHistory.mjs"]?.toString()).toBe('export const greeting = "Hi"; // order-history of web\n');
    expect(out["assets/raw.txt"]?.toString()).toBe("{{ not a placeholder }}\n");
    expect(out["logo.bin"]).toEqual(Buffer.from([0x89, 0x50, 0x00, 0x7b, 0x7b]));
  });

  it("reports every problem of every file at once, with its file, line and column", async () => {
    await writeFiles(dir, {
      "template.yaml": DEFINITION,
      "src/a.ts": "const a = 1;\nconst b = '{{ greting }}';\n",
      "src/{{ nmae }}.ts": "x\n",
      "README.md": "# {{name}}\n\nstyle={{ color: red }}\n",
    });
    const err = await rejection(loadTemplate(dir, { name: "broken", origin: "folder" }), "KEELSON_ERR_TEMPLATE_INVALID");
    const lines = err.message.split("\n");
    expect(lines[0]).toBe('template "broken" is not valid:');
    expect(lines.slice(1).map((l) => l.replace(dir, "<dir>"))).toEqual([
      "<dir>/README.md:3:7 malformed placeholder {{ color: red }}: expected {{ variable }} or {{ variable | filter }}; write \\{{ for a literal {{",
      '<dir>/src/a.ts:2:12 unknown variable "greting" in {{ greting }}; did you mean `greeting`?',
      '<dir>/src/{{ nmae }}.ts:1:1 in the file\'s name: unknown variable "nmae" in {{ nmae }}; did you mean `name`?',
    ]);
    expect((err.details as { issues: unknown[] }).issues).toHaveLength(3);
  });

  it("refuses symbolic links, which could reach outside the template", async () => {
    await writeFiles(dir, { "template.yaml": DEFINITION });
    await symlink("/etc/hostname", join(dir, "host"));
    const err = await rejection(loadTemplate(dir, { name: "t", origin: "user" }), "KEELSON_ERR_TEMPLATE_INVALID");
    expect(err.message).toContain("host:1:1 a template may not hold symbolic links");
  });

  it("names the folder when there is no template.yaml", async () => {
    const err = await rejection(loadTemplate(dir, { name: "empty", origin: "folder" }), "KEELSON_ERR_TEMPLATE_INVALID");
    expect(err.message).toBe(`template "empty" has no template.yaml (looked in ${dir})`);
  });

  it("accepts template.json", async () => {
    await writeFiles(dir, { "template.json": JSON.stringify({ description: "json", manifest: { start: "x" } }), "a.txt": "{{name}}" });
    const template = await loadTemplate(dir, { name: "j", origin: "folder" });
    expect(template.definition.description).toBe("json");
    expect(template.files.map((f) => f.path)).toEqual(["a.txt"]);
  });

  it("refuses values that make a file name invalid", async () => {
    await writeFiles(dir, { "template.yaml": DEFINITION, "{{greeting}}.txt": "x" });
    const template = await loadTemplate(dir, { name: "t", origin: "folder" });
    expect(() => renderTemplateFiles(template, { ...VALUES, greeting: "a/b" })).toThrow('the file name {{greeting}}.txt becomes "a/b.txt", which is not a valid file name');
  });

  it("matches globs over paths", () => {
    expect(globRegExp("assets/**").test("assets/a/b.png")).toBe(true);
    expect(globRegExp("**/*.png").test("a/b/c.png")).toBe(true);
    expect(globRegExp("**/*.png").test("c.png")).toBe(true);
    expect(globRegExp("*.png").test("a/c.png")).toBe(false);
    expect(globRegExp("a?.txt").test("ab.txt")).toBe(true);
  });
});
