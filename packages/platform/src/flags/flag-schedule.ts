// Scheduled flag changes: a definition, a kill, an enable or a disable to happen at a given time,
// kept in the store setting `flags-scheduled.<project>` with who asked for it, and applied when
// due through the flag service's normal validated path (actor `schedule:<who>`), so each applied
// change is an ordinary, audited flag event. A change that no longer validates when due is
// recorded as failed and dropped, never half-applied.
import { checkFlagSet, FLAG_KEY_PATTERN, KeelsonError, type FlagDefinition } from "@keelson/protocol";
import { z } from "zod";
import type { Store } from "../store/index.js";
import type { FlagService } from "./flag-service.js";

export const SCHEDULE_ACTIONS = ["set", "kill", "enable", "disable"] as const;
/** `set` puts `definition`; `kill` is the kill switch; `enable`/`disable` change only `state`. */
export type ScheduledAction = (typeof SCHEDULE_ACTIONS)[number];

export interface ScheduledChange {
  /** `sch-<n>`, unique within the project. */
  id: string;
  flag: string;
  /** When it is due (ISO, UTC). */
  at: string;
  action: ScheduledAction;
  /** The definition to put (action `set` only), as checked when scheduled. */
  definition?: FlagDefinition;
  /** Who scheduled it. */
  by: string;
  createdAt: string;
}

/** The body of POST /v1/flags/schedule. */
export const ScheduleRequestSchema = z.strictObject({
  flag: z.string({ error: "expected a flag key" }),
  at: z.string({ error: "expected an ISO time with a zone, e.g. 2026-12-01T09:00:00Z" }),
  action: z.enum(SCHEDULE_ACTIONS, { error: `expected one of ${SCHEDULE_ACTIONS.join(", ")}` }),
  definition: z.unknown().optional(),
});
export type ScheduleRequest = z.infer<typeof ScheduleRequestSchema>;

/** What one pass over the due changes did. */
export interface ScheduleRun {
  applied: ScheduledChange[];
  failed: Array<{ change: ScheduledChange; error: { code: string; message: string } }>;
}

export interface FlagSchedule {
  /** Pending changes, soonest first. */
  list(): Promise<ScheduledChange[]>;
  /** Checks and stores a change for later; throws KEELSON_ERR_INVALID_INPUT when it would not apply now. */
  add(request: ScheduleRequest, actor: string): Promise<ScheduledChange>;
  cancel(id: string, actor: string): Promise<ScheduledChange>;
  /** Applies every change due by now, in time order. */
  applyDue(): Promise<ScheduleRun>;
  /** Applies what is overdue, then checks every `intervalMs`; resolves after the first pass. */
  start(): Promise<void>;
  /** Stops the timer and waits for a pass under way. */
  close(): Promise<void>;
}

export interface FlagScheduleOptions {
  store: Store;
  project: string;
  flags: FlagService;
  now?: () => Date;
  /** How often due changes are looked for (default 1 s). */
  intervalMs?: number;
  /** Pending changes per project (default 1,000). */
  maxPending?: number;
  /** Called when a pass fails for a reason other than the change itself (the store is away…). */
  onError?: (err: unknown) => void;
}

interface Stored {
  nextId: number;
  changes: ScheduledChange[];
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

function invalid(message: string, details?: Record<string, unknown>): KeelsonError {
  return new KeelsonError("KEELSON_ERR_INVALID_INPUT", message, details ? { details } : undefined);
}

/** Whether an error means the change itself cannot apply (rather than that the store is away). */
function isRefusal(err: unknown): err is KeelsonError {
  return err instanceof KeelsonError && (err.code === "KEELSON_ERR_INVALID_INPUT" || err.code === "KEELSON_ERR_NOT_FOUND");
}

const byDue = (a: ScheduledChange, b: ScheduledChange) => Date.parse(a.at) - Date.parse(b.at) || Number(a.id.slice(4)) - Number(b.id.slice(4));

/**
 * The scheduled flag changes of one project.
 *
 * @example
 * const schedule = createFlagSchedule({ store, project: "shop", flags });
 * await schedule.add({ flag: "black-friday", at: "2026-11-27T00:00:00Z", action: "enable" }, "ana");
 * await schedule.start(); // applies what is overdue, then checks every second
 */
export function createFlagSchedule(options: FlagScheduleOptions): FlagSchedule {
  const { store, project, flags } = options;
  const now = options.now ?? (() => new Date());
  const intervalMs = options.intervalMs ?? 1_000;
  const maxPending = options.maxPending ?? 1_000;
  const settingKey = `flags-scheduled.${project}`;
  let state: Promise<Stored> | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let pass: Promise<unknown> | undefined;
  let closed = false;
  let lastReport = Number.NEGATIVE_INFINITY;

  function load(): Promise<Stored> {
    state ??= store.getSetting(settingKey).then((text) => (text ? (JSON.parse(text) as Stored) : { nextId: 1, changes: [] }));
    state.catch(() => (state = undefined));
    return state;
  }

  async function save(next: Stored): Promise<void> {
    await store.setSetting(settingKey, JSON.stringify(next));
    state = Promise.resolve(next);
  }

  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  }

  async function event(kind: "flag.scheduled" | "flag.schedule-cancelled" | "flag.schedule-failed", actor: string, change: ScheduledChange, extra: Record<string, unknown> = {}): Promise<void> {
    const { id, flag, at, action, definition, by } = change;
    await store.appendEvent({ project, kind, actor, subject: `flag/${flag}`, details: { flag, id, at, action, by, ...(definition ? { definition } : {}), ...extra } });
  }

  async function apply(change: ScheduledChange): Promise<void> {
    const actor = `schedule:${change.by}`;
    const opts = { details: { scheduled: change.id } };
    switch (change.action) {
      case "set":
        await flags.put(change.flag, change.definition, actor, opts);
        return;
      case "kill":
        await flags.kill(change.flag, actor, opts);
        return;
      case "enable":
      case "disable": {
        const state = change.action === "enable" ? "ENABLED" : "DISABLED";
        await flags.update(
          (set) => {
            const def = set.flags[change.flag];
            if (!def) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `flag "${change.flag}" does not exist any more`);
            return { ...set, flags: { ...set.flags, [change.flag]: { ...def, state } } };
          },
          actor,
          opts,
        );
        return;
      }
    }
  }

  async function checkNow(request: ScheduleRequest, at: number, stored: Stored): Promise<FlagDefinition | undefined> {
    const { flag, action } = request;
    const { set } = await flags.snapshot();
    if (action === "set") {
      if (request.definition === undefined) throw invalid(`definition: action "set" needs the flag's definition`);
      const checked = checkFlagSet({ ...set, flags: { ...set.flags, [flag]: request.definition } });
      if (!checked.ok) {
        const lines = checked.issues.map((i) => `${i.path.join(".") || "(set)"}: ${i.message}`);
        throw invalid(`the scheduled definition does not validate against the current flags:\n  ${lines.join("\n  ")}`, { issues: checked.issues });
      }
      return checked.set.flags[flag];
    }
    if (request.definition !== undefined) throw invalid(`definition: only action "set" takes a definition, not "${action}"`);
    // A flag may also be created by an earlier scheduled change.
    const created = stored.changes.some((c) => c.flag === flag && c.action === "set" && Date.parse(c.at) <= at);
    if (!set.flags[flag] && !created) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `flag "${flag}" does not exist; \`keelson flags list\` shows the flags`);
    return undefined;
  }

  async function runDue(): Promise<ScheduleRun> {
    const run: ScheduleRun = { applied: [], failed: [] };
    const stored = await load();
    const t = now().getTime();
    const due = stored.changes.filter((c) => Date.parse(c.at) <= t).sort(byDue);
    for (const change of due) {
      try {
        await apply(change);
        run.applied.push(change);
      } catch (err) {
        // Anything else (the store is away) leaves the change for the next pass.
        if (!isRefusal(err)) throw err;
        const error = { code: err.code, message: err.message };
        await event("flag.schedule-failed", `schedule:${change.by}`, change, { error });
        run.failed.push({ change, error });
      }
      // Applied (or failed) changes leave one by one: a crash in between applies one again at
      // most, and setting a definition or a state twice changes nothing.
      const current = await load();
      await save({ ...current, changes: current.changes.filter((c) => c.id !== change.id) });
    }
    return run;
  }

  function applyDue(): Promise<ScheduleRun> {
    return serial(runDue);
  }

  function tick(): void {
    if (pass || closed) return;
    // Nothing is due most of the time: checked against memory, without the queue.
    pass = (async () => {
      const stored = await load();
      const t = now().getTime();
      if (stored.changes.some((c) => Date.parse(c.at) <= t)) await applyDue();
    })()
      .catch((err: unknown) => {
        // Retried every pass, reported at most once a minute.
        if (Date.now() - lastReport < 60_000) return;
        lastReport = Date.now();
        options.onError?.(err);
      })
      .finally(() => {
        pass = undefined;
      });
  }

  return {
    async list() {
      return [...(await load()).changes].sort(byDue);
    },

    add(request, actor) {
      return serial(async () => {
        const { flag, action } = request;
        if (!FLAG_KEY_PATTERN.test(flag)) throw invalid(`flag: ${JSON.stringify(flag)} is not a flag key (letters, digits, "_", "." and "-", at most 128 characters)`);
        if (!ISO_TIME.test(request.at) || Number.isNaN(Date.parse(request.at))) throw invalid(`at: expected an ISO time with a zone, e.g. 2026-12-01T09:00:00Z, got ${JSON.stringify(request.at)}`);
        const at = Date.parse(request.at);
        const current = now();
        if (at <= current.getTime()) throw invalid(`at: ${request.at} is not in the future (it is ${current.toISOString()}); change the flag now instead`);
        const stored = await load();
        if (stored.changes.length >= maxPending) throw new KeelsonError("KEELSON_ERR_CONFLICT", `${maxPending} changes are already scheduled; cancel some first (\`keelson flags schedule --list\`)`);
        const definition = await checkNow(request, at, stored);
        const change: ScheduledChange = { id: `sch-${stored.nextId}`, flag, at: new Date(at).toISOString(), action, ...(definition ? { definition } : {}), by: actor, createdAt: current.toISOString() };
        await save({ nextId: stored.nextId + 1, changes: [...stored.changes, change] });
        await event("flag.scheduled", actor, change);
        return change;
      });
    },

    cancel(id, actor) {
      return serial(async () => {
        const stored = await load();
        const change = stored.changes.find((c) => c.id === id);
        if (!change) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no scheduled change "${id}"; \`keelson flags schedule --list\` shows them`);
        await save({ ...stored, changes: stored.changes.filter((c) => c.id !== id) });
        await event("flag.schedule-cancelled", actor, change);
        return change;
      });
    },

    applyDue,

    async start() {
      if (closed || timer !== undefined) return;
      timer = setInterval(tick, intervalMs);
      timer.unref();
      tick();
      await pass;
    },

    async close() {
      closed = true;
      clearInterval(timer);
      timer = undefined;
      await pass;
      await queue;
    },
  };
}
