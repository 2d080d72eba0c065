// The control plane's HTTP API: a composition root that wires the store, the runtime
// driver, the reconciler and the routing publisher to HTTP. No domain rules live here.
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { KeelsonError, type EventKind, type ReplicaStatus, type RoutingTable, type ServiceStatus, type StatusReport } from "@keelson/protocol";
import { Counter, Registry } from "prom-client";
import { listPipelineRuns, type ApplyProgress, type DeployOptions, type Log, type Reconciler } from "../delivery/index.js";
import { createRoutingPublisher, readTrafficSplit, writeTrafficSplit, type RoutingPublisher } from "../gateway/index.js";
import { loadManifest, type ServiceSpec } from "../manifest/index.js";
import { readReplicaLogs, type RuntimeDriver } from "../runtime/index.js";
import type { Store } from "../store/index.js";
import {
  buildServiceMap,
  collectProcessMetrics,
  parseDurationMs,
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
import { applyDeclaredFlags, createExperiments, createFlagService, type FlagService } from "../flags/index.js";
import { addExperimentRoutes } from "./experiment-routes.js";
import { addFlagRoutes } from "./flag-routes.js";
import { readJson, sendError, sendJson, type Handler } from "./http.js";

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
  const routing = createRoutingPublisher({ store, driver, project, exclude: (id) => reconciler.isDraining(id), flags: () => flags.snapshot() });
  const sseClients = new Set<ServerResponse>();
  let applying = false;

  const registry = options.registry ?? new Registry();
  if (!options.registry) collectProcessMetrics(registry, "keelson_controlplane_");
  const apiRequests = new Counter({ name: "keelson_controlplane_api_requests_total", help: "API requests by route and status code.", labelNames: ["route", "code"], registers: [registry] });

  reconciler.onChange(() => {
    void routing.refresh().catch((err: unknown) => log.error({ err }, "routing refresh failed"));
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

  function actorOf(req: IncomingMessage): string {
    const a = req.headers["x-keelson-actor"];
    return typeof a === "string" && a.length > 0 && a.length < 200 ? a : "api";
  }

  async function status(): Promise<StatusReport> {
    const services = await store.listServices(project);
    const replicas = driver.list().filter((r) => r.spec.project === project);
    const out: ServiceStatus[] = services.map((s) => {
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
        }));
      const ready = instances.filter((i) => i.state === "ready" && i.release === s.release);
      return {
        name: s.name,
        owner: spec.owner,
        release: s.release,
        replicas: { desired: spec.replicas, ready: ready.length },
        endpoints: instances.filter((i) => i.state === "ready").map((i) => i.url),
        routes: (spec.routes ?? []).map((r) => `${r.host ?? ""}${r.path}`),
        instances,
      };
    });
    return {
      project,
      controlPlane: { url, pid: process.pid, version: KEELSON_VERSION, startedAt },
      gateway: { url: gatewayUrl },
      services: out.sort((a, b) => a.name.localeCompare(b.name)),
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

  const routes: Array<{ method: string; pattern: RegExp; keys: string[]; name: string; handler: Handler }> = [];
  function route(method: string, path: string, handler: Handler): void {
    const keys: string[] = [];
    const pattern = new RegExp(`^${path.replace(/:(\w+)/g, (_, k: string) => (keys.push(k), "([^/]+)"))}$`);
    routes.push({ method, pattern, keys, name: path, handler });
  }

  const flagRoutes = addFlagRoutes(route, { flags, actorOf, store, project, log, ...(options.now ? { now: options.now } : {}) });
  addExperimentRoutes(route, { experiments: createExperiments({ store, project, flags }), usage: flagRoutes.usage });

  route("GET", "/healthz", async (_req, res) => sendJson(res, 200, { status: "ok", project, pid: process.pid, version: KEELSON_VERSION }));
  route("GET", "/metrics", async (_req, res) => {
    const text = await registry.metrics();
    res.writeHead(200, { "content-type": registry.contentType });
    res.end(text);
  });
  route("GET", "/v1/status", async (_req, res) => sendJson(res, 200, await status()));
  route("POST", "/v1/plan", async (_req, res) => {
    const loaded = await loadManifest(dir);
    sendJson(res, 200, await reconciler.plan(loaded));
  });
  route("POST", "/v1/apply", async (req, res) => {
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
  route("POST", "/v1/down", async (req, res) => {
    await reconciler.down(actorOf(req));
    await routing.refresh();
    sendJson(res, 200, { stopped: true });
  });
  route("POST", "/v1/services/:name/scale", async (req, res, params) => {
    const name = await serviceParam(params.name);
    const body = await readJson(req);
    await reconciler.scale(name, body.replicas as number, actorOf(req));
    sendJson(res, 202, { service: name, replicas: body.replicas });
  });
  route("POST", "/v1/services/:name/restart", async (req, res, params) => {
    const name = await serviceParam(params.name);
    await reconciler.restart(name, actorOf(req));
    sendJson(res, 200, { service: name, restarted: true });
  });
  route("GET", "/v1/services/:name/logs", async (req, res, params, u) => {
    const name = await serviceParam(params.name);
    const since = u.searchParams.get("since");
    const tail = u.searchParams.get("tail");
    const sinceDate = since ? new Date(since) : undefined;
    if (sinceDate && Number.isNaN(sinceDate.getTime())) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `since: expected an ISO time, got "${since}"`);
    const abort = new AbortController();
    req.once("close", () => abort.abort());
    res.writeHead(200, { "content-type": "application/x-ndjson; charset=utf-8", "cache-control": "no-store" });
    const logDir = join(stateDir, "logs", name);
    try {
      for await (const line of readReplicaLogs({
        logDir,
        ...(sinceDate ? { since: sinceDate } : {}),
        ...(tail ? { tail: Number(tail) } : {}),
        follow: u.searchParams.get("follow") === "1",
        signal: abort.signal,
      })) {
        if (!res.write(`${JSON.stringify(line)}\n`)) await new Promise((r) => res.once("drain", r));
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
  route("POST", "/v1/services/:name/deploy", async (req, res, params) => {
    const name = await serviceParam(params.name);
    const body = await readJson(req);
    const options = deployOptions(req, body);
    await streamOperation(res, (send) => reconciler.deploy(name, { ...options, onProgress: send }));
  });
  route("POST", "/v1/deploy", async (req, res) => {
    const body = await readJson(req);
    const services = body.services;
    if (!Array.isArray(services) || services.length === 0 || !services.every((x): x is string => typeof x === "string")) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `services: expected a list of service names, got ${JSON.stringify(services)}`);
    }
    for (const name of services) await serviceParam(name);
    const options = deployOptions(req, body);
    await streamOperation(res, async (send) => ({ results: await reconciler.deployTogether(services, { ...options, onProgress: send }) }));
  });
  route("POST", "/v1/services/:name/rollback", async (req, res, params) => {
    const name = await serviceParam(params.name);
    const body = await readJson(req);
    if (body.to !== undefined && typeof body.to !== "string") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "to: expected a release id");
    await streamOperation(res, (send) => reconciler.rollback(name, { actor: actorOf(req), ...(typeof body.to === "string" ? { to: body.to } : {}), wait: body.wait !== false, onProgress: send }));
  });
  route("POST", "/v1/services/:name/promote", async (req, res, params) => {
    const name = await serviceParam(params.name);
    const body = await readJson(req);
    const state = await reconciler.promote(name, actorOf(req), { full: body.full === true });
    await routing.refresh();
    sendJson(res, 200, { service: name, rollout: state });
  });
  route("POST", "/v1/services/:name/abort", async (req, res, params) => {
    const name = await serviceParam(params.name);
    const state = await reconciler.abort(name, actorOf(req));
    await routing.refresh();
    sendJson(res, 200, { service: name, rollout: state });
  });
  route("GET", "/v1/services/:name/rollout", async (_req, res, params) => {
    const name = await serviceParam(params.name);
    const record = await store.getService(project, name);
    const deploy = (record?.spec as { deploy?: { strategy?: string; steps?: unknown[] } } | undefined)?.deploy;
    sendJson(res, 200, { service: name, rollout: (await reconciler.rolloutOf(name)) ?? null, strategy: deploy?.strategy ?? "rolling", steps: deploy?.steps ?? [] });
  });
  route("GET", "/v1/services/:name/releases", async (_req, res, params) => {
    const name = await serviceParam(params.name);
    sendJson(res, 200, { service: name, releases: await reconciler.releases(name) });
  });
  route("GET", "/v1/services/:name/pipelines", async (_req, res, params, u) => {
    const name = await serviceParam(params.name);
    const limit = Number(u.searchParams.get("limit") ?? "20");
    const active = reconciler.pipelines.active(name)?.run;
    sendJson(res, 200, { service: name, runs: await listPipelineRuns({ store, project, service: name, limit: Number.isFinite(limit) ? limit : 20, ...(active ? { activeRun: active } : {}) }) });
  });
  route("GET", "/v1/pipelines/:run/log", async (_req, res, params) => {
    const run = params.run ?? "";
    if (!/^run-[\w-]+$/.test(run)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `run: expected a run id like run-20261126-221500-ab12cd, got "${run}"`);
    const base = join(stateDir, "pipelines");
    for (const service of await readdir(base).catch(() => [] as string[])) {
      const text = await readFile(join(base, service, `${run}.log`), "utf8").catch(() => undefined);
      if (text !== undefined) {
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
        res.end(text);
        return;
      }
    }
    throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no log for pipeline run "${run}"`);
  });
  route("GET", "/v1/services/:name/traffic", async (_req, res, params) => {
    const name = await serviceParam(params.name);
    sendJson(res, 200, { service: name, split: (await readTrafficSplit(store, project, name)) ?? null });
  });
  route("PUT", "/v1/services/:name/traffic", async (req, res, params) => {
    const name = await serviceParam(params.name);
    const split = await writeTrafficSplit({ store, project, service: name, split: await readJson(req), actor: actorOf(req) });
    await routing.refresh();
    sendJson(res, 200, { service: name, split });
  });
  route("DELETE", "/v1/services/:name/traffic", async (req, res, params) => {
    const name = await serviceParam(params.name);
    await writeTrafficSplit({ store, project, service: name, split: undefined, actor: actorOf(req) });
    await routing.refresh();
    sendJson(res, 200, { service: name, split: null });
  });
  route("GET", "/v1/events", async (_req, res, _p, u) => {
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
  route("GET", "/v1/metrics", async (_req, res, _p, u) => {
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
  route("GET", "/v1/slo", async (_req, res) => sendJson(res, 200, { slos: await requireTelemetry().incidents.status() }));
  route("GET", "/v1/incidents", async (_req, res) => sendJson(res, 200, { open: await requireTelemetry().incidents.openIncidents() }));
  route("POST", "/v1/traces", async (req, res) => requireTelemetry().otlpReceiver.handle(req, res));
  route("GET", "/v1/traces", async (_req, res, _p, u) => {
    const t = requireTelemetry();
    let query: TraceSearch;
    try {
      query = parseTraceSearchParams(u.searchParams);
    } catch (err) {
      throw err instanceof KeelsonError ? err : new KeelsonError("KEELSON_ERR_INVALID_INPUT", (err as Error).message);
    }
    sendJson(res, 200, { traces: await t.traces.search(query) });
  });
  route("GET", "/v1/traces/:id", async (_req, res, params) => {
    const spans = await requireTelemetry().traces.getTrace(params.id ?? "");
    if (spans.length === 0) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no trace "${params.id ?? ""}" is stored`);
    sendJson(res, 200, { spans, summary: summarizeTrace(spans) });
  });
  route("GET", "/v1/service-map", async (_req, res, _p, u) => {
    const windowMs = parseDurationMs("window", u.searchParams.get("window") ?? "15m");
    const spans = await requireTelemetry().traces.listSpans({ fromMs: Date.now() - windowMs });
    sendJson(res, 200, buildServiceMap(spans, { windowMs }));
  });
  route("GET", "/v1/routing", async (_req, res) => sendJson(res, 200, await routing.current()));
  route("GET", "/v1/watch/routing", async (req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    res.flushHeaders();
    sseClients.add(res);
    req.once("close", () => sseClients.delete(res));
    writeSse(res, await routing.current());
  });

  const server = createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://localhost");
    const match = routes.find((r) => r.method === req.method && r.pattern.test(u.pathname));
    const known = routes.some((r) => r.pattern.test(u.pathname));
    if (!match) {
      const err = new KeelsonError(known ? "KEELSON_ERR_INVALID_INPUT" : "KEELSON_ERR_NOT_FOUND", known ? `${req.method} is not allowed on ${u.pathname}` : `no API endpoint ${u.pathname}`);
      sendJson(res, known ? 405 : 404, err.toBody());
      return;
    }
    const values = match.pattern.exec(u.pathname)?.slice(1) ?? [];
    const params = Object.fromEntries(match.keys.map((k, i) => [k, decodeURIComponent(values[i] ?? "")]));
    res.once("finish", () => apiRequests.inc({ route: match.name, code: String(res.statusCode) }));
    match.handler(req, res, params, u).catch((err: unknown) => {
      if (!(err instanceof KeelsonError)) log.error({ err, path: u.pathname }, "API request failed");
      sendError(res, err);
    });
  });
  server.keepAliveTimeout = 5000;

  return {
    server,
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
          url = `http://${host.includes(":") ? `[${host}]` : host}:${p}`;
          // Scheduled flag changes are applied only by a control plane that got its port.
          flagRoutes.start().catch((err: unknown) => log.warn({ err }, "applying scheduled flag changes failed"));
          resolveListen(url);
        });
      });
    },
    async close() {
      clearInterval(heartbeat);
      unsubscribeFlags();
      await flagRoutes.close();
      for (const res of sseClients) res.end();
      sseClients.clear();
      await new Promise<void>((r) => {
        server.close(() => r());
        // Watch streams and idle keep-alive sockets would hold close() open.
        server.closeAllConnections();
      });
    },
  };
}
