// The in-process rolling window of traffic per service, version (release) and replica: 60
// one-second buckets of attempts, 5xx errors and a latency histogram, plus the requests in
// flight. Canary analysis and the autoscaler read it through `snapshot()` (admin `GET /stats`).
import { FAULT_REPLICA_PREFIX } from "./fault-injection.js";
import type { HeldArrivals } from "./held-requests.js";
import { RollingWindow } from "./rolling-window.js";

/** Upper bounds (ms) of the latency histogram; a last bucket takes everything slower. */
export const LATENCY_BOUNDS_MS: readonly number[] = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

const REQUESTS = 0;
const ERRORS = 1;
const LATENCY_SUM = 2;
const PEAK_INFLIGHT = 3;
const HISTOGRAM = 4;
const FIELDS = HISTOGRAM + LATENCY_BOUNDS_MS.length + 1;
export const WINDOW_SECONDS = 60;

/** The window of one service/version/replica; the hot path calls `begin` and `end` per attempt. */
export class LiveSeries {
  inflight = 0;
  lastActive: number;
  /** Set once its replica left the routing table; pruned when idle for a whole window. */
  retired = false;
  readonly window = new RollingWindow({ buckets: WINDOW_SECONDS, bucketMs: 1_000, fields: FIELDS });

  constructor(
    readonly service: string,
    readonly version: string,
    readonly replica: string,
    now: number,
  ) {
    this.lastActive = now;
  }

  begin(now: number): void {
    const o = this.window.offset(now);
    const data = this.window.data;
    if (++this.inflight > data[o + PEAK_INFLIGHT]!) data[o + PEAK_INFLIGHT] = this.inflight;
  }

  /** One attempt finished after `latencyMs`; `error` for a 5xx or an upstream failure. */
  end(now: number, latencyMs: number, error: boolean): void {
    if (this.inflight > 0) this.inflight--;
    this.lastActive = now;
    const o = this.window.offset(now);
    const data = this.window.data;
    data[o + REQUESTS]!++;
    if (error) data[o + ERRORS]!++;
    data[o + LATENCY_SUM]! += latencyMs;
    let b = 0;
    while (b < LATENCY_BOUNDS_MS.length && latencyMs > LATENCY_BOUNDS_MS[b]!) b++;
    data[o + HISTOGRAM + b]!++;
  }
}

/** Traffic of one series (or a sum of several) over the last `windowSeconds`. */
export interface TrafficStats {
  requests: number;
  /** 5xx answers and upstream failures (resets, timeouts). */
  errors: number;
  errorRate: number;
  /** Requests per second over the window. */
  rps: number;
  /** Estimated from the histogram (linear within a bucket, as Prometheus' histogram_quantile); absent without requests. */
  latencyMs?: { mean: number; p50: number; p90: number; p99: number };
  inflight: number;
  /** Highest in-flight count seen in any second of the window. */
  peakInflight: number;
  /** Counts per bucket of LATENCY_BOUNDS_MS (last: slower than all), so windows of several gateways can be summed. */
  histogram: number[];
}

export interface SeriesStats extends TrafficStats {
  service: string;
  version: string;
  replica: string;
}

export interface StatsSnapshot {
  windowSeconds: number;
  /**
   * Seconds of the window the gateway was counting: less than `windowSeconds` when it started
   * within the window (a restart), so the counts miss what came before. Absent from gateways
   * that predate it (read as the whole window).
   */
  coveredSeconds?: number;
  /** Wall-clock time of the snapshot. */
  at: string;
  latencyBoundsMs: readonly number[];
  /**
   * Per service, version and replica. Counts are attempts as the replicas saw them (a retried
   * request counts twice); replica `fault:<id>` holds the requests an injected fault answered itself.
   */
  series: SeriesStats[];
  /** The same summed per service and version (injected faults included): what canary analysis compares. `replicas` counts real replicas only. */
  versions: Array<TrafficStats & { service: string; version: string; replicas: number }>;
  /**
   * Services scaled to zero that requests arrived for (held, or refused at the cap), counted
   * over each one's activation window (`windowMs`, not `windowSeconds`), since it last had an
   * endpoint. They never reach a replica, so no series counts them; the autoscaler adds these
   * up over gateways (and a multi-worker gateway over its workers) to wake the service. Absent
   * when there are none, and from gateways that predate it.
   */
  held?: HeldArrivals[];
}

export interface LiveStatsOptions {
  /** Monotonic clock in ms. */
  now: () => number;
  /** The held arrivals to report with each snapshot (the gateway's HeldRequests). */
  heldArrivals?: () => HeldArrivals[];
}

export class LiveStats {
  private readonly all = new Map<string, LiveSeries>();
  /** When counting began (the options' clock). */
  private readonly startedAt: number;

  constructor(private readonly options: LiveStatsOptions) {
    this.startedAt = options.now();
  }

  /** The series of a replica (created on first use; one object per service/version/replica). */
  series(service: string, version: string, replica: string): LiveSeries {
    const key = `${service}\u0000${version}\u0000${replica}`;
    let s = this.all.get(key);
    if (s === undefined) {
      s = new LiveSeries(service, version, replica, this.options.now());
      this.all.set(key, s);
    }
    s.retired = false;
    return s;
  }

  /** Totals over the last `windowSeconds` (1-60, default 60). */
  snapshot(windowSeconds = WINDOW_SECONDS): StatsSnapshot {
    const span = Math.max(1, Math.min(WINDOW_SECONDS, Math.floor(windowSeconds)));
    const now = this.options.now();
    const series: SeriesStats[] = [];
    const versions = new Map<string, { service: string; version: string; replicas: number; sums: Float64Array; inflight: number; peak: number }>();
    for (const [key, s] of this.all) {
      if (s.retired && s.inflight === 0 && now - s.lastActive > WINDOW_SECONDS * 1_000) {
        this.all.delete(key);
        continue;
      }
      const sums = new Float64Array(FIELDS);
      let peak = 0;
      s.window.forEach(now, span, (o) => {
        for (let f = 0; f < FIELDS; f++) if (f !== PEAK_INFLIGHT) sums[f]! += s.window.data[o + f]!;
        peak = Math.max(peak, s.window.data[o + PEAK_INFLIGHT]!);
      });
      series.push({ service: s.service, version: s.version, replica: s.replica, ...summarize(sums, span, s.inflight, peak) });
      const vkey = `${s.service}\u0000${s.version}`;
      let v = versions.get(vkey);
      if (v === undefined) versions.set(vkey, (v = { service: s.service, version: s.version, replicas: 0, sums: new Float64Array(FIELDS), inflight: 0, peak: 0 }));
      if (!s.replica.startsWith(FAULT_REPLICA_PREFIX)) v.replicas++;
      v.inflight += s.inflight;
      v.peak += peak;
      for (let f = 0; f < FIELDS; f++) v.sums[f]! += sums[f]!;
    }
    const byName = (a: { service: string; version: string }, b: { service: string; version: string }) =>
      a.service < b.service ? -1 : a.service > b.service ? 1 : a.version < b.version ? -1 : a.version > b.version ? 1 : 0;
    series.sort((a, b) => byName(a, b) || (a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : 0));
    const held = this.options.heldArrivals?.() ?? [];
    return {
      windowSeconds: span,
      coveredSeconds: Math.round(Math.min(span, Math.max(0, (now - this.startedAt) / 1_000)) * 1_000) / 1_000,
      at: new Date().toISOString(),
      latencyBoundsMs: LATENCY_BOUNDS_MS,
      series,
      versions: [...versions.values()]
        .map((v) => ({ service: v.service, version: v.version, replicas: v.replicas, ...summarize(v.sums, span, v.inflight, v.peak) }))
        .sort(byName),
      ...(held.length > 0 ? { held } : {}),
    };
  }

  /**
   * Marks the series of replicas no longer in the routing table (kept for one more window) and
   * drops those retired and idle for longer, so a gateway that nobody asks for stats does not
   * pile up a series per replica it ever saw.
   */
  retire(keep: ReadonlySet<LiveSeries>): void {
    const now = this.options.now();
    for (const [key, s] of this.all) {
      if (keep.has(s)) continue;
      if (s.retired && s.inflight === 0 && now - s.lastActive > WINDOW_SECONDS * 1_000) this.all.delete(key);
      else s.retired = true;
    }
  }
}

function summarize(sums: Float64Array, seconds: number, inflight: number, peakInflight: number): TrafficStats {
  const requests = sums[REQUESTS]!;
  const errors = sums[ERRORS]!;
  const histogram = Array.from(sums.subarray(HISTOGRAM, HISTOGRAM + LATENCY_BOUNDS_MS.length + 1));
  const stats: TrafficStats = {
    requests,
    errors,
    errorRate: requests === 0 ? 0 : errors / requests,
    rps: requests / seconds,
    inflight,
    peakInflight,
    histogram,
  };
  if (requests > 0) {
    stats.latencyMs = {
      mean: sums[LATENCY_SUM]! / requests,
      p50: histogramQuantile(0.5, histogram),
      p90: histogramQuantile(0.9, histogram),
      p99: histogramQuantile(0.99, histogram),
    };
  }
  return stats;
}

/**
 * The q-quantile of a histogram over LATENCY_BOUNDS_MS, interpolated linearly inside its
 * bucket; the open last bucket answers with the highest bound.
 */
export function histogramQuantile(q: number, counts: readonly number[]): number {
  let total = 0;
  for (const c of counts) total += c;
  if (total === 0) return 0;
  const rank = q * total;
  let seen = 0;
  for (let b = 0; b < counts.length; b++) {
    const c = counts[b]!;
    if (seen + c >= rank && c > 0) {
      if (b >= LATENCY_BOUNDS_MS.length) return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]!;
      const lower = b === 0 ? 0 : LATENCY_BOUNDS_MS[b - 1]!;
      const upper = LATENCY_BOUNDS_MS[b]!;
      return lower + (upper - lower) * ((rank - seen) / c);
    }
    seen += c;
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]!;
}
