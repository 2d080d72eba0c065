import { chmod, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { git, makeTempDir } from "#test-support";
import { parseManifest, type ServiceSpec } from "../manifest/index.js";
import { createSecurityGate } from "../security/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { createPipelineRunner, listPipelineRuns, type PipelineProgress, type PipelineRunner, type ScanInput } from "./pipeline.js";

function spec(yaml: string[]): ServiceSpec {
  const loaded = parseManifest(["project: p", "services:", "  api:", "    owner: t", "    path: api", "    start: node server.js", ...yaml.map((l) => `    ${l}`), ""].join("\n"), "/tmp/p/keelson.yaml", { checkPaths: false });
  return loaded.manifest.services.api as ServiceSpec;
}

describe("pipelines", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let store: Store;
  let runner: PipelineRunner;
  const stateDir = () => join(dir, ".keelson");

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-pipeline-"));
    await mkdir(join(dir, "api"), { recursive: true });
    await writeFile(join(dir, "api", "server.js"), "console.log('v1')\n");
    store = createMemoryStore();
    runner = createPipelineRunner({ store, project: "p", stateDir: stateDir() });
  });
  afterEach(async () => {
    await store.close();
    await cleanup();
  });

  const run = (s: ServiceSpec, extra: { onProgress?: (p: PipelineProgress) => void; rebuild?: boolean; commit?: string } = {}) =>
    runner.ensureRelease({ service: "api", spec: s, manifestDir: dir, source: extra.commit ? { kind: "commit", commit: extra.commit } : { kind: "worktree" }, actor: "test", trigger: "deploy", ...(extra.rebuild ? { rebuild: true } : {}), ...(extra.onProgress ? { onProgress: extra.onProgress } : {}) });

  it("runs the stages in a clean workspace and seals the result into a verified, read-only artifact", async () => {
    // A file the build would see in place but that is not a source (ignored output) must not reach the workspace.
    await mkdir(join(dir, "api", "dist"), { recursive: true });
    await writeFile(join(dir, "api", "dist", "stale.js"), "stale");
    const s = spec(["pipeline:", "  stages:", "    - { name: build, run: 'mkdir -p out && cp server.js out/app.js && ls dist 2>/dev/null | wc -l > out/dist-files' }", "    - { name: test, run: 'test -f out/app.js' }"]);
    const stages: string[] = [];
    const outcome = await run(s, { onProgress: (p) => p.type === "stage" && stages.push(`${p.stage}:${p.status}`) });
    expect(outcome.how).toBe("built");
    expect(stages).toEqual(["build:started", "build:succeeded", "test:started", "test:succeeded"]);
    const artifact = await runner.artifactOf(outcome.release);
    expect(artifact).toBeDefined();
    const cwd = artifact?.cwd as string;
    expect(await readFile(join(cwd, "out", "app.js"), "utf8")).toBe("console.log('v1')\n");
    expect((await readFile(join(cwd, "out", "dist-files"), "utf8")).trim()).toBe("0");
    expect((await stat(join(cwd, "out", "app.js"))).mode & 0o222).toBe(0);
    await runner.verify(outcome.release, { force: true });
    // The same sources and config: nothing to run.
    expect((await run(s)).how).toBe("existing");
  });

  it("makes a new release without running the pipeline when only the runtime config changes", async () => {
    const first = await run(spec(["build: 'echo built > built.txt'"]));
    const second = await run(spec(["build: 'echo built > built.txt'", "env: { LEVEL: debug }"]));
    expect(second.how).toBe("reused");
    expect(second.release.id).not.toBe(first.release.id);
    expect(second.release.details.artifact).toBe(first.release.details.artifact);
    expect((await listPipelineRuns({ store, project: "p", service: "api" })).length).toBe(1);
  });

  it("stops at a failing stage with its last log lines, records the failure and makes no release", async () => {
    const s = spec(["build: 'echo compiling; echo boom >&2; exit 3'", "test: 'echo never'"]);
    await expect(run(s)).rejects.toThrow(/stage "build" \(`echo compiling; echo boom >&2; exit 3`\) exited with code 3; no release was made; last log lines:\n(.|\n)*boom/);
    expect(await store.listReleases("p", "api")).toEqual([]);
    const [view] = await listPipelineRuns({ store, project: "p", service: "api" });
    expect(view?.status).toBe("failed");
    expect(view?.stages).toEqual([expect.objectContaining({ name: "build", status: "failed", why: "exited with code 3" })]);
    const log = await readFile(join(stateDir(), view?.log as string), "utf8");
    expect(log).toContain("==> stage build");
    expect(log).toContain("boom");
  });

  it("records every stage the run will go through, so a view shows the ones after a failure as not run", async () => {
    const scanning = createPipelineRunner({ store, project: "p", stateDir: stateDir(), scan: async () => undefined });
    const s = spec(["pipeline:", "  stages:", "    - { name: build, run: 'true' }", "    - { name: test, run: 'exit 1' }", "    - { name: package, run: 'true' }"]);
    await expect(scanning.ensureRelease({ service: "api", spec: s, manifestDir: dir, source: { kind: "worktree" }, actor: "test", trigger: "deploy" })).rejects.toThrow(/stage "test"/);
    const [view] = await listPipelineRuns({ store, project: "p", service: "api" });
    expect(view?.planned).toEqual(["build", "test", "package", "scan"]);
    expect(view?.stages.map((x) => [x.name, x.status])).toEqual([
      ["build", "succeeded"],
      ["test", "failed"],
    ]);
    expect(view?.stages[0]?.startedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it("lists every service's runs newest first when no service is named, each with its service", async () => {
    await run(spec(["build: 'true'"]));
    await mkdir(join(dir, "web"), { recursive: true });
    await writeFile(join(dir, "web", "server.js"), "console.log('web')\n");
    const web = { ...spec(["build: 'true'"]), path: "web" };
    await runner.ensureRelease({ service: "web", spec: web, manifestDir: dir, source: { kind: "worktree" }, actor: "ana", trigger: "deploy" });
    // A run that started and never ended is running only while the runner says so.
    await store.appendEvent({ project: "p", kind: "pipeline.started", actor: "bob", subject: "service/web", details: { run: "run-20260101-000000-aaaaaa", trigger: "watch" } });
    await store.appendEvent({ project: "p", kind: "pipeline.started", actor: "bob", subject: "flag/web", details: { run: "run-20260101-000000-bbbbbb" } });
    const all = await listPipelineRuns({ store, project: "p", activeRuns: ["run-20260101-000000-aaaaaa"] });
    expect(all.map((r) => [r.service, r.status])).toEqual([
      ["web", "running"],
      ["web", "succeeded"],
      ["api", "succeeded"],
    ]);
    expect(all[1]).toMatchObject({ actor: "ana", trigger: "deploy" });
    expect((await listPipelineRuns({ store, project: "p" }))[0]?.status).toBe("interrupted");
    expect((await listPipelineRuns({ store, project: "p", limit: 1 })).map((r) => r.service)).toEqual(["web"]);
    expect((await listPipelineRuns({ store, project: "p", service: "api" })).map((r) => r.service)).toEqual(["api"]);
  });

  it("kills a stage that hangs when its timeout is up", async () => {
    const s = spec(["pipeline:", "  stages:", "    - { name: test, run: 'sleep 30', timeout: 300ms }"]);
    const t = Date.now();
    await expect(run(s)).rejects.toThrow(/stage "test" \(`sleep 30`\) timed out after 300 ms/);
    expect(Date.now() - t).toBeLessThan(10_000);
  });

  it("caches the install stage by lockfile hash", async () => {
    const counter = join(dir, "installs.txt");
    await writeFile(join(dir, "api", "package-lock.json"), '{"lockfileVersion":3}');
    const s = spec(["pipeline:", "  stages:", `    - { name: install, run: 'mkdir -p node_modules/dep && echo 1 > node_modules/dep/index.js && echo x >> ${counter}' }`, "    - { name: test, run: 'test -f node_modules/dep/index.js' }"]);
    const statuses: string[] = [];
    await run(s);
    await writeFile(join(dir, "api", "server.js"), "console.log('v2')\n");
    await run(s, { onProgress: (p) => p.type === "stage" && p.stage === "install" && statuses.push(p.status) });
    expect(statuses).toEqual(["cached"]);
    expect((await readFile(counter, "utf8")).trim().split("\n")).toHaveLength(1);
    // A changed lockfile installs again.
    await writeFile(join(dir, "api", "package-lock.json"), '{"lockfileVersion":3,"x":1}');
    await run(s);
    expect((await readFile(counter, "utf8")).trim().split("\n")).toHaveLength(2);
  });

  it("detects an artifact changed or deleted after it was built", async () => {
    const outcome = await run(spec(["build: 'echo ok > ok.txt'"]));
    const cwd = (await runner.artifactOf(outcome.release))?.cwd as string;
    await chmod(join(cwd, "server.js"), 0o644);
    await writeFile(join(cwd, "server.js"), "tampered");
    await expect(runner.verify(outcome.release, { force: true })).rejects.toMatchObject({ code: "KEELSON_ERR_ARTIFACT_INVALID", message: expect.stringMatching(/was changed after it was built/) });
    await rm(cwd, { recursive: true, force: true });
    await rm(join(cwd, ".."), { recursive: true, force: true });
    await expect(runner.verify(outcome.release, { force: true })).rejects.toThrow(/artifact folder .* is missing/);
  });

  it("refuses a second run of the same service while one runs", async () => {
    const s = spec(["build: 'sleep 1'"]);
    const first = run(s);
    await new Promise((r) => setTimeout(r, 100));
    await expect(run(spec(["build: 'sleep 1'", "env: { A: b }"]))).rejects.toThrow(/a pipeline of api is already running/);
    await first;
  });

  it("builds a commit's files, not the working tree's", async () => {
    await git(dir, ["init", "-q"]);
    await git(dir, ["add", "api"]);
    await git(dir, ["commit", "-qm", "v1"]);
    const sha = await git(dir, ["rev-parse", "HEAD"]);
    await writeFile(join(dir, "api", "server.js"), "console.log('uncommitted')\n");
    const outcome = await run(spec(["build: 'true'"]), { commit: sha });
    const cwd = (await runner.artifactOf(outcome.release))?.cwd as string;
    expect(await readFile(join(cwd, "server.js"), "utf8")).toBe("console.log('v1')\n");
    expect(outcome.release.gitCommit).toBe(sha);
    expect(outcome.release.details.commitAuthor).toBe("Ada Author");
    await expect(run(spec(["build: 'true'"]), { commit: "0123456789abcdef" })).rejects.toThrow(/0123456789abcdef/);
  });

  it("keeps the newest releases and the ones asked for, deleting the rest with their artifacts", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      await writeFile(join(dir, "api", "server.js"), `console.log(${i})\n`);
      ids.push((await run(spec(["build: 'true'"]))).release.id);
      await new Promise((r) => setTimeout(r, 5));
    }
    const deleted = await runner.collect("api", 2, new Set([ids[0] as string]), "test");
    expect(deleted).toEqual([ids[1]]);
    expect((await store.listReleases("p", "api")).map((r) => r.id).sort()).toEqual([ids[0], ids[2], ids[3]].sort());
  });

  describe("the scan stage", () => {
    const ensure = (r: PipelineRunner, s: ServiceSpec, onProgress?: (p: PipelineProgress) => void) =>
      r.ensureRelease({ service: "api", spec: s, manifestDir: dir, source: { kind: "worktree" }, actor: "test", trigger: "deploy", ...(onProgress ? { onProgress } : {}) });

    it("stores the hook's SBOM with the release, summarises its findings, and copies the SBOM to a release that re-uses the artifact", async () => {
      const inputs: ScanInput[] = [];
      const scanning = createPipelineRunner({
        store,
        project: "p",
        stateDir: stateDir(),
        scan: async (input) => {
          inputs.push(input);
          input.log("secrets: 1 file scanned: 0 findings");
          return {
            sbom: { bomFormat: "CycloneDX", specVersion: "1.5", metadata: { component: { type: "application", name: input.service, version: input.release } }, components: [] },
            findings: [{ kind: "vulnerability", severity: "high", blocking: false }, { kind: "vulnerability", severity: "low", blocking: false }, { kind: "secret", blocking: false }],
          };
        },
      });
      const stages: string[] = [];
      const outcome = await ensure(scanning, spec(["build: 'true'"]), (p) => p.type === "stage" && stages.push(`${p.stage}:${p.status}`));
      const id = outcome.release.id;
      expect(stages).toEqual(["build:started", "build:succeeded", "scan:started", "scan:succeeded"]);
      expect(inputs).toEqual([expect.objectContaining({ service: "api", release: id, path: "api", run: outcome.run })]);
      expect(inputs[0]?.git).toBeUndefined();
      // The workspace's copy, not the service's folder.
      expect(inputs[0]?.serviceDir.startsWith(join(stateDir(), "work", outcome.run as string))).toBe(true);

      const summary = { total: 3, blocking: 0, byKind: { vulnerability: 2, secret: 1 }, bySeverity: { high: 1, low: 1 } };
      expect(outcome.release.details).toMatchObject({ sbom: `sboms/api/${id}.cdx.json`, securityFindings: summary });
      const stored = JSON.parse(await readFile(join(stateDir(), "sboms", "api", `${id}.cdx.json`), "utf8")) as { metadata: { component: { version: string } } };
      expect(stored.metadata.component.version).toBe(id);
      const [scanned] = await store.listEvents({ project: "p", kinds: ["security.scanned"] });
      expect(scanned).toMatchObject({ subject: "service/api", details: { run: outcome.run, release: id, sbom: `sboms/api/${id}.cdx.json`, ...summary } });
      // The scan's lines are in the run's log too.
      const [view] = await listPipelineRuns({ store, project: "p", service: "api" });
      expect(await readFile(join(stateDir(), view?.log as string), "utf8")).toContain("==> stage scan: built-in scanners\nsecrets: 1 file scanned: 0 findings\n");

      // A config-only change re-uses the artifact: no scan runs, and the new release gets its own copy of the SBOM.
      const reused = await ensure(scanning, spec(["build: 'true'", "env: { LEVEL: debug }"]));
      expect(reused.how).toBe("reused");
      expect(inputs).toHaveLength(1);
      expect(reused.release.details).toMatchObject({ sbom: `sboms/api/${reused.release.id}.cdx.json`, securityFindings: summary });
      const copy = JSON.parse(await readFile(join(stateDir(), "sboms", "api", `${reused.release.id}.cdx.json`), "utf8")) as { metadata: { component: { version: string } } };
      expect(copy.metadata.component.version).toBe(reused.release.id);
    });

    it("tells the hook the repository, the service's folder in it and the commit when the sources are in git", async () => {
      await git(dir, ["init", "-q"]);
      await git(dir, ["add", "api"]);
      await git(dir, ["commit", "-qm", "v1"]);
      const sha = await git(dir, ["rev-parse", "HEAD"]);
      const inputs: ScanInput[] = [];
      const scanning = createPipelineRunner({ store, project: "p", stateDir: stateDir(), scan: async (input) => void inputs.push(input) });
      const outcome = await ensure(scanning, spec(["build: 'true'"]));
      expect(inputs[0]?.git).toEqual({ repoDir: dir, servicePath: "api", commit: sha });
      // A hook that returns nothing leaves no SBOM, and the scan is still recorded.
      expect(outcome.release.details).not.toHaveProperty("sbom");
      expect((await store.listEvents({ project: "p", kinds: ["security.scanned"] }))[0]?.details).toMatchObject({ release: outcome.release.id, total: 0 });
    });

    it("keeps a security gate's error as it is, records security.blocked, and makes no release", async () => {
      const gateError = new KeelsonError("KEELSON_ERR_SECURITY_GATE", "api: release blocked: aws-access-key-id in src/config.ts:3", {
        details: { findings: [{ kind: "secret", blocking: true, rule: "aws-access-key-id", file: "src/config.ts", line: 3, excerpt: 'const key = "AKIA…";' }] },
      });
      const blocking = createPipelineRunner({ store, project: "p", stateDir: stateDir(), scan: async () => Promise.reject(gateError) });
      const err = await ensure(blocking, spec(["build: 'true'"])).catch((e: unknown) => e);
      expect(err).toBe(gateError);
      expect(await store.listReleases("p", "api")).toEqual([]);
      const [blocked] = await store.listEvents({ project: "p", kinds: ["security.blocked"] });
      expect(blocked).toMatchObject({
        subject: "service/api",
        details: { message: gateError.message, total: 1, blocking: 1, byKind: { secret: 1 }, findings: [expect.objectContaining({ file: "src/config.ts", line: 3, excerpt: 'const key = "AKIA…";' })] },
      });
      expect(await store.listEvents({ project: "p", kinds: ["security.scanned"] })).toEqual([]);
      const [view] = await listPipelineRuns({ store, project: "p", service: "api" });
      expect(view).toMatchObject({ status: "failed", message: gateError.message });
      expect(view?.stages.at(-1)).toMatchObject({ name: "scan", status: "failed", why: gateError.message });
    });

    it("wraps a scanner's own crash as a pipeline failure, without a security.blocked event", async () => {
      const crashing = createPipelineRunner({ store, project: "p", stateDir: stateDir(), scan: async () => Promise.reject(new Error("scanner fell over")) });
      await expect(ensure(crashing, spec(["build: 'true'"]))).rejects.toMatchObject({ code: "KEELSON_ERR_PIPELINE_FAILED", message: 'services.api: stage "scan" failed: scanner fell over; no release was made' });
      expect(await store.listEvents({ project: "p", kinds: ["security.blocked"] })).toEqual([]);
    });

    it("runs the real security gate: a planted key blocks, an allow-list entry lets the release through with an SBOM", async () => {
      await mkdir(join(dir, "api", "src"), { recursive: true });
      await writeFile(join(dir, "api", "src", "config.ts"), `// config\n\nconst key = "${"AKIA" + "IOSFODNN7EXAMPLE"}";\n`);
      await writeFile(join(dir, "api", "package-lock.json"), JSON.stringify({ lockfileVersion: 3, packages: { "": { name: "api" }, "node_modules/left-pad": { version: "1.1.0", license: "WTFPL" } } }));
      const policy = { secrets: "block" as const, allowlist: "allow.txt", vulnerabilities: { block: "critical" as const, advisories: [], npmAudit: false }, licenses: { deny: [] } };
      await writeFile(join(dir, "allow.txt"), "");
      const gated = createPipelineRunner({ store, project: "p", stateDir: stateDir(), scan: createSecurityGate({ projectDir: dir, policy, store, project: "p" }) });
      const s = spec(["pipeline:", "  stages:", "    - { name: build, run: 'true' }"]);
      await expect(ensure(gated, s)).rejects.toMatchObject({ code: "KEELSON_ERR_SECURITY_GATE", message: "api: release blocked: aws-access-key-id in src/config.ts:3" });
      const events = JSON.stringify(await store.listEvents({ project: "p" }));
      expect(events).not.toContain("AKIA" + "IOSFODNN7EXAMPLE");

      await writeFile(join(dir, "allow.txt"), "api/src/config.ts:3  # the AWS docs' example key\n");
      const outcome = await ensure(gated, s);
      const sbom = JSON.parse(await readFile(join(stateDir(), outcome.release.details.sbom as string), "utf8")) as { bomFormat: string; components: Array<{ purl: string }> };
      expect(sbom.bomFormat).toBe("CycloneDX");
      expect(sbom.components.map((c) => c.purl)).toEqual(["pkg:npm/left-pad@1.1.0"]);
      expect(outcome.release.details.securityFindings).toEqual({ total: 0, blocking: 0, byKind: {}, bySeverity: {} });
    });
  });
});
