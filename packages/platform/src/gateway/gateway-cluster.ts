// A multi-worker gateway's primary process: forks worker processes (node:cluster) that share the
// public port, follows the control plane once and sends every table to all of them, runs the one
// admin listener (metrics and traffic stats summed over workers), restarts workers that die and
// drains them all on stop.
import cluster from "node:cluster";
import type { Worker } from "node:cluster";
import { mkdir } from "node:fs/promises";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { dirname, extname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { RoutingTable } from "@keelson/protocol";
import { KeelsonError } from "@keelson/protocol";
import type { Level } from "pino";
import { Counter, Gauge, Registry } from "prom-client";
import { collectProcessMetrics } from "../telemetry/index.js";
import type { FromWorker, MetricsJson, ToWorker, WorkerAnswers, WorkerConfig, WorkerQuestion } from "./cluster-messages.js";
import { isClusterMessage } from "./cluster-messages.js";
import { aggregateClusterMetrics, retireCounts } from "./cluster-metrics.js";
import { mergeStatsSnapshots } from "./cluster-stats.js";
import type { GatewayLifecycle, GatewayOptions } from "./gateway-server.js";
import type { GatewayLogger } from "./logger.js";
import { silentLogger } from "./logger.js";
import type { RoutingWatch } from "./routing-watch.js";
import { createRoutingWatch, loadRoutingTable } from "./routing-watch.js";
import { closeServer, listen, sendError, sendJson } from "./admin-http.js";
import { createActivateCall, createServiceActivator } from "./service-activator.js";

export interface GatewayClusterOptions extends Omit<GatewayOptions, "log"> {
  /** Worker processes serving the public port (at least 1). */
  workers: number;
  /** The primary's logger; workers log JSON lines of their own. */
  log?: GatewayLogger;
  /** Level of the workers' loggers (default "info"). */
  workerLogLevel?: Level;
  /**
   * Receives each line the workers log. Without it workers write straight to the stdout they
   * inherit from the primary (no copying through the primary).
   */
  workerLogLine?: (line: string) => void;
  /** Node flags of the worker processes (default: the primary's own, `process.execArgv`). */
  workerExecArgv?: string[];
  /** How long a worker drains when it is signalled itself or loses its primary (default 10 s). */
  workerDrainMs?: number;
  /**
   * Delay before a dead worker is replaced: `initialMs` (default 250) doubling per quick death up
   * to `maxMs` (default 10 s). A worker that lived longer than `maxMs` earns `initialMs` again.
   */
  restartBackoff?: { initialMs?: number; maxMs?: number };
  /** Longest wait for a starting worker to listen (default 30 s); it is killed after that. */
  workerStartTimeoutMs?: number;
  /** Longest wait for a worker's answer to an admin request (default 2 s); for metrics its last known ones stand in. */
  askTimeoutMs?: number;
}

/** One worker slot as the primary sees it; a restarted worker takes over its slot. */
export interface WorkerStatus {
  slot: number;
  pid: number | undefined;
  state: "starting" | "listening" | "draining" | "restarting" | "stopped";
  /** Times this slot's worker was replaced after it died. */
  restarts: number;
  /** Version of the table the worker serves, once it has said so. */
  tableVersion: number | undefined;
}

/** The primary of a multi-worker gateway; the same lifecycle as `Gateway`. */
export interface GatewayCluster extends GatewayLifecycle {
  /**
   * Stops following the control plane and has every worker drain for up to `drainMs` (default
   * 10 s). Rejects when a worker had to be killed because it did not stop in time.
   */
  stop(opts?: { drainMs?: number }): Promise<void>;
  /** Sends this table to every worker. */
  setTable(table: RoutingTable): void;
  /** The table given last; `/routes` answers with the newest one every listening worker serves. */
  table(): RoutingTable | undefined;
  workers(): WorkerStatus[];
  /** What `/metrics` answers: the primary's and every worker's metrics, summed. */
  metrics(): Promise<string>;
  /** SIGKILLs every worker now (a second signal during a drain). */
  kill(): void;
}

const DEFAULT_DRAIN_MS = 10_000;
/** What a draining worker gets on top of `drainMs` before it is killed. */
const STOP_GRACE_MS = 5_000;

/** The worker entry beside this module: `.js` when built, `.ts` when run from source in tests. */
const WORKER_MODULE = (() => {
  const self = fileURLToPath(import.meta.url);
  return join(dirname(self), `gateway-worker${extname(self)}`);
})();

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  state: WorkerStatus["state"];
  restarts: number;
  /** Quick deaths in a row, for the backoff. */
  attempt: number;
  startedAt: number;
  /** Whether the worker has said hello, so that messages sent to it arrive. */
  greeted: boolean;
  /** Table sequence the worker serves (listening) or was started with (starting). */
  seq: number;
  /** The worker's newest metrics (from a scrape or its last words), counted as retired on exit. */
  lastMetrics: MetricsJson | undefined;
  startError: Error | undefined;
  /** Settles the start of the current worker. */
  started: ((err?: Error) => void) | undefined;
  restartTimer: NodeJS.Timeout | undefined;
  exited: Promise<void> | undefined;
}

/**
 * Creates the primary of a gateway with `workers` worker processes. Nothing runs until `start()`.
 * Port 0 is for tests: workers share the OS-chosen port only while at least one of them holds it.
 *
 * @example
 * const gw = createGatewayCluster({ workers: 4, host: "0.0.0.0", port: 8080, adminPort: 8081,
 *   stateDir: ".keelson/gateway", controlPlaneUrl: "http://127.0.0.1:7070" });
 * await gw.start();
 */
export function createGatewayCluster(options: GatewayClusterOptions): GatewayCluster {
  if (!Number.isInteger(options.workers) || options.workers < 1) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `workers: expected a whole number of at least 1, got ${String(options.workers)}`);
  }
  const {
    workers: count,
    log = silentLogger,
    workerLogLevel = "info",
    workerLogLine,
    workerExecArgv,
    workerDrainMs = DEFAULT_DRAIN_MS,
    restartBackoff = {},
    workerStartTimeoutMs = 30_000,
    askTimeoutMs = 2_000,
    controlPlaneUrl,
    watch: watchOptions,
    adminHost = "127.0.0.1",
    adminPort,
    activator: givenActivator,
    activateRetryMs,
    ...gatewayOptions
  } = options;
  const initialBackoffMs = restartBackoff.initialMs ?? 250;
  const maxBackoffMs = restartBackoff.maxMs ?? 10_000;

  const registry = new Registry();
  if (options.processMetrics ?? true) collectProcessMetrics(registry);
  const controlPlaneConnected = new Gauge({
    name: "keelson_gateway_control_plane_connected",
    help: "1 while the gateway follows the control plane's routing stream, else 0.",
    registers: [registry],
  });
  const restartsTotal = new Counter({
    name: "keelson_gateway_worker_restarts_total",
    help: "Gateway worker processes replaced after they died.",
    registers: [registry],
  });
  const slots: Slot[] = Array.from({ length: count }, (_, index) => ({
    index,
    worker: undefined,
    state: "stopped",
    restarts: 0,
    attempt: 0,
    startedAt: 0,
    greeted: false,
    seq: 0,
    lastMetrics: undefined,
    startError: undefined,
    started: undefined,
    restartTimer: undefined,
    exited: undefined,
  }));
  new Gauge({
    name: "keelson_gateway_workers",
    help: "Gateway worker processes listening on the public port.",
    registers: [registry],
    collect() {
      this.set(slots.filter((s) => s.state === "listening").length);
    },
  });

  let phase: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  let stopping: Promise<void> | undefined;
  let watch: RoutingWatch | undefined;
  let publicUrl: string | undefined;
  /** Tables by sequence number, kept while some worker may still serve them. */
  const tables = new Map<number, RoutingTable>();
  let seq = 0;
  /** Counts of workers that have exited (see retireCounts). */
  let retired: MetricsJson = [];
  let askId = 0;
  const waiters = new Map<number, { slot: Slot; worker: Worker; what: WorkerQuestion["what"]; resolve: (answer: unknown) => void }>();

  // Scale from zero: workers report their hold episodes; an episode here lasts while any worker
  // holds requests for the service, and this process (the one with the control-plane
  // connection and credential) asks for a replica once per episode.
  const activateCall =
    givenActivator === undefined && controlPlaneUrl !== undefined
      ? createActivateCall({ controlPlaneUrl, ...(options.credentialFile === undefined ? {} : { credentialFile: options.credentialFile }) })
      : undefined;
  const activator =
    givenActivator ?? (activateCall === undefined ? undefined : createServiceActivator({ activate: activateCall.call, ...(activateRetryMs === undefined ? {} : { retryMs: activateRetryMs }), log }));
  /** Slots holding requests, by service. */
  const holders = new Map<string, Set<number>>();
  const setHolding = (service: string, slot: number, holding: boolean) => {
    let slots = holders.get(service);
    if (holding) {
      if (slots === undefined) holders.set(service, (slots = new Set()));
      const first = slots.size === 0;
      slots.add(slot);
      if (first) activator?.holding(service);
      return;
    }
    if (slots === undefined || !slots.delete(slot) || slots.size > 0) return;
    holders.delete(service);
    activator?.released(service);
  };

  // Functions cannot cross the process boundary; a worker falls back to that option's default.
  const workerGateway = Object.fromEntries(Object.entries(gatewayOptions).filter(([, v]) => typeof v !== "function")) as WorkerConfig["gateway"];

  const send = (worker: Worker, msg: ToWorker): void => {
    if (!worker.isConnected()) return;
    // A worker that is exiting may close its channel between the check and the send.
    worker.send(msg, (err: Error | null) => {
      if (err !== null) log.debug({ workerPid: worker.process.pid, err: err.message }, "message to a gateway worker was not delivered");
    });
  };

  const servedSeq = (): number | undefined => {
    let min: number | undefined;
    for (const s of slots) if (s.state === "listening" && (min === undefined || s.seq < min)) min = s.seq;
    return min;
  };

  const prune = () => {
    let min = seq;
    for (const s of slots) if ((s.state === "listening" || s.state === "starting") && s.seq < min) min = s.seq;
    for (const k of tables.keys()) if (k < min) tables.delete(k);
  };

  const fork = (slot: Slot): Promise<void> => {
    // Settings are read at fork time; set each time so nothing else using cluster can change ours.
    cluster.setupPrimary({
      exec: WORKER_MODULE,
      args: [],
      execArgv: workerExecArgv ?? process.execArgv,
      silent: workerLogLine !== undefined,
      serialization: "advanced",
    });
    const worker = cluster.fork();
    slot.worker = worker;
    slot.state = "starting";
    slot.startedAt = Date.now();
    slot.greeted = false;
    slot.seq = seq;
    slot.lastMetrics = undefined;
    slot.startError = undefined;
    slot.exited = new Promise((resolve) => worker.once("exit", () => resolve()));
    if (workerLogLine !== undefined) {
      if (worker.process.stdout !== null) createInterface({ input: worker.process.stdout, crlfDelay: Infinity }).on("line", workerLogLine);
      worker.process.stderr?.pipe(process.stderr, { end: false });
    }
    worker.on("message", (msg: unknown) => onWorkerMessage(slot, worker, msg));
    worker.on("exit", (code: number | null, signal: string | null) => onWorkerExit(slot, worker, code, signal));
    worker.on("error", (err: Error) => log.debug({ slot: slot.index, err: err.message }, "gateway worker channel error"));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        slot.startError = new KeelsonError("KEELSON_ERR_INTERNAL", `gateway worker ${slot.index} did not listen within ${workerStartTimeoutMs} ms`);
        worker.process.kill("SIGKILL");
      }, workerStartTimeoutMs);
      slot.started = (err) => {
        clearTimeout(timer);
        slot.started = undefined;
        if (err === undefined) resolve();
        else reject(err);
      };
    });
  };

  const onWorkerMessage = (slot: Slot, worker: Worker, raw: unknown) => {
    if (!isClusterMessage(raw) || slot.worker !== worker) return;
    const msg = raw as FromWorker;
    switch (msg.type) {
      case "keelson:hello": {
        slot.greeted = true;
        // The newest table goes with the config; later ones follow as they come.
        slot.seq = seq;
        prune();
        const config: WorkerConfig = { gateway: workerGateway, logLevel: workerLogLevel, drainMs: workerDrainMs, slot: slot.index };
        send(worker, { type: "keelson:config", config, table: tables.get(seq), seq });
        return;
      }
      case "keelson:listening":
        // A worker that finishes starting during a drain still drains.
        if (slot.state === "starting") slot.state = "listening";
        slot.seq = Math.max(slot.seq, msg.seq);
        publicUrl = msg.url;
        prune();
        log.info({ slot: slot.index, workerPid: worker.process.pid, url: msg.url }, "gateway worker listening");
        slot.started?.();
        return;
      case "keelson:start-failed":
        slot.startError = msg.code !== undefined ? (KeelsonError.fromBody({ error: { code: msg.code, message: msg.message } }) ?? new Error(msg.message)) : new Error(msg.message);
        return;
      case "keelson:table-applied":
        slot.seq = Math.max(slot.seq, msg.seq);
        prune();
        return;
      case "keelson:answer": {
        const waiter = waiters.get(msg.id);
        if (waiter === undefined) return;
        waiters.delete(msg.id);
        // Kept at once: if the worker dies next, these are the counts it is retired with.
        if (waiter.what === "metrics") slot.lastMetrics = msg.answer as MetricsJson;
        waiter.resolve(msg.answer);
        return;
      }
      case "keelson:stopped":
        slot.lastMetrics = msg.metrics;
        return;
      case "keelson:activation":
        setHolding(msg.service, slot.index, msg.holding);
        return;
    }
  };

  const onWorkerExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null) => {
    if (slot.worker !== worker) return;
    const pid = worker.process.pid;
    slot.worker = undefined;
    // Requests it held are gone with it.
    for (const service of [...holders.keys()]) setHolding(service, slot.index, false);
    // Its counts live on in the totals; scrapes still waiting on it get nothing (no double count).
    if (slot.lastMetrics !== undefined) retired = retireCounts(retired, slot.lastMetrics);
    slot.lastMetrics = undefined;
    for (const [id, w] of waiters) {
      if (w.worker !== worker) continue;
      waiters.delete(id);
      w.resolve(undefined);
    }
    const wasListening = slot.state === "listening";
    if (slot.started !== undefined) {
      slot.state = "stopped";
      slot.started(slot.startError ?? new KeelsonError("KEELSON_ERR_INTERNAL", `gateway worker ${slot.index} exited (${signal ?? `code ${code}`}) before listening`));
    }
    if (phase !== "running") {
      slot.state = "stopped";
      return;
    }
    const lived = Date.now() - slot.startedAt;
    if (lived > maxBackoffMs) slot.attempt = 0;
    const delay = Math.min(maxBackoffMs, initialBackoffMs * 2 ** Math.min(slot.attempt, 30));
    slot.attempt++;
    slot.restarts++;
    slot.state = "restarting";
    restartsTotal.inc();
    const facts = { slot: slot.index, workerPid: pid, code, signal, restartInMs: Math.round(delay), wasListening };
    if (code === 0 && signal === null) log.info(facts, "gateway worker exited; starting a new one");
    else log.error(facts, "gateway worker died; starting a new one");
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (phase !== "running") {
        slot.state = "stopped";
        return;
      }
      // A failed start ends in an exit, which schedules the next attempt.
      fork(slot).catch((err: unknown) => log.error({ slot: slot.index, err: errorText(err) }, "gateway worker failed to start"));
    }, delay);
  };

  /** Asks one worker; undefined when it does not answer in time or exits first. */
  const ask = <W extends WorkerQuestion["what"]>(slot: Slot, worker: Worker, question: WorkerQuestion & { what: W }): Promise<WorkerAnswers[W] | undefined> =>
    new Promise((resolve) => {
      const id = ++askId;
      const timer = setTimeout(() => {
        waiters.delete(id);
        resolve(undefined);
      }, askTimeoutMs);
      waiters.set(id, {
        slot,
        worker,
        what: question.what,
        resolve: (answer) => {
          clearTimeout(timer);
          resolve(answer as WorkerAnswers[W] | undefined);
        },
      });
      send(worker, { type: "keelson:ask", id, question });
    });

  /** Workers that serve (or finish serving) requests, with the process each slot has now. */
  const liveWorkers = () => slots.flatMap((s) => (s.worker !== undefined && (s.state === "listening" || s.state === "draining") ? [{ slot: s, worker: s.worker }] : []));

  const collectMetrics = async (): Promise<string> => {
    const replies = await Promise.all(
      liveWorkers().map(async (l) => {
        const metrics = await ask(l.slot, l.worker, { what: "metrics" });
        // A worker too slow to answer counts with what it said last time.
        return { ...l, metrics: metrics ?? (l.slot.worker === l.worker ? l.slot.lastMetrics : undefined) };
      }),
    );
    const own = (await registry.getMetricsAsJSON()) as MetricsJson;
    // No await from here on: a worker that exited meanwhile is already in `retired`, so it is
    // left out here rather than counted twice.
    const current = replies.flatMap((r) => (r.metrics !== undefined && r.slot.worker === r.worker ? [{ slot: r.slot.index, metrics: r.metrics }] : []));
    return aggregateClusterMetrics(own, current, retired).metrics();
  };

  const admin: Server = createServer((req, res) => {
    handleAdmin(req, res).catch((err: unknown) => {
      log.error({ err }, "admin request failed");
      if (!res.headersSent) sendError(res, 500, "KEELSON_ERR_INTERNAL", "admin request failed");
      else res.destroy();
    });
  });

  const workerStatus = (): WorkerStatus[] =>
    slots.map((s) => ({ slot: s.index, pid: s.worker?.process.pid, state: s.state, restarts: s.restarts, tableVersion: s.state === "listening" ? tables.get(s.seq)?.version : undefined }));

  // The same endpoints as a single-process gateway's admin listener, answered for all workers.
  const handleAdmin = async (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      sendError(res, 405, "KEELSON_ERR_INVALID_INPUT", `${req.method ?? "?"} is not allowed; use GET`);
      return;
    }
    const served = servedSeq();
    const servedTable = served === undefined ? undefined : tables.get(served);
    switch (path) {
      case "/healthz":
        sendJson(res, 200, { status: "ok" });
        return;
      case "/readyz": {
        const draining = phase === "stopping" || phase === "stopped";
        const listening = slots.filter((s) => s.state === "listening").length;
        const body = {
          status: servedTable !== undefined && !draining ? "ready" : "not ready",
          version: servedTable?.version,
          draining,
          controlPlane: watch === undefined ? "none" : watch.connected ? "connected" : "disconnected",
          workers: { listening, configured: count },
        };
        sendJson(res, body.status === "ready" ? 200 : 503, body);
        return;
      }
      case "/metrics": {
        const text = await collectMetrics();
        res.writeHead(200, { "content-type": registry.contentType, "content-length": Buffer.byteLength(text) });
        res.end(req.method === "HEAD" ? undefined : text);
        return;
      }
      case "/routes":
        if (servedTable === undefined) sendError(res, 404, "KEELSON_ERR_NOT_FOUND", "no routing table served by every worker yet");
        else sendJson(res, 200, servedTable);
        return;
      case "/workers":
        sendJson(res, 200, workerStatus());
        return;
      case "/state": {
        // Breakers, ejections and bulkheads are each worker's own: listed per worker.
        const answers = await Promise.all(liveWorkers().map(async (l) => ({ slot: l.slot.index, pid: l.worker.process.pid, state: await ask(l.slot, l.worker, { what: "state" }) })));
        const states = answers.flatMap((a) => (a.state === undefined ? [] : [a.state]));
        sendJson(res, 200, {
          ...(servedTable === undefined ? {} : { version: servedTable.version }),
          at: new Date().toISOString(),
          draining: phase === "stopping" || phase === "stopped",
          connections: { clients: sum(states, (s) => s.connections.clients), tunnels: sum(states, (s) => s.connections.tunnels) },
          workers: answers,
        });
        return;
      }
      case "/stats": {
        const raw = new URLSearchParams(q === -1 ? "" : url.slice(q + 1)).get("window");
        const seconds = raw === null ? 60 : Number(raw);
        if (!Number.isInteger(seconds) || seconds < 1 || seconds > 60) {
          sendError(res, 400, "KEELSON_ERR_INVALID_INPUT", `window: expected whole seconds 1-60, got ${JSON.stringify(raw)}`);
          return;
        }
        const snapshots = await Promise.all(liveWorkers().map((l) => ask(l.slot, l.worker, { what: "stats", windowSeconds: seconds })));
        const answered = snapshots.flatMap((x) => (x === undefined ? [] : [x]));
        // A worker down or silent took part of the traffic: its share is unseen (coveredSeconds 0).
        sendJson(res, 200, mergeStatsSnapshots(answered, seconds, { missing: count - answered.length }));
        return;
      }
      default:
        sendError(res, 404, "KEELSON_ERR_NOT_FOUND", `no admin endpoint ${path}; try /healthz, /readyz, /metrics, /routes, /state, /stats or /workers`);
    }
  };

  const setTable = (table: RoutingTable) => {
    if (phase === "stopping" || phase === "stopped") return;
    seq++;
    tables.set(seq, table);
    for (const s of slots) if (s.worker !== undefined && s.greeted && (s.state === "starting" || s.state === "listening")) send(s.worker, { type: "keelson:table", table, seq });
    prune();
  };

  /** Has every worker drain; kills those still there after `drainMs` + grace. True when none had to be. */
  const stopWorkers = async (drainMs: number): Promise<boolean> => {
    for (const s of slots) {
      if (s.restartTimer !== undefined) clearTimeout(s.restartTimer);
      s.restartTimer = undefined;
      if (s.worker === undefined) s.state = "stopped";
    }
    const running = slots.filter((s) => s.worker !== undefined);
    for (const s of running) {
      s.state = "draining";
      // A worker that has not said hello would never see the message; its signal handler drains too.
      if (s.greeted) send(s.worker!, { type: "keelson:drain", drainMs });
      else s.worker!.process.kill("SIGTERM");
    }
    const exited = Promise.all(running.map((s) => s.exited));
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), drainMs + STOP_GRACE_MS)))]);
    clearTimeout(timer);
    if (inTime) return true;
    const late = running.filter((s) => s.worker !== undefined);
    log.error({ workers: late.map((s) => s.worker!.process.pid) }, "gateway workers did not stop in time; killing them");
    for (const s of late) s.worker!.process.kill("SIGKILL");
    await exited;
    return false;
  };

  const stop = async (drainMs: number) => {
    await watch?.stop();
    const clean = await stopWorkers(drainMs);
    await activator?.stop();
    await activateCall?.close();
    const adminClosed = closeServer(admin);
    admin.closeAllConnections();
    await adminClosed;
    phase = "stopped";
    log.info({ clean }, "gateway stopped");
    if (!clean) throw new KeelsonError("KEELSON_ERR_INTERNAL", `gateway workers did not stop within ${drainMs + STOP_GRACE_MS} ms and were killed`);
  };

  const address = (srv: Server, host: string, fallbackPort: number) => {
    const a = srv.address();
    const port = a !== null && typeof a === "object" ? a.port : fallbackPort;
    return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  };

  return {
    async start() {
      if (phase !== "new") throw new Error(`gateway.start() called while ${phase}`);
      phase = "starting";
      await mkdir(options.stateDir, { recursive: true });
      if (tables.size === 0) {
        const saved = await loadRoutingTable(options.stateDir, log);
        if (saved !== undefined) {
          setTable(saved);
          log.info({ version: saved.version }, "serving the saved routing table until the control plane answers");
        }
      }
      await listen(admin, adminHost, adminPort, "gateway.adminPort");
      admin.on("error", (err) => log.error({ err }, "admin listener error"));
      try {
        // One first: a taken port fails once, not once per worker.
        await fork(slots[0]!);
        await Promise.all(slots.slice(1).map(fork));
      } catch (err) {
        await stopWorkers(0);
        const adminClosed = closeServer(admin);
        admin.closeAllConnections();
        await adminClosed;
        phase = "stopped";
        throw err;
      }
      // stop() was called while the workers started: it takes down what did.
      if (phase !== "starting") return;
      if (controlPlaneUrl !== undefined) {
        watch = createRoutingWatch({
          controlPlaneUrl,
          stateDir: options.stateDir,
          ...(options.credentialFile === undefined ? {} : { credentialFile: options.credentialFile }),
          onTable: setTable,
          adminUrl: address(admin, adminHost, adminPort),
          onConnection: (connected) => controlPlaneConnected.set(connected ? 1 : 0),
          log,
          ...watchOptions,
        });
        watch.start();
      }
      phase = "running";
      log.info({ url: publicUrl, adminUrl: address(admin, adminHost, adminPort), workers: count }, "gateway listening");
    },
    stop(opts = {}) {
      if (phase === "new" || phase === "stopped") {
        phase = "stopped";
        return stopping ?? Promise.resolve();
      }
      if (stopping === undefined) {
        phase = "stopping";
        stopping = stop(opts.drainMs ?? DEFAULT_DRAIN_MS);
      }
      return stopping;
    },
    get url() {
      return publicUrl ?? `http://${gatewayOptions.host.includes(":") ? `[${gatewayOptions.host}]` : gatewayOptions.host}:${gatewayOptions.port}`;
    },
    get adminUrl() {
      return address(admin, adminHost, adminPort);
    },
    setTable,
    table: () => tables.get(seq),
    workers: workerStatus,
    metrics: collectMetrics,
    kill() {
      for (const s of slots) s.worker?.process.kill("SIGKILL");
    },
  };
}


function sum<T>(items: readonly T[], of: (item: T) => number): number {
  let total = 0;
  for (const item of items) total += of(item);
  return total;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
