// Experiments measured at the gateway: a real gateway routes by an experiment flag (set through the
// control plane's API) to two versions of checkout, one of which fails a fifth of its requests and
// is slower; the control plane scrapes the gateway into its metric store, and the results (API and
// `keelson experiment results`) give each variant's error ratio with intervals and its latency, and
// call the broken version worse with an interval that excludes 0.
import { once } from "node:events";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FlagDefinition, FlagSet, RouteFlag } from "@keelson/protocol";
import { makeTempDir, runCli } from "#test-support";
import { createApiSecurity, createControlPlane, type ControlPlane } from "../../packages/platform/src/api/index.js";
import { main } from "../../packages/platform/src/cli/main.js";
import { createReconciler } from "../../packages/platform/src/delivery/index.js";
import type { ExperimentResults } from "../../packages/platform/src/flags/index.js";
import { buildRoutingTable, createGateway, createSeededRandom, type Gateway } from "../../packages/platform/src/gateway/index.js";
import { createMemoryDriver } from "../../packages/platform/src/runtime/index.js";
import { createMemoryStore } from "../../packages/platform/src/store/index.js";
import {
  createBuiltinMetricsSource,
  createGatewayScraper,
  createIncidentMonitor,
  createMemoryTraceStore,
  createMetricStore,
  createOtlpReceiver,
  type GatewayScraper,
} from "../../packages/platform/src/telemetry/index.js";

const silent = { info() {}, warn() {}, error() {}, debug() {} };
const FLAG = "checkout-v2";
const experiment: FlagDefinition = {
  state: "ENABLED",
  type: "experiment",
  variants: { v1: "v1", v2: "v2" },
  defaultVariant: "v1",
  targeting: { fractional: [["v1", 50], ["v2", 50]] },
};
// v1, the control, is the plain route (checkout); v2 goes to the checkout-v2 service.
const routeFlag: RouteFlag = { key: FLAG, context: { targetingKey: { header: "x-user-id" } }, variants: { v2: { service: "checkout-v2" } } };
/** v2 answers 500 to every fifth request, and each of its answers takes this long. */
const V2_DELAY_MS = 40;

describe("experiment results from the gateway", () => {
  const servers: Server[] = [];
  let gw: Gateway;
  let cp: ControlPlane;
  let scraper: GatewayScraper;
  let url: string;
  let token: string;
  let dir: string;
  let cleanup: () => Promise<void>;
  let stopReconciler: () => Promise<void>;
  const client = new Agent({ keepAliveTimeout: 10_000, connections: 16 });

  async function listen(server: Server): Promise<string> {
    servers.push(server);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  }
  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${url}${path}`, { method, headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-experiment-gateway-");
    cleanup = tmp.cleanup;
    dir = tmp.dir;
    const stateDir = join(dir, ".keelson");
    await mkdir(stateDir, { recursive: true });

    const v1 = await listen(
      createServer((req, res) => {
        req.resume();
        res.writeHead(200, { "content-type": "text/plain" }).end("v1");
      }),
    );
    let v2Requests = 0;
    const v2 = await listen(
      createServer((req, res) => {
        req.resume();
        const fail = v2Requests++ % 5 === 0;
        setTimeout(() => res.writeHead(fail ? 500 : 200, { "content-type": "text/plain" }).end(fail ? "broken" : "v2"), V2_DELAY_MS);
      }),
    );

    gw = createGateway({ host: "127.0.0.1", port: 0, adminPort: 0, stateDir: join(stateDir, "gateway"), processMetrics: false, random: createSeededRandom(3), log: silent });
    await gw.start();

    const store = createMemoryStore();
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir, gatewayUrl: gw.url, log: silent });
    stopReconciler = () => reconciler.stop();
    const security = await createApiSecurity({ store, project: "shop", stateDir });
    ({ token } = await security.tokens.create({ name: "test", role: "admin", actor: "test" }));
    // The telemetry of `keelson serve`: the gateway scraped into the built-in store.
    const metricStore = createMetricStore();
    scraper = createGatewayScraper({ urls: () => [gw.adminUrl], store: metricStore });
    const traces = createMemoryTraceStore();
    const incidents = createIncidentMonitor({ store, project: "shop", source: createBuiltinMetricsSource(metricStore), objectives: () => [] });
    cp = createControlPlane({
      project: "shop",
      dir,
      stateDir,
      store,
      driver,
      reconciler,
      gatewayUrl: gw.url,
      log: silent,
      security,
      telemetry: { metricStore, scraper, incidents, traces, otlpReceiver: createOtlpReceiver({ store: traces }) },
    });
    url = await cp.listen("127.0.0.1", 0);
    await writeFile(join(stateDir, "controlplane.json"), JSON.stringify({ pid: process.pid, url, project: "shop" }));
    await writeFile(join(stateDir, "token"), `${token}\n`, { mode: 0o600 });

    expect((await call("PUT", `/v1/flags/${FLAG}`, experiment)).status).toBe(200);
    // The gateway routes by the flag set as the control plane serves it.
    const set = (await call("GET", "/v1/flags")).body as unknown as FlagSet & { revision: number };
    gw.setTable(
      buildRoutingTable({
        project: "shop",
        version: 1,
        services: [
          { name: "checkout", routes: [{ path: "/checkout", stripPrefix: false, flag: routeFlag }] },
          { name: "checkout-v2", routes: [] },
        ],
        endpoints: [
          { service: "checkout", replicaId: "checkout-1", release: "r-v1", url: v1 },
          { service: "checkout-v2", replicaId: "checkout-v2-1", release: "r-v2", url: v2 },
        ],
        flags: { revision: set.revision, set: { flags: set.flags } },
      }),
    );
    // A gateway's first scrape is its baseline: only later increases count.
    await scraper.scrapeOnce();
  });
  afterAll(async () => {
    await scraper?.stop();
    await cp?.close();
    await stopReconciler?.();
    await gw?.stop({ drainMs: 100 });
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    await client.close();
    await cleanup?.();
  });

  it("reports each variant's requests, error ratio and latency, and the broken version worse with an interval above 0", { timeout: 60_000 }, async () => {
    // 800 users, two requests each, 16 at a time: bounded, and about 1,600 requests in all.
    const users = Array.from({ length: 800 }, (_, i) => `user-${i}`);
    const answers: Record<string, Record<number, number>> = {};
    let next = 0;
    const worker = async () => {
      while (next < users.length * 2) {
        const id = users[next++ % users.length]!;
        const res = await request(`${gw.url}/checkout/cart`, { dispatcher: client, headers: { "x-user-id": id } });
        const body = await res.body.text();
        const variant = body === "broken" ? "v2" : body;
        (answers[variant] ??= {})[res.statusCode] = (answers[variant]?.[res.statusCode] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    const sent = { v1: answers.v1?.[200] ?? 0, v2: (answers.v2?.[200] ?? 0) + (answers.v2?.[500] ?? 0), v2Errors: answers.v2?.[500] ?? 0 };
    expect(sent.v1 + sent.v2).toBe(1_600);
    expect(Math.abs(sent.v1 / 1_600 - 0.5)).toBeLessThan(0.06);

    // The results scrape the gateway first: no waiting for the scrape interval.
    const { status, body } = await call("GET", `/v1/experiments/${FLAG}/results`);
    expect(status).toBe(200);
    const r = body as unknown as ExperimentResults;
    const g = r.gateway!;
    expect(g).toBeDefined();
    expect(g.routes).toEqual(["/checkout"]);
    // Counted from the experiment's start (the flag's creation, after the control plane's start): a verdict may be given.
    expect(g.mode).toBe("sequential");
    expect(g.since).toBe(g.startedAt);
    const v1 = g.variants.find((v) => v.variant === "v1")!;
    const v2 = g.variants.find((v) => v.variant === "v2")!;
    expect({ v1: [v1.requests, v1.errors], v2: [v2.requests, v2.errors] }).toEqual({ v1: [sent.v1, 0], v2: [sent.v2, sent.v2Errors] });
    expect(v1.errorRatio).toBe(0);
    expect(v1.ci!.high).toBeLessThan(0.01);
    expect(v2.errorRatio).toBeCloseTo(0.2, 2);
    expect(v2.ci!.low).toBeGreaterThan(0.15);
    // Latency from the gateway's buckets: v2 waits 40 ms (the 25-50 ms bucket at least), v1 answers at once.
    expect(v2.p50).toBeGreaterThan(0.025);
    expect(v2.p50).toBeGreaterThan(v1.p50!);
    expect(v2.p99).toBeGreaterThanOrEqual(v2.p50!);
    // v2 against the control: about +20 points, the always-valid interval clear of 0.
    const [diff] = g.comparisons;
    expect(diff).toMatchObject({ variant: "v2", control: "v1", verdict: "control wins" });
    expect(diff!.difference!.estimate).toBeCloseTo(0.2, 2);
    expect(diff!.difference!.low).toBeGreaterThan(0.1);
    expect(g).toMatchObject({ verdict: "control wins", winner: "v1", alpha: 0.05 });
    // No SDK in this test: no users, no conversions, and the conversion verdict stays open.
    expect(r.verdict).toBe("no difference yet");

    const json = await runCli(main, ["experiment", "results", FLAG, "--json", "-C", dir]);
    expect(json.code, json.err).toBe(0);
    const fromCli = JSON.parse(json.out) as ExperimentResults;
    expect(fromCli.gateway?.variants.map((v) => [v.variant, v.requests, v.errors])).toEqual([
      ["v1", sent.v1, 0],
      ["v2", sent.v2, sent.v2Errors],
    ]);
    expect(fromCli.gateway?.verdict).toBe("control wins");

    const text = await runCli(main, ["experiment", "results", FLAG, "-C", dir]);
    expect(text.code, text.err).toBe(0);
    console.log(text.out);
    // The flag was created after the control plane started: its metric store holds every request since.
    expect(text.out).toMatch(/^gateway: requests routed by the flag on \/checkout since the experiment started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/m);
    expect(text.out).toMatch(new RegExp(`^v1 +${sent.v1} +0 +0\\.00% \\(0\\.0%-0\\.\\d%\\) +[\\d.]+ ms +[\\d.]+ ms +control$`, "m"));
    expect(text.out).toMatch(new RegExp(`^v2 +${sent.v2} +${sent.v2Errors} +(19|20|21)\\.\\d\\d% \\(\\d+\\.\\d%-\\d+\\.\\d%\\) +\\d+ ms +\\d+ ms +\\+(19|20|21)\\.\\d\\d pp \\(\\+\\d+\\.\\d\\d pp to \\+\\d+\\.\\d\\d pp\\)$`, "m"));
    expect(text.out).toContain("gateway verdict (error ratio): control wins (v1, fewer errors)");
  });
});
