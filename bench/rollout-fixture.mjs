// The deploy benchmark's fixture and load generator: a two-service project (`echo`, `other`)
// written into a temp dir as its own git repository, the real `keelson` binary run without
// blocking, and K keep-alive loops against the gateway that record every response.
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Agent, request } from "undici";
import { ROOT, freePort } from "./shop-copy.mjs";

export const BIN = join(ROOT, "packages/platform/bin/keelson.js");

/** A dependency-free node:http service: GET / answers its release and replica; "broken" exits at once. */
export function serverSource(version) {
  return `// A tiny service for the deploy benchmark: answers which release and replica served.
import { createServer } from "node:http";

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
server.listen(Number(process.env.PORT), "127.0.0.1", () => console.log(\`\${VERSION} listening on \${process.env.PORT}\`));
process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
});
`;
}

const packageJson = (name) => JSON.stringify({ name, private: true, type: "module", scripts: { test: 'node -e "process.exit(0)"' } }, null, 2) + "\n";

/** keelson.yaml for the fixture; `echoDeploy` is the echo service's `deploy:` flow mapping, if any. */
export function manifestText({ ports, echoDeploy }) {
  return `version: 1
project: rollouts
controlPlane: { host: 127.0.0.1, port: ${ports.controlPlane} }
gateway: { host: 127.0.0.1, port: ${ports.gateway}, adminPort: ${ports.admin}, meshPort: ${ports.mesh} }
services:
  echo:
    owner: bench
    path: services/echo
    start: node server.mjs
    replicas: 2
    readiness: /ready
    routes: ["/"]
${echoDeploy ? `    deploy: ${echoDeploy}\n` : ""}  other:
    owner: bench
    path: services/other
    start: node server.mjs
    replicas: 2
    readiness: /ready
    routes: ["/other"]
`;
}

/** Writes the project into `dir` and commits it; returns its ports and helpers to change it. */
export async function writeFixture(dir, options = {}) {
  const ports = { controlPlane: await freePort(), gateway: await freePort(), admin: await freePort(), mesh: await freePort() };
  for (const name of ["echo", "other"]) {
    await mkdir(join(dir, "services", name), { recursive: true });
    await writeFile(join(dir, "services", name, "package.json"), packageJson(name));
    await writeFile(join(dir, "services", name, "server.mjs"), serverSource("v1"));
  }
  await writeFile(join(dir, ".gitignore"), ".keelson/\n");
  await writeFile(join(dir, "keelson.yaml"), manifestText({ ports, echoDeploy: options.echoDeploy }));
  await git(dir, ["init", "-q", "-b", "main"]);
  await commit(dir, "v1");
  const controlPlaneUrl = `http://127.0.0.1:${ports.controlPlane}`;
  let token;
  return {
    dir,
    ports,
    gatewayUrl: `http://127.0.0.1:${ports.gateway}`,
    controlPlaneUrl,
    /** fetch() on the control plane's API with the token `keelson up` stored in .keelson/token (read once). */
    async api(path, init = {}) {
      token ??= await apiToken(dir);
      return fetch(`${controlPlaneUrl}${path}`, { ...init, headers: { ...init.headers, authorization: `Bearer ${token}` } });
    },
    /** Changes echo's VERSION constant (a code change, so a new release) and commits it. */
    async setVersion(version, service = "echo") {
      await writeFile(join(dir, "services", service, "server.mjs"), serverSource(version));
      await commit(dir, `${service} ${version}`);
    },
    async setEchoDeploy(echoDeploy) {
      await writeFile(join(dir, "keelson.yaml"), manifestText({ ports, echoDeploy }));
      await commit(dir, `echo deploy: ${echoDeploy}`);
    },
  };
}

const gitEnv = { GIT_AUTHOR_NAME: "bench", GIT_AUTHOR_EMAIL: "bench@example.invalid", GIT_COMMITTER_NAME: "bench", GIT_COMMITTER_EMAIL: "bench@example.invalid" };

export function git(dir, args) {
  return new Promise((resolve, reject) => {
    execFile("git", ["-c", "commit.gpgsign=false", "-C", dir, ...args], { env: { ...process.env, ...gitEnv } }, (err, stdout, stderr) => (err ? reject(new Error(`git ${args.join(" ")}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

async function commit(dir, message) {
  await git(dir, ["add", "-A"]);
  await git(dir, ["commit", "-q", "-m", message]);
}

/** Runs the keelson CLI without blocking the event loop; times are performance.now() ms. */
export function keelson(args, options = {}) {
  return new Promise((resolve) => {
    const start = performance.now();
    execFile(process.execPath, [BIN, ...args], { timeout: options.timeoutMs ?? 180_000, env: { ...process.env, NO_COLOR: "1" }, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const end = performance.now();
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr, start, end });
    });
  });
}

/**
 * K loops sending GET `url` over keep-alive connections until `stop()`, the deadline or
 * `maxRequests`. Each response is { start, end, status, release, error }; a failure is a
 * non-2xx answer or a network error. `pauseMs` between a loop's requests keeps the load from
 * taking all of a small machine's CPU away from the builds it is measuring.
 */
export function startLoad({ url, concurrency = 8, maxRequests = 200_000, deadlineMs = 180_000, pauseMs = 2 }) {
  const agent = new Agent({ connections: concurrency, keepAliveTimeout: 30_000, headersTimeout: 15_000, bodyTimeout: 15_000 });
  const samples = [];
  const t0 = performance.now();
  let stopped = false;
  const more = () => !stopped && samples.length < maxRequests && performance.now() - t0 < deadlineMs;
  async function loop() {
    while (more()) {
      const start = performance.now();
      try {
        const res = await request(url, { dispatcher: agent });
        const text = await res.body.text();
        let release;
        try {
          release = JSON.parse(text).release;
        } catch {}
        samples.push({ start, end: performance.now(), status: res.statusCode, release, ...(res.statusCode >= 300 ? { error: text.slice(0, 200) } : {}) });
      } catch (err) {
        samples.push({ start, end: performance.now(), status: 0, release: undefined, error: err?.code ?? String(err) });
      }
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
  }
  const done = Promise.all(Array.from({ length: concurrency }, loop));
  return {
    samples,
    /** Waits until `n` more responses have come in (so the load is known to flow). */
    async settle(n = 50, timeoutMs = 10_000) {
      const target = samples.length + n;
      const end = performance.now() + timeoutMs;
      while (samples.length < target && performance.now() < end) await new Promise((r) => setTimeout(r, 10));
    },
    async stop() {
      stopped = true;
      await done;
      await agent.close();
      return samples;
    },
  };
}

export const isFailure = (s) => s.status < 200 || s.status >= 300;

export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * Figures for responses to requests sent in [from, to): totals, failures, p99 latency, and,
 * for a window around a command, p99 of the requests sent while it ran.
 */
export function summarize(samples, window) {
  const inWindow = (s) => s.start >= window.from && s.start < window.to;
  const all = samples.filter(inWindow);
  const during = window.command ? all.filter((s) => s.start >= window.command.start && s.start < window.command.end) : [];
  const failures = all.filter(isFailure);
  return {
    requests: all.length,
    failures: failures.length,
    failureSamples: failures.slice(0, 5),
    p99Ms: percentile(all.map((s) => s.end - s.start), 99),
    switchRequests: during.length,
    switchFailures: during.filter(isFailure).length,
    switchP99Ms: percentile(during.map((s) => s.end - s.start), 99),
    releases: countBy(all.map((s) => s.release ?? `status ${s.status}`)),
  };
}

function countBy(items) {
  const out = {};
  for (const i of items) out[i] = (out[i] ?? 0) + 1;
  return out;
}

/**
 * How long after `since` traffic was all on `release`: when the last answer from any other
 * release arrived (ms after `since`, 0 if none came after it), or undefined when `release`
 * never answered after that (the switch did not complete within the samples).
 */
export function allTrafficOnAfter(samples, release, since) {
  const ok = samples.filter((s) => s.start >= since && !isFailure(s));
  let lastOther = since;
  for (const s of ok) if (s.release !== release && s.end > lastOther) lastOther = s.end;
  if (!ok.some((s) => s.release === release && s.start > lastOther)) return undefined;
  return lastOther - since;
}

/** The API token the control plane wrote to `<dir>/.keelson/token` when `keelson up` first started it. */
export async function apiToken(dir) {
  return (await readFile(join(dir, ".keelson", "token"), "utf8")).trim();
}

/** GET /v1/status of the fixture `fx` (from writeFixture). */
export async function statusOf(fx) {
  const res = await fx.api("/v1/status");
  if (!res.ok) throw new Error(`GET /v1/status: ${res.status}`);
  return res.json();
}

export async function releasesOf(fx, service) {
  const res = await fx.api(`/v1/services/${service}/releases`);
  if (!res.ok) throw new Error(`GET releases: ${res.status}`);
  return (await res.json()).releases;
}
