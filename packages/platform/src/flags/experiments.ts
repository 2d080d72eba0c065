// Experiments on experiment flags: exposure and conversion events from the SDK folded into
// per-flag aggregates (users and converting users per variant, once per user), kept in the
// store's settings, and the results computed from them (experiment-stats.ts).
//
// Storage, without a table of its own: `experiment.<project>.<flag>` holds the aggregates;
// `experiment.<project>.<flag>#<n>` hold an append-only log of first exposures ([user, variant])
// and first conversions ([user, -1 - event]) in chunks, so that after a restart each user is
// still counted once. Only the open chunk and the aggregates are rewritten per batch.
//
// The gateway side (requests routed by the flag, their errors and latency per variant) is not
// stored here: the gateway counts it, the control plane scrapes it into its metric store, and
// the results read it from there, as the increase since the experiment's start (the flag's last
// change of who gets which variant). Only when the store holds everything since that start are
// the counts one sample growing from it, which the always-valid interval needs; otherwise the
// block is descriptive and says why.
import { KeelsonError, type ExperimentEvent, type FlagDefinition } from "@keelson/protocol";
import { canonicalJson, type Store } from "../store/index.js";
import { bucketQuantile, GATEWAY_FLAG_REQUEST_DURATION, GATEWAY_FLAG_REQUESTS, type Bucket, type MetricStore } from "../telemetry/index.js";
import {
  analyzeErrorRatios,
  analyzeExperiment,
  describeErrorRatios,
  type AnalyzeOptions,
  type ComparisonVerdict,
  type ErrorRatioComparison,
  type ExperimentAnalysis,
  type VariantErrorStats,
  type VariantStats,
} from "./experiment-stats.js";
import type { FlagChange, FlagService } from "./flag-service.js";

/** What one POST of events did: counted events, and why the others did not count. */
export interface ExperimentIngestResult {
  accepted: number;
  ignored: {
    /** Exposures of a flag that does not exist or is not of type "experiment". */
    notAnExperiment: number;
    /** Exposures of new users after the flag reached its user cap. */
    userCap: number;
    /** Exposures of a variant beyond the per-flag variant cap, or conversions beyond the event-name cap. */
    overCap: number;
  };
}

export interface ExperimentVariantResult extends VariantStats {
  /** All conversion events of the metric from the variant's users (not deduplicated). */
  events: number;
  /** Sum of the events' values. */
  valueSum: number;
}

/** The gateway side of one variant. */
export interface ExperimentGatewayVariant extends VariantErrorStats {
  /** Requests whose client left before the answer (499): counted in neither `requests` nor `errors`. */
  abandoned: number;
  /** Latency percentiles in seconds (histogram_quantile over the gateway's buckets); undefined without requests. */
  p50: number | undefined;
  p99: number | undefined;
}

/** Requests the gateway routed by the experiment's flag: error ratios per variant against the control's, and latency. */
export interface ExperimentGatewayResults {
  /**
   * "sequential": the counts are every request since the experiment's start, so the always-valid
   * difference against the control and the verdict hold however often results are read.
   * "descriptive": the metric store does not hold everything since the start (`reason` says why):
   * each variant's counts and Wilson interval only, no comparison and no verdict.
   */
  mode: "sequential" | "descriptive";
  /** Why the block is descriptive; absent when sequential. */
  reason?: string;
  alpha: number;
  /** The routes (path prefixes) that routed by the flag. */
  routes: string[];
  /** The experiment's start (ISO time): the flag's last change of who gets which variant; absent when its history records none. */
  startedAt?: string;
  /** The counts cover requests from this time (ISO): the start when sequential, else the oldest the metric store holds. */
  since: string;
  variants: ExperimentGatewayVariant[];
  /** Each treatment against the control, with the always-valid interval; empty when descriptive. */
  comparisons: ErrorRatioComparison[];
  /** Fewer errors win; absent when descriptive. */
  verdict?: ComparisonVerdict;
  /** The variant with the fewest errors when the verdict names one. */
  winner?: string;
  /** Plain-language caveats. */
  notes: string[];
}

/** GET /v1/experiments/<flag>/results. */
export interface ExperimentResults extends Omit<ExperimentAnalysis, "variants"> {
  flag: string;
  /** The conversion event analyzed; absent while no conversion was seen. */
  metric?: string;
  /** Every conversion event name seen for this flag. */
  metrics: string[];
  control: string;
  variants: ExperimentVariantResult[];
  /** Where the expected split came from: the flag's top-level `fractional`, or equal weights. */
  weightsFrom: "fractional" | "equal";
  /** Metric conversions from users not (yet) exposed: not counted. */
  unattributed: number;
  /** Exposures of an already counted user to another variant (the flag changed): the first variant stands. */
  switched: number;
  userCap: number;
  /** New users not counted because the cap was reached. */
  usersDropped: number;
  /** Requests the gateway routed by the flag; absent while it routed none (or without gateway metrics). */
  gateway?: ExperimentGatewayResults;
  /** Plain-language caveats. */
  notes: string[];
}

export interface ResultsQuery {
  metric?: string;
  control?: string;
  alpha?: number;
}

export interface Experiments {
  /** Folds a validated batch in and persists it; events are applied one batch at a time. */
  ingest(events: readonly ExperimentEvent[]): Promise<ExperimentIngestResult>;
  results(flag: string, query?: ResultsQuery): Promise<ExperimentResults>;
}

export interface ExperimentsOptions {
  store: Store;
  project: string;
  flags: FlagService;
  /** Users counted per flag (default 200,000); later users are counted as dropped. */
  maxUsers?: number;
  /** Log records per stored chunk (default 2,000). */
  chunkSize?: number;
  analysis?: AnalyzeOptions;
  /**
   * The gateway's per-variant requests, as scraped into the control plane's metric store; without
   * it results have no gateway block. `refresh` scrapes the gateways first, so results are current.
   * `since` is when the store began holding the gateways' counts (default: when `createExperiments`
   * is called, as the control plane creates both at its start and the store lives in memory).
   */
  gateway?: { metrics: Pick<MetricStore, "increase" | "retentionMs">; refresh?: () => Promise<unknown>; since?: Date };
  /** Clock of the gateway block (default: the system clock). */
  now?: () => Date;
}

/** Variants per flag the aggregates track (a user's variant and converted events share one number). */
const MAX_VARIANTS = 64;
/** Conversion event names per flag. */
const MAX_EVENTS = 24;

/** [user, variant index] for a first exposure, [user, -1 - event index] for a first conversion. */
type LogRecord = [string, number];

interface Aggregates {
  version: 1;
  variants: string[];
  events: string[];
  /** Unique users per variant. */
  exposed: number[];
  /** [event][variant]: users who converted, once each. */
  converted: number[][];
  /** [event][variant]: every conversion event of an exposed user. */
  conversions: number[][];
  /** [event][variant]: sum of the values of those events. */
  valueSums: number[][];
  /** [event]: conversions of users not exposed. */
  unattributed: number[];
  switched: number;
  usersDropped: number;
  /** Log records persisted. */
  records: number;
}

interface FlagState {
  key: string;
  agg: Aggregates;
  /** user → variant + MAX_VARIANTS * (bit mask of converted events). */
  users: Map<string, number>;
  /** Records of the last, partly filled chunk, as stored. */
  open: LogRecord[];
  /** Records not stored yet. */
  pending: LogRecord[];
  dirty: boolean;
}

function emptyAggregates(): Aggregates {
  return { version: 1, variants: [], events: [], exposed: [], converted: [], conversions: [], valueSums: [], unattributed: [], switched: 0, usersDropped: 0, records: 0 };
}

/**
 * The split a flag's targeting declares: a top-level `fractional` with literal variants and
 * weights (weight 1 when left out, as in flagd); anything else counts as equal weights over the
 * flag's variants.
 */
export function expectedWeights(def: FlagDefinition): { weights: Record<string, number>; from: "fractional" | "equal" } {
  const t = def.targeting;
  const args = t !== null && typeof t === "object" && !Array.isArray(t) && Object.keys(t).length === 1 ? (t as { fractional?: unknown }).fractional : undefined;
  if (Array.isArray(args) && args.length > 0) {
    const weights: Record<string, number> = {};
    let literal = true;
    for (const bucket of Array.isArray(args[0]) ? args : args.slice(1)) {
      const [variant, weight = 1] = Array.isArray(bucket) ? (bucket as unknown[]) : [];
      if (!["string", "number", "boolean"].includes(typeof variant) || typeof weight !== "number") {
        literal = false;
        break;
      }
      const name = String(variant);
      weights[name] = (weights[name] ?? 0) + weight;
    }
    if (literal && Object.keys(weights).length > 0) return { weights, from: "fractional" };
  }
  return { weights: Object.fromEntries(Object.keys(def.variants).map((v) => [v, 1])), from: "equal" };
}

/** Changes of a flag's history read to find the experiment's start. */
const HISTORY_LIMIT = 1_000;

/** What of a flag decides who gets which variant (undefined when it is not an experiment). */
function assignmentOf(def: FlagDefinition | null): string | undefined {
  if (def === null || def.type !== "experiment") return undefined;
  const { state, variants, defaultVariant, targeting, prerequisites, safeVariant } = def;
  return canonicalJson({ state, variants, defaultVariant, targeting: targeting ?? {}, prerequisites: prerequisites ?? [], safeVariant: safeVariant ?? null });
}

/**
 * The change that started the experiment on a flag as it stands: the newest change in its history
 * (newest first, as `FlagService.history` gives it) after which the flag was an experiment with
 * its current assignment (created as one, made one, or its state, variants, default, targeting,
 * prerequisites or safe variant changed). Edits of its owner, description or metadata do not
 * restart it. Undefined when the history holds no such change.
 *
 * @example
 * experimentStart(await flags.history("checkout"))?.at; // "2026-11-20T09:00:00.000Z"
 */
export function experimentStart(history: readonly FlagChange[]): FlagChange | undefined {
  return history.find((c) => c.after?.type === "experiment" && assignmentOf(c.before) !== assignmentOf(c.after));
}

/** An ISO time to the second. */
const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/** A span of time in whole days, hours or minutes. */
function spanOf(ms: number): string {
  const [n, unit] = ms >= 86_400_000 ? [Math.round(ms / 86_400_000), "day"] : ms >= 3_600_000 ? [Math.round(ms / 3_600_000), "hour"] : [Math.max(1, Math.round(ms / 60_000)), "minute"];
  return `${n} ${unit}${n === 1 ? "" : "s"}`;
}

function invalid(message: string): KeelsonError {
  return new KeelsonError("KEELSON_ERR_INVALID_INPUT", message);
}

/**
 * The experiments of one project, over the store's settings.
 *
 * @example
 * const experiments = createExperiments({ store, project: "shop", flags });
 * await experiments.ingest([{ type: "exposure", flag: "new-checkout", variant: "on", targetingKey: "u-1" }]);
 * (await experiments.results("new-checkout", { metric: "purchase" })).verdict; // "no difference yet"
 */
export function createExperiments(options: ExperimentsOptions): Experiments {
  const { store, project, flags } = options;
  const maxUsers = options.maxUsers ?? 200_000;
  const chunkSize = options.chunkSize ?? 2_000;
  const now = options.now ?? (() => new Date());
  const gatewaySince = options.gateway?.since?.getTime() ?? now().getTime();
  const states = new Map<string, Promise<FlagState>>();
  let queue: Promise<unknown> = Promise.resolve();

  const settingKey = (flag: string) => `experiment.${project}.${flag}`;

  async function read(flag: string): Promise<FlagState> {
    const base = settingKey(flag);
    const text = await store.getSetting(base);
    const state: FlagState = { key: flag, agg: emptyAggregates(), users: new Map(), open: [], pending: [], dirty: false };
    if (text === undefined || text === "") return state;
    state.agg = { ...emptyAggregates(), ...(JSON.parse(text) as Partial<Aggregates>) };
    const { records } = state.agg;
    for (let no = 0, seen = 0; seen < records; no++) {
      const chunk = JSON.parse((await store.getSetting(`${base}#${no}`)) ?? "[]") as LogRecord[];
      // The aggregates are written after the chunks: records past their count were never counted.
      const counted = chunk.slice(0, Math.min(chunkSize, records - seen));
      for (const [user, k] of counted) {
        if (k >= 0) {
          if (!state.users.has(user)) state.users.set(user, k);
        } else {
          const code = state.users.get(user);
          if (code !== undefined) state.users.set(user, code + MAX_VARIANTS * (1 << (-1 - k)));
        }
      }
      seen += chunkSize;
      if (seen >= records) state.open = counted.length < chunkSize ? counted : [];
    }
    return state;
  }

  function load(flag: string): Promise<FlagState> {
    let s = states.get(flag);
    if (!s) {
      s = read(flag);
      states.set(flag, s);
      // A failed read is tried again next time.
      void s.catch(() => states.delete(flag));
    }
    return s;
  }

  async function persist(s: FlagState): Promise<void> {
    if (!s.dirty) return;
    const base = settingKey(s.key);
    let open = [...s.open];
    let no = Math.floor(s.agg.records / chunkSize);
    for (const r of s.pending) {
      open.push(r);
      if (open.length === chunkSize) {
        await store.setSetting(`${base}#${no}`, JSON.stringify(open));
        no++;
        open = [];
      }
    }
    if (open.length > 0) await store.setSetting(`${base}#${no}`, JSON.stringify(open));
    const records = s.agg.records + s.pending.length;
    await store.setSetting(base, JSON.stringify({ ...s.agg, records }));
    // Only now, so that a failed write is redone in full with the next batch.
    s.agg.records = records;
    s.open = open;
    s.pending = [];
    s.dirty = false;
  }

  function indexOf(list: string[], name: string, cap: number, grow: (a: Aggregates) => void, s: FlagState): number {
    const i = list.indexOf(name);
    if (i >= 0 || list.length >= cap) return i;
    list.push(name);
    grow(s.agg);
    return list.length - 1;
  }
  const variantIndex = (s: FlagState, v: string) =>
    indexOf(s.agg.variants, v, MAX_VARIANTS, (a) => {
      a.exposed.push(0);
      for (const rows of [a.converted, a.conversions, a.valueSums]) for (const row of rows) row.push(0);
    }, s);
  const eventIndex = (s: FlagState, e: string) =>
    indexOf(s.agg.events, e, MAX_EVENTS, (a) => {
      for (const rows of [a.converted, a.conversions, a.valueSums]) rows.push(a.variants.map(() => 0));
      a.unattributed.push(0);
    }, s);

  async function ingestBatch(events: readonly ExperimentEvent[]): Promise<ExperimentIngestResult> {
    const snap = await flags.snapshot();
    const experimentFlags = Object.keys(snap.set.flags).filter((k) => snap.set.flags[k]?.type === "experiment");
    const result: ExperimentIngestResult = { accepted: 0, ignored: { notAnExperiment: 0, userCap: 0, overCap: 0 } };
    const touched = new Set<FlagState>();
    const conversionStates = events.some((e) => e.type === "conversion") ? await Promise.all(experimentFlags.map(load)) : [];
    for (const e of events) {
      if (e.type === "exposure") {
        if (snap.set.flags[e.flag]?.type !== "experiment") {
          result.ignored.notAnExperiment++;
          continue;
        }
        const s = await load(e.flag);
        const code = s.users.get(e.targetingKey);
        if (code !== undefined) {
          if (s.agg.variants[code % MAX_VARIANTS] !== e.variant) {
            s.agg.switched++;
            s.dirty = true;
            touched.add(s);
          }
          result.accepted++;
          continue;
        }
        if (s.users.size >= maxUsers) {
          s.agg.usersDropped++;
          s.dirty = true;
          touched.add(s);
          result.ignored.userCap++;
          continue;
        }
        const v = variantIndex(s, e.variant);
        if (v < 0) {
          result.ignored.overCap++;
          continue;
        }
        s.users.set(e.targetingKey, v);
        s.agg.exposed[v] = (s.agg.exposed[v] ?? 0) + 1;
        s.pending.push([e.targetingKey, v]);
        s.dirty = true;
        touched.add(s);
        result.accepted++;
        continue;
      }
      // A conversion counts for every experiment its user is in.
      let over = false;
      for (const s of conversionStates) {
        const code = s.users.get(e.targetingKey);
        const known = s.agg.events.indexOf(e.event);
        if (code === undefined) {
          if (known >= 0) {
            s.agg.unattributed[known] = (s.agg.unattributed[known] ?? 0) + 1;
            s.dirty = true;
            touched.add(s);
          }
          continue;
        }
        const ev = known >= 0 ? known : eventIndex(s, e.event);
        if (ev < 0) {
          over = true;
          continue;
        }
        const v = code % MAX_VARIANTS;
        const bit = 1 << ev;
        const row = (rows: number[][]) => rows[ev] as number[];
        if ((Math.floor(code / MAX_VARIANTS) & bit) === 0) {
          s.users.set(e.targetingKey, code + MAX_VARIANTS * bit);
          row(s.agg.converted)[v] = (row(s.agg.converted)[v] ?? 0) + 1;
          s.pending.push([e.targetingKey, -1 - ev]);
        }
        row(s.agg.conversions)[v] = (row(s.agg.conversions)[v] ?? 0) + 1;
        row(s.agg.valueSums)[v] = (row(s.agg.valueSums)[v] ?? 0) + (e.value ?? 0);
        s.dirty = true;
        touched.add(s);
      }
      if (over) result.ignored.overCap++;
      else result.accepted++;
    }
    for (const s of touched) await persist(s);
    return result;
  }

  /**
   * The gateway block of a flag's results: the increase of the gateway's counters since the
   * experiment's start (the store took counter resets into account when it ingested them), or,
   * when the store does not reach back to the start, what it holds, descriptively.
   */
  async function gatewayResults(flag: string, names: string[], control: string, weights: Record<string, number>, alpha: number | undefined): Promise<ExperimentGatewayResults | undefined> {
    const source = options.gateway;
    if (source === undefined) return undefined;
    await source.refresh?.();
    const { metrics } = source;
    const at = now().getTime();
    const started = experimentStart(await flags.history(flag, HISTORY_LIMIT));
    const startMs = started === undefined ? undefined : Date.parse(started.at);
    // The store keeps the gateways' counts from its own start for its retention at most: only
    // when that covers the experiment's start are the counts one sample growing from it.
    const heldFrom = Math.max(gatewaySince, at - metrics.retentionMs);
    let reason: string | undefined;
    if (startMs === undefined) {
      reason = `none of the flag's last ${HISTORY_LIMIT.toLocaleString("en-US")} recorded changes set who gets which variant, so the experiment's start is not known: no verdict`;
    } else if (startMs < gatewaySince) {
      reason = `the metric store holds data only since ${isoSeconds(gatewaySince)} (it is kept in memory from the control plane's start), after the experiment started at ${isoSeconds(startMs)}: no verdict`;
    } else if (startMs < at - metrics.retentionMs) {
      reason = `the experiment started at ${isoSeconds(startMs)}, longer ago than the metric store keeps (${spanOf(metrics.retentionMs)}): no verdict`;
    }
    const fromMs = reason === undefined && startMs !== undefined ? startMs : heldFrom;
    // Whole store steps from the one holding `fromMs` (so up to one step before it) to now.
    const select = { window: Math.max(1, at - fromMs), at, where: { flag }, steps: "cover" as const };
    const outcomes = metrics.increase(GATEWAY_FLAG_REQUESTS, { ...select, by: ["variant", "outcome"] });
    if (!outcomes.some((o) => o.value > 0)) return undefined;
    const counts = new Map<string, { ok: number; error: number; abandoned: number }>();
    for (const o of outcomes) {
      const variant = o.labels.variant ?? "";
      const outcome = o.labels.outcome;
      let c = counts.get(variant);
      if (c === undefined) counts.set(variant, (c = { ok: 0, error: 0, abandoned: 0 }));
      if (outcome === "ok" || outcome === "error" || outcome === "abandoned") c[outcome] += Math.round(o.value);
    }
    const buckets = new Map<string, Bucket[]>();
    for (const b of metrics.increase(`${GATEWAY_FLAG_REQUEST_DURATION}_bucket`, { ...select, by: ["variant", "le"] })) {
      const variant = b.labels.variant ?? "";
      const le = b.labels.le === "+Inf" ? Infinity : Number(b.labels.le);
      if (Number.isNaN(le)) continue;
      let list = buckets.get(variant);
      if (list === undefined) buckets.set(variant, (list = []));
      list.push({ le, count: b.value });
    }
    const routes = metrics
      .increase(GATEWAY_FLAG_REQUESTS, { ...select, by: ["route"] })
      .filter((r) => r.value > 0 && r.labels.route !== undefined)
      .map((r) => r.labels.route as string)
      .sort();
    // The variants of the split, the control, and any other the gateway saw.
    const shown = [...new Set([...names, ...counts.keys()])].filter((v) => v === control || (weights[v] ?? 0) > 0 || (counts.get(v)?.ok ?? 0) + (counts.get(v)?.error ?? 0) > 0);
    const requests = shown.map((v) => ({ variant: v, requests: (counts.get(v)?.ok ?? 0) + (counts.get(v)?.error ?? 0), errors: counts.get(v)?.error ?? 0 }));
    const analysisOptions = { ...options.analysis, ...(alpha !== undefined ? { alpha } : {}) };
    const quantile = (q: number, v: string) => {
      const b = buckets.get(v);
      const x = b === undefined ? NaN : bucketQuantile(q, b.sort((x1, x2) => x1.le - x2.le));
      return Number.isNaN(x) ? undefined : x;
    };
    const withLatency = (stats: VariantErrorStats[]) =>
      stats.map((v) => ({ ...v, abandoned: counts.get(v.variant)?.abandoned ?? 0, p50: quantile(0.5, v.variant), p99: quantile(0.99, v.variant) }));
    const common = {
      routes,
      ...(started !== undefined ? { startedAt: started.at } : {}),
      since: new Date(fromMs).toISOString(),
      notes: ["counts requests, not users: one user's requests are not independent, so the intervals are narrower than they should be when users send many requests"],
    };
    if (reason !== undefined) {
      const alphaUsed = analysisOptions.alpha ?? 0.05;
      return { mode: "descriptive", reason, alpha: alphaUsed, ...common, variants: withLatency(describeErrorRatios(requests, { alpha: alphaUsed })), comparisons: [] };
    }
    const analysis = analyzeErrorRatios(requests, control, analysisOptions);
    return {
      mode: "sequential",
      alpha: analysis.alpha,
      ...common,
      variants: withLatency(analysis.variants),
      comparisons: analysis.comparisons,
      verdict: analysis.verdict,
      ...(analysis.winner !== undefined ? { winner: analysis.winner } : {}),
    };
  }

  return {
    ingest(events) {
      const run = queue.then(() => ingestBatch(events));
      queue = run.catch(() => undefined);
      return run;
    },

    async results(flag, query = {}) {
      const snap = await flags.snapshot();
      const def = snap.set.flags[flag];
      if (!def) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `flag "${flag}" does not exist; \`keelson flags list\` shows the flags`);
      if (def.type !== "experiment") throw invalid(`flag "${flag}" is not an experiment (type ${def.type ?? "unset"}); give it "type": "experiment" so the SDK records exposures`);
      const s = await load(flag);
      const { agg } = s;

      let metric = query.metric;
      if (metric === undefined && agg.events.length > 1) {
        throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `metric: flag "${flag}" has conversions for ${agg.events.join(", ")}; choose one (?metric=${agg.events[0]}, or --metric on the CLI)`, {
          details: { metrics: [...agg.events] },
        });
      }
      metric ??= agg.events[0];
      const ev = metric === undefined ? -1 : agg.events.indexOf(metric);

      const control = query.control ?? def.defaultVariant;
      const { weights, from } = expectedWeights(def);
      const names = [...new Set([...Object.keys(def.variants), ...agg.variants])];
      if (!names.includes(control)) throw invalid(`control: flag "${flag}" has no variant "${control}"; its variants: ${names.join(", ")}`);
      const users = (v: string) => agg.exposed[agg.variants.indexOf(v)] ?? 0;
      const cell = (rows: number[][], v: string) => (ev < 0 ? 0 : (rows[ev]?.[agg.variants.indexOf(v)] ?? 0));
      // Variants that are part of the split or were served; the control always.
      const shown = names.filter((v) => v === control || (weights[v] ?? 0) > 0 || users(v) > 0);
      const analysis = analyzeExperiment(
        shown.map((v) => ({ variant: v, users: users(v), conversions: cell(agg.converted, v) })),
        control,
        weights,
        { ...options.analysis, ...(query.alpha !== undefined ? { alpha: query.alpha } : {}) },
      );
      const variants = analysis.variants.map((v) => ({ ...v, events: cell(agg.conversions, v.variant), valueSum: cell(agg.valueSums, v.variant) }));

      const unattributed = ev < 0 ? 0 : (agg.unattributed[ev] ?? 0);
      const notes: string[] = [];
      if (analysis.srm.broken) {
        const shares = Object.entries(analysis.srm.expected).map(([v, w]) => `${v} ${(w * 100).toFixed(1)}%`).join(", ");
        notes.push(`users per variant do not match the split (${shares}): assignment or exposure logging is broken, so the lift cannot be trusted`);
      }
      if (metric === undefined) notes.push("no conversions yet: the SDK sends them with OpenFeature's client.track(eventName, { targetingKey })");
      else if (ev < 0) notes.push(`no "${metric}" conversions from this experiment's users yet${agg.events.length > 0 ? ` (seen: ${agg.events.join(", ")})` : ""}`);
      if (agg.usersDropped > 0) notes.push(`counting stopped at ${maxUsers.toLocaleString("en-US")} users: ${agg.usersDropped} later exposures of new users were not counted`);
      if (agg.switched > 0) notes.push(`${agg.switched} exposures served a counted user another variant than their first (the flag changed?); each user stays in their first variant`);
      if (unattributed > 0) notes.push(`${unattributed} "${metric}" conversions came from users not exposed (yet) and were not counted`);
      if (from === "equal" && !analysis.srm.broken && def.targeting !== undefined && JSON.stringify(def.targeting) !== "{}") {
        notes.push("the targeting is not a plain fractional split: the sample ratio check assumes equal shares");
      }

      const gateway = await gatewayResults(flag, names, control, weights, query.alpha);

      const { variants: _v, ...rest } = analysis;
      return {
        flag,
        ...(metric !== undefined ? { metric } : {}),
        metrics: [...agg.events],
        control,
        ...rest,
        variants,
        weightsFrom: from,
        unattributed,
        switched: agg.switched,
        userCap: maxUsers,
        usersDropped: agg.usersDropped,
        ...(gateway !== undefined ? { gateway } : {}),
        notes,
      };
    },
  };
}
