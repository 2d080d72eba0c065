// Checks that the Node.js running Keelson satisfies Keelson's own `engines.node`, and the
// project's when its package.json sets one (services' pipelines and replicas run on it too).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import semver from "semver";
import { fail, pass, warn, type CheckResult } from "./check-result.js";

/** A version range Node.js must satisfy, and whose it is. */
export interface NodeRequirement {
  range: string;
  /** Whose requirement: "Keelson", "package.json of the project". */
  from: string;
}

/** Keelson's own requirement, from the platform package's package.json. */
export async function keelsonNodeRequirement(): Promise<NodeRequirement | undefined> {
  return engineOf(new URL("../../package.json", import.meta.url), "Keelson");
}

/** The project's requirement, when its folder has a package.json with `engines.node`. */
export async function projectNodeRequirement(projectDir: string): Promise<NodeRequirement | undefined> {
  return engineOf(join(projectDir, "package.json"), "the project's package.json");
}

async function engineOf(file: string | URL, from: string): Promise<NodeRequirement | undefined> {
  try {
    const pkg = JSON.parse(await readFile(file, "utf8")) as { engines?: { node?: unknown } };
    const range = pkg.engines?.node;
    return typeof range === "string" && range.trim() !== "" ? { range, from } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One line per requirement: pass when `version` satisfies it, fail when not, warn when the
 * range cannot be read.
 *
 * @example
 * checkNodeVersion({ version: process.version, requirements: [{ range: ">=20.19.0", from: "Keelson" }] });
 */
export function checkNodeVersion(input: { version: string; requirements: readonly NodeRequirement[] }): CheckResult[] {
  const { version, requirements } = input;
  if (requirements.length === 0) return [pass("node", `Node.js ${version} (no engines.node to check it against)`)];
  return requirements.map(({ range, from }) => {
    if (semver.validRange(range) === null) {
      return warn("node", `${from} asks for Node.js "${range}", which is not a version range`, `write engines.node as a semver range, e.g. ">=20.19.0"`);
    }
    if (semver.satisfies(version, range, { includePrerelease: true })) return pass("node", `Node.js ${version} satisfies ${range} (${from})`);
    const least = semver.minVersion(range);
    return fail("node", `Node.js ${version} does not satisfy ${range} (${from})`, `install a Node.js that does${least === null ? "" : `, e.g. ${least.version} or newer`} (nvm, fnm or your package manager), and run keelson with it`);
  });
}
