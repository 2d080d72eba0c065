// `keelson serve`: the control-plane process. Opens the store, re-adopts running
// replicas, serves the API, and on SIGTERM exits leaving replicas running (static stability).
// On a PostgreSQL store several instances run at once: one leads (ADR 0020), the others serve
// the routing table from the store and forward API requests to the leader.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { KeelsonError, REPLICA_ENV, isKeelsonError } from "@keelson/protocol";
import { pino } from "pino";
import type { IdentityTrust } from "@keelson/protocol";
import { createBuiltinAnalysisProvider, createReconciler, observe, type AnalysisProvider } from "../delivery/index.js";
import { loadManifest, meshPortOf, mtlsEnabled, type Manifest } from "../manifest/index.js";
import { createChaosController, createDockerDriver, createProcessDriver, isProcessRunning, type RuntimeDriver, type RuntimeLog } from "../runtime/index.js";
import { createAutoscaler, createGatewayLoadReader } from "../autoscale/index.js";
import { createPostgresCoordination, createSingleCoordination, openStore, resolveStoreLocation, type Coordination, type LeaderRecord, type ResolvedStoreLocation, type Store } from "../store/index.js";
import { createNotifier } from "../catalog/index.js";
import {
  collectProcessMetrics,
  createBuiltinMetricsSource,
  createOtlpReceiver,
  createSqliteTraceStore,
  createGatewayScraper,
  createIncidentMonitor,
  createMetricStore,
  createPrometheusMetricsSource,
  objectivesFromServices,
} from "../telemetry/index.js";
import { Registry } from "prom-client";
import { CONTROL_PLANE_IDENTITY, bootstrapAdminToken, createIdentityIssuer, createIdentityVerifier, createSecurityGate as securityGate, loadOrCreateCa } from "../security/index.js";
import { createApiSecurity } from "./api-security.js";
import { GATEWAY_IDENTITY } from "./access.js";
import { createControlPlane } from "./control-plane.js";
import { createGatewayRegistry } from "./gateway-registry.js";
import { createLeaderForwarder } from "./leader-forward.js";
import { createRouteAuthResolver } from "./route-auth-resolver.js";
import { stateDirOf, CONTROL_PLANE_FILE, TOKEN_FILE } from "./state-files.js";

export interface RunControlPlaneOptions {
  dir: string;
  host?: string;
  port?: number;
  gatewayUrl?: string;
  /**
   * The store: a SQLite file or a postgres:// (postgresql://) URL. Default: KEELSON_STORE_URL,
   * else `.keelson/state.db`. Several instances may share one PostgreSQL store.
   */
  store?: string;
  /** PostgreSQL schema (default: KEELSON_STORE_SCHEMA, else "keelson"). */
  storeSchema?: string;
  /** How often an instance that does not lead tries to (ms, default 500). */
  campaignRetryMs?: number;
}

export interface RunningControlPlane {
  url: string;
  /** Whether this instance leads right now. */
  leading(): boolean;
  /**
   * Settles when this instance must stop: it led, and the store connection that held its
   * leadership broke (another instance may lead now). Stop it and start a new one, which
   * campaigns again; `keelson serve` does.
   */
  ended: Promise<string>;
  stop: () => Promise<void>;
}

/** Opens the store; a PostgreSQL that does not answer yet is retried (a schema newer than this Keelson is not). */
async function openStoreRetrying(where: ResolvedStoreLocation, log: { warn(obj: object, msg: string): void }): Promise<Store> {
  if (where.kind === "sqlite") return openStore({ path: where.path });
  for (let attempt = 0; ; attempt++) {
    try {
      return await openStore({ url: where.url, ...(where.schema === undefined ? {} : { schema: where.schema }) });
    } catch (err) {
      if (!isKeelsonError(err) || err.code !== "KEELSON_ERR_STORE") throw err;
      const delay = Math.min(10_000, 500 * 2 ** Math.min(attempt, 5));
      log.warn({ err: err.message, retryInMs: delay }, "the store does not answer yet; retrying");
      await sleep(delay);
    }
  }
}

/**
 * The driver the manifest's `runtime` names: local processes, or containers on the Docker
 * Engine at DOCKER_HOST (default /var/run/docker.sock). Without a loadable manifest, processes.
 */
function runtimeDriver(manifest: Manifest | undefined, log: RuntimeLog): RuntimeDriver {
  switch (manifest?.runtime ?? "process") {
    case "docker":
      return createDockerDriver({ log });
    case "kubernetes":
      // The control plane does not drive a cluster yet (ADR 0019): releases reach it rendered.
      throw new KeelsonError(
        "KEELSON_ERR_INVALID_INPUT",
        "runtime: kubernetes is rendered and applied with `keelson k8s render --out <dir>` / `keelson k8s apply`; the control plane does not start replicas in a cluster itself yet (docs/kubernetes.md)",
      );
    case "process":
      return createProcessDriver({ log });
  }
}

/**
 * One control plane per SQLite store: a second one would run its own reconciler on the same
 * replicas. Several instances need PostgreSQL, where they elect a leader.
 */
async function refuseSecondOnSqlite(stateDir: string): Promise<void> {
  const text = await readFile(join(stateDir, CONTROL_PLANE_FILE), "utf8").catch(() => undefined);
  if (text === undefined) return;
  let running: { pid?: unknown; url?: unknown };
  try {
    running = JSON.parse(text) as { pid?: unknown; url?: unknown };
  } catch {
    return;
  }
  if (typeof running.pid !== "number" || running.pid === process.pid || !isProcessRunning(running.pid, undefined) || typeof running.url !== "string") return;
  // A pid reused by another process after a crash is not a control plane: it must answer as one.
  const answers = await fetch(`${running.url}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
    (res) => res.ok,
    () => false,
  );
  if (answers) {
    throw new KeelsonError(
      "KEELSON_ERR_CONFLICT",
      `another control plane (pid ${running.pid}, ${String(running.url)}) runs on this project's SQLite store; stop it first, or run several instances on a PostgreSQL store (--store postgres://...)`,
    );
  }
}

/** Runs until SIGTERM/SIGINT. Resolves with the URL once serving. */
export async function runControlPlane(options: RunControlPlaneOptions): Promise<RunningControlPlane> {
  const dir = resolve(options.dir);
  const stateDir = stateDirOf(dir);
  await mkdir(stateDir, { recursive: true });
  const log = pino({ name: "keelson-controlplane", base: { pid: process.pid } });

  const storeTarget = options.store ?? process.env.KEELSON_STORE_URL ?? join(stateDir, "state.db");
  const postgres = /^postgres(ql)?:\/\//i.test(storeTarget);
  // The schema setting is PostgreSQL's: the environment's is ignored for a SQLite file.
  const storeSchema = options.storeSchema ?? (postgres ? process.env.KEELSON_STORE_SCHEMA : undefined);
  const where = resolveStoreLocation({ ...(postgres || storeTarget.startsWith("sqlite:") ? { url: storeTarget } : { path: storeTarget }), ...(storeSchema === undefined ? {} : { schema: storeSchema }) });
  if (where.kind === "sqlite") await refuseSecondOnSqlite(stateDir);
  const store = await openStoreRetrying(where, log);
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

  const driver = runtimeDriver(manifest, (level, msg, fields) => log[level](fields ?? {}, msg));
  const selfUrl = `${manifest?.security.api?.tls ? "https" : "http"}://${host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host}:${port}`;
  const otlpEndpoint = `${selfUrl}/v1/traces`;
  const self = { id: `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`, url: selfUrl };
  const coordination: Coordination =
    where.kind === "postgres"
    ? createPostgresCoordination({
        url: where.url,
        ...(where.schema === undefined ? {} : { schema: where.schema }),
        self,
        log: (level, msg, fields) => log[level](fields ?? {}, msg),
        ...(options.campaignRetryMs === undefined ? {} : { retryMs: options.campaignRetryMs }),
      })
    : createSingleCoordination(self);
  // Until elected, this instance follows: it builds no routing table and forwards the API to the leader.
  let leading = false;
  let leader: LeaderRecord | undefined;
  let leaderReadAt = 0;
  const currentLeader = async () => {
    if (leader === undefined || Date.now() - leaderReadAt > 1_000) {
      leader = await coordination.leader().catch(() => leader);
      leaderReadAt = Date.now();
    }
    return leader;
  };
  let becameLeader!: () => void;
  const leadingNow = new Promise<void>((r) => (becameLeader = r));
  // Telemetry: the gateway's RED metrics scraped into the built-in store (or read from
  // Prometheus when the manifest names one), and SLO burn-rate alerting over them.
  const registry = new Registry();
  collectProcessMetrics(registry, "keelson_controlplane_");
  const metricStore = createMetricStore();
  const gatewayAdmin = `http://${manifest?.gateway.host ?? "127.0.0.1"}:${manifest?.gateway.adminPort ?? 8081}`;
  const gateways = createGatewayRegistry({ store, project, fixed: [gatewayAdmin], instance: self.id, log });
  const scraper = createGatewayScraper({ urls: () => gateways.urls(), store: metricStore, registry, log });
  const prometheusUrl = manifest?.telemetry?.prometheus?.url;
  const prometheusScrape = manifest?.telemetry?.prometheus?.scrapeInterval;
  const source = prometheusUrl ? createPrometheusMetricsSource({ url: prometheusUrl, ...(prometheusScrape !== undefined ? { scrapeIntervalMs: prometheusScrape } : {}) }) : createBuiltinMetricsSource(metricStore);
  // Canary analysis looks every few seconds: with the built-in store it scrapes the gateways right
  // before each look, so it never judges numbers older than the look itself, and a gateway it
  // cannot scrape makes the look a failed read rather than one with frozen counts, if it was
  // scraped during the analysis: one failing since before (gone, but listed for the registry's
  // 2-minute TTL) is left out and logged.
  const analysis: AnalysisProvider = prometheusUrl ? { observe: (target, settings, since) => observe(source, target, settings, since) } : createBuiltinAnalysisProvider({ scraper, source, log });
  // Notifications follow the event log (deploys, canary rollbacks, incidents, security blocks) and
  // go to the webhooks last applied, in the background: no deploy waits for a webhook.
  const notifier = createNotifier({ store, project, log, registry });
  // Security: API tokens (the first admin token goes to .keelson/token for the CLI), the audit
  // log, the secrets vault, and the CA that gives every service (and the gateway) its identity.
  const ca = await loadOrCreateCa({ dir: join(stateDir, "ca"), trustDomain: project });
  const identities = createIdentityVerifier({ jwks: ca.jwks() as never, trustDomain: project });
  const security = await createApiSecurity({ store, project, stateDir, identities });
  const { tokens, vault } = security;
  const tokenFile = join(stateDir, TOKEN_FILE);
  const boot = await bootstrapAdminToken({ tokens, file: tokenFile, actor: "controlplane" });
  if (boot.created) log.info({ file: tokenFile }, "created the first admin token for the CLI");
  else if (!boot.fileExists) log.warn({ file: tokenFile }, "no token file for the CLI: use KEELSON_TOKEN with a token from `keelson tokens create`");
  const mtls = manifest ? mtlsEnabled(manifest) : false;
  const issuer = createIdentityIssuer({ ca, stateDir, ttlMs: manifest?.security.certTtl ?? 24 * 3_600_000, mtls, log });
  await issuer.ensure(GATEWAY_IDENTITY);
  // The control plane's own certificate, which its probes present to replicas that serve TLS.
  const probeTlsDir = mtls ? (await issuer.ensure(CONTROL_PLANE_IDENTITY)).tlsDir : undefined;
  const meshUrl = `${mtls ? "https" : "http"}://${manifest?.gateway.host ?? "127.0.0.1"}:${meshPortOf({ port: options.gatewayUrl ? Number(new URL(options.gatewayUrl).port) : (manifest?.gateway.port ?? 8080), meshPort: manifest?.gateway.meshPort })}`;

  const reconciler = createReconciler({
    store,
    driver,
    project,
    stateDir,
    // Services call each other through the gateway's mesh listener, with their identity.
    gatewayUrl: meshUrl,
    otlpEndpoint,
    flagsUrl: selfUrl,
    log,
    analysis,
    // The security stage of every pipeline, under the manifest's policy as last read.
    async scan(input) {
      const current = (await loadManifest(dir).catch(() => undefined))?.manifest ?? manifest;
      if (current === undefined) return undefined;
      return securityGate({ projectDir: dir, policy: current.security.scan, store, project })(input);
    },
    async secretsVersion(service, declared) {
      const stored = await vault.list(service);
      const missing = declared.filter((name) => !stored.some((s) => s.name === name));
      if (missing.length > 0) {
        throw new KeelsonError(
          "KEELSON_ERR_INVALID_INPUT",
          `services.${service}.secrets: ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not in the vault; set ${missing.length === 1 ? "it" : "them"} with \`keelson secrets set ${service} ${missing[0]}\``,
        );
      }
      return stored.length === 0 ? undefined : vault.digest(service);
    },
    ...(probeTlsDir === undefined ? {} : { probeTls: { dir: probeTlsDir } }),
    async replicaEnv(service) {
      const identity = await issuer.ensure(service);
      return {
        ...(await vault.values(service)),
        [REPLICA_ENV.IDENTITY_FILE]: identity.identityFile,
        ...(identity.tlsDir === undefined ? {} : { [REPLICA_ENV.TLS_DIR]: identity.tlsDir }),
      };
    },
  });
  // Autoscaling reads the gateway's live window (GET /stats) and the runtime's replicas; its
  // decisions go through the reconciler like any change of replica count.
  const autoscaler = createAutoscaler({
    store,
    project,
    load: createGatewayLoadReader({ statsUrls: () => gateways.urls(), replicas: () => driver.list(), project }),
    scale: (service, replicas) => reconciler.scale(service, replicas, "autoscaler", { autoscaler: true }),
    log,
  });
  const chaos = createChaosController({
    store,
    project,
    driver,
    services: async () => (await store.listServices(project)).map((s) => s.name),
    log: (level, msg, fields) => log[level](fields ?? {}, msg),
  });
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
  const otlpReceiver = createOtlpReceiver({ store: traces, log, registry, ...(forwardUrl ? { forward: { url: forwardUrl } } : {}), redactor: () => security.redactor() });
  const pruneTimer = setInterval(() => void traces.prune().catch((err: unknown) => log.warn({ err }, "trace pruning failed")), 60_000);
  pruneTimer.unref();
  // The API listens before the running replicas are re-adopted (a second control plane on the
  // same port fails there, before it touches any replica), so routing tables wait for resume().
  let resumed!: () => void;
  const routingReady = new Promise<void>((r) => (resumed = r));
  const apiTls = manifest?.security.api?.tls
    ? { cert: await readFile(resolve(dir, manifest.security.api.tls.cert), "utf8"), key: await readFile(resolve(dir, manifest.security.api.tls.key), "utf8") }
    : undefined;
  const forwarder = createLeaderForwarder({ self: self.id, following: () => !leading, leader: currentLeader, ...(apiTls ? { ca: apiTls.cert } : {}), log });
  // With several instances each records itself every 5 s, so that `keelson status` lists them.
  const INSTANCE_COLLECTION = "controlplane";
  const recordInstance = () =>
    store
      .putDocuments([{ collection: INSTANCE_COLLECTION, project, id: self.id, tag: "", at: new Date().toISOString(), body: { url: self.url, pid: process.pid } }])
      .catch((err: unknown) => log.warn({ err }, "recording this instance failed"));
  const instanceTimer = coordination.kind === "single" ? undefined : setInterval(() => void recordInstance(), 5_000);
  instanceTimer?.unref();
  if (instanceTimer !== undefined) await recordInstance();
  const cp = createControlPlane({
    routingReady,
    gateways,
    async clusterStatus() {
      if (coordination.kind === "single") return undefined;
      const [known, docs] = await Promise.all([currentLeader(), store.listDocuments({ collection: INSTANCE_COLLECTION, project, since: new Date(Date.now() - 30_000).toISOString() })]);
      return {
        term: known?.term ?? 0,
        instances: docs.map((d) => ({ id: d.id, url: String(d.body.url), leader: d.id === known?.id, seenAt: d.at })),
        gateways: gateways.urls(),
      };
    },
    cluster: {
      following: () => !leading,
      forward: (req, res) => forwarder.forward(req, res),
      leading: leadingNow,
      announce: (table) => coordination.publish("routing", String(table.version)),
    },
    async readiness() {
      const role = leading ? "leader" : "follower";
      try {
        await store.getSetting("routing.version");
      } catch (err) {
        return { ready: false, role, reason: `the store does not answer: ${(err as Error).message}` };
      }
      if (leading) return { ready: true, role };
      const known = await currentLeader();
      return known === undefined ? { ready: false, role, reason: "no instance leads yet" } : { ready: true, role };
    },
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
    autoscaler,
    chaos,
    notifier,
    security,
    ...(apiTls ? { tls: apiTls } : {}),
    identityTrust: () => ({ trustDomain: project, jwks: ca.jwks() as unknown as IdentityTrust["jwks"], caPem: ca.caPem(), mtls }),
    routeAuth: createRouteAuthResolver({ dir, vault }),
  });
  let url: string;
  try {
    url = await cp.listen(host, port);
  } catch (err) {
    await driver.detach();
    await coordination.close();
    await store.close();
    throw err;
  }
  // A follower serves the leader's stored table to its gateways, and hears about each new one.
  const unsubscribeRouting = coordination.subscribe("routing", () => {
    if (!leading) void cp.routing.refresh().catch((err: unknown) => log.warn({ err }, "reading the leader's routing table failed"));
  });
  const unsubscribeLeader = coordination.subscribe("leader", (payload) => {
    leaderReadAt = 0;
    if (payload !== undefined) log.info({ leader: JSON.parse(payload) as unknown }, "a new leader was elected");
  });

  let ended!: (why: string) => void;
  const endedPromise = new Promise<string>((r) => (ended = r));
  const campaign = new AbortController();
  /** Once elected: re-adopt what runs, then start everything that changes state. */
  const lead = async () => {
    const leadership = await coordination.campaign(campaign.signal);
    leading = true;
    leader = { ...self, term: leadership.term, since: new Date().toISOString() };
    void leadership.lost.then((why) => {
      if (!leading) return;
      log.error({ why, term: leadership.term }, "lost leadership; stopping this instance so that a new one campaigns again");
      ended(why);
    });
    let adopted: string[];
    let lost: string[];
    try {
      ({ adopted, lost } = await reconciler.resume());
    } finally {
      resumed();
    }
    log.info({ adopted: adopted.length, lost: lost.length, term: leadership.term }, "re-adopted running replicas");
    await store.appendEvent({
      project,
      kind: "controlplane.started",
      actor: "controlplane",
      subject: `project/${project}`,
      details: { pid: process.pid, url, adopted, lost, ...(coordination.kind === "single" ? {} : { instance: self.id, term: leadership.term }) },
    });
    issuer.start();
    await gateways.start();
    reconciler.start();
    autoscaler.start();
    scraper.start();
    incidents.start();
    await notifier.start();
    becameLeader();
    await cp.routing.refresh();
    await writeFile(join(stateDir, CONTROL_PLANE_FILE), JSON.stringify({ pid: process.pid, url, project, startedAt: new Date().toISOString() }, null, 2));
    log.info({ url, project, term: leadership.term }, "control plane serving as leader");
  };
  const leadTask = lead();
  if (coordination.kind === "single") {
    // Alone on its store it leads at once: resolve only when it has re-adopted and serves.
    await leadTask;
  } else {
    leadTask.catch((err: unknown) => {
      if (campaign.signal.aborted) return;
      log.error({ err }, "taking up leadership failed; stopping this instance");
      ended(`taking up leadership failed: ${String(err)}`);
    });
    await cp.routing.refresh().catch(() => undefined);
    log.info({ url, project, instance: self.id }, "control plane serving; campaigning for leadership");
  }

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info("control plane stopping; replicas keep running");
      campaign.abort();
      unsubscribeRouting();
      unsubscribeLeader();
      gateways.stop();
      clearInterval(instanceTimer);
      const wasLeading = leading;
      leading = false;
      issuer.stop();
      await chaos.close();
      await autoscaler.stop();
      await incidents.stop({ graceMs: 2000 });
      await notifier.stop({ graceMs: 2000 });
      await scraper.stop();
      await reconciler.stop();
      await driver.detach();
      clearInterval(pruneTimer);
      await otlpReceiver.close();
      await cp.close();
      await forwarder.close();
      await traces.close();
      // Last: closing it frees leadership, and another instance may start adopting the replicas.
      await coordination.close();
      await store.close();
      if (wasLeading) await rm(join(stateDir, CONTROL_PLANE_FILE), { force: true });
    })());
  return { url, leading: () => leading, ended: endedPromise, stop };
}
