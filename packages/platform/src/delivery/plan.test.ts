import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { applyDeclaredFlags, createFlagService, readFlagState } from "../flags/index.js";
import { loadManifest, parseManifest } from "../manifest/index.js";
import { createMemoryStore, type ServiceRecord } from "../store/index.js";
import { computePlan, formatPlan, toPlain } from "./plan.js";

const yaml = (services: string) => `project: shop\nservices:\n${services}`;
const svc = (name: string, extra = "") => `  ${name}:\n    owner: web\n    path: ${name}\n    start: node main.js\n${extra}`;

function load(text: string) {
  return parseManifest(text, "keelson.yaml", { checkPaths: false });
}

function stored(text: string, release = "r-000000000001"): ServiceRecord[] {
  const m = load(text).manifest;
  return Object.entries(m.services).map(([name, spec]) => ({ project: "shop", name, spec: toPlain(spec), generation: 1, release, updatedAt: "2026-11-26T00:00:00.000Z" }));
}

describe("computePlan", () => {
  it("creates every service of a first apply, listing the fields it sets", () => {
    const plan = computePlan({ manifest: load(yaml(svc("orders") + svc("payments"))).manifest, stored: [] });
    expect(plan.changes.map((c) => [c.action, c.service])).toEqual([
      ["create", "orders"],
      ["create", "payments"],
    ]);
    expect(plan.changes[0]?.fields).toContainEqual({ path: "replicas", from: undefined, to: 1 });
    expect(plan.changes[0]?.fields).toContainEqual({ path: "start", from: undefined, to: "node main.js" });
  });

  it("shows only the changed fields, with nested paths, and nothing for unchanged services", () => {
    const before = yaml(svc("orders", "    replicas: 2\n    env: { LOG_LEVEL: info, A: x }\n") + svc("payments"));
    const after = yaml(svc("orders", "    replicas: 3\n    env: { LOG_LEVEL: debug, A: x, B: y }\n") + svc("payments"));
    const plan = computePlan({ manifest: load(after).manifest, stored: stored(before) });
    expect(plan.unchanged).toEqual(["payments"]);
    expect(plan.changes).toEqual([
      {
        action: "change",
        service: "orders",
        sourcesChanged: false,
        fields: [
          { path: "env.B", from: undefined, to: "y" },
          { path: "env.LOG_LEVEL", from: "info", to: "debug" },
          { path: "replicas", from: 2, to: 3 },
        ],
      },
    ]);
  });

  it("leaves an autoscaled service's running replica count to the autoscaler, moved into new bounds", () => {
    const scaled = yaml(svc("orders", "    replicas: 2\n    autoscale: { min: 1, max: 6 }\n"));
    const running = stored(scaled).map((s) => ({ ...s, spec: { ...s.spec, replicas: 5 } }));
    expect(computePlan({ manifest: load(scaled).manifest, stored: running }).changes).toEqual([]);
    const narrower = yaml(svc("orders", "    replicas: 2\n    autoscale: { min: 1, max: 3 }\n"));
    expect(computePlan({ manifest: load(narrower).manifest, stored: running }).changes[0]?.fields).toEqual([
      { path: "autoscale.max", from: 6, to: 3 },
      { path: "replicas", from: 5, to: 3 },
    ]);
    // A new autoscaled service starts at `replicas`, kept within min..max.
    const fresh = computePlan({ manifest: load(yaml(svc("orders", "    replicas: 1\n    autoscale: { min: 2, max: 3 }\n"))).manifest, stored: [] });
    expect(fresh.changes[0]?.fields).toContainEqual({ path: "replicas", from: undefined, to: 2 });
  });

  it("removes services no longer in the manifest", () => {
    const plan = computePlan({ manifest: load(yaml(svc("orders"))).manifest, stored: stored(yaml(svc("orders") + svc("legacy"))) });
    expect(plan.changes).toEqual([{ action: "remove", service: "legacy", fields: [], sourcesChanged: false }]);
  });

  it("is empty when the manifest matches the stored state, whatever the key order", () => {
    const a = yaml(svc("orders", "    env: { A: '1', B: '2' }\n"));
    const b = yaml(svc("orders", "    env: { B: '2', A: '1' }\n"));
    const plan = computePlan({ manifest: load(b).manifest, stored: stored(a) });
    expect(plan.changes).toEqual([]);
    expect(formatPlan(plan)).toBe('No changes. Project "shop" matches the manifest.\n');
  });

  it("marks a service whose sources changed (a new candidate release) as changed", () => {
    const text = yaml(svc("orders") + svc("payments"));
    const plan = computePlan({
      manifest: load(text).manifest,
      stored: stored(text, "r-000000000001"),
      candidateReleases: new Map([
        ["orders", "r-000000000002"],
        ["payments", "r-000000000001"],
      ]),
    });
    expect(plan.changes).toEqual([{ action: "change", service: "orders", fields: [], sourcesChanged: true }]);
  });

  it("formats Terraform-style with a summary line", () => {
    const before = yaml(svc("orders", "    replicas: 2\n") + svc("legacy"));
    const after = yaml(svc("orders", "    replicas: 3\n") + svc("payments"));
    const text = formatPlan(computePlan({ manifest: load(after).manifest, stored: stored(before) }));
    expect(text).toContain('  ~ service "orders" will be changed\n      ~ replicas: 2 → 3\n');
    expect(text).toContain('  + service "payments" will be created\n');
    expect(text).toContain('  - service "legacy" will be removed\n');
    expect(text).toMatch(/Plan: 1 to create, 1 to change, 1 to remove\.\n$/);
  });
});

describe("pipeline templates in the plan", () => {
  const template = (test: string, extra = "") => `pipelines:
  node-service:
    stages:
      - { name: build, run: node build.mjs }
      - { name: test, run: ${test} }
${extra}`;
  const withTemplate = (pipelines: string) =>
    `project: shop\n${pipelines}services:\n${svc("orders", "    pipeline: node-service\n")}${svc("payments", "    pipeline: { template: node-service, stages: { build: { timeout: 1m } } }\n")}${svc("web", "    build: npm run build\n")}`;

  it("shows an edit to a template as a pipeline change of every service that uses it, naming the template", () => {
    const before = withTemplate(template("node test.mjs"));
    const after = withTemplate(template("node test.mjs --ci", "      - { name: lint, run: node lint.mjs, timeout: 30s }\n"));
    const plan = computePlan({ manifest: load(after).manifest, stored: stored(before) });
    expect(plan.unchanged).toEqual(["web"]);
    expect(plan.changes.map((c) => [c.service, c.pipeline])).toEqual([
      [
        "orders",
        {
          template: "node-service",
          templateChanged: false,
          stages: [
            { stage: "test", action: "change", from: { run: "node test.mjs" }, to: { run: "node test.mjs --ci" } },
            { stage: "lint", action: "add", to: { run: "node lint.mjs", timeout: 30_000 } },
          ],
          reordered: false,
        },
      ],
      [
        "payments",
        {
          template: "node-service",
          templateChanged: false,
          stages: [
            { stage: "test", action: "change", from: { run: "node test.mjs" }, to: { run: "node test.mjs --ci" } },
            { stage: "lint", action: "add", to: { run: "node lint.mjs", timeout: 30_000 } },
          ],
          reordered: false,
        },
      ],
    ]);
    // The JSON keeps the field-level change too.
    expect(plan.changes[0]?.fields.map((f) => f.path)).toEqual(["pipeline.stages"]);
    const text = formatPlan(plan);
    for (const service of ["orders", "payments"]) {
      expect(text).toContain(
        [
          `  ~ service "${service}" will be changed`,
          '      ~ pipeline stages from template "node-service":',
          '          ~ stage "test": run "node test.mjs" → "node test.mjs --ci"',
          '          + stage "lint": "node lint.mjs" (timeout 30000 ms)',
          "",
        ].join("\n"),
      );
    }
    expect(text).not.toContain("pipeline.stages");
    expect(text).toMatch(/Plan: 0 to create, 2 to change, 0 to remove\.\n$/);
  });

  it("shows a service moving to a template, a removed stage and a new order", () => {
    const own = `project: shop\nservices:\n${svc("orders", "    pipeline: { stages: [{ name: test, run: node test.mjs }, { name: build, run: node build.mjs }, { name: e2e, run: node e2e.mjs }] }\n")}`;
    const templated = `project: shop\n${template("node test.mjs")}services:\n${svc("orders", "    pipeline: node-service\n")}`;
    const plan = computePlan({ manifest: load(templated).manifest, stored: stored(own) });
    expect(plan.changes[0]?.pipeline).toEqual({ template: "node-service", templateChanged: true, stages: [{ stage: "e2e", action: "remove", from: { run: "node e2e.mjs" } }], reordered: true });
    expect(formatPlan(plan)).toContain('      ~ pipeline stages now from template "node-service":\n          - stage "e2e"\n          ~ the stages run in a new order\n');
    // Switching between templates names both; leaving one says so.
    const other = templated.replace(/node-service/g, "node-lib");
    const switched = computePlan({ manifest: load(other).manifest, stored: stored(templated) });
    expect(switched.changes[0]?.pipeline).toEqual({ template: "node-lib", previousTemplate: "node-service", templateChanged: true, stages: [], reordered: false });
    expect(formatPlan(switched)).toContain('      ~ pipeline stages from template "node-lib" (was template "node-service"):\n          (the same stages)\n');
    expect(formatPlan(computePlan({ manifest: load(own).manifest, stored: stored(templated) }))).toContain('      ~ pipeline stages of its own (was template "node-service"):\n');
  });

  it("lists every service using a template from a shared file after that file is edited", async () => {
    const { dir, cleanup } = await makeTempDir("keelson-plan-templates-");
    try {
      for (const name of ["orders", "payments", "web"]) await mkdir(join(dir, "project", name), { recursive: true });
      await mkdir(join(dir, "ci"));
      await writeFile(join(dir, "ci", "pipelines.yaml"), template("node test.mjs"));
      await writeFile(join(dir, "project", "keelson.yaml"), withTemplate("pipelineFiles: [../ci/pipelines.yaml]\n"));
      const applied = await loadManifest(join(dir, "project"));
      const records = Object.entries(applied.manifest.services).map(([name, spec]): ServiceRecord => ({ project: "shop", name, spec: toPlain(spec), generation: 1, release: "r-000000000001", updatedAt: "2026-11-26T00:00:00.000Z" }));
      expect(computePlan({ manifest: applied.manifest, stored: records }).changes).toEqual([]);

      await writeFile(join(dir, "ci", "pipelines.yaml"), template("node test.mjs --ci"));
      const plan = computePlan({ manifest: (await loadManifest(join(dir, "project"))).manifest, stored: records });
      expect(plan.changes.map((c) => [c.action, c.service, c.pipeline?.template])).toEqual([
        ["change", "orders", "node-service"],
        ["change", "payments", "node-service"],
      ]);
      expect(plan.unchanged).toEqual(["web"]);
    } finally {
      await cleanup();
    }
  });
});

describe("flags in the plan", () => {
  const withFlags = (flags: string) => `project: shop\nservices: {}\nflags:\n${flags}`;
  const checkout = `  new-checkout:
    state: ENABLED
    variants: { on: true, off: false }
    defaultVariant: "on"
    safeVariant: "off"
    targeting: { if: [{ ends_with: [{ var: email }, "@shop.test"] }, "on", "off"] }
`;
  const banner = `  banner:
    state: ENABLED
    variants: { plain: plain, sale: sale }
    defaultVariant: plain
`;

  /** A store where `text`'s flags were applied, plus one flag managed live. */
  async function applied(text: string) {
    const store = createMemoryStore();
    const flags = createFlagService({ store, project: "shop", now: () => new Date("2026-11-26T10:00:00.000Z") });
    await flags.put("live-only", { state: "ENABLED", variants: { a: 1 }, defaultVariant: "a" }, "bo");
    const m = load(text).manifest;
    await applyDeclaredFlags({ flags, store, project: "shop", declaration: { flags: m.flags, evaluators: m.flagEvaluators }, actor: "ana" });
    return { store, flags };
  }

  it("creates declared flags that are not stored yet, and never lists flags managed live", async () => {
    const { store } = await applied(withFlags(checkout));
    const plan = computePlan({ manifest: load(withFlags(checkout + banner)).manifest, stored: [], flags: await readFlagState({ store, project: "shop" }) });
    expect(plan.flags).toEqual([{ action: "create", kind: "flag", key: "banner", fields: [] }]);
    expect(formatPlan(plan)).toContain('  + flag "banner" will be created\n');
  });

  it("shows a flag killed live as drift from the manifest, naming every changed path", async () => {
    const { store, flags } = await applied(withFlags(checkout));
    await flags.kill("new-checkout", "bo");
    const plan = computePlan({ manifest: load(withFlags(checkout)).manifest, stored: [], flags: await readFlagState({ store, project: "shop" }) });
    expect(plan.flags).toEqual([
      {
        action: "change",
        kind: "flag",
        key: "new-checkout",
        fields: [
          { path: "defaultVariant", manifest: "on", stored: "off" },
          { path: "metadata", stored: { killedAt: "2026-11-26T10:00:00.000Z", killedBy: "bo" } },
          { path: "targeting", manifest: { if: [{ ends_with: [{ var: "email" }, "@shop.test"] }, "on", "off"] } },
        ],
      },
    ]);
    const text = formatPlan(plan);
    expect(text).toContain('  ~ flag "new-checkout" drifted from the manifest: defaultVariant: "on" → "off", metadata added, targeting removed\n');
    expect(text).toMatch(/Plan: 0 to create, 0 to change, 0 to remove\.\nFlags: 0 to create, 1 to change, 0 to remove\.\n$/);
  });

  it("removes flags declared at the last apply and no longer, and says nothing when flags match", async () => {
    const { store } = await applied(withFlags(checkout + banner));
    const state = await readFlagState({ store, project: "shop" });
    const removed = computePlan({ manifest: load(withFlags(banner)).manifest, stored: [], flags: state });
    expect(removed.flags).toEqual([{ action: "remove", kind: "flag", key: "new-checkout", fields: [] }]);
    expect(formatPlan(removed)).toContain('  - flag "new-checkout" will be removed (no longer in the manifest)\n');
    const same = computePlan({ manifest: load(withFlags(banner + checkout)).manifest, stored: [], flags: state });
    expect(same.flags).toEqual([]);
    expect(formatPlan(same)).toBe('No changes. Project "shop" matches the manifest.\n');
  });

  it("leaves flags out of a plan made without the flag state", () => {
    expect(computePlan({ manifest: load(withFlags(banner)).manifest, stored: [] }).flags).toBeUndefined();
  });
});
