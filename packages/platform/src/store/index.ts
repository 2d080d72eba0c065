// The store domain: the Store interface and its implementations.
export type * from "./store.js";
export { createSqliteStore } from "./sqlite-store.js";
export type { SqliteStoreOptions } from "./sqlite-store.js";
export { createPostgresStore, POSTGRES_ADVISORY_LOCK_CLASS } from "./postgres-store.js";
export type { PostgresPoolOptions, PostgresStoreOptions } from "./postgres-store.js";
export { createMemoryStore } from "./memory-store.js";
export type { MemoryStoreOptions } from "./memory-store.js";
export { canonicalJson } from "./canonical-json.js";
