// The LoadReader of a running project: the gateways' live traffic window (admin
// `GET /stats?window=<s>`) per replica, summed over gateways, with readiness and CPU from the
// runtime driver. Per-replica concurrency comes from Little's law, the service's p95 from the
// summed latency histograms. Any gateway that does not answer makes the whole read undefined:
// part of the traffic would look like less load, so the autoscaler holds instead. For the same
// reason a gateway that started within the window (a restart) marks the load as partly covered,
// which may scale up on what was seen but not down. Requests held for a service at zero are
// summed over gateways too (`heldArrivals`): they wake it even when no one gateway process
// holds enough of them to ask for a replica itself.
import type { StatsSnapshot } from "../gateway/index.js";
import type { ReplicaInfo } from "../runtime/index.js";
import type { LoadReader } from "./autoscaler.js";
import type { ReplicaLoad, ServiceLoad } from "./hpa.js";

export interface GatewayLoadReaderOptions {
  /** Admin base URLs of the gateways, e.g. ["http://127.0.0.1:7071"] (read at every look). */
  statsUrls: () => string[];
  /** The runtime driver's replicas (`driver.list()`). */
  replicas: () => ReplicaInfo[];
  /** Only replicas of this project (the driver may run several). */
  project?: string;
  fetch?: typeof fetch;
  /**
   * Per gateway request (default 3,000 ms: longer than a multi-worker gateway's 2 s ask of its
   * workers, so a silent worker reads as a partly covered window rather than no answer).
   */
  timeoutMs?: number;
  /** Wall clock in ms, the clock of the runtime's `startedAt` (default Date.now). */
  now?: () => number;
  /** Reads within this many ms of a fetch (same window and gateways) reuse its snapshots (default 500). */
  shareMs?: number;
}

/** Replica states that still belong to the service; stopping, stopped and failed replicas are left out (HPA ignores deleted and failed pods). */
const LIVE_STATES: ReadonlySet<string> = new Set(["starting", "ready", "unready", "backoff"]);

/**
 * A LoadReader over the gateways' admin endpoints.
 *
 * @example
 * const load = createGatewayLoadReader({ statsUrls: () => [gateway.adminUrl], replicas: () => driver.list(), project: "shop" });
 * await load.read("orders", 10_000); // { service: "orders", replicas: [...], p95Ms: 41.2, requests: 1830, ... }
 */
export function createGatewayLoadReader(options: GatewayLoadReaderOptions): LoadReader {
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 3_000;
  const now = options.now ?? Date.now;
  // One snapshot holds every service: the looks of one round (same window, same gateways) share
  // one fetch per gateway instead of asking again for each autoscaled service.
  const shareMs = options.shareMs ?? 500;
  let shared: { key: string; atMs: number; snapshots: Promise<Array<StatsSnapshot | undefined>> } | undefined;
  return {
    async read(service, windowMs) {
      const urls = options.statsUrls();
      if (urls.length === 0) return undefined;
      const seconds = Math.max(1, Math.min(60, Math.round(windowMs / 1_000)));
      const key = `${seconds} ${urls.join(" ")}`;
      const t = now();
      if (shared === undefined || shared.key !== key || t - shared.atMs > shareMs) {
        shared = { key, atMs: t, snapshots: Promise.all(urls.map((url) => readStats(doFetch, url, seconds, timeoutMs))) };
      }
      const snapshots = await shared.snapshots;
      if (snapshots.some((s) => s === undefined)) return undefined;
      return serviceLoadFromSnapshots({ service, snapshots: snapshots as StatsSnapshot[], replicas: options.replicas(), atMs: now(), ...(options.project === undefined ? {} : { project: options.project }) });
    },
  };
}

async function readStats(doFetch: typeof fetch, base: string, seconds: number, timeoutMs: number): Promise<StatsSnapshot | undefined> {
  try {
    const res = await doFetch(`${base.replace(/\/+$/, "")}/stats?window=${seconds}`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    const body = (await res.json()) as Partial<StatsSnapshot> | null;
    if (body === null || typeof body !== "object" || !Array.isArray(body.series) || typeof body.windowSeconds !== "number" || !Array.isArray(body.latencyBoundsMs)) return undefined;
    return body as StatsSnapshot;
  } catch {
    return undefined;
  }
}

interface ReplicaSum {
  requests: number;
  latencySumMs: number;
}

/**
 * One service's load from the snapshots of all gateways (same window) and the runtime's
 * replicas. A replica's mean concurrency is its requests × mean latency / window (Little's
 * law). A replica younger than the window is still divided by the whole window: HPA multiplies
 * the average by the replicas counted, so the values must add up to the service's mean
 * concurrency over the window. Measuring a new replica over its age alone would count the load
 * it took over twice (the older replicas still carry it for the rest of the window) and scale
 * up again right after a scale-up. A live replica with no series in any gateway (not in the
 * routing table yet) has no inflight or rps: it is missing, as HPA counts a pod without metrics.
 * The window is covered as far as the least covered gateway's (`coveredSeconds`); when that is
 * less than the window, `coveredMs` says so and the values are still divided by the whole
 * window (they read low, which `decide` allows to scale up but not down). The service's held
 * arrivals (`held`, over its activation window) are summed over the gateways.
 */
export function serviceLoadFromSnapshots(input: { service: string; snapshots: readonly StatsSnapshot[]; replicas: readonly ReplicaInfo[]; atMs: number; project?: string }): ServiceLoad {
  const { service, snapshots, atMs } = input;
  const windowSeconds = snapshots[0]?.windowSeconds ?? 1;
  const windowMs = windowSeconds * 1_000;
  const bounds = snapshots[0]?.latencyBoundsMs ?? [];
  const byReplica = new Map<string, ReplicaSum>();
  let requests = 0;
  let histogram: number[] | undefined = new Array<number>(bounds.length + 1).fill(0);
  for (const snap of snapshots) {
    const sameBounds = snap.latencyBoundsMs.length === bounds.length && snap.latencyBoundsMs.every((b, i) => b === bounds[i]);
    for (const s of snap.series) {
      if (s.service !== service) continue;
      const n = finite(s.requests);
      let sum = byReplica.get(s.replica);
      if (sum === undefined) byReplica.set(s.replica, (sum = { requests: 0, latencySumMs: 0 }));
      sum.requests += n;
      sum.latencySumMs += n * finite(s.latencyMs?.mean);
      requests += n;
      // Gateways of different versions might bucket differently; then no p95 rather than a wrong one.
      if (!sameBounds || !Array.isArray(s.histogram) || s.histogram.length !== bounds.length + 1) histogram = undefined;
      else if (histogram !== undefined) for (let b = 0; b < s.histogram.length; b++) histogram[b]! += finite(s.histogram[b]);
    }
  }
  const replicas: ReplicaLoad[] = [];
  for (const info of input.replicas) {
    if (info.spec.service !== service || (input.project !== undefined && info.spec.project !== input.project) || !LIVE_STATES.has(info.state)) continue;
    const startedAtMs = info.startedAt === undefined ? undefined : Date.parse(info.startedAt);
    const load: ReplicaLoad = { replica: info.spec.id, ready: info.state === "ready" };
    if (startedAtMs !== undefined && Number.isFinite(startedAtMs)) load.startedAtMs = startedAtMs;
    const sum = byReplica.get(info.spec.id);
    if (sum !== undefined) {
      load.inflight = sum.latencySumMs / windowMs;
      load.rps = sum.requests / windowSeconds;
    }
    if (info.usage !== undefined && Number.isFinite(info.usage.cpuPercent)) load.cpuPercent = info.usage.cpuPercent;
    replicas.push(load);
  }
  const result: ServiceLoad = { service, atMs, windowMs, replicas, requests };
  if (requests > 0 && histogram !== undefined) result.p95Ms = quantileOfHistogram(0.95, histogram, bounds);
  const covered = Math.min(...snapshots.map((s) => coveredSecondsOf(s, windowSeconds)));
  if (covered < windowSeconds) result.coveredMs = Math.round(covered * 1_000);
  let held = 0;
  for (const snap of snapshots) {
    // JSON from another process: checked, not trusted.
    const entries: unknown = snap.held;
    if (!Array.isArray(entries)) continue;
    for (const h of entries as unknown[]) {
      if (typeof h === "object" && h !== null && (h as { service?: unknown }).service === service) held += finite((h as { arrivals?: unknown }).arrivals);
    }
  }
  if (held > 0) result.heldArrivals = held;
  return result;
}

/** A snapshot's covered seconds within 0..window; absent (an older gateway) is the whole window, anything else not a number none of it. */
function coveredSecondsOf(snapshot: StatsSnapshot, windowSeconds: number): number {
  const c: unknown = snapshot.coveredSeconds;
  if (c === undefined) return windowSeconds;
  return typeof c === "number" && Number.isFinite(c) ? Math.max(0, Math.min(windowSeconds, c)) : 0;
}

function finite(x: unknown): number {
  return typeof x === "number" && Number.isFinite(x) && x >= 0 ? x : 0;
}

/**
 * The q-quantile of bucket counts over `bounds` (the last bucket is open), interpolated
 * linearly inside its bucket as Prometheus' histogram_quantile; the open bucket answers with
 * the highest bound.
 *
 * @example
 * quantileOfHistogram(0.95, [0, 10, 10, 0], [10, 20, 40]); // 38: rank 19 of 20, 9/10 into the 20-40 bucket
 */
export function quantileOfHistogram(q: number, counts: readonly number[], bounds: readonly number[]): number {
  let total = 0;
  for (const c of counts) total += c;
  const top = bounds[bounds.length - 1] ?? 0;
  if (total === 0) return 0;
  const rank = q * total;
  let seen = 0;
  for (let b = 0; b < counts.length; b++) {
    const c = counts[b]!;
    if (c > 0 && seen + c >= rank) {
      if (b >= bounds.length) return top;
      const lower = b === 0 ? 0 : bounds[b - 1]!;
      return lower + (bounds[b]! - lower) * ((rank - seen) / c);
    }
    seen += c;
  }
  return top;
}
