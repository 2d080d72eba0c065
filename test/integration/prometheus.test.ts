// Against a real Prometheus (the Debian package): a real gateway under load, scraped by both
// Prometheus and our scraper, must give the same error ratio through either MetricsSource; the
// MetricsSource conformance suite runs on Prometheus over backfilled data; promtool lints the
// gateway's, the control plane's and the telemetry's own /metrics text.
import { spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, requireComponent, waitFor } from "#test-support";
import { instant, onPath, startPrometheus, type RunningPrometheus } from "../support/prometheus.js";
import { createApiSecurity, createControlPlane } from "../../packages/platform/src/api/index.js";
import { createReconciler } from "../../packages/platform/src/delivery/index.js";
import { buildRoutingTable, createGateway } from "../../packages/platform/src/gateway/index.js";
import type { Gateway } from "../../packages/platform/src/gateway/index.js";
import { createMemoryDriver } from "../../packages/platform/src/runtime/index.js";
import { createMemoryStore } from "../../packages/platform/src/store/index.js";
import {
  createBuiltinMetricsSource,
  createGatewayScraper,
  createMetricStore,
  createPrometheusMetricsSource,
  GATEWAY_REQUESTS,
  parsePrometheusText,
} from "../../packages/platform/src/telemetry/index.js";
import type { GatewayScraper, MetricsSource, MetricStore } from "../../packages/platform/src/telemetry/index.js";
import { describeMetricsSourceConformance } from "../../packages/platform/src/telemetry/metrics-source.conformance.js";
import type { ConformanceScrape } from "../../packages/platform/src/telemetry/metrics-source.conformance.js";

const available = requireComponent("Prometheus", onPath("prometheus") && onPath("promtool"), "install the Debian package prometheus");

/** `promtool check metrics` on exposition text: its exit code and each problem it names. */
function promtoolCheck(text: string): { status: number | null; problems: string[] } {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: r.status, problems: `${r.stdout}${r.stderr}`.split("\n").filter((l) => l.trim() !== "") };
}


/** Backfill input for promtool: the scrapes as OpenMetrics with timestamps and an instance label. */
function openMetrics(scrapes: readonly ConformanceScrape[]): string {
  const families = new Map<string, { type: string; lines: Map<string, string[]> }>();
  for (const scrape of scrapes) {
    for (const f of parsePrometheusText(scrape.text)) {
      // OpenMetrics names a counter family without its `_total` suffix.
      const name = f.type === "counter" ? f.name.replace(/_total$/, "") : f.name;
      let family = families.get(name);
      if (family === undefined) families.set(name, (family = { type: f.type, lines: new Map() }));
      for (const s of f.samples) {
        const labels = Object.entries({ ...s.labels, instance: scrape.instance })
          .map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`)
          .join(",");
        const series = `${s.name}{${labels}}`;
        let points = family.lines.get(series);
        if (points === undefined) family.lines.set(series, (points = []));
        points.push(`${series} ${s.value} ${(scrape.at / 1000).toFixed(3)}`);
      }
    }
  }
  const out: string[] = [];
  for (const [name, f] of families) out.push(`# TYPE ${name} ${f.type}`, ...[...f.lines.values()].flat());
  return `${out.join("\n")}\n# EOF\n`;
}

describe.skipIf(!available)("Prometheus", () => {
  describe("MetricsSource conformance over backfilled data", () => {
    // Recent enough to sit inside Prometheus's retention; every question names its own time.
    describeMetricsSourceConformance(
      "prometheus",
      {
        async load(scrapes) {
          const tmp = await makeTempDir("keelson-prom-backfill-");
          try {
            const input = join(tmp.dir, "backfill.om");
            await writeFile(input, openMetrics(scrapes));
            const r = spawnSync("promtool", ["tsdb", "create-blocks-from", "openmetrics", "--quiet", input, join(tmp.dir, "data")], { encoding: "utf8" });
            if (r.status !== 0) throw new Error(`promtool backfill failed (${r.status}): ${r.stderr}`);
            const prom = await startPrometheus(tmp.dir, {});
            return {
              source: createPrometheusMetricsSource({ url: prom.url }),
              cleanup: async () => {
                await prom.stop();
                await tmp.cleanup();
              },
            };
          } catch (err) {
            await tmp.cleanup();
            throw err;
          }
        },
      },
      { start: Date.now() - 2 * 3_600_000 },
    );
  });

  describe.sequential("a live gateway scraped by Prometheus and by the built-in scraper", () => {
    const cleanups: Array<() => Promise<unknown>> = [];
    let gateway: Gateway;
    let prometheus: RunningPrometheus;
    let scraper: GatewayScraper;
    let metrics: MetricStore;
    let builtin: MetricsSource;
    let viaPrometheus: MetricsSource;
    let controlPlaneUrl: string;
    let controlPlaneToken: string;
    const registry = new Registry();
    const statuses: Record<string, number[]> = { ok: [], flaky: [] };

    async function upstream(status: (n: number) => number): Promise<string> {
      let n = 0;
      const server: Server = createServer((req, res) => {
        req.resume();
        res.writeHead(status(++n), { "content-type": "text/plain" });
        res.end("x");
      });
      server.keepAliveTimeout = 10_000;
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
      const addr = server.address();
      return `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
    }

    /** Sends `count` requests to a service, `concurrency` at a time, within `deadlineMs`. */
    async function load(service: "ok" | "flaky", count: number, concurrency: number, deadlineMs: number): Promise<void> {
      const deadline = Date.now() + deadlineMs;
      let sent = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (sent < count && Date.now() < deadline) {
            sent++;
            const res = await fetch(`${gateway.url}/${service}/x`);
            await res.arrayBuffer();
            statuses[service]?.push(res.status);
          }
        }),
      );
    }

    const share5xx = (xs: number[]) => xs.filter((s) => s >= 500).length / xs.length;

    beforeAll(async () => {
      const tmp = await makeTempDir("keelson-prom-live-");
      cleanups.push(tmp.cleanup);
      const ok = await upstream(() => 200);
      // Every fourth request fails with a 500 (not one the gateway retries).
      const flaky = await upstream((n) => (n % 4 === 0 ? 500 : 200));
      gateway = createGateway({ host: "127.0.0.1", port: 0, adminPort: 0, stateDir: join(tmp.dir, "gateway") });
      await gateway.start();
      cleanups.push(() => gateway.stop({ drainMs: 100 }));
      gateway.setTable(
        buildRoutingTable({
          project: "it",
          version: 1,
          services: [
            { name: "ok", routes: [{ path: "/ok", stripPrefix: true }] },
            { name: "flaky", routes: [{ path: "/flaky", stripPrefix: true }] },
          ],
          endpoints: [
            { service: "ok", replicaId: "ok-1", url: ok, release: "r-1" },
            { service: "flaky", replicaId: "flaky-1", url: flaky, release: "r-1" },
          ],
        }),
      );

      metrics = createMetricStore();
      builtin = createBuiltinMetricsSource(metrics);
      scraper = createGatewayScraper({ urls: () => [gateway.adminUrl], store: metrics, intervalMs: 1000, registry });
      // A first scrape before any request: series that appear later are counted from zero.
      await scraper.scrapeOnce();
      scraper.start();
      cleanups.push(() => scraper.stop());

      // A control plane too, so Prometheus scrapes every kind of Keelson process.
      const cpStore = createMemoryStore();
      const cpDriver = createMemoryDriver();
      const silent = { info() {}, warn() {}, error() {} };
      const cpReconciler = createReconciler({ store: cpStore, driver: cpDriver, project: "it", stateDir: join(tmp.dir, "cp"), gatewayUrl: gateway.url, log: silent });
      await mkdir(join(tmp.dir, "cp"), { recursive: true });
      const cpSecurity = await createApiSecurity({ store: cpStore, project: "it", stateDir: join(tmp.dir, "cp") });
      // Prometheus scrapes the control plane's /metrics with a token of its own (a viewer may read).
      ({ token: controlPlaneToken } = await cpSecurity.tokens.create({ name: "prometheus", role: "viewer", actor: "test" }));
      const cp = createControlPlane({ project: "it", dir: tmp.dir, stateDir: join(tmp.dir, "cp"), store: cpStore, driver: cpDriver, reconciler: cpReconciler, gatewayUrl: gateway.url, log: silent, security: cpSecurity });
      controlPlaneUrl = await cp.listen("127.0.0.1", 0);
      cleanups.push(async () => {
        await cpReconciler.stop();
        await cp.close();
      });

      await mkdir(join(tmp.dir, "prometheus"));
      prometheus = await startPrometheus(join(tmp.dir, "prometheus"), {
        "keelson-gateway": [new URL(gateway.adminUrl).host],
        "keelson-controlplane": { targets: [new URL(controlPlaneUrl).host], bearerToken: controlPlaneToken },
      });
      cleanups.push(() => prometheus.stop());
      viaPrometheus = createPrometheusMetricsSource({ url: prometheus.url });
      await waitFor(async () => (await instant(prometheus.url, 'up{job="keelson-gateway"}'))[0] === 1, { timeoutMs: 20_000, what: "Prometheus to scrape the gateway" });
    });

    afterAll(async () => {
      while (cleanups.length > 0) await cleanups.pop()?.();
    });

    it("scrapes every Keelson process: the gateway and the control plane", async () => {
      await fetch(`${controlPlaneUrl}/healthz`);
      await waitFor(async () => (await instant(prometheus.url, 'up{job="keelson-controlplane"}'))[0] === 1, { timeoutMs: 20_000, what: "Prometheus to scrape the control plane" });
      expect((await instant(prometheus.url, 'up{job="keelson-gateway"}'))[0]).toBe(1);
      const served = await waitFor(
        async () => (await instant(prometheus.url, 'sum(keelson_controlplane_api_requests_total{route="/healthz"})'))[0],
        { timeoutMs: 20_000, what: "the control plane's API counter in Prometheus" },
      );
      expect(served).toBeGreaterThanOrEqual(1);
    });

    it("gives the same error ratio through Prometheus and through the built-in store", async () => {
      // Warm-up: both series of both services exist before the load, so Prometheus has a first sample of each.
      await load("ok", 8, 2, 10_000);
      await load("flaky", 8, 2, 10_000);
      await waitFor(async () => (await instant(prometheus.url, `count(${GATEWAY_REQUESTS}{service="flaky"})`))[0] === 2, { timeoutMs: 20_000, what: "Prometheus to see both flaky series" });

      await load("ok", 300, 6, 30_000);
      await load("flaky", 400, 6, 30_000);
      const total = { ok: statuses.ok?.length ?? 0, flaky: statuses.flaky?.length ?? 0 };
      expect(total).toEqual({ ok: 308, flaky: 408 });

      // Both have scraped the final counts.
      await waitFor(async () => (await instant(prometheus.url, `sum(${GATEWAY_REQUESTS}{service="flaky"})`))[0] === total.flaky, { timeoutMs: 20_000, what: "Prometheus to scrape the final counts" });
      await waitFor(() => metrics.increase(GATEWAY_REQUESTS, { window: "5m", where: { service: "flaky" } })[0]?.value === total.flaky, { timeoutMs: 20_000, what: "the scraper to store the final counts" });

      const at = Date.now();
      const client = share5xx(statuses.flaky ?? []);
      expect(client).toBeCloseTo(0.25, 1);
      const fromBuiltin = await builtin.errorRatio({ service: "flaky", window: "5m", at });
      const fromPrometheus = await viaPrometheus.errorRatio({ service: "flaky", window: "5m", at });
      // The built-in store counted every request since its first scrape: exactly what clients saw.
      expect(fromBuiltin).toBeCloseTo(client, 9);
      // Prometheus starts from each series' first sample (a few warm-up requests earlier).
      expect(Math.abs((fromPrometheus as number) - (fromBuiltin as number))).toBeLessThan(0.02);
      expect(await builtin.errorRatio({ service: "ok", window: "5m", at })).toBe(0);
      expect(await viaPrometheus.errorRatio({ service: "ok", window: "5m", at })).toBe(0);

      // Same buckets, same interpolation: the same p90 within a few percent.
      const p90 = await builtin.latencyQuantile({ service: "flaky", q: 0.9, window: "5m", at });
      const p90Prometheus = await viaPrometheus.latencyQuantile({ service: "flaky", q: 0.9, window: "5m", at });
      expect(p90).toBeGreaterThan(0);
      expect(Math.abs((p90Prometheus as number) - (p90 as number)) / (p90 as number)).toBeLessThan(0.1);
      // The gateway's in-flight gauge reaches both (their samples differ in time, not in meaning).
      expect(await builtin.inflight({ service: "flaky", window: "1m", at })).toBeGreaterThanOrEqual(0);
      expect(await viaPrometheus.inflight({ service: "flaky", window: "1m", at })).toBeGreaterThanOrEqual(0);
    });

    it("serves /metrics text that promtool accepts: gateway, control plane and the scraper's own", async () => {
      const gatewayText = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
      expect(gatewayText).toContain(`${GATEWAY_REQUESTS}{`);
      // Process metrics included: no finding at all.
      expect(gatewayText).toMatch(/^process_cpu_seconds_total /m);
      expect(promtoolCheck(gatewayText)).toEqual({ status: 0, problems: [] });

      const tmp = await makeTempDir("keelson-prom-cp-");
      cleanups.push(tmp.cleanup);
      const store = createMemoryStore();
      const driver = createMemoryDriver();
      const silent = { info() {}, warn() {}, error() {} };
      const reconciler = createReconciler({ store, driver, project: "it", stateDir: tmp.dir, gatewayUrl: gateway.url, log: silent });
      const security = await createApiSecurity({ store, project: "it", stateDir: tmp.dir });
      const { token } = await security.tokens.create({ name: "test", role: "admin", actor: "test" });
      const cp = createControlPlane({ project: "it", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: gateway.url, log: silent, security });
      const cpUrl = await cp.listen("127.0.0.1", 0);
      cleanups.push(async () => {
        await reconciler.stop();
        await cp.close();
      });
      expect((await fetch(`${cpUrl}/healthz`)).status).toBe(200);
      // /metrics needs a token like every endpoint but /healthz.
      expect((await fetch(`${cpUrl}/metrics`)).status).toBe(401);
      const cpText = await (await fetch(`${cpUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
      expect(cpText).toContain("keelson_controlplane_api_requests_total");
      // The control plane leaves out prom-client's three lint-failing gauges: no finding at all.
      expect(promtoolCheck(cpText)).toEqual({ status: 0, problems: [] });

      // What telemetry adds to the control plane's registry passes with no finding at all.
      const ours = await registry.metrics();
      expect(ours).toContain("keelson_controlplane_scrape_failures_total");
      expect(ours).toMatch(/keelson_controlplane_metric_series [1-9]/);
      expect(promtoolCheck(ours)).toEqual({ status: 0, problems: [] });
    });
  });
});
