// Tests for the gateway's composition root: pid file, JSON logs, drain on SIGTERM/SIGINT and a
// clear error for a taken port. Signals and exit are injected, so the test process stays alive.
import { EventEmitter, once } from "node:events";
import { readFile, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { request } from "undici";
import { GATEWAY_SERVICE_NAME, KeelsonError } from "@keelson/protocol";
import { makeTempDir, waitFor } from "#test-support";
import { createMemoryTraceStore, createOtlpReceiver } from "../telemetry/index.js";
import { buildRoutingTable } from "./routing-table.js";
import type { RunningGateway } from "./run-gateway.js";
import { DEFAULT_GATEWAY_WORKERS, GATEWAY_PID_FILE, resolveGatewayWorkers, runGateway, tracesEndpoint } from "./run-gateway.js";

// Workers of a multi-worker gateway run our TypeScript sources through this loader.
const TS_LOADER = new URL("../../../../test/support/ts-loader.mjs", import.meta.url).href;

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let stateDir = "";

beforeEach(async () => {
  const tmp = await makeTempDir("keelson-run-gateway-");
  stateDir = tmp.dir;
  cleanups.push(tmp.cleanup);
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Collects pino's JSON lines. */
function logSink() {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, write: (msg: string) => void lines.push(JSON.parse(msg) as Record<string, unknown>) };
}

async function start(overrides: { port?: number; workers?: number; controlPlaneUrl?: string } = {}) {
  const signals = new EventEmitter();
  const exits: number[] = [];
  const log = logSink();
  const running = await runGateway({
    host: "127.0.0.1",
    port: overrides.port ?? 0,
    adminPort: 0,
    stateDir,
    processMetrics: false,
    drainMs: 5_000,
    logDestination: log,
    signals,
    exit: (code) => void exits.push(code),
    ...(overrides.workers === undefined ? {} : { workers: overrides.workers, workerExecArgv: ["--import", TS_LOADER] }),
    ...(overrides.controlPlaneUrl === undefined ? {} : { controlPlaneUrl: overrides.controlPlaneUrl }),
  });
  cleanups.push(() => running.gateway.stop({ drainMs: 100 }));
  return { running, signals, exits, log };
}

async function pidFileOf(running: RunningGateway): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(running.pidFile, "utf8")) as Record<string, unknown>;
}

describe("runGateway", () => {
  it("writes gateway.pid.json and logs JSON lines", async () => {
    const { running, log } = await start();
    expect(running.pidFile).toBe(join(stateDir, GATEWAY_PID_FILE));
    const info = await pidFileOf(running);
    expect(info).toEqual({ pid: process.pid, url: running.gateway.url, adminUrl: running.gateway.adminUrl, startedAt: expect.any(String) });
    expect(Number.isNaN(Date.parse(info["startedAt"] as string))).toBe(false);
    expect(log.lines.find((l) => l["msg"] === "gateway listening")).toMatchObject({ component: "gateway", level: 30 });
  });

  it("on SIGTERM drains the in-flight request, removes the pid file and exits 0", async () => {
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
    const port = (upstream.address() as { port: number }).port;

    const { running, signals, exits } = await start();
    running.gateway.setTable(
      buildRoutingTable({
        project: "p",
        version: 1,
        services: [{ name: "slow", routes: [{ path: "/", stripPrefix: false }] }],
        endpoints: [{ service: "slow", replicaId: "slow-1", url: `http://127.0.0.1:${port}`, release: "r" }],
      }),
    );
    const inflight = request(`${running.gateway.url}/`).then(async (r) => ({ status: r.statusCode, text: await r.body.text() }));
    await waitFor(() => seen === 1, { what: "the request at the upstream" });

    signals.emit("SIGTERM");
    // Draining waits for the request: no exit yet.
    await waitFor(async () => (await request(`${running.gateway.adminUrl}/readyz`).then((r) => (r.body.dump(), r.statusCode))) === 503, {
      what: "readyz to report draining",
    });
    expect(exits).toEqual([]);
    release();
    expect(await inflight).toEqual({ status: 200, text: "finished" });
    await running.stopped;
    expect(exits).toEqual([0]);
    await expect(stat(running.pidFile)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("exits 1 at once on a second signal during the drain", async () => {
    const { running, signals, exits } = await start();
    void running.shutdown("test");
    signals.emit("SIGINT");
    expect(exits).toEqual([1]);
    await running.stopped;
  });

  it("rejects a taken port with KEELSON_ERR_PORT_IN_USE and logs it without a stack", async () => {
    const { running } = await start();
    const port = Number(new URL(running.gateway.url).port);
    const log = logSink();
    const err = await runGateway({ host: "127.0.0.1", port, adminPort: 0, stateDir, processMetrics: false, logDestination: log, signals: new EventEmitter(), exit: () => undefined }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KeelsonError);
    expect((err as KeelsonError).message).toBe(`gateway.port: 127.0.0.1:${port} is already in use`);
    const line = log.lines.find((l) => l["msg"] === "gateway failed to start");
    expect(line).toMatchObject({ code: "KEELSON_ERR_PORT_IN_USE", err: `gateway.port: 127.0.0.1:${port} is already in use`, level: 50 });
  });

  it("by default serves from this process", async () => {
    expect(DEFAULT_GATEWAY_WORKERS).toBe(1);
    const { running } = await start();
    expect("metrics" in running.gateway).toBe(true);
    expect((await pidFileOf(running))["pid"]).toBe(process.pid);
  });

  it("with workers: 2 forks two workers whose logs reach the same destination, and stops them on SIGTERM", async () => {
    const { running, signals, exits, log } = await start({ workers: 2 });
    expect("workers" in running.gateway).toBe(true);
    const info = await pidFileOf(running);
    expect(info).toMatchObject({ pid: process.pid, url: running.gateway.url, adminUrl: running.gateway.adminUrl });
    // Worker logs travel through a pipe: they may arrive after the workers said they listen.
    const workerLines = await waitFor(
      () => {
        const lines = log.lines.filter((l) => l["msg"] === "gateway listening" && l["worker"] !== undefined);
        return lines.length === 2 ? lines : undefined;
      },
      { what: "both workers' log lines" },
    );
    expect(workerLines.map((l) => l["worker"]).sort()).toEqual([0, 1]);
    expect(workerLines.every((l) => l["pid"] !== process.pid && l["component"] === "gateway")).toBe(true);
    const ready = await request(`${running.gateway.adminUrl}/readyz`).then((r) => r.body.json());
    expect(ready).toMatchObject({ draining: false, workers: { listening: 2, configured: 2 } });

    signals.emit("SIGTERM");
    await running.stopped;
    expect(exits).toEqual([0]);
    await expect(stat(running.pidFile)).rejects.toMatchObject({ code: "ENOENT" });
    await waitFor(() => log.lines.filter((l) => l["msg"] === "gateway stopped" && l["worker"] !== undefined).length === 2, { what: "both workers' last log lines" });
  });
});

describe("runGateway tracing", () => {
  it("sends the workers' spans to the control plane's /v1/traces", async () => {
    const upstream = createServer((req, res) => {
      req.resume();
      res.end("ok");
    });
    upstream.listen(0, "127.0.0.1");
    await once(upstream, "listening");
    cleanups.push(() => new Promise((r) => (upstream.closeAllConnections(), upstream.close(r))));
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
    const table = buildRoutingTable({
      project: "test",
      version: 1,
      services: [{ name: "orders", routes: [{ path: "/", stripPrefix: false }] }],
      endpoints: [{ service: "orders", replicaId: "orders-1", url: upstreamUrl, release: "r1" }],
    });
    // A control plane as far as the gateway can tell: the routing watch and the OTLP receiver.
    const store = createMemoryTraceStore();
    const receiver = createOtlpReceiver({ store });
    const controlPlane = createServer((req, res) => {
      if (req.url === "/v1/traces") return void receiver.handle(req, res);
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`event: routing\ndata: ${JSON.stringify(table)}\n\n`);
    });
    controlPlane.listen(0, "127.0.0.1");
    await once(controlPlane, "listening");
    cleanups.push(() => new Promise((r) => (controlPlane.closeAllConnections(), controlPlane.close(r))));
    const controlPlaneUrl = `http://127.0.0.1:${(controlPlane.address() as { port: number }).port}/`;

    const { running } = await start({ workers: 2, controlPlaneUrl });
    const status = await waitFor(
      async () => {
        const res = await request(`${running.gateway.url}/x`);
        await res.body.dump();
        return res.statusCode === 200 ? res.statusCode : undefined;
      },
      { what: "a routed request" },
    );
    expect(status).toBe(200);
    const spans = await waitFor(
      async () => {
        const found = await store.listSpans({});
        return found.some((s) => s.kind === "server") && found.some((s) => s.kind === "client") ? found : undefined;
      },
      { what: "the gateway's spans" },
    );
    expect(spans.every((s) => s.service === GATEWAY_SERVICE_NAME)).toBe(true);
    expect(tracesEndpoint(controlPlaneUrl)).toBe(`${controlPlaneUrl.slice(0, -1)}/v1/traces`);
  });
});

describe("resolveGatewayWorkers", () => {
  it("takes a count, 'auto' as one per CPU, and the default when not given", () => {
    expect(resolveGatewayWorkers(undefined, 8)).toBe(DEFAULT_GATEWAY_WORKERS);
    expect(resolveGatewayWorkers("auto", 8)).toBe(8);
    expect(resolveGatewayWorkers("auto", 0)).toBe(1);
    expect(resolveGatewayWorkers(3, 8)).toBe(3);
  });

  it("rejects anything but a whole number of at least 1 with KEELSON_ERR_INVALID_INPUT", () => {
    for (const bad of [0, -1, 1.5, Number.NaN, "all" as unknown as number]) {
      expect(() => resolveGatewayWorkers(bad)).toThrow(KeelsonError);
      expect(() => resolveGatewayWorkers(bad)).toThrow(`workers: expected a whole number of at least 1 or "auto", got ${typeof bad === "string" ? `"${bad}"` : String(bad)}`);
    }
  });
});
