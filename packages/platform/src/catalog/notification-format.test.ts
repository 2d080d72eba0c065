import type { KeelsonEvent } from "@keelson/protocol";
import { describe, expect, it } from "vitest";
import { escapeMrkdwn, jsonMessage, redactUrl, slackMessage, type MessageInput } from "./notification-format.js";

const event: KeelsonEvent = {
  seq: 42,
  at: "2026-11-27T10:00:00.000Z",
  project: "shop",
  kind: "rollout.failed",
  actor: "reconciler",
  subject: "service/orders",
  details: { strategy: "canary", to: "r-000000000002", rolledBackTo: "r-000000000001" },
};
const input: MessageInput = {
  id: "ntf-42-0123456789",
  kind: "canary.rolled-back",
  project: "shop",
  team: "commerce",
  at: event.at,
  notification: { service: "orders", summary: "orders: canary r-000000000002 rolled back to r-000000000001: error ratio 5.1% vs 0.2% (SPRT) <&>", release: "r-000000000002", commit: "0123456789abcdef", actor: "reconciler" },
  event,
};

describe("notification messages", () => {
  it("generic JSON: the delivery id, kind, project, service, team, time, summary, the event's details and the event", () => {
    expect(jsonMessage(input)).toEqual({
      id: "ntf-42-0123456789",
      kind: "canary.rolled-back",
      project: "shop",
      service: "orders",
      team: "commerce",
      at: "2026-11-27T10:00:00.000Z",
      summary: input.notification.summary,
      details: event.details,
      event: { seq: 42, kind: "rollout.failed", subject: "service/orders", actor: "reconciler" },
    });
    const test = jsonMessage({ ...input, kind: "test", team: undefined, notification: { ...input.notification, service: undefined }, event: undefined });
    expect(test).toMatchObject({ kind: "test", service: null, team: null, details: {}, event: null });
  });

  it("Slack: text for notifications, a mrkdwn section with the summary and the facts, and a context line", () => {
    const m = slackMessage(input);
    expect(m.text).toBe(input.notification.summary);
    expect(m.blocks).toEqual([
      {
        type: "section",
        text: { type: "mrkdwn", text: ":leftwards_arrow_with_hook: orders: canary r-000000000002 rolled back to r-000000000001: error ratio 5.1% vs 0.2% (SPRT) &lt;&amp;&gt;" },
        fields: [
          { type: "mrkdwn", text: "*Service*\n`orders (team commerce)`" },
          { type: "mrkdwn", text: "*Release*\n`r-000000000002`" },
          { type: "mrkdwn", text: "*Commit*\n`0123456789ab`" },
          { type: "mrkdwn", text: "*By*\n`reconciler`" },
        ],
      },
      { type: "context", elements: [{ type: "mrkdwn", text: "Keelson · project *shop* · `canary.rolled-back` · event #42 · 2026-11-27T10:00:00.000Z" }] },
    ]);
    // Slack refuses a section text over 3,000 characters.
    const long = slackMessage({ ...input, notification: { ...input.notification, summary: "x".repeat(5000) } });
    expect(((long.blocks[0] as { text: { text: string } }).text.text).length).toBe(3000);
  });

  it("escapes what Slack reads as markup", () => {
    expect(escapeMrkdwn("<!channel> & <http://x|y>")).toBe("&lt;!channel&gt; &amp; &lt;http://x|y&gt;");
  });

  it("shows a webhook URL as scheme://host/… and its last 4 characters, never the secret path or credentials", () => {
    expect(redactUrl("https://hooks.slack.com/services/T000/B000/XXXXXXXXabcd")).toBe("https://hooks.slack.com/…abcd");
    expect(redactUrl("http://127.0.0.1:9000/hook?token=s3cr3t-9z")).toBe("http://127.0.0.1:9000/…t-9z");
    expect(redactUrl("https://user:password@example.com/x")).toBe("https://example.com/x");
    expect(redactUrl("https://example.com")).toBe("https://example.com/");
    expect(redactUrl("not a url")).toBe("…");
  });
});
