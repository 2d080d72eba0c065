// The notifications service's HTTP API: an internal endpoint that queues a message in the
// outbox and a public listing of the latest messages, with addresses masked.
import { randomUUID } from "node:crypto";
import { createRouter, HttpError, json } from "@keelson/sdk";
import type { Handler } from "@keelson/sdk";
import type { Message, Outbox } from "./outbox.js";

export interface NotificationsAppOptions {
  outbox: Outbox;
  mailFrom: string;
  listLimit: number;
  now?: () => Date;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/**
 * POST /notifications { to, subject, body } → 202 message (internal)
 * GET /api/notifications?limit=N           → 200 { notifications: [...] }, newest first, `to` masked
 */
export function createApp(options: NotificationsAppOptions): Handler {
  const { outbox, mailFrom, listLimit } = options;
  const now = options.now ?? (() => new Date());
  return createRouter({ bodyLimitBytes: 64 * 1024 })
    .post("/notifications", async ({ res, body }) => {
      const input = parseMessage(await body());
      const message: Message = { id: `msg_${randomUUID()}`, from: mailFrom, ...input, createdAt: now().toISOString() };
      await outbox.append(message);
      json(res, 202, message);
    })
    .get("/api/notifications", async ({ res, query }) => {
      const asked = query.get("limit");
      const limit = asked === null ? listLimit : Number(asked);
      if (!Number.isInteger(limit) || limit < 1 || limit > listLimit) {
        throw new HttpError(400, "VALIDATION", `limit must be a whole number from 1 to ${listLimit}`, { field: "limit" });
      }
      const messages = await outbox.latest(limit);
      // The listing is public; the addressee's full address is not everyone's business.
      json(res, 200, { notifications: messages.map((m) => ({ ...m, to: maskEmail(m.to) })) });
    }).handle;
}

/** "alice@example.com" → "a***@example.com" */
export function maskEmail(address: string): string {
  const at = address.lastIndexOf("@");
  if (at < 1) return "***";
  return `${address[0]}***${address.slice(at)}`;
}

function parseMessage(body: unknown): { to: string; subject: string; body: string } {
  const fail = (field: string, problem: string) => new HttpError(400, "VALIDATION", `${field} ${problem}`, { field });
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw fail("body", "must be a JSON object { to, subject, body }");
  const { to, subject, body: text } = body as Record<string, unknown>;
  if (typeof to !== "string" || to.length > 254 || !EMAIL.test(to)) throw fail("to", "must be an email address");
  // A line break in a subject is how header injection starts once this goes out by SMTP.
  if (typeof subject !== "string" || subject.trim() === "" || subject.length > 200 || /[\r\n]/.test(subject)) {
    throw fail("subject", "must be one line of 1 to 200 characters");
  }
  if (typeof text !== "string" || text.length > 10_000) throw fail("body", "must be text of at most 10000 characters");
  return { to, subject, body: text };
}
