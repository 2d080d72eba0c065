// Entry point of one worker process of a multi-worker gateway (node:cluster). It serves the shared
// public port with its own pools and the tables its primary sends; the primary runs the
// control-plane watch and the admin listener. Started by createGatewayCluster, never imported.
import cluster from "node:cluster";
import type { RoutingTable } from "@keelson/protocol";
import { pino } from "pino";
import type { Logger } from "pino";
import type { FromWorker, MetricsJson, ToWorker, WorkerAnswers, WorkerConfig, WorkerQuestion } from "./cluster-messages.js";
import { isClusterMessage } from "./cluster-messages.js";
import type { Gateway } from "./gateway-server.js";
import { createGateway } from "./gateway-server.js";

let config: WorkerConfig | undefined;
let log: Logger | undefined;
let gateway: Gateway | undefined;
let starting: Promise<void> | undefined;
let listening = false;
/** A table that arrived while the gateway was starting: applied once it listens. */
let pending: { table: RoutingTable; seq: number } | undefined;
let stopping: Promise<void> | undefined;

function send(msg: FromWorker, then?: () => void): void {
  if (process.send === undefined || !process.connected) {
    then?.();
    return;
  }
  // The callback runs once the message is handed to the channel (or the channel failed).
  process.send(msg, undefined, {}, () => then?.());
}

function onMessage(raw: unknown): void {
  if (!isClusterMessage(raw)) return;
  const msg = raw as ToWorker;
  switch (msg.type) {
    case "keelson:config":
      starting ??= start(msg.config, msg.table, msg.seq);
      return;
    case "keelson:table":
      if (!listening) pending = { table: msg.table, seq: msg.seq };
      else apply(msg.table, msg.seq);
      return;
    case "keelson:ask":
      void answer(msg.question).then(
        (a) => send({ type: "keelson:answer", id: msg.id, answer: a }),
        (err: unknown) => log?.warn({ err, question: msg.question.what }, "cannot answer the primary"),
      );
      return;
    case "keelson:drain":
      stop(msg.drainMs);
      return;
  }
}

async function start(cfg: WorkerConfig, table: RoutingTable | undefined, seq: number): Promise<void> {
  config = cfg;
  log = pino({ level: cfg.logLevel, base: { component: "gateway", pid: process.pid, worker: cfg.slot } }, pino.destination(1));
  // createGateway always opens an admin listener; a worker's stays on an OS-chosen loopback port
  // that nobody is told about (the primary's admin listener is the gateway's).
  // Hold episodes go to the primary, which asks the control plane (one ask for all workers).
  const gw = createGateway({
    ...cfg.gateway,
    adminHost: "127.0.0.1",
    adminPort: 0,
    log,
    activator: {
      holding: (service) => send({ type: "keelson:activation", service, holding: true }),
      released: (service) => send({ type: "keelson:activation", service, holding: false }),
      stop: async () => undefined,
    },
  });
  gateway = gw;
  // Set before start(), so the worker never reads routing.json itself: the primary owns it.
  if (table !== undefined) gw.setTable(table);
  try {
    await gw.start();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const message = err instanceof Error ? err.message : String(err);
    log.error({ code, err: message }, "gateway worker failed to start");
    log.flush();
    send({ type: "keelson:start-failed", code: typeof code === "string" ? code : undefined, message }, () => process.exit(1));
    return;
  }
  listening = true;
  if (pending !== undefined) {
    gw.setTable(pending.table);
    seq = pending.seq;
    pending = undefined;
  }
  send({ type: "keelson:listening", url: gw.url, seq });
}

function apply(table: RoutingTable, seq: number): void {
  try {
    gateway!.setTable(table);
  } catch (err) {
    log?.error({ err, version: table.version }, "applying a routing table failed");
    return;
  }
  send({ type: "keelson:table-applied", seq });
}

async function metricsJson(): Promise<MetricsJson> {
  if (gateway === undefined) return [];
  return (await gateway.metrics.registry.getMetricsAsJSON()) as MetricsJson;
}

async function answer(question: WorkerQuestion): Promise<WorkerAnswers[keyof WorkerAnswers]> {
  switch (question.what) {
    case "metrics":
      return metricsJson();
    case "state":
      if (gateway === undefined) throw new Error("not started");
      return gateway.state();
    case "stats":
      if (gateway === undefined) throw new Error("not started");
      return gateway.stats(question.windowSeconds);
  }
}

/** Drains, hands the final counts to the primary, exits. Idempotent. */
function stop(drainMs: number): void {
  stopping ??= (async () => {
    // A drain that arrives mid-start waits for the start, so both listeners get closed.
    await starting;
    let code = 0;
    try {
      await gateway?.stop({ drainMs });
    } catch (err) {
      code = 1;
      log?.error({ err }, "gateway worker did not stop cleanly");
    }
    const metrics = await metricsJson().catch(() => []);
    log?.flush();
    send({ type: "keelson:stopped", metrics }, () => process.exit(code));
  })();
}

let signalled = false;
function onSignal(): void {
  // SIGINT from a terminal reaches the whole process group: the primary drains everyone anyway.
  if (signalled) {
    log?.warn({}, "second signal during drain: exiting now");
    log?.flush();
    process.exit(1);
  }
  signalled = true;
  stop(config?.drainMs ?? 10_000);
}

if (!cluster.isWorker || process.send === undefined) {
  process.stderr.write("gateway-worker is started by the gateway's primary process (keelson gateway --workers), not by hand\n");
  process.exitCode = 2;
} else {
  process.on("message", onMessage);
  send({ type: "keelson:hello" });
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  // The primary is gone (killed, crashed): finish what is in flight and go, never linger.
  process.on("disconnect", () => stop(config?.drainMs ?? 10_000));
}
