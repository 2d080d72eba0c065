// The git facts against real repositories in temp folders: commits, ranges after a
// force-push, changed files with renames and deletions, exporting a service's files at a
// commit, and which services a change set triggers.
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, readdir, realpath, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { git, makeTempDir, useGitTestEnv } from "#test-support";
import { isKeelsonError } from "@keelson/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { changedFiles, commitInfo, commitsBetween, commitsTouching, exportTree, gitPath, gitToplevel, hasUncommittedChanges, matchesPathFilter, resolveCommit, servicesForChanges, tryResolveCommit } from "./git.js";

useGitTestEnv();

async function put(repo: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(repo, path)), { recursive: true });
    await writeFile(join(repo, path), content);
  }
}

/** Stages everything and commits with the given author date; returns the new sha. */
async function commit(repo: string, message: string, date: string): Promise<string> {
  await git(repo, ["add", "-A"]);
  await git(repo, ["commit", "-q", "-m", message], { GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date });
  return git(repo, ["rev-parse", "HEAD"]);
}

async function listFiles(root: string, dir = root): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(root, full)));
    else out.push(relative(root, full));
  }
  return out.sort();
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

const LOGO = randomBytes(4096);
LOGO[10] = 0; // binary: a NUL byte and everything else
const TIMES = ["2024-03-01T10:00:00Z", "2024-03-02T11:00:00Z", "2024-03-03T12:00:00Z", "2024-03-04T13:00:00Z"];

describe("git", () => {
  let root: string;
  let repo: string;
  let cleanup: () => Promise<void>;
  /** c1: initial; c2: edits services/a; c3: renames services/b/index.ts, edits shared; c4: deletes docs. */
  let c: [string, string, string, string];

  beforeEach(async () => {
    const tmp = await makeTempDir("keelson-git-");
    cleanup = tmp.cleanup;
    root = await realpath(tmp.dir);
    repo = join(root, "repo");
    await mkdir(repo);
    await git(repo, ["init", "-q"]);
    await put(repo, {
      "services/a/index.ts": "export const a = 1;\n",
      "services/a/package.json": '{ "name": "a" }\n',
      "services/a/logo.bin": LOGO,
      "services/a/run.sh": "#!/bin/sh\necho run\n",
      "services/b/index.ts": "export const b = 1;\n",
      "shared/lib.txt": "shared v1\n",
      "docs/guide/intro.md": "# Intro\n",
      "README.md": "# Repo\n",
    });
    await chmod(join(repo, "services/a/run.sh"), 0o755);
    const c1 = await commit(repo, "initial", "2024-03-01T12:00:00+02:00");
    await put(repo, { "services/a/index.ts": "export const a = 2;\n" });
    const c2 = await commit(repo, "a: bump", TIMES[1] as string);
    await git(repo, ["mv", "services/b/index.ts", "services/b/main.ts"]);
    await put(repo, { "shared/lib.txt": "shared v2\n" });
    const c3 = await commit(repo, "b: rename entry\n\nand touch shared", TIMES[2] as string);
    await rm(join(repo, "docs/guide/intro.md"));
    const c4 = await commit(repo, "docs: drop intro", TIMES[3] as string);
    c = [c1, c2, c3, c4];
  });
  afterEach(async () => {
    await cleanup();
  });

  it("finds the top of the checkout from a subfolder, and nothing outside one", async () => {
    expect(await gitToplevel(join(repo, "services", "a"))).toBe(repo);
    const outside = await makeTempDir("keelson-nogit-");
    try {
      expect(await gitToplevel(outside.dir)).toBeUndefined();
    } finally {
      await outside.cleanup();
    }
  });

  it("resolves revisions to full shas and names a missing one", async () => {
    expect(await resolveCommit(repo, "HEAD")).toBe(c[3]);
    expect(await resolveCommit(repo, "main~2")).toBe(c[1]);
    expect(await resolveCommit(repo, c[2].slice(0, 8))).toBe(c[2]);
    const err = await rejection(resolveCommit(repo, "abc"));
    expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_NOT_FOUND");
    expect((err as Error).message).toBe(`commit "abc" not found in ${repo}`);
    // Looked up as a name, never taken as an option.
    expect(await tryResolveCommit(repo, "--all")).toBeUndefined();
    // A blob is not a commit.
    expect(await tryResolveCommit(repo, `${c[0]}:README.md`)).toBeUndefined();
  });

  it("reports a folder outside any repository as invalid input", async () => {
    const outside = await makeTempDir("keelson-nogit-");
    try {
      const err = await rejection(resolveCommit(outside.dir, "HEAD"));
      expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_INVALID_INPUT");
    } finally {
      await outside.cleanup();
    }
  });

  it("describes a commit with author, UTC times and subject", async () => {
    expect(await commitInfo(repo, c[0])).toEqual({
      sha: c[0],
      author: "Ada Author",
      authorEmail: "ada@example.test",
      authorTime: "2024-03-01T10:00:00.000Z",
      committerTime: "2024-03-01T10:00:00.000Z",
      subject: "initial",
    });
    expect((await commitInfo(repo, "HEAD~1")).subject).toBe("b: rename entry");
  });

  it("lists the commits of a range oldest first", async () => {
    const range = await commitsBetween(repo, c[0], c[3]);
    expect(range.rewritten).toBe(false);
    expect(range.commits.map((x) => x.sha)).toEqual([c[1], c[2], c[3]]);
    expect(range.commits.map((x) => x.authorTime)).toEqual(TIMES.slice(1).map((t) => new Date(t).toISOString()));
    expect(range.commits.map((x) => x.subject)).toEqual(["a: bump", "b: rename entry", "docs: drop intro"]);

    expect(await commitsBetween(repo, undefined, "HEAD")).toEqual({ commits: [await commitInfo(repo, c[3])], rewritten: false });
    expect(await commitsBetween(repo, c[3], c[3])).toEqual({ commits: [], rewritten: false });
  });

  it("lists the commits of a range that touch given paths (a service's change set), oldest first", async () => {
    const a = await commitsTouching(repo, c[0], c[3], ["services/a"]);
    expect(a).toEqual({ commits: [await commitInfo(repo, c[1])], rewritten: false });
    // Several paths: either one; "./" prefixes and trailing slashes are the same path.
    expect((await commitsTouching(repo, c[0], c[3], ["./services/b/", "docs"])).commits.map((x) => x.sha)).toEqual([c[2], c[3]]);
    // Literal paths, repo-relative whatever the folder git runs in: no glob, no match by prefix.
    expect((await commitsTouching(join(repo, "services"), c[0], c[3], ["services/*"])).commits).toEqual([]);
    expect((await commitsTouching(repo, c[0], c[3], ["services/"])).commits.map((x) => x.sha)).toEqual([c[1], c[2]]);
    expect((await commitsTouching(repo, c[0], c[3], ["."])).commits).toHaveLength(3);
    expect(await commitsTouching(repo, undefined, c[2], ["services/a"])).toEqual({ commits: [await commitInfo(repo, c[2])], rewritten: false });
    expect(await commitsTouching(repo, c[3], c[1], ["services/a"])).toEqual({ commits: [await commitInfo(repo, c[1])], rewritten: true });
    expect(await commitsTouching(repo, c[2], c[2], ["services/a"])).toEqual({ commits: [], rewritten: false });
    const err = await rejection(commitsTouching(repo, c[0], c[3], ["../outside"]));
    expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_INVALID_INPUT");
  });

  it("flags a rewritten history and gives just the new commit", async () => {
    await git(repo, ["reset", "-q", "--hard", "HEAD~1"]);
    await put(repo, { "services/a/index.ts": "export const a = 3;\n" });
    const replacement = await commit(repo, "a: again", "2024-03-05T09:00:00Z");

    const range = await commitsBetween(repo, c[3], replacement);
    expect(range.rewritten).toBe(true);
    expect(range.commits.map((x) => x.sha)).toEqual([replacement]);
    // The tree diff against the old commit still says what changed.
    expect(await changedFiles(repo, c[3], replacement)).toEqual(["docs/guide/intro.md", "services/a/index.ts"]);

    // A commit that no longer exists (pruned after the force-push) counts as rewritten too.
    const gone = await commitsBetween(repo, "0".repeat(40), replacement);
    expect(gone).toEqual({ commits: [await commitInfo(repo, replacement)], rewritten: true });
  });

  it("tells whether given paths have uncommitted changes, untracked files included", async () => {
    expect(await hasUncommittedChanges(repo, ["services/a", "shared"])).toBe(false);
    await put(repo, { "services/a/new.txt": "untracked" });
    expect(await hasUncommittedChanges(repo, ["services/a"])).toBe(true);
    expect(await hasUncommittedChanges(repo, ["shared"])).toBe(false);
  });

  it("lists changed files: edits, both sides of a rename, deletions", async () => {
    expect(await changedFiles(repo, c[0], c[1])).toEqual(["services/a/index.ts"]);
    expect(await changedFiles(repo, c[1], c[2])).toEqual(["services/b/index.ts", "services/b/main.ts", "shared/lib.txt"]);
    expect(await changedFiles(repo, c[2], c[3])).toEqual(["docs/guide/intro.md"]);
    expect(await changedFiles(repo, c[0], c[3])).toEqual(["docs/guide/intro.md", "services/a/index.ts", "services/b/index.ts", "services/b/main.ts", "shared/lib.txt"]);
    expect(await changedFiles(repo, c[3], c[3])).toEqual([]);
  });

  it("lists every file of a commit without a base, repo-relative even from a subfolder", async () => {
    const all = ["README.md", "services/a/index.ts", "services/a/logo.bin", "services/a/package.json", "services/a/run.sh", "services/b/main.ts", "shared/lib.txt"];
    expect(await changedFiles(repo, undefined, c[3])).toEqual(all);
    expect(await changedFiles(join(repo, "services", "a"), undefined, c[3])).toEqual(all);
    expect(await changedFiles(join(repo, "services", "a"), c[1], c[2])).toEqual(["services/b/index.ts", "services/b/main.ts", "shared/lib.txt"]);
  });

  it("keeps odd file names intact (-z parsing)", async () => {
    const odd = 'services/a/we"ird\nname ü.txt';
    await put(repo, { [odd]: "x\n" });
    const sha = await commit(repo, "odd", "2024-03-06T00:00:00Z");
    expect(await changedFiles(repo, c[3], sha)).toEqual([odd]);
    expect(servicesForChanges([odd], [{ name: "a", paths: ["services/a"] }])).toEqual(["a"]);
  });

  it("exports the chosen paths at a commit with their exact bytes and layout", async () => {
    const dest = join(root, "out");
    // At c2 shared/lib.txt was still v1 and services/b/index.ts not yet renamed.
    await exportTree(repo, c[1], ["services/a", "./shared/lib.txt", "services/b/"], dest);
    expect(await listFiles(dest)).toEqual([
      "services/a/index.ts",
      "services/a/logo.bin",
      "services/a/package.json",
      "services/a/run.sh",
      "services/b/index.ts",
      "shared/lib.txt",
    ]);
    expect(await readFile(join(dest, "services/a/index.ts"), "utf8")).toBe("export const a = 2;\n");
    expect(await readFile(join(dest, "shared/lib.txt"), "utf8")).toBe("shared v1\n");
    expect((await readFile(join(dest, "services/a/logo.bin"))).equals(LOGO)).toBe(true);
    expect((await stat(join(dest, "services/a/run.sh"))).mode & 0o111).not.toBe(0);
  });

  it("exports repo-relative paths even when given a subfolder of the checkout", async () => {
    const dest = join(root, "out");
    await exportTree(join(repo, "services"), c[3], ["shared"], dest);
    expect(await listFiles(dest)).toEqual(["shared/lib.txt"]);
    expect(await readFile(join(dest, "shared/lib.txt"), "utf8")).toBe("shared v2\n");
  });

  it("names a path missing at the commit, and takes paths literally", async () => {
    const dest = join(root, "out");
    const err = await rejection(exportTree(repo, c[3], ["services/a", "docs/guide/intro.md"], dest));
    expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_NOT_FOUND");
    expect((err as Error).message).toContain('"docs/guide/intro.md"');
    expect((err as Error).message).toContain(c[3]);
    // A glob character is part of a name here, not a pattern.
    const glob = await rejection(exportTree(repo, c[3], ["services/*"], dest));
    expect(isKeelsonError(glob) && glob.code).toBe("KEELSON_ERR_NOT_FOUND");
    const escape = await rejection(exportTree(repo, c[3], ["../outside"], dest));
    expect(isKeelsonError(escape) && escape.code).toBe("KEELSON_ERR_INVALID_INPUT");
    const missingCommit = await rejection(exportTree(repo, "nope", ["services/a"], dest));
    expect(isKeelsonError(missingCommit) && missingCommit.code).toBe("KEELSON_ERR_NOT_FOUND");
  });

  it("reports a failing tar with what it said", async () => {
    const dest = join(root, "out");
    // A non-empty folder where tar has to write a file.
    await put(dest, { "services/a/index.ts/keep": "not a file\n" });
    const err = await rejection(exportTree(repo, c[3], ["services/a"], dest));
    expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_INTERNAL");
    expect((err as Error).message).toMatch(/tar exited with code \d+: .*index\.ts/);
  });

  it("gives the hooks folder, following core.hooksPath", async () => {
    expect(await gitPath(repo, "hooks")).toBe(join(repo, ".git", "hooks"));
    await git(repo, ["config", "core.hooksPath", ".githooks"]);
    expect(await gitPath(join(repo, "services"), "hooks")).toBe(join(repo, ".githooks"));
  });
});

describe("matchesPathFilter", () => {
  it("matches a plain path and everything under it, on segment boundaries", () => {
    expect(matchesPathFilter("services/orders", "services/orders")).toBe(true);
    expect(matchesPathFilter("services/orders/src/index.ts", "services/orders")).toBe(true);
    expect(matchesPathFilter("services/orders/src/index.ts", "services/orders/")).toBe(true);
    expect(matchesPathFilter("services/orders/src/index.ts", "./services/orders")).toBe(true);
    expect(matchesPathFilter("services/orders-v2/x", "services/orders")).toBe(false);
    expect(matchesPathFilter("services/order", "services/orders")).toBe(false);
    expect(matchesPathFilter("services", "services/orders")).toBe(false);
    expect(matchesPathFilter("other/services/orders/x", "services/orders")).toBe(false);
  });

  it("matches globs: * within a segment, ** across segments", () => {
    expect(matchesPathFilter("services/a/package.json", "services/*/package.json")).toBe(true);
    expect(matchesPathFilter("services/a/b/package.json", "services/*/package.json")).toBe(false);
    expect(matchesPathFilter("services/a/package-lock.json", "services/*/package.json")).toBe(false);
    expect(matchesPathFilter("docs/intro.md", "docs/**/*.md")).toBe(true);
    expect(matchesPathFilter("docs/guide/deep/intro.md", "docs/**/*.md")).toBe(true);
    expect(matchesPathFilter("docs/guide/intro.txt", "docs/**/*.md")).toBe(false);
    expect(matchesPathFilter("src/docs/intro.md", "docs/**/*.md")).toBe(false);
    expect(matchesPathFilter("a/x/y/z/b/c", "a/**/b")).toBe(true);
    expect(matchesPathFilter("services/orders-api/src/x.ts", "services/orders-*")).toBe(true);
    expect(matchesPathFilter("services/orders/src/x.ts", "services/*s")).toBe(true);
    expect(matchesPathFilter("services/api/src/x.ts", "services/*s")).toBe(false);
    expect(matchesPathFilter("anything/at/all", "**")).toBe(true);
    expect(matchesPathFilter("anything/at/all", ".")).toBe(true);
    // Only "*" is special: other glob characters are literal.
    expect(matchesPathFilter("a/b?c", "a/b?c")).toBe(true);
    expect(matchesPathFilter("a/bxc", "a/b?c")).toBe(false);
  });
});

describe("servicesForChanges", () => {
  const services = [
    { name: "orders", paths: ["services/orders", "shared"] },
    { name: "orders-v2", paths: ["services/orders-v2", "shared/lib.txt"] },
    { name: "web", paths: ["services/web", "services/*/package.json"] },
    { name: "docs", paths: ["docs/**/*.md"] },
  ];

  it("picks services by folder, respecting segment boundaries", () => {
    expect(servicesForChanges(["services/orders-v2/src/x.ts"], services)).toEqual(["orders-v2"]);
    expect(servicesForChanges(["services/orders/src/x.ts"], services)).toEqual(["orders"]);
    expect(servicesForChanges(["README.md"], services)).toEqual([]);
    expect(servicesForChanges([], services)).toEqual([]);
  });

  it("triggers every service that lists a shared path, sorted and unique", () => {
    expect(servicesForChanges(["shared/lib.txt", "shared/other.txt"], services)).toEqual(["orders", "orders-v2"]);
    expect(servicesForChanges(["shared/other.txt"], services)).toEqual(["orders"]);
  });

  it("picks services by glob", () => {
    expect(servicesForChanges(["services/orders/package.json"], services)).toEqual(["orders", "web"]);
    expect(servicesForChanges(["docs/guide/a/b.md", "docs/x.png"], services)).toEqual(["docs"]);
    expect(servicesForChanges(["services/web/a.ts", "docs/a.md", "services/orders-v2/b"], [...services].reverse())).toEqual(["docs", "orders-v2", "web"]);
  });
});
