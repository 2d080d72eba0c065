// A lock file shared by every process that uses the data folder, so a read-modify-write of
// the stock stays whole even while an old and a new replica overlap during a deploy.
import { open, stat, unlink } from "node:fs/promises";

export interface FileLockOptions {
  /** Give up waiting after this long. */
  timeoutMs?: number;
  /** A lock older than this is taken to be left by a killed process and removed. */
  staleMs?: number;
  retryMs?: number;
}

/** Runs `fn` while holding the lock file at `path` (created exclusively, removed afterwards). */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const { timeoutMs = 5000, staleMs = 10_000, retryMs = 10 } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const age = await stat(path).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > staleMs) {
        await unlink(path).catch(() => {});
        continue;
      }
      if (Date.now() > deadline) throw new Error(`could not take the lock ${path} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, retryMs));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(path).catch(() => {});
  }
}
