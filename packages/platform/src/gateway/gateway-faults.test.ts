// Fault injection (`keelson chaos latency|error`) through the gateway against real upstreams on
// 127.0.0.1: the share of aborted requests, the delay and the deadline around it, version
// matching, end times without a new table, and how injected errors count (live stats, metrics,
// circuit breaker and its fallback), on the public and the mesh listener.
import { once } from "node:events";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import type { CallerRule, ErrorBody, Fault, IdentityTrust, Route, RoutingTable, ServicePolicy, TrafficSplit } from "@keelson/protocol";
import { DEFAULT_SERVICE_POLICY } from "@keelson/protocol";
import { makeTempDir, waitFor } from "#test-support";
import { createMeshIdentity } from "./fixtures/mesh-identity.js";
import type { Gateway, GatewayOptions, GatewayState } from "./gateway-server.js";
import type { StatsSnapshot } from "./live-stats.js";
import { createGateway } from "./gateway-server.js";
import { createSeededRandom } from "./random.js";
import { buildRoutingTable } from "./routing-table.js";

// --- fixtures ---

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let stateDir = "";

beforeEach(async () => {
  const tmp = await makeTempDir("keelson-faults-");
  stateDir = tmp.dir;
  cleanups.push(tmp.cleanup);
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Upstream {
  url: string;
  release: string;
  /** Requests seen, with the deadline header each carried. */
  seen: Array<{ url: string; deadline: number }>;
}

async function startUpstream(release: string, handler?: (req: IncomingMessage, res: ServerResponse) => void): Promise<Upstream> {
  const up: Upstream = { url: "", release, seen: [] };
  const server: Server = createServer((req, res) => {
    up.seen.push({ url: req.url ?? "", deadline: Number(req.headers["x-keelson-timeout-ms"]) });
    if (handler) return handler(req, res);
    req.resume();
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ release }));
  });
  server.keepAliveTimeout = 10_000;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  up.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  return up;
}

async function startGateway(options: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const gw = createGateway({ host: "127.0.0.1", port: 0, adminPort: 0, stateDir, processMetrics: false, random: createSeededRandom(11), ...options });
  await gw.start();
  cleanups.push(() => gw.stop({ drainMs: 100 }));
  return gw;
}

const NO_BREAKER: ServicePolicy = { ...DEFAULT_SERVICE_POLICY, circuitBreaker: undefined };
const inAMinute = () => new Date(Date.now() + 60_000).toISOString();

let version = 0;
function table(
  upstreams: Upstream[],
  faults: Fault[],
  options: { policy?: ServicePolicy; split?: TrafficSplit; routes?: Array<Omit<Route, "service" | "pathPrefix"> & { path: string }>; mesh?: { identity: IdentityTrust; callers: CallerRule[] } } = {},
): RoutingTable {
  return buildRoutingTable({
    project: "test",
    version: ++version,
    ...(options.mesh === undefined ? {} : { identity: options.mesh.identity }),
    services: [
      {
        name: "web",
        routes: (options.routes ?? [{ path: "/", stripPrefix: false }]).map((r) => ({ ...r, stripPrefix: r.stripPrefix ?? false })),
        policy: options.policy ?? NO_BREAKER,
        faults,
        ...(options.split === undefined ? {} : { split: options.split }),
        ...(options.mesh === undefined ? {} : { callers: options.mesh.callers }),
      },
    ],
    endpoints: upstreams.map((u, i) => ({ service: "web", replicaId: `web-${i + 1}`, url: u.url, release: u.release })),
  });
}

const client = new Agent({ keepAliveTimeout: 10_000, connections: 64 });

async function send(url: string, headers: Record<string, string> = {}, signal?: AbortSignal) {
  const res = await request(url, { dispatcher: client, headers, headersTimeout: 30_000, ...(signal === undefined ? {} : { signal }) });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

const errorOf = (r: { text: string }) => (JSON.parse(r.text) as ErrorBody).error;

async function stats(gw: Gateway): Promise<StatsSnapshot> {
  return JSON.parse((await send(`${gw.adminUrl}/stats?window=60`)).text) as StatsSnapshot;
}

async function metric(gw: Gateway, name: string, labels: string): Promise<number> {
  const text = (await send(`${gw.adminUrl}/metrics`)).text;
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

async function stateOf(gw: Gateway): Promise<GatewayState["services"][number]> {
  return (JSON.parse((await send(`${gw.adminUrl}/state`)).text) as GatewayState).services.find((s) => s.name === "web")!;
}

// --- tests ---

describe("error faults", () => {
  it("abort about `share` of the requests without contacting a replica or retrying, counted for the version in stats and metrics", async () => {
    const up = await startUpstream("r1");
    const gw = await startGateway();
    gw.setTable(table([up], [{ id: "exp-1", share: 0.3, abortStatus: 503, until: inAMinute() }]));
    let aborted = 0;
    for (let batch = 0; batch < 50; batch++) {
      const answers = await Promise.all(Array.from({ length: 20 }, () => send(`${gw.url}/x`)));
      for (const r of answers) {
        if (r.status === 200) continue;
        expect(r.status).toBe(503);
        expect(r.headers["x-keelson-fault"]).toBe("exp-1");
        expect(errorOf(r)).toMatchObject({ code: "KEELSON_ERR_FAULT_INJECTED", details: { service: "web", version: "r1", fault: "exp-1" } });
        aborted++;
      }
    }
    // Binomial(1,000, 0.3): sd ≈ 14.5, so 200-400 is about 7 sd either way.
    expect(aborted).toBeGreaterThanOrEqual(200);
    expect(aborted).toBeLessThanOrEqual(400);
    // Every other request reached the replica once: aborts are the service's answer, never retried.
    expect(up.seen).toHaveLength(1_000 - aborted);
    expect(await metric(gw, "keelson_gateway_retries_total", 'outcome="retried"')).toBe(0);

    const snap = await stats(gw);
    expect(snap.series.find((s) => s.replica === "fault:exp-1")).toMatchObject({ service: "web", version: "r1", requests: aborted, errors: aborted });
    expect(snap.series.find((s) => s.replica === "web-1")).toMatchObject({ requests: 1_000 - aborted, errors: 0 });
    const r1 = snap.versions.find((v) => v.version === "r1")!;
    expect(r1).toMatchObject({ replicas: 1, requests: 1_000, errors: aborted });
    expect(r1.errorRate).toBeCloseTo(aborted / 1_000);
    expect(await metric(gw, "keelson_gateway_requests_total", 'version="r1",route="/",replica="fault:exp-1",code_class="5xx"')).toBe(aborted);
    expect(await metric(gw, "keelson_gateway_requests_total", 'version="r1",route="/",replica="web-1",code_class="2xx"')).toBe(1_000 - aborted);
    expect((await stateOf(gw)).faults).toEqual([expect.objectContaining({ id: "exp-1", share: 0.3, abortStatus: 503 })]);
  });

  it("match a version by split label or release id", async () => {
    const stable = await startUpstream("r1");
    const canary = await startUpstream("r2");
    const gw = await startGateway();
    const split: TrafficSplit = {
      sticky: false,
      weights: [
        { release: "r1", weight: 50, label: "stable" },
        { release: "r2", weight: 50, label: "canary" },
      ],
    };
    gw.setTable(table([stable, canary], [{ id: "canary-errors", version: "canary", share: 1, abortStatus: 500, until: inAMinute() }], { split }));
    expect((await send(`${gw.url}/x`, { "x-keelson-version": "stable" })).status).toBe(200);
    const hit = await send(`${gw.url}/x`, { "x-keelson-version": "r2" });
    expect(hit.status).toBe(500);
    expect(hit.headers["x-keelson-fault"]).toBe("canary-errors");
    // By weight: every request bound for the canary fails, every other one succeeds.
    const answers = await Promise.all(Array.from({ length: 100 }, () => send(`${gw.url}/x`)));
    const failed = answers.filter((r) => r.status === 500).length;
    expect(failed + stable.seen.length - 1).toBe(100);
    expect(failed).toBeGreaterThan(20);
    expect(canary.seen).toHaveLength(0);
    const snap = await stats(gw);
    expect(snap.versions.find((v) => v.version === "r2")).toMatchObject({ replicas: 1, requests: failed + 1, errors: failed + 1, errorRate: 1 });
    expect(snap.versions.find((v) => v.version === "r1")).toMatchObject({ errors: 0 });

    // The same by release id.
    gw.setTable(table([stable, canary], [{ id: "stable-errors", version: "r1", share: 1, abortStatus: 502, until: inAMinute() }], { split }));
    expect((await send(`${gw.url}/x`, { "x-keelson-version": "stable" })).status).toBe(502);
    expect((await send(`${gw.url}/x`, { "x-keelson-version": "canary" })).status).toBe(200);
  });

  it("stop at their end time even when no new table comes", async () => {
    const up = await startUpstream("r1");
    let wall = Date.parse("2030-01-01T00:00:00Z");
    const gw = await startGateway({ wallClock: () => wall });
    gw.setTable(table([up], [{ id: "exp-1", share: 1, abortStatus: 503, until: "2030-01-01T00:00:10Z" }]));
    expect((await send(`${gw.url}/x`)).status).toBe(503);
    wall += 10_000;
    expect((await send(`${gw.url}/x`)).status).toBe(200);
    expect((await stateOf(gw)).faults).toBeUndefined();
    // A table that still lists an expired fault does not bring it back.
    gw.setTable(table([up], [{ id: "exp-1", share: 1, abortStatus: 503, until: "2030-01-01T00:00:10Z" }]));
    expect((await send(`${gw.url}/x`)).status).toBe(200);
    expect(up.seen).toHaveLength(2);
  });

  it("open the circuit at 100%, after which the breaker answers (or the route's fallback does)", async () => {
    const up = await startUpstream("r1");
    const gw = await startGateway();
    const fallback = { status: 200, contentType: "application/json", body: '{"degraded":true}' };
    const policy: ServicePolicy = { ...DEFAULT_SERVICE_POLICY, circuitBreaker: { failureRatio: 0.5, minRequests: 10, windowMs: 10_000, openMs: 60_000, halfOpenProbes: 1 } };
    gw.setTable(
      table([up], [{ id: "outage", share: 1, abortStatus: 503, until: inAMinute() }], {
        policy,
        routes: [
          { path: "/", stripPrefix: false },
          { path: "/api", stripPrefix: false, fallback },
        ],
      }),
    );
    for (let i = 0; i < 10; i++) {
      const r = await send(`${gw.url}/x`);
      expect(r.status).toBe(503);
      expect(errorOf(r).code).toBe("KEELSON_ERR_FAULT_INJECTED");
    }
    expect((await stateOf(gw)).breaker).toMatchObject({ state: "open", opened: 1 });
    const open = await send(`${gw.url}/x`);
    expect(open.status).toBe(503);
    expect(errorOf(open).code).toBe("KEELSON_ERR_CIRCUIT_OPEN");
    expect(Number(open.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    const degraded = await send(`${gw.url}/api/items`);
    expect(degraded.status).toBe(200);
    expect(degraded.text).toBe(fallback.body);
    expect(degraded.headers["x-keelson-fallback"]).toBe("circuit-open");
    expect(up.seen).toHaveLength(0);
    expect(await metric(gw, "keelson_gateway_rejections_total", 'service="web",reason="circuit_open"')).toBe(1);
  });

  it("apply on the mesh listener too", async () => {
    const up = await startUpstream("r1");
    const gw = await startGateway({ meshPort: 0 });
    const mesh = await createMeshIdentity("test");
    cleanups.push(() => mesh.cleanup());
    gw.setTable(table([up], [{ id: "exp-mesh", share: 1, abortStatus: 503, until: inAMinute() }], { mesh: { identity: mesh.trust, callers: [{ service: "billing" }] } }));
    const r = await send(`${gw.meshUrl}/x`, { "x-keelson-service": "web", "x-keelson-identity": await mesh.tokenFor("billing") });
    expect(r.status).toBe(503);
    expect(r.headers["x-keelson-fault"]).toBe("exp-mesh");
    expect(up.seen).toHaveLength(0);
    expect(await metric(gw, "keelson_gateway_requests_total", 'route="internal",replica="fault:exp-mesh",code_class="5xx"')).toBe(1);
  });
});

describe("latency faults", () => {
  it("delay the request before it goes upstream, within its deadline, and show in the replica's latency", async () => {
    const up = await startUpstream("r1");
    const gw = await startGateway();
    gw.setTable(table([up], [{ id: "slow", share: 1, delayMs: 150, until: inAMinute() }], { policy: { ...NO_BREAKER, timeoutMs: 5_000 } }));
    const began = performance.now();
    const r = await send(`${gw.url}/x`);
    expect(r.status).toBe(200);
    expect(performance.now() - began).toBeGreaterThanOrEqual(145);
    // What is left of the deadline after the delay goes upstream.
    expect(up.seen[0]!.deadline).toBeLessThanOrEqual(5_000 - 145);
    expect(r.headers["x-keelson-fault"]).toBeUndefined();
    const replica = (await stats(gw)).series.find((s) => s.replica === "web-1")!;
    expect(replica.latencyMs!.mean).toBeGreaterThanOrEqual(145);
  });

  it("end in 504 without reaching a replica when the deadline comes first", async () => {
    const up = await startUpstream("r1");
    const gw = await startGateway();
    gw.setTable(table([up], [{ id: "slow", share: 1, delayMs: 10_000, until: inAMinute() }], { policy: { ...NO_BREAKER, timeoutMs: 200 } }));
    const began = performance.now();
    const r = await send(`${gw.url}/x`);
    expect(r.status).toBe(504);
    expect(errorOf(r).code).toBe("KEELSON_ERR_UPSTREAM_TIMEOUT");
    expect(performance.now() - began).toBeLessThan(5_000);
    // A client's own shorter deadline too.
    expect((await send(`${gw.url}/x`, { "x-keelson-timeout-ms": "50" })).status).toBe(504);
    expect(up.seen).toHaveLength(0);
    expect((await stats(gw)).series.find((s) => s.replica === "fault:slow")).toMatchObject({ requests: 2, errors: 2 });
  });

  it("never send upstream the request of a client that left during the delay", async () => {
    const up = await startUpstream("r1");
    const gw = await startGateway();
    gw.setTable(table([up], [{ id: "slow", share: 1, delayMs: 300, until: inAMinute() }]));
    const abort = new AbortController();
    const pending = send(`${gw.url}/x`, {}, abort.signal).catch((err: unknown) => err);
    await waitFor(async () => (await metric(gw, "keelson_gateway_requests_in_flight", 'version="none"')) === 1, { what: "the request in the gateway" });
    abort.abort();
    await pending;
    // Counted as a client that left (499), under the fault.
    await waitFor(async () => (await metric(gw, "keelson_gateway_requests_total", 'replica="fault:slow",code_class="4xx"')) === 1, { what: "the 499" });
    // A request sent after it, delayed as long, ends after the first one's delay would have: only it went upstream.
    expect((await send(`${gw.url}/after`)).status).toBe(200);
    expect(up.seen.map((s) => s.url)).toEqual(["/after"]);
    expect((await stats(gw)).series.find((s) => s.replica === "fault:slow")).toBeUndefined();
  });
});
