// A service's source files: what git would track in its folder (or, outside a git checkout,
// every file but dependencies and build output). workspace.ts hashes and copies these.
import { execFile } from "node:child_process";
import { readdir } from "node:fs/promises";
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
