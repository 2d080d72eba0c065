// The pipeline endpoints of the control-plane API: runs of one service or of every service (what
// `keelson runs` and the dashboard's Deploys view list), and a run's log, whole or followed live
// while the run writes it.
import type { ServerResponse } from "node:http";
import { readFile } from "node:fs/promises";
import { KeelsonError } from "@keelson/protocol";
import { findPipelineLog, followPipelineLog, listPipelineRuns, pipelineLogFile, RUN_ID_PATTERN, type PipelineRunner } from "../delivery/index.js";
import type { Store } from "../store/index.js";
import { drained, sendJson, type Route } from "./http.js";

export interface PipelineRouteDeps {
  store: Store;
  project: string;
  stateDir: string;
  /** The runs in progress (the reconciler's pipeline runner). */
  pipelines: Pick<PipelineRunner, "active">;
  /** Throws NOT_FOUND for a service the project does not have; returns its name. */
  serviceParam: (name: string | undefined) => Promise<string>;
  /** How often a followed log is looked at, and the longest a follow lasts (tests shorten them). */
  follow?: { pollMs?: number; maxMs?: number };
}

const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 200;

/** `limit` as a whole number 1–200 (default 20). */
function limitOf(u: URL): number {
  const text = u.searchParams.get("limit");
  if (text === null) return DEFAULT_LIMIT;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `limit: expected a whole number 1-${MAX_LIMIT}, got ${JSON.stringify(text.slice(0, 100))}`);
  return n;
}

export function addPipelineRoutes(route: Route, deps: PipelineRouteDeps): void {
  const { store, project, stateDir, pipelines, serviceParam } = deps;

  /** The run ids in progress, by service. */
  async function activeRuns(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const s of await store.listServices(project)) {
      const run = pipelines.active(s.name)?.run;
      if (run !== undefined) out.set(run, s.name);
    }
    return out;
  }

  route("GET", "/v1/services/:name/pipelines", "read", async (_req, res, params, u) => {
    const name = await serviceParam(params.name);
    const limit = Number(u.searchParams.get("limit") ?? DEFAULT_LIMIT);
    const active = pipelines.active(name)?.run;
    sendJson(res, 200, { service: name, runs: await listPipelineRuns({ store, project, service: name, limit: Number.isFinite(limit) ? limit : DEFAULT_LIMIT, ...(active ? { activeRun: active } : {}) }) });
  });

  // Every service's runs at once (or one service's with ?service=): one request where the dashboard would need one per service.
  route("GET", "/v1/pipelines", "read", async (_req, res, _params, u) => {
    const service = u.searchParams.get("service");
    const name = service === null || service === "" ? undefined : await serviceParam(service);
    const limit = limitOf(u);
    const active = await activeRuns();
    sendJson(res, 200, { runs: await listPipelineRuns({ store, project, ...(name === undefined ? {} : { service: name }), limit, activeRuns: active.keys() }) });
  });

  // ?follow=1 on a run in progress streams the log as it is written and ends when the run ends;
  // on a finished run it is the whole log, as without it.
  route("GET", "/v1/pipelines/:run/log", "read", async (_req, res, params, u) => {
    const run = params.run ?? "";
    if (!RUN_ID_PATTERN.test(run)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `run: expected a run id like run-20261126-221500-ab12cd, got "${run.slice(0, 100)}"`);
    const follow = u.searchParams.get("follow");
    if (follow !== null && follow !== "1" && follow !== "0") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `follow: expected 1 or 0, got ${JSON.stringify(follow.slice(0, 100))}`);
    const file = await findPipelineLog(stateDir, run);
    const service = follow === "1" ? (await activeRuns()).get(run) : undefined;
    if (service === undefined) {
      const text = file === undefined ? undefined : await readFile(file, "utf8").catch(() => undefined);
      if (text === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no log for pipeline run "${run}"`);
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end(text);
      return;
    }
    await streamLog(res, { file: file ?? pipelineLogFile(stateDir, service, run), running: () => pipelines.active(service)?.run === run });
  });

  async function streamLog(res: ServerResponse, target: { file: string; running: () => boolean }): Promise<void> {
    // The client went away (or the control plane is closing its connections): stop following.
    const abort = new AbortController();
    res.once("close", () => abort.abort());
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
    res.flushHeaders();
    for await (const text of followPipelineLog({ ...target, signal: abort.signal, ...deps.follow })) {
      if (res.destroyed) break;
      if (!res.write(text)) await drained(res);
    }
    res.end();
  }
}
