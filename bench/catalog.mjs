// Benchmark: the service catalog list (GET /v1/catalog) of 1,000 generated services, through a
// real in-process control plane over a SQLite store, beside references measured in the same run:
// GET /v1/status (the plain list of services with their replicas, through the same API) and the
// raw store read of the services (store.listServices).
// The project: 50 teams, 1,000 services (each with calls, tags, links, half with SLOs), one
// release per service with scan findings, one ready replica each (memory driver), 2,000 deploy
// and pipeline events among 30,000 others in the log, 3,000 trace spans (the observed map) and
// 40 flags. Three catalog figures:
// - cold: the first request (the event log folded from the start, every release read, files
//   checked, the service map built, stale flags found);
// - warm: later requests within the cache window (10 s: map, stale flags, file checks kept);
// - expired: every request 10 s after the last (map, stale flags, files derived again).
// Usage: node bench/catalog.mjs [--services 1000] [--requests 50] [--runs 3]  (after `npx tsc -b`)
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createApiSecurity, createControlPlane } from "../packages/platform/dist/api/index.js";
import { saveTeams } from "../packages/platform/dist/catalog/index.js";
import { createReconciler } from "../packages/platform/dist/delivery/index.js";
import { createFlagService } from "../packages/platform/dist/flags/index.js";
import { parseManifest } from "../packages/platform/dist/manifest/index.js";
import { createMemoryDriver } from "../packages/platform/dist/runtime/index.js";
import { createSqliteStore } from "../packages/platform/dist/store/index.js";
import {
  createBuiltinMetricsSource,
  createGatewayScraper,
  createIncidentMonitor,
  createMemoryTraceStore,
  createMetricStore,
  createOtlpReceiver,
} from "../packages/platform/dist/telemetry/index.js";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const SERVICES = Number(args.services ?? 1000);
const REQUESTS = Number(args.requests ?? 50);
const RUNS = Number(args.runs ?? 3);
const TEAMS = 50;
const silent = { info() {}, warn() {}, error() {} };
const q = (xs, p) => {
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.floor(p * v.length))];
};
const svc = (i) => `svc-${String(i).padStart(4, "0")}`;
const rel = (i) => `r-${String(i).padStart(12, "0")}`;

function manifestText() {
  const lines = ["project: big", "teams:"];
  for (let t = 0; t < TEAMS; t++) lines.push(`  team-${t}: { members: [p${t}a, p${t}b], contact: "#team-${t}" }`);
  lines.push("services:");
  for (let i = 0; i < SERVICES; i++) {
    lines.push(
      `  ${svc(i)}:`,
      `    owner: team-${i % TEAMS}`,
      `    description: Generated service number ${i}.`,
      `    lifecycle: ${i % 10 === 0 ? "experimental" : "production"}`,
      `    tags: [tier-${i % 3}${i % 7 === 0 ? ", pci" : ""}]`,
      `    links: { repo: "https://git.example/big/${svc(i)}", runbook: "runbooks/${svc(i)}.md" }`,
      `    path: services/${svc(i)}`,
      "    start: node main.js",
      "    test: npm test",
      "    replicas: 1",
      "    readiness: /ready",
      `    calls: [${svc((i + 1) % SERVICES)}, ${svc((i + 7) % SERVICES)}]`,
    );
    if (i % 2 === 0) lines.push("    slos: [{ name: availability, availability: 99.9 }]");
  }
  return `${lines.join("\n")}\n`;
}

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), "keelson-bench-catalog-"));
  try {
    return await project(dir);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function project(dir) {
  await mkdir(join(dir, "runbooks"), { recursive: true });
  for (let i = 0; i < SERVICES; i += 2) await writeFile(join(dir, "runbooks", `${svc(i)}.md`), "# runbook\n");
  const store = await createSqliteStore({ path: join(dir, "state.db") });
  const { manifest } = parseManifest(manifestText(), join(dir, "keelson.yaml"), { checkPaths: false });
  const names = Object.keys(manifest.services);
  await store.applyDesiredState({
    project: { name: "big", manifestPath: join(dir, "keelson.yaml"), manifestHash: "h", appliedAt: new Date().toISOString() },
    upsert: names.map((name, i) => ({ project: "big", name, spec: JSON.parse(JSON.stringify(manifest.services[name])), release: rel(i) })),
    remove: [],
    events: [],
  });
  await saveTeams(store, "big", manifest, new Date().toISOString());
  for (let i = 0; i < SERVICES; i++) {
    const critical = i % 50 === 0 ? 1 : 0;
    await store.putRelease({ id: rel(i), project: "big", service: svc(i), sourceHash: "s", configHash: "c", gitCommit: undefined, createdAt: new Date().toISOString(), details: { securityFindings: { total: critical + 2, blocking: 0, byKind: { vulnerability: critical + 2 }, bySeverity: { high: 2, ...(critical ? { critical } : {}) } } } });
  }
  // The event log: each service's pipeline run and deploy among many other events.
  for (let i = 0; i < 30 * SERVICES; i++) {
    const s = svc(i % SERVICES);
    await store.appendEvent({ project: "big", kind: i % 3 === 0 ? "replica.ready" : i % 3 === 1 ? "stage.succeeded" : "service.scaled", actor: "bench", subject: i % 3 === 0 ? `replica/${s}-0` : `service/${s}`, details: { n: i } });
  }
  for (let i = 0; i < SERVICES; i++) {
    await store.appendEvent({ project: "big", kind: "pipeline.succeeded", actor: "bench", subject: `service/${svc(i)}`, details: { run: `run-${i}`, stages: [{ name: "install" }, { name: "build" }, { name: "test" }] } });
    await store.appendEvent({ project: "big", kind: "rollout.succeeded", actor: "bench", subject: `service/${svc(i)}`, details: { rollout: `ro-${i}`, strategy: "rolling", to: rel(i) } });
  }
  const driver = createMemoryDriver({ readyDelayMs: 0 });
  const reconciler = createReconciler({ store, driver, project: "big", stateDir: dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
  await reconciler.converge();
  const readyCount = () => driver.list().filter((r) => r.state === "ready").length;
  for (const deadline = Date.now() + 30_000; readyCount() < SERVICES; ) {
    if (Date.now() > deadline) throw new Error(`expected ${SERVICES} ready replicas, got ${readyCount()}`);
    await new Promise((r) => setTimeout(r, 20));
  }

  let clock = Date.now();
  const now = () => new Date(clock);
  const flags = createFlagService({ store, project: "big", now });
  for (let f = 0; f < 40; f++) await flags.put(`flag-${f}`, { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", owner: `team-${f}` }, "bench");
  const metricStore = createMetricStore();
  const traces = createMemoryTraceStore();
  const spans = [];
  for (let i = 0; i < 3 * SERVICES; i++) {
    const from = svc(i % SERVICES);
    // Mostly declared calls; every tenth to a service not declared (drift).
    const to = svc(i % 10 === 0 ? (i + 3) % SERVICES : (i + 1) % SERVICES);
    spans.push({
      traceId: (i + 1).toString(16).padStart(32, "a"),
      spanId: (i + 1).toString(16).padStart(16, "b"),
      parentSpanId: undefined,
      name: "GET",
      kind: "server",
      service: "keelson-gateway",
      startTimeUs: (Date.now() - 60_000) * 1000,
      durationUs: 2000,
      status: "unset",
      statusMessage: undefined,
      attributes: { "keelson.target.service": to, "keelson.caller": from, "http.response.status_code": 200 },
      resource: { "service.name": "keelson-gateway" },
      scope: undefined,
      events: [],
      links: [],
    });
  }
  await traces.write(spans);
  const telemetry = {
    metricStore,
    scraper: createGatewayScraper({ urls: () => [], store: metricStore }),
    incidents: createIncidentMonitor({ store, project: "big", source: createBuiltinMetricsSource(metricStore), objectives: () => [] }),
    traces,
    otlpReceiver: createOtlpReceiver({ store: traces }),
  };
  const security = await createApiSecurity({ store, project: "big", stateDir: dir });
  const { token } = await security.tokens.create({ name: "bench", role: "viewer", actor: "bench" });
  const cp = createControlPlane({ project: "big", dir, stateDir: dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security, flags, telemetry, now });
  const url = await cp.listen("127.0.0.1", 0);
  const headers = { authorization: `Bearer ${token}` };
  return {
    store,
    advance: (ms) => (clock += ms),
    async get(path) {
      const t0 = performance.now();
      const res = await fetch(`${url}${path}`, { headers });
      const body = await res.text();
      const ms = performance.now() - t0;
      if (!res.ok) throw new Error(`${path}: ${res.status} ${body.slice(0, 300)}`);
      return { ms, bytes: body.length, body };
    },
    async stop() {
      await cp.close();
      await reconciler.stop();
      await traces.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function once() {
  const b = await setup();
  // The reference first, so it does not profit from anything the catalog warmed.
  let statusBytes = 0;
  for (let i = 0; i < 5; i++) statusBytes = (await b.get("/v1/status")).bytes;
  const cold = await b.get("/v1/catalog");
  const listing = JSON.parse(cold.body);
  if (listing.services.length !== SERVICES) throw new Error(`catalog listed ${listing.services.length} services`);
  const drift = listing.services.filter((e) => e.dependencies.undeclared.length > 0).length;
  const failing = listing.services.filter((e) => e.scorecard.failing.length > 0).length;
  for (let i = 0; i < 5; i++) await b.get("/v1/catalog");
  const status = [];
  const warm = [];
  const expired = [];
  const raw = [];
  for (let i = 0; i < REQUESTS; i++) {
    status.push((await b.get("/v1/status")).ms);
    warm.push((await b.get("/v1/catalog")).ms);
    const t0 = performance.now();
    await b.store.listServices("big");
    raw.push(performance.now() - t0);
  }
  for (let i = 0; i < REQUESTS; i++) {
    b.advance(10_000);
    expired.push((await b.get("/v1/catalog")).ms);
  }
  const team = await b.get("/v1/catalog?team=team-7");
  const scorecards = await b.get("/v1/scorecards");
  await b.stop();
  return { coldMs: cold.ms, bytes: cold.bytes, statusBytes, drift, failing, status, warm, expired, raw, teamMs: team.ms, scorecardsMs: scorecards.ms };
}

const results = [];
for (let r = 0; r < RUNS; r++) results.push(await once());
const med = (xs) => q(xs, 0.5);
const all = (k) => results.flatMap((r) => r[k]);
const figures = {
  statusP50: med(all("status")),
  statusP95: q(all("status"), 0.95),
  rawP50: med(all("raw")),
  warmP50: med(all("warm")),
  warmP95: q(all("warm"), 0.95),
  expiredP50: med(all("expired")),
  expiredP95: q(all("expired"), 0.95),
  coldMedian: med(results.map((r) => r.coldMs)),
  teamMedian: med(results.map((r) => r.teamMs)),
  scorecardsMedian: med(results.map((r) => r.scorecardsMs)),
};
const f = (x) => `${x.toFixed(1)} ms`;
console.log(`catalog benchmark: ${SERVICES} services, ${RUNS} runs x ${REQUESTS} requests (node ${process.version})`);
console.log(`  catalog answer ${(results[0].bytes / 1024).toFixed(0)} KiB (status ${(results[0].statusBytes / 1024).toFixed(0)} KiB); ${results[0].drift} services with undeclared calls, ${results[0].failing} with failing rules`);
console.log(`  reference: GET /v1/status            p50 ${f(figures.statusP50)}  p95 ${f(figures.statusP95)}`);
console.log(`  reference: store.listServices        p50 ${f(figures.rawP50)}`);
console.log(`  GET /v1/catalog, warm                p50 ${f(figures.warmP50)}  p95 ${f(figures.warmP95)}  (${(figures.warmP50 / figures.statusP50).toFixed(2)}x status)`);
console.log(`  GET /v1/catalog, caches expired      p50 ${f(figures.expiredP50)}  p95 ${f(figures.expiredP95)}  (${(figures.expiredP50 / figures.statusP50).toFixed(2)}x status)`);
console.log(`  GET /v1/catalog, cold (first)        median ${f(figures.coldMedian)}`);
console.log(`  GET /v1/catalog?team=team-7          median ${f(figures.teamMedian)};  GET /v1/scorecards median ${f(figures.scorecardsMedian)}`);
console.log(JSON.stringify({ bench: "catalog", services: SERVICES, runs: RUNS, requests: REQUESTS, figures }));
