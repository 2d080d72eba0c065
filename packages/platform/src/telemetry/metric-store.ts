// The control plane's built-in time-series store for the gateway's RED metrics: ingests scrapes,
// keeps counter increases at 10 s resolution for 24 h and per minute for 7 days in bounded memory,
// and answers PromQL-like queries (rate, error ratio, histogram quantiles) grouped by label.
import { KeelsonError } from "@keelson/protocol";
import { parseDuration } from "../manifest/index.js";
import { bucketQuantile, fractionAbove } from "./histogram-buckets.js";
import type { Bucket } from "./histogram-buckets.js";
import { parsePrometheusText, parseValue } from "./prometheus-text.js";
import type { MetricFamily } from "./prometheus-text.js";

/** Milliseconds, or a duration string such as "30s", "5m", "1h". */
export type MetricWindow = number | string;

/** A metric family the store keeps; families it does not define are ignored on ingest. */
export interface MetricDefinition {
  /** The family name as exposed: a counter's full name (`…_total`), a histogram's base name. */
  name: string;
  type: "counter" | "gauge" | "histogram";
  /** Labels it may carry, besides `instance` (the scrape target) and a histogram bucket's `le`. */
  labels: readonly string[];
}

/** Requests the gateway finished: `{service, version, route, replica, code_class}`. */
export const GATEWAY_REQUESTS = "keelson_gateway_requests_total";
/** Request duration histogram: `{service, version, route}`. */
export const GATEWAY_REQUEST_DURATION = "keelson_gateway_request_duration_seconds";
/** Requests in flight (a gauge), when the gateway exposes it: `{service, version, replica}`. */
export const GATEWAY_REQUESTS_IN_FLIGHT = "keelson_gateway_requests_in_flight";

/** Requests a route's feature flag decided: `{route, flag, variant, outcome}`, outcome ok, error or abandoned. */
export const GATEWAY_FLAG_REQUESTS = "keelson_gateway_flag_requests_total";
/** Their duration histogram: `{route, flag, variant}`. */
export const GATEWAY_FLAG_REQUEST_DURATION = "keelson_gateway_flag_request_duration_seconds";

/** The gateway's RED metrics, also per flag variant; labels a gateway does not (yet) send simply read as empty. */
export const GATEWAY_METRICS: readonly MetricDefinition[] = Object.freeze([
  { name: GATEWAY_REQUESTS, type: "counter", labels: ["service", "version", "route", "replica", "code_class"] },
  { name: GATEWAY_REQUEST_DURATION, type: "histogram", labels: ["service", "version", "route"] },
  { name: GATEWAY_REQUESTS_IN_FLIGHT, type: "gauge", labels: ["service", "version", "replica"] },
  { name: GATEWAY_FLAG_REQUESTS, type: "counter", labels: ["route", "flag", "variant", "outcome"] },
  { name: GATEWAY_FLAG_REQUEST_DURATION, type: "histogram", labels: ["route", "flag", "variant"] },
]);

/** One resolution: a value per `stepMs`, kept for `spanMs`. */
export interface RetentionTier {
  stepMs: number;
  spanMs: number;
}

/** 10 s for 24 hours, then 1 minute for 7 days. */
export const DEFAULT_RETENTION: readonly RetentionTier[] = Object.freeze([
  { stepMs: 10_000, spanMs: 24 * 3_600_000 },
  { stepMs: 60_000, spanMs: 7 * 24 * 3_600_000 },
]);

/** Series the store keeps at most; new series beyond it are dropped and counted. */
export const DEFAULT_MAX_SERIES = 20_000;

export interface MetricStoreOptions {
  /** Families to keep (default: the gateway's RED metrics). */
  metrics?: readonly MetricDefinition[];
  /** Resolutions, finest first (default `DEFAULT_RETENTION`). */
  retention?: readonly RetentionTier[];
  maxSeries?: number;
  /** Clock for queries without `at` (default `Date.now`). */
  now?: () => number;
}

export interface SelectOptions {
  /** How far back from `at` the query looks. */
  window: MetricWindow;
  /** Labels to group by; without it, everything matching sums to one result. */
  by?: readonly string[];
  /** Exact label matches; a label a series lacks reads as "". */
  where?: Readonly<Record<string, string>>;
  /** Evaluation time in ms since the epoch (default now). */
  at?: number;
  /** Which steps a window covers; see `WindowSteps`. */
  steps?: WindowSteps;
}

/**
 * How a window maps onto the store's steps (10 s, or 1 min past 24 h), which matters when the
 * window is not a whole number of steps or `at` is not on a step boundary:
 *  - "nearest" (the default): the nearest whole number of steps (at least one), ending at the
 *    newest scrape: what a rate wants (7 s reads as one step, 95 s as ten).
 *  - "cover": every step from the one holding the window's start through the one holding `at`,
 *    so every scrape taken since the start counts: what a count since a moment wants. Whole steps
 *    still, so up to one step before the window's start is included.
 */
export type WindowSteps = "nearest" | "cover";

/** One result per group: the `by` labels (empty values left out, as in PromQL) and the value. */
export interface VectorSample {
  labels: Record<string, string>;
  value: number;
}

/** Which of the gateway's requests a RED query looks at. */
export interface RedSelector {
  service?: string;
  version?: string;
  route?: string;
  replica?: string;
  window: MetricWindow;
  by?: readonly string[];
  at?: number;
  /** Which steps a window covers; see `WindowSteps`. */
  steps?: WindowSteps;
}

/** The latency histogram has no replica label. */
export type LatencySelector = Omit<RedSelector, "replica">;

/** One group's cumulative histogram buckets, ascending by `le` (+Inf last). */
export interface HistogramSample {
  labels: Record<string, string>;
  buckets: Bucket[];
}

/** PromQL-like queries over the stored series; every answer is a vector of groups. */
export interface MetricQuery {
  /** Per-second increase of a counter (or histogram part) over the window: `sum by (…) (rate(m[w]))`. */
  rate(metric: string, options: SelectOptions): VectorSample[];
  /** Increase over the window: `sum by (…) (increase(m[w]))`. */
  increase(metric: string, options: SelectOptions): VectorSample[];
  /** A gauge's average over the window, summed across series: `sum by (…) (avg_over_time(m[w]))`. */
  avgOverTime(metric: string, options: SelectOptions): VectorSample[];
  /** 5xx requests / all requests; groups without requests are left out. */
  errorRatio(options: RedSelector): VectorSample[];
  /** `histogram_quantile(q, sum by (le, …) (rate(duration_bucket[w])))`, in seconds. */
  latencyQuantile(options: LatencySelector & { q: number }): VectorSample[];
  /** Share of requests slower than `thresholdSeconds` (interpolated inside its bucket). */
  slowRatio(options: LatencySelector & { thresholdSeconds: number }): VectorSample[];
  /**
   * The duration histogram's cumulative buckets per group, each bound's increase over the window:
   * `sum by (le, …) (increase(duration_bucket[w]))`.
   */
  latencyBuckets(options: LatencySelector): HistogramSample[];
  /** Names a query may use, histogram parts (`_bucket`, `_sum`, `_count`) included. */
  metricNames(): string[];
  /** Label names a query on `metric` may use. */
  labelNames(metric: string): string[];
  /** Values a label has had on `metric` within the window (default: the whole retention). */
  labelValues(metric: string, label: string, options?: { window?: MetricWindow; at?: number }): string[];
}

export interface IngestOptions {
  /** The scrape target (e.g. the gateway admin URL); becomes the `instance` label. */
  instance: string;
  /** Scrape time for samples without their own timestamp (default now). */
  at?: number;
  /** Where the text came from, for parse errors (default: the instance). */
  source?: string;
}

export interface IngestResult {
  /** Samples stored. */
  samples: number;
  /** Series seen for the first time. */
  newSeries: number;
  /** Samples ignored: undefined families, out of order, too old, not numbers, or over `maxSeries`. */
  ignored: number;
}

export interface MetricStoreStats {
  series: number;
  /** Bytes of sample data held (typed arrays), plus an estimate of per-series bookkeeping. */
  bytes: number;
  /** Series refused because `maxSeries` was reached. */
  droppedSeries: number;
  instances: number;
  /** Time of the newest sample stored; undefined before the first. */
  latestMs: number | undefined;
}

export interface MetricStore extends MetricQuery {
  readonly retention: readonly RetentionTier[];
  /** The longest window a query can look at (the coarsest tier's span). */
  readonly retentionMs: number;
  /** Parses exposition text and stores the families the store defines. */
  ingest(text: string, options: IngestOptions): IngestResult;
  ingestFamilies(families: readonly MetricFamily[], options: IngestOptions): IngestResult;
  stats(): MetricStoreStats;
}

// --- storage ---

/** Values per chunk: an hour at 10 s, six hours at 1 min. */
const CHUNK = 360;
/** Rough bytes of bookkeeping per series (object, label record, ring arrays), for `stats()`. */
const SERIES_OVERHEAD_BYTES = 600;

type Values = Uint8Array | Uint16Array | Uint32Array | Float32Array | Float64Array;
// Narrowest first: most increases per 10 s are small integers (and most chunks all zero).
const U8 = 0;
const U16 = 1;
const U32 = 2;
const F32 = 3;
const F64 = 4;
const ARRAYS = [Uint8Array, Uint16Array, Uint32Array, Float32Array, Float64Array] as const;

interface Chunk {
  /** Absolute chunk number: slot / CHUNK. */
  index: number;
  kind: number;
  /** Undefined while every value is zero (counters) or absent (gauges). Gauges hold sums. */
  data: Values | undefined;
  /** Gauges: samples summed into each step, so a step holds their average (as avg_over_time sees them). */
  counts?: Uint16Array;
}

function chunkBytes(c: Chunk): number {
  return (c.data?.byteLength ?? 0) + (c.counts?.byteLength ?? 0);
}

interface Series {
  readonly metric: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly gauge: boolean;
  /** A bucket's bound; NaN for other series. */
  readonly le: number;
  /** Last raw value and its time, for increases and resets. */
  last: number;
  lastTs: number;
  readonly firstTs: number;
  /** Per tier, a ring of chunks; allocated on the first write. */
  readonly rings: Array<Array<Chunk | undefined> | undefined>;
  /** Keys of `aliases` that lead here. */
  readonly aliases: string[];
}

interface Queryable {
  def: MetricDefinition;
  part: "counter" | "gauge" | "bucket" | "sum" | "count";
}

// One loop per array type: a single loop over every type would make element access megamorphic
// and several times slower.
function sumU8(d: Uint8Array, from: number, to: number): number {
  let sum = 0;
  for (let k = from; k <= to; k++) sum += d[k] as number;
  return sum;
}
function sumU16(d: Uint16Array, from: number, to: number): number {
  let sum = 0;
  for (let k = from; k <= to; k++) sum += d[k] as number;
  return sum;
}
function sumU32(d: Uint32Array, from: number, to: number): number {
  let sum = 0;
  for (let k = from; k <= to; k++) sum += d[k] as number;
  return sum;
}
function sumF32(d: Float32Array, from: number, to: number): number {
  let sum = 0;
  for (let k = from; k <= to; k++) sum += d[k] as number;
  return sum;
}
function sumF64(d: Float64Array, from: number, to: number): number {
  let sum = 0;
  for (let k = from; k <= to; k++) sum += d[k] as number;
  return sum;
}

/** Sum of a counter chunk's values from offset `from` to `to`, both included. */
function sumRange(c: Chunk, from: number, to: number): number {
  switch (c.kind) {
    case U8:
      return sumU8(c.data as Uint8Array, from, to);
    case U16:
      return sumU16(c.data as Uint16Array, from, to);
    case U32:
      return sumU32(c.data as Uint32Array, from, to);
    case F32:
      return sumF32(c.data as Float32Array, from, to);
    default:
      return sumF64(c.data as Float64Array, from, to);
  }
}

function fits(kind: number, v: number): boolean {
  switch (kind) {
    case U8:
      return Number.isInteger(v) && v >= 0 && v <= 0xff;
    case U16:
      return Number.isInteger(v) && v >= 0 && v <= 0xffff;
    case U32:
      return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
    case F32:
      // Fractions (histogram sums) may round to 7 digits; integers must stay exact.
      return Number.isFinite(v) && (Number.isInteger(v) ? Math.abs(v) <= 2 ** 24 : Math.abs(v) < 3e38);
    default:
      return true;
  }
}

function kindFor(v: number, atLeast: number): number {
  let k = atLeast;
  while (!fits(k, v)) k++;
  // Integers already stored as u32 may not be exact as f32.
  return atLeast === U32 && k === F32 ? F64 : k;
}

/**
 * Creates an empty metric store.
 *
 * Memory is bounded: at most `maxSeries` series, each holding one value per tier step for the
 * tier's span (8,640 + 10,080 values by default, kept in chunks of 360) in the narrowest typed
 * array its values fit: 1 byte for increases up to 255 per step, up to 8 bytes; a chunk that saw
 * no increase takes no space. At full retention a busy counter of small counts takes about 30 KB,
 * the worst case about 155 KB (190 KB for a gauge, which keeps a sum and a count per step).
 *
 * @example
 * const store = createMetricStore();
 * store.ingest(await (await fetch(`${adminUrl}/metrics`)).text(), { instance: adminUrl });
 * store.errorRatio({ service: "orders", window: "5m" }); // [{ labels: {}, value: 0.02 }]
 */
export function createMetricStore(options: MetricStoreOptions = {}): MetricStore {
  const definitions = options.metrics ?? GATEWAY_METRICS;
  const retention = (options.retention ?? DEFAULT_RETENTION).map((t) => ({ ...t }));
  const maxSeries = options.maxSeries ?? DEFAULT_MAX_SERIES;
  const now = options.now ?? Date.now;
  checkRetention(retention);
  const ringLength = retention.map((t) => Math.ceil(t.spanMs / t.stepMs / CHUNK) + 1);
  const retentionMs = Math.max(...retention.map((t) => t.spanMs));

  const byFamily = new Map<string, MetricDefinition>();
  const queryable = new Map<string, Queryable>();
  for (const def of definitions) {
    byFamily.set(def.name, def);
    if (def.type === "histogram") {
      queryable.set(`${def.name}_bucket`, { def, part: "bucket" });
      queryable.set(`${def.name}_sum`, { def, part: "sum" });
      queryable.set(`${def.name}_count`, { def, part: "count" });
    } else {
      queryable.set(def.name, { def, part: def.type });
    }
  }

  const series = new Map<string, Series>();
  /** Series by their labels in the order a scrape wrote them (see ingest). */
  const aliases = new Map<string, Series>();
  const byMetric = new Map<string, Series[]>();
  /** Labels seen per metric, beyond the defined ones (a newer gateway may add some). */
  const seenLabels = new Map<string, Set<string>>();
  const instances = new Map<string, number>();
  let latest = -Infinity;
  let bytes = 0;
  let droppedSeries = 0;
  let sweptChunk = -Infinity;

  // --- writing ---

  function ringOf(s: Series, tier: number): Array<Chunk | undefined> {
    let ring = s.rings[tier];
    if (ring === undefined) s.rings[tier] = ring = new Array<Chunk | undefined>(ringLength[tier] as number);
    return ring;
  }

  /** The chunk holding `slot`, created when missing; undefined when the ring has moved past it. */
  function chunkAt(s: Series, tier: number, slot: number): Chunk | undefined {
    const ring = ringOf(s, tier);
    const index = Math.floor(slot / CHUNK);
    const pos = ((index % ring.length) + ring.length) % ring.length;
    const c = ring[pos];
    if (c !== undefined && c.index === index) return c;
    if (c !== undefined && c.index > index) return undefined;
    if (c !== undefined) bytes -= chunkBytes(c);
    const fresh: Chunk = { index, kind: s.gauge ? F64 : U8, data: undefined };
    ring[pos] = fresh;
    return fresh;
  }

  function addIncrease(s: Series, t: number, delta: number): void {
    if (delta === 0) return;
    for (let tier = 0; tier < retention.length; tier++) {
      const { stepMs } = retention[tier] as RetentionTier;
      const slot = Math.floor(t / stepMs);
      const c = chunkAt(s, tier, slot);
      if (c === undefined) continue;
      const offset = slot - c.index * CHUNK;
      const v = (c.data === undefined ? 0 : (c.data[offset] as number)) + delta;
      if (c.data === undefined) {
        c.kind = kindFor(v, U8);
        c.data = new (ARRAYS[c.kind] as (typeof ARRAYS)[number])(CHUNK);
        bytes += c.data.byteLength;
      } else if (!fits(c.kind, v)) {
        const kind = kindFor(v, c.kind);
        const wider = new (ARRAYS[kind] as (typeof ARRAYS)[number])(CHUNK);
        wider.set(c.data);
        bytes += wider.byteLength - c.data.byteLength;
        c.kind = kind;
        c.data = wider;
      }
      c.data[offset] = v;
    }
  }

  function setGauge(s: Series, t: number, value: number): void {
    for (let tier = 0; tier < retention.length; tier++) {
      const { stepMs } = retention[tier] as RetentionTier;
      const slot = Math.floor(t / stepMs);
      const c = chunkAt(s, tier, slot);
      if (c === undefined) continue;
      if (c.data === undefined || c.counts === undefined) {
        c.data = new Float64Array(CHUNK);
        c.counts = new Uint16Array(CHUNK);
        bytes += chunkBytes(c);
      }
      const offset = slot - c.index * CHUNK;
      // Past 65535 samples in one step (never at sane scrape rates) the average stops moving.
      if ((c.counts[offset] as number) === 0xffff) continue;
      c.data[offset] = (c.data[offset] as number) + value;
      c.counts[offset] = (c.counts[offset] as number) + 1;
    }
  }

  function seriesKey(metric: string, labels: Readonly<Record<string, string>>): string {
    let key = metric;
    for (const name of Object.keys(labels).sort()) key += `\u0000${name}\u0001${labels[name] as string}`;
    return key;
  }

  function newSeries(metric: string, labels: Record<string, string>, gauge: boolean, t: number): Series {
    const le = labels.le === undefined ? NaN : (parseValue(labels.le) ?? NaN);
    const s: Series = { metric, labels: Object.freeze(labels), gauge, le, last: 0, lastTs: t, firstTs: t, rings: new Array(retention.length), aliases: [] };
    let list = byMetric.get(metric);
    if (list === undefined) byMetric.set(metric, (list = []));
    list.push(s);
    let seen = seenLabels.get(metric);
    if (seen === undefined) seenLabels.set(metric, (seen = new Set()));
    for (const name of Object.keys(labels)) seen.add(name);
    return s;
  }

  function ingestFamilies(families: readonly MetricFamily[], opts: IngestOptions): IngestResult {
    const at = opts.at ?? now();
    // Counters of a target scraped before that appear now were created since: their whole value is new.
    // On a target's first scrape nothing is known about the past, so only later increases count.
    const knownTarget = instances.has(opts.instance);
    const result: IngestResult = { samples: 0, newSeries: 0, ignored: 0 };
    let newest = -Infinity;
    for (const family of families) {
      const def = byFamily.get(family.name);
      if (def === undefined || (family.type !== def.type && family.type !== "untyped")) {
        result.ignored += family.samples.length;
        continue;
      }
      for (const sample of family.samples) {
        const part = def.type === "histogram" ? sample.name.slice(def.name.length) : "";
        const t = sample.timestampMs ?? at;
        const tooOld = latest !== -Infinity && t < latest - retentionMs;
        if ((def.type === "histogram" && part !== "_bucket" && part !== "_sum" && part !== "_count") || Number.isNaN(sample.value) || tooOld) {
          result.ignored++;
          continue;
        }
        // The labels as written (an exporter writes them in the same order every time) find the
        // series without building and sorting a canonical key.
        let written = `${sample.name}\u0000${opts.instance}`;
        for (const name in sample.labels) written += `\u0000${name}\u0001${sample.labels[name] as string}`;
        let s = aliases.get(written);
        const gauge = def.type === "gauge";
        if (s === undefined) {
          const labels: Record<string, string> = { ...sample.labels, instance: opts.instance };
          const key = seriesKey(sample.name, labels);
          s = series.get(key);
          if (s !== undefined) {
            aliases.set(written, s);
            s.aliases.push(written);
          }
        }
        if (s === undefined) {
          const labels: Record<string, string> = { ...sample.labels, instance: opts.instance };
          const key = seriesKey(sample.name, labels);
          if (series.size >= maxSeries) {
            droppedSeries++;
            result.ignored++;
            continue;
          }
          s = newSeries(sample.name, labels, gauge, t);
          series.set(key, s);
          aliases.set(written, s);
          s.aliases.push(written);
          result.newSeries++;
          if (gauge) setGauge(s, t, sample.value);
          else if (knownTarget) addIncrease(s, t, sample.value);
          s.last = sample.value;
        } else {
          if (t < s.lastTs) {
            result.ignored++;
            continue;
          }
          if (gauge) setGauge(s, t, sample.value);
          // A counter that went down was reset (its process restarted): it counted from zero.
          else addIncrease(s, t, sample.value >= s.last ? sample.value - s.last : sample.value);
          s.last = sample.value;
          s.lastTs = t;
        }
        result.samples++;
        if (t > newest) newest = t;
      }
    }
    instances.set(opts.instance, Math.max(instances.get(opts.instance) ?? -Infinity, at));
    if (newest > latest) latest = newest;
    sweep();
    return result;
  }

  /** Drops chunks that left every ring and series not seen for the whole retention (once per raw chunk). */
  function sweep(): void {
    const first = retention[0] as RetentionTier;
    const current = Math.floor(latest / first.stepMs / CHUNK);
    if (current <= sweptChunk) return;
    sweptChunk = current;
    for (const [key, s] of series) {
      if (s.lastTs < latest - retentionMs) {
        for (const ring of s.rings) for (const c of ring ?? []) if (c !== undefined) bytes -= chunkBytes(c);
        series.delete(key);
        for (const a of s.aliases) aliases.delete(a);
        const list = byMetric.get(s.metric);
        if (list !== undefined) list.splice(list.indexOf(s), 1);
        continue;
      }
      for (let tier = 0; tier < retention.length; tier++) {
        const ring = s.rings[tier];
        if (ring === undefined) continue;
        const newestChunk = Math.floor(latest / (retention[tier] as RetentionTier).stepMs / CHUNK);
        for (let i = 0; i < ring.length; i++) {
          const c = ring[i];
          if (c !== undefined && c.index <= newestChunk - ring.length) {
            bytes -= chunkBytes(c);
            ring[i] = undefined;
          }
        }
      }
    }
    for (const [instance, seen] of instances) if (seen < latest - retentionMs) instances.delete(instance);
  }

  // --- reading ---

  interface Range {
    tier: number;
    s0: number;
    s1: number;
    /** Seconds the slots cover. */
    seconds: number;
    startMs: number;
    endMs: number;
  }

  function rangeOf(window: MetricWindow, at: number | undefined, steps: WindowSteps = "nearest"): Range {
    if (steps !== "nearest" && steps !== "cover") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `steps: expected "nearest" or "cover", got ${JSON.stringify(steps)}`);
    const ms = durationMs(window, "window");
    const t = at ?? now();
    // The finest tier still holding the window's start (rings are kept relative to the newest sample).
    const newest = latest === -Infinity ? t : Math.max(latest, t);
    let tier = retention.findIndex((x) => newest - (t - ms) <= x.spanMs);
    if (tier === -1) tier = retention.length - 1;
    const { stepMs, spanMs } = retention[tier] as RetentionTier;
    if (steps === "cover") {
      // Ending at the step holding `at` (a later step holds nothing yet) and starting at the step
      // holding the window's start: rounding the count of steps up is not enough, as `at` rarely
      // sits on a step boundary (`at` 20.5 s, window 7 s: steps 10-20 s and 20-30 s, not just one).
      const s1 = Math.floor(t / stepMs);
      const s0 = Math.min(s1, Math.floor((t - Math.min(ms, spanMs)) / stepMs));
      const n = s1 - s0 + 1;
      return { tier, s0, s1, seconds: (n * stepMs) / 1000, startMs: s0 * stepMs, endMs: (s1 + 1) * stepMs };
    }
    // A step not yet scraped would read as no traffic: end at the newest scrape, at most a step back.
    const end = latest === -Infinity ? t : Math.min(t, Math.max(latest, t - stepMs));
    const s1 = Math.floor(end / stepMs);
    const n = Math.max(1, Math.round(Math.min(ms, spanMs) / stepMs));
    const s0 = s1 - n + 1;
    return { tier, s0, s1, seconds: (n * stepMs) / 1000, startMs: s0 * stepMs, endMs: (s1 + 1) * stepMs };
  }

  function sumSlots(s: Series, r: Range): number {
    const ring = s.rings[r.tier];
    if (ring === undefined) return 0;
    let sum = 0;
    const last = Math.floor(r.s1 / CHUNK);
    for (let index = Math.floor(r.s0 / CHUNK); index <= last; index++) {
      const c = ring[((index % ring.length) + ring.length) % ring.length];
      if (c === undefined || c.index !== index || c.data === undefined) continue;
      const base = index * CHUNK;
      sum += sumRange(c, Math.max(r.s0, base) - base, Math.min(r.s1, base + CHUNK - 1) - base);
    }
    return sum;
  }

  function averageSlots(s: Series, r: Range): number | undefined {
    const ring = s.rings[r.tier];
    if (ring === undefined) return undefined;
    let sum = 0;
    let count = 0;
    const last = Math.floor(r.s1 / CHUNK);
    for (let index = Math.floor(r.s0 / CHUNK); index <= last; index++) {
      const c = ring[((index % ring.length) + ring.length) % ring.length];
      if (c === undefined || c.index !== index || c.data === undefined || c.counts === undefined) continue;
      const base = index * CHUNK;
      const to = Math.min(r.s1, base + CHUNK - 1) - base;
      const d = c.data;
      const n = c.counts;
      for (let k = Math.max(r.s0, base) - base; k <= to; k++) {
        sum += d[k] as number;
        count += n[k] as number;
      }
    }
    return count === 0 ? undefined : sum / count;
  }

  function lookup(metric: string, parts: ReadonlyArray<Queryable["part"]>, use: string): Queryable {
    const q = queryable.get(metric);
    if (q === undefined) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `unknown metric "${metric}" (known: ${[...queryable.keys()].join(", ")})`, { details: { metric } });
    }
    if (!parts.includes(q.part)) {
      const kind = q.part === "gauge" ? "a gauge" : "a counter";
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${use} does not apply to ${metric}: it is ${kind}`, { details: { metric } });
    }
    return q;
  }

  function knownLabels(metric: string, q: Queryable): Set<string> {
    const known = new Set<string>([...q.def.labels, "instance", ...(seenLabels.get(metric) ?? [])]);
    if (q.part === "bucket") known.add("le");
    return known;
  }

  function checkLabels(metric: string, q: Queryable, names: readonly string[]): void {
    const known = knownLabels(metric, q);
    const unknown = [...new Set(names)].filter((n) => !known.has(n));
    if (unknown.length > 0) {
      throw new KeelsonError(
        "KEELSON_ERR_INVALID_INPUT",
        `unknown label${unknown.length > 1 ? "s" : ""} ${unknown.map((n) => `"${n}"`).join(", ")} for ${metric} (known: ${[...known].sort().join(", ")})`,
        { details: { metric, labels: unknown } },
      );
    }
  }

  interface Group {
    labels: Record<string, string>;
    value: number;
    count: number;
    present: boolean;
  }

  /** Sums a per-series value into groups of the `by` labels, over series that match `where`. */
  function aggregate(
    metric: string,
    where: Readonly<Record<string, string>>,
    by: readonly string[],
    r: Range,
    value: (s: Series) => number | undefined,
  ): Map<string, Group> {
    const groups = new Map<string, Group>();
    const matchers = Object.entries(where);
    for (const s of byMetric.get(metric) ?? []) {
      let match = true;
      for (const [name, v] of matchers) {
        if ((s.labels[name] ?? "") !== v) {
          match = false;
          break;
        }
      }
      // Only series that existed within the window count, as PromQL sees only samples in range.
      if (!match || s.lastTs < r.startMs || s.firstTs >= r.endMs) continue;
      const x = value(s);
      if (x === undefined) continue;
      let key = "";
      for (const name of by) key += `${s.labels[name] ?? ""}\u0000`;
      let g = groups.get(key);
      if (g === undefined) {
        const labels: Record<string, string> = {};
        for (const name of by) {
          const v = s.labels[name];
          if (v !== undefined && v !== "") labels[name] = v;
        }
        groups.set(key, (g = { labels, value: 0, count: 0, present: true }));
      }
      g.value += x;
      g.count++;
    }
    return groups;
  }

  function counterQuery(metric: string, o: SelectOptions, perSecond: boolean, use: string): VectorSample[] {
    const q = lookup(metric, ["counter", "bucket", "sum", "count"], use);
    const by = o.by ?? [];
    const where = checkWhere(o.where);
    checkLabels(metric, q, [...by, ...Object.keys(where)]);
    const r = rangeOf(o.window, o.at, o.steps);
    const groups = aggregate(metric, where, by, r, (s) => sumSlots(s, r));
    return [...groups.values()].map((g) => ({ labels: g.labels, value: perSecond ? g.value / r.seconds : g.value }));
  }

  function requestsWhere(o: RedSelector): Record<string, string> {
    const where: Record<string, string> = {};
    for (const name of ["service", "version", "route", "replica"] as const) {
      const v = o[name];
      if (v !== undefined) where[name] = checkString(v, name);
    }
    return where;
  }

  /** Per group (by labels), the summed increase of each bucket bound. */
  function bucketGroups(o: LatencySelector): { groups: Map<string, { labels: Record<string, string>; buckets: Map<number, number> }> } {
    const metric = `${durationMetric()}_bucket`;
    const q = lookup(metric, ["bucket"], "a latency query");
    const by = o.by ?? [];
    const where = requestsWhere(o);
    checkLabels(metric, q, [...by, ...Object.keys(where)]);
    const r = rangeOf(o.window, o.at, o.steps);
    const groups = new Map<string, { labels: Record<string, string>; buckets: Map<number, number> }>();
    const perLe = aggregate(metric, where, [...by, "le"], r, (s) => sumSlots(s, r));
    for (const [key, g] of perLe) {
      const le = parseValue(g.labels.le ?? "") ?? NaN;
      if (Number.isNaN(le)) continue;
      const groupKey = key.slice(0, key.lastIndexOf("\u0000", key.length - 2) + 1);
      let group = groups.get(groupKey);
      if (group === undefined) {
        const labels = { ...g.labels };
        delete labels.le;
        groups.set(groupKey, (group = { labels, buckets: new Map() }));
      }
      group.buckets.set(le, (group.buckets.get(le) ?? 0) + g.value);
    }
    return { groups };
  }

  function durationMetric(): string {
    const def = definitions.find((d) => d.name === GATEWAY_REQUEST_DURATION) ?? definitions.find((d) => d.type === "histogram");
    if (def === undefined) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `unknown metric "${GATEWAY_REQUEST_DURATION}": the store keeps no histogram`);
    return def.name;
  }

  function toBuckets(m: Map<number, number>): Bucket[] {
    return [...m].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
  }

  return {
    retention,
    retentionMs,
    ingest(text, opts) {
      return ingestFamilies(parsePrometheusText(text, { source: opts.source ?? opts.instance }), opts);
    },
    ingestFamilies,
    rate(metric, o) {
      return counterQuery(metric, o, true, "rate()");
    },
    increase(metric, o) {
      return counterQuery(metric, o, false, "increase()");
    },
    avgOverTime(metric, o) {
      const q = lookup(metric, ["gauge"], "avgOverTime()");
      const by = o.by ?? [];
      const where = checkWhere(o.where);
      checkLabels(metric, q, [...by, ...Object.keys(where)]);
      const r = rangeOf(o.window, o.at, o.steps);
      return [...aggregate(metric, where, by, r, (s) => averageSlots(s, r)).values()].map((g) => ({ labels: g.labels, value: g.value }));
    },
    errorRatio(o) {
      const metric = definitions.find((d) => d.name === GATEWAY_REQUESTS)?.name ?? GATEWAY_REQUESTS;
      const q = lookup(metric, ["counter"], "errorRatio()");
      const by = o.by ?? [];
      const where = requestsWhere(o);
      checkLabels(metric, q, [...by, ...Object.keys(where), "code_class"]);
      const r = rangeOf(o.window, o.at, o.steps);
      const all = aggregate(metric, where, by, r, (s) => sumSlots(s, r));
      const errors = aggregate(metric, { ...where, code_class: "5xx" }, by, r, (s) => sumSlots(s, r));
      const out: VectorSample[] = [];
      for (const [key, g] of all) {
        if (g.value > 0) out.push({ labels: g.labels, value: (errors.get(key)?.value ?? 0) / g.value });
      }
      return out;
    },
    latencyQuantile(o) {
      if (typeof o.q !== "number" || !(o.q >= 0 && o.q <= 1)) {
        throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `q: expected a quantile between 0 and 1, got ${JSON.stringify(o.q)}`);
      }
      const out: VectorSample[] = [];
      for (const g of bucketGroups(o).groups.values()) {
        const v = bucketQuantile(o.q, toBuckets(g.buckets));
        if (!Number.isNaN(v)) out.push({ labels: g.labels, value: v });
      }
      return out;
    },
    slowRatio(o) {
      if (typeof o.thresholdSeconds !== "number" || !(o.thresholdSeconds > 0) || !Number.isFinite(o.thresholdSeconds)) {
        throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `thresholdSeconds: expected a positive number, got ${JSON.stringify(o.thresholdSeconds)}`);
      }
      const out: VectorSample[] = [];
      for (const g of bucketGroups(o).groups.values()) {
        const v = fractionAbove(o.thresholdSeconds, toBuckets(g.buckets));
        if (!Number.isNaN(v)) out.push({ labels: g.labels, value: v });
      }
      return out;
    },
    latencyBuckets(o) {
      return [...bucketGroups(o).groups.values()].map((g) => ({ labels: g.labels, buckets: toBuckets(g.buckets) }));
    },
    metricNames() {
      return [...queryable.keys()];
    },
    labelNames(metric) {
      const q = lookup(metric, ["counter", "gauge", "bucket", "sum", "count"], "labelNames()");
      return [...knownLabels(metric, q)].sort();
    },
    labelValues(metric, label, o = {}) {
      const q = lookup(metric, ["counter", "gauge", "bucket", "sum", "count"], "labelValues()");
      checkLabels(metric, q, [label]);
      const r = rangeOf(o.window ?? retentionMs, o.at);
      const values = new Set<string>();
      for (const s of byMetric.get(metric) ?? []) {
        const v = s.labels[label];
        if (v !== undefined && v !== "" && s.lastTs >= r.startMs && s.firstTs < r.endMs) values.add(v);
      }
      return [...values].sort();
    },
    stats() {
      return {
        series: series.size,
        bytes: bytes + series.size * SERIES_OVERHEAD_BYTES,
        droppedSeries,
        instances: instances.size,
        latestMs: latest === -Infinity ? undefined : latest,
      };
    },
  };
}

/** Milliseconds of a `MetricWindow`; names `field` when it is not a positive duration. */
export function durationMs(value: MetricWindow, field: string): number {
  let ms: number | undefined;
  if (typeof value === "number") ms = value;
  else if (typeof value === "string") {
    try {
      ms = parseDuration(value);
    } catch {
      ms = undefined;
    }
  }
  if (ms === undefined || !Number.isFinite(ms) || ms <= 0) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${field}: expected a duration like "30s", "5m" or "1h" (or milliseconds > 0), got ${JSON.stringify(value)}`);
  }
  return ms;
}

function checkString(v: unknown, field: string): string {
  if (typeof v !== "string") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${field}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function checkWhere(where: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(where ?? {})) out[k] = checkString(v, `where.${k}`);
  return out;
}

function checkRetention(tiers: readonly RetentionTier[]): void {
  if (tiers.length === 0) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "retention: at least one tier is needed");
  let prev: RetentionTier | undefined;
  for (const [i, t] of tiers.entries()) {
    if (!(t.stepMs > 0) || !(t.spanMs >= t.stepMs) || !Number.isInteger(t.stepMs)) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `retention[${i}]: expected a whole stepMs > 0 and spanMs >= stepMs, got ${JSON.stringify(t)}`);
    }
    if (prev !== undefined && (t.stepMs <= prev.stepMs || t.spanMs <= prev.spanMs)) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `retention[${i}]: tiers go from fine and short to coarse and long`);
    }
    prev = t;
  }
}
