// What replicas use, read from Linux /proc: one pass over /proc finds the live members of each
// replica's process group, sums their resident memory and turns their CPU time into percent of
// one core since the previous pass. Where /proc is missing there is nothing to sample.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { CLOCK_TICKS_PER_SECOND, parseProcStat } from "./proc-stat.js";
import type { ProcStat } from "./proc-stat.js";

/** Bytes per page in /proc/<pid>/statm (4096 on the architectures Node runs on). */
const PAGE_SIZE = 4096;

/** What one process group uses. */
export interface GroupUsage {
  /** Percent of one core since the group's previous sample (since it started, at its first). */
  cpuPercent: number;
  /** Resident memory summed over the live members (shared pages count once per member). */
  memoryBytes: number;
  /** Live (non-zombie) members seen. */
  members: number;
}

/** A process group to sample: its id (the leader's pid) and the leader's start time. */
export interface SampledGroup {
  pgid: number;
  startTime: number | undefined;
}

export interface UsageSamplerOptions {
  /** Where proc is mounted; default /proc (tests point it at a fake tree). */
  procDir?: string;
  /** Monotonic clock, ms; default performance.now(). */
  now?: () => number;
}

export interface UsageSampler {
  /**
   * One pass over /proc: the usage of each group asked for, by pgid. A group with no live member
   * is left out; undefined when /proc cannot be read (not Linux). Never rejects.
   */
  sample(groups: readonly SampledGroup[]): Promise<Map<number, GroupUsage> | undefined>;
}

/**
 * Creates a sampler. It remembers each process's CPU time between passes, so one sampler
 * serves one driver and is called at its sampling interval.
 *
 * @example
 * const sampler = createUsageSampler();
 * const usage = await sampler.sample([{ pgid: run.pid, startTime: run.pidStartTime }]);
 * usage?.get(run.pid); // { cpuPercent: 12.5, memoryBytes: 50_331_648, members: 2 }
 */
export function createUsageSampler(options: UsageSamplerOptions = {}): UsageSampler {
  const procDir = options.procDir ?? "/proc";
  const now = options.now ?? (() => performance.now());
  /** CPU ticks (utime + stime) of each process at the previous pass, by "pid:startTime". */
  let ticksBefore = new Map<string, number>();
  /** When each group was sampled last (`now()` ms), by "pgid:startTime". */
  let sampledBefore = new Map<string, number>();

  async function readStat(pid: string): Promise<ProcStat | undefined> {
    try {
      return parseProcStat(await readFile(join(procDir, pid, "stat"), "utf8"));
    } catch {
      // The process ended while we looked.
      return undefined;
    }
  }

  async function residentBytes(pid: number): Promise<number> {
    try {
      const resident = Number((await readFile(join(procDir, String(pid), "statm"), "utf8")).split(" ")[1]);
      return Number.isFinite(resident) ? resident * PAGE_SIZE : 0;
    } catch {
      return 0;
    }
  }

  /** Seconds since boot, to tell how long a group sampled for the first time has been running. */
  async function uptimeSeconds(): Promise<number | undefined> {
    try {
      const seconds = Number((await readFile(join(procDir, "uptime"), "utf8")).split(" ")[0]);
      return Number.isFinite(seconds) ? seconds : undefined;
    } catch {
      return undefined;
    }
  }

  return {
    async sample(groups) {
      if (groups.length === 0) return new Map();
      let names: string[];
      try {
        names = await readdir(procDir);
      } catch {
        return undefined;
      }
      const wanted = new Set(groups.map((g) => g.pgid));
      const stats = (await Promise.all(names.filter((name) => /^\d+$/.test(name)).map(readStat))).filter(
        (s): s is ProcStat => s !== undefined && s.state !== "Z" && wanted.has(s.pgrp),
      );
      const [memory, uptime] = await Promise.all([Promise.all(stats.map((s) => residentBytes(s.pid))), uptimeSeconds()]);
      const at = now();

      const ticksNow = new Map<string, number>();
      const totals = new Map<number, { ticks: number; memoryBytes: number; members: number }>();
      for (const [i, s] of stats.entries()) {
        const ticks = s.utime + s.stime;
        const key = `${s.pid}:${s.startTime}`;
        ticksNow.set(key, ticks);
        // A process not seen before started since the last pass (or this is the group's first): all its time counts.
        const before = ticksBefore.get(key);
        const total = totals.get(s.pgrp) ?? { ticks: 0, memoryBytes: 0, members: 0 };
        total.ticks += before === undefined ? ticks : Math.max(0, ticks - before);
        total.memoryBytes += memory[i] ?? 0;
        total.members += 1;
        totals.set(s.pgrp, total);
      }

      const sampledNow = new Map<string, number>();
      const usage = new Map<number, GroupUsage>();
      for (const group of groups) {
        const total = totals.get(group.pgid);
        if (total === undefined) continue;
        const key = `${group.pgid}:${group.startTime}`;
        sampledNow.set(key, at);
        const last = sampledBefore.get(key);
        const seconds =
          last !== undefined ? (at - last) / 1000 : uptime !== undefined && group.startTime !== undefined ? uptime - group.startTime / CLOCK_TICKS_PER_SECOND : undefined;
        const cpuPercent = seconds !== undefined && seconds > 0 ? Math.round((total.ticks / CLOCK_TICKS_PER_SECOND / seconds) * 1000) / 10 : 0;
        usage.set(group.pgid, { cpuPercent, memoryBytes: total.memoryBytes, members: total.members });
      }
      // Only what this pass saw is kept, so ended processes and groups are forgotten.
      ticksBefore = ticksNow;
      sampledBefore = sampledNow;
      return usage;
    },
  };
}
