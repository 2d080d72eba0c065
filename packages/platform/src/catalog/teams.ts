// Teams and the project's notification settings as last applied: the manifest's `teams` and
// `notifications`, kept in the store so the control plane (and any later instance) reads what
// `keelson up` applied, not the file it started with.
import type { Manifest, NotificationKind, WebhookSpecOut } from "../manifest/index.js";
import type { Store } from "../store/index.js";

/** A webhook as the notifier uses it (a bare URL in the manifest means JSON, every kind). */
export interface WebhookTarget {
  url: string;
  format: "json" | "slack";
  /** Only these kinds; undefined means every kind. */
  events: NotificationKind[] | undefined;
}

export interface TeamRecord {
  name: string;
  members: string[];
  contact: string | undefined;
  notifications: WebhookTarget[];
}

export interface NotificationSettings {
  /** Project-wide webhooks (told about every service). */
  webhooks: WebhookTarget[];
  /** Tries per delivery before it is dead-lettered. */
  attempts: number;
  /** First retry wait (ms); doubles after each try. */
  backoffMs: number;
  /** Longest wait between tries (ms). */
  maxBackoffMs: number;
}

export const DEFAULT_NOTIFICATION_SETTINGS: NotificationSettings = { webhooks: [], attempts: 8, backoffMs: 1000, maxBackoffMs: 300_000 };

const TEAMS = "team";
const SETTINGS = "notification-settings";
const SETTINGS_ID = "project";

export function webhookTarget(spec: WebhookSpecOut): WebhookTarget {
  return typeof spec === "string" ? { url: spec, format: "json", events: undefined } : { url: spec.url, format: spec.format, events: spec.events === undefined ? undefined : [...spec.events] };
}

/**
 * Replaces the stored teams and notification settings with the manifest's (teams no longer
 * declared are removed).
 *
 * @example
 * await saveTeams(store, "shop", manifest, new Date().toISOString());
 */
export async function saveTeams(store: Store, project: string, manifest: Pick<Manifest, "teams" | "notifications">, at: string): Promise<void> {
  const declared = Object.entries(manifest.teams ?? {});
  const stale = (await store.listDocuments({ collection: TEAMS, project })).filter((d) => !(manifest.teams !== undefined && d.id in manifest.teams)).map((d) => d.id);
  const n = manifest.notifications;
  const settings: NotificationSettings = n === undefined ? DEFAULT_NOTIFICATION_SETTINGS : { webhooks: n.webhooks.map(webhookTarget), attempts: n.attempts, backoffMs: n.backoff, maxBackoffMs: n.maxBackoff };
  await store.putDocuments([
    ...declared.map(([name, t]) => ({
      collection: TEAMS,
      project,
      id: name,
      tag: "",
      at,
      body: { members: [...t.members], ...(t.contact === undefined ? {} : { contact: t.contact }), notifications: (t.notifications ?? []).map((w) => stripUndefined(webhookTarget(w))) },
    })),
    { collection: SETTINGS, project, id: SETTINGS_ID, tag: "", at, body: { ...settings, webhooks: settings.webhooks.map(stripUndefined) } },
  ]);
  if (stale.length > 0) await store.deleteDocuments(TEAMS, project, stale);
}

/** The teams as last applied, by name. */
export async function listTeams(store: Store, project: string): Promise<TeamRecord[]> {
  const docs = await store.listDocuments({ collection: TEAMS, project });
  return docs
    .map((d) => ({
      name: d.id,
      members: Array.isArray(d.body.members) ? (d.body.members as string[]) : [],
      contact: typeof d.body.contact === "string" ? d.body.contact : undefined,
      notifications: Array.isArray(d.body.notifications) ? (d.body.notifications as WebhookTarget[]).map((w) => ({ url: w.url, format: w.format, events: w.events })) : [],
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The project's notification settings as last applied (defaults before any). */
export async function getNotificationSettings(store: Store, project: string): Promise<NotificationSettings> {
  const [doc] = await store.listDocuments({ collection: SETTINGS, project, ids: [SETTINGS_ID] });
  if (doc === undefined) return DEFAULT_NOTIFICATION_SETTINGS;
  const b = doc.body as Partial<NotificationSettings>;
  return {
    webhooks: Array.isArray(b.webhooks) ? b.webhooks.map((w) => ({ url: w.url, format: w.format, events: w.events })) : [],
    attempts: typeof b.attempts === "number" ? b.attempts : DEFAULT_NOTIFICATION_SETTINGS.attempts,
    backoffMs: typeof b.backoffMs === "number" ? b.backoffMs : DEFAULT_NOTIFICATION_SETTINGS.backoffMs,
    maxBackoffMs: typeof b.maxBackoffMs === "number" ? b.maxBackoffMs : DEFAULT_NOTIFICATION_SETTINGS.maxBackoffMs,
  };
}

function stripUndefined<T extends object>(o: T): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
