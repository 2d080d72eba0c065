// MemoryStore: the Store kept in memory, for unit tests and benchmarks. Product code with
// the same semantics as SQLite (it runs the same conformance suite), not an ad-hoc mock:
// data is held as serialized rows, so callers can never alias what it stores.
import { KeelsonError } from "@keelson/protocol";
import type { KeelsonEvent } from "@keelson/protocol";
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
import type { DocumentRow, EventRow, ReleaseRow, ReplicaRow, ServiceRow } from "./store-input.js";
import type { DocumentQuery, DocumentRecord, EventInput, EventQuery, IntegrityReport, ProjectRecord, ReleaseRecord, ReplicaRecord, ServiceRecord, Store } from "./store.js";
import { checkReferences } from "./integrity.js";

export interface MemoryStoreOptions {
  /** Clock for the times the store assigns (event `at`, service `updatedAt`). Default `Date.now`. */
  now?: () => number;
}

interface StoredEvent {
  seq: number;
  at: string;
  row: EventRow;
}

function documentKey(collection: string, project: string, id: string): string {
  return `${collection}\u0000${project}\u0000${id}`;
}

// A NUL cannot appear in a project name from a manifest, so it keeps the key unambiguous.
function serviceKey(project: string, name: string): string {
  return `${project}\u0000${name}`;
}

/**
 * A Store held in memory; everything is gone on close.
 *
 * @example
 * const store = createMemoryStore({ now: () => clock.now() });
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): Store {
  const now = options.now ?? Date.now;
  let open = true;
  const projects = new Map<string, ProjectRecord>();
  const services = new Map<string, ServiceRow>();
  // Map keeps insertion order, which breaks ties between releases of the same createdAt.
  const releases = new Map<string, ReleaseRow>();
  const replicas = new Map<string, ReplicaRow>();
  const events: StoredEvent[] = [];
  const settings = new Map<string, string>();
  const documents = new Map<string, DocumentRow>();
  let lastSeq = 0;

  function ensureOpen(operation: string): void {
    if (!open) throw new KeelsonError("KEELSON_ERR_STORE", `memory store: ${operation}: the store is closed`);
  }

  function append(row: EventRow, at: string): KeelsonEvent {
    lastSeq += 1;
    events.push({ seq: lastSeq, at, row });
    return eventRecord(lastSeq, at, row);
  }

  function removeReplicasOf(project: string, service: string): void {
    for (const [id, replica] of replicas) {
      if (replica.project === project && replica.service === service) replicas.delete(id);
    }
  }

  function changeService(
    operation: string,
    project: string,
    name: string,
    event: EventInput | undefined,
    change: (row: ServiceRow) => { spec: string; release: string | undefined },
  ): void {
    ensureOpen(operation);
    const eventRow = event === undefined ? undefined : prepareEvent(event);
    const at = isoNow(now);
    const key = serviceKey(project, name);
    const row = services.get(key);
    if (row === undefined) throw serviceNotFound(project, name);
    const next = nextServiceRow(project, row, { name, ...change(row) }, at);
    if (next !== undefined) services.set(key, next);
    if (eventRow !== undefined) append(eventRow, at);
  }

  const store: Store = {
    kind: "memory",

    async getProject(name: string): Promise<ProjectRecord | undefined> {
      ensureOpen("getProject");
      const project = projects.get(name);
      return project === undefined ? undefined : { ...project };
    },

    async listProjects(): Promise<ProjectRecord[]> {
      ensureOpen("listProjects");
      return [...projects.values()].sort((a, b) => compareText(a.name, b.name)).map((p) => ({ ...p }));
    },

    async applyDesiredState(change): Promise<void> {
      ensureOpen("applyDesiredState");
      // Everything that can throw happens here, before the first mutation below.
      const prepared = prepareDesiredState(change);
      const at = isoNow(now);
      const project = prepared.project.name;
      const rows = prepared.upserts.map((upsert) => nextServiceRow(project, services.get(serviceKey(project, upsert.name)), upsert, at));

      projects.set(project, prepared.project);
      for (const row of rows) if (row !== undefined) services.set(serviceKey(project, row.name), row);
      for (const name of prepared.remove) {
        services.delete(serviceKey(project, name));
        removeReplicasOf(project, name);
      }
      for (const event of prepared.events) append(event, at);
    },

    async listServices(project: string): Promise<ServiceRecord[]> {
      ensureOpen("listServices");
      return [...services.values()]
        .filter((row) => row.project === project)
        .sort((a, b) => compareText(a.name, b.name))
        .map(serviceRecord);
    },

    async getService(project: string, name: string): Promise<ServiceRecord | undefined> {
      ensureOpen("getService");
      const row = services.get(serviceKey(project, name));
      return row === undefined ? undefined : serviceRecord(row);
    },

    async setServiceRelease(project, name, release, event): Promise<void> {
      changeService("setServiceRelease", project, name, event, (row) => ({ spec: row.spec, release }));
    },

    async setServiceReplicas(project, name, count, event): Promise<void> {
      ensureOpen("setServiceReplicas");
      const replicaCount = prepareReplicaCount(count);
      changeService("setServiceReplicas", project, name, event, (row) => ({
        spec: specWithReplicas(row.spec, replicaCount),
        release: undefined,
      }));
    },

    async putRelease(release: ReleaseRecord): Promise<void> {
      ensureOpen("putRelease");
      const row = prepareRelease(release);
      if (!releases.has(row.id)) releases.set(row.id, row);
    },

    async getRelease(id: string): Promise<ReleaseRecord | undefined> {
      ensureOpen("getRelease");
      const row = releases.get(id);
      return row === undefined ? undefined : releaseRecord(row);
    },

    async listReleases(project: string, service: string): Promise<ReleaseRecord[]> {
      ensureOpen("listReleases");
      // Reverse insertion order first; the stable sort then keeps later-stored first on ties.
      return [...releases.values()]
        .filter((row) => row.project === project && row.service === service)
        .reverse()
        .sort((a, b) => compareText(b.createdAt, a.createdAt))
        .map(releaseRecord);
    },

    async upsertReplica(replica: ReplicaRecord): Promise<void> {
      ensureOpen("upsertReplica");
      const row = prepareReplica(replica);
      if (!projects.has(row.project)) throw projectNotFound(row.project);
      replicas.set(row.id, row);
    },

    async deleteRelease(id: string): Promise<void> {
      ensureOpen("deleteRelease");
      releases.delete(id);
    },

    async deleteReplica(id: string): Promise<void> {
      ensureOpen("deleteReplica");
      replicas.delete(id);
    },

    async listReplicas(project: string, service?: string): Promise<ReplicaRecord[]> {
      ensureOpen("listReplicas");
      return [...replicas.values()]
        .filter((row) => row.project === project && (service === undefined || row.service === service))
        .sort((a, b) => compareText(a.service, b.service) || a.index - b.index || compareText(a.id, b.id))
        .map(replicaRecord);
    },

    async appendEvent(event: EventInput): Promise<KeelsonEvent> {
      ensureOpen("appendEvent");
      return append(prepareEvent(event), isoNow(now));
    },

    async listEvents(query?: EventQuery): Promise<KeelsonEvent[]> {
      ensureOpen("listEvents");
      const q = prepareEventQuery(query);
      const kinds = q.kinds === undefined ? undefined : new Set<string>(q.kinds);
      let matches = events.filter(
        ({ seq, row }) =>
          (q.project === undefined || row.project === q.project) &&
          (q.afterSeq === undefined || seq > q.afterSeq) &&
          (kinds === undefined || kinds.has(row.kind)) &&
          (q.subject === undefined || row.subject === q.subject) &&
          (q.subjectPrefix === undefined || row.subject.startsWith(q.subjectPrefix)),
      );
      if (q.descending) matches = matches.reverse();
      if (q.limit !== undefined) matches = matches.slice(0, q.limit);
      return matches.map(({ seq, at, row }) => eventRecord(seq, at, row));
    },

    async putDocuments(docs: DocumentRecord[]): Promise<void> {
      ensureOpen("putDocuments");
      for (const row of prepareDocuments(docs)) documents.set(documentKey(row.collection, row.project, row.id), row);
    },

    async listDocuments(query: DocumentQuery): Promise<DocumentRecord[]> {
      ensureOpen("listDocuments");
      const q = prepareDocumentQuery(query);
      const ids = q.ids === undefined ? undefined : new Set(q.ids);
      let rows = [...documents.values()].filter(
        (d) =>
          d.collection === q.collection &&
          d.project === q.project &&
          (q.tag === undefined || d.tag === q.tag) &&
          (q.since === undefined || d.at >= q.since) &&
          (q.until === undefined || d.at < q.until) &&
          (ids === undefined || ids.has(d.id)),
      );
      rows.sort((a, b) => compareText(a.at, b.at) || compareText(a.id, b.id));
      if (q.descending) rows = rows.reverse();
      if (q.limit !== undefined) rows = rows.slice(0, q.limit);
      return rows.map(documentRecord);
    },

    async deleteDocuments(collection: string, project: string, ids: string[]): Promise<number> {
      ensureOpen("deleteDocuments");
      const q = prepareDocumentQuery({ collection, project, ids });
      let removed = 0;
      for (const id of q.ids ?? []) if (documents.delete(documentKey(q.collection, q.project, id))) removed++;
      return removed;
    },

    async getSetting(key: string): Promise<string | undefined> {
      ensureOpen("getSetting");
      return settings.get(key);
    },

    async setSetting(key: string, value: string): Promise<void> {
      ensureOpen("setSetting");
      settings.set(key, value);
    },

    async checkIntegrity(): Promise<IntegrityReport> {
      return checkReferences(store, { name: "memory", problems: [], events: events.length });
    },

    async close(): Promise<void> {
      open = false;
    },
  };
  return store;
}

// Plain code-unit order, like SQLite's BINARY collation (they differ only beyond U+FFFF);
// localeCompare would order differently from the SQLite store.
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
