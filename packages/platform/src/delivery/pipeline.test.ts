import { chmod, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { git, makeTempDir } from "#test-support";
import { parseManifest, type ServiceSpec } from "../manifest/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { createPipelineRunner, listPipelineRuns, type PipelineProgress, type PipelineRunner } from "./pipeline.js";

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
});
