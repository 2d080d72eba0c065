// The DORA endpoints of the control-plane API: the four keys for the project, a team or a
// service (JSON or CSV), the deployment list `keelson dora import-git` works from, and the import
// of the commits each deployment brought.
import { KeelsonError } from "@keelson/protocol";
import type { IncomingMessage } from "node:http";
import { createDoraReporter, doraCsv, importDoraChanges, parseDoraChanges, parseDoraWindow } from "../catalog/index.js";
import type { Store } from "../store/index.js";
import { noteChange } from "./access.js";
import { readJson, sendJson, type Route } from "./http.js";

export interface DoraRouteDeps {
  store: Store;
  project: string;
  actorOf: (req: IncomingMessage) => string;
  /** Throws NOT_FOUND for a service the project does not have; returns its name. */
  serviceParam: (name: string | undefined) => Promise<string>;
  /** The clock windows end at (default: the system clock). */
  now?: () => Date;
}

interface DoraQuery {
  team?: string;
  service?: string;
  windowMs?: number;
  format: "json" | "csv";
  /** JSON only: list every deployment of the window (default); false leaves the list out. */
  deployments: boolean;
}

const QUERY_KEYS = ["team", "service", "window", "format", "deployments"];

/** The query of GET /v1/dora: every parameter checked, unknown ones refused with the known ones named. */
function doraQuery(u: URL, allowed: readonly string[] = QUERY_KEYS): DoraQuery {
  for (const key of new Set(u.searchParams.keys())) {
    if (!allowed.includes(key)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${key}: not a parameter of ${u.pathname} (parameters: ${allowed.join(", ")})`);
    if (u.searchParams.getAll(key).length > 1) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${key}: given more than once`);
  }
  const name = (key: "team" | "service"): string | undefined => {
    const v = u.searchParams.get(key);
    if (v === null) return undefined;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(v)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${key}: expected a ${key} name, got ${JSON.stringify(v.slice(0, 100))}`);
    return v;
  };
  const format = u.searchParams.get("format") ?? "json";
  if (format !== "json" && format !== "csv") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `format: expected json or csv, got ${JSON.stringify(format.slice(0, 100))}`);
  const window = u.searchParams.get("window");
  const team = name("team");
  const service = name("service");
  // The dashboard reloads the report on every event: the deployment list can be most of a year's answer.
  const list = u.searchParams.get("deployments") ?? "true";
  if (list !== "true" && list !== "false") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `deployments: expected true or false, got ${JSON.stringify(list.slice(0, 100))}`);
  if (list === "false" && format === "csv") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "deployments: the CSV export is the list of deployments; deployments=false is for format=json");
  return { ...(team ? { team } : {}), ...(service ? { service } : {}), ...(window !== null ? { windowMs: parseDoraWindow(window) } : {}), format, deployments: list === "true" };
}

/**
 * Registers GET /v1/dora (the four keys; `team`, `service`, `window`, `format=json|csv`,
 * `deployments=false` to leave the list of deployments out of the JSON),
 * GET /v1/dora/deployments (the deployments of the window, for `keelson dora import-git`) and
 * POST /v1/services/:name/dora/changes (the commits each deployment brought; admins and deployers
 * of the service's team, audited).
 */
export function addDoraRoutes(route: Route, deps: DoraRouteDeps): void {
  const { store, project } = deps;
  const now = deps.now ?? (() => new Date());
  const dora = createDoraReporter({ store, project });
  const report = (q: DoraQuery) => dora.report({ now: now(), ...(q.windowMs !== undefined ? { windowMs: q.windowMs } : {}), ...(q.team ? { team: q.team } : {}), ...(q.service ? { service: q.service } : {}) });

  route("GET", "/v1/dora", "read", async (_req, res, _params, u) => {
    const q = doraQuery(u);
    const result = await report(q);
    if (q.format === "csv") {
      const text = doraCsv(result);
      const scope = q.service ?? q.team ?? project;
      res.writeHead(200, {
        "content-type": "text/csv; charset=utf-8",
        "content-length": Buffer.byteLength(text),
        "content-disposition": `attachment; filename="dora-${scope}-${result.window.to.slice(0, 10)}.csv"`,
      });
      res.end(text);
      return;
    }
    if (q.deployments) sendJson(res, 200, result);
    else {
      const { deployments: _left, ...summary } = result;
      sendJson(res, 200, summary);
    }
  });

  route("GET", "/v1/dora/deployments", "read", async (_req, res, _params, u) => {
    const q = doraQuery(u, ["team", "service", "window"]);
    const result = await report(q);
    sendJson(res, 200, { scope: result.scope, window: result.window, deployments: result.deployments });
  });

  route("POST", "/v1/services/:name/dora/changes", { deploy: "name" }, async (req, res, params) => {
    const name = await deps.serviceParam(params.name);
    const request = parseDoraChanges(await readJson(req));
    const result = await importDoraChanges({ store, project, service: name, request, actor: deps.actorOf(req), now: now() });
    dora.changesImported();
    noteChange(req, { after: result });
    sendJson(res, 200, { service: name, ...result });
  });
}
