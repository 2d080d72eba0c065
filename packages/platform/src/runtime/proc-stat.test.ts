// /proc/<pid>/stat parsing: the start time that identifies a replica across control planes.
import { describe, expect, it } from "vitest";
import { isProcessRunning, parseProcStat, processGroupMembers, readProcStat } from "./proc-stat.js";

describe("proc stat", () => {
  it("parses a command name with spaces and parentheses", () => {
    const text = "4242 (node (my app) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 2 0 0 20 0 7 0 987654 1000 100 18446744073709551615\n";
    expect(parseProcStat(text)).toEqual({ pid: 4242, state: "S", ppid: 1, pgrp: 4242, session: 4242, utime: 5, stime: 2, startTime: 987654 });
    expect(parseProcStat("garbage")).toBeUndefined();
  });

  it("reads this process, and tells a different start time from ours", () => {
    const own = readProcStat(process.pid);
    expect(own?.pid).toBe(process.pid);
    expect(isProcessRunning(process.pid, own?.startTime)).toBe(true);
    expect(isProcessRunning(process.pid, (own?.startTime ?? 0) + 1)).toBe(false);
    expect(readProcStat(4_194_304 + 1)).toBeUndefined();
  });

  it("lists the live members of a process group", async () => {
    const own = readProcStat(process.pid);
    expect(await processGroupMembers(own?.pgrp ?? -1)).toContain(process.pid);
    expect(await processGroupMembers(4_194_304 + 1)).toEqual([]);
  });
});
