import { describe, expect, it } from "vitest";
import { parseManifest } from "../manifest/index.js";
import { createMemoryStore } from "../store/index.js";
import { DEFAULT_NOTIFICATION_SETTINGS, getNotificationSettings, listTeams, saveTeams } from "./teams.js";

const manifest = (teams: string, notifications = "") =>
  parseManifest(
    [
      "project: shop",
      teams,
      notifications,
      "services:",
      "  orders: { owner: commerce, path: orders, start: node main.js }",
      "",
    ].join("\n"),
    "/tmp/shop/keelson.yaml",
    { checkPaths: false },
  ).manifest;

describe("teams and notification settings", () => {
  it("stores what was applied, normalizes bare webhook URLs, and forgets teams no longer declared", async () => {
    const store = createMemoryStore();
    expect(await listTeams(store, "shop")).toEqual([]);
    expect(await getNotificationSettings(store, "shop")).toEqual(DEFAULT_NOTIFICATION_SETTINGS);
    await saveTeams(
      store,
      "shop",
      manifest(
        "teams:\n  commerce: { members: [ana], contact: '#commerce', notifications: [{ url: 'http://127.0.0.1:9/chat', format: slack, events: [deploy.failed] }] }\n  ops: {}",
        "notifications: { webhooks: ['http://127.0.0.1:9/all'], attempts: 3, backoff: 200ms }",
      ),
      "2026-01-01T00:00:00.000Z",
    );
    expect(await listTeams(store, "shop")).toEqual([
      { name: "commerce", members: ["ana"], contact: "#commerce", notifications: [{ url: "http://127.0.0.1:9/chat", format: "slack", events: ["deploy.failed"] }] },
      { name: "ops", members: [], contact: undefined, notifications: [] },
    ]);
    expect(await getNotificationSettings(store, "shop")).toEqual({ webhooks: [{ url: "http://127.0.0.1:9/all", format: "json", events: undefined }], attempts: 3, backoffMs: 200, maxBackoffMs: 300_000 });

    await saveTeams(store, "shop", manifest("teams:\n  commerce: {}"), "2026-01-02T00:00:00.000Z");
    expect((await listTeams(store, "shop")).map((t) => t.name)).toEqual(["commerce"]);
    expect(await getNotificationSettings(store, "shop")).toEqual(DEFAULT_NOTIFICATION_SETTINGS);
  });

  it("refuses a webhook that is not http(s) or a kind it does not know, naming the place", () => {
    const bad = (yaml: string) => parseManifest(["project: shop", yaml, "services:", "  orders: { owner: commerce, path: orders, start: node main.js }", ""].join("\n"), "/tmp/shop/keelson.yaml", { checkPaths: false });
    expect(() => bad("notifications: { webhooks: ['ftp://x/y'] }")).toThrow(/notifications\.webhooks\[0\]: expected http\(s\) URL/);
    expect(() => bad("teams:\n  commerce: { notifications: [{ url: 'http://127.0.0.1:9/', events: [deploy.exploded] }] }")).toThrow(/teams\.commerce\.notifications\[0\]/);
  });
});
