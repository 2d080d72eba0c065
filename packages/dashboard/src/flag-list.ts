// The rows of the flag list: each flag with its stale-flag finding and evaluation count, and the
// filter box's matching (every word must appear in the key, owner, type, state or description).
import type { FlagDefinition } from "@keelson/protocol";
import { isKilled } from "./flag-draft.js";
import type { FlagSetView, FlagUsageView, StaleFlag, StaleReport } from "./flags-api.js";

export interface FlagRow {
  key: string;
  flag: FlagDefinition;
  /** Absent while the stale report is not there or does not name the flag. */
  stale: StaleFlag | undefined;
  /** Evaluations counted since counting began; absent when the usage could not be read. */
  usage: { evaluations: number; lastEvaluatedAt: string | undefined } | undefined;
  /** The kill switch's marks are on it (the dashboard's editor clears them). */
  killed: boolean;
}

/** Every flag of the set, by key. */
export function flagRows(set: FlagSetView, stale: StaleReport | undefined, usage: FlagUsageView | undefined): FlagRow[] {
  const staleByKey = new Map((stale?.flags ?? []).map((f) => [f.flag, f]));
  return Object.keys(set.flags)
    .sort()
    .map((key) => {
      const flag = set.flags[key] as FlagDefinition;
      const used = usage?.flags[key];
      return {
        key,
        flag,
        stale: staleByKey.get(key),
        usage: usage === undefined ? undefined : { evaluations: used?.evaluations ?? 0, lastEvaluatedAt: used?.lastEvaluatedAt },
        killed: isKilled(flag),
      };
    });
}

/** The rows matching every word of `text` (case-insensitive); "stale" and "killed" match those rows too. */
export function filterFlags(rows: readonly FlagRow[], text: string): FlagRow[] {
  const words = text.toLowerCase().split(/\s+/).filter((w) => w !== "");
  if (words.length === 0) return [...rows];
  return rows.filter((r) => {
    const haystack = [r.key, r.flag.owner, r.flag.type, r.flag.state, r.flag.description, r.stale ? "stale" : undefined, r.killed ? "killed" : undefined]
      .filter((s): s is string => s !== undefined)
      .join("\n")
      .toLowerCase();
    return words.every((w) => haystack.includes(w));
  });
}
