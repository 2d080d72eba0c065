import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { freePort, makeTempDir } from "#test-support";
import { createSqliteStore, migrateStore } from "../store/index.js";
import { checkStore } from "./store-reachable.js";

describe("checkStore", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-doctor-store-"));
  });
  afterEach(async () => {
    await cleanup();
  });

  it("passes a SQLite store that opens, with its schema version, and one not created yet", async () => {
    const path = join(dir, "state.db");
    expect((await checkStore({ path }))[0]).toMatchObject({ status: "pass", message: `SQLite store ${path} does not exist yet; the control plane creates it on first start` });
    await (await createSqliteStore({ path })).close();
    expect((await checkStore({ path }))[0]).toMatchObject({ status: "pass", message: expect.stringMatching(new RegExp(`^SQLite store ${path} answers \\(schema version \\d+\\)$`)) });
  });

  it("warns about a store that needs migrations", async () => {
    const path = join(dir, "old.db");
    await migrateStore({ path, to: 1 });
    const [result] = await checkStore({ url: `sqlite:${path}` });
    expect(result).toMatchObject({ status: "warn", message: expect.stringContaining("at schema version 1"), fix: expect.stringContaining("keelson migrate") });
  });

  it("fails a SQLite file that is not a database, saying how to recover", async () => {
    const path = join(dir, "state.db");
    await writeFile(path, "this is not a database, just text long enough to look like a header........................................");
    const [result] = await checkStore({ path });
    expect(result).toMatchObject({ check: "store", status: "fail", message: expect.stringContaining(path), fix: expect.stringContaining("keelson restore") });
  });

  it("fails a PostgreSQL store nobody listens for, without showing its password", async () => {
    const port = await freePort();
    const [result] = await checkStore({ url: `postgres://keelson:hunter2@127.0.0.1:${port}/keelson` });
    expect(result).toMatchObject({ status: "fail", message: expect.stringMatching(/ECONNREFUSED|connect/), fix: expect.stringContaining("KEELSON_STORE_URL") });
    expect(JSON.stringify(result)).not.toContain("hunter2");
  });

  it("fails a location that is no store", async () => {
    expect((await checkStore({ url: "mysql://db/keelson" }))[0]).toMatchObject({ status: "fail", message: expect.stringContaining("expected postgres://") });
  });
});
