// DORA metrics for a project, team or service, read from the store: the event log (every
// deployment, rollback, incident and chaos event), the services with their owner teams, and the
// imported commit history. The numbers themselves come from the pure computation in dora.ts.
import { KeelsonError, type KeelsonEvent } from "@keelson/protocol";
import type { Store } from "../store/index.js";
import { listDoraChanges } from "./dora-changes.js";
import { computeDora, DORA_EVENT_KINDS, foldDoraHistory, type DoraHistory, type DoraReport } from "./dora.js";
import { listTeams } from "./teams.js";

const PAGE = 10_000;
const DAY = 86_400_000;

/** Longest window a report may cover (ten years). */
export const MAX_DORA_WINDOW_DAYS = 3650;

/** Every event DORA reads after `after`, oldest first, fetched page by page (appended to `out`). */
async function doraEvents(store: Store, project: string, out: KeelsonEvent[] = [], after = 0): Promise<KeelsonEvent[]> {
  for (;;) {
    const page = await store.listEvents({ project, kinds: [...DORA_EVENT_KINDS], afterSeq: after, limit: PAGE });
    for (const e of page) out.push(e);
    if (page.length < PAGE) return out;
    after = (page[page.length - 1] as KeelsonEvent).seq;
  }
}

/**
 * "90d", "12w", "24h" → milliseconds; a bad window is a KEELSON_ERR_INVALID_INPUT naming `field`.
 *
 * @example
 * parseDoraWindow("30d"); // 2592000000
 */
export function parseDoraWindow(text: string, field = "window"): number {
  const m = /^(\d{1,5})(h|d|w)$/.exec(text.trim());
  const ms = m ? Number(m[1]) * (m[2] === "h" ? DAY / 24 : m[2] === "w" ? 7 * DAY : DAY) : NaN;
  if (!(ms > 0 && ms <= MAX_DORA_WINDOW_DAYS * DAY)) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${field}: expected a window like "90d", "12w" or "48h" (at most ${MAX_DORA_WINDOW_DAYS}d), got ${JSON.stringify(text)}`);
  }
  return ms;
}

export interface DoraReportQuery {
  now: Date;
  windowMs?: number;
  service?: string;
  team?: string;
}

export interface DoraReporter {
  /** The four keys over a window ending at `now` (see doraReport). */
  report(query: DoraReportQuery): Promise<DoraReport>;
  /** Forget the imported change sets read so far (call after an import). */
  changesImported(): void;
}

/**
 * A reporter that keeps what it read: the DORA events it has seen (only newer ones are read on the
 * next report) and the folded history, folded again only when an event, an import or a service's
 * owner changed. A year of 200 services is ~265k events: reading them takes seconds, the
 * computation well under half a second; this makes every report after the first cost the latter.
 *
 * @example
 * const dora = createDoraReporter({ store, project: "shop" });
 * const report = await dora.report({ now: new Date(), team: "web" });
 */
export function createDoraReporter(options: { store: Store; project: string }): DoraReporter {
  const { store, project } = options;
  const events: KeelsonEvent[] = [];
  let changes: ReturnType<typeof listDoraChanges> | undefined;
  let folded: { key: string; history: DoraHistory } | undefined;
  let reading: Promise<void> | undefined;
  let generation = 0;

  /** New events since the last read; one read at a time. */
  function readNew(): Promise<void> {
    reading ??= (async () => {
      const after = events.length === 0 ? 0 : (events[events.length - 1] as KeelsonEvent).seq;
      await doraEvents(store, project, events, after);
    })().finally(() => {
      reading = undefined;
    });
    return reading;
  }

  return {
    async report(input) {
      if (input.service !== undefined && input.team !== undefined) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "team, service: give one of them, not both");
      const records = await store.listServices(project);
      const services = records.map((r) => ({ name: r.name, team: typeof r.spec.owner === "string" ? r.spec.owner : undefined }));
      await readNew();
      changes ??= listDoraChanges(store, project).catch((err: unknown) => {
        changes = undefined;
        throw err;
      });
      const changeSets = await changes;
      if (input.service !== undefined && !services.some((s) => s.name === input.service) && !events.some((e) => e.subject === `service/${input.service}`)) {
        throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `service: "${input.service}" does not exist in project "${project}"`);
      }
      if (input.team !== undefined && !services.some((s) => s.team === input.team) && !(await listTeams(store, project)).some((t) => t.name === input.team)) {
        throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `team: "${input.team}" owns no service in project "${project}" and is not declared under teams`);
      }
      const key = JSON.stringify([events.length === 0 ? 0 : (events[events.length - 1] as KeelsonEvent).seq, generation, services]);
      if (folded?.key !== key) folded = { key, history: foldDoraHistory({ events, changes: changeSets, teams: new Map(services.map((s) => [s.name, s.team])) }) };
      return computeDora(folded.history, {
        project,
        services,
        now: input.now.getTime(),
        ...(input.windowMs !== undefined ? { windowMs: input.windowMs } : {}),
        ...(input.service !== undefined ? { service: input.service } : {}),
        ...(input.team !== undefined ? { team: input.team } : {}),
      });
    },
    changesImported() {
      changes = undefined;
      generation += 1;
    },
  };
}

/**
 * The four keys over a window ending at `now`, for the project, one team (the services it owns)
 * or one service, read afresh from the store. An unknown team or service is KEELSON_ERR_NOT_FOUND.
 *
 * @example
 * const report = await doraReport({ store, project: "shop", now: new Date(), windowMs: 30 * 86_400_000, team: "web" });
 */
export async function doraReport(input: { store: Store; project: string } & DoraReportQuery): Promise<DoraReport> {
  const { store, project, ...query } = input;
  return createDoraReporter({ store, project }).report(query);
}
