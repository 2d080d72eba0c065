// Files only their owner may read (tokens, master keys): written whole via a temp file
// that is mode 0600 from the moment it is opened, and checked for group/other access on read.
import { randomBytes } from "node:crypto";
import { link, mkdir, open, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** True when `mode` lets group or others read, write or run the file (Windows has no such bits). */
export function allowsGroupOrOther(mode: number): boolean {
  return process.platform !== "win32" && (mode & 0o077) !== 0;
}

/**
 * Writes `text` to `file` with mode 0600, creating its folder (mode 0700) when missing.
 * The file appears whole or not at all: a temp file in the same folder is renamed over it.
 * With `exclusive`, an existing file is left alone and false is returned.
 */
export async function writePrivateFile(file: string, text: string, options: { exclusive?: boolean } = {}): Promise<boolean> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(tmp, "wx", 0o600);
    try {
      // The umask can only remove bits, but an explicit chmod makes 0600 hold whatever it is.
      await handle.chmod(0o600);
      await handle.writeFile(text, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.exclusive !== true) {
      await rename(tmp, file);
      return true;
    }
    // link fails when the target exists, so two writers racing cannot both win.
    try {
      await link(tmp, file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    }
  } finally {
    // After a rename the temp name is gone already; after a link or a failure it is removed here.
    await unlink(tmp).catch(() => undefined);
  }
}

/** The mode bits of `file`, or undefined when it does not exist. */
export async function fileMode(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

