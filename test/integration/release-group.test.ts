// Release groups end to end: `keelson deploy alpha beta pay` with the real binary, control plane,
// gateway and service processes. alpha rolls, beta is blue-green and pay is a canary with an
// analysis; light load runs through the gateway the whole time. The three go live together, roll
// back together when pay's analysis fails (alpha and beta never serve their new release), and
// `keelson abort` of a paused member rolls the group back while `keelson rollout --watch` follows.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { KeelsonEvent, StatusReport } from "@keelson/protocol";
import { apiFetch, freePort, git, makeTempDir, runCli, waitFor } from "#test-support";
import type { RolloutState } from "../../packages/platform/src/delivery/index.js";
import { main } from "../../packages/platform/src/cli/index.js";
import { keelson } from "../e2e/cli.js";

const TEST_TIMEOUT = 90_000;
const SERVICES = ["alpha", "beta", "pay"] as const;
type Service = (typeof SERVICES)[number];

/** Answers which release served; a broken one answers 500, but only as a replica (its pipeline's test passes). */
function serverSource(version: string, broken = false): string {
  return `import { createServer } from "node:http";
const VERSION = ${JSON.stringify(version)};
const BROKEN = ${broken};
const server = createServer((req, res) => {
  if (req.url === "/ready") { res.end("ok"); return; }
  res.setHeader("content-type", "application/json");
  if (BROKEN && process.env.KEELSON_REPLICA) {
    res.statusCode = 500;
    res.end(JSON.stringify({ error: "deliberately broken release " + process.env.KEELSON_RELEASE, release: process.env.KEELSON_RELEASE }));
    return;
  }
  res.end(JSON.stringify({ version: VERSION, release: process.env.KEELSON_RELEASE }));
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`;
}

function manifestText(ports: { cp: number; gw: number; admin: number; mesh: number }, options: { manualPause?: boolean } = {}): string {
  const service = (name: Service, replicas: number, deploy: string) => `  ${name}:
    owner: qa
    path: services/${name}
    start: node server.mjs
    replicas: ${replicas}
    readiness: /ready
    routes: [{ path: /${name}, stripPrefix: true }]
    pipeline: { stages: [{ name: test, run: "node -e 0" }] }
    deploy: ${deploy}
`;
  const steps = `[{ setWeight: 25 }, { analysis: {} }${options.manualPause ? ", { pause: manual }" : ""}]`;
  return `version: 1
project: groups
controlPlane: { host: 127.0.0.1, port: ${ports.cp} }
gateway: { host: 127.0.0.1, port: ${ports.gw}, adminPort: ${ports.admin}, meshPort: ${ports.mesh} }
services:
${service("alpha", 2, "{ strategy: rolling, drain: 300ms }")}${service("beta", 1, "{ strategy: blueGreen, drain: 300ms, rollbackWindow: 1s }")}${service(
    "pay",
    2,
    `{ strategy: canary, drain: 300ms, analysis: { interval: 1s, duration: 6s, minRequests: 30, metrics: [errors] }, steps: ${steps} }`,
  )}`;
}

interface Sample {
  /** Wall-clock time of the answer, to line up with the control plane's events. */
  at: number;
  status: number;
  release: string | undefined;
  body: string;
}

const failed = (s: Sample) => s.status < 200 || s.status >= 300;

/** `loops` keep-alive loops of GET `url`, each pausing `pauseMs` between requests; bounded in time. */
function startLoad(url: string, loops: number, pauseMs: number) {
  const agent = new Agent({ connections: loops, keepAliveTimeout: 30_000, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const samples: Sample[] = [];
  const t0 = performance.now();
  let stopped = false;
  const more = () => !stopped && performance.now() - t0 < TEST_TIMEOUT;
  const loop = async () => {
    while (more()) {
      try {
        const res = await request(url, { dispatcher: agent });
        const body = await res.body.text();
        let release: string | undefined;
        try {
          release = (JSON.parse(body) as { release?: string }).release;
        } catch {}
        samples.push({ at: Date.now(), status: res.statusCode, release, body: body.slice(0, 200) });
      } catch (err) {
        samples.push({ at: Date.now(), status: 0, release: undefined, body: String((err as { code?: string }).code ?? err) });
      }
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  const done = Promise.all(Array.from({ length: loops }, loop));
  let stopping: Promise<Sample[]> | undefined;
  return {
    samples,
    async settle(n: number) {
      const target = samples.length + n;
      await waitFor(() => samples.length >= target || !more(), { timeoutMs: 15_000, what: `${n} more answers from ${url}` });
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

/** Counts by release (or by status for answers without one), for readable assertion failures. */
function byRelease(samples: Sample[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    const key = s.release ?? `status ${s.status} ${s.body}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

describe.sequential("release groups: keelson deploy alpha beta pay", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let ports: { cp: number; gw: number; admin: number; mesh: number };
  let controlPlaneUrl: string;
  let gatewayUrl: string;
  /** The releases the three serve after the good deploy. */
  let live: Record<Service, string>;

  async function status(): Promise<StatusReport> {
    const res = await apiFetch(dir, `${controlPlaneUrl}/v1/status`);
    expect(res.status).toBe(200);
    return (await res.json()) as StatusReport;
  }

  async function releases(): Promise<Record<Service, string>> {
    const s = await status();
    return Object.fromEntries(SERVICES.map((name) => [name, s.services.find((x) => x.name === name)?.release as string])) as Record<Service, string>;
  }

  async function rollout(name: Service): Promise<RolloutState> {
    const res = await apiFetch(dir, `${controlPlaneUrl}/v1/services/${name}/rollout`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { rollout: RolloutState }).rollout;
  }

  async function events(kinds: string[]): Promise<KeelsonEvent[]> {
    const res = await apiFetch(dir, `${controlPlaneUrl}/v1/events?kind=${encodeURIComponent(kinds.join(","))}&limit=1000`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { events: KeelsonEvent[] }).events;
  }

  async function setVersions(version: string, options: { brokenPay?: boolean } = {}): Promise<void> {
    for (const name of SERVICES) await writeFile(join(dir, "services", name, "server.mjs"), serverSource(version, name === "pay" && options.brokenPay === true));
    await git(dir, ["commit", "-q", "-am", version]);
  }

  /** Light load on alpha and beta, enough on pay for its analysis; stopped when the test ends. */
  async function loadForTest() {
    const loads = { alpha: startLoad(`${gatewayUrl}/alpha/`, 2, 20), beta: startLoad(`${gatewayUrl}/beta/`, 2, 20), pay: startLoad(`${gatewayUrl}/pay/`, 4, 5) };
    onTestFinished(async () => void (await Promise.all(Object.values(loads).map((l) => l.stop()))));
    await Promise.all(Object.values(loads).map((l) => l.settle(20)));
    return loads;
  }

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-groups-"));
    ports = { cp: await freePort(), gw: await freePort(), admin: await freePort(), mesh: await freePort() };
    controlPlaneUrl = `http://127.0.0.1:${ports.cp}`;
    gatewayUrl = `http://127.0.0.1:${ports.gw}`;
    for (const name of SERVICES) {
      await mkdir(join(dir, "services", name), { recursive: true });
      await writeFile(join(dir, "services", name, "server.mjs"), serverSource("v1"));
      await writeFile(join(dir, "services", name, "package.json"), `${JSON.stringify({ name, private: true, type: "module" }, null, 2)}\n`);
    }
    await writeFile(join(dir, ".gitignore"), ".keelson/\n");
    await writeFile(join(dir, "keelson.yaml"), manifestText(ports));
    await git(dir, ["init", "-q"]);
    await git(dir, ["add", "-A"]);
    await git(dir, ["commit", "-q", "-m", "v1"]);
    const up = await keelson(["up", "-d", dir], { timeoutMs: 60_000 });
    expect(up.code, up.stdout + up.stderr).toBe(0);
  }, 70_000);

  afterAll(async () => {
    if (dir) await keelson(["down", dir]);
    await cleanup?.();
  });

  it("the three go live together: alpha and beta take traffic on their new releases only after pay's analysis passed", async () => {
    const before = await releases();
    const loads = await loadForTest();
    await setVersions("v2");
    const deploy = await keelson(["deploy", "alpha", "beta", "pay", "-C", dir], { timeoutMs: TEST_TIMEOUT });
    await Promise.all(Object.values(loads).map((l) => l.settle(50)));
    const samples = { alpha: await loads.alpha.stop(), beta: await loads.beta.stop(), pay: await loads.pay.stop() };

    expect(deploy.code, deploy.stdout + deploy.stderr).toBe(0);
    expect(deploy.stdout).toContain("(one release group)");
    live = await releases();
    for (const name of SERVICES) {
      expect(live[name]).not.toBe(before[name]);
      expect(deploy.stdout).toContain(`${name}: release ${live[name]} serves all traffic`);
      expect(samples[name].filter(failed), `${name}: ${JSON.stringify(byRelease(samples[name]))}`).toEqual([]);
    }
    const states = { alpha: await rollout("alpha"), beta: await rollout("beta"), pay: await rollout("pay") };
    const group = states.pay.group?.id;
    expect(group).toMatch(/^grp-[0-9a-f]+$/);
    for (const name of SERVICES) expect(states[name]).toMatchObject({ to: live[name], from: before[name], group: { id: group, members: ["alpha", "beta", "pay"] } });
    expect(states.alpha).toMatchObject({ strategy: "rolling", hold: "switch" });
    expect(states.pay.analyses?.map((a) => a.phase)).toEqual(["Successful"]);

    // The gate: pay's analysis passed before alpha or beta answered from their new release.
    const [passed] = (await events(["rollout.analysis"])).filter((e) => e.subject === "service/pay" && e.details.rollout === states.pay.id && e.details.phase === "Successful");
    expect(passed).toBeDefined();
    const gateAt = Date.parse(passed!.at);
    for (const name of ["alpha", "beta"] as const) {
      const fresh = samples[name].filter((s) => s.release === live[name]);
      expect(fresh.length, `${name}: ${JSON.stringify(byRelease(samples[name]))}`).toBeGreaterThan(0);
      expect(Math.min(...fresh.map((s) => s.at))).toBeGreaterThanOrEqual(gateAt);
      expect(new Set(samples[name].map((s) => s.release))).toEqual(new Set([before[name], live[name]]));
    }
    // Both switched their traffic in one routing change each, after the gate.
    const switches = (await events(["rollout.step"])).filter((e) => e.details.action === "switch" && (e.details.rollout === states.alpha.id || e.details.rollout === states.beta.id));
    expect(switches.map((e) => e.subject).sort()).toEqual(["service/alpha", "service/beta"]);
    for (const e of switches) expect(Date.parse(e.at)).toBeGreaterThanOrEqual(gateAt);
  }, TEST_TIMEOUT);

  it("pay's broken canary fails its analysis and all three roll back together; alpha and beta never serve their new release", async () => {
    const loads = await loadForTest();
    await setVersions("v3", { brokenPay: true });
    const deploy = await keelson(["deploy", "alpha", "beta", "pay", "-C", dir], { timeoutMs: TEST_TIMEOUT });
    await Promise.all(Object.values(loads).map((l) => l.settle(50)));
    const samples = { alpha: await loads.alpha.stop(), beta: await loads.beta.stop(), pay: await loads.pay.stop() };

    expect(deploy.code, deploy.stdout).toBe(1);
    const output = deploy.stdout;
    expect(output).toMatch(/services\.pay: canary analysis failed: error ratio: canary/);
    expect(output).toMatch(new RegExp(`↺ pay: r-[0-9a-f]{12} failed and was rolled back; ${live.pay} keeps serving`));
    for (const name of ["alpha", "beta"] as const) {
      expect(output).toMatch(new RegExp(`services\\.${name}: rolled back with its release group grp-[0-9a-f]+: pay failed \\(canary analysis failed`));
      expect(output).toMatch(new RegExp(`↺ ${name}: r-[0-9a-f]{12} failed and was rolled back; ${live[name]} keeps serving`));
    }
    expect(await releases()).toEqual(live);

    // The events tell the story: pay failed its analysis, the other two were rolled back with the group.
    const states = { alpha: await rollout("alpha"), beta: await rollout("beta"), pay: await rollout("pay") };
    const group = states.pay.group?.id;
    const failures = (await events(["rollout.failed"])).filter((e) => SERVICES.some((name) => e.details.rollout === states[name].id));
    const why = Object.fromEntries(failures.map((e) => [e.subject, e.details]));
    expect(why["service/pay"]).toMatchObject({ rolledBackTo: live.pay, analysis: { phase: "Failed" } });
    for (const name of ["alpha", "beta"] as const) {
      expect(states[name]).toMatchObject({ phase: "rolled-back", group: { id: group } });
      expect(states[name].servedAt).toBeUndefined();
      expect(why[`service/${name}`]).toMatchObject({ rolledBackTo: live[name], why: expect.stringMatching(new RegExp(`^rolled back with its release group ${group}: pay failed \\(canary analysis failed`)) });
    }

    // alpha and beta: nothing failed and every answer came from the release they had before.
    for (const name of ["alpha", "beta"] as const) {
      expect(samples[name].filter(failed)).toEqual([]);
      expect(byRelease(samples[name])).toEqual({ [live[name]]: samples[name].length });
    }
    // pay: only its canary failed requests.
    const bad = samples.pay.filter(failed);
    expect(bad.length).toBeGreaterThan(0);
    for (const s of bad) expect(s.body).toContain(`deliberately broken release ${states.pay.to}`);
    // After the rollback only the old replicas run: the canary's, the baseline's and the held sets are gone.
    await waitFor(
      async () => {
        const s = await status();
        return SERVICES.every((name) => s.services.find((x) => x.name === name)?.instances.every((i) => i.release === live[name]));
      },
      { timeoutMs: 20_000, what: "only the old releases' replicas" },
    );
  }, TEST_TIMEOUT);

  it("keelson abort of the paused canary rolls the group back and puts pay's traffic back on its stable release; rollout --watch follows", async () => {
    // The live releases' sources again (the same release ids), with a manual pause after pay's
    // analysis: deploy settings are not part of a release, so `up` starts no rollout.
    await writeFile(join(dir, "keelson.yaml"), manifestText(ports, { manualPause: true }));
    await setVersions("v2");
    const up = await keelson(["up", "-d", dir], { timeoutMs: 60_000 });
    expect(up.code, up.stdout + up.stderr).toBe(0);
    expect(await releases()).toEqual(live);

    const loads = await loadForTest();
    await setVersions("v4");
    const deploying = keelson(["deploy", "alpha", "beta", "pay", "-C", dir], { timeoutMs: TEST_TIMEOUT });
    // Follow pay's rollout from its start.
    const started = await waitFor(async () => {
      const r = await rollout("pay");
      return r.to !== live.pay && r.phase === "progressing" ? r : undefined;
    }, { timeoutMs: 30_000, what: "pay's new rollout to start" });
    // In this process: the binary's start-up can take seconds on a busy machine, longer than the analysis.
    const watching = runCli(main, ["rollout", "pay", "--watch", "-C", dir]);

    const deploy = await deploying;
    expect(deploy.code, deploy.stdout + deploy.stderr).toBe(0);
    expect(deploy.stdout).toMatch(new RegExp(`‖ pay: ${started.to} takes 25% of traffic; rollout ${started.id} waits at step 3 for \`keelson promote pay\``));
    for (const name of ["alpha", "beta"] as const) expect(deploy.stdout).toMatch(new RegExp(`‖ ${name}: r-[0-9a-f]{12} is ready and takes 0% of traffic; rollout ro-[0-9a-f]+ waits for its release group`));

    const abort = await keelson(["abort", "pay", "-C", dir]);
    const abortedAt = Date.now();
    expect(abort.code, abort.stdout + abort.stderr).toBe(0);
    expect(abort.stdout).toContain(`pay: rollout ${started.id} aborted; ${live.pay} takes all traffic again`);
    // The watch showed the analysis while it ran, and ends with the rollout, showing how it ended.
    const watched = await watching;
    expect(watched.code, watched.err).toBe(0);
    expect(watched.out).toMatch(/step 2: analysis Running/);
    expect(watched.out).toMatch(/step 2: analysis Successful/);
    const last = watched.out.slice(watched.out.lastIndexOf("pay: rollout"));
    expect(last).toMatch(new RegExp(`^pay: rollout ${started.id} \\(canary\\) ${live.pay} → ${started.to}: rolled-back`));
    expect(last).toContain("aborted by user:admin");

    expect(await rollout("pay")).toMatchObject({ id: started.id, phase: "rolled-back", message: "aborted by user:admin" });
    for (const name of ["alpha", "beta"] as const) {
      await waitFor(async () => (await rollout(name)).phase === "rolled-back", { what: `${name} rolled back with its group` });
      expect((await rollout(name)).message).toMatch(/^rolled back with its release group grp-[0-9a-f]+: pay failed \(aborted by user:admin\)$/);
    }
    expect(await releases()).toEqual(live);

    await Promise.all(Object.values(loads).map((l) => l.settle(100)));
    const samples = { alpha: await loads.alpha.stop(), beta: await loads.beta.stop(), pay: await loads.pay.stop() };
    for (const name of SERVICES) expect(samples[name].filter(failed), `${name}: ${JSON.stringify(byRelease(samples[name]))}`).toEqual([]);
    // pay served its canary before the abort, only its stable release after it; alpha and beta never left theirs.
    expect(samples.pay.some((s) => s.release === started.to)).toBe(true);
    const after = samples.pay.filter((s) => s.at > abortedAt + 1000);
    expect(after.length).toBeGreaterThan(0);
    expect(byRelease(after)).toEqual({ [live.pay]: after.length });
    for (const name of ["alpha", "beta"] as const) expect(byRelease(samples[name])).toEqual({ [live[name]]: samples[name].length });
  }, TEST_TIMEOUT);
});
