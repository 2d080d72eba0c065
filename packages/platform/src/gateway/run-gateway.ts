// The gateway process's composition root, behind `keelson gateway`: JSON logs to stdout,
// a pid file, and a graceful drain on SIGTERM/SIGINT; one process, or a primary and its workers.
// Holds no routing logic.
import { randomBytes } from "node:crypto";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import { pino } from "pino";
import type { DestinationStream, Level } from "pino";
import type { GatewayCluster, GatewayClusterOptions } from "./gateway-cluster.js";
import { createGatewayCluster } from "./gateway-cluster.js";
import type { Gateway, GatewayOptions } from "./gateway-server.js";
import { createGateway } from "./gateway-server.js";
import { controlPlaneUrls } from "./routing-watch.js";

/** File name of the pid file inside the gateway's state folder. */
export const GATEWAY_PID_FILE = "gateway.pid.json";

/** What `gateway.pid.json` holds. */
export interface GatewayPidFile {
  pid: number;
  url: string;
  adminUrl: string;
  startedAt: string;
}

/** Where termination signals come from; `process` outside tests. */
export interface SignalSource {
  on(signal: "SIGTERM" | "SIGINT", listener: () => void): unknown;
  off(signal: "SIGTERM" | "SIGINT", listener: () => void): unknown;
}

/**
 * Worker processes when `workers` is not given. One: measured on a 2-core machine, a second
 * worker buys throughput only when the gateway has a core to itself, and costs CPU per request
 * and memory otherwise (docs/adr/0007-gateway-workers.md).
 */
export const DEFAULT_GATEWAY_WORKERS = 1;

/**
 * The number of worker processes `workers` asks for: "auto" is one per CPU this process may run
 * on (its affinity mask, so `taskset` and container CPU sets count).
 */
export function resolveGatewayWorkers(workers: number | "auto" | undefined, cpus: number = availableParallelism()): number {
  if (workers === undefined) return DEFAULT_GATEWAY_WORKERS;
  if (workers === "auto") return Math.max(1, cpus);
  if (!Number.isInteger(workers) || workers < 1) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `workers: expected a whole number of at least 1 or "auto", got ${typeof workers === "string" ? JSON.stringify(workers) : String(workers)}`);
  }
  return workers;
}

export interface RunGatewayOptions extends Omit<GatewayOptions, "log"> {
  /**
   * Processes serving the public port (default `DEFAULT_GATEWAY_WORKERS`). 1 runs the gateway in
   * this process; more fork that many workers (node:cluster) under this process, which then runs
   * the control-plane watch and the admin listener for all of them.
   */
  workers?: number | "auto";
  /** Node flags of the worker processes (default: this process's own). */
  workerExecArgv?: string[];
  /** Restart delay of a dead worker (see `GatewayClusterOptions.restartBackoff`). */
  restartBackoff?: GatewayClusterOptions["restartBackoff"];
  /** How long a signal waits for in-flight requests before cutting them (default 10 s). */
  drainMs?: number;
  /** Default "info". */
  logLevel?: Level;
  /** Log destination; stdout by default. */
  logDestination?: DestinationStream;
  signals?: SignalSource;
  /** Ends the process; `process.exit` by default. */
  exit?: (code: number) => void;
}

export interface RunningGateway {
  /** The in-process gateway (one worker), or the primary's handle on its workers. */
  readonly gateway: Gateway | GatewayCluster;
  readonly pidFile: string;
  /** Resolves once a signal-triggered (or `shutdown()`) drain has finished. */
  readonly stopped: Promise<void>;
  /** Drains and stops as a signal would, then calls `exit(0)`. */
  shutdown(reason?: string): Promise<void>;
}

/**
 * Runs a gateway until SIGTERM or SIGINT: then it stops accepting, lets in-flight requests
 * finish for up to `drainMs` (in every worker), closes the pools, removes the pid file and exits
 * 0. A second signal during the drain exits 1 at once (workers are killed). A taken port rejects
 * with `KEELSON_ERR_PORT_IN_USE` (logged too), never a stack trace.
 */
export async function runGateway(options: RunGatewayOptions): Promise<RunningGateway> {
  const {
    drainMs = 10_000,
    logLevel = "info",
    logDestination,
    signals = process,
    exit = (code: number) => process.exit(code),
    workers: workersOption,
    workerExecArgv,
    restartBackoff,
    ...gatewayOptions
  } = options;
  const workers = resolveGatewayWorkers(workersOption);
  // Spans go to the control plane's OTLP receiver unless told otherwise; cluster workers get this with their config.
  if (gatewayOptions.tracing === undefined && gatewayOptions.controlPlaneUrl !== undefined) {
    gatewayOptions.tracing = {
      endpoint: tracesEndpoint(gatewayOptions.controlPlaneUrl),
      ...(gatewayOptions.credentialFile === undefined ? {} : { credentialFile: gatewayOptions.credentialFile }),
    };
  }
  const logger = pino({ level: logLevel, base: { component: "gateway", pid: process.pid } }, logDestination ?? pino.destination(1));
  const gateway: Gateway | GatewayCluster =
    workers === 1
      ? createGateway({ ...gatewayOptions, log: logger })
      : createGatewayCluster({
          ...gatewayOptions,
          workers,
          log: logger,
          workerLogLevel: logLevel,
          // Workers write to the stdout they inherit, unless logs go somewhere else.
          workerLogLine: logDestination === undefined ? undefined : (line) => logDestination.write(`${line}\n`),
          workerDrainMs: drainMs,
          ...(workerExecArgv === undefined ? {} : { workerExecArgv }),
          ...(restartBackoff === undefined ? {} : { restartBackoff }),
        });
  const pidFile = join(options.stateDir, GATEWAY_PID_FILE);

  try {
    await gateway.start();
  } catch (err) {
    logger.error({ code: (err as { code?: unknown }).code, err: err instanceof Error ? err.message : String(err) }, "gateway failed to start");
    throw err;
  }
  const info: GatewayPidFile = { pid: process.pid, url: gateway.url, adminUrl: gateway.adminUrl, startedAt: new Date().toISOString() };
  await writeAtomically(pidFile, `${JSON.stringify(info, undefined, 2)}\n`);

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  let shuttingDown: Promise<void> | undefined;

  const shutdown = (reason = "shutdown"): Promise<void> => {
    if (shuttingDown !== undefined) return shuttingDown;
    logger.info({ reason, drainMs }, "draining in-flight requests before exit");
    shuttingDown = (async () => {
      let code = 0;
      try {
        await gateway.stop({ drainMs });
        await removeOwnPidFile(pidFile);
      } catch (err) {
        code = 1;
        logger.error({ err }, "gateway did not stop cleanly");
      }
      signals.off("SIGTERM", onSignal);
      signals.off("SIGINT", onSignal);
      logger.info({ code }, "gateway exiting");
      logger.flush();
      resolveStopped();
      exit(code);
    })();
    return shuttingDown;
  };

  const onSignal = () => {
    if (shuttingDown !== undefined) {
      logger.warn({}, "second signal during drain: exiting now");
      logger.flush();
      if ("kill" in gateway) gateway.kill();
      exit(1);
      return;
    }
    void shutdown("signal");
  };
  signals.on("SIGTERM", onSignal);
  signals.on("SIGINT", onSignal);

  return { gateway, pidFile, stopped, shutdown };
}

/** The OTLP/HTTP traces URL of a control plane. */
export function tracesEndpoint(controlPlaneUrl: string): string {
  // With several instances, spans go to the first: any instance forwards them to the leader.
  return `${controlPlaneUrls(controlPlaneUrl)[0]}/v1/traces`;
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** Removes the pid file only if it still names this process (a newer gateway may own it). */
async function removeOwnPidFile(file: string): Promise<void> {
  try {
    const content = JSON.parse(await readFile(file, "utf8")) as { pid?: unknown };
    if (content.pid === process.pid) await rm(file, { force: true });
  } catch {
    // Already gone or unreadable: nothing of ours to remove.
  }
}
