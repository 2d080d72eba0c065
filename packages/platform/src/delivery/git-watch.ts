// Polls a git ref and hands every new stretch of commits, with the files they changed, to a
// callback; the last handled commit only moves on once the callback succeeded, so a failed
// deploy is retried on the next poll. Used by `keelson watch`.
import { changedFiles, commitsBetween, resolveCommit, tryResolveCommit, type CommitInfo } from "./git.js";

/** What arrived since the last handled commit. */
export interface GitCommitBatch {
  /** The last handled commit, full sha (as given if it no longer exists); undefined on the first run. */
  from: string | undefined;
  /** The commit the ref points at now (full sha). */
  to: string;
  /** New commits, oldest first; only `to` when `rewritten` or on the first run. */
  commits: CommitInfo[];
  /**
   * Repo-relative files that differ between `from` and `to`; every file of `to` on the first
   * run or when `from` no longer exists.
   */
  files: string[];
  /** `from` is not an ancestor of `to` (e.g. after a force-push). */
  rewritten: boolean;
}

export interface GitWatcherOptions {
  repoDir: string;
  /** The ref to follow; default "HEAD". */
  ref?: string;
  /** Pause between the end of one poll and the start of the next. */
  intervalMs: number;
  /** The last commit already handled, e.g. from the store; undefined hands over all of the ref's files first. */
  lastSeen: string | undefined;
  /** Handles a batch; when it rejects, `lastSeen` stays and the same range comes again. */
  onCommits: (batch: GitCommitBatch) => Promise<void>;
  /** Failures of the polling loop (git or onCommits); the loop keeps going. Ignored without one. */
  onError?: (err: unknown) => void;
}

export interface GitWatcher {
  /** Polls once (after any poll in flight); true when new commits were handed over. */
  checkOnce(): Promise<boolean>;
  /** Starts polling at once, then every `intervalMs`; does nothing when already started. */
  start(): void;
  /** Stops polling and waits for a poll in flight. */
  stop(): Promise<void>;
  /** The last commit handed over successfully. */
  readonly lastSeen: string | undefined;
}

/**
 * Follows `ref` in `repoDir`.
 *
 * @example
 * const watcher = createGitWatcher({ repoDir, intervalMs: 2000, lastSeen, onCommits: (b) => deploy(b) });
 * watcher.start();
 */
export function createGitWatcher(options: GitWatcherOptions): GitWatcher {
  const { repoDir, ref = "HEAD", intervalMs, onCommits, onError = () => {} } = options;
  let lastSeen = options.lastSeen;
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  // Every poll is chained after the previous one, so two never overlap.
  let queue: Promise<unknown> = Promise.resolve();

  async function poll(): Promise<boolean> {
    const to = await resolveCommit(repoDir, ref);
    if (to === lastSeen) return false;
    const from = lastSeen;
    const fromSha = from === undefined ? undefined : await tryResolveCommit(repoDir, from);
    if (fromSha === to) {
      // lastSeen was given as a short sha or a name for the same commit: nothing new.
      lastSeen = to;
      return false;
    }
    const { commits, rewritten } = await commitsBetween(repoDir, from, to);
    // After a force-push the tree diff against the old commit is still the truth about what
    // changed; only when the old commit is gone does every file count.
    const files = await changedFiles(repoDir, fromSha, to);
    await onCommits({ from: fromSha ?? from, to, commits, files, rewritten });
    lastSeen = to;
    return true;
  }

  function enqueue(): Promise<boolean> {
    const next = queue.then(poll);
    queue = next.catch(() => {});
    return next;
  }

  function schedule(delayMs: number): void {
    timer = setTimeout(tick, delayMs);
    timer.unref();
  }

  function tick(): void {
    timer = undefined;
    if (!running) return;
    void enqueue()
      .catch((err: unknown) => {
        try {
          onError(err);
        } catch {
          // A throwing error handler must not end the loop.
        }
      })
      .finally(() => {
        if (running && timer === undefined) schedule(intervalMs);
      });
  }

  return {
    checkOnce: enqueue,
    start() {
      if (running) return;
      running = true;
      schedule(0);
    },
    async stop() {
      running = false;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await queue;
    },
    get lastSeen() {
      return lastSeen;
    },
  };
}
