// Service level objectives from the manifest, their burn rates over a MetricsSource, the
// multi-window multi-burn-rate alert rules of the Google SRE workbook, and the budget left.
import type { Manifest, ServiceSpec } from "../manifest/index.js";
import type { MetricsSource } from "./metrics-source.js";

/** One measurable objective; a manifest SLO with both availability and latency gives two. */
export interface SloObjective {
  service: string;
  /** The SLO's name in the manifest. */
  slo: string;
  objective: "availability" | "latency";
  /** Share of good requests required, 0..1 (99.9 % is 0.999). */
  target: number;
  /** Latency objectives: requests slower than this are bad. */
  thresholdSeconds?: number;
  /** The rolling window the objective is measured over. */
  windowMs: number;
}

/** A burn-rate alert: fires when both windows burn faster than `burnRate`. */
export interface BurnAlert {
  severity: "page" | "ticket";
  longWindowMs: number;
  shortWindowMs: number;
  /** Multiple of the rate that would spend the budget exactly over the SLO window. */
  burnRate: number;
}

const MIN = 60_000;
const HOUR = 60 * MIN;

/**
 * The SRE workbook's recommendation for a 30-day SLO: page when 2% of the budget goes in an hour
 * (14.4×, confirmed over 5 minutes), open a ticket when 5% goes in six hours (6×, over 30 minutes).
 */
export const BURN_ALERTS: readonly BurnAlert[] = Object.freeze([
  { severity: "page", longWindowMs: HOUR, shortWindowMs: 5 * MIN, burnRate: 14.4 },
  { severity: "ticket", longWindowMs: 6 * HOUR, shortWindowMs: 30 * MIN, burnRate: 6 },
]);

type SloSpec = NonNullable<ServiceSpec["slos"]>[number];

/** The objectives of one service's `slos` (threshold and window already in ms, as the schema gives them). */
export function objectivesOf(service: string, slos: readonly SloSpec[] | undefined): SloObjective[] {
  const out: SloObjective[] = [];
  for (const s of slos ?? []) {
    if (s.availability !== undefined) out.push({ service, slo: s.name, objective: "availability", target: percent(s.availability), windowMs: s.window });
    if (s.latency !== undefined) {
      out.push({ service, slo: s.name, objective: "latency", target: percent(s.latency.percentile), thresholdSeconds: s.latency.threshold / 1000, windowMs: s.window });
    }
  }
  return out;
}

/**
 * Every objective of a manifest, or of the services the store holds (their `spec` is the
 * validated ServiceSpec as plain data).
 *
 * @example
 * const objectives = objectivesFromServices(await store.listServices(project));
 */
export function objectivesFromServices(services: ReadonlyArray<{ name: string; spec: Record<string, unknown> | ServiceSpec }>): SloObjective[] {
  return services.flatMap((s) => objectivesOf(s.name, (s.spec as ServiceSpec).slos));
}

export function objectivesFromManifest(manifest: Manifest): SloObjective[] {
  return Object.entries(manifest.services).flatMap(([name, spec]) => objectivesOf(name, spec.slos));
}

/** 99.9 → 0.999, without the float noise of a plain division (0.9990000000000001). */
function percent(p: number): number {
  return Number((p / 100).toPrecision(12));
}

/** Stable identity of an objective: `service/slo/objective`. */
export function objectiveKey(o: Pick<SloObjective, "service" | "slo" | "objective">): string {
  return `${o.service}/${o.slo}/${o.objective}`;
}

/** "5m", "1h", "30d": the shortest exact spelling of a window. */
export function formatWindow(ms: number): string {
  for (const [unit, size] of [["d", 24 * HOUR], ["h", HOUR], ["m", MIN], ["s", 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Share of bad requests of an objective over a window: 5xx for availability, slow for latency. */
export async function badRatio(source: MetricsSource, o: SloObjective, windowMs: number, at: number): Promise<number | undefined> {
  if (o.objective === "availability") return source.errorRatio({ service: o.service, window: windowMs, at });
  return source.slowRatio({ service: o.service, thresholdSeconds: o.thresholdSeconds ?? 0, window: windowMs, at });
}

/** Burn rates by window (ms); undefined where the window saw no requests. */
export type BurnRates = Map<number, number | undefined>;

/** The burn rate over each window the alerts use: bad ratio / (1 - target). */
export async function burnRates(source: MetricsSource, o: SloObjective, at: number, alerts: readonly BurnAlert[] = BURN_ALERTS): Promise<BurnRates> {
  const windows = [...new Set(alerts.flatMap((a) => [a.shortWindowMs, a.longWindowMs]))].sort((a, b) => a - b);
  const budget = 1 - o.target;
  const ratios = await Promise.all(windows.map((w) => badRatio(source, o, w, at)));
  return new Map(windows.map((w, i) => [w, ratios[i] === undefined ? undefined : (ratios[i] as number) / budget]));
}

/** Alerts whose two windows both burn faster than their threshold (no traffic burns nothing). */
export function firingAlerts(rates: BurnRates, alerts: readonly BurnAlert[] = BURN_ALERTS): BurnAlert[] {
  return alerts.filter((a) => (rates.get(a.longWindowMs) ?? 0) > a.burnRate && (rates.get(a.shortWindowMs) ?? 0) > a.burnRate);
}

/** Whether an alert has stopped: both of its windows under its threshold. */
export function alertClear(rates: BurnRates, a: BurnAlert): boolean {
  return (rates.get(a.longWindowMs) ?? 0) < a.burnRate && (rates.get(a.shortWindowMs) ?? 0) < a.burnRate;
}

/** Burn rates as plain JSON keyed by window ("5m": 16.2); windows without traffic left out. */
export function burnRatesJson(rates: BurnRates): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [w, r] of rates) if (r !== undefined) out[formatWindow(w)] = round(r);
  return out;
}

export function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

/** Where an objective stands over its window (for `keelson slo`). */
export interface SloStatus {
  service: string;
  slo: string;
  objective: "availability" | "latency";
  target: number;
  thresholdSeconds?: number;
  /** The objective's window, e.g. "30d". */
  window: string;
  /** The window actually measured: the objective's, cut to what the source keeps. */
  measuredWindow: string;
  /** Share of bad requests over the measured window; undefined without requests. */
  badRatio: number | undefined;
  /** Share of good requests (the SLI). */
  sli: number | undefined;
  /** Error budget left: 1 untouched, 0 spent, below 0 overspent; undefined without requests. */
  budgetRemaining: number | undefined;
  /** Current burn rates by alert window ("5m", "1h", …). */
  burnRates: Record<string, number>;
}

/**
 * The error budget left of each objective over its window. A source that keeps less than the
 * window (the built-in store keeps 7 days) is asked about what it keeps, and says so.
 */
export async function sloStatus(options: { source: MetricsSource; objectives: readonly SloObjective[]; now?: () => number; alerts?: readonly BurnAlert[] }): Promise<SloStatus[]> {
  const at = (options.now ?? Date.now)();
  const { source } = options;
  return Promise.all(
    options.objectives.map(async (o) => {
      const measured = Math.min(o.windowMs, source.retentionMs ?? Infinity);
      const [bad, rates] = await Promise.all([badRatio(source, o, measured, at), burnRates(source, o, at, options.alerts)]);
      const budget = 1 - o.target;
      return {
        service: o.service,
        slo: o.slo,
        objective: o.objective,
        target: o.target,
        ...(o.thresholdSeconds === undefined ? {} : { thresholdSeconds: o.thresholdSeconds }),
        window: formatWindow(o.windowMs),
        measuredWindow: formatWindow(measured),
        badRatio: bad,
        sli: bad === undefined ? undefined : 1 - bad,
        budgetRemaining: bad === undefined ? undefined : round(1 - bad / budget),
        burnRates: burnRatesJson(rates),
      };
    }),
  );
}
