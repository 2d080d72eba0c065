// Checks that the project's store answers: the SQLite file opens (read-only) or the PostgreSQL
// server of KEELSON_STORE_URL accepts a connection, and its schema is one this Keelson knows.
import { existsSync } from "node:fs";
import { isKeelsonError } from "@keelson/protocol";
import { migrateStore, resolveStoreLocation, type ResolvedStoreLocation, type StoreLocation } from "../store/index.js";
import { fail, pass, warn, type CheckResult } from "./check-result.js";

/** Opens the store without changing it (a migration check) and says what it found. */
export async function checkStore(location: StoreLocation): Promise<CheckResult[]> {
  let where: ResolvedStoreLocation;
  try {
    where = resolveStoreLocation(location);
  } catch (err) {
    return [fail("store", err instanceof Error ? err.message : String(err), "set KEELSON_STORE_URL to a postgres:// URL or a SQLite file, or unset it to use .keelson/state.db")];
  }
  if (where.kind === "sqlite" && !existsSync(where.path)) {
    return [pass("store", `SQLite store ${where.path} does not exist yet; the control plane creates it on first start`)];
  }
  try {
    const report = await migrateStore({ ...location, check: true });
    const what = `${report.kind === "sqlite" ? "SQLite" : "PostgreSQL"} store ${report.store}`;
    if (report.pending.length > 0) {
      return [
        warn(
          "store",
          `${what} answers, at schema version ${report.from}; this Keelson needs ${report.latest} (${report.pending.length} migration${report.pending.length === 1 ? "" : "s"} pending)`,
          "back it up with `keelson backup`, then run `keelson migrate` (the control plane also applies them when it starts)",
        ),
      ];
    }
    return [pass("store", `${what} answers (schema version ${report.to})`)];
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (isKeelsonError(err) && err.code === "KEELSON_ERR_STORE_MIGRATION") return [fail("store", message, "run a Keelson at least as new as the one that last wrote this store")];
    const fix =
      where.kind === "sqlite"
        ? `if ${where.path} is damaged, restore it from a backup (\`keelson restore\`) or move it away to start with an empty store`
        : "check that the PostgreSQL server runs and accepts connections from here, and that KEELSON_STORE_URL names the right host, port, user, password and database";
    // Never show a password: keep the URL's scheme, host and database only.
    const name = where.kind === "sqlite" ? `SQLite store ${where.path}` : `PostgreSQL store ${where.url.replace(/\/\/[^@/]*@/, "//***@")}`;
    return [fail("store", `${name} does not answer: ${message}`, fix)];
  }
}
