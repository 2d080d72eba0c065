// Reads Linux /proc/<pid>/stat: the start time that tells our replica from a process that
// re-used its pid, the process group a stop has to wait for, and the CPU time usage sampling
// counts. Undefined where /proc is missing.
import { readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";

/** The fields of /proc/<pid>/stat that the runtime needs. */
export interface ProcStat {
  pid: number;
  /** One letter: R, S, D, Z (zombie), T, ... */
  state: string;
  ppid: number;
  /** Process group id. */
  pgrp: number;
  session: number;
  /** Fields 14 and 15: CPU time in user and kernel mode, clock ticks (USER_HZ, 100 a second on Linux). */
  utime: number;
  stime: number;
  /** Field 22: clock ticks after boot at which the process started. */
  startTime: number;
}

/** Clock ticks a second in /proc (USER_HZ): 100 on every Linux architecture Node runs on. */
export const CLOCK_TICKS_PER_SECOND = 100;

/** Parses the text of /proc/<pid>/stat; the command name may hold spaces and parentheses. */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  // Fields after the name start at field 3 (state); field n is at index n - 3.
  const rest = text.slice(close + 2).split(" ");
  const num = (field: number): number => Number(rest[field - 3]);
  const state = rest[0];
  if (state === undefined || !Number.isInteger(pid)) return undefined;
  const stat: ProcStat = { pid, state, ppid: num(4), pgrp: num(5), session: num(6), utime: num(14), stime: num(15), startTime: num(22) };
  return Number.isFinite(stat.startTime) ? stat : undefined;
}

/** The process's stat, or undefined when it does not exist (or /proc is not there). */
export function readProcStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

/** Whether /proc is usable on this machine (Linux). */
export function hasProcFs(): boolean {
  return readProcStat(process.pid) !== undefined;
}

/**
 * Whether the process with this pid is running and is the one that started at
 * `startTime` (when given). A zombie counts as gone: it has exited, and where PID 1
 * does not reap orphans (some containers) it stays a zombie for ever.
 */
export function isProcessRunning(pid: number, startTime: number | undefined): boolean {
  const stat = readProcStat(pid);
  if (stat !== undefined) return stat.state !== "Z" && (startTime === undefined || stat.startTime === startTime);
  if (startTime !== undefined && hasProcFs()) return false;
  // No /proc (not Linux): all we can tell is whether some process has this pid.
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Pids of the live (non-zombie) members of a process group. */
export async function processGroupMembers(pgid: number): Promise<number[]> {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    // ESRCH: no member at all, zombie or not; no need to scan /proc.
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return [];
  }
  if (!hasProcFs()) return [pgid];
  const members: number[] = [];
  const names = await readdir("/proc");
  await Promise.all(
    names.map(async (name) => {
      if (!/^\d+$/.test(name)) return;
      try {
        const stat = parseProcStat(await readFile(`/proc/${name}/stat`, "utf8"));
        if (stat !== undefined && stat.pgrp === pgid && stat.state !== "Z") members.push(stat.pid);
      } catch {
        // The process ended while we looked.
      }
    }),
  );
  return members;
}
