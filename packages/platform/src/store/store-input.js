// Validation and serialization shared by every Store implementation. Each write is
// prepared here in full before a store touches its data, so a bad value fails the whole
// call with nothing written, and every implementation agrees on what "changed" means.
import { KeelsonError } from "@keelson/protocol";
import { canonicalJson } from "./canonical-json.js";
function invalid(message, cause) {
    return new KeelsonError("KEELSON_ERR_INVALID_INPUT", message, cause === undefined ? {} : { cause });
}
export function projectNotFound(project) {
    return new KeelsonError("KEELSON_ERR_NOT_FOUND", `project "${project}" does not exist in the store`);
}
export function serviceNotFound(project, name) {
    return new KeelsonError("KEELSON_ERR_NOT_FOUND", `service "${name}" does not exist in project "${project}"`);
}
/** Canonical JSON of a plain object, or KEELSON_ERR_INVALID_INPUT naming the field. */
export function jsonObjectText(value, field) {
    let text;
    try {
        text = canonicalJson(value);
    }
    catch (err) {
        throw invalid(`${field}: cannot be stored as JSON: ${err instanceof Error ? err.message : String(err)}`, err);
    }
    if (!text.startsWith("{"))
        throw invalid(`${field}: expected a JSON object, got ${text.slice(0, 40)}`);
    return text;
}
export function parseJsonObject(text) {
    return JSON.parse(text);
}
// An explicit offset is required: a local time without one means a different instant on
// every machine that reads it.
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;
/**
 * Normalizes an ISO-8601 time to UTC with milliseconds (`toISOString`), the form every
 * implementation returns and the one whose text order is time order.
 */
export function isoTimestamp(value, field) {
    const ms = typeof value === "string" && ISO_8601.test(value) && isCalendarDate(value) ? Date.parse(value) : Number.NaN;
    if (Number.isNaN(ms)) {
        throw invalid(`${field}: expected an ISO-8601 time with an offset (e.g. 2025-01-31T12:00:00.000Z), got ${JSON.stringify(value)}`);
    }
    return new Date(ms).toISOString();
}
// Date.parse rolls 2025-02-30 over into March instead of refusing it.
function isCalendarDate(value) {
    const [year, month, day] = value.slice(0, 10).split("-").map(Number);
    return new Date(Date.UTC(year, month - 1, day)).getUTCDate() === day;
}
/** The store's own time for `now` (milliseconds since the epoch). */
export function isoNow(now) {
    return new Date(now()).toISOString();
}
function integer(value, field, min) {
    if (!Number.isSafeInteger(value) || value < min) {
        throw invalid(`${field}: expected an integer >= ${min}, got ${String(value)}`);
    }
    return value;
}
function optionalInteger(value, field, min) {
    return value === undefined ? undefined : integer(value, field, min);
}
export function prepareProject(project) {
    return {
        name: project.name,
        manifestPath: project.manifestPath,
        manifestHash: project.manifestHash,
        appliedAt: isoTimestamp(project.appliedAt, "project.appliedAt"),
    };
}
export function prepareEvent(event, field = "event") {
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
export function prepareDesiredState(change) {
    const project = prepareProject(change.project);
    const seen = new Set();
    const upserts = change.upsert.map((service, i) => {
        const field = `upsert[${i}]`;
        if (service.project !== project.name) {
            throw invalid(`${field}.project: service "${service.name}" is filed under "${service.project}" but the change is for project "${project.name}"`);
        }
        if (seen.has(service.name))
            throw invalid(`${field}.name: service "${service.name}" appears more than once in upsert`);
        seen.add(service.name);
        return { name: service.name, spec: jsonObjectText(service.spec, `${field}.spec`), release: service.release };
    });
    const remove = [...new Set(change.remove)];
    for (const name of remove) {
        if (seen.has(name))
            throw invalid(`remove: service "${name}" is both upserted and removed`);
    }
    const events = change.events.map((event, i) => prepareEvent(event, `events[${i}]`));
    return { project, upserts, remove, events };
}
/**
 * The row to write for an upsert, or undefined when nothing changed. The generation
 * moves only when the canonical spec text differs; an undefined release keeps the
 * stored one; updatedAt moves only when the spec or the release changed.
 */
export function nextServiceRow(project, existing, upsert, now) {
    if (existing === undefined) {
        return { project, name: upsert.name, spec: upsert.spec, generation: 1, release: upsert.release, updatedAt: now };
    }
    const specChanged = existing.spec !== upsert.spec;
    const release = upsert.release ?? existing.release;
    if (!specChanged && release === existing.release)
        return undefined;
    return {
        ...existing,
        spec: upsert.spec,
        generation: specChanged ? existing.generation + 1 : existing.generation,
        release,
        updatedAt: now,
    };
}
export function prepareReplicaCount(replicas) {
    return integer(replicas, "replicas", 0);
}
/** The stored spec text with `replicas` set. */
export function specWithReplicas(spec, replicas) {
    return canonicalJson({ ...parseJsonObject(spec), replicas });
}
export function prepareRelease(release) {
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
export function prepareReplica(replica) {
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
export function prepareEventQuery(query = {}) {
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
export function serviceRecord(row) {
    return {
        project: row.project,
        name: row.name,
        spec: parseJsonObject(row.spec),
        generation: row.generation,
        release: row.release,
        updatedAt: row.updatedAt,
    };
}
export function eventRecord(seq, at, row) {
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
export function releaseRecord(row) {
    return { ...row, details: parseJsonObject(row.details) };
}
export function replicaRecord(row) {
    return { ...row, details: parseJsonObject(row.details) };
}
