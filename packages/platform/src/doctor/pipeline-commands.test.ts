import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { loadManifest } from "../manifest/index.js";
import { checkPipelineCommands } from "./pipeline-commands.js";

describe("checkPipelineCommands", () => {
  let dir: string;
  let bin: string;
  let cleanup: () => Promise<void>;

  async function executable(file: string): Promise<void> {
    await writeFile(file, "#!/bin/sh\nexit 0\n");
    await chmod(file, 0o755);
  }

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-doctor-commands-"));
    // A PATH of our own: only these programs are "installed".
    bin = join(dir, "bin");
    await mkdir(bin);
    for (const tool of ["node", "npm", "npx", "fake-build"]) await executable(join(bin, tool));
    await mkdir(join(dir, "project", "orders"), { recursive: true });
    await writeFile(join(dir, "project", "orders", "package.json"), JSON.stringify({ scripts: { build: "tsc", test: "node --test" } }));
  });
  afterEach(async () => {
    await cleanup();
  });

  async function check(pipeline: string) {
    await writeFile(join(dir, "project", "keelson.yaml"), `project: shop\nservices:\n  orders:\n    owner: web\n    path: orders\n    start: node main.js\n    pipeline: ${pipeline}\n`);
    return checkPipelineCommands({ loaded: await loadManifest(join(dir, "project")), path: bin });
  }

  it("passes when every program is on PATH and every npm script exists", async () => {
    expect(await check("{ stages: [{ name: build, run: FAST=1 fake-build --all && npm run build }, { name: test, run: npm test }] }")).toEqual([
      { check: "pipeline-commands", status: "pass", message: "orders: fake-build, npm found for build, test" },
    ]);
  });

  it("checks the stages a template gives, naming the template", async () => {
    const results = await check("node-service\npipelines:\n  node-service:\n    stages: [{ name: lint, run: eslint . }]");
    expect(results).toEqual([
      {
        check: "pipeline-commands",
        status: "fail",
        message: 'orders, stage "lint" (template "node-service"): `eslint` is not on PATH or in node_modules/.bin',
        fix: "install eslint, or add it to the service's devDependencies and run it through an npm script or npx",
      },
    ]);
  });

  it("fails a missing program, a missing npm script and a script file that is not executable; warns about programs stages will not find", async () => {
    await mkdir(join(dir, "project", "orders", "scripts"));
    await writeFile(join(dir, "project", "orders", "scripts", "gen.sh"), "echo hi\n");
    await mkdir(join(dir, "project", "node_modules", ".bin"), { recursive: true });
    await executable(join(dir, "project", "node_modules", ".bin", "tsc"));
    const results = await check(
      "{ stages: [{ name: gen, run: ./scripts/gen.sh }, { name: build, run: tsc -p . }, { name: test, run: npm run test:ci }, { name: e2e, run: no-such-tool-xyz }, { name: lint, run: npx eslint-xyz . }] }",
    );
    expect(results.map((r) => [r.status, r.message])).toEqual([
      ["fail", `orders, stage "gen": ${join(dir, "project", "orders", "scripts", "gen.sh")} is not executable`],
      ["warn", `orders, stage "build": \`tsc\` is only in ${join(dir, "project", "node_modules", ".bin", "tsc")}, and stages run with the control plane's PATH, which does not include it`],
      ["fail", `orders, stage "test": \`npm run test:ci\` runs the script "test:ci", which ${join(dir, "project", "orders", "package.json")} does not have`],
      ["fail", 'orders, stage "e2e": `no-such-tool-xyz` is not on PATH or in node_modules/.bin'],
      ["warn", 'orders, stage "lint": npx finds no `eslint-xyz` installed, so it would download it on every run'],
    ]);
    expect(results[1]?.fix).toBe("run it as `npx tsc` or from an npm script");
  });
});
