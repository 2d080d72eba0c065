// Where a store lives, from one setting: a SQLite file path or a postgres:// URL. The control plane
// and the store tooling (migrate, backup, restore) pick the engine from it the same way.
import { KeelsonError } from "@keelson/protocol";
import { createPostgresStore } from "./postgres-store.js";
import type { PostgresPoolOptions } from "./postgres-store.js";
import { createSqliteStore } from "./sqlite-store.js";
import type { Store } from "./store.js";

/**
 * A store's location: `path` (a SQLite file) or `url` (`postgres://` or `postgresql://`; also
 * `sqlite:<path>`, so one environment variable can name either), plus the PostgreSQL `schema`.
 */
export interface StoreLocation {
  url?: string;
  path?: string;
  /** PostgreSQL only: the schema Keelson's tables live in. Default "keelson". */
  schema?: string;
}

/** A location with its engine decided. */
export type ResolvedStoreLocation = { kind: "sqlite"; path: string } | { kind: "postgres"; url: string; schema: string | undefined };

const POSTGRES_URL = /^postgres(?:ql)?:\/\//i;
const SQLITE_URL = /^sqlite:(?:\/\/)?/i;

/**
 * Decides the engine of a location, or KEELSON_ERR_INVALID_INPUT saying what was expected.
 *
 * @example
 * resolveStoreLocation({ url: "postgres://keelson@db/keelson" }) // { kind: "postgres", ... }
 * resolveStoreLocation({ path: ".keelson/state.db" })            // { kind: "sqlite", ... }
 */
export function resolveStoreLocation(location: StoreLocation): ResolvedStoreLocation {
  const { url, path, schema } = location;
  if ((url === undefined) === (path === undefined)) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "store: expected either a url (postgres://...) or a path (a SQLite file), not both or neither");
  }
  if (url !== undefined && POSTGRES_URL.test(url)) return { kind: "postgres", url, schema };
  if (url !== undefined && !SQLITE_URL.test(url)) {
    // Never echo a password: keep the scheme and host only.
    const shown = url.replace(/\/\/[^@/]*@/, "//***@");
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `store url: expected postgres://, postgresql:// or sqlite:<path>, got ${JSON.stringify(shown)}`);
  }
  const file = url === undefined ? path! : url.replace(SQLITE_URL, "");
  if (file === "") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "store path: expected the path of a SQLite file, got an empty one");
  if (schema !== undefined) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `store ${file}: schema ${JSON.stringify(schema)}: a schema is for PostgreSQL stores, and this is a SQLite file`);
  }
  return { kind: "sqlite", path: file };
}

export interface OpenStoreOptions extends StoreLocation {
  /** Clock for the times the store assigns. Default `Date.now`. */
  now?: () => number;
  /** PostgreSQL pool settings beside the URL (pool size, timeouts). */
  pool?: PostgresPoolOptions;
}

/**
 * Opens (creating and migrating when needed) the store at `url` or `path`: SQLite for a path or a
 * `sqlite:` URL, PostgreSQL for a `postgres://` URL.
 *
 * @example
 * const store = await openStore({ url: process.env.KEELSON_STORE_URL ?? `sqlite:${stateDir}/state.db` });
 */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const where = resolveStoreLocation(options);
  const now = options.now === undefined ? {} : { now: options.now };
  if (where.kind === "sqlite") return createSqliteStore({ path: where.path, ...now });
  return createPostgresStore({
    url: where.url,
    ...(where.schema === undefined ? {} : { schema: where.schema }),
    ...(options.pool === undefined ? {} : { pool: options.pool }),
    ...now,
  });
}
