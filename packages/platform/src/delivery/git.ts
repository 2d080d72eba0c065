// The git facts the per-service pipelines and `keelson watch` need: which commits arrived,
// which files they changed, which services those files belong to, and a service's files at
// a commit. Everything goes through the `git` binary (execFile, never a shell).
import { execFile, spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import { promisify } from "node:util";
import { KeelsonError } from "@keelson/protocol";

const run = promisify(execFile);

const MAX_BUFFER = 256 * 1024 * 1024;

/** Kept in error details so a failure shows what git said without flooding a log line. */
const MAX_STDERR = 8 * 1024;

/**
 * Variables that point git at a particular repository or index. Git exports them to hooks,
 * so a `keelson` started from a hook would otherwise read the hook's repository (or a
 * temporary index that is already gone) instead of `repoDir`.
 */
const LOCATION_ENV = [
  "GIT_DIR",
  "GIT_WORK_TREE",
  "GIT_INDEX_FILE",
  "GIT_OBJECT_DIRECTORY",
  "GIT_ALTERNATE_OBJECT_DIRECTORIES",
  "GIT_COMMON_DIR",
  "GIT_PREFIX",
  "GIT_IMPLICIT_WORK_TREE",
];

function gitEnv(): NodeJS.ProcessEnv {
  // LC_ALL=C: git's messages in English, so "not a git repository" can be recognised.
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: "C" };
  for (const name of LOCATION_ENV) delete env[name];
  return env;
}

/** One commit as the pipelines and watch report it. Times are ISO 8601 in UTC. */
export interface CommitInfo {
  sha: string;
  author: string;
  authorEmail: string;
  authorTime: string;
  committerTime: string;
  subject: string;
}

/** The commits from one seen commit to a newer one, oldest first. */
export interface CommitRange {
  commits: CommitInfo[];
  /**
   * True when `from` is not an ancestor of `to` (history was rewritten, e.g. by a force-push)
   * or no longer exists; `commits` then holds only `to`.
   */
  rewritten: boolean;
}

interface GitFailure extends Error {
  code?: number | string;
  stderr?: string;
}

function tail(text: string): string {
  return text.length > MAX_STDERR ? `…${text.slice(-MAX_STDERR)}` : text;
}

function gitFailed(repoDir: string, args: string[], err: unknown): KeelsonError {
  const e = err as GitFailure;
  const stderr = (e.stderr ?? "").trim();
  if (e.code === "ENOENT") {
    return new KeelsonError("KEELSON_ERR_INTERNAL", `cannot run git in ${repoDir}: git is not installed or ${repoDir} does not exist`, { cause: err });
  }
  if (/not a git repository/i.test(stderr)) {
    return new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${repoDir} is not inside a git repository`, { cause: err });
  }
  const firstLine = stderr.split("\n")[0] ?? "";
  return new KeelsonError("KEELSON_ERR_INTERNAL", `git ${args[0] ?? ""} failed in ${repoDir}${firstLine ? `: ${firstLine}` : ""}`, {
    details: { args, exitCode: e.code, stderr: tail(stderr) },
    cause: err,
  });
}

/** Runs git in `repoDir` and returns its stdout; a failure becomes a KeelsonError. */
async function git(repoDir: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run("git", args, { cwd: repoDir, env: gitEnv(), maxBuffer: MAX_BUFFER });
    return stdout;
  } catch (err) {
    throw gitFailed(repoDir, args, err);
  }
}

/** Runs git for a yes/no answer: exit 0 → true, exit 1 → false, anything else throws. */
async function gitTest(repoDir: string, args: string[]): Promise<boolean> {
  try {
    await run("git", args, { cwd: repoDir, env: gitEnv(), maxBuffer: MAX_BUFFER });
    return true;
  } catch (err) {
    if ((err as GitFailure).code === 1) return false;
    throw gitFailed(repoDir, args, err);
  }
}

/** Whether any of the repo-relative `paths` differ from HEAD in the work tree (changed, staged or untracked). */
export async function hasUncommittedChanges(repoDir: string, paths: string[]): Promise<boolean> {
  return (await git(repoDir, ["status", "--porcelain", "--", ...paths])).trim().length > 0;
}

/** The root of the work tree `dir` is in, or undefined outside a git checkout. */
export async function gitToplevel(dir: string): Promise<string | undefined> {
  try {
    const { stdout } = await run("git", ["rev-parse", "--show-toplevel"], { cwd: dir, env: gitEnv() });
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The absolute path git uses for `name` in the repository's git folder (`git rev-parse
 * --git-path`): honours core.hooksPath for "hooks" and the common folder of a worktree.
 */
export async function gitPath(repoDir: string, name: string): Promise<string> {
  const out = (await git(repoDir, ["rev-parse", "--git-path", name])).replace(/\n$/, "");
  return resolve(repoDir, out);
}

/** The full sha `rev` names, or undefined when it names no commit. */
export async function tryResolveCommit(repoDir: string, rev: string): Promise<string | undefined> {
  if (rev.trim() === "") return undefined;
  // --end-of-options: a rev such as "--all" is looked up, not taken as an option.
  const args = ["rev-parse", "--verify", "--quiet", "--end-of-options", `${rev}^{commit}`];
  try {
    const { stdout } = await run("git", args, { cwd: repoDir, env: gitEnv() });
    return stdout.trim() || undefined;
  } catch (err) {
    if ((err as GitFailure).code === 1) return undefined;
    throw gitFailed(repoDir, args, err);
  }
}

/**
 * The full sha of the commit `rev` names (a sha, branch, tag or expression like `HEAD~2`).
 *
 * @example
 * await resolveCommit("/src/shop", "main"); // "3f2c…" (40 hex digits)
 */
export async function resolveCommit(repoDir: string, rev: string): Promise<string> {
  const sha = await tryResolveCommit(repoDir, rev);
  if (sha === undefined) {
    throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `commit "${rev}" not found in ${repoDir}`, { details: { rev, repoDir } });
  }
  return sha;
}

// Fields separated by NUL; with -z every record also ends in NUL, so the output is a flat
// list of fields taken six at a time. %an/%ae are the raw names (no mailmap).
const LOG_FORMAT = "--format=%H%x00%an%x00%ae%x00%aI%x00%cI%x00%s";
const LOG_FIELDS = 6;

function parseLog(stdout: string): CommitInfo[] {
  const fields = stdout.split("\0");
  const commits: CommitInfo[] = [];
  for (let i = 0; i + LOG_FIELDS <= fields.length; i += LOG_FIELDS) {
    const [sha, author, authorEmail, authorTime, committerTime, subject] = fields.slice(i, i + LOG_FIELDS) as [string, string, string, string, string, string];
    commits.push({
      sha,
      author,
      authorEmail,
      authorTime: new Date(authorTime).toISOString(),
      committerTime: new Date(committerTime).toISOString(),
      subject,
    });
  }
  return commits;
}

/** Author, times and subject of one commit. */
export async function commitInfo(repoDir: string, sha: string): Promise<CommitInfo> {
  const full = await resolveCommit(repoDir, sha);
  const [info] = parseLog(await git(repoDir, ["log", "-1", "-z", "--no-show-signature", LOG_FORMAT, full, "--"]));
  if (info === undefined) throw new KeelsonError("KEELSON_ERR_INTERNAL", `git log printed nothing for ${full} in ${repoDir}`);
  return info;
}

/**
 * The commits after `from` up to and including `to`, oldest first (parents before children).
 * Without `from` (nothing seen yet) it is just `to`. When `from` is not an ancestor of `to`
 * (a force-push) or is gone, the range cannot be told: it is just `to`, with `rewritten: true`.
 */
export async function commitsBetween(repoDir: string, from: string | undefined, to: string): Promise<CommitRange> {
  const toSha = await resolveCommit(repoDir, to);
  if (from === undefined) return { commits: [await commitInfo(repoDir, toSha)], rewritten: false };
  const fromSha = await tryResolveCommit(repoDir, from);
  if (fromSha === undefined || !(await gitTest(repoDir, ["merge-base", "--is-ancestor", fromSha, toSha]))) {
    return { commits: [await commitInfo(repoDir, toSha)], rewritten: true };
  }
  if (fromSha === toSha) return { commits: [], rewritten: false };
  const stdout = await git(repoDir, ["log", "-z", "--no-show-signature", "--date-order", "--reverse", LOG_FORMAT, `${fromSha}..${toSha}`, "--"]);
  return { commits: parseLog(stdout), rewritten: false };
}

/**
 * The commits after `from` up to and including `to` that change any of `paths` (repo-relative,
 * taken literally; "" or "." is the whole repository), oldest first: what a deployment of a
 * service brought (`git log from..to -- paths`). Without `from` it is just `to`; a `from` that is
 * not an ancestor of `to` (or is gone) cannot bound the range: just `to`, with `rewritten: true`.
 *
 * @example
 * await commitsTouching("/src/shop", "3f2c…", "9a1b…", ["services/orders", "shared/lib"]);
 */
export async function commitsTouching(repoDir: string, from: string | undefined, to: string, paths: string[]): Promise<CommitRange> {
  const toSha = await resolveCommit(repoDir, to);
  if (from === undefined) return { commits: [await commitInfo(repoDir, toSha)], rewritten: false };
  const fromSha = await tryResolveCommit(repoDir, from);
  if (fromSha === undefined || !(await gitTest(repoDir, ["merge-base", "--is-ancestor", fromSha, toSha]))) {
    return { commits: [await commitInfo(repoDir, toSha)], rewritten: true };
  }
  if (fromSha === toSha) return { commits: [], rewritten: false };
  const specs = paths.map(checkExportPath).map((p) => (p === "" ? ":(top)" : `:(top,literal)${p}`));
  const stdout = await git(repoDir, ["log", "-z", "--no-show-signature", "--date-order", "--reverse", LOG_FORMAT, `${fromSha}..${toSha}`, "--", ...(specs.length > 0 ? specs : [":(top)"])]);
  return { commits: parseLog(stdout), rewritten: false };
}

function splitZ(stdout: string): string[] {
  return [...new Set(stdout.split("\0").filter(Boolean))].sort();
}

/**
 * Repo-relative paths that differ between two commits, sorted: added, modified, deleted, and
 * both the old and the new path of a rename. Without `from`, every file of `to`.
 */
export async function changedFiles(repoDir: string, from: string | undefined, to: string): Promise<string[]> {
  const toSha = await resolveCommit(repoDir, to);
  if (from === undefined) {
    // --full-tree: repo-relative even when repoDir is a subfolder of the checkout.
    return splitZ(await git(repoDir, ["ls-tree", "-r", "-z", "--name-only", "--full-tree", toSha]));
  }
  const fromSha = await resolveCommit(repoDir, from);
  // --no-renames lists a rename as a deletion plus an addition: both sides, whatever diff.renames says.
  return splitZ(await git(repoDir, ["diff", "--no-renames", "--no-ext-diff", "--name-only", "-z", fromSha, toSha, "--"]));
}

/** A repo-relative path without "./", empty segments or a trailing "/"; "" is the whole repo. */
function normalizePath(path: string): string {
  return path
    .split("/")
    .filter((s) => s !== "" && s !== ".")
    .join("/");
}

function checkExportPath(path: string): string {
  if (isAbsolute(path) || path.split("/").includes("..") || path.includes("\n") || path.includes("\0")) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `path "${path}" must be relative to the repository, without ".." or line breaks`, { details: { path } });
  }
  return normalizePath(path);
}

/** Which of `paths` (normalized, non-empty) do not exist at `sha`; one cat-file for all. */
async function missingPaths(repoDir: string, sha: string, paths: string[]): Promise<string[]> {
  if (paths.length === 0) return [];
  const args = ["cat-file", "--batch-check"];
  const child = execFile("git", args, { cwd: repoDir, env: gitEnv(), maxBuffer: MAX_BUFFER });
  const done = new Promise<string>((resolveOut, reject) => {
    let out = "";
    let err = "";
    child.stdout?.on("data", (d: Buffer | string) => (out += String(d)));
    child.stderr?.on("data", (d: Buffer | string) => (err += String(d)));
    child.once("error", (e) => reject(gitFailed(repoDir, args, e)));
    child.once("close", (code) => {
      if (code === 0) resolveOut(out);
      else reject(gitFailed(repoDir, args, Object.assign(new Error(`exit ${code}`), { code: code ?? undefined, stderr: err })));
    });
  });
  child.stdin?.on("error", () => {}); // reported through the exit code
  child.stdin?.end(paths.map((p) => `${sha}:${p}\n`).join(""));
  const lines = (await done).split("\n");
  return paths.filter((_, i) => lines[i]?.endsWith(" missing"));
}

/**
 * Writes the files under `paths` (repo-relative files or folders; "." is everything) as they
 * are at `commit` into `destDir`, keeping their repo-relative layout. Bytes are what a checkout
 * of that commit holds (git archive: .gitattributes export-ignore / export-subst / eol apply).
 *
 * @example
 * await exportTree("/src/shop", sha, ["services/orders", "shared/lib"], "/tmp/build-orders");
 * // → /tmp/build-orders/services/orders/…, /tmp/build-orders/shared/lib/…
 */
export async function exportTree(repoDir: string, commit: string, paths: string[], destDir: string): Promise<void> {
  if (paths.length === 0) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "exportTree needs at least one path (\".\" for the whole repository)");
  const normalized = [...new Set(paths.map(checkExportPath))];
  const sha = await resolveCommit(repoDir, commit);
  const missing = await missingPaths(repoDir, sha, normalized.filter((p) => p !== ""));
  if (missing.length > 0) {
    throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `path${missing.length > 1 ? "s" : ""} ${missing.map((p) => `"${p}"`).join(", ")} not found at commit ${sha} in ${repoDir}`, {
      details: { missing, commit: sha, repoDir },
    });
  }
  // git archive reads pathspecs relative to its working folder, so run it at the top of the
  // checkout (a bare repository has no subfolders to be in).
  const cwd = (await gitToplevel(repoDir)) ?? repoDir;
  await mkdir(destDir, { recursive: true });
  await pipeArchive(cwd, sha, normalized.map((p) => (p === "" ? "." : p)), resolve(destDir));
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  error?: Error;
}

function waitExit(child: ReturnType<typeof spawn>): Promise<Exit> {
  return new Promise((resolveExit) => {
    let stderr = "";
    let error: Error | undefined;
    child.stderr?.on("data", (d: Buffer) => {
      if (stderr.length < MAX_STDERR) stderr += d.toString("utf8");
    });
    child.once("error", (e) => {
      error = e;
      // A process that never started emits no "close" on some Node versions' paths.
      if (child.pid === undefined) resolveExit({ code: null, signal: null, stderr, error });
    });
    child.once("close", (code, signal) => resolveExit({ code, signal, stderr, error }));
  });
}

function describeExit(name: string, exit: Exit): string {
  if (exit.error !== undefined) return `${name} could not run: ${exit.error.message}`;
  const how = exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  const said = exit.stderr.trim();
  return `${name} ${how}${said ? `: ${said.split("\n")[0] ?? ""}` : ""}`;
}

/** `git archive --format=tar` piped into `tar -x`, both spawned directly; both must exit 0. */
async function pipeArchive(cwd: string, sha: string, paths: string[], destDir: string): Promise<void> {
  // --literal-pathspecs: a path with "*" or ":" is a name, never a pattern or pathspec magic.
  const archiveArgs = ["--literal-pathspecs", "archive", "--format=tar", sha, "--", ...paths];
  const archive = spawn("git", archiveArgs, { cwd, env: gitEnv(), stdio: ["ignore", "pipe", "pipe"] });
  const tar = spawn("tar", ["-x", "-f", "-", "-C", destDir], { stdio: ["pipe", "ignore", "pipe"] });
  // If tar dies early, git sees EPIPE; both exits are reported below, not thrown here.
  tar.stdin.on("error", () => {});
  archive.stdout.on("error", () => {});
  archive.stdout.pipe(tar.stdin);
  // Once tar is gone nothing reads git's output; drain it so git can run to its exit.
  tar.once("close", () => {
    archive.stdout.unpipe(tar.stdin);
    archive.stdout.resume();
  });
  const [a, t] = await Promise.all([waitExit(archive), waitExit(tar)]);
  const archiveOk = a.error === undefined && a.code === 0;
  const tarOk = t.error === undefined && t.code === 0;
  if (archiveOk && tarOk) return;
  const problems = [archiveOk ? undefined : describeExit("git archive", a), tarOk ? undefined : describeExit("tar", t)].filter(Boolean);
  throw new KeelsonError("KEELSON_ERR_INTERNAL", `exporting ${sha} to ${destDir} failed: ${problems.join("; ")}`, {
    details: { commit: sha, destDir, paths, gitStderr: tail(a.stderr), tarStderr: tail(t.stderr) },
  });
}

/** Matches one path segment against one pattern segment, where "*" is any run of characters. */
function matchSegment(pattern: string, segment: string): boolean {
  if (!pattern.includes("*")) return pattern === segment;
  // Greedy wildcard match with backtracking to the last "*": linear in practice.
  let p = 0;
  let s = 0;
  let star = -1;
  let mark = 0;
  while (s < segment.length) {
    if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      mark = s;
    } else if (p < pattern.length && pattern[p] === segment[s]) {
      p++;
      s++;
    } else if (star !== -1) {
      p = star + 1;
      s = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

function matchSegments(pattern: string[], pi: number, segments: string[], si: number): boolean {
  // The whole pattern matched a leading part of the path: the file lies under a matched folder.
  if (pi === pattern.length) return true;
  const p = pattern[pi] as string;
  if (p === "**") {
    for (let k = si; k <= segments.length; k++) if (matchSegments(pattern, pi + 1, segments, k)) return true;
    return false;
  }
  if (si === segments.length) return false;
  return matchSegment(p, segments[si] as string) && matchSegments(pattern, pi + 1, segments, si + 1);
}

/**
 * Whether a repo-relative file is covered by a path filter. A plain filter matches itself and
 * everything under it, on "/" boundaries ("services/orders" covers "services/orders/x" but not
 * "services/orders-v2/x"). In a glob "*" matches within one segment and "**" any number of
 * segments; like a plain path, a glob also covers everything under what it matches.
 * "" and "." cover the whole repository.
 *
 * @example
 * matchesPathFilter("services/a/package.json", "services/*\/package.json"); // true
 * matchesPathFilter("docs/guide/intro.md", "docs/**\/*.md"); // true
 */
export function matchesPathFilter(file: string, filter: string): boolean {
  const pattern = normalizePath(filter).split("/").filter(Boolean);
  const segments = normalizePath(file).split("/").filter(Boolean);
  return matchSegments(pattern, 0, segments, 0);
}

/**
 * The names of the services whose paths cover at least one of the changed files, sorted and
 * unique. A shared path listed by several services triggers all of them.
 */
export function servicesForChanges(files: string[], services: Array<{ name: string; paths: string[] }>): string[] {
  const hit = new Set<string>();
  for (const service of services) {
    if (hit.has(service.name)) continue;
    if (files.some((file) => service.paths.some((filter) => matchesPathFilter(file, filter)))) hit.add(service.name);
  }
  return [...hit].sort();
}
