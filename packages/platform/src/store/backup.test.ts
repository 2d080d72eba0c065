// Backup and restore on real SQLite files and a real PostgreSQL: round trips between and within
// the two engines compared table by table, event seq numbers kept (and continued after), and files
// that were cut short or edited refused naming the line, with nothing written.
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir, postgresAvailability, rejection, requireComponent, startTestPostgres } from "#test-support";
import type { TestPostgres, TestSchema } from "#test-support";
import { BACKUP_FORMAT, backupStore, openBackup, restoreStore } from "./backup.js";
import { canonicalJson } from "./canonical-json.js";
import { migrateStore } from "./migrate-store.js";
import { LATEST_SCHEMA_VERSION } from "./migrations.js";
import { openStore } from "./open-store.js";
import type { StoreLocation } from "./open-store.js";
import { openPostgresTables } from "./postgres-tables.js";
import { openSqliteTables } from "./sqlite-tables.js";
import type { Store } from "./store.js";
import type { Row, StoreTables, TableName } from "./store-tables.js";

const availability = postgresAvailability();
const pgAvailable = requireComponent("PostgreSQL", availability.available, availability.reason);

const T0 = Date.parse("2026-01-05T09:00:00.000Z");

/** Fills a store with one of everything the migrations make room for. */
async function populate(store: Store): Promise<void> {
  await store.applyDesiredState({
    project: { name: "shop", manifestPath: "/srv/shop/keelson.yaml", manifestHash: "h1", appliedAt: "2026-01-05T08:00:00.000Z" },
    upsert: [
      { project: "shop", name: "orders", spec: { replicas: 2, env: { GREETING: "grüß dich ✓" } }, release: undefined },
      { project: "shop", name: "web", spec: { replicas: 1, path: "services/web" }, release: undefined },
    ],
    remove: [],
    events: [{ project: "shop", kind: "manifest.applied", actor: "cli", subject: "project/shop", details: { services: 2 } }],
  });
  // Two releases in the same millisecond: their stored order must survive the round trip.
  for (const [id, git] of [["r-orders-1", "abc123"], ["r-orders-2", undefined], ["r-orders-0", "def456"]] as const) {
    await store.putRelease({
      id, project: "shop", service: "orders", sourceHash: `s-${id}`, configHash: "c", gitCommit: git,
      createdAt: "2026-01-05T08:30:00.000Z", details: { build: "npm run build", nested: { a: [1, 2, { b: null }] } },
    });
  }
  await store.putRelease({ id: "r-web-1", project: "shop", service: "web", sourceHash: "s", configHash: "c", gitCommit: undefined, createdAt: "2026-01-05T08:31:00.000Z", details: {} });
  await store.setServiceRelease("shop", "orders", "r-orders-0", { project: "shop", kind: "release.created", actor: "pipeline", subject: "service/orders" });
  await store.upsertReplica({
    id: "orders-0", project: "shop", service: "orders", release: "r-orders-0", index: 0, state: "ready", pid: 4242, pidStartTime: 99,
    port: 41001, restarts: 1, startedAt: "2026-01-05T08:40:00.000Z", updatedAt: "2026-01-05T08:41:00.000Z", details: { log: "/tmp/orders-0.log" },
  });
  await store.upsertReplica({
    id: "orders-1", project: "shop", service: "orders", release: "r-orders-0", index: 1, state: "starting", pid: undefined, pidStartTime: undefined,
    port: 41002, restarts: 0, startedAt: undefined, updatedAt: "2026-01-05T08:41:00.000Z", details: {},
  });
  // An audit-like hash chain over event details: a restore must keep every byte the hash covers.
  let prev = "0".repeat(64);
  for (let i = 0; i < 5; i++) {
    const details = { action: "deploy", n: i, note: i === 2 ? "quote \" backslash \\ nul \u0000 ✓" : "", prev };
    const hash = createHash("sha256").update(`${prev}\n${canonicalJson(details)}`).digest("hex");
    await store.appendEvent({ project: "shop", kind: "audit", actor: "user:ana", subject: "service/orders", details: { ...details, hash } });
    prev = hash;
  }
  await store.putDocuments([
    { collection: "notification", project: "shop", id: "n-1", tag: "sent", at: "2026-01-05T08:50:00.000Z", body: { to: "#ops", text: "deployed" } },
    { collection: "team", project: "shop", id: "web", tag: "", at: "2026-01-05T08:00:00.000Z", body: { members: ["ana", "bo"] } },
  ]);
  await store.setSetting("routing.version", "7");
  await store.setSetting("tokens", JSON.stringify([{ name: "ana", hash: "x" }]));
}

/** Every table's rows, as a backup sees them. */
async function tableRows(tables: StoreTables): Promise<Record<TableName, Row[]>> {
  try {
    return await tables.read(async (snapshot) => {
      const out: Record<string, Row[]> = {};
      for await (const { table, row } of snapshot.rows()) (out[table] ??= []).push(row);
      return out as Record<TableName, Row[]>;
    });
  } finally {
    await tables.close();
  }
}

/** Checks the audit-like chain populate() wrote, as read back through the Store interface. */
async function chainHolds(store: Store): Promise<boolean> {
  let prev = "0".repeat(64);
  for (const e of await store.listEvents({ kinds: ["audit"] })) {
    const { hash, ...details } = e.details;
    if (details["prev"] !== prev) return false;
    if (createHash("sha256").update(`${prev}\n${canonicalJson(details)}`).digest("hex") !== hash) return false;
    prev = String(hash);
  }
  return prev !== "0".repeat(64);
}

describe("backup and restore (SQLite)", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const clock = { t: T0 };
  const now = (): number => clock.t;

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-backup-"));
  });
  afterEach(async () => {
    await cleanup();
  });

  async function populated(name = "source.db"): Promise<string> {
    const path = join(dir, name);
    const store = await openStore({ path, now });
    await populate(store);
    await store.close();
    return path;
  }

  it("round-trips SQLite to SQLite: every table identical, seq numbers kept, the chain verifies, new events continue after", async () => {
    const source = await populated();
    const out = join(dir, "b.kbak");
    const progress: number[] = [];
    const summary = await backupStore({ path: source, out, now, onProgress: (p) => progress.push(p.rows) });
    expect(summary.header).toMatchObject({ format: BACKUP_FORMAT, version: 1, schemaVersion: LATEST_SCHEMA_VERSION, store: { kind: "sqlite", name: source }, createdAt: new Date(T0).toISOString() });
    expect(summary.header.counts).toEqual({ projects: 1, services: 2, releases: 4, replicas: 2, events: 7, documents: 2, settings: 2 });
    expect(summary.lines).toBe(1 + 20 + 1);
    // The last progress report is the whole file.
    expect(progress.at(-1)).toBe(20);
    expect((statSync(out).mode & 0o777).toString(8)).toBe("600");

    const target = join(dir, "target.db");
    const restored = await restoreStore({ file: out, path: target });
    expect(restored.counts).toEqual(summary.header.counts);
    expect(await tableRows(openSqliteTables({ path: target, create: false }))).toEqual(await tableRows(openSqliteTables({ path: source, create: false })));

    const store = await openStore({ path: target });
    try {
      expect(await chainHolds(store)).toBe(true);
      expect((await store.listReleases("shop", "orders")).map((r) => r.id)).toEqual(["r-orders-0", "r-orders-2", "r-orders-1"]);
      expect((await store.appendEvent({ project: "shop", kind: "service.changed", actor: "cli", subject: "x" })).seq).toBe(8);
      expect((await store.checkIntegrity()).problems).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it("writes the same lines for the same data, and a backup of the restored store is the same file apart from its header", async () => {
    const source = await populated();
    await backupStore({ path: source, out: join(dir, "a.kbak"), now });
    await restoreStore({ file: join(dir, "a.kbak"), path: join(dir, "copy.db") });
    await backupStore({ path: join(dir, "copy.db"), out: join(dir, "b.kbak"), now });
    const rowsOf = async (f: string) => gunzipSync(await readFile(join(dir, f))).toString().split("\n").slice(1).map((l) => l.replace(/,"sha256":"[0-9a-f]{64}"\}$/, "}"));
    expect(await rowsOf("b.kbak")).toEqual(await rowsOf("a.kbak"));
  });

  it("refuses to restore into a store that holds rows, naming what it found, and --force replaces everything in one go", async () => {
    const source = await populated();
    const out = join(dir, "b.kbak");
    await backupStore({ path: source, out });
    const other = join(dir, "other.db");
    const store = await openStore({ path: other });
    await store.setSetting("left", "over");
    for (let i = 0; i < 12; i++) await store.appendEvent({ project: "old", kind: "audit", actor: "cli", subject: `x/${i}` });
    await store.close();

    const err = await rejection(restoreStore({ file: out, path: other }), "KEELSON_ERR_CONFLICT");
    expect(err.message).toContain(`the store ${other} is not empty: it holds 12 events, 1 setting`);

    await restoreStore({ file: out, path: other, force: true });
    expect(await tableRows(openSqliteTables({ path: other, create: false }))).toEqual(await tableRows(openSqliteTables({ path: source, create: false })));
    const reopened = await openStore({ path: other });
    try {
      // The replaced store's 12 events are gone and the append-only triggers are back.
      expect((await reopened.appendEvent({ project: "shop", kind: "service.changed", actor: "cli", subject: "y" })).seq).toBe(8);
      expect(await reopened.getSetting("left")).toBeUndefined();
    } finally {
      await reopened.close();
    }
    const db = new Database(other);
    try {
      expect(() => db.prepare("DELETE FROM events WHERE seq = 1").run()).toThrow(/append-only/);
    } finally {
      db.close();
    }
  });

  it("refuses a file cut short, naming the line, and leaves the target empty", async () => {
    const source = await populated();
    const out = join(dir, "b.kbak");
    await backupStore({ path: source, out });
    const text = gunzipSync(await readFile(out)).toString();
    const lines = text.split("\n");
    // Cut at a line boundary (no closing line), and cut inside the gzip stream.
    await writeFile(join(dir, "lines.kbak"), gzipSync(lines.slice(0, 10).join("\n") + "\n"));
    const atBoundary = await rejection(restoreStore({ file: join(dir, "lines.kbak"), path: join(dir, "t1.db") }), "KEELSON_ERR_INVALID_INPUT");
    expect(atBoundary.message).toContain("line 11: the file ends here without its closing line: it is cut short");
    const gz = await readFile(out);
    await writeFile(join(dir, "bytes.kbak"), gz.subarray(0, gz.length - 40));
    const inGzip = await rejection(restoreStore({ file: join(dir, "bytes.kbak"), path: join(dir, "t2.db") }), "KEELSON_ERR_INVALID_INPUT");
    expect(inGzip.message).toMatch(/line \d+: the file is cut short or corrupt \(unexpected end of file\)/);
    for (const t of ["t1.db", "t2.db"]) {
      const rows = await tableRows(openSqliteTables({ path: join(dir, t), create: false }));
      expect(rows).toEqual({});
    }
  });

  it("refuses an edited line, a removed line and an edited header, naming the line", async () => {
    const source = await populated();
    const out = join(dir, "b.kbak");
    await backupStore({ path: source, out });
    const lines = gunzipSync(await readFile(out)).toString().split("\n");
    const auditLine = lines.findIndex((l) => l.includes('"kind":"audit"'));
    expect(auditLine).toBeGreaterThan(0);

    const edited = [...lines];
    edited[auditLine] = edited[auditLine]!.replace('"actor":"user:ana"', '"actor":"user:eve"');
    await writeFile(join(dir, "edited.kbak"), gzipSync(edited.join("\n")));
    const e1 = await rejection(restoreStore({ file: join(dir, "edited.kbak"), path: join(dir, "t.db") }), "KEELSON_ERR_INVALID_INPUT");
    expect(e1.message).toContain(`line ${auditLine + 1}: checksum mismatch`);

    const removed = lines.filter((_, i) => i !== 5);
    await writeFile(join(dir, "removed.kbak"), gzipSync(removed.join("\n")));
    const e2 = await rejection(restoreStore({ file: join(dir, "removed.kbak"), path: join(dir, "t.db") }), "KEELSON_ERR_INVALID_INPUT");
    expect(e2.message).toContain("line 6: checksum mismatch");

    const header = [...lines];
    header[0] = header[0]!.replace(/"schemaVersion":\d+/, '"schemaVersion":1');
    await writeFile(join(dir, "header.kbak"), header.join("\n"));
    const e3 = await rejection(restoreStore({ file: join(dir, "header.kbak"), path: join(dir, "t.db") }), "KEELSON_ERR_INVALID_INPUT");
    expect(e3.message).toContain("line 1: checksum mismatch");

    await writeFile(join(dir, "notes.txt"), "hello\n");
    const e4 = await rejection(openBackup(join(dir, "notes.txt")), "KEELSON_ERR_INVALID_INPUT");
    expect(e4.message).toContain("line 1: not a Keelson backup");
    expect(await tableRows(openSqliteTables({ path: join(dir, "t.db"), create: false }))).toEqual({});
  });

  it("refuses a well-formed row that does not fit its table, naming the line and the column", async () => {
    const source = await populated();
    const out = join(dir, "b.kbak");
    await backupStore({ path: source, out });
    const lines = gunzipSync(await readFile(out)).toString().trimEnd().split("\n");
    // Re-seal every line after editing one, as a careless tool would: the hashes hold, the row does not.
    const bodies = lines.map((l) => l.replace(/,"sha256":"[0-9a-f]{64}"\}$/, "}"));
    const i = bodies.findIndex((b) => b.startsWith('{"table":"replicas"'));
    bodies[i] = bodies[i]!.replace('"port":41001', '"port":"41001"');
    let prev = "";
    const resealed = bodies.map((b) => {
      const h = createHash("sha256").update(`${prev}\n${b}`).digest("hex");
      prev = h;
      return `${b.slice(0, -1)},"sha256":"${h}"}`;
    });
    await writeFile(join(dir, "typed.kbak"), gzipSync(resealed.join("\n") + "\n"));
    const err = await rejection(restoreStore({ file: join(dir, "typed.kbak"), path: join(dir, "t.db") }), "KEELSON_ERR_INVALID_INPUT");
    expect(err.message).toContain(`line ${i + 1}: replicas.port: expected a whole number, got "41001"`);
  });

  it("refuses a backup of another schema version, a store of an older one, and never overwrites a file", async () => {
    const source = await populated();
    const out = join(dir, "b.kbak");
    await backupStore({ path: source, out });
    const exists = await rejection(backupStore({ path: source, out }), "KEELSON_ERR_CONFLICT");
    expect(exists.message).toContain("the file exists");

    const lines = gunzipSync(await readFile(out)).toString().trimEnd().split("\n");
    const bodies = lines.map((l) => l.replace(/,"sha256":"[0-9a-f]{64}"\}$/, "}"));
    bodies[0] = bodies[0]!.replace(/"schemaVersion":\d+/, `"schemaVersion":${LATEST_SCHEMA_VERSION + 1}`);
    let prev = "";
    const resealed = bodies.map((b) => {
      const h = createHash("sha256").update(`${prev}\n${b}`).digest("hex");
      prev = h;
      return `${b.slice(0, -1)},"sha256":"${h}"}`;
    });
    await writeFile(join(dir, "newer.kbak"), gzipSync(resealed.join("\n") + "\n"));
    const newer = await rejection(restoreStore({ file: join(dir, "newer.kbak"), path: join(dir, "t.db") }), "KEELSON_ERR_STORE_MIGRATION");
    expect(newer.message).toContain(`holds schema version ${LATEST_SCHEMA_VERSION + 1}, but this Keelson knows schema versions up to ${LATEST_SCHEMA_VERSION}`);

    const old = join(dir, "old.db");
    await migrateStore({ path: old, to: 1 });
    const older = await rejection(backupStore({ path: old, out: join(dir, "old.kbak") }), "KEELSON_ERR_STORE_MIGRATION");
    expect(older.message).toContain("has schema version 1, but this Keelson backs up and restores schema version 2; run `keelson migrate` first");
  });
});

describe.runIf(pgAvailable)("backup and restore (PostgreSQL)", () => {
  let server: TestPostgres;
  let dir: string;
  let cleanup: () => Promise<void>;
  const schemas: TestSchema[] = [];

  beforeAll(async () => {
    server = await startTestPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-backup-pg-"));
  });
  afterEach(async () => {
    for (const s of schemas.splice(0)) await s.drop();
    await cleanup();
  });

  async function pgLocation(): Promise<StoreLocation & { url: string; schema: string }> {
    const s = await server.createSchema();
    schemas.push(s);
    return { url: s.url, schema: s.schema };
  }

  async function populatedSqlite(): Promise<string> {
    const path = join(dir, "source.db");
    const store = await openStore({ path, now: () => T0 });
    await populate(store);
    await store.close();
    return path;
  }

  it("round-trips SQLite to PostgreSQL and back: every table identical, the chain verifies, the identity continues after the highest seq", async () => {
    const sqlite = await populatedSqlite();
    await backupStore({ path: sqlite, out: join(dir, "a.kbak") });
    const pg = await pgLocation();
    const restored = await restoreStore({ file: join(dir, "a.kbak"), ...pg });
    expect(restored.kind).toBe("postgres");
    expect(restored.counts.events).toBe(7);
    const sqliteRows = await tableRows(openSqliteTables({ path: sqlite, create: false }));
    expect(await tableRows(await openPostgresTables({ ...pg, create: false }))).toEqual(sqliteRows);

    const store = await openStore(pg);
    try {
      expect(await chainHolds(store)).toBe(true);
      expect((await store.listReleases("shop", "orders")).map((r) => r.id)).toEqual(["r-orders-0", "r-orders-2", "r-orders-1"]);
      expect((await store.appendEvent({ project: "shop", kind: "service.changed", actor: "cli", subject: "x" })).seq).toBe(8);
      expect((await store.checkIntegrity()).problems).toEqual([]);
    } finally {
      await store.close();
    }

    // PostgreSQL -> SQLite: the event appended above comes along.
    await backupStore({ ...pg, out: join(dir, "b.kbak") });
    const back = join(dir, "back.db");
    await restoreStore({ file: join(dir, "b.kbak"), path: back });
    const backRows = await tableRows(openSqliteTables({ path: back, create: false }));
    expect(backRows.events).toHaveLength(8);
    expect({ ...backRows, events: backRows.events.slice(0, 7) }).toEqual(sqliteRows);
    const reopened = await openStore({ path: back });
    try {
      expect(await chainHolds(reopened)).toBe(true);
      expect((await reopened.appendEvent({ project: "shop", kind: "service.changed", actor: "cli", subject: "y" })).seq).toBe(9);
    } finally {
      await reopened.close();
    }
  });

  it("backs up one snapshot while another connection writes, and refuses a non-empty target, then replaces it with force", async () => {
    const pg = await pgLocation();
    const store = await openStore(pg);
    try {
      await populate(store);
      const out = join(dir, "p.kbak");
      // Rows appended while the backup runs are either all in it or not at all: counts match rows.
      const writes = (async () => {
        for (let i = 0; i < 50; i++) await store.appendEvent({ project: "shop", kind: "audit", actor: "cli", subject: `w/${i}` });
      })();
      const summary = await backupStore({ ...pg, out });
      await writes;
      const backup = await openBackup(out);
      let events = 0;
      for await (const r of backup.rows()) if (r.table === "events") events += 1;
      await backup.close();
      expect(events).toBe(summary.header.counts.events);

      const target = await pgLocation();
      const other = await openStore(target);
      await other.setSetting("stale", "1");
      await other.close();
      const err = await rejection(restoreStore({ file: out, ...target }), "KEELSON_ERR_CONFLICT");
      expect(err.message).toContain("is not empty: it holds 1 setting");
      await restoreStore({ file: out, ...target, force: true });
      const replaced = await openStore(target);
      try {
        expect(await replaced.getSetting("stale")).toBeUndefined();
        expect((await replaced.listEvents()).length).toBe(summary.header.counts.events);
        expect((await replaced.appendEvent({ project: "shop", kind: "service.changed", actor: "cli", subject: "z" })).seq).toBe(summary.header.counts.events + 1);
        expect((await replaced.checkIntegrity()).problems).toEqual([]);
      } finally {
        await replaced.close();
      }
    } finally {
      await store.close();
    }
  });

  it("rolls a PostgreSQL restore back whole when the file turns out bad half-way", async () => {
    const sqlite = await populatedSqlite();
    const out = join(dir, "a.kbak");
    await backupStore({ path: sqlite, out });
    const lines = gunzipSync(await readFile(out)).toString().split("\n");
    lines[15] = lines[15]!.replace('"project":"shop"', '"project":"shoq"');
    await writeFile(join(dir, "bad.kbak"), gzipSync(lines.join("\n")));
    const pg = await pgLocation();
    const err = await rejection(restoreStore({ file: join(dir, "bad.kbak"), ...pg }), "KEELSON_ERR_INVALID_INPUT");
    expect(err.message).toContain("line 16: checksum mismatch");
    expect(await tableRows(await openPostgresTables({ ...pg, create: false }))).toEqual({});
  });
});
