// The Store interface: everything the control plane remembers. SQLite (default) and
// PostgreSQL implement it; MemoryStore is the first-class fake for unit tests.
// Every implementation runs the same conformance suite (store.conformance.ts).
import type { EventKind, KeelsonEvent, ReplicaState } from "@keelson/protocol";

export interface ProjectRecord {
  name: string;
  /** Absolute path of the manifest this project was last applied from. */
  manifestPath: string;
  /** Hash of the last applied manifest text. */
  manifestHash: string;
  appliedAt: string;
}

/** A service's desired state as last applied, plus what Keelson derived for it. */
export interface ServiceRecord {
  project: string;
  name: string;
  /** The validated ServiceSpec, as JSON (plain data). */
  spec: Record<string, unknown>;
  /** Increases on every change of `spec`. */
  generation: number;
  /** The release the service should run; undefined until the first build. */
  release: string | undefined;
  updatedAt: string;
}

/** An immutable, content-addressed build of a service. */
export interface ReleaseRecord {
  /** Content hash of sources + config, e.g. "r-3f9a1c2b7d4e". */
  id: string;
  project: string;
  service: string;
  /** Hash of the service's source files alone. */
  sourceHash: string;
  /** Hash of the config (start command, env, ...) the release runs with. */
  configHash: string;
  gitCommit: string | undefined;
  createdAt: string;
  /** Details: the build command, its duration, the spec it was built from. */
  details: Record<string, unknown>;
}

export interface ReplicaRecord {
  id: string;
  project: string;
  service: string;
  release: string;
  index: number;
  state: ReplicaState;
  pid: number | undefined;
  /** Process start time (clock ticks since boot, from /proc) to tell a re-used pid from ours. */
  pidStartTime: number | undefined;
  port: number;
  restarts: number;
  startedAt: string | undefined;
  updatedAt: string;
  /** Driver-specific facts (log file paths, container id, ...). */
  details: Record<string, unknown>;
}

export interface EventInput {
  project: string;
  kind: EventKind;
  actor: string;
  subject: string;
  details?: Record<string, unknown>;
}

export interface EventQuery {
  project?: string;
  /** Only events with seq greater than this. */
  afterSeq?: number;
  kinds?: EventKind[];
  /** Exact subject, e.g. "service/orders". */
  subject?: string;
  /** Subject prefix, e.g. "replica/orders-". */
  subjectPrefix?: string;
  /** Newest first when true (default: oldest first). */
  descending?: boolean;
  limit?: number;
}

/**
 * A document of a named collection: state a domain keeps beside the event log (notification
 * deliveries, imported commit history, teams as last applied). Unique by (collection, project, id).
 */
export interface DocumentRecord {
  /** e.g. "notification", "team", "dora.changes": letters, digits, ".", "-", "_". */
  collection: string;
  project: string;
  id: string;
  /** A short label the collection is filtered on (e.g. a delivery's state); "" when unused. */
  tag: string;
  /** ISO-8601 time the collection is ordered by. */
  at: string;
  body: Record<string, unknown>;
}

export interface DocumentQuery {
  collection: string;
  project: string;
  /** Only these ids. */
  ids?: string[];
  /** Only documents with this tag. */
  tag?: string;
  /** Only documents with `at` >= since. */
  since?: string;
  /** Only documents with `at` < until. */
  until?: string;
  /** Newest first when true (default: oldest first, ties by id). */
  descending?: boolean;
  limit?: number;
}

/** One atomic change of desired state: all of it is written, or none of it. */
export interface DesiredStateChange {
  project: ProjectRecord;
  upsert: Array<Omit<ServiceRecord, "generation" | "updatedAt">>;
  remove: string[];
  events: EventInput[];
}

export interface Store {
  /** "sqlite", "postgres" or "memory". */
  readonly kind: string;

  getProject(name: string): Promise<ProjectRecord | undefined>;
  listProjects(): Promise<ProjectRecord[]>;

  /**
   * Applies a desired-state change in one transaction. A service whose spec is
   * unchanged keeps its generation; a changed one gets generation + 1.
   */
  applyDesiredState(change: DesiredStateChange): Promise<void>;
  listServices(project: string): Promise<ServiceRecord[]>;
  getService(project: string, name: string): Promise<ServiceRecord | undefined>;
  /** Points a service at a release (after a successful build). */
  setServiceRelease(project: string, name: string, release: string, event?: EventInput): Promise<void>;
  /** Changes the desired replica count in the stored spec (keelson scale). */
  setServiceReplicas(project: string, name: string, replicas: number, event?: EventInput): Promise<void>;

  /** Stores a release; storing the same id again is a no-op. */
  putRelease(release: ReleaseRecord): Promise<void>;
  getRelease(id: string): Promise<ReleaseRecord | undefined>;
  /** Newest first. */
  listReleases(project: string, service: string): Promise<ReleaseRecord[]>;
  /** Forgets a release (garbage collection); unknown ids are a no-op. */
  deleteRelease(id: string): Promise<void>;

  upsertReplica(replica: ReplicaRecord): Promise<void>;
  deleteReplica(id: string): Promise<void>;
  listReplicas(project: string, service?: string): Promise<ReplicaRecord[]>;

  appendEvent(event: EventInput): Promise<KeelsonEvent>;
  listEvents(query?: EventQuery): Promise<KeelsonEvent[]>;

  /** Writes documents (insert or replace by collection, project and id) in one transaction. */
  putDocuments(docs: DocumentRecord[]): Promise<void>;
  /** Documents of one collection of a project, ordered by `at` then id. */
  listDocuments(query: DocumentQuery): Promise<DocumentRecord[]>;
  /** Removes documents by id; unknown ids are a no-op. Returns how many were removed. */
  deleteDocuments(collection: string, project: string, ids: string[]): Promise<number>;

  /** Small key/value settings (e.g. the routing table version). */
  getSetting(key: string): Promise<string | undefined>;
  setSetting(key: string, value: string): Promise<void>;

  /**
   * Checks the store is whole: the engine's own check (SQLite integrity_check and
   * foreign_key_check) and Keelson's references (every service's release, every replica's
   * service and release exist). Never throws for a problem found: it is listed.
   */
  checkIntegrity(): Promise<IntegrityReport>;

  close(): Promise<void>;
}

/** What `Store.checkIntegrity` found. */
export interface IntegrityReport {
  ok: boolean;
  /** One line per problem, naming the object. */
  problems: string[];
  /** What was looked at. */
  checked: { engine: string; projects: number; services: number; releases: number; replicas: number; events: number };
}
