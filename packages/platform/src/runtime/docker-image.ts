// Release images for the docker runtime: the release folder (a replica spec's cwd) packed as the
// build context and built with the classic builder, from the folder's own Dockerfile or a
// generated one that copies the release to the same path it has on the host. Tagged by
// project/service/release, so a release is built once and every later start re-uses the image.
import { lstat, readdir, readlink, realpath, stat } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { KeelsonError, REPLICA_ENV } from "@keelson/protocol";
import type Docker from "dockerode";
import { engineMessage, engineStatus, followProgress } from "./docker-engine.js";
import type { TarEntry } from "./docker-tar.js";
import { packTar } from "./docker-tar.js";
import type { RuntimeLog } from "./replica-supervisor.js";
import type { ReplicaSpec } from "./runtime-driver.js";

/** Labels the docker driver puts on what it makes (images and containers). */
export const LABELS = {
  project: "keelson.project",
  service: "keelson.service",
  release: "keelson.release",
  replica: "keelson.replica",
  /** The release folder an image was built from. */
  source: "keelson.source",
  /** JSON list of host paths outside the release that it links to (bind-mounted at run time). */
  mounts: "keelson.mounts",
  /** The working folder of a generated image; absent when the release brought its own Dockerfile. */
  workdir: "keelson.workdir",
} as const;

/** A release's image in the engine and what running it needs. */
export interface ReleaseImage {
  tag: string;
  /** Host paths the release links to from outside its folder: mounted read-only at the same path. */
  mounts: string[];
  /** Working folder for the container (the release folder), or undefined to keep the image's own. */
  workdir: string | undefined;
}

/** Docker's reference grammar: lowercase path components of [a-z0-9] joined by . _ -. */
function component(name: string): string {
  const clean = name
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[._-]+|[._-]+$/g, "");
  return clean === "" ? "x" : clean;
}

/** The image tag of a release: keelson/<project>/<service>:<release>. */
export function releaseImageTag(spec: Pick<ReplicaSpec, "project" | "service" | "release">): string {
  const tag = spec.release.replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^[.-]+/, "").slice(0, 128) || "release";
  return `keelson/${component(spec.project)}/${component(spec.service)}:${tag}`;
}

function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** Where a symlink at `at` leads, fully resolved; undefined when it dangles. */
async function linkTarget(at: string): Promise<string | undefined> {
  return realpath(at).catch(() => undefined);
}

/**
 * The build context of a release folder: every file, folder and symlink under it. A symlink that
 * leads out of the folder is kept with its resolved absolute target, which is then listed in
 * `outside` (a workspace release links its dependencies rather than copying them).
 */
async function contextOf(root: string): Promise<{ entries: TarEntry[]; outside: Set<string>; hasDockerfile: boolean }> {
  const realRoot = await realpath(root);
  const entries: TarEntry[] = [];
  const outside = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const abs = join(dir, name);
      const path = relative(root, abs).split(sep).join("/");
      const st = await lstat(abs);
      const mtime = Math.floor(st.mtimeMs / 1000);
      if (st.isSymbolicLink()) {
        const target = await readlink(abs);
        const resolved = await linkTarget(abs);
        if (resolved !== undefined && !isInside(resolved, realRoot)) {
          outside.add(resolved);
          entries.push({ type: "symlink", path, target: resolved, mtime });
        } else {
          entries.push({ type: "symlink", path, target, mtime });
        }
      } else if (st.isDirectory()) {
        entries.push({ type: "dir", path, mode: st.mode, mtime });
        await walk(abs);
      } else if (st.isFile()) {
        entries.push({ type: "file", path, mode: st.mode, size: st.size, from: abs, mtime });
      }
      // Sockets and fifos have no place in an image.
    }
  };
  await walk(root);
  return { entries, outside, hasDockerfile: entries.some((e) => e.path === "Dockerfile" && e.type === "file") };
}

/** At most this many linked host paths are followed (a guard against a link web). */
const MAX_LINKED_PATHS = 200;

/**
 * Host paths a linked folder leads to in turn: symlinks among its entries, its node_modules
 * entries and their @scope entries that lead out of it (npm workspaces link packages this way).
 */
async function linkedFrom(dir: string): Promise<string[]> {
  const found: string[] = [];
  const scan = async (at: string, depth: number): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(at);
    } catch {
      return;
    }
    for (const name of names) {
      const abs = join(at, name);
      const st = await lstat(abs).catch(() => undefined);
      if (st?.isSymbolicLink() === true) {
        const resolved = await linkTarget(abs);
        if (resolved !== undefined && !isInside(resolved, dir)) found.push(resolved);
      } else if (st?.isDirectory() === true && depth > 0 && (name === "node_modules" || name.startsWith("@"))) {
        await scan(abs, depth - 1);
      }
    }
  };
  await scan(dir, 2);
  return found;
}

/** The host paths to mount for these linked paths: each path and what it links to, outermost only. */
export async function linkedHostPaths(start: Iterable<string>): Promise<string[]> {
  const seen = new Set<string>();
  const queue = [...start];
  while (queue.length > 0 && seen.size < MAX_LINKED_PATHS) {
    const path = queue.shift() as string;
    if (seen.has(path)) continue;
    seen.add(path);
    const st = await lstat(path).catch(() => undefined);
    if (st?.isDirectory() === true) queue.push(...(await linkedFrom(path)));
  }
  const sorted = [...seen].sort();
  return sorted.filter((p) => !sorted.some((q) => q !== p && isInside(p, q)));
}

/** Where the context holds the links of the release folder's ancestors, as absolute paths under it. */
const ANCESTOR_LINKS = ".keelson-ancestors";

/**
 * node_modules links in the folders above the release that lead elsewhere: Node resolves packages
 * through them (a pipeline links a workspace release's dependencies at each level of its path).
 */
async function ancestorModuleLinks(cwd: string): Promise<Array<{ at: string; target: string }>> {
  const links: Array<{ at: string; target: string }> = [];
  for (let dir = dirname(resolve(cwd)); ; dir = dirname(dir)) {
    const at = join(dir, "node_modules");
    if ((await lstat(at).catch(() => undefined))?.isSymbolicLink() === true) {
      const target = await linkTarget(at);
      if (target !== undefined) links.push({ at, target });
    }
    if (dirname(dir) === dir) return links;
  }
}

function dockerfile(base: string, cwd: string, ancestors: boolean): string {
  const at = JSON.stringify(`${cwd}/`);
  const links = ancestors ? `COPY ${ANCESTOR_LINKS}/ /\n` : "";
  return `# Generated by keelson: the release at the path it has on the host.\nFROM ${base}\n${links}COPY . ${at}\nWORKDIR ${JSON.stringify(cwd)}\n`;
}

export interface ReleaseImageBuilderOptions {
  docker: Docker;
  /** Resolves the base image's tag, making it when needed (called only when a build needs it). */
  baseImage: () => Promise<string>;
  log?: RuntimeLog;
}

export interface ReleaseImageBuilder {
  /**
   * The image of a spec's release: found by tag (built from the same folder) or built now. Concurrent
   * calls for one release share one build. Rejects with KEELSON_ERR_START_FAILED naming the service
   * when the folder is missing or the build fails (with the build's last output lines).
   */
  ensure(spec: ReplicaSpec): Promise<ReleaseImage>;
}

function imageOf(tag: string, labels: Record<string, string> | undefined): ReleaseImage {
  let mounts: string[] = [];
  try {
    const parsed = JSON.parse(labels?.[LABELS.mounts] ?? "[]") as unknown;
    if (Array.isArray(parsed)) mounts = parsed.filter((p): p is string => typeof p === "string");
  } catch {
    // An image labelled by hand: nothing to mount.
  }
  return { tag, mounts, workdir: labels?.[LABELS.workdir] };
}

/** Builds release images, once per release. */
export function createReleaseImageBuilder(options: ReleaseImageBuilderOptions): ReleaseImageBuilder {
  const { docker } = options;
  const building = new Map<string, Promise<ReleaseImage>>();

  async function build(spec: ReplicaSpec, tag: string): Promise<ReleaseImage> {
    const where = `services.${spec.service}`;
    const fail = (why: string, cause?: unknown): KeelsonError =>
      new KeelsonError("KEELSON_ERR_START_FAILED", `${where}: cannot build image ${tag} of release ${spec.release}: ${why}`, { cause, details: { replica: spec.id, image: tag, cwd: spec.cwd } });
    try {
      const found = await docker.getImage(tag).inspect();
      // Same tag from another folder (a release id re-used by hand): that image is not this release.
      if (found.Config.Labels?.[LABELS.source] === spec.cwd) return imageOf(tag, found.Config.Labels);
    } catch (err) {
      if (engineStatus(err) !== 404) throw fail(`the engine could not be asked for it: ${engineMessage(err)}`, err);
    }
    const st = await lstat(spec.cwd).catch(() => undefined);
    if (st?.isDirectory() !== true) throw fail(`release folder ${spec.cwd} does not exist`);
    const started = Date.now();
    const context = await contextOf(spec.cwd);
    const workdir = context.hasDockerfile ? undefined : resolve(spec.cwd);
    if (!context.hasDockerfile) {
      // The ancestors' links go into the image at their own paths, their targets are mounted.
      const ancestors = await ancestorModuleLinks(spec.cwd);
      for (const link of ancestors) {
        context.entries.push({ type: "symlink", path: `${ANCESTOR_LINKS}${link.at}`, target: link.target });
        context.outside.add(link.target);
      }
      const text = dockerfile(await options.baseImage(), resolve(spec.cwd), ancestors.length > 0);
      context.entries.push({ type: "file", path: "Dockerfile", mode: 0o644, size: Buffer.byteLength(text), from: Buffer.from(text) });
    }
    const mounts = await linkedHostPaths(context.outside);
    const labels: Record<string, string> = {
      [LABELS.project]: spec.project,
      [LABELS.service]: spec.service,
      [LABELS.release]: spec.release,
      [LABELS.source]: spec.cwd,
      [LABELS.mounts]: JSON.stringify(mounts),
      ...(workdir === undefined ? {} : { [LABELS.workdir]: workdir }),
    };
    let output: Awaited<ReturnType<typeof followProgress>> = [];
    try {
      // version "1": the classic builder; BuildKit may be missing (it is on Debian's docker.io).
      const stream = await docker.buildImage(packTar(context.entries), { t: tag, labels, version: "1", rm: true, forcerm: true });
      output = await followProgress(docker, stream);
    } catch (err) {
      const tail = output
        .map((m) => m.stream ?? "")
        .join("")
        .trim()
        .split("\n")
        .slice(-10)
        .join("\n");
      throw fail(`${engineMessage(err)}${tail === "" ? "" : `\n${tail}`}`, err);
    }
    options.log?.("info", "docker release image built", { image: tag, service: spec.service, release: spec.release, ms: Date.now() - started, ownDockerfile: context.hasDockerfile, mounts });
    return { tag, mounts, workdir };
  }

  return {
    ensure(spec) {
      const tag = releaseImageTag(spec);
      let pending = building.get(tag);
      if (pending === undefined) {
        pending = build(spec, tag).finally(() => building.delete(tag));
        building.set(tag, pending);
      }
      return pending;
    },
  };
}

/** A host path the container sees at the same path. */
export interface HostMount {
  path: string;
  writable: boolean;
}

/**
 * Absolute host paths named by environment values that exist: the container sees them at the same
 * path, read-only, except the service's data folder (KEELSON_DATA_DIR). For a file (an identity
 * token) its folder is mounted, since the control plane renews such files by rename, which a
 * mount of the file itself would not show. Paths inside the release folder are in the image
 * already; the kernel's and the device file systems are never mounted.
 */
export async function envHostPaths(env: Record<string, string>, cwd: string): Promise<HostMount[]> {
  const mounts = new Map<string, boolean>();
  for (const [name, value] of Object.entries(env)) {
    if (!value.startsWith("/") || value.includes("\n") || value.includes(":")) continue;
    const named = resolve(value);
    const st = await stat(named).catch(() => undefined);
    if (st === undefined) continue;
    const path = st.isDirectory() ? named : dirname(named);
    if (path === "/" || /^\/(proc|sys|dev)(\/|$)/.test(path) || isInside(path, cwd)) continue;
    mounts.set(path, (mounts.get(path) ?? false) || name === REPLICA_ENV.DATA_DIR);
  }
  return [...mounts].sort(([a], [b]) => a.localeCompare(b)).map(([path, writable]) => ({ path, writable }));
}
