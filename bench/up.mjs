// Benchmark: `keelson up --detach` of the example shop, already built, to every replica
// ready, beside a reference run that starts the same replicas directly (node + readiness
// polling, no Keelson). Also the idle memory (RSS) of the control plane and the gateway,
// beside an idle bare Node process.
// Usage: node bench/up.mjs [--runs 3]
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ROOT, freePort, writeShopCopy } from "./shop-copy.mjs";

const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;
const BIN = join(ROOT, "packages/platform/bin/keelson.js");
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function keelson(args) {
  return execFileSync(process.execPath, [BIN, ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 180_000 });
}

function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) / 1024;
}

async function waitReady(url, deadlineMs = 30_000) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {}
    if (Date.now() > end) throw new Error(`not ready: ${url}`);
    await sleep(10);
  }
}

/** Reference: start every replica directly and wait for its readiness path. */
async function directStart(services, dataRoot) {
  const procs = [];
  const t0 = performance.now();
  const waits = [];
  for (const s of services) {
    mkdirSync(join(dataRoot, s.name), { recursive: true });
    for (let i = 0; i < s.replicas; i++) {
      const port = await freePort();
      const child = spawn(s.start, {
        cwd: s.path,
        shell: true,
        detached: true,
        stdio: "ignore",
        env: { ...process.env, PORT: String(port), KEELSON_SERVICE: s.name, KEELSON_REPLICA: `${s.name}-${i}`, KEELSON_DATA_DIR: join(dataRoot, s.name), KEELSON_GATEWAY_URL: "http://127.0.0.1:9" },
      });
      procs.push(child);
      waits.push(waitReady(`http://127.0.0.1:${port}/ready`));
    }
  }
  await Promise.all(waits);
  const ms = performance.now() - t0;
  for (const p of procs) process.kill(-p.pid, "SIGTERM");
  await sleep(500);
  return ms;
}

const dir = mkdtempSync(join(tmpdir(), "keelson-bench-up-"));
try {
  const { services } = await writeShopCopy(dir);
  const replicaCount = services.reduce((n, s) => n + s.replicas, 0);
  // Warm-up: builds the releases once, so the measured runs are "already built".
  keelson(["up", dir, "--detach"]);
  keelson(["down", dir]);

  const up = [];
  const direct = [];
  const cpRss = [];
  const gwRss = [];
  for (let i = 0; i < RUNS; i++) {
    direct.push(await directStart(services, join(dir, "direct-data")));
    const t0 = performance.now();
    keelson(["up", dir, "--detach"]);
    up.push(performance.now() - t0);
    await sleep(5000); // idle
    const cp = JSON.parse(readFileSync(join(dir, ".keelson/controlplane.json"), "utf8"));
    const gw = JSON.parse(readFileSync(join(dir, ".keelson/gateway/gateway.pid.json"), "utf8"));
    cpRss.push(rssMiB(cp.pid));
    gwRss.push(rssMiB(gw.pid));
    keelson(["down", dir]);
  }

  const bare = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  await sleep(1500);
  const bareRss = rssMiB(bare.pid);
  bare.kill();

  const r = { runs: RUNS, replicas: replicaCount, upMs: median(up), directMs: median(direct), cpRssMiB: median(cpRss), gwRssMiB: median(gwRss), bareNodeRssMiB: bareRss };
  console.log(`up benchmark: example shop, ${services.length} services / ${replicaCount} replicas, already built, ${RUNS} runs, medians (node ${process.version})`);
  console.log(`  reference: start the replicas directly, wait for /ready   ${r.directMs.toFixed(0)} ms`);
  console.log(`  keelson up --detach (control plane + gateway + replicas) ${r.upMs.toFixed(0)} ms  (${(r.upMs / r.directMs).toFixed(2)}x direct)`);
  console.log(`  idle RSS: control plane ${r.cpRssMiB.toFixed(1)} MiB, gateway ${r.gwRssMiB.toFixed(1)} MiB, bare node ${r.bareNodeRssMiB.toFixed(1)} MiB`);
  console.log(JSON.stringify({ bench: "up", ...r }));
} finally {
  try {
    keelson(["down", dir]);
  } catch {}
  rmSync(dir, { recursive: true, force: true });
}
