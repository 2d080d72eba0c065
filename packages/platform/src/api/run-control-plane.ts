// `keelson serve`: the control-plane process. Opens the store, re-adopts running
// replicas, serves the API, and on SIGTERM exits leaving replicas running (static stability).
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import { pino } from "pino";
import type { EventKind } from "@keelson/protocol";
import { createReconciler, observe, type AnalysisProvider } from "../delivery/index.js";
import { loadManifest, type Manifest } from "../manifest/index.js";
import { createProcessDriver } from "../runtime/index.js";
import { createSqliteStore } from "../store/index.js";
import {
  collectProcessMetrics,
  createBuiltinMetricsSource,
  createOtlpReceiver,
  createSqliteTraceStore,
  createGatewayScraper,
  createIncidentMonitor,
  createMetricStore,
  createPrometheusMetricsSource,
  deliverWebhook,
  objectivesFromServices,
} from "../telemetry/index.js";
import { Registry } from "prom-client";
import { createControlPlane } from "./control-plane.js";
import { stateDirOf, CONTROL_PLANE_FILE } from "./state-files.js";

export interface RunControlPlaneOptions {
  dir: string;
  host?: string;
  port?: number;
  gatewayUrl?: string;
}

/** Runs until SIGTERM/SIGINT. Resolves with the URL once serving. */
export async function runControlPlane(options: RunControlPlaneOptions): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = resolve(options.dir);
  const stateDir = stateDirOf(dir);
  await mkdir(stateDir, { recursive: true });
  const log = pino({ name: "keelson-controlplane", base: { pid: process.pid } });

  const store = await createSqliteStore({ path: join(stateDir, "state.db") });
  let manifest: Manifest | undefined;
  try {
    manifest = (await loadManifest(dir)).manifest;
  } catch (err) {
    // A broken manifest must not stop the control plane from serving what runs.
    log.warn({ err: err instanceof Error ? err.message : err }, "manifest not loadable; serving the stored state");
  }
  const stored = await store.listProjects();
  const project = stored[0]?.name ?? manifest?.project;
  if (!project) {
    await store.close();
    throw new KeelsonError("KEELSON_ERR_MANIFEST_NOT_FOUND", `no valid keelson.yaml in ${dir} and no stored project`);
  }
  const host = options.host ?? manifest?.controlPlane.host ?? "127.0.0.1";
  const port = options.port ?? manifest?.controlPlane.port ?? 7070;
  const gatewayUrl = options.gatewayUrl ?? `http://${manifest?.gateway.host ?? "127.0.0.1"}:${manifest?.gateway.port ?? 8080}`;

  const driver = createProcessDriver({
    log: (level, msg, fields) => log[level](fields ?? {}, msg),
  });
  const selfUrl = `http://${host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host}:${port}`;
  const otlpEndpoint = `${selfUrl}/v1/traces`;
  // Telemetry: the gateway's RED metrics scraped into the built-in store (or read from
  // Prometheus when the manifest names one), and SLO burn-rate alerting over them.
  const registry = new Registry();
  collectProcessMetrics(registry, "keelson_controlplane_");
  const metricStore = createMetricStore();
  const gatewayAdmin = `http://${manifest?.gateway.host ?? "127.0.0.1"}:${manifest?.gateway.adminPort ?? 8081}`;
  const scraper = createGatewayScraper({ urls: () => [gatewayAdmin], store: metricStore, registry, log });
  const prometheusUrl = manifest?.telemetry?.prometheus?.url;
  const source = prometheusUrl ? createPrometheusMetricsSource({ url: prometheusUrl }) : createBuiltinMetricsSource(metricStore);
  // Canary analysis looks every few seconds: with the built-in store it scrapes the gateway right
  // before each look, so it never judges numbers older than the look itself.
  const analysis: AnalysisProvider = {
    async observe(target, settings, since) {
      if (!prometheusUrl) await scraper.scrapeOnce();
      return observe(source, target, settings, since);
    },
  };
  const webhooks = manifest?.notifications?.webhooks ?? [];
  const notify = (kind: EventKind, details: Record<string, unknown>) => {
    const body = JSON.stringify({ kind, project, at: new Date().toISOString(), details });
    for (const url of webhooks) {
      void deliverWebhook(url, body, { kind }).then((err) => {
        if (err !== undefined) log.warn({ url, kind, err }, "notification webhook not delivered; giving up");
      });
    }
  };
  const reconciler = createReconciler({ store, driver, project, stateDir, gatewayUrl, otlpEndpoint, flagsUrl: selfUrl, log, analysis, notify });
  const incidents = createIncidentMonitor({
    store,
    project,
    source,
    objectives: async () => objectivesFromServices(await store.listServices(project)),
    ...(manifest?.telemetry?.incidentWebhooks?.length ? { webhooks: { urls: manifest.telemetry.incidentWebhooks } } : {}),
    registry,
    log,
  });
  // Traces: services and the gateway export OTLP to this control plane, which keeps them in
  // .keelson/traces.db (24 h by default).
  const traces = createSqliteTraceStore({ path: join(stateDir, "traces.db") });
  const forwardUrl = manifest?.telemetry?.tracesForwardUrl;
  const otlpReceiver = createOtlpReceiver({ store: traces, log, registry, ...(forwardUrl ? { forward: { url: forwardUrl } } : {}) });
  const pruneTimer = setInterval(() => void traces.prune().catch((err: unknown) => log.warn({ err }, "trace pruning failed")), 60_000);
  pruneTimer.unref();
  const cp = createControlPlane({
    project,
    dir,
    stateDir,
    store,
    driver,
    reconciler,
    gatewayUrl,
    log,
    registry,
    telemetry: { metricStore, scraper, incidents, traces, otlpReceiver },
  });
  let url: string;
  try {
    url = await cp.listen(host, port);
  } catch (err) {
    await driver.detach();
    await store.close();
    throw err;
  }
  const { adopted, lost } = await reconciler.resume();
  log.info({ adopted: adopted.length, lost: lost.length }, "re-adopted running replicas");
  await store.appendEvent({ project, kind: "controlplane.started", actor: "controlplane", subject: `project/${project}`, details: { pid: process.pid, url, adopted, lost } });
  reconciler.start();
  scraper.start();
  incidents.start();
  await cp.routing.refresh();
  await writeFile(join(stateDir, CONTROL_PLANE_FILE), JSON.stringify({ pid: process.pid, url, project, startedAt: new Date().toISOString() }, null, 2));
  log.info({ url, project }, "control plane serving");

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info("control plane stopping; replicas keep running");
      await incidents.stop({ graceMs: 2000 });
      await scraper.stop();
      await reconciler.stop();
      await driver.detach();
      clearInterval(pruneTimer);
      await otlpReceiver.close();
      await cp.close();
      await traces.close();
      await store.close();
      await rm(join(stateDir, CONTROL_PLANE_FILE), { force: true });
    })());
  return { url, stop };
}
