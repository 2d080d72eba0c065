// Tests for the multi-worker gateway with real worker processes: traffic through every worker, one
// table for all, aggregated metrics, restart of a killed worker, and a real SIGTERM drain. Workers
// run our TypeScript sources through test/support/ts-loader.mjs.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile, readdir, readlink, stat } from "node:fs/promises";
import { createServer } from "node:http";
import type { Server, ServerResponse } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Client, request } from "undici";
import type { RoutingTable } from "@keelson/protocol";
import { KeelsonError } from "@keelson/protocol";
import { freePort, makeTempDir, waitFor } from "#test-support";
import type { GatewayCluster, GatewayClusterOptions } from "./gateway-cluster.js";
import { createGatewayCluster } from "./gateway-cluster.js";
import { buildRoutingTable } from "./routing-table.js";
import { ROUTING_FILE, saveRoutingTable } from "./routing-watch.js";
import { GATEWAY_PID_FILE } from "./run-gateway.js";

const TS_LOADER = new URL("../../../../test/support/ts-loader.mjs", import.meta.url).href;
const WORKER_EXEC_ARGV = ["--import", TS_LOADER];

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let stateDir = "";

beforeEach(async () => {
  const tmp = await makeTempDir("keelson-gateway-cluster-");
  stateDir = tmp.dir;
  cleanups.push(tmp.cleanup);
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

let version = 0;
function tableTo(url: string): RoutingTable {
  version++;
  return buildRoutingTable({
    project: "test",
    version,
    services: [{ name: "web", routes: [{ path: "/", stripPrefix: false }] }],
    endpoints: [{ service: "web", replicaId: `web-${version}`, url, release: "r1" }],
  });
}

/** An upstream that answers with its name and remembers the source port of every request. */
async function startUpstream(name: string) {
  const sourcePorts: number[] = [];
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    sourcePorts.push(req.socket.remotePort!);
    req.resume();
    res.end(name);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, sourcePorts };
}

async function startCluster(overrides: Partial<GatewayClusterOptions> = {}): Promise<GatewayCluster & { logLines: string[] }> {
  const logLines: string[] = [];
  const gw = createGatewayCluster({
    workers: 2,
    host: "127.0.0.1",
    port: 0,
    adminPort: 0,
    stateDir,
    processMetrics: false,
    workerExecArgv: WORKER_EXEC_ARGV,
    workerLogLine: (line) => void logLines.push(line),
    restartBackoff: { initialMs: 50, maxMs: 1_000 },
    ...overrides,
  });
  cleanups.push(async () => {
    await gw.stop({ drainMs: 100 }).catch(() => undefined);
    gw.kill();
  });
  await gw.start();
  return Object.assign(gw, { logLines });
}

/** One request on a connection of its own, so the primary hands each to the next worker. */
async function getFresh(url: string): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  const client = new Client(u.origin);
  try {
    const res = await client.request({ path: `${u.pathname}${u.search}`, method: "GET" });
    return { status: res.statusCode, text: await res.body.text() };
  } finally {
    await client.close();
  }
}

async function adminJson<T>(gw: GatewayCluster, path: string): Promise<{ status: number; body: T }> {
  const res = await request(`${gw.adminUrl}${path}`);
  return { status: res.statusCode, body: (await res.body.json()) as T };
}

/**
 * The sum of every series of metric `name` whose labels include `labels` (other labels, such as
 * route or replica, may vary); undefined when there is none.
 */
async function metricValue(gw: GatewayCluster, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const res = await request(`${gw.adminUrl}/metrics`);
  const text = await res.body.text();
  let total: number | undefined;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? "").matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) total = (total ?? 0) + Number(m[3]);
  }
  return total;
}

const workerPids = (gw: GatewayCluster) => gw.workers().flatMap((w) => (w.pid === undefined ? [] : [w.pid]));

/**
 * Which of `pids` own a TCP socket bound to one of `localPorts` (the source ports an upstream saw):
 * tells, from outside, which worker process a proxied request came through.
 */
async function socketOwners(localPorts: readonly number[], pids: readonly number[]): Promise<Set<number>> {
  const wanted = new Set(localPorts);
  const inodes = new Set<string>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await readFile(file, "utf8").catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      const port = Number.parseInt(cols[1]?.split(":")[1] ?? "", 16);
      if (wanted.has(port) && cols[9] !== undefined) inodes.add(cols[9]);
    }
  }
  const owners = new Set<number>();
  for (const pid of pids) {
    for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m !== null && inodes.has(m[1]!)) owners.add(pid);
    }
  }
  return owners;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("createGatewayCluster", () => {
  it("proxies through every worker and /metrics counts the requests of all of them", async () => {
    const upstream = await startUpstream("a");
    const gw = await startCluster({ processMetrics: true });
    gw.setTable(tableTo(upstream.url));
    await waitFor(async () => (await adminJson<{ version: number }>(gw, "/routes")).body.version === version, { what: "every worker to serve the table" });

    for (let i = 0; i < 12; i++) expect(await getFresh(`${gw.url}/x`)).toEqual({ status: 200, text: "a" });

    const pids = workerPids(gw);
    expect(pids).toHaveLength(2);
    expect(pids).not.toContain(process.pid);
    expect(await socketOwners(upstream.sourcePorts, pids)).toEqual(new Set(pids));
    expect(await metricValue(gw, "keelson_gateway_requests_total", { service: "web", code_class: "2xx" })).toBe(12);
    expect(await metricValue(gw, "keelson_gateway_request_duration_seconds_count", { service: "web" })).toBe(12);
    expect(await metricValue(gw, "keelson_gateway_workers")).toBe(2);
    expect(await metricValue(gw, "keelson_gateway_routing_table_version")).toBe(version);
    // Process metrics of the primary and both workers, summed.
    expect(await metricValue(gw, "process_cpu_seconds_total")).toBeGreaterThan(0);
    // The traffic window canary analysis reads: both workers' attempts in one snapshot.
    const stats = await adminJson<{ windowSeconds: number; coveredSeconds: number; versions: Array<{ service: string; requests: number; replicas: number }> }>(gw, "/stats?window=60");
    expect(stats.body.windowSeconds).toBe(60);
    // Both workers answered; they started moments ago, so only part of the minute is covered.
    expect(stats.body.coveredSeconds).toBeGreaterThan(0);
    expect(stats.body.coveredSeconds).toBeLessThan(60);
    expect(stats.body.versions.map((v) => [v.service, v.requests, v.replicas])).toEqual([["web", 12, 1]]);
    const state = await adminJson<{ version: number; workers: Array<{ slot: number; pid: number; state: { services: unknown[] } }> }>(gw, "/state");
    expect(state.body.version).toBe(version);
    expect(state.body.workers.map((w) => [w.slot, w.pid, w.state.services.length])).toEqual([
      [0, pids[0], 1],
      [1, pids[1], 1],
    ]);
    const ready = await adminJson<Record<string, unknown>>(gw, "/readyz");
    expect(ready).toEqual({ status: 200, body: { status: "ready", version, draining: false, controlPlane: "none", workers: { listening: 2, configured: 2 } } });
  });

  it("sends every table from the control plane to every worker and saves it for the next start", async () => {
    const a = await startUpstream("a");
    const b = await startUpstream("b");
    let current = tableTo(a.url);
    const watchers = new Set<ServerResponse>();
    const cp: Server = createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`event: routing\ndata: ${JSON.stringify(current)}\n\n`);
      watchers.add(res);
      res.on("close", () => watchers.delete(res));
    });
    cp.listen(0, "127.0.0.1");
    await once(cp, "listening");
    cleanups.push(() => new Promise((r) => (cp.closeAllConnections(), cp.close(r))));

    const gw = await startCluster({ controlPlaneUrl: `http://127.0.0.1:${(cp.address() as { port: number }).port}`, watch: { initialBackoffMs: 20, maxBackoffMs: 100 } });
    await waitFor(async () => (await adminJson<{ version?: number }>(gw, "/routes")).body.version === current.version, { what: "the first table at every worker" });
    expect(await getFresh(`${gw.url}/`)).toEqual({ status: 200, text: "a" });

    current = tableTo(b.url);
    for (const w of watchers) w.write(`event: routing\ndata: ${JSON.stringify(current)}\n\n`);
    await waitFor(async () => (await adminJson<{ version?: number }>(gw, "/routes")).body.version === current.version, { what: "the new table at every worker" });

    expect(gw.workers().map((w) => w.tableVersion)).toEqual([current.version, current.version]);
    for (let i = 0; i < 8; i++) expect(await getFresh(`${gw.url}/`)).toEqual({ status: 200, text: "b" });
    const pids = workerPids(gw);
    expect(await socketOwners(b.sourcePorts, pids)).toEqual(new Set(pids));
    expect(await metricValue(gw, "keelson_gateway_control_plane_connected")).toBe(1);
    expect(await metricValue(gw, "keelson_gateway_routing_table_version")).toBe(current.version);
    // The primary saved it: a restarted gateway serves it before the control plane answers.
    await waitFor(async () => (JSON.parse(await readFile(join(stateDir, ROUTING_FILE), "utf8")) as RoutingTable).version === current.version, {
      what: "routing.json to hold the new table",
    });
  });

  it("restarts a killed worker while the other one serves, and keeps counting its requests", async () => {
    const upstream = await startUpstream("a");
    const gw = await startCluster({ restartBackoff: { initialMs: 3_000, maxMs: 6_000 } });
    gw.setTable(tableTo(upstream.url));
    await waitFor(async () => (await adminJson<{ version?: number }>(gw, "/routes")).body.version === version, { what: "every worker to serve the table" });
    for (let i = 0; i < 6; i++) expect((await getFresh(`${gw.url}/`)).status).toBe(200);
    // A scrape is what the primary remembers of a worker that dies without last words.
    expect(await metricValue(gw, "keelson_gateway_requests_total", { service: "web", code_class: "2xx" })).toBe(6);

    const [victim, survivor] = gw.workers();
    process.kill(victim!.pid!, "SIGKILL");
    await waitFor(() => gw.workers()[0]!.state === "restarting", { what: "the primary to see the worker die" });

    // The restart waits 3 s: every request meanwhile is the survivor's.
    for (let i = 0; i < 6; i++) expect(await getFresh(`${gw.url}/`)).toEqual({ status: 200, text: "a" });
    expect(gw.workers()[0]!.state).toBe("restarting");
    expect(await metricValue(gw, "keelson_gateway_requests_total", { service: "web", code_class: "2xx" })).toBe(12);

    const restarted = await waitFor(
      () => {
        const w = gw.workers()[0]!;
        return w.state === "listening" && w.pid !== victim!.pid ? w : undefined;
      },
      { what: "a new worker in slot 0", timeoutMs: 15_000 },
    );
    expect(restarted).toMatchObject({ slot: 0, restarts: 1, tableVersion: version });
    expect(gw.workers()[1]!.pid).toBe(survivor!.pid);
    expect(await metricValue(gw, "keelson_gateway_worker_restarts_total")).toBe(1);
    expect(await metricValue(gw, "keelson_gateway_workers")).toBe(2);
    // The new worker takes its share of new connections.
    upstream.sourcePorts.length = 0;
    for (let i = 0; i < 6; i++) expect((await getFresh(`${gw.url}/`)).status).toBe(200);
    expect(await socketOwners(upstream.sourcePorts, [restarted.pid!])).toEqual(new Set([restarted.pid!]));
    expect(await metricValue(gw, "keelson_gateway_requests_total", { service: "web", code_class: "2xx" })).toBe(18);
  });

  it("rejects a taken public port with KEELSON_ERR_PORT_IN_USE and leaves no worker behind", async () => {
    const taken = createServer();
    taken.listen(0, "127.0.0.1");
    await once(taken, "listening");
    cleanups.push(() => new Promise((r) => taken.close(r)));
    const port = (taken.address() as { port: number }).port;
    const gw = createGatewayCluster({ workers: 2, host: "127.0.0.1", port, adminPort: 0, stateDir, processMetrics: false, workerExecArgv: WORKER_EXEC_ARGV, workerLogLine: () => undefined });
    const err = await gw.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KeelsonError);
    expect((err as KeelsonError).code).toBe("KEELSON_ERR_PORT_IN_USE");
    expect((err as KeelsonError).message).toBe(`gateway.port: 127.0.0.1:${port} is already in use`);
    expect(gw.workers().map((w) => [w.state, w.pid])).toEqual([
      ["stopped", undefined],
      ["stopped", undefined],
    ]);
  });
});

describe("keelson gateway with workers, as a real process", () => {
  it("on SIGTERM drains the in-flight request in its worker, stops every worker and exits 0", async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let seen = 0;
    const upstream = createServer((req, res) => {
      seen++;
      req.resume();
      void released.then(() => res.end("finished"));
    });
    upstream.listen(0, "127.0.0.1");
    await once(upstream, "listening");
    cleanups.push(() => new Promise((r) => (upstream.closeAllConnections(), upstream.close(r))));
    await saveRoutingTable(stateDir, tableTo(`http://127.0.0.1:${(upstream.address() as { port: number }).port}`));

    const runGatewayModule = fileURLToPath(new URL("./run-gateway.ts", import.meta.url));
    const script = `
      import { runGateway } from ${JSON.stringify(runGatewayModule)};
      await runGateway({ host: "127.0.0.1", port: ${await freePort()}, adminPort: 0, stateDir: ${JSON.stringify(stateDir)},
        workers: 2, workerExecArgv: ${JSON.stringify(WORKER_EXEC_ARGV)}, drainMs: 10000, processMetrics: false, logLevel: "warn" });`;
    const child = spawn(process.execPath, ["--import", TS_LOADER, "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    let pids: number[] = [];
    cleanups.push(() => {
      for (const pid of [child.pid!, ...pids]) if (isAlive(pid)) process.kill(pid, "SIGKILL");
    });

    const pidFile = join(stateDir, GATEWAY_PID_FILE);
    const info = await waitFor(async () => JSON.parse(await readFile(pidFile, "utf8")) as { pid: number; url: string; adminUrl: string }, {
      what: `the pid file (output so far: ${output})`,
      timeoutMs: 20_000,
    });
    expect(info.pid).toBe(child.pid);
    const workers = (await request(`${info.adminUrl}/workers`).then((r) => r.body.json())) as Array<{ pid: number; state: string }>;
    expect(workers.map((w) => w.state)).toEqual(["listening", "listening"]);
    pids = workers.map((w) => w.pid);

    const inflight = request(`${info.url}/`).then(
      async (r) => ({ status: r.statusCode, text: await r.body.text() }),
      (err: unknown) => ({ status: 0, text: String(err) }),
    );
    await waitFor(() => seen === 1, { what: "the request at the upstream" });
    process.kill(child.pid!, "SIGTERM");
    await waitFor(async () => (await request(`${info.adminUrl}/readyz`).then((r) => (r.body.dump(), r.statusCode))) === 503, { what: "readyz to report draining" });
    // The worker holding the request is still draining (the idle one may be gone already).
    expect(pids.filter(isAlive).length).toBeGreaterThanOrEqual(1);

    release();
    expect(await inflight).toEqual({ status: 200, text: "finished" });
    expect(await exited).toBe(0);
    // The primary waited for its workers before exiting.
    expect(pids.filter(isAlive)).toEqual([]);
    await expect(stat(pidFile)).rejects.toMatchObject({ code: "ENOENT" });
    expect(output).toBe("");
  });
});
