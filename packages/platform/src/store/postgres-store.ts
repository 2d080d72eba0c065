// The Store on PostgreSQL (pg, a connection pool), for several control planes sharing one
// database. Same semantics as the SQLite store: validation and serialization come from
// store-input.ts, the schema from postgres-migrations.ts, in a schema of its own.
import { inspect } from "node:util";
import { DatabaseError, Pool, TypeOverrides, escapeIdentifier } from "pg";
import type { PoolClient, PoolConfig } from "pg";
import { KeelsonError, isKeelsonError } from "@keelson/protocol";
import type { KeelsonEvent } from "@keelson/protocol";
import { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION } from "./postgres-migrations.js";
import {
  documentRecord,
  eventRecord,
  isoNow,
  nextServiceRow,
  prepareDesiredState,
  prepareDocumentQuery,
  prepareDocuments,
  prepareEvent,
  prepareEventQuery,
  prepareRelease,
  prepareReplica,
  prepareReplicaCount,
  projectNotFound,
  releaseRecord,
  replicaRecord,
  serviceNotFound,
  serviceRecord,
  specWithReplicas,
} from "./store-input.js";
import type { DocumentRow, EventRow, PreparedDesiredState, ServiceRow } from "./store-input.js";
import type { DocumentQuery, DocumentRecord, EventInput, EventQuery, IntegrityReport, ProjectRecord, ReleaseRecord, ReplicaRecord, ServiceRecord, Store } from "./store.js";
import { checkReferences } from "./integrity.js";
import type { AppliedMigration } from "./migrations.js";

/** Connection settings for the pool, beside or instead of `url`. */
export interface PostgresPoolOptions {
  host?: string;
  port?: number;
  user?: string;
  /** Kept out of every error message, like the password in `url`. */
  password?: string;
  database?: string;
  /** Most connections the store opens at once. Default 10. */
  max?: number;
  /** How long to wait for a connection (new or from the pool) before failing, in ms. Default 10000. */
  connectionTimeoutMs?: number;
  /** How long an unused connection stays open, in ms. Default 10000. */
  idleTimeoutMs?: number;
  /** Reported in pg_stat_activity. Default "keelson". */
  applicationName?: string;
  /** Server settings for every connection, e.g. "-c statement_timeout=5000". */
  options?: string;
}

export interface PostgresStoreOptions {
  /**
   * postgres://user:password@host:port/database (also postgresql://). What it names wins over the
   * same setting in `pool`. The password never appears in an error.
   */
  url?: string;
  pool?: PostgresPoolOptions;
  /**
   * The schema Keelson's tables live in; created when missing. Several Keelson installations can
   * share a database under different schemas. Lowercase letters, digits and "_". Default "keelson".
   */
  schema?: string;
  /** Clock for the times the store assigns (event `at`, service `updatedAt`). Default `Date.now`. */
  now?: () => number;
}

const DEFAULT_SCHEMA = "keelson";
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * The first key of every advisory lock Keelson takes ("klsn"); the second is hashtext of
 * "<purpose>:<schema>" ("migrate:keelson"), so the locks of two schemas never meet, and leader
 * election can take its own lock in the same space.
 */
export const POSTGRES_ADVISORY_LOCK_CLASS = 0x6b6c736e;

// The largest code point: prefix <= s < prefix + U+10FFFF holds exactly for the texts that start
// with prefix in byte order (the columns are COLLATE "C"), as in the SQLite store, and uses the index.
const AFTER_EVERY_CHARACTER = "\u{10FFFF}";

/**
 * Opens a PostgreSQL store: connects, creates its schema when missing and applies pending
 * migrations (under an advisory lock, so several control planes may start at once).
 *
 * @example
 * const store = await createPostgresStore({ url: "postgres://keelson:secret@db.internal:5432/keelson" });
 * const staging = await createPostgresStore({ url, schema: "keelson_staging" });
 */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  const { pool, ctx } = openPostgresPool(options);
  try {
    await migratePostgres(pool, ctx);
  } catch (err) {
    await pool.end().catch(() => {});
    throw isKeelsonError(err) ? err : driverError(ctx, "open", err);
  }
  return postgresStore(pool, ctx);
}

/**
 * Checks the options and makes the pool, without connecting: createPostgresStore and the store
 * tooling (migrate, backup, restore) share it, so they name the store and hide its password alike.
 */
export function openPostgresPool(options: PostgresStoreOptions): { pool: Pool; ctx: StoreContext } {
  const target = describeTarget(options);
  const schema = options.schema ?? DEFAULT_SCHEMA;
  if (typeof schema !== "string" || !SCHEMA_NAME.test(schema)) {
    throw new KeelsonError(
      "KEELSON_ERR_INVALID_INPUT",
      `store ${target.name}: schema: expected lowercase letters, digits and "_" (at most 63, not starting with a digit), got ${JSON.stringify(schema)}`,
    );
  }
  const ctx: StoreContext = { name: `${target.name} (schema ${schema})`, schema, secrets: target.secrets, now: options.now ?? Date.now };
  let pool: Pool;
  try {
    pool = new Pool(poolConfig(options));
  } catch (err) {
    throw driverError(ctx, "open", err);
  }
  // An idle connection the server drops emits "error" on the pool; unhandled, that would end the
  // process. The next query gets a fresh connection, or fails and reports the cause itself.
  pool.on("error", () => {});
  return { pool, ctx };
}

interface Target {
  /** How errors name the store: the URL or settings without the password. */
  name: string;
  /** Texts that must never appear in an error. */
  secrets: string[];
}

function describeTarget(options: PostgresStoreOptions): Target {
  const secrets: string[] = [];
  const addSecret = (value: string | undefined): void => {
    if (value === undefined || value === "") return;
    secrets.push(value);
    try {
      const decoded = decodeURIComponent(value);
      if (decoded !== value) secrets.push(decoded);
    } catch {}
  };
  addSecret(options.pool?.password);
  if (options.url === undefined) {
    const p = options.pool ?? {};
    const name = `postgres://${p.user === undefined ? "" : `${p.user}@`}${p.host ?? "localhost"}${p.port === undefined ? "" : `:${p.port}`}/${p.database ?? ""}`;
    return { name, secrets };
  }
  let url: URL | undefined;
  try {
    url = new URL(options.url);
  } catch {}
  if (url === undefined || (url.protocol !== "postgres:" && url.protocol !== "postgresql:")) {
    // Not a URL we can take apart: still hide whatever sits between "user:" and "@".
    const hidden = /^[^:/?#]*:\/\/[^:/@]*:([^@]*)@/.exec(options.url)?.[1];
    addSecret(hidden);
    const name = redact(options.url, secrets);
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `store ${name}: url: expected postgres://user:password@host:port/database`);
  }
  addSecret(url.password);
  // pg also takes the password as a query parameter; the display drops the whole query.
  addSecret(url.searchParams.get("password") ?? undefined);
  if (url.password !== "") url.password = "***";
  url.search = "";
  return { name: url.toString(), secrets };
}

function poolConfig(options: PostgresStoreOptions): PoolConfig {
  const p = options.pool ?? {};
  const types = new TypeOverrides();
  // BIGINT columns hold validated safe integers (seq, generation, pid, ...): numbers, not strings.
  types.setTypeParser(20, (text: string) => Number(text));
  // JSON stays the exact text the store wrote: it is compared as text (canonical JSON).
  types.setTypeParser(114, (text: string) => text);
  return {
    ...(p.host === undefined ? {} : { host: p.host }),
    ...(p.port === undefined ? {} : { port: p.port }),
    ...(p.user === undefined ? {} : { user: p.user }),
    ...(p.password === undefined ? {} : { password: p.password }),
    ...(p.database === undefined ? {} : { database: p.database }),
    ...(p.options === undefined ? {} : { options: p.options }),
    ...(options.url === undefined ? {} : { connectionString: options.url }),
    max: p.max ?? 10,
    connectionTimeoutMillis: p.connectionTimeoutMs ?? 10_000,
    idleTimeoutMillis: p.idleTimeoutMs ?? 10_000,
    application_name: p.applicationName ?? "keelson",
    types,
  };
}

function redact(text: string, secrets: string[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join("***");
  return out;
}

function messageOf(err: unknown): string {
  // Node reports a refused connection to a name with several addresses as an AggregateError
  // with an empty message.
  if (err instanceof AggregateError && err.message === "") return err.errors.map(messageOf).join("; ");
  if (err instanceof Error) return err.message === "" ? String((err as { code?: unknown }).code ?? err.name) : err.message;
  return String(err);
}

/** The driver error as a cause, or a stand-in without it when it mentions a secret anywhere. */
function safeCause(err: unknown, secrets: string[]): unknown {
  if (secrets.length === 0) return err;
  const shown = inspect(err, { depth: 6, showHidden: true });
  if (!secrets.some((s) => shown.includes(s))) return err;
  return new Error(redact(messageOf(err), secrets));
}

export interface StoreContext {
  name: string;
  schema: string;
  secrets: string[];
  now: () => number;
}

export function driverError(ctx: Pick<StoreContext, "name" | "secrets">, operation: string, err: unknown): KeelsonError {
  const pgCode = err instanceof DatabaseError ? err.code : undefined;
  return new KeelsonError("KEELSON_ERR_STORE", `store ${ctx.name}: ${operation} failed: ${redact(messageOf(err), ctx.secrets)}`, {
    cause: safeCause(err, ctx.secrets),
    details: { operation, ...(pgCode === undefined ? {} : { pgCode }) },
  });
}

function lockKey(purpose: string, schema: string): [number, string] {
  return [POSTGRES_ADVISORY_LOCK_CLASS, `${purpose}:${schema}`];
}

/** The schema version recorded in the store's schema; 0 when no migration ran there. */
export async function schemaVersion(client: PoolClient | Pool, schema: string): Promise<number> {
  // A plain query of the catalog, not to_regclass: that answers from a cache, which may not yet
  // know a table another session has just created (seen when several stores migrate at once).
  const exists = await client.query(
    `SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = 'schema_migrations'`,
    [schema],
  );
  if (exists.rowCount === 0) return 0;
  const row = await client.query<{ version: number | null }>(`SELECT MAX(version)::bigint AS version FROM ${escapeIdentifier(schema)}.schema_migrations`);
  return row.rows[0]?.version ?? 0;
}

export function newerSchemaError(ctx: Pick<StoreContext, "name" | "schema">, version: number): KeelsonError {
  return new KeelsonError(
    "KEELSON_ERR_STORE_MIGRATION",
    `the store ${ctx.name} has schema version ${version}, but this Keelson knows schema versions up to ${POSTGRES_SCHEMA_VERSION}; upgrade Keelson to open it`,
    { details: { schema: ctx.schema, schemaVersion: version, supportedSchemaVersion: POSTGRES_SCHEMA_VERSION } },
  );
}

/**
 * Applies the pending migrations up to `upTo` (default: all) in one transaction and returns those
 * it applied. `upTo` lets a test make a store of an older version.
 */
export async function migratePostgres(pool: Pool, ctx: StoreContext, upTo: number = POSTGRES_SCHEMA_VERSION): Promise<AppliedMigration[]> {
  // Read without the lock first: opening a current database must not queue behind a migration.
  const seen = await schemaVersion(pool, ctx.schema);
  if (seen > POSTGRES_SCHEMA_VERSION) throw newerSchemaError(ctx, seen);
  if (seen >= upTo) return [];
  const applied: AppliedMigration[] = [];
  const client = await pool.connect();
  const stopListening = onConnectionError(client);
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    try {
      // Several control planes may open a new database at once: one migrates, the others wait
      // here and then find the schema current. DDL is transactional, so a failure changes nothing.
      await client.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", lockKey("migrate", ctx.schema));
      const current = await schemaVersion(client, ctx.schema);
      if (current > POSTGRES_SCHEMA_VERSION) throw newerSchemaError(ctx, current);
      const schema = escapeIdentifier(ctx.schema);
      // Only when missing: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even then.
      const found = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [ctx.schema]);
      if (found.rowCount === 0) await client.query(`CREATE SCHEMA ${schema}`);
      await client.query(`SET LOCAL search_path TO ${schema}`);
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version    BIGINT PRIMARY KEY,
        name       TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL
      )`);
      for (const migration of POSTGRES_MIGRATIONS) {
        if (migration.version <= current || migration.version > upTo) continue;
        try {
          await client.query(migration.sql);
        } catch (err) {
          throw new KeelsonError(
            "KEELSON_ERR_STORE_MIGRATION",
            `migration ${migration.version} (${migration.name}) failed on the store ${ctx.name}: ${redact(messageOf(err), ctx.secrets)}; nothing was changed`,
            { cause: safeCause(err, ctx.secrets), details: { schema: ctx.schema, version: migration.version } },
          );
        }
        await client.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
          migration.version,
          migration.name,
          isoNow(ctx.now),
        ]);
        applied.push({ version: migration.version, name: migration.name });
      }
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch((rollbackErr: unknown) => {
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      });
      throw err;
    }
  } finally {
    stopListening();
    client.release(broken);
  }
  return applied;
}

/**
 * The pool listens for errors on idle connections only. A connection the server ends while we
 * hold it between two queries would emit "error" with nobody listening, which ends the process;
 * the next query on it fails and reports the cause instead.
 */
export function onConnectionError(client: PoolClient): () => void {
  const ignore = (): void => {};
  client.on("error", ignore);
  return () => client.removeListener("error", ignore);
}

// Columns as the driver returns them: NULL where records hold undefined, Date for TIMESTAMPTZ.
interface ProjectColumns {
  name: string;
  manifestPath: string;
  manifestHash: string;
  appliedAt: Date;
}
interface ServiceColumns {
  project: string;
  name: string;
  spec: string;
  generation: number;
  release: string | null;
  updatedAt: Date;
}
interface ReleaseColumns {
  id: string;
  project: string;
  service: string;
  sourceHash: string;
  configHash: string;
  gitCommit: string | null;
  createdAt: Date;
  details: string;
}
interface ReplicaColumns {
  id: string;
  project: string;
  service: string;
  release: string;
  index: number;
  state: ReplicaRecord["state"];
  pid: number | null;
  pidStartTime: number | null;
  port: number;
  restarts: number;
  startedAt: Date | null;
  updatedAt: Date;
  details: string;
}
interface EventColumns extends EventRow {
  seq: number;
  at: Date;
}
interface DocumentColumns extends Omit<DocumentRow, "at"> {
  at: Date;
}

const PROJECT_COLUMNS = 'name, manifest_path AS "manifestPath", manifest_hash AS "manifestHash", applied_at AS "appliedAt"';
const SERVICE_COLUMNS = 'project, name, spec, generation, release, updated_at AS "updatedAt"';
const RELEASE_COLUMNS =
  'id, project, service, source_hash AS "sourceHash", config_hash AS "configHash", git_commit AS "gitCommit", created_at AS "createdAt", details';
const REPLICA_COLUMNS =
  'id, project, service, release, replica_index AS "index", state, pid, pid_start_time AS "pidStartTime", port, restarts, started_at AS "startedAt", updated_at AS "updatedAt", details';
const EVENT_COLUMNS = "seq, at, project, kind, actor, subject, details";
const DOCUMENT_COLUMNS = "collection, project, id, tag, at, body";

function iso(date: Date): string {
  return date.toISOString();
}

function projectRecord(c: ProjectColumns): ProjectRecord {
  return { name: c.name, manifestPath: c.manifestPath, manifestHash: c.manifestHash, appliedAt: iso(c.appliedAt) };
}

function serviceRow(c: ServiceColumns): ServiceRow {
  return { project: c.project, name: c.name, spec: c.spec, generation: c.generation, release: c.release ?? undefined, updatedAt: iso(c.updatedAt) };
}

function releaseFromColumns(c: ReleaseColumns): ReleaseRecord {
  return releaseRecord({ ...c, gitCommit: c.gitCommit ?? undefined, createdAt: iso(c.createdAt) });
}

function replicaFromColumns(c: ReplicaColumns): ReplicaRecord {
  return replicaRecord({
    ...c,
    pid: c.pid ?? undefined,
    pidStartTime: c.pidStartTime ?? undefined,
    startedAt: c.startedAt === null ? undefined : iso(c.startedAt),
    updatedAt: iso(c.updatedAt),
  });
}

type Queryable = Pool | PoolClient;

function postgresStore(opened: Pool, ctx: StoreContext): Store {
  const { now } = ctx;
  let pool: Pool | undefined = opened;
  let closing: Promise<void> | undefined;
  const s = escapeIdentifier(ctx.schema);
  const table = {
    projects: `${s}.projects`,
    services: `${s}.services`,
    releases: `${s}.releases`,
    replicas: `${s}.replicas`,
    events: `${s}.events`,
    settings: `${s}.settings`,
    documents: `${s}.documents`,
  };

  function openPool(operation: string): Pool {
    if (pool === undefined) throw new KeelsonError("KEELSON_ERR_STORE", `store ${ctx.name}: ${operation}: the store is closed`, { details: { operation } });
    return pool;
  }

  /** Runs a read on any pooled connection; driver errors become KEELSON_ERR_STORE. */
  async function read<T>(operation: string, fn: (db: Pool) => Promise<T>): Promise<T> {
    const db = openPool(operation);
    try {
      return await fn(db);
    } catch (err) {
      throw isKeelsonError(err) ? err : driverError(ctx, operation, err);
    }
  }

  /**
   * Runs a write in one transaction on one connection: any throw rolls it back, so nothing is
   * half-written. Writers that read before they write lock the rows they read (FOR UPDATE).
   */
  async function transact<T>(operation: string, fn: (db: PoolClient) => Promise<T>): Promise<T> {
    const db = openPool(operation);
    let client: PoolClient;
    try {
      client = await db.connect();
    } catch (err) {
      throw driverError(ctx, operation, err);
    }
    const stopListening = onConnectionError(client);
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const result = await fn(client);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      await client.query("ROLLBACK").catch((rollbackErr: unknown) => {
        // A connection that cannot roll back is not given back to the pool.
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      });
      throw isKeelsonError(err) ? err : driverError(ctx, operation, err);
    } finally {
      stopListening();
      client.release(broken);
    }
  }

  async function findService(db: Queryable, project: string, name: string, lock: boolean): Promise<ServiceRow | undefined> {
    const result = await db.query<ServiceColumns>(
      `SELECT ${SERVICE_COLUMNS} FROM ${table.services} WHERE project = $1 AND name = $2${lock ? " FOR UPDATE" : ""}`,
      [project, name],
    );
    const columns = result.rows[0];
    return columns === undefined ? undefined : serviceRow(columns);
  }

  async function writeServiceRow(db: PoolClient, row: ServiceRow): Promise<void> {
    await db.query(
      `INSERT INTO ${table.services} (project, name, spec, generation, release, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (project, name) DO UPDATE SET spec = excluded.spec, generation = excluded.generation,
         release = excluded.release, updated_at = excluded.updated_at`,
      [row.project, row.name, row.spec, row.generation, row.release ?? null, row.updatedAt],
    );
  }

  async function insertEvent(db: Queryable, row: EventRow, at: string): Promise<KeelsonEvent> {
    const result = await db.query<{ seq: number }>(
      `INSERT INTO ${table.events} (at, project, kind, actor, subject, details) VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq`,
      [at, row.project, row.kind, row.actor, row.subject, row.details],
    );
    return eventRecord(result.rows[0]!.seq, at, row);
  }

  async function changeService(
    operation: string,
    project: string,
    name: string,
    event: EventInput | undefined,
    change: (row: ServiceRow) => { spec: string; release: string | undefined },
  ): Promise<void> {
    const eventRow = event === undefined ? undefined : prepareEvent(event);
    const at = isoNow(now);
    await transact(operation, async (db) => {
      const row = await findService(db, project, name, true);
      if (row === undefined) throw serviceNotFound(project, name);
      const next = nextServiceRow(project, row, { name, ...change(row) }, at);
      if (next !== undefined) await writeServiceRow(db, next);
      if (eventRow !== undefined) await insertEvent(db, eventRow, at);
    });
  }

  async function applyPrepared(db: PoolClient, change: PreparedDesiredState, at: string): Promise<void> {
    const project = change.project;
    // The project row's lock (held until commit) puts concurrent applies to one project in a line,
    // so each reads the generations the one before it wrote.
    await db.query(
      `INSERT INTO ${table.projects} (name, manifest_path, manifest_hash, applied_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (name) DO UPDATE SET manifest_path = excluded.manifest_path,
         manifest_hash = excluded.manifest_hash, applied_at = excluded.applied_at`,
      [project.name, project.manifestPath, project.manifestHash, project.appliedAt],
    );
    if (change.upserts.length > 0) {
      const existing = await db.query<ServiceColumns>(
        `SELECT ${SERVICE_COLUMNS} FROM ${table.services} WHERE project = $1 AND name = ANY($2::text[]) FOR UPDATE`,
        [project.name, change.upserts.map((u) => u.name)],
      );
      const byName = new Map(existing.rows.map((c) => [c.name, serviceRow(c)]));
      for (const upsert of change.upserts) {
        const next = nextServiceRow(project.name, byName.get(upsert.name), upsert, at);
        if (next !== undefined) await writeServiceRow(db, next);
      }
    }
    if (change.remove.length > 0) {
      await db.query(`DELETE FROM ${table.replicas} WHERE project = $1 AND service = ANY($2::text[])`, [project.name, change.remove]);
      await db.query(`DELETE FROM ${table.services} WHERE project = $1 AND name = ANY($2::text[])`, [project.name, change.remove]);
    }
    for (const event of change.events) await insertEvent(db, event, at);
  }

  const store: Store = {
    kind: "postgres",

    async getProject(name: string): Promise<ProjectRecord | undefined> {
      return read("getProject", async (db) => {
        const result = await db.query<ProjectColumns>(`SELECT ${PROJECT_COLUMNS} FROM ${table.projects} WHERE name = $1`, [name]);
        return result.rows[0] === undefined ? undefined : projectRecord(result.rows[0]);
      });
    },

    async listProjects(): Promise<ProjectRecord[]> {
      return read("listProjects", async (db) =>
        (await db.query<ProjectColumns>(`SELECT ${PROJECT_COLUMNS} FROM ${table.projects} ORDER BY name`)).rows.map(projectRecord),
      );
    },

    async applyDesiredState(change): Promise<void> {
      const prepared = prepareDesiredState(change);
      const at = isoNow(now);
      await transact("applyDesiredState", (db) => applyPrepared(db, prepared, at));
    },

    async listServices(project: string): Promise<ServiceRecord[]> {
      return read("listServices", async (db) =>
        (await db.query<ServiceColumns>(`SELECT ${SERVICE_COLUMNS} FROM ${table.services} WHERE project = $1 ORDER BY name`, [project])).rows.map(
          (c) => serviceRecord(serviceRow(c)),
        ),
      );
    },

    async getService(project: string, name: string): Promise<ServiceRecord | undefined> {
      return read("getService", async (db) => {
        const row = await findService(db, project, name, false);
        return row === undefined ? undefined : serviceRecord(row);
      });
    },

    async setServiceRelease(project, name, release, event): Promise<void> {
      await changeService("setServiceRelease", project, name, event, (row) => ({ spec: row.spec, release }));
    },

    async setServiceReplicas(project, name, replicas, event): Promise<void> {
      const count = prepareReplicaCount(replicas);
      await changeService("setServiceReplicas", project, name, event, (row) => ({
        spec: specWithReplicas(row.spec, count),
        release: undefined,
      }));
    },

    async putRelease(release: ReleaseRecord): Promise<void> {
      const row = prepareRelease(release);
      await transact("putRelease", async (db) => {
        await db.query(
          `INSERT INTO ${table.releases} (id, project, service, source_hash, config_hash, git_commit, created_at, details)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
          [row.id, row.project, row.service, row.sourceHash, row.configHash, row.gitCommit ?? null, row.createdAt, row.details],
        );
      });
    },

    async getRelease(id: string): Promise<ReleaseRecord | undefined> {
      return read("getRelease", async (db) => {
        const result = await db.query<ReleaseColumns>(`SELECT ${RELEASE_COLUMNS} FROM ${table.releases} WHERE id = $1`, [id]);
        return result.rows[0] === undefined ? undefined : releaseFromColumns(result.rows[0]);
      });
    },

    async listReleases(project: string, service: string): Promise<ReleaseRecord[]> {
      return read("listReleases", async (db) =>
        (
          await db.query<ReleaseColumns>(
            `SELECT ${RELEASE_COLUMNS} FROM ${table.releases} WHERE project = $1 AND service = $2 ORDER BY created_at DESC, stored_seq DESC`,
            [project, service],
          )
        ).rows.map(releaseFromColumns),
      );
    },

    async deleteRelease(id: string): Promise<void> {
      await transact("deleteRelease", async (db) => {
        await db.query(`DELETE FROM ${table.releases} WHERE id = $1`, [id]);
      });
    },

    async upsertReplica(replica: ReplicaRecord): Promise<void> {
      const row = prepareReplica(replica);
      await transact("upsertReplica", async (db) => {
        const project = await db.query(`SELECT 1 FROM ${table.projects} WHERE name = $1`, [row.project]);
        if (project.rowCount === 0) throw projectNotFound(row.project);
        await db.query(
          `INSERT INTO ${table.replicas} (id, project, service, release, replica_index, state, pid, pid_start_time, port,
             restarts, started_at, updated_at, details)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (id) DO UPDATE SET project = excluded.project, service = excluded.service,
             release = excluded.release, replica_index = excluded.replica_index, state = excluded.state,
             pid = excluded.pid, pid_start_time = excluded.pid_start_time, port = excluded.port,
             restarts = excluded.restarts, started_at = excluded.started_at, updated_at = excluded.updated_at,
             details = excluded.details`,
          [
            row.id, row.project, row.service, row.release, row.index, row.state, row.pid ?? null, row.pidStartTime ?? null,
            row.port, row.restarts, row.startedAt ?? null, row.updatedAt, row.details,
          ],
        );
      });
    },

    async deleteReplica(id: string): Promise<void> {
      await transact("deleteReplica", async (db) => {
        await db.query(`DELETE FROM ${table.replicas} WHERE id = $1`, [id]);
      });
    },

    async listReplicas(project: string, service?: string): Promise<ReplicaRecord[]> {
      return read("listReplicas", async (db) => {
        const result =
          service === undefined
            ? await db.query<ReplicaColumns>(`SELECT ${REPLICA_COLUMNS} FROM ${table.replicas} WHERE project = $1 ORDER BY service, replica_index, id`, [project])
            : await db.query<ReplicaColumns>(
                `SELECT ${REPLICA_COLUMNS} FROM ${table.replicas} WHERE project = $1 AND service = $2 ORDER BY replica_index, id`,
                [project, service],
              );
        return result.rows.map(replicaFromColumns);
      });
    },

    async appendEvent(event: EventInput): Promise<KeelsonEvent> {
      const row = prepareEvent(event);
      const at = isoNow(now);
      // One statement is a transaction of its own: one round trip instead of BEGIN, INSERT, COMMIT
      // (the hottest write there is).
      return read("appendEvent", (db) => insertEvent(db, row, at));
    },

    async listEvents(query?: EventQuery): Promise<KeelsonEvent[]> {
      const q = prepareEventQuery(query);
      // No kinds asked for means no event matches.
      if (q.kinds !== undefined && q.kinds.length === 0) return [];
      const where: string[] = [];
      const params: unknown[] = [];
      const param = (value: unknown): string => {
        params.push(value);
        return `$${params.length}`;
      };
      if (q.project !== undefined) where.push(`project = ${param(q.project)}`);
      if (q.afterSeq !== undefined) where.push(`seq > ${param(q.afterSeq)}::numeric`);
      if (q.kinds !== undefined) where.push(`kind = ANY(${param(q.kinds)}::text[])`);
      if (q.subject !== undefined) where.push(`subject = ${param(q.subject)}`);
      if (q.subjectPrefix !== undefined) {
        where.push(`subject >= ${param(q.subjectPrefix)} AND subject < ${param(q.subjectPrefix + AFTER_EVERY_CHARACTER)}`);
      }
      let text = `SELECT ${EVENT_COLUMNS} FROM ${table.events}`;
      if (where.length > 0) text += ` WHERE ${where.join(" AND ")}`;
      text += ` ORDER BY seq ${q.descending ? "DESC" : "ASC"}`;
      if (q.limit !== undefined) text += ` LIMIT ${param(q.limit)}`;
      return read("listEvents", async (db) =>
        (await db.query<EventColumns>(text, params)).rows.map((c) => eventRecord(c.seq, iso(c.at), c)),
      );
    },

    async putDocuments(docs: DocumentRecord[]): Promise<void> {
      const rows = prepareDocuments(docs);
      if (rows.length === 0) return;
      // One lock order for every writer: two batches that share documents wait, never deadlock.
      const ordered = [...rows].sort((a, b) => compareKeys([a.collection, a.project, a.id], [b.collection, b.project, b.id]));
      await transact("putDocuments", async (db) => {
        for (const row of ordered) {
          await db.query(
            `INSERT INTO ${table.documents} (collection, project, id, tag, at, body) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (collection, project, id) DO UPDATE SET tag = excluded.tag, at = excluded.at, body = excluded.body`,
            [row.collection, row.project, row.id, row.tag, row.at, row.body],
          );
        }
      });
    },

    async listDocuments(query: DocumentQuery): Promise<DocumentRecord[]> {
      const q = prepareDocumentQuery(query);
      if (q.ids !== undefined && q.ids.length === 0) return [];
      const params: unknown[] = [q.collection, q.project];
      const param = (value: unknown): string => {
        params.push(value);
        return `$${params.length}`;
      };
      const where = ["collection = $1", "project = $2"];
      if (q.tag !== undefined) where.push(`tag = ${param(q.tag)}`);
      if (q.since !== undefined) where.push(`at >= ${param(q.since)}::timestamptz`);
      if (q.until !== undefined) where.push(`at < ${param(q.until)}::timestamptz`);
      if (q.ids !== undefined) where.push(`id = ANY(${param(q.ids)}::text[])`);
      const order = q.descending ? "DESC" : "ASC";
      let text = `SELECT ${DOCUMENT_COLUMNS} FROM ${table.documents} WHERE ${where.join(" AND ")} ORDER BY at ${order}, id ${order}`;
      if (q.limit !== undefined) text += ` LIMIT ${param(q.limit)}`;
      return read("listDocuments", async (db) =>
        (await db.query<DocumentColumns>(text, params)).rows.map((c) => documentRecord({ ...c, at: iso(c.at) })),
      );
    },

    async deleteDocuments(collection: string, project: string, ids: string[]): Promise<number> {
      const q = prepareDocumentQuery({ collection, project, ids });
      if ((q.ids ?? []).length === 0) {
        openPool("deleteDocuments");
        return 0;
      }
      return transact("deleteDocuments", async (db) => {
        const result = await db.query(`DELETE FROM ${table.documents} WHERE collection = $1 AND project = $2 AND id = ANY($3::text[])`, [
          q.collection,
          q.project,
          q.ids,
        ]);
        return result.rowCount ?? 0;
      });
    },

    async getSetting(key: string): Promise<string | undefined> {
      return read("getSetting", async (db) => (await db.query<{ value: string }>(`SELECT value FROM ${table.settings} WHERE key = $1`, [key])).rows[0]?.value);
    },

    async setSetting(key: string, value: string): Promise<void> {
      await transact("setSetting", async (db) => {
        await db.query(`INSERT INTO ${table.settings} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [key, value]);
      });
    },

    async checkIntegrity(): Promise<IntegrityReport> {
      const engine = await read("checkIntegrity", async (db) => {
        // PostgreSQL checks its own pages and enforces the foreign keys; what can still go wrong is
        // a schema someone changed by hand: another version, or the append-only triggers gone.
        const problems: string[] = [];
        const version = await schemaVersion(db, ctx.schema);
        if (version !== POSTGRES_SCHEMA_VERSION) problems.push(`postgres schema ${ctx.schema}: schema version ${version}, expected ${POSTGRES_SCHEMA_VERSION}`);
        const triggers = await db.query<{ name: string }>(
          "SELECT tgname AS name FROM pg_trigger WHERE tgrelid = $1::regclass AND tgenabled <> 'D' AND NOT tgisinternal",
          [table.events],
        );
        const present = new Set(triggers.rows.map((t) => t.name));
        for (const name of ["events_append_only_update", "events_append_only_delete", "events_append_only_truncate"]) {
          if (!present.has(name)) problems.push(`postgres schema ${ctx.schema}: trigger ${name} on events is missing or disabled, so the event log is not append-only`);
        }
        const events = (await db.query<{ n: number }>(`SELECT COUNT(*)::bigint AS n FROM ${table.events}`)).rows[0]?.n ?? 0;
        return { name: `postgres ${ctx.name}`, problems, events };
      });
      return checkReferences(store, engine);
    },

    async close(): Promise<void> {
      if (pool !== undefined) {
        const open = pool;
        pool = undefined;
        closing = open.end();
      }
      await closing;
    },
  };
  return store;
}

// Any fixed order does: what matters is that every writer locks rows in the same one.
function compareKeys(a: string[], b: string[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
