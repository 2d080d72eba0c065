import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import { makeTempDir, rejection } from "#test-support";
import { createMemoryStore, createSqliteStore } from "../store/index.js";
import type { Store } from "../store/index.js";
import { auditHash, createAuditLog, GENESIS_HASH } from "./audit-log.js";
import type { AuditEntry } from "./audit-log.js";

const START = Date.parse("2025-03-01T12:00:00.000Z");

function entry(parts: Partial<AuditEntry> = {}): AuditEntry {
  return { actor: "user:ci-web", action: "deploy", target: "service/web", from: "127.0.0.1", result: "ok", status: 202, ...parts };
}

describe("createAuditLog (memory store)", () => {
  let clock: number;
  let store: Store;
  const now = (): Date => new Date(clock);

  beforeEach(() => {
    clock = START;
    store = createMemoryStore({ now: () => clock });
  });

  afterEach(async () => {
    await store.close();
  });

  it("appends an audit event holding the entry, its time, prev and hash", async () => {
    const audit = createAuditLog({ store, project: "shop", now });
    const first = await audit.record(entry({ before: { replicas: 1 }, after: { replicas: 3 } }));
    clock += 1000;
    const second = await audit.record(entry({ result: "denied", status: 403, error: "not your team" }));
    expect(first).toMatchObject({ at: "2025-03-01T12:00:00.000Z", prev: GENESIS_HASH, before: { replicas: 1 }, after: { replicas: 3 } });
    expect(first.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(second.prev).toBe(first.hash);
    const [event] = await store.listEvents({ project: "shop", kinds: ["audit"] });
    expect(event).toMatchObject({ kind: "audit", actor: "user:ci-web", subject: "service/web" });
    expect(event?.details).toEqual({
      actor: "user:ci-web",
      action: "deploy",
      target: "service/web",
      from: "127.0.0.1",
      result: "ok",
      status: 202,
      before: { replicas: 1 },
      after: { replicas: 3 },
      at: "2025-03-01T12:00:00.000Z",
      prev: GENESIS_HASH,
      hash: first.hash,
    });
    expect(auditHash(GENESIS_HASH, event ?? { kind: "audit", actor: "", subject: "", details: {} })).toBe(first.hash);
  });

  it("hashes prev, a newline and the canonical JSON of kind, actor, subject and details", async () => {
    const audit = createAuditLog({ store, project: "shop", now });
    const record = await audit.record(entry({ status: undefined }));
    const { createHash } = await import("node:crypto");
    const details = { action: "deploy", actor: "user:ci-web", at: "2025-03-01T12:00:00.000Z", from: "127.0.0.1", prev: GENESIS_HASH, result: "ok", target: "service/web" };
    const text = `${GENESIS_HASH}\n${JSON.stringify({ actor: "user:ci-web", details, kind: "audit", subject: "service/web" })}`;
    expect(record.hash).toBe(createHash("sha256").update(text).digest("hex"));
  });

  it("verifies an intact chain and counts its records", async () => {
    const audit = createAuditLog({ store, project: "shop", now });
    expect(await audit.verify()).toEqual({ ok: true, checked: 0 });
    for (let i = 0; i < 5; i++) await audit.record(entry({ target: `service/s${i}` }));
    expect(await audit.verify()).toEqual({ ok: true, checked: 5 });
  });

  it("chains concurrent records one after another", async () => {
    const audit = createAuditLog({ store, project: "shop", now });
    const records = await Promise.all(Array.from({ length: 25 }, (_, i) => audit.record(entry({ target: `service/s${i}` }))));
    expect(new Set(records.map((r) => r.prev)).size).toBe(25);
    const bySeq = [...records].sort((a, b) => a.seq - b.seq);
    bySeq.forEach((r, i) => expect(r.prev).toBe(i === 0 ? GENESIS_HASH : bySeq[i - 1]?.hash));
    expect(await audit.verify()).toEqual({ ok: true, checked: 25 });
  });

  it("continues the chain in a new instance from the stored last hash", async () => {
    const first = await createAuditLog({ store, project: "shop", now }).record(entry());
    const later = createAuditLog({ store, project: "shop", now });
    const next = await later.record(entry());
    expect(next.prev).toBe(first.hash);
    expect(await later.verify()).toEqual({ ok: true, checked: 2 });
  });

  it("keeps each project's chain separate and ignores other events", async () => {
    const shop = createAuditLog({ store, project: "shop", now });
    const blog = createAuditLog({ store, project: "blog", now });
    await shop.record(entry());
    await store.appendEvent({ project: "shop", kind: "token.created", actor: "cli", subject: "token/x" });
    const b = await blog.record(entry());
    await shop.record(entry());
    expect(b.prev).toBe(GENESIS_HASH);
    expect(await shop.verify()).toEqual({ ok: true, checked: 2 });
    expect(await blog.verify()).toEqual({ ok: true, checked: 1 });
  });

  it("re-reads the chain's end after an append whose outcome is unknown", async () => {
    const flaky = Object.create(store) as Store;
    let failAfterWrite = false;
    flaky.appendEvent = async (event) => {
      const written = await store.appendEvent(event);
      if (failAfterWrite) {
        failAfterWrite = false;
        // The row landed, but the caller hears of a failure (e.g. a lost connection).
        throw new KeelsonError("KEELSON_ERR_STORE", "connection lost");
      }
      return written;
    };
    const audit = createAuditLog({ store: flaky, project: "shop", now });
    await audit.record(entry());
    failAfterWrite = true;
    await rejection(audit.record(entry()), "KEELSON_ERR_STORE");
    const [landed] = await store.listEvents({ project: "shop", kinds: ["audit"], descending: true, limit: 1 });
    const third = await audit.record(entry());
    expect(third.prev).toBe(landed?.details["hash"]);
    expect(await audit.verify()).toEqual({ ok: true, checked: 3 });
  });

  it("rejects incomplete entries, naming the field", async () => {
    const audit = createAuditLog({ store, project: "shop", now });
    expect((await rejection(audit.record(entry({ actor: "" })), "KEELSON_ERR_INVALID_INPUT")).message).toContain("actor");
    expect((await rejection(audit.record(entry({ target: undefined as unknown as string })), "KEELSON_ERR_INVALID_INPUT")).message).toContain("target");
    expect((await rejection(audit.record(entry({ result: "maybe" as "ok" })), "KEELSON_ERR_INVALID_INPUT")).message).toContain("result");
    expect((await rejection(audit.record(entry({ status: 2.5 })), "KEELSON_ERR_INVALID_INPUT")).message).toContain("status");
    expect(await store.listEvents({ kinds: ["audit"] })).toHaveLength(0);
  });

  describe("list", () => {
    it("returns records newest first, filtered by actor, target, action and since", async () => {
      const audit = createAuditLog({ store, project: "shop", now });
      await audit.record(entry({ actor: "user:a", action: "deploy", target: "service/web" }));
      clock += 60_000;
      await audit.record(entry({ actor: "user:b", action: "scale", target: "service/web" }));
      clock += 60_000;
      await audit.record(entry({ actor: "user:a", action: "scale", target: "service/pay" }));
      const all = await audit.list();
      expect(all.map((r) => [r.actor, r.action, r.target])).toEqual([
        ["user:a", "scale", "service/pay"],
        ["user:b", "scale", "service/web"],
        ["user:a", "deploy", "service/web"],
      ]);
      expect((await audit.list({ actor: "user:a" })).map((r) => r.action)).toEqual(["scale", "deploy"]);
      expect((await audit.list({ target: "service/web" })).map((r) => r.actor)).toEqual(["user:b", "user:a"]);
      expect((await audit.list({ action: "scale", actor: "user:b" })).map((r) => r.target)).toEqual(["service/web"]);
      expect((await audit.list({ since: "2025-03-01T12:01:00.000Z" })).map((r) => r.actor)).toEqual(["user:a", "user:b"]);
      expect(await audit.list({ limit: 1 })).toHaveLength(1);
    });

    it("reads further back until enough records match", async () => {
      const audit = createAuditLog({ store, project: "shop", now });
      for (let i = 0; i < 600; i++) await audit.record(entry({ actor: i % 5 === 0 ? "user:rare" : "user:common", status: i }));
      const rare = await audit.list({ actor: "user:rare", limit: 100 });
      expect(rare).toHaveLength(100);
      expect(rare[0]?.status).toBe(595);
      expect(rare[99]?.status).toBe(100);
    });

    it("rejects a bad limit or since", async () => {
      const audit = createAuditLog({ store, project: "shop", now });
      expect((await rejection(audit.list({ limit: 0 }), "KEELSON_ERR_INVALID_INPUT")).message).toMatch(/^limit:/);
      expect((await rejection(audit.list({ limit: 1001 }), "KEELSON_ERR_INVALID_INPUT")).message).toMatch(/^limit:/);
      expect((await rejection(audit.list({ since: "yesterday" }), "KEELSON_ERR_INVALID_INPUT")).message).toMatch(/^since:/);
    });
  });
});

describe("createAuditLog (SQLite store, tampered with directly)", () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let path: string;
  let store: Store;

  beforeEach(async () => {
    tmp = await makeTempDir("keelson-audit-");
    path = join(tmp.dir, "state.db");
    store = await createSqliteStore({ path });
  });

  afterEach(async () => {
    await store.close();
    await tmp.cleanup();
  });

  /** Runs SQL as someone holding the database file would: past the append-only triggers. */
  function tamper(sql: string, ...params: unknown[]): void {
    const db = new Database(path);
    try {
      db.exec("DROP TRIGGER IF EXISTS events_append_only_update; DROP TRIGGER IF EXISTS events_append_only_delete;");
      db.prepare(sql).run(...params);
    } finally {
      db.close();
    }
  }

  async function threeRecords(): Promise<number[]> {
    const audit = createAuditLog({ store, project: "shop" });
    const records = [];
    records.push(await audit.record(entry({ actor: "user:a" })));
    records.push(await audit.record(entry({ actor: "user:b", result: "denied", status: 403 })));
    records.push(await audit.record(entry({ actor: "user:c" })));
    return records.map((r) => r.seq);
  }

  it("verifies an untouched chain", async () => {
    await threeRecords();
    expect(await createAuditLog({ store, project: "shop" }).verify()).toEqual({ ok: true, checked: 3 });
  });

  it("finds a record whose details were edited", async () => {
    const [, second] = await threeRecords();
    tamper("UPDATE events SET details = json_set(details, '$.result', 'ok') WHERE seq = ?", second);
    const [edited] = await store.listEvents({ kinds: ["audit"], afterSeq: (second ?? 0) - 1, limit: 1 });
    expect(edited?.details["result"]).toBe("ok");
    expect(await createAuditLog({ store, project: "shop" }).verify()).toEqual({
      ok: false,
      checked: 2,
      firstBad: { seq: second, reason: "its content does not match its hash (edited)" },
    });
  });

  it("finds a record whose actor column was edited", async () => {
    const [first] = await threeRecords();
    tamper("UPDATE events SET actor = 'user:nobody' WHERE seq = ?", first);
    const result = await createAuditLog({ store, project: "shop" }).verify();
    expect(result.firstBad).toEqual({ seq: first, reason: "its content does not match its hash (edited)" });
  });

  it("finds an edit whose hash was recomputed, at the record after it", async () => {
    const [, second, third] = await threeRecords();
    const [event] = await store.listEvents({ kinds: ["audit"], afterSeq: (second ?? 0) - 1, limit: 1 });
    const details: Record<string, unknown> = { ...event?.details, result: "ok" };
    const forged = { ...details, hash: auditHash(String(details["prev"]), { kind: "audit", actor: event?.actor ?? "", subject: event?.subject ?? "", details }) };
    tamper("UPDATE events SET details = ? WHERE seq = ?", JSON.stringify(forged), second);
    expect(await createAuditLog({ store, project: "shop" }).verify()).toEqual({
      ok: false,
      checked: 3,
      firstBad: { seq: third, reason: "its prev does not match the record before it (a record was removed or reordered)" },
    });
  });

  it("finds a deleted record, at the record after it", async () => {
    const [, second, third] = await threeRecords();
    tamper("DELETE FROM events WHERE seq = ?", second);
    const result = await createAuditLog({ store, project: "shop" }).verify();
    expect(result).toEqual({
      ok: false,
      checked: 2,
      firstBad: { seq: third, reason: "its prev does not match the record before it (a record was removed or reordered)" },
    });
  });

  it("finds a deleted first record", async () => {
    const [first, second] = await threeRecords();
    tamper("DELETE FROM events WHERE seq = ?", first);
    const result = await createAuditLog({ store, project: "shop" }).verify();
    expect(result.firstBad?.seq).toBe(second);
    expect(result.firstBad?.reason).toContain("removed or reordered");
  });

  it("finds swapped records", async () => {
    const [first, second] = await threeRecords();
    const a = await store.listEvents({ kinds: ["audit"], limit: 2 });
    tamper("UPDATE events SET actor = ?, details = ? WHERE seq = ?", a[1]?.actor, JSON.stringify(a[1]?.details), first);
    tamper("UPDATE events SET actor = ?, details = ? WHERE seq = ?", a[0]?.actor, JSON.stringify(a[0]?.details), second);
    const result = await createAuditLog({ store, project: "shop" }).verify();
    expect(result).toMatchObject({ ok: false, firstBad: { seq: first, reason: expect.stringContaining("reordered") as unknown } });
  });

  it("keeps a valid chain under concurrent records", async () => {
    const audit = createAuditLog({ store, project: "shop" });
    await Promise.all(Array.from({ length: 40 }, (_, i) => audit.record(entry({ target: `service/s${i % 4}` }))));
    expect(await createAuditLog({ store, project: "shop" }).verify()).toEqual({ ok: true, checked: 40 });
  });

  it("pages through more than one page of records", async () => {
    const audit = createAuditLog({ store, project: "shop" });
    for (let i = 0; i < 1005; i++) await audit.record(entry({ status: i }));
    expect(await audit.verify()).toEqual({ ok: true, checked: 1005 });
  }, 30_000);
});
