import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { checkManifest } from "./manifest-valid.js";

describe("checkManifest", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-doctor-manifest-"));
    await mkdir(join(dir, "api"));
  });
  afterEach(async () => {
    await cleanup();
  });

  it("passes a valid manifest and hands it on", async () => {
    await writeFile(join(dir, "keelson.yaml"), "project: shop\nservices:\n  api: { owner: web, path: api, start: node main.js }\n");
    const { results, loaded } = await checkManifest(dir);
    expect(results).toEqual([{ check: "manifest", status: "pass", message: `${join(dir, "keelson.yaml")} is valid: project "shop", 1 service` }]);
    expect(loaded?.manifest.project).toBe("shop");
  });

  it("fails an invalid manifest listing every problem with its place", async () => {
    await writeFile(join(dir, "keelson.yaml"), "project: shop\nservices:\n  api: { owner: web, path: nope, start: node main.js, replicas: many, pipeline: node-service }\n");
    const { results, loaded } = await checkManifest(dir);
    expect(loaded).toBeUndefined();
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ status: "fail", message: "the manifest has 3 problems", fix: "fix each place listed; `keelson validate` checks again" });
    expect(results[0]?.details).toEqual([
      expect.stringMatching(/keelson\.yaml:3:\d+ services\.api\.path: folder "nope" does not exist/),
      expect.stringMatching(/keelson\.yaml:3:\d+ services\.api\.replicas: expected integer 0-100, got "many"/),
      expect.stringMatching(/keelson\.yaml:3:\d+ services\.api\.pipeline: service "api" uses pipeline template "node-service", which is not defined/),
    ]);
  });

  it("fails when there is no manifest, pointing at keelson init", async () => {
    const { results } = await checkManifest(join(dir, "api"));
    expect(results[0]).toMatchObject({ status: "fail", message: expect.stringContaining("no manifest at"), fix: expect.stringContaining("keelson init") });
  });
});
