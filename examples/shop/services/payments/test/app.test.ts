// Tests for the payments API over real HTTP with a temporary data folder: approvals,
// declines, idempotency by order id (also under concurrency) and validation.
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger, serve } from "@keelson/sdk";
import type { ServiceHandle } from "@keelson/sdk";
import { createApp } from "../src/app.js";
import { createChargeStore } from "../src/charge-store.js";
import { loadConfig } from "../src/config.js";

let dir: string;
let handle: ServiceHandle;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "shop-payments-"));
  handle = await startReplica();
});
afterEach(async () => {
  await handle.close();
  await rm(dir, { recursive: true, force: true });
});

function startReplica(): Promise<ServiceHandle> {
  const app = createApp({ store: createChargeStore({ dataDir: dir }), declinedCardSuffix: "0000", now: () => new Date("2025-03-01T10:00:00.000Z") });
  return serve({ handler: app, port: 0, signals: [], logger: createLogger({ level: "silent" }) });
}

function charge(body: unknown, url = handle.url): Promise<Response> {
  return fetch(`${url}/charges`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

describe("POST /charges", () => {
  it("approves a card, keeps only its last four digits and stores the charge", async () => {
    const res = await charge({ orderId: "ord_1", amount: 3800, card: "4242 4242 4242 4242" });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ orderId: "ord_1", amount: 3800, last4: "4242", status: "approved", createdAt: "2025-03-01T10:00:00.000Z" });
    expect(String(body.id)).toMatch(/^ch_[0-9a-f-]{36}$/);
    const stored = await readFile(join(dir, "charges", "ord_1.json"), "utf8");
    expect(JSON.parse(stored)).toEqual(body);
    expect(stored).not.toContain("4242424242424242");
    expect(await readdir(join(dir, "charges"))).toEqual(["ord_1.json"]);
  });

  it("declines a card ending in 0000 with 402 and answers a retry the same way", async () => {
    for (const expected of [402, 402]) {
      const res = await charge({ orderId: "ord_2", amount: 1200, card: "4000-0000-0000-0000" });
      expect(res.status).toBe(expected);
      const body = (await res.json()) as { error: { code: string; message: string; details: { charge: { status: string } } } };
      expect(body.error.code).toBe("CARD_DECLINED");
      expect(body.error.message).toBe("the card ending 0000 was declined");
      expect(body.error.details.charge.status).toBe("declined");
    }
  });

  it("answers a repeated charge with the first one instead of charging again", async () => {
    const first = (await (await charge({ orderId: "ord_3", amount: 500, card: "4242424242424242" })).json()) as { id: string };
    const again = await charge({ orderId: "ord_3", amount: 500, card: "4242424242424242" });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { id: string }).id).toBe(first.id);
    const lookup = await fetch(`${handle.url}/charges/ord_3`);
    expect(((await lookup.json()) as { id: string }).id).toBe(first.id);
  });

  it("refuses the same order id with a different amount", async () => {
    await charge({ orderId: "ord_4", amount: 500, card: "4242424242424242" });
    const res = await charge({ orderId: "ord_4", amount: 999, card: "4242424242424242" });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("IDEMPOTENCY_CONFLICT");
  });

  it("charges once when two replicas get the same order at the same time", async () => {
    const other = await startReplica();
    try {
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, i) => charge({ orderId: "ord_5", amount: 700, card: "5555555555554444" }, i % 2 ? other.url : handle.url)),
      );
      const bodies = (await Promise.all(answers.map((r) => r.json()))) as { id: string }[];
      expect(answers.filter((r) => r.status === 201)).toHaveLength(1);
      expect(answers.filter((r) => r.status === 200)).toHaveLength(7);
      expect(new Set(bodies.map((b) => b.id)).size).toBe(1);
      expect(await readdir(join(dir, "charges"))).toEqual(["ord_5.json"]);
    } finally {
      await other.close();
    }
  });

  it("answers 400 naming the field", async () => {
    const cases: [unknown, string][] = [
      [{ amount: 1, card: "4242424242424242" }, "orderId"],
      [{ orderId: "../x", amount: 1, card: "4242424242424242" }, "orderId"],
      [{ orderId: "o", amount: 0, card: "4242424242424242" }, "amount"],
      [{ orderId: "o", amount: 12.5, card: "4242424242424242" }, "amount"],
      [{ orderId: "o", amount: 100, card: "42" }, "card"],
      [{ orderId: "o", amount: 100, card: 4242424242424242 }, "card"],
      [[1, 2], "body"],
    ];
    for (const [body, field] of cases) {
      const res = await charge(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: { details: { field: string } } }).error.details.field).toBe(field);
    }
  });
});

describe("GET /charges/:orderId", () => {
  it("answers 404 for an unknown or impossible order id", async () => {
    expect((await fetch(`${handle.url}/charges/ord_none`)).status).toBe(404);
    expect((await fetch(`${handle.url}/charges/..%2F..%2Fetc`)).status).toBe(404);
  });
});

describe("loadConfig", () => {
  it("defaults the decline rule to 0000 and rejects a bad one", () => {
    expect(loadConfig({ KEELSON_DATA_DIR: "/d" })).toEqual({ dataDir: "/d", declinedCardSuffix: "0000" });
    expect(() => loadConfig({ KEELSON_DATA_DIR: "/d", DECLINED_CARD_SUFFIX: "x1" })).toThrow(/DECLINED_CARD_SUFFIX/);
    expect(() => loadConfig({})).toThrow(/KEELSON_DATA_DIR/);
  });
});
