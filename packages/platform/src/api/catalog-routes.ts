// The catalog endpoints of the control-plane API: services with owners, links, APIs and
// declared-versus-observed dependencies, teams, and scorecards. Read-only; the catalog domain
// builds the answers, this file wires its inputs (replicas, traces, stale flags) and checks queries.
import { KeelsonError } from "@keelson/protocol";
import { createCatalogService, type CatalogService } from "../catalog/index.js";
import { findStaleFlags, type FlagService, type FlagUsage } from "../flags/index.js";
import type { RuntimeDriver } from "../runtime/index.js";
import type { Store } from "../store/index.js";
import { buildServiceMap, type TraceStore } from "../telemetry/index.js";
import { sendJson, type Route } from "./http.js";

export interface CatalogRoutesDeps {
  store: Store;
  project: string;
  /** Live replicas (ready counts). */
  driver: Pick<RuntimeDriver, "list">;
  /** Stale flags count against the services of the flag's owner. */
  flags: FlagService;
  usage: FlagUsage;
  /** Observed dependencies come from the trace-derived service map; without traces there are none. */
  traces?: TraceStore;
  now?: () => Date;
  /** The period of traces the observed dependencies cover (default 15 minutes, as GET /v1/service-map). */
  observedWindowMs?: number;
  /** How old derived inputs may get before they are refreshed (see createCatalogService; default 10 s). */
  cacheMs?: number;
  log?: { warn(obj: object, msg?: string): void };
}

const NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TAG = /^[a-z0-9][a-z0-9.-]{0,39}$/;

/** An optional query parameter that must match `pattern`; 400 naming it otherwise. */
function queryParam(u: URL, name: string, pattern: RegExp, expected: string): string | undefined {
  const values = u.searchParams.getAll(name);
  if (values.length === 0) return undefined;
  const [value] = values;
  if (values.length > 1 || value === undefined || !pattern.test(value)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${name}: expected ${expected}, got ${JSON.stringify(values.length > 1 ? values : value)}`);
  return value;
}

const teamParam = (u: URL) => queryParam(u, "team", NAME, 'one team name (lowercase letters, digits and "-")');
const tagParam = (u: URL) => queryParam(u, "tag", TAG, 'one tag (lowercase letters, digits, "." and "-")');

/**
 * Registers GET /v1/catalog, /v1/catalog/services/:name, /v1/teams, /v1/teams/:name and
 * /v1/scorecards; returns the catalog they read.
 */
export function addCatalogRoutes(route: Route, deps: CatalogRoutesDeps): CatalogService {
  const { store, project, flags, usage, traces } = deps;
  const now = deps.now ?? (() => new Date());
  const windowMs = deps.observedWindowMs ?? 15 * 60_000;
  const catalog = createCatalogService({
    store,
    project,
    now,
    ...(deps.cacheMs !== undefined ? { cacheMs: deps.cacheMs } : {}),
    onError: (err, what) => deps.log?.warn({ err }, `catalog: refreshing the ${what} failed; the last one stays in use`),
    replicas: () => deps.driver.list().flatMap((r) => (r.spec.project === project ? [{ service: r.spec.service, release: r.spec.release, state: r.state }] : [])),
    ...(traces ? { observed: async () => buildServiceMap(await traces.listSpans({ fromMs: now().getTime() - windowMs }), { windowMs }) } : {}),
    staleFlags: async () => (await findStaleFlags({ flags, usage, now: now() })).flags.map((f) => ({ flag: f.flag, owner: f.owner, why: f.why })),
  });

  route("GET", "/v1/catalog", "read", async (_req, res, _p, u) => {
    const team = teamParam(u);
    const tag = tagParam(u);
    // Entries that did not change since the last request are not serialized again.
    const text = await catalog.listJson({ ...(team !== undefined ? { team } : {}), ...(tag !== undefined ? { tag } : {}) });
    res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
    res.end(text);
  });
  route("GET", "/v1/catalog/services/:name", "read", async (_req, res, params) => {
    const name = params.name ?? "";
    const detail = await catalog.service(name);
    if (detail === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `service "${name}" does not exist in project "${project}"`);
    sendJson(res, 200, detail);
  });
  route("GET", "/v1/teams", "read", async (_req, res) => sendJson(res, 200, { teams: await catalog.teams() }));
  route("GET", "/v1/teams/:name", "read", async (_req, res, params) => {
    const name = params.name ?? "";
    const team = await catalog.team(name);
    if (team === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `team "${name}" is neither declared under teams nor the owner of a service in project "${project}"`);
    sendJson(res, 200, team);
  });
  route("GET", "/v1/scorecards", "read", async (_req, res, _p, u) => {
    const team = teamParam(u);
    sendJson(res, 200, await catalog.scorecards(team !== undefined ? { team } : {}));
  });
  return catalog;
}
