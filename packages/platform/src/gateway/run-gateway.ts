// The gateway process's composition root, behind `keelson gateway`: JSON logs to stdout,
// a pid file, and a graceful drain on SIGTERM/SIGINT. Holds no routing logic.
import { randomBytes } from "node:crypto";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import type { DestinationStream, Level } from "pino";
import type { Gateway, GatewayOptions } from "./gateway-server.js";
import { createGateway } from "./gateway-server.js";

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

export interface RunGatewayOptions extends Omit<GatewayOptions, "log"> {
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
  readonly gateway: Gateway;
  readonly pidFile: string;
  /** Resolves once a signal-triggered (or `shutdown()`) drain has finished. */
  readonly stopped: Promise<void>;
  /** Drains and stops as a signal would, then calls `exit(0)`. */
  shutdown(reason?: string): Promise<void>;
}

/**
 * Runs a gateway until SIGTERM or SIGINT: then it stops accepting, lets in-flight requests
 * finish for up to `drainMs`, closes the pools, removes the pid file and exits 0. A second
 * signal during the drain exits 1 at once. A taken port rejects with
 * `KEELSON_ERR_PORT_IN_USE` (logged too), never a stack trace.
 */
export async function runGateway(options: RunGatewayOptions): Promise<RunningGateway> {
  const { drainMs = 10_000, logLevel = "info", logDestination, signals = process, exit = (code: number) => process.exit(code), ...gatewayOptions } = options;
  const logger = pino({ level: logLevel, base: { component: "gateway", pid: process.pid } }, logDestination ?? pino.destination(1));
  const gateway = createGateway({ ...gatewayOptions, log: logger });
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
      exit(1);
      return;
    }
    void shutdown("signal");
  };
  signals.on("SIGTERM", onSignal);
  signals.on("SIGINT", onSignal);

  return { gateway, pidFile, stopped, shutdown };
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
