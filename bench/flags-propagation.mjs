// Benchmark: how fast a flag change reaches connected SDK providers, and OFREP bulk evaluation.
// A control plane (memory store) on loopback; 100 KeelsonFlagProviders connected to its change
// stream; `--changes` times, a flag is changed through the API and the time until each provider
// serves the new revision is recorded. Reference in the same run: a bare node:http server
// writing one SSE event to 100 fetch() readers (the floor of the fan-out). OFREP: 100 flags,
// bulk evaluation (POST /ofrep/v1/evaluate/flags) `--requests` times, beside GET /healthz.
// Every API call and every provider carries an admin API token (only /healthz needs none).
// The target: a change reaches every provider within 100 ms at p99; the last line says PASS or
// FAIL, and FAIL exits with status 1.
// Usage: node bench/flags-propagation.mjs [--clients 100] [--changes 20] [--requests 300]  (after `npm run build`)
import { createServer } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createApiSecurity, createControlPlane } from "../packages/platform/dist/api/index.js";
import { createReconciler } from "../packages/platform/dist/delivery/index.js";
import { createMemoryDriver } from "../packages/platform/dist/runtime/index.js";
import { createMemoryStore } from "../packages/platform/dist/store/index.js";
import { KeelsonFlagProvider } from "../packages/sdk/dist/flags.js";
import { createIdentity } from "../packages/sdk/dist/identity.js";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const CLIENTS = arg("clients", 100);
/** Issue #7's target for the p99 of an API change reaching every provider. */
const TARGET_P99_MS = 100;
const CHANGES = arg("changes", 20);
const REQUESTS = arg("requests", 300);
const silent = { info() {}, warn() {}, error() {} };
const q = (xs, p) => {
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.floor(p * v.length))];
};
const f = (x) => `${x.toFixed(1)} ms`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function controlPlane() {
  const dir = await mkdtemp(join(tmpdir(), "keelson-bench-flags-"));
  const store = createMemoryStore();
  const driver = createMemoryDriver();
  const reconciler = createReconciler({ store, driver, project: "bench", stateDir: dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
  const security = await createApiSecurity({ store, project: "bench", stateDir: dir });
  const { token } = await security.tokens.create({ name: "bench", role: "admin", actor: "bench" });
  const cp = createControlPlane({ project: "bench", dir, stateDir: dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
  const url = await cp.listen("127.0.0.1", 0);
  // The providers send the token as a replica sends its identity: read from a file.
  const identityFile = join(dir, "identity.jwt");
  await writeFile(identityFile, token);
  return {
    url,
    headers: { authorization: `Bearer ${token}` },
    identity: createIdentity({ identityFile, tlsDir: "" }),
    async stop() {
      await reconciler.stop();
      await cp.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function put({ url, headers }, key, body) {
  const res = await fetch(`${url}/v1/flags/${key}`, { method: "PUT", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`PUT ${key}: ${res.status} ${await res.text()}`);
}

/** Keelson: API change → every provider serving it. */
async function keelsonFanout(cp) {
  await put(cp, "banner", { state: "ENABLED", variants: { a: "a", b: "b" }, defaultVariant: "a" });
  const providers = Array.from({ length: CLIENTS }, () => new KeelsonFlagProvider({ url: cp.url, identity: cp.identity }));
  await Promise.all(providers.map((p) => p.initialize()));
  const times = [];
  for (let i = 0; i < CHANGES; i++) {
    const want = i % 2 === 0 ? "b" : "a";
    const t0 = performance.now();
    const seen = new Set();
    const done = new Promise((resolve) => {
      for (const p of providers) {
        const handler = async () => {
          if (seen.has(p)) return;
          if ((await p.resolveStringEvaluation("banner", "?", {})).value !== want) return;
          seen.add(p);
          times.push(performance.now() - t0);
          p.events.removeHandler("PROVIDER_CONFIGURATION_CHANGED", handler);
          if (seen.size === providers.length) resolve();
        };
        p.events.addHandler("PROVIDER_CONFIGURATION_CHANGED", handler);
      }
    });
    await put(cp, "banner", { state: "ENABLED", variants: { a: "a", b: "b" }, defaultVariant: want });
    await Promise.race([done, sleep(10_000).then(() => Promise.reject(new Error(`change ${i}: ${seen.size}/${providers.length} providers after 10 s`)))]);
    await sleep(50);
  }
  await Promise.all(providers.map((p) => p.onClose()));
  return times;
}

/** Reference: one SSE event from a bare server to the same number of fetch() readers. */
async function referenceFanout() {
  const clients = new Set();
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.flushHeaders();
    clients.add(res);
    req.once("close", () => clients.delete(res));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}/`;
  const acs = [];
  const waiters = [];
  for (let i = 0; i < CLIENTS; i++) {
    const ac = new globalThis.AbortController();
    acs.push(ac);
    const res = await fetch(url, { signal: ac.signal });
    const reader = res.body.getReader();
    const state = { next: undefined };
    waiters.push(state);
    void (async () => {
      for (;;) {
        const r = await reader.read().catch(() => ({ done: true }));
        if (r.done) return;
        state.next?.();
      }
    })();
  }
  while (clients.size < CLIENTS) await sleep(10);
  const times = [];
  for (let i = 0; i < CHANGES; i++) {
    const t0 = performance.now();
    await new Promise((resolve) => {
      let n = 0;
      for (const w of waiters) {
        w.next = () => {
          w.next = undefined;
          times.push(performance.now() - t0);
          if (++n === CLIENTS) resolve();
        };
      }
      for (const c of clients) c.write(`event: flags\ndata: {"revision":${i}}\n\n`);
    });
    await sleep(50);
  }
  for (const ac of acs) ac.abort();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  return times;
}

async function ofrepBulk(cp) {
  const { url, headers } = cp;
  for (let i = 0; i < 100; i++) {
    await put(cp, `flag-${i}`, {
      state: "ENABLED",
      variants: { on: true, off: false },
      defaultVariant: "off",
      targeting: i % 2 === 0 ? { fractional: [["on", 50], ["off", 50]] } : { if: [{ in: [{ var: "plan" }, ["pro", "team"]] }, "on", null] },
    });
  }
  const time = async (fn) => {
    const t = [];
    for (let i = 0; i < REQUESTS; i++) {
      const t0 = performance.now();
      await fn(i);
      t.push(performance.now() - t0);
    }
    return t;
  };
  const bulk = await time(async (i) => {
    const res = await fetch(`${url}/ofrep/v1/evaluate/flags`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ context: { targetingKey: `user-${i}`, plan: "pro" } }) });
    const body = await res.json();
    if (body.flags.length < 100) throw new Error("bulk answer too short");
  });
  // /healthz needs no token: the reference is an answer without authentication.
  const health = await time(async () => (await fetch(`${url}/healthz`)).json());
  return { bulk, health };
}

const cp = await controlPlane();
try {
  const keelson = await keelsonFanout(cp);
  const reference = await referenceFanout();
  const { bulk, health } = await ofrepBulk(cp);
  console.log(`flag change → ${CLIENTS} providers (${CHANGES} changes, ${keelson.length} deliveries): p50 ${f(q(keelson, 0.5))}, p99 ${f(q(keelson, 0.99))}, max ${f(Math.max(...keelson))}`);
  console.log(`  reference: bare SSE write → ${CLIENTS} readers: p50 ${f(q(reference, 0.5))}, p99 ${f(q(reference, 0.99))}; ratio of p99s ${(q(keelson, 0.99) / q(reference, 0.99)).toFixed(1)}x`);
  console.log(`OFREP bulk evaluation of 100 flags (${REQUESTS} requests): p50 ${f(q(bulk, 0.5))}, p99 ${f(q(bulk, 0.99))}`);
  console.log(`  reference: GET /healthz: p50 ${f(q(health, 0.5))}, p99 ${f(q(health, 0.99))}`);
  const p99 = q(keelson, 0.99);
  const pass = p99 < TARGET_P99_MS;
  console.log(`${pass ? "PASS" : "FAIL"}: flag change → ${CLIENTS} providers p99 ${f(p99)} (target < ${TARGET_P99_MS} ms)`);
  if (!pass) process.exitCode = 1;
} finally {
  await cp.stop();
}
