// `keelson migrate`, `backup` and `restore` in this process (runCli) on a project's SQLite file and
// a real PostgreSQL: exit codes and messages, a real audit log whose chain still verifies after a
// restore into either engine, refusals (non-empty target, cut file, newer schema), KEELSON_STORE_URL.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir, postgresAvailability, requireComponent, runCli, startTestPostgres } from "#test-support";
import type { TestPostgres, TestSchema } from "#test-support";
import { createAuditLog } from "../security/index.js";
import { migrateStore, openStore, type Store } from "../store/index.js";
import { main } from "./main.js";
import { progressReporter } from "./store-commands.js";

const availability = postgresAvailability();
const pgAvailable = requireComponent("PostgreSQL", availability.available, availability.reason);

// Colors are off when stdout is not a TTY; stripping keeps the test independent of that.
// eslint-disable-next-line no-control-regex
const plain = (text: string) => text.replace(/\u001b\[[0-9;]*m/g, "");

/** A project's store with services, a release, a replica, documents, settings and a real audit chain. */
async function populate(store: Store): Promise<void> {
  await store.applyDesiredState({
    project: { name: "shop", manifestPath: "/srv/shop/keelson.yaml", manifestHash: "h", appliedAt: "2026-01-05T08:00:00.000Z" },
    upsert: [{ project: "shop", name: "orders", spec: { replicas: 1 }, release: undefined }],
    remove: [],
    events: [{ project: "shop", kind: "manifest.applied", actor: "cli", subject: "project/shop" }],
  });
  await store.putRelease({ id: "r-1", project: "shop", service: "orders", sourceHash: "s", configHash: "c", gitCommit: "abc", createdAt: "2026-01-05T08:10:00.000Z", details: {} });
  await store.setServiceRelease("shop", "orders", "r-1");
  await store.upsertReplica({
    id: "orders-0", project: "shop", service: "orders", release: "r-1", index: 0, state: "ready", pid: 10, pidStartTime: 5, port: 41000,
    restarts: 0, startedAt: "2026-01-05T08:11:00.000Z", updatedAt: "2026-01-05T08:11:00.000Z", details: {},
  });
  const audit = createAuditLog({ store, project: "shop" });
  for (const action of ["deploy", "token.create", "secret.set"]) {
    await audit.record({ actor: "user:ana", action, target: "service/orders", from: "127.0.0.1", result: "ok", status: 200, after: { note: "ünïcode ✓" } });
  }
  await store.putDocuments([{ collection: "team", project: "shop", id: "web", tag: "", at: "2026-01-05T08:00:00.000Z", body: { members: ["ana"] } }]);
  await store.setSetting("routing.version", "4");
}

describe("keelson migrate, backup and restore (CLI in process)", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const keelson = (args: string[]) => runCli(main, [...args, "-C", dir]);
  const stateDb = () => join(dir, ".keelson", "state.db");

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-store-cli-"));
    delete process.env.KEELSON_STORE_URL;
  });
  afterEach(async () => {
    delete process.env.KEELSON_STORE_URL;
    await cleanup();
  });

  it("migrate --check on a project with no store exits 1 without creating it; migrate creates it; then both report it current", async () => {
    await mkdir(join(dir, ".keelson"));
    const check = await keelson(["migrate", "--check"]);
    expect(check.code).toBe(1);
    expect(plain(check.out)).toContain(`store ${stateDb()}: schema version 0 (no store yet), this Keelson needs 2: 2 migrations pending`);
    expect(plain(check.out)).toContain("  · 1 initial schema\n  · 2 documents");

    const run = await keelson(["migrate"]);
    expect(run.code).toBe(0);
    expect(plain(run.out)).toContain(`store ${stateDb()}: migrated from schema version 0 to 2\n  ✓ 1 initial schema\n  ✓ 2 documents`);
    expect(plain((await keelson(["migrate"])).out)).toContain("schema version 2, current; nothing to do");
    const again = await keelson(["migrate", "--check"]);
    expect(again.code).toBe(0);
    expect(plain(again.out)).toContain(`✓ store ${stateDb()}: schema version 2, current`);
  });

  it("migrate --check names the pending migration of an older store (exit 1) and a newer schema fails with its versions", async () => {
    const path = join(dir, "old.db");
    await migrateStore({ path, to: 1 });
    const check = await keelson(["migrate", "--check", "--store", path]);
    expect(check.code).toBe(1);
    expect(plain(check.out)).toContain("schema version 1, this Keelson needs 2: 1 migration pending\n  · 2 documents");
    expect((await keelson(["migrate", "--store", path])).code).toBe(0);

    const db = new Database(path);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (3, 'future', '2030-01-01T00:00:00.000Z')").run();
    db.close();
    for (const args of [["migrate", "--check"], ["migrate"], ["backup", "--out", join(dir, "x.kbak")]]) {
      const newer = await keelson([...args, "--store", path]);
      expect(newer.code).toBe(1);
      expect(plain(newer.err)).toContain(`the store at ${path} has schema version 3, but this Keelson knows schema versions up to 2; upgrade Keelson to open it\n(KEELSON_ERR_STORE_MIGRATION)`);
    }
  });

  it("backs up the project's store and restores it into another file: counts reported, audit chain verifies, appends continue", async () => {
    const source = await openStore({ path: join(dir, "source.db") });
    await populate(source);
    await source.close();
    const out = join(dir, "shop.kbak");
    const backup = await keelson(["backup", "--out", out, "--store", join(dir, "source.db")]);
    expect(backup.code).toBe(0);
    expect(plain(backup.out)).toContain(`✓ backed up sqlite store ${join(dir, "source.db")} (schema version 2) to ${out}`);
    expect(plain(backup.out)).toContain("1 projects, 1 services, 1 releases, 1 replicas, 4 events, 1 documents, 1 settings");

    // The default store: the project's .keelson/state.db, created by the restore.
    await mkdir(join(dir, ".keelson"));
    const restore = await keelson(["restore", out]);
    expect(restore.code).toBe(0);
    expect(plain(restore.out)).toContain(`✓ restored ${out} into sqlite store ${stateDb()}`);
    const store = await openStore({ path: stateDb() });
    try {
      const audit = createAuditLog({ store, project: "shop" });
      expect(await audit.verify()).toEqual({ ok: true, checked: 3 });
      const next = await audit.record({ actor: "cli", action: "restore.checked", target: "project/shop", from: "local", result: "ok" });
      expect(next.seq).toBe(5);
      expect((await audit.verify()).ok).toBe(true);
    } finally {
      await store.close();
    }

    const again = await keelson(["restore", out]);
    expect(again.code).toBe(1);
    expect(plain(again.err)).toContain(`the store ${stateDb()} is not empty: it holds 1 project, 1 service, 1 release, 1 replica, 5 events, 1 document, 1 setting; restore into an empty store, or replace everything in it (keelson restore --force)`);
    const forced = await keelson(["restore", out, "--force"]);
    expect(forced.code).toBe(0);
    expect(plain(forced.out)).toContain("replacing what it held");
    const replaced = await openStore({ path: stateDb() });
    try {
      expect((await replaced.listEvents()).length).toBe(4);
    } finally {
      await replaced.close();
    }
  });

  it("refuses a backup file cut short naming the line, a missing --out as a usage error, and takes the store from KEELSON_STORE_URL", async () => {
    const path = join(dir, "env.db");
    const source = await openStore({ path });
    await populate(source);
    await source.close();
    process.env.KEELSON_STORE_URL = `sqlite:${path}`;
    const out = join(dir, "env.kbak");
    const backup = await keelson(["backup", "--out", out]);
    expect(backup.code).toBe(0);
    expect(plain(backup.out)).toContain(`sqlite store ${path} (schema version 2)`);

    const bytes = await readFile(out);
    await writeFile(join(dir, "cut.kbak"), bytes.subarray(0, Math.floor(bytes.length / 2)));
    const cut = await keelson(["restore", join(dir, "cut.kbak"), "--store", join(dir, "fresh.db")]);
    expect(cut.code).toBe(1);
    expect(plain(cut.err)).toMatch(/backup .*cut\.kbak: line \d+: the file (is cut short or corrupt|ends here without its closing line)/);

    expect((await keelson(["backup"])).code).toBe(2);
    const badUrl = await keelson(["migrate", "--store", "mysql://root:hunter2@db/k"]);
    expect(badUrl.code).toBe(1);
    expect(badUrl.err).not.toContain("hunter2");
  });

  it("reports progress at most once a second, naming the table and the rows so far", () => {
    let t = 0;
    const lines: string[] = [];
    const report = progressReporter("backing up", (l) => lines.push(l), () => t);
    const p = { table: "events" as const, tableRows: 1000, tableTotal: 5000, rows: 1200, total: 5300 };
    report(p);
    t = 999;
    report(p);
    expect(lines).toEqual([]);
    t = 1000;
    report({ ...p, tableRows: 2000, rows: 2200 });
    expect(lines).toEqual(["  backing up events: 2000/5000 rows (2200/5300 in all)\n"]);
  });
});

describe.runIf(pgAvailable)("keelson backup and restore between SQLite and PostgreSQL (CLI in process)", () => {
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
    ({ dir, cleanup } = await makeTempDir("keelson-store-cli-pg-"));
  });
  afterEach(async () => {
    for (const s of schemas.splice(0)) await s.drop();
    await cleanup();
  });

  it("SQLite -> PostgreSQL -> SQLite: the audit chain verifies in each, and PostgreSQL hands out seq max+1 next", async () => {
    const sqlite = join(dir, "source.db");
    const source = await openStore({ path: sqlite });
    await populate(source);
    await source.close();
    const schema = await server.createSchema();
    schemas.push(schema);

    expect((await runCli(main, ["backup", "--out", join(dir, "a.kbak"), "--store", sqlite])).code).toBe(0);
    const check = await runCli(main, ["migrate", "--check", "--store", schema.url, "--schema", schema.schema]);
    expect(check.code).toBe(1);
    const restore = await runCli(main, ["restore", join(dir, "a.kbak"), "--store", schema.url, "--schema", schema.schema]);
    expect(restore.code).toBe(0);
    expect(plain(restore.out)).toContain(`into postgres store ${schema.url.replace(/\/[^/]*$/, "")}`);
    expect(plain(restore.out)).toContain(`(schema ${schema.schema})`);

    const pg = await openStore({ url: schema.url, schema: schema.schema });
    try {
      const audit = createAuditLog({ store: pg, project: "shop" });
      expect(await audit.verify()).toEqual({ ok: true, checked: 3 });
      expect((await audit.record({ actor: "cli", action: "x", target: "project/shop", from: "local", result: "ok" })).seq).toBe(5);
    } finally {
      await pg.close();
    }

    // The control plane's environment names the store for the tooling too.
    process.env.KEELSON_STORE_URL = schema.url;
    process.env.KEELSON_STORE_SCHEMA = schema.schema;
    try {
      const backup = await runCli(main, ["backup", "--out", join(dir, "b.kbak")]);
      expect(backup.code).toBe(0);
      expect(plain(backup.out)).toContain(`(schema ${schema.schema}) (schema version 2)`);
    } finally {
      delete process.env.KEELSON_STORE_URL;
      delete process.env.KEELSON_STORE_SCHEMA;
    }
    expect((await runCli(main, ["restore", join(dir, "b.kbak"), "--store", join(dir, "back.db")])).code).toBe(0);
    const back = await openStore({ path: join(dir, "back.db") });
    try {
      const audit = createAuditLog({ store: back, project: "shop" });
      expect(await audit.verify()).toEqual({ ok: true, checked: 4 });
      expect((await back.listEvents()).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    } finally {
      await back.close();
    }
  });
});
