// The DORA view's calls: the four keys with their buckets and weekly trend for the project, one
// team or one service (GET /v1/dora), and the teams with the services they own (GET /v1/teams).
import { query, type Api } from "./api.js";

export type DoraBucket = "elite" | "high" | "medium" | "low";

/** What the report covers: the whole project, one team's services or one service. */
export type DoraScope = { kind: "all" } | { kind: "team"; name: string } | { kind: "service"; name: string };

/** GET /v1/dora: one ISO week of the window (catalog's DoraWeek). */
export interface DoraWeek {
  week: string;
  /** Its Monday, e.g. "2026-02-23". */
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

/** GET /v1/dora as JSON, the parts the view shows (the deployments list is left out). Null figures come with a reason. */
export interface DoraReport {
  scope: { project: string; service?: string; team?: string; services: string[] };
  window: { days: number; from: string; to: string };
  summary: {
    deploymentFrequency: { perDay: number | null; perWeek: number | null; deployments: number; bucket: DoraBucket | null; reason?: string };
    leadTime: { medianMs: number | null; bucket: DoraBucket | null; changes: number; skewed: number; withoutCommit: number; reason?: string };
    changeFailureRate: { value: number | null; bucket: DoraBucket | null; failed: number; deployments: number; reason?: string };
    recoveryTime: { medianMs: number | null; bucket: DoraBucket | null; recovered: number; unrecovered: number; reason?: string };
  };
  counts: { deployments: number; successful: number; failed: number; blocked: number; incidents: number; excludedChaos: number; unattributedIncidents: number };
  weeks: DoraWeek[];
  services: DoraServiceSummary[];
}

/** GET /v1/teams: one team (catalog's TeamView). */
export interface Team {
  name: string;
  declared: boolean;
  members: string[];
  contact?: string;
  webhooks: number;
  services: string[];
  score?: number;
}

/** The windows the view offers, as GET /v1/dora reads them. */
export const DORA_WINDOWS = [
  { value: "30d", label: "Last 30 days" },
  { value: "90d", label: "Last 90 days" },
  { value: "180d", label: "Last 180 days" },
  { value: "365d", label: "Last 365 days" },
] as const;

export type DoraWindow = (typeof DORA_WINDOWS)[number]["value"];

/** The report for a scope and window, and the teams (for the scope selector and the team table). */
export async function loadDora(api: Api, options: { scope: DoraScope; window: DoraWindow }, signal: AbortSignal): Promise<{ report: DoraReport; teams: Team[] }> {
  const { scope, window } = options;
  // Without the list of deployments: this reloads on every event, and the list is most of the answer.
  const q = query({ window, team: scope.kind === "team" ? scope.name : undefined, service: scope.kind === "service" ? scope.name : undefined, deployments: "false" });
  const [report, teams] = await Promise.all([api.get<DoraReport>(`/v1/dora${q}`, signal), api.get<{ teams: Team[] }>("/v1/teams", signal)]);
  return { report, teams: teams.teams };
}
