// Stale flags: flags nobody evaluates any more, or that nobody has touched for months, which are
// usually finished rollouts whose flag (and code path) can go. Kill switches and permissions are
// meant to sit still, so only the evaluation rule applies to them.
import { KeelsonError, type FlagType } from "@keelson/protocol";
import type { FlagService } from "./flag-service.js";
import type { FlagUsage } from "./flag-usage.js";

export const STALE_DEFAULTS = Object.freeze({
  /** A flag with no evaluation for this many days is stale. */
  days: 30,
  /** A flag with no change for this many days is stale (kill switches and permissions excepted). */
  unchangedDays: 90,
});

/** Flag types exempt from the "no change" rule. */
export const STILL_FLAG_TYPES: readonly FlagType[] = Object.freeze(["kill-switch", "permission"]);

export type StaleReason = "not-evaluated" | "unchanged";

export interface StaleFlag {
  flag: string;
  type?: FlagType;
  owner?: string;
  reasons: StaleReason[];
  /** One sentence per reason, with the dates. */
  why: string[];
  /** Absent: no evaluation counted since `countingSince`. */
  lastEvaluatedAt?: string;
  /** The last change event of the flag (absent for a flag without recorded changes). */
  lastChangedAt?: string;
  evaluations: number;
}

/** GET /v1/flags/stale. */
export interface StaleReport {
  at: string;
  days: number;
  unchangedDays: number;
  /** When evaluation counting began: a flag is "not evaluated" at the earliest `days` after. */
  countingSince: string;
  flags: StaleFlag[];
}

const DAY_MS = 86_400_000;

function checkDays(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1 || value > 3650) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${name}: expected a whole number of days from 1 to 3650, got ${JSON.stringify(value)}`);
}

const daysBetween = (from: number, to: number) => Math.floor((to - from) / DAY_MS);
const day = (iso: string) => iso.slice(0, 10);

/**
 * The project's stale flags, oldest evidence first.
 *
 * A flag is stale when it had no evaluation for `days` (a flag never evaluated counts from its
 * last change, or from when counting began if that is later), or no change for `unchangedDays`
 * (not for kill switches and permissions).
 *
 * @example
 * const report = await findStaleFlags({ flags, usage, now: new Date(), days: 30 });
 * report.flags.map((f) => `${f.flag}: ${f.why.join("; ")}`);
 */
export async function findStaleFlags(options: { flags: FlagService; usage: FlagUsage; now: Date; days?: number; unchangedDays?: number }): Promise<StaleReport> {
  const days = options.days ?? STALE_DEFAULTS.days;
  const unchangedDays = options.unchangedDays ?? STALE_DEFAULTS.unchangedDays;
  checkDays("days", days);
  checkDays("unchangedDays", unchangedDays);
  const { flags, usage } = options;
  const nowMs = options.now.getTime();
  const [snap, used] = await Promise.all([flags.snapshot(), usage.read()]);
  const sinceMs = Date.parse(used.since);
  const stale: Array<StaleFlag & { oldest: number }> = [];
  for (const key of Object.keys(snap.set.flags).sort()) {
    const def = snap.set.flags[key];
    if (!def) continue;
    const [last] = await flags.history(key, 1);
    const lastChangedAt = last?.at ?? snap.updatedAt;
    const changedMs = lastChangedAt === undefined ? undefined : Date.parse(lastChangedAt);
    const entry = used.flags[key];
    const reasons: StaleReason[] = [];
    const why: string[] = [];
    let oldest = nowMs;

    if (entry) {
      const evaluatedMs = Date.parse(entry.lastEvaluatedAt);
      if (nowMs - evaluatedMs >= days * DAY_MS) {
        reasons.push("not-evaluated");
        why.push(`no evaluation for ${daysBetween(evaluatedMs, nowMs)} days (last ${day(entry.lastEvaluatedAt)})`);
        oldest = Math.min(oldest, evaluatedMs);
      }
    } else {
      const fromChange = changedMs !== undefined && changedMs >= sinceMs;
      const fromMs = fromChange ? changedMs : sinceMs;
      if (nowMs - fromMs >= days * DAY_MS) {
        reasons.push("not-evaluated");
        why.push(`never evaluated in ${daysBetween(fromMs, nowMs)} days (since ${fromChange ? `its last change ${day(lastChangedAt as string)}` : `counting began ${day(used.since)}`})`);
        oldest = Math.min(oldest, fromMs);
      }
    }
    if (changedMs !== undefined && !(def.type !== undefined && STILL_FLAG_TYPES.includes(def.type)) && nowMs - changedMs >= unchangedDays * DAY_MS) {
      reasons.push("unchanged");
      why.push(`no change for ${daysBetween(changedMs, nowMs)} days (last ${day(lastChangedAt as string)})`);
      oldest = Math.min(oldest, changedMs);
    }
    if (reasons.length === 0) continue;
    stale.push({
      flag: key,
      ...(def.type !== undefined ? { type: def.type } : {}),
      ...(def.owner !== undefined ? { owner: def.owner } : {}),
      reasons,
      why,
      ...(entry ? { lastEvaluatedAt: entry.lastEvaluatedAt } : {}),
      ...(lastChangedAt !== undefined ? { lastChangedAt } : {}),
      evaluations: entry?.evaluations ?? 0,
      oldest,
    });
  }
  stale.sort((a, b) => a.oldest - b.oldest || a.flag.localeCompare(b.flag));
  return { at: options.now.toISOString(), days, unchangedDays, countingSince: used.since, flags: stale.map(({ oldest: _o, ...f }) => f) };
}
