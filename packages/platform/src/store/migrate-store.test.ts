// migrateStore and openStore on real SQLite files and a real PostgreSQL: from nothing, from an older
// version (data kept), check mode (changes nothing), a newer schema refused; and the table list the
// backup carries checked against what the migrations really create in both engines.
import { existsSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Client } from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir, postgresAvailability, rejection, requireComponent, startTestPostgres } from "#test-support";
import type { TestPostgres, TestSchema } from "#test-support";
import { migrateStore } from "./migrate-store.js";
import { LATEST_SCHEMA_VERSION, MIGRATIONS } from "./migrations.js";
import { openStore, resolveStoreLocation } from "./open-store.js";
import { STORE_TABLES } from "./store-tables.js";

const availability = postgresAvailability();
const pgAvailable = requireComponent("PostgreSQL", availability.available, availability.reason);

const ALL = MIGRATIONS.map(({ version, name }) => ({ version, name }));

/** Each table of STORE_TABLES with its column names, to compare with an engine's catalog. */
const EXPECTED_COLUMNS = Object.fromEntries(STORE_TABLES.map((t) => [t.name, t.columns.map((c) => c.name).sort()]));

describe("resolveStoreLocation and openStore", () => {
  it("picks the engine from the URL or path and refuses what it cannot open, without echoing a password", () => {
    expect(resolveStoreLocation({ path: "/var/lib/keelson/state.db" })).toEqual({ kind: "sqlite", path: "/var/lib/keelson/state.db" });
    expect(resolveStoreLocation({ url: "sqlite:///var/lib/keelson/state.db" })).toEqual({ kind: "sqlite", path: "/var/lib/keelson/state.db" });
    expect(resolveStoreLocation({ url: "sqlite:state.db" })).toEqual({ kind: "sqlite", path: "state.db" });
    expect(resolveStoreLocation({ url: "postgresql://k@db/keelson", schema: "staging" })).toEqual({ kind: "postgres", url: "postgresql://k@db/keelson", schema: "staging" });
    expect(() => resolveStoreLocation({ url: "mysql://root:hunter2@db/keelson" })).toThrow('store url: expected postgres://, postgresql:// or sqlite:<path>, got "mysql://***@db/keelson"');
    expect(() => resolveStoreLocation({ path: "state.db", schema: "keelson" })).toThrow("a schema is for PostgreSQL stores");
    expect(() => resolveStoreLocation({})).toThrow("expected either a url");
  });
});

describe("migrateStore (SQLite)", () => {
  let dir: string;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-migrate-"));
  });
  afterEach(async () => {
    await cleanup();
  });

  it("checks a missing store without creating it, then creates and migrates it from nothing, and finds it current after", async () => {
    const path = join(dir, "state.db");
    const check = await migrateStore({ path, check: true });
    expect(check).toEqual({ kind: "sqlite", store: path, from: 0, to: 0, latest: LATEST_SCHEMA_VERSION, applied: [], pending: ALL });
    expect(existsSync(path)).toBe(false);

    const first = await migrateStore({ path });
    expect(first).toMatchObject({ from: 0, to: LATEST_SCHEMA_VERSION, applied: ALL, pending: [] });
    const again = await migrateStore({ path });
    expect(again).toMatchObject({ from: LATEST_SCHEMA_VERSION, to: LATEST_SCHEMA_VERSION, applied: [], pending: [] });
    expect((await migrateStore({ path, check: true })).pending).toEqual([]);
  });

  it("migrates a store of an older version and keeps its rows; a check in between changes nothing", async () => {
    const path = join(dir, "state.db");
    expect((await migrateStore({ path, to: 1 })).applied).toEqual([ALL[0]]);
    const db = new Database(path);
    db.prepare("INSERT INTO projects (name, manifest_path, manifest_hash, applied_at) VALUES ('shop', '/srv/keelson.yaml', 'h', '2026-01-01T00:00:00.000Z')").run();
    db.close();

    const check = await migrateStore({ path, check: true });
    expect(check).toMatchObject({ from: 1, to: 1, applied: [], pending: ALL.slice(1) });
    expect((await migrateStore({ path, check: true })).from).toBe(1);

    const done = await migrateStore({ path });
    expect(done).toMatchObject({ from: 1, to: LATEST_SCHEMA_VERSION, applied: ALL.slice(1), pending: [] });
    const store = await openStore({ path });
    try {
      expect((await store.getProject("shop"))?.manifestPath).toBe("/srv/keelson.yaml");
    } finally {
      await store.close();
    }
  });

  it("refuses a schema newer than the code, in check mode too, and leaves it alone", async () => {
    const path = join(dir, "state.db");
    await migrateStore({ path });
    const db = new Database(path);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', '2030-01-01T00:00:00.000Z')").run(LATEST_SCHEMA_VERSION + 1);
    db.close();
    for (const check of [true, false]) {
      const err = await rejection(migrateStore({ path, check }), "KEELSON_ERR_STORE_MIGRATION");
      expect(err.message).toBe(`the store at ${path} has schema version ${LATEST_SCHEMA_VERSION + 1}, but this Keelson knows schema versions up to ${LATEST_SCHEMA_VERSION}; upgrade Keelson to open it`);
    }
  });

  it("backs up exactly the tables and columns the migrations create", async () => {
    const path = join(dir, "state.db");
    await migrateStore({ path });
    const db = new Database(path, { readonly: true });
    try {
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('schema_migrations', 'sqlite_sequence') ORDER BY name").all() as Array<{ name: string }>).map((t) => t.name);
      const found = Object.fromEntries(tables.map((t) => [t, (db.pragma(`table_info(${t})`) as Array<{ name: string }>).map((c) => c.name).sort()]));
      expect(found).toEqual(EXPECTED_COLUMNS);
    } finally {
      db.close();
    }
  });
});

describe.runIf(pgAvailable)("migrateStore (PostgreSQL)", () => {
  let server: TestPostgres;
  let schema: TestSchema;

  beforeAll(async () => {
    server = await startTestPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(async () => {
    schema = await server.createSchema();
  });
  afterEach(async () => {
    await schema.drop();
  });

  async function sql<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    const client = new Client({ connectionString: schema.url });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }

  it("checks an empty schema, migrates it from nothing, and opens it with openStore", async () => {
    const where = { url: schema.url, schema: schema.schema };
    expect(await migrateStore({ ...where, check: true })).toMatchObject({ kind: "postgres", from: 0, to: 0, pending: ALL, applied: [] });
    const exists = await sql((c) => c.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema.schema]));
    expect(exists.rowCount).toBe(0);
    expect(await migrateStore(where)).toMatchObject({ from: 0, to: LATEST_SCHEMA_VERSION, applied: ALL, pending: [] });
    expect(await migrateStore(where)).toMatchObject({ from: LATEST_SCHEMA_VERSION, applied: [] });
    const store = await openStore(where);
    try {
      expect(store.kind).toBe("postgres");
    } finally {
      await store.close();
    }
  });

  it("migrates a schema of an older version and keeps its rows", async () => {
    const where = { url: schema.url, schema: schema.schema };
    expect((await migrateStore({ ...where, to: 1 })).applied).toEqual([ALL[0]]);
    await sql((c) => c.query(`INSERT INTO "${schema.schema}".settings (key, value) VALUES ('routing.version', '3')`));
    expect(await migrateStore({ ...where, check: true })).toMatchObject({ from: 1, pending: ALL.slice(1) });
    expect(await migrateStore(where)).toMatchObject({ from: 1, to: LATEST_SCHEMA_VERSION, applied: ALL.slice(1) });
    const store = await openStore(where);
    try {
      expect(await store.getSetting("routing.version")).toBe("3");
    } finally {
      await store.close();
    }
  });

  it("refuses a schema newer than the code, naming both versions", async () => {
    const where = { url: schema.url, schema: schema.schema };
    await migrateStore(where);
    await sql((c) => c.query(`INSERT INTO "${schema.schema}".schema_migrations (version, name, applied_at) VALUES ($1, 'from the future', now())`, [LATEST_SCHEMA_VERSION + 1]));
    const err = await rejection(migrateStore({ ...where, check: true }), "KEELSON_ERR_STORE_MIGRATION");
    expect(err.message).toContain(`has schema version ${LATEST_SCHEMA_VERSION + 1}, but this Keelson knows schema versions up to ${LATEST_SCHEMA_VERSION}`);
  });

  it("backs up exactly the tables and columns the migrations create (stored_seq follows from row order)", async () => {
    await migrateStore({ url: schema.url, schema: schema.schema });
    const rows = await sql((c) =>
      c.query<{ table_name: string; column_name: string }>(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name <> 'schema_migrations' ORDER BY table_name, column_name",
        [schema.schema],
      ),
    );
    const found: Record<string, string[]> = {};
    for (const r of rows.rows) if (!(r.table_name === "releases" && r.column_name === "stored_seq")) (found[r.table_name] ??= []).push(r.column_name);
    expect(found).toEqual(EXPECTED_COLUMNS);
  });
});
