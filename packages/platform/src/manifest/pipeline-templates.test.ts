import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isKeelsonError } from "@keelson/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { loadManifest, parseManifest } from "./load-manifest.js";
import type { ManifestIssue } from "./manifest-issue.js";

const TEMPLATES = `pipelines:
  node-service:
    description: Build and test a Node.js service.
    stages:
      - { name: install, run: npm ci }
      - { name: build, run: npm run build }
      - { name: test, run: npm test, timeout: 2m }
`;

/** A manifest with `top` at the top level and services written as given. */
const manifest = (top: string, services: Record<string, string>) =>
  [
    "project: shop",
    top.trimEnd(),
    Object.keys(services).length === 0 ? "services: {}" : "services:",
    ...Object.entries(services).map(([name, extra]) => [`  ${name}:`, "    owner: web", `    path: ${name}`, "    start: node main.js", ...extra.split("\n").filter(Boolean).map((l) => `    ${l}`)].join("\n")),
    "",
  ].join("\n");

function issuesOf(run: () => unknown): { message: string; issues: ManifestIssue[] } {
  try {
    run();
  } catch (err) {
    if (!isKeelsonError(err)) throw err;
    expect(err.code).toBe("KEELSON_ERR_MANIFEST_INVALID");
    return { message: err.message, issues: (err.details as { issues: ManifestIssue[] }).issues };
  }
  throw new Error("expected the manifest to be rejected");
}

const invalid = (text: string) => issuesOf(() => parseManifest(text, "keelson.yaml", { checkPaths: false }));

describe("pipeline templates in the manifest", () => {
  it("gives a service that names a template the template's stages, keeping the name", () => {
    const { manifest: m } = parseManifest(manifest(TEMPLATES, { orders: "pipeline: node-service" }), "keelson.yaml", { checkPaths: false });
    expect(m.services.orders?.pipeline).toEqual({
      template: "node-service",
      stages: [
        { name: "install", run: "npm ci" },
        { name: "build", run: "npm run build" },
        { name: "test", run: "npm test", timeout: 120_000 },
      ],
      include: [],
      stageTimeout: 600_000,
      retainReleases: 10,
    });
    expect(Object.keys(m.pipelines ?? {})).toEqual(["node-service"]);
  });

  it("applies one service's overrides to single stages, and leaves other services and per-service settings alone", () => {
    const { manifest: m } = parseManifest(
      manifest(TEMPLATES, {
        orders: "pipeline: node-service",
        payments: "pipeline:\n  template: node-service\n  stages:\n    test: { run: npm run test:ci }\n    build: { timeout: 30s }\n  include: [shared]\n  stageTimeout: 5m\n  retainReleases: 3",
      }),
      "keelson.yaml",
      { checkPaths: false },
    );
    expect(m.services.payments?.pipeline).toEqual({
      template: "node-service",
      stages: [
        { name: "install", run: "npm ci" },
        { name: "build", run: "npm run build", timeout: 30_000 },
        { name: "test", run: "npm run test:ci", timeout: 120_000 },
      ],
      include: ["shared"],
      stageTimeout: 300_000,
      retainReleases: 3,
    });
    expect(m.services.orders?.pipeline?.stages?.map((s) => s.run)).toEqual(["npm ci", "npm run build", "npm test"]);
  });

  it("keeps a pipeline without a template as it was written", () => {
    const { manifest: m } = parseManifest(manifest("", { orders: "pipeline: { stages: [{ name: test, run: npm test }], include: [x] }" }), "keelson.yaml", { checkPaths: false });
    expect(m.services.orders?.pipeline).toEqual({ stages: [{ name: "test", run: "npm test" }], include: ["x"], stageTimeout: 600_000, retainReleases: 10 });
  });

  it("names the service, the place and the defined templates when a template is not defined", () => {
    const text = manifest(`${TEMPLATES}  static-site:\n    stages: [{ name: build, run: npm run build }]\n`, { orders: "pipeline: node-servic" });
    const { message, issues } = invalid(text);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ file: "keelson.yaml", line: 16, column: 15, path: "services.orders.pipeline", found: '"node-servic"' });
    expect(message).toBe(
      'keelson.yaml:16:15 services.orders.pipeline: service "orders" uses pipeline template "node-servic", which is not defined; did you mean `node-service`? defined templates: node-service, static-site',
    );
    // With no template at all, the hint says where they go.
    expect(invalid(manifest("", { orders: "pipeline: { template: node-service }" })).message).toContain(
      'services.orders.pipeline.template: service "orders" uses pipeline template "node-service", which is not defined; no pipeline templates are defined; add them under pipelines or in a file listed in pipelineFiles',
    );
  });

  it("names the service, the stage, the template and where it is defined for an override of a stage the template lacks", () => {
    const text = manifest(TEMPLATES, { orders: "pipeline:\n  template: node-service\n  stages:\n    lint: { run: npm run lint }\n    tset: { run: npm run test:ci }" });
    const { issues } = invalid(text);
    expect(issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}; ${i.hint}`)).toEqual([
      '17:9 services.orders.pipeline.stages.lint: service "orders" overrides stage "lint", which pipeline template "node-service" (keelson.yaml:3:3) does not have; its stages: install, build, test',
      '18:9 services.orders.pipeline.stages.tset: service "orders" overrides stage "tset", which pipeline template "node-service" (keelson.yaml:3:3) does not have; did you mean `test`? its stages: install, build, test',
    ]);
  });

  it("refuses stages in the form of the other kind of pipeline, and build or test beside a template", () => {
    const { issues } = invalid(
      manifest(TEMPLATES, {
        a: "pipeline: { template: node-service, stages: [{ name: test, run: npm test }] }",
        b: "pipeline: { stages: { test: { run: npm test } } }",
        c: "build: npm run build\npipeline: node-service",
        d: "pipeline: { template: node-service, stages: { test: {} } }",
      }),
    );
    expect(issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'services.a.pipeline.stages: with template "node-service", stages changes single stages by name, as a mapping',
      "services.b.pipeline.stages: stages as a mapping changes stages of a template, and this pipeline names none",
      'services.c.build: build and pipeline template "node-service" both say what to run; with a template, change its stage for this service instead',
      "services.d.pipeline.stages.test: an override needs run, timeout or both",
    ]);
    expect(issues[2]?.hint).toBe("pipeline: { template: node-service, stages: { build: { run: ... } } }");
  });

  it("refuses a template with no stages or a stage listed twice", () => {
    const { issues } = invalid(manifest("pipelines:\n  empty: { stages: [] }\n  twice:\n    stages:\n      - { name: build, run: a }\n      - { name: build, run: b }\n", {}));
    expect(issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`)).toEqual([
      "3:20 pipelines.empty.stages: expected non-empty list of stages (mappings with name, run and optionally timeout), got a list",
      '7:17 pipelines.twice.stages[1].name: stage "build" is listed twice',
    ]);
  });
});

describe("pipeline templates from shared files", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-pipeline-templates-"));
    await mkdir(join(dir, "project", "orders"), { recursive: true });
    await mkdir(join(dir, "project", "payments"), { recursive: true });
    await mkdir(join(dir, "platform"), { recursive: true });
  });
  afterEach(async () => {
    await cleanup();
  });

  const project = (top: string, services: Record<string, string> = { orders: "pipeline: node-service", payments: "pipeline: node-service" }) =>
    writeFile(join(dir, "project", "keelson.yaml"), manifest(top, services));
  const load = () => loadManifest(join(dir, "project"));
  const rejected = async () => {
    const err = await load().then(
      () => undefined,
      (e: unknown) => e,
    );
    return issuesOf(() => {
      throw err;
    });
  };

  it("reads templates from a file relative to the manifest's folder, lists it, and hashes it with the manifest", async () => {
    const shared = join(dir, "platform", "pipelines.yaml");
    await writeFile(shared, `version: 1\n${TEMPLATES}`);
    await project("pipelineFiles: [../platform/pipelines.yaml]");
    const first = await load();
    expect(first.sharedFiles).toEqual([shared]);
    expect(first.manifest.services.orders?.pipeline?.template).toBe("node-service");
    expect(first.manifest.services.payments?.pipeline?.stages?.map((s) => s.name)).toEqual(["install", "build", "test"]);

    // The manifest's text is the same; an edit to the shared file still changes the hash.
    await writeFile(shared, TEMPLATES.replace("npm test", "npm run test:ci"));
    const second = await load();
    expect(second.text).toBe(first.text);
    expect(second.hash).not.toBe(first.hash);
    expect(second.manifest.services.orders?.pipeline?.stages?.[2]).toEqual({ name: "test", run: "npm run test:ci", timeout: 120_000 });
  });

  it("names the manifest's line and the path looked for when a shared file is missing", async () => {
    await project("pipelineFiles: [ci/pipelines.yaml]");
    const { issues } = await rejected();
    // Only the file: the templates it would hold are unknown, so their users are not blamed.
    expect(issues).toEqual([
      expect.objectContaining({
        line: 2,
        column: 17,
        path: "pipelineFiles[0]",
        message: '"ci/pipelines.yaml" does not exist',
        hint: `looked for ${join(dir, "project", "ci", "pipelines.yaml")}`,
      }),
    ]);
  });

  it("names the shared file, its line and column for a YAML syntax error in it", async () => {
    const shared = join(dir, "platform", "pipelines.yaml");
    await writeFile(shared, "pipelines:\n  node-service:\n    stages:\n      - { name: build, run: npm run build\n");
    await project("pipelineFiles: [../platform/pipelines.yaml]");
    const { message, issues } = await rejected();
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ file: shared, line: 5, column: 1 });
    expect(message).toMatch(new RegExp(`^${shared.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:5:1 `));
  });

  it("names the shared file and the field path for a template that does not match the schema, together with the manifest's problems", async () => {
    const shared = join(dir, "platform", "pipelines.yaml");
    await writeFile(shared, "pipelines:\n  node-service:\n    stages:\n      - { name: build }\n    stagez: []\n");
    await project("pipelineFiles: [../platform/pipelines.yaml]", { orders: "pipeline: node-service", payments: "replicas: many" });
    const { message } = await rejected();
    expect(message.split("\n")).toEqual([
      `${join(dir, "project", "keelson.yaml")}:13:15 services.payments.replicas: expected integer 0-100, got "many"`,
      `${shared}:4:9 pipelines.node-service.stages[0].run: missing required field, expected non-empty string`,
      `${shared}:5:5 pipelines.node-service.stagez: unknown key; did you mean \`stages\`?`,
    ]);
  });

  it("refuses a template name defined both in a shared file and in the manifest", async () => {
    const shared = join(dir, "platform", "pipelines.yaml");
    await writeFile(shared, TEMPLATES);
    await project(`pipelineFiles: [../platform/pipelines.yaml]\n${TEMPLATES}`);
    const { issues } = await rejected();
    expect(issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`)).toEqual([
      `4:3 pipelines.node-service: pipeline template "node-service" is also defined at ${shared}:2:3; give one of them another name`,
    ]);
  });
});
