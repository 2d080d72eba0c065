// Validation and serialization shared by every Store implementation. Each write is
// prepared here in full before a store touches its data, so a bad value fails the whole
// call with nothing written, and every implementation agrees on what "changed" means.
import { KeelsonError } from "@keelson/protocol";
import type { EventKind, KeelsonEvent } from "@keelson/protocol";
import { canonicalJson } from "./canonical-json.js";
import type {
  DesiredStateChange,
  DocumentQuery,
  DocumentRecord,
  EventInput,
  EventQuery,
  ProjectRecord,
  ReleaseRecord,
  ReplicaRecord,
  ServiceRecord,
} from "./store.js";

/** A service as stored: the spec as canonical JSON text. */
export interface ServiceRow {
  project: string;
  name: string;
  spec: string;
  generation: number;
  release: string | undefined;
  updatedAt: string;
}

/** An event before the store gives it a seq and a time: details as canonical JSON text. */
export interface EventRow {
  project: string;
  kind: EventKind;
  actor: string;
  subject: string;
  details: string;
}

export type ReleaseRow = Omit<ReleaseRecord, "details"> & { details: string };
export type ReplicaRow = Omit<ReplicaRecord, "details"> & { details: string };

export interface ServiceUpsert {
  name: string;
  spec: string;
  release: string | undefined;
}

export interface PreparedDesiredState {
  project: ProjectRecord;
  upserts: ServiceUpsert[];
  remove: string[];
  events: EventRow[];
}

export interface PreparedEventQuery {
  project: string | undefined;
  afterSeq: number | undefined;
  kinds: EventKind[] | undefined;
  subject: string | undefined;
  subjectPrefix: string | undefined;
  descending: boolean;
  limit: number | undefined;
}

function invalid(message: string, cause?: unknown): KeelsonError {
  return new KeelsonError("KEELSON_ERR_INVALID_INPUT", message, cause === undefined ? {} : { cause });
}

export function projectNotFound(project: string): KeelsonError {
  return new KeelsonError("KEELSON_ERR_NOT_FOUND", `project "${project}" does not exist in the store`);
}

export function serviceNotFound(project: string, name: string): KeelsonError {
  return new KeelsonError("KEELSON_ERR_NOT_FOUND", `service "${name}" does not exist in project "${project}"`);
}

/** Canonical JSON of a plain object, or KEELSON_ERR_INVALID_INPUT naming the field. */
export function jsonObjectText(value: unknown, field: string): string {
  let text: string;
  try {
    text = canonicalJson(value);
  } catch (err) {
    throw invalid(`${field}: cannot be stored as JSON: ${err instanceof Error ? err.message : String(err)}`, err);
  }
  if (!text.startsWith("{")) throw invalid(`${field}: expected a JSON object, got ${text.slice(0, 40)}`);
  return text;
}

export function parseJsonObject(text: string): Record<string, unknown> {
  return JSON.parse(text) as Record<string, unknown>;
}

// An explicit offset is required: a local time without one means a different instant on
// every machine that reads it.
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

/**
 * Normalizes an ISO-8601 time to UTC with milliseconds (`toISOString`), the form every
 * implementation returns and the one whose text order is time order.
 */
export function isoTimestamp(value: string, field: string): string {
  const ms = typeof value === "string" && ISO_8601.test(value) && isCalendarDate(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw invalid(`${field}: expected an ISO-8601 time with an offset (e.g. 2025-01-31T12:00:00.000Z), got ${JSON.stringify(value)}`);
  }
  return new Date(ms).toISOString();
}

// Date.parse rolls 2025-02-30 over into March instead of refusing it.
function isCalendarDate(value: string): boolean {
  const [year, month, day] = value.slice(0, 10).split("-").map(Number) as [number, number, number];
  return new Date(Date.UTC(year, month - 1, day)).getUTCDate() === day;
}

/** The store's own time for `now` (milliseconds since the epoch). */
export function isoNow(now: () => number): string {
  return new Date(now()).toISOString();
}

function integer(value: number, field: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw invalid(`${field}: expected an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

function optionalInteger(value: number | undefined, field: string, min: number): number | undefined {
  return value === undefined ? undefined : integer(value, field, min);
}

export function prepareProject(project: ProjectRecord): ProjectRecord {
  return {
    name: project.name,
    manifestPath: project.manifestPath,
    manifestHash: project.manifestHash,
    appliedAt: isoTimestamp(project.appliedAt, "project.appliedAt"),
  };
}

export function prepareEvent(event: EventInput, field = "event"): EventRow {
  return {
    project: event.project,
    kind: event.kind,
    actor: event.actor,
    subject: event.subject,
    details: jsonObjectText(event.details ?? {}, `${field}.details`),
  };
}

/**
 * Checks and serializes a whole desired-state change. A service named twice, named in
 * both upsert and remove, or filed under another project is rejected: each would make
 * the outcome depend on the order an implementation happens to apply things in.
 */
export function prepareDesiredState(change: DesiredStateChange): PreparedDesiredState {
  const project = prepareProject(change.project);
  const seen = new Set<string>();
  const upserts = change.upsert.map((service, i): ServiceUpsert => {
    const field = `upsert[${i}]`;
    if (service.project !== project.name) {
      throw invalid(`${field}.project: service "${service.name}" is filed under "${service.project}" but the change is for project "${project.name}"`);
    }
    if (seen.has(service.name)) throw invalid(`${field}.name: service "${service.name}" appears more than once in upsert`);
    seen.add(service.name);
    return { name: service.name, spec: jsonObjectText(service.spec, `${field}.spec`), release: service.release };
  });
  const remove = [...new Set(change.remove)];
  for (const name of remove) {
    if (seen.has(name)) throw invalid(`remove: service "${name}" is both upserted and removed`);
  }
  const events = change.events.map((event, i) => prepareEvent(event, `events[${i}]`));
  return { project, upserts, remove, events };
}

/**
 * The row to write for an upsert, or undefined when nothing changed. The generation
 * moves only when the canonical spec text differs; an undefined release keeps the
 * stored one; updatedAt moves only when the spec or the release changed.
 */
export function nextServiceRow(
  project: string,
  existing: ServiceRow | undefined,
  upsert: ServiceUpsert,
  now: string,
): ServiceRow | undefined {
  if (existing === undefined) {
    return { project, name: upsert.name, spec: upsert.spec, generation: 1, release: upsert.release, updatedAt: now };
  }
  const specChanged = existing.spec !== upsert.spec;
  const release = upsert.release ?? existing.release;
  if (!specChanged && release === existing.release) return undefined;
  return {
    ...existing,
    spec: upsert.spec,
    generation: specChanged ? existing.generation + 1 : existing.generation,
    release,
    updatedAt: now,
  };
}

export function prepareReplicaCount(replicas: number): number {
  return integer(replicas, "replicas", 0);
}

/** The stored spec text with `replicas` set. */
export function specWithReplicas(spec: string, replicas: number): string {
  return canonicalJson({ ...parseJsonObject(spec), replicas });
}

export function prepareRelease(release: ReleaseRecord): ReleaseRow {
  return {
    id: release.id,
    project: release.project,
    service: release.service,
    sourceHash: release.sourceHash,
    configHash: release.configHash,
    gitCommit: release.gitCommit,
    createdAt: isoTimestamp(release.createdAt, "release.createdAt"),
    details: jsonObjectText(release.details, "release.details"),
  };
}

export function prepareReplica(replica: ReplicaRecord): ReplicaRow {
  return {
    id: replica.id,
    project: replica.project,
    service: replica.service,
    release: replica.release,
    index: integer(replica.index, "replica.index", 0),
    state: replica.state,
    pid: optionalInteger(replica.pid, "replica.pid", 0),
    pidStartTime: optionalInteger(replica.pidStartTime, "replica.pidStartTime", 0),
    port: integer(replica.port, "replica.port", 0),
    restarts: integer(replica.restarts, "replica.restarts", 0),
    startedAt: replica.startedAt === undefined ? undefined : isoTimestamp(replica.startedAt, "replica.startedAt"),
    updatedAt: isoTimestamp(replica.updatedAt, "replica.updatedAt"),
    details: jsonObjectText(replica.details, "replica.details"),
  };
}

export function prepareEventQuery(query: EventQuery = {}): PreparedEventQuery {
  if (query.afterSeq !== undefined && !Number.isFinite(query.afterSeq)) {
    throw invalid(`afterSeq: expected a number, got ${String(query.afterSeq)}`);
  }
  return {
    project: query.project,
    afterSeq: query.afterSeq,
    kinds: query.kinds === undefined ? undefined : [...query.kinds],
    subject: query.subject,
    subjectPrefix: query.subjectPrefix,
    descending: query.descending === true,
    limit: optionalInteger(query.limit, "limit", 0),
  };
}

export function serviceRecord(row: ServiceRow): ServiceRecord {
  return {
    project: row.project,
    name: row.name,
    spec: parseJsonObject(row.spec),
    generation: row.generation,
    release: row.release,
    updatedAt: row.updatedAt,
  };
}

export function eventRecord(seq: number, at: string, row: EventRow): KeelsonEvent {
  return {
    seq,
    at,
    project: row.project,
    kind: row.kind,
    actor: row.actor,
    subject: row.subject,
    details: parseJsonObject(row.details),
  };
}

export function releaseRecord(row: ReleaseRow): ReleaseRecord {
  return { ...row, details: parseJsonObject(row.details) };
}

export function replicaRecord(row: ReplicaRow): ReplicaRecord {
  return { ...row, details: parseJsonObject(row.details) };
}

/** A document as stored: the body as canonical JSON text. */
export type DocumentRow = Omit<DocumentRecord, "body"> & { body: string };

const COLLECTION = /^[a-z][a-z0-9._-]{0,63}$/;

function collectionName(value: string, field: string): string {
  if (typeof value !== "string" || !COLLECTION.test(value)) {
    throw invalid(`${field}: expected a collection name (lowercase letters, digits, ".", "-", "_", at most 64), got ${JSON.stringify(value)}`);
  }
  return value;
}

function nonEmptyText(value: string, field: string, max: number): string {
  if (typeof value !== "string" || value.length === 0 || value.length > max) {
    throw invalid(`${field}: expected a non-empty string of at most ${max} characters, got ${JSON.stringify(value)?.slice(0, 80)}`);
  }
  return value;
}

export function prepareDocuments(docs: DocumentRecord[]): DocumentRow[] {
  if (!Array.isArray(docs)) throw invalid(`documents: expected an array, got ${typeof docs}`);
  const seen = new Set<string>();
  return docs.map((doc, i) => {
    const field = `documents[${i}]`;
    const row: DocumentRow = {
      collection: collectionName(doc.collection, `${field}.collection`),
      project: nonEmptyText(doc.project, `${field}.project`, 200),
      id: nonEmptyText(doc.id, `${field}.id`, 500),
      tag: typeof doc.tag === "string" && doc.tag.length <= 200 ? doc.tag : (() => {
        throw invalid(`${field}.tag: expected a string of at most 200 characters ("" when unused), got ${JSON.stringify(doc.tag)}`);
      })(),
      at: isoTimestamp(doc.at, `${field}.at`),
      body: jsonObjectText(doc.body, `${field}.body`),
    };
    const key = `${row.collection}\u0000${row.project}\u0000${row.id}`;
    if (seen.has(key)) throw invalid(`${field}.id: "${row.id}" appears twice in one write`);
    seen.add(key);
    return row;
  });
}

export type PreparedDocumentQuery = Required<Pick<DocumentQuery, "collection" | "project" | "descending">> & Omit<DocumentQuery, "collection" | "project" | "descending">;

export function prepareDocumentQuery(query: DocumentQuery): PreparedDocumentQuery {
  return {
    collection: collectionName(query.collection, "collection"),
    project: nonEmptyText(query.project, "project", 200),
    ...(query.ids === undefined ? {} : { ids: [...query.ids] }),
    ...(query.tag === undefined ? {} : { tag: query.tag }),
    ...(query.since === undefined ? {} : { since: isoTimestamp(query.since, "since") }),
    ...(query.until === undefined ? {} : { until: isoTimestamp(query.until, "until") }),
    descending: query.descending === true,
    ...(query.limit === undefined ? {} : { limit: integer(query.limit, "limit", 0) }),
  };
}

export function documentRecord(row: DocumentRow): DocumentRecord {
  return { ...row, body: parseJsonObject(row.body) };
}
