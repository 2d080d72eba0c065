import { mkdir, readlink, realpath, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { findPackageDir, planPackages, writePackageLinks } from "./provided-packages.js";

async function fakePackage(at: string, name: string, pkg: Record<string, unknown> = {}): Promise<string> {
  const dir = join(at, "node_modules", name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "package.json"), JSON.stringify({ name, version: "1.0.0", ...pkg }));
  return dir;
}

describe("packages a template needs", () => {
  let root: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    const made = await makeTempDir("keelson-packages-");
    root = await realpath(made.dir);
    cleanup = made.cleanup;
  });
  afterEach(() => cleanup());

  it("finds a package as Node would, in the folder or any folder above it", async () => {
    const sdk = await fakePackage(join(root, "project"), "@keelson/sdk");
    expect(findPackageDir("@keelson/sdk", join(root, "project", "services", "new-one"))).toBe(sdk);
    expect(findPackageDir("@keelson/sdk", root)).toBeUndefined();
  });

  it("uses the project's own packages, links the rest from Keelson (also those found beside a linked one), and names what nobody has", async () => {
    const project = join(root, "project");
    const own = await fakePackage(project, "typescript");
    const keelson = join(root, "keelson", "packages", "platform");
    await mkdir(keelson, { recursive: true });
    const sdk = await fakePackage(join(root, "keelson"), "@keelson/sdk");
    // Found beside the SDK's own dependencies only.
    const openfeature = await fakePackage(sdk, "@openfeature/server-sdk");
    const plan = planPackages(["@keelson/sdk", "@openfeature/server-sdk", "typescript", "left-pad"], join(project, "services", "hello"), [keelson]);
    expect(plan).toEqual({
      fromProject: [{ name: "typescript", dir: own }],
      links: [
        { name: "@keelson/sdk", target: sdk },
        { name: "@openfeature/server-sdk", target: openfeature },
      ],
      missing: ["left-pad"],
    });
  });

  it("writes the links and the packages' commands into node_modules/.bin", async () => {
    const ts = await fakePackage(join(root, "keelson"), "typescript", { bin: { tsc: "bin/tsc", tsserver: "bin/tsserver" } });
    const single = await fakePackage(join(root, "keelson"), "@scope/tool", { bin: "cli.js" });
    const service = join(root, "svc");
    await writePackageLinks(service, [
      { name: "typescript", target: ts },
      { name: "@scope/tool", target: single },
    ]);
    expect(await readlink(join(service, "node_modules", "typescript"))).toBe(ts);
    expect(await readlink(join(service, "node_modules", "@scope", "tool"))).toBe(single);
    expect(await readlink(join(service, "node_modules", ".bin", "tsc"))).toBe(join("..", "typescript", "bin/tsc"));
    expect(await readlink(join(service, "node_modules", ".bin", "tool"))).toBe(join("..", "@scope/tool", "cli.js"));
  });
});
