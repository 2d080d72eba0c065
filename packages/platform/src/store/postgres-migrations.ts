// The PostgreSQL schema as an ordered list of migrations, numbered and named like the SQLite ones
// (migrations.ts), so one schema version means the same tables in either store. Append a new entry
// to change the schema; never edit one that has shipped: databases out there already ran it.
import type { Migration } from "./migrations.js";

// Each migration runs in one transaction with `search_path` set to the store's schema, so the
// names below are unqualified. Keys and names Keelson compares or sorts are COLLATE "C": byte
// order, as in SQLite and JavaScript, whatever the database's locale. JSON is `json`, which keeps
// the exact canonical text the store wrote (jsonb would reorder keys and refuses "\u0000").
export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "initial schema",
    sql: `
      CREATE TABLE projects (
        name          TEXT COLLATE "C" PRIMARY KEY,
        manifest_path TEXT NOT NULL,
        manifest_hash TEXT NOT NULL,
        applied_at    TIMESTAMPTZ NOT NULL
      );

      CREATE TABLE services (
        project    TEXT COLLATE "C" NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
        name       TEXT COLLATE "C" NOT NULL,
        spec       JSON NOT NULL,
        generation BIGINT NOT NULL CHECK (generation >= 1),
        release    TEXT COLLATE "C",
        updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (project, name)
      );

      -- No foreign key: a project's first releases are built before its first apply, and
      -- releases outlive the service they were built for (they are the deploy history).
      -- stored_seq orders releases created in the same millisecond (SQLite uses its rowid).
      CREATE TABLE releases (
        id          TEXT COLLATE "C" PRIMARY KEY,
        project     TEXT COLLATE "C" NOT NULL,
        service     TEXT COLLATE "C" NOT NULL,
        source_hash TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        git_commit  TEXT,
        created_at  TIMESTAMPTZ NOT NULL,
        details     JSON NOT NULL,
        stored_seq  BIGINT GENERATED ALWAYS AS IDENTITY
      );
      CREATE INDEX releases_by_service ON releases (project, service, created_at, stored_seq);

      CREATE TABLE replicas (
        id             TEXT COLLATE "C" PRIMARY KEY,
        project        TEXT COLLATE "C" NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
        service        TEXT COLLATE "C" NOT NULL,
        release        TEXT COLLATE "C" NOT NULL,
        replica_index  BIGINT NOT NULL,
        state          TEXT NOT NULL,
        pid            BIGINT,
        pid_start_time BIGINT,
        port           BIGINT NOT NULL,
        restarts       BIGINT NOT NULL,
        started_at     TIMESTAMPTZ,
        updated_at     TIMESTAMPTZ NOT NULL,
        details        JSON NOT NULL
      );
      CREATE INDEX replicas_by_service ON replicas (project, service, replica_index);

      -- An identity is never handed out twice, even after a rollback, so a reader that
      -- remembers "after seq N" never sees a seq reused. It does not promise commit order:
      -- with concurrent writers seq 8 can commit before seq 7 (see ADR 0017).
      CREATE TABLE events (
        seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at      TIMESTAMPTZ NOT NULL,
        project TEXT COLLATE "C" NOT NULL,
        kind    TEXT COLLATE "C" NOT NULL,
        actor   TEXT NOT NULL,
        subject TEXT COLLATE "C" NOT NULL,
        details JSON NOT NULL
      );
      CREATE INDEX events_by_project ON events (project, seq);
      CREATE INDEX events_by_kind ON events (kind, seq);
      CREATE INDEX events_by_subject ON events (subject, seq);

      -- The event log is the audit trail: the schema refuses edits, not only the API.
      CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'events are append-only' USING ERRCODE = 'restrict_violation';
      END;
      $$;
      CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
        FOR EACH ROW EXECUTE FUNCTION events_append_only();
      CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION events_append_only();
      CREATE TRIGGER events_append_only_truncate BEFORE TRUNCATE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

      CREATE TABLE settings (
        key   TEXT COLLATE "C" PRIMARY KEY,
        value TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: "documents",
    sql: `
      CREATE TABLE documents (
        collection TEXT COLLATE "C" NOT NULL,
        project    TEXT COLLATE "C" NOT NULL,
        id         TEXT COLLATE "C" NOT NULL,
        tag        TEXT COLLATE "C" NOT NULL,
        at         TIMESTAMPTZ NOT NULL,
        body       JSON NOT NULL,
        PRIMARY KEY (collection, project, id)
      );
      CREATE INDEX documents_by_time ON documents (collection, project, at, id);
      CREATE INDEX documents_by_tag ON documents (collection, project, tag, at, id);
    `,
  },
];

/** The schema version this code writes and expects in PostgreSQL (the same number as SQLite's). */
export const POSTGRES_SCHEMA_VERSION: number = POSTGRES_MIGRATIONS.at(-1)?.version ?? 0;
