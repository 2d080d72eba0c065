// MemoryStore: the Store kept in memory, for unit tests and benchmarks. Product code with
// the same semantics as SQLite (it runs the same conformance suite), not an ad-hoc mock:
// data is held as serialized rows, so callers can never alias what it stores.
import { KeelsonError } from "@keelson/protocol";
import { eventRecord, isoNow, nextServiceRow, prepareDesiredState, prepareEvent, prepareEventQuery, prepareRelease, prepareReplica, prepareReplicaCount, projectNotFound, releaseRecord, replicaRecord, serviceNotFound, serviceRecord, specWithReplicas, } from "./store-input.js";
// A NUL cannot appear in a project name from a manifest, so it keeps the key unambiguous.
function serviceKey(project, name) {
    return `${project}\u0000${name}`;
}
/**
 * A Store held in memory; everything is gone on close.
 *
 * @example
 * const store = createMemoryStore({ now: () => clock.now() });
 */
export function createMemoryStore(options = {}) {
    const now = options.now ?? Date.now;
    let open = true;
    const projects = new Map();
    const services = new Map();
    // Map keeps insertion order, which breaks ties between releases of the same createdAt.
    const releases = new Map();
    const replicas = new Map();
    const events = [];
    const settings = new Map();
    let lastSeq = 0;
    function ensureOpen(operation) {
        if (!open)
            throw new KeelsonError("KEELSON_ERR_STORE", `memory store: ${operation}: the store is closed`);
    }
    function append(row, at) {
        lastSeq += 1;
        events.push({ seq: lastSeq, at, row });
        return eventRecord(lastSeq, at, row);
    }
    function removeReplicasOf(project, service) {
        for (const [id, replica] of replicas) {
            if (replica.project === project && replica.service === service)
                replicas.delete(id);
        }
    }
    function changeService(operation, project, name, event, change) {
        ensureOpen(operation);
        const eventRow = event === undefined ? undefined : prepareEvent(event);
        const at = isoNow(now);
        const key = serviceKey(project, name);
        const row = services.get(key);
        if (row === undefined)
            throw serviceNotFound(project, name);
        const next = nextServiceRow(project, row, { name, ...change(row) }, at);
        if (next !== undefined)
            services.set(key, next);
        if (eventRow !== undefined)
            append(eventRow, at);
    }
    return {
        kind: "memory",
        async getProject(name) {
            ensureOpen("getProject");
            const project = projects.get(name);
            return project === undefined ? undefined : { ...project };
        },
        async listProjects() {
            ensureOpen("listProjects");
            return [...projects.values()].sort((a, b) => compareText(a.name, b.name)).map((p) => ({ ...p }));
        },
        async applyDesiredState(change) {
            ensureOpen("applyDesiredState");
            // Everything that can throw happens here, before the first mutation below.
            const prepared = prepareDesiredState(change);
            const at = isoNow(now);
            const project = prepared.project.name;
            const rows = prepared.upserts.map((upsert) => nextServiceRow(project, services.get(serviceKey(project, upsert.name)), upsert, at));
            projects.set(project, prepared.project);
            for (const row of rows)
                if (row !== undefined)
                    services.set(serviceKey(project, row.name), row);
            for (const name of prepared.remove) {
                services.delete(serviceKey(project, name));
                removeReplicasOf(project, name);
            }
            for (const event of prepared.events)
                append(event, at);
        },
        async listServices(project) {
            ensureOpen("listServices");
            return [...services.values()]
                .filter((row) => row.project === project)
                .sort((a, b) => compareText(a.name, b.name))
                .map(serviceRecord);
        },
        async getService(project, name) {
            ensureOpen("getService");
            const row = services.get(serviceKey(project, name));
            return row === undefined ? undefined : serviceRecord(row);
        },
        async setServiceRelease(project, name, release, event) {
            changeService("setServiceRelease", project, name, event, (row) => ({ spec: row.spec, release }));
        },
        async setServiceReplicas(project, name, count, event) {
            ensureOpen("setServiceReplicas");
            const replicaCount = prepareReplicaCount(count);
            changeService("setServiceReplicas", project, name, event, (row) => ({
                spec: specWithReplicas(row.spec, replicaCount),
                release: undefined,
            }));
        },
        async putRelease(release) {
            ensureOpen("putRelease");
            const row = prepareRelease(release);
            if (!releases.has(row.id))
                releases.set(row.id, row);
        },
        async getRelease(id) {
            ensureOpen("getRelease");
            const row = releases.get(id);
            return row === undefined ? undefined : releaseRecord(row);
        },
        async listReleases(project, service) {
            ensureOpen("listReleases");
            // Reverse insertion order first; the stable sort then keeps later-stored first on ties.
            return [...releases.values()]
                .filter((row) => row.project === project && row.service === service)
                .reverse()
                .sort((a, b) => compareText(b.createdAt, a.createdAt))
                .map(releaseRecord);
        },
        async upsertReplica(replica) {
            ensureOpen("upsertReplica");
            const row = prepareReplica(replica);
            if (!projects.has(row.project))
                throw projectNotFound(row.project);
            replicas.set(row.id, row);
        },
        async deleteReplica(id) {
            ensureOpen("deleteReplica");
            replicas.delete(id);
        },
        async listReplicas(project, service) {
            ensureOpen("listReplicas");
            return [...replicas.values()]
                .filter((row) => row.project === project && (service === undefined || row.service === service))
                .sort((a, b) => compareText(a.service, b.service) || a.index - b.index || compareText(a.id, b.id))
                .map(replicaRecord);
        },
        async appendEvent(event) {
            ensureOpen("appendEvent");
            return append(prepareEvent(event), isoNow(now));
        },
        async listEvents(query) {
            ensureOpen("listEvents");
            const q = prepareEventQuery(query);
            const kinds = q.kinds === undefined ? undefined : new Set(q.kinds);
            let matches = events.filter(({ seq, row }) => (q.project === undefined || row.project === q.project) &&
                (q.afterSeq === undefined || seq > q.afterSeq) &&
                (kinds === undefined || kinds.has(row.kind)) &&
                (q.subject === undefined || row.subject === q.subject) &&
                (q.subjectPrefix === undefined || row.subject.startsWith(q.subjectPrefix)));
            if (q.descending)
                matches = matches.reverse();
            if (q.limit !== undefined)
                matches = matches.slice(0, q.limit);
            return matches.map(({ seq, at, row }) => eventRecord(seq, at, row));
        },
        async getSetting(key) {
            ensureOpen("getSetting");
            return settings.get(key);
        },
        async setSetting(key, value) {
            ensureOpen("setSetting");
            settings.set(key, value);
        },
        async close() {
            open = false;
        },
    };
}
// Plain code-unit order, like SQLite's BINARY collation (they differ only beyond U+FFFF);
// localeCompare would order differently from the SQLite store.
function compareText(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
}
