// The catalog as the API serves it: gathers the services as applied, the teams, the replicas, the
// service map, stale flags and the event log's facts, and builds the catalog (catalog.ts) per
// request. What is immutable (releases) or append-only (the event log) is cached or followed;
// what is costly to derive and changes slowly (the service map, stale flags, file checks) is
// refreshed in the background once `cacheMs` old; entries whose inputs did not change are reused.
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { KeelsonError, type KeelsonEvent } from "@keelson/protocol";
import type { ServiceSpec } from "../manifest/index.js";
import type { Store } from "../store/index.js";
import type { ServiceMap } from "../telemetry/index.js";
import { buildCatalog, createCatalogMemo, filesToCheck, type CatalogEntry, type CatalogSnapshot, type StaleFlagInput, type TeamView } from "./catalog.js";
import { SCORECARD_RULES, type Scorecard } from "./scorecard.js";
import { createServiceHistory } from "./service-history.js";
import { listTeams } from "./teams.js";

export interface CatalogServiceOptions {
  store: Store;
  project: string;
  /** Replicas as the runtime sees them (default: as the store last recorded them). */
  replicas?: () => ReadonlyArray<{ service: string; release: string; state: string }> | Promise<ReadonlyArray<{ service: string; release: string; state: string }>>;
  /** The trace-derived service map; absent or undefined: no observed dependencies. */
  observed?: () => Promise<ServiceMap | undefined>;
  /** The project's stale flags; absent: the flags rule is unknown. */
  staleFlags?: () => Promise<StaleFlagInput[]>;
  now?: () => Date;
  /** How old the service map, stale flags and file checks may get before they are derived again, in the background (default 10 s). */
  cacheMs?: number;
  /** Told when a background refresh fails (the last value stays in use). */
  onError?: (err: unknown, what: string) => void;
}

export interface CatalogFilter {
  team?: string;
  tag?: string;
}

/** A deploy, rollback or failed rollout of the service, newest first. */
export interface DeployRecord {
  at: string;
  kind: "rollout.succeeded" | "rollout.failed" | "rollback.succeeded";
  release: string | undefined;
  from: string | undefined;
  strategy: string | undefined;
  actor: string;
  why: string | undefined;
}

export interface ServiceDetail extends CatalogEntry {
  scorecardResults: Scorecard["results"];
  deploys: DeployRecord[];
  observedWindowSeconds: number | undefined;
}

export interface CatalogListing {
  services: CatalogEntry[];
  observedWindowSeconds: number | undefined;
}

export interface ScorecardReport {
  rules: Array<{ id: string; title: string; why: string }>;
  services: Scorecard[];
  teams: Array<{ name: string; score: number | undefined; services: number }>;
}

export interface CatalogService {
  list(filter?: CatalogFilter): Promise<CatalogListing>;
  /** The same listing as JSON text, assembled from each entry's text kept while the entry is unchanged (what the API sends). */
  listJson(filter?: CatalogFilter): Promise<string>;
  /** Undefined for a service the project does not have. */
  service(name: string): Promise<ServiceDetail | undefined>;
  teams(): Promise<TeamView[]>;
  team(name: string): Promise<TeamView | undefined>;
  scorecards(filter?: Pick<CatalogFilter, "team">): Promise<ScorecardReport>;
}

const DEPLOY_KINDS = ["rollout.succeeded", "rollout.failed", "rollback.succeeded"] as const;
/** Paths checked per turn of the event loop. */
const FILE_SLICE = 500;

/** A counter that goes up whenever the value given differs in content from the one before (compared only when it is another object). */
function contentVersion(): (value: unknown) => number {
  let last: unknown;
  let lastText: string | undefined;
  let version = 0;
  return (value) => {
    if (lastText !== undefined && value === last) return version;
    const text = JSON.stringify(value ?? null);
    if (text !== lastText) version++;
    last = value;
    lastText = text;
    return version;
  };
}

/**
 * A value computed once, then served as it is while a fresh one is computed in the background
 * once it is `ttlMs` old (stale-while-revalidate): only the very first caller waits. A failed
 * refresh keeps the old value (and is reported); a failed first computation is not kept.
 */
function cached<T>(ttlMs: number, now: () => number, compute: () => Promise<T>, onError: (err: unknown) => void): () => Promise<T> {
  let current: { at: number; value: T } | undefined;
  let running: Promise<T> | undefined;
  const refresh = (t: number) =>
    (running ??= compute()
      .then((value) => {
        current = { at: t, value };
        return value;
      })
      .finally(() => (running = undefined)));
  return async () => {
    const t = now();
    if (current === undefined) return refresh(t);
    if (t - current.at >= ttlMs && running === undefined) refresh(t).catch(onError);
    return current.value;
  };
}

/**
 * The catalog, scorecards and teams of a project.
 *
 * @example
 * const catalog = createCatalogService({ store, project: "shop", observed: async () => serviceMap });
 * (await catalog.list({ team: "commerce" })).services.map((e) => `${e.name} ${e.scorecard.score}`);
 */
export function createCatalogService(options: CatalogServiceOptions): CatalogService {
  const { store, project } = options;
  const now = options.now ?? (() => new Date());
  const ttl = options.cacheMs ?? 10_000;
  const clock = () => now().getTime();
  const history = createServiceHistory({ store, project });
  /** Releases never change: their scan findings are read once (bySeverity undefined: no recorded scan). */
  const findings = new Map<string, { bySeverity: Record<string, number> | undefined }>();
  const onError = options.onError ?? (() => undefined);
  const observed = cached(ttl, clock, async () => (options.observed ? await options.observed() : undefined), (err) => onError(err, "service map"));
  const staleFlags = cached(ttl, clock, async () => (options.staleFlags ? await options.staleFlags() : undefined), (err) => onError(err, "stale flags"));
  /** Whether each path of filesToCheck exists, as last checked. */
  const files = new Map<string, boolean>();
  let filesCheckedAt = -Infinity;
  let filesRunning: Promise<void> | undefined;
  /** Entries reused between requests while nothing they depend on changed (see buildCatalog). */
  const memo = createCatalogMemo();
  /** Bumped when a file's existence changes; with the versions below it makes memoized entries stale. */
  let filesVersion = 0;
  const teamsVersion = contentVersion();
  const mapVersion = contentVersion();
  const staleVersion = contentVersion();

  /**
   * Checks paths with existsSync in slices, yielding between them: for thousands of paths (three
   * OpenAPI names per service) that costs a tenth of one fs.stat promise per path. A link may name
   * a folder (a service's sources): any existing path counts.
   */
  async function statAll(paths: readonly string[]): Promise<void> {
    for (let i = 0; i < paths.length; i += FILE_SLICE) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      for (const p of paths.slice(i, i + FILE_SLICE)) {
        const exists = existsSync(p);
        if (files.get(p) !== exists) filesVersion++;
        files.set(p, exists);
      }
    }
  }

  /** Paths never checked are checked now; all of them again in the background once the last check is `cacheMs` old. */
  async function checkFiles(paths: string[]): Promise<ReadonlyMap<string, boolean>> {
    const unknown = paths.filter((p) => !files.has(p));
    if (unknown.length > 0) await statAll(unknown);
    const t = clock();
    if (unknown.length === paths.length) filesCheckedAt = t;
    else if (t - filesCheckedAt >= ttl && filesRunning === undefined) {
      filesCheckedAt = t;
      filesRunning = statAll(paths)
        .then(() => {
          const current = new Set(paths);
          for (const p of files.keys()) if (!current.has(p)) files.delete(p);
        })
        .catch((err: unknown) => onError(err, "file checks"))
        .finally(() => (filesRunning = undefined));
    }
    return files;
  }

  async function releaseFindings(ids: string[]): Promise<Map<string, Record<string, number>>> {
    await Promise.all(
      ids
        .filter((id) => !findings.has(id))
        .map(async (id) => {
          const rel = await store.getRelease(id);
          // A release not stored (yet) is asked again next time.
          if (rel === undefined) return;
          const f = rel.details.securityFindings as { bySeverity?: unknown } | undefined;
          findings.set(id, { bySeverity: f !== undefined && typeof f.bySeverity === "object" && f.bySeverity !== null ? (f.bySeverity as Record<string, number>) : undefined });
        }),
    );
    const out = new Map<string, Record<string, number>>();
    for (const id of ids) {
      const f = findings.get(id)?.bySeverity;
      if (f !== undefined) out.set(id, f);
    }
    return out;
  }

  async function snapshot(): Promise<CatalogSnapshot> {
    const [project_, records, teams, replicas, map, stale, hist] = await Promise.all([
      store.getProject(project),
      store.listServices(project),
      listTeams(store, project),
      options.replicas ? options.replicas() : store.listReplicas(project).then((rs) => rs.map((r) => ({ service: r.service, release: r.release, state: r.state }))),
      observed(),
      staleFlags(),
      history.read(),
    ]);
    const manifestDir = project_ === undefined ? undefined : dirname(project_.manifestPath);
    const services = records.map((r) => ({ name: r.name, spec: r.spec as unknown as ServiceSpec, release: r.release, generation: r.generation }));
    const [exists, found] = await Promise.all([checkFiles(filesToCheck(manifestDir, services, memo)), releaseFindings([...new Set(services.flatMap((s) => (s.release === undefined ? [] : [s.release])))])]);
    const at = now();
    // Rules look at the time (deployed in the last 30 days): entries are rebuilt every minute.
    const inputs = [manifestDir, filesVersion, teamsVersion(teams), mapVersion(map), staleVersion(stale), Math.floor(at.getTime() / 60_000)].join("\u0000");
    return buildCatalog({
      manifestDir,
      services,
      teams,
      replicas,
      observed: map,
      history: hist,
      findings: found,
      staleFlags: stale,
      fileExists: (p) => exists.get(p) ?? false,
      now: at,
      memo: { memo, inputs },
    });
  }

  /** JSON text of entries reused from the memo (the same objects while unchanged). */
  const entryText = new WeakMap<CatalogEntry, string>();
  function textOf(entry: CatalogEntry): string {
    let text = entryText.get(entry);
    if (text === undefined) entryText.set(entry, (text = JSON.stringify(entry)));
    return text;
  }

  function knownTeam(snap: CatalogSnapshot, team: string): void {
    if (!snap.teams.some((t) => t.name === team)) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `team "${team}" is neither declared under teams nor the owner of a service in project "${project}"`);
  }

  async function listing(filter: CatalogFilter): Promise<CatalogListing> {
    const snap = await snapshot();
    if (filter.team !== undefined) knownTeam(snap, filter.team);
    const services = snap.entries.filter((e) => (filter.team === undefined || e.owner.team === filter.team) && (filter.tag === undefined || e.tags.includes(filter.tag)));
    return { services, observedWindowSeconds: snap.observedWindowSeconds };
  }

  return {
    list: (filter = {}) => listing(filter),
    async listJson(filter = {}) {
      const { services, observedWindowSeconds } = await listing(filter);
      return `{"services":[${services.map(textOf).join(",")}]${observedWindowSeconds === undefined ? "" : `,"observedWindowSeconds":${JSON.stringify(observedWindowSeconds)}`}}`;
    },
    async service(name) {
      const snap = await snapshot();
      const entry = snap.entries.find((e) => e.name === name);
      if (entry === undefined) return undefined;
      const events: KeelsonEvent[] = await store.listEvents({ project, subject: `service/${name}`, kinds: [...DEPLOY_KINDS], descending: true, limit: 10 });
      const text = (v: unknown) => (typeof v === "string" ? v : undefined);
      return {
        ...entry,
        scorecardResults: snap.scorecards.get(name)?.results ?? [],
        deploys: events.map((e) => ({
          at: e.at,
          kind: e.kind as DeployRecord["kind"],
          release: text(e.details.to),
          from: text(e.details.from),
          strategy: text(e.details.strategy),
          actor: e.actor,
          why: text(e.details.why),
        })),
        observedWindowSeconds: snap.observedWindowSeconds,
      };
    },
    async teams() {
      return (await snapshot()).teams;
    },
    async team(name) {
      return (await snapshot()).teams.find((t) => t.name === name);
    },
    async scorecards(filter = {}) {
      const snap = await snapshot();
      if (filter.team !== undefined) knownTeam(snap, filter.team);
      const teams = snap.teams.filter((t) => filter.team === undefined || t.name === filter.team);
      return {
        rules: SCORECARD_RULES.map((r) => ({ id: r.id, title: r.title, why: r.why })),
        services: [...snap.scorecards.values()].filter((c) => filter.team === undefined || c.owner === filter.team).sort((a, b) => a.service.localeCompare(b.service)),
        teams: teams.map((t) => ({ name: t.name, score: t.score, services: t.services.length })),
      };
    },
  };
}
