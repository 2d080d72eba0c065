// Gateway benchmark: wrk against a trivial node:http upstream, directly and through nginx, the
// keelson gateway (1 and N workers), @fastify/http-proxy and a bare undici Pool.stream proxy, side
// by side in one run, wrk pinned to core 0 and upstream + proxy to core 1. Ratios, not absolutes.
// Usage: node bench/gateway/run.mjs [--duration 10] [--runs 3] [--workers N] [--quick] [--only keelson,undici] [--profile]
//        [--tracing]: also the keelson gateway (1 worker) with tracing on, exporting to a sink, vs off.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdtempSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, cpus, loadavg, release, totalmem, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const ROOT = join(import.meta.dirname, "../..");
const SERVERS = join(import.meta.dirname, "servers.mjs");
const RESULTS = join(ROOT, "bench/results");

const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const QUICK = flag("quick");
const DURATION_S = option("duration", QUICK ? 4 : 10);
const RUNS = option("runs", QUICK ? 1 : 3);
const WARMUP_S = 3;
const CONNS = [1, 50];
const CPU_COUNT = availableParallelism();
const WORKERS = option("workers", Math.max(2, CPU_COUNT));
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

// --- preflight -----------------------------------------------------------------------------

function has(cmd, versionArgs) {
  const r = spawnSync(cmd, versionArgs, { encoding: "utf8" });
  return r.error === undefined ? `${r.stdout}${r.stderr}`.trim().split("\n")[0] : undefined;
}
const wrkVersion = has("wrk", ["-v"]);
const nginxVersion = has("nginx", ["-v"]);
const tasksetOk = has("taskset", ["-V"]) !== undefined;
if (wrkVersion === undefined || nginxVersion === undefined) {
  const missing = [wrkVersion === undefined ? "wrk" : "", nginxVersion === undefined ? "nginx" : ""].filter(Boolean).join(" and ");
  console.error(`${missing} not found. Install them (Debian/Ubuntu): sudo apt-get update && sudo apt-get install -y wrk nginx`);
  process.exit(1);
}
if (!existsSync(join(ROOT, "packages/platform/dist/gateway/index.js"))) {
  console.error("the platform is not built; run `npm run build` first (or `npm run bench:gateway`, which builds)");
  process.exit(1);
}
// Pinning needs two cores: wrk on 0, upstream and proxy on 1.
const PIN = tasksetOk && CPU_COUNT >= 2;
if (!PIN) console.warn(`warning: ${tasksetOk ? `only ${CPU_COUNT} CPU` : "taskset missing (util-linux)"}; running unpinned, figures are not comparable with pinned runs`);
const pinned = (cores, cmd, cmdArgs) => (PIN ? ["taskset", ["-c", cores, cmd, ...cmdArgs]] : [cmd, cmdArgs]);

// --- processes ---------------------------------------------------------------------------

/** Every process this script started, stopped by pid in reverse order at the end. */
const started = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts a process (taskset execs it, so the pid is the program's) and waits for `ready()`. */
async function startProcess(name, cores, cmd, cmdArgs, ready, env = {}) {
  const [file, argv] = pinned(cores, cmd, cmdArgs);
  const child = spawn(file, argv, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  const proc = { name, child, pid: child.pid, cores, output: "", exited: false };
  child.stdout.on("data", (d) => (proc.output += d));
  child.stderr.on("data", (d) => (proc.output += d));
  proc.exit = new Promise((r) => child.once("exit", (code, signal) => r((proc.exited = true, { code, signal }))));
  started.push(proc);
  const deadline = Date.now() + 30_000;
  while (!(await ready(proc))) {
    if (proc.exited || Date.now() > deadline) throw new Error(`${name} did not start: ${proc.output.slice(-2000)}`);
    await sleep(50);
  }
  return proc;
}

const printedReady = (proc) => proc.output.includes("READY ");

async function answers(url) {
  try {
    const res = await fetch(url);
    return res.status === 200 && (await res.text()) === "hello";
  } catch {
    return false;
  }
}

async function stopProcess(proc, signal = "SIGTERM") {
  if (proc.exited) return;
  try {
    process.kill(proc.pid, signal);
  } catch {}
  const late = setTimeout(() => {
    try {
      process.kill(proc.pid, "SIGKILL");
    } catch {}
  }, 15_000);
  await proc.exit;
  clearTimeout(late);
}

async function stopAll() {
  while (started.length > 0) {
    const proc = started.pop();
    await stopProcess(proc, proc.stopSignal);
  }
}

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping what the benchmark started`);
    void stopAll().then(() => process.exit(130));
  });
}

/** `pid` and all its descendants (a primary and its workers, nginx's master and worker). */
function tree(pid) {
  const parent = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {}
  }
  return [...parent.keys()].filter((p) => {
    for (let q = p; q !== undefined && q > 1; q = parent.get(q)) if (q === pid) return true;
    return false;
  });
}

/** Resident memory (MiB) of `pid` and its descendants. */
function treeRssMiB(pid) {
  let kib = 0;
  for (const p of tree(pid)) {
    try {
      kib += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1] ?? 0);
    } catch {}
  }
  return kib / 1024;
}

/** utime + stime (clock ticks) of `pid` and all its descendants. */
function treeTicks(pid) {
  let ticks = 0;
  for (const p of tree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      // Fields after the command name, which may itself hold spaces and parentheses.
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {}
  }
  return ticks;
}

// --- wrk ---------------------------------------------------------------------------------

function parseDuration(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (m === null) return Number.NaN;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2]];
}

/** Runs wrk for `seconds` at `conns` connections; latencies in ms. */
async function wrk(url, conns, seconds) {
  const [file, argv] = pinned("0", "wrk", ["-t1", `-c${conns}`, `-d${seconds}s`, "--latency", url]);
  const child = spawn(file, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const kill = setTimeout(() => child.kill("SIGKILL"), (seconds + 15) * 1000);
  const code = await new Promise((r) => child.once("exit", r));
  clearTimeout(kill);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = parseDuration(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? "");
  const p99 = parseDuration(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? "");
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock === null ? 0 : sock.slice(1).reduce((n, x) => n + Number(x), 0));
  if (code !== 0 || !Number.isFinite(requests)) throw new Error(`wrk failed (${code}): ${out}`);
  return { requests, rps, p50, p99, errors };
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// --- setups --------------------------------------------------------------------------------

const tmp = mkdtempSync(join(tmpdir(), "keelson-bench-gateway-"));
const nodeServer = (name, cores, serverArgs, extraNodeArgs = []) => startProcess(name, cores, process.execPath, [...extraNodeArgs, SERVERS, ...serverArgs], printedReady);

async function startUpstream() {
  const port = await freePort();
  const proc = await nodeServer("upstream", "1", ["upstream", String(port)]);
  return { proc, url: `http://127.0.0.1:${port}` };
}

async function startNginx(upstreamUrl) {
  const dir = join(tmp, "nginx");
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = join(dir, "nginx.conf");
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  upstream backend {
    server ${new URL(upstreamUrl).host};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  const url = `http://127.0.0.1:${port}/`;
  const proc = await startProcess("nginx", "1", "nginx", ["-p", dir, "-c", conf, "-e", join(dir, "error.log")], () => answers(url));
  // SIGQUIT: graceful stop of the master (by its pid) and its worker.
  proc.stopSignal = "SIGQUIT";
  return { proc, url, cores: "1" };
}

async function startNodeProxy(kind, upstreamUrl, cores = "1", workers = 1, extraNodeArgs = [], tracesUrl = undefined) {
  const port = await freePort();
  let serverArgs;
  if (kind === "keelson") {
    const stateDir = join(tmp, `keelson-${workers}-${cores}${tracesUrl === undefined ? "" : "-traced"}`);
    mkdirSync(stateDir, { recursive: true });
    serverArgs = ["keelson", String(port), String(await freePort()), stateDir, upstreamUrl, String(workers), ...(tracesUrl === undefined ? [] : [tracesUrl])];
  } else {
    serverArgs = [kind, String(port), upstreamUrl];
  }
  const proc = await nodeServer(`${kind}${workers > 1 ? `x${workers}` : ""}${tracesUrl === undefined ? "" : "-traced"}`, cores, serverArgs, extraNodeArgs);
  const url = `http://127.0.0.1:${port}/`;
  if (!(await answers(url))) throw new Error(`${kind} does not proxy: ${proc.output}`);
  return { proc, url, cores };
}

// --- profile mode ----------------------------------------------------------------------------

/** Self and inclusive time per function and self time per file from a .cpuprofile, busy time only. */
function analyzeProfile(file) {
  const profile = JSON.parse(readFileSync(file, "utf8"));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const where = (n) => {
    const u = n.callFrame.url.replace(/^file:\/\//, "").replace(`${ROOT}/`, "");
    return u === "" ? "(native)" : u;
  };
  const fnKey = (n) => `${where(n)}:${n.callFrame.functionName || "(anonymous)"}:${n.callFrame.lineNumber + 1}`;
  const self = new Map();
  const inclusive = new Map();
  const byFile = new Map();
  let busy = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const n = nodes.get(id);
    if (n.callFrame.functionName === "(idle)") {
      idle += dt;
      return;
    }
    busy += dt;
    self.set(fnKey(n), (self.get(fnKey(n)) ?? 0) + dt);
    byFile.set(where(n), (byFile.get(where(n)) ?? 0) + dt);
    const seen = new Set();
    for (let q = id; q !== undefined; q = parent.get(q)) {
      const k = fnKey(nodes.get(q));
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
  });
  const top = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => ({ where: k, sharePct: Number(((100 * v) / busy).toFixed(1)) }));
  const byCategory = new Map();
  for (const [k, v] of self) {
    const c = category(k);
    byCategory.set(c, (byCategory.get(c) ?? 0) + v);
  }
  const ours = new Map([...byFile].filter(([f]) => f.includes("packages/platform/dist/gateway/")));
  return { busyMs: busy / 1000, idleMs: idle / 1000, byCategory: top(byCategory, 20), ourFiles: top(ours, 40), topSelf: top(self, 30), topFiles: top(byFile, 25), topInclusive: top(inclusive, 60) };
}

/** Who a function belongs to, for "what costs what". */
function category(key) {
  if (key.includes("packages/platform/dist/gateway/")) return "keelson gateway (packages/platform/dist/gateway)";
  if (key.startsWith("bench/gateway/")) return "the pass-through's own handler (bench/gateway/servers.mjs)";
  if (key.includes("node_modules/undici/") || key.startsWith("wasm://")) return "undici (incl. its wasm HTTP parser)";
  if (key.includes("node_modules/prom-client/") || key.includes("node_modules/tdigest") || key.includes("node_modules/bintrees")) return "prom-client";
  if (key.includes("node_modules/pino") || key.includes("node_modules/sonic-boom")) return "pino";
  if (key.startsWith("node:_http_")) return "node:http (server, outgoing, parser glue)";
  if (key.startsWith("node:net") || key.includes("stream") || key.startsWith("node:events") || key.startsWith("node:buffer")) return "node net/streams/events";
  if (key.startsWith("node:internal/process/task_queues") || key.includes("timers")) return "node ticks and timers";
  if (key.startsWith("node:internal/modules") || key.startsWith("node:internal/bootstrap")) return "module loading (startup)";
  if (key.startsWith("node:buffer") || key.startsWith("node:internal/buffer")) return "node buffers (header bytes to strings)";
  if (key.startsWith("node:internal/crypto")) return "node crypto (request ids)";
  if (key.startsWith("(native):(garbage collector)")) return "GC";
  if (key.startsWith("(native):(program)")) return "(program): V8/libuv outside JS";
  if (key.startsWith("(native):")) return "native: syscalls and C++ bindings (writev, writeLatin1String, ...)";
  return "other";
}

/**
 * Profiles the keelson gateway (1 worker) and the bare undici pass-through under the same load
 * and prints, per category, the CPU each spends per request: what keelson adds over the floor.
 */
async function profileRun() {
  const profDir = join(RESULTS, `gateway-profile-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  const upstream = await startUpstream();
  const runs = {};
  for (const kind of ["keelson", "undici"]) {
    const dir = join(profDir, kind);
    mkdirSync(dir, { recursive: true });
    const proxy = await startNodeProxy(kind, upstream.url, "1", 1, ["--cpu-prof", `--cpu-prof-dir=${dir}`]);
    const warm = await wrk(proxy.url, 50, WARMUP_S);
    const r = await wrk(proxy.url, 50, DURATION_S);
    await stopProcess(proxy.proc);
    const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
    if (file === undefined) throw new Error(`no profile written in ${dir}`);
    runs[kind] = { rps: r.rps, requests: warm.requests + r.requests, file: join(dir, file), ...analyzeProfile(join(dir, file)) };
    writeFileSync(join(dir, "analysis.json"), `${JSON.stringify(runs[kind], null, 2)}\n`);
  }
  // µs of busy CPU per request in each category, module loading at startup left out.
  const perRequest = (run) => {
    const m = new Map();
    for (const c of run.byCategory) if (!c.where.startsWith("module loading")) m.set(c.where, (c.sharePct / 100) * run.busyMs * 1000 / run.requests);
    return m;
  };
  const k = perRequest(runs.keelson);
  const u = perRequest(runs.undici);
  const total = (m) => [...m.values()].reduce((a, b) => a + b, 0);
  console.log(`profiles of 1 process each, wrk 50 connections, ${WARMUP_S} s warm-up + ${DURATION_S} s (pinned as in the comparison):`);
  console.log(`  keelson ${runs.keelson.rps.toFixed(0)} req/s (${runs.keelson.file})`);
  console.log(`  undici  ${runs.undici.rps.toFixed(0)} req/s (${runs.undici.file})`);
  console.log("\nCPU µs per request by category (profiler busy time / requests served):");
  console.log(`  ${"category".padEnd(68)} ${"keelson".padStart(8)} ${"undici".padStart(8)} ${"added".padStart(8)}`);
  const cats = [...new Set([...k.keys(), ...u.keys()])].sort((a, b) => (k.get(b) ?? 0) - (u.get(b) ?? 0) - ((k.get(a) ?? 0) - (u.get(a) ?? 0)));
  for (const c of cats) console.log(`  ${c.padEnd(68)} ${(k.get(c) ?? 0).toFixed(1).padStart(8)} ${(u.get(c) ?? 0).toFixed(1).padStart(8)} ${((k.get(c) ?? 0) - (u.get(c) ?? 0)).toFixed(1).padStart(8)}`);
  console.log(`  ${"total".padEnd(68)} ${total(k).toFixed(1).padStart(8)} ${total(u).toFixed(1).padStart(8)} ${(total(k) - total(u)).toFixed(1).padStart(8)}`);
  console.log("\nkeelson: self time in the gateway's own files (% of busy time):");
  for (const x of runs.keelson.ourFiles) console.log(`  ${x.sharePct.toFixed(1).padStart(5)}%  ${x.where}`);
  console.log("\nkeelson: self time by function (% of busy time):");
  for (const x of runs.keelson.topSelf) console.log(`  ${x.sharePct.toFixed(1).padStart(5)}%  ${x.where}`);
  console.log("\nkeelson: inclusive time of the gateway's functions (% of busy time):");
  for (const x of runs.keelson.topInclusive.filter((f) => f.where.includes("packages/platform/dist/gateway/"))) console.log(`  ${x.sharePct.toFixed(1).padStart(5)}%  ${x.where}`);
  console.log("\nundici pass-through: self time by function (% of busy time):");
  for (const x of runs.undici.topSelf.slice(0, 15)) console.log(`  ${x.sharePct.toFixed(1).padStart(5)}%  ${x.where}`);
}

// --- comparison ----------------------------------------------------------------------------

async function compare() {
  const loadBefore = loadavg()[0];
  // Other work on the machine shows up as noise in every figure; say so rather than hide it.
  if (loadBefore > 0.5) console.warn(`warning: load average ${loadBefore.toFixed(2)} before the run: the machine is busy, expect noise`);
  const upstream = await startUpstream();
  const setups = [
    { key: "direct", label: "direct to the node:http upstream", start: async () => ({ url: `${upstream.url}/`, cores: "1", proc: undefined }) },
    { key: "nginx", label: "nginx, 1 worker, upstream keepalive", start: () => startNginx(upstream.url) },
    { key: "keelson", label: "keelson gateway, 1 worker", start: () => startNodeProxy("keelson", upstream.url) },
    { key: "fastify", label: "@fastify/http-proxy (fastify 5)", start: () => startNodeProxy("fastify", upstream.url) },
    { key: "undici", label: "undici 7 Pool.stream pass-through", start: () => startNodeProxy("undici", upstream.url) },
    { key: "keelsonN", label: `keelson gateway, ${WORKERS} workers`, start: () => startNodeProxy("keelson", upstream.url, PIN ? "0,1" : "all", WORKERS) },
    { key: "keelsonN1", label: `keelson gateway, ${WORKERS} workers on one core`, start: () => startNodeProxy("keelson", upstream.url, "1", WORKERS) },
  ];
  if (flag("tracing")) {
    // The sink shares core 0 with wrk: it takes about one request a second per gateway.
    const sinkPort = await freePort();
    await nodeServer("otlp-sink", "0", ["otlp-sink", String(sinkPort)]);
    const tracesUrl = `http://127.0.0.1:${sinkPort}/v1/traces`;
    setups.push({ key: "keelsonTraced", label: "keelson gateway, 1 worker, tracing on", start: () => startNodeProxy("keelson", upstream.url, "1", 1, [], tracesUrl) });
  }
  // --only a,b measures a subset (for looking into one thing; the targets need the full set).
  const only = args.includes("--only") ? new Set(["direct", ...args[args.indexOf("--only") + 1].split(",")]) : undefined;
  const targets = [];
  for (const s of setups) if (only === undefined || only.has(s.key)) targets.push({ key: s.key, label: s.label, ...(await s.start()) });
  for (const t of targets) await wrk(t.url, 50, WARMUP_S);

  const samples = new Map(targets.map((t) => [t.key, Object.fromEntries(CONNS.map((c) => [c, []]))]));
  const total = RUNS * targets.length * CONNS.length;
  let done = 0;
  // Rounds interleave the proxies, so drift on a shared machine hits all of them alike.
  for (let run = 0; run < RUNS; run++) {
    for (const t of targets) {
      for (const conns of CONNS) {
        const before = t.proc === undefined ? 0 : treeTicks(t.proc.pid);
        const upBefore = treeTicks(upstream.proc.pid);
        const r = await wrk(t.url, conns, DURATION_S);
        const cpuUs = t.proc === undefined ? Number.NaN : (((treeTicks(t.proc.pid) - before) / CLK_TCK) * 1e6) / r.requests;
        const upstreamCpuUs = (((treeTicks(upstream.proc.pid) - upBefore) / CLK_TCK) * 1e6) / r.requests;
        samples.get(t.key)[conns].push({ ...r, cpuUs, upstreamCpuUs });
        process.stderr.write(`\r${++done}/${total} runs`);
      }
    }
  }
  process.stderr.write("\n");
  const rss = new Map(targets.map((t) => [t.key, t.proc === undefined ? treeRssMiB(upstream.proc.pid) : treeRssMiB(t.proc.pid)]));

  const results = {};
  for (const t of targets) {
    const m = {};
    for (const conns of CONNS) {
      const s = samples.get(t.key)[conns];
      m[conns] = {
        rps: median(s.map((x) => x.rps)),
        p50Ms: median(s.map((x) => x.p50)),
        p99Ms: median(s.map((x) => x.p99)),
        cpuUsPerReq: median(s.map((x) => x.cpuUs)),
        upstreamCpuUsPerReq: median(s.map((x) => x.upstreamCpuUs)),
        errors: s.reduce((n, x) => n + x.errors, 0),
      };
    }
    results[t.key] = { label: t.label, cores: t.cores, processes: t.proc === undefined ? 1 : tree(t.proc.pid).length, rssMiB: Number(rss.get(t.key).toFixed(1)), c1: m[1], c50: m[50] };
  }
  const d = results.direct;
  for (const r of Object.values(results)) {
    r.xDirect = r.c50.rps / d.c50.rps;
    r.addedP50MsAt1 = r.c1.p50Ms - d.c1.p50Ms;
  }
  const k = results.keelson;
  const targetsMet = only !== undefined ? {} : {
    cpuVsUndici: { value: k.c50.cpuUsPerReq / results.undici.c50.cpuUsPerReq, target: "<= 1.3", met: k.c50.cpuUsPerReq / results.undici.c50.cpuUsPerReq <= 1.3 },
    throughputVsFastify: { value: k.c50.rps / results.fastify.c50.rps, target: ">= 1.2", met: k.c50.rps / results.fastify.c50.rps >= 1.2 },
    addedP50At1Ms: { value: k.addedP50MsAt1, target: "< 0.1", met: k.addedP50MsAt1 < 0.1 },
  };

  const traced = results.keelsonTraced;
  if (traced !== undefined && k !== undefined) {
    const loss = 1 - traced.c50.rps / k.c50.rps;
    targetsMet.tracingThroughputLoss = { value: loss, target: "<= 0.10", met: loss <= 0.1 };
    const lossAt1 = 1 - traced.c1.rps / k.c1.rps;
    targetsMet.tracingThroughputLossAt1 = { value: lossAt1, target: "<= 0.10", met: lossAt1 <= 0.1 };
  }

  const machine = {
    cpu: cpus()[0]?.model ?? "unknown",
    cpus: CPU_COUNT,
    memGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    kernel: release(),
    loadAverage: { before: loadBefore, after: loadavg()[0] },
    node: process.version,
    wrk: wrkVersion,
    nginx: nginxVersion,
    undici: JSON.parse(readFileSync(join(ROOT, "node_modules/undici/package.json"), "utf8")).version,
    fastify: JSON.parse(readFileSync(join(ROOT, "node_modules/fastify/package.json"), "utf8")).version,
    fastifyHttpProxy: JSON.parse(readFileSync(join(ROOT, "node_modules/@fastify/http-proxy/package.json"), "utf8")).version,
  };
  const pinning = PIN ? { wrk: "0", upstream: "1", proxies: "1", [`keelson x${WORKERS}`]: "0,1 (shares core 0 with wrk)" } : "none";

  const f = (x, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : "–");
  const rows = [["proxy", "cores", "req/s@50", "x direct", "p50@1 ms", "p99@1 ms", "p50@50 ms", "p99@50 ms", "+p50@1 ms", "CPU µs/req@50", "CPU µs/req@1", "RSS MiB", "errors"]];
  for (const [key, r] of Object.entries(results)) {
    rows.push([
      r.label,
      r.cores,
      f(r.c50.rps),
      f(r.xDirect, 2),
      f(r.c1.p50Ms, 3),
      f(r.c1.p99Ms, 3),
      f(r.c50.p50Ms, 2),
      f(r.c50.p99Ms, 2),
      key === "direct" ? "–" : f(r.addedP50MsAt1, 3),
      f(r.c50.cpuUsPerReq, 1),
      f(r.c1.cpuUsPerReq, 1),
      f(r.rssMiB, 0),
      String(r.c1.errors + r.c50.errors),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  console.log(`gateway benchmark: wrk -t1, ${RUNS} x ${DURATION_S} s per point (medians), ${WARMUP_S} s warm-up, node ${process.version}, ${machine.cpu} x${CPU_COUNT}`);
  console.log(PIN ? `pinning: wrk on core 0; upstream and each proxy on core 1; keelson x${WORKERS} on cores 0,1` : "pinning: none");
  for (const row of rows) console.log(row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  "));
  console.log("");
  for (const [name, t] of Object.entries(targetsMet)) console.log(`target ${name}: ${t.value.toFixed(3)} (${t.target}) ${t.met ? "met" : "MISSED"}`);
  const record = { bench: "gateway", at: new Date().toISOString(), durationS: DURATION_S, runs: RUNS, workers: WORKERS, machine, pinning, results, targets: targetsMet };
  console.log(JSON.stringify(record));
  mkdirSync(RESULTS, { recursive: true });
  const out = join(RESULTS, `gateway-${record.at.replace(/[:.]/g, "-")}.json`);
  writeFileSync(out, `${JSON.stringify(record, null, 2)}\n`);
  console.log(`written to ${out}`);
}

try {
  if (flag("profile")) await profileRun();
  else await compare();
} finally {
  await stopAll();
  rmSync(tmp, { recursive: true, force: true });
}
