// The rolling traffic window (admin `GET /stats`) of a multi-worker gateway: each worker keeps its
// own, and the primary sums them into the one snapshot canary analysis and the autoscaler read,
// in the same shape a single-process gateway answers with.
import type { HeldArrivals } from "./held-requests.js";
import type { SeriesStats, StatsSnapshot, TrafficStats } from "./live-stats.js";
import { FAULT_REPLICA_PREFIX } from "./fault-injection.js";
import { LATENCY_BOUNDS_MS, histogramQuantile } from "./live-stats.js";

type Sum = { requests: number; errors: number; latencySum: number; inflight: number; peakInflight: number; histogram: number[] };

/**
 * One snapshot from the workers' snapshots of the same window. Counts, in-flight requests and
 * histograms add up; latency quantiles are estimated again from the summed histogram. The peak
 * in flight is the sum of the workers' peaks (their peaks need not fall in the same second, so it
 * is an upper bound). The window is covered as far as the least covered worker's; with a worker
 * missing (`missing`, or no snapshot at all) part of the traffic is unseen, so not at all.
 * Held arrivals add up per service too: requests for a service at zero that the primary spread
 * over the workers count together toward its activation threshold.
 */
export function mergeStatsSnapshots(snapshots: readonly StatsSnapshot[], windowSeconds: number, options: { missing?: number } = {}): StatsSnapshot {
  const first = snapshots[0];
  const bounds = first?.latencyBoundsMs ?? LATENCY_BOUNDS_MS;
  const series = new Map<string, { service: string; version: string; replica: string; sum: Sum }>();
  const versions = new Map<string, { service: string; version: string; replicas: Set<string>; sum: Sum }>();
  for (const snap of snapshots) {
    for (const s of snap.series) {
      const key = `${s.service}\u0000${s.version}\u0000${s.replica}`;
      let into = series.get(key);
      if (into === undefined) series.set(key, (into = { service: s.service, version: s.version, replica: s.replica, sum: emptySum(bounds.length + 1) }));
      add(into.sum, s);
      const vkey = `${s.service}\u0000${s.version}`;
      let v = versions.get(vkey);
      if (v === undefined) versions.set(vkey, (v = { service: s.service, version: s.version, replicas: new Set(), sum: emptySum(bounds.length + 1) }));
      if (!s.replica.startsWith(FAULT_REPLICA_PREFIX)) v.replicas.add(s.replica);
      add(v.sum, s);
    }
  }
  // Sorted as a single gateway sorts them: by service, version, then replica.
  const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const covered = (options.missing ?? 0) > 0 || snapshots.length === 0 ? 0 : Math.min(windowSeconds, ...snapshots.map((s) => s.coveredSeconds ?? windowSeconds));
  const held = new Map<string, HeldArrivals>();
  for (const snap of snapshots) {
    for (const h of snap.held ?? []) {
      const into = held.get(h.service);
      if (into === undefined) held.set(h.service, { ...h });
      else {
        into.arrivals += h.arrivals;
        // Workers on different tables (one is catching up) may count over different windows: the longest.
        into.windowMs = Math.max(into.windowMs, h.windowMs);
      }
    }
  }
  return {
    windowSeconds,
    coveredSeconds: covered,
    at: new Date().toISOString(),
    latencyBoundsMs: bounds,
    series: [...series.values()]
      .sort((a, b) => order(a.service, b.service) || order(a.version, b.version) || order(a.replica, b.replica))
      .map((s): SeriesStats => ({ service: s.service, version: s.version, replica: s.replica, ...summarize(s.sum, windowSeconds) })),
    versions: [...versions.values()]
      .sort((a, b) => order(a.service, b.service) || order(a.version, b.version))
      .map((v) => ({ service: v.service, version: v.version, replicas: v.replicas.size, ...summarize(v.sum, windowSeconds) })),
    ...(held.size > 0 ? { held: [...held.values()].sort((a, b) => order(a.service, b.service)) } : {}),
  };
}

function emptySum(buckets: number): Sum {
  return { requests: 0, errors: 0, latencySum: 0, inflight: 0, peakInflight: 0, histogram: new Array<number>(buckets).fill(0) };
}

function add(sum: Sum, s: TrafficStats): void {
  sum.requests += s.requests;
  sum.errors += s.errors;
  sum.latencySum += (s.latencyMs?.mean ?? 0) * s.requests;
  sum.inflight += s.inflight;
  sum.peakInflight += s.peakInflight;
  s.histogram.forEach((c, i) => (sum.histogram[i] = (sum.histogram[i] ?? 0) + c));
}

function summarize(sum: Sum, seconds: number): TrafficStats {
  const stats: TrafficStats = {
    requests: sum.requests,
    errors: sum.errors,
    errorRate: sum.requests === 0 ? 0 : sum.errors / sum.requests,
    rps: sum.requests / seconds,
    inflight: sum.inflight,
    peakInflight: sum.peakInflight,
    histogram: sum.histogram,
  };
  if (sum.requests > 0) {
    stats.latencyMs = {
      mean: sum.latencySum / sum.requests,
      p50: histogramQuantile(0.5, sum.histogram),
      p90: histogramQuantile(0.9, sum.histogram),
      p99: histogramQuantile(0.99, sum.histogram),
    };
  }
  return stats;
}
