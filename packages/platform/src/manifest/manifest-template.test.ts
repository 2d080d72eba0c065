import { describe, expect, it } from "vitest";
import { parseManifest } from "./load-manifest.js";
import { manifestTemplate } from "./manifest-template.js";

describe("manifestTemplate", () => {
  it("parses cleanly into a one-service manifest", () => {
    const { manifest } = parseManifest(manifestTemplate("shop"), "keelson.yaml", { checkPaths: false });
    expect(manifest.project).toBe("shop");
    expect(manifest.runtime).toBe("process");
    expect(manifest.teams).toEqual({ "shop-team": { members: [] } });
    expect(Object.keys(manifest.services)).toEqual(["web"]);
    expect(manifest.services.web).toMatchObject({
      owner: "shop-team",
      path: "services/web",
      start: "node server.mjs",
      replicas: 1,
      readiness: { path: "/health", interval: 500, timeout: 1000, failureThreshold: 3 },
      routes: [{ path: "/", stripPrefix: false }],
    });
  });

  it("explains itself in comments", () => {
    const text = manifestTemplate("shop");
    expect(text.startsWith('# keelson.yaml: the desired state of project "shop".')).toBe(true);
    expect(text).toContain("docs/manifest.md");
    expect(text).toContain("# More in docs/manifest.md: deploy, autoscale, resources, resilience, slos, secrets.");
  });

  it("makes any project name valid", () => {
    for (const [given, expected] of [
      ["My Shop!", "my-shop"],
      ["shop_", "shop"],
      ["42-things", "things"],
      ["???", "app"],
      ["x".repeat(80), "x".repeat(63)],
    ] as const) {
      const { manifest } = parseManifest(manifestTemplate(given), "keelson.yaml", { checkPaths: false });
      expect(manifest.project, given).toBe(expected);
    }
  });
});
