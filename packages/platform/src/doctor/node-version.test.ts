import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { checkNodeVersion, keelsonNodeRequirement, projectNodeRequirement } from "./node-version.js";

describe("checkNodeVersion", () => {
  const keelson = { range: ">=20.19.0", from: "Keelson" };

  it("passes a Node.js that satisfies every requirement", () => {
    expect(checkNodeVersion({ version: "v22.3.0", requirements: [keelson, { range: "^22", from: "the project's package.json" }] })).toEqual([
      { check: "node", status: "pass", message: "Node.js v22.3.0 satisfies >=20.19.0 (Keelson)" },
      { check: "node", status: "pass", message: "Node.js v22.3.0 satisfies ^22 (the project's package.json)" },
    ]);
  });

  it("fails an older Node.js, naming whose requirement and the least version that would do", () => {
    const [result] = checkNodeVersion({ version: "v18.20.4", requirements: [keelson] });
    expect(result).toEqual({
      check: "node",
      status: "fail",
      message: "Node.js v18.20.4 does not satisfy >=20.19.0 (Keelson)",
      fix: "install a Node.js that does, e.g. 20.19.0 or newer (nvm, fnm or your package manager), and run keelson with it",
    });
  });

  it("warns about a range that is not one", () => {
    expect(checkNodeVersion({ version: "v20.19.0", requirements: [{ range: "twenty", from: "the project's package.json" }] })[0]?.status).toBe("warn");
  });

  it("reads Keelson's engines.node and the project's package.json", async () => {
    expect(await keelsonNodeRequirement()).toEqual({ range: ">=20.19.0", from: "Keelson" });
    const { dir, cleanup } = await makeTempDir("keelson-doctor-node-");
    try {
      expect(await projectNodeRequirement(dir)).toBeUndefined();
      await writeFile(join(dir, "package.json"), JSON.stringify({ engines: { node: ">=22" } }));
      expect(await projectNodeRequirement(dir)).toEqual({ range: ">=22", from: "the project's package.json" });
    } finally {
      await cleanup();
    }
  });
});
