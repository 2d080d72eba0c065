// The post-commit hook in real repositories: what it writes, that a real `git commit` runs it
// without waiting for it, that a foreign hook is refused or kept aside and restored, and
// that core.hooksPath is followed.
import { access, mkdir, readFile, realpath, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { git, makeTempDir, useGitTestEnv, waitFor } from "#test-support";
import { isKeelsonError } from "@keelson/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { POST_COMMIT_HOOK_MARKER, installPostCommitHook, postCommitHookScript, shellQuote, uninstallPostCommitHook } from "./git-hooks.js";

useGitTestEnv();

async function commitFile(repo: string, name: string): Promise<string> {
  await writeFile(join(repo, name), `${name}\n`);
  await git(repo, ["add", name]);
  await git(repo, ["commit", "-q", "-m", `add ${name}`]);
  return git(repo, ["rev-parse", "HEAD"]);
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

const FOREIGN = "#!/bin/sh\necho somebody else's hook\n";

describe("post-commit hook", () => {
  let root: string;
  let repo: string;
  let hook: string;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    const tmp = await makeTempDir("keelson-hooks-");
    cleanup = tmp.cleanup;
    root = await realpath(tmp.dir);
    repo = join(root, "repo");
    await mkdir(repo);
    await git(repo, ["init", "-q"]);
    await commitFile(repo, "first.txt");
    hook = join(repo, ".git", "hooks", "post-commit");
  });
  afterEach(async () => {
    await cleanup();
  });

  it("writes an executable script carrying the marker", async () => {
    const logFile = join(root, "logs", "hook.log");
    const result = await installPostCommitHook({ repoDir: repo, command: "keelson watch --once", logFile });
    expect(result).toEqual({ path: hook, replaced: false });
    const script = await readFile(hook, "utf8");
    expect(script.startsWith("#!/bin/sh\n")).toBe(true);
    expect(script.split("\n")).toContain(POST_COMMIT_HOOK_MARKER);
    expect(script).toContain("keelson watch --once");
    expect(script).toContain(`>> '${logFile}' 2>&1`);
    expect((await stat(hook)).mode & 0o777).toBe(0o755);
  });

  it("runs on a real commit, in the background, with its output in the log", async () => {
    const logFile = join(root, "logs", "hook.log");
    const out = join(root, "hook-saw");
    const go = join(root, "go");
    // The command waits for a file the test writes after the commit returned: a hook that
    // blocked the commit would never see it (the wait gives up after ~10 s, leaving nothing behind).
    // The sha is written aside and renamed, so the test never reads the file between the shell
    // creating it and rev-parse writing into it (seen once in CI as an empty read).
    const command = `echo hook-started; i=0; while [ ! -f ${shellQuote(go)} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; git rev-parse HEAD > ${shellQuote(out + ".tmp")} && mv ${shellQuote(out + ".tmp")} ${shellQuote(out)}`;
    await installPostCommitHook({ repoDir: repo, command, logFile });

    const sha = await commitFile(repo, "second.txt");
    expect(await fileExists(out)).toBe(false);
    await writeFile(go, "");
    const seen = await waitFor(async () => ((await fileExists(out)) ? (await readFile(out, "utf8")).trim() : undefined), { what: "the hook's output file" });
    expect(seen).toBe(sha);
    await waitFor(async () => (await readFile(logFile, "utf8")).includes("hook-started"), { what: "the hook's log line" });
  });

  it("quotes an argv and a log path with spaces and quotes", async () => {
    const logFile = join(root, "log dir", "it's a log");
    const out = join(root, "out put's");
    const tricky = `it's $HOME \`id\` "x" \\ ;`;
    const command = ["sh", "-c", 'printf "%s" "$1" > "$2"; echo logged', "sh", tricky, out];
    await installPostCommitHook({ repoDir: repo, command, logFile });
    await commitFile(repo, "second.txt");
    // "logged" is echoed after printf finished, so the output file is whole once the log has it.
    await waitFor(async () => (await fileExists(logFile)) && (await readFile(logFile, "utf8")).includes("logged"), { what: "the log" });
    expect(await readFile(out, "utf8")).toBe(tricky);
  });

  it("refuses a hook it did not write", async () => {
    await writeFile(hook, FOREIGN, { mode: 0o755 });
    const err = await rejection(installPostCommitHook({ repoDir: repo, command: "true", logFile: join(root, "hook.log") }));
    expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_CONFLICT");
    expect((err as Error).message).toContain(hook);
    expect(await readFile(hook, "utf8")).toBe(FOREIGN);
    expect(await uninstallPostCommitHook(repo)).toBe(false);
    expect(await readFile(hook, "utf8")).toBe(FOREIGN);
  });

  it("with force keeps the foreign hook aside and restores it on uninstall", async () => {
    await writeFile(hook, FOREIGN, { mode: 0o755 });
    const result = await installPostCommitHook({ repoDir: repo, command: "true", logFile: join(root, "hook.log"), force: true });
    expect(result).toEqual({ path: hook, replaced: true });
    expect(await readFile(`${hook}.keelson-backup`, "utf8")).toBe(FOREIGN);
    expect(await readFile(hook, "utf8")).toContain(POST_COMMIT_HOOK_MARKER);

    // Installing again over our own hook is a plain rewrite.
    const again = await installPostCommitHook({ repoDir: repo, command: "echo second", logFile: join(root, "hook.log") });
    expect(again).toEqual({ path: hook, replaced: false });
    expect(await readFile(hook, "utf8")).toContain("echo second");
    expect(await readFile(`${hook}.keelson-backup`, "utf8")).toBe(FOREIGN);

    expect(await uninstallPostCommitHook(repo)).toBe(true);
    expect(await readFile(hook, "utf8")).toBe(FOREIGN);
    expect(await fileExists(`${hook}.keelson-backup`)).toBe(false);
    expect(await uninstallPostCommitHook(repo)).toBe(false);
  });

  it("does not overwrite an earlier backup even with force", async () => {
    await writeFile(hook, FOREIGN, { mode: 0o755 });
    await writeFile(`${hook}.keelson-backup`, "#!/bin/sh\necho older\n");
    const err = await rejection(installPostCommitHook({ repoDir: repo, command: "true", logFile: join(root, "hook.log"), force: true }));
    expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_CONFLICT");
    expect(await readFile(hook, "utf8")).toBe(FOREIGN);
    expect(await readFile(`${hook}.keelson-backup`, "utf8")).toBe("#!/bin/sh\necho older\n");
  });

  it("removes its own hook and reports when there was none", async () => {
    expect(await uninstallPostCommitHook(repo)).toBe(false);
    await installPostCommitHook({ repoDir: repo, command: "true", logFile: join(root, "hook.log") });
    expect(await uninstallPostCommitHook(repo)).toBe(true);
    expect(await fileExists(hook)).toBe(false);
  });

  it("follows core.hooksPath", async () => {
    await git(repo, ["config", "core.hooksPath", ".githooks"]);
    const out = join(root, "ran");
    const result = await installPostCommitHook({ repoDir: repo, command: `touch ${shellQuote(out)}`, logFile: "hook.log" });
    expect(result.path).toBe(join(repo, ".githooks", "post-commit"));
    expect(await fileExists(hook)).toBe(false);
    // A relative log file is taken from repoDir.
    expect(await readFile(result.path, "utf8")).toContain(`>> '${join(repo, "hook.log")}'`);
    await commitFile(repo, "second.txt");
    await waitFor(() => fileExists(out), { what: "the hook under core.hooksPath to run" });
    expect(await uninstallPostCommitHook(repo)).toBe(true);
    expect(await fileExists(result.path)).toBe(false);
  });

  it("rejects an empty command", async () => {
    const err = await rejection(installPostCommitHook({ repoDir: repo, command: "  ", logFile: "hook.log" }));
    expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_INVALID_INPUT");
  });
});

describe("shellQuote", () => {
  it("single-quotes, escaping single quotes", () => {
    expect(shellQuote("plain")).toBe("'plain'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(postCommitHookScript(["a b", "c"], "/tmp/x.log")).toContain("  'a b' 'c'\n) >> '/tmp/x.log' 2>&1 < /dev/null &");
  });
});
