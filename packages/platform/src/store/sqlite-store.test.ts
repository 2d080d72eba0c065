// SQLiteStore runs the Store contract on a temp file, plus what only a file database has:
// connection settings, migrations, several connections and processes, read-only mode.
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir, rejection } from "#test-support";
import { LATEST_SCHEMA_VERSION, MIGRATIONS } from "./migrations.js";
import { createSqliteStore, openSqliteDatabase } from "./sqlite-store.js";
import type { SqliteStoreOptions } from "./sqlite-store.js";
import { describeStoreConformance } from "./store.conformance.js";
import type { DesiredStateChange, Store } from "./store.js";

describeStoreConformance("sqlite", async () => {
  const tmp = await makeTempDir("keelson-store-");
  const store = await createSqliteStore({ path: join(tmp.dir, "state.db") });
  return { store, cleanup: tmp.cleanup };
});

const PROJECT = { name: "shop", manifestPath: "/srv/shop/keelson.yaml", manifestHash: "h1", appliedAt: "2025-01-01T10:00:00.000Z" };

function change(parts: Partial<DesiredStateChange> = {}): DesiredStateChange {
  return { project: PROJECT, upsert: [], remove: [], events: [], ...parts };
}

describe("createSqliteStore", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let path: string;
  const toClose: Array<{ close(): unknown }> = [];

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-store-"));
    path = join(dir, "state.db");
  });

  afterEach(async () => {
    for (const handle of toClose.splice(0)) await handle.close();
    await cleanup();
  });

  async function open(options: Partial<SqliteStoreOptions> = {}): Promise<Store> {
    const store = await createSqliteStore({ path, ...options });
    toClose.push(store);
    return store;
  }

  function raw(options: Database.Options = {}): Database.Database {
    const db = new Database(path, options);
    toClose.push(db);
    return db;
  }

  it("opens the file in WAL mode with foreign keys on, a busy timeout and synchronous=NORMAL", () => {
    const db = openSqliteDatabase({ path, busyTimeoutMs: 1234 });
    toClose.push(db);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(db.pragma("busy_timeout", { simple: true })).toBe(1234);
    expect(db.pragma("synchronous", { simple: true })).toBe(1); // 1 = NORMAL
    // Foreign keys are per connection: this one refuses a service of a missing project.
    expect(() =>
      db.prepare("INSERT INTO services (project, name, spec, generation, release, updated_at) VALUES ('ghost', 's', '{}', 1, NULL, 'x')").run(),
    ).toThrow(/FOREIGN KEY/);

    const defaults = openSqliteDatabase({ path });
    toClose.push(defaults);
    expect(defaults.pragma("busy_timeout", { simple: true })).toBe(5000);
  });

  it("records each migration once, also when the file is opened again", async () => {
    await (await open()).close();
    await open();
    const rows = raw({ readonly: true }).prepare("SELECT version, name FROM schema_migrations ORDER BY version").all();
    expect(rows).toEqual(MIGRATIONS.map(({ version, name }) => ({ version, name })));
  });

  it("numbers migrations 1..n in order, with unique names", () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
    expect(new Set(MIGRATIONS.map((m) => m.name)).size).toBe(MIGRATIONS.length);
    expect(LATEST_SCHEMA_VERSION).toBe(MIGRATIONS.length);
  });

  it("keeps everything across close and reopen", async () => {
    const first = await open();
    await first.applyDesiredState(
      change({
        upsert: [{ project: "shop", name: "orders", spec: { port: 8080, replicas: 2 }, release: "r-1" }],
        events: [{ project: "shop", kind: "manifest.applied", actor: "cli", subject: "project/shop", details: { changes: 1 } }],
      }),
    );
    await first.setServiceReplicas("shop", "orders", 3);
    await first.putRelease({
      id: "r-1", project: "shop", service: "orders", sourceHash: "s", configHash: "c", gitCommit: "abc",
      createdAt: "2025-01-01T09:00:00.000Z", details: { buildCommand: "npm run build" },
    });
    await first.upsertReplica({
      id: "orders-0", project: "shop", service: "orders", release: "r-1", index: 0, state: "ready", pid: 99,
      pidStartTime: 12345, port: 41000, restarts: 1, startedAt: "2025-01-01T09:30:00.000Z", updatedAt: "2025-01-01T09:31:00.000Z", details: {},
    });
    await first.setSetting("routing.version", "7");
    const read = async (s: Store): Promise<unknown> => ({
      projects: await s.listProjects(),
      services: await s.listServices("shop"),
      releases: await s.listReleases("shop", "orders"),
      replicas: await s.listReplicas("shop"),
      events: await s.listEvents(),
      setting: await s.getSetting("routing.version"),
    });
    const written = await read(first);
    await first.close();

    const reopened = await open();
    expect(await read(reopened)).toEqual(written);
    expect((await reopened.getService("shop", "orders"))?.generation).toBe(2);
    expect(await reopened.getSetting("routing.version")).toBe("7");
  });

  it("lets a second read-write and a read-only instance on the same file see writes at once", async () => {
    const a = await open();
    const b = await open();
    await a.applyDesiredState(change({ upsert: [{ project: "shop", name: "orders", spec: { port: 8080 }, release: undefined }] }));
    const c = await open({ readonly: true });
    const fromA = await a.appendEvent({ project: "shop", kind: "controlplane.started", actor: "controlplane", subject: "project/shop" });

    expect((await b.getService("shop", "orders"))?.spec).toEqual({ port: 8080 });
    expect(await c.listEvents()).toEqual([fromA]);

    const fromB = await b.appendEvent({ project: "shop", kind: "service.scaled", actor: "cli", subject: "service/orders" });
    expect(fromB.seq).toBeGreaterThan(fromA.seq);
    expect((await a.listEvents()).map((e) => e.seq)).toEqual([fromA.seq, fromB.seq]);
    expect((await c.listEvents({ afterSeq: fromA.seq })).map((e) => e.actor)).toEqual(["cli"]);
  });

  it("waits for another process's write lock instead of failing", async () => {
    const store = await open();
    // A separate process takes the write lock and holds it for a while.
    const child = spawn(
      process.execPath,
      [
        "-e",
        `const Database = require("better-sqlite3");
         const db = new Database(process.argv[1]);
         db.exec("BEGIN IMMEDIATE");
         db.prepare("INSERT INTO settings (key, value) VALUES ('child', 'held')").run();
         process.stdout.write("locked\\n");
         setTimeout(() => { db.exec("COMMIT"); db.close(); }, 400);`,
        path,
      ],
      { cwd: dirname(fileURLToPath(import.meta.url)), stdio: ["ignore", "pipe", "pipe"] },
    );
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("locked")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`child exited (${String(code)}) before taking the lock: ${stderr}`)));
    });

    const started = Date.now();
    await store.setSetting("parent", "waited");
    const waitedMs = Date.now() - started;

    expect(await exited).toBe(0);
    expect(waitedMs).toBeGreaterThanOrEqual(100);
    expect(await store.getSetting("child")).toBe("held");
    expect(await store.getSetting("parent")).toBe("waited");
  });

  it("refuses a database whose schema is newer than this code, naming both versions, and leaves it untouched", async () => {
    await (await open()).close();
    const db = new Database(path);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'from the future', '2030-01-01T00:00:00.000Z')").run();
    db.close();

    const err = await rejection(createSqliteStore({ path }), "KEELSON_ERR_STORE_MIGRATION");
    expect(err.message).toContain(`schema version 999`);
    expect(err.message).toContain(`up to ${LATEST_SCHEMA_VERSION}`);
    expect(err.details).toEqual({ path, schemaVersion: 999, supportedSchemaVersion: LATEST_SCHEMA_VERSION });
    await rejection(createSqliteStore({ path, readonly: true }), "KEELSON_ERR_STORE_MIGRATION");

    const versions = raw({ readonly: true }).prepare("SELECT version FROM schema_migrations ORDER BY version").pluck().all();
    expect(versions).toEqual([...MIGRATIONS.map((m) => m.version), 999]);
  });

  it("refuses read-only access to a database that has not been migrated", async () => {
    new Database(path).close(); // an empty SQLite file
    const err = await rejection(createSqliteStore({ path, readonly: true }), "KEELSON_ERR_STORE_MIGRATION");
    expect(err.details).toMatchObject({ schemaVersion: 0, supportedSchemaVersion: LATEST_SCHEMA_VERSION });
    expect(err.message).toContain("read-write");
  });

  it("read-only: reads what is there and refuses every write with a clear error", async () => {
    const writer = await open();
    await writer.applyDesiredState(change({ upsert: [{ project: "shop", name: "orders", spec: { port: 8080 }, release: undefined }] }));
    const reader = await open({ readonly: true });
    expect((await reader.listServices("shop")).map((s) => s.name)).toEqual(["orders"]);

    const event = { project: "shop", kind: "service.scaled", actor: "cli", subject: "service/orders" } as const;
    // Thunks, so no rejection sits unhandled while an earlier one is awaited.
    const writes: Array<[string, () => Promise<unknown>]> = [
      ["applyDesiredState", () => reader.applyDesiredState(change({ remove: ["orders"] }))],
      ["setServiceRelease", () => reader.setServiceRelease("shop", "orders", "r-1")],
      ["setServiceReplicas", () => reader.setServiceReplicas("shop", "orders", 4)],
      ["putRelease", () => reader.putRelease({ id: "r-1", project: "shop", service: "orders", sourceHash: "s", configHash: "c", gitCommit: undefined, createdAt: PROJECT.appliedAt, details: {} })],
      ["upsertReplica", () => reader.upsertReplica({ id: "orders-0", project: "shop", service: "orders", release: "r-1", index: 0, state: "ready", pid: undefined, pidStartTime: undefined, port: 1, restarts: 0, startedAt: undefined, updatedAt: PROJECT.appliedAt, details: {} })],
      ["deleteReplica", () => reader.deleteReplica("orders-0")],
      ["appendEvent", () => reader.appendEvent(event)],
      ["setSetting", () => reader.setSetting("k", "v")],
    ];
    for (const [operation, write] of writes) {
      const err = await rejection(write(), "KEELSON_ERR_STORE");
      expect(err.message).toContain("read-only");
      expect(err.message).toContain(operation);
    }
    expect(await writer.getService("shop", "orders")).toMatchObject({ generation: 1, release: undefined });
    expect(await writer.listEvents()).toEqual([]);
    expect(await writer.getSetting("k")).toBeUndefined();
  });

  it("read-only: a missing file is an error, and no file is created", async () => {
    const err = await rejection(createSqliteStore({ path, readonly: true }), "KEELSON_ERR_STORE");
    expect(err.message).toContain(path);
    expect(existsSync(path)).toBe(false);
  });

  it("rolls back the whole change when the database refuses a write halfway, and wraps the driver error", async () => {
    const store = await open();
    await store.applyDesiredState(change({ upsert: [{ project: "shop", name: "orders", spec: { port: 8080 }, release: "r-1" }] }));
    raw().exec(`CREATE TRIGGER refuse_boom BEFORE INSERT ON events WHEN NEW.subject = 'boom'
                BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
    const before = { services: await store.listServices("shop"), events: await store.listEvents(), project: await store.getProject("shop") };

    const err = await rejection(
      store.applyDesiredState(
        change({
          project: { ...PROJECT, manifestHash: "h2" },
          upsert: [
            { project: "shop", name: "orders", spec: { port: 9090 }, release: "r-2" },
            { project: "shop", name: "cart", spec: {}, release: undefined },
          ],
          events: [
            { project: "shop", kind: "service.changed", actor: "cli", subject: "service/orders" },
            { project: "shop", kind: "manifest.applied", actor: "cli", subject: "boom" },
          ],
        }),
      ),
      "KEELSON_ERR_STORE",
    );
    expect(err.message).toContain("refused by the test");
    expect(err.cause).toBeInstanceOf(Database.SqliteError);
    expect(err.details).toMatchObject({ operation: "applyDesiredState" });
    expect({ services: await store.listServices("shop"), events: await store.listEvents(), project: await store.getProject("shop") }).toEqual(before);
  });

  it("fails with KEELSON_ERR_STORE on a file that is not a database", async () => {
    writeFileSync(path, "this is not a database\n".repeat(100));
    const err = await rejection(createSqliteStore({ path }), "KEELSON_ERR_STORE");
    expect(err.cause).toBeInstanceOf(Database.SqliteError);
    expect(err.message).toContain("not a database");
  });

  it("keeps the event log append-only in the schema too", async () => {
    const store = await open();
    await store.appendEvent({ project: "shop", kind: "controlplane.started", actor: "controlplane", subject: "project/shop" });
    const db = raw();
    expect(() => db.exec("UPDATE events SET actor = 'someone else'")).toThrow(/append-only/);
    expect(() => db.exec("DELETE FROM events")).toThrow(/append-only/);
    expect((await store.listEvents()).map((e) => e.actor)).toEqual(["controlplane"]);
  });

  it("stamps events and service changes with the injected clock, and moves updatedAt only on a change", async () => {
    let now = Date.parse("2025-06-01T08:00:00.000Z");
    const store = await open({ now: () => now });
    const orders = { project: "shop", name: "orders", spec: { port: 8080 }, release: undefined };
    await store.applyDesiredState(change({ upsert: [orders] }));
    now += 60_000;
    await store.applyDesiredState(change({ upsert: [orders] }));
    expect((await store.getService("shop", "orders"))?.updatedAt).toBe("2025-06-01T08:00:00.000Z");
    await store.setServiceRelease("shop", "orders", "r-1");
    expect((await store.getService("shop", "orders"))?.updatedAt).toBe("2025-06-01T08:01:00.000Z");
    now += 60_000;
    const appended = await store.appendEvent({ project: "shop", kind: "controlplane.started", actor: "controlplane", subject: "project/shop" });
    expect(appended.at).toBe("2025-06-01T08:02:00.000Z");
    expect(store.kind).toBe("sqlite");
  });
});
