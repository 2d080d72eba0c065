// How the change history reads: each change's title, and each entry of its diff as a path with
// the value before and after (absent on one side when the field was added or removed).
import type { FlagChange, FlagDiffEntry } from "./flags-api.js";

/** Values longer than this are shown folded, with the whole value on demand. */
export const SHORT_VALUE = 80;

export interface DiffLine {
  /** "definition" for a whole flag created or deleted. */
  path: string;
  kind: "added" | "removed" | "changed";
  before: string | undefined;
  after: string | undefined;
}

/** A value as compact JSON ("(none)" for absent). */
export function formatValue(value: unknown): string {
  if (value === undefined) return "(none)";
  return JSON.stringify(value) ?? String(value);
}

/** The same, pretty-printed, for a long value unfolded. */
export function formatValueLong(value: unknown): string {
  if (value === undefined) return "(none)";
  return JSON.stringify(value, null, 2) ?? String(value);
}

/** The diff entries of one change as lines to render. */
export function diffLines(diff: readonly FlagDiffEntry[]): DiffLine[] {
  return diff.map((d) => {
    // A whole flag created or deleted: null on the other side is "did not exist".
    const whole = d.path === "(whole)";
    const hasBefore = d.before !== undefined && !(whole && d.before === null);
    const hasAfter = d.after !== undefined && !(whole && d.after === null);
    return {
      path: whole ? "definition" : d.path,
      kind: hasBefore && hasAfter ? "changed" : hasAfter ? "added" : "removed",
      before: hasBefore ? formatValue(d.before) : undefined,
      after: hasAfter ? formatValue(d.after) : undefined,
    };
  });
}

const KIND_WORDS: Record<string, string> = {
  "flag.created": "Created",
  "flag.changed": "Changed",
  "flag.killed": "Killed",
  "flag.deleted": "Deleted",
};

/**
 * What a change was, in a few words: "Killed", "Rolled back to change 12", "Changed by keelson up".
 *
 * @example
 * changeTitle({ kind: "flag.changed", rollbackTo: 12, ... }); // "Rolled back to change 12"
 */
export function changeTitle(change: Pick<FlagChange, "kind" | "source" | "rollbackTo" | "scheduled">): string {
  const word = KIND_WORDS[change.kind] ?? change.kind;
  if (change.rollbackTo !== undefined) return `Rolled back to change ${change.rollbackTo}`;
  if (change.source === "manifest") return `${word} by keelson up (keelson.yaml)`;
  if (change.source === "import") return `${word} by an import`;
  if (change.scheduled !== undefined) return `${word} by scheduled change ${change.scheduled}`;
  return word;
}
