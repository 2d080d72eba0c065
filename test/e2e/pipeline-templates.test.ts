// End to end: two services share one pipeline template from a file outside the project (as
// several repositories would), one of them overriding a stage. `keelson up` builds both
// through the template's stages, a code change is deployed through them, and an edit to the
// shared file shows in `keelson plan` as a pipeline change of both services, naming the
// template, and is rolled out by the next `up`. `keelson doctor` vouches for the running project.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PipelineRunView, Plan, ReleaseView } from "../../packages/platform/src/delivery/index.js";
import type { DoctorReport } from "../../packages/platform/src/doctor/index.js";
import { apiFetch, freePort, makeTempDir } from "#test-support";
import { keelson, type CliResult } from "./cli.js";
import { serverSource } from "./delivery-fixture.js";

const LONG = 180_000;
const SERVICES = ["alpha", "beta"] as const;
type ServiceName = (typeof SERVICES)[number];

const TEMPLATE_V1 = `# Shared by every repository of the team.
pipelines:
  node-service:
    description: Build and test a dependency-free Node.js service.
    stages:
      - name: build
        run: node build.mjs
      - name: test
        run: node test.mjs
`;

const TEMPLATE_V2 = `# Shared by every repository of the team.
pipelines:
  node-service:
    description: Build and test a dependency-free Node.js service.
    stages:
      - name: build
        run: node build.mjs
      - name: test
        run: node test.mjs --ci
      - name: check
        run: node check.mjs
`;

// Build stage: records the version and the stage's arguments in dist/info.json.
const BUILD = `import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
const version = /const VERSION = "([^"]*)"/.exec(readFileSync("server.mjs", "utf8"))?.[1] ?? null;
mkdirSync("dist", { recursive: true });
writeFileSync("dist/info.json", JSON.stringify({ version, commit: null, run: process.env.KEELSON_PIPELINE_RUN ?? null }));
console.log("built", version);
`;
// Test stage: says which flags it ran with, so the log shows which command the template gave.
const TEST = `console.log("tests ran with [" + process.argv.slice(2).join(" ") + "]");
`;
const CHECK = `console.log("check stage of", process.env.KEELSON_SERVICE);
`;

describe.sequential("shared pipeline templates", () => {
  let root: string;
  let dir: string;
  let cleanup: () => Promise<void>;
  let gateway: string;
  let controlPlane: string;
  const shared = () => join(root, "platform", "pipelines.yaml");

  const out = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
  const cli = (args: string[]) => keelson(args, { timeoutMs: LONG });

  async function api<T>(path: string): Promise<T> {
    const res = await apiFetch(dir, `${controlPlane}${path}`);
    expect(res.status, `GET ${path}`).toBe(200);
    return (await res.json()) as T;
  }
  const runs = async (service: ServiceName) => (await api<{ runs: PipelineRunView[] }>(`/v1/services/${service}/pipelines`)).runs;
  const live = async (service: ServiceName) => (await api<{ releases: ReleaseView[] }>(`/v1/services/${service}/releases`)).releases.find((r) => r.status === "live");
  const log = async (run: string) => (await apiFetch(dir, `${controlPlane}/v1/pipelines/${run}/log`)).text();
  async function served(service: ServiceName): Promise<{ version: string; release: string | null }> {
    const res = await fetch(`${gateway}/${service}/probe`);
    expect(res.status, `GET /${service}`).toBe(200);
    return (await res.json()) as { version: string; release: string | null };
  }

  beforeAll(async () => {
    ({ dir: root, cleanup } = await makeTempDir("keelson-e2e-templates-"));
    dir = join(root, "project");
    const ports = { cp: await freePort(), gw: await freePort(), admin: await freePort(), mesh: await freePort() };
    gateway = `http://127.0.0.1:${ports.gw}`;
    controlPlane = `http://127.0.0.1:${ports.cp}`;
    await mkdir(join(root, "platform"), { recursive: true });
    await writeFile(shared(), TEMPLATE_V1);
    const lines = [
      "version: 1",
      "project: templates",
      `controlPlane: { host: 127.0.0.1, port: ${ports.cp} }`,
      `gateway: { host: 127.0.0.1, port: ${ports.gw}, adminPort: ${ports.admin}, meshPort: ${ports.mesh} }`,
      "pipelineFiles: [../platform/pipelines.yaml]",
      "services:",
    ];
    for (const s of SERVICES) {
      lines.push(`  ${s}:`, "    owner: platform", `    path: services/${s}`, "    start: node server.mjs", "    readiness: /ready", `    routes: [{ path: /${s}, stripPrefix: true }]`, "    deploy: { drain: 100ms }");
      // beta runs its tests with a flag of its own: one stage overridden, the rest from the template.
      lines.push(s === "alpha" ? "    pipeline: node-service" : "    pipeline: { template: node-service, stages: { test: { run: node test.mjs --strict } } }");
      const d = join(dir, "services", s);
      await mkdir(d, { recursive: true });
      await writeFile(join(d, "server.mjs"), serverSource(s, `${s}-v1`));
      await writeFile(join(d, "build.mjs"), BUILD);
      await writeFile(join(d, "test.mjs"), TEST);
      await writeFile(join(d, "check.mjs"), CHECK);
    }
    await writeFile(join(dir, "keelson.yaml"), `${lines.join("\n")}\n`);
  });

  afterAll(async () => {
    if (dir) {
      await keelson(["down", dir], { timeoutMs: LONG });
      await cleanup();
    }
  }, LONG);

  it(
    "up builds both services through the template's stages, with beta's override",
    async () => {
      const r = await cli(["up", dir, "--detach"]);
      expect(r.code, out(r)).toBe(0);
      for (const s of SERVICES) {
        const [run] = await runs(s);
        expect(run?.status, s).toBe("succeeded");
        // The template's stages, then the built-in security scan every pipeline runs.
        expect(run?.stages.map((x) => x.name), s).toEqual(["build", "test", "scan"]);
        expect(await log(run!.run)).toContain(s === "alpha" ? "==> stage test: node test.mjs\n" : "==> stage test: node test.mjs --strict\n");
        expect(await served(s)).toMatchObject({ version: `${s}-v1`, release: (await live(s))?.id });
      }
      const plan = await cli(["plan", dir]);
      expect(plan.code, out(plan)).toBe(0);
      expect(plan.stdout).toContain('No changes. Project "templates" matches the manifest.');
    },
    LONG,
  );

  it(
    "keelson doctor finds the running project healthy: its ports are its own and every readiness path answers",
    async () => {
      const r = await cli(["doctor", dir, "--json"]);
      expect(r.code, out(r)).toBe(0);
      const report = JSON.parse(r.stdout) as DoctorReport;
      expect(report.ok).toBe(true);
      expect(report.checks.find((c) => c.check === "ports")).toMatchObject({ status: "pass", message: expect.stringContaining("held by this project's") });
      expect(report.checks.filter((c) => c.check === "readiness").map((c) => [c.status, c.message])).toEqual([
        ["pass", "alpha: /ready answers on 1/1 replicas"],
        ["pass", "beta: /ready answers on 1/1 replicas"],
      ]);
      expect(report.checks.filter((c) => c.check === "pipeline-commands").map((c) => c.status)).toEqual(["pass", "pass"]);
    },
    LONG,
  );

  it(
    "a code change to alpha is deployed through the template's stages; beta keeps its release",
    async () => {
      const betaBefore = await live("beta");
      const alphaRuns = (await runs("alpha")).length;
      await writeFile(join(dir, "services", "alpha", "server.mjs"), serverSource("alpha", "alpha-v2"));
      const r = await cli(["deploy", "alpha", "-C", dir]);
      expect(r.code, out(r)).toBe(0);
      expect(r.stdout).toMatch(/serves all traffic/);
      const now = await runs("alpha");
      expect(now).toHaveLength(alphaRuns + 1);
      expect(now[0]).toMatchObject({ status: "succeeded", trigger: "deploy" });
      expect(now[0]?.stages.map((x) => [x.name, x.status])).toEqual([
        ["build", "succeeded"],
        ["test", "succeeded"],
        ["scan", "succeeded"],
      ]);
      expect(await served("alpha")).toMatchObject({ version: "alpha-v2", release: (await live("alpha"))?.id });
      expect((await live("beta"))?.id).toBe(betaBefore?.id);
    },
    LONG,
  );

  it(
    "an edit to the shared template shows in `keelson plan` for both services, naming the template",
    async () => {
      await writeFile(shared(), TEMPLATE_V2);
      const r = await cli(["plan", dir]);
      expect(r.code, out(r)).toBe(0);
      expect(r.stdout).toContain(
        [
          '  ~ service "alpha" will be changed',
          "      ~ sources changed: will be rebuilt and rolled out",
          '      ~ pipeline stages from template "node-service":',
          '          ~ stage "test": run "node test.mjs" → "node test.mjs --ci"',
          '          + stage "check": "node check.mjs"',
        ].join("\n"),
      );
      // beta's own test command stays; only the new stage reaches it.
      expect(r.stdout).toContain(
        ['  ~ service "beta" will be changed', "      ~ sources changed: will be rebuilt and rolled out", '      ~ pipeline stages from template "node-service":', '          + stage "check": "node check.mjs"', ""].join("\n"),
      );
      expect(r.stdout).toContain("Plan: 0 to create, 2 to change, 0 to remove.");

      const json = await cli(["plan", dir, "--json"]);
      expect(json.code, out(json)).toBe(0);
      const plan = JSON.parse(json.stdout) as Plan;
      expect(plan.changes.map((c) => [c.service, c.action, c.pipeline?.template, c.pipeline?.stages.map((s) => `${s.action} ${s.stage}`)])).toEqual([
        ["alpha", "change", "node-service", ["change test", "add check"]],
        ["beta", "change", "node-service", ["add check"]],
      ]);
    },
    LONG,
  );

  it(
    "the next up rebuilds both services with the template's new stages",
    async () => {
      const before = { alpha: await live("alpha"), beta: await live("beta") };
      const r = await cli(["up", dir, "--detach"]);
      expect(r.code, out(r)).toBe(0);
      for (const s of SERVICES) {
        const [run] = await runs(s);
        expect(run?.stages.map((x) => [x.name, x.status]), s).toEqual([
          ["build", "succeeded"],
          ["test", "succeeded"],
          ["check", "succeeded"],
          ["scan", "succeeded"],
        ]);
        const text = await log(run!.run);
        expect(text).toContain(s === "alpha" ? "tests ran with [--ci]" : "tests ran with [--strict]");
        expect(text).toContain(`check stage of ${s}`);
        const now = await live(s);
        expect(now?.id, `${s} has a new release`).not.toBe(before[s]?.id);
        expect(await served(s)).toMatchObject({ version: s === "alpha" ? "alpha-v2" : "beta-v1", release: now?.id });
      }
      const plan = await cli(["plan", dir]);
      expect(plan.stdout).toContain('No changes. Project "templates" matches the manifest.');
    },
    LONG,
  );

  it(
    "a template that is not defined is refused, naming the service, the place and the defined templates",
    async () => {
      const manifest = join(dir, "keelson.yaml");
      const text = await readFile(manifest, "utf8");
      await writeFile(manifest, text.replace("    pipeline: node-service\n", "    pipeline: node-servic\n"));
      try {
        const r = await cli(["plan", dir]);
        expect(r.code, out(r)).toBe(1);
        expect(r.stderr).toMatch(/keelson\.yaml:\d+:15 services\.alpha\.pipeline: service "alpha" uses pipeline template "node-servic", which is not defined; did you mean `node-service`\? defined templates: node-service/);
        expect(r.stderr).toContain("KEELSON_ERR_MANIFEST_INVALID");
      } finally {
        await writeFile(manifest, text);
      }
    },
    LONG,
  );
});
