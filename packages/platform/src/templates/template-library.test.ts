import { existsSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { git, makeTempDir, rejection, useGitTestEnv } from "#test-support";
import { addTemplate, findTemplate, isGitSource, listTemplates, removeTemplate, userTemplatesDir } from "./template-library.js";

const DEFINITION = (name?: string) => `${name ? `name: ${name}\n` : ""}description: A team template\nvariables:\n  port: { description: Port, type: integer, default: 9000 }\nmanifest: { start: node main.mjs }\n`;

async function writeTemplate(dir: string, definition = DEFINITION(), files: Record<string, string> = { "main.mjs": "// {{name}}\n" }): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "template.yaml"), definition);
  for (const [path, text] of Object.entries(files)) await writeFile(join(dir, path), text);
}

describe("the template library", () => {
  useGitTestEnv();
  let dir: string;
  let cleanup: () => Promise<void>;
  let userDir: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-library-"));
    userDir = join(dir, "user-templates");
  });
  afterEach(() => cleanup());

  it("lists the built-in templates, each valid", async () => {
    const all = await listTemplates({ userDir });
    expect(all.map((t) => [t.name, t.origin, t.problem])).toEqual([
      ["http-ts", "built-in", undefined],
      ["static-site", "built-in", undefined],
      ["worker-ts", "built-in", undefined],
    ]);
    expect(all.every((t) => (t.description ?? "").length > 20)).toBe(true);
  });

  it("keeps templates under $KEELSON_TEMPLATES_DIR, else the XDG config folder", () => {
    expect(userTemplatesDir({ KEELSON_TEMPLATES_DIR: "/srv/t" })).toBe("/srv/t");
    expect(userTemplatesDir({ XDG_CONFIG_HOME: "/home/a/.cfg" })).toBe("/home/a/.cfg/keelson/templates");
  });

  it("adds a template from a folder, finds it by name and removes it", async () => {
    await writeTemplate(join(dir, "src", "team-api"));
    const added = await addTemplate(join(dir, "src", "team-api"), { userDir });
    expect(added).toMatchObject({ name: "team-api", replaced: false, note: { kind: "folder", source: join(dir, "src", "team-api") } });
    expect((await findTemplate("team-api", { userDir })).origin).toBe("user");
    expect((await listTemplates({ userDir })).find((t) => t.name === "team-api")).toMatchObject({ origin: "user", description: "A team template", source: { kind: "folder" } });
    expect(await readdir(userDir)).toEqual(["team-api"]);
    await removeTemplate("team-api", { userDir });
    await rejection(findTemplate("team-api", { userDir }), "KEELSON_ERR_NOT_FOUND");
  });

  it("clones a template from a git repository (a folder in it, at a tag), noting the commit, without .git", async () => {
    const repo = join(dir, "repo");
    await writeTemplate(join(repo, "templates", "go-api"), DEFINITION("go-api"));
    await git(dir, ["init", "-q", repo]);
    await git(repo, ["add", "-A"]);
    await git(repo, ["commit", "-q", "-m", "templates"]);
    await git(repo, ["tag", "v1"]);
    const head = await git(repo, ["rev-parse", "HEAD"]);
    const url = pathToFileURL(repo).href;
    expect(isGitSource(url)).toBe(true);
    const progress: string[] = [];
    const added = await addTemplate(url, { userDir, ref: "v1", subdir: "templates/go-api", onProgress: (m) => progress.push(m) });
    expect(added.name).toBe("go-api");
    expect(added.note).toMatchObject({ kind: "git", source: url, ref: "v1", commit: head });
    expect(progress).toEqual([`cloning ${url} (v1)…`]);
    expect(existsSync(join(userDir, "go-api", ".git"))).toBe(false);
    expect(JSON.parse(await readFile(join(userDir, "go-api", ".keelson-source.json"), "utf8"))).toMatchObject({ commit: head });
    // The note is not part of the template.
    expect((await findTemplate("go-api", { userDir })).files.map((f) => f.path)).toEqual(["main.mjs"]);
  });

  it("keeps nothing of a template that is not valid, and says why with file and line", async () => {
    await writeTemplate(join(dir, "bad"), DEFINITION(), { "main.mjs": "// {{ nmae }}\n" });
    const err = await rejection(addTemplate(join(dir, "bad"), { userDir }), "KEELSON_ERR_TEMPLATE_INVALID");
    expect(err.message).toMatch(/main\.mjs:1:4 unknown variable "nmae" in \{\{ nmae \}\}; did you mean `name`\?/);
    expect(await readdir(userDir)).toEqual([]);
  });

  it("refuses a built-in's name, an added name without --force, and a clone that fails", async () => {
    await writeTemplate(join(dir, "http-ts"));
    const builtin = await rejection(addTemplate(join(dir, "http-ts"), { userDir }), "KEELSON_ERR_CONFLICT");
    expect(builtin.message).toBe('"http-ts" is a built-in template; add it under another name with --name');
    await addTemplate(join(dir, "http-ts"), { userDir, name: "my-http" });
    const again = await rejection(addTemplate(join(dir, "http-ts"), { userDir, name: "my-http" }), "KEELSON_ERR_CONFLICT");
    expect(again.message).toContain("--force replaces it");
    expect((await addTemplate(join(dir, "http-ts"), { userDir, name: "my-http", force: true })).replaced).toBe(true);
    const clone = await rejection(addTemplate(pathToFileURL(join(dir, "nothing-here")).href, { userDir }), "KEELSON_ERR_NOT_FOUND");
    expect(clone.message).toMatch(/^git clone file:\/\/.*nothing-here failed: /);
    expect(await readdir(userDir)).toEqual(["my-http"]);
  });

  it("refuses a --subdir that is a symbolic link: the folder it names keeps its .git and nothing is added", async () => {
    // A folder elsewhere on the machine that looks like a template, with a repository of its own.
    const victim = join(dir, "victim");
    await writeTemplate(victim, DEFINITION("victim"));
    await mkdir(join(victim, ".git"));
    await writeFile(join(victim, ".git", "HEAD"), "ref: refs/heads/main\n");
    const repo = join(dir, "repo");
    await writeTemplate(join(repo, "templates", "ok"));
    await symlink(victim, join(repo, "evil"));
    await git(dir, ["init", "-q", repo]);
    await git(repo, ["add", "-A"]);
    await git(repo, ["commit", "-q", "-m", "a link"]);
    const url = pathToFileURL(repo).href;
    const err = await rejection(addTemplate(url, { userDir, subdir: "evil" }), "KEELSON_ERR_TEMPLATE_INVALID");
    expect(err.message).toBe(`--subdir evil is a symbolic link in ${url}; a template's folder must be a real folder of the source`);
    // A folder reached through a link further up is outside the clone too.
    const deeper = await rejection(addTemplate(url, { userDir, subdir: "evil/.git" }), "KEELSON_ERR_INVALID_INPUT");
    expect(deeper.message).toBe(`--subdir evil/.git leads outside ${url} (through ".." or a symbolic link); name a folder inside it`);
    expect(existsSync(join(victim, ".git", "HEAD"))).toBe(true);
    expect(await readdir(userDir)).toEqual([]);
  });

  it("copies the folder a link names, not the link, and leaves that folder's .git alone", async () => {
    const real = join(dir, "real", "team-api");
    await writeTemplate(real);
    await mkdir(join(real, ".git"));
    await symlink(real, join(dir, "team-api"));
    const added = await addTemplate(join(dir, "team-api"), { userDir });
    expect((await lstat(added.dir)).isDirectory()).toBe(true);
    expect(existsSync(join(real, ".git"))).toBe(true);
    expect(await readdir(added.dir)).toEqual([".keelson-source.json", "main.mjs", "template.yaml"]);
  });

  it("never writes through a symbolic link a template holds, nor uses a linked template folder by name", async () => {
    const victim = join(dir, "victim.txt");
    await writeFile(victim, "mine\n");
    await writeTemplate(join(dir, "src", "team-api"));
    await symlink(victim, join(dir, "src", "team-api", ".keelson-source.json"));
    const err = await rejection(addTemplate(join(dir, "src", "team-api"), { userDir }), "KEELSON_ERR_TEMPLATE_INVALID");
    expect(err.message).toMatch(/\.keelson-source\.json:1:1 a template may not hold symbolic links/);
    expect(await readFile(victim, "utf8")).toBe("mine\n");
    expect(await readdir(userDir)).toEqual([]);
    // A link among the user's templates is neither listed nor found by name.
    await writeTemplate(join(dir, "elsewhere"));
    await symlink(join(dir, "elsewhere"), join(userDir, "linked"));
    expect((await listTemplates({ userDir })).map((t) => t.name)).not.toContain("linked");
    await rejection(findTemplate("linked", { userDir }), "KEELSON_ERR_NOT_FOUND");
  });

  it("names the templates there are when one is not found, with a suggestion", async () => {
    const err = await rejection(findTemplate("http-tss", { userDir }), "KEELSON_ERR_NOT_FOUND");
    expect(err.message).toBe('no template "http-tss"; did you mean `http-ts`?; templates: http-ts, static-site, worker-ts (`keelson templates list`; a folder works too: ./path/to/template)');
    await rejection(removeTemplate("http-ts", { userDir }), "KEELSON_ERR_NOT_FOUND");
  });
});
