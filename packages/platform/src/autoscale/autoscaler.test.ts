import { createServer, type Server } from "node:http";
import { KeelsonError } from "@keelson/protocol";
import type { KeelsonEvent } from "@keelson/protocol";
import { waitFor } from "#test-support";
import { describe, expect, it } from "vitest";
import { LATENCY_BOUNDS_MS, type StatsSnapshot } from "../gateway/index.js";
import type { ReplicaInfo } from "../runtime/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { checkLoad, createAutoscaler, EVALUATIONS_KEPT, type AutoscalerLog, type LoadReader } from "./autoscaler.js";
import { createGatewayLoadReader } from "./gateway-load-reader.js";
import type { ServiceLoad } from "./hpa.js";

const START = Date.parse("2026-03-01T10:00:00.000Z");
const PROJECT = "shop";

type LoadAnswer = ServiceLoad | undefined | Error | Record<string, unknown>;

interface Harness {
  store: Store;
  clock: { now: () => number; advance: (ms: number) => void };
  /** What the reader answers per service (a function of the time, or a fixed answer). */
  loads: Map<string, LoadAnswer | ((nowMs: number) => LoadAnswer)>;
  reads: string[];
  scales: Array<{ service: string; replicas: number; why: Record<string, unknown> }>;
  /** When set, scale() throws this. */
  failScale: { error: Error | undefined };
  logs: Array<{ level: string; obj: object; msg: string | undefined }>;
  autoscaler: ReturnType<typeof createAutoscaler>;
  replicas(service?: string): Promise<number | undefined>;
  events(kind?: KeelsonEvent["kind"]): Promise<KeelsonEvent[]>;
  /** Advances the clock by `ms` in steps of `stepMs`, ticking at each step. */
  run(ms: number, stepMs?: number): Promise<void>;
}

async function setup(
  services: Record<string, { spec: Record<string, unknown>; release?: string | null }>,
  options: { now?: () => number; tickMs?: number; store?: Store; reader?: (clock: Harness["clock"]) => LoadReader } = {},
): Promise<Harness> {
  let nowMs = START;
  const clock = { now: () => nowMs, advance: (ms: number) => void (nowMs += ms) };
  const store = options.store ?? createMemoryStore({ now: clock.now });
  await store.applyDesiredState({
    project: { name: PROJECT, manifestPath: "/srv/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date(START).toISOString() },
    upsert: Object.entries(services).map(([name, s]) => ({ project: PROJECT, name, spec: s.spec, release: undefined })),
    remove: [],
    events: [],
  });
  for (const [name, s] of Object.entries(services)) if (s.release !== null) await store.setServiceRelease(PROJECT, name, s.release ?? "r-1");
  const loads = new Map<string, LoadAnswer | ((nowMs: number) => LoadAnswer)>();
  const reads: string[] = [];
  const scales: Harness["scales"] = [];
  const failScale: Harness["failScale"] = { error: undefined };
  const logs: Harness["logs"] = [];
  const log: AutoscalerLog = {
    info: (obj, msg) => logs.push({ level: "info", obj, msg }),
    warn: (obj, msg) => logs.push({ level: "warn", obj, msg }),
    error: (obj, msg) => logs.push({ level: "error", obj, msg }),
  };
  const reader: LoadReader = {
    async read(service) {
      reads.push(service);
      const a = loads.get(service);
      const answer = typeof a === "function" ? a(clock.now()) : a;
      if (answer instanceof Error) throw answer;
      return answer as ServiceLoad | undefined;
    },
  };
  const autoscaler = createAutoscaler({
    store,
    project: PROJECT,
    load: options.reader?.(clock) ?? reader,
    now: options.now ?? clock.now,
    ...(options.tickMs === undefined ? {} : { tickMs: options.tickMs }),
    log,
    async scale(service, replicas, why) {
      if (failScale.error) throw failScale.error;
      scales.push({ service, replicas, why });
      await store.setServiceReplicas(PROJECT, service, replicas);
    },
  });
  return {
    store,
    clock,
    loads,
    reads,
    scales,
    failScale,
    logs,
    autoscaler,
    async replicas(service = "orders") {
      return ((await store.getService(PROJECT, service))?.spec as { replicas?: number }).replicas;
    },
    events: (kind) => store.listEvents({ project: PROJECT, ...(kind ? { kinds: [kind] } : {}) }),
    async run(ms, stepMs = 1_000) {
      for (let t = 0; t < ms; t += stepMs) {
        clock.advance(stepMs);
        await autoscaler.tick();
      }
    },
  };
}

/** `n` ready replicas, each at `inflight` mean concurrency. */
function load(n: number, inflight: number, extra: Partial<ServiceLoad> = {}): (nowMs: number) => ServiceLoad {
  return (nowMs) => ({
    service: "orders",
    atMs: nowMs,
    windowMs: 10_000,
    requests: inflight > 0 ? 100 : 0,
    replicas: Array.from({ length: n }, (_, i) => ({ replica: `orders-${i}`, ready: true, inflight })),
    ...extra,
  });
}

/** `total` mean concurrency spread evenly over the replicas the autoscaler last asked for (`initial` before that). */
function demand(h: Harness, total: number, initial: number): (nowMs: number) => ServiceLoad {
  return (nowMs) => {
    const n = h.scales.at(-1)?.replicas ?? initial;
    return load(n, n === 0 ? 0 : total / n)(nowMs);
  };
}

const orders = (autoscale: Record<string, unknown>, replicas = 2) => ({ orders: { spec: { replicas, autoscale } } });

describe("createAutoscaler", () => {
  it("scales up and records the inputs of the decision in an autoscale.scaled event", async () => {
    const h = await setup(orders({ min: 1, max: 10 }));
    h.loads.set("orders", load(2, 30));
    await h.autoscaler.tick();
    expect(h.scales).toHaveLength(1);
    expect(h.scales[0]).toMatchObject({ service: "orders", replicas: 6 });
    expect(await h.replicas()).toBe(6);
    const [scaled] = await h.events("autoscale.scaled");
    expect(scaled).toMatchObject({ actor: "autoscaler", subject: "service/orders" });
    expect(scaled!.details).toMatchObject({
      from: 2,
      to: 6,
      reason: "scale-up",
      metrics: [{ measure: "inflight", current: 30, target: 10, ratio: 3, proposal: 6, replicas: { ready: 2, notReady: 0, missing: 0 } }],
      replicas: { total: 2, ready: 2, notReady: 0, missing: 0 },
      requests: 100,
      recommendation: 6,
      stabilization: { replicas: 6, upWindowMs: 0, downWindowMs: 300_000 },
      policy: { replicas: 6, scaleUpLimit: 6, min: 1, max: 10, scaleUpSelect: "max" },
    });
    // scale() gets the same inputs.
    expect(h.scales[0]!.why).toEqual(scaled!.details);
  });

  it("ignores services without autoscale and skips those without a release", async () => {
    const h = await setup({ web: { spec: { replicas: 2 } }, cart: { spec: { replicas: 1, autoscale: { min: 1, max: 3 } }, release: null }, ...orders({ min: 1, max: 10 }) });
    h.loads.set("orders", load(2, 10));
    await h.autoscaler.tick();
    expect(h.reads).toEqual(["orders"]);
    expect(h.autoscaler.status("web")).toBeUndefined();
    expect(h.autoscaler.status("cart")).toBeUndefined();
  });

  it("looks at each service once per interval", async () => {
    const h = await setup({ ...orders({ min: 1, max: 10 }), cart: { spec: { replicas: 1, autoscale: { min: 1, max: 3, interval: "5s" } } } });
    h.loads.set("orders", load(2, 10));
    h.loads.set("cart", load(1, 10));
    await h.autoscaler.tick();
    await h.run(9_000, 500);
    // orders every 2 s (0, 2, ..., 8), cart every 5 s (0, 5)
    expect(h.reads.filter((s) => s === "orders")).toHaveLength(5);
    expect(h.reads.filter((s) => s === "cart")).toHaveLength(2);
  });

  it("holds the count when the metrics source gives nothing or throws, and records why once per reason", async () => {
    const h = await setup(orders({ min: 1, max: 10 }, 4));
    h.loads.set("orders", undefined);
    await h.autoscaler.tick();
    await h.run(10_000, 2_000);
    h.loads.set("orders", new Error("connect ECONNREFUSED 127.0.0.1:7071"));
    await h.run(10_000, 2_000);
    expect(await h.replicas()).toBe(4);
    expect(h.scales).toEqual([]);
    let held = await h.events("autoscale.held");
    expect(held).toHaveLength(1);
    expect(held[0]!.details).toMatchObject({ reason: "metrics-unavailable", from: 4, to: 4, message: expect.stringMatching(/no load for the service/) });
    expect(h.autoscaler.status("orders")?.held).toMatchObject({ reason: "metrics-unavailable", message: expect.stringMatching(/ECONNREFUSED/) });
    expect(h.logs.filter((l) => l.level === "warn" && l.msg === "autoscaler holds the replica count")).toHaveLength(1);
    // Load again, below target: a different reason to hold (stabilization) is a new event.
    h.loads.set("orders", load(4, 5));
    await h.run(4_000, 2_000);
    held = await h.events("autoscale.held");
    expect(held.map((e) => e.details.reason)).toEqual(["metrics-unavailable", "stabilization"]);
  });

  it("waits out the scale-down stabilization window with one held event, then scales down", async () => {
    const h = await setup(orders({ min: 1, max: 10 }, 4));
    h.loads.set("orders", load(4, 5));
    await h.autoscaler.tick();
    await h.run(298_000, 2_000);
    expect(await h.replicas()).toBe(4);
    const held = await h.events("autoscale.held");
    expect(held).toHaveLength(1);
    expect(held[0]!.details).toMatchObject({ reason: "stabilization", recommendation: 2, stabilization: { replicas: 4, highestDown: 4, downWindowMs: 300_000 } });
    await h.run(2_000, 2_000);
    expect(await h.replicas()).toBe(2);
    expect((await h.events("autoscale.scaled")).map((e) => e.details)).toMatchObject([{ from: 4, to: 2, reason: "scale-down" }]);
  });

  it("never crashes on bad input: NaN and negative metrics count as missing and are logged once", async () => {
    const h = await setup(orders({ min: 1, max: 10 }, 3));
    h.loads.set("orders", (nowMs) => ({
      service: "orders",
      atMs: nowMs,
      windowMs: 10_000,
      requests: 100,
      replicas: [
        { replica: "orders-0", ready: true, inflight: 30 },
        { replica: "orders-1", ready: true, inflight: Number.NaN },
        { replica: "orders-2", ready: true, inflight: -4 },
      ],
    }));
    await h.autoscaler.tick();
    await h.run(4_000, 2_000);
    // 30 / 3 = 10 once the two bad values count as 0 on a scale-up: on target, no change.
    expect(h.scales).toEqual([]);
    expect(h.autoscaler.status("orders")?.evaluations.at(-1)).toMatchObject({ outcome: "steady", inputs: { measures: [{ replicas: { ready: 1, missing: 2 }, adjustedRatio: 1 }] } });
    const warned = h.logs.filter((l) => l.msg === "bad values in the service's load");
    expect(warned).toHaveLength(1);
    expect((warned[0]!.obj as { problems: string[] }).problems).toEqual(["replica orders-1: inflight NaN is not a non-negative number", "replica orders-2: inflight -4 is not a non-negative number"]);
  });

  it("never crashes on bad input: an unusable answer holds the count", async () => {
    const h = await setup(orders({ min: 1, max: 10 }, 3));
    h.loads.set("orders", { service: "orders", requests: Number.NaN, replicas: "none" });
    await h.autoscaler.tick();
    expect(h.scales).toEqual([]);
    expect(h.autoscaler.status("orders")?.held).toMatchObject({ reason: "metrics-unavailable", message: expect.stringMatching(/requests: expected a non-negative number, got NaN; replicas: expected a list/) });
  });

  it("holds when scale() throws, reports it once, and tries again at the next look", async () => {
    const h = await setup(orders({ min: 1, max: 10 }));
    h.loads.set("orders", load(2, 30));
    h.failScale.error = new KeelsonError("KEELSON_ERR_RUNTIME", "driver down");
    await h.autoscaler.tick();
    await h.run(4_000, 2_000);
    expect(await h.replicas()).toBe(2);
    const held = await h.events("autoscale.held");
    expect(held).toHaveLength(1);
    expect(held[0]!.details).toMatchObject({ reason: "scale-failed", attempted: 6, to: 2, message: "scaling 2 → 6 failed: driver down" });
    expect(h.logs.filter((l) => l.level === "error" && l.msg === "autoscaler could not scale")).toHaveLength(3);
    h.failScale.error = undefined;
    await h.run(2_000, 2_000);
    // The failed attempts did not use up the scale-up policy: straight to 6.
    expect(await h.replicas()).toBe(6);
    expect(h.autoscaler.status("orders")?.held).toBeUndefined();
  });

  it("status explains the last looks: inputs, recommendation, outcome and reason", async () => {
    const h = await setup(orders({ min: 1, max: 8 }));
    h.loads.set("orders", load(2, 30));
    await h.autoscaler.tick();
    h.loads.set("orders", load(6, 30));
    await h.run(50_000, 2_000);
    const status = h.autoscaler.status("orders")!;
    expect(status).toMatchObject({ service: "orders", current: 8, desired: 8, min: 1, max: 8, target: { inflight: 10 }, held: { reason: "max" } });
    expect(status.metrics).toMatchObject([{ measure: "inflight", current: 30, ratio: 3 }]);
    expect(status.evaluations).toHaveLength(EVALUATIONS_KEPT);
    expect(status.evaluations[0]!.atMs).toBeLessThan(status.evaluations.at(-1)!.atMs);
    expect(status.evaluations.at(-1)).toMatchObject({
      from: 8,
      to: 8,
      outcome: "held",
      reason: "max",
      recommendation: 18,
      limitedBy: "max",
      inputs: { requests: 100, windowMs: 10_000, replicas: { total: 6, ready: 6, notReady: 0 } },
    });
    expect(status.evaluations.at(-1)!.message).toMatch(/held at 8: max is 8/);
    expect(h.autoscaler.status("nope")).toBeUndefined();
  });

  it("activate() scales a service at zero to max(1, min) at once and records service.activated", async () => {
    const h = await setup(orders({ min: 0, max: 4 }, 0));
    expect(await h.autoscaler.activate("orders")).toEqual({ from: 0, to: 1 });
    expect(h.scales).toMatchObject([{ service: "orders", replicas: 1, why: { reason: "activated", trigger: "request held by the gateway" } }]);
    expect((await h.events("service.activated")).map((e) => e.details)).toMatchObject([{ from: 0, to: 1, reason: "activated" }]);
    // Already running: nothing to do.
    expect(await h.autoscaler.activate("orders")).toEqual({ from: 1, to: 1 });
    expect(h.scales).toHaveLength(1);
    expect(h.autoscaler.status("orders")?.evaluations.at(-1)).toMatchObject({ outcome: "scaled", reason: "activated", from: 0, to: 1 });
  });

  it("activate() refuses unknown, not autoscaled and unreleased services", async () => {
    const h = await setup({ web: { spec: { replicas: 0 } }, cart: { spec: { replicas: 0, autoscale: { min: 0, max: 2 } }, release: null } });
    await expect(h.autoscaler.activate("nope")).rejects.toMatchObject({ code: "KEELSON_ERR_NOT_FOUND" });
    await expect(h.autoscaler.activate("web")).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT" });
    await expect(h.autoscaler.activate("cart")).rejects.toMatchObject({ code: "KEELSON_ERR_CONFLICT" });
  });

  it("activate() passes on a failing scale() after logging it", async () => {
    const h = await setup(orders({ min: 0, max: 4 }, 0));
    h.failScale.error = new Error("reconciler busy");
    await expect(h.autoscaler.activate("orders")).rejects.toThrow("reconciler busy");
    expect((await h.events("autoscale.held")).map((e) => e.details)).toMatchObject([{ reason: "scale-failed", attempted: 1 }]);
  });

  it("a service at zero with requests in its metrics is activated at the next look", async () => {
    const h = await setup(orders({ min: 0, max: 4 }, 0));
    h.loads.set("orders", load(0, 0, { requests: 0 }));
    await h.autoscaler.tick();
    expect(h.autoscaler.status("orders")?.evaluations.at(-1)).toMatchObject({ outcome: "steady", reason: "idle-at-zero" });
    h.loads.set("orders", load(0, 0, { requests: 2 }));
    await h.run(2_000, 2_000);
    expect(await h.replicas()).toBe(1);
    expect(await h.events("service.activated")).toHaveLength(1);
  });

  it("scales to zero only after scaleToZero.idle without requests", async () => {
    const h = await setup(orders({ min: 0, max: 4 }, 1));
    h.loads.set("orders", load(1, 0, { requests: 0 }));
    await h.autoscaler.tick();
    await h.run(298_000, 2_000);
    expect(await h.replicas()).toBe(1);
    expect((await h.events("autoscale.held")).map((e) => e.details.reason)).toEqual(["stabilization"]);
    await h.run(2_000, 2_000);
    expect(await h.replicas()).toBe(0);
    expect((await h.events("autoscale.scaled")).map((e) => e.details)).toMatchObject([{ from: 1, to: 0, reason: "scale-to-zero", idleForMs: 300_000 }]);
  });

  it("goes to zero after scaleToZero.idle even when that is shorter than the scale-down window (KEDA's cooldown)", async () => {
    const h = await setup(orders({ min: 0, max: 4, scaleToZero: { idle: "1m" } }, 2));
    h.loads.set("orders", load(2, 0, { requests: 0 }));
    await h.autoscaler.tick();
    await h.run(58_000, 2_000);
    expect(await h.replicas()).toBe(2);
    await h.run(2_000, 2_000);
    expect(await h.replicas()).toBe(0);
    expect((await h.events("autoscale.scaled")).map((e) => e.details)).toMatchObject([{ from: 2, to: 0, reason: "scale-to-zero", idleForMs: 60_000 }]);
  });

  it("follows load up and back down through a whole episode", async () => {
    const h = await setup(orders({ min: 1, max: 20 }, 2));
    h.loads.set("orders", demand(h, 20, 2));
    await h.autoscaler.tick();
    // A 5× step: 100 in flight in total.
    h.loads.set("orders", demand(h, 100, 2));
    await h.run(60_000, 2_000);
    expect(await h.replicas()).toBe(10);
    // Back to 20: the 5 minute scale-down window, then all at once (100% per 15 s).
    h.loads.set("orders", demand(h, 20, 2));
    await h.run(298_000, 2_000);
    expect(await h.replicas()).toBe(10);
    await h.run(4_000, 2_000);
    expect(await h.replicas()).toBe(2);
    expect((await h.events("autoscale.scaled")).map((e) => [e.details.from, e.details.to])).toEqual([
      [2, 6],
      [6, 10],
      [10, 2],
    ]);
  });

  it("ignores stored autoscale settings that no longer validate, logging once", async () => {
    const h = await setup(orders({ min: 5, max: 2 }));
    h.loads.set("orders", load(2, 30));
    await h.autoscaler.tick();
    await h.run(4_000, 2_000);
    expect(h.reads).toEqual([]);
    expect(h.logs.filter((l) => l.level === "error")).toMatchObject([{ msg: "stored autoscale settings are invalid; the service is not autoscaled", obj: { service: "orders" } }]);
  });

  it("logs an event the store cannot write and goes on", async () => {
    const inner = createMemoryStore();
    const store = new Proxy(inner, {
      get(target, key, receiver) {
        if (key === "appendEvent") return () => Promise.reject(new Error("disk full"));
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    const h = await setup(orders({ min: 1, max: 10 }), { store });
    h.loads.set("orders", load(2, 30));
    await h.autoscaler.tick();
    expect(await h.replicas()).toBe(6);
    expect(h.logs.filter((l) => l.msg === "could not record event")).toHaveLength(1);
  });

  it("start() looks on its own, and stop() waits for the look under way", async () => {
    const h = await setup(orders({ min: 1, max: 10, interval: "10ms" }), { now: Date.now, tickMs: 5 });
    h.loads.set("orders", load(2, 30));
    h.autoscaler.start();
    try {
      await waitFor(() => h.scales.length > 0, { what: "a scale-up" });
    } finally {
      await h.autoscaler.stop();
    }
    const reads = h.reads.length;
    await h.autoscaler.tick();
    expect(h.reads).toHaveLength(reads);
    expect(await h.replicas()).toBe(6);
  });
});

/** A ready replica of orders, as the runtime driver lists it. */
function runtimeReplica(id: string): ReplicaInfo {
  return {
    spec: { id, project: PROJECT, service: "orders", release: "r-1", index: 0, cwd: "/srv", command: "node server.js", env: {}, port: 41000, readiness: undefined, liveness: undefined, stopTimeoutMs: 10_000, startTimeoutMs: 30_000, logDir: "/tmp/logs" },
    state: "ready",
    pid: 4242,
    pidStartTime: undefined,
    restarts: 0,
    startedAt: new Date(START - 3_600_000).toISOString(),
    lastExit: undefined,
    everReady: true,
    exitsSinceReady: 0,
    details: {},
  };
}

/**
 * A gateway's `/stats` for a 10 s window in which each replica answered 2 requests of 10 ms
 * (near-zero load), counted by a gateway that started at `startedAtMs`.
 */
function quietWindow(replicas: readonly string[], nowMs: number, startedAtMs: number): StatsSnapshot {
  const histogram = new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
  histogram[LATENCY_BOUNDS_MS.indexOf(10)] = 2;
  return {
    windowSeconds: 10,
    coveredSeconds: Math.min(10, (nowMs - startedAtMs) / 1_000),
    at: new Date(nowMs).toISOString(),
    latencyBoundsMs: LATENCY_BOUNDS_MS,
    series: replicas.map((replica) => ({ service: "orders", version: "r-1", replica, requests: 2, errors: 0, errorRate: 0, rps: 0.2, latencyMs: { mean: 10, p50: 10, p90: 10, p99: 10 }, inflight: 0, peakInflight: 1, histogram })),
    versions: [],
  };
}

/** A gateway admin stand-in on 127.0.0.1 (port 0) answering `/stats` with `body()`. */
async function gatewayAdmin(body: () => StatsSnapshot): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (!req.url?.startsWith("/stats")) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body()));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe("createAutoscaler over the gateway's live stats", () => {
  it("holds 4 replicas while a restarted gateway has seen only part of the window and while no gateway answers, and scales down once a whole window is quiet", async () => {
    const ids = ["orders-0", "orders-1", "orders-2", "orders-3"];
    let gateway: { url: string; close(): Promise<void> } | undefined;
    // Without stabilization and with the default policies, a quiet whole window takes 4 to 1 in one look.
    const h = await setup(orders({ min: 1, max: 10, scaleDown: { stabilization: 0 } }, 4), {
      reader: (c) => createGatewayLoadReader({ statsUrls: () => (gateway === undefined ? [] : [gateway.url]), replicas: () => ids.map(runtimeReplica), project: PROJECT, now: c.now }),
    });
    const restart = async () => {
      await gateway?.close();
      const startedAtMs = h.clock.now();
      gateway = await gatewayAdmin(() => quietWindow(ids, h.clock.now(), startedAtMs));
    };
    try {
      // (1) The gateway restarted: its window grows from 0 to 8 s of 10 and reads almost no load.
      await restart();
      await h.autoscaler.tick();
      await h.run(8_000, 2_000);
      expect(await h.replicas()).toBe(4);
      let held = await h.events("autoscale.held");
      expect(held.map((e) => e.details.reason)).toEqual(["metrics-partial"]);
      expect(held[0]!.details).toMatchObject({ from: 4, to: 4, recommendation: 1, coveredMs: 0, windowMs: 10_000, message: expect.stringMatching(/no scale-down until the window is full/) });
      expect(h.autoscaler.status("orders")?.evaluations.at(-1)).toMatchObject({ outcome: "held", reason: "metrics-partial", inputs: { coveredMs: 8_000 } });

      // (2) The gateway is gone: nothing to read, the count stays.
      await gateway!.close();
      gateway = undefined;
      await h.run(10_000, 2_000);
      expect(await h.replicas()).toBe(4);
      held = await h.events("autoscale.held");
      expect(held.map((e) => e.details.reason)).toEqual(["metrics-partial", "metrics-unavailable"]);
      expect(held[1]!.details).toMatchObject({ from: 4, to: 4, message: expect.stringMatching(/no load/) });
      expect(h.autoscaler.status("orders")?.held).toMatchObject({ reason: "metrics-unavailable" });

      // (3) It comes back: held through its first window, then the same quiet load over a whole window scales down.
      await restart();
      await h.run(8_000, 2_000);
      expect(await h.replicas()).toBe(4);
      expect(h.scales).toEqual([]);
      await h.run(4_000, 2_000);
      expect(await h.replicas()).toBe(1);
      expect((await h.events("autoscale.scaled")).map((e) => e.details)).toMatchObject([{ from: 4, to: 1, reason: "scale-down" }]);
      expect((await h.events("autoscale.held")).map((e) => e.details.reason)).toEqual(["metrics-partial", "metrics-unavailable", "metrics-partial"]);
    } finally {
      await gateway?.close();
    }
  });
});

describe("createAutoscaler on a window seen only in part for long", () => {
  const warnings = (h: Harness) => h.logs.filter((l) => l.level === "warn").map((l) => [l.msg, (l.obj as { reason?: string }).reason]);

  it("holds scale-down for 2 windows while a gateway worker stays missing, then acts on what it sees, warning at each step and every 5 minutes while it lasts", async () => {
    const h = await setup(orders({ min: 1, max: 10, scaleDown: { stabilization: 0 } }, 4));
    // A worker that never answers: every look covers none of the 10 s window, at near-zero load.
    h.loads.set("orders", load(4, 0.2, { coveredMs: 0 }));
    await h.autoscaler.tick();
    await h.run(20_000, 2_000);
    expect(await h.replicas()).toBe(4);
    expect(h.autoscaler.status("orders")?.evaluations.at(-1)).toMatchObject({ outcome: "held", reason: "metrics-partial", inputs: { coveredMs: 0, partialForMs: 20_000 } });
    expect(warnings(h)).toEqual([["autoscaler holds the replica count", "metrics-partial"]]);

    await h.run(2_000, 2_000);
    expect(await h.replicas()).toBe(1);
    const scaled = await h.events("autoscale.scaled");
    expect(scaled.map((e) => e.details)).toMatchObject([{ from: 4, to: 1, reason: "metrics-partial-expired", coveredMs: 0, partial: { coveredMs: 0, windowMs: 10_000, forMs: 22_000, expired: true } }]);
    expect(scaled[0]!.details.message).toMatch(/4 → 1, on a partly seen window: .* for 22s, more than 2 windows in a row/);
    expect((await h.events("autoscale.held")).map((e) => e.details.reason)).toEqual(["metrics-partial"]);
    expect(warnings(h)).toEqual([
      ["autoscaler holds the replica count", "metrics-partial"],
      ["the gateways have seen only part of the window for more than 2 windows in a row; the autoscaler acts on what they saw", "metrics-partial-expired"],
    ]);

    // It lasts: one more warning 5 minutes after the last, not before.
    h.loads.set("orders", load(1, 0.2, { coveredMs: 0 }));
    await h.run(298_000, 2_000);
    expect(warnings(h)).toHaveLength(2);
    await h.run(2_000, 2_000);
    expect(warnings(h).at(-1)).toEqual(["the gateways still see only part of the window", "metrics-partial-expired"]);
    expect((h.logs.at(-1)!.obj as { forMs: number }).forMs).toBe(322_000);
    // A whole window ends it; the next partial run starts over: at min nothing is held, and it is
    // warned about once it has lasted 2 windows.
    h.loads.set("orders", load(1, 0.2));
    await h.run(2_000, 2_000);
    h.loads.set("orders", load(1, 0.2, { coveredMs: 0 }));
    // Partial looks 2 s to 22 s later: not more than 2 windows yet.
    await h.run(22_000, 2_000);
    expect(warnings(h)).toHaveLength(3);
    await h.run(2_000, 2_000);
    expect(warnings(h)).toHaveLength(4);
    expect(warnings(h).at(-1)?.[1]).toBe("metrics-partial-expired");
  });

  it("scales an idle service to zero through partial looks that saw no request (regression: each one restarted the idle clock)", async () => {
    const h = await setup(orders({ min: 0, max: 4, scaleToZero: { idle: "1m" } }, 1));
    h.loads.set("orders", load(1, 0, { coveredMs: 3_000 }));
    await h.autoscaler.tick();
    await h.run(58_000, 2_000);
    expect(await h.replicas()).toBe(1);
    await h.run(2_000, 2_000);
    expect(await h.replicas()).toBe(0);
    expect((await h.events("autoscale.scaled")).map((e) => e.details)).toMatchObject([{ from: 1, to: 0, reason: "metrics-partial-expired", idleForMs: 60_000 }]);
  });
});

describe("createAutoscaler waking a service at zero on held requests", () => {
  it("activates once the requests held by two gateways add up to scaleToZero.activation, though neither held enough", async () => {
    const at = (held: Array<{ service: string; arrivals: number; windowMs: number }>) => (nowMs: number): StatsSnapshot => ({
      ...quietWindow([], nowMs, nowMs - 60_000),
      ...(held.length === 0 ? {} : { held }),
    });
    let second: Array<{ service: string; arrivals: number; windowMs: number }> = [];
    const gateways: Array<{ url: string; close(): Promise<void> }> = [];
    const h = await setup(orders({ min: 0, max: 4, scaleToZero: { activation: 3 } }, 0), {
      reader: (c) => createGatewayLoadReader({ statsUrls: () => gateways.map((g) => g.url), replicas: () => [], project: PROJECT, now: c.now, shareMs: 0 }),
    });
    try {
      gateways.push(await gatewayAdmin(() => at([{ service: "orders", arrivals: 2, windowMs: 90_000 }])(h.clock.now())));
      gateways.push(await gatewayAdmin(() => at(second)(h.clock.now())));
      await h.autoscaler.tick();
      expect(await h.replicas()).toBe(0);
      expect(h.autoscaler.status("orders")?.evaluations.at(-1)).toMatchObject({ outcome: "steady", reason: "below-activation", inputs: { heldArrivals: 2 } });
      second = [{ service: "orders", arrivals: 1, windowMs: 90_000 }];
      await h.run(2_000, 2_000);
      expect(await h.replicas()).toBe(1);
      expect((await h.events("service.activated")).map((e) => e.details)).toMatchObject([{ from: 0, to: 1, reason: "activated", heldArrivals: 3, message: "3 requests arrived while at zero (3 held by the gateways): starting 1" }]);
    } finally {
      for (const g of gateways) await g.close();
    }
  });
});

describe("checkLoad", () => {
  it("keeps good values, drops bad ones with a message, and rejects what cannot be a load", () => {
    expect(checkLoad({ requests: 3, replicas: [{ replica: "a", ready: true, inflight: 2, rps: "5" }], p95Ms: -1 }, "orders", 42)).toEqual({
      load: { service: "orders", atMs: 42, windowMs: 0, requests: 3, replicas: [{ replica: "a", ready: true, inflight: 2 }] },
      problems: ["replica a: rps 5 is not a non-negative number", "p95Ms -1 is not a non-negative number"],
    });
    expect(checkLoad(null, "orders", 0)).toEqual({ problems: ["expected an object, got null"] });
    // Coverage of the window goes through; unreadable coverage counts as none (no scale-down on it).
    expect(checkLoad({ requests: 1, windowMs: 10_000, replicas: [], coveredMs: 2_500 }, "orders", 0).load?.coveredMs).toBe(2_500);
    expect(checkLoad({ requests: 1, windowMs: 10_000, replicas: [], coveredMs: "soon" }, "orders", 0)).toMatchObject({ load: { coveredMs: 0 }, problems: ["coveredMs soon is not a non-negative number"] });
    // Held arrivals go through; unreadable ones wake nothing.
    expect(checkLoad({ requests: 0, windowMs: 10_000, replicas: [], heldArrivals: 3 }, "orders", 0).load?.heldArrivals).toBe(3);
    const badHeld = checkLoad({ requests: 0, windowMs: 10_000, replicas: [], heldArrivals: Number.NaN }, "orders", 0);
    expect(badHeld.load).not.toHaveProperty("heldArrivals");
    expect(badHeld.problems).toEqual(["heldArrivals NaN is not a non-negative number"]);
    expect(checkLoad({ requests: 1, replicas: [7, { replica: "b", ready: "yes" }] }, "orders", 0)).toMatchObject({
      load: { replicas: [{ replica: "b", ready: false }] },
      problems: ["replicas[0]: expected { replica, ready, ... }"],
    });
  });
});
