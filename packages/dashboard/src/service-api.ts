// The Service view's API calls and the shapes they answer with: the rollout (steps, traffic,
// canary analysis), releases, the autoscaler's decisions, promote and abort, and the logs tail.
// The types mirror what packages/platform sends (delivery's RolloutState, ReleaseView,
// autoscale's AutoscaleStatus) as far as the view reads them.
import type { KeelsonEvent, TrafficSplit } from "@keelson/protocol";
import { query, type Api } from "./api.js";

export type RolloutPhase = "progressing" | "paused" | "promoting" | "switched" | "finishing" | "succeeded" | "failed" | "rolled-back";
export type AnalysisPhase = "Running" | "Successful" | "Failed" | "Inconclusive" | "Error";

/** One version's numbers since an analysis began. Ratios 0-1, latencies in seconds. */
export interface VersionSummary {
  requests: number;
  errors: number;
  /** Absent while the version has served nothing. */
  errorRatio?: number;
  p50?: number;
  p99?: number;
}

/** One check of an analysis: its status and the numbers behind it (the test statistic against its threshold). */
export interface AnalysisCheck {
  name: string;
  status: "pass" | "fail" | "watching" | "no-data";
  detail: string;
}

export interface AnalysisEvidence {
  /** ms since the epoch. */
  at: number;
  elapsedMs: number;
  looks: number;
  canary: VersionSummary;
  baseline: VersionSummary;
  checks: AnalysisCheck[];
}

/** One look of an analysis (what the charts draw). */
export interface AnalysisSample {
  /** ms since the epoch. */
  at: number;
  canary: VersionSummary;
  baseline: VersionSummary;
}

/** A finished analysis: its verdict, why, and the evidence. */
export interface AnalysisRecord {
  step: number;
  phase: AnalysisPhase;
  reason: string;
  dryRun: boolean;
  wouldHave?: { phase: AnalysisPhase; reason: string };
  startedAt: string;
  endedAt: string;
  evidence?: AnalysisEvidence;
  samples?: AnalysisSample[];
}

/** The analysis under way. */
export interface RunningAnalysis {
  step: number;
  run: { startedAt: number; looks: number; phase: AnalysisPhase; reason?: string; evidence?: AnalysisEvidence };
  nextLookAt: string;
  dryRun: boolean;
  samples?: AnalysisSample[];
}

/** A service's last (or current) rollout. */
export interface Rollout {
  id: string;
  service: string;
  strategy: "rolling" | "blueGreen" | "canary" | "rollback";
  from?: string;
  to: string;
  phase: RolloutPhase;
  /** Canary: the step being worked on (0-based). */
  step: number;
  /** Percent of traffic meant for `to`. */
  weight: number;
  actor: string;
  startedAt: string;
  updatedAt: string;
  stepStartedAt: string;
  pausedUntil?: string;
  warmUntil?: string;
  commit?: string;
  /** Why it paused, failed or was rolled back. */
  message?: string;
  /** Canary with analysis: the release id the baseline replicas run under. */
  baseline?: string;
  analysis?: RunningAnalysis;
  analyses?: AnalysisRecord[];
  group?: { id: string; members: string[] };
}

export type DeployStep = { setWeight: number } | { pause: number | "manual" } | { analysis: Record<string, unknown> } | { match: { headers?: Record<string, unknown>; cookies?: Record<string, unknown> } };

/** GET /v1/services/:name/rollout. */
export interface RolloutView {
  service: string;
  rollout: Rollout | null;
  strategy: string;
  steps: DeployStep[];
}

/** GET /v1/services/:name/releases: one release, newest first. */
export interface Release {
  id: string;
  status: "live" | "previous" | "warm" | "failed" | "available";
  createdAt: string;
  commit: string | undefined;
  commitTime: string | undefined;
  pipelineRun: string | undefined;
  deployedBy: string | undefined;
  deployedAt: string | undefined;
  replicas: number;
}

/** One measure the autoscaler read (inflight, rps, cpu, p95). */
export interface MeasureProposal {
  measure: string;
  target: number;
  current?: number;
  ratio?: number;
  proposal?: number;
  invalid?: string;
  note?: string;
}

/** What the autoscaler knows of a service (null before its first look, or without autoscale). */
export interface AutoscaleStatus {
  current: number;
  desired: number;
  min: number;
  max: number;
  metrics: MeasureProposal[];
  lastEvaluationAt?: string;
  held?: { reason: string; message: string; since: string };
  evaluations: Array<{ at: string; from: number; to: number; outcome: "scaled" | "held" | "steady"; reason: string; message: string }>;
}

/** GET /v1/services/:name/autoscale: the status and the last decisions (autoscale.scaled/held, service.activated events). */
export interface AutoscaleView {
  service: string;
  status: AutoscaleStatus | null;
  events: KeelsonEvent[];
}

/** A collected line of a replica's output (GET /v1/services/:name/logs, one JSON object a line). */
export interface LogLine {
  t: string;
  replica: string;
  stream: "stdout" | "stderr";
  line: string;
}

const servicePath = (name: string, rest: string) => `/v1/services/${encodeURIComponent(name)}/${rest}`;

/** The rollout and the traffic split the gateway applies now (null without one). */
export async function loadDelivery(api: Api, name: string, signal: AbortSignal): Promise<{ view: RolloutView; split: TrafficSplit | null }> {
  const [view, traffic] = await Promise.all([api.get<RolloutView>(servicePath(name, "rollout"), signal), api.get<{ split: TrafficSplit | null }>(servicePath(name, "traffic"), signal)]);
  return { view, split: traffic.split };
}

export async function loadReleases(api: Api, name: string, signal: AbortSignal): Promise<Release[]> {
  return (await api.get<{ releases: Release[] }>(servicePath(name, "releases"), signal)).releases;
}

export function loadAutoscale(api: Api, name: string, limit: number, signal: AbortSignal): Promise<AutoscaleView> {
  return api.get<AutoscaleView>(`${servicePath(name, "autoscale")}${query({ limit })}`, signal);
}

/** Ends a pause or an analysis under way (`full`: skips every remaining step). Deployers of the owning team and admins. */
export async function promote(api: Api, name: string, full: boolean): Promise<Rollout> {
  return (await api.send<{ rollout: Rollout }>("POST", servicePath(name, "promote"), full ? { full: true } : {})).rollout;
}

/** Stops the rollout under way and goes back to the release before it. */
export async function abort(api: Api, name: string): Promise<Rollout> {
  return (await api.send<{ rollout: Rollout }>("POST", servicePath(name, "abort"), {})).rollout;
}

/**
 * Opens the logs tail: the last `tail` lines containing `grep` (any case; the API searches, so
 * older matches are found too), then new matching lines as they come, until `signal` aborts.
 */
export function followLogs(api: Api, name: string, options: { tail: number; grep: string; signal: AbortSignal }): Promise<Response> {
  return api.fetch(`${servicePath(name, "logs")}${query({ tail: options.tail, grep: options.grep.trim(), follow: 1 })}`, { signal: options.signal });
}
