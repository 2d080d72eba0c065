// Scale from zero through the gateway: a stand-in control plane on 127.0.0.1 streams the routing
// table and records activate calls; requests for a service with no replica wait until a table
// brings one, time out with a 503 that says how long they waited, are capped, and cause one
// activate call per episode (also with several worker processes, where the primary asks).
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { Server, ServerResponse } from "node:http";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent, Client, request } from "undici";
import type { ErrorBody, RoutingTable } from "@keelson/protocol";
import { makeTempDir, waitFor } from "#test-support";
import type { GatewayClusterOptions } from "./gateway-cluster.js";
import { createGatewayCluster } from "./gateway-cluster.js";
import type { Gateway, GatewayOptions, GatewayState } from "./gateway-server.js";
import type { StatsSnapshot } from "./live-stats.js";
import { createGateway } from "./gateway-server.js";
import { createSeededRandom } from "./random.js";
import { buildRoutingTable } from "./routing-table.js";

// --- fixtures ---

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let stateDir = "";

beforeEach(async () => {
  const tmp = await makeTempDir("keelson-activation-");
  stateDir = tmp.dir;
  cleanups.push(tmp.cleanup);
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function startUpstream(name: string): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ name }));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

let version = 0;
/**
 * Service "orders" scaled to zero (holding requests up to `holdTimeoutMs`, asking at `threshold`
 * held at once or arrived within `windowMs`), or served by `url`.
 */
function table(options: { url?: string; holdTimeoutMs?: number; threshold?: number; windowMs?: number } = {}): RoutingTable {
  const activation = {
    holdTimeoutMs: options.holdTimeoutMs ?? 10_000,
    ...(options.threshold === undefined ? {} : { threshold: options.threshold }),
    ...(options.windowMs === undefined ? {} : { windowMs: options.windowMs }),
  };
  return buildRoutingTable({
    project: "test",
    version: ++version,
    services: [{ name: "orders", routes: [{ path: "/", stripPrefix: false }], activation }],
    endpoints: options.url === undefined ? [] : [{ service: "orders", replicaId: `orders-${version}`, url: options.url, release: "r1" }],
  });
}

/**
 * A stand-in control plane: streams its current table to each watcher and records every
 * activate call; `status` says what it answers to them (202 by default).
 */
async function startControlPlane(current: RoutingTable) {
  const watchers = new Set<ServerResponse>();
  const activations: Array<{ service: string; authorization: string | undefined; at: number }> = [];
  let status = 202;
  const server: Server = createServer((req, res) => {
    const activate = /^\/v1\/services\/([^/]+)\/activate$/.exec(req.url ?? "");
    if (req.method === "POST" && activate !== null) {
      req.resume();
      const service = decodeURIComponent(activate[1]!);
      activations.push({ service, authorization: req.headers.authorization, at: performance.now() });
      const body = status === 202 ? { service, from: 0, to: 1 } : { error: { code: "KEELSON_ERR_INTERNAL", message: "not now" } };
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
      return;
    }
    if (req.url !== "/v1/watch/routing") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
    res.write(`event: routing\ndata: ${JSON.stringify(current)}\n\n`);
    watchers.add(res);
    res.on("close", () => watchers.delete(res));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    activations,
    setStatus(s: number) {
      status = s;
    },
    publish(table: RoutingTable) {
      current = table;
      for (const w of watchers) w.write(`event: routing\ndata: ${JSON.stringify(table)}\n\n`);
    },
  };
}

async function startGateway(controlPlaneUrl: string, options: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const credentialFile = join(stateDir, "gateway.token");
  await writeFile(credentialFile, "gateway-token\n");
  const gw = createGateway({
    host: "127.0.0.1",
    port: 0,
    adminPort: 0,
    stateDir,
    processMetrics: false,
    random: createSeededRandom(3),
    controlPlaneUrl,
    credentialFile,
    watch: { initialBackoffMs: 20, maxBackoffMs: 100 },
    ...options,
  });
  await gw.start();
  cleanups.push(() => gw.stop({ drainMs: 100 }));
  return gw;
}

const client = new Agent({ keepAliveTimeout: 10_000, connections: 256 });

async function send(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { dispatcher: client, headers, headersTimeout: 30_000 });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

const errorOf = (r: { text: string }) => (JSON.parse(r.text) as ErrorBody).error;

/** The held arrivals a gateway's `/stats` reports. */
async function heldArrivals(adminUrl: string): Promise<StatsSnapshot["held"]> {
  return (JSON.parse((await send(`${adminUrl}/stats?window=10`)).text) as StatsSnapshot).held;
}

async function held(gw: Gateway): Promise<number> {
  const state = JSON.parse((await send(`${gw.adminUrl}/state`)).text) as GatewayState;
  return state.services.find((s) => s.name === "orders")?.activation?.held ?? -1;
}

/** Waits until the gateway serves table `version` (the watch has delivered it). */
const serving = (gw: Gateway, v: number) => waitFor(() => gw.table()?.version === v, { what: `table ${v}` });

// --- tests ---

describe("a service scaled to zero", () => {
  it("holds a request, asks the control plane once with the gateway's credential, and sends it on when a replica appears", async () => {
    const first = table();
    const cp = await startControlPlane(first);
    const gw = await startGateway(cp.url);
    await serving(gw, first.version);

    const pending = send(`${gw.url}/orders/1`);
    await waitFor(() => cp.activations.length === 1, { what: "the activate call" });
    expect(cp.activations[0]).toMatchObject({ service: "orders", authorization: "Bearer gateway-token" });
    expect(await held(gw)).toBe(1);

    const up = await startUpstream("orders-1");
    cp.publish(table({ url: up }));
    const r = await pending;
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ name: "orders-1" });
    expect(await held(gw)).toBe(0);
    expect(cp.activations).toHaveLength(1);
  });

  it("with an activation threshold, asks only once that many requests are held at once", async () => {
    const first = table({ threshold: 3 });
    const cp = await startControlPlane(first);
    const gw = await startGateway(cp.url);
    await serving(gw, first.version);

    const pending = [send(`${gw.url}/orders/1`), send(`${gw.url}/orders/2`)];
    await waitFor(async () => (await held(gw)) === 2, { what: "2 held requests" });
    const state = JSON.parse((await send(`${gw.adminUrl}/state`)).text) as GatewayState;
    expect(state.services.find((s) => s.name === "orders")?.activation).toEqual({ holdTimeoutMs: 10_000, held: 2, threshold: 3 });
    const thirdAt = performance.now();
    pending.push(send(`${gw.url}/orders/3`));
    await waitFor(() => cp.activations.length === 1, { what: "the activate call" });
    // Asked for by the third request, not the first.
    expect(cp.activations[0]!.at).toBeGreaterThanOrEqual(thirdAt);
    const up = await startUpstream("orders-1");
    cp.publish(table({ url: up }));
    expect((await Promise.all(pending)).map((a) => a.status)).toEqual([200, 200, 200]);
    expect(cp.activations).toHaveLength(1);
  });

  it("with an activation threshold, wakes for a client that sends one request at a time and again after each 503 (regression: it never woke)", async () => {
    // What the routing publisher sends for activation 3 with a 10 s autoscale window.
    const first = table({ threshold: 3, holdTimeoutMs: 300, windowMs: 10_000 });
    const cp = await startControlPlane(first);
    const gw = await startGateway(cp.url);
    await serving(gw, first.version);

    for (let i = 1; i <= 2; i++) {
      const r = await send(`${gw.url}/orders/${i}`);
      expect(r.status).toBe(503);
      expect(errorOf(r).code).toBe("KEELSON_ERR_NO_ENDPOINT");
    }
    expect(cp.activations).toHaveLength(0);
    // Never two at once, but the autoscaler sees them in /stats (it sums every gateway's).
    expect(await heldArrivals(gw.adminUrl)).toEqual([{ service: "orders", arrivals: 2, windowMs: 10_000 }]);
    const third = send(`${gw.url}/orders/3`);
    await waitFor(() => cp.activations.length === 1, { what: "the activate call" });
    expect(await heldArrivals(gw.adminUrl)).toEqual([{ service: "orders", arrivals: 3, windowMs: 10_000 }]);
    const up = await startUpstream("orders-1");
    const served = table({ url: up, threshold: 3, holdTimeoutMs: 300, windowMs: 10_000 });
    cp.publish(served);
    expect((await third).status).toBe(200);
    // Once it has a replica, the arrivals have done their part.
    expect(await heldArrivals(gw.adminUrl)).toBeUndefined();
    expect(cp.activations).toHaveLength(1);
  });

  it("asks once per episode for many held requests, and again in the next episode", async () => {
    const first = table();
    const cp = await startControlPlane(first);
    const gw = await startGateway(cp.url);
    await serving(gw, first.version);

    const pending = Array.from({ length: 100 }, (_, i) => send(`${gw.url}/orders/${i}`));
    await waitFor(async () => (await held(gw)) === 100, { what: "100 held requests" });
    const up = await startUpstream("orders-1");
    cp.publish(table({ url: up }));
    const answers = await Promise.all(pending);
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 100 }, () => 200));
    expect(cp.activations).toHaveLength(1);

    // Scaled to zero again: a new episode, a new ask.
    const zero = table();
    cp.publish(zero);
    await serving(gw, zero.version);
    const again = send(`${gw.url}/orders/again`);
    await waitFor(() => cp.activations.length === 2, { what: "the second activate call" });
    cp.publish(table({ url: up }));
    expect((await again).status).toBe(200);
  });

  it("answers 503 saying how long it waited when no replica comes in time, never past the request's deadline", async () => {
    const first = table({ holdTimeoutMs: 300 });
    const cp = await startControlPlane(first);
    const gw = await startGateway(cp.url);
    await serving(gw, first.version);

    const began = performance.now();
    const r = await send(`${gw.url}/orders/1`);
    const took = performance.now() - began;
    expect(r.status).toBe(503);
    const error = errorOf(r);
    expect(error.code).toBe("KEELSON_ERR_NO_ENDPOINT");
    expect(error.message).toMatch(/^service "orders" has no ready replica; waited \d+ ms for one to start$/);
    expect((error.details as { waitedMs: number }).waitedMs).toBeGreaterThanOrEqual(295);
    expect(took).toBeGreaterThanOrEqual(295);

    // The client's own deadline is shorter than the hold: it wins.
    const short = await send(`${gw.url}/orders/2`, { "x-keelson-timeout-ms": "50" });
    expect(short.status).toBe(503);
    expect((errorOf(short).details as { waitedMs: number }).waitedMs).toBeLessThan(295);
    expect(await held(gw)).toBe(0);
  });

  it("holds at most maxHeldRequests per service and refuses the rest at once", async () => {
    const first = table();
    const cp = await startControlPlane(first);
    const gw = await startGateway(cp.url, { maxHeldRequests: 5 });
    await serving(gw, first.version);

    const pending = Array.from({ length: 5 }, (_, i) => send(`${gw.url}/orders/${i}`));
    await waitFor(async () => (await held(gw)) === 5, { what: "5 held requests" });
    const refused = await send(`${gw.url}/orders/6`);
    expect(refused.status).toBe(503);
    expect(errorOf(refused)).toMatchObject({ code: "KEELSON_ERR_NO_ENDPOINT", details: { service: "orders", held: 5 } });
    const up = await startUpstream("orders-1");
    cp.publish(table({ url: up }));
    expect((await Promise.all(pending)).map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
  });

  it("answers held requests at once when the gateway stops, rather than at the end of the drain", async () => {
    const first = table();
    const cp = await startControlPlane(first);
    const gw = await startGateway(cp.url);
    await serving(gw, first.version);
    const pending = send(`${gw.url}/orders/1`);
    await waitFor(async () => (await held(gw)) === 1, { what: "the held request" });
    const began = performance.now();
    const stopped = gw.stop({ drainMs: 10_000 });
    const r = await pending;
    expect(r.status).toBe(503);
    expect(errorOf(r).code).toBe("KEELSON_ERR_NO_ENDPOINT");
    await stopped;
    expect(performance.now() - began).toBeLessThan(5_000);
  });

  it("asks again at most every activateRetryMs while the control plane refuses, and stops once it accepts", async () => {
    const first = table();
    const cp = await startControlPlane(first);
    cp.setStatus(500);
    const gw = await startGateway(cp.url, { activateRetryMs: 100 });
    await serving(gw, first.version);

    const pending = send(`${gw.url}/orders/1`);
    await waitFor(() => cp.activations.length === 3, { what: "three activate calls", timeoutMs: 5_000 });
    cp.setStatus(202);
    await waitFor(() => cp.activations.length === 4, { what: "an accepted call", timeoutMs: 5_000 });
    for (let i = 1; i < 4; i++) expect(cp.activations[i]!.at - cp.activations[i - 1]!.at).toBeGreaterThanOrEqual(95);
    const up = await startUpstream("orders-1");
    // Time enough for a fifth call if the gateway still asked (it must not).
    await new Promise((r) => setTimeout(r, 300));
    cp.publish(table({ url: up }));
    expect((await pending).status).toBe(200);
    expect(cp.activations).toHaveLength(4);
  });
});

describe("a service scaled to zero behind a multi-worker gateway", () => {
  const TS_LOADER = new URL("../../../../test/support/ts-loader.mjs", import.meta.url).href;

  it("asks the control plane once from the primary while several workers hold requests", { timeout: 60_000 }, async () => {
    const first = table();
    const cp = await startControlPlane(first);
    const options: GatewayClusterOptions = {
      workers: 2,
      host: "127.0.0.1",
      port: 0,
      adminPort: 0,
      stateDir,
      processMetrics: false,
      controlPlaneUrl: cp.url,
      watch: { initialBackoffMs: 20, maxBackoffMs: 100 },
      workerExecArgv: ["--import", TS_LOADER],
      workerLogLine: () => undefined,
      restartBackoff: { initialMs: 50, maxMs: 1_000 },
    };
    const gw = createGatewayCluster(options);
    cleanups.push(async () => {
      await gw.stop({ drainMs: 100 }).catch(() => undefined);
      gw.kill();
    });
    await gw.start();
    await waitFor(() => gw.workers().every((w) => w.tableVersion === first.version), { what: "both workers on the table" });

    // One connection per request: the primary hands connections to the workers in turn.
    const pending = Array.from({ length: 10 }, async (_, i) => {
      const c = new Client(gw.url);
      try {
        const res = await c.request({ path: `/orders/${i}`, method: "GET", headersTimeout: 30_000 });
        await res.body.dump();
        return res.statusCode;
      } finally {
        await c.close();
      }
    });
    const heldPerWorker = async () => {
      const state = JSON.parse((await send(`${gw.adminUrl}/state`)).text) as { workers: Array<{ state: GatewayState }> };
      return state.workers.map((w) => w.state.services.find((s) => s.name === "orders")?.activation?.held ?? 0);
    };
    const perWorker = await waitFor(
      async () => {
        const counts = await heldPerWorker();
        return counts.reduce((a, b) => a + b, 0) === 10 ? counts : undefined;
      },
      { what: "10 held requests", timeoutMs: 20_000 },
    );
    expect(perWorker.filter((n) => n > 0)).toHaveLength(2);
    expect(cp.activations).toHaveLength(1);
    expect(cp.activations[0]!.service).toBe("orders");

    const up = await startUpstream("orders-1");
    cp.publish(table({ url: up }));
    expect(await Promise.all(pending)).toEqual(Array.from({ length: 10 }, () => 200));
    expect(cp.activations).toHaveLength(1);
  });

  it("with an activation threshold, reports in /stats the held arrivals of all workers summed, though no worker alone reached it", { timeout: 60_000 }, async () => {
    const first = table({ threshold: 3, holdTimeoutMs: 20_000, windowMs: 60_000 });
    const cp = await startControlPlane(first);
    const options: GatewayClusterOptions = {
      workers: 2,
      host: "127.0.0.1",
      port: 0,
      adminPort: 0,
      stateDir,
      processMetrics: false,
      controlPlaneUrl: cp.url,
      watch: { initialBackoffMs: 20, maxBackoffMs: 100 },
      workerExecArgv: ["--import", TS_LOADER],
      workerLogLine: () => undefined,
      restartBackoff: { initialMs: 50, maxMs: 1_000 },
    };
    const gw = createGatewayCluster(options);
    cleanups.push(async () => {
      await gw.stop({ drainMs: 100 }).catch(() => undefined);
      gw.kill();
    });
    await gw.start();
    await waitFor(() => gw.workers().every((w) => w.tableVersion === first.version), { what: "both workers on the table" });

    // Three requests, one connection each: the primary hands them to the workers in turn (2 and 1).
    const pending = Array.from({ length: 3 }, async (_, i) => {
      const c = new Client(gw.url);
      try {
        const res = await c.request({ path: `/orders/${i}`, method: "GET", headersTimeout: 30_000 });
        await res.body.dump();
        return res.statusCode;
      } finally {
        await c.close();
      }
    });
    const arrivals = await waitFor(
      async () => {
        const h = await heldArrivals(gw.adminUrl);
        return h?.[0]?.arrivals === 3 ? h : undefined;
      },
      { what: "3 held arrivals in /stats", timeoutMs: 20_000 },
    );
    expect(arrivals).toEqual([{ service: "orders", arrivals: 3, windowMs: 60_000 }]);
    const state = JSON.parse((await send(`${gw.adminUrl}/state`)).text) as { workers: Array<{ state: GatewayState }> };
    expect(state.workers.map((w) => w.state.services.find((s) => s.name === "orders")?.activation?.held).sort()).toEqual([1, 2]);
    // Neither worker held 3: the primary did not ask; the autoscaler's look at /stats is what wakes it.
    expect(cp.activations).toHaveLength(0);

    const up = await startUpstream("orders-1");
    cp.publish(table({ url: up }));
    expect(await Promise.all(pending)).toEqual([200, 200, 200]);
  });
});
