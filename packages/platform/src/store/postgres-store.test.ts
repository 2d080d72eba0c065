// PostgresStore runs the Store contract against a real PostgreSQL (a private cluster the test
// support starts, or KEELSON_TEST_POSTGRES_URL), each test in a fresh schema or database, plus what
// only a shared server has: migrations and their lock, schemas, several stores, redacted passwords.
import { inspect } from "node:util";
import { Client } from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { postgresAvailability, rejection, requireComponent, startTestPostgres } from "#test-support";
import type { TestDatabase, TestPostgres } from "#test-support";
import { MIGRATIONS } from "./migrations.js";
import { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION } from "./postgres-migrations.js";
import { createPostgresStore } from "./postgres-store.js";
import type { PostgresStoreOptions } from "./postgres-store.js";
import { describeStoreConformance } from "./store.conformance.js";
import type { DesiredStateChange, Store } from "./store.js";

const availability = postgresAvailability();
const available = requireComponent("PostgreSQL", availability.available, availability.reason);

const PROJECT = { name: "shop", manifestPath: "/srv/shop/keelson.yaml", manifestHash: "h1", appliedAt: "2025-01-01T10:00:00.000Z" };

function change(parts: Partial<DesiredStateChange> = {}): DesiredStateChange {
  return { project: PROJECT, upsert: [], remove: [], events: [], ...parts };
}

describe.runIf(available)("PostgreSQL", () => {
  let server: TestPostgres;

  beforeAll(async () => {
    server = await startTestPostgres();
  });

  afterAll(async () => {
    await server?.stop();
  });

  // A fresh schema per test: a fresh database costs half a second, a schema a millisecond.
  describeStoreConformance("postgres", async () => {
    const fresh = await server.createSchema();
    const store = await createPostgresStore({ url: fresh.url, schema: fresh.schema });
    return { store, cleanup: fresh.drop };
  });

  describe("createPostgresStore", () => {
    let db: TestDatabase;
    const toClose: Array<{ close(): Promise<unknown> } | { end(): Promise<unknown> }> = [];

    beforeEach(async () => {
      db = await server.createDatabase();
    });

    afterEach(async () => {
      for (const handle of toClose.splice(0)) await ("close" in handle ? handle.close() : handle.end());
      await db.drop();
    });

    async function open(options: Partial<PostgresStoreOptions> = {}): Promise<Store> {
      const store = await createPostgresStore({ url: db.url, ...options });
      toClose.push(store);
      return store;
    }

    /** A plain connection to the test database, for what the Store interface cannot do. */
    async function raw(): Promise<Client> {
      const client = new Client({ connectionString: db.url });
      await client.connect();
      toClose.push(client);
      return client;
    }

    it("migrates an empty database: creates the schema and records each migration once, also when opened again", async () => {
      await (await open()).close();
      await open();
      const sql = await raw();
      const rows = await sql.query("SELECT version::int AS version, name FROM keelson.schema_migrations ORDER BY version");
      expect(rows.rows).toEqual(POSTGRES_MIGRATIONS.map(({ version, name }) => ({ version, name })));
      const tables = await sql.query("SELECT tablename FROM pg_tables WHERE schemaname = 'keelson' ORDER BY tablename");
      expect(tables.rows.map((r: { tablename: string }) => r.tablename)).toEqual([
        "documents", "events", "projects", "releases", "replicas", "schema_migrations", "services", "settings",
      ]);
      const publicTables = await sql.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
      expect(publicTables.rows).toEqual([]);
    });

    it("numbers its migrations like SQLite's, so a schema version means the same tables in both stores", () => {
      expect(POSTGRES_MIGRATIONS.map(({ version, name }) => ({ version, name }))).toEqual(MIGRATIONS.map(({ version, name }) => ({ version, name })));
      expect(POSTGRES_SCHEMA_VERSION).toBe(POSTGRES_MIGRATIONS.length);
    });

    it("lets several stores migrate one empty database at once: one migrates, the others wait and open it", async () => {
      // allSettled: a store that did open is closed after the test even when another failed.
      const opened = await Promise.allSettled(Array.from({ length: 4 }, () => open()));
      expect(opened.flatMap((o) => (o.status === "rejected" ? [String(o.reason)] : []))).toEqual([]);
      const stores = opened.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []));
      await stores[0]!.setSetting("k", "v");
      expect(await stores[3]!.getSetting("k")).toBe("v");
      const versions = await (await raw()).query("SELECT version::int AS version FROM keelson.schema_migrations ORDER BY version");
      expect(versions.rows.map((r: { version: number }) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    });

    it("refuses a database whose schema is newer than this code, naming both versions, and leaves it untouched", async () => {
      await (await open()).close();
      const sql = await raw();
      await sql.query("INSERT INTO keelson.schema_migrations (version, name, applied_at) VALUES (999, 'from the future', now())");

      const err = await rejection(createPostgresStore({ url: db.url }), "KEELSON_ERR_STORE_MIGRATION");
      expect(err.message).toContain("schema version 999");
      expect(err.message).toContain(`up to ${POSTGRES_SCHEMA_VERSION}`);
      expect(err.message).toContain("upgrade Keelson");
      expect(err.details).toEqual({ schema: "keelson", schemaVersion: 999, supportedSchemaVersion: POSTGRES_SCHEMA_VERSION });
      const versions = await sql.query("SELECT version::int AS version FROM keelson.schema_migrations ORDER BY version");
      expect(versions.rows.map((r: { version: number }) => r.version)).toEqual([...POSTGRES_MIGRATIONS.map((m) => m.version), 999]);
    });

    it("lets two stores on one database see each other's writes at once, with one seq order", async () => {
      const a = await open();
      const b = await open();
      await a.applyDesiredState(change({ upsert: [{ project: "shop", name: "orders", spec: { port: 8080 }, release: undefined }] }));
      expect((await b.getService("shop", "orders"))?.spec).toEqual({ port: 8080 });

      const fromA = await a.appendEvent({ project: "shop", kind: "controlplane.started", actor: "controlplane", subject: "project/shop" });
      const fromB = await b.appendEvent({ project: "shop", kind: "service.scaled", actor: "cli", subject: "service/orders" });
      expect(fromB.seq).toBeGreaterThan(fromA.seq);
      expect(await a.listEvents()).toEqual([fromA, fromB]);
      expect(await b.listEvents()).toEqual([fromA, fromB]);

      await b.setServiceReplicas("shop", "orders", 3);
      expect(await a.getService("shop", "orders")).toMatchObject({ spec: { port: 8080, replicas: 3 }, generation: 2 });
    });

    it("gives concurrent appends from two stores distinct seqs, every one listed once", async () => {
      const a = await open({ pool: { max: 4 } });
      const b = await open({ pool: { max: 4 } });
      const appended = await Promise.all(
        Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? a : b).appendEvent({ project: "shop", kind: "replica.ready", actor: "controlplane", subject: `replica/orders-${i}` })),
      );
      const seqs = appended.map((e) => e.seq);
      expect(new Set(seqs).size).toBe(60);
      expect((await a.listEvents()).map((e) => e.seq)).toEqual([...seqs].sort((x, y) => x - y));
    });

    it("keeps generations exact when two stores change one service at once (the row is locked)", async () => {
      const a = await open();
      const b = await open();
      await a.applyDesiredState(change({ upsert: [{ project: "shop", name: "orders", spec: { port: 8080, replicas: 0 }, release: undefined }] }));
      await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).setServiceReplicas("shop", "orders", i + 1)));
      // Every call changed the count, so every one moved the generation: none was lost.
      expect((await a.getService("shop", "orders"))?.generation).toBe(11);
    });

    it("keeps schemas apart: two installations in one database, each with its own tables", async () => {
      const main = await open();
      const staging = await open({ schema: "keelson_staging" });
      await main.setSetting("routing.version", "1");
      await staging.setSetting("routing.version", "2");
      expect(await main.getSetting("routing.version")).toBe("1");
      expect(await staging.getSetting("routing.version")).toBe("2");
      const err = await rejection(createPostgresStore({ url: db.url, schema: "Robert'); DROP TABLE x;--" }), "KEELSON_ERR_INVALID_INPUT");
      expect(err.message).toContain("schema");
    });

    it("keeps the event log append-only in the schema too, and checkIntegrity names a dropped trigger", async () => {
      const store = await open();
      await store.appendEvent({ project: "shop", kind: "controlplane.started", actor: "controlplane", subject: "project/shop" });
      const sql = await raw();
      await expect(sql.query("UPDATE keelson.events SET actor = 'someone else'")).rejects.toThrow(/append-only/);
      await expect(sql.query("DELETE FROM keelson.events")).rejects.toThrow(/append-only/);
      await expect(sql.query("TRUNCATE keelson.events")).rejects.toThrow(/append-only/);
      expect((await store.listEvents()).map((e) => e.actor)).toEqual(["controlplane"]);

      expect((await store.checkIntegrity()).ok).toBe(true);
      await sql.query("DROP TRIGGER events_append_only_delete ON keelson.events");
      const report = await store.checkIntegrity();
      expect(report.ok).toBe(false);
      expect(report.problems).toEqual([expect.stringContaining("events_append_only_delete")]);
    });

    it("rolls back the whole change when the database refuses a write halfway, and wraps the driver error", async () => {
      const store = await open();
      await store.applyDesiredState(change({ upsert: [{ project: "shop", name: "orders", spec: { port: 8080 }, release: "r-1" }] }));
      const sql = await raw();
      await sql.query(`CREATE FUNCTION keelson.refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.subject = 'boom' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END; $$`);
      await sql.query("CREATE TRIGGER refuse_boom BEFORE INSERT ON keelson.events FOR EACH ROW EXECUTE FUNCTION keelson.refuse_boom()");
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
      expect(err.message).toContain("applyDesiredState");
      expect(err.details).toMatchObject({ operation: "applyDesiredState", pgCode: "P0001" });
      expect({ services: await store.listServices("shop"), events: await store.listEvents(), project: await store.getProject("shop") }).toEqual(before);
      // The connection that failed went back to the pool clean: the next write works.
      await store.setSetting("after", "ok");
      expect(await store.getSetting("after")).toBe("ok");
    });

    it("returns the same UTC times whatever the session's time zone", async () => {
      const store = await open({ pool: { options: "-c TimeZone=Asia/Kathmandu" } });
      await store.applyDesiredState(change({ project: { ...PROJECT, appliedAt: "2025-03-01T12:00:00+02:00" } }));
      await store.putDocuments([{ collection: "notification", project: "shop", id: "a", tag: "", at: "2025-03-01T23:59:59.999Z", body: {} }]);
      expect((await store.getProject("shop"))?.appliedAt).toBe("2025-03-01T10:00:00.000Z");
      const docs = await store.listDocuments({ collection: "notification", project: "shop", since: "2025-03-01T23:59:59.999Z", until: "2025-03-02T00:00:00.000Z" });
      expect(docs.map((d) => d.at)).toEqual(["2025-03-01T23:59:59.999Z"]);
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
      expect(store.kind).toBe("postgres");
    });

    it("refuses a NUL character in a text field (PostgreSQL text cannot hold one), writing nothing", async () => {
      const store = await open();
      const err = await rejection(store.appendEvent({ project: "shop", kind: "controlplane.started", actor: "cli", subject: "project/\u0000" }), "KEELSON_ERR_STORE");
      expect(err.details).toMatchObject({ operation: "appendEvent", pgCode: "22021" });
      // Inside JSON it is only an escape, and comes back as given.
      const appended = await store.appendEvent({ project: "shop", kind: "controlplane.started", actor: "cli", subject: "project/shop", details: { nul: "a\u0000b" } });
      expect(await store.listEvents()).toEqual([appended]);
      expect(appended.details).toEqual({ nul: "a\u0000b" });
    });

    describe("never shows the password of the URL", () => {
      const secret = "Pa55-word-that-must-not-leak";

      function expectNoSecret(err: unknown): void {
        const shown = [inspect(err, { depth: 10, showHidden: true }), JSON.stringify(err), String(err)].join("\n");
        expect(shown).not.toContain(secret);
        expect(shown).not.toContain(encodeURIComponent(secret));
      }

      function withPassword(url: string, password: string): string {
        const u = new URL(url);
        u.password = encodeURIComponent(password);
        return u.toString();
      }

      it("when the database does not exist", async () => {
        const url = new URL(withPassword(db.url, secret));
        url.pathname = "/no_such_database";
        const err = await rejection(createPostgresStore({ url: url.toString() }), "KEELSON_ERR_STORE");
        expect(err.message).toContain("no_such_database");
        expect(err.message).toContain("***");
        expectNoSecret(err);
      });

      it("when nothing listens on the port", async () => {
        const url = new URL(withPassword(db.url, secret));
        url.port = "1";
        const err = await rejection(createPostgresStore({ url: url.toString() }), "KEELSON_ERR_STORE");
        expect(err.message).toContain("open failed");
        expectNoSecret(err);
      });

      it("when the URL is not one", async () => {
        const err = await rejection(createPostgresStore({ url: `postgres://keelson:${secret}@127.0.0.1:port/db` }), "KEELSON_ERR_INVALID_INPUT");
        expect(err.message).toContain("url");
        expectNoSecret(err);
        expectNoSecret(await rejection(createPostgresStore({ url: `mysql://keelson:${secret}@127.0.0.1/db` }), "KEELSON_ERR_INVALID_INPUT"));
      });

      it("when the password comes in the pool options and an operation fails", async () => {
        const store = await open({ pool: { password: secret } });
        const sql = await raw();
        await sql.query("ALTER TABLE keelson.settings ADD CONSTRAINT no_secret CHECK (value <> 'forbidden')");
        const err = await rejection(store.setSetting("k", "forbidden"), "KEELSON_ERR_STORE");
        expect(err.message).toContain("setSetting");
        expectNoSecret(err);
      });
    });
  });
});
