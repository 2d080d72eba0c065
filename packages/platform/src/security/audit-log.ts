// The audit log: who did what to which target, as "audit" events chained by hash so an
// edited, removed or reordered record is found by verify(), even with the database in hand.
import { createHash } from "node:crypto";
import { KeelsonError } from "@keelson/protocol";
import type { KeelsonEvent } from "@keelson/protocol";
import { canonicalJson } from "../store/index.js";
import type { Store } from "../store/index.js";

/** What one audited request did. */
export interface AuditEntry {
  /** Who: "user:<token name>", "service:<name>", "gateway", "cli". */
  actor: string;
  /** What, e.g. "deploy", "token.create", "secret.set". */
  action: string;
  /** On what, e.g. "service/orders"; stored as the event's subject. */
  target: string;
  /** Where the request came from (remote address). */
  from: string;
  result: "ok" | "denied" | "error";
  /** The HTTP status answered. */
  status?: number;
  /** State before and after the change; callers pass redacted values, they are stored as given. */
  before?: unknown;
  after?: unknown;
  error?: string;
}

/** An entry as stored, with its place in the chain. */
export interface AuditRecord extends AuditEntry {
  seq: number;
  at: string;
  /** The hash of the record before it (64 zeros for the first). */
  prev: string;
  hash: string;
}

export interface AuditVerification {
  ok: boolean;
  /** How many records were checked (up to and including the first bad one). */
  checked: number;
  firstBad?: { seq: number; reason: string };
}

export interface AuditFilter {
  actor?: string;
  target?: string;
  action?: string;
  /** ISO-8601 time; only records at or after it. */
  since?: string;
  /** At most this many (1-1000, default 100). */
  limit?: number;
}

export interface AuditLog {
  /** Appends a record; concurrent calls are chained one after another. */
  record(entry: AuditEntry): Promise<AuditRecord>;
  /** Re-checks every record of the project, oldest first. */
  verify(): Promise<AuditVerification>;
  /** Records matching `filter`, newest first. */
  list(filter?: AuditFilter): Promise<AuditRecord[]>;
}

export interface AuditLogOptions {
  store: Store;
  project: string;
  now?: () => Date;
}

/** The `prev` of a project's first audit record. */
export const GENESIS_HASH = "0".repeat(64);

const PAGE = 1000;
const RESULTS = new Set(["ok", "denied", "error"]);

/**
 * The hash of an audit event: SHA-256 hex of `prev + "\n"` and the canonical JSON of its
 * kind, actor, subject and details (without the hash itself).
 */
export function auditHash(prev: string, event: { kind: string; actor: string; subject: string; details: Record<string, unknown> }): string {
  const { hash: _hash, ...details } = event.details;
  const body = canonicalJson({ kind: event.kind, actor: event.actor, subject: event.subject, details });
  return createHash("sha256").update(`${prev}\n${body}`, "utf8").digest("hex");
}

function invalid(message: string): KeelsonError {
  return new KeelsonError("KEELSON_ERR_INVALID_INPUT", message);
}

function checkEntry(entry: AuditEntry): void {
  for (const field of ["actor", "action", "target", "from"] as const) {
    if (typeof entry[field] !== "string" || entry[field].length === 0) throw invalid(`audit entry ${field}: expected a non-empty string`);
  }
  if (!RESULTS.has(entry.result)) throw invalid(`audit entry result: expected ok, denied or error, got ${JSON.stringify(entry.result)}`);
  if (entry.status !== undefined && !Number.isInteger(entry.status)) throw invalid(`audit entry status: expected an HTTP status, got ${String(entry.status)}`);
}

function toRecord(event: KeelsonEvent): AuditRecord {
  const d = event.details;
  const record: AuditRecord = {
    seq: event.seq,
    at: typeof d["at"] === "string" ? d["at"] : event.at,
    actor: event.actor,
    action: String(d["action"]),
    target: event.subject,
    from: String(d["from"]),
    result: d["result"] as AuditRecord["result"],
    prev: String(d["prev"]),
    hash: String(d["hash"]),
  };
  if (typeof d["status"] === "number") record.status = d["status"];
  if ("before" in d) record.before = d["before"];
  if ("after" in d) record.after = d["after"];
  if (typeof d["error"] === "string") record.error = d["error"];
  return record;
}

/**
 * The audit log of one project. Only one process (the control plane) may write a project's
 * audit log: appends are chained in memory, and a second writer would fork the chain.
 *
 * @example
 * const audit = createAuditLog({ store, project: "shop" });
 * await audit.record({ actor: "user:ci-web", action: "deploy", target: "service/web", from: "10.0.0.7", result: "ok", status: 202 });
 * (await audit.verify()).ok // true
 */
export function createAuditLog(options: AuditLogOptions): AuditLog {
  const { store, project } = options;
  const now = options.now ?? (() => new Date());
  let lastHash: string | undefined;
  let chain: Promise<unknown> = Promise.resolve();

  async function loadLastHash(): Promise<string> {
    const [last] = await store.listEvents({ project, kinds: ["audit"], descending: true, limit: 1 });
    const hash = last?.details["hash"];
    return typeof hash === "string" ? hash : GENESIS_HASH;
  }

  async function append(entry: AuditEntry): Promise<AuditRecord> {
    try {
      const prev = lastHash ?? (await loadLastHash());
      const { actor, target, ...rest } = entry;
      const details: Record<string, unknown> = { ...rest, actor, target, at: now().toISOString(), prev };
      // Hash what the store will hold: its canonical JSON drops undefined fields.
      const stored = JSON.parse(canonicalJson(details)) as Record<string, unknown>;
      const hash = auditHash(prev, { kind: "audit", actor, subject: target, details: stored });
      const event = await store.appendEvent({ project, kind: "audit", actor, subject: target, details: { ...stored, hash } });
      lastHash = hash;
      return toRecord(event);
    } catch (err) {
      // Whether the append landed is unknown: read the chain's end again next time.
      lastHash = undefined;
      throw err;
    }
  }

  return {
    async record(entry) {
      checkEntry(entry);
      const run = chain.then(
        () => append(entry),
        () => append(entry),
      );
      chain = run.catch(() => undefined);
      return run;
    },

    async verify() {
      let prev = GENESIS_HASH;
      let checked = 0;
      let afterSeq = 0;
      for (;;) {
        const page = await store.listEvents({ project, kinds: ["audit"], afterSeq, limit: PAGE });
        for (const event of page) {
          checked += 1;
          const bad = (reason: string): AuditVerification => ({ ok: false, checked, firstBad: { seq: event.seq, reason } });
          if (typeof event.details["hash"] !== "string" || auditHash(String(event.details["prev"]), event) !== event.details["hash"]) {
            return bad("its content does not match its hash (edited)");
          }
          if (event.details["prev"] !== prev) {
            return bad("its prev does not match the record before it (a record was removed or reordered)");
          }
          prev = event.details["hash"];
          afterSeq = event.seq;
        }
        if (page.length < PAGE) return { ok: true, checked };
      }
    },

    async list(filter = {}) {
      const limit = filter.limit ?? 100;
      if (!Number.isInteger(limit) || limit < 1 || limit > PAGE) throw invalid(`limit: expected a whole number from 1 to ${PAGE}, got ${String(limit)}`);
      const since = filter.since === undefined ? undefined : Date.parse(filter.since);
      if (since !== undefined && Number.isNaN(since)) throw invalid(`since: expected an ISO-8601 time, got ${JSON.stringify(filter.since)}`);
      const matches = (r: AuditRecord): boolean =>
        (filter.actor === undefined || r.actor === filter.actor) && (filter.action === undefined || r.action === filter.action);
      // The store pages only forward, so read the newest N and widen N until enough match.
      let window = Math.max(limit * 2, 200);
      for (;;) {
        const events = await store.listEvents({ project, kinds: ["audit"], subject: filter.target, descending: true, limit: window });
        const found: AuditRecord[] = [];
        let reachedSince = false;
        for (const event of events) {
          const record = toRecord(event);
          if (since !== undefined && Date.parse(record.at) < since) {
            reachedSince = true;
            break;
          }
          if (!matches(record)) continue;
          found.push(record);
          if (found.length === limit) break;
        }
        if (found.length === limit || reachedSince || events.length < window) return found;
        window *= 4;
      }
    },
  };
}
