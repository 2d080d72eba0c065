// Resilience of the gateway against real upstreams on 127.0.0.1 (child processes where a test
// kills one): retries around a killed replica, outlier ejection, deadlines, the circuit breaker
// with its fallback, the retry budget, the bulkhead and route rate limits. Every load loop is
// bounded in count and time; numbers are asserted, not just "no error".
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import type { CallerRule, ErrorBody, IdentityTrust, Route, RoutingTable, ServicePolicy } from "@keelson/protocol";
import { DEFAULT_SERVICE_POLICY } from "@keelson/protocol";
import { makeTempDir, waitFor } from "#test-support";
import type { Gateway, GatewayOptions, GatewayState } from "./gateway-server.js";
import { createGateway } from "./gateway-server.js";
import { createSeededRandom } from "./random.js";
import { createMeshIdentity } from "./fixtures/mesh-identity.js";
import { buildRoutingTable } from "./routing-table.js";

// --- fixtures ---

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let stateDir = "";

beforeEach(async () => {
  const tmp = await makeTempDir("keelson-resilience-");
  stateDir = tmp.dir;
  cleanups.push(tmp.cleanup);
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Upstream {
  url: string;
  /** Requests seen, with the deadline header each carried. */
  seen: Array<{ url: string; deadline: string | undefined }>;
}

async function startUpstream(name: string, handler?: (req: IncomingMessage, res: ServerResponse) => void): Promise<Upstream> {
  const up: Upstream = { url: "", seen: [] };
  const server: Server = createServer((req, res) => {
    up.seen.push({ url: req.url ?? "", deadline: req.headers["x-keelson-timeout-ms"] as string | undefined });
    if (handler) return handler(req, res);
    req.resume();
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ name }));
  });
  server.keepAliveTimeout = 10_000;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  up.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  return up;
}

/** A replica in its own process (fixtures/replica.mjs), so it can be SIGKILLed. */
async function startReplicaProcess(name: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, "fixtures", "replica.mjs")], { env: { ...process.env, NAME: name }, stdio: ["ignore", "pipe", "inherit"] });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await once(lines, "line")) as [string];
  lines.close();
  return { url: `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`, child };
}

async function startGateway(options: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const gw = createGateway({ host: "127.0.0.1", port: 0, adminPort: 0, stateDir, processMetrics: false, random: createSeededRandom(42), ...options });
  await gw.start();
  cleanups.push(() => gw.stop({ drainMs: 100 }));
  return gw;
}

const policy = (overrides: Partial<ServicePolicy>): ServicePolicy => ({ ...DEFAULT_SERVICE_POLICY, ...overrides });

let version = 0;
function table(
  service: string,
  urls: string[],
  options: { policy?: ServicePolicy; routes?: Array<Omit<Route, "service" | "pathPrefix"> & { path: string }>; mesh?: { identity: IdentityTrust; callers: CallerRule[] } } = {},
): RoutingTable {
  return buildRoutingTable({
    project: "test",
    version: ++version,
    ...(options.mesh === undefined ? {} : { identity: options.mesh.identity }),
    services: [
      {
        name: service,
        ...(options.mesh === undefined ? {} : { callers: options.mesh.callers }),
        routes: (options.routes ?? [{ path: "/", stripPrefix: false }]).map((r) => ({ ...r, stripPrefix: r.stripPrefix ?? false })),
        ...(options.policy === undefined ? {} : { policy: options.policy }),
      },
    ],
    endpoints: urls.map((url, i) => ({ service, replicaId: `${service}-${i + 1}`, url, release: "r1" })),
  });
}

const client = new Agent({ keepAliveTimeout: 10_000, connections: 64 });

async function send(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  const res = await request(url, { dispatcher: client, headers, headersTimeout: 30_000 });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

const errorOf = (r: { text: string }) => (JSON.parse(r.text) as ErrorBody).error;

/** Runs `total` calls of `one` with `concurrency` in flight, stopping early when `maxMs` is up. */
async function load(total: number, concurrency: number, maxMs: number, one: (i: number) => Promise<void>): Promise<{ started: number; elapsedMs: number }> {
  const began = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < total && Date.now() - began < maxMs) await one(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { started: next, elapsedMs: Date.now() - began };
}

async function stateOf(gw: Gateway, service: string): Promise<GatewayState["services"][number]> {
  const r = await send(`${gw.adminUrl}/state`);
  return (JSON.parse(r.text) as GatewayState).services.find((s) => s.name === service)!;
}

async function metricValue(gw: Gateway, prefix: string): Promise<number> {
  const text = (await send(`${gw.adminUrl}/metrics`)).text;
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

// --- tests ---

describe("retries around a dying replica", () => {
  // 2,000 requests take 4-9 s here while the rest of the suite runs beside them; the cap only
  // keeps a broken gateway from looping for long.
  it("loses no idempotent request when a replica process is SIGKILLed mid-load (2,000 GETs, 20 at a time)", { timeout: 45_000 }, async () => {
    const replicas = await Promise.all(["a", "b", "c"].map(startReplicaProcess));
    const gw = await startGateway();
    gw.setTable(table("web", replicas.map((r) => r.url)));
    const served: Record<string, number> = {};
    const failures: string[] = [];
    let killedAfter = -1;
    const run = await load(2_000, 20, 25_000, async (i) => {
      if (i === 600) {
        killedAfter = i;
        replicas[1]!.child.kill("SIGKILL");
      }
      try {
        const r = await send(`${gw.url}/item/${i}`);
        if (r.status !== 200) failures.push(`${i}: ${r.status} ${r.text.slice(0, 200)}`);
        else {
          const name = (JSON.parse(r.text) as { name: string }).name;
          served[name] = (served[name] ?? 0) + 1;
        }
      } catch (err) {
        failures.push(`${i}: ${(err as Error).message}`);
      }
    });
    expect(run.started).toBe(2_000);
    expect(killedAfter).toBe(600);
    expect(failures).toEqual([]);
    expect((served["a"] ?? 0) + (served["b"] ?? 0) + (served["c"] ?? 0)).toBe(2_000);
    // b took its share until it died, then none.
    expect(served["b"]).toBeGreaterThan(50);
    expect(served["b"]).toBeLessThan(700);
    // The kill did cost attempts: they were retried elsewhere, and b is out of the rotation.
    expect(await metricValue(gw, 'keelson_gateway_retries_total{service="web",outcome="retried"}')).toBeGreaterThan(0);
    const b = (await stateOf(gw, "web")).endpoints.find((e) => e.replicaId === "web-2")!;
    expect(b.ejected).toBe(true);
  });
});

describe("outlier ejection", () => {
  // Round-robin, so these tests measure ejection and not the balancer: p2c-EWMA would starve a
  // replica whose first answer happened to be slow on a busy machine, and it would fail less.
  const ejecting = policy({
    loadBalancer: "round-robin",
    retries: { ...DEFAULT_SERVICE_POLICY.retries, attempts: 0 },
    outlierEjection: { consecutiveFailures: 3, baseEjectionMs: 60_000, maxEjectionMs: 120_000, maxEjectedPercent: 50 },
    circuitBreaker: undefined,
  });

  it("ejects a replica that answers 500 after 3 in a row, and the success rate goes from 90% to 100%", async () => {
    const a = await startUpstream("a");
    const b = await startUpstream("b");
    const bad = await startUpstream("bad", (req, res) => (req.resume(), res.writeHead(500).end("broken")));
    const gw = await startGateway();
    gw.setTable(table("web", [a.url, b.url, bad.url], { policy: ejecting }));

    let before = 0;
    for (let i = 0; i < 30; i++) if ((await send(`${gw.url}/`)).status === 200) before++;
    let after = 0;
    for (let i = 0; i < 300; i++) if ((await send(`${gw.url}/`)).status === 200) after++;
    // Before: exactly the three failures that eject it; after: none.
    expect(before).toBe(27);
    expect(after).toBe(300);
    expect(bad.seen).toHaveLength(3);

    const state = await stateOf(gw, "web");
    const ejected = state.endpoints.find((e) => e.replicaId === "web-3")!;
    expect(ejected).toMatchObject({ ejected: true, timesEjected: 1 });
    const left = Date.parse(ejected.ejectedUntil!) - Date.now();
    expect(left).toBeGreaterThan(50_000);
    expect(left).toBeLessThanOrEqual(60_000);
    expect(state.endpoints.filter((e) => e.ejected)).toHaveLength(1);
    expect(await metricValue(gw, 'keelson_gateway_ejections_total{service="web"}')).toBe(1);
    expect(await metricValue(gw, 'keelson_gateway_ejected_endpoints{service="web"}')).toBe(1);
  });

  it("brings an ejected replica back after its time, and ejects it for twice as long when it fails again", async () => {
    const good = await startUpstream("good");
    const bad = await startUpstream("bad", (req, res) => (req.resume(), res.writeHead(503).end("down")));
    const gw = await startGateway();
    gw.setTable(table("web", [good.url, bad.url], { policy: { ...ejecting, outlierEjection: { ...ejecting.outlierEjection, baseEjectionMs: 300 } } }));
    const ejectedTwice = await waitFor(
      async () => {
        await send(`${gw.url}/`);
        const e = (await stateOf(gw, "web")).endpoints.find((x) => x.replicaId === "web-2")!;
        return e.timesEjected === 2 && e.ejected ? e : undefined;
      },
      { timeoutMs: 8_000, intervalMs: 5, what: "the bad replica to be ejected a second time" },
    );
    // Back after the first 300 ms, it took traffic again: three more failures.
    expect(bad.seen).toHaveLength(6);
    const left = Date.parse(ejectedTwice.ejectedUntil!) - Date.now();
    expect(left).toBeGreaterThan(300);
    expect(left).toBeLessThanOrEqual(600);
  });

  it("never ejects the last replica: with both failing, one stays in and keeps getting traffic", async () => {
    const x = await startUpstream("x", (req, res) => (req.resume(), res.writeHead(500).end()));
    const y = await startUpstream("y", (req, res) => (req.resume(), res.writeHead(500).end()));
    const gw = await startGateway();
    gw.setTable(table("web", [x.url, y.url], { policy: ejecting }));
    for (let i = 0; i < 40; i++) expect((await send(`${gw.url}/`)).status).toBe(500);
    const state = await stateOf(gw, "web");
    expect(state.endpoints.filter((e) => e.ejected)).toHaveLength(1);
    expect(x.seen.length + y.seen.length).toBe(40);
  });
});

describe("deadlines", () => {
  const hanging = (req: IncomingMessage) => req.resume();

  it("answers 504 when the whole deadline is up, retrying per-try timeouts on another replica before that", async () => {
    // Attempts in the order they arrived, at whichever replica.
    const arrivals: Array<string | undefined> = [];
    const hangingInOrder = (req: IncomingMessage) => (arrivals.push(req.headers["x-keelson-timeout-ms"] as string | undefined), req.resume());
    const h1 = await startUpstream("h1", hangingInOrder);
    const h2 = await startUpstream("h2", hangingInOrder);
    const gw = await startGateway();
    gw.setTable(table("slow", [h1.url, h2.url], { policy: policy({ timeoutMs: 600, perTryTimeoutMs: 250, circuitBreaker: undefined }) }));
    const t0 = performance.now();
    // The client would wait 30 s; the gateway's deadline decides.
    const r = await send(`${gw.url}/`);
    const elapsed = performance.now() - t0;
    expect(r.status).toBe(504);
    expect(errorOf(r)).toMatchObject({ code: "KEELSON_ERR_UPSTREAM_TIMEOUT", details: { service: "slow", reason: "deadline" } });
    expect(elapsed).toBeGreaterThanOrEqual(595);
    expect(elapsed).toBeLessThan(600 + 1_000);
    // Two per-try timeouts of 250 ms fit in 600 ms; a third attempt goes out with what is left,
    // unless a busy machine leaves too little for it to arrive before the deadline.
    expect(arrivals.length).toBeGreaterThanOrEqual(2);
    expect(arrivals.length).toBeLessThanOrEqual(3);
    // Each attempt was told what was left of the deadline, less each time.
    const deadlines = arrivals.map(Number);
    expect(deadlines[0]).toBeGreaterThan(500);
    expect(deadlines[0]).toBeLessThanOrEqual(600);
    expect(deadlines[1]).toBeLessThan(deadlines[0]!);
    expect(deadlines[1]).toBeLessThanOrEqual(600 - 250);
    if (deadlines.length === 3) expect(deadlines[2]).toBeLessThan(deadlines[1]!);
    // The retry after the first timeout went to the other replica.
    expect(h1.seen.length).toBeGreaterThanOrEqual(1);
    expect(h2.seen.length).toBeGreaterThanOrEqual(1);
  });

  it("keeps waiting for a slow attempt past its per-try timeout when no retry is allowed, up to the deadline", async () => {
    const slow = await startUpstream("slow", (req, res) => {
      req.resume();
      const timer = setTimeout(() => res.end("late but fine"), 400);
      res.on("close", () => clearTimeout(timer));
    });
    const gw = await startGateway();
    gw.setTable(
      table("slow", [slow.url], { policy: policy({ timeoutMs: 3_000, perTryTimeoutMs: 150, retries: { ...DEFAULT_SERVICE_POLICY.retries, attempts: 0 } }) }),
    );
    const r = await send(`${gw.url}/`);
    expect(r.status).toBe(200);
    expect(r.text).toBe("late but fine");
    expect(slow.seen).toHaveLength(1);
  });

  it("takes a shorter deadline from the caller's x-keelson-timeout-ms and passes what is left on", async () => {
    const h = await startUpstream("h", hanging);
    const gw = await startGateway();
    gw.setTable(table("slow", [h.url], { policy: policy({ timeoutMs: 10_000, perTryTimeoutMs: 10_000 }) }));
    const t0 = performance.now();
    const r = await send(`${gw.url}/`, { "x-keelson-timeout-ms": "300" });
    const elapsed = performance.now() - t0;
    expect(r.status).toBe(504);
    expect(elapsed).toBeGreaterThanOrEqual(295);
    expect(elapsed).toBeLessThan(300 + 1_000);
    expect(Number(h.seen[0]!.deadline)).toBeLessThanOrEqual(300);
    expect(Number(h.seen[0]!.deadline)).toBeGreaterThan(200);
    // A caller that ran out of its own time does not count against the replica.
    expect((await stateOf(gw, "slow")).endpoints[0]!.consecutiveFailures).toBe(0);
    // A deadline already passed gets 504 at once, without bothering the replica.
    const late = await send(`${gw.url}/`, { "x-keelson-timeout-ms": "0" });
    expect(late.status).toBe(504);
    expect(h.seen).toHaveLength(1);
  });
});

describe("circuit breaker", () => {
  it("opens on failures, serves the route's fallback, half-opens after openMs, reopens on a failed probe, and closes after good probes", async () => {
    let healthy = false;
    const up = await startUpstream("flaky", (req, res) => {
      req.resume();
      if (healthy) res.writeHead(200, { "content-type": "application/json" }).end('{"items":[1,2,3]}');
      else res.writeHead(500).end("boom");
    });
    const gw = await startGateway({ meshPort: 0 });
    const mesh = await createMeshIdentity("test");
    cleanups.push(() => mesh.cleanup());
    const fallback = { status: 200, contentType: "application/json", body: '{"items":[],"degraded":true}' };
    gw.setTable(
      table("catalog", [up.url], {
        mesh: { identity: mesh.trust, callers: [{ service: "web" }] },
        policy: policy({
          retries: { ...DEFAULT_SERVICE_POLICY.retries, attempts: 0 },
          outlierEjection: { ...DEFAULT_SERVICE_POLICY.outlierEjection, consecutiveFailures: 1_000 },
          circuitBreaker: { failureRatio: 0.5, minRequests: 10, windowMs: 10_000, openMs: 400, halfOpenProbes: 2 },
        }),
        routes: [{ path: "/api", stripPrefix: false, fallback }],
      }),
    );
    for (let i = 0; i < 10; i++) expect((await send(`${gw.url}/api/items`)).status).toBe(500);
    expect((await stateOf(gw, "catalog")).breaker).toMatchObject({ state: "open", opened: 1 });

    // Open: the fallback, at once, without touching the service.
    const degraded = await send(`${gw.url}/api/items`);
    expect(degraded.status).toBe(200);
    expect(degraded.text).toBe(fallback.body);
    expect(degraded.headers["content-type"]).toBe("application/json");
    expect(degraded.headers["x-keelson-fallback"]).toBe("circuit-open");
    // A call without a route (no fallback) gets 503 with retry-after.
    const internal = await send(`${gw.meshUrl}/x`, { "x-keelson-service": "catalog", "x-keelson-identity": await mesh.tokenFor("web") });
    expect(internal.status).toBe(503);
    expect(errorOf(internal).code).toBe("KEELSON_ERR_CIRCUIT_OPEN");
    expect(Number(internal.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(up.seen).toHaveLength(10);

    // Half-open: one probe; it fails, so the circuit opens again.
    await waitFor(async () => (await stateOf(gw, "catalog")).breaker!.state === "half-open", { timeoutMs: 5_000, what: "half-open" });
    expect((await send(`${gw.url}/api/items`)).status).toBe(500);
    expect((await stateOf(gw, "catalog")).breaker).toMatchObject({ state: "open", opened: 2 });
    expect((await send(`${gw.url}/api/items`)).headers["x-keelson-fallback"]).toBe("circuit-open");

    // The service recovers: two good probes close it.
    healthy = true;
    await waitFor(async () => (await stateOf(gw, "catalog")).breaker!.state === "half-open", { timeoutMs: 5_000, what: "half-open again" });
    expect((await send(`${gw.url}/api/items`)).text).toBe('{"items":[1,2,3]}');
    expect((await stateOf(gw, "catalog")).breaker!.state).toBe("half-open");
    expect((await send(`${gw.url}/api/items`)).text).toBe('{"items":[1,2,3]}');
    expect((await stateOf(gw, "catalog")).breaker!.state).toBe("closed");
    for (let i = 0; i < 5; i++) expect((await send(`${gw.url}/api/items`)).status).toBe(200);
    expect(up.seen).toHaveLength(10 + 1 + 2 + 5);
    expect(await metricValue(gw, 'keelson_gateway_fallbacks_total{service="catalog",reason="circuit_open"}')).toBe(2);
    expect(await metricValue(gw, 'keelson_gateway_rejections_total{service="catalog",reason="circuit_open"}')).toBe(1);
    expect(await metricValue(gw, 'keelson_gateway_circuit_state{service="catalog"}')).toBe(0);
  });

  it("serves the fallback with x-keelson-fallback: no-endpoint while the service has no ready replica", async () => {
    const gw = await startGateway();
    gw.setTable(table("catalog", [], { routes: [{ path: "/", stripPrefix: false, fallback: { status: 203, contentType: "text/plain", body: "later" } }] }));
    const r = await send(`${gw.url}/`);
    expect(r.status).toBe(203);
    expect(r.text).toBe("later");
    expect(r.headers["x-keelson-fallback"]).toBe("no-endpoint");
  });
});

describe("retry budget", () => {
  it("stops retrying at 20% of requests plus the floor when every replica fails", async () => {
    const failing = (req: IncomingMessage, res: ServerResponse) => (req.resume(), res.writeHead(503, { "content-type": "text/plain" }).end("unavailable"));
    const a = await startUpstream("a", failing);
    const b = await startUpstream("b", failing);
    const gw = await startGateway();
    gw.setTable(
      table("down", [a.url, b.url], {
        policy: policy({
          retries: { attempts: 2, budgetPercent: 20, minPerSecond: 1, backoffBaseMs: 0, backoffMaxMs: 0 },
          outlierEjection: { ...DEFAULT_SERVICE_POLICY.outlierEjection, consecutiveFailures: 10_000 },
          circuitBreaker: undefined,
        }),
      }),
    );
    const requests = 300;
    const statuses: number[] = [];
    const run = await load(requests, 10, 9_000, async () => {
      statuses.push((await send(`${gw.url}/`)).status);
    });
    expect(run.started).toBe(requests);
    expect(run.elapsedMs).toBeLessThan(9_000);
    // The replica's own 503 reaches the client once no retry is left.
    expect(statuses.filter((s) => s === 503)).toHaveLength(requests);
    const attempts = a.seen.length + b.seen.length;
    // Without a budget: 900 attempts. With it: requests × (1 + 20%) + 10 (1/s over the 10 s window).
    expect(attempts).toBeLessThanOrEqual(requests * 1.2 + 10);
    expect(attempts).toBeGreaterThan(requests + 10);
    expect(await metricValue(gw, 'keelson_gateway_retries_total{service="down",outcome="retried"}')).toBe(attempts - requests);
    expect(await metricValue(gw, 'keelson_gateway_retries_total{service="down",outcome="budget_exhausted"}')).toBeGreaterThan(200);
  });
});

describe("bulkhead", () => {
  it("queues past maxConcurrent, refuses past maxQueue with 503 and retry-after, and times out a long wait", async () => {
    const held: ServerResponse[] = [];
    const up = await startUpstream("held", (req, res) => (req.resume(), held.push(res)));
    const gw = await startGateway();
    gw.setTable(table("busy", [up.url], { policy: policy({ bulkhead: { maxConcurrent: 2, maxQueue: 1, queueTimeoutMs: 300 } }) }));
    const first = send(`${gw.url}/1`);
    const second = send(`${gw.url}/2`);
    await waitFor(() => held.length === 2, { what: "two requests at the upstream" });
    const queued = send(`${gw.url}/3`);
    await waitFor(async () => (await stateOf(gw, "busy")).bulkhead!.queued === 1, { what: "one request queued" });

    const refused = await send(`${gw.url}/4`);
    expect(refused.status).toBe(503);
    expect(errorOf(refused).code).toBe("KEELSON_ERR_OVERLOADED");
    expect(refused.headers["retry-after"]).toBe("1");

    const t0 = performance.now();
    const timedOut = await queued;
    expect(timedOut.status).toBe(503);
    expect(errorOf(timedOut).code).toBe("KEELSON_ERR_OVERLOADED");
    expect(performance.now() - t0).toBeLessThan(300 + 1_000);
    expect(up.seen).toHaveLength(2);

    // A waiter gets the slot the moment one frees up.
    const waiter = send(`${gw.url}/5`);
    await waitFor(async () => (await stateOf(gw, "busy")).bulkhead!.queued === 1, { what: "the fifth request queued" });
    held.shift()!.end("one");
    await waitFor(() => held.length === 2, { what: "the queued request at the upstream" });
    for (const res of held.splice(0)) res.end("done");
    expect((await first).text).toBe("one");
    expect((await second).status).toBe(200);
    expect((await waiter).status).toBe(200);
    expect(up.seen.map((s) => s.url)).toEqual(["/1", "/2", "/5"]);
    expect((await stateOf(gw, "busy")).bulkhead).toMatchObject({ active: 0, queued: 0 });
  });
});

describe("rate limits", () => {
  it("answers 429 with retry-after once a route's burst is used up, leaving other routes alone", async () => {
    const up = await startUpstream("api");
    const gw = await startGateway();
    gw.setTable(
      table("api", [up.url], {
        routes: [
          { path: "/limited", stripPrefix: false, rateLimit: { rps: 1, burst: 3 } },
          { path: "/free", stripPrefix: false },
        ],
      }),
    );
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await send(`${gw.url}/limited`)).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const limited = await send(`${gw.url}/limited`);
    expect(errorOf(limited).code).toBe("KEELSON_ERR_RATE_LIMITED");
    expect(Number(limited.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    for (let i = 0; i < 10; i++) expect((await send(`${gw.url}/free`)).status).toBe(200);
    expect(up.seen).toHaveLength(3 + 10);
    expect(await metricValue(gw, 'keelson_gateway_requests_total{service="api",version="none",route="/limited",replica="none",code_class="4xx"}')).toBe(3);
  });
});
