// `keelson migrate`, `keelson backup` and `keelson restore`: the store tooling for upgrades and
// disaster recovery, on the project's SQLite file or a PostgreSQL database (--store or
// KEELSON_STORE_URL). They work on the store directly; no control plane needs to run.
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { KeelsonError } from "@keelson/protocol";
import { stateDirOf } from "../api/index.js";
import { backupStore, migrateStore, restoreStore, STORE_TABLES, type BackupProgress, type StoreLocation, type TableCounts } from "../store/index.js";
import { findControlPlane } from "./daemons.js";
import { color } from "./output.js";
import { print } from "./progress.js";

interface StoreOptions {
  dir: string;
  store?: string;
  schema?: string;
}

/** Environment variables naming the store (and its PostgreSQL schema) when the options do not: the control plane reads them too. */
export const STORE_URL_ENV = "KEELSON_STORE_URL";
export const STORE_SCHEMA_ENV = "KEELSON_STORE_SCHEMA";

const URL_SCHEME = /^[a-z][a-z0-9+.-]*:/i;
const POSTGRES_URL = /^postgres(?:ql)?:\/\//i;

/** --store, else KEELSON_STORE_URL, else the project's `.keelson/state.db`; --schema, else KEELSON_STORE_SCHEMA for PostgreSQL. */
export function storeLocationOf(opts: StoreOptions): StoreLocation {
  const given = opts.store ?? process.env[STORE_URL_ENV];
  const url = given !== undefined && URL_SCHEME.test(given) ? given : undefined;
  // The environment's schema applies to a PostgreSQL store only; a --schema given for a SQLite file is refused.
  const envSchema = url !== undefined && POSTGRES_URL.test(url) ? process.env[STORE_SCHEMA_ENV] : undefined;
  const schemaName = opts.schema ?? (envSchema === "" ? undefined : envSchema);
  const schema = schemaName === undefined ? {} : { schema: schemaName };
  if (given === undefined || given === "") return { path: defaultStorePath(opts.dir), ...schema };
  return url !== undefined ? { url, ...schema } : { path: resolve(given), ...schema };
}

function defaultStorePath(dir: string): string {
  return join(stateDirOf(resolve(dir)), "state.db");
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function describeTables(counts: TableCounts): string {
  return STORE_TABLES.map((t) => `${counts[t.name]} ${t.name}`).join(", ");
}

function kilobytes(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} kB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * Reports progress on stderr at most once per `everyMs` (a short run prints nothing), so a long
 * backup or restore shows it is moving without flooding a log.
 */
export function progressReporter(verb: string, write: (line: string) => void, now: () => number = Date.now, everyMs = 1000): (p: BackupProgress) => void {
  let last = now();
  return (p) => {
    const t = now();
    if (t - last < everyMs) return;
    last = t;
    write(`  ${verb} ${p.table}: ${p.tableRows}/${p.tableTotal} rows (${p.rows}/${p.total} in all)\n`);
  };
}

function addStoreOptions(command: Command): Command {
  return command
    .option("-C, --dir <dir>", "project folder: its .keelson/state.db is the default store", ".")
    .option("--store <url-or-path>", `a SQLite file or a postgres:// URL (default: $${STORE_URL_ENV}, else <dir>/.keelson/state.db)`)
    .option("--schema <name>", `PostgreSQL schema of the store (default: $${STORE_SCHEMA_ENV}, else keelson)`);
}

export function addStoreCommands(program: Command): void {
  addStoreOptions(
    program
      .command("migrate")
      .description("bring the store's schema to this Keelson's version without starting anything; --check only reports (exit 1 when migrations are pending)")
      .option("--check", "change nothing: exit 1 when migrations are pending, 0 when the store is current"),
  ).action(async (opts: StoreOptions & { check?: boolean }) => {
    const r = await migrateStore({ ...storeLocationOf(opts), check: opts.check === true });
    const pending = r.pending.map((m) => `  · ${m.version} ${m.name}`);
    if (opts.check === true) {
      if (r.pending.length === 0) {
        print(`${color.green("✓")} store ${r.store}: schema version ${r.to}, current`);
        return;
      }
      print(`${color.yellow("!")} store ${r.store}: schema version ${r.from}${r.from === 0 ? " (no store yet)" : ""}, this Keelson needs ${r.latest}: ${plural(r.pending.length, "migration")} pending`);
      print([...pending, color.dim("  back the store up (keelson backup, with the Keelson that runs it now), then run `keelson migrate`")].join("\n"));
      process.exitCode = 1;
      return;
    }
    if (r.applied.length === 0) {
      print(`${color.green("✓")} store ${r.store}: schema version ${r.to}, current; nothing to do`);
      return;
    }
    print(`${color.green("✓")} store ${r.store}: migrated from schema version ${r.from} to ${r.to}`);
    print(r.applied.map((m) => `  ${color.green("✓")} ${m.version} ${m.name}`).join("\n"));
  });

  addStoreOptions(
    program
      .command("backup")
      .description("write a consistent backup of the store (one snapshot of every table) to a file: gzip'd NDJSON with a checksum on every line")
      .requiredOption("--out <file>", "the backup file to write (never overwritten); it holds token hashes and vault ciphertexts: keep it like a secret"),
  ).action(async (opts: StoreOptions & { out: string }) => {
    const out = resolve(opts.out);
    const summary = await backupStore({
      ...storeLocationOf(opts),
      out,
      onProgress: progressReporter("backing up", (line) => process.stderr.write(line)),
    });
    const { header } = summary;
    print(`${color.green("✓")} backed up ${header.store.kind} store ${header.store.name} (schema version ${header.schemaVersion}) to ${out}, ${kilobytes(summary.bytes)}`);
    print(`  ${describeTables(header.counts)}`);
    print(color.dim(`  sha256 of the last line ${summary.sha256}`));
  });

  addStoreOptions(
    program
      .command("restore")
      .description("restore a backup into an empty store (SQLite or PostgreSQL, whichever the backup came from); --force replaces everything in a store that holds data")
      .argument("<file>", "a file `keelson backup` wrote")
      .option("--force", "replace everything the store holds, in one transaction"),
  ).action(async (file: string, opts: StoreOptions & { force?: boolean }) => {
    const location = storeLocationOf(opts);
    // A control plane keeps state in memory (the audit chain's end, leases): swapping its store
    // underneath it would fork that state. For the project's own file we can tell; see the docs for PostgreSQL.
    if (location.path === defaultStorePath(opts.dir)) {
      const cp = await findControlPlane(stateDirOf(resolve(opts.dir)));
      if (cp !== undefined) {
        throw new KeelsonError("KEELSON_ERR_CONFLICT", `a control plane (pid ${cp.pid}) is running on ${location.path}; stop it first (keelson down), then restore`);
      }
    }
    const summary = await restoreStore({
      ...location,
      file: resolve(file),
      force: opts.force === true,
      onProgress: progressReporter("restoring", (line) => process.stderr.write(line)),
    });
    const { header } = summary;
    print(`${color.green("✓")} restored ${resolve(file)} into ${summary.kind} store ${summary.store}${opts.force === true ? ", replacing what it held" : ""}`);
    print(`  ${describeTables(summary.counts)}`);
    print(color.dim(`  backed up from ${header.store.kind} store ${header.store.name} at ${header.createdAt}, schema version ${header.schemaVersion}`));
  });
}
