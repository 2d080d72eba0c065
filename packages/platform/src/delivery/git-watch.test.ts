// The git watcher against a real repository: what one poll hands over, that a failed
// handler is retried from the same commit, that polls never overlap, and the polling loop.
import { mkdir, realpath, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { git, makeTempDir, useGitTestEnv, waitFor } from "#test-support";
import { isKeelsonError } from "@keelson/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createGitWatcher, type GitCommitBatch, type GitWatcher } from "./git-watch.js";

useGitTestEnv();

async function commit(repo: string, message: string, files: Record<string, string>): Promise<string> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(repo, path)), { recursive: true });
    await writeFile(join(repo, path), content);
  }
  await git(repo, ["add", "-A"]);
  await git(repo, ["commit", "-q", "-m", message]);
  return git(repo, ["rev-parse", "HEAD"]);
}

/** A promise with its resolve and reject at hand. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("createGitWatcher", () => {
  let repo: string;
  let cleanup: () => Promise<void>;
  let first: string;
  const watchers: GitWatcher[] = [];

  beforeEach(async () => {
    const tmp = await makeTempDir("keelson-watch-");
    cleanup = tmp.cleanup;
    repo = join(await realpath(tmp.dir), "repo");
    await mkdir(repo);
    await git(repo, ["init", "-q"]);
    first = await commit(repo, "initial", { "services/a/index.ts": "a1\n", "services/b/index.ts": "b1\n", "shared/lib.txt": "s1\n" });
  });
  afterEach(async () => {
    await Promise.all(watchers.splice(0).map((w) => w.stop()));
    await cleanup();
  });

  function watch(options: { lastSeen: string | undefined; onCommits: (b: GitCommitBatch) => Promise<void>; ref?: string; onError?: (err: unknown) => void; intervalMs?: number }): GitWatcher {
    const w = createGitWatcher({ repoDir: repo, intervalMs: 20, ...options });
    watchers.push(w);
    return w;
  }

  it("hands over nothing while the ref stays put", async () => {
    const batches: GitCommitBatch[] = [];
    const w = watch({ lastSeen: first, onCommits: async (b) => void batches.push(b) });
    expect(await w.checkOnce()).toBe(false);
    expect(await w.checkOnce()).toBe(false);
    expect(batches).toEqual([]);
    expect(w.lastSeen).toBe(first);
  });

  it("takes a short sha for lastSeen as the same commit", async () => {
    const batches: GitCommitBatch[] = [];
    const w = watch({ lastSeen: first.slice(0, 10), onCommits: async (b) => void batches.push(b) });
    expect(await w.checkOnce()).toBe(false);
    expect(batches).toEqual([]);
    expect(w.lastSeen).toBe(first);
  });

  it("hands over new commits with the files they changed", async () => {
    const batches: GitCommitBatch[] = [];
    const w = watch({ lastSeen: first, onCommits: async (b) => void batches.push(b) });
    const second = await commit(repo, "a: change", { "services/a/index.ts": "a2\n" });
    await git(repo, ["mv", "services/b/index.ts", "services/b/main.ts"]);
    const third = await commit(repo, "b: rename", { "shared/lib.txt": "s2\n" });

    expect(await w.checkOnce()).toBe(true);
    expect(batches).toHaveLength(1);
    const [batch] = batches as [GitCommitBatch];
    expect(batch.from).toBe(first);
    expect(batch.to).toBe(third);
    expect(batch.rewritten).toBe(false);
    expect(batch.commits.map((c) => [c.sha, c.subject, c.author])).toEqual([
      [second, "a: change", "Ada Author"],
      [third, "b: rename", "Ada Author"],
    ]);
    expect(batch.files).toEqual(["services/a/index.ts", "services/b/index.ts", "services/b/main.ts", "shared/lib.txt"]);
    expect(w.lastSeen).toBe(third);
    expect(await w.checkOnce()).toBe(false);
  });

  it("hands over every file on the first run", async () => {
    const batches: GitCommitBatch[] = [];
    const w = watch({ lastSeen: undefined, onCommits: async (b) => void batches.push(b) });
    expect(await w.checkOnce()).toBe(true);
    expect(batches).toEqual([
      { from: undefined, to: first, commits: [expect.objectContaining({ sha: first, subject: "initial" })], files: ["services/a/index.ts", "services/b/index.ts", "shared/lib.txt"], rewritten: false },
    ]);
  });

  it("keeps lastSeen when the handler fails, so the next poll retries the same range", async () => {
    const calls: GitCommitBatch[] = [];
    let fail = true;
    const w = watch({
      lastSeen: first,
      onCommits: async (b) => {
        calls.push(b);
        if (fail) throw new Error("deploy failed");
      },
    });
    const second = await commit(repo, "a: change", { "services/a/index.ts": "a2\n" });
    await expect(w.checkOnce()).rejects.toThrow("deploy failed");
    expect(w.lastSeen).toBe(first);

    fail = false;
    expect(await w.checkOnce()).toBe(true);
    expect(w.lastSeen).toBe(second);
    expect(calls.map((b) => [b.from, b.to, b.files])).toEqual([
      [first, second, ["services/a/index.ts"]],
      [first, second, ["services/a/index.ts"]],
    ]);
  });

  it("flags a rewritten history and still diffs against the old commit", async () => {
    const batches: GitCommitBatch[] = [];
    const w = watch({ lastSeen: first, onCommits: async (b) => void batches.push(b) });
    const second = await commit(repo, "a: change", { "services/a/index.ts": "a2\n" });
    expect(await w.checkOnce()).toBe(true);
    await git(repo, ["reset", "-q", "--hard", "HEAD~1"]);
    const replacement = await commit(repo, "b: instead", { "services/b/index.ts": "b2\n" });

    expect(await w.checkOnce()).toBe(true);
    const last = batches.at(-1);
    expect(last?.from).toBe(second);
    expect(last?.to).toBe(replacement);
    expect(last?.rewritten).toBe(true);
    expect(last?.commits.map((c) => c.sha)).toEqual([replacement]);
    // services/a went back to a1 and services/b moved on: both differ from what was handled.
    expect(last?.files).toEqual(["services/a/index.ts", "services/b/index.ts"]);
  });

  it("never runs two polls at once", async () => {
    let active = 0;
    let most = 0;
    const gate = deferred();
    const w = watch({
      lastSeen: first,
      onCommits: async () => {
        active += 1;
        most = Math.max(most, active);
        await gate.promise;
        active -= 1;
      },
    });
    const second = await commit(repo, "a: change", { "services/a/index.ts": "a2\n" });
    const one = w.checkOnce();
    const two = w.checkOnce();
    await waitFor(() => active === 1, { what: "the first handler to start" });
    gate.resolve();
    // The second poll ran after the first one had handled the commit: nothing left for it.
    expect(await one).toBe(true);
    expect(await two).toBe(false);
    expect(most).toBe(1);
    expect(w.lastSeen).toBe(second);
  });

  it("polls on its own after start, and stop waits for a poll in flight", async () => {
    const batches: GitCommitBatch[] = [];
    const entered: string[] = [];
    const gate = deferred();
    const w = watch({
      lastSeen: first,
      onCommits: async (b) => {
        entered.push(b.to);
        if (entered.length > 1) await gate.promise;
        batches.push(b);
      },
    });
    w.start();
    w.start(); // a second start is a no-op
    const second = await commit(repo, "a: change", { "services/a/index.ts": "a2\n" });
    await waitFor(() => w.lastSeen === second, { timeoutMs: 5_000, what: "the watcher to pick up the commit" });
    expect(batches.map((b) => b.to)).toEqual([second]);

    const third = await commit(repo, "b: change", { "services/b/index.ts": "b2\n" });
    await waitFor(() => entered.includes(third), { timeoutMs: 5_000, what: "the next poll to reach the handler" });
    // stop() resolves only after the blocked handler finished: it then sees both batches.
    const stopping = w.stop().then(() => batches.length);
    await new Promise((r) => setTimeout(r, 50)); // room for a stop() that does not wait to resolve early
    gate.resolve();
    expect(await stopping).toBe(2);
    expect(w.lastSeen).toBe(third);

    // Stopped: a new commit is not picked up.
    await commit(repo, "a: again", { "services/a/index.ts": "a3\n" });
    await new Promise((r) => setTimeout(r, 100));
    expect(w.lastSeen).toBe(third);
    expect(entered).toEqual([second, third]);
  });

  it("reports polling errors and keeps going", async () => {
    const errors: unknown[] = [];
    const batches: GitCommitBatch[] = [];
    const w = watch({ lastSeen: undefined, ref: "refs/heads/feature", onCommits: async (b) => void batches.push(b), onError: (err) => errors.push(err) });
    w.start();
    await waitFor(() => errors.length >= 2, { what: "two polling errors" });
    expect(isKeelsonError(errors[0]) && errors[0].code).toBe("KEELSON_ERR_NOT_FOUND");
    await git(repo, ["branch", "feature"]);
    await waitFor(() => batches.length === 1, { what: "the branch to be picked up" });
    expect(batches[0]?.to).toBe(first);
    expect(w.lastSeen).toBe(first);
  });
});
