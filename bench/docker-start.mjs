// Benchmark: start-to-ready of the example shop's services as docker containers, beside the same
// services as local processes (the process driver) in the same run. Each run starts every service
// once on each runtime, alternating which goes first, and times driver.start() to the "ready" event.
// The release images are built once before the runs (timed apart); a private dockerd is started
// when no engine answers at DOCKER_HOST or /var/run/docker.sock.
// Usage: node bench/docker-start.mjs [--runs 5]   (needs `npm run build` and root or a docker group)
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import Docker from "dockerode";
import { createDockerDriver, createProcessDriver } from "../packages/platform/dist/index.js";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const RUNS = Math.min(Number(args.runs ?? 5), 20);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const SHOP = join(ROOT, "examples", "shop", "services");
const TIMEOUT_MS = 60_000;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => `${Math.round(x)} ms`;

function ping(socketPath) {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: "/_ping", timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => (req.destroy(), resolve(false)));
    req.end();
  });
}

/** An engine that answers, or a private dockerd (no bridge, no iptables) stopped at the end. */
async function engine() {
  const existing = process.env.DOCKER_HOST?.startsWith("unix://") ? process.env.DOCKER_HOST.slice(7) : "/var/run/docker.sock";
  if (await ping(existing)) return { socketPath: existing, shared: true, stop: async () => {} };
  const dir = mkdtempSync(join(tmpdir(), "kd-bench-"));
  const socketPath = join(dir, "docker.sock");
  const child = spawn("dockerd", ["--data-root", join(dir, "data"), "--exec-root", join(dir, "exec"), "--pidfile", join(dir, "pid"), "-H", `unix://${socketPath}`, "--bridge", "none", "--iptables=false", "--ip-masq=false", "--ip-forward=false"], { stdio: "ignore" });
  const exited = once(child, "exit");
  const deadline = Date.now() + 30_000;
  while (!(await ping(socketPath))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error("dockerd did not answer within 30 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    socketPath,
    shared: false,
    stop: async () => {
      process.kill(child.pid, "SIGTERM");
      await exited;
      // dockerd leaves its network namespace file mounted.
      spawnSync("umount", ["-l", join(dir, "exec", "netns", "default")]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

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

/**
 * A release folder per shop service, as a pipeline leaves it for a workspace: the built service
 * (dist, package.json) and its node_modules linked to the repository's.
 */
function releases(dir) {
  const out = [];
  for (const name of readdirSync(SHOP).sort()) {
    const src = join(SHOP, name);
    if (!existsSync(join(src, "dist", "main.js"))) throw new Error(`${src}/dist/main.js is missing: run npm run build first`);
    const cwd = join(dir, "releases", name);
    mkdirSync(cwd, { recursive: true });
    cpSync(join(src, "dist"), join(cwd, "dist"), { recursive: true });
    cpSync(join(src, "package.json"), join(cwd, "package.json"));
    symlinkSync(join(ROOT, "node_modules"), join(cwd, "node_modules"));
    mkdirSync(join(dir, "data", name), { recursive: true });
    out.push({ name, cwd, release: `bench-${JSON.parse(readFileSync(join(src, "package.json"), "utf8")).version}-${process.pid}` });
  }
  return out;
}

async function spec(dir, service, n) {
  return {
    id: `${service.name}-${n}`,
    project: "shop",
    service: service.name,
    release: service.release,
    index: 0,
    cwd: service.cwd,
    command: "node dist/main.js",
    // The gateway is not running: calls to it fail, which none of the services needs to be ready.
    env: { KEELSON_DATA_DIR: join(dir, "data", service.name), KEELSON_GATEWAY_URL: "http://127.0.0.1:9" },
    port: await freePort(),
    readiness: { path: "/ready", intervalMs: 100, timeoutMs: 1000, failureThreshold: 3 },
    liveness: undefined,
    stopTimeoutMs: 5000,
    startTimeoutMs: TIMEOUT_MS,
    logDir: join(dir, "logs"),
  };
}

/** driver.start() to the replica's "ready" event, then a stop (not timed). */
async function startToReady(driver, s) {
  let resolveReady;
  const ready = new Promise((resolve, reject) => {
    resolveReady = resolve;
    setTimeout(() => reject(new Error(`${s.id} not ready within ${TIMEOUT_MS} ms`)), TIMEOUT_MS).unref();
  });
  const off = driver.onEvent((e) => e.replica.spec.id === s.id && e.type === "ready" && resolveReady());
  const t0 = performance.now();
  try {
    await driver.start(s);
    await ready;
    return performance.now() - t0;
  } finally {
    off();
    await driver.stop(s.id);
  }
}

const dir = mkdtempSync(join(tmpdir(), "keelson-bench-docker-"));
const eng = await engine();
const docker = createDockerDriver({ socketPath: eng.socketPath });
const proc = createProcessDriver();
try {
  const services = releases(dir);
  // Images: the base image and one build per release, before any timed start.
  let t = performance.now();
  const warm = await spec(dir, services[0], "warm");
  await startToReady(docker, warm);
  const firstBuildMs = performance.now() - t;
  t = performance.now();
  for (const service of services.slice(1)) await startToReady(docker, await spec(dir, service, "warm"));
  const otherBuildsMs = (performance.now() - t) / (services.length - 1);

  const times = { docker: new Map(), process: new Map() };
  for (const s of services) {
    times.docker.set(s.name, []);
    times.process.set(s.name, []);
  }
  for (let run = 0; run < RUNS; run++) {
    for (const service of services) {
      const order = run % 2 === 0 ? ["process", "docker"] : ["docker", "process"];
      for (const kind of order) {
        const driver = kind === "docker" ? docker : proc;
        times[kind].get(service.name).push(await startToReady(driver, await spec(dir, service, `${kind}-${run}`)));
      }
    }
  }
  console.log(`docker-start: ${services.length} shop services, ${RUNS} runs each, median start-to-ready`);
  console.log(`base image + first release image + first start: ${ms(firstBuildMs)}; each other release image + first start: ${ms(otherBuildsMs)}`);
  console.log("| service | docker | process | docker / process |");
  console.log("|---|---|---|---|");
  const all = { docker: [], process: [] };
  for (const s of services) {
    const d = median(times.docker.get(s.name));
    const p = median(times.process.get(s.name));
    all.docker.push(...times.docker.get(s.name));
    all.process.push(...times.process.get(s.name));
    console.log(`| ${s.name} | ${ms(d)} | ${ms(p)} | ${(d / p).toFixed(2)}× |`);
  }
  const d = median(all.docker);
  const p = median(all.process);
  console.log(`| all | ${ms(d)} | ${ms(p)} | ${(d / p).toFixed(2)}× |`);
} finally {
  await Promise.all(docker.list().map((r) => docker.stop(r.spec.id)));
  await Promise.all(proc.list().map((r) => proc.stop(r.spec.id)));
  await docker.detach();
  await proc.detach();
  if (eng.shared) {
    // An engine that was already there keeps nothing of ours but the base image.
    const engineApi = new Docker({ socketPath: eng.socketPath });
    for (const image of await engineApi.listImages({ filters: { label: ["keelson.project=shop"] } })) {
      if (image.Labels?.["keelson.release"]?.endsWith(`-${process.pid}`)) await engineApi.getImage(image.Id).remove({ force: true });
    }
  }
  await eng.stop();
  rmSync(dir, { recursive: true, force: true });
}
