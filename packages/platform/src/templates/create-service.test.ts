import { existsSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, readlink, rename, symlink, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import type { ErrorCode } from "@keelson/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir, rejection } from "#test-support";
import { loadManifest } from "../manifest/index.js";
import { createService, type CreateServiceOptions } from "./create-service.js";

const MANIFEST = `# The test project: comments and layout must survive keelson new.
version: 1
project: demo

teams:
  web: { members: [ana] }   # the web team
  data: { members: [] }

services:
  api:
    owner: web
    path: services/api
    start: node server.mjs
    routes: [/api]   # taken

# Flags last.
flags: {}
`;

/** Every path under `dir` with what it is: file content, link target or "dir". */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const name of await readdir(d)) {
      const p = join(d, name);
      const info = await lstat(p);
      const rel = relative(dir, p);
      if (info.isSymbolicLink()) out[rel] = `-> ${await readlink(p)}`;
      else if (info.isDirectory()) {
        out[rel] = "dir";
        await walk(p);
      } else out[rel] = await readFile(p, "utf8");
    }
  };
  await walk(dir);
  return out;
}

describe("keelson new: creating a service from a template", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-new-"));
    await writeFile(join(dir, "keelson.yaml"), MANIFEST);
    await mkdir(join(dir, "services", "api"), { recursive: true });
    await writeFile(join(dir, "services", "api", "server.mjs"), "// api\n");
  });
  afterEach(() => cleanup());

  const create = (options: Partial<CreateServiceOptions>) => createService({ project: dir, template: "http-ts", service: "hello", owner: "web", userDir: join(dir, ".no-user-templates"), ...options });

  it.each([
    ["http-ts", ["src/main.ts", "src/app.ts", "test/http.test.ts", "package.json", ".gitignore"], ["@keelson/sdk", "@openfeature/server-sdk", "typescript", "@types/node"]],
    ["worker-ts", ["src/main.ts", "src/consumer.ts", "test/consumer.test.ts", "package.json", ".gitignore"], ["@keelson/sdk", "typescript", "@types/node"]],
    ["static-site", ["server.mjs", "public/index.html", "test/site-server.test.mjs", "package.json"], []],
  ])("makes a valid service from %s: files, packages, and an entry in keelson.yaml with the rest of the file unchanged", async (template, someFiles, packages) => {
    const created = await create({ template, service: "hello" });
    for (const f of someFiles) expect(created.files, f).toContain(f);
    for (const f of created.files) expect(existsSync(join(dir, "services", "hello", f)), f).toBe(true);
    // The packages come from this repository (the project has none of its own).
    expect(created.links.map((l) => l.name)).toEqual(packages);
    for (const l of created.links) expect(await readlink(join(dir, "services", "hello", "node_modules", l.name))).toBe(l.target);
    const text = await readFile(join(dir, "keelson.yaml"), "utf8");
    const [head, tail] = MANIFEST.split("\n# Flags last.\n");
    expect(text.startsWith(head!)).toBe(true);
    expect(text.endsWith(`\n# Flags last.\n${tail}`)).toBe(true);
    const { manifest } = await loadManifest(dir);
    const hello = manifest.services.hello!;
    expect(hello).toMatchObject({ owner: "web", path: "services/hello", lifecycle: "experimental", routes: [expect.objectContaining({ path: "/hello" })] });
    expect(created.catalog).toEqual({ owner: "web", description: hello.description, lifecycle: "experimental", links: { source: "services/hello" } });
    expect(created.urls).toEqual(["http://127.0.0.1:8080/hello"]);
    const pkg = JSON.parse(await readFile(join(dir, "services", "hello", "package.json"), "utf8")) as { name: string; description: string };
    expect(pkg).toMatchObject({ name: "@demo/hello", description: hello.description });
  });

  it("takes the only team as owner, --set values and --path", async () => {
    await writeFile(join(dir, "keelson.yaml"), MANIFEST.replace("  data: { members: [] }\n", ""));
    const created = await create({ owner: undefined, path: "apps/greeter", set: { route: "/greet", greeting: "Howdy" } });
    expect(created.owner).toBe("web");
    const { manifest } = await loadManifest(dir);
    expect(manifest.services.hello).toMatchObject({ path: "apps/greeter", env: { GREETING: "Howdy" }, routes: [expect.objectContaining({ path: "/greet", stripPrefix: true })] });
    expect(await readFile(join(dir, "apps", "greeter", "src", "app.ts"), "utf8")).toContain('export const LOUD_FLAG = "hello-loud";');
  });

  it("--pipeline uses a pipeline template of the manifest instead of the template's build and test", async () => {
    const withTemplate = MANIFEST.replace("\n# Flags last.\n", "\npipelines:\n  node-service:\n    stages:\n      - { name: build, run: npm run build }\n      - { name: test, run: npm test }\n\n# Flags last.\n");
    await writeFile(join(dir, "keelson.yaml"), withTemplate);
    await create({ pipeline: "node-service" });
    const { manifest } = await loadManifest(dir);
    const hello = manifest.services.hello!;
    expect(hello.pipeline?.template).toBe("node-service");
    expect(hello.build).toBeUndefined();
    expect(hello.test).toBeUndefined();
    expect(await readFile(join(dir, "keelson.yaml"), "utf8")).toMatch(/\n {4}pipeline: node-service\n/);
  });

  it("uses an empty folder that is already there", async () => {
    await mkdir(join(dir, "services", "hello"));
    await create({ template: "static-site" });
    expect(existsSync(join(dir, "services", "hello", "server.mjs"))).toBe(true);
  });

  it("edits the file a symlinked keelson.yaml names and keeps the link", async () => {
    await mkdir(join(dir, "shared"));
    await writeFile(join(dir, "shared", "keelson.yaml"), MANIFEST);
    await mkdir(join(dir, "app", "services", "api"), { recursive: true });
    await symlink(join("..", "shared", "keelson.yaml"), join(dir, "app", "keelson.yaml"));
    await create({ project: join(dir, "app"), template: "static-site" });
    expect((await lstat(join(dir, "app", "keelson.yaml"))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(dir, "app", "keelson.yaml"))).toBe(join("..", "shared", "keelson.yaml"));
    expect((await loadManifest(join(dir, "shared", "keelson.yaml"), { checkPaths: false })).manifest.services.hello).toMatchObject({ path: "services/hello" });
    expect(existsSync(join(dir, "app", "services", "hello", "server.mjs"))).toBe(true);
    expect(await readdir(join(dir, "shared"))).toEqual(["keelson.yaml"]);
  });

  describe("writes nothing on bad input", () => {
    async function refused(options: Partial<CreateServiceOptions>, code: ErrorCode, message: RegExp | string): Promise<void> {
      const before = await snapshot(dir);
      const err = await rejection(create(options), code);
      if (typeof message === "string") expect(err.message).toBe(message);
      else expect(err.message).toMatch(message);
      expect(await snapshot(dir)).toEqual(before);
    }

    async function folderTemplate(definition: string, files: Record<string, string> = {}): Promise<string> {
      const t = join(dir, "team-template");
      await mkdir(t, { recursive: true });
      await writeFile(join(t, "template.yaml"), definition);
      for (const [p, text] of Object.entries(files)) await writeFile(join(t, p), text);
      return t;
    }

    it("a template that does not exist", () => refused({ template: "htp-ts" }, "KEELSON_ERR_NOT_FOUND", /^no template "htp-ts"; did you mean `http-ts`\?/));

    it("a service name that is taken, naming where", () => refused({ service: "api" }, "KEELSON_ERR_CONFLICT", /^service "api" already exists \(.*keelson\.yaml:10:3\); choose another name$/));

    it("an invalid service name", () =>
      refused({ service: "Hello_World" }, "KEELSON_ERR_INVALID_INPUT", 'service name "Hello_World" is not valid: lowercase letters, digits and "-", starting with a letter, not ending with "-", at most 63 characters'));

    it("a template with a syntax error in its variables, naming file, line and column", async () => {
      const t = await folderTemplate("description: t\nvariables:\n  port: { description: Port, type: integer, default: [9000 }\nmanifest: { start: x }\n");
      await refused({ template: t }, "KEELSON_ERR_TEMPLATE_INVALID", /^template ".*" is not valid:\n.*template\.yaml:3:\d+ /);
    });

    it("a template with a bad variable definition", async () => {
      const t = await folderTemplate("description: t\nvariables:\n  port: { description: Port, type: integer, pattern: '[0-9]+' }\nmanifest: { start: x }\n");
      await refused({ template: t }, "KEELSON_ERR_TEMPLATE_INVALID", /template\.yaml:3:54 variables\.port\.pattern: a pattern applies to string variables; this one is integer$/);
    });

    it("a template file with an unknown placeholder", async () => {
      const t = await folderTemplate("description: t\nmanifest: { start: x }\n", { "main.mjs": "\n\nconsole.log({{ nmae }});\n" });
      await refused({ template: t }, "KEELSON_ERR_TEMPLATE_INVALID", /main\.mjs:3:13 unknown variable "nmae" in \{\{ nmae \}\}; did you mean `name`\?$/);
    });

    it("a required variable without a value (no terminal to ask)", async () => {
      const t = await folderTemplate("description: t\nvariables:\n  token: { description: The API token }\nmanifest: { start: x }\n");
      await refused({ template: t }, "KEELSON_ERR_INVALID_INPUT", /needs a value for token \(The API token\); pass --set token=…/);
    });

    it("a value that does not fit its variable", () => refused({ set: { route: "hello" } }, "KEELSON_ERR_INVALID_INPUT", '--set route=hello: expected a value matching //[a-z0-9][a-z0-9/._~-]*/, got "hello"'));

    it("an owner that is not a team", () => refused({ owner: "wbe" }, "KEELSON_ERR_INVALID_INPUT", '--owner "wbe" is not a team of keelson.yaml; did you mean `web`?; teams: web, data'));

    it("a pipeline template the manifest does not define", () =>
      refused({ pipeline: "node-servce" }, "KEELSON_ERR_INVALID_INPUT", '--pipeline "node-servce" is not a pipeline template of keelson.yaml; it defines none (pipelines: or pipelineFiles:)'));

    it("no owner when there are several teams", () => refused({ owner: undefined }, "KEELSON_ERR_INVALID_INPUT", "--owner is needed: which team owns the service? teams: web, data"));

    it("a route another service has, naming both", () =>
      refused({ set: { route: "/api" } }, "KEELSON_ERR_MANIFEST_INVALID", /not valid; nothing was written:\n {2}services\.hello\.routes\[0\]: route "\/api" is already claimed by services\.api\.routes\[0\]/));

    it("a folder that exists", async () => {
      await writeFile(join(dir, "services", "api", "x"), "");
      await refused({ path: "services/api" }, "KEELSON_ERR_CONFLICT", /services\/api already exists and is not an empty folder/);
    });

    it("a folder outside the project", () => refused({ path: "../elsewhere" }, "KEELSON_ERR_INVALID_INPUT", /^--path \.\.\/elsewhere: the service's folder must be inside the project/));

    it("a package neither the project nor Keelson has", async () => {
      const t = await folderTemplate("description: t\nrequires: [left-pad-nope]\nmanifest: { start: x }\n");
      await refused({ template: t, keelsonDirs: [dir] }, "KEELSON_ERR_NOT_FOUND", /needs left-pad-nope, which neither the project nor this Keelson has; install it in the project \(npm install --save-dev left-pad-nope\)/);
    });

    it("a keelson.yaml that is not valid to begin with", async () => {
      await writeFile(join(dir, "keelson.yaml"), MANIFEST.replace("owner: web", "ownr: web"));
      await refused({}, "KEELSON_ERR_MANIFEST_INVALID", /services\.api\.ownr: unknown key/);
    });

    it("a failure to put keelson.yaml in place: the service's folder (and the parent made for it) is removed again", async () => {
      const failing = async (from: string, to: string) => {
        if (to.endsWith("keelson.yaml")) throw Object.assign(new Error("EIO: simulated failure"), { code: "EIO" });
        await rename(from, to);
      };
      const before = await snapshot(dir);
      await expect(create({ path: "apps/hello", rename: failing })).rejects.toThrow("EIO: simulated failure");
      expect(await snapshot(dir)).toEqual(before);
    });

    it("a keelson.yaml changed by someone else meanwhile: theirs is kept, ours is not written", async () => {
      const theirs = `${MANIFEST}# edited meanwhile\n`;
      const racing = async (from: string, to: string) => {
        if (to.endsWith("hello")) await writeFile(join(dir, "keelson.yaml"), theirs);
        await rename(from, to);
      };
      const err = await rejection(create({ rename: racing }), "KEELSON_ERR_CONFLICT");
      expect(err.message).toMatch(/keelson\.yaml changed while it was being edited; nothing was written/);
      expect(await readFile(join(dir, "keelson.yaml"), "utf8")).toBe(theirs);
      expect(existsSync(join(dir, "services", "hello"))).toBe(false);
      expect((await readdir(dir)).sort()).toEqual(["keelson.yaml", "services"]);
    });
  });
});
