// The logs tail's plumbing: NDJSON chunks from a streaming response into log lines, a bounded
// window of the newest ones, and a line cut around what the search found (to mark it).
// Pure functions, tested without a browser.
import type { LogLine } from "./service-api.js";

/**
 * Splits a stream's text chunks into complete lines; a chunk may end mid-line (and mid-character
 * is the decoder's concern). `push` returns the lines a chunk completes.
 */
export function createLineSplitter(): { push(chunk: string): string[] } {
  let carry = "";
  return {
    push(chunk) {
      const parts = (carry + chunk).split("\n");
      carry = parts.pop() ?? "";
      return parts.filter((p) => p.trim() !== "");
    },
  };
}

/** One NDJSON line as a LogLine; anything else (a torn or foreign line) is undefined. */
export function parseLogLine(text: string): LogLine | undefined {
  try {
    const v = JSON.parse(text) as Partial<LogLine>;
    if (typeof v.t !== "string" || typeof v.replica !== "string" || typeof v.line !== "string") return undefined;
    return { t: v.t, replica: v.replica, stream: v.stream === "stderr" ? "stderr" : "stdout", line: v.line };
  } catch {
    return undefined;
  }
}

/** `lines` followed by `more`, only the newest `max` of them. */
export function appendBounded<T>(lines: readonly T[], more: readonly T[], max: number): T[] {
  const all = [...lines, ...more];
  return all.length > max ? all.slice(all.length - max) : all;
}

/** `text` cut into pieces, `match` marking where `search` occurs (any case), to highlight it. */
export function highlight(text: string, search: string): Array<{ text: string; match: boolean }> {
  const needle = search.trim().toLowerCase();
  if (needle === "") return [{ text, match: false }];
  const hay = text.toLowerCase();
  // A few characters change length in lower case (İ): offsets would not line up, so no marks.
  if (hay.length !== text.length) return [{ text, match: false }];
  const out: Array<{ text: string; match: boolean }> = [];
  let from = 0;
  for (let at = hay.indexOf(needle); at >= 0; at = hay.indexOf(needle, at + needle.length)) {
    if (at > from) out.push({ text: text.slice(from, at), match: false });
    out.push({ text: text.slice(at, at + needle.length), match: true });
    from = at + needle.length;
  }
  if (from < text.length) out.push({ text: text.slice(from), match: false });
  return out;
}
