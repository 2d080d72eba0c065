// The control plane's HTTP API: a composition root that wires the store, the runtime
// driver, the reconciler and the routing publisher to HTTP. No domain rules live here.
import { join } from "node:path";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { KeelsonError, type ClusterStatus, type EventKind, type IdentityTrust, type RouteAuth, type ReplicaStatus, type RoutingTable, type ServiceStatus, type StatusReport } from "@keelson/protocol";
import { Counter, Registry } from "prom-client";
import { activeRollout, type ApplyProgress, type DeployOptions, type Log, type Reconciler } from "../delivery/index.js";
import { GATEWAY_ADMIN_HEADER, createRoutingPublisher, readTrafficSplit, writeTrafficSplit, type RoutingPublisher } from "../gateway/index.js";
import { loadManifest, type RouteAuthOut, type ServiceSpec } from "../manifest/index.js";
import { readReplicaLogs, type ChaosController, type RuntimeDriver } from "../runtime/index.js";
import type { Autoscaler } from "../autoscale/index.js";
import type { Store } from "../store/index.js";
import {
  collectProcessMetrics,
  parseTraceSearchParams,
  summarizeRed,
  summarizeTrace,
  type GatewayScraper,
  type IncidentMonitor,
  type MetricStore,
  type MetricWindow,
  type OtlpReceiver,
  type TraceSearch,
  type TraceStore,
} from "../telemetry/index.js";
import type { Principal } from "../security/index.js";
import { applyDeclaredFlags, createExperiments, createFlagService, type FlagService } from "../flags/index.js";
import { addCatalogRoutes } from "./catalog-routes.js";
import { addDashboardRoutes } from "./dashboard-routes.js";
import { addDoraRoutes } from "./dora-routes.js";
import { addEventWatchRoutes } from "./event-watch-routes.js";
import { addExperimentRoutes } from "./experiment-routes.js";
import { addFlagRoutes } from "./flag-routes.js";
import { addOperationsRoutes } from "./operations-routes.js";
import { addPipelineRoutes } from "./pipeline-routes.js";
import { addNotificationRoutes } from "./notification-routes.js";
import type { Notifier } from "../catalog/index.js";
import { actorName, authenticate, changeOf, checkAccess, noteChange, principalOf, type Credentials } from "./access.js";
import { drained, readJson, sendError, sendJson, type Access, type Handler } from "./http.js";
import { addSecurityRoutes, type SecurityServices } from "./security-routes.js";
import { addServiceMapRoutes } from "./service-map-routes.js";
import { addTraceLogRoutes } from "./trace-log-routes.js";

export const KEELSON_VERSION = "0.1.0";

export interface ControlPlaneOptions {
  project: string;
  /** Folder holding keelson.yaml. */
  dir: string;
  /** The project's state folder (.keelson). */
  stateDir: string;
  store: Store;
  driver: RuntimeDriver;
  reconciler: Reconciler;
  gatewayUrl: string;
  log: Log;
  /** Registry for the control plane's own metrics (default: a new one). */
  registry?: Registry;
  /** The project's flags (default: a flag service over `store`). */
  flags?: FlagService;
  /** Wall clock for flag usage, stale flags and scheduled flag changes (default: the system clock). */
  now?: () => Date;
  /** Credentials, audit, vault and redaction: every endpoint but /healthz needs a credential. */
  security: SecurityServices & { credentials: Credentials };
  /** What the gateway's mesh listener trusts (the CA's public keys), published in the routing table. */
  identityTrust?: () => IdentityTrust;
  /** Turns a route's declared auth into what the gateway checks (API key hashes, JWKS). */
  routeAuth?: (service: string, auth: Exclude<RouteAuthOut, "public">) => Promise<RouteAuth>;
  /** Serve HTTPS with this PEM certificate and key (manifest security.api.tls). */
  tls?: { cert: string; key: string };
  /** The autoscaler (its decisions, waking services scaled to zero); without it those endpoints answer 404. */
  autoscaler?: Autoscaler;
  /** Chaos experiments; their gateway faults go into the routing table. */
  chaos?: ChaosController;
  /** Notification deliveries (`keelson notifications`); without it those endpoints answer 404. */
  notifier?: Notifier;
  /** The web dashboard's built files, served at / (default: the @keelson/dashboard package's dist folder). */
  dashboardDir?: string;
  /** Settles once the running replicas are re-adopted; no routing table is served before (see createRoutingPublisher). */
  routingReady?: Promise<unknown>;
  /**
   * Several instances on one store (ADR 0020). `following()`: another instance leads, so routing
   * tables are read from the store, not built. `forward(req, res)`: called first for every request;
   * true when it took the request (a follower forwards to the leader). `leading`: settles when this
   * instance leads; loops that change state (scheduled flag changes) start only then.
   * `announce`: tells the other instances about a new routing table.
   */
  cluster?: {
    following: () => boolean;
    forward: (req: IncomingMessage, res: ServerResponse) => boolean;
    leading: Promise<unknown>;
    announce: (table: RoutingTable) => Promise<void>;
  };
  /** What `GET /v1/status` says of the instances and gateways, when there are several. */
  clusterStatus?: () => Promise<ClusterStatus | undefined>;
  /** Told the admin URL each gateway names when it opens the routing watch. */
  gateways?: { seen(adminUrl: string | undefined): void };
  /** What GET /readyz answers: 200 when ready, 503 with the reason otherwise (default: ready once listening). */
  readiness?: () => Promise<{ ready: boolean; role: string; reason?: string }>;
  /** Metrics, SLOs and incidents; without it the /v1/metrics and /v1/slo endpoints answer 404. */
  telemetry?: {
    metricStore: MetricStore;
    scraper: GatewayScraper;
    incidents: IncidentMonitor;
    traces: TraceStore;
    otlpReceiver: OtlpReceiver;
  };
}

export interface ControlPlane {
  readonly server: Server;
  /** Every endpoint with who may call it (what `keelson` documents and the security tests walk). */
  readonly endpoints: ReadonlyArray<{ method: string; path: string; access: Access }>;
  readonly routing: RoutingPublisher;
  listen(host: string, port: number): Promise<string>;
  close(): Promise<void>;
}


export function createControlPlane(options: ControlPlaneOptions): ControlPlane {
  const { project, dir, stateDir, store, driver, reconciler, gatewayUrl, log } = options;
  const startedAt = new Date().toISOString();
  let url = "";
  const flags = options.flags ?? createFlagService({ store, project, ...(options.now ? { now: options.now } : {}) });
  // Routes may name flags: the table carries their definitions, so a flag change republishes it.
  const routing = createRoutingPublisher({
    store,
    driver,
    project,
    exclude: (id) => reconciler.isDraining(id),
    flags: () => flags.snapshot(),
    ...(options.identityTrust ? { identity: options.identityTrust } : {}),
    ...(options.routeAuth ? { routeAuth: options.routeAuth } : {}),
    ...(options.chaos ? { faults: options.chaos.faults } : {}),
    ...(options.routingReady ? { ready: options.routingReady } : {}),
    ...(options.cluster ? { following: options.cluster.following, announce: options.cluster.announce } : {}),
  });
  const sseClients = new Set<ServerResponse>();
  let applying = false;

  const registry = options.registry ?? new Registry();
  if (!options.registry) collectProcessMetrics(registry, "keelson_controlplane_");
  const apiRequests = new Counter({ name: "keelson_controlplane_api_requests_total", help: "API requests by route and status code.", labelNames: ["route", "code"], registers: [registry] });

  reconciler.onChange(() => {
    void routing.refresh().catch((err: unknown) => log.error({ err }, "routing refresh failed"));
  });
  const unsubscribeChaos = options.chaos?.subscribe(() => {
    void routing.refresh().catch((err: unknown) => log.error({ err }, "routing refresh after a chaos fault changed failed"));
  });
  const unsubscribeFlags = flags.subscribe(() => {
    void routing.refresh().catch((err: unknown) => log.error({ err }, "routing refresh after a flag change failed"));
  });
  routing.subscribe((table) => {
    for (const res of sseClients) writeSse(res, table);
  });
  const heartbeat = setInterval(() => {
    for (const res of sseClients) res.write(": heartbeat\n\n");
  }, 15_000);
  heartbeat.unref();

  /** Who made the request, as events name it (the authenticated principal, never a header). */
  function actorOf(req: IncomingMessage): string {
    return actorName(principalOf(req));
  }

  async function status(): Promise<StatusReport> {
    const cluster = await options.clusterStatus?.();
    const services = await store.listServices(project);
    const replicas = driver.list().filter((r) => r.spec.project === project);
    // Rollout states are kept in memory once read: one lookup per service costs no store query.
    const rollouts = await Promise.all(services.map((s) => reconciler.rolloutOf(s.name)));
    const out: ServiceStatus[] = services.map((s, index) => {
      const spec = s.spec as unknown as ServiceSpec;
      const instances: ReplicaStatus[] = replicas
        .filter((r) => r.spec.service === s.name)
        .sort((a, b) => a.spec.index - b.spec.index || a.spec.id.localeCompare(b.spec.id))
        .map((r) => ({
          id: r.spec.id,
          service: r.spec.service,
          release: r.spec.release,
          index: r.spec.index,
          state: r.state,
          pid: r.pid,
          port: r.spec.port,
          url: `http://127.0.0.1:${r.spec.port}`,
          restarts: r.restarts,
          startedAt: r.startedAt,
          lastExit: r.lastExit,
          ...(r.usage === undefined ? {} : { usage: r.usage }),
          ...(r.paused === true ? { paused: true } : {}),
        }));
      const ready = instances.filter((i) => i.state === "ready" && i.release === s.release);
      const rollout = activeRollout(rollouts[index], spec.deploy?.steps?.length ?? 0);
      return {
        name: s.name,
        owner: spec.owner,
        release: s.release,
        replicas: { desired: spec.replicas, ready: ready.length },
        endpoints: instances.filter((i) => i.state === "ready").map((i) => i.url),
        routes: (spec.routes ?? []).map((r) => `${r.host ?? ""}${r.path}`),
        instances,
        ...(rollout === undefined ? {} : { rollout }),
      };
    });
    return {
      project,
      controlPlane: { url, pid: process.pid, version: KEELSON_VERSION, startedAt },
      gateway: { url: gatewayUrl },
      services: out.sort((a, b) => a.name.localeCompare(b.name)),
      ...(cluster === undefined ? {} : { cluster }),
    };
  }

  function writeSse(res: ServerResponse, table: RoutingTable): void {
    res.write(`event: routing\ndata: ${JSON.stringify(table)}\n\n`);
  }

  async function serviceParam(name: string | undefined): Promise<string> {
    if (!name || !(await store.getService(project, name))) {
      throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `service "${name ?? ""}" does not exist in project "${project}"`);
    }
    return name;
  }

  const routes: Array<{ method: string; pattern: RegExp; keys: string[]; name: string; handler: Handler; access: Access }> = [];
  function route(method: string, path: string, access: Access, handler: Handler): void {
    const keys: string[] = [];
    const pattern = new RegExp(`^${path.replace(/:(\w+)/g, (_, k: string) => (keys.push(k), "([^/]+)"))}$`);
    routes.push({ method, pattern, keys, name: path, handler, access });
  }

  const telemetry = options.telemetry;
  // Requests a gateway routed by a flag count as the flag's evaluations (stale flags).
  const flagRoutes = addFlagRoutes(route, { flags, actorOf, store, project, log, ...(options.now ? { now: options.now } : {}), ...(telemetry ? { gateway: { metrics: telemetry.metricStore } } : {}) });
  // Results read the gateway's per-variant requests from the metric store, scraped right before (as canary analysis does).
  const gatewayMetrics = telemetry ? { metrics: telemetry.metricStore, refresh: () => telemetry.scraper.scrapeOnce() } : undefined;
  addExperimentRoutes(route, { experiments: createExperiments({ store, project, flags, ...(gatewayMetrics ? { gateway: gatewayMetrics } : {}) }), usage: flagRoutes.usage });
  addCatalogRoutes(route, { store, project, driver, flags, usage: flagRoutes.usage, log, ...(options.telemetry ? { traces: options.telemetry.traces } : {}), ...(options.now ? { now: options.now } : {}) });
  addDoraRoutes(route, { store, project, actorOf, serviceParam, ...(options.now ? { now: options.now } : {}) });
  addNotificationRoutes(route, { actorOf, ...(options.notifier ? { notifier: options.notifier } : {}) });
  addOperationsRoutes(route, {
    store,
    project,
    actorOf,
    serviceParam,
    pid: process.pid,
    ...(options.autoscaler ? { autoscaler: options.autoscaler } : {}),
    ...(options.chaos ? { chaos: options.chaos } : {}),
  });

  // The web dashboard's page and assets: public, with their own CSP; its API calls need a token.
  addDashboardRoutes(route, options.dashboardDir === undefined ? {} : { dir: options.dashboardDir });
  // Unauthenticated on purpose (liveness probes, `keelson up` finding its control plane): it says only that it runs, and for which project.
  route("GET", "/healthz", "public", async (_req, res) => sendJson(res, 200, { status: "ok", project }));
  // Unauthenticated too (load balancers, Kubernetes readiness probes): whether this instance can serve, and its role.
  route("GET", "/readyz", "public", async (_req, res) => {
    const state = options.readiness ? await options.readiness() : { ready: true, role: "leader" };
    if (!state.ready) res.setHeader("retry-after", "1");
    sendJson(res, state.ready ? 200 : 503, { status: state.ready ? "ready" : "not-ready", role: state.role, ...(state.reason === undefined ? {} : { reason: state.reason }) });
  });
  route("GET", "/metrics", "read", async (_req, res) => {
    const text = await registry.metrics();
    res.writeHead(200, { "content-type": registry.contentType });
    res.end(text);
  });
  route("GET", "/v1/status", "read", async (_req, res) => sendJson(res, 200, await status()));
  route("POST", "/v1/plan", "read", async (_req, res) => {
    const loaded = await loadManifest(dir);
    sendJson(res, 200, await reconciler.plan(loaded));
  });
  route("POST", "/v1/apply", "admin", async (req, res) => {
    const body = await readJson(req);
    if (applying) throw new KeelsonError("KEELSON_ERR_CONFLICT", "another apply is running; try again when it has finished");
    const loaded = await loadManifest(dir);
    applying = true;
    try {
      await streamOperation(res, async (send) => {
        const actor = actorOf(req);
        // Flags are desired state of their own: they are set whatever became of the services.
        const services = await reconciler.apply(loaded, { actor, rebuild: body.rebuild === true, waitReady: body.wait !== false, onProgress: send }).then(
          (result) => ({ result }),
          (error: unknown) => ({ error }),
        );
        const declaration = { flags: loaded.manifest.flags, evaluators: loaded.manifest.flagEvaluators };
        const flagResult = await applyDeclaredFlags({ flags, store, project, declaration, actor });
        send({ type: "flags", ...flagResult });
        if ("error" in services) throw services.error;
        return { failures: services.result.failures, changes: services.result.plan.changes.length, flags: flagResult };
      });
    } finally {
      applying = false;
    }
  });
  route("POST", "/v1/down", "admin", async (req, res) => {
    await reconciler.down(actorOf(req));
    await routing.refresh();
    sendJson(res, 200, { stopped: true });
  });
  route("POST", "/v1/services/:name/scale", { deploy: "name" }, async (req, res, params) => {
    const name = await serviceParam(params.name);
    const body = await readJson(req);
    const before = ((await store.getService(project, name))?.spec as { replicas?: number } | undefined)?.replicas;
    await reconciler.scale(name, body.replicas as number, actorOf(req));
    noteChange(req, { before: { replicas: before }, after: { replicas: body.replicas } });
    sendJson(res, 202, { service: name, replicas: body.replicas });
  });
  route("POST", "/v1/services/:name/restart", { deploy: "name" }, async (req, res, params) => {
    const name = await serviceParam(params.name);
    await reconciler.restart(name, actorOf(req));
    sendJson(res, 200, { service: name, restarted: true });
  });
  route("GET", "/v1/services/:name/logs", "read", async (req, res, params, u) => {
    const name = await serviceParam(params.name);
    const since = u.searchParams.get("since");
    const tail = u.searchParams.get("tail");
    const sinceDate = since ? new Date(since) : undefined;
    if (sinceDate && Number.isNaN(sinceDate.getTime())) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `since: expected an ISO time, got "${since}"`);
    // A plain substring, not a pattern: nothing a caller sends can make the scan slow.
    const grep = u.searchParams.get("grep")?.toLowerCase() ?? "";
    if (grep.length > 200) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `grep: expected at most 200 characters, got ${grep.length}`);
    const abort = new AbortController();
    req.once("close", () => abort.abort());
    // The search sees lines as the answer shows them, secrets redacted: matching the raw text would
    // tell a caller, line by line, whether a secret starts with what it guessed.
    const shown = (text: string) => security.redactor().redact(text).toLowerCase();
    res.writeHead(200, { "content-type": "application/x-ndjson; charset=utf-8", "cache-control": "no-store" });
    // Now, not with the first line: a follow whose search matches nothing yet is still an answer.
    res.flushHeaders();
    const logDir = join(stateDir, "logs", name);
    try {
      for await (const line of readReplicaLogs({
        logDir,
        ...(sinceDate ? { since: sinceDate } : {}),
        ...(tail ? { tail: Number(tail) } : {}),
        ...(grep === "" ? {} : { match: (l: { line: string }) => shown(l.line).includes(grep) }),
        follow: u.searchParams.get("follow") === "1",
        signal: abort.signal,
      })) {
        if (!res.write(`${JSON.stringify(line)}\n`)) await drained(res);
      }
    } catch (err) {
      if (!abort.signal.aborted) log.warn({ err }, "log stream failed");
    }
    res.end();
  });
  /** Streams a long operation's progress as NDJSON (so the CLI shows it live), then `done` with its result or `error`. */
  async function streamOperation(res: ServerResponse, run: (send: (p: ApplyProgress) => void) => Promise<unknown>): Promise<void> {
    res.writeHead(200, { "content-type": "application/x-ndjson; charset=utf-8", "cache-control": "no-store" });
    const send = (p: unknown) => {
      if (!res.destroyed) res.write(`${JSON.stringify(p)}\n`);
    };
    try {
      const result = await run(send);
      await routing.refresh();
      send({ type: "done", result });
    } catch (err) {
      send({ type: "error", error: err instanceof KeelsonError ? err.toBody().error : { code: "KEELSON_ERR_INTERNAL", message: String(err) } });
    } finally {
      res.end();
    }
  }
  /** A deploy request's body (`commit`, `rebuild`, `wait`, `trigger`) as reconciler options. */
  function deployOptions(req: IncomingMessage, body: Record<string, unknown>): Omit<DeployOptions, "onProgress"> {
    if (body.commit !== undefined && (typeof body.commit !== "string" || !/^[\w./~^@{}-]{1,200}$/.test(body.commit))) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `commit: expected a commit sha or ref, got ${JSON.stringify(body.commit)}`);
    }
    return {
      actor: actorOf(req),
      ...(typeof body.commit === "string" ? { commit: body.commit } : {}),
      rebuild: body.rebuild === true,
      wait: body.wait !== false,
      trigger: typeof body.trigger === "string" ? body.trigger : "deploy",
    };
  }
  route("POST", "/v1/services/:name/deploy", { deploy: "name" }, async (req, res, params) => {
    const name = await serviceParam(params.name);
    const body = await readJson(req);
    const options = deployOptions(req, body);
    await streamOperation(res, (send) => reconciler.deploy(name, { ...options, onProgress: send }));
  });
  route("POST", "/v1/deploy", "read", async (req, res) => {
    const body = await readJson(req);
    const services = body.services;
    if (!Array.isArray(services) || services.length === 0 || !services.every((x): x is string => typeof x === "string")) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `services: expected a list of service names, got ${JSON.stringify(services)}`);
    }
    // A group deploy needs the right to deploy each of its services.
    for (const name of services) {
      await serviceParam(name);
      await checkAccess(principalOf(req) as Principal, { deploy: "name" }, { name }, resources);
    }
    const options = deployOptions(req, body);
    await streamOperation(res, async (send) => ({ results: await reconciler.deployTogether(services, { ...options, onProgress: send }) }));
  });
  route("POST", "/v1/services/:name/rollback", { deploy: "name" }, async (req, res, params) => {
    const name = await serviceParam(params.name);
    const body = await readJson(req);
    if (body.to !== undefined && typeof body.to !== "string") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "to: expected a release id");
    await streamOperation(res, (send) => reconciler.rollback(name, { actor: actorOf(req), ...(typeof body.to === "string" ? { to: body.to } : {}), wait: body.wait !== false, onProgress: send }));
  });
  route("POST", "/v1/services/:name/promote", { deploy: "name" }, async (req, res, params) => {
    const name = await serviceParam(params.name);
    const body = await readJson(req);
    const state = await reconciler.promote(name, actorOf(req), { full: body.full === true });
    await routing.refresh();
    sendJson(res, 200, { service: name, rollout: state });
  });
  route("POST", "/v1/services/:name/abort", { deploy: "name" }, async (req, res, params) => {
    const name = await serviceParam(params.name);
    const state = await reconciler.abort(name, actorOf(req));
    await routing.refresh();
    sendJson(res, 200, { service: name, rollout: state });
  });
  route("GET", "/v1/services/:name/rollout", "read", async (_req, res, params) => {
    const name = await serviceParam(params.name);
    const record = await store.getService(project, name);
    const deploy = (record?.spec as { deploy?: { strategy?: string; steps?: unknown[] } } | undefined)?.deploy;
    sendJson(res, 200, { service: name, rollout: (await reconciler.rolloutOf(name)) ?? null, strategy: deploy?.strategy ?? "rolling", steps: deploy?.steps ?? [] });
  });
  route("GET", "/v1/services/:name/releases", "read", async (_req, res, params) => {
    const name = await serviceParam(params.name);
    sendJson(res, 200, { service: name, releases: await reconciler.releases(name) });
  });
  addPipelineRoutes(route, { store, project, stateDir, pipelines: reconciler.pipelines, serviceParam });
  route("GET", "/v1/services/:name/traffic", "read", async (_req, res, params) => {
    const name = await serviceParam(params.name);
    sendJson(res, 200, { service: name, split: (await readTrafficSplit(store, project, name)) ?? null });
  });
  route("PUT", "/v1/services/:name/traffic", { deploy: "name" }, async (req, res, params) => {
    const name = await serviceParam(params.name);
    const before = (await readTrafficSplit(store, project, name)) ?? null;
    const split = await writeTrafficSplit({ store, project, service: name, split: await readJson(req), actor: actorOf(req) });
    noteChange(req, { before, after: split });
    await routing.refresh();
    sendJson(res, 200, { service: name, split });
  });
  route("DELETE", "/v1/services/:name/traffic", { deploy: "name" }, async (req, res, params) => {
    const name = await serviceParam(params.name);
    await writeTrafficSplit({ store, project, service: name, split: undefined, actor: actorOf(req) });
    await routing.refresh();
    sendJson(res, 200, { service: name, split: null });
  });
  route("GET", "/v1/events", "read", async (_req, res, _p, u) => {
    const after = u.searchParams.get("after");
    const limit = u.searchParams.get("limit");
    const kind = u.searchParams.get("kind");
    sendJson(res, 200, {
      events: await store.listEvents({
        project,
        ...(after ? { afterSeq: Number(after) } : {}),
        limit: limit ? Math.min(Number(limit), 1000) : 100,
        ...(kind ? { kinds: kind.split(",") as EventKind[] } : {}),
        descending: u.searchParams.get("order") === "desc",
      }),
    });
  });
  function requireTelemetry(): NonNullable<ControlPlaneOptions["telemetry"]> {
    if (!options.telemetry) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", "this control plane runs without telemetry");
    return options.telemetry;
  }
  route("GET", "/v1/metrics", "read", async (_req, res, _p, u) => {
    const t = requireTelemetry();
    const window = u.searchParams.get("window") ?? "5m";
    const by = (u.searchParams.get("by") ?? "service").split(",").filter(Boolean);
    const where: Record<string, string> = {};
    for (const k of ["service", "version", "route", "replica"] as const) {
      const v = u.searchParams.get(k);
      if (v) where[k] = v;
    }
    sendJson(res, 200, { window, rows: summarizeRed(t.metricStore, { window: window as MetricWindow, by, where }), targets: t.scraper.targets() });
  });
  route("GET", "/v1/slo", "read", async (_req, res) => sendJson(res, 200, { slos: await requireTelemetry().incidents.status() }));
  route("GET", "/v1/incidents", "read", async (_req, res) => sendJson(res, 200, { open: await requireTelemetry().incidents.openIncidents() }));
  route("POST", "/v1/traces", "telemetry", async (req, res) => requireTelemetry().otlpReceiver.handle(req, res));
  route("GET", "/v1/traces", "read", async (_req, res, _p, u) => {
    const t = requireTelemetry();
    let query: TraceSearch;
    try {
      query = parseTraceSearchParams(u.searchParams);
    } catch (err) {
      throw err instanceof KeelsonError ? err : new KeelsonError("KEELSON_ERR_INVALID_INPUT", (err as Error).message);
    }
    sendJson(res, 200, { traces: await t.traces.search(query) });
  });
  route("GET", "/v1/traces/:id", "read", async (_req, res, params) => {
    const spans = await requireTelemetry().traces.getTrace(params.id ?? "");
    if (spans.length === 0) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no trace "${params.id ?? ""}" is stored`);
    sendJson(res, 200, { spans, summary: summarizeTrace(spans) });
  });
  addServiceMapRoutes(route, { store, project, traces: options.telemetry?.traces });
  addTraceLogRoutes(route, { store, project, stateDir, traces: options.telemetry?.traces });
  const eventWatch = addEventWatchRoutes(route, { store, project, log });
  route("GET", "/v1/routing", "watch", async (_req, res) => sendJson(res, 200, await routing.current()));
  route("GET", "/v1/watch/routing", "watch", async (req, res) => {
    // Read first: a follower with no table yet answers 503, and the gateway tries another instance.
    const first = await routing.current();
    const admin = req.headers[GATEWAY_ADMIN_HEADER];
    options.gateways?.seen(Array.isArray(admin) ? admin[0] : admin);
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    res.flushHeaders();
    sseClients.add(res);
    req.once("close", () => sseClients.delete(res));
    writeSse(res, first);
  });

  const { security } = options;
  const resources = {
    serviceOwner: async (name: string) => ((await store.getService(project, name))?.spec as { owner?: string } | undefined)?.owner,
    flagOwner: async (key: string) => (await flags.snapshot()).set.flags[key]?.owner,
  };
  addSecurityRoutes(route, {
    ...security,
    store,
    project,
    stateDir,
    actorOf,
    serviceParam,
    // A secret may be a route's API keys: the gateways get the new hashes.
    async secretsChanged(service) {
      await security.secretsChanged?.(service);
      await routing.refresh();
    },
  });

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (options.cluster?.forward(req, res) === true) return;
    const u = new URL(req.url ?? "/", "http://localhost");
    setSecurityHeaders(res, options.tls !== undefined);
    // The dashboard's built files hold no secrets, and a text round trip would corrupt binary ones.
    if (!isDashboardFile(u.pathname)) redactResponse(res, () => security.redactor());
    const match = routes.find((r) => r.method === req.method && r.pattern.test(u.pathname));
    const known = routes.some((r) => r.pattern.test(u.pathname));
    if (!match) {
      // CORS stays closed: a preflight gets no allow headers, so browsers refuse cross-origin calls.
      const err = new KeelsonError(known ? "KEELSON_ERR_INVALID_INPUT" : "KEELSON_ERR_NOT_FOUND", known ? `${req.method} is not allowed on ${u.pathname}` : `no API endpoint ${u.pathname}`);
      // An unknown path tells nothing to a caller without a credential.
      if (!known && req.headers.authorization === undefined) sendError(res, new KeelsonError("KEELSON_ERR_UNAUTHENTICATED", "this endpoint needs a bearer token"));
      else sendJson(res, known ? 405 : 404, err.toBody());
      return;
    }
    const values = match.pattern.exec(u.pathname)?.slice(1) ?? [];
    let params: Record<string, string>;
    try {
      params = Object.fromEntries(match.keys.map((k, i) => [k, decodeURIComponent(values[i] ?? "")]));
    } catch {
      sendError(res, new KeelsonError("KEELSON_ERR_INVALID_INPUT", `the path ${u.pathname.slice(0, 200)} is not validly percent-encoded`));
      return;
    }
    const audited = isAudited(match.method, match.access);
    const from = req.socket.remoteAddress ?? "unknown";
    res.once("finish", () => {
      apiRequests.inc({ route: match.name, code: String(res.statusCode) });
      if (audited) {
        const change = changeOf(req);
        security.audit
          .record({
            actor: actorOf(req),
            action: `${match.method} ${match.name}`,
            target: auditTarget(match.name, params),
            from,
            result: res.statusCode < 400 ? "ok" : res.statusCode === 401 || res.statusCode === 403 ? "denied" : "error",
            status: res.statusCode,
            ...(change ?? {}),
          })
          .catch((err: unknown) => log.error({ err, path: u.pathname }, "writing the audit record failed"));
      }
    });
    (async () => {
      if (match.access !== "public") {
        const principal = await authenticate(req, security.credentials);
        await checkAccess(principal, match.access, params, resources);
      }
      await match.handler(req, res, params, u);
    })().catch((err: unknown) => {
      if (!(err instanceof KeelsonError)) log.error({ err, path: u.pathname }, "API request failed");
      if (err instanceof KeelsonError && err.code === "KEELSON_ERR_UNAUTHENTICATED") res.setHeader("www-authenticate", 'Bearer realm="keelson"');
      sendError(res, err);
    });
  };
  const server: Server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handle) : createServer(handle);
  server.keepAliveTimeout = 5000;

  return {
    server,
    endpoints: routes.map((r) => ({ method: r.method, path: r.name, access: r.access })),
    routing,
    listen(host, port) {
      return new Promise((resolveListen, reject) => {
        server.once("error", (err: NodeJS.ErrnoException) => {
          reject(
            err.code === "EADDRINUSE"
              ? new KeelsonError("KEELSON_ERR_PORT_IN_USE", `controlPlane.port: ${host}:${port} is already in use by another process`)
              : err,
          );
        });
        server.listen(port, host, () => {
          const addr = server.address();
          const p = addr && typeof addr === "object" ? addr.port : port;
          url = `${options.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${p}`;
          // Scheduled flag changes are applied only by a control plane that got its port, and leads.
          void (options.cluster?.leading ?? Promise.resolve())
            .then(() => flagRoutes.start())
            .catch((err: unknown) => log.warn({ err }, "applying scheduled flag changes failed"));
          resolveListen(url);
        });
      });
    },
    async close() {
      clearInterval(heartbeat);
      unsubscribeFlags();
      unsubscribeChaos?.();
      await flagRoutes.close();
      for (const res of sseClients) res.end();
      sseClients.clear();
      eventWatch.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        // Watch streams and idle keep-alive sockets would hold close() open.
        server.closeAllConnections();
      });
    },
  };
}

/** Calls that change something are audited (successful or not); reads, telemetry and flag evaluation are not. */
function isAudited(method: string, access: Access): boolean {
  if (method === "GET" || method === "HEAD") return false;
  return access === "admin" || typeof access === "object";
}

/** The audit record's target: the named service, flag, token or run, else the endpoint. */
function auditTarget(route: string, params: Record<string, string>): string {
  if (params.name !== undefined) return `service/${params.name}`;
  if (params.key !== undefined) return `flag/${params.key}`;
  if (params.id !== undefined) return `${route.split("/")[2] ?? "object"}/${params.id}`;
  return route;
}

/** Headers every answer carries: no sniffing, no framing, no caching, no referrer; HSTS over TLS. */
function setSecurityHeaders(res: ServerResponse, tls: boolean): void {
  res.setHeader("x-content-type-options", "nosniff");
  res.setHeader("x-frame-options", "DENY");
  res.setHeader("referrer-policy", "no-referrer");
  res.setHeader("content-security-policy", "default-src 'none'; frame-ancestors 'none'");
  res.setHeader("cache-control", "no-store");
  if (tls) res.setHeader("strict-transport-security", "max-age=31536000");
}

function isDashboardFile(path: string): boolean {
  return path === "/" || path.startsWith("/assets/");
}

type Redactor = { redact(text: string): string; size: number };

/**
 * Replaces known secret values in everything the response writes (JSON, NDJSON lines, SSE, text),
 * once, as it is written, with the secrets known at each write: a stream that runs for minutes
 * (a followed log) redacts a secret set while it runs. A redacted body may be shorter than the
 * one measured, so a content-length is dropped, unless the vault is empty when the head is
 * written: that answer is then sent as measured.
 */
function redactResponse(res: ServerResponse, current: () => Redactor): void {
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
  const end = res.end.bind(res) as (chunk?: unknown, ...rest: unknown[]) => ServerResponse;
  let measured = false;
  const clean = (chunk: unknown) => {
    const redactor = current();
    if (measured || redactor.size === 0) return chunk;
    return typeof chunk === "string" ? redactor.redact(chunk) : Buffer.isBuffer(chunk) ? Buffer.from(redactor.redact(chunk.toString("utf8"))) : chunk;
  };
  const hasLength = (arg: unknown) => arg !== null && typeof arg === "object" && !Array.isArray(arg) && Object.keys(arg).some((name) => name.toLowerCase() === "content-length");
  const unmeasured = (arg: unknown) =>
    arg !== null && typeof arg === "object" && !Array.isArray(arg) ? Object.fromEntries(Object.entries(arg).filter(([name]) => name.toLowerCase() !== "content-length")) : arg;
  (res as { writeHead: unknown }).writeHead = (...args: unknown[]) => {
    if (current().size === 0) {
      measured = args.some(hasLength);
      return writeHead(...args);
    }
    return writeHead(...args.map(unmeasured));
  };
  (res as { write: unknown }).write = (chunk: unknown, ...rest: unknown[]) => write(clean(chunk), ...rest);
  (res as { end: unknown }).end = (chunk?: unknown, ...rest: unknown[]) => (typeof chunk === "function" || chunk === undefined ? end(chunk, ...rest) : end(clean(chunk), ...rest));
}
