// The base image of docker replicas, made on this machine because no registry may be reachable:
// `docker import` of a root file system holding this Node binary, /bin/sh and /usr/bin/env and
// the shared libraries ldd lists for them, at their host paths. Made once per engine and Node version.
import { execFile } from "node:child_process";
import { realpath, stat } from "node:fs/promises";
import { dirname, posix } from "node:path";
import { promisify } from "node:util";
import { KeelsonError } from "@keelson/protocol";
import type Docker from "dockerode";
import { engineMessage, engineStatus, followProgress } from "./docker-engine.js";
import type { TarEntry } from "./docker-tar.js";
import { packTar } from "./docker-tar.js";
import type { RuntimeLog } from "./replica-supervisor.js";

const run = promisify(execFile);

/** Label on the base image naming the Node version inside, so another Node gets another image. */
export const BASE_IMAGE_NODE_LABEL = "keelson.base.node";

/** The default base image tag for this Node: keelson/base:node-20.20.2. */
export function defaultBaseImageTag(): string {
  return `keelson/base:node-${process.versions.node}`;
}

/** The PATH inside the base image: the usual folders and the one holding the Node binary. */
export function baseImagePath(): string {
  const dirs = ["/usr/local/bin", "/usr/bin", "/bin", dirname(process.execPath)];
  return [...new Set(dirs)].join(":");
}

/** The binaries the base image holds, as host path -> path in the image. */
async function binaries(): Promise<Array<{ from: string; to: string }>> {
  const wanted = [
    { from: process.execPath, to: process.execPath },
    // Replica commands are shell command lines, as the process driver runs them.
    { from: "/bin/sh", to: "/bin/sh" },
    // For scripts that start with #!/usr/bin/env node.
    { from: "/usr/bin/env", to: "/usr/bin/env" },
  ];
  const found: Array<{ from: string; to: string }> = [];
  for (const b of wanted) {
    const real = await realpath(b.from).catch(() => undefined);
    if (real === undefined) {
      if (b.from === "/usr/bin/env") continue;
      throw new KeelsonError("KEELSON_ERR_RUNTIME", `docker runtime: cannot make the base image: ${b.from} does not exist on this machine`);
    }
    found.push({ from: real, to: b.to });
  }
  return found;
}

/** The shared libraries a binary loads, as ldd lists them (absolute paths, the loader included). */
export async function sharedLibraries(binary: string): Promise<string[]> {
  let out: string;
  try {
    ({ stdout: out } = await run("ldd", [binary]));
  } catch (err) {
    const text = `${(err as { stdout?: string }).stdout ?? ""}${(err as { stderr?: string }).stderr ?? ""}`;
    // A static binary needs nothing; ldd says so and exits 1.
    if (/not a dynamic executable|statically linked/.test(text)) return [];
    throw new KeelsonError("KEELSON_ERR_RUNTIME", `docker runtime: cannot make the base image: ldd ${binary} failed (${text.trim() || String(err)}); is ldd (libc-bin) installed?`, { cause: err });
  }
  const libs: string[] = [];
  for (const line of out.split("\n")) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)".
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m?.[1] !== undefined) libs.push(m[1]);
    if (/=>\s*not found/.test(line)) throw new KeelsonError("KEELSON_ERR_RUNTIME", `docker runtime: cannot make the base image: ${binary} needs a library that is missing: ${line.trim()}`);
  }
  return libs;
}

/** The root file system: each file at its path (its content dereferenced), with every parent folder. */
async function rootFs(): Promise<TarEntry[]> {
  const files = new Map<string, string>();
  for (const b of await binaries()) {
    files.set(b.to, b.from);
    for (const lib of await sharedLibraries(b.from)) files.set(lib, await realpath(lib));
  }
  const entries: TarEntry[] = [];
  const dirs = new Set<string>();
  const addDir = (dir: string, mode = 0o755): void => {
    if (dir === "/" || dirs.has(dir)) return;
    addDir(posix.dirname(dir));
    dirs.add(dir);
    entries.push({ type: "dir", path: dir.slice(1), mode });
  };
  addDir("/tmp", 0o1777);
  addDir("/etc");
  addDir("/proc");
  addDir("/sys");
  addDir("/dev");
  const text = (path: string, content: string): TarEntry => ({ type: "file", path, mode: 0o644, size: Buffer.byteLength(content), from: Buffer.from(content) });
  entries.push(text("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"));
  entries.push(text("etc/group", "root:x:0:\nnogroup:x:65534:\n"));
  for (const [to, from] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    addDir(posix.dirname(to));
    const st = await stat(from);
    entries.push({ type: "file", path: to.slice(1), mode: st.mode & 0o7777, size: st.size, from });
  }
  return entries;
}

export interface BaseImageOptions {
  /** Tag of the base image; default defaultBaseImageTag(). */
  tag?: string;
  log?: RuntimeLog;
}

/**
 * Makes the base image in the engine unless it is there (by tag, for this Node version); resolves
 * with its tag. A user on a machine without a registry gets it from here too.
 *
 * @example
 * const base = await ensureBaseImage(connectEngine(), { log });
 * // FROM keelson/base:node-20.20.2
 */
export async function ensureBaseImage(docker: Docker, options: BaseImageOptions = {}): Promise<string> {
  const tag = options.tag ?? defaultBaseImageTag();
  try {
    const found = await docker.getImage(tag).inspect();
    if (found.Config.Labels?.[BASE_IMAGE_NODE_LABEL] === process.version) return tag;
  } catch (err) {
    if (engineStatus(err) !== 404) throw new KeelsonError("KEELSON_ERR_RUNTIME", `docker runtime: cannot inspect base image ${tag}: ${engineMessage(err)}`, { cause: err });
  }
  const started = Date.now();
  const [repo, version] = splitTag(tag);
  try {
    const progress = await docker.importImage(packTar(await rootFs()), {
      repo,
      tag: version,
      changes: [`LABEL ${BASE_IMAGE_NODE_LABEL}=${process.version}`, `ENV PATH=${baseImagePath()}`],
    });
    await followProgress(docker, progress);
  } catch (err) {
    if (err instanceof KeelsonError) throw err;
    throw new KeelsonError("KEELSON_ERR_RUNTIME", `docker runtime: cannot make base image ${tag}: ${engineMessage(err)}`, { cause: err });
  }
  options.log?.("info", "docker base image made", { image: tag, node: process.version, ms: Date.now() - started });
  return tag;
}

/** "repo/name:tag" -> ["repo/name", "tag"] (a port in the registry part is not a tag). */
export function splitTag(ref: string): [string, string] {
  const colon = ref.lastIndexOf(":");
  if (colon < 0 || ref.slice(colon).includes("/")) return [ref, "latest"];
  return [ref.slice(0, colon), ref.slice(colon + 1)];
}
