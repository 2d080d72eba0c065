// Benchmark: plan and reconcile a manifest of 500 services against the in-memory store
// and fake driver, beside a reference run (parsing + validating the same manifest).
// Usage: node bench/reconcile.mjs [--services 500] [--runs 5]
import { performance } from "node:perf_hooks";
import { createMemoryDriver, createMemoryStore, createReconciler, parseManifest, planManifest } from "../packages/platform/dist/index.js";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const SERVICES = Number(args.services ?? 500);
const RUNS = Number(args.runs ?? 5);

function manifestText(n, replicas) {
  const lines = ["project: big", "services:"];
  for (let i = 0; i < n; i++) {
    lines.push(`  svc-${i}:`, "    owner: team-a", `    path: services/svc-${i}`, "    start: node dist/main.js", `    replicas: ${replicas}`, "    readiness: /ready", `    routes: [/api/svc-${i}]`);
    if (i > 0) lines.push(`    calls: [svc-${i - 1}]`);
    lines.push("    env: { LOG_LEVEL: info }");
  }
  return `${lines.join("\n")}\n`;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function once() {
  const text1 = manifestText(SERVICES, 1);
  const text2 = manifestText(SERVICES, 2);
  const t0 = performance.now();
  const loaded = parseManifest(text1, "/tmp/big/keelson.yaml", { checkPaths: false });
  const parseMs = performance.now() - t0;

  const store = createMemoryStore();
  const driver = createMemoryDriver({ readyDelayMs: 0 });
  const reconciler = createReconciler({ store, driver, project: "big", stateDir: "/tmp/keelson-bench-state", gatewayUrl: "http://127.0.0.1:8080", skipBuilds: true });

  let t = performance.now();
  const plan1 = await planManifest(loaded, await store.listServices("big"), { hashSources: false });
  const planEmptyMs = performance.now() - t;

  t = performance.now();
  const r1 = await reconciler.apply(loaded, { actor: "bench" });
  const applyMs = performance.now() - t;
  if (r1.failures.length) throw new Error(`apply failed: ${JSON.stringify(r1.failures[0])}`);
  if (driver.list().length !== SERVICES) throw new Error(`expected ${SERVICES} replicas, got ${driver.list().length}`);

  const loaded2 = parseManifest(text2, "/tmp/big/keelson.yaml", { checkPaths: false });
  t = performance.now();
  const plan2 = await planManifest(loaded2, await store.listServices("big"), { hashSources: false });
  const planChangeMs = performance.now() - t;
  if (plan2.changes.length !== SERVICES) throw new Error(`expected ${SERVICES} changes, got ${plan2.changes.length}`);

  t = performance.now();
  const r2 = await reconciler.apply(loaded2, { actor: "bench" });
  const scaleMs = performance.now() - t;
  if (r2.failures.length || driver.list().length !== 2 * SERVICES) throw new Error("scale apply did not converge");

  t = performance.now();
  const r3 = await reconciler.apply(loaded2, { actor: "bench" });
  const noopMs = performance.now() - t;
  if (r3.plan.changes.length !== 0) throw new Error("second apply was not a no-op");
  await reconciler.stop();
  return { parseMs, planEmptyMs, applyMs, planChangeMs, scaleMs, noopMs, creates: plan1.changes.length };
}

const results = [];
for (let i = 0; i < RUNS; i++) results.push(await once());
const keys = ["parseMs", "planEmptyMs", "applyMs", "planChangeMs", "scaleMs", "noopMs"];
const med = Object.fromEntries(keys.map((k) => [k, median(results.map((r) => r[k]))]));
console.log(`reconcile benchmark: ${SERVICES} services, ${RUNS} runs, medians (node ${process.version})`);
console.log(`  reference: parse + validate manifest     ${med.parseMs.toFixed(1)} ms`);
for (const [k, label] of [
  ["planEmptyMs", "plan, empty store (500 creates)"],
  ["applyMs", "apply + converge, 500 creates     "],
  ["planChangeMs", "plan, 500 replica changes       "],
  ["scaleMs", "apply + converge, 500 scale-ups  "],
  ["noopMs", "apply again (no changes)          "],
]) {
  console.log(`  ${label}  ${med[k].toFixed(1)} ms  (${(med[k] / med.parseMs).toFixed(2)}x parse)`);
}
console.log(JSON.stringify({ bench: "reconcile", services: SERVICES, runs: RUNS, medianMs: med }));
