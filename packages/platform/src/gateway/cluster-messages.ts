// The IPC messages between a multi-worker gateway's primary process and its workers. Sent with
// node's "advanced" serialization (structured clone), so tables and metric values pass as they are.
import type { RoutingTable } from "@keelson/protocol";
import type { Level } from "pino";
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { GatewayOptions, GatewayState } from "./gateway-server.js";
import type { StatsSnapshot } from "./live-stats.js";

/** A registry's `getMetricsAsJSON()` output. */
export type MetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>;

/** What a worker needs to serve: the gateway's options minus what only the primary runs. */
export interface WorkerConfig {
  gateway: Omit<GatewayOptions, "log" | "controlPlaneUrl" | "watch" | "adminHost" | "adminPort" | "activator">;
  logLevel: Level;
  /** How long a worker drains when it is signalled directly or loses its primary. */
  drainMs: number;
  /** Slot number (0..n-1), for logs; a restarted worker takes over its predecessor's slot. */
  slot: number;
}

/**
 * Primary to worker. `seq` numbers tables in the order the primary applied them, so the primary
 * knows which table every worker serves.
 */
export type ToWorker =
  | { type: "keelson:config"; config: WorkerConfig; table: RoutingTable | undefined; seq: number }
  | { type: "keelson:table"; table: RoutingTable; seq: number }
  | { type: "keelson:ask"; id: number; question: WorkerQuestion }
  | { type: "keelson:drain"; drainMs: number };

/** What the primary's admin listener asks every worker for. */
export type WorkerQuestion = { what: "metrics" } | { what: "state" } | { what: "stats"; windowSeconds: number };

/** The answer to each question. */
export interface WorkerAnswers {
  metrics: MetricsJson;
  state: GatewayState;
  stats: StatsSnapshot;
}

/**
 * Worker to primary. A worker says hello once it listens for messages: node drops IPC messages
 * that arrive before a listener exists, and an ES module worker attaches its listener late.
 */
export type FromWorker =
  | { type: "keelson:hello" }
  | { type: "keelson:listening"; url: string; seq: number }
  | { type: "keelson:start-failed"; code: string | undefined; message: string }
  | { type: "keelson:table-applied"; seq: number }
  | { type: "keelson:answer"; id: number; answer: WorkerAnswers[keyof WorkerAnswers] }
  /**
   * A hold episode of a service scaled to zero began (`holding`) or ended in this worker: the
   * primary, which holds the control-plane connection, asks for a replica once for all workers.
   */
  | { type: "keelson:activation"; service: string; holding: boolean }
  /** Last words of a worker that stops on purpose: its final counts. */
  | { type: "keelson:stopped"; metrics: MetricsJson };

/** Whether an IPC message is one of ours (node and libraries send their own on the same channel). */
export function isClusterMessage(msg: unknown): boolean {
  if (typeof msg !== "object" || msg === null) return false;
  const type = (msg as { type?: unknown }).type;
  return typeof type === "string" && type.startsWith("keelson:");
}
