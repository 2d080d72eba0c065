import { createServer, type Server } from "node:http";
import type { ReplicaState } from "@keelson/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { LATENCY_BOUNDS_MS, histogramQuantile, type SeriesStats, type StatsSnapshot } from "../gateway/index.js";
import type { ReplicaInfo } from "../runtime/index.js";
import { createGatewayLoadReader, quantileOfHistogram } from "./gateway-load-reader.js";
import { decide, emptyMemory, resolveAutoscale } from "./hpa.js";

const AT = Date.parse("2026-03-01T10:00:00.000Z");

/** A series with `requests` all in the histogram bucket whose upper bound is `bucketMs`. */
function series(service: string, replica: string, requests: number, meanMs: number, bucketMs: number): SeriesStats {
  const histogram = new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
  histogram[LATENCY_BOUNDS_MS.indexOf(bucketMs)] = requests;
  return {
    service,
    version: "r-1",
    replica,
    requests,
    errors: 0,
    errorRate: 0,
    rps: requests / 10,
    latencyMs: { mean: meanMs, p50: meanMs, p90: meanMs, p99: meanMs },
    inflight: 1,
    peakInflight: 3,
    histogram,
  };
}

function snapshot(list: SeriesStats[], windowSeconds = 10): StatsSnapshot {
  return { windowSeconds, at: new Date(AT).toISOString(), latencyBoundsMs: LATENCY_BOUNDS_MS, series: list, versions: [] };
}

function replica(id: string, state: ReplicaState, options: { startedAgoMs?: number; cpu?: number; service?: string; project?: string } = {}): ReplicaInfo {
  const service = options.service ?? "orders";
  return {
    spec: {
      id,
      project: options.project ?? "shop",
      service,
      release: "r-1",
      index: 0,
      cwd: "/srv",
      command: "node server.js",
      env: {},
      port: 41000,
      readiness: undefined,
      liveness: undefined,
      stopTimeoutMs: 10_000,
      startTimeoutMs: 30_000,
      logDir: "/tmp/logs",
    },
    state,
    pid: 4242,
    pidStartTime: undefined,
    restarts: 0,
    startedAt: options.startedAgoMs === undefined ? undefined : new Date(AT - options.startedAgoMs).toISOString(),
    lastExit: undefined,
    everReady: state === "ready",
    exitsSinceReady: 0,
    details: {},
    ...(options.cpu === undefined ? {} : { usage: { cpuPercent: options.cpu, memoryBytes: 50_000_000, at: new Date(AT).toISOString() } }),
  };
}

const servers: Server[] = [];

/** A gateway admin stand-in on 127.0.0.1 (port 0) answering /stats with `body`; records the queries. */
async function gateway(body: unknown, status = 200): Promise<{ url: string; queries: string[] }> {
  const queries: string[] = [];
  const server = createServer((req, res) => {
    queries.push(req.url ?? "");
    if (!req.url?.startsWith("/stats")) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(status, { "content-type": "application/json" });
    res.end(typeof body === "string" ? body : JSON.stringify(body));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address() as { port: number };
  return { url: `http://127.0.0.1:${addr.port}`, queries };
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

const RUNTIME = [
  replica("orders-0", "ready", { startedAgoMs: 600_000, cpu: 40 }),
  // Started 4 s ago: still divided by the whole window, so the replicas add up to the service's concurrency.
  replica("orders-1", "ready", { startedAgoMs: 4_000, cpu: 55 }),
  // Not in the routing table yet: no series, so no inflight (missing), but counted as not ready.
  replica("orders-2", "starting", { startedAgoMs: 500 }),
  // Draining: its traffic counts toward the service, the replica itself is left out.
  replica("orders-3", "stopping", { startedAgoMs: 900_000 }),
  replica("cart-0", "ready", { service: "cart", startedAgoMs: 600_000 }),
  replica("orders-9", "ready", { project: "other", startedAgoMs: 600_000 }),
];

describe("createGatewayLoadReader", () => {
  it("reads per-replica concurrency (Little's law), rps, p95, readiness and cpu, summed over gateways", async () => {
    const a = await gateway(snapshot([series("cart", "cart-0", 1000, 5, 5), series("orders", "orders-0", 100, 50, 50), series("orders", "orders-1", 200, 100, 100), series("orders", "orders-3", 10, 20, 25)]));
    const b = await gateway(snapshot([series("orders", "orders-0", 100, 150, 250)]));
    const reader = createGatewayLoadReader({ statsUrls: () => [a.url, `${b.url}/`], replicas: () => RUNTIME, project: "shop", now: () => AT });
    const load = await reader.read("orders", 10_000);
    expect(a.queries).toEqual(["/stats?window=10"]);
    expect(b.queries).toEqual(["/stats?window=10"]);
    expect(load).toBeDefined();
    expect(load!).toMatchObject({ service: "orders", atMs: AT, windowMs: 10_000, requests: 410 });
    expect(load!.replicas).toEqual([
      // (100 × 50 + 100 × 150) ms of requests over 10 s: 2 in flight on average; 200 requests / 10 s
      { replica: "orders-0", ready: true, startedAtMs: AT - 600_000, inflight: 2, rps: 20, cpuPercent: 40 },
      // 200 × 100 ms over the 10 s window: 2 in flight; 20 per second (it only lived 4 s of it: see the next test)
      { replica: "orders-1", ready: true, startedAtMs: AT - 4_000, inflight: 2, rps: 20, cpuPercent: 55 },
      { replica: "orders-2", ready: false, startedAtMs: AT - 500 },
    ]);
    // Buckets: 10 ≤ 25, 100 ≤ 50, 200 ≤ 100, 100 ≤ 250 ms. Rank 0.95 × 410 = 389.5 lies 79.5 into the
    // 100 of the 100-250 bucket: 100 + 150 × 0.795 = 219.25
    expect(load!.p95Ms).toBeCloseTo(219.25, 9);
  });

  it("divides a young replica's requests by the whole window, so a scale-up is not counted twice (regression)", async () => {
    // 4 s ago 1 replica became 2. The old one served 10 in flight for 6 s and 5 for 4 s, the new
    // one 5 for 4 s: the service averaged (10 × 6 + 10 × 4) / 10 = 10 in flight over the window.
    const g = await gateway(snapshot([series("orders", "orders-0", 800, 100, 100), series("orders", "orders-1", 200, 100, 100)]));
    const runtime = [replica("orders-0", "ready", { startedAgoMs: 600_000 }), replica("orders-1", "ready", { startedAgoMs: 4_000 })];
    const load = await createGatewayLoadReader({ statsUrls: () => [g.url], replicas: () => runtime, now: () => AT }).read("orders", 10_000);
    const total = load!.replicas.reduce((sum, r) => sum + (r.inflight ?? 0), 0);
    // Measured over its 4 s alone the new replica would add 5, not 2: 13 in total, and at a
    // target of 5 per replica a third replica for load two already carry.
    expect(total).toBeCloseTo(10, 9);
  });

  it("asks for the window in whole seconds 1-60", async () => {
    const g = await gateway(snapshot([]));
    const reader = createGatewayLoadReader({ statsUrls: () => [g.url], replicas: () => [] });
    await reader.read("orders", 400);
    await reader.read("orders", 2_600);
    await reader.read("orders", 300_000);
    expect(g.queries).toEqual(["/stats?window=1", "/stats?window=3", "/stats?window=60"]);
  });

  it("fetches once per gateway for the looks of one round, and again once the snapshot is older than shareMs", async () => {
    const g = await gateway(snapshot([]));
    let t = AT;
    const reader = createGatewayLoadReader({ statsUrls: () => [g.url], replicas: () => RUNTIME, now: () => t, shareMs: 500 });
    const [orders, cart] = await Promise.all([reader.read("orders", 10_000), reader.read("cart", 10_000)]);
    expect([orders?.service, cart?.service]).toEqual(["orders", "cart"]);
    expect(g.queries).toEqual(["/stats?window=10"]);
    t += 2_000;
    await reader.read("orders", 10_000);
    expect(g.queries).toEqual(["/stats?window=10", "/stats?window=10"]);
  });

  it("reports no p95 and zero requests for a service without traffic", async () => {
    const g = await gateway(snapshot([series("orders", "orders-0", 0, 0, 50)]));
    const reader = createGatewayLoadReader({ statsUrls: () => [g.url], replicas: () => [replica("orders-0", "ready", { startedAgoMs: 60_000 })], now: () => AT });
    const load = await reader.read("orders", 10_000);
    expect(load).toEqual({ service: "orders", atMs: AT, windowMs: 10_000, requests: 0, replicas: [{ replica: "orders-0", ready: true, startedAtMs: AT - 60_000, inflight: 0, rps: 0 }] });
  });

  it("gives undefined when any gateway is unreachable, answers an error, or sends something else than a snapshot", async () => {
    const good = await gateway(snapshot([series("orders", "orders-0", 100, 50, 50)]));
    const closed = await gateway(snapshot([]));
    const closedServer = servers.pop()!;
    await new Promise((resolve) => closedServer.close(resolve));
    const failing = await gateway({ error: { code: "KEELSON_ERR_INTERNAL", message: "boom" } }, 500);
    const garbage = await gateway("not json");
    const wrongShape = await gateway({ series: "none" });
    const read = (urls: string[]) => createGatewayLoadReader({ statsUrls: () => urls, replicas: () => RUNTIME, timeoutMs: 2_000 }).read("orders", 10_000);
    expect(await read([good.url])).toBeDefined();
    expect(await read([good.url, closed.url])).toBeUndefined();
    expect(await read([good.url, failing.url])).toBeUndefined();
    expect(await read([garbage.url])).toBeUndefined();
    expect(await read([wrongShape.url])).toBeUndefined();
    expect(await read([])).toBeUndefined();
  });

  it("gives undefined when a gateway does not answer within timeoutMs", async () => {
    const server = createServer(() => {
      // Never answers.
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const reader = createGatewayLoadReader({ statsUrls: () => [url], replicas: () => RUNTIME, timeoutMs: 50 });
    expect(await reader.read("orders", 10_000)).toBeUndefined();
  });

  it("marks a window a restarted gateway saw only part of, as far as the least covered gateway's", async () => {
    const full = await gateway({ ...snapshot([series("orders", "orders-0", 100, 50, 50)]), coveredSeconds: 10 });
    const restarted = await gateway({ ...snapshot([series("orders", "orders-0", 4, 50, 50)]), coveredSeconds: 2.5 });
    const older = await gateway(snapshot([series("orders", "orders-0", 100, 50, 50)]));
    const broken = await gateway({ ...snapshot([]), coveredSeconds: "a while" });
    const read = (urls: string[]) => createGatewayLoadReader({ statsUrls: () => urls, replicas: () => RUNTIME, project: "shop", now: () => AT }).read("orders", 10_000);
    expect((await read([full.url]))?.coveredMs).toBeUndefined();
    // A gateway that does not report coverage (an older version) counts as covering the window.
    expect((await read([full.url, older.url]))?.coveredMs).toBeUndefined();
    const partial = await read([full.url, restarted.url]);
    expect(partial?.coveredMs).toBe(2_500);
    // What was seen is still divided by the whole window: (100 + 4) × 50 ms / 10 s.
    expect(partial?.replicas[0]?.inflight).toBeCloseTo(0.52, 9);
    expect((await read([full.url, broken.url]))?.coveredMs).toBe(0);
  });

  it("sums a service's held arrivals over gateways, so requests split between them reach the activation threshold and wake it", async () => {
    // activation 3: one gateway (or worker) held 2 requests for orders, another 1; neither asked for a replica.
    const a = await gateway({ ...snapshot([]), held: [{ service: "orders", arrivals: 2, windowMs: 90_000 }] });
    const b = await gateway({ ...snapshot([]), held: [{ service: "cart", arrivals: 5, windowMs: 90_000 }, { service: "orders", arrivals: 1, windowMs: 90_000 }] });
    const older = await gateway(snapshot([]));
    const junk = await gateway({ ...snapshot([]), held: [null, { service: "orders", arrivals: "many" }, { service: "orders", arrivals: -2 }] });
    const read = (urls: string[]) => createGatewayLoadReader({ statsUrls: () => urls, replicas: () => [], project: "shop", now: () => AT }).read("orders", 10_000);
    const both = await read([a.url, b.url, older.url, junk.url]);
    expect(both).toMatchObject({ requests: 0, heldArrivals: 3 });
    const z = resolveAutoscale({ min: 0, max: 4, scaleToZero: { activation: 3 } });
    expect(decide({ config: z, current: 0, load: both, nowMs: AT, memory: emptyMemory() })).toMatchObject({ outcome: "scale", reason: "activated", to: 1 });
    // One gateway's share alone is below the threshold.
    const one = await read([a.url, older.url]);
    expect(one?.heldArrivals).toBe(2);
    expect(decide({ config: z, current: 0, load: one, nowMs: AT, memory: emptyMemory() })).toMatchObject({ outcome: "steady", reason: "below-activation", to: 0 });
    expect(await read([older.url, junk.url])).not.toHaveProperty("heldArrivals");
  });

  it("leaves p95 out rather than mixing histograms with different buckets", async () => {
    const a = await gateway(snapshot([series("orders", "orders-0", 100, 50, 50)]));
    const b = await gateway({ ...snapshot([{ ...series("orders", "orders-0", 100, 50, 50), histogram: [100, 0] }]), latencyBoundsMs: [1000] });
    const load = await createGatewayLoadReader({ statsUrls: () => [a.url, b.url], replicas: () => RUNTIME, now: () => AT }).read("orders", 10_000);
    expect(load?.requests).toBe(200);
    expect(load?.p95Ms).toBeUndefined();
  });
});

describe("quantileOfHistogram", () => {
  it("interpolates inside the bucket as histogram_quantile, and agrees with the gateway's own estimate", () => {
    expect(quantileOfHistogram(0.95, [0, 10, 10, 0], [10, 20, 40])).toBe(38);
    expect(quantileOfHistogram(0.5, [4, 0, 0, 0], [10, 20, 40])).toBe(5);
    // Everything in the open bucket: the highest bound.
    expect(quantileOfHistogram(0.95, [0, 0, 0, 7], [10, 20, 40])).toBe(40);
    expect(quantileOfHistogram(0.95, [0, 0, 0, 0], [10, 20, 40])).toBe(0);
    const counts = LATENCY_BOUNDS_MS.map((_, i) => (i * 7) % 5).concat([2]);
    for (const q of [0.5, 0.9, 0.95, 0.99]) expect(quantileOfHistogram(q, counts, LATENCY_BOUNDS_MS)).toBeCloseTo(histogramQuantile(q, counts), 12);
  });
});
