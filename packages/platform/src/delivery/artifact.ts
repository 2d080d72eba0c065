// Release artifacts: the folder a pipeline run leaves behind, made read-only and identified
// by a content hash, so a release starts exactly what was built and tested, and a corrupted
// or missing artifact is caught before anything starts from it.
import { createHash } from "node:crypto";
import { chmod, lstat, readFile, readdir, readlink, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { KeelsonError } from "@keelson/protocol";

/**
 * sha256 over every entry under `dir`, sorted by path: files by path, executable bit and
 * bytes; symbolic links by their target (never followed); empty folders by path.
 */
export async function hashTree(dir: string): Promise<{ hash: string; files: number; bytes: number }> {
  const hash = createHash("sha256");
  let files = 0;
  let bytes = 0;
  async function visit(rel: string): Promise<void> {
    const abs = rel === "" ? dir : join(dir, rel);
    const entries = (await readdir(abs, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (entries.length === 0 && rel !== "") hash.update(`d\0${rel}\0`);
    for (const e of entries) {
      const path = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isSymbolicLink()) {
        hash.update(`l\0${path}\0${await readlink(join(dir, path))}\0`);
      } else if (e.isDirectory()) {
        await visit(path);
      } else if (e.isFile()) {
        const full = join(dir, path);
        const [content, info] = await Promise.all([readFile(full), stat(full)]);
        hash.update(`f\0${path}\0${info.mode & 0o111 ? "x" : "-"}\0${content.length}\0`).update(content);
        files++;
        bytes += content.length;
      }
    }
  }
  await visit("");
  return { hash: hash.digest("hex"), files, bytes };
}

/** Takes write permission off every file under `dir` (folders stay writable so it can be deleted). */
export async function sealTree(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    if (e.isDirectory()) await sealTree(full);
    else if (e.isFile()) {
      const { mode } = await lstat(full);
      await chmod(full, mode & ~0o222);
    }
  }
}

/** Throws KEELSON_ERR_ARTIFACT_INVALID when the folder is gone or its hash differs. */
export async function verifyArtifact(input: { release: string; service: string; dir: string; hash: string }): Promise<void> {
  const { release, service, dir, hash } = input;
  const rebuild = `rebuild it with \`keelson deploy ${service} --rebuild\``;
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error("not a folder");
  } catch {
    throw new KeelsonError("KEELSON_ERR_ARTIFACT_INVALID", `release ${release} of ${service}: its artifact folder ${dir} is missing; ${rebuild}`, { details: { release, dir } });
  }
  const found = await hashTree(dir);
  if (found.hash !== hash) {
    throw new KeelsonError(
      "KEELSON_ERR_ARTIFACT_INVALID",
      `release ${release} of ${service}: the artifact in ${dir} was changed after it was built (hash ${found.hash.slice(0, 12)}, recorded ${hash.slice(0, 12)}); ${rebuild}`,
      { details: { release, dir, expected: hash, found: found.hash } },
    );
  }
}

export async function removeTree(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}
