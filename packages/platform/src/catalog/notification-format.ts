// What a webhook receives: Keelson's generic JSON for a notification, or a Slack-compatible
// incoming-webhook message (text + Block Kit blocks). Also how a webhook URL is shown: such URLs
// are secrets (whoever has a Slack webhook URL can post to the channel), so never whole.
import type { KeelsonEvent } from "@keelson/protocol";
import type { NotificationKind } from "../manifest/index.js";
import type { Notification } from "./notification-events.js";

/** `test` is what `keelson notifications test` sends. */
export type NotificationMessageKind = NotificationKind | "test";

/**
 * The generic JSON a `format: json` webhook receives (the same body on every try; the
 * `x-keelson-delivery` header carries `id`, so a receiver can drop a delivery it already has).
 */
export interface NotificationMessage {
  /** The delivery's id: one per event and webhook, the same on every retry. */
  id: string;
  kind: NotificationMessageKind;
  project: string;
  /** null when the event is about no service (a test). */
  service: string | null;
  /** The team that owns the service, null when none is known. */
  team: string | null;
  /** When it happened (the event's time), ISO-8601. */
  at: string;
  summary: string;
  /** The event's details: the rollout, the reason, the canary analysis' evidence, the findings, the burn rates. */
  details: Record<string, unknown>;
  /** The event behind it; null for a test. */
  event: { seq: number; kind: string; subject: string; actor: string } | null;
}

/** A message in Slack's incoming-webhook shape. */
export interface SlackMessage {
  /** The summary as plain text: what notifications and clients without blocks show. */
  text: string;
  blocks: Array<Record<string, unknown>>;
}

export interface MessageInput {
  id: string;
  kind: NotificationMessageKind;
  project: string;
  team: string | undefined;
  at: string;
  notification: Pick<Notification, "service" | "summary" | "release" | "commit" | "actor">;
  event: KeelsonEvent | undefined;
}

export function jsonMessage(input: MessageInput): NotificationMessage {
  const e = input.event;
  return {
    id: input.id,
    kind: input.kind,
    project: input.project,
    service: input.notification.service ?? null,
    team: input.team ?? null,
    at: input.at,
    summary: input.notification.summary,
    details: e?.details ?? {},
    event: e === undefined ? null : { seq: e.seq, kind: e.kind, subject: e.subject, actor: e.actor },
  };
}

const EMOJI: Record<NotificationMessageKind, string> = {
  "deploy.started": ":rocket:",
  "deploy.succeeded": ":white_check_mark:",
  "deploy.failed": ":x:",
  "canary.rolled-back": ":leftwards_arrow_with_hook:",
  "incident.opened": ":rotating_light:",
  "incident.resolved": ":large_green_circle:",
  "security.blocked": ":no_entry:",
  test: ":wave:",
};

/** Slack's limits: 3,000 characters in a section's text, 2,000 in a field. */
const SECTION_MAX = 3000;
const FIELD_MAX = 2000;

/**
 * The Slack-compatible message: a mrkdwn section with the summary and the facts (service,
 * release, commit, who) as fields, and a context line (project, kind, event, time).
 */
export function slackMessage(input: MessageInput): SlackMessage {
  const n = input.notification;
  const fields = [
    n.service !== undefined ? ["Service", `${n.service}${input.team ? ` (team ${input.team})` : ""}`] : undefined,
    n.release !== undefined ? ["Release", n.release] : undefined,
    n.commit !== undefined ? ["Commit", n.commit.slice(0, 12)] : undefined,
    ["By", n.actor],
  ]
    .filter((f): f is [string, string] => f !== undefined)
    .map(([label, value]) => ({ type: "mrkdwn", text: cut(`*${label}*\n\`${escapeMrkdwn(value)}\``, FIELD_MAX) }));
  const context = [`Keelson`, `project *${escapeMrkdwn(input.project)}*`, `\`${input.kind}\``, input.event ? `event #${input.event.seq}` : "test", input.at].join(" · ");
  return {
    text: n.summary,
    blocks: [
      { type: "section", text: { type: "mrkdwn", text: cut(`${EMOJI[input.kind]} ${escapeMrkdwn(n.summary)}`, SECTION_MAX) }, fields },
      { type: "context", elements: [{ type: "mrkdwn", text: cut(context, SECTION_MAX) }] },
    ],
  };
}

/** Slack reads &, < and > as markup; everything else in mrkdwn is literal enough. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * A webhook URL as it may be shown: scheme, host and port, then only the last 4 characters of
 * the rest (Slack and most chat webhooks carry their secret in the path).
 *
 * @example
 * redactUrl("https://hooks.slack.com/services/T0/B0/abcdefgh1234"); // "https://hooks.slack.com/…1234"
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "…";
  }
  const rest = `${u.pathname}${u.search}`;
  const origin = `${u.protocol}//${u.host}`;
  if (rest === "/" || rest === "") return `${origin}/`;
  return rest.length <= 4 ? `${origin}${rest}` : `${origin}/…${rest.slice(-4)}`;
}
