// Tests for the notifications API over real HTTP with a temporary data folder: queuing to
// the JSONL outbox, the masked public listing, limits and validation.
import { appendFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger, serve } from "@keelson/sdk";
import type { ServiceHandle } from "@keelson/sdk";
import { createApp, maskEmail } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { createOutbox } from "../src/outbox.js";

let dir: string;
let handle: ServiceHandle;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "shop-notifications-"));
  let tick = 0;
  const app = createApp({
    outbox: createOutbox({ dataDir: dir }),
    mailFrom: "orders@shop.example",
    listLimit: 3,
    now: () => new Date(Date.UTC(2025, 2, 1, 10, 0, tick++)),
  });
  handle = await serve({ handler: app, port: 0, signals: [], logger: createLogger({ level: "silent" }) });
});
afterEach(async () => {
  await handle.close();
  await rm(dir, { recursive: true, force: true });
});

function send(body: unknown): Promise<Response> {
  return fetch(`${handle.url}/notifications`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

async function list(query = ""): Promise<{ subject: string; to: string }[]> {
  const res = await fetch(`${handle.url}/api/notifications${query}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { notifications: { subject: string; to: string }[] }).notifications;
}

describe("POST /notifications", () => {
  it("appends the message as one JSON line and answers 202 with it", async () => {
    const res = await send({ to: "alice@example.com", subject: "Order ord_1 confirmed", body: "Thanks!" });
    expect(res.status).toBe(202);
    const message = (await res.json()) as Record<string, unknown>;
    expect(message).toMatchObject({ from: "orders@shop.example", to: "alice@example.com", subject: "Order ord_1 confirmed", body: "Thanks!", createdAt: "2025-03-01T10:00:00.000Z" });
    expect(String(message.id)).toMatch(/^msg_/);
    const lines = (await readFile(join(dir, "outbox.jsonl"), "utf8")).split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe("");
    expect(JSON.parse(lines[0] ?? "")).toEqual(message);
  });

  it("answers 400 naming the field", async () => {
    const cases: [unknown, string][] = [
      [{ subject: "s", body: "b" }, "to"],
      [{ to: "not-an-address", subject: "s", body: "b" }, "to"],
      [{ to: "a@b.co", subject: "two\r\nBcc: x@evil.example", body: "b" }, "subject"],
      [{ to: "a@b.co", subject: " ", body: "b" }, "subject"],
      [{ to: "a@b.co", subject: "s", body: 5 }, "body"],
    ];
    for (const [body, field] of cases) {
      const res = await send(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: { details: { field: string } } }).error.details.field).toBe(field);
    }
  });
});

describe("GET /api/notifications", () => {
  it("lists the latest messages newest first, masked, up to the limit", async () => {
    expect(await list()).toEqual([]);
    for (const n of [1, 2, 3, 4]) await send({ to: `buyer${n}@example.com`, subject: `m${n}`, body: "" });
    const latest = await list();
    expect(latest.map((m) => m.subject)).toEqual(["m4", "m3", "m2"]);
    expect(latest[0]?.to).toBe("b***@example.com");
    expect((await list("?limit=1")).map((m) => m.subject)).toEqual(["m4"]);
    const tooMany = await fetch(`${handle.url}/api/notifications?limit=50`);
    expect(tooMany.status).toBe(400);
    expect(((await tooMany.json()) as { error: { message: string } }).error.message).toBe("limit must be a whole number from 1 to 3");
  });

  it("skips a torn line left by a crash mid-write", async () => {
    await send({ to: "a@example.com", subject: "before", body: "" });
    await appendFile(join(dir, "outbox.jsonl"), '{"id":"msg_torn","to":"x@');
    await appendFile(join(dir, "outbox.jsonl"), "\n");
    await send({ to: "b@example.com", subject: "after", body: "" });
    expect((await list()).map((m) => m.subject)).toEqual(["after", "before"]);
  });
});

describe("maskEmail and loadConfig", () => {
  it("masks the local part and validates settings", () => {
    expect(maskEmail("alice@example.com")).toBe("a***@example.com");
    expect(maskEmail("@nobody")).toBe("***");
    expect(loadConfig({ KEELSON_DATA_DIR: "/d" })).toEqual({ dataDir: "/d", mailFrom: "orders@shop.example", listLimit: 20 });
    expect(() => loadConfig({ KEELSON_DATA_DIR: "/d", OUTBOX_LIST_LIMIT: "0" })).toThrow(/OUTBOX_LIST_LIMIT/);
    expect(() => loadConfig({ KEELSON_DATA_DIR: "/d", MAIL_FROM: "nobody" })).toThrow(/MAIL_FROM/);
  });
});
