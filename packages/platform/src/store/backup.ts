// Logical backups of a store, and restoring them into an empty SQLite or PostgreSQL store (either
// kind from either kind). The file is gzip'd NDJSON: a header, one line per row, a closing line;
// every line carries a SHA-256 chained over the lines before it, so a cut or edited file is refused
// naming the first bad line. The format is documented in docs/operations.md.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import { KeelsonError, isKeelsonError } from "@keelson/protocol";
import { LATEST_SCHEMA_VERSION } from "./migrations.js";
import { resolveStoreLocation } from "./open-store.js";
import type { StoreLocation } from "./open-store.js";
import { openPostgresTables } from "./postgres-tables.js";
import { openSqliteTables } from "./sqlite-tables.js";
import { STORE_TABLES, emptyCounts } from "./store-tables.js";
import type { ColumnSpec, Row, StoreTables, TableCounts, TableName, TableRow } from "./store-tables.js";

/** The `format` of a Keelson backup's header. */
export const BACKUP_FORMAT = "keelson-backup";
/** The layout version this code writes and reads. */
export const BACKUP_FORMAT_VERSION = 1;

/** The first line of a backup. */
export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: number;
  /** The store's schema version; a restore needs the same version. */
  schemaVersion: number;
  /** What was backed up: the engine and how it is named (a path, or a URL without its password). */
  store: { kind: "sqlite" | "postgres"; name: string };
  createdAt: string;
  /** Rows per table, as the file holds them. */
  counts: TableCounts;
}

/** How far a backup or restore has come; called every PROGRESS_EVERY rows and at each table's end. */
export interface BackupProgress {
  table: TableName;
  /** Rows of this table so far, and in all. */
  tableRows: number;
  tableTotal: number;
  /** Rows of every table so far, and in all. */
  rows: number;
  total: number;
}

export interface BackupStoreOptions extends StoreLocation {
  /** The file to write; it must not exist yet (a backup never overwrites one). */
  out: string;
  onProgress?: (progress: BackupProgress) => void;
  /** Clock for the header's `createdAt`. Default `Date.now`. */
  now?: () => number;
}

export interface BackupSummary {
  file: string;
  header: BackupHeader;
  /** Lines in the file (header and closing line included) and its size in bytes. */
  lines: number;
  bytes: number;
  /** The last line's chained SHA-256: it covers every line of the file. */
  sha256: string;
}

export interface RestoreStoreOptions extends StoreLocation {
  file: string;
  /** Replace everything in a store that holds rows (in one transaction) instead of refusing. */
  force?: boolean;
  onProgress?: (progress: BackupProgress) => void;
}

export interface RestoreSummary {
  kind: "sqlite" | "postgres";
  store: string;
  header: BackupHeader;
  counts: TableCounts;
}

const PROGRESS_EVERY = 1000;
/** A line longer than this is not one we wrote (a document body is far smaller). */
const MAX_LINE_CHARS = 256 * 1024 * 1024;
const SEAL = /,"sha256":"([0-9a-f]{64})"\}$/;
const GZIP_MAGIC = [0x1f, 0x8b];

/** The line `body` (a JSON object) with its chained hash appended as the last field. */
function seal(body: string, previous: string): { line: string; hash: string } {
  const hash = chainHash(previous, body);
  return { line: `${body.slice(0, -1)},"sha256":"${hash}"}`, hash };
}

function chainHash(previous: string, body: string): string {
  return createHash("sha256").update(`${previous}\n${body}`, "utf8").digest("hex");
}

async function openTables(location: StoreLocation, create: boolean): Promise<StoreTables> {
  const where = resolveStoreLocation(location);
  if (where.kind === "sqlite") return openSqliteTables({ path: where.path, create });
  return openPostgresTables({ url: where.url, ...(where.schema === undefined ? {} : { schema: where.schema }), create });
}

function progressCounter(counts: TableCounts, onProgress: ((p: BackupProgress) => void) | undefined): (table: TableName) => void {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const seen = emptyCounts();
  let rows = 0;
  return (table) => {
    seen[table] += 1;
    rows += 1;
    if (onProgress !== undefined && (seen[table] % PROGRESS_EVERY === 0 || seen[table] === counts[table])) {
      onProgress({ table, tableRows: seen[table], tableTotal: counts[table], rows, total });
    }
  };
}

function fileError(file: string, what: string, err: unknown): KeelsonError {
  const message = err instanceof Error ? err.message : String(err);
  return new KeelsonError("KEELSON_ERR_INVALID_INPUT", `backup ${file}: ${what}: ${message}`, { cause: err });
}

/**
 * Writes a consistent logical backup of the store at `url` or `path` (one snapshot of every table)
 * to `out`, gzip'd, mode 0600: it holds tokens' hashes and the vault's ciphertexts.
 *
 * @example
 * const { header } = await backupStore({ path: ".keelson/state.db", out: "keelson-2026-12-01.kbak" });
 */
export async function backupStore(options: BackupStoreOptions): Promise<BackupSummary> {
  const { out } = options;
  if (existsSync(out)) throw new KeelsonError("KEELSON_ERR_CONFLICT", `backup ${out}: the file exists; a backup never overwrites one, choose another name`);
  const tables = await openTables(options, false);
  // Written beside the target and renamed at the end, so a failed backup never looks complete.
  const partial = `${out}.partial-${process.pid}`;
  try {
    return await tables.read(async (snapshot) => {
      const header: BackupHeader = {
        format: BACKUP_FORMAT,
        version: BACKUP_FORMAT_VERSION,
        schemaVersion: snapshot.schemaVersion,
        store: { kind: tables.kind, name: tables.name },
        createdAt: new Date((options.now ?? Date.now)()).toISOString(),
        counts: snapshot.counts,
      };
      const gzip = createGzip();
      let sink: ReturnType<typeof createWriteStream>;
      try {
        sink = createWriteStream(partial, { mode: 0o600, flags: "wx" });
        await once(sink, "open");
      } catch (err) {
        throw fileError(out, "cannot write it", err);
      }
      const written = pipeline(gzip, sink);
      // Keeps the pipeline's rejection from going unhandled while rows are still being written.
      written.catch(() => {});
      let hash = "";
      let lines = 0;
      const write = async (body: string): Promise<void> => {
        const sealed = seal(body, hash);
        hash = sealed.hash;
        lines += 1;
        if (!gzip.write(`${sealed.line}\n`)) await Promise.race([once(gzip, "drain"), written]);
      };
      try {
        await write(JSON.stringify(header));
        const counted = progressCounter(snapshot.counts, options.onProgress);
        const found = emptyCounts();
        for await (const { table, row } of snapshot.rows()) {
          await write(JSON.stringify({ table, row }));
          found[table] += 1;
          counted(table);
        }
        const rows = Object.values(found).reduce((a, b) => a + b, 0);
        await write(JSON.stringify({ end: true, rows }));
        gzip.end();
        await written;
      } catch (err) {
        gzip.destroy();
        throw isKeelsonError(err) ? err : fileError(out, "cannot write it", err);
      }
      await rename(partial, out);
      return { file: out, header, lines, bytes: (await stat(out)).size, sha256: hash };
    });
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  } finally {
    await tables.close();
  }
}

/**
 * Restores a backup into the store at `url` or `path` (created and migrated when missing), which
 * must be empty unless `force`. Event seq numbers are kept, and new events continue after them.
 *
 * @example
 * await restoreStore({ file: "keelson-2026-12-01.kbak", url: "postgres://keelson@db/keelson" });
 */
export async function restoreStore(options: RestoreStoreOptions): Promise<RestoreSummary> {
  const backup = await openBackup(options.file);
  try {
    const { header } = backup;
    if (header.schemaVersion !== LATEST_SCHEMA_VERSION) {
      throw new KeelsonError(
        "KEELSON_ERR_STORE_MIGRATION",
        header.schemaVersion > LATEST_SCHEMA_VERSION
          ? `backup ${options.file} holds schema version ${header.schemaVersion}, but this Keelson knows schema versions up to ${LATEST_SCHEMA_VERSION}; restore it with the Keelson that wrote it, or a newer one`
          : `backup ${options.file} holds schema version ${header.schemaVersion}, but this Keelson restores schema version ${LATEST_SCHEMA_VERSION} only; restore it with a Keelson of schema version ${header.schemaVersion}, then run \`keelson migrate\` with this one`,
        { details: { file: options.file, schemaVersion: header.schemaVersion, supportedSchemaVersion: LATEST_SCHEMA_VERSION } },
      );
    }
    const tables = await openTables(options, true);
    try {
      const counted = progressCounter(header.counts, options.onProgress);
      async function* rows(): AsyncGenerator<TableRow> {
        for await (const item of backup.rows()) {
          counted(item.table);
          yield item;
        }
      }
      const counts = await tables.write(rows(), { replace: options.force === true });
      return { kind: tables.kind, store: tables.name, header, counts };
    } finally {
      await tables.close();
    }
  } finally {
    await backup.close();
  }
}

/** A backup file opened for reading: its checked header, then its rows, each checked as it comes. */
export interface BackupReader {
  header: BackupHeader;
  /** The rows; throws KEELSON_ERR_INVALID_INPUT naming the line at the first one that is wrong. */
  rows(): AsyncIterable<TableRow>;
  close(): Promise<void>;
}

/**
 * Opens a backup and checks its header. The rows are checked while they are read: every line's
 * chained hash, every row against its table's columns, and at the end the closing line and the
 * header's counts; a restore reads them inside its transaction, so a bad line changes nothing.
 */
export async function openBackup(file: string): Promise<BackupReader> {
  const lines = await readLines(file)[Symbol.asyncIterator]();
  const fail = (line: number, what: string): KeelsonError =>
    new KeelsonError("KEELSON_ERR_INVALID_INPUT", `backup ${file}: line ${line}: ${what}`, { details: { file, line } });
  let hash = "";
  /** The line's JSON once its hash checks out. */
  const unseal = (n: number, text: string): Record<string, unknown> => {
    const m = SEAL.exec(text);
    if (m === null) throw fail(n, n === 1 ? "not a Keelson backup (no checksum at the end of the line)" : "no checksum at the end of the line: the file is cut short or was edited");
    const body = `${text.slice(0, m.index)}}`;
    if (chainHash(hash, body) !== m[1]) throw fail(n, "checksum mismatch: the line was edited, or a line before it was removed or reordered");
    hash = m[1]!;
    try {
      const value = JSON.parse(body) as unknown;
      if (value !== null && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {}
    throw fail(n, "not a JSON object");
  };
  let header: BackupHeader;
  try {
    const first = await lines.next();
    if (first.done === true) throw fail(1, "the file is empty");
    header = checkHeader(unseal(1, first.value.text), fail);
  } catch (err) {
    await lines.return?.(undefined);
    throw err;
  }
  let started = false;
  return {
    header,
    async *rows(): AsyncGenerator<TableRow> {
      if (started) throw new KeelsonError("KEELSON_ERR_INTERNAL", `backup ${file}: its rows can be read once`);
      started = true;
      const found = emptyCounts();
      let last = 1;
      for (;;) {
        const next = await lines.next();
        if (next.done === true) throw fail(last + 1, "the file ends here without its closing line: it is cut short");
        const { n, text } = next.value;
        last = n;
        const value = unseal(n, text);
        if (value["end"] === true) {
          const total = Object.values(found).reduce((a, b) => a + b, 0);
          if (value["rows"] !== total) throw fail(n, `the closing line counts ${String(value["rows"])} rows, the file holds ${total}`);
          for (const t of STORE_TABLES) {
            if (found[t.name] !== header.counts[t.name]) throw fail(n, `${found[t.name]} ${t.name} rows, but the header announces ${header.counts[t.name]}`);
          }
          const after = await lines.next();
          if (after.done !== true) throw fail(after.value.n, "a line after the closing line");
          return;
        }
        const item = checkRow(value, (what) => fail(n, what));
        found[item.table] += 1;
        yield item;
      }
    },
    async close(): Promise<void> {
      await lines.return?.(undefined);
    },
  };
}

function checkHeader(value: Record<string, unknown>, fail: (line: number, what: string) => KeelsonError): BackupHeader {
  if (value["format"] !== BACKUP_FORMAT) throw fail(1, `not a Keelson backup (format ${JSON.stringify(value["format"])}, expected "${BACKUP_FORMAT}")`);
  const version = value["version"];
  if (version !== BACKUP_FORMAT_VERSION) {
    throw fail(
      1,
      typeof version === "number" && version > BACKUP_FORMAT_VERSION
        ? `backup format version ${version} is newer than this Keelson reads (${BACKUP_FORMAT_VERSION}); restore it with a newer Keelson`
        : `backup format version ${JSON.stringify(version)}: expected ${BACKUP_FORMAT_VERSION}`,
    );
  }
  if (!Number.isSafeInteger(value["schemaVersion"])) throw fail(1, "schemaVersion: expected a whole number");
  const store = value["store"] as { kind?: unknown; name?: unknown } | undefined;
  if ((store?.kind !== "sqlite" && store?.kind !== "postgres") || typeof store.name !== "string") throw fail(1, "store: expected { kind: sqlite|postgres, name }");
  if (typeof value["createdAt"] !== "string") throw fail(1, "createdAt: expected an ISO-8601 time");
  const counts = value["counts"] as Record<string, unknown> | undefined;
  for (const t of STORE_TABLES) {
    const n = counts?.[t.name];
    if (!Number.isSafeInteger(n) || (n as number) < 0) throw fail(1, `counts.${t.name}: expected a whole number of rows`);
  }
  return value as unknown as BackupHeader;
}

const TABLES = new Map(STORE_TABLES.map((t) => [t.name as string, t]));

function checkRow(value: Record<string, unknown>, fail: (what: string) => KeelsonError): TableRow {
  const table = value["table"];
  const spec = typeof table === "string" ? TABLES.get(table) : undefined;
  if (spec === undefined) throw fail(`table ${JSON.stringify(table)}: expected one of ${STORE_TABLES.map((t) => t.name).join(", ")}`);
  const row = value["row"];
  if (row === null || typeof row !== "object" || Array.isArray(row)) throw fail(`${spec.name}: row: expected an object`);
  const columns = new Set(spec.columns.map((c) => c.name));
  for (const key of Object.keys(row)) if (!columns.has(key)) throw fail(`${spec.name}: unknown column ${JSON.stringify(key)}`);
  for (const column of spec.columns) {
    const problem = checkValue(column, (row as Row)[column.name]);
    if (problem !== undefined) throw fail(`${spec.name}.${column.name}: ${problem}`);
  }
  return { table: spec.name, row: row as Row };
}

/** What is wrong with a column's value, or undefined. */
function checkValue(column: ColumnSpec, value: unknown): string | undefined {
  if (value === undefined) return "missing";
  if (value === null) return column.nullable === true ? undefined : "expected a value, got null";
  switch (column.type) {
    case "text":
      return typeof value === "string" ? undefined : `expected a string, got ${JSON.stringify(value)}`;
    case "integer":
      return Number.isSafeInteger(value) ? undefined : `expected a whole number, got ${JSON.stringify(value)}`;
    case "time":
      // The one form every store writes (toISOString), so both engines read the same instant back.
      return typeof value === "string" && !Number.isNaN(Date.parse(value)) && new Date(value).toISOString() === value
        ? undefined
        : `expected a UTC time like 2026-01-31T12:00:00.000Z, got ${JSON.stringify(value)}`;
    case "json": {
      if (typeof value !== "string") return `expected JSON text, got ${JSON.stringify(value)}`;
      try {
        const parsed = JSON.parse(value) as unknown;
        if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) return undefined;
      } catch {}
      return "expected the JSON text of an object";
    }
  }
}

/** The lines of a file, gzip'd or not, numbered from 1; a cut gzip stream names the line it stopped in. */
async function* readLines(file: string): AsyncGenerator<{ n: number; text: string }> {
  let gzipped: boolean;
  try {
    const handle = await open(file, "r");
    try {
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(2), 0, 2, 0);
      gzipped = bytesRead === 2 && buffer[0] === GZIP_MAGIC[0] && buffer[1] === GZIP_MAGIC[1];
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw fileError(file, "cannot read it", err);
  }
  const raw = createReadStream(file);
  let input: Readable = raw;
  if (gzipped) {
    const gunzip = createGunzip();
    raw.on("error", (err) => gunzip.destroy(err));
    input = raw.pipe(gunzip);
  }
  input.setEncoding("utf8");
  let n = 0;
  let rest = "";
  try {
    for await (const chunk of input as AsyncIterable<string>) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const text of parts) {
        n += 1;
        yield { n, text };
      }
      if (rest.length > MAX_LINE_CHARS) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `backup ${file}: line ${n + 1}: longer than ${MAX_LINE_CHARS} characters: not a Keelson backup`);
    }
  } catch (err) {
    if (isKeelsonError(err)) throw err;
    throw new KeelsonError(
      "KEELSON_ERR_INVALID_INPUT",
      `backup ${file}: line ${n + 1}: the file is cut short or corrupt (${err instanceof Error ? err.message : String(err)})`,
      { cause: err, details: { file, line: n + 1 } },
    );
  } finally {
    raw.destroy();
  }
  if (rest !== "") yield { n: n + 1, text: rest };
}
