// Packages a template's services need (`requires`: @keelson/sdk, typescript, …) that the project
// itself may lack, since @keelson/sdk is not on a registry and tests must not need one: each is
// looked up as Node would from the service's folder, and when absent, linked into the service's
// own node_modules from the Keelson installation. The links are ignored by git (the service's
// .gitignore) and followed by pipelines (their workspace links the service's node_modules).
import { existsSync, realpathSync } from "node:fs";
import { mkdir, readFile, symlink } from "node:fs/promises";
import { dirname, join, parse, resolve } from "node:path";

export interface PackageLink {
  /** The package's name, e.g. "@keelson/sdk". */
  name: string;
  /** The real folder it is linked to. */
  target: string;
}

export interface PackagePlan {
  /** Packages the project already resolves for the service. */
  fromProject: Array<{ name: string; dir: string }>;
  /** Packages to link from Keelson's installation. */
  links: PackageLink[];
  /** Packages neither has. */
  missing: string[];
}

/** The folder of the @keelson/platform package (two levels above this file, in src/ or dist/). */
export const PLATFORM_PACKAGE_DIR = resolve(import.meta.dirname, "..", "..");

/**
 * Where Node would find package `name` for a module in `fromDir`: the first
 * `node_modules/<name>` with a package.json in `fromDir` or a folder above it, as its real path.
 */
export function findPackageDir(name: string, fromDir: string): string | undefined {
  let dir = resolve(fromDir);
  const { root } = parse(dir);
  for (;;) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return realpathSync(candidate);
    if (dir === root) return undefined;
    dir = dirname(dir);
  }
}

/**
 * What `requires` needs for a service to be made in `serviceDir` (which need not exist yet):
 * found in the project, to be linked from Keelson (found from `keelsonDirs`, or from a package
 * found before it, so a package the SDK brings along is found beside the SDK), or missing.
 */
export function planPackages(requires: readonly string[], serviceDir: string, keelsonDirs: readonly string[] = [PLATFORM_PACKAGE_DIR]): PackagePlan {
  const plan: PackagePlan = { fromProject: [], links: [], missing: [] };
  const searched = [...keelsonDirs];
  for (const name of requires) {
    const own = findPackageDir(name, serviceDir);
    if (own !== undefined) {
      plan.fromProject.push({ name, dir: own });
      searched.push(own);
      continue;
    }
    let found: string | undefined;
    for (const from of searched) {
      found = findPackageDir(name, from);
      if (found !== undefined) break;
    }
    if (found === undefined) plan.missing.push(name);
    else {
      plan.links.push({ name, target: found });
      searched.push(found);
    }
  }
  return plan;
}

/** Writes the links into `<serviceDir>/node_modules`, with the packages' commands in node_modules/.bin. */
export async function writePackageLinks(serviceDir: string, links: readonly PackageLink[]): Promise<void> {
  const modules = join(serviceDir, "node_modules");
  for (const link of links) {
    const at = join(modules, link.name);
    await mkdir(dirname(at), { recursive: true });
    await symlink(link.target, at, "dir");
    for (const [command, file] of Object.entries(await binsOf(link.target, link.name))) {
      const bin = join(modules, ".bin", command);
      if (existsSync(bin)) continue;
      await mkdir(dirname(bin), { recursive: true });
      await symlink(join("..", link.name, file), bin);
    }
  }
}

/** A package's commands (package.json `bin`), by name. */
async function binsOf(dir: string, name: string): Promise<Record<string, string>> {
  try {
    const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { bin?: unknown };
    if (typeof pkg.bin === "string") return { [name.replace(/^@[^/]+\//, "")]: pkg.bin };
    if (typeof pkg.bin === "object" && pkg.bin !== null) {
      return Object.fromEntries(Object.entries(pkg.bin).filter((e): e is [string, string] => typeof e[1] === "string" && /^[\w.-]+$/.test(e[0])));
    }
  } catch {
    // No package.json to read: a package without commands.
  }
  return {};
}
