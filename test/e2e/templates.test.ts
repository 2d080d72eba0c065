// End to end: `keelson new` in a fresh project (a git repository) with each built-in template.
// Each service passes its own tests, `keelson up` serves it through the gateway, a code change
// ships with `keelson deploy`, and bad input changes nothing. Prints the time from
// `keelson new http-ts` to the service answering through the gateway.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StatusReport } from "@keelson/protocol";
import type { ReleaseView } from "../../packages/platform/src/delivery/index.js";
import { apiFetch, freePort, git, makeTempDir, waitFor } from "#test-support";
import { keelson, type CliResult } from "./cli.js";

const LONG = 300_000;

const manifest = (ports: { controlPlane: number; gateway: number; admin: number; mesh: number }) => `# A fresh project for the templates e2e test: these comments must survive \`keelson new\`.
version: 1
project: fresh
controlPlane: { host: 127.0.0.1, port: ${ports.controlPlane} }
gateway: { host: 127.0.0.1, port: ${ports.gateway}, adminPort: ${ports.admin}, meshPort: ${ports.mesh} }

teams:
  web:
    members: [ana]   # front of house
  data:
    members: [bo]

# One pipeline for every TypeScript service, kept in a file several repositories may share.
pipelineFiles: [ci/pipelines.yaml]

services: {}   # keelson new adds them here
`;

const PIPELINES = `# The shared pipeline templates (keelson.yaml's pipelineFiles).
pipelines:
  node-service:
    description: build with tsc, then the service's own tests
    stages:
      - { name: build, run: npm run build }
      - { name: test, run: npm test }
`;

/** Runs a service's own command (its manifest `build` or `test`) in its folder, as a person would. */
function run(command: string, cwd: string, timeoutMs = 240_000): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile("sh", ["-c", command], { cwd, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, NO_COLOR: "1" } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

describe.sequential("service templates end to end", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let gateway: string;
  let controlPlane: string;
  let upRan = false;
  const out = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
  const cli = (args: string[], env: Record<string, string> = {}) => keelson(args, { timeoutMs: LONG, env });

  async function api<T>(path: string): Promise<T> {
    const res = await apiFetch(dir, `${controlPlane}${path}`);
    expect(res.status, `GET ${path}`).toBe(200);
    return (await res.json()) as T;
  }

  /** The manifest's build and test commands of a service (or its pipeline template's stages), run in its folder; all must pass. */
  async function ownTests(service: string): Promise<string> {
    const { services } = parse(await readFile(join(dir, "keelson.yaml"), "utf8")) as { services: Record<string, { path: string; build?: string; test?: string; pipeline?: string }> };
    const entry = services[service]!;
    const cwd = join(dir, entry.path);
    const shared = parse(await readFile(join(dir, "ci", "pipelines.yaml"), "utf8")) as { pipelines: Record<string, { stages: Array<{ run: string }> }> };
    const commands = entry.pipeline === undefined ? [entry.build, entry.test] : shared.pipelines[entry.pipeline]!.stages.map((st) => st.run);
    let output = "";
    for (const cmd of commands) {
      if (cmd === undefined) continue;
      const r = await run(cmd, cwd);
      output += r.output;
      expect(r.code, `${service}: \`${cmd}\` failed:\n${r.output}`).toBe(0);
    }
    return output;
  }

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-templates-"));
    const ports = { controlPlane: await freePort(), gateway: await freePort(), admin: await freePort(), mesh: await freePort() };
    gateway = `http://127.0.0.1:${ports.gateway}`;
    controlPlane = `http://127.0.0.1:${ports.controlPlane}`;
    await writeFile(join(dir, "keelson.yaml"), manifest(ports));
    await mkdir(join(dir, "ci"));
    await writeFile(join(dir, "ci", "pipelines.yaml"), PIPELINES);
    await writeFile(join(dir, ".gitignore"), ".keelson/\n");
    await git(dir, ["init", "-q"]);
    await git(dir, ["add", "-A"]);
    await git(dir, ["commit", "-q", "-m", "an empty project"]);
  });

  afterAll(async () => {
    if (!dir) return;
    if (upRan) {
      const down = await cli(["down", dir]);
      expect(down.code, out(down)).toBe(0);
    }
    await cleanup();
  }, LONG);

  it(
    "refuses bad input with a clear error and leaves keelson.yaml and the folder as they were",
    async () => {
      const before = await readFile(join(dir, "keelson.yaml"), "utf8");
      // Each kind of refusal is covered in packages/platform/src/templates; here, the binary's exit codes and messages.
      const cases: Array<[string[], number, RegExp]> = [
        [["new", "htp-ts", "hello", "-C", dir], 1, /no template "htp-ts"; did you mean `http-ts`\?.*\n\(KEELSON_ERR_NOT_FOUND\)/s],
        [["new", "http-ts", "hello", "-C", dir, "--owner", "web", "--set", "route=no-slash", "--set", "colour=red"], 1, /--set colour: template "http-ts" has no variable "colour".*\n--set route=no-slash: expected a value matching/s],
        [["new", "http-ts", "hello", "-C", dir, "--set", "oops"], 2, /expected name=value, got "oops"/],
        [["new", "http-ts"], 2, /missing required argument 'name'/],
      ];
      const results = await Promise.all(cases.map(([args]) => cli(args)));
      cases.forEach(([, code, message], i) => {
        const r = results[i]!;
        expect(r.code, out(r)).toBe(code);
        expect(r.stderr, out(r)).toMatch(message);
      });
      expect(await readFile(join(dir, "keelson.yaml"), "utf8")).toBe(before);
      expect(existsSync(join(dir, "services"))).toBe(false);
    },
    LONG,
  );

  it(
    "http-ts: keelson new, its own tests pass, keelson up serves it through the gateway",
    async () => {
      const started = Date.now();
      const created = await cli(["new", "http-ts", "hello", "-C", dir, "--owner", "web", "--pipeline", "node-service"]);
      expect(created.code, out(created)).toBe(0);
      expect(created.stdout).toContain("✓ hello from template http-ts (built-in)");
      expect(created.stdout).toContain("services.hello added, owner web");
      expect(created.stdout).toMatch(/next:\n {2}cd services\/hello && npm test/);
      const made = Date.now();
      const tests = await ownTests("hello");
      expect(tests).toMatch(/# pass [1-9]\d*\n# fail 0/);
      const tested = Date.now();
      const up = await cli(["up", dir, "--detach"]);
      upRan = true;
      expect(up.code, out(up)).toBe(0);
      const res = await fetch(`${gateway}/hello/hello?name=Ada`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ message: "Hello, Ada!", loud: false });
      const served = Date.now();
      console.log(
        `keelson new http-ts → serving through the gateway: ${((served - started) / 1000).toFixed(1)} s ` +
          `(new ${((made - started) / 1000).toFixed(1)} s, build and tests ${((tested - made) / 1000).toFixed(1)} s, up ${((served - tested) / 1000).toFixed(1)} s)`,
      );
      // The target is 60 s on an idle two-core machine; this bound only catches something gone badly wrong.
      expect(served - started).toBeLessThan(LONG);

      // Its readiness, metric and catalog entry, as the template promised.
      const metrics = await (await fetch(`${gateway}/hello/metrics`)).text();
      expect(metrics).toContain('greetings_total{loud="false"} 1');
      const catalog = await cli(["catalog", "-C", dir, "--json"]);
      expect(catalog.code, out(catalog)).toBe(0);
      const entry = (JSON.parse(catalog.stdout) as { services: Array<{ name: string; owner: { team: string; declared: boolean }; lifecycle?: string }> }).services.find((s) => s.name === "hello");
      expect(entry).toMatchObject({ owner: { team: "web", declared: true }, lifecycle: "experimental" });
      // The comments of the manifest are still there.
      const text = await readFile(join(dir, "keelson.yaml"), "utf8");
      expect(text).toContain("members: [ana]   # front of house");
      expect(text).toContain("services: # keelson new adds them here\n  hello:\n");
      expect(text).toMatch(/\n {4}pipeline: node-service\n/);
    },
    LONG * 2,
  );

  it(
    "worker-ts and static-site: keelson new, their tests pass, keelson up serves them beside hello",
    async () => {
      const helloBefore = (await api<StatusReport>("/v1/status")).services.find((s) => s.name === "hello");
      for (const [template, name, owner] of [
        ["worker-ts", "jobs", "data"],
        ["static-site", "site", "web"],
      ] as const) {
        const r = await cli(["new", template, name, "-C", dir, "--owner", owner, ...(template === "static-site" ? ["--set", "title=Fresh & Friends"] : ["--pipeline", "node-service"])]);
        expect(r.code, out(r)).toBe(0);
      }
      for (const name of ["jobs", "site"]) expect(await ownTests(name)).toMatch(/# pass [1-9]\d*\n# fail 0/);
      const up = await cli(["up", dir, "--detach"]);
      expect(up.code, out(up)).toBe(0);
      const status = await api<StatusReport>("/v1/status");
      for (const name of ["hello", "jobs", "site"]) {
        const s = status.services.find((x) => x.name === name);
        expect(s?.replicas, name).toEqual({ desired: 1, ready: 1 });
      }
      expect(status.services.find((s) => s.name === "hello")?.release, "hello was not rebuilt").toBe(helloBefore?.release);

      // The worker takes a job through the gateway and does it.
      const posted = await fetch(`${gateway}/jobs/jobs`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: "to be or not to be" }) });
      expect(posted.status).toBe(202);
      const { id } = (await posted.json()) as { id: string };
      const done = await waitFor(
        async () => {
          const job = (await (await fetch(`${gateway}/jobs/jobs/${id}`)).json()) as { state: string; result?: unknown };
          return job.state === "done" ? job : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 100, what: `job ${id} to be done` },
      );
      expect(done).toEqual({ id, state: "done", result: { words: 6, longest: "not" } });
      expect((await fetch(`${gateway}/jobs/live`)).status).toBe(200);

      // The site lives under its route, with relative links working.
      const redirect = await fetch(`${gateway}/site`, { redirect: "manual" });
      expect(redirect.status).toBe(301);
      expect(redirect.headers.get("location")).toBe("/site/");
      const page = await fetch(`${gateway}/site/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("<h1>Fresh &#38; Friends</h1>");
      expect((await fetch(`${gateway}/site/style.css`)).headers.get("content-type")).toBe("text/css; charset=utf-8");
    },
    LONG * 2,
  );

  it(
    "a code change ships with keelson deploy, through the shared pipeline template's stages",
    async () => {
      const app = join(dir, "services", "hello", "src", "app.ts");
      const source = await readFile(app, "utf8");
      const changed = source.replace('try: "GET hello?name=Ada" });', 'try: "GET hello?name=Ada", changed: true });');
      expect(changed).not.toBe(source);
      await writeFile(app, changed);
      const before = (await api<{ releases: ReleaseView[] }>("/v1/services/hello/releases")).releases.find((r) => r.status === "live");
      const deploy = await cli(["deploy", "hello", "-C", dir]);
      expect(deploy.code, out(deploy)).toBe(0);
      expect(deploy.stdout).toMatch(/✓ hello: release r-[0-9a-f]{12} serves all traffic/);
      const after = (await api<{ releases: ReleaseView[] }>("/v1/services/hello/releases")).releases.find((r) => r.status === "live");
      expect(after?.id).not.toBe(before?.id);
      const root = (await (await fetch(`${gateway}/hello/`)).json()) as { changed?: boolean; release: string };
      expect(root).toMatchObject({ service: "hello", changed: true, release: after?.id });
      // The run was the template's: its two stages, by name.
      const runs = (await api<{ runs: Array<{ release?: string; stages: Array<{ name: string; status: string }> }> }>("/v1/pipelines?service=hello&limit=1")).runs;
      expect(runs[0]?.stages.filter((st) => st.name === "build" || st.name === "test").map((st) => `${st.name} ${st.status}`)).toEqual(["build succeeded", "test succeeded"]);
    },
    LONG,
  );

  it(
    "an edit to the shared pipeline template shows in keelson plan for every service that uses it",
    async () => {
      await writeFile(join(dir, "ci", "pipelines.yaml"), PIPELINES.replace("      - { name: test, run: npm test }", "      - { name: test, run: npm test }\n      - { name: check, run: node --version }"));
      const plan = await cli(["plan", dir]);
      expect(plan.code, out(plan)).toBe(0);
      for (const name of ["hello", "jobs"]) expect(plan.stdout).toContain(`~ service "${name}" will be changed`);
      expect(plan.stdout.match(/~ pipeline stages from template "node-service":\n {10}\+ stage "check": "node --version"/g)).toHaveLength(2);
      // The static site has its own pipeline: the template's change is not its change.
      expect(plan.stdout).not.toContain('service "site" will be changed');
      await writeFile(join(dir, "ci", "pipelines.yaml"), PIPELINES);
    },
    LONG,
  );

  it(
    "a team's own template, added from a git repository, is listed",
    async () => {
      const repo = join(dir, "..", `${dir.split("/").at(-1)}-templates-repo`);
      const userDir = join(dir, ".keelson", "user-templates");
      await mkdir(join(repo, "plain-node"), { recursive: true });
      await writeFile(join(repo, "plain-node", "template.yaml"), "description: A plain Node service\nmanifest:\n  start: node server.mjs\n  routes: ['/{{name}}']\n");
      await writeFile(join(repo, "plain-node", "server.mjs"), "// {{name}}\n");
      try {
        await git(join(repo, ".."), ["init", "-q", repo]);
        await git(repo, ["add", "-A"]);
        await git(repo, ["commit", "-q", "-m", "templates"]);
        const env = { KEELSON_TEMPLATES_DIR: userDir };
        const added = await cli(["templates", "add", pathToFileURL(repo).href, "--subdir", "plain-node"], env);
        expect(added.code, out(added)).toBe(0);
        expect(added.stdout).toMatch(/✓ template plain-node added from file:\/\/.* at [0-9a-f]{12}: 1 files, 0 variables/);
        const list = await cli(["templates", "list", "--json"], env);
        expect(list.code, out(list)).toBe(0);
        expect((JSON.parse(list.stdout) as Array<{ name: string; origin: string }>).map((t) => `${t.name} ${t.origin}`)).toEqual(["http-ts built-in", "static-site built-in", "worker-ts built-in", "plain-node user"]);
      } finally {
        await rm(repo, { recursive: true, force: true });
      }
    },
    LONG,
  );
});
