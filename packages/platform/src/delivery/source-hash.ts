// Content hash of a service's sources: what git would track in its folder (or, outside a
// git checkout, every file but dependencies and build output). Equal hash = nothing to rebuild.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Folders never hashed when git cannot tell us what is tracked. */
const UNTRACKED_DIRS = new Set(["node_modules", ".git", ".keelson", "dist", "build", "coverage", ".next", ".turbo"]);

/** Lists the service's source files, relative to `dir`, sorted. */
export async function listSourceFiles(dir: string): Promise<string[]> {
  try {
    const { stdout } = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."], {
      cwd: dir,
      maxBuffer: 64 * 1024 * 1024,
    });
    // ls-files lists deleted-but-tracked files too; they are skipped when read fails.
    return stdout.split("\0").filter(Boolean).sort();
  } catch {
    return (await walk(dir, dir)).sort();
  }
}

async function walk(root: string, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!UNTRACKED_DIRS.has(entry.name)) out.push(...(await walk(root, join(dir, entry.name))));
    } else if (entry.isFile() && !entry.name.endsWith(".tsbuildinfo")) {
      out.push(relative(root, join(dir, entry.name)).split(sep).join("/"));
    }
  }
  return out;
}

/** sha256 over every source file's path and bytes. */
export async function hashServiceSource(dir: string): Promise<string> {
  const hash = createHash("sha256");
  for (const file of await listSourceFiles(dir)) {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(dir, file));
    } catch {
      continue; // deleted in the work tree but still in git's index
    }
    hash.update(file).update("\0").update(String(bytes.length)).update("\0").update(bytes);
  }
  return hash.digest("hex");
}

/** The commit checked out where `dir` is, or undefined outside a git checkout. */
export async function gitCommit(dir: string): Promise<string | undefined> {
  try {
    const { stdout } = await run("git", ["rev-parse", "HEAD"], { cwd: dir });
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}
