// Installs and removes the post-commit hook that tells keelson about new commits. The hook
// runs its command in the background so a commit never waits for a deploy, and it never
// silently replaces a hook somebody else wrote.
import { randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import { gitPath } from "./git.js";

/** The line that marks a post-commit hook as ours; only hooks carrying it are overwritten or removed. */
export const POST_COMMIT_HOOK_MARKER = "# keelson-hook: post-commit";

/** Suffix of the foreign hook kept aside by a forced install, restored on uninstall. */
export const HOOK_BACKUP_SUFFIX = ".keelson-backup";

export interface InstallPostCommitHookOptions {
  repoDir: string;
  /**
   * What the hook runs: a shell command line (used as written), or an argv whose items
   * are quoted one by one.
   */
  command: string | readonly string[];
  /** File the command's output is appended to; a relative path is taken from `repoDir`. */
  logFile: string;
  /** Keep an existing hook that is not ours as `post-commit.keelson-backup` and install anyway. */
  force?: boolean;
}

/** Quotes a word for /bin/sh: inside single quotes everything is literal but the quote itself. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The hook script: our marker, then `command` in a background subshell with its output logged. */
export function postCommitHookScript(command: string | readonly string[], logFile: string): string {
  const line = typeof command === "string" ? command : command.map(shellQuote).join(" ");
  return [
    "#!/bin/sh",
    POST_COMMIT_HOOK_MARKER,
    "# Written by keelson; remove it with keelson's hook uninstall. The command runs in the",
    "# background so the commit does not wait. Git's per-commit variables are cleared so the",
    "# command sees the repository as it is after the commit, not the commit's temporary index.",
    "(",
    "  unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_PREFIX",
    `  ${line}`,
    `) >> ${shellQuote(logFile)} 2>&1 < /dev/null &`,
    "exit 0",
    "",
  ].join("\n");
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** Whether the file at `path` is a hook we wrote; a file we cannot read is not ours. */
async function isOurHook(path: string): Promise<boolean> {
  try {
    return (await readFile(path, "utf8")).split("\n").includes(POST_COMMIT_HOOK_MARKER);
  } catch {
    return false;
  }
}

/** Where the repository's post-commit hook lives (core.hooksPath and worktrees honoured). */
export async function postCommitHookPath(repoDir: string): Promise<string> {
  return join(await gitPath(repoDir, "hooks"), "post-commit");
}

/**
 * Writes an executable post-commit hook that runs `command` in the background after every
 * commit. Our own hook is simply rewritten; somebody else's is refused with
 * KEELSON_ERR_CONFLICT unless `force`, which keeps it as `post-commit.keelson-backup`.
 *
 * @example
 * await installPostCommitHook({ repoDir, command: ["keelson", "watch", "--once"], logFile: ".keelson/hook.log" });
 */
export async function installPostCommitHook(options: InstallPostCommitHookOptions): Promise<{ path: string; replaced: boolean }> {
  const { repoDir, command, force = false } = options;
  if ((typeof command === "string" ? command.trim() : command.join("")) === "") {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "the post-commit hook needs a command to run");
  }
  const path = await postCommitHookPath(repoDir);
  const backup = `${path}${HOOK_BACKUP_SUFFIX}`;
  const logFile = resolve(repoDir, options.logFile);

  let replaced = false;
  if ((await exists(path)) && !(await isOurHook(path))) {
    if (!force) {
      throw new KeelsonError("KEELSON_ERR_CONFLICT", `${path} already exists and was not written by keelson; move it away or install with force (it is kept as ${backup})`, {
        details: { path },
      });
    }
    if (await exists(backup)) {
      // Overwriting it would lose a hook for good; let a person decide which one to keep.
      throw new KeelsonError("KEELSON_ERR_CONFLICT", `${path} is not keelson's and ${backup} already exists; remove or restore one of them first`, {
        details: { path, backup },
      });
    }
    await rename(path, backup);
    replaced = true;
  }

  await mkdir(dirname(path), { recursive: true });
  await mkdir(dirname(logFile), { recursive: true });
  // Written aside and renamed over, so git never runs a half-written hook.
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(tmp, postCommitHookScript(command, logFile));
    await chmod(tmp, 0o755); // explicit: writeFile's mode is cut down by the umask
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return { path, replaced };
}

/**
 * Removes our post-commit hook, putting back a hook kept aside by a forced install. A hook
 * without our marker is left alone. Returns whether our hook was removed.
 */
export async function uninstallPostCommitHook(repoDir: string): Promise<boolean> {
  const path = await postCommitHookPath(repoDir);
  if (!(await exists(path)) || !(await isOurHook(path))) return false;
  await rm(path);
  const backup = `${path}${HOOK_BACKUP_SUFFIX}`;
  if (await exists(backup)) await rename(backup, path);
  return true;
}
