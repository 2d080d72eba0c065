// The Deploys view's calls to the control-plane API: pipeline runs of every service, a run's log
// (followed live while the run runs), a service's rollout, and deploy, promote and abort with
// their outcome in words.
import { ApiError, query, type Api } from "./api.js";
import { firstLine, shortId, splitLines } from "./deploys-model.js";

/** GET /v1/pipelines: one run (the platform's PipelineRunView). */
export interface PipelineRun {
  run: string;
  service: string;
  status: "running" | "succeeded" | "failed" | "interrupted";
  trigger: string | undefined;
  actor: string;
  release: string | undefined;
  commit: string | undefined;
  commitSubject?: string;
  commitAuthor?: string;
  startedAt: string;
  finishedAt: string | undefined;
  durationMs: number | undefined;
  stages: Array<{ name: string; status: "running" | "succeeded" | "failed"; startedAt?: string; durationMs?: number; cached?: boolean; why?: string }>;
  /** Every stage of the run in order, once its first stage started. */
  planned?: string[];
  message: string | undefined;
}

/** A canary step as the manifest stores it (pause durations in milliseconds). */
export type DeployStep = { setWeight: number } | { pause: number | "manual" } | { analysis: unknown } | { match: unknown };

/** A rollout's state (the fields the view uses of the platform's RolloutState). */
export interface RolloutState {
  id: string;
  service: string;
  strategy: "rolling" | "blueGreen" | "canary" | "rollback";
  phase: "progressing" | "paused" | "promoting" | "switched" | "finishing" | "succeeded" | "failed" | "rolled-back";
  from: string | undefined;
  to: string;
  step: number;
  weight: number;
  actor: string;
  startedAt: string;
  pausedUntil?: string;
  analysis?: unknown;
  message?: string;
}

/** GET /v1/services/:name/rollout. */
export interface RolloutDetail {
  service: string;
  rollout: RolloutState | null;
  strategy: string;
  steps: DeployStep[];
}

/** What an action ended with, in words: `ok` is shown as a status, otherwise as an alert. */
export interface ActionOutcome {
  ok: boolean;
  text: string;
}

/** Runs newest first, of every service or of one. */
export async function listRuns(api: Api, filter: { service?: string; limit: number }, signal?: AbortSignal): Promise<PipelineRun[]> {
  return (await api.get<{ runs: PipelineRun[] }>(`/v1/pipelines${query({ service: filter.service, limit: filter.limit })}`, signal)).runs;
}

export function rolloutOf(api: Api, service: string, signal?: AbortSignal): Promise<RolloutDetail> {
  return api.get<RolloutDetail>(`/v1/services/${encodeURIComponent(service)}/rollout`, signal);
}

/**
 * Reads a run's log into `onText` as it arrives. With `follow` (a running run) the API keeps the
 * answer open and sends each line as the run writes it, ending when the run ends.
 */
export async function readRunLog(api: Api, run: string, options: { follow: boolean; signal: AbortSignal; onText: (text: string) => void }): Promise<void> {
  const res = await api.fetch(`/v1/pipelines/${encodeURIComponent(run)}/log${options.follow ? "?follow=1" : ""}`, { signal: options.signal });
  if (res.body === null) {
    options.onText(await res.text());
    return;
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    options.onText(value);
  }
}

function failed(err: unknown): ActionOutcome {
  return { ok: false, text: err instanceof Error ? err.message : String(err) };
}

/** Ends a canary's pause: the rollout goes on with its next step. */
export async function promote(api: Api, service: string): Promise<ActionOutcome> {
  try {
    const { rollout } = await api.send<{ rollout: RolloutState }>("POST", `/v1/services/${encodeURIComponent(service)}/promote`, {});
    return { ok: true, text: `Promoted ${service}: rollout ${rollout.id} goes on (${rollout.weight}% of traffic on the new release).` };
  } catch (err) {
    if (err instanceof ApiError) return failed(err);
    throw err;
  }
}

/** Stops the rollout under way and goes back to the release before it. */
export async function abort(api: Api, service: string): Promise<ActionOutcome> {
  try {
    const { rollout } = await api.send<{ rollout: RolloutState }>("POST", `/v1/services/${encodeURIComponent(service)}/abort`, {});
    return { ok: true, text: `Aborted rollout ${rollout.id} of ${service}${rollout.from === undefined ? "" : `: going back to ${shortId(rollout.from)}`}.` };
  } catch (err) {
    if (err instanceof ApiError) return failed(err);
    throw err;
  }
}

/** One line of a deploy's NDJSON progress (the kinds the view reports). */
type DeployLine =
  | { type: "pipeline"; status: string; run?: string; release?: string; message?: string }
  | { type: "done"; result: { release: string; outcome: string; run?: string; message?: string } }
  | { type: "error"; error: { message: string } }
  | { type: string };

/**
 * Runs the service's pipeline over its working tree and starts its rollout (POST
 * /v1/services/:name/deploy, not waiting for the rollout to finish). `onProgress` hears the
 * pipeline start; the outcome comes when the rollout has started or the pipeline failed.
 */
export async function deploy(api: Api, service: string, onProgress: (text: string) => void): Promise<ActionOutcome> {
  let res: Response;
  try {
    res = await api.fetch(`/v1/services/${encodeURIComponent(service)}/deploy`, { method: "POST", body: JSON.stringify({ wait: false, trigger: "dashboard" }) });
  } catch (err) {
    if (err instanceof ApiError) return failed(err);
    throw err;
  }
  let outcome: ActionOutcome | undefined;
  const handle = (line: string) => {
    const item = JSON.parse(line) as DeployLine;
    if (item.type === "pipeline" && "status" in item) {
      if (item.status === "started") onProgress(`Pipeline ${item.run ?? ""} of ${service} is running…`);
      if (item.status === "skipped") onProgress(`${service}: the release is already built; rolling it out…`);
    } else if (item.type === "done" && "result" in item) {
      const r = item.result;
      outcome =
        r.outcome === "unchanged"
          ? { ok: true, text: `Nothing to deploy: ${service} already runs release ${shortId(r.release)}.` }
          : r.outcome === "failed" || r.outcome === "rolled-back"
            ? { ok: false, text: r.message ?? `The rollout of ${shortId(r.release)} failed.` }
            : { ok: true, text: `Deploying ${service}: release ${shortId(r.release)} is rolling out.` };
    } else if (item.type === "error" && "error" in item) {
      outcome = { ok: false, text: firstLine(item.error.message) };
    }
  };
  let buffer = "";
  const reader = res.body?.pipeThrough(new TextDecoderStream()).getReader();
  if (reader !== undefined) {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const { lines, rest } = splitLines(buffer + value);
      buffer = rest;
      for (const line of lines) handle(line);
    }
  }
  if (buffer.trim() !== "") handle(buffer);
  return outcome ?? { ok: false, text: "The control plane ended the deploy without a result." };
}
