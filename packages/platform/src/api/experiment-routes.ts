// The experiment endpoints of the control-plane API: the SDK's batched exposure and conversion
// events in, an experiment's results out.
import { ExperimentEventBatchSchema, KeelsonError } from "@keelson/protocol";
import type { Experiments, FlagUsage } from "../flags/index.js";
import { readJson, sendJson, type Route } from "./http.js";


function invalid(message: string): KeelsonError {
  return new KeelsonError("KEELSON_ERR_INVALID_INPUT", message);
}

/** Registers POST /v1/experiments/events and GET /v1/experiments/:flag/results. */
export function addExperimentRoutes(route: Route, deps: { experiments: Experiments; usage?: FlagUsage }): void {
  const { experiments, usage } = deps;

  route("POST", "/v1/experiments/events", "evaluate", async (req, res) => {
    // readJson bounds the body (1 MiB); the schema bounds the events (1,000) and their fields.
    const parsed = ExperimentEventBatchSchema.safeParse(await readJson(req));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`, { details: { issues: parsed.error.issues.slice(0, 10) } });
    }
    // The batch's evaluation counts (any flag type) feed stale-flag detection.
    const evaluations = parsed.data.evaluations && usage ? usage.recordAll(parsed.data.evaluations) : undefined;
    const result = await experiments.ingest(parsed.data.events);
    sendJson(res, 200, evaluations === undefined ? result : { ...result, evaluations });
  });

  route("GET", "/v1/experiments/:flag/results", "read", async (_req, res, params, u) => {
    const metric = u.searchParams.get("metric") ?? undefined;
    const control = u.searchParams.get("control") ?? undefined;
    const alphaText = u.searchParams.get("alpha");
    if (metric !== undefined && (metric.length === 0 || metric.length > 128)) throw invalid(`metric: expected an event name of 1-128 characters, got ${JSON.stringify(metric)}`);
    if (control !== undefined && control.length === 0) throw invalid("control: expected a variant name, got an empty string");
    const alpha = alphaText === null ? undefined : Number(alphaText);
    if (alpha !== undefined && !(alpha > 0 && alpha <= 0.5)) throw invalid(`alpha: expected a number in (0, 0.5], e.g. 0.05 for 95% intervals, got ${JSON.stringify(alphaText)}`);
    sendJson(res, 200, await experiments.results(params.flag as string, { ...(metric !== undefined ? { metric } : {}), ...(control !== undefined ? { control } : {}), ...(alpha !== undefined ? { alpha } : {}) }));
  });
}
