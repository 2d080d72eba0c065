// End to end: per-service delivery in a git repository with three services. A commit that
// touches one service's path (or a file only one service includes) runs only that service's
// pipeline and deploys it, while the others keep their release and their replicas; a failing
// test stage blocks the release; the post-commit hook deploys on commit; bad input and a
// second deploy of a service being deployed are refused with clear messages.
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StatusReport } from "@keelson/protocol";
import type { PipelineRunView, ReleaseView } from "../../packages/platform/src/delivery/index.js";
import { apiFetch, freePort, git, makeTempDir, waitFor } from "#test-support";
import { keelson, pidAlive, type CliResult } from "./cli.js";
import { commitAll, serverSource, SERVICES, writeDeliveryRepo, type ServiceName } from "./delivery-fixture.js";

const LONG = 180_000;

interface Served {
  service: string;
  version: string;
  release: string | null;
  pid: number;
  built: { version: string | null; commit: string | null; run: string | null } | null;
  shared: { greeting: string } | null;
  path: string;
}

/** What one service looks like from outside: its live release, its replicas, its runs. */
interface Snapshot {
  live: ReleaseView;
  releases: ReleaseView[];
  runs: PipelineRunView[];
  pids: number[];
  startedAt: Array<string | undefined>;
}

describe.sequential("per-service delivery from git", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let gateway: string;
  let controlPlane: string;
  let initial: string;
  let failedRun: string | undefined;
  const before = {} as Record<ServiceName, Snapshot>;

  const out = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

  async function cli(args: string[], timeoutMs = LONG): Promise<CliResult> {
    return keelson(args, { timeoutMs });
  }

  /** GET on the control plane's API (quicker than a CLI process per look), with the token `up` stored. */
  async function api<T>(path: string): Promise<T> {
    const res = await apiFetch(dir, `${controlPlane}${path}`);
    expect(res.status, `GET ${path}`).toBe(200);
    return (await res.json()) as T;
  }

  const status = () => api<StatusReport>("/v1/status");
  const releases = async (service: string) => (await api<{ releases: ReleaseView[] }>(`/v1/services/${service}/releases`)).releases;
  const runs = async (service: string) => (await api<{ runs: PipelineRunView[] }>(`/v1/services/${service}/pipelines`)).runs;

  async function snapshot(service: ServiceName, s?: StatusReport): Promise<Snapshot> {
    const st = s ?? (await status());
    const svc = st.services.find((x) => x.name === service);
    if (!svc) throw new Error(`${service} missing from status`);
    const rels = await releases(service);
    const live = rels.filter((r) => r.status === "live");
    expect(live, `${service}: exactly one live release`).toHaveLength(1);
    expect(svc.release, `${service}: status and releases agree on the live release`).toBe(live[0]!.id);
    // The live release's replicas (an old release's may still be draining after a rollout).
    const instances = svc.instances.filter((i) => i.release === svc.release && i.state === "ready").sort((a, b) => a.index - b.index);
    return {
      live: live[0]!,
      releases: rels,
      runs: await runs(service),
      pids: instances.map((i) => i.pid!),
      startedAt: instances.map((i) => i.startedAt),
    };
  }

  async function snapshotAll(): Promise<Record<ServiceName, Snapshot>> {
    const st = await status();
    const all = {} as Record<ServiceName, Snapshot>;
    for (const s of SERVICES) all[s] = await snapshot(s, st);
    return all;
  }

  async function get(service: ServiceName): Promise<Served> {
    const res = await fetch(`${gateway}/${service}/probe`);
    expect(res.status, `GET /${service}`).toBe(200);
    return (await res.json()) as Served;
  }

  /** The service kept its release, its replicas (same pids, same start times) and ran no pipeline. */
  function expectUntouched(service: ServiceName, was: Snapshot, now: Snapshot): void {
    expect(now.live.id, `${service} keeps its live release`).toBe(was.live.id);
    expect(now.pids, `${service} keeps its replicas`).toEqual(was.pids);
    expect(now.startedAt, `${service} replicas were not restarted`).toEqual(was.startedAt);
    for (const pid of now.pids) expect(pidAlive(pid), `${service} replica ${pid} alive`).toBe(true);
    expect(now.runs.map((r) => r.run), `${service} ran no new pipeline`).toEqual(was.runs.map((r) => r.run));
    expect(now.releases.map((r) => r.id), `${service} got no new release`).toEqual(was.releases.map((r) => r.id));
  }

  /** The service's newest run was started by `trigger` for `commit`, succeeded, and is what now serves. */
  async function expectDeployedFrom(service: ServiceName, was: Snapshot, now: Snapshot, commit: string, trigger: string): Promise<void> {
    expect(now.runs.length, `${service}: exactly one new pipeline run`).toBe(was.runs.length + 1);
    const run = now.runs[0]!;
    expect(run.trigger).toBe(trigger);
    expect(run.commit).toBe(commit);
    expect(run.status).toBe("succeeded");
    // The service's own stages, then the built-in security scanners every pipeline runs.
    expect(run.stages.map((s) => [s.name, s.status])).toEqual([
      ["build", "succeeded"],
      ["test", "succeeded"],
      ["scan", "succeeded"],
    ]);
    expect(now.live.id, `${service} has a new live release`).not.toBe(was.live.id);
    expect(now.live.commit).toBe(commit);
    expect(now.live.pipelineRun).toBe(run.run);
    expect(run.release).toBe(now.live.id);
    expect(now.pids).toHaveLength(2);
    for (const pid of now.pids) expect(was.pids, `${service} replica ${pid} is new`).not.toContain(pid);
    // The old replicas are drained and stopped once the new ones serve.
    await waitFor(() => was.pids.every((pid) => !pidAlive(pid)), { timeoutMs: 20_000, intervalMs: 100, what: `${service}'s old replicas ${was.pids.join(", ")} to stop` });
  }

  async function writeService(service: ServiceName, version: string): Promise<void> {
    await writeFile(join(dir, "services", service, "server.mjs"), serverSource(service, version));
  }

  async function watchState(): Promise<string | undefined> {
    const text = await readFile(join(dir, ".keelson", "watch.json"), "utf8").catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as { lastSeen?: string }).lastSeen;
  }

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-delivery-"));
    const ports = { controlPlane: await freePort(), gateway: await freePort(), admin: await freePort(), mesh: await freePort() };
    gateway = `http://127.0.0.1:${ports.gateway}`;
    controlPlane = `http://127.0.0.1:${ports.controlPlane}`;
    initial = await writeDeliveryRepo(dir, ports);
  });

  afterAll(async () => {
    if (dir) {
      await keelson(["hooks", "uninstall", dir]);
      await keelson(["down", dir]);
      await cleanup();
    }
  }, LONG);

  it(
    "up --detach runs each service's pipeline and serves all three",
    async () => {
      const r = await cli(["up", dir, "--detach"]);
      expect(r.code, out(r)).toBe(0);
      expect(r.stdout).toMatch(/all services ready/);
      Object.assign(before, await snapshotAll());
      for (const s of SERVICES) {
        const snap = before[s];
        expect(snap.pids, s).toHaveLength(2);
        expect(snap.runs, s).toHaveLength(1);
        expect(snap.runs[0]!.status).toBe("succeeded");
        expect(snap.runs[0]!.stages.map((x) => x.name)).toEqual(["build", "test", "scan"]);
        expect(snap.live.commit, `${s}'s first release is of the initial commit`).toBe(initial);
        const served = await get(s);
        expect(served).toMatchObject({ service: s, version: `${s}-v1`, release: snap.live.id, path: "/probe" });
        expect(served.built?.version, `${s} runs the build stage's output`).toBe(`${s}-v1`);
        expect(served.shared, `${s} sees shared/config.json only when it includes it`).toEqual(s === "gamma" ? { greeting: "hello-1" } : null);
      }
      // The CLI's JSON says the same as the API the other checks read.
      const rel = await cli(["releases", "beta", "-C", dir, "--json"]);
      expect(rel.code, out(rel)).toBe(0);
      expect((JSON.parse(rel.stdout) as { releases: ReleaseView[] }).releases).toEqual(before.beta.releases);
      const rs = await cli(["runs", "beta", "-C", dir, "--json"]);
      expect(rs.code, out(rs)).toBe(0);
      expect(JSON.parse(rs.stdout)).toEqual(before.beta.runs);
      const st = await cli(["status", dir, "--json"]);
      expect(st.code, out(st)).toBe(0);
      const beta = (JSON.parse(st.stdout) as StatusReport).services.find((x) => x.name === "beta");
      expect(beta?.instances.map((i) => i.pid).sort()).toEqual([...before.beta.pids].sort());
    },
    LONG,
  );

  it(
    "the first `watch --once` only records where watching starts",
    async () => {
      const r = await cli(["watch", "--once", dir]);
      expect(r.code, out(r)).toBe(0);
      expect(r.stdout).toContain(`from ${initial.slice(0, 10)}`);
      expect(r.stdout).not.toMatch(/deploying/);
      expect(await watchState()).toBe(initial);
      const now = await snapshotAll();
      for (const s of SERVICES) expectUntouched(s, before[s], now[s]);

      // Nothing new: a second look deploys nothing either.
      const again = await cli(["watch", "--once", dir]);
      expect(again.code, out(again)).toBe(0);
      expect(again.stdout).not.toMatch(/deploying/);
    },
    LONG,
  );

  it(
    "a commit touching only beta's folder deploys only beta",
    async () => {
      await writeService("beta", "beta-v2");
      const head = await commitAll(dir, "beta: v2");
      const r = await cli(["watch", "--once", dir]);
      expect(r.code, out(r)).toBe(0);
      expect(r.stdout).toMatch(/1 new commit, 1 files changed/);
      expect(r.stdout).toMatch(/deploying beta\n/);
      expect(r.stdout).not.toMatch(/\[(alpha|gamma)\]/);
      expect(await watchState()).toBe(head);

      const now = await snapshotAll();
      await expectDeployedFrom("beta", before.beta, now.beta, head, "watch");
      expectUntouched("alpha", before.alpha, now.alpha);
      expectUntouched("gamma", before.gamma, now.gamma);
      const served = await get("beta");
      expect(served).toMatchObject({ version: "beta-v2", release: now.beta.live.id });
      expect(served.built).toMatchObject({ version: "beta-v2", commit: head, run: now.beta.runs[0]!.run });
      expect((await get("alpha")).version).toBe("alpha-v1");
      expect((await get("gamma")).version).toBe("gamma-v1");
      Object.assign(before, now);
    },
    LONG,
  );

  it(
    "a commit touching a file only gamma includes deploys only gamma",
    async () => {
      await writeFile(join(dir, "shared", "config.json"), `${JSON.stringify({ greeting: "hello-2" })}\n`);
      const head = await commitAll(dir, "shared: hello-2");
      const r = await cli(["watch", "--once", dir]);
      expect(r.code, out(r)).toBe(0);
      expect(r.stdout).toMatch(/deploying gamma\n/);
      expect(r.stdout).not.toMatch(/\[(alpha|beta)\]/);

      const now = await snapshotAll();
      await expectDeployedFrom("gamma", before.gamma, now.gamma, head, "watch");
      expectUntouched("alpha", before.alpha, now.alpha);
      expectUntouched("beta", before.beta, now.beta);
      const served = await get("gamma");
      expect(served).toMatchObject({ version: "gamma-v1", release: now.gamma.live.id, shared: { greeting: "hello-2" } });
      Object.assign(before, now);
    },
    LONG,
  );

  it(
    "a failing test stage blocks alpha's release and alpha keeps serving the old one",
    async () => {
      await writeFile(join(dir, "services", "alpha", "FAIL_TEST"), "make the test stage fail\n");
      await writeService("alpha", "alpha-v2-broken");
      const head = await commitAll(dir, "alpha: v2 with a failing test");

      const r = await cli(["deploy", "alpha", "-C", dir, "--commit", "HEAD"]);
      expect(r.code, out(r)).toBe(1);
      const text = `${r.stdout}\n${r.stderr}`;
      expect(text).toMatch(/stage "test"/);
      expect(text).toContain("no release was made");
      // The test's own last output lines.
      expect(text).toContain("1 test failed:");
      expect(text).toContain("AssertionError: FAIL_TEST marker present in alpha-v2-broken");
      expect(text).not.toMatch(/serves all traffic/);

      const rel = await cli(["releases", "alpha", "-C", dir, "--json"]);
      expect(rel.code, out(rel)).toBe(0);
      const listed = (JSON.parse(rel.stdout) as { releases: ReleaseView[] }).releases;
      expect(listed.filter((x) => x.status === "live").map((x) => x.id), "alpha keeps its live release").toEqual([before.alpha.live.id]);
      expect(listed.filter((x) => x.commit === head), "no release of the failing commit").toEqual([]);

      const now = await snapshotAll();
      expect(now.alpha.live.id, "alpha keeps its live release").toBe(before.alpha.live.id);
      expect(now.alpha.pids).toEqual(before.alpha.pids);
      expect(now.alpha.startedAt).toEqual(before.alpha.startedAt);
      expect(now.alpha.releases.map((x) => x.id), "no release was made").toEqual(before.alpha.releases.map((x) => x.id));
      expect(now.alpha.releases.filter((x) => x.commit === head)).toEqual([]);
      expect(now.alpha.runs).toHaveLength(before.alpha.runs.length + 1);
      const run = now.alpha.runs[0]!;
      expect(run).toMatchObject({ status: "failed", trigger: "deploy", commit: head });
      expect(run.stages.map((s) => [s.name, s.status])).toEqual([
        ["build", "succeeded"],
        ["test", "failed"],
      ]);
      expect(run.message).toMatch(/stage "test"/);
      // The run's stored log has the failing output too.
      const log = await apiFetch(dir, `${controlPlane}/v1/pipelines/${run.run}/log`);
      expect(log.status).toBe(200);
      expect(await log.text()).toContain("AssertionError: FAIL_TEST marker present in alpha-v2-broken");
      failedRun = run.run;
      expect(await get("alpha")).toMatchObject({ version: "alpha-v1", release: before.alpha.live.id });
      expectUntouched("beta", before.beta, now.beta);
      expectUntouched("gamma", before.gamma, now.gamma);
      Object.assign(before, now);
    },
    LONG,
  );

  it(
    "`keelson runs <service> <run>` prints the failed run's log",
    async () => {
      expect(failedRun, "the failing deploy above recorded a run").toBeDefined();
      const log = await cli(["runs", "alpha", failedRun!, "-C", dir]);
      expect(log.code, out(log)).toBe(0);
      expect(log.stdout).toContain('==> stage test: npm test');
      expect(log.stdout).toContain("AssertionError: FAIL_TEST marker present in alpha-v2-broken");
    },
    LONG,
  );

  it(
    "the post-commit hook deploys the service a commit touches",
    async () => {
      // Put alpha back as it was at the last commit watch handled (before the hook is in),
      // so the tree between that commit and the next one watch sees has no alpha change.
      await rm(join(dir, "services", "alpha", "FAIL_TEST"), { force: true });
      await writeService("alpha", "alpha-v1");
      await commitAll(dir, "alpha: revert the broken v2");
      const lastHandled = await watchState();
      const inst = await cli(["hooks", "install", dir]);
      expect(inst.code, out(inst)).toBe(0);
      const hookPath = resolve(dir, await git(dir, ["rev-parse", "--git-path", "hooks/post-commit"]));
      expect(inst.stdout).toContain(hookPath);
      const hook = await readFile(hookPath, "utf8");
      expect(hook).toContain("# keelson-hook: post-commit");
      expect(hook).toMatch(/'watch' '--once'/);
      expect((await stat(hookPath)).mode & 0o111, "the hook is executable").not.toBe(0);

      await writeService("beta", "beta-v3");
      const head = await commitAll(dir, "beta: v3");
      // The hook runs watch in the background; the commit returns at once.
      const live = await waitFor(
        async () => {
          const l = (await releases("beta")).find((x) => x.status === "live");
          return l?.commit === head ? l : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250, what: `beta to go live at ${head} through the hook` },
      );
      // Watch records the commit after its deploys finish: wait for it to be done.
      await waitFor(async () => (await watchState()) === head, { timeoutMs: 60_000, intervalMs: 100, what: "the hook's watch run to finish" });
      const log = await readFile(join(dir, ".keelson", "watch.log"), "utf8");
      // It handled every commit since the last one watch saw (alpha's broken change, its
      // revert and beta's), whose net change touches beta alone.
      expect(lastHandled).not.toBe(head);
      expect(log).toMatch(/3 new commits, 1 files changed/);
      expect(log).toMatch(/deploying beta\n/);
      expect(log).not.toMatch(/\[(alpha|gamma)\]/);

      const now = await snapshotAll();
      expect(now.beta.live.id).toBe(live.id);
      await expectDeployedFrom("beta", before.beta, now.beta, head, "watch");
      expectUntouched("alpha", before.alpha, now.alpha);
      expectUntouched("gamma", before.gamma, now.gamma);
      expect(await get("beta")).toMatchObject({ version: "beta-v3", release: live.id });

      const un = await cli(["hooks", "uninstall", dir]);
      expect(un.code, out(un)).toBe(0);
      expect(un.stdout).toContain("hook removed");
      await expect(stat(hookPath)).rejects.toThrow();
      Object.assign(before, now);
    },
    LONG,
  );

  it(
    "refuses an unknown service, an unknown commit and a second deploy of a service being deployed",
    async () => {
      const nosuch = await cli(["deploy", "nosuch", "-C", dir]);
      expect(nosuch.code, out(nosuch)).toBe(1);
      expect(nosuch.stderr).toMatch(/"nosuch"/);

      const badCommit = await cli(["deploy", "beta", "-C", dir, "--commit", "deadbeef"]);
      expect(badCommit.code, out(badCommit)).toBe(1);
      expect(badCommit.stderr).toMatch(/commit "deadbeef" not found/);
      expectUntouched("beta", before.beta, await snapshot("beta"));

      // A slow test stage keeps beta's pipeline running long enough to try a second deploy.
      await writeFile(join(dir, "services", "beta", "SLOW_TEST"), "sleep in the test stage\n");
      await writeService("beta", "beta-v4");
      const head = await commitAll(dir, "beta: v4 with a slow test");
      const first = cli(["deploy", "beta", "-C", dir]);
      await waitFor(async () => (await runs("beta"))[0]?.status === "running" || undefined, { timeoutMs: 30_000, intervalMs: 100, what: "beta's pipeline to be running" });
      const second = await cli(["deploy", "beta", "-C", dir]);
      expect(second.code, out(second)).toBe(1);
      expect(second.stderr).toMatch(/beta is already running|beta is being deployed/);
      const done = await first;
      expect(done.code, out(done)).toBe(0);
      expect(done.stdout).toMatch(/serves all traffic/);

      const now = await snapshot("beta");
      await expectDeployedFrom("beta", before.beta, now, head, "deploy");
      expect(await get("beta")).toMatchObject({ version: "beta-v4", release: now.live.id });
      const rest = await snapshotAll();
      expectUntouched("alpha", before.alpha, rest.alpha);
      expectUntouched("gamma", before.gamma, rest.gamma);
    },
    LONG,
  );
});
