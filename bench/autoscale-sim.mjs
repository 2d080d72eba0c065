// Benchmark: the autoscaler on a simulated service, in simulated time (no wall-clock waiting).
// Replicas each serve up to CAPACITY requests at once in SERVICE_MS, start in START_MS, and sit
// behind a load balancer that spreads requests evenly over the ready ones; requests beyond a
// replica's capacity queue at it. The real `createAutoscaler` runs on an injected clock with a
// MemoryStore, a LoadReader fed by the simulator (what the gateway's live stats would say:
// per-replica mean concurrency by Little's law over the window) and a `scale` that starts
// replicas after START_MS. Scenarios: (1) a step to 5x load; (2) steady load with ±20% noise for
// 30 minutes; (3) load whose noise keeps the ratio at the edge of the tolerance, so the count has
// reasons to move both ways. Flapping is measured over sliding windows: the changes in any 300 s,
// and the shortest gap between two changes in opposite directions (a flap), per kind: a scale-up
// undone, which the scale-down stabilization must keep at least as long as its window, and a
// scale-down undone, which only the load decides (HPA's default has no scale-up stabilization).
// The reference is the same simulator
// under Kubernetes HPA defaults: a 15 s sync,
// metrics 30 s old and averaged over 60 s (metrics-server), the same 300 s scale-down
// stabilization and scaling policies (hpa.ts implements HPA's algorithm, so the code is shared).
// Usage: node bench/autoscale-sim.mjs [--runs 20] [--json]   (after `npm run build`)
import { performance } from "node:perf_hooks";
import { createAutoscaler } from "../packages/platform/dist/autoscale/index.js";
import { createMemoryStore } from "../packages/platform/dist/store/index.js";
import { rng } from "./seeded-random.mjs";

/** The simulated service: per-replica concurrency capacity, service time, start time. */
export const SERVICE = { capacity: 20, serviceMs: 100, startMs: 800 };
/** Requests per second one replica serves at the default target (10 in flight × 1000 / 100 ms). */
const RPS_AT_TARGET = (10 * 1000) / SERVICE.serviceMs;
const DT_MS = 100;
const TICK_MS = 500;
const EPOCH = Date.parse("2026-01-01T00:00:00.000Z");

export const CONTROLLERS = {
  keelson: { label: "Keelson (defaults: 2 s interval, 10 s window)", autoscale: { min: 1, max: 30 }, metricsDelayMs: 0 },
  hpa: { label: "HPA defaults (15 s sync, metrics 30 s old, 60 s average)", autoscale: { min: 1, max: 30, interval: 15_000, window: 60_000 }, metricsDelayMs: 30_000 },
};

/** The scale-down stabilization window of both controllers (HPA's default): a flap must not be shorter. */
export const SCALE_DOWN_WINDOW_S = 300;

export const SCENARIOS = {
  step: { label: "(1) step from 200 to 1000 req/s (5x)", baseRps: 200, stepRps: 1000, replicas: 2, stepAtS: 120, afterS: 180, targetS: 10 },
  noise: { label: "(2) 800 req/s ±20% noise (a new level every 5 s) for 30 min", baseRps: 800, noise: 0.2, noiseEveryS: 5, replicas: 8, durationS: 1800, windowS: SCALE_DOWN_WINDOW_S, maxChangesPerWindow: 1 },
  // 10 replicas carry 1000 req/s exactly at target; ±12% lasting a minute each crosses the 10%
  // tolerance now up, now down, so the count has reasons to move both ways.
  edge: { label: "(3) 1000 req/s ±12% noise (a new level every 60 s) for 30 min, at the tolerance edge", baseRps: 1000, noise: 0.12, noiseEveryS: 60, replicas: 10, durationS: 1800, windowS: SCALE_DOWN_WINDOW_S },
};

/** The service's replicas and their traffic, one bin per simulated second. */
function createCluster(initialReplicas) {
  const mu = (SERVICE.capacity * 1000) / SERVICE.serviceMs; // requests/s one replica completes at most
  let next = 0;
  const replicas = [];
  const add = (nowMs, startMs) => replicas.push({ id: `svc-${next++}`, startedAtMs: nowMs, readyAtMs: nowMs + startMs, queue: 0, requests: new Map(), latencyMs: new Map() });
  for (let i = 0; i < initialReplicas; i++) add(-3_600_000, 0);
  return {
    replicas,
    ready: (nowMs) => replicas.filter((r) => r.readyAtMs <= nowMs),
    /** Moves the cluster by one step of `dtMs` at `rps` offered load. */
    advance(nowMs, dtMs, rps) {
      const ready = replicas.filter((r) => r.readyAtMs <= nowMs);
      if (ready.length === 0) return;
      const dt = dtMs / 1000;
      const arrivals = (rps * dt) / ready.length;
      const second = Math.floor(nowMs / 1000);
      for (const r of ready) {
        const served = Math.min(r.queue + arrivals, mu * dt);
        r.queue += arrivals - served;
        // Each request completed now waited behind the queue left, then took the service time.
        const latency = SERVICE.serviceMs + (r.queue / mu) * 1000;
        r.requests.set(second, (r.requests.get(second) ?? 0) + served);
        r.latencyMs.set(second, (r.latencyMs.get(second) ?? 0) + served * latency);
      }
    },
    /** Sets the replica count: new replicas serve after `startMs`; removed ones (newest first) hand their queue to the rest. */
    scaleTo(count, nowMs, startMs) {
      while (replicas.length < count) add(nowMs, startMs);
      while (replicas.length > count) {
        const gone = replicas.pop();
        if (replicas.length > 0) for (const r of replicas) r.queue += gone.queue / replicas.length;
      }
    },
  };
}

/** What a LoadReader sees: per-replica mean concurrency and rps over [from, to), readiness now. */
function observe(cluster, nowMs, windowMs, delayMs) {
  const to = nowMs - delayMs;
  const from = to - windowMs;
  let requests = 0;
  const replicas = cluster.replicas.map((r) => {
    const load = { replica: r.id, ready: r.readyAtMs <= nowMs, startedAtMs: EPOCH + r.startedAtMs };
    // A replica that served in no part of the window has no sample yet: missing (in the gateway,
    // not yet in the routing table; for the reference, a pod metrics-server has not scraped).
    if (r.readyAtMs >= to) return load;
    let n = 0;
    let latency = 0;
    for (let s = Math.floor(from / 1000); s < Math.ceil(to / 1000); s++) {
      n += r.requests.get(s) ?? 0;
      latency += r.latencyMs.get(s) ?? 0;
    }
    requests += n;
    // Over the whole window, as the gateway reader: the replicas add up to the service's concurrency.
    load.inflight = latency / windowMs;
    load.rps = n / (windowMs / 1000);
    return load;
  });
  return { service: "svc", atMs: EPOCH + nowMs, windowMs, requests, replicas };
}

/**
 * One run of a scenario under one controller. Returns the replica counts over time and the
 * figures of the scenario: reaction (step) or changes per window (noise).
 */
export async function simulateRun(scenarioName, controllerName, seed, autoscaleOverrides = {}) {
  const scenario = SCENARIOS[scenarioName];
  const controller = { ...CONTROLLERS[controllerName], autoscale: { ...CONTROLLERS[controllerName].autoscale, ...autoscaleOverrides } };
  const random = rng(seed);
  let nowMs = 0;
  const clock = () => EPOCH + nowMs;
  const store = createMemoryStore({ now: clock });
  await store.applyDesiredState({
    project: { name: "sim", manifestPath: "/sim/keelson.yaml", manifestHash: "sim", appliedAt: new Date(EPOCH).toISOString() },
    upsert: [{ project: "sim", name: "svc", spec: { replicas: scenario.replicas, autoscale: controller.autoscale }, release: undefined }],
    remove: [],
    events: [],
  });
  await store.setServiceRelease("sim", "svc", "r-1");
  const cluster = createCluster(scenario.replicas);
  const changes = [];
  const autoscaler = createAutoscaler({
    store,
    project: "sim",
    now: clock,
    load: {
      // The reference ignores the requested window: metrics-server's samples are what they are.
      read: async (_service, windowMs) => observe(cluster, nowMs, controller.metricsDelayMs > 0 ? 60_000 : windowMs, controller.metricsDelayMs),
    },
    async scale(service, replicas) {
      const from = cluster.replicas.length;
      await store.setServiceReplicas("sim", service, replicas);
      cluster.scaleTo(replicas, nowMs, SERVICE.startMs);
      changes.push({ atMs: nowMs, from, to: replicas });
    },
  });

  const phaseMs = Math.floor(random() * 15_000);
  const stepAtMs = scenario.stepAtS === undefined ? undefined : scenario.stepAtS * 1000 + phaseMs;
  const endMs = stepAtMs === undefined ? scenario.durationS * 1000 : stepAtMs + scenario.afterS * 1000;
  let level = 1;
  let readyAtStep;
  let extraServingAtMs;
  let fullAtMs;
  let overloadedMs = 0;
  const needed = scenario.stepRps === undefined ? undefined : Math.ceil(scenario.stepRps / RPS_AT_TARGET);
  for (; nowMs < endMs; nowMs += DT_MS) {
    if (scenario.noise !== undefined && nowMs % (scenario.noiseEveryS * 1000) === 0) level = 1 + scenario.noise * (2 * random() - 1);
    const rps = stepAtMs !== undefined && nowMs >= stepAtMs ? scenario.stepRps : scenario.baseRps * level;
    cluster.advance(nowMs, DT_MS, rps);
    const ready = cluster.ready(nowMs).length;
    if (ready > 0 && rps / ready > (SERVICE.capacity * 1000) / SERVICE.serviceMs) overloadedMs += DT_MS;
    if (stepAtMs !== undefined && nowMs >= stepAtMs) {
      readyAtStep ??= ready;
      if (extraServingAtMs === undefined && ready > readyAtStep) extraServingAtMs = nowMs;
      if (fullAtMs === undefined && ready >= needed) fullAtMs = nowMs;
    }
    if (nowMs % TICK_MS === 0) await autoscaler.tick();
  }
  await autoscaler.stop();
  if (stepAtMs !== undefined) {
    return {
      reactionS: extraServingAtMs === undefined ? undefined : (extraServingAtMs - stepAtMs) / 1000,
      fullS: fullAtMs === undefined ? undefined : (fullAtMs - stepAtMs) / 1000,
      overloadedS: overloadedMs / 1000,
      peak: Math.max(scenario.replicas, ...changes.map((c) => c.to)),
      changes: changes.map((c) => ({ atS: (c.atMs - stepAtMs) / 1000, from: c.from, to: c.to })),
    };
  }
  const flapping = measureFlapping(changes, scenario.windowS * 1000);
  return {
    changes: changes.length,
    ...flapping,
    meanPerWindow: changes.length / (scenario.durationS / scenario.windowS),
    final: cluster.replicas.length,
    trail: changes.map((c) => `${c.from}→${c.to}@${Math.round(c.atMs / 1000)}s`),
  };
}

/**
 * How much a list of replica-count changes (oldest first) flaps: the most changes in any window
 * of `windowMs` (sliding, so two changes a second apart count together wherever they fall), and
 * the flaps, two changes in a row in opposite directions, per kind: `upDown` (a scale-up undone)
 * and `downUp` (a scale-down undone), each with its count and shortest gap in seconds (undefined
 * without one). Only neighbours need comparing: the closest pair of opposite changes is always
 * adjacent in time.
 *
 * @example
 * measureFlapping([{ atMs: 0, from: 2, to: 3 }, { atMs: 30_000, from: 3, to: 2 }], 300_000);
 * // { maxPerWindow: 2, upDown: { count: 1, minGapS: 30 }, downUp: { count: 0, minGapS: undefined } }
 */
export function measureFlapping(changes, windowMs) {
  let maxPerWindow = 0;
  for (let i = 0; i < changes.length; i++) {
    let n = 0;
    for (let j = i; j < changes.length && changes[j].atMs < changes[i].atMs + windowMs; j++) n++;
    maxPerWindow = Math.max(maxPerWindow, n);
  }
  const upDown = { count: 0, minGapS: undefined };
  const downUp = { count: 0, minGapS: undefined };
  for (let i = 1; i < changes.length; i++) {
    const before = Math.sign(changes[i - 1].to - changes[i - 1].from);
    const after = Math.sign(changes[i].to - changes[i].from);
    if (before === after || before === 0 || after === 0) continue;
    const kind = before > 0 ? upDown : downUp;
    const gapS = (changes[i].atMs - changes[i - 1].atMs) / 1000;
    kind.count++;
    if (kind.minGapS === undefined || gapS < kind.minGapS) kind.minGapS = gapS;
  }
  return { maxPerWindow, upDown, downUp };
}

function quantile(xs, q) {
  const v = xs.filter((x) => x !== undefined).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v[Math.min(v.length - 1, Math.floor(q * v.length))];
}

/** Every run of a scenario under both controllers, summarized. */
export async function simulateScenario(scenarioName, runs, seed0 = 1) {
  const scenario = SCENARIOS[scenarioName];
  const out = { name: scenarioName, label: scenario.label, runs };
  for (const controller of Object.keys(CONTROLLERS)) {
    const results = [];
    for (let i = 0; i < runs; i++) results.push(await simulateRun(scenarioName, controller, seed0 + i * 7919));
    if (scenario.stepRps !== undefined) {
      const reaction = results.map((r) => r.reactionS);
      const full = results.map((r) => r.fullS);
      out[controller] = {
        reaction: { p50: quantile(reaction, 0.5), max: quantile(reaction, 1), missed: reaction.filter((x) => x === undefined).length },
        full: { p50: quantile(full, 0.5), max: quantile(full, 1) },
        overloadedS: { p50: quantile(results.map((r) => r.overloadedS), 0.5) },
        peak: { p50: quantile(results.map((r) => r.peak), 0.5), max: Math.max(...results.map((r) => r.peak)) },
        example: results[0].changes,
      };
    } else {
      const flaps = (kind) => {
        const gaps = results.map((r) => r[kind].minGapS).filter((g) => g !== undefined);
        return { total: results.reduce((a, r) => a + r[kind].count, 0), runs: results.filter((r) => r[kind].count > 0).length, minGapS: gaps.length === 0 ? undefined : Math.min(...gaps) };
      };
      out[controller] = {
        changes: { p50: quantile(results.map((r) => r.changes), 0.5), max: Math.max(...results.map((r) => r.changes)) },
        // mean: changes per window length over the run; max: the most in any sliding window of that length.
        perWindow: { mean: results.reduce((a, r) => a + r.meanPerWindow, 0) / runs, max: Math.max(...results.map((r) => r.maxPerWindow)) },
        upDown: flaps("upDown"),
        downUp: flaps("downUp"),
        example: results[0].trail,
      };
    }
  }
  return out;
}

function report(results) {
  const lines = [];
  const s = (x) => (Number.isFinite(x) ? `${x.toFixed(1)} s` : "-");
  const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : "-");
  for (const r of results) {
    lines.push(`${r.label} (${r.runs} runs)`);
    if (r.keelson.reaction) {
      for (const who of Object.keys(CONTROLLERS)) {
        const x = r[who];
        lines.push(`  ${who.padEnd(8)} extra replicas serving after p50 ${s(x.reaction.p50)}, max ${s(x.reaction.max)}; all ${Math.ceil(SCENARIOS.step.stepRps / RPS_AT_TARGET)} serving after p50 ${s(x.full.p50)}, max ${s(x.full.max)}; over capacity p50 ${s(x.overloadedS.p50)}; peak replicas p50 ${x.peak.p50}, max ${x.peak.max}; first run: ${x.example.map((c) => `${c.from}→${c.to}@+${c.atS}s`).join(" ")}`);
      }
      lines.push(`  ratio keelson/hpa: reaction p50 ${ratio(r.keelson.reaction.p50, r.hpa.reaction.p50)}, all serving p50 ${ratio(r.keelson.full.p50, r.hpa.full.p50)} (target: reaction < ${SCENARIOS.step.targetS} s)`);
    } else {
      for (const who of Object.keys(CONTROLLERS)) {
        const x = r[who];
        const flaps = (f) => `${f.total} in ${f.runs} runs${f.minGapS === undefined ? "" : `, shortest ${f.minGapS.toFixed(0)} s`}`;
        lines.push(
          `  ${who.padEnd(8)} replica-count changes in 30 min: p50 ${x.changes.p50}, max ${x.changes.max}; per 300 s: mean ${x.perWindow.mean.toFixed(2)}, max in any 300 s ${x.perWindow.max}; scale-ups undone: ${flaps(x.upDown)}; scale-downs undone: ${flaps(x.downUp)}; first run: ${x.example.join(" ") || "none"}`,
        );
      }
      const max = SCENARIOS[r.name].maxChangesPerWindow;
      lines.push(`  (target: no scale-up undone within the ${SCALE_DOWN_WINDOW_S} s scale-down window${max === undefined ? "" : `; at most ${max} change in any ${SCALE_DOWN_WINDOW_S} s`})`);
    }
  }
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf("--runs");
  const runs = i > 0 ? Number(process.argv[i + 1]) : 20;
  const started = performance.now();
  const results = [];
  for (const name of Object.keys(SCENARIOS)) results.push(await simulateScenario(name, runs));
  if (process.argv.includes("--json")) console.log(JSON.stringify(results, null, 2));
  else console.log(`${report(results)}\n(${runs} runs per scenario and controller in ${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
