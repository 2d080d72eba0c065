// The catalog domain: teams and ownership, the service catalog, scorecards, notifications and DORA metrics.
export { DEFAULT_NOTIFICATION_SETTINGS, getNotificationSettings, listTeams, saveTeams, webhookTarget } from "./teams.js";
export type { NotificationSettings, TeamRecord, WebhookTarget } from "./teams.js";
