// Benchmark: the golden path's promise, "a new service is running, monitored and deployable in
// minutes". From `keelson new http-ts hello` in a fresh project to the service answering through
// the gateway: new, its own build and tests (the template's `npm run build` and `npm test`), then
// `keelson up --detach` and the first request. Reference, in the same run: `keelson up --detach`
// of a one-service project written by hand (a dependency-free server, no build, no tests), to its
// first answer through the gateway: what bringing any service up costs.
// Runs alternate which goes first. Every process started is stopped with `keelson down`.
// Usage: node bench/new-service.mjs [--runs 3]   (needs `npm run build`; loopback only)
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const RUNS = Math.max(1, Math.min(Number(args.runs ?? 3), 10));
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const BIN = join(ROOT, "packages", "platform", "bin", "keelson.js");
const STEP_TIMEOUT_MS = 240_000;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const s = (msValue) => `${(msValue / 1000).toFixed(1)} s`;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function run(file, argv, cwd) {
  return new Promise((resolve, reject) => {
    execFile(file, argv, { cwd, timeout: STEP_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, NO_COLOR: "1" } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${[file, ...argv].join(" ")} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

const keelson = (argv, cwd) => run(process.execPath, [BIN, ...argv], cwd);

async function firstAnswer(url) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await fetch(url, { signal: globalThis.AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within 60 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function project(name, services) {
  const dir = mkdtempSync(join(tmpdir(), `keelson-bench-${name}-`));
  const ports = { cp: await freePort(), gw: await freePort(), admin: await freePort(), mesh: await freePort() };
  writeFileSync(
    join(dir, "keelson.yaml"),
    [
      "version: 1",
      `project: ${name}`,
      `controlPlane: { host: 127.0.0.1, port: ${ports.cp} }`,
      `gateway: { host: 127.0.0.1, port: ${ports.gw}, adminPort: ${ports.admin}, meshPort: ${ports.mesh} }`,
      "teams:",
      "  web: { members: [ana] }",
      `services:${services === "" ? " {}" : `\n${services}`}`,
      "",
    ].join("\n"),
  );
  return { dir, gateway: `http://127.0.0.1:${ports.gw}` };
}

/** keelson new http-ts → build and tests → up → first answer, with each step's time. */
async function goldenPath() {
  const { dir, gateway } = await project("golden", "");
  try {
    const t0 = performance.now();
    await keelson(["new", "http-ts", "hello", "-C", dir, "--owner", "web", "-y"]);
    const made = performance.now();
    const service = join(dir, "services", "hello");
    await run("npm", ["run", "build"], service);
    await run("npm", ["test"], service);
    const tested = performance.now();
    await keelson(["up", dir, "--detach"]);
    await firstAnswer(`${gateway}/hello/hello?name=Ada`);
    const served = performance.now();
    return { total: served - t0, new: made - t0, tests: tested - made, up: served - tested };
  } finally {
    await keelson(["down", dir]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

/** keelson up of a hand-written one-service project → first answer. */
async function reference() {
  const service = ["  hello:", "    owner: web", "    path: services/hello", "    start: node server.mjs", "    readiness: /ready", "    routes: ['/hello']"].join("\n");
  const { dir, gateway } = await project("reference", service);
  mkdirSync(join(dir, "services", "hello"), { recursive: true });
  writeFileSync(
    join(dir, "services", "hello", "server.mjs"),
    'import { createServer } from "node:http";\ncreateServer((req, res) => res.end("ok")).listen(Number(process.env.PORT), "127.0.0.1");\nprocess.on("SIGTERM", () => process.exit(0));\n',
  );
  try {
    const t0 = performance.now();
    await keelson(["up", dir, "--detach"]);
    await firstAnswer(`${gateway}/hello`);
    return performance.now() - t0;
  } finally {
    await keelson(["down", dir]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

const golden = [];
const refs = [];
for (let i = 0; i < RUNS; i++) {
  const order = i % 2 === 0 ? ["golden", "reference"] : ["reference", "golden"];
  for (const which of order) {
    if (which === "golden") {
      const g = await goldenPath();
      golden.push(g);
      console.log(`run ${i + 1}: keelson new http-ts → serving ${s(g.total)} (new ${s(g.new)}, build and tests ${s(g.tests)}, up ${s(g.up)})`);
    } else {
      const r = await reference();
      refs.push(r);
      console.log(`run ${i + 1}: reference up of a hand-written service → serving ${s(r)}`);
    }
  }
}
const total = median(golden.map((g) => g.total));
const ref = median(refs);
console.log(`\nmedian of ${RUNS}: keelson new http-ts → serving ${s(total)} (new ${s(median(golden.map((g) => g.new)))}, build and tests ${s(median(golden.map((g) => g.tests)))}, up ${s(median(golden.map((g) => g.up)))})`);
console.log(`reference (up of a hand-written service): ${s(ref)}; ratio ${(total / ref).toFixed(2)}×; target < 60 s: ${total < 60_000 ? "met" : "NOT met"}`);
