// Faults that chaos experiments (`keelson chaos latency|error`) ask the gateway to inject into a
// share of a service's requests: a delay before the request goes upstream, an error answered in
// the service's stead, or both. Compiled once per routing table; the hot path pays one check for
// a service without faults.
import type { Fault, TrafficSplit } from "@keelson/protocol";
import type { GatewayMetrics, RequestCell } from "./gateway-metrics.js";
import type { LiveSeries, LiveStats } from "./live-stats.js";
import type { GatewayLogger } from "./logger.js";
import type { Random } from "./random.js";
import { splitLabels } from "./traffic-split.js";

/** Response header naming the fault that answered a request (`x-keelson-fault: <fault id>`). */
export const FAULT_HEADER = "x-keelson-fault";

/**
 * Replica label prefix of the requests a fault answered itself (abort, or a deadline that ran out
 * during the injected delay): they never reached a replica, yet count for their version.
 */
export const FAULT_REPLICA_PREFIX = "fault:";

/**
 * One fault of a service, ready for the hot path. Requests it answers itself are counted under
 * replica `fault:<id>` of the version they were bound for, in the live stats and in the metrics
 * (series and cells are looked up once per version and table).
 */
export class CompiledFault {
  /** `fault:<id>`. */
  readonly replica: string;
  private readonly series = new Map<string, LiveSeries>();
  private readonly cells = new Map<string, Array<RequestCell | undefined>>();

  constructor(
    readonly id: string,
    /** The release the fault applies to (a split label resolved); undefined: every release. */
    readonly release: string | undefined,
    /** Share of requests affected, (0, 1]. */
    readonly share: number,
    /** Delay before the request goes upstream; 0: none. */
    readonly delayMs: number,
    /** Status answered instead of going upstream; undefined: none. */
    readonly abortStatus: number | undefined,
    /** Wall-clock time (epoch ms) from which the fault no longer applies. */
    readonly untilMs: number,
    private readonly service: string,
    private readonly stats: LiveStats,
    private readonly metrics: GatewayMetrics,
  ) {
    this.replica = `${FAULT_REPLICA_PREFIX}${id}`;
  }

  /** The live series of the requests this fault answered for `release`. */
  seriesOf(release: string): LiveSeries {
    let s = this.series.get(release);
    // A new table retires series no endpoint owns; asking LiveStats again revives (or recreates) it.
    if (s === undefined || s.retired) {
      s = this.stats.series(this.service, release, this.replica);
      this.series.set(release, s);
    }
    return s;
  }

  /** The metrics cell of the requests this fault answered for `release` on route `routeId`. */
  cellOf(release: string, routeId: number): RequestCell {
    let byRoute = this.cells.get(release);
    if (byRoute === undefined) this.cells.set(release, (byRoute = []));
    return (byRoute[routeId] ??= this.metrics.cell(this.service, release, routeId, this.replica));
  }
}

/** The faults that hit one request: the delays of all of them added up, and the first that aborts. */
export interface FaultHit {
  /** Total delay (ms) before the request goes upstream, or before the abort is answered. */
  delayMs: number;
  /** The fault whose error is answered; undefined: the request goes upstream after the delay. */
  abort: CompiledFault | undefined;
  /** The fault the request is attributed to when it never reaches a replica: `abort`, else the first delaying one. */
  cause: CompiledFault;
}

/**
 * The faults that hit a request bound for `release`: each fault still active (`wallNow` before
 * its end) whose version matches draws once against its share. Undefined (no allocation) when
 * none hits.
 */
export function drawFaults(faults: readonly CompiledFault[], release: string, wallNow: number, random: Random): FaultHit | undefined {
  let hit: FaultHit | undefined;
  for (let i = 0; i < faults.length; i++) {
    const f = faults[i]!;
    if (wallNow >= f.untilMs) continue;
    if (f.release !== undefined && f.release !== release) continue;
    if (random() >= f.share) continue;
    if (hit === undefined) hit = { delayMs: 0, abort: undefined, cause: f };
    hit.delayMs += f.delayMs;
    if (hit.abort === undefined && f.abortStatus !== undefined) hit.abort = hit.cause = f;
  }
  return hit;
}

export interface CompileFaultsOptions {
  service: string;
  faults: readonly Fault[] | undefined;
  /** The service's split: a fault's `version` may name one of its labels. */
  split: TrafficSplit | undefined;
  stats: LiveStats;
  metrics: GatewayMetrics;
  /** Wall clock (epoch ms): faults already over are dropped here. */
  wallNow: number;
  log: GatewayLogger;
}

/**
 * The faults of a service for the hot path; undefined when it has none still active. A `version`
 * is a split label when the split has that label (labels win, as with `x-keelson-version`), else
 * a release id. A fault whose `until` is not a time is ignored, with a warning.
 */
export function compileFaults(options: CompileFaultsOptions): CompiledFault[] | undefined {
  const { faults, service } = options;
  if (faults === undefined || faults.length === 0) return undefined;
  const labels = splitLabels(options.split);
  const out: CompiledFault[] = [];
  for (const f of faults) {
    const untilMs = Date.parse(f.until);
    if (Number.isNaN(untilMs)) {
      options.log.warn({ service, fault: f.id, until: f.until }, "ignoring a fault whose end time is not a time");
      continue;
    }
    if (untilMs <= options.wallNow) continue;
    const release = f.version === undefined ? undefined : (labels.get(f.version) ?? f.version);
    out.push(new CompiledFault(f.id, release, f.share, f.delayMs ?? 0, f.abortStatus, untilMs, service, options.stats, options.metrics));
  }
  return out.length === 0 ? undefined : out;
}
