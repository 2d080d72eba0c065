// The service map's logic apart from rendering and layout (map-layout.ts): one list of links
// (observed calls and declared calls nobody made), the color bucket of each by error ratio, the
// words that describe it, and the SVG path through the points the layout gives an edge.
import { EXTERNAL_CALLER, type ServiceMapData } from "./map-api.js";

/** no traffic (grey), under 1 % failed (green), under 5 % (amber), 5 % and more (red). */
export type ErrorBucket = "none" | "ok" | "warn" | "bad";

/** Upper bounds (exclusive) of the ok and warn buckets. */
export const ERROR_THRESHOLDS = { ok: 0.01, warn: 0.05 } as const;

export function errorBucket(calls: number, errorRatio: number): ErrorBucket {
  if (calls === 0) return "none";
  if (errorRatio < ERROR_THRESHOLDS.ok) return "ok";
  if (errorRatio < ERROR_THRESHOLDS.warn) return "warn";
  return "bad";
}

/** "0 %", "0.4 %", "2.5 %", "50 %": one decimal below 10 %, whole percents above. */
export function formatRatio(ratio: number): string {
  const pct = ratio * 100;
  if (pct === 0) return "0 %";
  if (pct < 10) return `${Number(pct.toFixed(1))} %`;
  return `${Math.round(pct)} %`;
}

/**
 * How a link stands against the manifest: declared and used, used but not declared, declared but
 * unused, or a call from outside (no declaration applies).
 */
export type Declaration = "declared" | "undeclared" | "unused" | "external";

export interface MapLink {
  /** `from->to`, unique in a map. */
  id: string;
  from: string;
  to: string;
  declaration: Declaration;
  bucket: ErrorBucket;
  calls: number;
  errors: number;
  errorRatio: number;
  ratePerSecond: number;
  p95Ms: number;
  /** Short words drawn on the edge; undefined for a healthy declared call. */
  label: string | undefined;
  /** A sentence for screen readers and tooltips. */
  description: string;
}

const DECLARATION_WORDS: Record<Declaration, string> = {
  declared: "declared in the manifest",
  undeclared: "not declared in the caller's calls",
  unused: "declared in the manifest but not called in this window",
  external: "from outside the project",
};

/** Latency as the map shows it: "0.8 ms", "12 ms", "1.2 s". */
export function formatMs(ms: number): string {
  if (ms < 9.95) return `${Number(ms.toFixed(1))} ms`;
  if (ms < 999.5) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Observed calls and unused declarations as one list, sorted by caller, then callee. */
export function mapLinks(map: ServiceMapData): MapLink[] {
  const links: MapLink[] = [];
  for (const e of map.edges) {
    const declaration: Declaration = e.from === EXTERNAL_CALLER ? "external" : e.undeclared ? "undeclared" : "declared";
    const parts = [declaration === "undeclared" ? "not declared" : undefined, e.errors > 0 ? `${formatRatio(e.errorRatio)} errors` : undefined].filter((p) => p !== undefined);
    links.push({
      id: `${e.from}->${e.to}`,
      from: e.from,
      to: e.to,
      declaration,
      bucket: errorBucket(e.calls, e.errorRatio),
      calls: e.calls,
      errors: e.errors,
      errorRatio: e.errorRatio,
      ratePerSecond: e.ratePerSecond,
      p95Ms: e.p95Ms,
      label: parts.length > 0 ? parts.join(" · ") : undefined,
      description: `${e.from} calls ${e.to}: ${e.calls} ${e.calls === 1 ? "call" : "calls"}, ${e.errors} failed (${formatRatio(e.errorRatio)} errors), p95 ${formatMs(e.p95Ms)}; ${DECLARATION_WORDS[declaration]}.`,
    });
  }
  for (const u of map.unused) {
    links.push({
      id: `${u.from}->${u.to}`,
      from: u.from,
      to: u.to,
      declaration: "unused",
      bucket: "none",
      calls: 0,
      errors: 0,
      errorRatio: 0,
      ratePerSecond: 0,
      p95Ms: 0,
      label: "unused",
      description: `${u.from} may call ${u.to}: no calls in this window; ${DECLARATION_WORDS.unused}.`,
    });
  }
  return links.sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));
}

/** A smooth SVG path through the layout's points: straight to the first midpoint, curves through the rest. */
export function pathThrough(points: ReadonlyArray<{ x: number; y: number }>): string {
  const [first, ...rest] = points;
  if (first === undefined) return "";
  const r = (v: number) => Math.round(v * 10) / 10;
  let d = `M${r(first.x)},${r(first.y)}`;
  if (rest.length === 0) return d;
  for (let i = 0; i < rest.length - 1; i++) {
    const p = rest[i]!;
    const next = rest[i + 1]!;
    d += ` Q${r(p.x)},${r(p.y)} ${r((p.x + next.x) / 2)},${r((p.y + next.y) / 2)}`;
  }
  const last = rest[rest.length - 1]!;
  return `${d} L${r(last.x)},${r(last.y)}`;
}
