// The SQLite TraceStore: spans in their own file (.keelson/traces.db, WAL) so a burst of
// spans never contends with the state store's writes, and throwing traces away is deleting
// a file. Searched columns are real columns; the rest of a span is one JSON text, and the
// resource (the same for every span of a replica) is stored once and referenced.
import Database from "better-sqlite3";
import { KeelsonError } from "@keelson/protocol";
import { AGE_PRUNE_INTERVAL_MS, DEFAULT_TRACE_MAX_AGE_MS, normalizeScan, normalizeSearch, normalizeTraceId, summarizeTrace } from "./trace-store.js";
import type { TraceRetention, TraceStore, TraceSummary } from "./trace-store.js";
import { targetServiceOf } from "./trace-span.js";
import type { SpanKind, SpanRecord, SpanStatus } from "./trace-span.js";

export interface SqliteTraceStoreOptions {
  /** The database file, e.g. `.keelson/traces.db`; created when missing unless `readonly`. */
  path: string;
  /** Open read-only (a CLI reading while the control plane writes): writes are refused. */
  readonly?: boolean;
  /** Defaults: 24 h, 250 000 spans (about 150 MB with typical attributes). */
  retention?: TraceRetention;
  /** Clock (epoch ms) for age-based retention. */
  now?: () => number;
}

export const DEFAULT_SQLITE_MAX_SPANS = 250_000;
const SCHEMA_VERSION = 1;

// Only two indexes: every index costs on each of thousands of inserts a second, while a
// search groups all matching rows anyway, so a time-range scan serves it.
const SCHEMA = `
CREATE TABLE resources (
  id INTEGER PRIMARY KEY,
  json TEXT NOT NULL UNIQUE
) STRICT;
CREATE TABLE spans (
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL,
  parent_span_id TEXT,
  service TEXT NOT NULL,
  peer_service TEXT,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  start_us INTEGER NOT NULL,
  duration_us INTEGER NOT NULL,
  resource_id INTEGER NOT NULL REFERENCES resources (id),
  data TEXT NOT NULL,
  UNIQUE (trace_id, span_id)
) STRICT;
CREATE INDEX spans_start ON spans (start_us);
`;
const SPAN_COLUMNS = "spans.*, resources.json AS resource_json";
const FROM_SPANS = "spans JOIN resources ON resources.id = spans.resource_id";
/** Resource ids remembered by their JSON; a handful per replica and release. */
const MAX_CACHED_RESOURCES = 10_000;

interface SpanRow {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  service: string;
  name: string;
  kind: string;
  status: string;
  start_us: number;
  duration_us: number;
  data: string;
  resource_json: string;
}

type SpanData = Pick<SpanRecord, "attributes" | "events" | "links"> & { statusMessage?: string; scope?: string };

/**
 * Opens (creating it when missing) a SQLite trace store.
 *
 * @example
 * const traces = createSqliteTraceStore({ path: join(stateDir, "traces.db") });
 */
export function createSqliteTraceStore(options: SqliteTraceStoreOptions): TraceStore {
  const readonly = options.readonly ?? false;
  const maxAgeUs = (options.retention?.maxAgeMs ?? DEFAULT_TRACE_MAX_AGE_MS) * 1000;
  const maxSpans = options.retention?.maxSpans ?? DEFAULT_SQLITE_MAX_SPANS;
  const now = options.now ?? Date.now;
  const db = storeCall("open", () => open(options.path, readonly));

  const insert = readonly
    ? undefined
    : db.prepare(
        `INSERT INTO spans (trace_id, span_id, parent_span_id, service, peer_service, name, kind, status, start_us, duration_us, resource_id, data)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (trace_id, span_id) DO NOTHING`,
      );
  const insertResource = readonly ? undefined : db.prepare("INSERT INTO resources (json) VALUES (?) ON CONFLICT (json) DO NOTHING");
  const resourceId = db.prepare("SELECT id FROM resources WHERE json = ?").pluck();
  const deleteUnusedResources = readonly ? undefined : db.prepare("DELETE FROM resources WHERE id NOT IN (SELECT DISTINCT resource_id FROM spans)");
  const resourceIds = new Map<string, number>();
  const countAll = db.prepare("SELECT count(*) AS n FROM spans").pluck();
  const deleteOlder = readonly ? undefined : db.prepare("DELETE FROM spans WHERE start_us < ?");
  const deleteOldest = readonly ? undefined : db.prepare("DELETE FROM spans WHERE rowid IN (SELECT rowid FROM spans ORDER BY rowid LIMIT ?)");
  const byTrace = db.prepare(`SELECT ${SPAN_COLUMNS} FROM ${FROM_SPANS} WHERE trace_id = ? ORDER BY start_us, span_id`);

  // Kept exact: inserts count what they added, deletes what they removed.
  let count = storeCall("count", () => countAll.get() as number);
  let lastAgePrune = -Infinity;

  const idOfResource = (json: string): number => {
    let id = resourceIds.get(json);
    if (id === undefined) {
      (insertResource as Database.Statement).run(json);
      id = resourceId.get(json) as number;
      if (resourceIds.size >= MAX_CACHED_RESOURCES) resourceIds.clear();
      resourceIds.set(json, id);
    }
    return id;
  };

  const writeBatch = db.transaction((spans: readonly SpanRecord[]) => {
    let added = 0;
    // Spans decoded from one request share their resource object: serialize it once.
    const resourceJson = new Map<object, string>();
    for (const s of spans) {
      let json = resourceJson.get(s.resource);
      if (json === undefined) resourceJson.set(s.resource, (json = JSON.stringify(s.resource)));
      const data: SpanData = { attributes: s.attributes, events: s.events, links: s.links };
      if (s.statusMessage !== undefined) data.statusMessage = s.statusMessage;
      if (s.scope !== undefined) data.scope = s.scope;
      added += (insert as Database.Statement).run(
        s.traceId,
        s.spanId,
        s.parentSpanId ?? null,
        s.service,
        targetServiceOf(s) ?? null,
        s.name,
        s.kind,
        s.status,
        s.startTimeUs,
        s.durationUs,
        idOfResource(json),
        JSON.stringify(data),
      ).changes;
    }
    return added;
  });

  const refuseWrite = (): never => {
    throw new KeelsonError("KEELSON_ERR_STORE", `the trace store ${options.path} is open read-only`);
  };

  const pruneAge = (): number => {
    if (!deleteOlder) return refuseWrite();
    lastAgePrune = now();
    const dropped = deleteOlder.run(lastAgePrune * 1000 - maxAgeUs).changes;
    count -= dropped;
    if (dropped > 0) {
      // Resources of replicas long gone; this scans, so only after spans were really dropped.
      deleteUnusedResources?.run();
      resourceIds.clear();
    }
    return dropped;
  };

  const pruneSize = (): number => {
    if (!deleteOldest) return refuseWrite();
    if (count <= maxSpans) return 0;
    const dropped = deleteOldest.run(count - maxSpans).changes;
    count -= dropped;
    return dropped;
  };

  return {
    kind: "sqlite",
    async write(spans) {
      if (readonly) refuseWrite();
      if (spans.length === 0) return;
      storeCall("write", () => {
        try {
          count += writeBatch(spans);
        } catch (err) {
          // A rolled-back transaction may have taken resource rows the cache still names.
          resourceIds.clear();
          throw err;
        }
        if (now() - lastAgePrune >= AGE_PRUNE_INTERVAL_MS) pruneAge();
        pruneSize();
      });
    },
    async search(query) {
      const q = normalizeSearch(query);
      const where: string[] = [];
      const params: Array<string | number> = [];
      if (q.service !== undefined) {
        where.push("(service = ? OR peer_service = ?)");
        params.push(q.service, q.service);
      }
      if (q.status !== undefined) {
        where.push("status = ?");
        params.push(q.status);
      }
      if (q.minDurationUs !== undefined) {
        where.push("duration_us >= ?");
        params.push(q.minDurationUs);
      }
      if (q.fromUs !== undefined) {
        where.push("start_us >= ?");
        params.push(q.fromUs);
      }
      if (q.toUs !== undefined) {
        where.push("start_us <= ?");
        params.push(q.toUs);
      }
      const sql = `SELECT trace_id, max(start_us) AS latest FROM spans ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
                   GROUP BY trace_id ORDER BY latest DESC, trace_id ASC LIMIT ?`;
      return storeCall("search", () => {
        const ids = db.prepare(sql).all(...params, q.limit) as Array<{ trace_id: string }>;
        return ids.map((r) => summarizeTrace((byTrace.all(r.trace_id) as SpanRow[]).map(fromRow))).filter((s): s is TraceSummary => s !== undefined);
      });
    },
    async getTrace(traceId) {
      const id = normalizeTraceId(traceId);
      return storeCall("read", () => (byTrace.all(id) as SpanRow[]).map(fromRow));
    },
    async listSpans(query) {
      const q = normalizeScan(query);
      return storeCall("read", () =>
        (
          db
            .prepare(`SELECT ${SPAN_COLUMNS} FROM ${FROM_SPANS} WHERE start_us >= ? AND start_us <= ? ORDER BY start_us DESC, span_id DESC LIMIT ?`)
            .all(q.fromUs ?? 0, q.toUs ?? Number.MAX_SAFE_INTEGER, q.limit) as SpanRow[]
        ).map(fromRow),
      );
    },
    async prune() {
      if (readonly) refuseWrite();
      return storeCall("prune", () => pruneAge() + pruneSize());
    },
    async count() {
      // Another process may write the file a read-only view is looking at.
      return readonly ? storeCall("count", () => countAll.get() as number) : count;
    },
    async close() {
      if (db.open) db.close();
    },
  };
}

function open(path: string, readonly: boolean): Database.Database {
  const db = new Database(path, readonly ? { readonly: true, fileMustExist: true } : {});
  db.pragma("busy_timeout = 5000");
  if (readonly) {
    checkVersion(db, path, db.pragma("user_version", { simple: true }) as number, true);
    return db;
  }
  db.pragma("journal_mode = WAL");
  // Losing the last spans in a power cut is acceptable; a corrupt file is not, and WAL prevents that.
  db.pragma("synchronous = NORMAL");
  db.transaction(() => {
    const version = db.pragma("user_version", { simple: true }) as number;
    checkVersion(db, path, version, false);
    if (version === 0) {
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }
  }).immediate();
  return db;
}

function checkVersion(db: Database.Database, path: string, version: number, readonly: boolean): void {
  if (version > SCHEMA_VERSION) {
    db.close();
    throw new KeelsonError("KEELSON_ERR_STORE_MIGRATION", `${path} has trace schema version ${version}; this Keelson knows up to ${SCHEMA_VERSION}`);
  }
  if (readonly && version < SCHEMA_VERSION) {
    db.close();
    throw new KeelsonError("KEELSON_ERR_STORE_MIGRATION", `${path} has no trace schema yet (version ${version}); open it read-write once`);
  }
}

function fromRow(row: SpanRow): SpanRecord {
  const data = JSON.parse(row.data) as SpanData;
  return {
    traceId: row.trace_id,
    spanId: row.span_id,
    parentSpanId: row.parent_span_id ?? undefined,
    name: row.name,
    kind: row.kind as SpanKind,
    service: row.service,
    startTimeUs: row.start_us,
    durationUs: row.duration_us,
    status: row.status as SpanStatus,
    statusMessage: data.statusMessage,
    attributes: data.attributes,
    resource: JSON.parse(row.resource_json) as SpanRecord["resource"],
    scope: data.scope,
    events: data.events,
    links: data.links,
  };
}

/** Runs a driver call, turning its failures into KEELSON_ERR_STORE with the cause kept. */
function storeCall<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof KeelsonError) throw err;
    throw new KeelsonError("KEELSON_ERR_STORE", `trace store ${what} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
