// Benchmark: deploys and rollbacks under load, with the real `keelson` binary. A two-replica
// node:http service behind the gateway takes GET / from 8 keep-alive loops while it is rolled
// (rolling deploy, cold rollback), switched (blue-green deploy) and switched back (warm
// rollback, through the CLI and through the HTTP API). Per scenario: requests, failures, p99
// over the scenario and while the command ran, and the time from the command's start until
// the last answer from the release being replaced. References from the same run: the CLI's
// start (`keelson --version`), the service's test stage run by hand, a replica started by hand.
// Usage: node bench/deploy.mjs [--runs 3]   (loopback only; every loop is bounded)
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { freePort } from "./shop-copy.mjs";
import { allTrafficOnAfter, keelson, startLoad, statusOf, summarize, writeFixture } from "./rollout-fixture.mjs";

const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;
const median = (xs) => {
  const v = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  return v.length === 0 ? NaN : v[Math.floor(v.length / 2)];
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function must(r, what) {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

async function echoRelease(fx) {
  return (await statusOf(fx)).services.find((s) => s.name === "echo").release;
}

/** Waits until echo runs only `release`'s replicas, so the next scenario starts clean. */
async function settleOn(fx, release, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const echo = (await statusOf(fx)).services.find((s) => s.name === "echo");
    if (echo.instances.length === 2 && echo.instances.every((i) => i.release === release && i.state === "ready")) return;
    if (Date.now() > end) throw new Error(`echo did not settle on ${release}: ${JSON.stringify(echo.instances.map((i) => [i.id, i.state]))}`);
    await sleep(100);
  }
}

/** The rollback through the HTTP API (what a script does, with the token from .keelson/token): POST, read the NDJSON stream to its end. */
async function apiRollback(fx) {
  const start = performance.now();
  const res = await fx.api("/v1/services/echo/rollback", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  const text = await res.text();
  const end = performance.now();
  const last = JSON.parse(text.trim().split("\n").at(-1));
  return { code: res.ok && last.type === "done" && last.result.outcome === "deployed" ? 0 : 1, stdout: text, stderr: "", start, end };
}

/**
 * Runs `command` with the load on: 100 answers before, `after` more once it returned. The
 * switch is measured against `target()` (the release traffic should end up on).
 */
async function scenario(fx, name, command, target) {
  const load = startLoad({ url: `${fx.gatewayUrl}/`, concurrency: 8, maxRequests: 200_000, deadlineMs: 180_000 });
  const from = performance.now();
  await load.settle(100);
  const r = await command();
  await load.settle(300);
  const samples = await load.stop();
  if (r.code !== 0) throw new Error(`${name} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  const release = await target(r);
  const s = summarize(samples, { from, to: Infinity, command: r });
  const pipeline = /built and tested in ([\d.]+) (ms|s)/.exec(r.stdout);
  return {
    scenario: name,
    release,
    ...s,
    commandMs: r.end - r.start,
    pipelineMs: pipeline ? Number(pipeline[1]) * (pipeline[2] === "s" ? 1000 : 1) : undefined,
    toAllTrafficMs: allTrafficOnAfter(samples, release, r.start),
  };
}

async function timeIt(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

function run(cmd, args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}`))));
  });
}

/** Reference: one replica of the service started by hand until its /ready answers. */
async function directStart(dir) {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, ["server.mjs"], { cwd: join(dir, "services/echo"), env: { ...process.env, PORT: String(port) }, stdio: "ignore" });
  try {
    for (let i = 0; i < 1000; i++) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/ready`);
        await res.arrayBuffer();
        if (res.ok) return performance.now() - t0;
      } catch {}
      await sleep(5);
    }
    throw new Error("the direct replica never became ready");
  } finally {
    child.kill("SIGTERM");
  }
}

const dir = await mkdtemp(join(tmpdir(), "keelson-bench-deploy-"));
const results = [];
const refs = { cliStartMs: [], cliStartLoadedMs: [], testStageMs: [], directStartMs: [] };
try {
  const fx = await writeFixture(dir);
  must(await keelson(["up", "-d", dir]), "keelson up");
  // Each deploy commits a new VERSION; after a rollback the working tree goes back to the
  // version now live (same bytes, so the same release), else the next `up` would roll forward.
  let n = 1; // the fixture starts at v1
  let live = "v1";
  const deployNew = async () => {
    live = `v${++n}`;
    await fx.setVersion(live);
    return keelson(["deploy", "echo", "-C", dir]);
  };
  const rollbackTo = (version, rollback) => async () => {
    const r = await rollback();
    live = version;
    await fx.setVersion(version);
    return r;
  };
  const cliRollback = () => keelson(["rollback", "echo", "-C", dir]);
  const releaseFromDeploy = (r) => /release (r-[0-9a-f]{12}) serves all traffic/.exec(r.stdout)?.[1];

  for (let i = 0; i < RUNS; i++) {
    refs.cliStartMs.push(await timeIt(async () => must(await keelson(["--version"]), "keelson --version")));
    refs.testStageMs.push(await timeIt(() => run("npm", ["test", "--silent"], join(dir, "services/echo"))));
    refs.directStartMs.push(await directStart(dir));
    const load = startLoad({ url: `${fx.gatewayUrl}/`, concurrency: 8, maxRequests: 100_000, deadlineMs: 60_000 });
    await load.settle(100);
    refs.cliStartLoadedMs.push(await timeIt(async () => must(await keelson(["--version"]), "keelson --version")));
    await load.stop();

    // Rolling (the default: maxSurge 25% → 1 extra replica, maxUnavailable 0), then a cold rollback.
    const v = live;
    const before = await echoRelease(fx);
    results.push({ run: i, ...(await scenario(fx, "rolling deploy", deployNew, async (r) => releaseFromDeploy(r))) });
    await settleOn(fx, await echoRelease(fx));
    results.push({ run: i, ...(await scenario(fx, "cold rollback (rolling)", rollbackTo(v, cliRollback), async () => before)) });
    await settleOn(fx, before);

    // Blue-green with a 5 minute window, then a warm rollback by the CLI and one by the API.
    await fx.setEchoDeploy("{ strategy: blueGreen, rollbackWindow: 5m }");
    must(await keelson(["up", "-d", dir]), "keelson up (blue-green)");
    if ((await echoRelease(fx)) !== before) throw new Error("switching to blue-green changed the release");
    results.push({ run: i, ...(await scenario(fx, "blue-green deploy", deployNew, async (r) => releaseFromDeploy(r))) });
    results.push({ run: i, ...(await scenario(fx, "warm rollback (CLI)", rollbackTo(v, cliRollback), async () => before)) });
    await settleOn(fx, before);
    must(await deployNew(), "blue-green deploy before the API rollback");
    results.push({ run: i, ...(await scenario(fx, "warm rollback (API)", rollbackTo(v, () => apiRollback(fx)), async () => before)) });
    await settleOn(fx, before);

    await fx.setEchoDeploy(undefined);
    must(await keelson(["up", "-d", dir]), "keelson up (rolling)");
    if ((await echoRelease(fx)) !== before) throw new Error("switching back to rolling changed the release");
    process.stderr.write(`run ${i + 1}/${RUNS} done\n`);
  }
} finally {
  await keelson(["down", dir]);
  await rm(dir, { recursive: true, force: true });
}

const fmtMs = (ms) => (Number.isFinite(ms) ? (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`) : "–");
const scenarios = [...new Set(results.map((r) => r.scenario))];
const rows = scenarios.map((name) => {
  const rs = results.filter((r) => r.scenario === name);
  return {
    scenario: name,
    runs: rs.length,
    requests: median(rs.map((r) => r.requests)),
    failures: rs.reduce((a, r) => a + r.failures, 0),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    switchP99Ms: median(rs.map((r) => r.switchP99Ms)),
    commandMs: median(rs.map((r) => r.commandMs)),
    pipelineMs: median(rs.map((r) => r.pipelineMs)),
    toAllTrafficMs: median(rs.map((r) => r.toAllTrafficMs)),
    toAllTrafficMaxMs: Math.max(...rs.map((r) => r.toAllTrafficMs ?? Infinity)),
  };
});
const ref = Object.fromEntries(Object.entries(refs).map(([k, v]) => [k, median(v)]));

console.log(`deploy benchmark: 2 replicas of a node:http service, 8 keep-alive loops on the gateway, ${RUNS} runs, medians (node ${process.version})`);
console.log(`references: \`keelson --version\` ${fmtMs(ref.cliStartMs)} (${fmtMs(ref.cliStartLoadedMs)} under the same load), \`npm test\` of the service ${fmtMs(ref.testStageMs)}, one replica started by hand to /ready ${fmtMs(ref.directStartMs)}`);
console.log("");
console.log("| scenario | requests | failed (all runs) | p99 | p99 during the command | command | pipeline | to 100% on the target release (max) |");
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.scenario} | ${r.requests} | ${r.failures} | ${fmtMs(r.p99Ms)} | ${fmtMs(r.switchP99Ms)} | ${fmtMs(r.commandMs)} | ${r.pipelineMs === undefined || !Number.isFinite(r.pipelineMs) ? "–" : fmtMs(r.pipelineMs)} | ${fmtMs(r.toAllTrafficMs)} (${fmtMs(r.toAllTrafficMaxMs)}) |`);
}
const failures = results.flatMap((r) => r.failureSamples.map((f) => ({ run: r.run, scenario: r.scenario, status: f.status, error: f.error })));
if (failures.length > 0) console.log(`\nfailed requests (first 5 per scenario): ${JSON.stringify(failures)}`);
console.log(JSON.stringify({ bench: "deploy", runs: RUNS, references: ref, rows, results: results.map((r) => ({ ...r, failureSamples: undefined })) }));
