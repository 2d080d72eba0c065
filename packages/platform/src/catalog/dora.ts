// DORA's four keys from the event log: deployment frequency, lead time for changes, change
// failure rate and failed-deployment recovery time, per service, team or project over a window,
// with the performance buckets and a trend per ISO week. Pure: events in, a report out; no I/O,
// and the time is given (`now`). docs/concepts.md ("DORA metrics") states the definitions.
import type { EventKind, KeelsonEvent } from "@keelson/protocol";
import { changeFailureBucket, frequencyBucket, leadTimeBucket, median, medianInPlace, recoveryBucket, type DoraBucket, type FrequencyWeek } from "./dora-buckets.js";

/** The event kinds the computation reads: ask the store for these, oldest first. */
export const DORA_EVENT_KINDS: readonly EventKind[] = Object.freeze([
  "release.created",
  "rollout.started",
  "rollout.step",
  "rollout.aborted",
  "rollout.succeeded",
  "rollout.failed",
  "rollback.started",
  "rollback.succeeded",
  "incident.opened",
  "incident.resolved",
  "chaos.started",
  "chaos.stopped",
]);

const DAY = 86_400_000;
const WEEK = 7 * DAY;

/** What made a deployment a failed one. */
export type DoraCause = "rollout" | "aborted" | "rollback" | "incident";

/** One commit a deployment brought, as `keelson dora import-git` read it from git. */
export interface DoraChange {
  sha: string;
  /** The commit's author time (ISO 8601). */
  authorTime: string;
}

/** The commits one deployment brought (imported), keyed by the deployment's rollout id. */
export interface DoraChangeSet {
  deployment: string;
  service: string;
  commits: DoraChange[];
}

/**
 * A rollout of a new release that reached production traffic. `failed` deployments are those
 * that ended failed, aborted or rolled back after taking traffic, or were rolled back or had an
 * incident later while they were the service's current release.
 */
export interface DoraDeployment {
  /** The rollout's id. */
  id: string;
  service: string;
  team: string | undefined;
  strategy: string;
  release: string;
  previousRelease: string | undefined;
  commit: string | undefined;
  commitTime: string | undefined;
  /** The commit of the release it replaced (where its change set starts). */
  previousCommit: string | undefined;
  startedAt: string;
  /** When the new release first took production traffic. */
  servedAt: string;
  /** When it had all the traffic (lead time ends here); undefined if it never had. */
  completedAt: string | undefined;
  /** When it ended: succeeded, failed, or replaced by a rollback. It counts in the window holding this. */
  endedAt: string;
  /** How the rollout itself ended. */
  rollout: "succeeded" | "failed" | "aborted" | "rolled-back";
  failed: boolean;
  causes: readonly DoraCause[];
  /** Why it failed, in words (the rollout's message, the rollback's reason). */
  reason: string | undefined;
  /** Changes it brought (successful deployments only), and how they were known. */
  changes: number;
  changeSource: "imported" | "head" | "none";
  /** Changes whose author time is after the deployment (clock skew): ignored. */
  skewed: number;
  /** Median lead time of its changes. */
  leadTimeMs: number | undefined;
  /** Failed deployments: from the failure to restored service. */
  recovery: { from: string; to: string; ms: number } | undefined;
  /** Incidents attributed to it (their `incident.opened` sequence numbers). */
  incidents: readonly number[];
}

/** A rollout that failed before its release took any traffic: it reached no user, so it is no deployment. */
export interface DoraBlockedRollout {
  id: string;
  service: string;
  release: string;
  at: string;
  reason: string | undefined;
}

/** An incident and what it was put down to. */
export interface DoraIncident {
  id: number;
  service: string;
  openedAt: string;
  resolvedAt: string | undefined;
  /** The deployment it is attributed to: the service's current one when it opened. */
  deployment: string | undefined;
  /** Opened while a chaos experiment targeted the service: not counted against any deployment. */
  excluded: "chaos" | undefined;
}

/** Every deployment, blocked rollout and incident the events tell of, oldest first. */
export interface DoraHistory {
  deployments: DoraDeployment[];
  blocked: DoraBlockedRollout[];
  incidents: DoraIncident[];
  /** The lead time (ms) of every change of each successful deployment, beside `deployments` (same index). */
  leadTimes: ReadonlyArray<readonly number[] | undefined>;
  /** Each deployment's end as ms, beside `deployments`. */
  endedMs: readonly number[];
  /** Time of the first event read (where the data starts), ms; undefined for none. */
  firstEventAt: number | undefined;
}

interface Chaos {
  service: string | undefined;
  from: number;
  to: number;
}

/** What the fold keeps per service: the deployment users get now, and the latest deployment of each release (what a rollback restores). */
interface ServiceState {
  name: string;
  team: string | undefined;
  current: DoraDeployment | undefined;
  /** The last rollout begun (a deploy during a blue-green warm window replaces one not yet ended). */
  latest: DoraDeployment | undefined;
  /** Its successful deployments, oldest first (searched from the end for what a rollback restores: rollbacks are rare). */
  succeeded: DoraDeployment[];
}

/** The latest successful deployment of a release. */
function latestOf(state: ServiceState, release: string): DoraDeployment | undefined {
  for (let i = state.succeeded.length - 1; i >= 0; i--) if ((state.succeeded[i] as DoraDeployment).release === release) return state.succeeded[i];
  return undefined;
}

interface IncidentEntry {
  id: number;
  opened: number;
  resolved: number | undefined;
}

/** Shared by every deployment without causes or incidents (most of them): fewer arrays to allocate. */
const NONE: readonly never[] = Object.freeze([]);

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

/** Whether a time is in the store's own ISO form, e.g. 2026-03-01T09:30:00.000Z. */
function isStoreIso(s: string): boolean {
  return s.length === 24 && s.charCodeAt(4) === 45 && s.charCodeAt(7) === 45 && s.charCodeAt(10) === 84 && s.charCodeAt(13) === 58 && s.charCodeAt(16) === 58 && s.charCodeAt(19) === 46 && s.charCodeAt(23) === 90;
}

/** Milliseconds of an ISO 8601 time; the store's own form is read digit by digit (a year of events is a lot of Date.parse). */
export function isoMs(s: string): number {
  if (!isStoreIso(s)) return Date.parse(s);
  const two = (i: number) => (s.charCodeAt(i) - 48) * 10 + s.charCodeAt(i + 1) - 48;
  // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
  const month = two(5);
  const y = two(0) * 100 + two(2) - (month <= 2 ? 1 : 0);
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + two(8) - 1;
  const days = era * 146_097 + yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy - 719_468;
  return days * DAY + two(11) * 3_600_000 + two(14) * 60_000 + two(17) * 1000 + two(20) * 10 + s.charCodeAt(22) - 48;
}

/** A time in the store's ISO form: `text` itself when it already is, else formatted from `ms`. */
function isoText(text: string, ms: number): string {
  return isStoreIso(text) ? text : new Date(ms).toISOString();
}

function serviceOf(e: KeelsonEvent): string {
  return e.subject.startsWith("service/") ? e.subject.slice(8) : (str(e.details.service) ?? "");
}

/**
 * Folds the event log into deployments, blocked rollouts and incidents, whatever the window.
 * Events must be one project's, in log order (they are sorted by `seq` if not). `teams` (owner
 * team by service) fills in each deployment's team.
 *
 * A year of a large project is hundreds of thousands of events, so each deployment is one object
 * (the one reported), filled in as its events come; the rare facts (an abort, a rollback, incidents)
 * live beside it.
 */
export function foldDoraHistory(input: { events: readonly KeelsonEvent[]; changes?: Iterable<DoraChangeSet>; teams?: ReadonlyMap<string, string | undefined> }): DoraHistory {
  let events = input.events;
  for (let i = 1; i < events.length; i++) {
    if ((events[i] as KeelsonEvent).seq < (events[i - 1] as KeelsonEvent).seq) {
      events = [...events].sort((a, b) => a.seq - b.seq);
      break;
    }
  }
  const open = new Map<string, DoraDeployment>();
  const bySubject = new Map<string, ServiceState>();
  const byName = new Map<string, ServiceState>();
  const aborted = new Set<DoraDeployment>();
  const rolledBackTo = new Map<DoraDeployment, string>();
  /** Rollback by hand: when recovery starts (the linked incident, else the request) and ends. */
  const rollbackOf = new Map<DoraDeployment, { from: number; to: number | undefined }>();
  const incidentsOf = new Map<DoraDeployment, IncidentEntry[]>();
  const rollbacks = new Map<string, DoraDeployment | undefined>();
  const chaos: Chaos[] = [];
  const chaosById = new Map<string, Chaos>();
  const openIncidents = new Map<number, IncidentEntry>();
  const incidentsById = new Map<number, DoraIncident>();
  const deps: DoraDeployment[] = [];
  /** Each deployment's end (ms), beside `deps`. */
  const endedMs: number[] = [];
  const blocked: DoraBlockedRollout[] = [];
  const incidents: DoraIncident[] = [];
  let firstEventAt: number | undefined;

  /** The state of the service an event is about, by the event's subject (no string to cut per event). */
  function stateOf(e: KeelsonEvent): ServiceState {
    let state = bySubject.get(e.subject);
    if (state === undefined) {
      const name = serviceOf(e);
      state = byName.get(name);
      if (state === undefined) byName.set(name, (state = { name, team: input.teams?.get(name), current: undefined, latest: undefined, succeeded: [] }));
      bySubject.set(e.subject, state);
    }
    return state;
  }

  // Releases as built (commit and author time), read only for rollouts whose events lack them
  // (recorded before rollouts carried them): kept as events, indexed on first need.
  const releaseEvents: KeelsonEvent[] = [];
  const releases = new Map<string, { commit: string | undefined; commitTime: string | undefined }>();
  let releasesIndexed = 0;
  function release(id: string): { commit: string | undefined; commitTime: string | undefined } | undefined {
    for (; releasesIndexed < releaseEvents.length; releasesIndexed++) {
      const d = (releaseEvents[releasesIndexed] as KeelsonEvent).details;
      const r = str(d.release);
      if (r !== undefined) releases.set(r, { commit: str(d.commit), commitTime: str(d.commitTime) });
    }
    return releases.get(id);
  }

  function begin(e: KeelsonEvent, at: number): DoraDeployment {
    const d = e.details;
    const state = stateOf(e);
    const to = str(d.to) ?? "";
    const from = str(d.from);
    let commit = str(d.commit);
    let commitTime = str(d.commitTime);
    if (commit === undefined || commitTime === undefined) {
      const built = release(to);
      commit ??= built?.commit;
      if (built !== undefined && built.commit === commit) commitTime ??= built.commitTime;
    }
    const previous = from === undefined ? undefined : state.current?.release === from ? state.current : state.latest?.release === from ? state.latest : latestOf(state, from);
    const dep: DoraDeployment = {
      id: str(d.rollout) ?? `seq-${e.seq}`,
      service: state.name,
      team: state.team,
      strategy: str(d.strategy) ?? "rolling",
      release: to,
      previousRelease: from,
      commit,
      commitTime,
      previousCommit: previous !== undefined ? previous.commit : from === undefined ? undefined : release(from)?.commit,
      startedAt: isoText(e.at, at),
      servedAt: "",
      completedAt: undefined,
      endedAt: "",
      rollout: "succeeded",
      failed: false,
      causes: NONE,
      reason: undefined,
      changes: 0,
      changeSource: "none",
      skewed: 0,
      leadTimeMs: undefined,
      recovery: undefined,
      incidents: NONE,
    };
    open.set(dep.id, dep);
    state.latest = dep;
    return dep;
  }

  /** The rollout of `e` as begun, or begun now from the event itself (its start was not read). */
  const rolloutOf = (e: KeelsonEvent, at: number): DoraDeployment => open.get(str(e.details.rollout) ?? `seq-${e.seq}`) ?? begin(e, at);

  function fail(dep: DoraDeployment, cause: DoraCause, reason: string | undefined): void {
    dep.failed = true;
    if (!dep.causes.includes(cause)) dep.causes = [...dep.causes, cause];
    dep.reason ??= reason;
  }

  /** A rollout ends: a deployment if its release took traffic (true), else a blocked rollout (false). */
  function end(dep: DoraDeployment, e: KeelsonEvent, at: number, how: DoraDeployment["rollout"], servedAtDetail: unknown, reason?: string): boolean {
    open.delete(dep.id);
    const servedDetail = str(servedAtDetail);
    if (dep.servedAt === "" && servedDetail !== undefined) {
      const t = isoMs(servedDetail);
      if (!Number.isNaN(t)) dep.servedAt = isoText(servedDetail, t);
    }
    const iso = isoText(e.at, at);
    if (how !== "succeeded" && dep.servedAt === "") {
      blocked.push({ id: dep.id, service: dep.service, release: dep.release, at: iso, reason });
      return false;
    }
    if (dep.servedAt === "") dep.servedAt = iso;
    dep.endedAt = iso;
    dep.rollout = how;
    deps.push(dep);
    endedMs.push(at);
    if (how === "succeeded") {
      dep.completedAt ??= iso;
      const state = byName.get(dep.service) as ServiceState;
      state.current = dep;
      state.succeeded.push(dep);
    }
    return true;
  }

  function step(e: KeelsonEvent, at: number): void {
    const d = e.details;
    const dep = open.get(str(d.rollout) ?? "");
    if (dep === undefined) return;
    const action = d.action;
    const weight = typeof d.weight === "number" ? d.weight : 0;
    // Traffic moved to the new release: a canary weight or match rule, the blue-green switch.
    if (dep.servedAt === "" && ((action === "setWeight" && weight > 0) || action === "match" || action === "switch" || action === "promoted to all traffic")) dep.servedAt = isoText(e.at, at);
    if (action === "switch" || action === "promoted to all traffic" || (action === "setWeight" && weight >= 100)) {
      dep.completedAt ??= isoText(e.at, at);
      // From here on it is what users get: incidents are put down to it.
      (byName.get(dep.service) as ServiceState).current = dep;
    }
  }

  function rollbackStarted(e: KeelsonEvent, at: number): void {
    const d = e.details;
    const state = stateOf(e);
    const replaced = str(d.replaced) ?? str(d.interrupted);
    let target: DoraDeployment | undefined;
    const unfinished = replaced === undefined ? undefined : open.get(replaced);
    if (unfinished !== undefined) {
      // The rollout under way (or switched and warm) ends here, rolled back.
      if (end(unfinished, e, at, "rolled-back", d.replacedServedAt, str(d.why) ?? `rolled back by ${e.actor}`)) target = unfinished;
    } else if (state.current !== undefined && state.current.release === str(d.from)) {
      target = state.current;
    }
    if (target !== undefined) {
      fail(target, "rollback", str(d.why) ?? `rolled back by ${e.actor}`);
      // Recovery starts at the linked incident (open when the rollback was asked for), else at the request.
      let linked: number | undefined;
      for (const i of incidentsOf.get(target) ?? []) if ((i.resolved === undefined || i.resolved > at) && (linked === undefined || i.opened < linked)) linked = i.opened;
      rollbackOf.set(target, { from: linked ?? at, to: undefined });
    }
    rollbacks.set(str(d.rollout) ?? `seq-${e.seq}`, target);
  }

  function rollbackSucceeded(e: KeelsonEvent, at: number): void {
    const d = e.details;
    const id = str(d.rollout) ?? "";
    const target = rollbacks.get(id);
    rollbacks.delete(id);
    const rollback = target === undefined ? undefined : rollbackOf.get(target);
    if (rollback !== undefined) rollback.to = at;
    const state = stateOf(e);
    state.current = latestOf(state, str(d.to) ?? "");
  }

  function incidentOpened(e: KeelsonEvent, at: number): void {
    const d = e.details;
    const state = stateOf(e);
    const out: DoraIncident = { id: e.seq, service: state.name, openedAt: isoText(e.at, at), resolvedAt: undefined, deployment: undefined, excluded: undefined };
    incidents.push(out);
    incidentsById.set(e.seq, out);
    for (const x of chaos) {
      if ((x.service === undefined || x.service === state.name) && at >= x.from && at < x.to) out.excluded = "chaos";
    }
    if (out.excluded !== undefined) return;
    const dep = state.current;
    if (dep === undefined) return;
    out.deployment = dep.id;
    const entry: IncidentEntry = { id: e.seq, opened: at, resolved: undefined };
    const entries = incidentsOf.get(dep);
    if (entries === undefined) incidentsOf.set(dep, [entry]);
    else entries.push(entry);
    fail(dep, "incident", `incident ${e.seq}: SLO ${str(d.slo) ?? "?"} (${str(d.objective) ?? "?"}) burning its error budget`);
    openIncidents.set(e.seq, entry);
  }

  function incidentResolved(e: KeelsonEvent, at: number): void {
    const id = typeof e.details.incident === "number" ? e.details.incident : -1;
    const out = incidentsById.get(id);
    if (out !== undefined) out.resolvedAt ??= isoText(e.at, at);
    const entry = openIncidents.get(id);
    if (entry !== undefined) {
      entry.resolved = at;
      openIncidents.delete(id);
    }
  }

  for (const e of events) {
    const kind: string = e.kind;
    if (kind === "release.created") {
      // Needs no time of its own (only as where the data starts).
      releaseEvents.push(e);
      if (firstEventAt === undefined && !Number.isNaN(isoMs(e.at))) firstEventAt = isoMs(e.at);
      continue;
    }
    const at = isoMs(e.at);
    if (Number.isNaN(at)) continue;
    firstEventAt ??= at;
    const d = e.details;
    // Kinds by how often they come; other kinds are not read.
    if (kind === "rollout.step") step(e, at);
    else if (kind === "rollout.started") begin(e, at);
    else if (kind === "rollout.succeeded") {
      const dep = rolloutOf(e, at);
      dep.commitTime ??= str(d.commitTime);
      end(dep, e, at, "succeeded", d.servedAt);
    } else if (kind === "rollout.failed") {
      const id = str(d.rollout) ?? "";
      if (rollbacks.has(id) || d.strategy === "rollback") {
        // A rollback that failed restores nothing; its deployment stays unrecovered.
        rollbacks.delete(id);
        continue;
      }
      const dep = rolloutOf(e, at);
      const why = str(d.why);
      const wasAborted = aborted.has(dep);
      if (end(dep, e, at, wasAborted ? "aborted" : "failed", d.servedAt, why)) {
        fail(dep, wasAborted ? "aborted" : "rollout", why);
        const to = str(d.rolledBackTo);
        if (to !== undefined) rolledBackTo.set(dep, to);
      }
    } else if (kind === "rollout.aborted") {
      const dep = open.get(str(d.rollout) ?? "");
      if (dep !== undefined) aborted.add(dep);
    } else if (kind === "rollback.started") rollbackStarted(e, at);
    else if (kind === "rollback.succeeded") rollbackSucceeded(e, at);
    else if (kind === "incident.opened") incidentOpened(e, at);
    else if (kind === "incident.resolved") incidentResolved(e, at);
    else if (kind === "chaos.started") {
      const id = str(d.experiment);
      const duration = typeof d.durationMs === "number" ? d.durationMs : 0;
      if (id === undefined) continue;
      const x: Chaos = { service: e.subject === "services/*" ? undefined : (str(d.service) ?? serviceOf(e)), from: at, to: at + duration };
      chaos.push(x);
      chaosById.set(id, x);
    } else if (kind === "chaos.stopped") {
      const x = chaosById.get(str(d.experiment) ?? "");
      if (x !== undefined) x.to = Math.min(x.to, at);
    }
  }

  const imported = new Map<string, DoraChangeSet>();
  for (const c of input.changes ?? []) imported.set(c.deployment, c);
  const leadTimes: Array<number[] | undefined> = [];
  for (const [k, dep] of deps.entries()) {
    const ended = endedMs[k] as number;
    leadTimes.push(dep.rollout === "succeeded" ? leadTimesOf(dep, ended, imported.get(dep.id)) : undefined);
    if (!dep.failed) continue;
    const entries = incidentsOf.get(dep);
    if (entries !== undefined) dep.incidents = entries.map((i) => i.id);
    dep.recovery = recoveryOf(dep, ended, rolledBackTo.get(dep), rollbackOf.get(dep), entries);
  }
  return { deployments: deps, blocked, incidents, leadTimes, endedMs, firstEventAt };
}

/** A successful deployment's changes: their lead times (ms), its counts filled in. */
function leadTimesOf(dep: DoraDeployment, ended: number, imported: DoraChangeSet | undefined): number[] | undefined {
  // A rolling rollout has all traffic when it ends (the same string); canary and blue-green earlier.
  const end = dep.completedAt === undefined || dep.completedAt === dep.endedAt ? ended : isoMs(dep.completedAt);
  let samples: number[] | undefined;
  const useImported = imported !== undefined && imported.commits.length > 0;
  const commits = useImported ? imported.commits : undefined;
  const count = useImported ? (commits as DoraChange[]).length : dep.commit !== undefined && dep.commitTime !== undefined ? 1 : 0;
  dep.changeSource = useImported ? "imported" : count > 0 ? "head" : "none";
  for (let i = 0; i < count; i++) {
    const t = isoMs(commits !== undefined ? (commits[i] as DoraChange).authorTime : (dep.commitTime as string));
    if (Number.isNaN(t)) continue;
    if (t > end) dep.skewed++;
    else (samples ??= []).push(end - t);
  }
  dep.changes = samples?.length ?? 0;
  dep.leadTimeMs = samples === undefined ? undefined : median(samples);
  return samples;
}

/** From failure to restored service, for a failed deployment; undefined while not restored. */
function recoveryOf(
  dep: DoraDeployment,
  ended: number,
  rolledBackTo: string | undefined,
  rollback: { from: number; to: number | undefined } | undefined,
  incidents: readonly IncidentEntry[] | undefined,
): DoraDeployment["recovery"] {
  let from: number | undefined;
  let to: number | undefined;
  if (dep.causes.includes("rollout") || dep.causes.includes("aborted")) {
    // Rolled back automatically: from the first request the bad release served to traffic back on the good one.
    if (rolledBackTo !== undefined) {
      from = isoMs(dep.servedAt);
      to = ended;
    }
  } else if (rollback !== undefined) {
    from = rollback.from;
    to = rollback.to;
  } else if (incidents !== undefined && incidents.length > 0) {
    // From the first incident's opening until no incident of it is open any more (incidents that
    // overlap are one outage; a later one after service was restored does not extend it).
    const sorted = [...incidents].sort((a, b) => a.opened - b.opened);
    from = sorted[0]?.opened;
    let restored: number | undefined = sorted[0]?.resolved;
    for (const i of sorted.slice(1)) {
      if (restored === undefined || i.opened > restored) break;
      restored = i.resolved === undefined ? undefined : Math.max(restored, i.resolved);
    }
    to = restored;
  }
  return from !== undefined && to !== undefined ? { from: new Date(from).toISOString(), to: new Date(to).toISOString(), ms: Math.max(0, to - from) } : undefined;
}

// The report. Metrics without data are `null` with a `reason` (JSON has no undefined, and a
// window without deployments must read as "no data", never as 0).

export interface DoraReportScope {
  project: string;
  service?: string;
  team?: string;
  /** The services in scope (for a team: those it owns now). */
  services: string[];
}

export interface DoraWeek {
  /** ISO week, e.g. "2026-W09". */
  week: string;
  /** Its Monday (UTC date). */
  start: string;
  deployments: number;
  successful: number;
  failed: number;
  medianLeadTimeMs: number | null;
  changeFailureRate: number | null;
  medianRecoveryMs: number | null;
  reason?: string;
}

export interface DoraServiceSummary {
  service: string;
  team: string | null;
  deployments: number;
  successful: number;
  failed: number;
  changeFailureRate: number | null;
  medianLeadTimeMs: number | null;
  medianRecoveryMs: number | null;
}

export interface DoraReport {
  scope: DoraReportScope;
  window: {
    days: number;
    /** Start of the window, or of the data when that is later (nothing before it was recorded). */
    from: string;
    to: string;
  };
  summary: {
    deploymentFrequency: { perDay: number | null; perWeek: number | null; deployments: number; bucket: DoraBucket | null; reason?: string };
    leadTime: { medianMs: number | null; bucket: DoraBucket | null; changes: number; skewed: number; withoutCommit: number; reason?: string };
    changeFailureRate: { value: number | null; bucket: DoraBucket | null; failed: number; deployments: number; reason?: string };
    recoveryTime: { medianMs: number | null; bucket: DoraBucket | null; recovered: number; unrecovered: number; reason?: string };
  };
  counts: {
    /** Deployments that reached production traffic (successful + failed rollouts that served). */
    deployments: number;
    successful: number;
    failed: number;
    /** Rollouts that failed before their release took any traffic: not deployments. */
    blocked: number;
    /** Incidents opened in the window: put down to a deployment, excluded (chaos), or with no deployment to blame. */
    incidents: number;
    excludedChaos: number;
    unattributedIncidents: number;
  };
  weeks: DoraWeek[];
  services: DoraServiceSummary[];
  deployments: DoraDeployment[];
}

export interface DoraOptions {
  project: string;
  /** Services with their owner team (now). */
  services: ReadonlyArray<{ name: string; team: string | undefined }>;
  now: number;
  /** Default 90 days. */
  windowMs?: number;
  service?: string;
  team?: string;
  /** Where the data starts (ms); default the first event read. The window never starts before it. */
  dataSince?: number;
}

const round = (x: number, digits = 4) => Math.round(x * 10 ** digits) / 10 ** digits;

/** ISO 8601 week of a time (UTC): its label and its Monday. */
export function isoWeek(ms: number): { week: string; monday: number } {
  const dayStart = Math.floor(ms / DAY) * DAY;
  const weekday = (new Date(dayStart).getUTCDay() + 6) % 7; // Monday 0
  const monday = dayStart - weekday * DAY;
  const thursday = monday + 3 * DAY;
  const year = new Date(thursday).getUTCFullYear();
  const firstThursday = Date.UTC(year, 0, 1) + ((4 - new Date(Date.UTC(year, 0, 1)).getUTCDay() + 7) % 7) * DAY;
  const n = 1 + Math.round((thursday - firstThursday) / WEEK);
  return { week: `${year}-W${String(n).padStart(2, "0")}`, monday };
}

/** Deployments (indexes into the history) and what is counted over them. */
interface Group {
  deployments: number[];
  successful: number;
  failed: number;
  /** How many lead times its successful deployments have (the medians are taken at the end, in one typed array). */
  changes: number;
  recoveries: number[];
}

const newGroup = (): Group => ({ deployments: [], successful: 0, failed: 0, changes: 0, recoveries: [] });

function add(group: Group, history: DoraHistory, i: number): void {
  const d = history.deployments[i] as DoraDeployment;
  group.deployments.push(i);
  if (d.rollout === "succeeded") {
    group.successful++;
    group.changes += history.leadTimes[i]?.length ?? 0;
  }
  if (d.failed) {
    group.failed++;
    if (d.recovery !== undefined) group.recoveries.push(d.recovery.ms);
  }
}

/** The median lead time of a group's changes. */
function medianLeadTime(group: Group, history: DoraHistory): number | undefined {
  const all = new Float64Array(group.changes);
  let k = 0;
  for (let j = 0; j < group.deployments.length; j++) {
    const samples = history.leadTimes[group.deployments[j] as number];
    if (samples === undefined) continue;
    for (let m = 0; m < samples.length; m++) all[k++] = samples[m] as number;
  }
  return medianInPlace(all);
}

/**
 * The four keys over a window for a project, a team or a service.
 *
 * @example
 * const report = computeDora(foldDoraHistory({ events, changes }), { project: "shop", services, now: Date.now(), team: "web" });
 * report.summary.changeFailureRate; // { value: 0.25, bucket: "low", failed: 1, deployments: 4 }
 */
export function computeDora(history: DoraHistory, options: DoraOptions): DoraReport {
  const windowMs = options.windowMs ?? 90 * DAY;
  const now = options.now;
  const windowStart = now - windowMs;
  const dataSince = options.dataSince ?? history.firstEventAt;
  const from = dataSince === undefined ? windowStart : Math.max(windowStart, Math.min(dataSince, now));
  const teams = new Map(options.services.map((s) => [s.name, s.team]));
  const scoped = options.service !== undefined ? [options.service] : options.team !== undefined ? options.services.filter((s) => s.team === options.team).map((s) => s.name) : undefined;
  const scope = scoped === undefined ? undefined : new Set(scoped);
  const inWindow = (t: number) => t >= windowStart && t <= now;

  // Weeks of the window (Four Keys buckets frequency over them, and the trend lists them).
  const firstMonday = isoWeek(from).monday;
  const weeks: Array<{ week: string; monday: number; group: Group; successfulDays: Set<number> }> = [];
  for (let t = firstMonday; t <= now; t += WEEK) weeks.push({ week: isoWeek(t).week, monday: t, group: newGroup(), successfulDays: new Set() });
  const all = newGroup();
  const byService = new Map<string, Group>();
  for (let i = 0; i < history.deployments.length; i++) {
    const d = history.deployments[i] as DoraDeployment;
    const t = history.endedMs[i] as number;
    if (!inWindow(t) || (scope !== undefined && !scope.has(d.service))) continue;
    add(all, history, i);
    let service = byService.get(d.service);
    if (service === undefined) byService.set(d.service, (service = newGroup()));
    add(service, history, i);
    const w = weeks[Math.floor((t - firstMonday) / WEEK)];
    if (w === undefined) continue;
    add(w.group, history, i);
    if (d.rollout === "succeeded") w.successfulDays.add(Math.floor(t / DAY));
  }
  const deployments = all.deployments.map((i) => {
    const d = history.deployments[i] as DoraDeployment;
    const team = teams.get(d.service) ?? d.team;
    return d.team === team ? d : { ...d, team };
  });
  const blocked = history.blocked.filter((b) => (scope === undefined || scope.has(b.service)) && inWindow(isoMs(b.at)));
  const incidents = history.incidents.filter((i) => (scope === undefined || scope.has(i.service)) && inWindow(isoMs(i.openedAt)));
  const successful = deployments.filter((d) => d.rollout === "succeeded");
  const skewed = successful.reduce((n, d) => n + d.skewed, 0);
  const withoutCommit = successful.filter((d) => d.changeSource === "none").length;
  const days = Math.max(1, (now - from) / DAY);
  const frequencyWeeks: FrequencyWeek[] = weeks.map((w) => ({ month: new Date(w.monday).toISOString().slice(0, 7), daysDeployed: w.successfulDays.size }));

  const medianLead = medianLeadTime(all, history);
  const medianRecovery = median(all.recoveries);
  const cfr = all.deployments.length === 0 ? undefined : all.failed / all.deployments.length;
  const noDeployments = "no deployments in the window";
  return {
    scope: { project: options.project, ...(options.service !== undefined ? { service: options.service } : {}), ...(options.team !== undefined ? { team: options.team } : {}), services: scoped ?? options.services.map((s) => s.name) },
    window: { days: round(windowMs / DAY, 3), from: new Date(from).toISOString(), to: new Date(now).toISOString() },
    summary: {
      deploymentFrequency:
        all.successful === 0
          ? { perDay: null, perWeek: null, deployments: 0, bucket: null, reason: all.deployments.length === 0 ? noDeployments : "no successful deployments in the window" }
          : { perDay: round(all.successful / days), perWeek: round((all.successful / days) * 7), deployments: all.successful, bucket: frequencyBucket(frequencyWeeks) },
      leadTime:
        medianLead === undefined
          ? { medianMs: null, bucket: null, changes: 0, skewed, withoutCommit, reason: all.successful === 0 ? "no successful deployments in the window" : "no deployed change has a known commit time" }
          : { medianMs: Math.round(medianLead), bucket: leadTimeBucket(medianLead), changes: all.changes, skewed, withoutCommit },
      changeFailureRate:
        cfr === undefined ? { value: null, bucket: null, failed: 0, deployments: 0, reason: noDeployments } : { value: round(cfr), bucket: changeFailureBucket(cfr), failed: all.failed, deployments: all.deployments.length },
      recoveryTime:
        medianRecovery === undefined
          ? { medianMs: null, bucket: null, recovered: 0, unrecovered: all.failed, reason: all.deployments.length === 0 ? noDeployments : all.failed === 0 ? "no failed deployments in the window" : "no failed deployment has recovered yet" }
          : { medianMs: Math.round(medianRecovery), bucket: recoveryBucket(medianRecovery), recovered: all.recoveries.length, unrecovered: all.failed - all.recoveries.length },
    },
    counts: {
      deployments: all.deployments.length,
      successful: all.successful,
      failed: all.failed,
      blocked: blocked.length,
      incidents: incidents.length,
      excludedChaos: incidents.filter((i) => i.excluded === "chaos").length,
      unattributedIncidents: incidents.filter((i) => i.excluded === undefined && i.deployment === undefined).length,
    },
    weeks: weeks.map((w) => ({
      week: w.week,
      start: new Date(w.monday).toISOString().slice(0, 10),
      ...groupFigures(w.group, history),
      ...(w.group.deployments.length === 0 ? { reason: "no deployments" } : {}),
    })),
    services: [...byService.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([service, g]) => {
        const { medianLeadTimeMs, changeFailureRate, medianRecoveryMs, ...counts } = groupFigures(g, history);
        return { service, team: teams.get(service) ?? null, ...counts, changeFailureRate, medianLeadTimeMs, medianRecoveryMs };
      }),
    deployments,
  };
}

function groupFigures(g: Group, history: DoraHistory): { deployments: number; successful: number; failed: number; medianLeadTimeMs: number | null; changeFailureRate: number | null; medianRecoveryMs: number | null } {
  const lead = medianLeadTime(g, history);
  const recovery = median(g.recoveries);
  return {
    deployments: g.deployments.length,
    successful: g.successful,
    failed: g.failed,
    medianLeadTimeMs: lead === undefined ? null : Math.round(lead),
    changeFailureRate: g.deployments.length === 0 ? null : round(g.failed / g.deployments.length),
    medianRecoveryMs: recovery === undefined ? null : Math.round(recovery),
  };
}
