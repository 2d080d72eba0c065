// The logs tail's plumbing: NDJSON split across chunks, the bounded window, and search marks.
import { describe, expect, it } from "vitest";
import { appendBounded, createLineSplitter, highlight, parseLogLine } from "./log-lines.js";

describe("createLineSplitter", () => {
  it("gives complete lines only, wherever the chunks are cut", () => {
    const text = '{"a":1}\n{"b":2}\n\n{"c":3}\n';
    for (let cut = 1; cut < text.length; cut++) {
      const splitter = createLineSplitter();
      expect([...splitter.push(text.slice(0, cut)), ...splitter.push(text.slice(cut))], `cut at ${cut}`).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
    }
    // A last line without its newline waits for it.
    const splitter = createLineSplitter();
    expect(splitter.push('{"a":1}\n{"b"')).toEqual(['{"a":1}']);
    expect(splitter.push(":2}\n")).toEqual(['{"b":2}']);
  });
});

describe("parseLogLine", () => {
  it("takes the API's log lines and skips anything else", () => {
    expect(parseLogLine('{"t":"2026-01-01T00:00:00.000Z","replica":"api-0","stream":"stderr","line":"boom"}')).toEqual({ t: "2026-01-01T00:00:00.000Z", replica: "api-0", stream: "stderr", line: "boom" });
    expect(parseLogLine('{"t":"x","replica":"api-0","line":"no stream"}')?.stream).toBe("stdout");
    expect(parseLogLine("not json")).toBeUndefined();
    expect(parseLogLine('{"type":"error"}')).toBeUndefined();
  });
});

describe("appendBounded", () => {
  it("keeps the newest max items", () => {
    expect(appendBounded([1, 2, 3], [4, 5], 4)).toEqual([2, 3, 4, 5]);
    expect(appendBounded([1], [2], 4)).toEqual([1, 2]);
    expect(appendBounded([], [1, 2, 3, 4, 5, 6], 2)).toEqual([5, 6]);
  });
});

describe("highlight", () => {
  it("marks every occurrence, any case, keeping the line's own text", () => {
    expect(highlight("Error: charge ERROR again", "error")).toEqual([
      { text: "Error", match: true },
      { text: ": charge ", match: false },
      { text: "ERROR", match: true },
      { text: " again", match: false },
    ]);
    expect(highlight("nothing here", "error")).toEqual([{ text: "nothing here", match: false }]);
    expect(highlight("all of it", "")).toEqual([{ text: "all of it", match: false }]);
    expect(highlight("aaa", "aa")).toEqual([
      { text: "aa", match: true },
      { text: "a", match: false },
    ]);
  });

  it("leaves a line unmarked when lower case changes its length (offsets would be wrong)", () => {
    expect(highlight("İstanbul error", "error")).toEqual([{ text: "İstanbul error", match: false }]);
  });
});
