// Rollouts under load, end to end: the real `keelson` binary rolls, switches (blue-green), rolls
// back and refuses a broken release of a two-replica service while eight keep-alive loops send
// GET / through the gateway the whole time. Not one request may fail, and traffic must end up
// on the release each command says it put there. A second service shows nothing else restarts.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { StatusReport } from "@keelson/protocol";
import { apiFetch, freePort, git, makeTempDir, waitFor } from "#test-support";
import type { ReleaseView, RolloutState } from "../../packages/platform/src/delivery/index.js";
import { keelson, pidAlive, type CliResult } from "../e2e/cli.js";

const TEST_TIMEOUT = 180_000;
const RELEASE_ID = /^r-[0-9a-f]{12}$/;

/** The echo service: answers which release and replica served; VERSION "broken" exits at once. */
function serverSource(version: string): string {
  return `import { createServer } from "node:http";
const VERSION = ${JSON.stringify(version)};
if (VERSION === "broken") {
  console.error("broken on purpose");
  process.exit(1);
}
const server = createServer((req, res) => {
  if (req.url === "/ready") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ready");
    return;
  }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ version: VERSION, release: process.env.KEELSON_RELEASE, replica: process.env.KEELSON_REPLICA }));
});
server.listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`;
}

function manifestText(ports: { cp: number; gw: number; admin: number; mesh: number }, echoDeploy?: string): string {
  return `version: 1
project: rollouts
controlPlane: { host: 127.0.0.1, port: ${ports.cp} }
gateway: { host: 127.0.0.1, port: ${ports.gw}, adminPort: ${ports.admin}, meshPort: ${ports.mesh} }
services:
  echo:
    owner: qa
    path: services/echo
    start: node server.mjs
    replicas: 2
    readiness: /ready
    routes: ["/"]
${echoDeploy ? `    deploy: ${echoDeploy}\n` : ""}  other:
    owner: qa
    path: services/other
    start: node server.mjs
    replicas: 2
    readiness: /ready
    routes: ["/other"]
`;
}


interface Sample {
  /** When the request was sent and its answer read (performance.now()). */
  start: number;
  end: number;
  /** 0 for a network error. */
  status: number;
  release: string | undefined;
  error?: string;
}

const failed = (s: Sample) => s.status < 200 || s.status >= 300;

interface Load {
  samples: Sample[];
  /** Resolves once `n` more answers came in, so a phase starts and ends with traffic flowing. */
  settle(n: number): Promise<void>;
  stop(): Promise<Sample[]>;
}

/** Eight loops of GET `url` over keep-alive connections, bounded by a deadline and a count. */
function startLoad(url: string, options: { concurrency?: number; maxRequests?: number; deadlineMs?: number } = {}): Load {
  const { concurrency = 8, maxRequests = 150_000, deadlineMs = TEST_TIMEOUT } = options;
  const agent = new Agent({ connections: concurrency, keepAliveTimeout: 30_000, headersTimeout: 15_000, bodyTimeout: 15_000 });
  const samples: Sample[] = [];
  const t0 = performance.now();
  let stopped = false;
  const more = () => !stopped && samples.length < maxRequests && performance.now() - t0 < deadlineMs;
  const loop = async () => {
    while (more()) {
      const start = performance.now();
      try {
        const res = await request(url, { dispatcher: agent });
        const text = await res.body.text();
        let release: string | undefined;
        try {
          release = (JSON.parse(text) as { release?: string }).release;
        } catch {}
        samples.push({ start, end: performance.now(), status: res.statusCode, release, ...(res.statusCode >= 300 ? { error: text.slice(0, 300) } : {}) });
      } catch (err) {
        samples.push({ start, end: performance.now(), status: 0, release: undefined, error: String((err as { code?: string }).code ?? err) });
      }
      // A short pause per loop leaves the 2-core machine some CPU for the pipeline being tested.
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, loop));
  let stopping: Promise<Sample[]> | undefined;
  return {
    samples,
    async settle(n) {
      const target = samples.length + n;
      await waitFor(() => samples.length >= target || !more(), { timeoutMs: 15_000, what: `${n} more responses from the gateway` });
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        await done;
        await agent.close();
        return samples;
      })();
      return stopping;
    },
  };
}

/** A command run with its wall-clock window on the same clock as the samples. */
async function timed(args: string[]): Promise<CliResult & { start: number; end: number; output: string }> {
  const start = performance.now();
  const r = await keelson(args, { timeoutMs: TEST_TIMEOUT });
  return { ...r, start, end: performance.now(), output: `exit ${r.code}\n${r.stdout}\n${r.stderr}` };
}

/** Counts by release (or by status for answers without one), for readable assertion failures. */
function byRelease(samples: Sample[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    const key = s.release ?? `status ${s.status}${s.error ? ` ${s.error}` : ""}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/** Failed requests with their time relative to `t0`, for the assertion message. */
function describeFailures(samples: Sample[], t0: number): string {
  const bad = samples.filter(failed);
  return `${bad.length} of ${samples.length} requests failed: ${JSON.stringify(bad.slice(0, 10).map((s) => ({ at: Math.round(s.start - t0), ms: Math.round(s.end - s.start), status: s.status, error: s.error })))}`;
}

describe.sequential("rollouts under load", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let ports: { cp: number; gw: number; admin: number; mesh: number };
  let gatewayUrl: string;
  let controlPlaneUrl: string;
  /** The `other` service's replicas (id → pid), which no deploy of echo may touch. */
  let otherPids: Record<string, number>;
  const releases: { v1?: string; v2?: string; v3?: string } = {};

  async function status(): Promise<StatusReport> {
    const res = await apiFetch(dir, `${controlPlaneUrl}/v1/status`);
    expect(res.status).toBe(200);
    return (await res.json()) as StatusReport;
  }

  async function service(name: string) {
    const s = (await status()).services.find((x) => x.name === name);
    if (!s) throw new Error(`no service ${name} in the status`);
    return s;
  }

  async function pidsOf(name: string): Promise<Record<string, number>> {
    const s = await service(name);
    return Object.fromEntries(s.instances.map((i) => [i.id, i.pid ?? -1]));
  }

  async function releasesJson(): Promise<{ releases: ReleaseView[]; rollout: RolloutState | null }> {
    const r = await keelson(["releases", "echo", "-C", dir, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { releases: ReleaseView[]; rollout: RolloutState | null };
  }

  async function setVersion(version: string): Promise<void> {
    await writeFile(join(dir, "services/echo/server.mjs"), serverSource(version));
    await git(dir, ["commit", "-q", "-am", `echo ${version}`]);
  }

  /** Load for one test: started now, stopped when the test ends even if it fails. */
  async function loadForTest(): Promise<Load> {
    const load = startLoad(`${gatewayUrl}/`);
    onTestFinished(async () => {
      await load.stop();
    });
    await load.settle(100);
    return load;
  }

  async function expectOtherUntouched(): Promise<void> {
    expect(await pidsOf("other")).toEqual(otherPids);
    for (const pid of Object.values(otherPids)) expect(pidAlive(pid)).toBe(true);
  }

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-rollouts-"));
    ports = { cp: await freePort(), gw: await freePort(), admin: await freePort(), mesh: await freePort() };
    gatewayUrl = `http://127.0.0.1:${ports.gw}`;
    controlPlaneUrl = `http://127.0.0.1:${ports.cp}`;
    for (const name of ["echo", "other"]) {
      await mkdir(join(dir, "services", name), { recursive: true });
      await writeFile(join(dir, "services", name, "server.mjs"), serverSource("v1"));
      await writeFile(join(dir, "services", name, "package.json"), `${JSON.stringify({ name, private: true, type: "module", scripts: { test: 'node -e "process.exit(0)"' } }, null, 2)}\n`);
    }
    await writeFile(join(dir, ".gitignore"), ".keelson/\n");
    await writeFile(join(dir, "keelson.yaml"), manifestText(ports));
    await git(dir, ["init", "-q"]);
    await git(dir, ["add", "-A"]);
    await git(dir, ["commit", "-q", "-m", "v1"]);

    const up = await keelson(["up", "-d", dir], { timeoutMs: 120_000 });
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const echo = await service("echo");
    expect(echo.release).toMatch(RELEASE_ID);
    expect(echo.replicas).toEqual({ desired: 2, ready: 2 });
    releases.v1 = echo.release;
    otherPids = await pidsOf("other");
    expect(Object.keys(otherPids)).toHaveLength(2);
  }, 120_000);

  afterAll(async () => {
    if (dir) await keelson(["down", dir]);
    await cleanup?.();
  });

  it("a rolling deploy of a code change loses no request and moves every answer to the new release", async () => {
    const load = await loadForTest();
    await setVersion("v2");
    const deploy = await timed(["deploy", "echo", "-C", dir]);
    await load.settle(200);
    const samples = await load.stop();

    expect(deploy.code, deploy.output).toBe(0);
    const v2 = /release (r-[0-9a-f]{12}) serves all traffic/.exec(deploy.stdout)?.[1];
    expect(v2, deploy.output).toMatch(RELEASE_ID);
    expect(v2).not.toBe(releases.v1);
    releases.v2 = v2;
    expect(deploy.stdout).toContain(`rolling rollout ${releases.v1?.slice(0, 8)}`);

    expect(samples.filter(failed), describeFailures(samples, deploy.start)).toEqual([]);
    expect(byRelease(samples.filter((s) => s.end < deploy.start))).toEqual({ [releases.v1 as string]: expect.any(Number) });
    // The rollout reports success only after the old replicas have left the routing table.
    const after = samples.filter((s) => s.start > deploy.end);
    expect(after.length).toBeGreaterThan(0);
    expect(byRelease(after)).toEqual({ [v2 as string]: after.length });
    expect(Object.keys(byRelease(samples)).sort()).toEqual([releases.v1, v2].sort());

    const echo = await service("echo");
    expect(echo.release).toBe(v2);
    expect(echo.instances.filter((i) => i.state === "ready").map((i) => i.release)).toEqual([v2, v2]);
    await expectOtherUntouched();
  }, TEST_TIMEOUT);

  it("blue-green: all new answers come from the new release while the old set stays warm", async () => {
    const load = await loadForTest();
    const echoPids = await pidsOf("echo");
    // A strategy change is not a new release: `up` re-applies without restarting anything.
    await writeFile(join(dir, "keelson.yaml"), manifestText(ports, "{ strategy: blueGreen, rollbackWindow: 5m }"));
    await git(dir, ["commit", "-q", "-am", "echo: blue-green"]);
    const up = await timed(["up", "-d", dir]);
    expect(up.code, up.output).toBe(0);
    expect(await pidsOf("echo")).toEqual(echoPids);

    await setVersion("v3");
    const deploy = await timed(["deploy", "echo", "-C", dir]);
    const view = await releasesJson();
    const status2 = await service("echo");
    await load.settle(200);
    const samples = await load.stop();

    expect(deploy.code, deploy.output).toBe(0);
    const v3 = /release (r-[0-9a-f]{12}) serves all traffic/.exec(deploy.stdout)?.[1];
    expect(v3, deploy.output).toMatch(RELEASE_ID);
    expect(v3).not.toBe(releases.v2);
    releases.v3 = v3;
    expect(deploy.stdout).toContain(`${releases.v2} stays warm for rollback until`);

    expect(samples.filter(failed), describeFailures(samples, deploy.start)).toEqual([]);
    // Before the switch only the old release answers (the new set gets no traffic while it starts).
    expect(byRelease(samples.filter((s) => s.end < deploy.start))).toEqual({ [releases.v2 as string]: expect.any(Number) });
    const after = samples.filter((s) => s.start > deploy.end);
    expect(after.length).toBeGreaterThan(0);
    expect(byRelease(after)).toEqual({ [v3 as string]: after.length });

    // The old set is still running and ready: a rollback needs no start.
    const live = view.releases.find((r) => r.id === v3);
    const previous = view.releases.find((r) => r.id === releases.v2);
    expect(live).toMatchObject({ status: "live", replicas: 2 });
    expect(previous).toMatchObject({ status: "previous", replicas: 2 });
    expect(view.rollout).toMatchObject({ strategy: "blueGreen", from: releases.v2, to: v3, phase: "switched", weight: 100 });
    const warmFor = Date.parse(view.rollout?.warmUntil ?? "") - Date.now();
    expect(warmFor).toBeGreaterThan(4 * 60_000);
    expect(warmFor).toBeLessThanOrEqual(5 * 60_000);
    const old = status2.instances.filter((i) => i.release === releases.v2);
    expect(old.map((i) => i.state)).toEqual(["ready", "ready"]);
    for (const i of old) expect(pidAlive(i.pid ?? -1)).toBe(true);
    expect(status2.release).toBe(v3);
    await expectOtherUntouched();
  }, TEST_TIMEOUT);

  it("a rollback while the old set is warm moves all traffic back within seconds, losing no request", async () => {
    const { v2, v3 } = releases;
    const warm = (await service("echo")).instances.filter((i) => i.release === v2);
    expect(warm.map((i) => i.state)).toEqual(["ready", "ready"]);
    const load = await loadForTest();
    const rollback = await timed(["rollback", "echo", "-C", dir]);
    await load.settle(200);
    const samples = await load.stop();

    expect(rollback.code, rollback.output).toBe(0);
    expect(rollback.stdout).toContain(`rollback to ${v2} serves all traffic`);
    expect(samples.filter(failed), describeFailures(samples, rollback.start)).toEqual([]);
    const fromRolledBack = samples.filter((s) => s.release === v3);
    expect(fromRolledBack.length).toBeGreaterThan(0);
    const lastFromRolledBack = fromRolledBack.reduce((max, s) => Math.max(max, s.end), 0) - rollback.start;
    // The warm set takes traffic in one routing change (25 ms through the API, docs/benchmarks.md);
    // what remains is the CLI starting, slow on a loaded machine, hence the loose bound.
    expect(lastFromRolledBack).toBeLessThan(15_000);
    const after = samples.filter((s) => s.start > rollback.end);
    expect(after.length).toBeGreaterThan(0);
    expect(byRelease(after)).toEqual({ [v2 as string]: after.length });

    // The warm replicas served at once: none was restarted for the rollback.
    const echo = await service("echo");
    expect(echo.release).toBe(v2);
    const nowV2 = echo.instances.filter((i) => i.release === v2);
    expect(Object.fromEntries(nowV2.map((i) => [i.id, i.pid]))).toEqual(Object.fromEntries(warm.map((i) => [i.id, i.pid])));
    const view = await releasesJson();
    expect(view.rollout).toMatchObject({ strategy: "rollback", from: v3, to: v2 });
    expect(view.releases.find((r) => r.id === v2)).toMatchObject({ status: "live", replicas: 2 });
    expect(view.releases.find((r) => r.id === v3)?.status).toBe("previous");
    await expectOtherUntouched();
  }, TEST_TIMEOUT);

  it("a release that never becomes ready is rolled back automatically while the old one keeps serving", async () => {
    const { v2 } = releases;
    // The rolled-back set from the test before drains away first, so every answer below is v2's.
    await waitFor(async () => (await service("echo")).instances.every((i) => i.release === v2), { timeoutMs: 30_000, what: "only v2 replicas" });
    const servingPids = await pidsOf("echo");
    const load = await loadForTest();
    await setVersion("broken");
    const deploy = await timed(["deploy", "echo", "-C", dir]);
    await load.settle(200);
    const samples = await load.stop();

    expect(deploy.code, deploy.output).toBe(1);
    const broken = /↺ echo: (r-[0-9a-f]{12}) failed and was rolled back; (r-[0-9a-f]{12}) keeps serving/.exec(deploy.stdout);
    expect(broken, deploy.output).not.toBeNull();
    expect(broken?.[2]).toBe(v2);
    expect(deploy.stdout).toContain("exited 3 times before becoming ready");
    expect(deploy.stdout).toContain("broken on purpose");

    expect(samples.filter(failed), describeFailures(samples, deploy.start)).toEqual([]);
    expect(byRelease(samples)).toEqual({ [v2 as string]: samples.length });

    const echo = await service("echo");
    expect(echo.release).toBe(v2);
    // The failed set is stopped; the serving replicas are the same processes as before.
    await waitFor(async () => JSON.stringify(await pidsOf("echo")) === JSON.stringify(servingPids), { timeoutMs: 30_000, what: `echo's replicas to be ${JSON.stringify(servingPids)} again` });
    const view = await releasesJson();
    expect(view.rollout).toMatchObject({ to: broken?.[1], from: v2, phase: "rolled-back" });
    expect(view.releases.find((r) => r.id === broken?.[1])).toMatchObject({ status: "failed", replicas: 0 });
    expect(view.releases.find((r) => r.id === v2)).toMatchObject({ status: "live", replicas: 2 });
    await expectOtherUntouched();
  }, TEST_TIMEOUT);
});
