// A pipeline run's clean workspace: the service's folder (and the shared paths it includes)
// copied from the working tree or exported from a git commit, laid out as in the repository
// so relative references between them keep working; nothing else of the checkout comes along.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, cp, lstat, mkdir, readFile, readdir, stat, symlink } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { promisify } from "node:util";
import { KeelsonError } from "@keelson/protocol";
import type { ServiceSpec } from "../manifest/index.js";
import { configHash, releaseId } from "./release-id.js";
import { gitToplevel } from "./git.js";
import { listSourceFiles } from "./source-hash.js";

const run = promisify(execFile);

/** Where a service's files are, relative to one root (the git top level, or their common folder). */
export interface SourceLayout {
  /** Absolute root; the workspace mirrors it. */
  root: string;
  /** Whether `root` is a git checkout's top level. */
  git: boolean;
  /** The service folder, relative to root ("/"-separated; "" when it is the root). */
  servicePath: string;
  /** pipeline.include entries: as written (relative to the manifest) and relative to root. */
  includes: Array<{ written: string; path: string }>;
}

const posixRel = (from: string, to: string): string => relative(from, to).split(sep).join("/");

export async function sourceLayout(input: { manifestDir: string; service: string; path: string; include: readonly string[] }): Promise<SourceLayout> {
  const serviceDir = resolve(input.manifestDir, input.path);
  const includeAbs = input.include.map((p) => resolve(input.manifestDir, p));
  let root = await gitToplevel(serviceDir);
  const git = root !== undefined;
  if (root === undefined) root = commonFolder([serviceDir, ...includeAbs]);
  for (const [i, abs] of includeAbs.entries()) {
    const rel = posixRel(root, abs);
    if (rel.startsWith("..") || isAbsolute(rel)) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `services.${input.service}.pipeline.include[${i}]: "${input.include[i]}" is outside ${root}, the repository the service is in`);
    }
  }
  return {
    root,
    git,
    servicePath: posixRel(root, serviceDir),
    includes: input.include.map((written, i) => ({ written, path: posixRel(root, includeAbs[i] as string) })),
  };
}

function commonFolder(paths: string[]): string {
  const split = paths.map((p) => p.split(sep));
  const first = split[0] ?? [];
  let n = first.length;
  for (const parts of split) {
    let i = 0;
    while (i < n && parts[i] === first[i]) i++;
    n = i;
  }
  return first.slice(0, n).join(sep) || sep;
}

/** The files of one part of the layout (service folder or include), relative to root. */
async function partFiles(root: string, part: string): Promise<string[]> {
  const abs = join(root, part);
  const info = await stat(abs);
  if (!info.isDirectory()) return [part];
  const prefix = part === "" ? "" : `${part}/`;
  return (await listSourceFiles(abs)).map((f) => `${prefix}${f}`);
}

/**
 * sha256 over the sources of a layout read from `base` (the working tree's root or an exported
 * workspace): the service's files by their path in the service folder, so an unchanged service
 * keeps its hash when the project moves, then each include's files under its written name.
 */
export async function hashLayoutSources(layout: SourceLayout, base: string, options: { exported?: boolean } = {}): Promise<string> {
  const hash = createHash("sha256");
  const parts: Array<{ label: string; path: string }> = [{ label: "", path: layout.servicePath }, ...layout.includes.map((i) => ({ label: `include:${i.written}/`, path: i.path }))];
  for (const part of parts) {
    const files = options.exported ? await walkFiles(base, part.path) : await partFiles(base, part.path);
    const strip = part.path === "" ? 0 : part.path.length + 1;
    for (const file of files.sort()) {
      let bytes: Buffer;
      try {
        bytes = await readFile(join(base, file));
      } catch {
        continue; // deleted in the work tree but still in git's index
      }
      const name = file === part.path ? "" : file.slice(strip);
      hash.update(`${part.label}${name}`).update("\0").update(String(bytes.length)).update("\0").update(bytes);
    }
  }
  return hash.digest("hex");
}

/** Every file under `part` of an exported workspace (nothing there is ignored: it was exported). */
async function walkFiles(base: string, part: string): Promise<string[]> {
  const abs = join(base, part);
  const info = await lstat(abs).catch(() => undefined);
  if (info === undefined) return [];
  if (!info.isDirectory()) return [part];
  const out: string[] = [];
  for (const e of await readdir(abs, { withFileTypes: true })) {
    const rel = part === "" ? e.name : `${part}/${e.name}`;
    if (e.isDirectory()) out.push(...(await walkFiles(base, rel)));
    else out.push(rel);
  }
  return out;
}

/** The release id a service's working tree would build (no side effects); undefined when it cannot be read. */
export async function candidateRelease(service: string, spec: ServiceSpec, manifestDir: string): Promise<string | undefined> {
  try {
    const layout = await sourceLayout({ manifestDir, service, path: spec.path, include: spec.pipeline?.include ?? [] });
    return releaseId(await hashLayoutSources(layout, layout.root), configHash(spec));
  } catch {
    return undefined;
  }
}

/** Copies the layout's files from the working tree into `dest` (what git would track, or everything but build output). */
export async function exportWorkingTree(layout: SourceLayout, dest: string): Promise<number> {
  let count = 0;
  for (const part of [layout.servicePath, ...layout.includes.map((i) => i.path)]) {
    for (const file of await partFiles(layout.root, part)) {
      const from = join(layout.root, file);
      const to = join(dest, file);
      await mkdir(dirname(to), { recursive: true });
      try {
        await copyFile(from, to);
        count++;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err; // deleted but still in git's index
      }
    }
  }
  return count;
}

/**
 * Services of an npm workspace have no lockfile of their own: their dependencies live in
 * node_modules folders of the repository. Those are linked (not copied) into the workspace
 * at the same places, so `require` resolves as in the checkout. Returns the links made.
 */
export async function linkDependencies(layout: SourceLayout, dest: string): Promise<string[]> {
  const links: string[] = [];
  let rel = layout.servicePath;
  for (;;) {
    const source = join(layout.root, rel, "node_modules");
    const exists = await stat(source).then((s) => s.isDirectory(), () => false);
    if (exists) {
      const at = join(dest, rel, "node_modules");
      await mkdir(dirname(at), { recursive: true });
      await symlink(source, at, "dir");
      links.push(source);
    }
    if (rel === "") break;
    rel = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
  }
  return links;
}

const LOCKFILES = ["package-lock.json", "npm-shrinkwrap.json", "pnpm-lock.yaml", "yarn.lock"] as const;

/** The service's own lockfile, when it has one (then it installs its dependencies itself). */
export async function findLockfile(serviceDir: string): Promise<string | undefined> {
  for (const name of LOCKFILES) {
    if (await stat(join(serviceDir, name)).then((s) => s.isFile(), () => false)) return name;
  }
  return undefined;
}

/** Cache key of an install: the lockfile's bytes, the command and the Node major version. */
export async function installCacheKey(serviceDir: string, lockfile: string, command: string): Promise<string> {
  const bytes = await readFile(join(serviceDir, lockfile));
  return createHash("sha256").update(bytes).update("\0").update(command).update("\0").update(process.versions.node.split(".")[0] ?? "").digest("hex").slice(0, 24);
}

/** Copies a folder, hard-linking files when possible (fast, no extra space), else copying. */
export async function copyFolder(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    await run("cp", ["-al", from, to]);
  } catch {
    await cp(from, to, { recursive: true, verbatimSymlinks: true, force: true });
  }
}
