// DORA metrics for a project, team or service, read from the store: the event log (every
// deployment, rollback, incident and chaos event), the services with their owner teams, and the
// imported commit history. The numbers themselves come from the pure computation in dora.ts.
import { KeelsonError, type KeelsonEvent } from "@keelson/protocol";
import type { Store } from "../store/index.js";
import { listDoraChanges } from "./dora-changes.js";
import { computeDora, DORA_EVENT_KINDS, foldDoraHistory, type DoraReport } from "./dora.js";
import { listTeams } from "./teams.js";

const PAGE = 10_000;
const DAY = 86_400_000;

/** Longest window a report may cover (ten years). */
export const MAX_DORA_WINDOW_DAYS = 3650;

/** Every event DORA reads, oldest first, fetched page by page. */
async function doraEvents(store: Store, project: string): Promise<KeelsonEvent[]> {
  const out: KeelsonEvent[] = [];
  let after = 0;
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

/**
 * The four keys over a window ending at `now`, for the project, one team (the services it owns)
 * or one service. An unknown team or service is KEELSON_ERR_NOT_FOUND.
 *
 * @example
 * const report = await doraReport({ store, project: "shop", now: new Date(), windowMs: 30 * 86_400_000, team: "web" });
 */
export async function doraReport(input: { store: Store; project: string; now: Date; windowMs?: number; service?: string; team?: string }): Promise<DoraReport> {
  const { store, project } = input;
  if (input.service !== undefined && input.team !== undefined) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "team, service: give one of them, not both");
  const records = await store.listServices(project);
  const services = records.map((r) => ({ name: r.name, team: typeof r.spec.owner === "string" ? r.spec.owner : undefined }));
  const [events, changes] = await Promise.all([doraEvents(store, project), listDoraChanges(store, project)]);
  if (input.service !== undefined && !services.some((s) => s.name === input.service) && !events.some((e) => e.subject === `service/${input.service}`)) {
    throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `service: "${input.service}" does not exist in project "${project}"`);
  }
  if (input.team !== undefined && !services.some((s) => s.team === input.team) && !(await listTeams(store, project)).some((t) => t.name === input.team)) {
    throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `team: "${input.team}" owns no service in project "${project}" and is not declared under teams`);
  }
  const history = foldDoraHistory({ events, changes, teams: new Map(services.map((s) => [s.name, s.team])) });
  return computeDora(history, {
    project,
    services,
    now: input.now.getTime(),
    ...(input.windowMs !== undefined ? { windowMs: input.windowMs } : {}),
    ...(input.service !== undefined ? { service: input.service } : {}),
    ...(input.team !== undefined ? { team: input.team } : {}),
  });
}
