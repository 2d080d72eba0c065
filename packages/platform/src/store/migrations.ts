// The SQLite schema as an ordered list of migrations. Append a new entry to change the
// schema; never edit one that has shipped: databases out there already ran it.

export interface Migration {
  /** 1, 2, 3, ... in order, no gaps. */
  version: number;
  name: string;
  sql: string;
}

/** A migration a store applied, as `keelson migrate` reports it. */
export interface AppliedMigration {
  version: number;
  name: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "initial schema",
    // STRICT tables make SQLite reject a value of the wrong type instead of storing it.
    // Timestamps are TEXT in toISOString() form, so text order is time order.
    sql: `
      CREATE TABLE projects (
        name          TEXT PRIMARY KEY,
        manifest_path TEXT NOT NULL,
        manifest_hash TEXT NOT NULL,
        applied_at    TEXT NOT NULL
      ) STRICT;

      CREATE TABLE services (
        project    TEXT NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        spec       TEXT NOT NULL CHECK (json_valid(spec)),
        generation INTEGER NOT NULL CHECK (generation >= 1),
        release    TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (project, name)
      ) STRICT;

      -- No foreign key: a project's first releases are built before its first apply, and
      -- releases outlive the service they were built for (they are the deploy history).
      CREATE TABLE releases (
        id          TEXT PRIMARY KEY,
        project     TEXT NOT NULL,
        service     TEXT NOT NULL,
        source_hash TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        git_commit  TEXT,
        created_at  TEXT NOT NULL,
        details     TEXT NOT NULL CHECK (json_valid(details))
      ) STRICT;
      CREATE INDEX releases_by_service ON releases (project, service, created_at);

      CREATE TABLE replicas (
        id             TEXT PRIMARY KEY,
        project        TEXT NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
        service        TEXT NOT NULL,
        release        TEXT NOT NULL,
        replica_index  INTEGER NOT NULL,
        state          TEXT NOT NULL,
        pid            INTEGER,
        pid_start_time INTEGER,
        port           INTEGER NOT NULL,
        restarts       INTEGER NOT NULL,
        started_at     TEXT,
        updated_at     TEXT NOT NULL,
        details        TEXT NOT NULL CHECK (json_valid(details))
      ) STRICT;
      CREATE INDEX replicas_by_service ON replicas (project, service, replica_index);

      -- AUTOINCREMENT: a seq is never handed out twice, even after the newest row is gone,
      -- so a reader that remembers "after seq N" never misses an event.
      CREATE TABLE events (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        at      TEXT NOT NULL,
        project TEXT NOT NULL,
        kind    TEXT NOT NULL,
        actor   TEXT NOT NULL,
        subject TEXT NOT NULL,
        details TEXT NOT NULL CHECK (json_valid(details))
      ) STRICT;
      CREATE INDEX events_by_project ON events (project, seq);
      CREATE INDEX events_by_kind ON events (kind, seq);
      CREATE INDEX events_by_subject ON events (subject, seq);

      -- The event log is the audit trail: the schema refuses edits, not only the API.
      CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
      BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
      CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
      BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

      CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 2,
    name: "documents",
    sql: `
      CREATE TABLE documents (
        collection TEXT NOT NULL,
        project    TEXT NOT NULL,
        id         TEXT NOT NULL,
        tag        TEXT NOT NULL,
        at         TEXT NOT NULL,
        body       TEXT NOT NULL CHECK (json_valid(body)),
        PRIMARY KEY (collection, project, id)
      ) STRICT;
      CREATE INDEX documents_by_time ON documents (collection, project, at, id);
      CREATE INDEX documents_by_tag ON documents (collection, project, tag, at, id);
    `,
  },
];

/** The schema version this code writes and expects. */
export const LATEST_SCHEMA_VERSION: number = MIGRATIONS.at(-1)?.version ?? 0;
