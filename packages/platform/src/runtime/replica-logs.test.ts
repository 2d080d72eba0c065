// Replica logs without processes: the collector (partial lines, offsets across restarts,
// rotation, copytruncate) and readReplicaLogs (merge, since, tail, follow, rotation).
import { appendFile, mkdir, readFile, readdir, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makeTempDir, waitFor } from "#test-support";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogCollector, lastLogLines, parseLogLine, readReplicaLogs, replicaLogPaths } from "./replica-logs.js";
import type { LogLine, ReadReplicaLogsOptions } from "./replica-logs.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await makeTempDir("keelson-logs-"));
});
afterEach(async () => {
  await cleanup();
});

async function storedLines(path: string): Promise<LogLine[]> {
  const text = await readFile(path, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => parseLogLine(l) as LogLine);
}

async function readAll(options: ReadReplicaLogsOptions): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for await (const line of readReplicaLogs(options)) out.push(line);
  return out;
}

const at = (s: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const record = (replica: string, s: number, line: string, stream: "stdout" | "stderr" = "stdout"): string => `${JSON.stringify({ t: at(s), replica, stream, line })}\n`;

describe("log collector", () => {
  it("stamps complete lines with replica, stream and time; a partial line waits for its newline", async () => {
    const paths = replicaLogPaths(dir, "web-0");
    await writeFile(paths.stdout, "first\nsecond\r\npart");
    await writeFile(paths.stderr, "oops\n");
    const collector = createLogCollector({ logDir: dir, replicaId: "web-0", pollIntervalMs: 0 });
    const before = Date.now();
    await collector.collect();
    let lines = await storedLines(paths.log);
    expect(lines.map((l) => [l.stream, l.line])).toEqual([
      ["stdout", "first"],
      ["stdout", "second"],
      ["stderr", "oops"],
    ]);
    expect(lines.every((l) => l.replica === "web-0" && Date.parse(l.t) >= before - 1 && l.t === new Date(l.t).toISOString())).toBe(true);

    await appendFile(paths.stdout, "ial\n");
    await collector.collect();
    lines = await storedLines(paths.log);
    expect(lines.at(-1)?.line).toBe("partial");
    expect(JSON.parse(await readFile(paths.offset, "utf8"))).toEqual({ stdout: Buffer.byteLength("first\nsecond\r\npartial\n"), stderr: 5 });
    await collector.close();
  });

  it("a final collection takes a last line without newline (the process is gone)", async () => {
    const paths = replicaLogPaths(dir, "web-0");
    await writeFile(paths.stdout, "done\ncrashed mid-li");
    const collector = createLogCollector({ logDir: dir, replicaId: "web-0", pollIntervalMs: 0 });
    await collector.collect();
    expect((await storedLines(paths.log)).map((l) => l.line)).toEqual(["done"]);
    await collector.close({ final: true });
    expect((await storedLines(paths.log)).map((l) => l.line)).toEqual(["done", "crashed mid-li"]);
  });

  it("a new collector resumes at the stored offset: nothing written meanwhile is lost or repeated", async () => {
    const paths = replicaLogPaths(dir, "web-0");
    await writeFile(paths.stdout, "1\n2\n3");
    const first = createLogCollector({ logDir: dir, replicaId: "web-0", pollIntervalMs: 0 });
    await first.collect();
    await first.close();
    // Written while no control plane was there.
    await appendFile(paths.stdout, "\n4\n5\n");
    await appendFile(paths.stderr, "e\n");
    const second = createLogCollector({ logDir: dir, replicaId: "web-0", pollIntervalMs: 0 });
    await second.collect();
    await second.close();
    expect((await storedLines(paths.log)).map((l) => l.line)).toEqual(["1", "2", "3", "4", "5", "e"]);
  });

  it("polls by itself", async () => {
    const paths = replicaLogPaths(dir, "web-0");
    const collector = createLogCollector({ logDir: dir, replicaId: "web-0", pollIntervalMs: 20 });
    try {
      await appendFile(paths.stdout, "hello\n");
      await waitFor(async () => (await storedLines(paths.log)).length === 1);
    } finally {
      await collector.close();
    }
  });

  it("rotates <id>.log at maxBytes and keeps `keep` rotated files", async () => {
    const paths = replicaLogPaths(dir, "web-0");
    await writeFile(paths.stdout, Array.from({ length: 60 }, (_, i) => `line ${i + 1}\n`).join(""));
    const collector = createLogCollector({ logDir: dir, replicaId: "web-0", pollIntervalMs: 0, maxBytes: 400, keep: 2 });
    await collector.collect();
    await collector.close();
    const files = (await readdir(dir)).filter((f) => f.startsWith("web-0.log")).sort();
    expect(files).toEqual(["web-0.log", "web-0.log.1", "web-0.log.2"]);
    for (const f of files) expect((await stat(join(dir, f))).size).toBeLessThanOrEqual(400);
    // What is kept is the newest part, complete and in order.
    const kept = (await readAll({ logDir: dir })).map((l) => Number(l.line.split(" ")[1]));
    expect(kept.at(-1)).toBe(60);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 60 - kept.length + 1 + i));
  });

  it("truncates a fully collected raw file past rawMaxBytes, and carries on at its new end", async () => {
    const paths = replicaLogPaths(dir, "web-0");
    await writeFile(paths.stdout, "a".repeat(150) + "\n");
    const collector = createLogCollector({ logDir: dir, replicaId: "web-0", pollIntervalMs: 0, rawMaxBytes: 100 });
    await collector.collect();
    expect((await stat(paths.stdout)).size).toBe(0);
    expect(JSON.parse(await readFile(paths.offset, "utf8"))).toMatchObject({ stdout: 0 });
    await appendFile(paths.stdout, "after\n");
    await collector.collect();
    await collector.close();
    expect((await storedLines(paths.log)).map((l) => l.line.slice(0, 5))).toEqual(["aaaaa", "after"]);
  });

  it("starts over when the raw file shrank behind its back", async () => {
    const paths = replicaLogPaths(dir, "web-0");
    await writeFile(paths.stdout, "one\ntwo\n");
    const collector = createLogCollector({ logDir: dir, replicaId: "web-0", pollIntervalMs: 0 });
    await collector.collect();
    await writeFile(paths.stdout, "new\n");
    await collector.collect();
    await collector.close();
    expect((await storedLines(paths.log)).map((l) => l.line)).toEqual(["one", "two", "new"]);
  });

  it("cuts a runaway line without newline instead of holding it in memory", async () => {
    const paths = replicaLogPaths(dir, "web-0");
    await writeFile(paths.stdout, "z".repeat(300 * 1024));
    const collector = createLogCollector({ logDir: dir, replicaId: "web-0", pollIntervalMs: 0 });
    await collector.collect();
    // The first 256 KiB are cut off as a line; the 44 KiB rest is short enough to wait.
    expect((await storedLines(paths.log)).map((l) => l.line.length)).toEqual([256 * 1024]);
    await collector.close({ final: true });
    const lines = await storedLines(paths.log);
    expect(lines.length).toBe(2);
    expect(lines.reduce((n, l) => n + l.line.length, 0)).toBe(300 * 1024);
  });
});

describe("readReplicaLogs", () => {
  async function seed(): Promise<void> {
    // web-0: rotated file (oldest) then current; web-1: current only. One torn line.
    await writeFile(join(dir, "web-0.log.1"), record("web-0", 1, "a1") + record("web-0", 3, "a3"));
    await writeFile(join(dir, "web-0.log"), record("web-0", 5, "a5") + "not json\n" + record("web-0", 7, "a7", "stderr"));
    await writeFile(join(dir, "web-1.log"), record("web-1", 2, "b2") + record("web-1", 6, "b6"));
    await writeFile(join(dir, "web-0.stdout"), "raw, not collected\n");
  }

  it("merges every replica's files in time order, rotated files first", async () => {
    await seed();
    expect((await readAll({ logDir: dir })).map((l) => l.line)).toEqual(["a1", "b2", "a3", "a5", "b6", "a7"]);
    expect((await readAll({ logDir: dir, replicaIds: ["web-1"] })).map((l) => l.line)).toEqual(["b2", "b6"]);
  });

  it("since keeps lines at or after the time; tail keeps the last n, across rotated files", async () => {
    await seed();
    expect((await readAll({ logDir: dir, since: new Date(at(3)) })).map((l) => l.line)).toEqual(["a3", "a5", "b6", "a7"]);
    expect((await readAll({ logDir: dir, tail: 2 })).map((l) => l.line)).toEqual(["b6", "a7"]);
    expect((await readAll({ logDir: dir, tail: 5 })).map((l) => l.line)).toEqual(["b2", "a3", "a5", "b6", "a7"]);
    expect((await readAll({ logDir: dir, tail: 10, since: new Date(at(4)) })).map((l) => l.line)).toEqual(["a5", "b6", "a7"]);
    expect(await readAll({ logDir: dir, tail: 0 })).toEqual([]);
  });

  it("match keeps only the lines it accepts; tail counts those, reaching back into rotated files", async () => {
    await seed();
    const odd = (l: LogLine) => /[1357]$/.test(l.line);
    expect((await readAll({ logDir: dir, match: odd })).map((l) => l.line)).toEqual(["a1", "a3", "a5", "a7"]);
    // The last two matches, not the matches among the last two lines (b6, a7).
    expect((await readAll({ logDir: dir, match: odd, tail: 2 })).map((l) => l.line)).toEqual(["a5", "a7"]);
    expect((await readAll({ logDir: dir, match: odd, tail: 3 })).map((l) => l.line)).toEqual(["a3", "a5", "a7"]);
    expect((await readAll({ logDir: dir, match: odd, tail: 10, since: new Date(at(4)) })).map((l) => l.line)).toEqual(["a5", "a7"]);
    expect(await readAll({ logDir: dir, match: () => false, tail: 5 })).toEqual([]);
  });

  it("follow with match yields only new lines it accepts", async () => {
    await writeFile(join(dir, "web-0.log"), record("web-0", 1, "GET /a 200") + record("web-0", 2, "GET /b 500"));
    const abort = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const l of readReplicaLogs({ logDir: dir, tail: 5, follow: true, match: (x) => x.line.includes("500"), signal: abort.signal, pollIntervalMs: 20 })) seen.push(l.line);
    })();
    await waitFor(() => seen.length === 1);
    await appendFile(join(dir, "web-0.log"), record("web-0", 3, "GET /c 200") + record("web-0", 4, "GET /d 500"));
    await waitFor(() => seen.length === 2);
    abort.abort();
    await reading;
    expect(seen).toEqual(["GET /b 500", "GET /d 500"]);
  });

  it("lastLogLines gives one replica's last lines with their streams", async () => {
    await seed();
    const lines = await lastLogLines(dir, "web-0", 3);
    expect(lines.map((l) => [l.stream, l.line])).toEqual([
      ["stdout", "a3"],
      ["stdout", "a5"],
      ["stderr", "a7"],
    ]);
    expect(await lastLogLines(join(dir, "missing"), "web-0", 3)).toEqual([]);
  });

  it("a line being written (no newline yet) is not returned", async () => {
    await writeFile(join(dir, "web-0.log"), record("web-0", 1, "whole") + record("web-0", 2, "torn").slice(0, 20));
    expect((await readAll({ logDir: dir })).map((l) => l.line)).toEqual(["whole"]);
    expect((await readAll({ logDir: dir, tail: 5 })).map((l) => l.line)).toEqual(["whole"]);
  });

  it("follow yields new lines as they come, through a rotation, until the signal aborts", async () => {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "web-0.log"), record("web-0", 1, "old"));
    const abort = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const l of readReplicaLogs({ logDir: dir, tail: 1, follow: true, signal: abort.signal, pollIntervalMs: 20 })) seen.push(l.line);
    })();
    await waitFor(() => seen.length === 1);
    await appendFile(join(dir, "web-0.log"), record("web-0", 2, "new 1"));
    await waitFor(() => seen.length === 2);
    // Rotation as the collector does it, with a line that landed in the old file just before.
    await appendFile(join(dir, "web-0.log"), record("web-0", 3, "new 2"));
    await rename(join(dir, "web-0.log"), join(dir, "web-0.log.1"));
    await writeFile(join(dir, "web-0.log"), record("web-0", 4, "new 3"));
    // A replica that appears while following.
    await writeFile(join(dir, "web-1.log"), record("web-1", 5, "other"));
    await waitFor(() => seen.length === 5);
    abort.abort();
    await reading;
    expect(seen).toEqual(["old", "new 1", "new 2", "new 3", "other"]);
  });

  it("follow yields nothing more once the consumer aborted, even mid-batch", async () => {
    await writeFile(join(dir, "web-0.log"), "");
    const abort = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const l of readReplicaLogs({ logDir: dir, follow: true, signal: abort.signal, pollIntervalMs: 20 })) {
        seen.push(l.line);
        abort.abort();
      }
    })();
    await appendFile(join(dir, "web-0.log"), record("web-0", 1, "a") + record("web-0", 2, "b") + record("web-0", 3, "c"));
    await reading;
    expect(seen).toEqual(["a"]);
  });
});
