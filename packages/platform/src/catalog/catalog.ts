// The service catalog as pure data: entries built from the services as applied, the teams, the
// replicas, the trace-derived service map and the facts of the event log, with the drift between
// declared (`calls`) and observed dependencies, and each service's scorecard.
import { isAbsolute, join, resolve } from "node:path";
import type { ServiceSpec } from "../manifest/index.js";
import { EXTERNAL_CALLER, type ServiceMap } from "../telemetry/index.js";
import { scoreService, staleFlagsOf, teamScore, TEST_STAGE, type Scorecard, type ServiceFacts } from "./scorecard.js";
import type { ServiceHistory } from "./service-history.js";
import type { TeamRecord } from "./teams.js";

/** Files looked for in a service's folder when it declares no `openapi`. */
export const DEFAULT_OPENAPI_FILES = ["openapi.yaml", "openapi.yml", "openapi.json"] as const;

export interface CatalogServiceInput {
  name: string;
  spec: ServiceSpec;
  release: string | undefined;
  /** The stored spec's generation: with a memo, an entry is reused only while it is the same. */
  generation?: number;
}

/**
 * Entries, scorecards and file lists of earlier builds, reused while their inputs are the same:
 * most of a large catalog does not change between two requests.
 */
export interface CatalogMemo {
  readonly entries: Map<string, { key: string; entry: CatalogEntry; card: Scorecard }>;
  readonly files: Map<string, { key: string; files: string[] }>;
}

export function createCatalogMemo(): CatalogMemo {
  return { entries: new Map(), files: new Map() };
}

/** A flag found stale (flags/stale-flags.ts), as the catalog needs it. */
export interface StaleFlagInput {
  flag: string;
  owner?: string | undefined;
  why: string[];
}

export interface CatalogInput {
  /** Folder of the manifest as last applied: link paths and service paths resolve against it. */
  manifestDir: string | undefined;
  services: readonly CatalogServiceInput[];
  teams: readonly TeamRecord[];
  /** Replicas as the runtime sees them. */
  replicas: ReadonlyArray<{ service: string; release: string; state: string }>;
  /** The trace-derived service map; undefined when there is no trace data (no telemetry). */
  observed: ServiceMap | undefined;
  /** The latest deploy and pipeline run of each service. */
  history: ReadonlyMap<string, ServiceHistory>;
  /** Scan findings by severity of each release that has a recorded scan, by release id. */
  findings: ReadonlyMap<string, Record<string, number>>;
  /** Stale flags of the project; undefined when flags were not looked at. */
  staleFlags: readonly StaleFlagInput[] | undefined;
  /** Whether a file exists (asked only for the paths `filesToCheck` lists). */
  fileExists: (path: string) => boolean;
  now: Date;
  /**
   * Reuse entries of services with a `generation`: `inputs` must change whenever anything all
   * services share changes (teams, the service map, stale flags, file checks, the time as far
   * as rules look at it); a service's own inputs (generation, release, ready replicas, callers,
   * history, scan) are compared per service.
   */
  memo?: { memo: CatalogMemo; inputs: string };
}

export interface CatalogLink {
  name: string;
  /** As written in the manifest. */
  target: string;
  kind: "url" | "file";
  /** The URL, or the file's absolute path (with its #fragment). */
  href: string;
  /** Files only: whether the file is there. */
  exists?: boolean;
}

export interface ServiceApi {
  /** Absolute path of the OpenAPI file. */
  file: string;
  /** Named by `openapi` in the manifest (else found under a default name). */
  declared: boolean;
  exists: boolean;
}

export interface ObservedCall {
  service: string;
  calls: number;
  callsPerMinute: number;
  errorRatio: number;
}

export interface DeclaredCall {
  service: string;
  paths?: string[];
  methods?: string[];
}

export interface ServiceDependencies {
  /** From the manifest's `calls`. */
  declared: DeclaredCall[];
  /** From traces over the map's window; undefined without trace data. */
  observed: ObservedCall[] | undefined;
  /** Drift: observed but not declared. */
  undeclared: string[];
  /** Drift: declared but not observed over the window (empty without trace data). */
  unused: string[];
}

export interface ServiceDependents {
  /** Services whose `calls` name this one. */
  declared: string[];
  /** Callers seen in traces ("(external)" for requests from outside); undefined without trace data. */
  observed: ObservedCall[] | undefined;
}

export interface ScorecardSummary {
  score: number | undefined;
  passed: number;
  failed: number;
  unknown: number;
  /** Ids of the rules that failed. */
  failing: string[];
}

export interface CatalogEntry {
  name: string;
  description: string | undefined;
  lifecycle: "experimental" | "production" | "deprecated" | undefined;
  tags: string[];
  owner: { team: string; declared: boolean; contact: string | undefined };
  links: CatalogLink[];
  api: ServiceApi | undefined;
  release: string | undefined;
  replicas: { desired: number; ready: number };
  dependencies: ServiceDependencies;
  dependents: ServiceDependents;
  scorecard: ScorecardSummary;
}

export interface TeamView {
  name: string;
  /** Declared under `teams` (else only named as some service's owner). */
  declared: boolean;
  members: string[];
  contact: string | undefined;
  /** How many notification webhooks the team has (their URLs may hold credentials and are not shown). */
  webhooks: number;
  services: string[];
  /** Mean of its services' scores. */
  score: number | undefined;
}

export interface CatalogSnapshot {
  /** By name. */
  entries: CatalogEntry[];
  /** By service name. */
  scorecards: Map<string, Scorecard>;
  /** By name: declared teams and owners that are not. */
  teams: TeamView[];
  /** The service map's window, when there is trace data. */
  observedWindowSeconds: number | undefined;
}

const URL_LIKE = /^[a-z][a-z0-9+.-]*:/i;

/** The service's folder (absolute when the manifest folder is known). */
function serviceDir(manifestDir: string | undefined, spec: ServiceSpec): string {
  return manifestDir === undefined || isAbsolute(spec.path) ? spec.path : resolve(manifestDir, spec.path);
}

function linkFile(manifestDir: string | undefined, target: string): { path: string; fragment: string } {
  const hash = target.indexOf("#");
  const path = hash < 0 ? target : target.slice(0, hash);
  return { path: manifestDir === undefined || isAbsolute(path) ? path : resolve(manifestDir, path), fragment: hash < 0 ? "" : target.slice(hash) };
}

function apiCandidates(manifestDir: string | undefined, spec: ServiceSpec): string[] {
  const dir = serviceDir(manifestDir, spec);
  return spec.openapi !== undefined ? [join(dir, spec.openapi)] : DEFAULT_OPENAPI_FILES.map((f) => join(dir, f));
}

function serviceFiles(manifestDir: string | undefined, spec: ServiceSpec): string[] {
  const files: string[] = [];
  for (const target of Object.values(spec.links ?? {})) if (!URL_LIKE.test(target)) files.push(linkFile(manifestDir, target).path);
  return [...files, ...apiCandidates(manifestDir, spec)];
}

/** Every file whose existence the catalog shows: link paths and OpenAPI files. */
export function filesToCheck(manifestDir: string | undefined, services: readonly CatalogServiceInput[], memo?: CatalogMemo): string[] {
  const files = new Set<string>();
  for (const s of services) {
    let list: string[];
    if (memo !== undefined && s.generation !== undefined) {
      const key = `${manifestDir ?? ""}\u0000${s.generation}`;
      const known = memo.files.get(s.name);
      if (known?.key === key) list = known.files;
      else memo.files.set(s.name, { key, files: (list = serviceFiles(manifestDir, s.spec)) });
    } else {
      list = serviceFiles(manifestDir, s.spec);
    }
    for (const f of list) files.add(f);
  }
  return [...files];
}

/** Test stages the manifest declares; undefined when the stages come from package.json. */
function declaredTests(spec: ServiceSpec): string[] | undefined {
  if (spec.pipeline?.stages !== undefined) return spec.pipeline.stages.map((s) => s.name).filter((n) => TEST_STAGE.test(n));
  return spec.test !== undefined ? ["test"] : undefined;
}

/**
 * A spec's `calls` as mappings. Specs stored before calls took mappings hold plain names (as the
 * routing publisher also reads them); the catalog must not throw on a store from then.
 */
function declaredCalls(spec: ServiceSpec): DeclaredCall[] {
  const calls: unknown[] = Array.isArray(spec.calls) ? spec.calls : [];
  return calls.flatMap((c): DeclaredCall[] => {
    if (typeof c === "string") return c === "" ? [] : [{ service: c }];
    if (c === null || typeof c !== "object" || typeof (c as { service?: unknown }).service !== "string") return [];
    const { service, paths, methods } = c as { service: string; paths?: string[]; methods?: string[] };
    return [{ service, ...(paths ? { paths: [...paths] } : {}), ...(methods ? { methods: [...methods] } : {}) }];
  });
}

function observedCall(e: { calls: number; ratePerSecond: number; errorRatio: number }, service: string): ObservedCall {
  return { service, calls: e.calls, callsPerMinute: Math.round(e.ratePerSecond * 60 * 100) / 100, errorRatio: Math.round(e.errorRatio * 10_000) / 10_000 };
}

/**
 * Builds the whole catalog: one entry and one scorecard per service, and the teams.
 *
 * @example
 * const { entries } = buildCatalog({ manifestDir, services, teams, replicas, observed, history, findings, staleFlags, fileExists, now: new Date() });
 * entries.filter((e) => e.dependencies.undeclared.length > 0); // services calling what they did not declare
 */
export function buildCatalog(input: CatalogInput): CatalogSnapshot {
  const { manifestDir, observed } = input;
  const teamsByName = new Map(input.teams.map((t) => [t.name, t]));
  const ready = new Map<string, number>();
  const releaseOf = new Map(input.services.map((s) => [s.name, s.release]));
  for (const r of input.replicas) {
    if (r.state === "ready" && r.release === releaseOf.get(r.service)) ready.set(r.service, (ready.get(r.service) ?? 0) + 1);
  }
  const calledBy = new Map<string, string[]>();
  for (const s of input.services) {
    for (const c of declaredCalls(s.spec)) {
      const list = calledBy.get(c.service);
      if (list) list.push(s.name);
      else calledBy.set(c.service, [s.name]);
    }
  }
  const out = new Map<string, ObservedCall[]>();
  const into = new Map<string, ObservedCall[]>();
  for (const e of observed?.edges ?? []) {
    if (e.from !== EXTERNAL_CALLER) {
      const list = out.get(e.from);
      if (list) list.push(observedCall(e, e.to));
      else out.set(e.from, [observedCall(e, e.to)]);
    }
    const list = into.get(e.to);
    if (list) list.push(observedCall(e, e.from));
    else into.set(e.to, [observedCall(e, e.from)]);
  }

  const scorecards = new Map<string, Scorecard>();
  const entries: CatalogEntry[] = [];
  const memo = input.memo;
  for (const s of input.services) {
    const { spec } = s;
    const history = input.history.get(s.name);
    const bySeverity = s.release === undefined ? undefined : input.findings.get(s.release);
    let key: string | undefined;
    if (memo !== undefined && s.generation !== undefined) {
      key = [memo.inputs, s.generation, s.release, ready.get(s.name) ?? 0, (calledBy.get(s.name) ?? []).join(","), history?.lastDeploy?.at, history?.lastDeploy?.release, history?.lastPipeline?.at, history?.lastPipeline?.run, bySeverity !== undefined].join("\u0000");
      const known = memo.memo.entries.get(s.name);
      if (known?.key === key) {
        entries.push(known.entry);
        scorecards.set(s.name, known.card);
        continue;
      }
    }
    const team = teamsByName.get(spec.owner);
    const routeFlags = (spec.routes ?? []).flatMap((r) => (r.flag === undefined ? [] : [r.flag.key]));
    const facts: ServiceFacts = {
      service: s.name,
      owner: spec.owner,
      ownerIsTeam: team !== undefined,
      lifecycle: spec.lifecycle,
      slos: (spec.slos ?? []).map((o) => o.name),
      readiness: spec.readiness?.path,
      declaredTests: declaredTests(spec),
      lastPipeline: history?.lastPipeline,
      vulnerabilities: s.release !== undefined && bySeverity !== undefined ? { release: s.release, bySeverity } : undefined,
      staleFlags: input.staleFlags === undefined ? undefined : staleFlagsOf({ name: s.name, owner: spec.owner, routeFlags }, team?.members ?? [], input.staleFlags),
      lastDeploy: history?.lastDeploy,
      now: input.now,
    };
    const card = scoreService(facts);
    scorecards.set(s.name, card);

    const declared = declaredCalls(spec);
    const declaredNames = new Set(declared.map((c) => c.service));
    const seen = observed === undefined ? undefined : (out.get(s.name) ?? []);
    const seenNames = new Set((seen ?? []).map((c) => c.service));
    const candidates = apiCandidates(manifestDir, spec);
    const apiFile = spec.openapi !== undefined ? candidates[0] : candidates.find((f) => input.fileExists(f));
    const entry: CatalogEntry = {
      name: s.name,
      description: spec.description,
      lifecycle: spec.lifecycle,
      tags: [...(spec.tags ?? [])],
      owner: { team: spec.owner, declared: team !== undefined, contact: team?.contact },
      links: Object.entries(spec.links ?? {}).map(([name, target]) => {
        if (URL_LIKE.test(target)) return { name, target, kind: "url" as const, href: target };
        const file = linkFile(manifestDir, target);
        return { name, target, kind: "file" as const, href: file.path + file.fragment, exists: input.fileExists(file.path) };
      }),
      api: apiFile === undefined ? undefined : { file: apiFile, declared: spec.openapi !== undefined, exists: input.fileExists(apiFile) },
      release: s.release,
      replicas: { desired: spec.replicas, ready: ready.get(s.name) ?? 0 },
      dependencies: {
        declared,
        observed: seen,
        undeclared: [...seenNames].filter((n) => !declaredNames.has(n)).sort(),
        unused: seen === undefined ? [] : [...declaredNames].filter((n) => !seenNames.has(n)).sort(),
      },
      dependents: { declared: [...(calledBy.get(s.name) ?? [])].sort(), observed: observed === undefined ? undefined : (into.get(s.name) ?? []) },
      scorecard: { score: card.score, passed: card.passed, failed: card.failed, unknown: card.unknown, failing: card.results.filter((r) => r.status === "fail").map((r) => r.rule) },
    };
    entries.push(entry);
    if (memo !== undefined && key !== undefined) memo.memo.entries.set(s.name, { key, entry, card });
  }
  if (memo !== undefined && memo.memo.entries.size > input.services.length) {
    // Forget services no longer there.
    const names = new Set(input.services.map((s) => s.name));
    for (const name of memo.memo.entries.keys()) if (!names.has(name)) memo.memo.entries.delete(name);
    for (const name of memo.memo.files.keys()) if (!names.has(name)) memo.memo.files.delete(name);
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const owned = new Map<string, string[]>();
  for (const e of entries) {
    const list = owned.get(e.owner.team);
    if (list) list.push(e.name);
    else owned.set(e.owner.team, [e.name]);
  }
  const teams: TeamView[] = [...new Set([...teamsByName.keys(), ...owned.keys()])].sort().map((name) => {
    const t = teamsByName.get(name);
    const services = owned.get(name) ?? [];
    return {
      name,
      declared: t !== undefined,
      members: [...(t?.members ?? [])],
      contact: t?.contact,
      webhooks: t?.notifications.length ?? 0,
      services,
      score: teamScore(services.map((n) => scorecards.get(n) as Scorecard)),
    };
  });
  return { entries, scorecards, teams, observedWindowSeconds: observed?.windowSeconds };
}
