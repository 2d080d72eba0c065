// The flag and experiment endpoints as the Flags views use them: typed calls over Api.get/send,
// and the flag validation issues of a refused change mapped to the editor's fields.
import type { FlagDefinition, FlagType } from "@keelson/protocol";
import { ApiError, type Api } from "./api.js";

/** GET /v1/flags: the whole set at one revision. */
export interface FlagSetView {
  revision: number;
  updatedAt: string | null;
  flags: Record<string, FlagDefinition>;
}

/** GET /v1/flags/:key. */
export interface FlagDetail {
  key: string;
  revision: number;
  flag: FlagDefinition;
  /** Declared in keelson.yaml at the last `keelson up`, which puts the declared definition back. */
  declared?: boolean;
  /** The definition's tag (also the etag): sent back as If-Match, a change made meanwhile is refused. */
  tag?: string;
}

/** One difference between two definitions: a dotted path and the values on each side (absent: none). */
export interface FlagDiffEntry {
  path: string;
  before?: unknown;
  after?: unknown;
}

/** GET /v1/flags/:key/history: one change, newest first. */
export interface FlagChange {
  seq: number;
  at: string;
  actor: string;
  kind: string;
  revision: number;
  before: FlagDefinition | null;
  after: FlagDefinition | null;
  diff: FlagDiffEntry[];
  /** "manifest" (`keelson up`) or "import" when not a direct edit. */
  source?: string;
  rollbackTo?: number;
  scheduled?: string;
}

/** GET /v1/flags/stale: one flag nobody evaluates or changes any more. */
export interface StaleFlag {
  flag: string;
  type?: FlagType;
  owner?: string;
  reasons: Array<"not-evaluated" | "unchanged">;
  why: string[];
  evaluations: number;
}

export interface StaleReport {
  days: number;
  unchangedDays: number;
  countingSince: string;
  flags: StaleFlag[];
}

/** GET /v1/flags/usage: evaluations counted per flag since `since`. */
export interface FlagUsageView {
  since: string;
  flags: Record<string, { lastEvaluatedAt: string; evaluations: number }>;
}

export interface Interval {
  estimate: number;
  low: number;
  high: number;
}

/** GET /v1/experiments/:flag/results (the fields the view shows). */
export interface ExperimentResults {
  flag: string;
  metric?: string;
  metrics: string[];
  control: string;
  alpha: number;
  variants: Array<{
    variant: string;
    users: number;
    conversions: number;
    rate: number | undefined;
    ci: { low: number; high: number } | undefined;
    events: number;
  }>;
  comparisons: Array<{ variant: string; control: string; absolute: Interval | undefined; relative: Interval | undefined; verdict: string }>;
  srm: { checked: boolean; chiSquared: number; df: number; p: number; broken: boolean; expected: Record<string, number> };
  verdict: string;
  winner?: string;
  weightsFrom: "fractional" | "equal";
  notes: string[];
}

const flagPath = (key: string, rest = "") => `/v1/flags/${encodeURIComponent(key)}${rest}`;

/** The flag calls of the dashboard, bound to one Api. */
export function flagsApi(api: Api) {
  return {
    list: (signal?: AbortSignal) => api.get<FlagSetView>("/v1/flags", signal),
    stale: (signal?: AbortSignal) => api.get<StaleReport>("/v1/flags/stale", signal),
    usage: (signal?: AbortSignal) => api.get<FlagUsageView>("/v1/flags/usage", signal),
    flag: (key: string, signal?: AbortSignal) => api.get<FlagDetail>(flagPath(key), signal),
    history: async (key: string, signal?: AbortSignal) => (await api.get<{ changes: FlagChange[] }>(flagPath(key, "/history?limit=50"), signal)).changes,
    put: (key: string, definition: FlagDefinition, ifMatch?: string) => api.send<FlagDetail>("PUT", flagPath(key), definition, ifMatch === undefined ? {} : { "if-match": ifMatch }),
    kill: (key: string) => api.send<FlagDetail>("POST", flagPath(key, "/kill")),
    rollback: (key: string, seq: number) => api.send<{ key: string; revision: number; flag: FlagDefinition | null }>("POST", flagPath(key, "/rollback"), { to: seq }),
    results: (key: string, metric: string | undefined, signal?: AbortSignal) =>
      api.get<ExperimentResults>(`/v1/experiments/${encodeURIComponent(key)}/results${metric === undefined ? "" : `?metric=${encodeURIComponent(metric)}`}`, signal),
  };
}

export type FlagsApi = ReturnType<typeof flagsApi>;

/** The editor's fields; "general" collects what no field shows (unknown fields, prerequisites, the set). */
export type FlagField = "state" | "defaultVariant" | "variants" | "targeting" | "description" | "general";

/** One validation issue of a refused change: the field it belongs to and its path inside the flag. */
export interface FieldIssue {
  field: FlagField;
  /** Dotted, relative to the flag ("targeting.if.0.bogus"); outside it, from the set ("$evaluators.staff"). */
  path: string;
  message: string;
}

const FIELDS: ReadonlySet<string> = new Set(["state", "defaultVariant", "variants", "targeting", "description"]);

/**
 * The issues of a refused PUT /v1/flags/:key, each at its field, from the error's
 * `details.issues` (paths like ["flags", key, "targeting", "if", 0]); an error without them is
 * one general issue with its message. Undefined when the API did not refuse the input (400).
 *
 * @example
 * fieldIssues(err, "checkout"); // [{ field: "targeting", path: "targeting.if.0.bogus", message: 'unknown operator "bogus"' }]
 */
export function fieldIssues(err: unknown, key: string): FieldIssue[] | undefined {
  if (!(err instanceof ApiError) || err.status !== 400) return undefined;
  const raw = (err.details as { issues?: unknown } | undefined)?.issues;
  const issues = (Array.isArray(raw) ? (raw as Array<{ path?: unknown; message?: unknown }>) : []).filter(
    (i): i is { path: Array<string | number>; message: string } => Array.isArray(i.path) && typeof i.message === "string",
  );
  if (issues.length === 0) return [{ field: "general", path: "", message: err.message }];
  return issues.map((i) => {
    const inFlag = i.path[0] === "flags" && String(i.path[1]) === key;
    const rest = (inFlag ? i.path.slice(2) : i.path).map(String);
    const first = rest[0];
    const field: FlagField = inFlag && first !== undefined && FIELDS.has(first) ? (first as FlagField) : "general";
    return { field, path: rest.join("."), message: i.message };
  });
}
