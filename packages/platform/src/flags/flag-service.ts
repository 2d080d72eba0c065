// The flag service: the project's flag set kept in the store as one versioned document, changed
// through validated operations (put, remove, kill, rollback, import) that each record an event
// with who, the definition before and after and the diff, so the history is the audit trail.
// Subscribers (the SSE stream, the gateway) hear every new revision at once.
import { createHash } from "node:crypto";
import {
  checkFlagSet,
  compileFlagSet,
  FLAG_KEY_PATTERN,
  KeelsonError,
  type CompiledFlagSet,
  type EventKind,
  type FlagDefinition,
  type FlagSet,
  type KeelsonEvent,
} from "@keelson/protocol";
import { canonicalJson, type Store } from "../store/index.js";

/** The flag set at one revision, compiled for evaluation. */
export interface FlagSnapshot {
  /** Increases with every change; clients compare it (and the ETag) to skip unchanged sets. */
  revision: number;
  set: FlagSet;
  compiled: CompiledFlagSet;
  /** A strong validator of the set: sha256 of its canonical JSON, first 16 hex digits. */
  etag: string;
  updatedAt: string | undefined;
}

/** One change of one flag, from the event log. */
export interface FlagChange {
  seq: number;
  at: string;
  actor: string;
  kind: EventKind;
  revision: number;
  before: FlagDefinition | null;
  after: FlagDefinition | null;
  diff: FlagDiff[];
  /** What made the change when not a direct edit: "manifest" (`keelson up`) or "import" (a whole set). */
  source?: string;
  /** The change a rollback went back to. */
  rollbackTo?: number;
  /** The scheduled change that made it. */
  scheduled?: string;
}

export interface FlagDiff {
  /** Dotted path inside the definition, e.g. "targeting.if.0" or "variants.on". */
  path: string;
  before?: unknown;
  after?: unknown;
}

/** Options of one change. */
export interface FlagChangeOptions {
  /** Recorded in the details of each event of the change (e.g. `{ scheduled: "sch-3" }`). */
  details?: Record<string, unknown>;
  /**
   * The flag's tag (flagTag) as the caller last read it: the change is refused with
   * KEELSON_ERR_CONFLICT when the flag is not that definition any more (someone changed it in
   * between), instead of overwriting their change. `put` only.
   */
  ifMatch?: string;
}

/** A flag definition's tag, quoted as an HTTP entity tag: equal tags, equal definitions. */
export function flagTag(definition: FlagDefinition | null | undefined): string {
  return `"${createHash("sha256").update(canonicalJson(definition ?? null)).digest("hex").slice(0, 16)}"`;
}

export interface FlagService {
  snapshot(): Promise<FlagSnapshot>;
  /** Creates or replaces one flag; the whole set must stay valid. */
  put(key: string, definition: unknown, actor: string, options?: FlagChangeOptions): Promise<FlagSnapshot>;
  remove(key: string, actor: string, options?: FlagChangeOptions): Promise<FlagSnapshot>;
  /** Turns a flag to its safe variant everywhere: no targeting, `safeVariant` (or the default) for all. */
  kill(key: string, actor: string, options?: FlagChangeOptions): Promise<FlagSnapshot>;
  /** The flag's changes, newest first. */
  history(key: string, limit?: number): Promise<FlagChange[]>;
  /** Puts back the definition the flag had right after change `seq` (null: it did not exist, so it is removed). */
  rollback(key: string, seq: number, actor: string): Promise<FlagSnapshot>;
  /** Replaces the whole set (a flagd file import, or the manifest's desired flags). */
  replace(set: unknown, actor: string, options?: { source?: string } & FlagChangeOptions): Promise<FlagSnapshot>;
  /**
   * Replaces the set with what `change` makes of the current one, with no other change in
   * between (a read-modify-write such as applying the manifest's flags). One revision; none
   * when nothing differs. `source` is recorded in each event's details.
   */
  update(change: (current: FlagSet) => unknown, actor: string, options?: { source?: string } & FlagChangeOptions): Promise<FlagSnapshot>;
  /** Called with every new snapshot; returns the unsubscribe function. */
  subscribe(listener: (s: FlagSnapshot) => void): () => void;
}

/** The event kinds of changes to a flag's definition. */
export const FLAG_CHANGE_KINDS: readonly EventKind[] = Object.freeze(["flag.created", "flag.changed", "flag.deleted", "flag.killed"]);
const FLAG_KINDS = [...FLAG_CHANGE_KINDS];

/** Whether two JSON values are the same data (key order aside); undefined equals only undefined. */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === undefined || b === undefined) return a === b;
  return canonicalJson(a) === canonicalJson(b);
}

/** Paths where two JSON values differ (objects compared key by key, anything else as a whole). */
export function diffFlag(before: unknown, after: unknown, path = ""): FlagDiff[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
  if (isObj(before) && isObj(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => diffFlag(before[k], after[k], path ? `${path}.${k}` : k));
  }
  if (sameJson(before, after)) return [];
  return [{ path: path || "(whole)", ...(before !== undefined ? { before } : {}), ...(after !== undefined ? { after } : {}) }];
}

/** Names the API uses under /v1/flags/ for other things. */
const RESERVED_KEYS: ReadonlySet<string> = new Set(["export", "stream", "usage", "stale", "schedule"]);

function checkKey(key: string): void {
  if (RESERVED_KEYS.has(key)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `flag key "${key}" is reserved (the API uses /v1/flags/${key}); choose another name`);
  if (!FLAG_KEY_PATTERN.test(key)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `flag key ${JSON.stringify(key)}: expected letters, digits, "_", "." and "-", starting with a letter or digit, at most 128 characters`);
}

function invalid(issues: Array<{ path: Array<string | number>; message: string }>): KeelsonError {
  const lines = issues.map((i) => `${i.path.join(".") || "(set)"}: ${i.message}`);
  return new KeelsonError("KEELSON_ERR_INVALID_INPUT", `invalid flag set:\n  ${lines.join("\n  ")}`, { details: { issues } });
}

/**
 * The flag service of one project, over the store's settings and event log.
 *
 * @example
 * const flags = createFlagService({ store, project: "shop" });
 * await flags.put("new-checkout", { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off" }, "ana");
 * (await flags.snapshot()).compiled.evaluate("new-checkout", { targetingKey: "u-1" }).value; // false
 */
export function createFlagService(options: { store: Store; project: string; now?: () => Date }): FlagService {
  const { store, project } = options;
  const now = options.now ?? (() => new Date());
  const settingKey = `flags.${project}`;
  const listeners = new Set<(s: FlagSnapshot) => void>();
  let current: FlagSnapshot | undefined;
  // Changes are applied one at a time so each sees the revision before it.
  let queue: Promise<unknown> = Promise.resolve();

  function build(set: FlagSet, revision: number, updatedAt: string | undefined): FlagSnapshot {
    // Every set stored went through validate() first.
    return { revision, set, compiled: compileFlagSet(set, { checked: true }), etag: createHash("sha256").update(`${revision}\n${canonicalJson(set)}`).digest("hex").slice(0, 16), updatedAt };
  }

  async function snapshot(): Promise<FlagSnapshot> {
    if (current) return current;
    const text = await store.getSetting(settingKey);
    if (text === undefined) {
      current = build({ flags: {} }, 0, undefined);
      return current;
    }
    const stored = JSON.parse(text) as { revision: number; set: FlagSet; updatedAt?: string };
    current = build(stored.set, stored.revision, stored.updatedAt);
    return current;
  }

  function validate(set: unknown): FlagSet {
    const checked = checkFlagSet(set);
    if (!checked.ok) throw invalid(checked.issues);
    const reserved = Object.keys(checked.set.flags).filter((k) => RESERVED_KEYS.has(k));
    if (reserved.length > 0) throw invalid(reserved.map((k) => ({ path: ["flags", k], message: `"${k}" is reserved (the API uses /v1/flags/${k}); choose another name` })));
    return checked.set;
  }

  async function commit(next: FlagSet, changes: Array<{ key: string; kind: EventKind; before: FlagDefinition | null; after: FlagDefinition | null }>, actor: string, extra: Record<string, unknown> = {}): Promise<FlagSnapshot> {
    const prev = await snapshot();
    const revision = prev.revision + 1;
    const updatedAt = now().toISOString();
    const snap = build(next, revision, updatedAt);
    await store.setSetting(settingKey, JSON.stringify({ revision, set: next, updatedAt }));
    current = snap;
    for (const c of changes) {
      await store.appendEvent({ project, kind: c.kind, actor, subject: `flag/${c.key}`, details: { flag: c.key, revision, before: c.before, after: c.after, diff: diffFlag(c.before, c.after), ...extra } });
    }
    for (const l of listeners) {
      try {
        l(snap);
      } catch {
        // A listener's failure is its own; the change stands.
      }
    }
    return snap;
  }

  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  }

  async function requireFlag(key: string): Promise<{ snap: FlagSnapshot; flag: FlagDefinition }> {
    const snap = await snapshot();
    const flag = snap.set.flags[key];
    if (!flag) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `flag "${key}" does not exist; \`keelson flags list\` shows the flags`);
    return { snap, flag };
  }

  function replaceWith(change: (current: FlagSet) => unknown, actor: string, opts: { source?: string } & FlagChangeOptions): Promise<FlagSnapshot> {
    return serial(async () => {
      const snap = await snapshot();
      const next = validate(change(snap.set));
      const keys = [...new Set([...Object.keys(snap.set.flags), ...Object.keys(next.flags)])].sort();
      const changes = keys.flatMap((key) => {
        const before = snap.set.flags[key] ?? null;
        const after = next.flags[key] ?? null;
        if (sameJson(before, after)) return [];
        return [{ key, kind: (after === null ? "flag.deleted" : before === null ? "flag.created" : "flag.changed") as EventKind, before, after }];
      });
      if (changes.length === 0 && sameJson(snap.set.$evaluators ?? null, next.$evaluators ?? null)) return snap;
      return commit(next, changes, actor, { ...opts.details, ...(opts.source ? { source: opts.source } : {}) });
    });
  }

  return {
    snapshot,
    put: (key, definition, actor, opts = {}) =>
      serial(async () => {
        checkKey(key);
        const snap = await snapshot();
        const before = snap.set.flags[key] ?? null;
        if (opts.ifMatch !== undefined && opts.ifMatch !== flagTag(before)) {
          throw new KeelsonError("KEELSON_ERR_CONFLICT", `flag "${key}" changed since it was read (${before ? "another change came first" : "it was deleted"}); read it again and redo the change`, {
            details: { key, ifMatch: opts.ifMatch, current: flagTag(before) },
          });
        }
        const next = validate({ ...snap.set, flags: { ...snap.set.flags, [key]: definition } });
        const after = next.flags[key] as FlagDefinition;
        if (before && sameJson(before, after)) return snap;
        return commit(next, [{ key, kind: before ? "flag.changed" : "flag.created", before, after }], actor, opts.details);
      }),
    remove: (key, actor, opts = {}) =>
      serial(async () => {
        const { snap, flag } = await requireFlag(key);
        const flags = { ...snap.set.flags };
        delete flags[key];
        const next = validate({ ...snap.set, flags });
        return commit(next, [{ key, kind: "flag.deleted", before: flag, after: null }], actor, opts.details);
      }),
    kill: (key, actor, opts = {}) =>
      serial(async () => {
        const { snap, flag } = await requireFlag(key);
        const safe = flag.safeVariant ?? flag.defaultVariant;
        const killed: FlagDefinition = { ...flag, state: "ENABLED", defaultVariant: safe, metadata: { ...(flag.metadata ?? {}), killedAt: now().toISOString(), killedBy: actor } };
        delete killed.targeting;
        const next = validate({ ...snap.set, flags: { ...snap.set.flags, [key]: killed } });
        return commit(next, [{ key, kind: "flag.killed", before: flag, after: next.flags[key] as FlagDefinition }], actor, { ...opts.details, safeVariant: safe });
      }),
    async history(key, limit = 50) {
      const events = await store.listEvents({ project, subject: `flag/${key}`, kinds: FLAG_KINDS, descending: true, limit });
      return events.map((e: KeelsonEvent) => ({
        seq: e.seq,
        at: e.at,
        actor: e.actor,
        kind: e.kind,
        revision: Number(e.details.revision),
        before: (e.details.before ?? null) as FlagDefinition | null,
        after: (e.details.after ?? null) as FlagDefinition | null,
        diff: (e.details.diff ?? []) as FlagDiff[],
        ...(typeof e.details.source === "string" ? { source: e.details.source } : {}),
        ...(typeof e.details.rollbackTo === "number" ? { rollbackTo: e.details.rollbackTo } : {}),
        ...(typeof e.details.scheduled === "string" ? { scheduled: e.details.scheduled } : {}),
      }));
    },
    rollback: (key, seq, actor) =>
      serial(async () => {
        const [event] = await store.listEvents({ project, subject: `flag/${key}`, kinds: FLAG_KINDS, afterSeq: seq - 1, limit: 1 });
        if (!event || event.seq !== seq) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `flag "${key}" has no change ${seq}; \`keelson flags history ${key}\` lists them`);
        const target = (event.details.after ?? null) as FlagDefinition | null;
        const snap = await snapshot();
        const before = snap.set.flags[key] ?? null;
        const flags = { ...snap.set.flags };
        if (target === null) delete flags[key];
        else flags[key] = target;
        const next = validate({ ...snap.set, flags });
        return commit(next, [{ key, kind: target === null ? "flag.deleted" : before ? "flag.changed" : "flag.created", before, after: target }], actor, { rollbackTo: seq });
      }),
    replace: (set, actor, opts = {}) => replaceWith(() => set, actor, opts),
    update: (change, actor, opts = {}) => replaceWith(change, actor, opts),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
