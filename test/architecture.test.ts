// Keeps the code and ARCHITECTURE.md in agreement: domains import each other only
// through index.ts, lower layers never import higher ones, protocol/sdk stay independent.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");
const PLATFORM = join(ROOT, "packages/platform/src");

/** Layer of each platform domain, bottom up (from ARCHITECTURE.md). */
const LAYERS: Record<string, number> = {
  manifest: 0,
  store: 0,
  runtime: 1,
  telemetry: 1,
  security: 1,
  kubernetes: 1,
  templates: 1,
  gateway: 2,
  flags: 2,
  catalog: 2,
  delivery: 3,
  autoscale: 3,
  api: 4,
  doctor: 4,
  cli: 5,
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === "fixtures" ? [] : sourceFiles(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

function importsOf(file: string): string[] {
  // Doc comments show imports in their examples; only code counts.
  const text = readFileSync(file, "utf8").replace(/^\s*(\*|\/\/).*$/gm, "");
  return [...text.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1] as string);
}

describe("architecture", () => {
  it("every platform folder is a known domain with an index.ts", () => {
    const domains = readdirSync(PLATFORM).filter((n) => statSync(join(PLATFORM, n)).isDirectory());
    for (const d of domains) {
      expect(Object.keys(LAYERS), `unknown domain folder ${d}`).toContain(d);
      expect(statSync(join(PLATFORM, d, "index.ts")).isFile()).toBe(true);
    }
    expect(domains.length).toBeGreaterThanOrEqual(7);
  });

  it("domains import each other only through index.ts, and never a higher layer", () => {
    const violations: string[] = [];
    for (const file of sourceFiles(PLATFORM)) {
      const rel = relative(PLATFORM, file);
      const domain = rel.split("/")[0] as string;
      if (!(domain in LAYERS)) continue;
      for (const spec of importsOf(file)) {
        const m = /^\.\.\/(?:\.\.\/)*([a-z]+)\/(.+)$/.exec(spec);
        if (!m || !spec.startsWith("../")) continue;
        // Only count imports that leave the domain folder.
        const depth = rel.split("/").length - 1;
        const ups = spec.match(/\.\.\//g)?.length ?? 0;
        if (ups < depth) continue;
        const target = m[1] as string;
        if (target === domain || !(target in LAYERS)) continue;
        if (m[2] !== "index.js") violations.push(`${rel}: imports ${spec} (use ../${target}/index.js)`);
        if ((LAYERS[target] as number) > (LAYERS[domain] as number)) violations.push(`${rel}: ${domain} (layer ${LAYERS[domain]}) imports higher layer ${target} (layer ${LAYERS[target]})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it("protocol imports nothing of ours and the SDK only protocol", () => {
    for (const [pkg, allowed] of [
      ["protocol", []],
      ["sdk", ["@keelson/protocol"]],
    ] as const) {
      for (const file of sourceFiles(join(ROOT, "packages", pkg, "src"))) {
        for (const spec of importsOf(file)) {
          if (spec.startsWith("@keelson/")) expect(allowed, `${relative(ROOT, file)} imports ${spec}`).toContain(spec);
        }
      }
    }
  });
});
