// Replacing a file so that readers see the old content or the new, never a part: the new
// content goes to a temporary file beside it (flushed to disk), which is then renamed over it.
// A symbolic link is followed: the file it names is replaced, and the link stays a link.
import { randomBytes } from "node:crypto";
import { open, readFile, realpath, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { KeelsonError } from "@keelson/protocol";

/** A new content written beside its file, not yet in place. */
export interface StagedFile {
  readonly file: string;
  readonly tmp: string;
  /** Renames the temporary file over the file (after checking it still holds what was expected). */
  commit(): Promise<void>;
  /** Removes the temporary file; safe to call after a failed commit or twice. */
  discard(): Promise<void>;
}

export interface StageOptions {
  /** The content the file must still have at commit; another writer's change is a conflict, not lost. */
  expect?: string;
  /** File mode of the new file; default: the existing file's, else 0o644. */
  mode?: number;
  /** The rename used to commit (tests make it fail). */
  rename?: (from: string, to: string) => Promise<void>;
}

/**
 * Writes `content` to a temporary file in `file`'s folder and flushes it.
 *
 * @example
 * const staged = await stageFile("keelson.yaml", next, { expect: current });
 * await staged.commit();
 */
export async function stageFile(file: string, content: string | Buffer, options: StageOptions = {}): Promise<StagedFile> {
  // Renaming over a link would replace the link; the file it names is the one to replace.
  const target = await realpath(file).catch(() => file);
  const tmp = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString("hex")}.tmp`);
  const mode = options.mode ?? (await stat(target).then((s) => s.mode & 0o777, () => 0o644));
  const handle = await open(tmp, "wx", mode);
  try {
    await handle.chmod(mode); // open's mode is narrowed by the umask; keep the file's own
    await handle.writeFile(content);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  const doRename = options.rename ?? rename;
  const discard = () => unlink(tmp).catch(() => undefined);
  return {
    file,
    tmp,
    async commit() {
      if (options.expect !== undefined) {
        const now = await readFile(file, "utf8").catch(() => undefined);
        if (now !== options.expect) {
          await discard();
          throw new KeelsonError("KEELSON_ERR_CONFLICT", `${file} changed while it was being edited; nothing was written, try again`, { details: { file } });
        }
      }
      try {
        await doRename(tmp, target);
      } catch (err) {
        await discard();
        throw err;
      }
    },
    discard,
  };
}

/** Replaces a file atomically (see stageFile). */
export async function writeFileAtomic(file: string, content: string | Buffer, options: StageOptions = {}): Promise<void> {
  const staged = await stageFile(file, content, options);
  await staged.commit();
}
